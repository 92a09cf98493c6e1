//! The automation engine on a paused clock that only the test moves, with a
//! real store and hands that record what they are asked to do: thresholds
//! with `for_s` and hysteresis do not flap, cooldowns hold, a schedule
//! missed while the gateway was down fires once and says so, and a `for_s`
//! revert is kept across a restart.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pinclaw::automation::config::{Automation, Context, check};
use pinclaw::automation::engine::{BoxFuture, Clock, Engine, Hands};
use pinclaw::automation::schedule::TimeZone;
use pinclaw::board::BoardChange;
use pinclaw::config::Config;
use pinclaw::node::board_commands::{SIM_COMMANDS, check_call};
use pinclaw::store::{ReplyRoute, Store};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// 2026-12-07 12:00:00 UTC.
const BASE_MS: i64 = 1_796_644_800_000;

/// What the hands were asked to do.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
}

impl Recorder {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    fn count(&self, prefix: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }
}

struct FakeHands(Arc<Recorder>);

impl Hands for FakeHands {
    fn needs_approval(&self, _: &str, _: &str, _: &Value) -> Option<String> {
        None
    }
    fn invoke(
        &self,
        who: String,
        node: String,
        command: String,
        params: Value,
    ) -> BoxFuture<'_, Result<Value, String>> {
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("invoke {command} {params} on {node} by {who}"));
        Box::pin(async move { Ok(json!({"ok": true, "payload": {"value": false}})) })
    }
    fn route(&self, channel: &str, to: &str) -> Result<ReplyRoute, String> {
        Ok(ReplyRoute {
            channel: channel.into(),
            account: "default".into(),
            to: to.into(),
            thread: None,
        })
    }
    fn agent(
        &self,
        run_id: String,
        session: String,
        message: String,
        _: Option<ReplyRoute>,
    ) -> BoxFuture<'_, Result<(), String>> {
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("agent {session} {run_id}: {message}"));
        Box::pin(async { Ok(()) })
    }
    fn mqtt(&self, topic: String, payload: String, _: bool) -> BoxFuture<'_, Result<(), String>> {
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("mqtt {topic} {payload}"));
        Box::pin(async { Ok(()) })
    }
    fn event(&self, payload: Value) {
        if payload["action"] == "finished" {
            self.0.calls.lock().unwrap().push(format!(
                "finished {} {}",
                payload["jobId"], payload["status"]
            ));
        }
    }
}

/// The checked automations of a config file's text (on the sim board,
/// with Telegram and a model configured).
fn automations(toml: &str) -> (Vec<Automation>, Config) {
    let text = format!(
        "[channels.telegram]\nenabled = true\nbot_token_env = \"NO_SUCH_TOKEN\"\n[agent]\nmodel = \"m/m\"\n{toml}"
    );
    let config = Config::parse(&text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"));
    let spec = pinclaw::board::profile::resolve(&config.board).unwrap_or_else(|e| panic!("{e}"));
    let validate = |c: &str, p: &Value| check_call(&spec, c, p).map_err(|e| e.to_string());
    let cx = Context {
        board: Some(&spec),
        commands: SIM_COMMANDS,
        validate: &validate,
    };
    let (found, problems) = check(&config, &cx);
    assert!(problems.is_empty(), "{problems:?}");
    (found, config)
}

/// A wall clock that stands still at `BASE_MS` until the test moves it.
#[derive(Clone)]
struct Paused(Arc<AtomicI64>);

impl Paused {
    fn new() -> Self {
        Paused(Arc::new(AtomicI64::new(BASE_MS)))
    }
    fn clock(&self) -> Clock {
        let now = self.0.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    }
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
    /// Moves the clock and lets `engine` see it.
    async fn advance(&self, secs: u64, engine: &Engine) {
        self.0.fetch_add(secs as i64 * 1000, Ordering::SeqCst);
        engine.poke();
        settle().await;
    }
}

struct Running {
    engine: Arc<Engine>,
    task: tokio::task::JoinHandle<()>,
    board: broadcast::Sender<BoardChange>,
}

async fn start(toml: &str, store: &Store, clock: Clock, rec: &Arc<Recorder>) -> Running {
    let (list, config) = automations(toml);
    let engine = Engine::new(
        list,
        Arc::new(FakeHands(rec.clone())),
        store.clone(),
        clock,
        config.automation.max_actions_per_minute,
        TimeZone::utc(),
    );
    engine.load().await.unwrap_or_else(|e| panic!("{e}"));
    let (board, rx) = broadcast::channel(64);
    let task = tokio::spawn(engine.clone().run(rx, None));
    Running {
        engine,
        task,
        board,
    }
}

fn reading(value: f64) -> BoardChange {
    BoardChange::Reading {
        name: "room".into(),
        values: vec![("temperature_c", value), ("humidity_pct", 50.0)],
        ts: 0,
    }
}

/// Lets the engine catch up with what it was sent (real store I/O included).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(30)).await;
}

/// Waits (real time, bounded) until `n` runs finished.
async fn finished(rec: &Recorder, n: usize) {
    for _ in 0..500 {
        if rec.count("finished") >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    settle().await;
    assert_eq!(rec.count("finished"), n, "{:?}", rec.calls());
}

#[tokio::test]
async fn a_threshold_with_for_s_and_hysteresis_fires_once_per_crossing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.redb")).unwrap();
    let rec = Arc::new(Recorder::default());
    let clock = Paused::new();
    let run = start(
        r#"
[[automations]]
name = "too-warm"
when = { device = "room", field = "temperature_c", above = 28.0, for_s = 300, hysteresis = 0.5, sample_s = 30 }
do = { notify = { channel = "telegram", to = "42", text = "The room is {value} °C (limit {limit})" } }
"#,
        &store,
        clock.clock(),
        &rec,
    )
    .await;
    // Readings every 30 s hovering around the limit: above, just below
    // (within the hysteresis: still "hot"), above... for 20 minutes.
    let hover = [28.2, 27.8, 28.3, 27.9, 28.1, 27.7];
    for (i, v) in hover.iter().cycle().take(40).enumerate() {
        run.board.send(reading(*v)).unwrap();
        settle().await;
        if i < 10 {
            // Up to 270 s after the first crossing: not yet five minutes.
            assert_eq!(
                rec.count("finished"),
                0,
                "fired before for_s, at reading {i}"
            );
        }
        clock.advance(30, &run.engine).await;
    }
    finished(&rec, 1).await;
    // It cools down past the hysteresis, and heats up again: a second alert,
    // five minutes after the new crossing (the deadline fires without a new
    // reading).
    run.board.send(reading(27.4)).unwrap();
    settle().await;
    clock.advance(30, &run.engine).await;
    run.board.send(reading(29.0)).unwrap();
    settle().await;
    clock.advance(299, &run.engine).await;
    assert_eq!(rec.count("finished"), 1, "not before the 300 s are up");
    clock.advance(1, &run.engine).await;
    finished(&rec, 2).await;
    // Both notifications are in the outbound ledger with the value filled in.
    let outbox = store
        .outbox_pending("telegram", "default", 10)
        .await
        .unwrap();
    assert_eq!(outbox.len(), 2);
    // The latest reading when the five minutes were up (within the
    // hysteresis band it still counts as hot).
    assert!(
        outbox[0].text.starts_with("The room is 2"),
        "{}",
        outbox[0].text
    );
    assert!(
        outbox[0].text.ends_with("°C (limit 28)"),
        "{}",
        outbox[0].text
    );
    assert!(
        outbox[1].text.contains("29 °C (limit 28)"),
        "{}",
        outbox[1].text
    );
    run.task.abort();
}

#[tokio::test]
async fn an_edge_fires_and_the_cooldown_suppresses_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.redb")).unwrap();
    let rec = Arc::new(Recorder::default());
    let clock = Paused::new();
    let run = start(
        r#"
[[automations]]
name = "hall-motion"
when = { device = "pir1", to = "on" }
do = { notify = { channel = "telegram", to = "42", text = "Motion in the hall at {time}" } }
cooldown_s = 60
"#,
        &store,
        clock.clock(),
        &rec,
    )
    .await;
    let edge = |value| BoardChange::Input {
        name: "pir1".into(),
        value,
        ts: 0,
    };
    // on (fires), off 5 s later (not matched), on 15 s after the first
    // (cooldown), on 76 s after the first (fires).
    for (after, value) in [(0, true), (5, false), (10, true), (61, true)] {
        clock.advance(after, &run.engine).await;
        run.board.send(edge(value)).unwrap();
        settle().await;
    }
    finished(&rec, 2).await;
    let outbox = store
        .outbox_pending("telegram", "default", 10)
        .await
        .unwrap();
    assert_eq!(outbox[0].text, "Motion in the hall at 12:00");
    assert_eq!(outbox[1].text, "Motion in the hall at 12:01");
    run.task.abort();
}

#[tokio::test]
async fn a_schedule_missed_while_down_fires_once_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.redb")).unwrap();
    let rec = Arc::new(Recorder::default());
    let clock = Paused::new();
    let toml = r#"
[[automations]]
name = "check-in"
when = { every = "1m" }
do = { agent = { message = "How is the room?" } }
"#;
    let run = start(toml, &store, clock.clock(), &rec).await;
    // Runs at 12:01 and 12:02.
    for _ in 0..5 {
        clock.advance(30, &run.engine).await;
    }
    finished(&rec, 2).await;
    assert_eq!(rec.count("agent"), 2, "{:?}", rec.calls());
    run.task.abort();
    // Down for ten minutes.
    clock.0.fetch_add(600_000, Ordering::SeqCst);
    let run = start(toml, &store, clock.clock(), &rec).await;
    finished(&rec, 3).await;
    let agents: Vec<String> = rec
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("agent"))
        .collect();
    assert_eq!(agents.len(), 3, "one catch-up run, not ten: {agents:?}");
    assert!(
        agents[2].contains("missed 10 run(s) while the gateway was down"),
        "{}",
        agents[2]
    );
    // The next regular run is within the next minute, not in the past.
    let next = run.engine.list()[0].state.next_run_ms.unwrap();
    assert!(next > clock.now() && next - clock.now() <= 60_000, "{next}");
    run.task.abort();
}

#[tokio::test]
async fn a_for_s_revert_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.redb")).unwrap();
    let rec = Arc::new(Recorder::default());
    let clock = Paused::new();
    let toml = r#"
[[automations]]
name = "porch"
when = { device = "button1", to = "on" }
do = { invoke = { command = "gpio.write", params = { name = "relay1", value = true }, for_s = 7200 } }
"#;
    let run = start(toml, &store, clock.clock(), &rec).await;
    run.board
        .send(BoardChange::Input {
            name: "button1".into(),
            value: true,
            ts: 0,
        })
        .unwrap();
    finished(&rec, 1).await;
    assert_eq!(rec.count("invoke gpio.write"), 1, "{:?}", rec.calls());
    run.task.abort();
    // Down across the due time; the revert runs at start.
    clock.0.fetch_add(7_300_000, Ordering::SeqCst);
    let run = start(toml, &store, clock.clock(), &rec).await;
    for _ in 0..100 {
        if rec.count("invoke gpio.write") >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    settle().await;
    let writes: Vec<String> = rec
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("invoke gpio.write"))
        .collect();
    assert_eq!(writes.len(), 2, "{writes:?}");
    // The state before the write (read back: off) is what comes back.
    assert!(
        writes[1].contains(r#"{"name":"relay1","value":false}"#),
        "{}",
        writes[1]
    );
    assert!(writes[1].contains("undoing after for_s"), "{}", writes[1]);
    // And it is done: not repeated by a third start.
    run.task.abort();
    let run = start(toml, &store, clock.clock(), &rec).await;
    settle().await;
    assert_eq!(rec.count("invoke gpio.write"), 2);
    run.task.abort();
}

#[test]
fn the_documented_examples_pass_the_check() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/pinclaw.toml"))
        .unwrap();
    let examples: String = text
        .split("# Examples:")
        .nth(1)
        .unwrap_or_else(|| panic!("config/pinclaw.toml has no automation examples"))
        .lines()
        .skip(1)
        // The examples are the comment block; the next section starts at the
        // first uncommented line.
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("# ").or(l.strip_prefix("#")))
        .map(|l| format!("{l}\n"))
        .collect();
    let (found, _) = automations(&examples);
    let names: Vec<&str> = found.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["hall-motion", "too-warm", "porch-evening"]);
}
