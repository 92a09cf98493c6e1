//! Transcript retention through the gateway: a store holding a session
//! whose turns are all past `session.retention_days` and one with recent
//! turns; the gateway prunes at start, and `sessions.list` and
//! `chat.history` still answer sanely for the emptied session.

mod support;

use std::time::{Duration, Instant};

use pinclaw::store::{Store, TranscriptEntry};
use serde_json::json;
use support::*;

const DAY_MS: i64 = 86_400_000;

async fn history(client: &mut pinclaw::client::Client, key: &str) -> serde_json::Value {
    client
        .call("chat.history", json!({"sessionKey": key}))
        .await
        .unwrap_or_else(|e| panic!("chat.history: {e}"))
}

fn row_at(role: &str, content: &str, ts: i64) -> TranscriptEntry {
    let mut row = TranscriptEntry::message(role, content, None);
    row.ts = ts;
    row
}

#[tokio::test]
async fn turns_past_retention_are_pruned_at_start_and_the_session_stays_usable() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let now = pinclaw::ids::now_ms();
    {
        let store = Store::open(&dir.path().join("state.redb")).unwrap_or_else(|e| panic!("{e}"));
        for (key, age_days) in [("agent:main:old", 120), ("agent:main:main", 2)] {
            let ts = now - age_days * DAY_MS;
            let rows = vec![
                row_at("user", &format!("question {age_days}"), ts),
                row_at("assistant", &format!("answer {age_days}"), ts + 1),
            ];
            store
                .append(key, rows, true)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        store.close().await;
    }
    let mut settings = settings(dir.path());
    settings.config.session.retention_days = 90;
    let gw = TestGateway::start_with(settings).await;
    let mut client = gw.client(&["operator.read"]).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let old = loop {
        let old = history(&mut client, "agent:main:old").await;
        if old["messages"].as_array().is_some_and(Vec::is_empty) {
            break old;
        }
        assert!(Instant::now() < deadline, "never pruned: {old}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        old["sessionId"].is_string(),
        "the session is still there: {old}"
    );
    assert_eq!(old["sessionInfo"]["messageCount"], 0, "{old}");

    let recent = history(&mut client, "agent:main:main").await;
    let texts: Vec<&str> = recent["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["content"][0]["text"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(texts, ["question 2", "answer 2"], "{recent}");

    let list = client
        .call("sessions.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("sessions.list: {e}"));
    let counts: Vec<(String, u64)> = list["sessions"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| {
                    (
                        s["key"].as_str().unwrap_or_default().to_owned(),
                        s["messageCount"].as_u64().unwrap_or(u64::MAX),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(counts.contains(&("agent:main:old".into(), 0)), "{list}");
    assert!(counts.contains(&("agent:main:main".into(), 2)), "{list}");
    client.close().await;
    gw.stop().await;
}
