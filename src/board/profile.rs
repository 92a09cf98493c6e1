//! Board profiles (`boards/*.toml`, embedded in the binary), the `[board]`
//! config section, and their resolution into a validated [`BoardSpec`].
//!
//! Resolution: pick a profile (named, or `auto` from the device-tree model),
//! switch on the template devices named in `enable`, add or replace devices
//! from `[[board.devices]]`, drop disabled ones, then validate every device
//! against the profile (pins exist, nothing claimed twice, fields fit kinds).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{BoardError, ConfigError};
use super::hal::{EdgeKind, Pull, SysRoot};
use super::sensors::{ds18b20, soc};

/// Most devices one board may declare (profile + config).
pub const MAX_DEVICES: usize = 32;

/// Default output rate limit: writes allowed per minute per output.
pub const DEFAULT_WRITES_PER_MINUTE: u32 = 30;

/// Default input debounce.
pub const DEFAULT_DEBOUNCE_MS: u32 = 50;

/// The profiles compiled into the binary: `(name, TOML text)`.
pub const BUILTIN_PROFILES: &[(&str, &str)] = &[
    ("pi-zero-2w", include_str!("../../boards/pi-zero-2w.toml")),
    ("pi-3b", include_str!("../../boards/pi-3b.toml")),
    ("pi-4b", include_str!("../../boards/pi-4b.toml")),
    ("pi-5", include_str!("../../boards/pi-5.toml")),
    ("sim", include_str!("../../boards/sim.toml")),
];

/// Where the device-tree model string lives (relative to the sysfs root).
pub const DEVICE_TREE_MODEL_PATH: &str = "proc/device-tree/model";

/// Which backend drives a profile's hardware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The in-memory simulator.
    Sim,
    /// A Raspberry Pi through rppal (Linux ARM builds only).
    Rppal,
}

/// One I2C bus of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct I2cBusSpec {
    /// Bus number (`/dev/i2c-N`).
    pub bus: u8,
    /// SDA pin (reserved while a device uses the bus).
    pub sda: u8,
    /// SCL pin (reserved while a device uses the bus).
    pub scl: u8,
}

/// A hardware PWM channel and the pin it is routed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PwmChannelSpec {
    /// BCM pin.
    pub pin: u8,
    /// rppal PWM channel (`Pwm0`..`Pwm3`).
    pub channel: u8,
}

/// A board profile as written in `boards/*.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name (`pi-4b`).
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// Backend that drives it.
    pub backend: BackendKind,
    /// Device-tree model prefixes this profile matches under `profile = "auto"`.
    #[serde(default)]
    pub models: Vec<String>,
    /// Usable BCM GPIO numbers.
    pub gpio: Vec<u8>,
    /// The 1-Wire data pin (reserved while a DS18B20 is declared).
    #[serde(default)]
    pub one_wire_pin: Option<u8>,
    /// I2C buses.
    #[serde(default)]
    pub i2c: Vec<I2cBusSpec>,
    /// Hardware PWM routing.
    #[serde(default)]
    pub pwm: Vec<PwmChannelSpec>,
    /// The devices of the profile (templates when `disabled = true`).
    #[serde(default)]
    pub devices: Vec<DeviceSpec>,
}

impl Profile {
    /// Parses a profile's TOML text.
    pub fn parse(source_name: &str, text: &str) -> Result<Profile, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })
    }

    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Result<Profile, ConfigError> {
        let (_, text) = BUILTIN_PROFILES
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| ConfigError::UnknownProfile {
                name: name.to_string(),
                known: builtin_names().join(", "),
            })?;
        Profile::parse(&format!("boards/{name}.toml"), text)
    }

    /// The built-in profile matching a device-tree model string, if any.
    pub fn for_model(model: &str) -> Result<Option<Profile>, ConfigError> {
        for (name, _) in BUILTIN_PROFILES {
            let p = Profile::builtin(name)?;
            if p.models.iter().any(|m| model.starts_with(m.as_str())) {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }
}

/// The names of the built-in profiles.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN_PROFILES.iter().map(|(n, _)| *n).collect()
}

/// The kind of a declared device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKindName {
    /// A digital output (relay, LED).
    Output,
    /// A digital input with edge events (button, PIR).
    Input,
    /// A hardware PWM output (fan, dimmer).
    Pwm,
    /// SoC temperature from a thermal zone.
    CpuTemp,
    /// Firmware throttling flags.
    Throttled,
    /// DS18B20 on 1-Wire.
    Ds18b20,
    /// BME280 on I2C.
    Bme280,
    /// BMP280 on I2C (no humidity).
    Bmp280,
    /// SHT31 on I2C.
    Sht31,
    /// DHT22 via the kernel IIO driver.
    Dht22,
}

impl DeviceKindName {
    /// The snake_case name used in TOML and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKindName::Output => "output",
            DeviceKindName::Input => "input",
            DeviceKindName::Pwm => "pwm",
            DeviceKindName::CpuTemp => "cpu_temp",
            DeviceKindName::Throttled => "throttled",
            DeviceKindName::Ds18b20 => "ds18b20",
            DeviceKindName::Bme280 => "bme280",
            DeviceKindName::Bmp280 => "bmp280",
            DeviceKindName::Sht31 => "sht31",
            DeviceKindName::Dht22 => "dht22",
        }
    }
}

/// The classes an input may declare (`class = "motion"`): `button` (its
/// presses are events) and Home Assistant's binary-sensor classes that fit
/// a GPIO input.
pub const INPUT_CLASSES: &[&str] = &[
    "button",
    "motion",
    "occupancy",
    "presence",
    "door",
    "window",
    "opening",
    "moisture",
    "smoke",
    "vibration",
];

/// A device as declared in a profile or in `[[board.devices]]`.
///
/// One flat table for every kind; [`DeviceSpec::resolve`] checks that the
/// fields given fit the kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Unique name the agent uses (`relay1`): a lowercase letter, then
    /// lowercase letters, digits, `_` or `-`; at most 32 characters.
    pub name: String,
    /// What the device is.
    pub kind: Option<DeviceKindName>,
    /// Free text shown with the device in the board's info and sensor list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// BCM pin (output, input, pwm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<u8>,
    /// The device is on when the pin is low (most relay boards, buttons to
    /// ground). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_low: Option<bool>,
    /// Input bias: `up`, `down` or `none` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<Pull>,
    /// Which input edges become events: `rising`, `falling`, `both` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<EdgeKind>,
    /// Input debounce in ms (default 50): edges closer than this to the
    /// previous accepted edge are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce_ms: Option<u32>,
    /// What an input senses, for Home Assistant and dashboards: `button`
    /// (presses become events), `motion`, `occupancy`, `door`, `window`,
    /// `opening`, `moisture`, `smoke`, `vibration` (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Writes to this output need operator approval first (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<bool>,
    /// Output rate limit: writes (including pulses and PWM changes) allowed
    /// per minute, as a token bucket (default 30, 0 = unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_writes_per_minute: Option<u32>,
    /// Initial logical state of an output at start (default false = off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<bool>,
    /// Default PWM frequency in Hz (pwm; default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hz: Option<f64>,
    /// I2C bus number (bme280, bmp280, sht31).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<u8>,
    /// 7-bit I2C address, e.g. `0x76` (bme280, bmp280, sht31).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<u16>,
    /// 1-Wire id, e.g. `28-0000075c293f` (ds18b20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Thermal zone number (cpu_temp; default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<u8>,
    /// File or directory relative to the sysfs root (throttled: the flags
    /// file; dht22: the IIO device directory, required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A disabled device is ignored (profiles use this for wiring templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// A validated device.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Unique name.
    pub name: String,
    /// Free text for humans.
    pub label: Option<String>,
    /// What it is, with its resolved settings.
    pub kind: DeviceKind,
}

/// A validated device's kind and settings.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceKind {
    /// A digital output.
    Output {
        /// BCM pin.
        pin: u8,
        /// On = low.
        active_low: bool,
        /// Needs operator approval.
        confirm: bool,
        /// Token-bucket size per minute (0 = unlimited).
        max_writes_per_minute: u32,
        /// Logical state at start.
        initial: bool,
    },
    /// A digital input with edge events.
    Input {
        /// BCM pin.
        pin: u8,
        /// Bias.
        pull: Pull,
        /// Reported edges.
        edge: EdgeKind,
        /// Debounce window.
        debounce: Duration,
        /// Active = low.
        active_low: bool,
        /// What it senses (`button`, `motion`, …), if declared.
        class: Option<&'static str>,
    },
    /// A hardware PWM output.
    Pwm {
        /// BCM pin.
        pin: u8,
        /// rppal channel.
        channel: u8,
        /// Default frequency.
        hz: f64,
        /// Needs operator approval.
        confirm: bool,
        /// Token-bucket size per minute (0 = unlimited).
        max_writes_per_minute: u32,
    },
    /// SoC temperature.
    CpuTemp {
        /// File relative to the sysfs root.
        path: String,
        /// No zone was configured: if the default zone is missing, the
        /// reader searches for the zone whose `type` is `cpu-thermal`.
        search: bool,
    },
    /// Firmware throttling flags.
    Throttled {
        /// File relative to the sysfs root.
        path: String,
        /// No path was configured: if the default file is missing, the
        /// reader searches the platform devices (the Pi 5 puts it elsewhere)
        /// and falls back to the `rpi_volt` hwmon under-voltage alarm.
        search: bool,
    },
    /// DS18B20.
    Ds18b20 {
        /// 1-Wire id.
        id: String,
        /// `w1_slave` file relative to the sysfs root.
        path: String,
    },
    /// BME280 or BMP280.
    Bme280 {
        /// Bus.
        bus: u8,
        /// Address.
        address: u8,
        /// Declared as a BMP280 (no humidity expected).
        bmp: bool,
    },
    /// SHT31.
    Sht31 {
        /// Bus.
        bus: u8,
        /// Address.
        address: u8,
    },
    /// DHT22 via IIO.
    Dht22 {
        /// IIO device directory relative to the sysfs root.
        path: String,
    },
}

impl DeviceKind {
    /// The kind's name.
    pub fn name(&self) -> &'static str {
        match self {
            DeviceKind::Output { .. } => "output",
            DeviceKind::Input { .. } => "input",
            DeviceKind::Pwm { .. } => "pwm",
            DeviceKind::CpuTemp { .. } => "cpu_temp",
            DeviceKind::Throttled { .. } => "throttled",
            DeviceKind::Ds18b20 { .. } => "ds18b20",
            DeviceKind::Bme280 { bmp: false, .. } => "bme280",
            DeviceKind::Bme280 { bmp: true, .. } => "bmp280",
            DeviceKind::Sht31 { .. } => "sht31",
            DeviceKind::Dht22 { .. } => "dht22",
        }
    }

    /// The GPIO pin, for output, input and pwm devices.
    pub fn pin(&self) -> Option<u8> {
        match self {
            DeviceKind::Output { pin, .. }
            | DeviceKind::Input { pin, .. }
            | DeviceKind::Pwm { pin, .. } => Some(*pin),
            _ => None,
        }
    }

    /// Whether this is a sensor (readable as one).
    pub fn is_sensor(&self) -> bool {
        !matches!(
            self,
            DeviceKind::Output { .. } | DeviceKind::Input { .. } | DeviceKind::Pwm { .. }
        )
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 32
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
}

impl DeviceSpec {
    fn fields_set(&self) -> [(&'static str, bool); 15] {
        [
            ("pin", self.pin.is_some()),
            ("active_low", self.active_low.is_some()),
            ("pull", self.pull.is_some()),
            ("edge", self.edge.is_some()),
            ("debounce_ms", self.debounce_ms.is_some()),
            ("class", self.class.is_some()),
            ("confirm", self.confirm.is_some()),
            (
                "max_writes_per_minute",
                self.max_writes_per_minute.is_some(),
            ),
            ("initial", self.initial.is_some()),
            ("hz", self.hz.is_some()),
            ("bus", self.bus.is_some()),
            ("address", self.address.is_some()),
            ("id", self.id.is_some()),
            ("zone", self.zone.is_some()),
            ("path", self.path.is_some()),
        ]
    }

    /// Checks the fields against the kind and the profile, producing a
    /// [`Device`]. Cross-device checks (pins used twice) are done by
    /// [`resolve`].
    pub fn resolve(&self, profile: &Profile) -> Result<Device, ConfigError> {
        if !valid_name(&self.name) {
            return Err(ConfigError::InvalidValue {
                device: self.name.clone(),
                reason: "name must start with a lowercase letter and use only a-z, 0-9, `_`, `-` (at most 32 characters)".into(),
            });
        }
        let kind_name = self.kind.ok_or_else(|| ConfigError::MissingField {
            device: self.name.clone(),
            kind: "device",
            field: "kind",
        })?;
        let k = kind_name.as_str();
        let allowed: &[&str] = match kind_name {
            DeviceKindName::Output => &[
                "pin",
                "active_low",
                "confirm",
                "max_writes_per_minute",
                "initial",
            ],
            DeviceKindName::Input => &["pin", "active_low", "pull", "edge", "debounce_ms", "class"],
            DeviceKindName::Pwm => &["pin", "hz", "confirm", "max_writes_per_minute"],
            DeviceKindName::CpuTemp => &["zone"],
            DeviceKindName::Throttled => &["path"],
            DeviceKindName::Ds18b20 => &["id"],
            DeviceKindName::Bme280 | DeviceKindName::Bmp280 | DeviceKindName::Sht31 => {
                &["bus", "address"]
            }
            DeviceKindName::Dht22 => &["path"],
        };
        for (field, set) in self.fields_set() {
            if set && !allowed.contains(&field) {
                return Err(ConfigError::FieldNotAllowed {
                    device: self.name.clone(),
                    kind: k,
                    field,
                });
            }
        }
        let missing = |field: &'static str| ConfigError::MissingField {
            device: self.name.clone(),
            kind: k,
            field,
        };
        let invalid = |reason: String| ConfigError::InvalidValue {
            device: self.name.clone(),
            reason,
        };
        let check_pin = |pin: u8| {
            if profile.gpio.contains(&pin) {
                Ok(pin)
            } else {
                Err(ConfigError::UnknownPin {
                    device: self.name.clone(),
                    pin,
                    profile: profile.name.clone(),
                })
            }
        };
        let check_i2c = || -> Result<(u8, u8), ConfigError> {
            let bus = self.bus.ok_or_else(|| missing("bus"))?;
            let address = self.address.ok_or_else(|| missing("address"))?;
            if !profile.i2c.iter().any(|b| b.bus == bus) {
                return Err(ConfigError::UnknownBus {
                    device: self.name.clone(),
                    bus,
                    profile: profile.name.clone(),
                });
            }
            if !(0x08..=0x77).contains(&address) {
                return Err(invalid(format!(
                    "I2C address 0x{address:02x} is outside the 7-bit range 0x08..=0x77"
                )));
            }
            Ok((bus, address as u8))
        };
        let rate = self
            .max_writes_per_minute
            .unwrap_or(DEFAULT_WRITES_PER_MINUTE);
        let kind = match kind_name {
            DeviceKindName::Output => DeviceKind::Output {
                pin: check_pin(self.pin.ok_or_else(|| missing("pin"))?)?,
                active_low: self.active_low.unwrap_or(false),
                confirm: self.confirm.unwrap_or(false),
                max_writes_per_minute: rate,
                initial: self.initial.unwrap_or(false),
            },
            DeviceKindName::Input => {
                let debounce_ms = self.debounce_ms.unwrap_or(DEFAULT_DEBOUNCE_MS);
                if debounce_ms > 10_000 {
                    return Err(invalid(format!(
                        "debounce_ms = {debounce_ms} is longer than 10000"
                    )));
                }
                let class = match self.class.as_deref() {
                    None => None,
                    Some(c) => Some(INPUT_CLASSES.iter().copied().find(|k| *k == c).ok_or_else(
                        || {
                            invalid(format!(
                                "class = {c:?} is not one of {}",
                                INPUT_CLASSES.join(", ")
                            ))
                        },
                    )?),
                };
                DeviceKind::Input {
                    pin: check_pin(self.pin.ok_or_else(|| missing("pin"))?)?,
                    pull: self.pull.unwrap_or_default(),
                    edge: self.edge.unwrap_or_default(),
                    debounce: Duration::from_millis(debounce_ms as u64),
                    active_low: self.active_low.unwrap_or(false),
                    class,
                }
            }
            DeviceKindName::Pwm => {
                let pin = check_pin(self.pin.ok_or_else(|| missing("pin"))?)?;
                let channel = profile
                    .pwm
                    .iter()
                    .find(|c| c.pin == pin)
                    .map(|c| c.channel)
                    .ok_or_else(|| ConfigError::NotPwmCapable {
                        device: self.name.clone(),
                        pin,
                        profile: profile.name.clone(),
                    })?;
                let hz = self.hz.unwrap_or(1000.0);
                if !(hz.is_finite() && hz > 0.0 && hz <= MAX_PWM_HZ) {
                    return Err(invalid(format!("hz = {hz} must be in (0, {MAX_PWM_HZ}]")));
                }
                DeviceKind::Pwm {
                    pin,
                    channel,
                    hz,
                    confirm: self.confirm.unwrap_or(false),
                    max_writes_per_minute: rate,
                }
            }
            DeviceKindName::CpuTemp => DeviceKind::CpuTemp {
                path: soc::thermal_zone_path(self.zone.unwrap_or(0)),
                search: self.zone.is_none(),
            },
            DeviceKindName::Throttled => DeviceKind::Throttled {
                path: self
                    .path
                    .clone()
                    .unwrap_or_else(|| soc::THROTTLED_PATH.to_string()),
                search: self.path.is_none(),
            },
            DeviceKindName::Ds18b20 => {
                let id = self.id.clone().ok_or_else(|| missing("id"))?;
                if !ds18b20::valid_id(&id) {
                    return Err(invalid(format!(
                        "1-Wire id `{id}` is not of the form `28-0000075c293f`"
                    )));
                }
                DeviceKind::Ds18b20 {
                    path: ds18b20::w1_slave_path(&id),
                    id,
                }
            }
            DeviceKindName::Bme280 | DeviceKindName::Bmp280 => {
                let (bus, address) = check_i2c()?;
                DeviceKind::Bme280 {
                    bus,
                    address,
                    bmp: kind_name == DeviceKindName::Bmp280,
                }
            }
            DeviceKindName::Sht31 => {
                let (bus, address) = check_i2c()?;
                DeviceKind::Sht31 { bus, address }
            }
            DeviceKindName::Dht22 => DeviceKind::Dht22 {
                path: self.path.clone().ok_or_else(|| missing("path"))?,
            },
        };
        if let Some(path) = &self.path
            && (path.starts_with('/') || path.split('/').any(|c| c == ".."))
        {
            return Err(invalid(format!(
                "path `{path}` must be relative to the sysfs root, without `..`"
            )));
        }
        Ok(Device {
            name: self.name.clone(),
            label: self.label.clone(),
            kind,
        })
    }
}

/// Highest PWM frequency accepted.
pub const MAX_PWM_HZ: f64 = 1_000_000.0;

fn default_profile() -> String {
    "auto".to_string()
}

/// The `[board]` section of `pinclaw.toml`.
///
/// ```toml
/// [board]
/// profile = "auto"            # or pi-zero-2w, pi-3b, pi-4b, pi-5, sim
/// enable = ["relay1", "pir1"] # switch on wiring templates of the profile
///
/// [[board.devices]]           # add a device, or replace one by name
/// name = "heater"
/// kind = "output"
/// pin = 23
/// active_low = true
/// confirm = true              # every write needs operator approval
/// max_writes_per_minute = 4
///
/// [[board.devices]]
/// name = "attic"
/// kind = "sht31"
/// bus = 1
/// address = 0x44
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardConfig {
    /// Board profile: `auto` (default: the Raspberry Pi model named by
    /// `/proc/device-tree/model`, or `sim` when it is not a Pi), or one of
    /// `pi-zero-2w`, `pi-3b`, `pi-4b`, `pi-5`, `sim`.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Run the chosen profile on the simulated backend (try a Pi profile's
    /// wiring on a laptop). Default false.
    #[serde(default)]
    pub simulate: bool,
    /// Root prefix for sysfs sensor files and the device-tree model. Default
    /// `/`; the simulator uses built-in demo files unless this is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysfs_root: Option<PathBuf>,
    /// Template devices of the profile (declared `disabled = true`) to
    /// switch on, by name.
    #[serde(default)]
    pub enable: Vec<String>,
    /// Devices to add; one with the name of a profile device replaces it.
    #[serde(default)]
    pub devices: Vec<DeviceSpec>,
}

impl Default for BoardConfig {
    fn default() -> Self {
        BoardConfig {
            profile: default_profile(),
            simulate: false,
            sysfs_root: None,
            enable: Vec::new(),
            devices: Vec::new(),
        }
    }
}

/// A profile merged with config and validated: everything a backend and the
/// command surface need.
#[derive(Debug, Clone)]
pub struct BoardSpec {
    /// The profile used (its `devices` are the unmerged originals).
    pub profile: Profile,
    /// Backend that will drive it.
    pub backend: BackendKind,
    /// The hardware model string, when one was detected.
    pub model: Option<String>,
    /// Explicit sysfs root from config (`None` = `/`, or the sim's demo files).
    pub sysroot: Option<SysRoot>,
    /// The validated devices, in declaration order.
    pub devices: heapless::Vec<Device, MAX_DEVICES>,
}

impl BoardSpec {
    /// A device by name.
    pub fn device(&self, name: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.name == name)
    }
}

/// Reads the device-tree model under `root` (NUL-terminated on real boards).
pub fn read_model(root: &SysRoot) -> Option<String> {
    root.read(DEVICE_TREE_MODEL_PATH)
        .ok()
        .map(|s| s.trim_end_matches(['\0', '\n', ' ']).to_string())
        .filter(|s| !s.is_empty())
}

/// Resolves `[board]` config into a [`BoardSpec`].
pub fn resolve(config: &BoardConfig) -> Result<BoardSpec, ConfigError> {
    let root = config.sysfs_root.clone().map(SysRoot::new);
    let model = read_model(root.as_ref().unwrap_or(&SysRoot::default()));
    let profile = if config.profile == "auto" {
        match model.as_deref() {
            Some(m) if m.contains("Raspberry Pi") => {
                Profile::for_model(m)?.ok_or_else(|| ConfigError::UnsupportedModel {
                    model: m.to_string(),
                })?
            }
            _ => Profile::builtin("sim")?,
        }
    } else {
        Profile::builtin(&config.profile)?
    };
    resolve_with(profile, config, model)
}

/// Resolves `config` against an explicit profile (built-in or parsed).
pub fn resolve_with(
    profile: Profile,
    config: &BoardConfig,
    model: Option<String>,
) -> Result<BoardSpec, ConfigError> {
    let backend = if config.simulate {
        BackendKind::Sim
    } else {
        profile.backend
    };
    if backend == BackendKind::Rppal && !super::RPPAL_COMPILED {
        return Err(ConfigError::BackendUnavailable {
            profile: profile.name.clone(),
        });
    }

    let mut specs: Vec<DeviceSpec> = Vec::with_capacity(profile.devices.len());
    for d in &profile.devices {
        if specs.iter().any(|s| s.name == d.name) {
            return Err(ConfigError::DuplicateDevice {
                name: d.name.clone(),
            });
        }
        specs.push(d.clone());
    }
    for name in &config.enable {
        let spec = specs
            .iter_mut()
            .find(|s| &s.name == name)
            .ok_or_else(|| ConfigError::UnknownEnable { name: name.clone() })?;
        spec.disabled = Some(false);
    }
    let mut from_config: Vec<&str> = Vec::new();
    for d in &config.devices {
        if from_config.contains(&d.name.as_str()) {
            return Err(ConfigError::DuplicateDevice {
                name: d.name.clone(),
            });
        }
        from_config.push(&d.name);
        match specs.iter_mut().find(|s| s.name == d.name) {
            Some(existing) => *existing = d.clone(),
            None => specs.push(d.clone()),
        }
    }
    specs.retain(|s| s.disabled != Some(true));
    if specs.len() > MAX_DEVICES {
        return Err(ConfigError::TooManyDevices {
            count: specs.len(),
            max: MAX_DEVICES,
        });
    }

    let mut devices: heapless::Vec<Device, MAX_DEVICES> = heapless::Vec::new();
    // pin -> who claims it
    let mut pins: BTreeMap<u8, String> = BTreeMap::new();
    let mut addresses: BTreeMap<(u8, u8), String> = BTreeMap::new();
    let mut pwm_channels: BTreeMap<u8, String> = BTreeMap::new();
    let mut claim = |pin: u8, who: String| -> Result<(), ConfigError> {
        if let Some(first) = pins.get(&pin) {
            if *first != who {
                return Err(ConfigError::PinUsedTwice {
                    pin,
                    first: first.clone(),
                    second: who,
                });
            }
            return Ok(());
        }
        pins.insert(pin, who);
        Ok(())
    };
    // Every device is checked; all problems are reported at once.
    let mut problems: Vec<ConfigError> = Vec::new();
    for spec in &specs {
        let mut place = || -> Result<Device, ConfigError> {
            let device = spec.resolve(&profile)?;
            match &device.kind {
                DeviceKind::Output { pin, .. } | DeviceKind::Input { pin, .. } => {
                    claim(*pin, device.name.clone())?
                }
                DeviceKind::Pwm { pin, channel, .. } => {
                    claim(*pin, device.name.clone())?;
                    if let Some(first) = pwm_channels.get(channel) {
                        return Err(ConfigError::PwmChannelUsedTwice {
                            channel: *channel,
                            first: first.clone(),
                            second: device.name.clone(),
                        });
                    }
                    pwm_channels.insert(*channel, device.name.clone());
                }
                DeviceKind::Bme280 { bus, address, .. } | DeviceKind::Sht31 { bus, address } => {
                    if let Some(first) = addresses.get(&(*bus, *address)) {
                        return Err(ConfigError::AddressUsedTwice {
                            bus: *bus,
                            address: *address as u16,
                            first: first.clone(),
                            second: device.name.clone(),
                        });
                    }
                    addresses.insert((*bus, *address), device.name.clone());
                    if let Some(b) = profile.i2c.iter().find(|b| b.bus == *bus) {
                        claim(b.sda, format!("i2c-{bus} (SDA)"))?;
                        claim(b.scl, format!("i2c-{bus} (SCL)"))?;
                    }
                }
                DeviceKind::Ds18b20 { .. } => {
                    if let Some(p) = profile.one_wire_pin {
                        claim(p, "1-Wire bus".to_string())?;
                    }
                }
                _ => {}
            }
            Ok(device)
        };
        match place() {
            // Infallible: specs.len() <= MAX_DEVICES was checked above.
            Ok(device) => {
                if devices.push(device).is_err() {
                    return Err(ConfigError::TooManyDevices {
                        count: specs.len(),
                        max: MAX_DEVICES,
                    });
                }
            }
            Err(e) => problems.push(e),
        }
    }
    if problems.len() > 1 {
        return Err(ConfigError::Several(problems));
    }
    if let Some(e) = problems.pop() {
        return Err(e);
    }

    Ok(BoardSpec {
        profile,
        backend,
        model,
        sysroot: config.sysfs_root.clone().map(SysRoot::new),
        devices,
    })
}

/// Resolves a `[board]` TOML section given as text (for `config check` and
/// tests); parse errors carry line and column.
pub fn parse_config(text: &str) -> Result<BoardConfig, BoardError> {
    toml::from_str(text).map_err(|e| {
        BoardError::Config(ConfigError::Parse {
            source_name: "[board]".into(),
            message: e.to_string(),
        })
    })
}
