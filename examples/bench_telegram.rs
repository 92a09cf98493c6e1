//! Telegram channel figures (issue 9). Not a test: it prints figures and
//! never fails on timing.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example bench_telegram -- target/release/pinclaw
//! ```
//!
//! Against the fake Bot API (`tests/support/fake_telegram.rs`, plain HTTP on
//! loopback: a real bot adds TLS, i.e. rustls' buffers, to the memory
//! figure) and an instant fake model, each pass measures:
//! - idle: two gateways side by side for `BENCH_IDLE_S` seconds, one with
//!   Telegram enabled and long-polling (`BENCH_POLL_S`, default 30), one
//!   without: RSS (all, and private: `RssAnon`), CPU and context switches
//!   (wake-ups) per second of each;
//! - latency: `BENCH_TURNS` direct messages one after another, from the
//!   fake's `getUpdates` answer carrying the update to the `sendMessage`
//!   carrying the reply (typing indicator included, as a user sees it);
//! - stall: a `getUpdates` that never answers, from its arrival to the
//!   account's `healthState` leaving `healthy`, to `stalled`, and back to
//!   `healthy` once the fake answers again.
//!
//! Medians over `BENCH_PASSES` passes (default 5; the stall part runs
//! `BENCH_STALL_PASSES`, default 3) with the spread (min–max across passes).

mod common;
#[path = "../tests/support/fake_provider.rs"]
mod fake_provider;
#[path = "../tests/support/fake_telegram.rs"]
mod fake_telegram;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    Proc, Result, admin as operator, env_num, figure, gateway, pct, rates, sample, wait_until,
};
use fake_provider::{FakeProvider, Reply};
use fake_telegram::{FakeTelegram, Fault, Times};
use pinclaw::client::Client;
use serde_json::json;

const BOT_TOKEN: &str = "4242:bench-bot-token";
const USER: i64 = 42;

/// Write a config (Telegram on the fake if given) and start the gateway.
fn start(
    dir: &Path,
    model: &FakeProvider,
    telegram: Option<(&FakeTelegram, u64)>,
) -> Result<(Proc, String)> {
    let mut toml = format!(
        "[[providers]]\nid = \"fake\"\napi = \"openai-chat\"\nbase_url = \"{}/v1\"\n[[providers.models]]\nid = \"m\"\ncontext_window = 1000000\n\
         [agent]\nmodel = \"fake/m\"\ndebounce_ms = 0\n",
        model.base_url()
    );
    if let Some((tg, poll)) = telegram {
        std::fs::write(dir.join("bot.token"), BOT_TOKEN)?;
        toml.push_str(&format!(
            "[channels.telegram]\nenabled = true\nbot_token_file = \"{}\"\napi_root = \"{}\"\ndm_policy = \"allowlist\"\nallow_from = [{USER}]\npoll_timeout_s = {poll}\n",
            dir.join("bot.token").display(),
            tg.api_root()
        ));
    }
    gateway(dir, &toml)
}

async fn health_state(op: &mut Client) -> Result<String> {
    let status = op.call("channels.status", json!({})).await?;
    Ok(status["channelAccounts"]["telegram"][0]["healthState"]
        .as_str()
        .unwrap_or("?")
        .to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let passes = env_num("BENCH_PASSES", 5);
    let idle_s = env_num("BENCH_IDLE_S", 60);
    let poll_s = env_num("BENCH_POLL_S", 30);
    let turns = env_num("BENCH_TURNS", 200) as usize;
    let stall_passes = env_num("BENCH_STALL_PASSES", 3);
    let model = FakeProvider::start();
    model.set_default(Reply::openai_text(&["It is 21 degrees."]));

    let mut anon_delta = Vec::new();
    let (mut rss_delta, mut cpu_with, mut cpu_without, mut wake_with, mut wake_without) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    for pass in 0..passes {
        let tg = FakeTelegram::start(BOT_TOKEN);
        let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
        let (plain, _) = start(dir_a.path(), &model, None)?;
        let (bot, _) = start(dir_b.path(), &model, Some((&tg, poll_s)))?;
        // Settled: the first short poll is done and a long poll is waiting.
        wait_until("a long poll", Duration::from_secs(20), || {
            tg.calls_of("getUpdates").len() >= 2
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (a0, b0) = (sample(plain.0.id()), sample(bot.0.id()));
        tokio::time::sleep(Duration::from_secs(idle_s)).await;
        let (a1, b1) = (sample(plain.0.id()), sample(bot.0.id()));
        let (cpu_a, wake_a) = rates(a0, a1);
        let (cpu_b, wake_b) = rates(b0, b1);
        println!(
            "pass {pass} idle {idle_s} s: without Telegram RSS {} KiB ({} private), CPU {cpu_a:.4} %, {wake_a:.2} wake-ups/s; with it RSS {} KiB ({} private), CPU {cpu_b:.4} %, {wake_b:.2} wake-ups/s",
            a1.rss_kb, a1.anon_kb, b1.rss_kb, b1.anon_kb
        );
        rss_delta.push(b1.rss_kb as f64 - a1.rss_kb as f64);
        anon_delta.push(b1.anon_kb as f64 - a1.anon_kb as f64);
        cpu_without.push(cpu_a);
        cpu_with.push(cpu_b);
        wake_without.push(wake_a);
        wake_with.push(wake_b);
        drop(plain);

        // Update → reply, one after another.
        let mut ms = Vec::with_capacity(turns);
        for _ in 0..turns {
            let before = tg.calls_of("sendMessage").len();
            let id = tg.dm(USER, "how warm is it?");
            wait_until("the reply", Duration::from_secs(30), || {
                tg.calls_of("sendMessage").len() > before
            })
            .await?;
            let served = tg
                .first_served_at(id)
                .ok_or("the update was never served")?;
            let sent = tg.calls_of("sendMessage")[before].at;
            ms.push(sent.duration_since(served).as_secs_f64() * 1000.0);
        }
        ms.sort_by(|a, b| a.total_cmp(b));
        println!(
            "pass {pass} update→reply over {turns} messages: p50 {:.3} ms, p99 {:.3} ms",
            pct(&ms, 0.5),
            pct(&ms, 0.99)
        );
        p50s.push(pct(&ms, 0.5));
        p99s.push(pct(&ms, 0.99));
        drop(bot);
    }
    figure("telegram_idle_rss_added_kib", "KiB", rss_delta);
    // The rest of the RSS added is the channel's code, paged in from the
    // binary: file-backed, shared and reclaimable.
    figure("telegram_idle_private_memory_added_kib", "KiB", anon_delta);
    figure("idle_cpu_pct_with_telegram", "%", cpu_with);
    figure("idle_cpu_pct_without_telegram", "%", cpu_without);
    figure("idle_wakeups_per_s_with_telegram", "/s", wake_with);
    figure("idle_wakeups_per_s_without_telegram", "/s", wake_without);
    figure("update_to_reply_p50_ms", "ms", p50s);
    figure("update_to_reply_p99_ms", "ms", p99s);

    // A poll that hangs: how long until health says so, and recovery.
    let (mut first_s, mut stalled_s, mut recovered_s) = (Vec::new(), Vec::new(), Vec::new());
    let mut first_states = Vec::new();
    for pass in 0..stall_passes {
        let tg = FakeTelegram::start(BOT_TOKEN);
        let dir = tempfile::tempdir()?;
        let (_bot, url) = start(dir.path(), &model, Some((&tg, poll_s)))?;
        let mut op = operator(&url).await?;
        wait_until("a long poll", Duration::from_secs(20), || {
            tg.calls_of("getUpdates").len() >= 2
        })
        .await?;
        let polls = tg.calls_of("getUpdates").len();
        tg.fault("getUpdates", Fault::Hang, Times::UntilCleared);
        // The poll in flight answers normally at its timeout; the next hangs.
        wait_until("the hung poll", Duration::from_secs(poll_s + 10), || {
            tg.calls_of("getUpdates").len() > polls
        })
        .await?;
        let hung_at = tg.calls_of("getUpdates")[polls].at;
        let mut first = None;
        let stalled = loop {
            let state = health_state(&mut op).await?;
            let at = hung_at.elapsed().as_secs_f64();
            if state != "healthy" && first.is_none() {
                first = Some((state.clone(), at));
            }
            if state == "stalled" {
                break at;
            }
            if at > (3 * poll_s + 30) as f64 {
                return Err(format!("not stalled after {at:.0} s (state {state})").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        tg.clear();
        let cleared = Instant::now();
        while health_state(&mut op).await? != "healthy" {
            if cleared.elapsed() > Duration::from_secs(3 * poll_s + 30) {
                return Err("never healthy again".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let recovered = cleared.elapsed().as_secs_f64();
        let (state, at) = first.unwrap_or(("stalled".into(), stalled));
        println!(
            "pass {pass} hung poll (poll {poll_s} s): {state} after {at:.1} s, stalled after {stalled:.1} s, healthy {recovered:.1} s after the fake answers again"
        );
        first_states.push(state);
        first_s.push(at);
        stalled_s.push(stalled);
        recovered_s.push(recovered);
    }
    first_states.dedup();
    println!("first unhealthy state(s): {}", first_states.join(", "));
    figure("hung_poll_to_first_unhealthy_s", "s", first_s);
    figure("hung_poll_to_stalled_s", "s", stalled_s);
    figure("stall_cleared_to_healthy_s", "s", recovered_s);
    Ok(())
}
