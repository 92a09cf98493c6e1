//! Queue drop policies, the run timeout, and summarizing compaction.

mod agent_support;
#[path = "support/fake_provider.rs"]
mod fake_provider;
mod support;

use std::time::Duration;

use agent_support::*;
use fake_provider::FakeProvider;
use pinclaw::client::ClientError;
use pinclaw::session::DropPolicy;
use serde_json::json;
use support::*;

fn slow() -> fake_provider::Reply {
    text_reply("a b c d e f", Duration::from_millis(100))
}

#[tokio::test]
async fn drop_policy_new_refuses_and_summarize_tells_the_model() {
    let fake = FakeProvider::start();
    fake.set_default(slow());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut s = agent_settings(dir.path(), &fake, 16_384);
    s.config.agent.queue_cap = 2;
    s.config.agent.queue_drop = DropPolicy::New;
    let gw = TestGateway::start_with(s).await;
    let mut op = gw.client(&["operator.write", "operator.read"]).await;
    let send = |text: &str, key: &str| json!({"sessionKey": "q", "message": text, "idempotencyKey": key, "queueMode": "followup"});
    op.call("chat.send", send("busy", "n0"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    op.call("chat.send", send("one", "n1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    op.call("chat.send", send("two", "n2"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let refused = op.call("chat.send", send("three", "n3")).await;
    assert!(
        matches!(&refused, Err(ClientError::Rpc { code, message, .. }) if code == "UNAVAILABLE" && message.contains("queue is full")),
        "{refused:?}"
    );
    gw.stop().await;

    let fake = FakeProvider::start();
    fake.set_default(slow());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut s = agent_settings(dir.path(), &fake, 16_384);
    s.config.agent.queue_cap = 2;
    s.config.agent.queue_drop = DropPolicy::Summarize;
    let gw = TestGateway::start_with(s).await;
    let mut op = gw.client(&["operator.write", "operator.read"]).await;
    op.call("chat.send", send("busy", "s0"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (text, key) in [("water the plants", "s1"), ("two", "s2"), ("three", "s3")] {
        op.call("chat.send", send(text, key))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let dropped = op
        .call("agent.wait", json!({"runId": "s1", "timeoutMs": 10000}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dropped["status"], "dropped", "{dropped}");
    assert!(
        dropped["error"]
            .as_str()
            .is_some_and(|e| e.contains("queue was full"))
    );
    // Acknowledged, dropped, and still in the history, marked as such.
    let history = op
        .call("chat.history", json!({"sessionKey": "q"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let kept = history["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["text"] == "water the plants").cloned())
        .unwrap_or_default();
    assert_eq!(kept["dropped"], true, "{history}");
    assert_eq!(kept["role"], "user");
    for key in ["s2", "s3"] {
        let done = op
            .call("agent.wait", json!({"runId": key, "timeoutMs": 20000}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(done["status"], "ok", "{key}: {done}");
    }
    let told = fake
        .requests()
        .iter()
        .filter_map(|r| r.json.clone())
        .any(|b| {
            b["messages"]
                .to_string()
                .contains("dropped because the queue was full")
                && b["messages"].to_string().contains("water the plants")
        });
    assert!(told, "the model was told what was dropped");
    gw.stop().await;
}

#[tokio::test]
async fn a_run_that_outlives_its_time_limit_ends_with_a_timeout() {
    let fake = FakeProvider::start();
    fake.set_default(text_reply(
        "never ending story told very slowly",
        Duration::from_millis(700),
    ));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut s = agent_settings(dir.path(), &fake, 16_384);
    s.config.agent.run_timeout_secs = 1;
    let gw = TestGateway::start_with(s).await;
    let mut op = gw.client(&["operator.write", "operator.read"]).await;
    op.call(
        "chat.send",
        json!({"sessionKey": "t", "message": "go", "idempotencyKey": "t0"}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let done = op
        .call("agent.wait", json!({"runId": "t0", "timeoutMs": 20000}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done["status"], "timeout", "{done}");
    assert!(
        done["error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out after 1 s"))
    );
    gw.stop().await;
}

#[tokio::test]
async fn summarize_compaction_keeps_a_model_written_summary() {
    let fake = FakeProvider::start();
    fake.set_default(text_reply("ok", Duration::ZERO));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start_with(agent_settings(dir.path(), &fake, 1200)).await;
    let mut op = gw.client(&["operator.write", "operator.read"]).await;
    let mut summarized = false;
    for i in 0..8 {
        let text = format!("note {i}: {}", "the greenhouse fan ".repeat(30));
        op.call(
            "chat.send",
            json!({"sessionKey": "sum", "message": text, "idempotencyKey": format!("c{i}")}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let done = op
            .call(
                "agent.wait",
                json!({"runId": format!("c{i}"), "timeoutMs": 20000}),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(done["status"], "ok");
        summarized |= op.take_events().iter().any(|e| {
            e["event"] == "agent"
                && e["payload"]["stream"] == "compaction"
                && e["payload"]["data"]["method"] == "summarize"
        });
    }
    op.call("health", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    summarized |= op.take_events().iter().any(|e| {
        e["event"] == "agent"
            && e["payload"]["stream"] == "compaction"
            && e["payload"]["data"]["method"] == "summarize"
    });
    assert!(summarized, "a summarize compaction event");
    let history = op
        .call("chat.history", json!({"sessionKey": "sum", "limit": 1000}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let marker = history["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|x| x["kind"] == "compaction").cloned())
        .unwrap_or_default();
    // The fake answers the summary request with "ok": that is the summary kept.
    assert!(
        marker["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("[Summary of ") && t.ends_with("ok")),
        "{marker}"
    );
    gw.stop().await;
}
