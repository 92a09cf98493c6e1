//! The gateway's sensor sampling: each declared sensor is read on its own
//! interval (the history step, or sooner where an automation's threshold
//! asks for it), every reading from anyone (the sampler, the agent, the
//! dashboard, `sim.set`) lands in the history rings through the board's
//! change feed, and the rings are snapshotted to the store hourly and at
//! shutdown. The timer sleeps until the next read is due: no polling tick.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::board::BoardChange;
use crate::board::history::History;
use crate::node::BoardCommands;
use crate::store::Store;

/// How often the rings are written to the store.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(3600);

/// The sensor history: the rings behind `sensors.history`.
#[derive(Debug)]
pub struct SensorHistory {
    rings: Mutex<History>,
}

/// Which sensor to read how often.
#[derive(Debug, Clone, Default)]
pub struct SamplePlan {
    every: Vec<(String, Duration)>,
}

impl SamplePlan {
    /// Reads `device` at least every `interval` (the shortest asked for
    /// wins; a zero interval is ignored).
    pub fn read_every(&mut self, device: &str, interval: Duration) {
        if interval.is_zero() {
            return;
        }
        match self.every.iter_mut().find(|(d, _)| d == device) {
            Some((_, every)) => *every = (*every).min(interval),
            None => self.every.push((device.to_owned(), interval)),
        }
    }

    /// Whether nothing is sampled.
    pub fn is_empty(&self) -> bool {
        self.every.is_empty()
    }
}

impl SensorHistory {
    /// Rings of `slots` steps of `step`.
    pub fn new(step: Duration, slots: usize) -> Self {
        SensorHistory {
            rings: Mutex::new(History::new(step.as_millis() as u64, slots)),
        }
    }

    fn rings(&self) -> MutexGuard<'_, History> {
        self.rings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one board change (readings only).
    pub fn record(&self, change: &BoardChange) {
        if let BoardChange::Reading { name, values, ts } = change {
            let mut rings = self.rings();
            // Throttling flags are a state, not a curve.
            for (field, value) in values.iter().filter(|(f, _)| *f != "flags") {
                rings.record(name, field, *ts, *value);
            }
        }
    }

    /// Loads the snapshot saved by the last run, keeping only fields the
    /// board still declares.
    pub async fn restore(&self, store: &Store, board: &BoardCommands) {
        let blobs = match store.load_history().await {
            Ok(blobs) => blobs,
            Err(e) => {
                tracing::warn!("sensor history not restored: {e}");
                return;
            }
        };
        let mut rings = self.rings();
        for (key, blob) in blobs {
            let device = key.rsplit_once('/').map_or("", |(d, _)| d);
            let known: Vec<&'static str> = board
                .spec()
                .device(device)
                .map(|d| crate::board::sensors::reading::fields(&d.kind).collect())
                .unwrap_or_default();
            rings.restore(&key, &blob, &known);
        }
    }

    /// Writes the series changed since the last snapshot.
    pub async fn snapshot(&self, store: &Store) {
        let dirty = self.rings().take_dirty();
        if let Err(e) = store.save_history(dirty).await {
            tracing::warn!("sensor history snapshot failed: {e}");
        }
    }

    /// The `sensors.history` payload for `device` (one field or all) since
    /// `since_ms`: `{name, stepMs, fields: {field: {startMs, values}}}`.
    pub fn payload(&self, device: &str, field: Option<&str>, since_ms: u64, now_ms: u64) -> Value {
        let rings = self.rings();
        let mut fields = Map::new();
        for f in rings.fields(device) {
            if field.is_some_and(|want| want != f) {
                continue;
            }
            if let Some(w) = rings.window(device, f, since_ms, now_ms) {
                fields.insert(
                    f.to_owned(),
                    json!({"startMs": w.start_ms, "values": w.values}),
                );
            }
        }
        json!({"name": device, "stepMs": rings.step_ms(), "fields": fields})
    }
}

/// Reads every planned sensor on its interval and records every reading
/// into `history` (if kept); snapshots it hourly. Runs until aborted.
pub async fn run(
    board: Arc<BoardCommands>,
    plan: SamplePlan,
    history: Option<Arc<SensorHistory>>,
    store: Store,
) {
    let mut changes = board.devices().changes().subscribe();
    let start = Instant::now();
    // Spread the first reads over the first second, not all at once.
    let mut due: Vec<(Instant, &str, Duration)> = plan
        .every
        .iter()
        .enumerate()
        .map(|(i, (d, every))| {
            (
                start + Duration::from_millis(50 * i as u64),
                d.as_str(),
                *every,
            )
        })
        .collect();
    let mut snapshot_at = start + SNAPSHOT_EVERY;
    loop {
        let next = due
            .iter()
            .map(|(at, ..)| *at)
            .min()
            .unwrap_or(snapshot_at)
            .min(snapshot_at);
        tokio::select! {
            change = changes.recv() => match change {
                Ok(change) => {
                    if let Some(history) = &history {
                        history.record(&change);
                    }
                }
                Err(RecvError::Lagged(n)) => tracing::debug!("sensor history missed {n} change(s)"),
                Err(RecvError::Closed) => return,
            },
            _ = tokio::time::sleep_until(next) => {
                let now = Instant::now();
                if now >= snapshot_at {
                    if let Some(history) = &history {
                        history.snapshot(&store).await;
                    }
                    snapshot_at = now + SNAPSHOT_EVERY;
                }
                for (at, device, every) in due.iter_mut() {
                    if *at <= now {
                        // The reading reaches the rings through the feed.
                        if let Err(e) = board.devices().read_sensor(device).await {
                            tracing::debug!(device = %device, "sample failed: {e}");
                        }
                        *at = now + *every;
                    }
                }
            }
        }
    }
}
