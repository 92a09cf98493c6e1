//! Bosch BME280 / BMP280 over I2C: calibration parsing, the datasheet's
//! integer compensation, and a forced-mode reader generic over
//! embedded-hal 1.0 `I2c`.
//!
//! Compensation follows BME280 datasheet (BST-BME280-DS002) §4.2.3 and
//! BMP280 datasheet §3.11.3 / §8.2: 32-bit temperature, 64-bit pressure
//! (Q24.8 Pa), 32-bit humidity (Q22.10 %RH). Intermediates are widened so that
//! garbage calibration data cannot overflow (and so cannot panic).

use std::time::Duration;

use embedded_hal::i2c::I2c;

use crate::board::error::BoardError;
use crate::board::hal::i2c_error;

/// Chip-id register.
pub const REG_CHIP_ID: u8 = 0xD0;
/// First calibration block (T1..P9, H1): 0x88..=0xA1.
pub const REG_CALIB_00: u8 = 0x88;
/// Second calibration block (H2..H6): 0xE1..=0xE7.
pub const REG_CALIB_26: u8 = 0xE1;
/// Humidity oversampling control.
pub const REG_CTRL_HUM: u8 = 0xF2;
/// Status register (bit 3 = measuring).
pub const REG_STATUS: u8 = 0xF3;
/// Temperature/pressure oversampling and mode.
pub const REG_CTRL_MEAS: u8 = 0xF4;
/// First data register (press_msb); 8 bytes up to hum_lsb.
pub const REG_DATA: u8 = 0xF7;
/// Chip id of a BME280.
pub const CHIP_ID_BME280: u8 = 0x60;
/// Chip id of a production BMP280 (0x56, 0x57 are samples).
pub const CHIP_ID_BMP280: u8 = 0x58;

/// The factory trimming parameters (`dig_*` in the datasheet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Calibration {
    /// `dig_T1 (0x88)`.
    pub t1: u16,
    /// `dig_T2 (0x8A)`.
    pub t2: i16,
    /// `dig_T3 (0x8C)`.
    pub t3: i16,
    /// `dig_P1 (0x8E)`.
    pub p1: u16,
    /// `dig_P2 (0x90)`.
    pub p2: i16,
    /// `dig_P3 (0x92)`.
    pub p3: i16,
    /// `dig_P4 (0x94)`.
    pub p4: i16,
    /// `dig_P5 (0x96)`.
    pub p5: i16,
    /// `dig_P6 (0x98)`.
    pub p6: i16,
    /// `dig_P7 (0x9A)`.
    pub p7: i16,
    /// `dig_P8 (0x9C)`.
    pub p8: i16,
    /// `dig_P9 (0x9E)`.
    pub p9: i16,
    /// `dig_H1 (0xA1)`.
    pub h1: u8,
    /// `dig_H2 (0xE1/0xE2)`.
    pub h2: i16,
    /// `dig_H3 (0xE3)`.
    pub h3: u8,
    /// `dig_H4 (0xE4[7:0] << 4 | 0xE5[3:0], signed 12 bit)`.
    pub h4: i16,
    /// `dig_H5 (0xE6[7:0] << 4 | 0xE5[7:4], signed 12 bit)`.
    pub h5: i16,
    /// `dig_H6 (0xE7)`.
    pub h6: i8,
}

impl Calibration {
    /// Parses the 26 bytes at 0x88..=0xA1 and the 7 bytes at 0xE1..=0xE7
    /// (pass zeros for the second block on a BMP280).
    pub fn from_registers(block1: &[u8; 26], block2: &[u8; 7]) -> Self {
        let u = |i: usize| u16::from_le_bytes([block1[i], block1[i + 1]]);
        let s = |i: usize| i16::from_le_bytes([block1[i], block1[i + 1]]);
        let e4 = block2[3] as i8 as i16;
        let e5 = block2[4] as i16;
        let e6 = block2[5] as i8 as i16;
        Calibration {
            t1: u(0),
            t2: s(2),
            t3: s(4),
            p1: u(6),
            p2: s(8),
            p3: s(10),
            p4: s(12),
            p5: s(14),
            p6: s(16),
            p7: s(18),
            p8: s(20),
            p9: s(22),
            h1: block1[25],
            h2: i16::from_le_bytes([block2[0], block2[1]]),
            h3: block2[2],
            h4: (e4 << 4) | (e5 & 0x0F),
            h5: (e6 << 4) | ((e5 >> 4) & 0x0F),
            h6: block2[6] as i8,
        }
    }

    /// The inverse of [`Calibration::from_registers`] (used by the simulator).
    pub fn to_registers(&self) -> ([u8; 26], [u8; 7]) {
        let mut b1 = [0u8; 26];
        let words: [[u8; 2]; 12] = [
            self.t1.to_le_bytes(),
            self.t2.to_le_bytes(),
            self.t3.to_le_bytes(),
            self.p1.to_le_bytes(),
            self.p2.to_le_bytes(),
            self.p3.to_le_bytes(),
            self.p4.to_le_bytes(),
            self.p5.to_le_bytes(),
            self.p6.to_le_bytes(),
            self.p7.to_le_bytes(),
            self.p8.to_le_bytes(),
            self.p9.to_le_bytes(),
        ];
        for (i, w) in words.iter().enumerate() {
            b1[2 * i] = w[0];
            b1[2 * i + 1] = w[1];
        }
        b1[25] = self.h1;
        let h2 = self.h2.to_le_bytes();
        let b2 = [
            h2[0],
            h2[1],
            self.h3,
            ((self.h4 >> 4) & 0xFF) as u8,
            ((self.h4 & 0x0F) as u8) | (((self.h5 & 0x0F) as u8) << 4),
            ((self.h5 >> 4) & 0xFF) as u8,
            self.h6 as u8,
        ];
        (b1, b2)
    }
}

/// Raw 20/20/16-bit ADC values from the burst read at 0xF7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawSample {
    /// Pressure ADC (20 bit).
    pub adc_p: i32,
    /// Temperature ADC (20 bit).
    pub adc_t: i32,
    /// Humidity ADC (16 bit); `None` on a BMP280.
    pub adc_h: Option<i32>,
}

impl RawSample {
    /// Decodes the data registers 0xF7..=0xFE (6 bytes for a BMP280).
    pub fn from_registers(data: &[u8]) -> Result<Self, BoardError> {
        if data.len() < 6 {
            return Err(BoardError::InvalidReading {
                name: "bme280".into(),
                detail: format!("short data read: {} bytes", data.len()),
            });
        }
        let p = ((data[0] as i32) << 12) | ((data[1] as i32) << 4) | ((data[2] as i32) >> 4);
        let t = ((data[3] as i32) << 12) | ((data[4] as i32) << 4) | ((data[5] as i32) >> 4);
        let h = if data.len() >= 8 {
            Some(((data[6] as i32) << 8) | data[7] as i32)
        } else {
            None
        };
        Ok(RawSample {
            adc_p: p,
            adc_t: t,
            adc_h: h,
        })
    }
}

/// A compensated measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Temperature in hundredths of °C (`2508` = 25.08 °C).
    pub temperature_centi_c: i32,
    /// Pressure in Pa, Q24.8 (divide by 256).
    pub pressure_q24_8: u32,
    /// Relative humidity in %RH, Q22.10 (divide by 1024); `None` on a BMP280.
    pub humidity_q22_10: Option<u32>,
}

impl Measurement {
    /// Temperature in °C.
    pub fn temperature_c(&self) -> f64 {
        self.temperature_centi_c as f64 / 100.0
    }
    /// Pressure in hPa.
    pub fn pressure_hpa(&self) -> f64 {
        self.pressure_q24_8 as f64 / 256.0 / 100.0
    }
    /// Relative humidity in %.
    pub fn humidity_pct(&self) -> Option<f64> {
        self.humidity_q22_10.map(|h| h as f64 / 1024.0)
    }
}

/// Datasheet `bmp280_compensate_T_int32`: returns `(t_fine, T in 0.01 °C)`.
pub fn compensate_temperature(adc_t: i32, c: &Calibration) -> (i32, i32) {
    let adc_t = adc_t as i64;
    let t1 = c.t1 as i64;
    let var1 = (((adc_t >> 3) - (t1 << 1)) * c.t2 as i64) >> 11;
    let var2 = (((((adc_t >> 4) - t1) * ((adc_t >> 4) - t1)) >> 12) * c.t3 as i64) >> 14;
    let t_fine = var1 + var2;
    let t = (t_fine * 5 + 128) >> 8;
    (clamp_i32(t_fine), clamp_i32(t))
}

/// Datasheet `bmp280_compensate_P_int64`: pressure in Pa as Q24.8, or `None`
/// when the calibration would divide by zero or the result does not fit (the
/// last stage is checked: a divisor near zero makes it overflow even i128).
pub fn compensate_pressure(adc_p: i32, t_fine: i32, c: &Calibration) -> Option<u32> {
    let mut var1: i128 = t_fine as i128 - 128_000;
    let mut var2: i128 = var1 * var1 * c.p6 as i128;
    var2 += (var1 * c.p5 as i128) << 17;
    var2 += (c.p4 as i128) << 35;
    var1 = ((var1 * var1 * c.p3 as i128) >> 8) + ((var1 * c.p2 as i128) << 12);
    var1 = (((1i128 << 47) + var1) * c.p1 as i128) >> 33;
    if var1 == 0 {
        return None;
    }
    let mut p: i128 = 1_048_576 - adc_p as i128;
    p = (((p << 31) - var2) * 3125) / var1;
    let q = p >> 13;
    let var1 = (c.p9 as i128).checked_mul(q)?.checked_mul(q)? >> 25;
    let var2 = (c.p8 as i128 * p) >> 19;
    p = (p.checked_add(var1)?.checked_add(var2)? >> 8) + ((c.p7 as i128) << 4);
    u32::try_from(p).ok()
}

/// Datasheet `bme280_compensate_H_int32`: %RH as Q22.10 (clamped to 0..=100 %).
///
/// In i128: with garbage calibration the product reaches 2^77 and its square
/// step 2^125, past i64 (real chips stay far below both).
pub fn compensate_humidity(adc_h: i32, t_fine: i32, c: &Calibration) -> u32 {
    let adc_h = adc_h as i128;
    let mut v: i128 = t_fine as i128 - 76_800;
    v = (((adc_h << 14) - ((c.h4 as i128) << 20) - (c.h5 as i128 * v) + 16_384) >> 15)
        * (((((((v * c.h6 as i128) >> 10) * (((v * c.h3 as i128) >> 11) + 32_768)) >> 10)
            + 2_097_152)
            * c.h2 as i128
            + 8192)
            >> 14);
    v -= ((((v >> 15) * (v >> 15)) >> 7) * c.h1 as i128) >> 4;
    v = v.clamp(0, 419_430_400);
    (v >> 12) as u32
}

/// Compensates one raw sample.
pub fn compensate(raw: &RawSample, c: &Calibration) -> Result<Measurement, BoardError> {
    // 0x80000 is what the chip reports for a skipped measurement.
    if raw.adc_t == 0x80000 || raw.adc_p == 0x80000 {
        return Err(BoardError::InvalidReading {
            name: "bme280".into(),
            detail: "measurement skipped (ADC reads 0x80000)".into(),
        });
    }
    let (t_fine, t) = compensate_temperature(raw.adc_t, c);
    let p =
        compensate_pressure(raw.adc_p, t_fine, c).ok_or_else(|| BoardError::InvalidReading {
            name: "bme280".into(),
            detail:
                "calibration data invalid (pressure divisor is zero or the result is out of range)"
                    .into(),
        })?;
    let h = match raw.adc_h {
        Some(0x8000) | None => None,
        Some(adc_h) => Some(compensate_humidity(adc_h, t_fine, c)),
    };
    Ok(Measurement {
        temperature_centi_c: t,
        pressure_q24_8: p,
        humidity_q22_10: h,
    })
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Which chip answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chip {
    /// Temperature, pressure, humidity.
    Bme280,
    /// Temperature and pressure only.
    Bmp280,
}

/// Reads one forced-mode measurement from a BME280/BMP280 at `address`.
///
/// `bus` is only used to label errors. `wait` is how long to sleep between
/// status polls (about 10 ms on hardware; zero for the simulator).
pub fn read<I: I2c + ?Sized>(
    i2c: &mut I,
    bus: u8,
    address: u8,
    wait: Duration,
) -> Result<(Chip, Measurement), BoardError> {
    let addr16 = address as u16;
    let err = |e: I::Error| i2c_error(bus, addr16, e);
    let mut id = [0u8; 1];
    i2c.write_read(address, &[REG_CHIP_ID], &mut id)
        .map_err(err)?;
    let chip = match id[0] {
        CHIP_ID_BME280 => Chip::Bme280,
        0x56..=0x58 => Chip::Bmp280,
        other => {
            return Err(BoardError::InvalidReading {
                name: "bme280".into(),
                detail: format!(
                    "device at 0x{address:02x} has chip id 0x{other:02x}, not a BME280 (0x60) or BMP280 (0x58)"
                ),
            });
        }
    };
    let mut b1 = [0u8; 26];
    i2c.write_read(address, &[REG_CALIB_00], &mut b1)
        .map_err(err)?;
    let mut b2 = [0u8; 7];
    if chip == Chip::Bme280 {
        i2c.write_read(address, &[REG_CALIB_26], &mut b2)
            .map_err(err)?;
        // Humidity oversampling x1 (takes effect with the ctrl_meas write).
        i2c.write(address, &[REG_CTRL_HUM, 0x01]).map_err(err)?;
    }
    // osrs_t = 001 (x1), osrs_p = 001 (x1), mode = 01 (forced).
    i2c.write(address, &[REG_CTRL_MEAS, 0b0010_0101])
        .map_err(err)?;
    let mut measuring = true;
    for _ in 0..10 {
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let mut status = [0u8; 1];
        i2c.write_read(address, &[REG_STATUS], &mut status)
            .map_err(err)?;
        if status[0] & 0x08 == 0 {
            measuring = false;
            break;
        }
    }
    if measuring {
        return Err(BoardError::Hardware(format!(
            "BME280 at 0x{address:02x} on bus {bus} still measuring after 10 polls"
        )));
    }
    let mut data = [0u8; 8];
    let len = if chip == Chip::Bme280 { 8 } else { 6 };
    i2c.write_read(address, &[REG_DATA], &mut data[..len])
        .map_err(err)?;
    let raw = RawSample::from_registers(&data[..len])?;
    let cal = Calibration::from_registers(&b1, &b2);
    Ok((chip, compensate(&raw, &cal)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example calibration from the BMP280 datasheet §8.2 / Bosch's
    /// reference table.
    pub(crate) fn datasheet_cal() -> Calibration {
        Calibration {
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

    /// Calibration registers (0x88..=0xA1, 0xE1..=0xE7) and data registers
    /// (0xF7..=0xFE) in one dump, as fuzz/sensor_files reads them.
    fn from_dump(dump: &[u8; 41]) -> (Calibration, RawSample) {
        let mut b1 = [0u8; 26];
        b1.copy_from_slice(&dump[..26]);
        let mut b2 = [0u8; 7];
        b2.copy_from_slice(&dump[26..33]);
        let raw = RawSample::from_registers(&dump[33..]).unwrap_or_else(|e| panic!("{e}"));
        (Calibration::from_registers(&b1, &b2), raw)
    }

    #[test]
    fn garbage_calibration_cannot_overflow_humidity() {
        // Register values reachable over the bus: t_fine = 4_194_144 and the
        // extreme H2, H4, H5, H6 made the i64 humidity product ~2^47 and its
        // square step overflow (a panic with overflow checks).
        let c = Calibration {
            t1: 65_535,
            t2: i16::MIN,
            t3: i16::MAX,
            h1: 255,
            h2: i16::MIN,
            h3: 255,
            h4: -2048,
            h5: -2048,
            h6: 127,
            ..datasheet_cal()
        };
        let (t_fine, _) = compensate_temperature(0, &c);
        assert_eq!(t_fine, 4_194_144);
        assert!(compensate_humidity(65_535, t_fine, &c) <= 100 << 10);
        // Any i32 inputs, too.
        for (adc_h, t_fine) in [
            (i32::MAX, i32::MAX),
            (i32::MIN, i32::MIN),
            (i32::MAX, i32::MIN),
        ] {
            assert!(compensate_humidity(adc_h, t_fine, &c) <= 100 << 10);
        }
        // The same through the registers (the fuzz seed bme280_humidity_overflow).
        let (b1, b2) = c.to_registers();
        let mut dump = [0u8; 41];
        dump[..26].copy_from_slice(&b1);
        dump[26..33].copy_from_slice(&b2);
        dump[39..41].copy_from_slice(&[0xFF, 0xFF]);
        let (c2, raw) = from_dump(&dump);
        assert_eq!(c2, c);
        assert_eq!(raw.adc_t, 0);
        assert!(compensate_humidity(raw.adc_h.unwrap_or(0), t_fine, &c2) <= 100 << 10);
    }

    #[test]
    fn pressure_divisor_near_zero_is_an_error_not_an_overflow() {
        // Found by a search over register values: t_fine = 2_609_148 and P1..P3
        // that cancel 2^47 leave a divisor of 1, and P9 · (p >> 13)^2
        // overflowed i128 (a panic with overflow checks).
        let c = Calibration {
            t1: 0,
            t2: 8002,
            t3: i16::MAX,
            p1: 65_535,
            p2: 29_458,
            p3: -18_302,
            p4: i16::MIN,
            p5: 0,
            p6: i16::MAX,
            p7: 0,
            p8: 0,
            p9: i16::MAX,
            ..datasheet_cal()
        };
        let (t_fine, _) = compensate_temperature(0xFFFFF, &c);
        assert_eq!(t_fine, 2_609_148);
        assert_eq!(compensate_pressure(0, t_fine, &c), None);
        let raw = RawSample {
            adc_p: 0,
            adc_t: 0xFFFFF,
            adc_h: None,
        };
        assert!(matches!(
            compensate(&raw, &c),
            Err(BoardError::InvalidReading { .. })
        ));
        // The datasheet example still compensates to its known value.
        let (t_fine, _) = compensate_temperature(519_888, &datasheet_cal());
        assert_eq!(
            compensate_pressure(415_148, t_fine, &datasheet_cal()),
            Some(25_767_233)
        );
    }

    #[test]
    fn calibration_round_trips_through_registers() {
        let c = datasheet_cal();
        let (b1, b2) = c.to_registers();
        assert_eq!(Calibration::from_registers(&b1, &b2), c);
        let neg = Calibration {
            h4: -300,
            h5: -5,
            ..c
        };
        let (b1, b2) = neg.to_registers();
        assert_eq!(Calibration::from_registers(&b1, &b2), neg);
    }
}
