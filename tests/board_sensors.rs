//! Sensor parsers and readers against real-format fixture files, the BME280
//! datasheet compensation, the SHT31 CRC, and the I2C NACK path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};
use pinclaw::board::sensors::{bme280, dht22, ds18b20, sht31, soc};
use pinclaw::board::{
    BoardConfig, BoardError, DeviceTable, Quantity, Reading, ReadingValue, SysRoot, ThrottleState,
};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sensors")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Copies fixture `name` to `rel` under `root`, creating directories.
fn place(root: &Path, rel: &str, name: &str) -> PathBuf {
    let dest = root.join(rel);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::write(&dest, fixture(name)).unwrap();
    dest
}

// ---- DS18B20 -------------------------------------------------------------

#[test]
fn w1_slave_good_file_parses_to_millidegrees() {
    assert_eq!(
        ds18b20::parse_w1_slave(&fixture("w1_slave_good")).unwrap(),
        23125
    );
    assert_eq!(
        ds18b20::parse_w1_slave(&fixture("w1_slave_negative")).unwrap(),
        -10125
    );
}

#[test]
fn w1_slave_crc_no_is_a_crc_error() {
    let err = ds18b20::parse_w1_slave(&fixture("w1_slave_crc_no")).unwrap_err();
    assert_eq!(err.code(), "CRC_MISMATCH", "{err}");
    assert!(err.to_string().contains("crc=c9 NO"), "{err}");
}

#[test]
fn w1_slave_power_on_85000_is_rejected() {
    let err = ds18b20::parse_w1_slave(&fixture("w1_slave_85000")).unwrap_err();
    assert_eq!(err.code(), "INVALID_READING");
    assert!(err.to_string().contains("power-on"), "{err}");
}

#[test]
fn w1_slave_malformed_inputs_are_errors_not_panics() {
    for text in [
        "",
        "garbage",
        "72 01 : crc=57 YES\n",
        "72 01 : crc=57 YES\n72 01 t=abc\n",
        "72 01 : crc=57 YES\n72 01 t=999999\n",
    ] {
        let err = ds18b20::parse_w1_slave(text).unwrap_err();
        assert_eq!(err.code(), "INVALID_READING", "{text:?}: {err}");
    }
    assert!(ds18b20::valid_id("28-0000075c293f"));
    assert!(!ds18b20::valid_id("28-../../etc"));
}

// ---- SoC -----------------------------------------------------------------

#[test]
fn thermal_zone_and_throttled_parse() {
    assert_eq!(
        soc::parse_thermal_zone(&fixture("thermal_zone0_temp")).unwrap(),
        48.312
    );
    assert_eq!(
        soc::parse_thermal_zone("x").unwrap_err().code(),
        "INVALID_READING"
    );
    let t = soc::parse_throttled(&fixture("get_throttled")).unwrap();
    assert_eq!(t.bits, 0x50005);
    assert!(t.under_voltage && t.throttled && !t.freq_capped);
    assert!(t.under_voltage_occurred && t.throttled_occurred && !t.freq_capped_occurred);
    assert_eq!(soc::parse_throttled("throttled=0x0").unwrap().bits, 0);
    assert_eq!(soc::parse_throttled("0x80008").unwrap().bits, 0x80008);
    assert!(soc::parse_throttled("nope").is_err());
}

// ---- BME280 --------------------------------------------------------------

fn datasheet_cal() -> bme280::Calibration {
    pinclaw::board::sim::sim_bme280_calibration()
}

#[test]
fn bme280_integer_compensation_matches_the_datasheet_example() {
    // BMP280 datasheet §8.2 example: adc_T = 519888, adc_P = 415148 →
    // t_fine = 128422, T = 25.08 °C, p = 100653.27 Pa (double version).
    let c = datasheet_cal();
    let (t_fine, t) = bme280::compensate_temperature(519_888, &c);
    assert_eq!(t_fine, 128_422);
    assert_eq!(t, 2508);
    let p = bme280::compensate_pressure(415_148, t_fine, &c).unwrap();
    // The 64-bit integer routine gives Q24.8 = 25767233 = 100653.254 Pa,
    // within 0.02 Pa of the datasheet's floating-point 100653.27 Pa.
    assert_eq!(p, 25_767_233);
    assert!((p as f64 / 256.0 - 100_653.27).abs() < 0.05);
}

#[test]
fn bme280_humidity_agrees_with_the_datasheet_floating_point_formula() {
    let c = datasheet_cal();
    let (t_fine, _) = bme280::compensate_temperature(519_888, &c);
    for adc_h in [20_000, 30_000, 40_000] {
        let h = bme280::compensate_humidity(adc_h, t_fine, &c) as f64 / 1024.0;
        // Datasheet §8.1 double-precision compensation.
        let (h1, h2, h3, h4, h5, h6) = (
            c.h1 as f64,
            c.h2 as f64,
            c.h3 as f64,
            c.h4 as f64,
            c.h5 as f64,
            c.h6 as f64,
        );
        let mut v = t_fine as f64 - 76800.0;
        v = (adc_h as f64 - (h4 * 64.0 + h5 / 16384.0 * v))
            * (h2 / 65536.0 * (1.0 + h6 / 67108864.0 * v * (1.0 + h3 / 67108864.0 * v)));
        v *= 1.0 - h1 * v / 524288.0;
        let v = v.clamp(0.0, 100.0);
        assert!((h - v).abs() < 0.1, "adc_h {adc_h}: int {h} vs float {v}");
    }
    // Out-of-range raw values clamp instead of overflowing.
    assert_eq!(
        bme280::compensate_humidity(0, t_fine, &c),
        0,
        "humidity clamps at 0 %"
    );
    assert!(bme280::compensate_humidity(65_535, t_fine, &c) <= 100 * 1024);
}

#[test]
fn bme280_garbage_calibration_never_panics() {
    let c = bme280::Calibration {
        t1: u16::MAX,
        t2: i16::MIN,
        t3: i16::MAX,
        p1: 0,
        p2: i16::MIN,
        p3: i16::MAX,
        p4: i16::MIN,
        p5: i16::MAX,
        p6: i16::MIN,
        p7: i16::MAX,
        p8: i16::MIN,
        p9: i16::MAX,
        h1: 255,
        h2: i16::MIN,
        h3: 255,
        h4: -2048,
        h5: 2047,
        h6: -128,
    };
    let raw = bme280::RawSample {
        adc_p: 0xFFFFF,
        adc_t: 0xFFFFF,
        adc_h: Some(0xFFFF),
    };
    // p1 = 0 makes the pressure divisor zero: an error, not a panic.
    assert_eq!(
        bme280::compensate(&raw, &c).unwrap_err().code(),
        "INVALID_READING"
    );
    let c2 = bme280::Calibration { p1: u16::MAX, ..c };
    let _ = bme280::compensate(&raw, &c2);
    let skipped = bme280::RawSample {
        adc_t: 0x80000,
        ..raw
    };
    assert_eq!(
        bme280::compensate(&skipped, &datasheet_cal())
            .unwrap_err()
            .code(),
        "INVALID_READING"
    );
}

// ---- SHT31 ---------------------------------------------------------------

#[test]
fn sht31_crc8_matches_the_datasheet_example() {
    assert_eq!(sht31::crc8(&[0xBE, 0xEF]), 0x92);
    assert_eq!(sht31::crc8(&[0x00, 0x00]), 0x81);
}

#[test]
fn sht31_decode_checks_both_crcs() {
    let good = sht31::encode(0x6666, 0x8000);
    let m = sht31::decode(&good).unwrap();
    assert!((m.temperature_c - 25.0).abs() < 0.01, "{m:?}");
    assert!((m.humidity_pct - 50.0).abs() < 0.01, "{m:?}");
    let mut bad_t = good;
    bad_t[2] ^= 0x01;
    let e = sht31::decode(&bad_t).unwrap_err();
    assert_eq!(e.code(), "CRC_MISMATCH");
    assert!(e.to_string().contains("temperature"), "{e}");
    let mut bad_h = good;
    bad_h[5] ^= 0x80;
    let e = sht31::decode(&bad_h).unwrap_err();
    assert_eq!(e.code(), "CRC_MISMATCH");
    assert!(e.to_string().contains("humidity"), "{e}");
}

// ---- I2C NACK through a fake embedded-hal bus -----------------------------

#[derive(Debug)]
struct FakeError(ErrorKind);

impl embedded_hal::i2c::Error for FakeError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

/// A bus where nothing answers (every transaction NACKs), or one that fails
/// with another bus error.
struct FakeBus {
    kind: ErrorKind,
    calls: usize,
}

impl ErrorType for FakeBus {
    type Error = FakeError;
}

impl I2c for FakeBus {
    fn transaction(
        &mut self,
        _address: u8,
        _operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        self.calls += 1;
        Err(FakeError(self.kind))
    }
}

#[test]
fn i2c_nack_becomes_a_specific_error() {
    let mut bus = FakeBus {
        kind: ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address),
        calls: 0,
    };
    let err = bme280::read(&mut bus, 1, 0x76, Duration::ZERO).unwrap_err();
    assert!(
        matches!(
            err,
            BoardError::I2cNack {
                bus: 1,
                address: 0x76
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "I2C_NACK");
    assert_eq!(bus.calls, 1, "gives up at the first NACK");

    let err = sht31::read(&mut bus, 1, 0x44, Duration::ZERO).unwrap_err();
    assert_eq!(err.code(), "I2C_NACK");

    let mut broken = FakeBus {
        kind: ErrorKind::Bus,
        calls: 0,
    };
    let err = bme280::read(&mut broken, 1, 0x76, Duration::ZERO).unwrap_err();
    assert_eq!(err.code(), "HARDWARE");
}

// ---- DHT22 ---------------------------------------------------------------

#[test]
fn dht22_parses_iio_files_and_checks_range() {
    let m = dht22::parse(
        &fixture("dht22_in_temp_input"),
        &fixture("dht22_in_humidityrelative_input"),
    )
    .unwrap();
    assert_eq!(m.temperature_c, 21.6);
    assert_eq!(m.humidity_pct, 48.7);
    assert_eq!(
        dht22::parse("99000", "50000").unwrap_err().code(),
        "INVALID_READING"
    );
    assert_eq!(
        dht22::parse("", "50000").unwrap_err().code(),
        "INVALID_READING"
    );
}

#[test]
fn dht22_reader_retries_then_caches_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let t = place(dir.path(), "iio/in_temp_input", "dht22_in_temp_input");
    let h = place(
        dir.path(),
        "iio/in_humidityrelative_input",
        "dht22_in_humidityrelative_input",
    );
    let root = SysRoot::new(dir.path());
    let read = || {
        dht22::parse(
            &root.read("iio/in_temp_input")?,
            &root.read("iio/in_humidityrelative_input")?,
        )
    };

    // Two failures (the driver's EIO shows up as bad reads), then success.
    let failing = dht22::DhtReader::new(Duration::ZERO, 3);
    let mut tries = 0;
    let (m, _) = failing
        .read(
            || {
                tries += 1;
                if tries < 3 {
                    Err(BoardError::Hardware("EIO".into()))
                } else {
                    read()
                }
            },
            || 1,
        )
        .unwrap();
    assert_eq!(tries, 3);
    assert_eq!(m.temperature_c, 21.6);

    // Always failing: the last error after exactly `attempts` tries.
    let mut tries = 0;
    let err = failing
        .read(
            || {
                tries += 1;
                Err(BoardError::Hardware("ETIMEDOUT".into()))
            },
            || 1,
        )
        .unwrap_err();
    assert_eq!(tries, 3);
    assert_eq!(err.code(), "HARDWARE");

    // A missing file is not retried.
    let mut tries = 0;
    let err = failing
        .read(
            || {
                tries += 1;
                root.read("iio/nope").map(|_| unreachable!())
            },
            || 1,
        )
        .unwrap_err();
    assert_eq!((tries, err.code()), (1, "SENSOR_MISSING"));

    // Within the interval the cached value comes back and the sensor is not
    // touched, even if the files change.
    let cached = dht22::DhtReader::new(Duration::from_secs(3600), 3);
    let (first, ts1) = cached.read(read, || 111).unwrap();
    std::fs::write(&t, "30000\n").unwrap();
    std::fs::write(&h, "10000\n").unwrap();
    let (second, ts2) = cached.read(read, || 222).unwrap();
    assert_eq!(first, second);
    assert_eq!((ts1, ts2), (111, 111), "cached value keeps its timestamp");
}

// ---- Readers through the board, fixtures in a temp sysfs root -------------

fn table_with_root(root: &Path) -> DeviceTable {
    let cfg = BoardConfig {
        profile: "sim".into(),
        sysfs_root: Some(root.to_path_buf()),
        ..BoardConfig::default()
    };
    DeviceTable::from_config(&cfg).unwrap()
}

fn measured(r: &Reading) -> f64 {
    match r.value {
        Some(ReadingValue::Measured(v)) => v,
        other => panic!("not a measurement: {other:?}"),
    }
}

#[tokio::test]
async fn sensors_read_real_format_files_under_sysfs_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    place(
        root,
        "sys/class/thermal/thermal_zone0/temp",
        "thermal_zone0_temp",
    );
    place(
        root,
        "sys/bus/w1/devices/28-0000075c293f/w1_slave",
        "w1_slave_good",
    );
    place(
        root,
        "sys/bus/iio/devices/iio:device0/in_temp_input",
        "dht22_in_temp_input",
    );
    place(
        root,
        "sys/bus/iio/devices/iio:device0/in_humidityrelative_input",
        "dht22_in_humidityrelative_input",
    );
    let table = table_with_root(root);

    let r = table.read_sensor("cpu_temp").await.unwrap();
    assert_eq!((measured(&r), r.unit), (48.312, "°C"));
    assert!(r.ts > 1_600_000_000_000);

    let r = table.read_sensor("water").await.unwrap();
    assert_eq!(measured(&r), 23.125);

    let r = table.read_sensor("porch").await.unwrap();
    assert_eq!(measured(&r), 21.6);
    let readings = r.readings.unwrap();
    assert_eq!(
        readings["humidity"],
        Quantity {
            value: 48.7,
            unit: "%"
        }
    );
    assert_eq!(
        readings["temperature"],
        Quantity {
            value: 21.6,
            unit: "°C"
        }
    );

    // No throttled file under this root: unknown, not 0.
    let r = table.read_sensor("throttled").await.unwrap();
    assert_eq!(r.value, None, "{r:?}");
    assert_eq!(r.detail.unwrap().state, ThrottleState::Unknown);

    // Present file: the bits and the decoded flags.
    place(
        root,
        "sys/devices/platform/soc/soc:firmware/get_throttled",
        "get_throttled",
    );
    let r = table.read_sensor("throttled").await.unwrap();
    assert_eq!(r.value, Some(ReadingValue::Flags(0x50005)));
    let detail = r.detail.unwrap();
    assert_eq!(detail.state, ThrottleState::Throttled);
    assert!(detail.flags.unwrap().under_voltage);
}

#[tokio::test]
async fn sensor_file_faults_are_specific_errors_named_after_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let table = table_with_root(root);

    let e = table.read_sensor("water").await.unwrap_err();
    assert_eq!(e.code(), "SENSOR_MISSING");
    assert!(e.to_string().contains("`water`"), "{e}");

    let w1 = "sys/bus/w1/devices/28-0000075c293f/w1_slave";
    place(root, w1, "w1_slave_crc_no");
    let e = table.read_sensor("water").await.unwrap_err();
    assert_eq!(e.code(), "CRC_MISMATCH");
    assert!(e.to_string().contains("`water`"), "{e}");

    place(root, w1, "w1_slave_85000");
    let e = table.read_sensor("water").await.unwrap_err();
    assert_eq!(e.code(), "INVALID_READING");

    let e = table.read_sensor("cpu_temp").await.unwrap_err();
    assert_eq!(e.code(), "SENSOR_MISSING");
}

#[test]
fn w1_slave_all_zero_scratchpad_is_rejected() {
    // Nine zero bytes have a Dallas CRC of zero, so the kernel says YES.
    let err = ds18b20::parse_w1_slave(&fixture("w1_slave_all_zero")).unwrap_err();
    assert_eq!(err.code(), "INVALID_READING");
    assert!(err.to_string().contains("all-zero"), "{err}");
}

#[tokio::test]
async fn soc_sensors_are_found_where_other_boards_and_kernels_put_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // CPU zone is not zone 0 on this kernel.
    std::fs::create_dir_all(root.join("sys/class/thermal/thermal_zone0")).unwrap();
    std::fs::write(
        root.join("sys/class/thermal/thermal_zone0/type"),
        "gpu-thermal\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("sys/class/thermal/thermal_zone1")).unwrap();
    std::fs::write(
        root.join("sys/class/thermal/thermal_zone1/type"),
        "cpu-thermal\n",
    )
    .unwrap();
    place(
        root,
        "sys/class/thermal/thermal_zone1/temp",
        "thermal_zone0_temp",
    );
    // No get_throttled anywhere, but the hwmon under-voltage alarm is set.
    std::fs::create_dir_all(root.join("sys/class/hwmon/hwmon2")).unwrap();
    std::fs::write(root.join("sys/class/hwmon/hwmon2/name"), "rpi_volt\n").unwrap();
    std::fs::write(root.join("sys/class/hwmon/hwmon2/in0_lcrit_alarm"), "1\n").unwrap();
    std::fs::create_dir_all(root.join("sys/devices/platform")).unwrap();
    let table = table_with_root(root);

    let r = table.read_sensor("cpu_temp").await.unwrap();
    assert_eq!(measured(&r), 48.312);

    let r = table.read_sensor("throttled").await.unwrap();
    assert_eq!(r.value, None, "the bits are unknown: {r:?}");
    let detail = r.detail.unwrap();
    assert_eq!(detail.state, ThrottleState::UnderVoltage);
    assert_eq!(detail.under_voltage, Some(true));

    // The Pi 5 puts get_throttled one level down.
    place(
        root,
        "sys/devices/platform/soc@107c000000/soc@107c000000:firmware/get_throttled",
        "get_throttled",
    );
    let r = table.read_sensor("throttled").await.unwrap();
    assert_eq!(r.value, Some(ReadingValue::Flags(0x50005)));
    let source = r.detail.and_then(|d| d.source).unwrap_or_default();
    assert!(source.contains("soc@107c000000:firmware"), "{source}");
}
