//! SIGKILL the real binary in the middle of a run: every acknowledged
//! message is still there after a restart, the store opens, and a message
//! that was waiting in the queue is answered after the restart.

mod agent_support;
#[path = "support/fake_provider.rs"]
mod fake_provider;
#[path = "support/process.rs"]
mod process;
mod support;

use std::time::Duration;

use agent_support::*;
use fake_provider::FakeProvider;
use pinclaw::client::Client;
use serde_json::json;

const TOKEN: &str = "kill-test-token-0123456789";

fn fake_config(dir: &std::path::Path, fake: &FakeProvider) -> std::path::PathBuf {
    process::write_fake_provider_config(dir, TOKEN, &fake.base_url(), "debounce_ms = 50")
}

async fn operator(url: &str) -> Client {
    support::operator_at(url, TOKEN, &["operator.write", "operator.read"]).await
}

#[tokio::test]
async fn sigkill_mid_run_loses_no_acknowledged_message() {
    let fake = FakeProvider::start();
    // The first run stalls long enough to be killed in the middle.
    fake.push(text_reply(
        "never finished reply words",
        Duration::from_secs(2),
    ));
    fake.set_default(text_reply("answered after restart", Duration::ZERO));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = fake_config(dir.path(), &fake);
    let gw = process::start(&config, &[]);
    let mut op = operator(&gw.url).await;
    let ack = op
        .call(
            "chat.send",
            json!({"sessionKey": "k", "message": "remember the milk", "idempotencyKey": "m1"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ack["status"], "started");
    fake.arrived(1, Duration::from_secs(10)).await;
    let queued = op
        .call("chat.send", json!({"sessionKey": "k", "message": "and the eggs", "idempotencyKey": "m2", "queueMode": "followup"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(queued["queued"], true);
    // SIGKILL: no chance to flush anything.
    gw.kill();

    let gw = process::start(&config, &[]);
    let mut op = operator(&gw.url).await;
    let done = op
        .call("agent.wait", json!({"runId": "m2", "timeoutMs": 10000}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        done["status"], "ok",
        "the queued message was re-queued and answered: {done}"
    );
    let history = op
        .call("chat.history", json!({"sessionKey": "k"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let texts: Vec<String> = history["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|x| x["text"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        texts.first().map(String::as_str),
        Some("remember the milk"),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t == "and the eggs"), "{texts:?}");
    assert!(
        texts.iter().any(|t| t == "answered after restart"),
        "{texts:?}"
    );
    assert!(
        !texts.iter().any(|t| t.contains("never finished")),
        "no half reply was claimed as complete"
    );
}

#[tokio::test]
async fn sigterm_aborts_running_turns_and_says_so_after_the_restart() {
    let fake = FakeProvider::start();
    fake.set_default(text_reply(
        "a reply that takes far longer than a shutdown",
        Duration::from_secs(2),
    ));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = fake_config(dir.path(), &fake);
    let gw = process::start(&config, &[]);
    let mut op = operator(&gw.url).await;
    op.call(
        "chat.send",
        json!({"sessionKey": "t", "message": "take your time", "idempotencyKey": "t1"}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    fake.arrived(1, Duration::from_secs(10)).await;
    assert_eq!(gw.terminate(), Some(0), "a clean exit");
    let gw = process::start(&config, &[]);
    let mut op = operator(&gw.url).await;
    let done = op
        .call("agent.wait", json!({"runId": "t1", "timeoutMs": 5000}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done["status"], "aborted", "{done}");
    let history = op
        .call("chat.history", json!({"sessionKey": "t"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(history["messages"][0]["text"], "take your time");
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(1));
}
