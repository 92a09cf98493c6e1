//! Tools inside the agent loop: abort while a tool runs (the node is told to
//! cancel), results sanitized before events, transcripts and the model.

mod agent_support;
#[path = "support/fake_provider.rs"]
mod fake_provider;
mod support;

use std::time::{Duration, Instant};

use agent_support::*;
use fake_provider::FakeProvider;
use pinclaw::client::{Client, ClientOptions};
use serde_json::json;
use support::*;

#[tokio::test]
async fn abort_while_a_tool_runs_cancels_the_node_invoke() {
    let fake = FakeProvider::start();
    fake.push(tool_reply(
        "c1",
        "nodes",
        json!({"action": "invoke", "node": "slowpoke", "invokeCommand": "slow.op"}),
    ));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = start(dir.path(), &fake).await;
    let mut admin = gw.client(&["operator.admin"]).await;
    let mut node = paired_node(&gw.url, &mut admin, "slowpoke", &["slow.op"]).await;
    admin
        .call(
            "chat.send",
            json!({"sessionKey": "t", "message": "do the slow thing", "idempotencyKey": "t0"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let request = node
        .wait_event("node.invoke.request", Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(request["payload"]["command"], "slow.op");
    let started = Instant::now();
    admin
        .call("chat.abort", json!({"sessionKey": "t"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let cancel = node
        .wait_event("node.invoke.cancel", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cancel["payload"]["invokeId"], request["payload"]["id"]);
    let done = admin
        .call("agent.wait", json!({"runId": "t0", "timeoutMs": 5000}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done["status"], "aborted");
    println!(
        "abort during a tool call → node cancel + aborted in {:?}",
        started.elapsed()
    );
    assert_eq!(fake.requests().len(), 1, "no model call after the abort");
    gw.stop().await;
}

#[tokio::test]
async fn tool_results_are_sanitized_everywhere() {
    let fake = FakeProvider::start();
    fake.push(tool_reply(
        "c1",
        "nodes",
        json!({"action": "invoke", "node": "leaky", "invokeCommand": "creds.dump"}),
    ));
    fake.push(text_reply("done", Duration::ZERO));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = start(dir.path(), &fake).await;
    let mut admin = gw.client(&["operator.admin"]).await;
    let mut node = paired_node(&gw.url, &mut admin, "leaky", &["creds.dump"]).await;
    let mut watcher = Client::connect(
        &gw.url,
        &ClientOptions {
            token: Some(TOKEN.into()),
            scopes: vec!["operator.read".into()],
            caps: vec!["tool-events".into()],
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    admin
        .call(
            "chat.send",
            json!({"sessionKey": "s", "message": "dump it", "idempotencyKey": "s0"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let request = node
        .wait_event("node.invoke.request", Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let secret_payload = json!({"token": "tok-SECRET-1", "note": "use Authorization: Bearer sk-SECRET-2 please", "zbig": "z".repeat(9000)});
    node.call("node.invoke.result", json!({"id": request["payload"]["id"], "nodeId": request["payload"]["nodeId"], "ok": true, "payloadJSON": secret_payload.to_string()}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let done = admin
        .call("agent.wait", json!({"runId": "s0", "timeoutMs": 10000}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done["status"], "ok", "{done}");

    // A round trip pulls in the events queued before its answer.
    watcher
        .call("health", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    admin
        .call("health", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let tool_events: Vec<_> = watcher
        .take_events()
        .into_iter()
        .filter(|e| e["event"] == "agent" && e["payload"]["stream"] == "tool")
        .collect();
    assert!(
        tool_events
            .iter()
            .any(|e| e["payload"]["data"]["phase"] == "result"),
        "tool-events cap gets tool events"
    );
    let not_capped: Vec<_> = admin
        .take_events()
        .into_iter()
        .filter(|e| e["event"] == "agent" && e["payload"]["stream"] == "tool")
        .collect();
    assert!(not_capped.is_empty(), "no tool events without the cap");
    let history = admin
        .call("chat.history", json!({"sessionKey": "s"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let model_saw = fake
        .requests()
        .last()
        .and_then(|r| r.json.clone())
        .unwrap_or_default();
    for (place, text) in [
        (
            "events",
            serde_json::to_string(&tool_events).unwrap_or_default(),
        ),
        ("transcript", history.to_string()),
        ("model", model_saw.to_string()),
    ] {
        assert!(
            !text.contains("tok-SECRET-1") && !text.contains("sk-SECRET-2"),
            "secret in {place}"
        );
        assert!(
            !text.contains(&"z".repeat(8100)),
            "untruncated text in {place}"
        );
    }
    assert!(history.to_string().contains("[redacted]"));
    gw.stop().await;
}

/// The model may run only what the client whose message started the run
/// could run itself: `fs.listDir` needs `operator.admin`, so a write-only
/// client's run is refused it (the node never hears of it), an admin's runs.
#[tokio::test]
async fn a_run_acts_with_the_scopes_of_the_client_that_started_it() {
    let fake = FakeProvider::start();
    let list_dir = || {
        tool_reply(
            "c1",
            "nodes",
            json!({"action": "invoke", "node": "files", "invokeCommand": "fs.listDir", "invokeParamsJson": "{\"path\":\"/\"}"}),
        )
    };
    fake.push(list_dir());
    fake.push(text_reply("could not", Duration::ZERO));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = start(dir.path(), &fake).await;
    let mut admin = gw.client(&["operator.admin"]).await;
    let mut node = paired_node(&gw.url, &mut admin, "files", &["fs.listDir"]).await;

    let mut writer = gw.client(&["operator.write", "operator.read"]).await;
    writer
        .call(
            "chat.send",
            json!({"sessionKey": "w", "message": "list /", "idempotencyKey": "w1"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let done = writer
        .call("agent.wait", json!({"runId": "w1", "timeoutMs": 20000}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done["status"], "ok", "{done}");
    let history = writer
        .call("chat.history", json!({"sessionKey": "w"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let tool = history["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "tool").cloned())
        .unwrap_or_default();
    assert_eq!(tool["isError"], true, "{history}");
    assert!(
        tool["text"]
            .as_str()
            .is_some_and(|t| t.contains("operator.admin")),
        "{tool}"
    );
    assert!(
        node.take_events()
            .iter()
            .all(|e| e["event"] != "node.invoke.request"),
        "the node was asked to run an admin-only command for a write-only client"
    );

    // The same request from an admin's message reaches the node.
    fake.push(list_dir());
    fake.push(text_reply("listed", Duration::ZERO));
    let answer = tokio::spawn(async move {
        let request = node
            .wait_event("node.invoke.request", Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let p = &request["payload"];
        node.call(
            "node.invoke.result",
            json!({"id": p["id"], "nodeId": p["nodeId"], "ok": true, "payloadJSON": "{\"entries\":[\"etc\"]}"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        request
    });
    admin
        .call(
            "chat.send",
            json!({"sessionKey": "a", "message": "list /", "idempotencyKey": "a1"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let request = answer.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(request["payload"]["command"], "fs.listDir");
    let done = admin
        .call("agent.wait", json!({"runId": "a1", "timeoutMs": 20000}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done["terminalReply"], "listed", "{done}");
    gw.stop().await;
}
