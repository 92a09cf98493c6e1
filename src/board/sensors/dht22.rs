//! DHT22 (AM2302) via the kernel's `dht11` IIO driver (`dtoverlay=dht11`).
//!
//! The driver exposes `in_temp_input` (millidegrees Celsius) and
//! `in_humidityrelative_input` (milli-percent) under
//! `sys/bus/iio/devices/iio:deviceN/`. Reads fail often (the bit-banged
//! protocol is timing-sensitive: EIO/ETIMEDOUT), and the sensor must not be
//! read more than once every 2 s. [`DhtReader`] retries and caches.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::board::error::BoardError;

/// The minimum time between two reads of the sensor (datasheet: 2 s).
pub const MIN_INTERVAL: Duration = Duration::from_secs(2);

/// Attempts per read before the last error is returned.
pub const ATTEMPTS: u32 = 3;

/// A DHT22 measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Temperature in °C.
    pub temperature_c: f64,
    /// Relative humidity in %.
    pub humidity_pct: f64,
}

/// Parses one IIO processed value (an integer in milli-units) into units.
pub fn parse_milli(text: &str, what: &str) -> Result<f64, BoardError> {
    let t = text.trim();
    let v: i64 = t.parse().map_err(|_| BoardError::InvalidReading {
        name: "dht22".into(),
        detail: format!("{what} value `{t}` is not an integer"),
    })?;
    Ok(v as f64 / 1000.0)
}

/// Parses both files and checks the DHT22's ranges (-40..80 °C, 0..100 %).
pub fn parse(temp_text: &str, humidity_text: &str) -> Result<Measurement, BoardError> {
    let temperature_c = parse_milli(temp_text, "in_temp_input")?;
    let humidity_pct = parse_milli(humidity_text, "in_humidityrelative_input")?;
    if !(-40.0..=80.0).contains(&temperature_c) || !(0.0..=100.0).contains(&humidity_pct) {
        return Err(BoardError::InvalidReading {
            name: "dht22".into(),
            detail: format!("{temperature_c} °C / {humidity_pct} % is outside the DHT22 range"),
        });
    }
    Ok(Measurement {
        temperature_c,
        humidity_pct,
    })
}

#[derive(Debug, Default)]
struct State {
    last_attempt: Option<Instant>,
    cached: Option<(Measurement, u64)>,
}

/// A rate-limited, retrying, caching DHT22 reader for one device.
#[derive(Debug)]
pub struct DhtReader {
    min_interval: Duration,
    attempts: u32,
    state: Mutex<State>,
}

impl Default for DhtReader {
    fn default() -> Self {
        DhtReader::new(MIN_INTERVAL, ATTEMPTS)
    }
}

impl DhtReader {
    /// A reader that touches the sensor at most once per `min_interval` and
    /// tries up to `attempts` times (waiting `min_interval` between tries).
    pub fn new(min_interval: Duration, attempts: u32) -> Self {
        DhtReader {
            min_interval,
            attempts: attempts.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Returns a fresh measurement, or the cached one (with the time it was
    /// taken, ms since the epoch) if the sensor was read less than
    /// `min_interval` ago. `read_once` reads and parses the files once;
    /// `now_ms` stamps fresh values. Blocks while waiting between retries.
    pub fn read(
        &self,
        mut read_once: impl FnMut() -> Result<Measurement, BoardError>,
        now_ms: impl Fn() -> u64,
    ) -> Result<(Measurement, u64), BoardError> {
        let mut state = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let (Some(last), Some(cached)) = (state.last_attempt, state.cached)
            && last.elapsed() < self.min_interval
        {
            return Ok(cached);
        }
        let mut last_err = None;
        for attempt in 0..self.attempts {
            if let Some(last) = state.last_attempt {
                let since = last.elapsed();
                if since < self.min_interval {
                    std::thread::sleep(self.min_interval - since);
                }
            }
            state.last_attempt = Some(Instant::now());
            match read_once() {
                Ok(m) => {
                    let stamped = (m, now_ms());
                    state.cached = Some(stamped);
                    return Ok(stamped);
                }
                // A missing file will not appear by retrying.
                Err(e @ BoardError::SensorMissing { .. }) => return Err(e),
                Err(e) => {
                    tracing::debug!(attempt, error = %e, "DHT22 read failed");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| BoardError::Hardware("DHT22: no attempt made".into())))
    }
}
