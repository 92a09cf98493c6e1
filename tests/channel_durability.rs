//! The real binary with Telegram on the fake Bot API, SIGKILLed at the
//! moments that lose or duplicate messages in other gateways: right after
//! Telegram handed over an update, and while a reply waits for Telegram to
//! come back. And the bot token, at TRACE, in no log line, dump or status.

mod agent_support;
#[path = "support/fake_provider.rs"]
mod fake_provider;
#[path = "support/fake_telegram.rs"]
mod fake_telegram;
#[path = "support/process.rs"]
mod process;
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent_support::*;
use fake_provider::FakeProvider;
use fake_telegram::{FakeTelegram, Fault, Times};
use pinclaw::client::Client;
use serde_json::{Value, json};

const TOKEN: &str = "tg-durability-token-0123456789";
const BOT_TOKEN: &str = "987654:SECRET-durability-bot-token";
const TOKEN_VAR: &str = "PINCLAW_TEST_BOT_TOKEN";
const WAIT: Duration = Duration::from_secs(20);

/// A config with the fake model and Telegram on the fake (user 42 allowed,
/// 1 s long polls), plus `extra` TOML at the end.
fn config(dir: &Path, model: &FakeProvider, tg: &FakeTelegram, extra: &str) -> PathBuf {
    process::write_fake_provider_config(
        dir,
        TOKEN,
        &model.base_url(),
        &format!(
            "debounce_ms = 50\n[channels.telegram]\nenabled = true\nbot_token_env = \"{TOKEN_VAR}\"\napi_root = \"{}\"\ndm_policy = \"allowlist\"\nallow_from = [42]\npoll_timeout_s = 1\n{extra}",
            tg.api_root()
        ),
    )
}

fn start(config: &Path) -> process::GatewayProcess {
    process::start(config, &[(TOKEN_VAR, BOT_TOKEN)])
}

async fn operator(url: &str) -> Client {
    support::operator_at(
        url,
        TOKEN,
        &["operator.admin", "operator.write", "operator.read"],
    )
    .await
}

/// Wait (up to 10 s) for a process the fake SIGKILLs to be gone.
async fn wait_dead(gw: &mut process::GatewayProcess) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.try_exit().is_none() {
        assert!(Instant::now() < deadline, "the gateway was not killed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The user messages of the DM session, oldest first.
async fn user_texts(op: &mut Client) -> Vec<String> {
    let history = op
        .call("chat.history", json!({"sessionKey": "agent:main:main"}))
        .await
        .unwrap_or_else(|e| panic!("chat.history: {e}"));
    history["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_sigkill_right_after_an_update_was_served_processes_it_exactly_once() {
    let tg = FakeTelegram::start(BOT_TOKEN);
    let model = FakeProvider::start();
    // Slower than any kill below: no reply is out when the kill lands.
    model.set_default(text_reply("Noted.", Duration::from_millis(300)));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = config(dir.path(), &model, &tg, "");
    // SIGKILL 0, 1, 5 and 20 ms after Telegram's answer is written: before
    // the update is read, while it is being stored, and after.
    let delays = [0u64, 1, 5, 20];
    for (round, delay) in delays.iter().enumerate() {
        let mut gw = start(&config);
        // The previous round's message is answered by this process.
        tg.wait_replies(round, WAIT).await;
        let polls = tg.calls_of("getUpdates").len();
        tg.until("the poller polls", WAIT, |f| {
            f.calls_of("getUpdates").len() > polls
        })
        .await;
        tg.kill_after_serving(gw.pid(), Duration::from_millis(*delay));
        tg.dm(42, &format!("message {round}"));
        wait_dead(&mut gw).await;
    }
    let gw = start(&config);
    let replies = tg.wait_replies(delays.len(), WAIT).await;
    let mut op = operator(&gw.url).await;
    // Nothing more comes, however long we look.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(tg.replies().len(), delays.len(), "one reply per message");
    assert!(
        replies
            .iter()
            .all(|r| r.chat_id == "42" && r.text == "Noted.")
    );
    let texts = user_texts(&mut op).await;
    let expected: Vec<String> = (0..delays.len()).map(|i| format!("message {i}")).collect();
    assert_eq!(
        texts, expected,
        "each update processed exactly once, in order"
    );
    let served = tg.served();
    eprintln!(
        "updates served {} times for {} updates (re-served after a kill: {})",
        served.len(),
        delays.len(),
        served.len() - delays.len()
    );
    gw.terminate();
}

#[tokio::test]
async fn a_reply_accepted_before_a_sigkill_is_delivered_after_the_restart() {
    let tg = FakeTelegram::start(BOT_TOKEN);
    let model = FakeProvider::start();
    model.set_default(text_reply("The porch light is on.", Duration::ZERO));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = config(dir.path(), &model, &tg, "");
    let gw = start(&config);
    tg.until("the first poll", WAIT, |f| {
        !f.calls_of("getUpdates").is_empty()
    })
    .await;
    // Telegram is down for sending: replies wait in the ledger.
    tg.fault(
        "sendMessage",
        Fault::Status {
            code: 502,
            description: "Bad Gateway".into(),
            retry_after: None,
        },
        Times::UntilCleared,
    );
    tg.dm(42, "switch the porch light on");
    tg.until("a delivery attempt", WAIT, |f| {
        !f.calls_of("sendMessage").is_empty()
    })
    .await;
    let mut op = operator(&gw.url).await;
    let queued = op
        .call(
            "send",
            json!({"to": "42", "message": "Motion in the hall", "channel": "telegram", "idempotencyKey": "notice-1"}),
        )
        .await;
    assert!(
        queued
            .as_ref()
            .is_err_and(|e| e.to_string().contains("queued")),
        "accepted, not yet delivered: {queued:?}"
    );
    drop(op);
    gw.kill();

    tg.clear();
    let gw = start(&config);
    let replies = tg.wait_replies(2, WAIT).await;
    let mut texts: Vec<&str> = replies.iter().map(|r| r.text.as_str()).collect();
    texts.sort_unstable();
    assert_eq!(texts, ["Motion in the hall", "The porch light is on."]);
    assert!(replies.iter().all(|r| r.chat_id == "42"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(tg.replies().len(), 2, "each delivered once");
    assert_eq!(model.requests().len(), 1, "the reply was sent, not re-made");
    gw.terminate();
}

#[tokio::test]
async fn the_bot_token_is_in_no_log_line_dump_status_or_error_at_trace() {
    let tg = FakeTelegram::start(BOT_TOKEN);
    let model = FakeProvider::start();
    model.set_default(text_reply("Hello.", Duration::ZERO));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = config(dir.path(), &model, &tg, "[logging]\nfilter = \"trace\"\n");
    let log = dir.path().join("gateway.log");
    let gw = process::start_logged(&config, &[(TOKEN_VAR, BOT_TOKEN)], &log);
    tg.dm(42, "hi");
    tg.wait_replies(1, WAIT).await;
    // An API that echoes the request URL (with the token) in its error.
    tg.fault(
        "getUpdates",
        Fault::Status {
            code: 502,
            description: format!("Bad Gateway: upstream /bot{BOT_TOKEN}/getUpdates failed"),
            retry_after: None,
        },
        Times::Once,
    );
    tg.until("the echoing error", WAIT, |f| {
        f.calls_of("getUpdates").len() > 3
    })
    .await;
    tg.revoke();
    let mut op = operator(&gw.url).await;
    let deadline = Instant::now() + WAIT;
    let status = loop {
        let status = op
            .call("channels.status", json!({}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if status["channelAccounts"]["telegram"][0]["healthState"] == "blocked" {
            break status;
        }
        assert!(Instant::now() < deadline, "not blocked: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let config_dump = op
        .call("config.get", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let health = op
        .call("health", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let tail = op
        .call("logs.tail", json!({"limit": 500}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let send_error = op
        .call(
            "send",
            json!({"to": "42", "message": "x", "channel": "telegram", "idempotencyKey": "t-1"}),
        )
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    drop(op);
    gw.terminate();

    let logged = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        logged.contains("TRACE") || logged.contains("DEBUG"),
        "the log is verbose"
    );
    assert!(logged.contains("getUpdates"), "the poller logged its calls");
    let secret = BOT_TOKEN.split(':').nth(1).unwrap_or(BOT_TOKEN);
    for (what, text) in [
        ("the log", logged),
        ("channels.status", status.to_string()),
        ("config.get", config_dump.to_string()),
        ("health", health.to_string()),
        ("logs.tail", tail.to_string()),
        ("the send error", send_error),
    ] {
        assert!(
            !text.contains(secret),
            "the bot token is in {what}: {}",
            excerpt(&text, secret)
        );
    }
    assert!(
        status["channelAccounts"]["telegram"][0]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("401") || e.contains("revoked")),
        "{status}"
    );
    assert_eq!(
        config_dump_token_source(&config_dump),
        Some(json!(TOKEN_VAR)),
        "the dump names where the token comes from"
    );
}

fn config_dump_token_source(dump: &Value) -> Option<Value> {
    let config = dump.get("config").unwrap_or(dump);
    config["channels"]["telegram"].get("bot_token_env").cloned()
}

fn excerpt(text: &str, needle: &str) -> String {
    let at = text.find(needle).unwrap_or(0);
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(120)
        .map_or(0, |(i, _)| i);
    text[start..].chars().take(240).collect()
}
