//! Board profiles and `[board]` config: every built-in profile loads, and
//! bad config gets a specific error.

use std::path::Path;

use pinclaw::board::profile::{self, BackendKind, DeviceKindName, Profile, builtin_names};
use pinclaw::board::{BoardConfig, BoardError, ConfigError, DeviceKind, DeviceSpec, DeviceTable};

fn sim_cfg(devices: Vec<DeviceSpec>) -> BoardConfig {
    BoardConfig {
        profile: "sim".into(),
        devices,
        ..BoardConfig::default()
    }
}

fn output(name: &str, pin: u8) -> DeviceSpec {
    DeviceSpec {
        name: name.into(),
        kind: Some(DeviceKindName::Output),
        pin: Some(pin),
        ..DeviceSpec::default()
    }
}

fn err(cfg: &BoardConfig) -> ConfigError {
    match profile::resolve(cfg) {
        Ok(spec) => panic!("resolved: {:?}", spec.devices),
        Err(e) => e,
    }
}

#[test]
fn every_builtin_profile_parses_and_resolves_with_all_templates_enabled() {
    assert_eq!(
        builtin_names(),
        vec!["pi-zero-2w", "pi-zero", "pi-3b", "pi-4b", "pi-5", "sim"]
    );
    for name in builtin_names() {
        let p = Profile::builtin(name).unwrap();
        let templates: Vec<String> = p
            .devices
            .iter()
            .filter(|d| d.disabled == Some(true))
            .map(|d| d.name.clone())
            .collect();
        let cfg = BoardConfig {
            profile: name.into(),
            simulate: true,
            enable: templates,
            ..BoardConfig::default()
        };
        let spec = profile::resolve(&cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(spec.backend, BackendKind::Sim);
        for want in [
            "cpu_temp",
            "throttled",
            "relay1",
            "button1",
            "pir1",
            "room",
            "water",
        ] {
            assert!(spec.device(want).is_some(), "{name}: {want} missing");
        }
        assert_eq!(
            spec.device("relay1").unwrap().kind,
            DeviceKind::Output {
                pin: 17,
                active_low: true,
                confirm: false,
                max_writes_per_minute: profile::DEFAULT_WRITES_PER_MINUTE,
                initial: false,
            }
        );
        assert!(matches!(
            spec.device("room").unwrap().kind,
            DeviceKind::Bme280 {
                bus: 1,
                address: 0x76,
                bmp: false
            }
        ));
    }
}

#[test]
fn real_board_profiles_touch_no_pins_until_enabled() {
    for name in ["pi-zero-2w", "pi-zero", "pi-3b", "pi-4b", "pi-5"] {
        let cfg = BoardConfig {
            profile: name.into(),
            simulate: true,
            ..BoardConfig::default()
        };
        let spec = profile::resolve(&cfg).unwrap();
        assert!(
            spec.devices.iter().all(|d| d.kind.pin().is_none()),
            "{name}: a fresh install must not drive any pin"
        );
        assert!(spec.device("cpu_temp").is_some());
    }
}

#[test]
fn pi_profiles_need_the_rppal_backend_off_arm() {
    let cfg = BoardConfig {
        profile: "pi-4b".into(),
        ..BoardConfig::default()
    };
    let r = profile::resolve(&cfg);
    if pinclaw::board::RPPAL_COMPILED {
        assert!(r.is_ok());
    } else {
        assert!(
            matches!(r, Err(ConfigError::BackendUnavailable { .. })),
            "{r:?}"
        );
    }
}

fn root_with_model(fixture: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sensors")
        .join(fixture);
    let dest = dir.path().join("proc/device-tree");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::copy(src, dest.join("model")).unwrap();
    dir
}

#[test]
fn auto_picks_the_profile_from_the_device_tree_model() {
    let dir = root_with_model("model_pi4b");
    let cfg = BoardConfig {
        sysfs_root: Some(dir.path().to_path_buf()),
        simulate: true,
        ..BoardConfig::default()
    };
    let spec = profile::resolve(&cfg).unwrap();
    assert_eq!(spec.profile.name, "pi-4b");
    assert_eq!(
        spec.model.as_deref(),
        Some("Raspberry Pi 4 Model B Rev 1.4")
    );

    // A Pi 2 has the Pi 3's header and peripherals.
    let dir = root_with_model("model_pi2");
    let cfg = BoardConfig {
        sysfs_root: Some(dir.path().to_path_buf()),
        simulate: true,
        ..BoardConfig::default()
    };
    assert_eq!(profile::resolve(&cfg).unwrap().profile.name, "pi-3b");

    // A Compute Module's carrier decides its pins: no profile guesses them.
    let dir = root_with_model("model_cm4");
    let cfg = BoardConfig {
        sysfs_root: Some(dir.path().to_path_buf()),
        ..BoardConfig::default()
    };
    assert!(
        matches!(err(&cfg), ConfigError::UnsupportedModel { model } if model.starts_with("Raspberry Pi Compute Module 4"))
    );

    // No model file: not a Pi, the simulator.
    let empty = tempfile::tempdir().unwrap();
    let cfg = BoardConfig {
        sysfs_root: Some(empty.path().to_path_buf()),
        ..BoardConfig::default()
    };
    assert_eq!(profile::resolve(&cfg).unwrap().profile.name, "sim");
}

#[test]
fn unknown_profile_lists_the_known_ones() {
    let cfg = BoardConfig {
        profile: "pi-6".into(),
        ..BoardConfig::default()
    };
    let e = err(&cfg);
    assert!(
        e.to_string()
            .contains("pi-zero-2w, pi-zero, pi-3b, pi-4b, pi-5, sim"),
        "{e}"
    );
}

#[test]
fn pin_not_on_the_header_is_refused() {
    let e = err(&sim_cfg(vec![output("lamp", 40)]));
    assert_eq!(
        e,
        ConfigError::UnknownPin {
            device: "lamp".into(),
            pin: 40,
            profile: "sim".into()
        }
    );
    // GPIO 0/1 are the HAT EEPROM pins.
    assert!(matches!(
        err(&sim_cfg(vec![output("lamp", 0)])),
        ConfigError::UnknownPin { .. }
    ));
}

#[test]
fn pin_used_twice_names_both_users() {
    // relay1 (pin 17) is in the sim demo set.
    let e = err(&sim_cfg(vec![output("lamp", 17)]));
    assert_eq!(
        e,
        ConfigError::PinUsedTwice {
            pin: 17,
            first: "relay1".into(),
            second: "lamp".into()
        }
    );
    // SDA of i2c-1 while a BME280 uses the bus.
    let e = err(&sim_cfg(vec![output("lamp", 2)]));
    assert!(
        matches!(&e, ConfigError::PinUsedTwice { pin: 2, first, .. } if first.contains("i2c-1")),
        "{e}"
    );
    // The 1-Wire pin while a DS18B20 is declared.
    let e = err(&sim_cfg(vec![output("lamp", 4)]));
    assert!(
        matches!(&e, ConfigError::PinUsedTwice { pin: 4, .. }),
        "{e}"
    );
}

#[test]
fn config_device_replaces_the_profile_one_by_name() {
    let mut relay = output("relay1", 23);
    relay.confirm = Some(true);
    let spec = profile::resolve(&sim_cfg(vec![relay])).unwrap();
    assert!(matches!(
        spec.device("relay1").unwrap().kind,
        DeviceKind::Output {
            pin: 23,
            confirm: true,
            ..
        }
    ));
    // Pin 17 is free again.
    profile::resolve(&sim_cfg(vec![output("relay1", 23), output("lamp", 17)])).unwrap();
    // But a name twice in config is an error.
    assert_eq!(
        err(&sim_cfg(vec![output("lamp", 5), output("lamp", 6)])),
        ConfigError::DuplicateDevice {
            name: "lamp".into()
        }
    );
    // And `disabled = true` removes a profile device.
    let off = DeviceSpec {
        disabled: Some(true),
        ..output("relay1", 17)
    };
    assert!(
        profile::resolve(&sim_cfg(vec![off]))
            .unwrap()
            .device("relay1")
            .is_none()
    );
}

#[test]
fn fields_must_fit_the_kind() {
    let mut bad = output("lamp", 5);
    bad.address = Some(0x40);
    assert_eq!(
        err(&sim_cfg(vec![bad])),
        ConfigError::FieldNotAllowed {
            device: "lamp".into(),
            kind: "output",
            field: "address"
        }
    );
    let no_pin = DeviceSpec {
        pin: None,
        ..output("lamp", 5)
    };
    assert_eq!(
        err(&sim_cfg(vec![no_pin])),
        ConfigError::MissingField {
            device: "lamp".into(),
            kind: "output",
            field: "pin"
        }
    );
    let sensor = DeviceSpec {
        name: "attic".into(),
        kind: Some(DeviceKindName::Bme280),
        bus: Some(3),
        address: Some(0x77),
        ..DeviceSpec::default()
    };
    assert!(matches!(
        err(&sim_cfg(vec![sensor.clone()])),
        ConfigError::UnknownBus { bus: 3, .. }
    ));
    let clash = DeviceSpec {
        bus: Some(1),
        address: Some(0x76),
        ..sensor.clone()
    };
    assert!(matches!(
        err(&sim_cfg(vec![clash])),
        ConfigError::AddressUsedTwice { address: 0x76, .. }
    ));
    let pwm = DeviceSpec {
        name: "dimmer".into(),
        kind: Some(DeviceKindName::Pwm),
        pin: Some(5),
        ..DeviceSpec::default()
    };
    assert!(matches!(
        err(&sim_cfg(vec![pwm])),
        ConfigError::NotPwmCapable { pin: 5, .. }
    ));
    // The sim's `fan` is on pin 18 = channel 0, which pin 12 shares.
    let pwm12 = DeviceSpec {
        name: "dimmer".into(),
        kind: Some(DeviceKindName::Pwm),
        pin: Some(12),
        ..DeviceSpec::default()
    };
    assert_eq!(
        err(&sim_cfg(vec![pwm12])),
        ConfigError::PwmChannelUsedTwice {
            channel: 0,
            first: "fan".into(),
            second: "dimmer".into()
        }
    );
    let probe = DeviceSpec {
        name: "probe".into(),
        kind: Some(DeviceKindName::Ds18b20),
        id: Some("../../etc/passwd".into()),
        ..DeviceSpec::default()
    };
    assert!(matches!(
        err(&sim_cfg(vec![probe])),
        ConfigError::InvalidValue { .. }
    ));
    let escape = DeviceSpec {
        name: "porch2".into(),
        kind: Some(DeviceKindName::Dht22),
        path: Some("/etc".into()),
        ..DeviceSpec::default()
    };
    assert!(matches!(
        err(&sim_cfg(vec![escape])),
        ConfigError::InvalidValue { .. }
    ));
    assert!(matches!(
        err(&sim_cfg(vec![output("Bad Name", 5)])),
        ConfigError::InvalidValue { .. }
    ));
}

#[test]
fn enable_must_name_a_profile_device() {
    let cfg = BoardConfig {
        profile: "pi-4b".into(),
        simulate: true,
        enable: vec!["relay7".into()],
        ..BoardConfig::default()
    };
    assert_eq!(
        err(&cfg),
        ConfigError::UnknownEnable {
            name: "relay7".into()
        }
    );
}

#[test]
fn too_many_devices_is_refused() {
    let devices = (0..30).map(|i| DeviceSpec {
        name: format!("probe{i}"),
        kind: Some(DeviceKindName::Ds18b20),
        id: Some(format!("28-{i:012x}")),
        ..DeviceSpec::default()
    });
    let e = err(&sim_cfg(devices.collect()));
    assert!(
        matches!(e, ConfigError::TooManyDevices { max: 32, .. }),
        "{e}"
    );
}

#[test]
fn board_section_parses_from_toml_and_rejects_unknown_keys() {
    let cfg = profile::parse_config(
        r#"
profile = "pi-5"
simulate = true
enable = ["button1"]

[[devices]]
name = "heater"
kind = "output"
pin = 23
active_low = true
confirm = true
max_writes_per_minute = 4

[[devices]]
name = "attic"
kind = "sht31"
bus = 1
address = 0x44
"#,
    )
    .unwrap();
    let spec = profile::resolve(&cfg).unwrap();
    assert_eq!(spec.profile.name, "pi-5");
    assert!(matches!(
        spec.device("heater").unwrap().kind,
        DeviceKind::Output {
            confirm: true,
            max_writes_per_minute: 4,
            ..
        }
    ));
    assert!(matches!(
        spec.device("attic").unwrap().kind,
        DeviceKind::Sht31 {
            bus: 1,
            address: 0x44
        }
    ));
    assert!(spec.device("button1").is_some());
    assert!(spec.device("relay1").is_none());

    let e = profile::parse_config("profile = \"sim\"\nsysfs_rot = \"/tmp\"\n").unwrap_err();
    assert_eq!(e.code(), "BOARD_CONFIG");
    let msg = e.to_string();
    assert!(msg.contains("sysfs_rot") && msg.contains("line 2"), "{msg}");

    let e = profile::parse_config("[[devices]]\nname = \"x\"\nkind = \"relay\"\npinn = 3\n")
        .unwrap_err();
    assert!(e.to_string().contains("line"), "{e}");
}

#[test]
fn from_config_surfaces_config_errors_as_board_errors() {
    let e = DeviceTable::from_config(&sim_cfg(vec![output("lamp", 17)])).unwrap_err();
    assert!(matches!(
        e,
        BoardError::Config(ConfigError::PinUsedTwice { .. })
    ));
    assert_eq!(e.code(), "BOARD_CONFIG");
}

#[test]
fn every_pi_finds_its_profile_by_its_model_string() {
    for (model, profile) in [
        ("Raspberry Pi Zero W Rev 1.1", "pi-zero"),
        ("Raspberry Pi Zero Rev 1.3", "pi-zero"),
        ("Raspberry Pi Model B Plus Rev 1.2", "pi-zero"),
        ("Raspberry Pi Model A Plus Rev 1.1", "pi-zero"),
        ("Raspberry Pi Zero 2 W Rev 1.0", "pi-zero-2w"),
        ("Raspberry Pi 3 Model B Rev 1.2", "pi-3b"),
        ("Raspberry Pi 3 Model B Plus Rev 1.3", "pi-3b"),
        ("Raspberry Pi 3 Model A Plus Rev 1.0", "pi-3b"),
        ("Raspberry Pi 2 Model B Rev 1.1", "pi-3b"),
        ("Raspberry Pi 4 Model B Rev 1.4", "pi-4b"),
        ("Raspberry Pi 5 Model B Rev 1.0", "pi-5"),
    ] {
        let found = profile::Profile::for_model(model)
            .unwrap()
            .map(|p| p.name)
            .unwrap_or_default();
        assert_eq!(found, profile, "{model}");
    }
}
