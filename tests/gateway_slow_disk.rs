//! The gateway on a slow SD card: every fsync/fdatasync of the real binary
//! is delayed by an `LD_PRELOAD` shim built from `support/fsync_delay.c`.
//!
//! - A flush never stalls anyone else: while one client's `chat.send` waits
//!   for its fsync, another connection's `health` and a GPIO read on the
//!   board answer first (asserted by order, not by a time bound).
//! - Writes that arrive together share a flush (group commit): many
//!   acknowledged messages cost far fewer fsyncs than messages.

mod agent_support;
#[path = "support/fake_provider.rs"]
mod fake_provider;
#[path = "support/process.rs"]
mod process;
mod support;

use std::time::{Duration, Instant};

use agent_support::text_reply;
use fake_provider::FakeProvider;
use pinclaw::client::Client;
use serde_json::json;

const TOKEN: &str = "slow-disk-token-0123456789";

fn config(dir: &std::path::Path, fake: &FakeProvider) -> std::path::PathBuf {
    process::write_fake_provider_config(
        dir,
        TOKEN,
        &fake.base_url(),
        "debounce_ms = 20\nmax_concurrent = 8",
    )
}

async fn operator(url: &str) -> Client {
    support::operator_at(url, TOKEN, &["operator.write", "operator.read"]).await
}

/// The shim, or `None` after printing why this test cannot run here.
fn shim(dir: &std::path::Path, test: &str) -> Option<std::path::PathBuf> {
    match process::build_fsync_shim(dir) {
        Ok(path) => Some(path),
        Err(reason) => {
            process::skip(test, &reason);
            None
        }
    }
}

#[tokio::test]
async fn a_slow_flush_delays_only_the_write_that_waits_for_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let Some(shim) = shim(
        dir.path(),
        "a_slow_flush_delays_only_the_write_that_waits_for_it",
    ) else {
        return;
    };
    let fake = FakeProvider::start();
    fake.set_default(text_reply("noted", Duration::ZERO));
    let gw = process::start(
        &config(dir.path(), &fake),
        &[
            ("LD_PRELOAD", &shim.display().to_string()),
            ("PINCLAW_FSYNC_DELAY_MS", "1000"),
        ],
    );
    let mut writer = operator(&gw.url).await;
    let mut idle = operator(&gw.url).await;
    // Make sure the shim is in effect: a durable write takes the delay.
    let t = Instant::now();
    writer
        .call(
            "chat.send",
            json!({"sessionKey": "warmup", "message": "hi", "idempotencyKey": "w0"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "the fsync delay shim is not in effect"
    );

    let write = tokio::spawn(async move {
        writer
            .call(
                "chat.send",
                json!({"sessionKey": "slow", "message": "store this", "idempotencyKey": "w1"}),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Instant::now()
    });
    // Give the chat.send a head start so its fsync is under way.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let health = idle
        .call("health", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let health_at = Instant::now();
    assert_eq!(health["ok"], true);
    let pin = idle
        .call(
            "node.invoke",
            json!({"nodeId": "local", "command": "gpio.read", "params": {"name": "relay1"}, "idempotencyKey": "g1"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pin_at = Instant::now();
    assert_eq!(pin["ok"], true, "{pin}");
    let acked_at = write.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        health_at < acked_at && pin_at < acked_at,
        "health and a GPIO read waited for another client's fsync"
    );
}

#[tokio::test]
async fn messages_that_arrive_together_share_a_flush() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let Some(shim) = shim(dir.path(), "messages_that_arrive_together_share_a_flush") else {
        return;
    };
    let fake = FakeProvider::start();
    fake.set_default(text_reply("ok", Duration::ZERO));
    let count_file = dir.path().join("fsyncs");
    let gw = process::start(
        &config(dir.path(), &fake),
        &[
            ("LD_PRELOAD", &shim.display().to_string()),
            ("PINCLAW_FSYNC_DELAY_MS", "100"),
            (
                "PINCLAW_FSYNC_COUNT_FILE",
                &count_file.display().to_string(),
            ),
        ],
    );
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(operator(&gw.url).await);
    }
    let fsyncs_before = std::fs::metadata(&count_file).map_or(0, |m| m.len());
    const PER_CLIENT: usize = 5;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(c, mut client)| {
            tokio::spawn(async move {
                let mut pending = Vec::new();
                for i in 0..PER_CLIENT {
                    // Followups to their own sessions: every message is a
                    // durable write before its ack.
                    pending.push(
                        json!({"sessionKey": format!("s{c}-{i}"), "message": format!("m{c}-{i}"),
                                        "idempotencyKey": format!("k{c}-{i}")}),
                    );
                }
                for params in pending {
                    client
                        .call("chat.send", params)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap_or_else(|e| panic!("{e}"));
    }
    let acked = 8 * PER_CLIENT as u64;
    let fsyncs = std::fs::metadata(&count_file).map_or(0, |m| m.len()) - fsyncs_before;
    println!("{acked} acknowledged messages, {fsyncs} fsyncs (100 ms each)");
    assert!(
        fsyncs < acked,
        "{acked} acks took {fsyncs} fsyncs: writes are not committed together"
    );
}
