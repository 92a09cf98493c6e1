//! SIGKILL the real binary in the middle of a run: every acknowledged
//! message is still there after a restart, the store opens, and a message
//! that was waiting in the queue is answered after the restart.

mod agent_support;
#[path = "support/fake_provider.rs"]
mod fake_provider;
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agent_support::*;
use fake_provider::FakeProvider;
use pinclaw::client::{Client, ClientOptions};
use serde_json::json;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(config: &std::path::Path) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinclaw"))
        .args(["gateway", "--config"])
        .arg(config)
        .env_remove("PINCLAW_GATEWAY_TOKEN")
        .env_remove("PINCLAW_STATE_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let mut url = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap_or_default();
        if let Some(rest) = line.strip_prefix("pinclaw gateway ready at ") {
            url = rest.trim().to_owned();
            break;
        }
    }
    assert!(!url.is_empty(), "gateway did not start");
    (Proc(child), url)
}

async fn operator(url: &str) -> Client {
    Client::connect(
        url,
        &ClientOptions {
            token: Some("kill-test-token-0123456789".into()),
            scopes: vec!["operator.write".into(), "operator.read".into()],
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
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
    let config = dir.path().join("pinclaw.toml");
    let toml = format!(
        r#"state_dir = "{state}"
[gateway]
port = 0
[gateway.auth]
token = "kill-test-token-0123456789"
[[providers]]
id = "fake"
api = "openai-chat"
base_url = "{base}/v1"
[[providers.models]]
id = "m"
[agent]
model = "fake/m"
debounce_ms = 50
"#,
        state = dir.path().join("state").display(),
        base = fake.base_url()
    );
    std::fs::write(&config, toml).unwrap_or_else(|e| panic!("{e}"));

    let (mut proc, url) = spawn(&config);
    let mut op = operator(&url).await;
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
    let _ = proc.0.kill();
    let _ = proc.0.wait();

    let (_proc, url) = spawn(&config);
    let mut op = operator(&url).await;
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
