//! Board errors: one enum for the whole board layer, each variant with a
//! stable code string the node layer can put on the wire unchanged.

use thiserror::Error;

/// Everything that can go wrong in the board layer.
///
/// Hardware faults are values of this type, never panics. [`BoardError::code`]
/// gives a stable, upper-case code for callers (the node layer sends it on).
#[derive(Debug, Error)]
pub enum BoardError {
    /// No device with this name is declared by the profile or the config.
    #[error("unknown device `{name}` (not declared by the board profile or config)")]
    UnknownDevice {
        /// The name that was asked for.
        name: String,
    },
    /// The command is not one the board's command surface answers
    /// (`crate::node::board_commands::COMMANDS`).
    #[error("unknown board command `{command}`")]
    UnknownCommand {
        /// The command that was asked for.
        command: String,
    },
    /// A write, pulse or PWM setting was aimed at a device that is not an output.
    #[error("device `{name}` is {}, not an output", with_article(kind))]
    NotAnOutput {
        /// Device name.
        name: String,
        /// What the device actually is.
        kind: &'static str,
    },
    /// A pin read was aimed at a device that has no GPIO pin.
    #[error("device `{name}` is {}, not a GPIO pin", with_article(kind))]
    NotAPin {
        /// Device name.
        name: String,
        /// What the device actually is.
        kind: &'static str,
    },
    /// A sensor read was aimed at a device that is not a sensor.
    #[error("device `{name}` is {}, not a sensor", with_article(kind))]
    NotASensor {
        /// Device name.
        name: String,
        /// What the device actually is.
        kind: &'static str,
    },
    /// A PWM setting was aimed at a device that is not a PWM output.
    #[error("device `{name}` is {}, not a PWM output", with_article(kind))]
    NotPwm {
        /// Device name.
        name: String,
        /// What the device actually is.
        kind: &'static str,
    },
    /// A request's parameters are missing, of the wrong type or unexpected.
    #[error("invalid params: {reason}")]
    InvalidParams {
        /// What is wrong, naming the field.
        reason: String,
    },
    /// A numeric parameter lies outside its allowed range.
    #[error("`{field}` = {value} is out of range ({range})")]
    OutOfRange {
        /// Parameter name.
        field: &'static str,
        /// The value given, as text.
        value: String,
        /// The allowed range, as text.
        range: &'static str,
    },
    /// The sensor's file or bus device does not exist (not wired, driver not
    /// loaded, wrong id).
    #[error("sensor `{name}` missing: {detail}")]
    SensorMissing {
        /// Device name (or the file when no device is known).
        name: String,
        /// What was looked for.
        detail: String,
    },
    /// A checksum over sensor data did not match.
    #[error("CRC mismatch reading `{name}`: {detail}")]
    CrcMismatch {
        /// Device name or source.
        name: String,
        /// Expected/actual values or the kernel's verdict.
        detail: String,
    },
    /// The sensor answered, but with a value that cannot be a measurement
    /// (DS18B20 power-on 85 °C, a BME280 skipped measurement, unparsable text).
    #[error("invalid reading from `{name}`: {detail}")]
    InvalidReading {
        /// Device name or source.
        name: String,
        /// Why the value was rejected.
        detail: String,
    },
    /// No device acknowledged at this I2C address.
    #[error("no acknowledge from I2C device 0x{address:02x} on bus {bus}")]
    I2cNack {
        /// I2C bus number (`/dev/i2c-N`).
        bus: u8,
        /// 7-bit device address.
        address: u16,
    },
    /// The output was written too often; try again after `retry_after_ms`.
    #[error("output `{name}` is rate-limited; retry in {retry_after_ms} ms")]
    RateLimited {
        /// Device name.
        name: String,
        /// Milliseconds until the next write is allowed.
        retry_after_ms: u64,
    },
    /// The output is declared `confirm = true` and the call was not approved
    /// by an operator.
    #[error("output `{name}` needs operator approval before `{command}`")]
    ConfirmationRequired {
        /// Device name.
        name: String,
        /// The command that needs approval.
        command: String,
    },
    /// The board's queue for this kind of work is full (see
    /// [`crate::limits::BOARD_IO_QUEUE`] and
    /// [`crate::limits::BOARD_SENSOR_QUEUE`]); nothing was done. Retryable.
    #[error(
        "board busy: {capacity} {queue} jobs are already waiting; nothing was done, retry in {retry_after_ms} ms"
    )]
    Busy {
        /// Which queue is full (`pin I/O` or `sensor read`).
        queue: &'static str,
        /// How many jobs that queue holds.
        capacity: usize,
        /// Suggested wait before retrying.
        retry_after_ms: u64,
    },
    /// The board profile or `[board]` config is invalid.
    #[error("board config: {0}")]
    Config(#[from] ConfigError),
    /// Any other hardware or OS fault (permissions, I/O, pin busy, bus error).
    #[error("hardware fault: {0}")]
    Hardware(String),
}

impl BoardError {
    /// The stable code string for this error (e.g. `UNKNOWN_DEVICE`).
    pub fn code(&self) -> &'static str {
        match self {
            BoardError::UnknownDevice { .. } => "UNKNOWN_DEVICE",
            BoardError::UnknownCommand { .. } => "UNKNOWN_COMMAND",
            BoardError::NotAnOutput { .. } => "NOT_AN_OUTPUT",
            BoardError::NotAPin { .. } => "NOT_A_PIN",
            BoardError::NotASensor { .. } => "NOT_A_SENSOR",
            BoardError::NotPwm { .. } => "NOT_PWM",
            BoardError::InvalidParams { .. } => "INVALID_PARAMS",
            BoardError::OutOfRange { .. } => "OUT_OF_RANGE",
            BoardError::SensorMissing { .. } => "SENSOR_MISSING",
            BoardError::CrcMismatch { .. } => "CRC_MISMATCH",
            BoardError::InvalidReading { .. } => "INVALID_READING",
            BoardError::I2cNack { .. } => "I2C_NACK",
            BoardError::RateLimited { .. } => "RATE_LIMITED",
            BoardError::ConfirmationRequired { .. } => "CONFIRMATION_REQUIRED",
            BoardError::Busy { .. } => "BOARD_BUSY",
            BoardError::Config(_) => "BOARD_CONFIG",
            BoardError::Hardware(_) => "HARDWARE",
        }
    }

    /// How long the caller should wait before retrying, for the retryable
    /// errors ([`BoardError::RateLimited`], [`BoardError::Busy`]).
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            BoardError::RateLimited { retry_after_ms, .. }
            | BoardError::Busy { retry_after_ms, .. } => Some(*retry_after_ms),
            _ => None,
        }
    }

    /// The [`BoardError::OutOfRange`] of a pulse length outside
    /// 1..=[`crate::limits::MAX_PULSE_MS`]; `value` is the length as given.
    pub fn pulse_out_of_range(value: impl Into<String>) -> Self {
        BoardError::OutOfRange {
            field: "ms",
            value: value.into(),
            range: "1..=20000 (integer)",
        }
    }

    /// Shorthand for [`BoardError::InvalidParams`].
    pub fn invalid_params(reason: impl Into<String>) -> Self {
        BoardError::InvalidParams {
            reason: reason.into(),
        }
    }

    /// Re-labels a sensor error with the device name the caller asked for
    /// (drivers only know the file or bus they read).
    pub fn for_device(self, device: &str) -> Self {
        match self {
            BoardError::SensorMissing { detail, .. } => BoardError::SensorMissing {
                name: device.to_string(),
                detail,
            },
            BoardError::CrcMismatch { detail, .. } => BoardError::CrcMismatch {
                name: device.to_string(),
                detail,
            },
            BoardError::InvalidReading { detail, .. } => BoardError::InvalidReading {
                name: device.to_string(),
                detail,
            },
            other => other,
        }
    }
}

// The range text of `pulse_out_of_range` names this limit.
const _: () = assert!(crate::limits::MAX_PULSE_MS == 20_000);

/// A specific problem with a board profile or the `[board]` config section.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    /// More than one device is wrong (each listed once).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<ConfigError>),
    /// The profile named in config does not exist.
    #[error("unknown board profile `{name}` (known: {known})")]
    UnknownProfile {
        /// The name given.
        name: String,
        /// Comma-separated list of built-in profiles.
        known: String,
    },
    /// `profile = "auto"` found a Raspberry Pi model that no profile matches.
    #[error("no board profile matches `{model}`; set [board] profile explicitly")]
    UnsupportedModel {
        /// The device-tree model string.
        model: String,
    },
    /// The profile needs the rppal backend, which is not compiled for this target.
    #[error(
        "profile `{profile}` needs the Raspberry Pi backend, which is only built for Linux ARM; set [board] simulate = true to run it simulated"
    )]
    BackendUnavailable {
        /// Profile name.
        profile: String,
    },
    /// A profile or config file does not parse.
    #[error("{source_name}: {message}")]
    Parse {
        /// Which file or section.
        source_name: String,
        /// The TOML parser's message (with line/column).
        message: String,
    },
    /// A device uses a pin the profile does not expose.
    #[error("device `{device}`: pin {pin} is not a usable GPIO on profile `{profile}`")]
    UnknownPin {
        /// Device name.
        device: String,
        /// BCM pin number.
        pin: u8,
        /// Profile name.
        profile: String,
    },
    /// Two devices (or a device and a bus) claim the same pin.
    #[error("pin {pin} is used twice: by `{first}` and by `{second}`")]
    PinUsedTwice {
        /// BCM pin number.
        pin: u8,
        /// First user.
        first: String,
        /// Second user.
        second: String,
    },
    /// Two devices share a name.
    #[error("device name `{name}` is declared twice")]
    DuplicateDevice {
        /// The name.
        name: String,
    },
    /// Two I2C devices share a bus and address.
    #[error("I2C address 0x{address:02x} on bus {bus} is used by `{first}` and `{second}`")]
    AddressUsedTwice {
        /// Bus number.
        bus: u8,
        /// Address.
        address: u16,
        /// First device.
        first: String,
        /// Second device.
        second: String,
    },
    /// A device lacks a field its kind needs.
    #[error("device `{device}` ({kind}) needs `{field}`")]
    MissingField {
        /// Device name.
        device: String,
        /// Device kind.
        kind: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// A device sets a field its kind does not use.
    #[error("device `{device}` ({kind}) does not take `{field}`")]
    FieldNotAllowed {
        /// Device name.
        device: String,
        /// Device kind.
        kind: &'static str,
        /// The extra field.
        field: &'static str,
    },
    /// A device is on an I2C bus the profile does not have.
    #[error("device `{device}`: I2C bus {bus} does not exist on profile `{profile}`")]
    UnknownBus {
        /// Device name.
        device: String,
        /// Bus number.
        bus: u8,
        /// Profile name.
        profile: String,
    },
    /// A PWM device is on a pin without hardware PWM in this profile.
    #[error("device `{device}`: pin {pin} has no hardware PWM on profile `{profile}`")]
    NotPwmCapable {
        /// Device name.
        device: String,
        /// Pin.
        pin: u8,
        /// Profile name.
        profile: String,
    },
    /// Two PWM devices sit on pins routed to the same hardware channel.
    #[error("PWM channel {channel} is used by `{first}` and `{second}` (pins share the channel)")]
    PwmChannelUsedTwice {
        /// rppal channel number.
        channel: u8,
        /// First device.
        first: String,
        /// Second device.
        second: String,
    },
    /// A field value is invalid (name syntax, address range, rates).
    #[error("device `{device}`: {reason}")]
    InvalidValue {
        /// Device name.
        device: String,
        /// What is wrong.
        reason: String,
    },
    /// `enable` names a device the profile does not declare.
    #[error("[board] enable names `{name}`, which the profile does not declare")]
    UnknownEnable {
        /// The name.
        name: String,
    },
    /// More devices than [`crate::board::MAX_DEVICES`].
    #[error("too many devices: {count} (at most {max})")]
    TooManyDevices {
        /// How many were declared.
        count: usize,
        /// The cap.
        max: usize,
    },
}

impl ConfigError {
    /// The problems one by one (a [`ConfigError::Several`] unpacked).
    pub fn each(self) -> Vec<ConfigError> {
        match self {
            ConfigError::Several(all) => all.into_iter().flat_map(ConfigError::each).collect(),
            one => vec![one],
        }
    }

    /// Where in `[board]` the problem is, as a dotted key path: the
    /// `[[board.devices]]` entry (and field) it names when it is one, else
    /// the profile or the device's name in the profile.
    pub fn key_path(&self, config: &super::BoardConfig) -> String {
        let (device, field) = match self {
            ConfigError::UnknownProfile { .. }
            | ConfigError::UnsupportedModel { .. }
            | ConfigError::BackendUnavailable { .. } => return "board.profile".into(),
            ConfigError::UnknownEnable { .. } => return "board.enable".into(),
            ConfigError::UnknownPin { device, .. } | ConfigError::NotPwmCapable { device, .. } => {
                (device.as_str(), Some("pin"))
            }
            ConfigError::PinUsedTwice { second, .. } => (second.as_str(), Some("pin")),
            ConfigError::AddressUsedTwice { second, .. } => (second.as_str(), Some("address")),
            ConfigError::PwmChannelUsedTwice { second, .. } => (second.as_str(), Some("pin")),
            ConfigError::UnknownBus { device, .. } => (device.as_str(), Some("bus")),
            ConfigError::MissingField { device, .. } => (device.as_str(), None),
            ConfigError::FieldNotAllowed { device, field, .. } => (device.as_str(), Some(*field)),
            ConfigError::InvalidValue { device, .. } => (device.as_str(), None),
            ConfigError::DuplicateDevice { name } => (name.as_str(), Some("name")),
            _ => return "board".into(),
        };
        // The last entry of that name: a duplicate is reported at its second use.
        match config.devices.iter().rposition(|d| d.name == device) {
            Some(i) => match field {
                Some(f) => format!("board.devices[{i}].{f}"),
                None => format!("board.devices[{i}]"),
            },
            None => "board.profile".into(),
        }
    }
}

/// "an input", "a bme280": a device kind with its article.
fn with_article(kind: &str) -> String {
    let vowel = kind.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {kind}", if vowel { "an" } else { "a" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_as_english() {
        let e = BoardError::NotAnOutput {
            name: "button1".into(),
            kind: "input",
        };
        assert_eq!(e.to_string(), "device `button1` is an input, not an output");
        let e = BoardError::NotASensor {
            name: "relay1".into(),
            kind: "output",
        };
        assert!(e.to_string().contains("is an output, not a sensor"), "{e}");
    }
}
