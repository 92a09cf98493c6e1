//! The board's OpenClaw command surface (the node layer's `BoardCommands`):
//! JSON params in, the same JSON payloads and error codes as OpenClaw
//! clients see, approvals for `confirm = true` outputs, a schema per command.

mod board_support;

use std::sync::Arc;

use board_support::{auto_config, frozen, guarded_relay1, settle, sim_config, sim_table};
use pinclaw::board::sim::SimBoard;
use pinclaw::board::{DeviceSpec, Level};
use pinclaw::node::BoardCommands;
use pinclaw::node::board_commands::{COMMANDS, SIM_COMMANDS, command_schemas};
use serde_json::{Value, json};

/// The sim profile with its demo devices, plus config devices, behind the
/// command surface, and a handle on the simulator to script it.
fn sim_node(devices: Vec<DeviceSpec>) -> (BoardCommands, Arc<SimBoard>) {
    let (table, sim) = sim_table(devices);
    (BoardCommands::new(Arc::new(table)), sim)
}

async fn call(node: &BoardCommands, command: &str, params: Value) -> Value {
    node.invoke(command, params)
        .await
        .unwrap_or_else(|e| panic!("{command}: {e}"))
}

async fn call_err(node: &BoardCommands, command: &str, params: Value) -> &'static str {
    match node.invoke(command, params).await {
        Ok(v) => panic!("{command} succeeded: {v}"),
        Err(e) => e.code(),
    }
}

const RELAY1: u8 = 17;

#[tokio::test]
async fn board_info_and_sensors_list_keep_their_payloads() {
    let empty = tempfile::tempdir().unwrap();
    let node = BoardCommands::from_config(&auto_config(empty.path())).unwrap();
    let info = call(&node, "board.info", Value::Null).await;
    assert_eq!(info["backend"], "sim");
    assert_eq!(info["profile"], "sim");
    assert_eq!(info["model"], "pinclaw simulated board");
    assert_eq!(info["commands"], json!(COMMANDS));
    assert_eq!(
        (info["edgeDrops"].as_u64(), info["edgesDebounced"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(info["sysfsRoot"].is_string());
    let device = |name: &str| {
        info["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from {info}"))
    };
    assert_eq!(
        device("relay1"),
        json!({"name": "relay1", "kind": "output", "label": "Relay channel 1 (active-low relay board)",
               "pin": 17, "activeLow": true, "confirm": false, "maxWritesPerMinute": 30})
    );
    assert_eq!(
        device("button1"),
        json!({"name": "button1", "kind": "input", "label": "Push button to ground",
               "pin": 27, "pull": "up", "edge": "both", "debounceMs": 50, "activeLow": true,
               "class": "button"})
    );
    assert_eq!(device("fan")["hz"], json!(25000.0));
    assert_eq!(device("room")["address"], "0x76");
    assert_eq!(device("room")["bus"], 1);
    assert_eq!(device("water")["id"], "28-0000075c293f");
    assert_eq!(
        device("cpu_temp"),
        json!({"name": "cpu_temp", "kind": "cpu_temp", "label": "SoC temperature"})
    );

    // The simulator adds `sim.set` to the real board's commands.
    assert_eq!(node.commands(), SIM_COMMANDS);
    assert_eq!(&SIM_COMMANDS[..COMMANDS.len()], COMMANDS);
    let schemas = command_schemas();
    let described: Vec<&str> = schemas
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["command"].as_str())
        .collect();
    assert_eq!(described, COMMANDS, "every command has a schema");

    let list = call(&node, "sensors.list", json!({})).await;
    let sensors = list["sensors"].as_array().unwrap();
    assert!(sensors.iter().all(|s| s["name"] != "relay1"));
    let room = sensors.iter().find(|s| s["name"] == "room").unwrap();
    assert_eq!(
        room,
        &json!({"name": "room", "kind": "bme280", "label": "Room climate (BME280)",
                "quantities": ["temperature", "humidity", "pressure"]})
    );
}

#[tokio::test]
async fn gpio_read_and_write_payloads_and_the_on_off_forms() {
    let (node, sim) = sim_node(vec![]);
    // Initial state: off, so an active-low relay's pin is high.
    assert_eq!(sim.level(RELAY1), Some(Level::High));
    let r = call(&node, "gpio.read", json!({"name": "relay1"})).await;
    assert_eq!(
        r,
        json!({"name": "relay1", "value": false, "level": "high"})
    );

    let w = call(
        &node,
        "gpio.write",
        json!({"name": "relay1", "value": true}),
    )
    .await;
    assert_eq!(w, json!({"name": "relay1", "value": true}));
    assert_eq!(sim.level(RELAY1), Some(Level::Low));
    let r = call(&node, "gpio.read", json!({"name": "relay1"})).await;
    assert_eq!(r["value"], json!(true));
    assert_eq!(r["level"], json!("low"));

    call(
        &node,
        "gpio.write",
        json!({"name": "relay1", "value": "off"}),
    )
    .await;
    assert_eq!(
        call(&node, "gpio.read", json!({"name": "relay1"})).await["value"],
        json!(false)
    );
    call(&node, "gpio.write", json!({"name": "relay1", "value": 1})).await;
    assert_eq!(
        call(&node, "gpio.read", json!({"name": "relay1"})).await["value"],
        json!(true)
    );
}

#[tokio::test]
async fn bad_calls_get_specific_errors_and_touch_nothing() {
    let (node, sim) = sim_node(vec![]);
    let before = sim.writes(RELAY1);
    assert_eq!(
        call_err(
            &node,
            "gpio.write",
            json!({"name": "relay9", "value": true})
        )
        .await,
        "UNKNOWN_DEVICE"
    );
    assert_eq!(
        call_err(
            &node,
            "gpio.write",
            json!({"name": "button1", "value": true})
        )
        .await,
        "NOT_AN_OUTPUT"
    );
    assert_eq!(
        call_err(&node, "gpio.write", json!({"name": "room", "value": true})).await,
        "NOT_AN_OUTPUT"
    );
    assert_eq!(
        call_err(&node, "gpio.write", json!({"name": "relay1"})).await,
        "INVALID_PARAMS"
    );
    assert_eq!(
        call_err(
            &node,
            "gpio.write",
            json!({"name": "relay1", "value": "maybe"})
        )
        .await,
        "INVALID_PARAMS"
    );
    assert_eq!(
        call_err(&node, "gpio.write", json!({"name": "relay1", "value": 2})).await,
        "OUT_OF_RANGE"
    );
    assert_eq!(
        call_err(
            &node,
            "gpio.write",
            json!({"name": "relay1", "value": true, "pin": 4})
        )
        .await,
        "INVALID_PARAMS"
    );
    assert_eq!(
        call_err(&node, "gpio.pulse", json!({"name": "relay1", "ms": 0})).await,
        "OUT_OF_RANGE"
    );
    assert_eq!(
        call_err(&node, "gpio.pulse", json!({"name": "relay1", "ms": 600000})).await,
        "OUT_OF_RANGE"
    );
    assert_eq!(
        call_err(&node, "gpio.read", json!({"name": "room"})).await,
        "NOT_A_PIN"
    );
    assert_eq!(
        call_err(&node, "sensors.read", json!({"name": "relay1"})).await,
        "NOT_A_SENSOR"
    );
    assert_eq!(
        call_err(&node, "sensors.read", json!({})).await,
        "INVALID_PARAMS"
    );
    assert_eq!(
        call_err(&node, "pwm.set", json!({"name": "fan", "duty": 1.5})).await,
        "OUT_OF_RANGE"
    );
    assert_eq!(
        call_err(&node, "pwm.set", json!({"name": "fan", "duty": -0.1})).await,
        "OUT_OF_RANGE"
    );
    assert_eq!(
        call_err(
            &node,
            "pwm.set",
            json!({"name": "fan", "duty": 0.5, "hz": 0})
        )
        .await,
        "OUT_OF_RANGE"
    );
    assert_eq!(
        call_err(&node, "pwm.set", json!({"name": "fan", "duty": "half"})).await,
        "INVALID_PARAMS"
    );
    assert_eq!(
        call_err(&node, "pwm.set", json!({"name": "relay1", "duty": 0.5})).await,
        "NOT_PWM"
    );
    assert_eq!(
        call_err(&node, "gpio.explode", json!({})).await,
        "UNKNOWN_COMMAND"
    );
    assert_eq!(sim.writes(RELAY1), before, "no bad call reached the pin");
}

#[tokio::test]
async fn pwm_set_payload_with_the_default_and_a_given_frequency() {
    let (node, sim) = sim_node(vec![]);
    let r = call(&node, "pwm.set", json!({"name": "fan", "duty": 0.5})).await;
    assert_eq!(r, json!({"name": "fan", "duty": 0.5, "hz": 25000.0}));
    assert_eq!(sim.pwm(18), Some((0.5, 25000.0)));
    call(
        &node,
        "pwm.set",
        json!({"name": "fan", "duty": 1.0, "hz": 100}),
    )
    .await;
    assert_eq!(sim.pwm(18), Some((1.0, 100.0)));
}

#[tokio::test]
async fn sensors_read_payloads_of_i2c_sensors_and_a_nack() {
    let (node, sim) = sim_node(vec![]);
    let r = call(&node, "sensors.read", json!({"name": "room"})).await;
    // The simulated BME280 carries the datasheet example: 25.08 °C, 1006.53 hPa.
    assert_eq!(r["name"], "room");
    assert_eq!(r["value"], json!(25.08));
    assert_eq!(r["unit"], "°C");
    assert_eq!(
        r["readings"]["temperature"],
        json!({"value": 25.08, "unit": "°C"})
    );
    let hpa = r["readings"]["pressure"]["value"].as_f64().unwrap();
    assert!((hpa - 1006.53).abs() < 0.01, "{hpa}");
    let rh = r["readings"]["humidity"]["value"].as_f64().unwrap();
    assert!((rh - 55.0).abs() < 0.1, "{rh}");

    let r = call(&node, "sensors.read", json!({"name": "shed"})).await;
    assert!((r["value"].as_f64().unwrap() - 21.5).abs() < 0.01, "{r}");
    assert_eq!(r["readings"]["humidity"]["unit"], "%");

    sim.remove_i2c_device(1, 0x76);
    assert_eq!(
        call_err(&node, "sensors.read", json!({"name": "room"})).await,
        "I2C_NACK"
    );
}

#[tokio::test]
async fn sensors_read_payloads_of_file_sensors_and_unknown_throttling() {
    let (node, sim) = sim_node(vec![]);
    assert_eq!(
        call(&node, "sensors.read", json!({"name": "cpu_temp"})).await["value"],
        json!(48.312)
    );
    assert_eq!(
        call(&node, "sensors.read", json!({"name": "water"})).await["value"],
        json!(23.125)
    );
    let t = call(&node, "sensors.read", json!({"name": "throttled"})).await;
    assert_eq!(t["value"], json!(0x50000));
    assert_eq!(t["detail"]["state"], "ok");
    sim.remove_file("sys/devices/platform/soc/soc:firmware/get_throttled");
    let t = call(&node, "sensors.read", json!({"name": "throttled"})).await;
    assert_eq!(t["value"], Value::Null);
    assert_eq!(t["detail"]["state"], "unknown");
    sim.set_file(
        "sys/bus/w1/devices/28-0000075c293f/w1_slave",
        "ff ff ff ff ff ff ff ff ff : crc=c9 NO\nff ff ff ff ff ff ff ff ff t=-62\n",
    );
    let e = node
        .invoke("sensors.read", json!({"name": "water"}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "CRC_MISMATCH");
}

#[tokio::test]
async fn confirm_outputs_need_approval_and_never_write_without_it() {
    let (node, sim) = sim_node(vec![guarded_relay1()]);
    let before = sim.writes(RELAY1);

    let params = json!({"name": "relay1", "value": true});
    let req = node.confirmation("gpio.write", &params).unwrap().unwrap();
    assert_eq!(req.device, "relay1");
    assert_eq!(req.summary, "gpio.write relay1 = on");
    assert_eq!(req.command, "gpio.write");
    let pulse = json!({"name": "relay1", "ms": 10});
    let req = node.confirmation("gpio.pulse", &pulse).unwrap().unwrap();
    assert_eq!(req.summary, "gpio.pulse relay1 for 10 ms");
    assert_eq!(
        call_err(&node, "gpio.write", params.clone()).await,
        "CONFIRMATION_REQUIRED"
    );
    assert_eq!(
        call_err(&node, "gpio.pulse", json!({"name": "relay1", "ms": 10})).await,
        "CONFIRMATION_REQUIRED"
    );
    assert_eq!(sim.writes(RELAY1), before, "no write without approval");

    // Reads and other outputs need no approval; bad params fail before asking.
    assert!(
        node.confirmation("gpio.read", &json!({"name": "relay1"}))
            .unwrap()
            .is_none()
    );
    assert!(
        node.confirmation("pwm.set", &json!({"name": "fan", "duty": 0.2}))
            .unwrap()
            .is_none()
    );
    assert_eq!(
        node.confirmation("gpio.write", &json!({"name": "relay1"}))
            .unwrap_err()
            .code(),
        "INVALID_PARAMS"
    );
    assert_eq!(
        node.confirmation("nope", &json!({})).unwrap_err().code(),
        "UNKNOWN_COMMAND"
    );

    let r = node.invoke_approved("gpio.write", params).await.unwrap();
    assert_eq!(r["value"], json!(true));
    assert_eq!(sim.level(RELAY1), Some(Level::Low));
}

#[tokio::test(start_paused = true)]
async fn pulse_payloads_say_how_the_pulse_ended() {
    let (node, sim) = sim_node(vec![]);
    let r = call(&node, "gpio.pulse", json!({"name": "relay1", "ms": 750})).await;
    assert_eq!(r, json!({"name": "relay1", "ms": 750, "value": false}));

    let node = Arc::new(node);
    let n = Arc::clone(&node);
    let pulse = tokio::spawn(async move {
        n.invoke("gpio.pulse", json!({"name": "relay1", "ms": 10_000}))
            .await
    });
    settle("pulse switched it on", || {
        sim.level(RELAY1) == Some(Level::Low)
    })
    .await;
    frozen(call(
        &node,
        "gpio.write",
        json!({"name": "relay1", "value": true}),
    ))
    .await;
    let r = pulse.await.unwrap().unwrap();
    assert_eq!(
        r,
        json!({"name": "relay1", "ms": 10_000, "superseded": true})
    );
}

#[test]
fn the_node_and_its_futures_can_cross_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let node = BoardCommands::from_config(&sim_config(vec![])).unwrap();
    send_sync(&node);
    send(node.invoke("board.info", json!({})));
    send(node.invoke_approved("gpio.write", json!({})));
}
