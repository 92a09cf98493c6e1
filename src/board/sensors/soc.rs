//! The SoC's own sensors: CPU temperature (thermal zone) and the firmware's
//! throttling flags.

use serde::Serialize;

use crate::board::error::BoardError;

/// Relative path of thermal zone `zone`'s temperature file.
pub fn thermal_zone_path(zone: u8) -> String {
    format!("sys/class/thermal/thermal_zone{zone}/temp")
}

/// Where the Raspberry Pi firmware driver exposes `get_throttled` (hex bits,
/// the same value `vcgencmd get_throttled` prints).
pub const THROTTLED_PATH: &str = "sys/devices/platform/soc/soc:firmware/get_throttled";

/// Parses a thermal zone `temp` file (millidegrees Celsius) into °C.
pub fn parse_thermal_zone(text: &str) -> Result<f64, BoardError> {
    let t = text.trim();
    let milli: i64 = t.parse().map_err(|_| BoardError::InvalidReading {
        name: "cpu_temp".into(),
        detail: format!("thermal zone value `{t}` is not an integer"),
    })?;
    if !(-60_000..=200_000).contains(&milli) {
        return Err(BoardError::InvalidReading {
            name: "cpu_temp".into(),
            detail: format!("{milli} m°C is not a plausible CPU temperature"),
        });
    }
    Ok(milli as f64 / 1000.0)
}

/// The firmware's throttling flags (bit layout of `vcgencmd get_throttled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Throttled {
    /// The raw bits.
    pub bits: u32,
    /// Bit 0: under-voltage now.
    pub under_voltage: bool,
    /// Bit 1: ARM frequency capped now.
    pub freq_capped: bool,
    /// Bit 2: throttled now.
    pub throttled: bool,
    /// Bit 3: soft temperature limit active now.
    pub soft_temp_limit: bool,
    /// Bit 16: under-voltage has occurred since boot.
    pub under_voltage_occurred: bool,
    /// Bit 17: frequency capping has occurred since boot.
    pub freq_capped_occurred: bool,
    /// Bit 18: throttling has occurred since boot.
    pub throttled_occurred: bool,
    /// Bit 19: the soft temperature limit has occurred since boot.
    pub soft_temp_limit_occurred: bool,
}

impl Throttled {
    /// Splits raw bits into flags.
    pub fn from_bits(bits: u32) -> Self {
        let b = |n: u32| bits & (1 << n) != 0;
        Throttled {
            bits,
            under_voltage: b(0),
            freq_capped: b(1),
            throttled: b(2),
            soft_temp_limit: b(3),
            under_voltage_occurred: b(16),
            freq_capped_occurred: b(17),
            throttled_occurred: b(18),
            soft_temp_limit_occurred: b(19),
        }
    }

    /// Whether any "now" flag is set.
    pub fn any_now(&self) -> bool {
        self.bits & 0xF != 0
    }
}

/// Parses the throttling file: hex with or without `0x`, optionally in
/// `vcgencmd` form (`throttled=0x50005`).
pub fn parse_throttled(text: &str) -> Result<Throttled, BoardError> {
    let t = text.trim();
    let t = t.strip_prefix("throttled=").unwrap_or(t);
    let hex = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let bits = u32::from_str_radix(hex, 16).map_err(|_| BoardError::InvalidReading {
        name: "throttled".into(),
        detail: format!("`{t}` is not a hex bit field"),
    })?;
    Ok(Throttled::from_bits(bits))
}
