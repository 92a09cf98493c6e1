//! The simulated board end to end at the command-surface level: what the
//! node layer will call.

mod board_support;

use std::sync::Arc;
use std::time::Duration;

use board_support::{frozen, poll_once, settle};
use pinclaw::board::profile::{self, DeviceKindName};
use pinclaw::board::sim::{SimBoard, SimStep};
use pinclaw::board::{BoardConfig, DeviceSpec, EDGE_QUEUE, Edge, EdgeEvent, Level, LocalBoardNode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The sim profile with its demo devices, plus config devices, and a handle
/// on the simulator to script it.
fn sim_node(devices: Vec<DeviceSpec>) -> (LocalBoardNode, Arc<SimBoard>) {
    let cfg = BoardConfig {
        profile: "sim".into(),
        devices,
        ..BoardConfig::default()
    };
    let spec = profile::resolve(&cfg).unwrap();
    let sim = Arc::new(SimBoard::for_spec(&spec));
    let node = LocalBoardNode::new_sim(Arc::clone(&sim), spec).unwrap();
    assert!(Arc::ptr_eq(node.sim().unwrap(), &sim));
    (node, sim)
}

async fn call(node: &LocalBoardNode, command: &str, params: Value) -> Value {
    node.invoke(command, params)
        .await
        .unwrap_or_else(|e| panic!("{command}: {e}"))
}

async fn call_err(node: &LocalBoardNode, command: &str, params: Value) -> &'static str {
    match node.invoke(command, params).await {
        Ok(v) => panic!("{command} succeeded: {v}"),
        Err(e) => e.code(),
    }
}

fn drain(rx: &mut mpsc::Receiver<EdgeEvent>) -> Vec<EdgeEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

const RELAY1: u8 = 17;
const BUTTON1: u8 = 27;
const PIR1: u8 = 22;

#[tokio::test]
async fn default_config_runs_the_sim_with_the_demo_set() {
    // Off a Pi (no device-tree model naming one), `auto` picks the simulator.
    // The root is an empty temp dir so the test means the same on a real Pi.
    let empty = tempfile::tempdir().unwrap();
    let cfg = BoardConfig {
        sysfs_root: Some(empty.path().to_path_buf()),
        ..BoardConfig::default()
    };
    let node = LocalBoardNode::from_config(&cfg).unwrap();
    let info = call(&node, "board.info", Value::Null).await;
    assert_eq!(info["backend"], "sim");
    assert_eq!(info["profile"], "sim");
    let names: Vec<&str> = info["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    for want in [
        "cpu_temp",
        "room",
        "relay1",
        "button1",
        "pir1",
        "water",
        "throttled",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert_eq!(node.commands(), pinclaw::board::COMMANDS);
    let schemas = pinclaw::board::command_schemas();
    let described: Vec<&str> = schemas
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["command"].as_str())
        .collect();
    assert_eq!(described, node.commands(), "every command has a schema");

    let list = call(&node, "sensors.list", json!({})).await;
    let sensors = list["sensors"].as_array().unwrap();
    assert!(sensors.iter().all(|s| s["name"] != "relay1"));
    let room = sensors.iter().find(|s| s["name"] == "room").unwrap();
    assert_eq!(
        room["quantities"],
        json!(["temperature", "humidity", "pressure"])
    );
}

#[tokio::test]
async fn relay_write_reads_back_and_drives_the_active_low_pin() {
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
async fn pwm_set_reaches_the_pin() {
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
async fn i2c_sensors_read_through_the_drivers_and_nack_when_absent() {
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
    let e = node
        .invoke("sensors.read", json!({"name": "room"}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "I2C_NACK");
    assert!(e.to_string().contains("0x76"), "{e}");
}

#[tokio::test]
async fn demo_file_sensors_and_unknown_throttling() {
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
async fn scripted_edges_arrive_debounced() {
    let (node, sim) = sim_node(vec![]);
    let mut rx = node.take_events().unwrap();
    assert!(node.take_events().is_none(), "only one consumer");
    let ms = Duration::from_millis;

    // button1: pull-up, active-low, 50 ms debounce. A press that bounces.
    assert!(sim.inject(BUTTON1, Level::Low, ms(1000)).unwrap());
    assert!(!sim.inject(BUTTON1, Level::High, ms(1003)).unwrap());
    assert!(!sim.inject(BUTTON1, Level::Low, ms(1008)).unwrap());
    // The release, well after the window.
    assert!(sim.inject(BUTTON1, Level::High, ms(1400)).unwrap());

    // pir1: 200 ms debounce; motion then a glitch inside the window.
    assert!(sim.inject(PIR1, Level::High, ms(2000)).unwrap());
    assert!(!sim.inject(PIR1, Level::Low, ms(2100)).unwrap());
    // Back to high after the swallowed glitch: nothing new to report.
    assert!(!sim.inject(PIR1, Level::High, ms(2300)).unwrap());
    // Motion ends.
    assert!(sim.inject(PIR1, Level::Low, ms(4000)).unwrap());

    let events = drain(&mut rx);
    let summary: Vec<(&str, Edge, bool)> = events
        .iter()
        .map(|e| (e.device.as_str(), e.edge, e.active))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("button1", Edge::Falling, true),
            ("button1", Edge::Rising, false),
            ("pir1", Edge::Rising, true),
            ("pir1", Edge::Falling, false),
        ]
    );
    assert_eq!(node.edges_debounced(), 4);
    assert!(events.iter().all(|e| e.ts > 0));

    // gpio.read shows the input's logical state.
    sim.inject(BUTTON1, Level::Low, ms(5000)).unwrap();
    let r = call(&node, "gpio.read", json!({"name": "button1"})).await;
    assert_eq!(
        r["value"],
        json!(true),
        "pressed = low on an active-low button"
    );
}

#[tokio::test]
async fn a_full_event_queue_drops_and_counts() {
    let (node, sim) = sim_node(vec![]);
    let mut rx = node.take_events().unwrap();
    let n = EDGE_QUEUE as u64 + 10;
    for i in 0..n {
        let level = if i % 2 == 0 { Level::High } else { Level::Low };
        sim.inject(PIR1, level, Duration::from_secs(10 + i))
            .unwrap();
    }
    assert_eq!(drain(&mut rx).len(), EDGE_QUEUE);
    assert_eq!(node.edge_drops(), 10);
    let info = call(&node, "board.info", json!({})).await;
    assert_eq!(info["edgeDrops"], json!(10));
}

#[tokio::test(start_paused = true)]
async fn outputs_are_rate_limited_per_device() {
    let limited = DeviceSpec {
        name: "lamp".into(),
        kind: Some(DeviceKindName::Output),
        pin: Some(5),
        max_writes_per_minute: Some(3),
        ..DeviceSpec::default()
    };
    let (node, sim) = sim_node(vec![limited]);
    for i in 0..3 {
        call(
            &node,
            "gpio.write",
            json!({"name": "lamp", "value": i % 2 == 0}),
        )
        .await;
    }
    let e = node
        .invoke("gpio.write", json!({"name": "lamp", "value": true}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "RATE_LIMITED");
    let pinclaw::board::BoardError::RateLimited { retry_after_ms, .. } = e else {
        unreachable!()
    };
    // 3 per minute = one token every 20 s.
    assert!(
        (19_000..=20_000).contains(&retry_after_ms),
        "{retry_after_ms}"
    );
    assert_eq!(sim.writes(5), 3, "the limited write never happened");
    // Other outputs have their own budget.
    call(
        &node,
        "gpio.write",
        json!({"name": "relay1", "value": true}),
    )
    .await;

    tokio::time::advance(Duration::from_secs(21)).await;
    call(&node, "gpio.write", json!({"name": "lamp", "value": true})).await;
    assert_eq!(sim.writes(5), 4);
}

#[tokio::test(start_paused = true)]
async fn pulse_turns_on_then_off() {
    let (node, sim) = sim_node(vec![]);
    let writes = sim.writes(RELAY1);
    let start = tokio::time::Instant::now();
    let r = call(&node, "gpio.pulse", json!({"name": "relay1", "ms": 750})).await;
    assert_eq!(r, json!({"name": "relay1", "ms": 750, "value": false}));
    assert!(start.elapsed() >= Duration::from_millis(750));
    assert_eq!(sim.writes(RELAY1), writes + 2, "on, then off");
    assert_eq!(
        sim.level(RELAY1),
        Some(Level::High),
        "active-low relay back off"
    );
}

#[tokio::test]
async fn an_abandoned_pulse_still_switches_off() {
    let (node, sim) = sim_node(vec![]);
    let writes = sim.writes(RELAY1);
    let mut call = Box::pin(node.invoke("gpio.pulse", json!({"name": "relay1", "ms": 50})));
    assert!(poll_once(&mut call).await.is_pending(), "the pulse started");
    drop(call);
    settle("the abandoned pulse switched on, then off", || {
        sim.writes(RELAY1) == writes + 2
    })
    .await;
    assert_eq!(
        sim.level(RELAY1),
        Some(Level::High),
        "relay off after the pulse"
    );
}

#[tokio::test]
async fn confirm_outputs_need_approval_and_never_write_without_it() {
    let guarded = DeviceSpec {
        name: "relay1".into(),
        kind: Some(DeviceKindName::Output),
        pin: Some(RELAY1),
        active_low: Some(true),
        confirm: Some(true),
        ..DeviceSpec::default()
    };
    let (node, sim) = sim_node(vec![guarded]);
    let before = sim.writes(RELAY1);

    let params = json!({"name": "relay1", "value": true});
    let req = node.confirmation("gpio.write", &params).unwrap().unwrap();
    assert_eq!(req.device, "relay1");
    assert_eq!(req.summary, "gpio.write relay1 = on");
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

#[tokio::test]
async fn shutdown_switches_every_output_off() {
    let (node, sim) = sim_node(vec![]);
    call(
        &node,
        "gpio.write",
        json!({"name": "relay1", "value": true}),
    )
    .await;
    call(&node, "pwm.set", json!({"name": "fan", "duty": 0.8})).await;
    assert_eq!(sim.level(RELAY1), Some(Level::Low));
    node.shutdown().unwrap();
    assert_eq!(sim.level(RELAY1), Some(Level::High), "active-low relay off");
    assert_eq!(sim.pwm(18), Some((0.0, 25000.0)));
}

#[tokio::test(start_paused = true)]
async fn a_scripted_demo_plays_motion_through_the_node_built_from_config() {
    let cfg = BoardConfig {
        profile: "sim".into(),
        ..BoardConfig::default()
    };
    let node = LocalBoardNode::from_config(&cfg).unwrap();
    let mut rx = node.take_events().unwrap();
    let sim = Arc::clone(node.sim().expect("sim backend"));
    let s = Duration::from_secs;
    let steps = vec![
        SimStep {
            after: s(5),
            pin: PIR1,
            level: Level::High,
        },
        SimStep {
            after: s(3),
            pin: PIR1,
            level: Level::Low,
        },
    ];
    sim.play(steps, 2).await.unwrap().unwrap();
    let events = drain(&mut rx);
    let seen: Vec<(Edge, bool)> = events.iter().map(|e| (e.edge, e.active)).collect();
    assert_eq!(
        seen,
        vec![
            (Edge::Rising, true),
            (Edge::Falling, false),
            (Edge::Rising, true),
            (Edge::Falling, false),
        ]
    );
    assert!(events.iter().all(|e| e.device == "pir1"));
    let r = call(&node, "gpio.read", json!({"name": "pir1"})).await;
    assert_eq!(r["value"], json!(false));
}

#[tokio::test(start_paused = true)]
async fn a_write_during_a_pulse_wins_at_once() {
    let (node, sim) = sim_node(vec![]);
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

    // The operator switches it off mid-pulse: effective immediately (the
    // clock stands still while the write runs, so the pulse cannot end).
    frozen(call(
        &node,
        "gpio.write",
        json!({"name": "relay1", "value": false}),
    ))
    .await;
    assert!(!pulse.is_finished(), "did not wait for the pulse");
    assert_eq!(sim.level(RELAY1), Some(Level::High));
    // ...and on again; the pulse's end must not switch it off.
    frozen(call(
        &node,
        "gpio.write",
        json!({"name": "relay1", "value": true}),
    ))
    .await;
    let r = pulse.await.unwrap().unwrap();
    assert_eq!(r["superseded"], json!(true));
    assert_eq!(
        sim.level(RELAY1),
        Some(Level::Low),
        "still on after the pulse ended"
    );
}

#[test]
fn the_node_and_its_futures_can_cross_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let cfg = BoardConfig {
        profile: "sim".into(),
        ..BoardConfig::default()
    };
    let node = LocalBoardNode::from_config(&cfg).unwrap();
    send_sync(&node);
    send(node.invoke("board.info", json!({})));
    send(node.invoke_approved("gpio.write", json!({})));
}
