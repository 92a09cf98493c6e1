//! The agent loop and session lanes against the fake provider over real
//! sockets: streaming, durability, serialization, queue modes, abort,
//! idempotency, compaction, the tool-loop limit and sanitization.

mod agent_support;
#[path = "support/fake_provider.rs"]
mod fake_provider;
mod support;

use std::time::{Duration, Instant};

use agent_support::*;
use fake_provider::FakeProvider;
use pinclaw::client::{Client, ClientError, ClientOptions};
use serde_json::{Value, json};
use support::*;

async fn send(
    client: &mut Client,
    session: &str,
    text: &str,
    key: &str,
    mode: Option<&str>,
) -> Value {
    let mut params = json!({"sessionKey": session, "message": text, "idempotencyKey": key});
    if let Some(m) = mode {
        params["queueMode"] = json!(m);
    }
    client
        .call("chat.send", params)
        .await
        .unwrap_or_else(|e| panic!("chat.send: {e}"))
}

async fn wait_run(client: &mut Client, run_id: &str) -> Value {
    client
        .call("agent.wait", json!({"runId": run_id, "timeoutMs": 20000}))
        .await
        .unwrap_or_else(|e| panic!("agent.wait: {e}"))
}

/// Chat events of a run until its terminal state.
async fn chat_events(client: &mut Client, run_id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let e = client
            .wait_event("chat", Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if e["payload"]["runId"] != run_id {
            continue;
        }
        let state = e["payload"]["state"].as_str().unwrap_or("").to_owned();
        out.push(e);
        if matches!(state.as_str(), "final" | "error" | "aborted") {
            return out;
        }
    }
}

#[tokio::test]
async fn chat_send_streams_persists_and_is_idempotent() {
    let fake = FakeProvider::start();
    fake.set_default(text_reply("The room is 21 degrees.", Duration::ZERO));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = start(dir.path(), &fake).await;
    let mut op = gw.client(&["operator.write", "operator.read"]).await;

    let ack = send(&mut op, "main", "how warm is it?", "k1", None).await;
    assert_eq!(
        ack,
        json!({"runId": "k1", "status": "started", "queued": false, "steered": false, "interruptedActiveRun": false})
    );
    let events = chat_events(&mut op, "k1").await;
    let deltas: String = events
        .iter()
        .filter(|e| e["payload"]["state"] == "delta")
        .map(|e| e["payload"]["deltaText"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(deltas, "The room is 21 degrees.");
    let last = events.last().cloned().unwrap_or_default();
    assert_eq!(last["payload"]["state"], "final");
    assert_eq!(last["payload"]["sessionKey"], "agent:main:main");
    let seqs: Vec<u64> = events
        .iter()
        .filter_map(|e| e["payload"]["seq"].as_u64())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "per-run chat seq: {seqs:?}"
    );

    // A retry of the same key never starts a second run.
    let again = send(&mut op, "main", "how warm is it?", "k1", None).await;
    assert_eq!(again["runId"], "k1");
    assert_eq!(again["cached"], true);
    assert_eq!(fake.requests().len(), 1);

    let history = op
        .call("chat.history", json!({"sessionKey": "main"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let roles: Vec<&str> = history["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|x| x["role"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(roles, vec!["user", "assistant"]);
    assert_eq!(history["messages"][1]["text"], "The room is 21 degrees.");
    let body = fake.requests()[0].json.clone().unwrap_or_default();
    assert_eq!(last_user(&body), "how warm is it?");
    assert!(
        body["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["function"]["name"] == "nodes"))
    );
    assert!(
        body["messages"][0]["content"]
            .as_str()
            .is_some_and(|s| s.contains("local")),
        "system prompt names the board"
    );

    let sessions = op
        .call("sessions.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sessions["sessions"][0]["key"], "agent:main:main");
    assert_eq!(sessions["sessions"][0]["messageCount"], 2);
    assert_eq!(sessions["sessions"][0]["totalTokens"], 13);

    // History survives a restart.
    op.close().await;
    gw.stop().await;
    let gw = start(dir.path(), &fake).await;
    let mut op = gw.client(&["operator.read"]).await;
    let history = op
        .call("chat.history", json!({"sessionKey": "main", "limit": 1}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(history["messages"][0]["text"], "The room is 21 degrees.");
    gw.stop().await;
}

#[tokio::test]
async fn one_run_per_session_and_a_global_cap_of_two() {
    let fake = FakeProvider::start();
    // Each reply takes at least 4 × 80 ms.
    fake.set_default(text_reply("one two three four", Duration::from_millis(80)));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = start(dir.path(), &fake).await;
    let mut op = gw.client(&["operator.write", "operator.read"]).await;
    let t0 = Instant::now();
    for (i, session) in ["a", "a", "a", "b", "c"].iter().enumerate() {
        send(
            &mut op,
            session,
            &format!("{session}-{i}"),
            &format!("r{i}"),
            Some("followup"),
        )
        .await;
    }
    for i in 0..5 {
        let done = wait_run(&mut op, &format!("r{i}")).await;
        assert_eq!(done["status"], "ok", "{done}");
    }
    let log = fake.requests();
    assert_eq!(log.len(), 5);
    let at = |prefix: &str| -> Vec<Duration> {
        log.iter()
            .filter(|r| {
                r.json
                    .as_ref()
                    .is_some_and(|b| last_user(b).starts_with(prefix))
            })
            .map(|r| r.at.duration_since(t0.min(r.at)))
            .collect()
    };
    let a = at("a-");
    assert_eq!(a.len(), 3);
    for w in a.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(300),
            "session a runs overlapped: {a:?}"
        );
    }
    // b ran beside a's first run (two slots); c waited for a slot.
    let b = at("b-")[0];
    let c = at("c-")[0];
    assert!(
        b < a[1],
        "b did not run beside a's first run: a {a:?} b {b:?}"
    );
    assert!(
        c >= a[0].min(b) + Duration::from_millis(300),
        "c ran beyond the cap: a {a:?} b {b:?} c {c:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn queue_modes_followup_collect_steer_interrupt() {
    let fake = FakeProvider::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = start(dir.path(), &fake).await;
    let mut op = gw.client(&["operator.write", "operator.read"]).await;
    let slow = || text_reply("a b c d e", Duration::from_millis(60));

    // collect: three queued messages become one turn.
    fake.push(slow());
    fake.push(text_reply("collected", Duration::ZERO));
    send(&mut op, "col", "first", "c0", None).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 1..4 {
        let ack = send(
            &mut op,
            "col",
            &format!("more {i}"),
            &format!("c{i}"),
            Some("collect"),
        )
        .await;
        assert_eq!(ack["queued"], true);
    }
    for i in 0..4 {
        assert_eq!(wait_run(&mut op, &format!("c{i}")).await["status"], "ok");
    }
    let log = fake.requests();
    assert_eq!(log.len(), 2, "collect made one turn of the three");
    let body = log[1].json.clone().unwrap_or_default();
    let users: Vec<String> = body["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|x| x["role"] == "user")
                .filter_map(|x| x["content"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(users, vec!["first", "more 1", "more 2", "more 3"]);

    // steer: a message during a tool round trip joins the next model call.
    fake.push(tool_reply("t1", "time", json!({})).delay_headers(Duration::from_millis(300)));
    fake.push(text_reply("steered answer", Duration::ZERO));
    let before = fake.requests().len();
    send(&mut op, "st", "what time is it?", "s0", None).await;
    fake.arrived(before + 1, Duration::from_secs(5)).await;
    let ack = send(&mut op, "st", "and the date too", "s1", Some("steer")).await;
    assert_eq!(ack["steered"], true);
    assert_eq!(wait_run(&mut op, "s0").await["status"], "ok");
    let waited = wait_run(&mut op, "s1").await;
    assert_eq!(
        waited["status"], "ok",
        "a steered message finishes with its run: {waited}"
    );
    let log = fake.requests();
    assert_eq!(
        log.len(),
        before + 2,
        "no extra run for the steered message"
    );
    let second = log[before + 1].json.clone().unwrap_or_default();
    assert_eq!(last_user(&second), "and the date too");
    assert!(
        second["messages"].to_string().contains("unixMs"),
        "the tool result is in the context"
    );

    // followup: its own turn after the active one.
    fake.push(slow());
    fake.push(text_reply("second", Duration::ZERO));
    let before = fake.requests().len();
    send(&mut op, "fu", "one", "f0", None).await;
    send(&mut op, "fu", "two", "f1", Some("followup")).await;
    assert_eq!(wait_run(&mut op, "f1").await["status"], "ok");
    assert_eq!(fake.requests().len(), before + 2);

    // interrupt: aborts the active run, runs the new message.
    fake.push(text_reply(
        "this is a long slow answer that gets cut",
        Duration::from_millis(100),
    ));
    fake.push(text_reply("fresh", Duration::ZERO));
    let before = fake.requests().len();
    send(&mut op, "in", "long question", "i0", None).await;
    fake.arrived(before + 1, Duration::from_secs(5)).await;
    let ack = send(
        &mut op,
        "in",
        "never mind, quick one",
        "i1",
        Some("interrupt"),
    )
    .await;
    assert_eq!(ack["interruptedActiveRun"], true);
    assert_eq!(wait_run(&mut op, "i0").await["status"], "aborted");
    let done = wait_run(&mut op, "i1").await;
    assert_eq!(done["status"], "ok");
    assert_eq!(done["terminalReply"], "fresh");
    gw.stop().await;
}

#[tokio::test]
async fn abort_while_streaming_and_queue_first() {
    let fake = FakeProvider::start();
    fake.set_default(text_reply(
        "w w w w w w w w w w w w w w w w w w w w",
        Duration::from_millis(200),
    ));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = start(dir.path(), &fake).await;
    let mut op = gw.client(&["operator.write", "operator.read"]).await;
    send(&mut op, "ab", "go", "a0", None).await;
    send(&mut op, "ab", "later", "a1", Some("followup")).await;
    fake.arrived(1, Duration::from_secs(5)).await;
    let first = op
        .call("chat.abort", json!({"sessionKey": "ab", "runId": "a1"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first["runIds"], json!(["a1"]), "a queued turn goes first");
    let started = Instant::now();
    let aborted = op
        .call("chat.abort", json!({"sessionKey": "ab"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(aborted["runIds"], json!(["a0"]));
    let events = chat_events(&mut op, "a0").await;
    assert_eq!(
        events.last().map(|e| e["payload"]["state"].clone()),
        Some(json!("aborted"))
    );
    let elapsed = started.elapsed();
    // Generous on purpose (qemu runs this too); the figure is printed below.
    assert!(elapsed < Duration::from_secs(10), "abort took {elapsed:?}");
    println!("abort while streaming → aborted event in {elapsed:?}");
    assert_eq!(wait_run(&mut op, "a0").await["status"], "aborted");
    assert_eq!(wait_run(&mut op, "a1").await["status"], "aborted");
    assert_eq!(
        fake.requests().len(),
        1,
        "the aborted queued turn never ran"
    );
    gw.stop().await;
}

#[tokio::test]
async fn tool_loop_limit_ends_with_a_clear_error() {
    let fake = FakeProvider::start();
    fake.set_default(tool_reply("t", "time", json!({})));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut s = agent_settings(dir.path(), &fake, 16_384);
    s.config.agent.max_tool_iterations = 3;
    let gw = TestGateway::start_with(s).await;
    let mut op = gw.client(&["operator.write", "operator.read"]).await;
    send(&mut op, "loop", "loop forever", "l0", None).await;
    let done = wait_run(&mut op, "l0").await;
    assert_eq!(done["status"], "error");
    assert!(
        done["error"]
            .as_str()
            .is_some_and(|e| e.contains("3 model/tool round trips")),
        "{done}"
    );
    assert_eq!(fake.requests().len(), 3);
    gw.stop().await;
}

#[tokio::test]
async fn agent_method_is_two_phase() {
    let fake = FakeProvider::start();
    fake.set_default(text_reply("hello from the fake", Duration::ZERO));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = start(dir.path(), &fake).await;
    let mut ws = raw_connect(&gw.url, &[]).await;
    assert_eq!(
        raw_handshake(&mut ws, cli_params(&["operator.write"])).await["ok"],
        true
    );
    send_json(&mut ws, json!({"type":"req","id":"ag","method":"agent","params":{"message":"hi","idempotencyKey":"ag-1"}})).await;
    let first = next_res(&mut ws).await;
    assert_eq!(first["id"], "ag");
    assert_eq!(first["payload"]["status"], "accepted");
    assert_eq!(first["payload"]["runId"], "ag-1");
    let second = next_res(&mut ws).await;
    assert_eq!(second["id"], "ag");
    assert_eq!(second["payload"]["status"], "ok");
    assert_eq!(
        second["payload"]["result"]["payloads"][0]["text"],
        "hello from the fake"
    );
    gw.stop().await;
}

async fn send_json(ws: &mut RawWs, v: Value) {
    support::send(ws, &v).await;
}

#[tokio::test]
async fn context_overflow_compacts_with_a_durable_marker() {
    let fake = FakeProvider::start();
    fake.set_default(text_reply("ok", Duration::ZERO));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // A tiny window: the system prompt and tool schemas take most of it.
    let mut s = agent_settings(dir.path(), &fake, 1200);
    s.config.agent.compaction = pinclaw::agent::CompactionMode::Drop;
    let gw = TestGateway::start_with(s).await;
    let mut op = gw.client(&["operator.write", "operator.read"]).await;
    let mut compactions = Vec::new();
    for i in 0..6 {
        let text = format!("message {i} {}", "blah ".repeat(120));
        send(&mut op, "small", &text, &format!("m{i}"), None).await;
        assert_eq!(wait_run(&mut op, &format!("m{i}")).await["status"], "ok");
        compactions.extend(
            op.take_events()
                .into_iter()
                .filter(|e| e["event"] == "agent" && e["payload"]["stream"] == "compaction"),
        );
    }
    assert!(!compactions.is_empty(), "no compaction event");
    let data = &compactions[0]["payload"]["data"];
    assert_eq!(data["method"], "drop");
    assert!(data["compactedMessages"].as_u64().unwrap_or(0) > 0);
    let history = op
        .call(
            "chat.history",
            json!({"sessionKey": "small", "limit": 1000}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        history["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x["kind"] == "compaction")),
        "the transcript records it"
    );
    // The last request no longer carries the first message.
    let last = fake
        .requests()
        .last()
        .and_then(|r| r.json.clone())
        .unwrap_or_default();
    assert!(
        !last["messages"].to_string().contains("message 0 "),
        "old turns left the context"
    );
    assert!(
        last["messages"]
            .to_string()
            .contains("removed to fit the context window")
    );
    gw.stop().await;
}

#[tokio::test]
async fn no_model_configured_is_a_clear_error_and_the_message_is_kept() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut op = gw.client(&["operator.write", "operator.read"]).await;
    send(&mut op, "main", "anyone there?", "n0", None).await;
    let done = wait_run(&mut op, "n0").await;
    assert_eq!(done["status"], "error");
    assert!(
        done["error"]
            .as_str()
            .is_some_and(|e| e.contains("no model configured"))
    );
    let history = op
        .call("chat.history", json!({"sessionKey": "main"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(history["messages"][0]["text"], "anyone there?");
    assert_eq!(history["messages"][1]["kind"], "error", "{history}");
    assert!(
        history["messages"][1]["text"]
            .as_str()
            .is_some_and(|t| t.contains("no model configured")),
        "{history}"
    );
    let bad = op
        .call(
            "chat.send",
            json!({"sessionKey": "main", "message": "", "idempotencyKey": "x"}),
        )
        .await;
    assert!(
        matches!(bad, Err(ClientError::Rpc { message, .. }) if message.contains("message must not be empty"))
    );
    let _ = ClientOptions::default();
    gw.stop().await;
}

#[tokio::test]
async fn streamed_text_is_coalesced_into_few_deltas() {
    let fake = FakeProvider::start();
    let text = (0..200)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    fake.set_default(text_reply(&text, Duration::ZERO));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = start(dir.path(), &fake).await;
    let mut op = gw.client(&["operator.write", "operator.read"]).await;
    send(&mut op, "d", "talk", "d1", None).await;
    let events = chat_events(&mut op, "d1").await;
    let deltas: Vec<&Value> = events
        .iter()
        .filter(|e| e["payload"]["state"] == "delta")
        .collect();
    let joined: String = deltas
        .iter()
        .map(|e| e["payload"]["deltaText"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(joined, text, "nothing lost in coalescing");
    println!("200 streamed tokens → {} chat delta events", deltas.len());
    assert!(
        deltas.len() < 200 / 4,
        "{} delta events for 200 tokens: not coalesced",
        deltas.len()
    );
    gw.stop().await;
}

/// A run that fails (the provider is down) is visible where a user looks:
/// an error row in the history, a `chat` error event, and the session's
/// state; a later good run puts the session back to `done`.
#[tokio::test]
async fn a_failed_run_is_visible_in_history_events_and_session_state() {
    let fake = FakeProvider::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut s = agent_settings(dir.path(), &fake, 16_384);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let dead_port = closed.local_addr().map(|a| a.port()).unwrap_or(1);
    drop(closed);
    s.config.providers[0].base_url = format!("http://127.0.0.1:{dead_port}/v1");
    let gw = TestGateway::start_with(s).await;
    let mut op = gw.client(&["operator.write", "operator.read"]).await;
    send(&mut op, "down", "is the relay on?", "f0", None).await;
    let events = chat_events(&mut op, "f0").await;
    let last = &events[events.len() - 1]["payload"];
    assert_eq!(last["state"], "error", "{last}");
    let said = last["errorMessage"].as_str().unwrap_or("").to_owned();
    assert!(
        said.starts_with("model fake/m unreachable: connection refused ("),
        "one readable line: {said}"
    );
    assert!(said.contains(" attempts)"), "{said}");
    assert!(
        !said.contains("model(s)") && !said.contains("os error"),
        "{said}"
    );

    let history = op
        .call("chat.history", json!({"sessionKey": "down"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rows = history["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2, "{history}");
    assert_eq!(rows[1]["kind"], "error");
    assert_eq!(rows[1]["role"], "assistant");
    assert_eq!(rows[1]["isError"], true);
    assert_eq!(rows[1]["text"], json!(said));
    assert_eq!(rows[1]["runId"], "f0");
    let info = &history["sessionInfo"];
    assert_eq!(info["status"], "failed", "{info}");
    assert_eq!(info["lastError"], json!(said));

    // The error row is never sent to the model, and a good run clears the state.
    gw.stop().await;

    let mut s = agent_settings(dir.path(), &fake, 16_384);
    s.config.agent.debounce_ms = 0;
    // A model entry without its own output cap gets the documented default.
    s.config.providers[0].models[0].max_output_tokens = None;
    fake.set_default(text_reply("It is off.", Duration::ZERO));
    let gw = TestGateway::start_with(s).await;
    let mut op = gw.client(&["operator.write", "operator.read"]).await;
    send(&mut op, "down", "and now?", "f1", None).await;
    assert_eq!(wait_run(&mut op, "f1").await["status"], "ok");
    let body = fake.requests()[0].json.clone().unwrap_or_default();
    assert_eq!(
        body["max_tokens"], 1024,
        "agent.default_max_output_tokens is what is sent"
    );
    let texts: Vec<String> = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !texts.iter().any(|t| t.contains("unreachable")),
        "the error row reached the model: {texts:?}"
    );
    let listed = op
        .call("sessions.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let row = &listed["sessions"][0];
    assert_eq!(row["status"], "done", "{row}");
    assert_eq!(row["lastError"], Value::Null);
    // One answer per question: health counts the sessions sessions.list has.
    let health = op
        .call("health", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        health["sessions"]["count"], listed["totalCount"],
        "{health}"
    );
    assert_eq!(health["sessions"]["count"], 1);
    gw.stop().await;
}

/// A key reused for a different message is refused with a clear error,
/// never answered with the first message's run, and so after a restart.
#[tokio::test]
async fn a_key_reused_for_another_message_is_refused_even_after_a_restart() {
    let fake = FakeProvider::start();
    fake.set_default(text_reply("ok", Duration::ZERO));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for restart in [false, true] {
        let gw = start(dir.path(), &fake).await;
        let mut op = gw.client(&["operator.write", "operator.read"]).await;
        if !restart {
            send(&mut op, "main", "is the relay on?", "m1", None).await;
            wait_run(&mut op, "m1").await;
        }
        let reused = op
            .call(
                "chat.send",
                json!({"sessionKey": "main", "message": "and the heater?", "idempotencyKey": "m1"}),
            )
            .await;
        match reused {
            Err(ClientError::Rpc { message, error, .. }) => {
                assert_eq!(
                    error["details"]["code"], "IDEMPOTENCY_KEY_REUSED",
                    "{error}"
                );
                assert!(
                    message.contains("already used for a different message"),
                    "{message}"
                );
            }
            other => panic!("a reused key must be refused (restart: {restart}): {other:?}"),
        }
        // The same message with the same key is a retry: answered, not refused.
        let again = send(&mut op, "main", "is the relay on?", "m1", None).await;
        assert_eq!(again["runId"], "m1");
        gw.stop().await;
    }
    assert_eq!(fake.requests().len(), 1, "one run only");
}
