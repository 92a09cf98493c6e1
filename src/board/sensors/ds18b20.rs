//! DS18B20 1-Wire thermometer via the kernel's `w1_therm` driver.
//!
//! The driver exposes `sys/bus/w1/devices/<id>/w1_slave`:
//!
//! ```text
//! 72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
//! 72 01 4b 46 7f ff 0e 10 57 t=23125
//! ```
//!
//! The first line carries the driver's CRC verdict, the second the
//! temperature in millidegrees Celsius.

use crate::board::error::BoardError;

/// What the chip reports from its power-on reset scratchpad (85.000 °C): the
/// conversion never ran (usually a power or wiring fault).
pub const POWER_ON_RESET_MILLI_C: i32 = 85_000;

/// Relative path of the `w1_slave` file for 1-Wire id `id` (e.g. `28-0000075c293f`).
pub fn w1_slave_path(id: &str) -> String {
    format!("sys/bus/w1/devices/{id}/w1_slave")
}

/// Checks that `id` looks like a 1-Wire id (`28-` + 12 hex digits, or any
/// family code) so it can be joined into a path safely.
pub fn valid_id(id: &str) -> bool {
    let Some((family, serial)) = id.split_once('-') else {
        return false;
    };
    family.len() == 2
        && serial.len() == 12
        && family.chars().all(|c| c.is_ascii_hexdigit())
        && serial.chars().all(|c| c.is_ascii_hexdigit())
}

/// Parses the content of a `w1_slave` file into millidegrees Celsius.
///
/// Errors: the driver's `crc=.. NO` → [`BoardError::CrcMismatch`]; the 85 °C
/// power-on value, an all-zero scratchpad (shorted sensor), an out-of-range
/// value or malformed text → [`BoardError::InvalidReading`].
pub fn parse_w1_slave(text: &str) -> Result<i32, BoardError> {
    let invalid = |detail: String| BoardError::InvalidReading {
        name: "ds18b20".into(),
        detail,
    };
    let mut lines = text.lines();
    let crc_line = lines
        .next()
        .ok_or_else(|| invalid("empty w1_slave file".into()))?;
    // A shorted or absent sensor reads nine zero bytes, whose Dallas CRC is
    // also zero: the kernel says `crc=00 YES t=0`. Not a measurement.
    let bytes: Vec<&str> = crc_line
        .split(':')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    if !bytes.is_empty() && bytes.iter().all(|b| *b == "00") {
        return Err(invalid(
            "all-zero scratchpad: the sensor is shorted or not answering".into(),
        ));
    }
    let verdict = crc_line.split_whitespace().last().unwrap_or("");
    match verdict {
        "YES" => {}
        "NO" => {
            return Err(BoardError::CrcMismatch {
                name: "ds18b20".into(),
                detail: format!("kernel reports `{}`", crc_line.trim()),
            });
        }
        _ => return Err(invalid(format!("no CRC verdict in `{}`", crc_line.trim()))),
    }
    let temp_line = lines
        .next()
        .ok_or_else(|| invalid("w1_slave has no temperature line".into()))?;
    let (_, t) = temp_line
        .rsplit_once("t=")
        .ok_or_else(|| invalid(format!("no `t=` in `{}`", temp_line.trim())))?;
    let milli: i32 = t
        .trim()
        .parse()
        .map_err(|_| invalid(format!("temperature `{}` is not an integer", t.trim())))?;
    if milli == POWER_ON_RESET_MILLI_C {
        return Err(invalid(
            "85.000 °C is the power-on reset value: the conversion did not run (check power and wiring)"
                .into(),
        ));
    }
    if !(-55_000..=125_000).contains(&milli) {
        return Err(invalid(format!(
            "{milli} m°C is outside the DS18B20 range (-55..125 °C)"
        )));
    }
    Ok(milli)
}
