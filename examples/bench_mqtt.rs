//! MQTT bridge figures (issue 12). Not a test: it prints figures and never
//! fails on timing.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example bench_mqtt -- target/release/pinclaw
//! ```
//!
//! Each pass starts a real Mosquitto on 127.0.0.1 (as the tests do:
//! `tests/support/mosquitto.rs`) and the real gateway on the simulated
//! board, and measures:
//! - idle cost of the bridge: two gateways side by side for `BENCH_IDLE_S`
//!   seconds, one bridged (every declared device an entity; keep-alive
//!   30 s) and one without `[mqtt]`: RSS, private memory, CPU, wake-ups;
//! - command → GPIO write → state: `BENCH_COMMANDS` `ON`/`OFF` commands on
//!   `pinclaw/hub/bench_relay/set` (QoS 1; an output declared without
//!   the default write rate limit) from a client of pinclaw's own MQTT
//!   library, to the `bench_relay/state` message the bridge publishes after the
//!   write succeeded — once with Mosquitto's defaults and once with
//!   `set_tcp_nodelay true` (see `command_to_state` for the difference);
//! - broker restart → republished: Mosquitto (no persistence, so its
//!   retained states are gone) killed for `BENCH_OUTAGE_S` seconds and
//!   started again, to the first `bench_relay/state` a fresh `mosquitto_sub`
//!   sees.
//!
//! Medians over `BENCH_PASSES` passes (default 3) with the spread.

mod common;
#[path = "../tests/support/mosquitto.rs"]
mod mosquitto;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Result, env_num, figure, gateway, pct, rates, sample};
use mosquitto::Broker;
use pinclaw::mqtt::{Client, Event, Message};
use tokio::sync::mpsc;

/// An output without a write rate limit, for the command → state figure.
const BENCH_RELAY: &str = "[[board.devices]]\nname = \"bench_relay\"\nkind = \"output\"\npin = 5\nmax_writes_per_minute = 0\n";

/// The next message on `topic` with `payload`, within `within`.
async fn next_message(
    events: &mut mpsc::Receiver<Event>,
    topic: &str,
    payload: &[u8],
    within: Duration,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Message {
                topic: t,
                payload: p,
                ..
            })) if t == topic && p == payload => return Ok(()),
            Ok(Some(_)) => {}
            Ok(None) => return Err("the bench client stopped".into()),
            Err(_) => return Err(format!("no {topic} within {within:?}").into()),
        }
    }
}

/// Entities in the retained device discovery message.
fn entities(broker: &Broker) -> usize {
    let line = broker.read_one("homeassistant/device/hub/config");
    line.split_once(" homeassistant/device/hub/config ")
        .and_then(|(_, json)| serde_json::from_str::<serde_json::Value>(json).ok())
        .and_then(|v| v["cmps"].as_object().map(|c| c.len()))
        .unwrap_or(0)
}

/// Seconds from now until a `mosquitto_sub` started now sees a message
/// on `topic` (retained or live), or `None` after 120 s.
fn until_published(broker: &Broker, topic: &str) -> Option<f64> {
    let started = Instant::now();
    let mut sub = Command::new("mosquitto_sub")
        .args(broker.cli_args())
        .args(["-q", "1", "-t", topic, "-C", "1", "-W", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let line = sub
        .stdout
        .take()
        .and_then(|out| BufReader::new(out).lines().next()?.ok());
    let seen = started.elapsed().as_secs_f64();
    let _ = sub.kill();
    let _ = sub.wait();
    line.map(|_| seen)
}

/// p50 and p99 in ms of `commands` alternating `ON`/`OFF` commands on
/// `bench_relay/set` (QoS 1), each to the `bench_relay/state` the bridge publishes
/// after the write.
///
/// With Mosquitto's defaults (`set_tcp_nodelay false`) every round trip
/// carries a ~40 ms stall that is not the bridge's: the broker's PUBACK to
/// the commanding client is still unacknowledged when the state follows,
/// so Nagle holds the state until the client's delayed ACK (40 ms on
/// Linux). Any client that publishes at QoS 1 and waits for an answer sees
/// it; both figures are reported.
async fn command_to_state(broker: &Broker, commands: usize) -> Result<(f64, f64)> {
    let (tx, mut events) = mpsc::channel(pinclaw::limits::MQTT_EVENT_QUEUE);
    let mut options = broker.options("bench-commander");
    options.subscriptions = vec!["pinclaw/hub/bench_relay/state".into()];
    let client = Client::start(options, tx)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.status().connected {
        if Instant::now() > deadline {
            return Err("the bench client did not connect".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut ms = Vec::with_capacity(commands);
    for i in 0..commands {
        let payload: &[u8] = if i % 2 == 0 { b"ON" } else { b"OFF" };
        while events.try_recv().is_ok() {}
        let sent = Instant::now();
        client.publish(Message {
            topic: "pinclaw/hub/bench_relay/set".into(),
            payload: payload.to_vec(),
            qos: 1,
            retain: false,
        })?;
        next_message(
            &mut events,
            "pinclaw/hub/bench_relay/state",
            payload,
            Duration::from_secs(10),
        )
        .await?;
        ms.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    client.stop(None);
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok((pct(&ms, 0.5), pct(&ms, 0.99)))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let passes = env_num("BENCH_PASSES", 3);
    let idle_s = env_num("BENCH_IDLE_S", 60);
    let commands = env_num("BENCH_COMMANDS", 200) as usize;
    let outage_s = env_num("BENCH_OUTAGE_S", 30);
    let (mut rss_added, mut anon_added, mut wake_with, mut wake_without) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut cpu_with, mut p50s, mut p99s, mut republished) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut nodelay_p50s, mut nodelay_p99s) = (Vec::new(), Vec::new());
    for pass in 0..passes {
        let Some(mut broker) = Broker::start() else {
            return Err("no Mosquitto (apt install mosquitto mosquitto-clients)".into());
        };
        // The commanded output: like the simulator's relay1, without the
        // rate limit (30 a minute), which the commands would hit.
        let bridge = broker
            .config_toml()
            .replace("keep_alive_s = 5", "keep_alive_s = 30")
            + BENCH_RELAY;
        let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
        let (plain, _) = gateway(dir_a.path(), "")?;
        let (bridged, _) = gateway(dir_b.path(), &bridge)?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let count = entities(&broker);

        // Idle: the bridge connected, nothing commanded.
        let (a0, b0) = (sample(plain.0.id()), sample(bridged.0.id()));
        tokio::time::sleep(Duration::from_secs(idle_s)).await;
        let (a1, b1) = (sample(plain.0.id()), sample(bridged.0.id()));
        let (_, wake_a) = rates(a0, a1);
        let (cpu_b, wake_b) = rates(b0, b1);
        println!(
            "pass {pass} idle {idle_s} s: no bridge {wake_a:.3} wake-ups/s, RSS {} KiB ({} private); \
             bridge with {count} entities CPU {cpu_b:.4} %, {wake_b:.3} wake-ups/s, RSS {} KiB ({} private)",
            a1.rss_kb, a1.anon_kb, b1.rss_kb, b1.anon_kb
        );
        rss_added.push(b1.rss_kb as f64 - a1.rss_kb as f64);
        anon_added.push(b1.anon_kb as f64 - a1.anon_kb as f64);
        wake_without.push(wake_a);
        wake_with.push(wake_b);
        cpu_with.push(cpu_b);
        drop(plain);

        // Command → write → state, with Mosquitto's defaults.
        let (p50, p99) = command_to_state(&broker, commands).await?;
        println!(
            "pass {pass} command→state, Mosquitto defaults, {commands} commands: p50 {p50:.3} ms, p99 {p99:.3} ms"
        );
        p50s.push(p50);
        p99s.push(p99);

        // Broker restart → republished.
        broker.stop();
        tokio::time::sleep(Duration::from_secs(outage_s)).await;
        // It comes back with Nagle off on its sockets (see `command_to_state`).
        broker.extra_conf = "set_tcp_nodelay true\n".into();
        broker.restart();
        match until_published(&broker, "pinclaw/hub/bench_relay/state") {
            Some(s) => {
                println!(
                    "pass {pass} broker down {outage_s} s, restarted → state republished in {s:.2} s"
                );
                republished.push(s);
            }
            None => println!("pass {pass} broker restarted → nothing republished within 120 s"),
        }
        let (p50, p99) = command_to_state(&broker, commands).await?;
        println!(
            "pass {pass} command→state, set_tcp_nodelay true, {commands} commands: p50 {p50:.3} ms, p99 {p99:.3} ms"
        );
        nodelay_p50s.push(p50);
        nodelay_p99s.push(p99);
        drop(bridged);
    }
    figure("rss_added_mqtt_bridge_kib", "KiB", rss_added);
    figure("private_memory_added_mqtt_bridge_kib", "KiB", anon_added);
    figure("idle_cpu_pct_mqtt_bridge", "%", cpu_with);
    figure("idle_wakeups_per_s_mqtt_bridge", "/s", wake_with);
    figure("idle_wakeups_per_s_no_bridge", "/s", wake_without);
    figure("mqtt_command_to_state_p50_ms", "ms", p50s);
    figure("mqtt_command_to_state_p99_ms", "ms", p99s);
    figure(
        "mqtt_command_to_state_nodelay_broker_p50_ms",
        "ms",
        nodelay_p50s,
    );
    figure(
        "mqtt_command_to_state_nodelay_broker_p99_ms",
        "ms",
        nodelay_p99s,
    );
    figure("broker_restart_to_republished_s", "s", republished);
    Ok(())
}
