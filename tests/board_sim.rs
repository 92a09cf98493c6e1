//! The simulated board end to end through the board's typed API (the
//! `DeviceTable`): reads, planned and executed writes, rate limits, pulses,
//! edges and shutdown. The JSON command surface over it is tested in
//! `board_commands.rs`.

mod board_support;

use std::sync::Arc;
use std::time::Duration;

use board_support::{
    auto_config, frozen, guarded_relay1, poll_once, settle, sim_config, sim_table,
};
use pinclaw::board::profile::DeviceKindName;
use pinclaw::board::sim::SimStep;
use pinclaw::board::{
    BoardError, DeviceSpec, DeviceTable, Edge, EdgeEvent, Level, PinState, PlannedWrite, Quantity,
    ReadingValue, ThrottleState, WriteOutcome, WriteRequest,
};
use pinclaw::limits::BOARD_EDGE_QUEUE;
use tokio::sync::mpsc;

fn set(name: &str, on: bool) -> WriteRequest {
    WriteRequest::Set {
        name: name.into(),
        on,
    }
}

fn pulse(name: &str, ms: u64) -> WriteRequest {
    WriteRequest::Pulse {
        name: name.into(),
        ms,
    }
}

fn pwm(name: &str, duty: f64, hz: Option<f64>) -> WriteRequest {
    WriteRequest::Pwm {
        name: name.into(),
        duty,
        hz,
    }
}

/// Plans and executes a write that needs no approval.
async fn write(table: &DeviceTable, request: WriteRequest) -> Result<WriteOutcome, BoardError> {
    let plan = table.plan(&request)?;
    assert!(!plan.needs_confirmation(), "{request:?} needs approval");
    table.execute(plan).await
}

async fn pin(table: &DeviceTable, name: &str) -> PinState {
    table
        .read_pin(name)
        .await
        .unwrap_or_else(|e| panic!("read_pin {name}: {e}"))
}

fn measured(value: Option<ReadingValue>) -> f64 {
    match value {
        Some(ReadingValue::Measured(v)) => v,
        other => panic!("not a measurement: {other:?}"),
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
    let empty = tempfile::tempdir().unwrap();
    let table = DeviceTable::from_config(&auto_config(empty.path())).unwrap();
    let info = table.info();
    assert_eq!(info.backend, "sim");
    assert_eq!(info.profile, "sim");
    let names: Vec<&str> = info.devices.iter().map(|d| d.name.as_str()).collect();
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

    let sensors = table.sensors();
    assert!(sensors.iter().all(|s| s.name != "relay1"));
    let room = sensors.iter().find(|s| s.name == "room").unwrap();
    assert_eq!(room.quantities, ["temperature", "humidity", "pressure"]);
}

#[tokio::test]
async fn relay_write_reads_back_and_drives_the_active_low_pin() {
    let (table, sim) = sim_table(vec![]);
    // Initial state: off, so an active-low relay's pin is high.
    assert_eq!(sim.level(RELAY1), Some(Level::High));
    assert_eq!(
        pin(&table, "relay1").await,
        PinState {
            name: "relay1".into(),
            value: false,
            level: Level::High
        }
    );

    let w = write(&table, set("relay1", true)).await.unwrap();
    assert_eq!(
        w,
        WriteOutcome::Switched {
            name: "relay1".into(),
            value: true
        }
    );
    assert_eq!(sim.level(RELAY1), Some(Level::Low));
    let r = pin(&table, "relay1").await;
    assert_eq!((r.value, r.level), (true, Level::Low));

    write(&table, set("relay1", false)).await.unwrap();
    assert!(!pin(&table, "relay1").await.value);
}

#[tokio::test]
async fn bad_requests_get_specific_errors_and_touch_nothing() {
    let (table, sim) = sim_table(vec![]);
    let before = sim.writes(RELAY1);
    let plan_err = |request: WriteRequest| match table.plan(&request) {
        Ok(plan) => panic!("{request:?} planned: {plan:?}"),
        Err(e) => e.code(),
    };
    assert_eq!(plan_err(set("relay9", true)), "UNKNOWN_DEVICE");
    assert_eq!(plan_err(set("button1", true)), "NOT_AN_OUTPUT");
    assert_eq!(plan_err(set("room", true)), "NOT_AN_OUTPUT");
    assert_eq!(plan_err(pulse("relay1", 0)), "OUT_OF_RANGE");
    assert_eq!(plan_err(pulse("relay1", 600_000)), "OUT_OF_RANGE");
    assert_eq!(plan_err(pulse("pir1", 10)), "NOT_AN_OUTPUT");
    assert_eq!(plan_err(pwm("fan", 1.5, None)), "OUT_OF_RANGE");
    assert_eq!(plan_err(pwm("fan", -0.1, None)), "OUT_OF_RANGE");
    assert_eq!(plan_err(pwm("fan", f64::NAN, None)), "OUT_OF_RANGE");
    assert_eq!(plan_err(pwm("fan", 0.5, Some(0.0))), "OUT_OF_RANGE");
    assert_eq!(plan_err(pwm("fan", 0.5, Some(2e6))), "OUT_OF_RANGE");
    assert_eq!(plan_err(pwm("relay1", 0.5, None)), "NOT_PWM");
    let e = table.plan(&pulse("relay1", 0)).unwrap_err();
    assert!(e.to_string().contains("1..=20000"), "{e}");

    assert_eq!(
        table.read_pin("room").await.unwrap_err().code(),
        "NOT_A_PIN"
    );
    assert_eq!(
        table.read_pin("nope").await.unwrap_err().code(),
        "UNKNOWN_DEVICE"
    );
    assert_eq!(
        table.read_sensor("relay1").await.unwrap_err().code(),
        "NOT_A_SENSOR"
    );
    assert_eq!(sim.writes(RELAY1), before, "no bad request reached the pin");
}

#[tokio::test]
async fn pwm_set_reaches_the_pin() {
    let (table, sim) = sim_table(vec![]);
    let r = write(&table, pwm("fan", 0.5, None)).await.unwrap();
    assert_eq!(
        r,
        WriteOutcome::PwmSet {
            name: "fan".into(),
            duty: 0.5,
            hz: 25000.0
        }
    );
    assert_eq!(sim.pwm(18), Some((0.5, 25000.0)));
    write(&table, pwm("fan", 1.0, Some(100.0))).await.unwrap();
    assert_eq!(sim.pwm(18), Some((1.0, 100.0)));
}

#[tokio::test]
async fn i2c_sensors_read_through_the_drivers_and_nack_when_absent() {
    let (table, sim) = sim_table(vec![]);
    let r = table.read_sensor("room").await.unwrap();
    // The simulated BME280 carries the datasheet example: 25.08 °C, 1006.53 hPa.
    assert_eq!(r.name, "room");
    assert_eq!(r.value, Some(ReadingValue::Measured(25.08)));
    assert_eq!(r.unit, "°C");
    let readings = r.readings.unwrap();
    assert_eq!(
        readings["temperature"],
        Quantity {
            value: 25.08,
            unit: "°C"
        }
    );
    let hpa = readings["pressure"].value;
    assert!((hpa - 1006.53).abs() < 0.01, "{hpa}");
    let rh = readings["humidity"].value;
    assert!((rh - 55.0).abs() < 0.1, "{rh}");

    let r = table.read_sensor("shed").await.unwrap();
    assert!((measured(r.value) - 21.5).abs() < 0.01, "{r:?}");
    assert_eq!(r.readings.unwrap()["humidity"].unit, "%");

    sim.remove_i2c_device(1, 0x76);
    let e = table.read_sensor("room").await.unwrap_err();
    assert_eq!(e.code(), "I2C_NACK");
    assert!(e.to_string().contains("0x76"), "{e}");
}

#[tokio::test]
async fn demo_file_sensors_and_unknown_throttling() {
    let (table, sim) = sim_table(vec![]);
    let read = |name: &'static str| table.read_sensor(name);
    assert_eq!(measured(read("cpu_temp").await.unwrap().value), 48.312);
    assert_eq!(measured(read("water").await.unwrap().value), 23.125);
    let t = read("throttled").await.unwrap();
    assert_eq!(t.value, Some(ReadingValue::Flags(0x50000)));
    let detail = t.detail.unwrap();
    assert_eq!(detail.state, ThrottleState::Ok);
    assert!(detail.flags.unwrap().under_voltage_occurred);
    sim.remove_file("sys/devices/platform/soc/soc:firmware/get_throttled");
    let t = read("throttled").await.unwrap();
    assert_eq!(t.value, None);
    assert_eq!(t.detail.unwrap().state, ThrottleState::Unknown);
    sim.set_file(
        "sys/bus/w1/devices/28-0000075c293f/w1_slave",
        "ff ff ff ff ff ff ff ff ff : crc=c9 NO\nff ff ff ff ff ff ff ff ff t=-62\n",
    );
    let e = read("water").await.unwrap_err();
    assert_eq!(e.code(), "CRC_MISMATCH");
}

#[tokio::test]
async fn scripted_edges_arrive_debounced() {
    let (table, sim) = sim_table(vec![]);
    let mut rx = table.take_events().unwrap();
    assert!(table.take_events().is_none(), "only one consumer");
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
    assert_eq!(table.edges_debounced(), 4);
    assert_eq!(table.info().edges_debounced, 4);
    assert!(events.iter().all(|e| e.ts > 0));

    // A pin read shows the input's logical state.
    sim.inject(BUTTON1, Level::Low, ms(5000)).unwrap();
    assert!(
        pin(&table, "button1").await.value,
        "pressed = low on an active-low button"
    );
}

#[tokio::test]
async fn a_full_event_queue_drops_and_counts() {
    let (table, sim) = sim_table(vec![]);
    let mut rx = table.take_events().unwrap();
    let n = BOARD_EDGE_QUEUE as u64 + 10;
    for i in 0..n {
        let level = if i % 2 == 0 { Level::High } else { Level::Low };
        sim.inject(PIR1, level, Duration::from_secs(10 + i))
            .unwrap();
    }
    assert_eq!(drain(&mut rx).len(), BOARD_EDGE_QUEUE);
    assert_eq!(table.edge_drops(), 10);
    assert_eq!(table.info().edge_drops, 10);
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
    let (table, sim) = sim_table(vec![limited]);
    for i in 0..3 {
        write(&table, set("lamp", i % 2 == 0)).await.unwrap();
    }
    let e = write(&table, set("lamp", true)).await.unwrap_err();
    assert_eq!(e.code(), "RATE_LIMITED");
    let BoardError::RateLimited { retry_after_ms, .. } = e else {
        unreachable!()
    };
    // 3 per minute = one token every 20 s.
    assert!(
        (19_000..=20_000).contains(&retry_after_ms),
        "{retry_after_ms}"
    );
    assert_eq!(sim.writes(5), 3, "the limited write never happened");
    // Other outputs have their own budget.
    write(&table, set("relay1", true)).await.unwrap();

    tokio::time::advance(Duration::from_secs(21)).await;
    write(&table, set("lamp", true)).await.unwrap();
    assert_eq!(sim.writes(5), 4);
}

#[tokio::test(start_paused = true)]
async fn pulse_turns_on_then_off() {
    let (table, sim) = sim_table(vec![]);
    let writes = sim.writes(RELAY1);
    let start = tokio::time::Instant::now();
    let r = write(&table, pulse("relay1", 750)).await.unwrap();
    assert_eq!(
        r,
        WriteOutcome::Pulsed {
            name: "relay1".into(),
            ms: 750,
            superseded: false
        }
    );
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
    let (table, sim) = sim_table(vec![]);
    let writes = sim.writes(RELAY1);
    let plan = table.plan(&pulse("relay1", 50)).unwrap();
    let mut call = Box::pin(table.execute(plan));
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
async fn confirm_outputs_plan_as_needing_approval() {
    let (table, sim) = sim_table(vec![guarded_relay1()]);
    let before = sim.writes(RELAY1);
    let plan: PlannedWrite = table.plan(&set("relay1", true)).unwrap();
    assert!(plan.needs_confirmation());
    assert_eq!(plan.device(), "relay1");
    assert_eq!(plan.summary(), "relay1 = on");
    assert_eq!(
        table.plan(&pulse("relay1", 750)).unwrap().summary(),
        "relay1 for 750 ms"
    );
    assert_eq!(sim.writes(RELAY1), before, "planning writes nothing");

    let fan = table.plan(&pwm("fan", 0.5, None)).unwrap();
    assert!(!fan.needs_confirmation());
    assert_eq!(fan.summary(), "fan duty 0.5 at 25000 Hz");

    // The table executes what it is given: approval is the caller's job.
    table.execute(plan).await.unwrap();
    assert_eq!(sim.level(RELAY1), Some(Level::Low));
}

#[tokio::test]
async fn shutdown_switches_every_output_off() {
    let (table, sim) = sim_table(vec![]);
    write(&table, set("relay1", true)).await.unwrap();
    write(&table, pwm("fan", 0.8, None)).await.unwrap();
    assert_eq!(sim.level(RELAY1), Some(Level::Low));
    table.shutdown().unwrap();
    assert_eq!(sim.level(RELAY1), Some(Level::High), "active-low relay off");
    assert_eq!(sim.pwm(18), Some((0.0, 25000.0)));
}

#[tokio::test(start_paused = true)]
async fn a_scripted_demo_plays_motion_through_the_table_built_from_config() {
    let table = DeviceTable::from_config(&sim_config(vec![])).unwrap();
    let mut rx = table.take_events().unwrap();
    let sim = Arc::clone(table.sim().expect("sim backend"));
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
    assert!(!pin(&table, "pir1").await.value);
}

#[tokio::test(start_paused = true)]
async fn a_write_during_a_pulse_wins_at_once() {
    let (table, sim) = sim_table(vec![]);
    let table = Arc::new(table);
    let t = Arc::clone(&table);
    let pulse = tokio::spawn(async move { write(&t, pulse("relay1", 10_000)).await });
    settle("pulse switched it on", || {
        sim.level(RELAY1) == Some(Level::Low)
    })
    .await;

    // The operator switches it off mid-pulse: effective immediately (the
    // clock stands still while the write runs, so the pulse cannot end).
    frozen(write(&table, set("relay1", false))).await.unwrap();
    assert!(!pulse.is_finished(), "did not wait for the pulse");
    assert_eq!(sim.level(RELAY1), Some(Level::High));
    // ...and on again; the pulse's end must not switch it off.
    frozen(write(&table, set("relay1", true))).await.unwrap();
    let r = pulse.await.unwrap().unwrap();
    assert_eq!(
        r,
        WriteOutcome::Pulsed {
            name: "relay1".into(),
            ms: 10_000,
            superseded: true
        }
    );
    assert_eq!(
        sim.level(RELAY1),
        Some(Level::Low),
        "still on after the pulse ended"
    );
}

#[test]
fn the_table_and_its_futures_can_cross_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let table = DeviceTable::from_config(&sim_config(vec![])).unwrap();
    send_sync(&table);
    send(table.read_pin("relay1"));
    send(table.read_sensor("room"));
    let plan = table.plan(&set("relay1", true)).unwrap();
    send(table.execute(plan));
}
