//! Recent sensor values for sparklines: one fixed ring per sensor field
//! (`room/temperature_c`), one slot per step (default one minute, 24 hours),
//! filled from the board's change feed. Memory is fixed when the ring is
//! made: `slots × 4 bytes` per series, at most
//! [`crate::limits::MAX_HISTORY_SERIES`] series (a further field is not
//! recorded). A series serializes to a small blob so the gateway can keep
//! it across restarts without writing on every sample.

/// A missing sample.
const EMPTY: f32 = f32::NAN;

/// Blob format version of [`Series::to_bytes`].
const BLOB_VERSION: u8 = 1;

/// One field's ring.
#[derive(Debug, Clone)]
pub struct Series {
    /// Device name.
    pub device: String,
    /// Field name (`temperature_c`).
    pub field: &'static str,
    /// The slot number (time / step) of the newest slot.
    newest: u64,
    /// `values[slot % len]`; NaN = no sample.
    values: Box<[f32]>,
    /// Changed since the last [`History::take_dirty`].
    dirty: bool,
}

/// The rings of every recorded field.
#[derive(Debug)]
pub struct History {
    step_ms: u64,
    slots: usize,
    series: Vec<Series>,
}

/// A series as served: `values[i]` is the slot that starts at
/// `start_ms + i × step_ms` (`None` = no sample).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Start of the first slot, ms since the Unix epoch.
    pub start_ms: u64,
    /// Slot length.
    pub step_ms: u64,
    /// One value per slot.
    pub values: Vec<Option<f32>>,
}

impl History {
    /// Rings of `slots` steps of `step_ms` each (both at least 1).
    pub fn new(step_ms: u64, slots: usize) -> Self {
        History {
            step_ms: step_ms.max(1),
            slots: slots.max(1),
            series: Vec::new(),
        }
    }

    /// The slot length.
    pub fn step_ms(&self) -> u64 {
        self.step_ms
    }

    /// Records `value` of `device`/`field` measured at `ts_ms` (the last
    /// sample in a slot wins). Returns `false` when the series cap is
    /// reached and this field has no ring.
    pub fn record(&mut self, device: &str, field: &'static str, ts_ms: u64, value: f64) -> bool {
        let slot = ts_ms / self.step_ms;
        let index = match self.find(device, field) {
            Some(i) => i,
            None if self.series.len() < crate::limits::MAX_HISTORY_SERIES => {
                self.series.push(Series {
                    device: device.to_owned(),
                    field,
                    newest: slot,
                    values: vec![EMPTY; self.slots].into_boxed_slice(),
                    dirty: false,
                });
                self.series.len() - 1
            }
            None => return false,
        };
        let series = &mut self.series[index];
        let len = series.values.len() as u64;
        if slot + len <= series.newest {
            return true; // older than the ring reaches
        }
        if slot > series.newest {
            // Clear the slots skipped since the newest (at most one lap).
            let gap = (slot - series.newest).min(len);
            for s in (slot + 1 - gap)..=slot {
                series.values[(s % len) as usize] = EMPTY;
            }
            series.newest = slot;
        }
        series.values[(slot % len) as usize] = value as f32;
        series.dirty = true;
        true
    }

    /// The samples of `device`/`field` from `since_ms` up to `now_ms`.
    pub fn window(&self, device: &str, field: &str, since_ms: u64, now_ms: u64) -> Option<Window> {
        let series = &self.series[self.find(device, field)?];
        let len = series.values.len() as u64;
        let last = (now_ms / self.step_ms).max(series.newest);
        let first = (since_ms / self.step_ms).max(last + 1 - len.min(last + 1));
        let values = (first..=last)
            .map(|slot| {
                if slot > series.newest || slot + len <= series.newest {
                    return None;
                }
                let v = series.values[(slot % len) as usize];
                (!v.is_nan()).then_some(v)
            })
            .collect();
        Some(Window {
            start_ms: first * self.step_ms,
            step_ms: self.step_ms,
            values,
        })
    }

    /// The fields recorded for `device`, in the order first seen.
    pub fn fields(&self, device: &str) -> Vec<&'static str> {
        self.series
            .iter()
            .filter(|s| s.device == device)
            .map(|s| s.field)
            .collect()
    }

    /// The series changed since the last call, as `(key, blob)` pairs
    /// (`device/field`), marking them clean.
    pub fn take_dirty(&mut self) -> Vec<(String, Vec<u8>)> {
        let step_ms = self.step_ms;
        self.series
            .iter_mut()
            .filter(|s| s.dirty)
            .map(|s| {
                s.dirty = false;
                (format!("{}/{}", s.device, s.field), s.to_bytes(step_ms))
            })
            .collect()
    }

    /// Restores a series saved by [`History::take_dirty`] under `key`, if
    /// `field` is still one of its device's (`known`) fields and the blob
    /// was made with the same step; anything else is skipped.
    pub fn restore(&mut self, key: &str, blob: &[u8], known: &[&'static str]) -> bool {
        let Some((device, field)) = key.rsplit_once('/') else {
            return false;
        };
        let Some(field) = known.iter().copied().find(|k| *k == field) else {
            return false;
        };
        let Some((step_ms, newest, values)) = Series::parse(blob) else {
            return false;
        };
        if step_ms != self.step_ms || self.find(device, field).is_some() {
            return false;
        }
        let mut restored = 0;
        let oldest = newest.saturating_sub(values.len() as u64 - 1);
        for (i, v) in values.iter().enumerate() {
            let slot = oldest + i as u64;
            if !v.is_nan() && self.record(device, field, slot * step_ms, f64::from(*v)) {
                restored += 1;
            }
        }
        if let Some(i) = self.find(device, field) {
            self.series[i].dirty = false;
        }
        restored > 0
    }

    fn find(&self, device: &str, field: &str) -> Option<usize> {
        self.series
            .iter()
            .position(|s| s.field == field && s.device == device)
    }
}

impl Series {
    /// `[version, step_ms u64, newest slot u64, count u32, f32 × count]`,
    /// little-endian, oldest value first.
    fn to_bytes(&self, step_ms: u64) -> Vec<u8> {
        let len = self.values.len() as u64;
        let mut out = Vec::with_capacity(21 + self.values.len() * 4);
        out.push(BLOB_VERSION);
        out.extend_from_slice(&step_ms.to_le_bytes());
        out.extend_from_slice(&self.newest.to_le_bytes());
        out.extend_from_slice(&(self.values.len() as u32).to_le_bytes());
        for slot in (self.newest + 1)..=(self.newest + len) {
            out.extend_from_slice(&self.values[(slot % len) as usize].to_le_bytes());
        }
        out
    }

    fn parse(blob: &[u8]) -> Option<(u64, u64, Vec<f32>)> {
        let (&version, rest) = blob.split_first()?;
        if version != BLOB_VERSION || rest.len() < 20 {
            return None;
        }
        let step_ms = u64::from_le_bytes(rest[0..8].try_into().ok()?);
        let newest = u64::from_le_bytes(rest[8..16].try_into().ok()?);
        let count = u32::from_le_bytes(rest[16..20].try_into().ok()?) as usize;
        let data = &rest[20..];
        if count == 0 || data.len() != count * 4 || count > crate::limits::MAX_HISTORY_SLOTS {
            return None;
        }
        let values = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Some((step_ms, newest, values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    #[test]
    fn a_ring_keeps_the_last_sample_per_slot_and_forgets_what_it_cannot_reach() {
        let mut h = History::new(MIN, 3);
        let t0 = 1_000 * MIN;
        h.record("room", "temperature_c", t0, 20.0);
        h.record("room", "temperature_c", t0 + 10, 21.0); // same slot: last wins
        h.record("room", "temperature_c", t0 + 2 * MIN, 23.0); // skips a slot
        let w = h.window("room", "temperature_c", 0, t0 + 2 * MIN).unwrap();
        assert_eq!(w.start_ms, t0);
        assert_eq!(w.values, [Some(21.0), None, Some(23.0)]);
        // Five minutes later only the newest three slots exist, all empty
        // but the one written.
        h.record("room", "temperature_c", t0 + 5 * MIN, 25.0);
        let w = h.window("room", "temperature_c", 0, t0 + 5 * MIN).unwrap();
        assert_eq!(w.start_ms, t0 + 3 * MIN);
        assert_eq!(w.values, [None, None, Some(25.0)]);
        // Too old to fit: ignored, nothing else disturbed.
        h.record("room", "temperature_c", t0, 99.0);
        assert_eq!(
            h.window("room", "temperature_c", 0, t0 + 5 * MIN)
                .unwrap()
                .values,
            [None, None, Some(25.0)]
        );
        // `since` trims the front; `now` past the newest pads with None.
        let w = h
            .window("room", "temperature_c", t0 + 4 * MIN, t0 + 6 * MIN)
            .unwrap();
        assert_eq!(w.start_ms, t0 + 4 * MIN);
        assert_eq!(w.values, [None, Some(25.0), None]);
        assert!(h.window("room", "humidity_pct", 0, t0).is_none());
    }

    #[test]
    fn the_series_cap_holds() {
        let mut h = History::new(MIN, 2);
        for i in 0..crate::limits::MAX_HISTORY_SERIES {
            assert!(h.record(&format!("s{i}"), "temperature_c", MIN, 1.0));
        }
        assert!(!h.record("one-too-many", "temperature_c", MIN, 1.0));
        assert!(h.record("s0", "temperature_c", 2 * MIN, 2.0));
    }

    #[test]
    fn dirty_series_round_trip_through_their_blobs() {
        let mut h = History::new(MIN, 4);
        h.record("room", "temperature_c", 10 * MIN, 20.5);
        h.record("room", "temperature_c", 12 * MIN, 22.5);
        h.record("room", "humidity_pct", 12 * MIN, 50.0);
        let blobs = h.take_dirty();
        assert_eq!(blobs.len(), 2);
        assert!(h.take_dirty().is_empty(), "clean after a snapshot");
        let mut back = History::new(MIN, 4);
        let known = ["temperature_c", "humidity_pct"];
        for (key, blob) in &blobs {
            assert!(back.restore(key, blob, &known), "{key}");
        }
        assert_eq!(
            back.window("room", "temperature_c", 0, 12 * MIN).unwrap(),
            h.window("room", "temperature_c", 0, 12 * MIN).unwrap()
        );
        assert!(back.take_dirty().is_empty());
        // A field the device no longer has, another step, or junk: skipped.
        let mut other = History::new(MIN, 4);
        assert!(!other.restore(&blobs[0].0, &blobs[0].1, &["pressure_hpa"]));
        let mut other = History::new(2 * MIN, 4);
        assert!(!other.restore(&blobs[0].0, &blobs[0].1, &known));
        assert!(!other.restore("room/temperature_c", &[1, 2, 3], &known));
        assert!(!other.restore("nokey", &blobs[0].1, &known));
    }
}
