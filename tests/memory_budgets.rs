//! Every cache is bounded in bytes, not only in entries: floods that used to
//! grow the gateway by hundreds of MB stay under a ceiling (RSS of the real
//! binary, read from /proc).
//!
//! - 300 `node.invoke`s with distinct idempotency keys, each answered by a
//!   node with a ~900 KB payload (the idempotency cache keeps one bounded
//!   copy of a result, or only what a retry needs);
//! - 300 agent turns with 60 KB replies (run records keep a bounded amount
//!   of reply text).

mod agent_support;
#[path = "support/fake_provider.rs"]
mod fake_provider;
#[path = "support/process.rs"]
mod process;
mod support;

use std::time::Duration;

use agent_support::text_reply;
use fake_provider::FakeProvider;
use pinclaw::client::Client;
use serde_json::json;

/// Growth allowed over idle RSS after a flood of 900 KB results (the cache
/// budget is 1 MiB; the rest is allocator slack and frame buffers). Before
/// the byte budget the same flood grew the gateway by ~520 MB.
const INVOKE_CEILING_KB: u64 = 32 * 1024;

/// Growth allowed after 300 long turns (the record budget is 1 MiB; the
/// rest is the store cache, contexts and allocator slack). Keeping every
/// reply would alone take 18 MB.
const TURNS_CEILING_KB: u64 = 16 * 1024;

async fn admin(url: &str) -> Client {
    support::operator_at(url, support::TOKEN, &["operator.admin"]).await
}

/// The `status` of the gateway, after asserting a cache stayed in budget.
async fn assert_within_budget(op: &mut Client, cache: &str, budget: usize) -> serde_json::Value {
    let status = op
        .call("status", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bytes = status["caches"][cache]["bytes"].as_u64();
    assert!(
        bytes.is_some_and(|b| b as usize <= budget),
        "{cache} holds {bytes:?} bytes, over its {budget}"
    );
    status
}

#[tokio::test]
async fn large_node_results_do_not_pile_up_in_the_idempotency_cache() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = process::start(&process::write_config(dir.path(), support::TOKEN, ""), &[]);
    let mut op = admin(&gw.url).await;
    let mut node = support::paired_node(&gw.url, &mut op, "bulky", &["dump.read"]).await;
    let payload = json!({"blob": "x".repeat(900 * 1024)}).to_string();
    let answering = tokio::spawn(async move {
        for _ in 0..300 {
            let request = node
                .wait_event("node.invoke.request", Duration::from_secs(30))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let p = &request["payload"];
            node.call(
                "node.invoke.result",
                json!({"id": p["id"], "nodeId": p["nodeId"], "ok": true, "payloadJSON": payload}),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
    });
    let idle = gw.rss_kb();
    for i in 0..300 {
        let result = op
            .call(
                "node.invoke",
                json!({"nodeId": "bulky", "command": "dump.read", "params": {}, "idempotencyKey": format!("k{i}")}),
            )
            .await
            .unwrap_or_else(|e| panic!("invoke {i}: {e}"));
        assert_eq!(result["ok"], true);
    }
    answering.await.unwrap_or_else(|e| panic!("{e}"));
    let after = gw.rss_kb();
    let status = assert_within_budget(
        &mut op,
        "idempotency",
        pinclaw::limits::IDEMPOTENCY_MAX_BYTES,
    )
    .await;
    println!(
        "300 invokes × 900 KB: RSS {idle} → {after} KiB; idempotency cache {}",
        status["caches"]["idempotency"]
    );
    assert!(
        after < idle + INVOKE_CEILING_KB,
        "RSS grew from {idle} to {after} KiB"
    );
    // A retry of the newest key is still answered without a second run.
    let again = op
        .call(
            "node.invoke",
            json!({"nodeId": "bulky", "command": "dump.read", "params": {}, "idempotencyKey": "k299"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again["ok"], true, "{again}");
}

#[tokio::test]
async fn long_replies_do_not_pile_up_in_run_records() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = FakeProvider::start();
    // 60 KB in 600 chunks of 100 bytes.
    let words = vec!["x".repeat(99); 600].join(" ");
    fake.set_default(text_reply(&words, Duration::ZERO));
    let config = process::write_fake_provider_config(
        dir.path(),
        support::TOKEN,
        &fake.base_url(),
        "debounce_ms = 1",
    );
    let gw = process::start(&config, &[]);
    let mut op = admin(&gw.url).await;
    let idle = gw.rss_kb();
    for i in 0..300 {
        op.call(
            "chat.send",
            json!({"sessionKey": format!("long-{}", i % 10), "message": "tell me a long story", "idempotencyKey": format!("r{i}")}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let done = op
            .call(
                "agent.wait",
                json!({"runId": format!("r{i}"), "timeoutMs": 30000}),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(done["status"], "ok", "{done}");
        let _ = op.take_events();
    }
    let after = gw.rss_kb();
    let status = assert_within_budget(
        &mut op,
        "runRecords",
        pinclaw::limits::RUN_RECORDS_MAX_BYTES,
    )
    .await;
    println!(
        "300 turns × 60 KB replies: RSS {idle} → {after} KiB; run records {}",
        status["caches"]["runRecords"]
    );
    assert!(
        after < idle + TURNS_CEILING_KB,
        "RSS grew from {idle} to {after} KiB"
    );
}
