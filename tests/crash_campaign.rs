//! SIGKILL campaign: the real binary is killed at random moments while
//! four clients send `chat.send` into two busy sessions, in every queue
//! mode. After each restart the clients retry what was never acknowledged
//! (same key, same message). At the end every acknowledged message is in
//! its session's history exactly once (run, or kept as dropped), nothing
//! appears twice, nothing is left queued, and the store opens.
//!
//! `PINCLAW_CRASH_KILLS` sets the kills per queue mode (default 6); the
//! figures for the README come from a longer run:
//! `PINCLAW_CRASH_KILLS=20 cargo test --release --test crash_campaign -- --nocapture`.

mod agent_support;
#[path = "support/fake_provider.rs"]
mod fake_provider;
#[path = "support/process.rs"]
mod process;
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_support::text_reply;
use fake_provider::FakeProvider;
use pinclaw::client::{Client, ClientError, ClientOptions};
use serde_json::{Value, json};

const TOKEN: &str = "crash-campaign-token-0123456789";
const CLIENTS: usize = 4;

/// What the clients know: every message they sent, and which were acked.
#[derive(Default)]
struct Ledger {
    /// key → (session, message text).
    sent: BTreeMap<String, (String, String)>,
    acked: BTreeSet<String>,
}

/// A tiny deterministic generator (no dependency for randomness).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below.max(1)
    }
}

async fn connect(url: &str) -> Option<Client> {
    Client::connect(
        url,
        &ClientOptions {
            token: Some(TOKEN.into()),
            scopes: vec!["operator.write".into(), "operator.read".into()],
            ..ClientOptions::default()
        },
    )
    .await
    .ok()
}

fn session_of(client: usize) -> String {
    format!("crash-{}", client % 2)
}

/// Send (or re-send) one message; record it as acked when the gateway
/// says it is durable (a new run, or a retry of one it already has).
async fn send(client: &mut Client, ledger: &Mutex<Ledger>, key: &str, mode: &str) -> bool {
    let Some((session, text)) = ledger.lock().ok().and_then(|l| l.sent.get(key).cloned()) else {
        return false;
    };
    let params =
        json!({"sessionKey": session, "message": text, "idempotencyKey": key, "queueMode": mode});
    match client.call("chat.send", params).await {
        Ok(_) => {
            if let Ok(mut l) = ledger.lock() {
                l.acked.insert(key.to_owned());
            }
            true
        }
        // A refusal before the ack (queue full under `new`, busy) is not an
        // acknowledgement; the socket dying is the kill.
        Err(ClientError::Rpc { .. }) => true,
        Err(_) => false,
    }
}

/// The keys client `c` sent that were never acknowledged.
fn unacked(ledger: &Mutex<Ledger>, c: usize) -> Vec<String> {
    let prefix = format!("c{c}-");
    ledger
        .lock()
        .map(|l| {
            l.sent
                .keys()
                .filter(|k| k.starts_with(&prefix) && !l.acked.contains(*k))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// One client until its socket dies: retries first, then new messages.
async fn client_loop(url: String, c: usize, mode: &'static str, ledger: Arc<Mutex<Ledger>>) {
    let Some(mut client) = connect(&url).await else {
        return;
    };
    for key in unacked(&ledger, c) {
        if !send(&mut client, &ledger, &key, mode).await {
            return;
        }
    }
    for n in 0.. {
        let key = format!("c{c}-{mode}-{n}-{}", pinclaw::ids::uuid_v4());
        if let Ok(mut l) = ledger.lock() {
            l.sent
                .insert(key.clone(), (session_of(c), format!("msg {key}")));
        }
        if !send(&mut client, &ledger, &key, mode).await {
            return;
        }
    }
}

async fn history(client: &mut Client, session: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let page = client
            .call(
                "chat.history",
                json!({"sessionKey": session, "limit": 1000, "offset": offset}),
            )
            .await
            .unwrap_or_else(|e| panic!("chat.history: {e}"));
        let rows = page["messages"].as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            assert!(
                page["queued"].as_array().is_none_or(Vec::is_empty),
                "messages left queued: {}",
                page["queued"]
            );
            break;
        }
        offset += rows.len();
        let mut rows = rows;
        rows.extend(all);
        all = rows;
    }
    all
}

async fn wait_idle(client: &mut Client) {
    for _ in 0..600 {
        let status = client
            .call("status", json!({}))
            .await
            .unwrap_or_else(|e| panic!("status: {e}"));
        if status["sessions"]["busy"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway never went idle");
}

async fn campaign(mode: &'static str, kills: usize, seed: u64) -> (usize, usize, usize, usize) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = FakeProvider::start();
    // A reply that streams for a while, so kills land mid-run too.
    fake.set_default(text_reply(
        "one two three four five",
        Duration::from_millis(15),
    ));
    let config = process::write_fake_provider_config(
        dir.path(),
        TOKEN,
        &fake.base_url(),
        // Every acknowledged message must stay in history: no turn cap
        // (the default 1,000 per session would prune a long campaign).
        "debounce_ms = 10\nqueue_cap = 8\n[session]\nmax_turns_per_session = 0",
    );
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut rng = Lcg(seed);
    for _ in 0..kills {
        let gw = process::start(&config, &[]);
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| tokio::spawn(client_loop(gw.url.clone(), c, mode, ledger.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(20 + rng.next(400))).await;
        gw.kill();
        for t in tasks {
            let _ = t.await;
        }
    }
    // Last start: retries, then let everything re-queued finish.
    let gw = process::start(&config, &[]);
    let mut checker = connect(&gw.url).await.unwrap_or_else(|| panic!("connect"));
    for c in 0..CLIENTS {
        let mut client = connect(&gw.url).await.unwrap_or_else(|| panic!("connect"));
        for key in unacked(&ledger, c) {
            assert!(send(&mut client, &ledger, &key, mode).await, "retry failed");
        }
    }
    wait_idle(&mut checker).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for s in 0..2 {
        for row in history(&mut checker, &format!("crash-{s}")).await {
            if row["role"] == "user"
                && let Some(text) = row["text"].as_str()
                && let Some(key) = text.strip_prefix("msg ")
            {
                *seen.entry(key.to_owned()).or_default() += 1;
            }
        }
    }
    let l = ledger.lock().unwrap_or_else(|p| p.into_inner());
    let missing: Vec<&String> = l.acked.iter().filter(|k| !seen.contains_key(*k)).collect();
    let duplicated: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "queueMode {mode}: {kills} SIGKILLs, {} sent, {} acknowledged, {} missing, {} duplicated",
        l.sent.len(),
        l.acked.len(),
        missing.len(),
        duplicated.len()
    );
    assert!(
        missing.is_empty(),
        "{mode}: acknowledged but missing: {missing:?}"
    );
    assert!(duplicated.is_empty(), "{mode}: duplicated: {duplicated:?}");
    (kills, l.acked.len(), missing.len(), duplicated.len())
}

#[tokio::test]
async fn sigkill_at_any_moment_loses_and_duplicates_nothing_in_any_queue_mode() {
    let kills: usize = std::env::var("PINCLAW_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let mut total = (0, 0, 0, 0);
    for (i, mode) in ["steer", "followup", "collect", "interrupt"]
        .into_iter()
        .enumerate()
    {
        let (k, a, m, d) = campaign(mode, kills, 0x5eed + i as u64).await;
        total = (total.0 + k, total.1 + a, total.2 + m, total.3 + d);
    }
    println!(
        "campaign: {} SIGKILLs, {} acknowledged messages, {} missing, {} duplicated",
        total.0, total.1, total.2, total.3
    );
}
