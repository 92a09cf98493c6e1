//! Sensirion SHT31 over I2C: CRC-8 and single-shot measurement.
//!
//! Datasheet (SHT3x-DIS) §4.12: CRC-8, polynomial 0x31, init 0xFF, no
//! reflection, no final XOR; example 0xBEEF → 0x92. §4.13: T = -45 + 175 ·
//! S_T / (2^16 − 1), RH = 100 · S_RH / (2^16 − 1).

use std::time::Duration;

use embedded_hal::i2c::I2c;

use crate::board::error::BoardError;
use crate::board::hal::i2c_error;

/// Single shot, high repeatability, clock stretching disabled.
pub const CMD_SINGLE_SHOT_HIGH: [u8; 2] = [0x24, 0x00];

/// Sensirion CRC-8 over `data`.
pub fn crc8(data: &[u8]) -> u8 {
    let mut crc: u8 = 0xFF;
    for &byte in data {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x31
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A decoded SHT31 measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Temperature in °C.
    pub temperature_c: f64,
    /// Relative humidity in %.
    pub humidity_pct: f64,
}

/// Decodes the 6-byte answer `[T_msb, T_lsb, T_crc, RH_msb, RH_lsb, RH_crc]`,
/// checking both CRCs.
pub fn decode(data: &[u8; 6]) -> Result<Measurement, BoardError> {
    for (word, what) in [(&data[0..3], "temperature"), (&data[3..6], "humidity")] {
        let expected = crc8(&word[..2]);
        if expected != word[2] {
            return Err(BoardError::CrcMismatch {
                name: "sht31".into(),
                detail: format!(
                    "{what} word {:02x}{:02x}: CRC 0x{:02x}, expected 0x{expected:02x}",
                    word[0], word[1], word[2]
                ),
            });
        }
    }
    let raw_t = u16::from_be_bytes([data[0], data[1]]) as f64;
    let raw_h = u16::from_be_bytes([data[3], data[4]]) as f64;
    Ok(Measurement {
        temperature_c: -45.0 + 175.0 * raw_t / 65535.0,
        humidity_pct: 100.0 * raw_h / 65535.0,
    })
}

/// Encodes raw words with their CRCs (the simulator's answer).
pub fn encode(raw_t: u16, raw_h: u16) -> [u8; 6] {
    let t = raw_t.to_be_bytes();
    let h = raw_h.to_be_bytes();
    [t[0], t[1], crc8(&t), h[0], h[1], crc8(&h)]
}

/// Triggers one single-shot measurement at `address` and reads it back.
/// `wait` is the conversion time (15 ms on hardware, zero in the simulator).
pub fn read<I: I2c + ?Sized>(
    i2c: &mut I,
    bus: u8,
    address: u8,
    wait: Duration,
) -> Result<Measurement, BoardError> {
    let addr16 = address as u16;
    i2c.write(address, &CMD_SINGLE_SHOT_HIGH)
        .map_err(|e| i2c_error(bus, addr16, e))?;
    if !wait.is_zero() {
        std::thread::sleep(wait);
    }
    let mut data = [0u8; 6];
    i2c.read(address, &mut data)
        .map_err(|e| i2c_error(bus, addr16, e))?;
    decode(&data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let m = decode(&encode(0x6666, 0x8000)).unwrap();
        assert!((m.temperature_c - (-45.0 + 175.0 * 26214.0 / 65535.0)).abs() < 1e-9);
        assert!((m.humidity_pct - 50.0).abs() < 0.01);
    }
}
