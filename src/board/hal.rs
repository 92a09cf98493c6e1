//! The hardware seam: the [`Board`] trait and the small value types it speaks.
//!
//! Backends work in BCM pin numbers and levels; names, polarity, rate limits
//! and approvals live above this trait (in [`crate::board::devices`]).

use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::error::BoardError;

/// A logic level on a pin (electrical, before any active-low inversion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// 0 V.
    Low,
    /// 3.3 V.
    High,
}

impl Level {
    /// The opposite level.
    pub fn toggled(self) -> Level {
        match self {
            Level::Low => Level::High,
            Level::High => Level::Low,
        }
    }

    /// `true` for [`Level::High`].
    pub fn is_high(self) -> bool {
        self == Level::High
    }

    /// [`Level::High`] for `true`.
    pub fn from_bool(high: bool) -> Level {
        if high { Level::High } else { Level::Low }
    }
}

/// Internal bias resistor of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pull {
    /// No bias (external resistor or a driven signal such as a PIR output).
    #[default]
    None,
    /// Pull-up to 3.3 V (buttons to ground).
    Up,
    /// Pull-down to ground.
    Down,
}

/// Which transitions an input reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    /// Low → high only.
    Rising,
    /// High → low only.
    Falling,
    /// Both directions.
    #[default]
    Both,
}

impl EdgeKind {
    /// Whether a transition to `new_level` is reported under this setting.
    pub fn matches(self, new_level: Level) -> bool {
        match self {
            EdgeKind::Both => true,
            EdgeKind::Rising => new_level == Level::High,
            EdgeKind::Falling => new_level == Level::Low,
        }
    }
}

/// One transition as seen on the wire: `rising` or `falling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edge {
    /// Low → high.
    Rising,
    /// High → low.
    Falling,
}

impl Edge {
    /// The edge that leads to `level`.
    pub fn to_level(level: Level) -> Edge {
        match level {
            Level::High => Edge::Rising,
            Level::Low => Edge::Falling,
        }
    }
}

/// How a pin is configured before use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinMode {
    /// An input with the given bias.
    Input(Pull),
    /// An output driven to the given initial level.
    Output(Level),
}

/// A debounced edge event for a named device, ready to publish as a node event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeEvent {
    /// Device name (e.g. `pir1`).
    pub device: String,
    /// Electrical edge (not inverted for active-low devices).
    pub edge: Edge,
    /// Logical state after the edge: `true` = active (pressed, motion).
    pub active: bool,
    /// Wall-clock time of the event, milliseconds since the Unix epoch.
    pub ts: u64,
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct SinkTarget {
    device: String,
    edges: EdgeKind,
    active_low: bool,
    debounce: Duration,
    /// Time and level of the last accepted transition.
    last_accepted: Mutex<Option<(Duration, Level)>>,
}

/// Where a backend delivers raw edges of one watched pin.
///
/// It debounces (an edge closer than `debounce` to the previously accepted
/// edge of the same pin is ignored), filters by [`EdgeKind`], and `try_send`s
/// into a bounded channel; when the channel is full the event is dropped and
/// counted (like a kernel FIFO overflow), never blocking the backend's thread.
#[derive(Clone)]
pub struct EdgeSink {
    target: Arc<SinkTarget>,
    tx: mpsc::Sender<EdgeEvent>,
    drops: Arc<AtomicU64>,
    debounced: Arc<AtomicU64>,
}

impl fmt::Debug for EdgeSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EdgeSink")
            .field("device", &self.target.device)
            .finish_non_exhaustive()
    }
}

impl EdgeSink {
    /// A sink for `device` delivering into `tx`; drops and debounced edges are
    /// counted into the shared counters.
    pub fn new(
        device: &str,
        edges: EdgeKind,
        active_low: bool,
        debounce: Duration,
        tx: mpsc::Sender<EdgeEvent>,
        drops: Arc<AtomicU64>,
        debounced: Arc<AtomicU64>,
    ) -> Self {
        EdgeSink {
            target: Arc::new(SinkTarget {
                device: device.to_string(),
                edges,
                active_low,
                debounce,
                last_accepted: Mutex::new(None),
            }),
            tx,
            drops,
            debounced,
        }
    }

    /// The device this sink reports for.
    pub fn device(&self) -> &str {
        &self.target.device
    }

    /// The debounce window the sink applies (backends with kernel debounce
    /// may pass it on as well).
    pub fn debounce(&self) -> Duration {
        self.target.debounce
    }

    /// The edge filter of this sink.
    pub fn edges(&self) -> EdgeKind {
        self.target.edges
    }

    /// Offers one raw transition to `new_level` that happened at `at`
    /// (leading-edge debounce: the first transition of a burst is reported,
    /// later ones inside the window are not; on rppal the kernel's own
    /// debounce filters before this).
    /// `at` is a monotonic timestamp from the backend: kernel time since
    /// boot, or the simulator's script time. Returns whether it was queued.
    pub fn push(&self, new_level: Level, at: Duration) -> bool {
        {
            let mut last = match self.target.last_accepted.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some((prev, prev_level)) = *last {
                let in_window = at >= prev && at - prev < self.target.debounce;
                // Inside the window it is bounce; outside it, a "transition"
                // to the level already reported means the opposite edge was
                // swallowed as bounce, so there is nothing new to report.
                if in_window || new_level == prev_level {
                    self.debounced.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
            }
            *last = Some((at, new_level));
        }
        if !self.target.edges.matches(new_level) {
            return false;
        }
        let event = EdgeEvent {
            device: self.target.device.clone(),
            edge: Edge::to_level(new_level),
            active: new_level.is_high() != self.target.active_low,
            ts: now_ms(),
        };
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(_) => {
                self.drops.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// The root prefix under which file-based sensors are read (default `/`).
///
/// Relative sensor paths such as `sys/class/thermal/thermal_zone0/temp` are
/// joined onto it; tests point it at a temp dir holding the same tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysRoot(PathBuf);

impl Default for SysRoot {
    fn default() -> Self {
        SysRoot(PathBuf::from("/"))
    }
}

impl SysRoot {
    /// A root at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SysRoot(path.into())
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Joins a relative path onto the root, refusing absolute paths and `..`
    /// so that config cannot reach outside the root.
    pub fn join(&self, rel: &str) -> Result<PathBuf, BoardError> {
        let rel_path = Path::new(rel);
        if rel_path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(BoardError::invalid_params(format!(
                "sensor path `{rel}` must be relative and stay inside the sysfs root"
            )));
        }
        Ok(self.0.join(rel_path))
    }

    /// Reads a small text file under the root. A missing file is
    /// [`BoardError::SensorMissing`]; other I/O errors are
    /// [`BoardError::Hardware`].
    pub fn read(&self, rel: &str) -> Result<String, BoardError> {
        let path = self.join(rel)?;
        read_small_file(&path)
    }

    /// Lists the entry names of a directory under the root (sorted, at most
    /// [`MAX_DIR_ENTRIES`]). A missing directory is
    /// [`BoardError::SensorMissing`].
    pub fn list(&self, rel: &str) -> Result<Vec<String>, BoardError> {
        let path = self.join(rel)?;
        let entries = std::fs::read_dir(&path).map_err(|e| io_to_board(e, &path))?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .take(MAX_DIR_ENTRIES)
            .collect();
        names.sort();
        Ok(names)
    }

    /// Whether the file or directory exists under the root.
    pub fn exists(&self, rel: &str) -> bool {
        self.join(rel).map(|p| p.exists()).unwrap_or(false)
    }
}

/// Most entries a directory listing returns (sysfs directories searched for
/// sensors are small; this bounds a hostile or odd tree).
pub const MAX_DIR_ENTRIES: usize = 256;

/// Largest sensor file read (sysfs attributes are one page at most).
pub const MAX_SENSOR_FILE_BYTES: u64 = 4096;

fn read_small_file(path: &Path) -> Result<String, BoardError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| io_to_board(e, path))?;
    let mut text = String::new();
    file.take(MAX_SENSOR_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| io_to_board(e, path))?;
    Ok(text)
}

fn io_to_board(e: io::Error, path: &Path) -> BoardError {
    if e.kind() == io::ErrorKind::NotFound {
        BoardError::SensorMissing {
            name: path.display().to_string(),
            detail: format!("{} does not exist", path.display()),
        }
    } else {
        BoardError::Hardware(format!("reading {}: {e}", path.display()))
    }
}

/// The error type of every I2C bus handed out by a [`Board`].
///
/// It implements [`embedded_hal::i2c::Error`], so drivers generic over
/// `embedded_hal::i2c::I2c` see a proper [`ErrorKind`] (a NACK stays a NACK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I2cError {
    /// The embedded-hal classification.
    pub kind: ErrorKind,
    /// Backend detail (OS error text).
    pub detail: String,
}

impl I2cError {
    /// A NACK on the address byte.
    pub fn nack() -> Self {
        I2cError {
            kind: ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address),
            detail: "no acknowledge".into(),
        }
    }
}

impl fmt::Display for I2cError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.kind, self.detail)
    }
}

impl std::error::Error for I2cError {}

impl embedded_hal::i2c::Error for I2cError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// A type-erased embedded-hal 1.0 I2C bus. Drivers take `&mut *bus`, which
/// implements `embedded_hal::i2c::I2c` through embedded-hal's `&mut T` impl.
pub type DynI2c = Box<dyn embedded_hal::i2c::I2c<Error = I2cError> + Send>;

/// Maps any embedded-hal I2C error into a [`BoardError`]: a NACK becomes
/// [`BoardError::I2cNack`], everything else [`BoardError::Hardware`].
pub fn i2c_error<E: embedded_hal::i2c::Error>(bus: u8, address: u16, e: E) -> BoardError {
    match e.kind() {
        ErrorKind::NoAcknowledge(_) => BoardError::I2cNack { bus, address },
        other => BoardError::Hardware(format!(
            "I2C bus {bus} address 0x{address:02x}: {other} ({e:?})"
        )),
    }
}

/// The hardware a board exposes, in BCM pin numbers.
///
/// Implementations: [`crate::board::sim::SimBoard`] everywhere and
/// `RppalBoard` on Linux ARM. Methods are synchronous and may block briefly
/// (I2C, file reads); async callers run them on the board's own threads
/// ([`crate::board::worker`]).
pub trait Board: Send + Sync + 'static {
    /// Backend name: `sim` or `rppal`.
    fn backend(&self) -> &'static str;

    /// Human-readable hardware model (device-tree model or "simulated").
    fn model(&self) -> String;

    /// Configures a pin as input or output. Must be called before other use.
    fn gpio_setup(&self, pin: u8, mode: PinMode) -> Result<(), BoardError>;

    /// Reads the electrical level of a configured pin (an output reads back
    /// the level last written).
    fn gpio_read(&self, pin: u8) -> Result<Level, BoardError>;

    /// Drives a configured output pin.
    fn gpio_write(&self, pin: u8, level: Level) -> Result<(), BoardError>;

    /// Drives `level` for `duration`, then the opposite level. Blocks the
    /// calling thread for `duration`.
    fn gpio_pulse(&self, pin: u8, level: Level, duration: Duration) -> Result<(), BoardError> {
        self.gpio_write(pin, level)?;
        std::thread::sleep(duration);
        self.gpio_write(pin, level.toggled())
    }

    /// Starts delivering the edges of a configured input to `sink`.
    fn gpio_watch(&self, pin: u8, sink: EdgeSink) -> Result<(), BoardError>;

    /// Sets a PWM output: `duty` in 0.0..=1.0, `hz` > 0.
    fn pwm_set(&self, pin: u8, duty: f64, hz: f64) -> Result<(), BoardError>;

    /// Opens (or reuses) I2C bus `bus` and hands it out for one transaction
    /// sequence; the guard serialises users of the same bus.
    fn i2c(&self, bus: u8) -> Result<I2cGuard<'_>, BoardError>;

    /// Reads a file-based sensor attribute relative to the sysfs root.
    fn read_file(&self, rel: &str) -> Result<String, BoardError>;

    /// Lists a directory relative to the sysfs root (used to find sensors
    /// whose path differs between boards and kernels).
    fn list_dir(&self, rel: &str) -> Result<Vec<String>, BoardError> {
        self.sysroot().list(rel)
    }

    /// The sysfs root in use.
    fn sysroot(&self) -> &SysRoot;
}

/// Exclusive access to one I2C bus for the life of the guard.
pub type I2cGuard<'a> = std::sync::MutexGuard<'a, DynI2c>;
