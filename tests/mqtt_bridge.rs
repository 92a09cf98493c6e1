//! The MQTT bridge against a real Mosquitto (one broker per test, with a
//! password file), checked with `mosquitto_sub`/`mosquitto_pub`: Home
//! Assistant discovery and retained states, a `set` command switching the
//! simulated relay with the state following, a retained command ignored, an
//! MQTT message running an automation, Home Assistant's birth getting
//! discovery again; and with the real binary, the broker stopped for 30 s
//! (reconnect, resubscribe, republish, low CPU meanwhile), the will
//! `offline` after a SIGKILL and an explicit `offline` after a SIGTERM.

#[path = "support/mosquitto.rs"]
mod mosquitto;
#[path = "support/process.rs"]
mod process;
mod support;

use std::time::{Duration, Instant};

use mosquitto::Broker;
use pinclaw::board::Level;
use pinclaw::config::Config;
use serde_json::Value;
use support::*;

/// A gateway in-process with `[mqtt]` on `broker` and the extra config.
async fn gateway(dir: &std::path::Path, broker: &Broker, extra: &str) -> TestGateway {
    let text = format!("{}{extra}", broker.config_toml());
    let parsed =
        Config::parse(&text, std::path::Path::new("mqtt.toml")).unwrap_or_else(|e| panic!("{e}"));
    let mut s = settings(dir);
    s.config.mqtt = parsed.mqtt;
    s.config.automations = parsed.automations;
    TestGateway::start_with(s).await
}

/// Polls (real time, bounded) until `check` holds.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a blocking broker call (a `mosquitto_sub`/`_pub` child) off the
/// event loop the in-process gateway runs on.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// What the broker holds (or next gets) on `topic`, as `read_one` shows it.
async fn read_one(broker: &Broker, topic: &str) -> String {
    let (port, topic) = (broker.port, topic.to_owned());
    blocking(move || Broker::peek(port, &topic)).await
}

/// The retained message on `topic`, once there is one (a subscriber that
/// came first sees the live copy, flagged 0, before it is retained).
async fn read_retained(broker: &Broker, topic: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = read_one(broker, topic).await;
        if seen.starts_with("1 ") {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "nothing retained on {topic}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn publish(broker: &Broker, topic: &str, payload: &str) {
    let port = broker.port;
    let (topic, payload) = (topic.to_owned(), payload.to_owned());
    blocking(move || Broker::send(port, &topic, &payload)).await
}

#[tokio::test]
async fn discovery_states_commands_and_triggers() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(
        dir.path(),
        &broker,
        r#"
[[automations]]
name = "hall-button"
when = { mqtt = "zigbee2mqtt/hall_button", payload = "single" }
do = { invoke = { command = "gpio.write", params = { name = "relay1", value = true } }, mqtt = { topic = "home/echo", payload = "pressed: {payload}" } }
"#,
    )
    .await;
    let sim = gw.handle.board().and_then(|b| b.sim().cloned()).unwrap();

    // Availability and discovery, retained.
    let b = &broker;
    let status = read_retained(b, "pinclaw/hub/status").await;
    assert_eq!(status, "1 1 pinclaw/hub/status online");
    let config = read_retained(b, "homeassistant/device/hub/config").await;
    let (flags, json) = config
        .split_once(" homeassistant/device/hub/config ")
        .unwrap();
    assert_eq!(flags, "1 1", "retained, QoS 1");
    let v: Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["dev"]["ids"][0], "pinclaw_hub");
    assert_eq!(v["o"]["name"], "pinclaw");
    assert_eq!(v["avty_t"], "pinclaw/hub/status");
    let relay = &v["cmps"]["relay1"];
    assert_eq!(
        (relay["p"].as_str(), relay["cmd_t"].as_str()),
        (Some("switch"), Some("pinclaw/hub/relay1/set"))
    );
    assert_eq!(v["cmps"]["room_temperature_c"]["dev_cla"], "temperature");
    assert_eq!(v["cmps"]["room_humidity_pct"]["dev_cla"], "humidity");
    assert_eq!(
        v["cmps"]["room_pressure_hpa"]["dev_cla"],
        "atmospheric_pressure"
    );
    assert_eq!(v["cmps"]["pir1"]["dev_cla"], "motion");
    assert_eq!(v["cmps"]["button1"]["p"], "event");
    assert_eq!(v["cmps"]["fan"]["p"], "number");
    assert!(
        v["cmps"]["room_temperature_c"]["exp_aft"]
            .as_u64()
            .is_some()
    );
    // Retained states: sensor fields as plain numbers, outputs ON/OFF.
    let temp = read_retained(b, "pinclaw/hub/room/temperature_c").await;
    assert_eq!(temp, "1 1 pinclaw/hub/room/temperature_c 25.08");
    let state = read_retained(b, "pinclaw/hub/relay1/state").await;
    assert_eq!(state, "1 1 pinclaw/hub/relay1/state OFF");

    // A command switches the relay (pin 17, active-low: on = low), and the
    // state follows.
    publish(b, "pinclaw/hub/relay1/set", "ON").await;
    until("the relay on", || sim.level(17) == Some(Level::Low)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while read_one(b, "pinclaw/hub/relay1/state").await != "1 1 pinclaw/hub/relay1/state ON" {
        assert!(Instant::now() < deadline, "the state did not follow");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publish(b, "pinclaw/hub/relay1/set", "OFF").await;
    until("the relay off", || sim.level(17) == Some(Level::High)).await;
    // PWM in percent.
    publish(b, "pinclaw/hub/fan/set", "40").await;
    until("the fan at 40 %", || {
        sim.pwm(18)
            .is_some_and(|(duty, _)| (duty - 0.4).abs() < 1e-9)
    })
    .await;

    // An MQTT message runs an automation: the relay on, and a message out.
    let echo = {
        let b = broker.port;
        std::thread::spawn(move || {
            mosquitto::subscribe(b, "home/echo", &["-C", "1", "-W", "20"])
                .trim()
                .to_owned()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish(b, "zigbee2mqtt/hall_button", "double").await;
    publish(b, "zigbee2mqtt/hall_button", "single").await;
    until("the automation switched the relay", || {
        sim.level(17) == Some(Level::Low)
    })
    .await;
    assert_eq!(
        blocking(move || echo.join().unwrap()).await,
        "pressed: single"
    );
    let mut op = gw.client(&["operator.read"]).await;
    let runs = op
        .call("cron.runs", serde_json::json!({"id": "hall-button"}))
        .await
        .unwrap();
    assert_eq!(runs["total"], 1, "only the payload asked for fires: {runs}");

    // Home Assistant restarts: its birth gets discovery again (live, not
    // only the retained copy).
    let watch = {
        let port = broker.port;
        std::thread::spawn(move || {
            mosquitto::subscribe(
                port,
                "homeassistant/device/hub/config",
                &["-C", "2", "-W", "20", "-F", "%r"],
            )
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish(b, "homeassistant/status", "online").await;
    let seen = blocking(move || watch.join().unwrap()).await;
    assert_eq!(
        seen,
        ["1", "0"],
        "the retained copy, then a fresh announcement"
    );

    let health = op.call("health", serde_json::json!({})).await.unwrap();
    assert_eq!(health["mqtt"]["connected"], true, "{}", health["mqtt"]);
    gw.stop().await;
}

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Context switches (voluntary and not) of a process's threads named
/// `name`: how often they woke up.
fn thread_switches(pid: u32, name: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    let mut switches = 0;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        switches += status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    switches
}

#[tokio::test]
async fn the_real_binary_survives_the_broker_and_says_goodbye() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    // A stale retained command waits on the broker: it must not switch.
    broker.publish("pinclaw/hub/relay1/set", "ON", true);
    let dir = tempfile::tempdir().unwrap();
    let config = process::write_config(dir.path(), "mqtt-test-token", &broker.config_toml());
    let gw = process::start(&config, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while broker.read_one("pinclaw/hub/status") != "1 1 pinclaw/hub/status online" {
        assert!(Instant::now() < deadline, "never online");
        std::thread::sleep(Duration::from_millis(100));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut op = support::operator_at(&gw.url, "mqtt-test-token", &["operator.admin"]).await;
    let read = op
        .call(
            "node.invoke",
            serde_json::json!({"nodeId": "local", "command": "gpio.read", "params": {"name": "relay1"}, "idempotencyKey": "r1"}),
        )
        .await
        .unwrap();
    assert_eq!(
        read["payload"]["value"], false,
        "the retained command switched the relay"
    );

    // Connected and quiet, the client thread sleeps: it wakes for work
    // (a state that changed) and the keep-alive, not to poll.
    let before = thread_switches(gw.pid(), "pinclaw-mqtt");
    assert!(before > 0, "no pinclaw-mqtt thread in the gateway");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let woke = thread_switches(gw.pid(), "pinclaw-mqtt") - before;
    println!("MQTT client thread, connected and idle: {woke} wake-ups in 5 s");
    assert!(woke <= 25, "{woke} wake-ups in 5 s: the client polls");

    // The broker goes away for 30 s: no spinning meanwhile.
    broker.stop();
    let before = cpu_ticks(gw.pid());
    tokio::time::sleep(Duration::from_secs(30)).await;
    let spent = cpu_ticks(gw.pid()) - before;
    println!("gateway CPU while the broker was down 30 s: {spent} ticks");
    assert!(spent < 100, "{spent} clock ticks in 30 s: spinning");
    let status = op.call("mqtt.status", serde_json::json!({})).await.unwrap();
    assert_eq!(status["connected"], false);
    assert!(status["lastError"].is_string(), "{status}");
    // Back: reconnected, resubscribed (a command works), republished.
    broker.restart();
    let back = Instant::now();
    let mut republished = false;
    while back.elapsed() < Duration::from_secs(90) {
        let lines = broker.read_for("pinclaw/hub/relay1/state", 1);
        if lines.iter().any(|l| l.ends_with("relay1/state OFF")) {
            republished = true;
            break;
        }
    }
    assert!(
        republished,
        "states were not republished after the broker came back"
    );
    println!(
        "broker restart -> state republished in {:.1} s",
        back.elapsed().as_secs_f64()
    );
    broker.publish("pinclaw/hub/relay1/set", "ON", false);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = op
            .call(
                "node.invoke",
                serde_json::json!({"nodeId": "local", "command": "gpio.read", "params": {"name": "relay1"}, "idempotencyKey": format!("r{}", Instant::now().elapsed().as_nanos())}),
            )
            .await
            .unwrap();
        if v["payload"]["value"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a command after the restart did nothing: not resubscribed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = op.call("mqtt.status", serde_json::json!({})).await.unwrap();
    assert!(
        status["reconnectCount"].as_u64().unwrap_or(0) >= 1,
        "{status}"
    );
    drop(op);

    // SIGKILL: the broker publishes the will.
    gw.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    while broker.read_one("pinclaw/hub/status") != "1 1 pinclaw/hub/status offline" {
        assert!(Instant::now() < deadline, "no will after SIGKILL");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // SIGTERM: online again, then an explicit offline (a DISCONNECT, so
    // not the will).
    let gw = process::start(&config, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while broker.read_one("pinclaw/hub/status") != "1 1 pinclaw/hub/status online" {
        assert!(Instant::now() < deadline, "not online again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(gw.terminate(), Some(0));
    assert_eq!(
        broker.read_one("pinclaw/hub/status"),
        "1 1 pinclaw/hub/status offline"
    );
    assert!(
        broker
            .log()
            .contains("Received DISCONNECT from pinclaw-hub"),
        "{}",
        broker.log()
    );
}
