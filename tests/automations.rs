//! Automations end to end in a real gateway: the simulated board's edges
//! and readings (`sim.set`), Telegram on the fake Bot API, the fake model,
//! the invoke path with its approvals, and the rate cap against a feedback
//! loop.

mod agent_support;
#[path = "support/fake_provider.rs"]
mod fake_provider;
#[path = "support/fake_telegram.rs"]
mod fake_telegram;
mod support;

use std::time::Duration;

use agent_support::*;
use fake_provider::FakeProvider;
use fake_telegram::FakeTelegram;
use pinclaw::channel::telegram::TelegramConfig;
use pinclaw::client::Client;
use pinclaw::config::Config;
use serde_json::{Value, json};
use support::*;

const BOT_TOKEN: &str = "123456:TEST-secret-bot-token";
const WAIT: Duration = Duration::from_secs(20);

struct Hub {
    tg: FakeTelegram,
    _model: FakeProvider,
    gw: TestGateway,
    _dir: tempfile::TempDir,
}

/// A gateway with Telegram on the fake, the fake model answering `reply`,
/// and the automations (and extra config) of `toml`.
async fn start_hub(reply: &str, toml: &str) -> Hub {
    let tg = FakeTelegram::start(BOT_TOKEN);
    let model = FakeProvider::start();
    model.set_default(text_reply(reply, Duration::ZERO));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("telegram.token");
    std::fs::write(&token_file, format!("{BOT_TOKEN}\n")).unwrap();
    let mut settings = agent_settings(&dir.path().join("state"), &model, 16_384);
    settings.config.channels.telegram = TelegramConfig {
        enabled: true,
        bot_token_file: Some(token_file),
        api_root: tg.api_root(),
        allow_from: vec![pinclaw::channel::access::AllowEntry::Id(42)],
        poll_timeout_s: 1,
        ..TelegramConfig::default()
    };
    let extra = Config::parse(toml, std::path::Path::new("automations.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    settings.config.automations = extra.automations;
    settings.config.automation = extra.automation;
    settings.config.board = extra.board;
    let gw = TestGateway::start_with(settings).await;
    Hub {
        tg,
        _model: model,
        gw,
        _dir: dir,
    }
}

async fn sim_set(admin: &mut Client, params: Value) {
    admin
        .call(
            "node.invoke",
            json!({"nodeId": "local", "command": "sim.set", "params": params,
                   "idempotencyKey": pinclaw::ids::uuid_v4()}),
        )
        .await
        .unwrap_or_else(|e| panic!("sim.set {params}: {e}"));
}

async fn read_pin(admin: &mut Client, name: &str) -> Value {
    let read = admin
        .call(
            "node.invoke",
            json!({"nodeId": "local", "command": "gpio.read", "params": {"name": name},
                   "idempotencyKey": pinclaw::ids::uuid_v4()}),
        )
        .await
        .unwrap_or_else(|e| panic!("gpio.read {name}: {e}"));
    read["payload"]["value"].clone()
}

async fn runs(op: &mut Client, name: &str) -> Vec<Value> {
    let v = op
        .call("cron.runs", json!({"id": name, "limit": 50}))
        .await
        .unwrap_or_else(|e| panic!("cron.runs: {e}"));
    v["entries"].as_array().cloned().unwrap_or_default()
}

async fn until_runs(op: &mut Client, name: &str, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let r = runs(op, name).await;
        if r.len() >= n {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} did not run {n} time(s): {:?}", runs(op, name).await);
}

#[tokio::test]
async fn an_edge_notifies_on_telegram_and_the_cooldown_holds_the_second() {
    let hub = start_hub(
        "unused",
        r#"
[[automations]]
name = "hall-motion"
when = { device = "pir1", to = "on" }
do = { notify = { channel = "telegram", to = "42", text = "Motion in the hall at {time}" } }
cooldown_s = 60
"#,
    )
    .await;
    let mut admin = hub.gw.client(&["operator.admin"]).await;
    sim_set(&mut admin, json!({"name": "pir1", "value": true})).await;
    let sent = hub.tg.wait_replies(1, WAIT).await;
    assert!(
        sent[0].text.starts_with("Motion in the hall at "),
        "{}",
        sent[0].text
    );
    assert_eq!(sent[0].chat_id, "42");
    // Off and on again, past the PIR's 200 ms debounce: inside the cooldown.
    tokio::time::sleep(Duration::from_millis(250)).await;
    sim_set(&mut admin, json!({"name": "pir1", "value": false})).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    sim_set(&mut admin, json!({"name": "pir1", "value": true})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hub.tg.replies().len(),
        1,
        "the cooldown let a second one through"
    );
    let r = runs(&mut admin, "hall-motion").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["status"], "ok");
    hub.gw.stop().await;
}

#[tokio::test]
async fn a_threshold_asks_the_agent_and_the_reply_goes_to_telegram() {
    let hub = start_hub(
        "It is warm. Shall I start the fan?",
        r#"
[[automations]]
name = "too-warm"
when = { device = "room", field = "temperature_c", above = 28.0, hysteresis = 0.5 }
do = { agent = { message = "The room is {value} °C.", deliver = { channel = "telegram", to = "42" } } }
"#,
    )
    .await;
    let mut admin = hub.gw.client(&["operator.admin"]).await;
    // A pushed reading is evaluated at once (no waiting for the sampler).
    sim_set(&mut admin, json!({"name": "room", "temperature_c": 30.5})).await;
    let sent = hub.tg.wait_replies(1, WAIT).await;
    assert_eq!(sent[0].text, "It is warm. Shall I start the fan?");
    // The turn is in its session, with the reading quoted as data.
    let history = admin
        .call("chat.history", json!({"sessionKey": "agent:main:main"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = history.to_string();
    assert!(text.contains("The room is 30.5 °C."), "{text}");
    assert!(text.contains("data, not instructions"), "{text}");
    // Still hot: no second turn.
    sim_set(&mut admin, json!({"name": "room", "temperature_c": 29.0})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs(&mut admin, "too-warm").await.len(), 1);
    hub.gw.stop().await;
}

#[tokio::test]
async fn a_confirm_output_waits_for_approval_and_the_notification_says_so() {
    let hub = start_hub(
        "unused",
        r#"
[[board.devices]]
name = "heater"
kind = "output"
pin = 23
confirm = true

[[automations]]
name = "heat"
when = { device = "button1", to = "on" }
do = { invoke = { command = "gpio.write", params = { name = "heater", value = true } }, notify = { channel = "telegram", to = "42", text = "Button: heating" } }
"#,
    )
    .await;
    let mut admin = hub.gw.client(&["operator.admin"]).await;
    sim_set(&mut admin, json!({"name": "button1", "value": true})).await;
    let sent = hub.tg.wait_replies(1, WAIT).await;
    assert!(sent[0].text.contains("Button: heating"), "{}", sent[0].text);
    assert!(
        sent[0]
            .text
            .contains("waiting for an operator's approval: gpio.write heater = on"),
        "{}",
        sent[0].text
    );
    assert_eq!(
        read_pin(&mut admin, "heater").await,
        false,
        "never switched before approval"
    );
    let pending = admin
        .call("exec.approval.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = pending
        .as_array()
        .and_then(|a| a.first())
        .and_then(|a| a["id"].as_str())
        .unwrap_or_else(|| panic!("no approval pending: {pending}"))
        .to_owned();
    admin
        .call(
            "exec.approval.resolve",
            json!({"id": id, "decision": "allow"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = until_runs(&mut admin, "heat", 1).await;
    assert_eq!(r[0]["status"], "ok", "{r:?}");
    assert_eq!(read_pin(&mut admin, "heater").await, true);
    hub.gw.stop().await;
}

#[tokio::test]
async fn a_feedback_loop_is_stopped_by_the_cap_with_a_visible_error() {
    let hub = start_hub(
        "unused",
        r#"
[automation]
max_actions_per_minute = 10

[[automations]]
name = "flip-off"
when = { device = "relay1", to = "on" }
do = { invoke = { command = "gpio.write", params = { name = "relay1", value = false } } }

[[automations]]
name = "flip-on"
when = { device = "relay1", to = "off" }
do = { invoke = { command = "gpio.write", params = { name = "relay1", value = true } } }
"#,
    )
    .await;
    let mut admin = hub.gw.client(&["operator.admin"]).await;
    admin
        .call(
            "node.invoke",
            json!({"nodeId": "local", "command": "gpio.write", "params": {"name": "relay1", "value": true},
                   "idempotencyKey": "start-the-loop"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stopped = None;
    for _ in 0..200 {
        let list = admin
            .call("cron.list", json!({"includeDisabled": true}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        stopped = list["jobs"].as_array().and_then(|jobs| {
            jobs.iter()
                .find(|j| j["state"]["autoDisabled"].is_object())
                .cloned()
        });
        if stopped.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped = stopped.unwrap_or_else(|| panic!("the loop was never stopped"));
    assert_eq!(stopped["enabled"], false);
    assert!(
        stopped["lastRunError"]
            .as_str()
            .is_some_and(|e| e.contains("more than 10 automation actions in a minute")),
        "{stopped}"
    );
    // The relay stops switching, and health says an automation is failing.
    let sim = hub
        .gw
        .handle
        .board()
        .and_then(|b| b.sim().cloned())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writes = sim.writes(17);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sim.writes(17), writes, "still switching");
    assert!(writes <= 12, "{writes} writes: the cap did not hold");
    let health = admin
        .call("health", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        health["automations"]["failing"], 1,
        "{}",
        health["automations"]
    );
    // An operator enables it again.
    let name = stopped["name"].as_str().unwrap_or_default();
    let back = admin
        .call(
            "cron.update",
            json!({"id": name, "patch": {"enabled": true}}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back["enabled"], true);
    assert!(back["state"].get("autoDisabled").is_none(), "{back}");
    hub.gw.stop().await;
}
