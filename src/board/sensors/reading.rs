//! Reading a declared sensor device through a [`Board`] into a [`Reading`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::soc::Throttled;
use super::{bme280, dht22, ds18b20, sht31, soc};
use crate::board::error::BoardError;
use crate::board::hal::{Board, now_ms};
use crate::board::profile::{Device, DeviceKind};

/// One measured quantity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantity {
    /// The value.
    pub value: f64,
    /// Its unit (`°C`, `%`, `hPa`).
    pub unit: &'static str,
}

/// The primary value of a [`Reading`] (a plain number when serialized).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ReadingValue {
    /// A measurement in the reading's unit.
    Measured(f64),
    /// Raw flag bits (the firmware's throttling flags).
    Flags(u32),
}

/// One read of a sensor: `{name, value, unit, ts}` plus, for multi-quantity
/// sensors, `readings` (quantity → `{value, unit}`; the first quantity is
/// repeated in `value`/`unit`), and `detail` for the throttling state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    /// Device name.
    pub name: String,
    /// The primary value; `None` (`null`) when the state is unknown.
    pub value: Option<ReadingValue>,
    /// Unit of `value`.
    pub unit: &'static str,
    /// Time of the measurement, ms since the Unix epoch.
    pub ts: u64,
    /// All quantities, for multi-quantity sensors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readings: Option<BTreeMap<&'static str, Quantity>>,
    /// The throttling state, for the `throttled` sensor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<ThrottleDetail>,
}

/// What the firmware says about throttling, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottleState {
    /// No throttling, capping or under-voltage right now.
    Ok,
    /// Something limits the SoC right now (see the flags).
    Throttled,
    /// Only the under-voltage alarm is known, and it is set.
    UnderVoltage,
    /// The flags are not available on this board or kernel.
    Unknown,
}

/// The structured part of a `throttled` reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThrottleDetail {
    /// The state in one word.
    pub state: ThrottleState,
    /// The decoded flags, when `get_throttled` was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<Throttled>,
    /// The hwmon under-voltage alarm, when only that is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub under_voltage: Option<bool>,
    /// Where the state was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Why the flags are unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ThrottleDetail {
    /// The detail of decoded `get_throttled` flags, read from `source`.
    pub fn from_flags(flags: Throttled, source: Option<String>) -> ThrottleDetail {
        ThrottleDetail {
            state: if flags.any_now() {
                ThrottleState::Throttled
            } else {
                ThrottleState::Ok
            },
            flags: Some(flags),
            under_voltage: None,
            source,
            reason: None,
        }
    }
}

/// The quantities a sensor kind reports, first = primary.
pub fn quantities(kind: &DeviceKind) -> &'static [&'static str] {
    match kind {
        DeviceKind::CpuTemp { .. } | DeviceKind::Ds18b20 { .. } => &["temperature"],
        DeviceKind::Throttled { .. } => &["flags"],
        DeviceKind::Bme280 { bmp: false, .. } => &["temperature", "humidity", "pressure"],
        DeviceKind::Bme280 { bmp: true, .. } => &["temperature", "pressure"],
        DeviceKind::Sht31 { .. } | DeviceKind::Dht22 { .. } => &["temperature", "humidity"],
        _ => &[],
    }
}

/// The name of a quantity as a field, with its unit in the name, as MQTT
/// topics, automations and the sensor history call it: `temperature_c`,
/// `humidity_pct`, `pressure_hpa`, `flags`.
pub fn field_name(quantity: &str) -> &'static str {
    match quantity {
        "temperature" => "temperature_c",
        "humidity" => "humidity_pct",
        "pressure" => "pressure_hpa",
        _ => "flags",
    }
}

/// The fields a sensor kind reports, first = primary (see [`field_name`]).
pub fn fields(kind: &DeviceKind) -> impl Iterator<Item = &'static str> {
    quantities(kind).iter().map(|q| field_name(q))
}

/// The field of a single-quantity reading, from its unit.
fn field_of_unit(unit: &str) -> &'static str {
    match unit {
        "°C" => "temperature_c",
        "%" => "humidity_pct",
        "hPa" => "pressure_hpa",
        _ => "flags",
    }
}

impl Reading {
    /// Every field of this reading with its value, primary first (a reading
    /// whose state is unknown has none).
    pub fn fields(&self) -> Vec<(&'static str, f64)> {
        match (&self.readings, self.value) {
            (Some(readings), _) => {
                let mut out: Vec<_> = readings
                    .iter()
                    .map(|(q, v)| (field_name(q), v.value))
                    .collect();
                // The primary quantity first, as `value` has it.
                let primary = field_of_unit(self.unit);
                out.sort_by_key(|(f, _)| *f != primary);
                out
            }
            (None, Some(ReadingValue::Measured(v))) => vec![(field_of_unit(self.unit), v)],
            (None, Some(ReadingValue::Flags(bits))) => vec![("flags", f64::from(bits))],
            (None, None) => Vec::new(),
        }
    }

    /// Replaces one field's value (the simulator's forced values); a field
    /// the reading does not have is left alone. Returns whether it had it.
    pub fn set_field(&mut self, field: &str, value: f64) -> bool {
        let mut found = false;
        if let Some(readings) = &mut self.readings {
            for (q, v) in readings.iter_mut() {
                if field_name(q) == field {
                    v.value = value;
                    found = true;
                }
            }
        }
        if field_of_unit(self.unit) == field
            && matches!(self.value, Some(ReadingValue::Measured(_)))
        {
            self.value = Some(ReadingValue::Measured(value));
            found = true;
        }
        found
    }
}

/// Per-device state that outlives one read: the DHT22 caches.
#[derive(Debug, Default)]
pub struct SensorState {
    dht: BTreeMap<String, dht22::DhtReader>,
    /// Time to wait for an I2C conversion (zero for the simulator).
    pub i2c_wait: Duration,
}

impl SensorState {
    /// State for `devices`; `i2c_wait` is the conversion wait (about 10 ms on
    /// hardware, zero for the simulator).
    pub fn new<'a>(devices: impl IntoIterator<Item = &'a Device>, i2c_wait: Duration) -> Self {
        let dht = devices
            .into_iter()
            .filter(|d| matches!(d.kind, DeviceKind::Dht22 { .. }))
            .map(|d| (d.name.clone(), dht22::DhtReader::default()))
            .collect();
        SensorState { dht, i2c_wait }
    }

    /// Replaces the DHT22 reader of one device (tests shorten the interval).
    pub fn set_dht_reader(&mut self, name: &str, reader: dht22::DhtReader) {
        self.dht.insert(name.to_string(), reader);
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn multi(name: &str, ts: u64, qs: &[(&'static str, f64, &'static str)]) -> Reading {
    let readings: BTreeMap<&'static str, Quantity> = qs
        .iter()
        .map(|(q, v, u)| {
            (
                *q,
                Quantity {
                    value: round3(*v),
                    unit: u,
                },
            )
        })
        .collect();
    let (first_v, first_u) = qs
        .first()
        .map(|(_, v, u)| (Some(ReadingValue::Measured(round3(*v))), *u))
        .unwrap_or((None, ""));
    Reading {
        name: name.to_string(),
        value: first_v,
        unit: first_u,
        ts,
        readings: if qs.len() > 1 { Some(readings) } else { None },
        detail: None,
    }
}

/// Reads one sensor device. Blocking (file and bus I/O): async code runs it
/// on the board's sensor thread ([`crate::board::worker`]).
pub fn read_sensor(
    board: &dyn Board,
    device: &Device,
    state: &SensorState,
) -> Result<Reading, BoardError> {
    let name = device.name.as_str();
    let r = match &device.kind {
        DeviceKind::CpuTemp { path, search } => {
            let text = match board.read_file(path) {
                Err(e @ BoardError::SensorMissing { .. }) if *search => {
                    find_cpu_zone(board).ok_or(e)?
                }
                other => other?,
            };
            let t = soc::parse_thermal_zone(&text)?;
            multi(name, now_ms(), &[("temperature", t, "°C")])
        }
        DeviceKind::Throttled { path, search } => {
            let found = match board.read_file(path) {
                Ok(text) => Some((text, path.clone())),
                Err(BoardError::SensorMissing { .. }) if *search => find_throttled(board),
                Err(BoardError::SensorMissing { .. }) => None,
                Err(e) => return Err(e),
            };
            match found {
                Some((text, source)) => {
                    let t = soc::parse_throttled(&text)?;
                    Reading {
                        name: name.to_string(),
                        value: Some(ReadingValue::Flags(t.bits)),
                        unit: "flags",
                        ts: now_ms(),
                        readings: None,
                        detail: Some(ThrottleDetail::from_flags(t, Some(source))),
                    }
                }
                // Missing file = unknown (firmware driver absent), never
                // "0 = fine". The hwmon alarm still tells under-voltage now.
                None => {
                    let alarm = if *search { rpi_volt_alarm(board) } else { None };
                    let detail = match alarm {
                        Some(under_voltage) => ThrottleDetail {
                            state: if under_voltage {
                                ThrottleState::UnderVoltage
                            } else {
                                ThrottleState::Unknown
                            },
                            flags: None,
                            under_voltage: Some(under_voltage),
                            source: Some("hwmon rpi_volt in0_lcrit_alarm".into()),
                            reason: Some(
                                "get_throttled not available; only the current under-voltage alarm is known".into(),
                            ),
                        },
                        None => ThrottleDetail {
                            state: ThrottleState::Unknown,
                            flags: None,
                            under_voltage: None,
                            source: None,
                            reason: Some(format!(
                                "{path} does not exist (not a Raspberry Pi, or the firmware driver does not expose it)"
                            )),
                        },
                    };
                    Reading {
                        name: name.to_string(),
                        value: None,
                        unit: "flags",
                        ts: now_ms(),
                        readings: None,
                        detail: Some(detail),
                    }
                }
            }
        }
        DeviceKind::Ds18b20 { path, .. } => {
            // The kernel's CRC check fails now and then on long wires; each
            // read starts a new conversion, so retry a CRC failure.
            let mut attempt = 0;
            let milli = loop {
                attempt += 1;
                match ds18b20::parse_w1_slave(&board.read_file(path)?) {
                    Err(BoardError::CrcMismatch { .. }) if attempt < DS18B20_ATTEMPTS => continue,
                    other => break other?,
                }
            };
            multi(
                name,
                now_ms(),
                &[("temperature", milli as f64 / 1000.0, "°C")],
            )
        }
        DeviceKind::Bme280 { bus, address, .. } => {
            let mut guard = board.i2c(*bus)?;
            let (_, m) = bme280::read(&mut **guard, *bus, *address, state.i2c_wait)?;
            let mut qs = vec![("temperature", m.temperature_c(), "°C")];
            if let Some(h) = m.humidity_pct() {
                qs.push(("humidity", h, "%"));
            }
            qs.push(("pressure", m.pressure_hpa(), "hPa"));
            multi(name, now_ms(), &qs)
        }
        DeviceKind::Sht31 { bus, address } => {
            let mut guard = board.i2c(*bus)?;
            let wait = if state.i2c_wait.is_zero() {
                Duration::ZERO
            } else {
                Duration::from_millis(16)
            };
            let m = sht31::read(&mut **guard, *bus, *address, wait)?;
            multi(
                name,
                now_ms(),
                &[
                    ("temperature", m.temperature_c, "°C"),
                    ("humidity", m.humidity_pct, "%"),
                ],
            )
        }
        DeviceKind::Dht22 { path } => {
            let temp_file = format!("{path}/in_temp_input");
            let hum_file = format!("{path}/in_humidityrelative_input");
            let once = || {
                let t = board.read_file(&temp_file)?;
                let h = board.read_file(&hum_file)?;
                dht22::parse(&t, &h)
            };
            let (m, ts) = match state.dht.get(name) {
                Some(reader) => reader.read(once, now_ms)?,
                None => dht22::DhtReader::default().read(once, now_ms)?,
            };
            multi(
                name,
                ts,
                &[
                    ("temperature", m.temperature_c, "°C"),
                    ("humidity", m.humidity_pct, "%"),
                ],
            )
        }
        DeviceKind::Output { .. } | DeviceKind::Input { .. } | DeviceKind::Pwm { .. } => {
            return Err(BoardError::NotASensor {
                name: name.to_string(),
                kind: device.kind.name(),
            });
        }
    };
    Ok(r)
}

/// Reads of a DS18B20 before a CRC failure is reported.
pub const DS18B20_ATTEMPTS: u32 = 3;

/// Finds the thermal zone whose `type` is `cpu-thermal` and reads its `temp`.
fn find_cpu_zone(board: &dyn Board) -> Option<String> {
    let zones = board.list_dir("sys/class/thermal").ok()?;
    zones
        .iter()
        .filter(|z| z.starts_with("thermal_zone"))
        .find(|z| {
            board
                .read_file(&format!("sys/class/thermal/{z}/type"))
                .map(|t| t.trim() == "cpu-thermal")
                .unwrap_or(false)
        })
        .and_then(|z| board.read_file(&format!("sys/class/thermal/{z}/temp")).ok())
}

/// Looks for `get_throttled` under the platform devices: directly in a
/// `*firmware*` device, or one level down (the Pi 5's
/// `soc@107c000000/soc@107c000000:firmware`). Returns the text and its path.
fn find_throttled(board: &dyn Board) -> Option<(String, String)> {
    let base = "sys/devices/platform";
    let try_dir = |dir: String| {
        let file = format!("{dir}/get_throttled");
        board.read_file(&file).ok().map(|text| (text, file))
    };
    for entry in board.list_dir(base).ok()? {
        let dir = format!("{base}/{entry}");
        if entry.contains("firmware") {
            if let Some(found) = try_dir(dir) {
                return Some(found);
            }
        } else if entry.starts_with("soc") || entry.starts_with("axi") {
            for child in board.list_dir(&dir).unwrap_or_default() {
                if child.contains("firmware")
                    && let Some(found) = try_dir(format!("{dir}/{child}"))
                {
                    return Some(found);
                }
            }
        }
    }
    None
}

/// The `rpi_volt` hwmon under-voltage alarm (newer kernels), if present.
fn rpi_volt_alarm(board: &dyn Board) -> Option<bool> {
    let base = "sys/class/hwmon";
    for entry in board.list_dir(base).ok()? {
        let is_rpi_volt = board
            .read_file(&format!("{base}/{entry}/name"))
            .map(|n| n.trim() == "rpi_volt")
            .unwrap_or(false);
        if is_rpi_volt {
            let alarm = board
                .read_file(&format!("{base}/{entry}/in0_lcrit_alarm"))
                .ok()?;
            return match alarm.trim() {
                "0" => Some(false),
                "1" => Some(true),
                _ => None,
            };
        }
    }
    None
}

/// Reads a sensor and labels its errors with the device name.
pub fn read_named(
    board: &dyn Board,
    device: &Device,
    state: &SensorState,
) -> Result<Reading, BoardError> {
    read_sensor(board, device, state).map_err(|e| e.for_device(&device.name))
}
