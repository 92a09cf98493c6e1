//! Agent-turn and node-invoke benchmark (issues 4 and 5). Not a test: it
//! prints figures and never fails on timing.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example bench_agent -- target/release/pinclaw
//! ```
//!
//! It starts an instant fake provider (OpenAI streaming format) on loopback,
//! starts the gateway binary against it, and measures:
//! - gateway overhead per agent turn: `chat.send` → `chat final` latency minus
//!   the provider's own time (a direct streaming POST to the same fake);
//! - sustained turns per second across 20 sessions;
//! - RSS idle and after 1,000 turns across 100 sessions;
//! - `node.invoke` round trip to the local board node and to a remote node
//!   (a second pinclaw in `node` mode), next to `health` on the same socket;
//! - RSS per connected idle node (100 nodes).

mod common;
#[path = "../tests/support/fake_provider.rs"]
mod fake_provider;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, Result, TOKEN, admin as operator, pct, sample};
use fake_provider::{FakeProvider, Reply};
use pinclaw::client::{Client, ClientOptions};
use serde_json::json;

fn spawn(bin: &str, args: &[&str]) -> Result<(Proc, Option<String>)> {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut url = None;
    if args.first() == Some(&"gateway") {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(rest) = line.strip_prefix("pinclaw gateway ready at ") {
                url = Some(rest.trim().to_owned());
                break;
            }
        }
    }
    Ok((Proc(child), url))
}

/// The gateway's resident set, KiB.
fn rss_kb(pid: u32) -> u64 {
    sample(pid).rss_kb
}

fn summary(name: &str, mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99) = (pct(&ms, 0.5), pct(&ms, 0.99));
    println!("figure {name}_p50_ms {p50:.3}");
    println!("figure {name}_p99_ms {p99:.3}");
    (p50, p99)
}

/// One turn: send, then wait for this run's terminal chat event. Returns
/// (ack latency, turn latency).
async fn turn(client: &mut Client, session: &str, key: &str) -> Result<(Duration, Duration)> {
    let t0 = Instant::now();
    client
        .call(
            "chat.send",
            json!({"sessionKey": session, "message": "how warm is it?", "idempotencyKey": key}),
        )
        .await?;
    let ack = t0.elapsed();
    loop {
        let e = client.wait_event("chat", Duration::from_secs(30)).await?;
        if e["payload"]["runId"] == key && e["payload"]["state"] != "delta" {
            if e["payload"]["state"] != "final" {
                return Err(format!("turn failed: {e}").into());
            }
            return Ok((ack, t0.elapsed()));
        }
    }
}

fn provider_baseline(base: &str, n: usize) -> Vec<f64> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let body =
        json!({"model":"m","stream":true,"messages":[{"role":"user","content":"how warm is it?"}]});
    (0..n)
        .filter_map(|_| {
            let t0 = Instant::now();
            let mut resp = agent
                .post(&format!("{base}/v1/chat/completions"))
                .send_json(&body)
                .ok()?;
            let text = resp.body_mut().read_to_string().ok()?;
            text.contains("[DONE]")
                .then(|| t0.elapsed().as_secs_f64() * 1000.0)
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let bin = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/release/pinclaw".into());
    let fake = FakeProvider::start();
    fake.set_default(Reply::openai_text(&["It is ", "21 degrees."]));
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("pinclaw.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[gateway]\nport = 0\nmax_connections = 1024\n[gateway.auth]\ntoken = \"{TOKEN}\"\n\
             [nodes]\nmax_nodes = 200\n\
             [[providers]]\nid = \"fake\"\napi = \"openai-chat\"\nbase_url = \"{}/v1\"\n[[providers.models]]\nid = \"m\"\n\
             [agent]\nmodel = \"fake/m\"\ndebounce_ms = 0\nqueue_mode = \"followup\"\n",
            dir.path().join("state").display(),
            fake.base_url()
        ),
    )?;
    let config_arg = config.display().to_string();
    let (gw, url) = spawn(&bin, &["gateway", "--config", &config_arg])?;
    let url = url.ok_or("gateway did not print its ready line")?;
    let pid = gw.0.id();
    let mut op = operator(&url).await?;

    // Warm up, then idle RSS.
    for i in 0..20 {
        turn(&mut op, "warm", &format!("w{i}")).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kb(pid);
    println!("figure rss_idle_kb {idle}");

    // Turn latency vs the provider's own time.
    let mut lat = Vec::new();
    let mut acks = Vec::new();
    for i in 0..300 {
        // A fresh session per turn: the context is one message, like the
        // direct provider request it is compared with.
        let (ack, total) = turn(&mut op, &format!("lat{i}"), &format!("l{i}")).await?;
        acks.push(ack.as_secs_f64() * 1000.0);
        lat.push(total.as_secs_f64() * 1000.0);
    }
    summary("chat_send_ack_durable", acks);
    let (turn50, turn99) = summary("turn", lat);
    let (prov50, prov99) = summary("provider_direct", provider_baseline(&fake.base_url(), 300));
    println!("figure gateway_overhead_p50_ms {:.3}", turn50 - prov50);
    println!("figure gateway_overhead_p99_ms {:.3}", turn99 - prov99);

    // Sustained throughput: 20 sessions, 50 turns each, all sent up front.
    let t0 = Instant::now();
    let total = 1000;
    for i in 0..total {
        op.call("chat.send", json!({"sessionKey": format!("s{}", i % 20), "message": "hi", "idempotencyKey": format!("t{i}")})).await?;
    }
    for i in 0..total {
        op.call(
            "agent.wait",
            json!({"runId": format!("t{i}"), "timeoutMs": 60000}),
        )
        .await?;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "figure turns_per_sec_20_sessions {:.1}",
        total as f64 / secs
    );

    // 1,000 turns across 100 sessions, then RSS again; a second 1,000 shows
    // whether it keeps growing.
    let mut rounds = Vec::new();
    for round in 0..2 {
        for i in 0..1000 {
            let params = json!({"sessionKey": format!("m{}", i % 100), "message": "hi", "idempotencyKey": format!("m{round}-{i}")});
            // More busy sessions than the gateway holds at once are refused
            // with a retry hint (limits::MAX_RESIDENT_SESSIONS): wait and retry.
            loop {
                match op.call("chat.send", params.clone()).await {
                    Err(pinclaw::client::ClientError::Rpc { code, error, .. })
                        if code == "UNAVAILABLE" =>
                    {
                        let wait = error["retryAfterMs"].as_u64().unwrap_or(100).min(1000);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    other => {
                        other?;
                        break;
                    }
                }
            }
        }
        for i in 0..1000 {
            op.call(
                "agent.wait",
                json!({"runId": format!("m{round}-{i}"), "timeoutMs": 60000}),
            )
            .await?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        rounds.push(rss_kb(pid));
    }
    println!("figure rss_after_1000_turns_100_sessions_kb {}", rounds[0]);
    println!(
        "figure rss_growth_first_1000_kb {}",
        rounds[0] as i64 - idle as i64
    );
    println!("figure rss_after_2000_turns_kb {}", rounds[1]);
    println!(
        "figure rss_growth_second_1000_kb {}",
        rounds[1] as i64 - rounds[0] as i64
    );

    // node.invoke to the local board vs health on the same socket.
    let mut health = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        op.call("health", json!({})).await?;
        health.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    summary("health", health);
    let mut local = Vec::new();
    for i in 0..500 {
        let t = Instant::now();
        op.call("node.invoke", json!({"nodeId": "local", "command": "gpio.read", "params": {"name": "relay1"}, "idempotencyKey": format!("g{i}")})).await?;
        local.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    summary("invoke_local", local);

    // A remote node: a second pinclaw in node mode.
    let node_dir = tempfile::tempdir()?;
    let node_state = node_dir.path().display().to_string();
    let (_node, _) = spawn(
        &bin,
        &[
            "node",
            "--url",
            &url,
            "--token",
            TOKEN,
            "--name",
            "bench-node",
            "--state-dir",
            &node_state,
        ],
    )?;
    let request_id = loop {
        let list = op.call("node.pair.list", json!({})).await?;
        if let Some(id) = list["pending"][0]["requestId"].as_str() {
            break id.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    op.call("node.pair.approve", json!({"requestId": request_id}))
        .await?;
    let mut remote = Vec::new();
    for i in 0..500 {
        let t = Instant::now();
        op.call("node.invoke", json!({"nodeId": "bench-node", "command": "gpio.read", "params": {"name": "relay1"}, "idempotencyKey": format!("r{i}")})).await?;
        remote.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    summary("invoke_remote", remote);

    // Memory per idle operator connection: round 0 includes growing the
    // allocator's pools; round 1 shows what a connection costs once they exist.
    for round in 0..2 {
        let before = rss_kb(pid);
        let mut ops = Vec::new();
        for _ in 0..200 {
            ops.push(operator(&url).await?);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!(
            "figure rss_per_idle_operator_round{round}_kb {:.1}",
            (rss_kb(pid) as f64 - before as f64) / 200.0
        );
        for c in ops {
            c.close().await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Memory per connected idle node: round 0 also pairs the devices (store
    // writes, cache warm-up); round 1 reconnects them.
    for round in 0..2 {
        let before = rss_kb(pid);
        let mut nodes = Vec::new();
        for i in 0..100 {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            let options = ClientOptions {
                token: Some(TOKEN.into()),
                role: "node".into(),
                client_id: "node-host".into(),
                mode: "node".into(),
                scopes: vec![],
                commands: vec!["sensors.read".into()],
                device: Some(ed25519_dalek::SigningKey::from_bytes(&seed)),
                display_name: Some(format!("n{i}")),
                ..ClientOptions::default()
            };
            nodes.push(Client::connect(&url, &options).await?);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let with_nodes = rss_kb(pid);
        println!(
            "figure rss_per_idle_node_round{round}_kb {:.1}",
            (with_nodes as f64 - before as f64) / 100.0
        );
        if round == 1 {
            println!(
                "figure nodes_listed {}",
                op.call("node.list", json!({})).await?["nodes"]
                    .as_array()
                    .map(|n| n.len())
                    .unwrap_or(0)
            );
        }
        for n in nodes {
            n.close().await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}
