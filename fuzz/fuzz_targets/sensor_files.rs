//! The sensor parsers, on what a sysfs file or an I2C read can hold.
//!
//! The text parsers get the input as (lossy) text; DHT22's two files are the
//! text before and after the first NUL. The bus decoders get the first bytes:
//! SHT31 its 6-byte answer (also with correct CRCs, so that the conversion
//! is reached), BME280 its two calibration blocks and its 8 data bytes
//! (bytes 0..41), then three i32 ADC values (bytes 41..53).
//! No parser may panic, and no accepted reading may be NaN, infinite or
//! outside its sensor's range.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinclaw::board::sensors::bme280::{self, Calibration, RawSample};
use pinclaw::board::sensors::{dht22, ds18b20, sht31, soc};

fn bytes<const N: usize>(data: &[u8], offset: usize) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = data.get(offset + i).copied().unwrap_or(0);
    }
    out
}

fn check_sht31(m: &sht31::Measurement) {
    assert!(m.temperature_c.is_finite() && (-45.0..=130.0).contains(&m.temperature_c));
    assert!(m.humidity_pct.is_finite() && (0.0..=100.0).contains(&m.humidity_pct));
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(milli) = ds18b20::parse_w1_slave(&text) {
        assert!((-55_000..=125_000).contains(&milli), "{milli}");
        assert_ne!(milli, ds18b20::POWER_ON_RESET_MILLI_C);
    }

    if let Ok(v) = dht22::parse_milli(&text, "fuzz") {
        assert!(v.is_finite());
    }
    let (temp, humidity) = text.split_once('\0').unwrap_or((&text, ""));
    if let Ok(m) = dht22::parse(temp, humidity) {
        assert!(m.temperature_c.is_finite() && (-40.0..=80.0).contains(&m.temperature_c));
        assert!(m.humidity_pct.is_finite() && (0.0..=100.0).contains(&m.humidity_pct));
    }

    if let Ok(c) = soc::parse_thermal_zone(&text) {
        assert!(c.is_finite() && (-60.0..=200.0).contains(&c), "{c}");
    }
    if let Ok(t) = soc::parse_throttled(&text) {
        assert_eq!(t, soc::Throttled::from_bits(t.bits));
        assert_eq!(
            t.any_now(),
            t.under_voltage || t.freq_capped || t.throttled || t.soft_temp_limit
        );
    }

    let answer: [u8; 6] = bytes(data, 0);
    if let Ok(m) = sht31::decode(&answer) {
        check_sht31(&m);
    }
    let raw_t = u16::from_be_bytes([answer[0], answer[1]]);
    let raw_h = u16::from_be_bytes([answer[3], answer[4]]);
    let good = sht31::encode(raw_t, raw_h);
    let m = sht31::decode(&good).expect("an answer with correct CRCs decodes");
    check_sht31(&m);

    let block1: [u8; 26] = bytes(data, 0);
    let block2: [u8; 7] = bytes(data, 26);
    let cal = Calibration::from_registers(&block1, &block2);
    assert_eq!(cal.to_registers().0, {
        // Byte 24 (between dig_P9 and dig_H1) is not a calibration value.
        let mut b = block1;
        b[24] = 0;
        b
    });
    let regs: [u8; 8] = bytes(data, 33);
    for len in [8, 6, data.len().saturating_sub(33).min(8)] {
        let Ok(raw) = RawSample::from_registers(&regs[..len]) else {
            assert!(len < 6);
            continue;
        };
        assert!((0..1 << 20).contains(&raw.adc_p) && (0..1 << 20).contains(&raw.adc_t));
        check_bme280(&raw, &cal);
    }
    // The compensation is public over any i32 ADC values, too.
    let word = |i: usize| i32::from_le_bytes(bytes(data, 41 + 4 * i));
    let raw = RawSample {
        adc_p: word(0),
        adc_t: word(1),
        adc_h: Some(word(2)),
    };
    check_bme280(&raw, &cal);
});

fn check_bme280(raw: &RawSample, cal: &Calibration) {
    // Each stage on its own (compensate stops at a pressure error before
    // humidity), then the whole.
    let (t_fine, _) = bme280::compensate_temperature(raw.adc_t, cal);
    let _ = bme280::compensate_pressure(raw.adc_p, t_fine, cal);
    if let Some(adc_h) = raw.adc_h {
        assert!(bme280::compensate_humidity(adc_h, t_fine, cal) <= 100 << 10);
    }
    if let Ok(m) = bme280::compensate(raw, cal) {
        assert!(m.temperature_c().is_finite());
        assert!(m.pressure_hpa().is_finite() && m.pressure_hpa() >= 0.0);
        if let Some(h) = m.humidity_pct() {
            assert!(h.is_finite() && (0.0..=100.0).contains(&h), "{h} %");
        }
    }
}
