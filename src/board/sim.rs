//! The simulated board: deterministic, scriptable, and the default off a Pi.
//!
//! - GPIO: in-memory levels. Writes to outputs read back; tests and demos
//!   inject input transitions with explicit timestamps ([`SimBoard::inject`]),
//!   which flow through the same [`EdgeSink`] (debounce, bounded channel,
//!   drop counting) as real interrupts.
//! - PWM: the last duty/frequency per pin, readable with [`SimBoard::pwm`].
//! - I2C: register models of a BME280 (the datasheet calibration) and an
//!   SHT31; an address with no model NACKs like a real bus.
//! - Files: an in-memory demo tree (thermal zone, throttled flags, a DS18B20,
//!   DHT22 IIO files), or, when a sysfs root is configured, the real files
//!   under it. [`SimBoard::set_file`] overrides either.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use embedded_hal::i2c::{ErrorType, I2c, Operation};

use super::error::BoardError;
use super::hal::{Board, DynI2c, EdgeSink, I2cError, I2cGuard, Level, PinMode, SysRoot};
use super::profile::BoardSpec;
use super::sensors::{bme280, sht31};

/// Highest pin number the simulator models (exclusive).
pub const SIM_PINS: usize = 64;

#[derive(Debug, Clone, Default)]
struct SimPin {
    mode: Option<PinMode>,
    level: Option<Level>,
    writes: u64,
    pwm: Option<(f64, f64)>,
    sink: Option<EdgeSink>,
}

/// A simulated I2C device.
#[derive(Debug, Clone)]
pub enum SimI2cDevice {
    /// A BME280 (or BMP280) register file.
    Bme280 {
        /// 256 registers, addressed by the register pointer.
        regs: Box<[u8; 256]>,
        /// The register pointer.
        pointer: u8,
    },
    /// An SHT31 answering single-shot measurements.
    Sht31 {
        /// The 6 bytes it answers after a measurement command.
        answer: [u8; 6],
        /// A measurement command was received and not yet read.
        pending: bool,
    },
}

impl SimI2cDevice {
    /// A BME280 with the datasheet example calibration and the given raw ADC
    /// values (see [`sim_bme280_calibration`]).
    pub fn bme280(adc_t: i32, adc_p: i32, adc_h: i32) -> Self {
        let mut regs = Box::new([0u8; 256]);
        let (b1, b2) = sim_bme280_calibration().to_registers();
        regs[bme280::REG_CALIB_00 as usize..bme280::REG_CALIB_00 as usize + 26]
            .copy_from_slice(&b1);
        regs[bme280::REG_CALIB_26 as usize..bme280::REG_CALIB_26 as usize + 7].copy_from_slice(&b2);
        regs[bme280::REG_CHIP_ID as usize] = bme280::CHIP_ID_BME280;
        let d = bme280::REG_DATA as usize;
        regs[d] = (adc_p >> 12) as u8;
        regs[d + 1] = (adc_p >> 4) as u8;
        regs[d + 2] = ((adc_p & 0xF) << 4) as u8;
        regs[d + 3] = (adc_t >> 12) as u8;
        regs[d + 4] = (adc_t >> 4) as u8;
        regs[d + 5] = ((adc_t & 0xF) << 4) as u8;
        regs[d + 6] = (adc_h >> 8) as u8;
        regs[d + 7] = adc_h as u8;
        SimI2cDevice::Bme280 { regs, pointer: 0 }
    }

    /// An SHT31 answering the given raw words (with correct CRCs).
    pub fn sht31(raw_t: u16, raw_h: u16) -> Self {
        SimI2cDevice::Sht31 {
            answer: sht31::encode(raw_t, raw_h),
            pending: false,
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<(), I2cError> {
        match self {
            SimI2cDevice::Bme280 { regs, pointer } => {
                match data {
                    [] => {}
                    [reg] => *pointer = *reg,
                    pairs => {
                        for pair in pairs.chunks(2) {
                            if let [reg, value] = pair {
                                // Writes to ctrl registers are accepted; the
                                // "measurement" completes at once.
                                if *reg != bme280::REG_STATUS {
                                    regs[*reg as usize] = *value;
                                }
                            }
                        }
                    }
                }
                Ok(())
            }
            SimI2cDevice::Sht31 { pending, .. } => {
                if data == sht31::CMD_SINGLE_SHOT_HIGH {
                    *pending = true;
                }
                Ok(())
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), I2cError> {
        match self {
            SimI2cDevice::Bme280 { regs, pointer } => {
                for b in buf.iter_mut() {
                    *b = regs[*pointer as usize];
                    *pointer = pointer.wrapping_add(1);
                }
                Ok(())
            }
            SimI2cDevice::Sht31 { answer, pending } => {
                // A real SHT31 NACKs a read header when no data is ready.
                if !*pending {
                    return Err(I2cError::nack());
                }
                *pending = false;
                for (b, a) in buf.iter_mut().zip(answer.iter()) {
                    *b = *a;
                }
                Ok(())
            }
        }
    }
}

/// The calibration the simulated BME280 carries: the BMP280 datasheet's
/// example `dig_T*`/`dig_P*` values and typical `dig_H*` values.
pub fn sim_bme280_calibration() -> bme280::Calibration {
    bme280::Calibration {
        t1: 27504,
        t2: 26435,
        t3: -1000,
        p1: 36477,
        p2: -10685,
        p3: 3024,
        p4: 2855,
        p5: 140,
        p6: -7,
        p7: 15500,
        p8: -14600,
        p9: 6000,
        h1: 75,
        h2: 362,
        h3: 0,
        h4: 313,
        h5: 50,
        h6: 30,
    }
}

/// All simulated I2C devices, keyed by `(bus, address)`.
type SimI2cMap = Arc<Mutex<BTreeMap<(u8, u8), SimI2cDevice>>>;

struct SimI2cBus {
    bus: u8,
    devices: SimI2cMap,
}

impl ErrorType for SimI2cBus {
    type Error = I2cError;
}

impl I2c for SimI2cBus {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        let mut map = lock(&self.devices);
        let dev = map
            .get_mut(&(self.bus, address))
            .ok_or_else(I2cError::nack)?;
        for op in operations {
            match op {
                Operation::Write(data) => dev.write(data)?,
                Operation::Read(buf) => dev.read(buf)?,
            }
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// One step of a scripted input sequence: after `after` (from the previous
/// step), drive `pin` to `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimStep {
    /// Delay since the previous step.
    pub after: Duration,
    /// BCM pin (must be a configured input).
    pub pin: u8,
    /// Level to drive.
    pub level: Level,
}

/// The simulated board.
pub struct SimBoard {
    pins: Mutex<Vec<SimPin>>,
    files: Mutex<BTreeMap<String, String>>,
    root: Option<SysRoot>,
    default_root: SysRoot,
    i2c_devices: SimI2cMap,
    buses: Vec<(u8, Mutex<DynI2c>)>,
    /// Sensor fields forced by `sim.set`: device → (field, value).
    forced: Mutex<BTreeMap<String, Vec<(&'static str, f64)>>>,
}

impl std::fmt::Debug for SimBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimBoard")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// The demo files the simulator serves when no sysfs root is configured.
pub const DEMO_FILES: &[(&str, &str)] = &[
    ("sys/class/thermal/thermal_zone0/temp", "48312\n"),
    (
        "sys/devices/platform/soc/soc:firmware/get_throttled",
        "50000\n",
    ),
    (
        "sys/bus/w1/devices/28-0000075c293f/w1_slave",
        "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n",
    ),
    ("sys/bus/iio/devices/iio:device0/in_temp_input", "18300\n"),
    (
        "sys/bus/iio/devices/iio:device0/in_humidityrelative_input",
        "61200\n",
    ),
];

/// Raw BME280 ADC values of the demo `room` sensor: the datasheet example
/// (25.08 °C, 1006.53 hPa) and a humidity reading.
pub const DEMO_BME280_RAW: (i32, i32, i32) = (519_888, 415_148, 30_000);

/// Raw SHT31 words of the demo `shed` sensor (~21.5 °C, ~48 %RH).
pub const DEMO_SHT31_RAW: (u16, u16) = (24_903, 31_457);

impl SimBoard {
    /// An empty simulated board: no files (unless `root` is given), no I2C
    /// devices, buses `buses`.
    pub fn new(root: Option<SysRoot>, buses: &[u8]) -> Self {
        let i2c_devices: SimI2cMap = Arc::new(Mutex::new(BTreeMap::new()));
        let buses = buses
            .iter()
            .map(|&bus| {
                let b: DynI2c = Box::new(SimI2cBus {
                    bus,
                    devices: Arc::clone(&i2c_devices),
                });
                (bus, Mutex::new(b))
            })
            .collect();
        SimBoard {
            pins: Mutex::new(vec![SimPin::default(); SIM_PINS]),
            files: Mutex::new(BTreeMap::new()),
            root,
            default_root: SysRoot::default(),
            i2c_devices,
            buses,
            forced: Mutex::new(BTreeMap::new()),
        }
    }

    /// A simulated board for a resolved spec: its I2C buses, a model of every
    /// declared BME280/BMP280/SHT31 (demo raw values), and the demo files
    /// unless the spec sets a sysfs root.
    pub fn for_spec(spec: &BoardSpec) -> Self {
        let buses: Vec<u8> = spec.profile.i2c.iter().map(|b| b.bus).collect();
        let board = SimBoard::new(spec.sysroot.clone(), &buses);
        if spec.sysroot.is_none() {
            let mut files = lock(&board.files);
            for (path, text) in DEMO_FILES {
                files.insert((*path).to_string(), (*text).to_string());
            }
        }
        for d in &spec.devices {
            match d.kind {
                super::profile::DeviceKind::Bme280 { bus, address, .. } => {
                    let (t, p, h) = DEMO_BME280_RAW;
                    board.set_i2c_device(bus, address, SimI2cDevice::bme280(t, p, h));
                }
                super::profile::DeviceKind::Sht31 { bus, address } => {
                    let (t, h) = DEMO_SHT31_RAW;
                    board.set_i2c_device(bus, address, SimI2cDevice::sht31(t, h));
                }
                _ => {}
            }
        }
        board
    }

    /// Sets (or replaces) a simulated file, relative to the root.
    pub fn set_file(&self, rel: &str, text: &str) {
        lock(&self.files).insert(rel.to_string(), text.to_string());
    }

    /// Removes a simulated file (reads then fail as a missing sensor).
    pub fn remove_file(&self, rel: &str) {
        lock(&self.files).remove(rel);
    }

    /// Places (or replaces) a device model at `address` on `bus`.
    pub fn set_i2c_device(&self, bus: u8, address: u8, device: SimI2cDevice) {
        lock(&self.i2c_devices).insert((bus, address), device);
    }

    /// Removes the device at `address` on `bus`: it will NACK.
    pub fn remove_i2c_device(&self, bus: u8, address: u8) {
        lock(&self.i2c_devices).remove(&(bus, address));
    }

    /// Drives an input pin to `level` at script time `at`, as if the outside
    /// world changed it. A change of level is offered to the pin's edge sink
    /// (if watched). Returns whether an event was queued.
    pub fn inject(&self, pin: u8, level: Level, at: Duration) -> Result<bool, BoardError> {
        let sink = {
            let mut pins = lock(&self.pins);
            let p = pins
                .get_mut(pin as usize)
                .ok_or_else(|| BoardError::Hardware(format!("sim: no pin {pin}")))?;
            if !matches!(p.mode, Some(PinMode::Input(_))) {
                return Err(BoardError::Hardware(format!(
                    "sim: pin {pin} is not configured as an input"
                )));
            }
            let changed = p.level != Some(level);
            p.level = Some(level);
            if changed { p.sink.clone() } else { None }
        };
        Ok(sink.map(|s| s.push(level, at)).unwrap_or(false))
    }

    /// Drives an input pin to `level` now, as if the outside world changed
    /// it (`sim.set`); debounced like a wired input against the simulator's
    /// own monotonic clock.
    pub fn set_input(&self, pin: u8, level: Level) -> Result<bool, BoardError> {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let at = EPOCH.get_or_init(std::time::Instant::now).elapsed();
        self.inject(pin, level, at)
    }

    /// Forces sensor `device`'s `field` to `value` in every later read
    /// (`sim.set`), until set again.
    pub fn force(&self, device: &str, field: &'static str, value: f64) {
        let mut forced = lock(&self.forced);
        let fields = forced.entry(device.to_string()).or_default();
        match fields.iter_mut().find(|(f, _)| *f == field) {
            Some(slot) => slot.1 = value,
            None => fields.push((field, value)),
        }
    }

    /// The fields forced on sensor `device`.
    pub fn forced(&self, device: &str) -> Vec<(&'static str, f64)> {
        lock(&self.forced).get(device).cloned().unwrap_or_default()
    }

    /// Plays a script of input changes on the tokio clock (a demo's motion
    /// sensor, a test's button presses), `repeat` times (0 = forever). Steps
    /// are stamped with script time, so debouncing behaves as on hardware.
    /// Stops at the first step aimed at a pin that is not an input.
    pub fn play(
        self: Arc<Self>,
        steps: Vec<SimStep>,
        repeat: u32,
    ) -> tokio::task::JoinHandle<Result<(), BoardError>> {
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let mut round = 0u32;
            while repeat == 0 || round < repeat {
                round += 1;
                for step in &steps {
                    tokio::time::sleep(step.after).await;
                    self.inject(step.pin, step.level, start.elapsed())?;
                }
                if steps.iter().all(|s| s.after.is_zero()) {
                    // A script with no delays would spin forever.
                    break;
                }
            }
            Ok(())
        })
    }

    /// The last PWM setting `(duty, hz)` of a pin.
    pub fn pwm(&self, pin: u8) -> Option<(f64, f64)> {
        lock(&self.pins).get(pin as usize).and_then(|p| p.pwm)
    }

    /// How many times a pin was written (including pulse edges).
    pub fn writes(&self, pin: u8) -> u64 {
        lock(&self.pins)
            .get(pin as usize)
            .map(|p| p.writes)
            .unwrap_or(0)
    }

    /// The current level of a pin, configured or not.
    pub fn level(&self, pin: u8) -> Option<Level> {
        lock(&self.pins).get(pin as usize).and_then(|p| p.level)
    }

    fn with_pin<T>(
        &self,
        pin: u8,
        f: impl FnOnce(&mut SimPin) -> Result<T, BoardError>,
    ) -> Result<T, BoardError> {
        let mut pins = lock(&self.pins);
        let p = pins
            .get_mut(pin as usize)
            .ok_or_else(|| BoardError::Hardware(format!("sim: pin {pin} is not available")))?;
        f(p)
    }
}

impl Board for SimBoard {
    fn backend(&self) -> &'static str {
        "sim"
    }

    fn model(&self) -> String {
        "pinclaw simulated board".to_string()
    }

    fn gpio_setup(&self, pin: u8, mode: PinMode) -> Result<(), BoardError> {
        self.with_pin(pin, |p| {
            p.mode = Some(mode);
            p.level = Some(match mode {
                PinMode::Output(level) => level,
                PinMode::Input(super::hal::Pull::Down) => Level::Low,
                // Pull-up, or a floating input the sim reads as idle high.
                PinMode::Input(super::hal::Pull::Up) => Level::High,
                PinMode::Input(super::hal::Pull::None) => Level::Low,
            });
            Ok(())
        })
    }

    fn gpio_read(&self, pin: u8) -> Result<Level, BoardError> {
        self.with_pin(pin, |p| {
            if p.mode.is_none() {
                return Err(BoardError::Hardware(format!(
                    "sim: pin {pin} is not configured"
                )));
            }
            Ok(p.level.unwrap_or(Level::Low))
        })
    }

    fn gpio_write(&self, pin: u8, level: Level) -> Result<(), BoardError> {
        self.with_pin(pin, |p| {
            if !matches!(p.mode, Some(PinMode::Output(_))) {
                return Err(BoardError::Hardware(format!(
                    "sim: pin {pin} is not configured as an output"
                )));
            }
            p.level = Some(level);
            p.writes += 1;
            Ok(())
        })
    }

    fn gpio_watch(&self, pin: u8, sink: EdgeSink) -> Result<(), BoardError> {
        self.with_pin(pin, |p| {
            if !matches!(p.mode, Some(PinMode::Input(_))) {
                return Err(BoardError::Hardware(format!(
                    "sim: pin {pin} is not configured as an input"
                )));
            }
            p.sink = Some(sink);
            Ok(())
        })
    }

    fn pwm_set(&self, pin: u8, duty: f64, hz: f64) -> Result<(), BoardError> {
        self.with_pin(pin, |p| {
            p.pwm = Some((duty, hz));
            p.writes += 1;
            Ok(())
        })
    }

    fn i2c(&self, bus: u8) -> Result<I2cGuard<'_>, BoardError> {
        self.buses
            .iter()
            .find(|(b, _)| *b == bus)
            .map(|(_, m)| lock(m))
            .ok_or_else(|| BoardError::Hardware(format!("sim: no I2C bus {bus}")))
    }

    fn read_file(&self, rel: &str) -> Result<String, BoardError> {
        if let Some(text) = lock(&self.files).get(rel) {
            return Ok(text.clone());
        }
        match &self.root {
            Some(root) => root.read(rel),
            None => Err(BoardError::SensorMissing {
                name: rel.to_string(),
                detail: format!("simulated file {rel} does not exist"),
            }),
        }
    }

    fn list_dir(&self, rel: &str) -> Result<Vec<String>, BoardError> {
        let prefix = format!("{}/", rel.trim_end_matches('/'));
        let mut names: Vec<String> = lock(&self.files)
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('/').next())
            .map(str::to_string)
            .collect();
        let found_in_map = !names.is_empty();
        match &self.root {
            Some(root) => match root.list(rel) {
                Ok(disk) => names.extend(disk),
                Err(e) if !found_in_map => return Err(e),
                Err(_) => {}
            },
            None if !found_in_map => {
                return Err(BoardError::SensorMissing {
                    name: rel.to_string(),
                    detail: format!("simulated directory {rel} does not exist"),
                });
            }
            None => {}
        }
        names.sort();
        names.dedup();
        names.truncate(super::hal::MAX_DIR_ENTRIES);
        Ok(names)
    }

    fn sysroot(&self) -> &SysRoot {
        self.root.as_ref().unwrap_or(&self.default_root)
    }
}
