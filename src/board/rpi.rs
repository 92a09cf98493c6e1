//! The Raspberry Pi backend over rppal 0.22 (compiled only for Linux ARM).
//!
//! Pins are owned rppal objects kept in a map; edge interrupts use rppal's
//! async interrupt thread per pin, whose callback only `try_send`s into the
//! bounded channel behind the [`EdgeSink`]. Hardware PWM goes through sysfs
//! (the channel must be routed by `dtoverlay=pwm-2chan` or similar). I2C buses
//! are `/dev/i2c-N` opened at start; a bus that cannot be opened answers every
//! transaction with the open error instead of failing the whole board.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};
use rppal::gpio::{Gpio, InputPin, OutputPin, Trigger};
use rppal::pwm::{Channel, Polarity, Pwm};

use super::error::BoardError;
use super::hal::{Board, DynI2c, EdgeSink, I2cError, I2cGuard, Level, PinMode, Pull, SysRoot};
use super::profile::BoardSpec;

enum Slot {
    Input(InputPin),
    Output(OutputPin),
}

/// The Raspberry Pi backend.
pub struct RppalBoard {
    gpio: Gpio,
    model: String,
    pins: Mutex<BTreeMap<u8, Slot>>,
    pwm_channels: Vec<(u8, u8)>,
    pwms: Mutex<BTreeMap<u8, Pwm>>,
    buses: Vec<(u8, Mutex<DynI2c>)>,
    root: SysRoot,
}

impl std::fmt::Debug for RppalBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RppalBoard")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

fn hw(e: impl std::fmt::Display) -> BoardError {
    BoardError::Hardware(e.to_string())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn to_rppal(level: Level) -> rppal::gpio::Level {
    match level {
        Level::Low => rppal::gpio::Level::Low,
        Level::High => rppal::gpio::Level::High,
    }
}

fn from_rppal(level: rppal::gpio::Level) -> Level {
    match level {
        rppal::gpio::Level::Low => Level::Low,
        rppal::gpio::Level::High => Level::High,
    }
}

/// One `/dev/i2c-N` bus (or the error that prevented opening it).
struct RppalI2c {
    bus: u8,
    inner: Result<rppal::i2c::I2c, String>,
}

fn map_i2c_error(e: rppal::i2c::Error) -> I2cError {
    let kind = match &e {
        // i2c-dev reports a missing ACK as ENXIO (bcm2835) or EREMOTEIO.
        rppal::i2c::Error::Io(io) if matches!(io.raw_os_error(), Some(6) | Some(121)) => {
            ErrorKind::NoAcknowledge(NoAcknowledgeSource::Unknown)
        }
        rppal::i2c::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => ErrorKind::Bus,
        _ => ErrorKind::Other,
    };
    I2cError {
        kind,
        detail: e.to_string(),
    }
}

impl ErrorType for RppalI2c {
    type Error = I2cError;
}

impl I2c for RppalI2c {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        let bus = self.bus;
        let i2c = self.inner.as_mut().map_err(|e| I2cError {
            kind: ErrorKind::Other,
            detail: format!("/dev/i2c-{bus} is not available: {e}"),
        })?;
        i2c.set_slave_address(u16::from(address))
            .map_err(map_i2c_error)?;
        // A write followed by a read is done as one combined transfer (repeated
        // start), which register-pointer reads need.
        if let [Operation::Write(w), Operation::Read(r)] = operations {
            return rppal::i2c::I2c::write_read(i2c, w, r).map_err(map_i2c_error);
        }
        for op in operations {
            match op {
                Operation::Read(buf) => {
                    rppal::i2c::I2c::read(i2c, buf).map_err(map_i2c_error)?;
                }
                Operation::Write(buf) => {
                    rppal::i2c::I2c::write(i2c, buf).map_err(map_i2c_error)?;
                }
            }
        }
        Ok(())
    }
}

impl RppalBoard {
    /// Opens the GPIO peripheral and the profile's I2C buses.
    ///
    /// Fails with [`BoardError::Hardware`] when the GPIO peripheral cannot be
    /// opened (not a Pi, no permission on `/dev/gpiomem`).
    pub fn new(spec: &BoardSpec) -> Result<Self, BoardError> {
        let gpio = Gpio::new().map_err(|e| BoardError::Hardware(format!("opening GPIO: {e}")))?;
        let model = spec
            .model
            .clone()
            .or_else(|| {
                rppal::system::DeviceInfo::new()
                    .ok()
                    .map(|d| d.model().to_string())
            })
            .unwrap_or_else(|| "Raspberry Pi".to_string());
        let buses = spec
            .profile
            .i2c
            .iter()
            .map(|b| {
                let inner = rppal::i2c::I2c::with_bus(b.bus).map_err(|e| e.to_string());
                if let Err(e) = &inner {
                    tracing::warn!(bus = b.bus, error = %e, "I2C bus not available");
                }
                let dynbus: DynI2c = Box::new(RppalI2c { bus: b.bus, inner });
                (b.bus, Mutex::new(dynbus))
            })
            .collect();
        Ok(RppalBoard {
            gpio,
            model,
            pins: Mutex::new(BTreeMap::new()),
            pwm_channels: spec
                .profile
                .pwm
                .iter()
                .map(|c| (c.pin, c.channel))
                .collect(),
            pwms: Mutex::new(BTreeMap::new()),
            buses,
            root: spec.sysroot.clone().unwrap_or_default(),
        })
    }
}

impl Board for RppalBoard {
    fn backend(&self) -> &'static str {
        "rppal"
    }

    fn model(&self) -> String {
        self.model.clone()
    }

    fn gpio_setup(&self, pin: u8, mode: PinMode) -> Result<(), BoardError> {
        let mut pins = lock(&self.pins);
        // Release a previous configuration of this pin first.
        pins.remove(&pin);
        let p = self.gpio.get(pin).map_err(hw)?;
        let slot = match mode {
            PinMode::Input(Pull::None) => Slot::Input(p.into_input()),
            PinMode::Input(Pull::Up) => Slot::Input(p.into_input_pullup()),
            PinMode::Input(Pull::Down) => Slot::Input(p.into_input_pulldown()),
            PinMode::Output(level) => {
                let mut out = match level {
                    Level::Low => p.into_output_low(),
                    Level::High => p.into_output_high(),
                };
                // Keep a relay's state across a restart of the daemon.
                out.set_reset_on_drop(false);
                Slot::Output(out)
            }
        };
        pins.insert(pin, slot);
        Ok(())
    }

    fn gpio_read(&self, pin: u8) -> Result<Level, BoardError> {
        let pins = lock(&self.pins);
        match pins.get(&pin) {
            Some(Slot::Input(p)) => Ok(from_rppal(p.read())),
            Some(Slot::Output(p)) => Ok(Level::from_bool(p.is_set_high())),
            None => Err(BoardError::Hardware(format!("pin {pin} is not configured"))),
        }
    }

    fn gpio_write(&self, pin: u8, level: Level) -> Result<(), BoardError> {
        let mut pins = lock(&self.pins);
        match pins.get_mut(&pin) {
            Some(Slot::Output(p)) => {
                p.write(to_rppal(level));
                Ok(())
            }
            _ => Err(BoardError::Hardware(format!(
                "pin {pin} is not configured as an output"
            ))),
        }
    }

    fn gpio_watch(&self, pin: u8, sink: EdgeSink) -> Result<(), BoardError> {
        let mut pins = lock(&self.pins);
        let Some(Slot::Input(p)) = pins.get_mut(&pin) else {
            return Err(BoardError::Hardware(format!(
                "pin {pin} is not configured as an input"
            )));
        };
        // Filtering by edge kind happens in the sink (after debounce), so the
        // kernel reports both edges.
        let debounce = Some(sink.debounce()).filter(|d| !d.is_zero());
        p.set_async_interrupt(Trigger::Both, debounce, move |event| {
            let level = match event.trigger {
                Trigger::RisingEdge => Level::High,
                Trigger::FallingEdge => Level::Low,
                _ => return,
            };
            sink.push(level, event.timestamp);
        })
        .map_err(hw)
    }

    fn pwm_set(&self, pin: u8, duty: f64, hz: f64) -> Result<(), BoardError> {
        let channel = self
            .pwm_channels
            .iter()
            .find(|(p, _)| *p == pin)
            .map(|(_, c)| *c)
            .ok_or_else(|| BoardError::Hardware(format!("pin {pin} has no PWM channel")))?;
        let mut pwms = lock(&self.pwms);
        if let Some(pwm) = pwms.get(&pin) {
            return pwm.set_frequency(hz, duty).map_err(hw);
        }
        let ch = Channel::try_from(channel).map_err(hw)?;
        let pwm = Pwm::with_frequency(ch, hz, duty, Polarity::Normal, true).map_err(hw)?;
        pwms.insert(pin, pwm);
        Ok(())
    }

    fn i2c(&self, bus: u8) -> Result<I2cGuard<'_>, BoardError> {
        self.buses
            .iter()
            .find(|(b, _)| *b == bus)
            .map(|(_, m)| lock(m))
            .ok_or_else(|| BoardError::Hardware(format!("no I2C bus {bus} on this board")))
    }

    fn read_file(&self, rel: &str) -> Result<String, BoardError> {
        self.root.read(rel)
    }

    fn sysroot(&self) -> &SysRoot {
        &self.root
    }
}
