//! Automation figures (issue 11). Not a test: it prints figures and never
//! fails on timing.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example bench_automations -- target/release/pinclaw
//! ```
//!
//! Each pass starts the real gateway on the simulated board, with Telegram
//! on the fake Bot API (`tests/support/fake_telegram.rs`), and measures:
//! - edge → notification: `BENCH_EDGES` motion edges (`sim.set pir1`), from
//!   the `node.invoke` that drives the input to the fake's `sendMessage`
//!   carrying the automation's notification (debounce, engine, outbound
//!   ledger with its fsync, delivery loop, HTTP);
//! - schedule accuracy: an `every = "1s"` automation for `BENCH_TICKS`
//!   runs; lateness = when it fired (`cron.runs` `runAtMs`) minus the
//!   second it was due;
//! - idle cost: two gateways side by side for `BENCH_IDLE_S` seconds, one
//!   with 25 automations (20 schedules that do not come due, 5 thresholds
//!   sampling their sensors every 30 s, nothing firing) and one with none:
//!   CPU, wake-ups (context switches) per second and RSS of each.
//!
//! Medians over `BENCH_PASSES` passes (default 3) with the spread.

mod common;
#[path = "../tests/support/fake_telegram.rs"]
mod fake_telegram;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Proc, Result, admin, env_num, figure, gateway, pct, rates, sample, wait_until};
use fake_telegram::FakeTelegram;
use pinclaw::client::Client;
use serde_json::json;

const BOT_TOKEN: &str = "4242:bench-bot-token";

/// Start the gateway with `extra` config (Telegram on the fake if given).
fn start(dir: &Path, tg: Option<&FakeTelegram>, extra: &str) -> Result<(Proc, String)> {
    let mut toml = String::new();
    if let Some(tg) = tg {
        std::fs::write(dir.join("bot.token"), BOT_TOKEN)?;
        toml.push_str(&format!(
            "[channels.telegram]\nenabled = true\nbot_token_file = \"{}\"\napi_root = \"{}\"\ndm_policy = \"allowlist\"\nallow_from = [42]\npoll_timeout_s = 30\n",
            dir.join("bot.token").display(),
            tg.api_root()
        ));
    }
    toml.push_str(extra);
    gateway(dir, &toml)
}

async fn pir(op: &mut Client, on: bool) -> Result<()> {
    op.call(
        "node.invoke",
        json!({"nodeId": "local", "command": "sim.set", "params": {"name": "pir1", "value": on},
               "idempotencyKey": pinclaw::ids::uuid_v4()}),
    )
    .await?;
    Ok(())
}

/// 20 schedules that do not come due and 5 thresholds that do not cross.
fn quiet_automations() -> String {
    let mut toml = String::new();
    for i in 0..20 {
        toml.push_str(&format!(
            "[[automations]]\nname = \"yearly-{i}\"\nwhen = {{ cron = \"{} 3 1 1 *\" }}\n\
             do = {{ invoke = {{ command = \"gpio.write\", params = {{ name = \"relay1\", value = true }} }} }}\n",
            i % 60
        ));
    }
    for (i, (device, field)) in [
        ("room", "temperature_c"),
        ("room", "humidity_pct"),
        ("water", "temperature_c"),
        ("shed", "temperature_c"),
        ("cpu_temp", "temperature_c"),
    ]
    .iter()
    .enumerate()
    {
        toml.push_str(&format!(
            "[[automations]]\nname = \"limit-{i}\"\nwhen = {{ device = \"{device}\", field = \"{field}\", above = 500.0, for_s = 300, sample_s = 30 }}\n\
             do = {{ invoke = {{ command = \"gpio.write\", params = {{ name = \"relay1\", value = true }} }} }}\n"
        ));
    }
    toml
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let passes = env_num("BENCH_PASSES", 3);
    let edges = env_num("BENCH_EDGES", 50) as usize;
    let ticks = env_num("BENCH_TICKS", 60) as usize;
    let idle_s = env_num("BENCH_IDLE_S", 60);
    let (mut p50s, mut p99s, mut late50, mut late99) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut cpu_with, mut cpu_without, mut wake_with, mut wake_without) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut rss_added, mut anon_added) = (Vec::new(), Vec::new());
    for pass in 0..passes {
        // Edge → notification.
        let tg = FakeTelegram::start(BOT_TOKEN);
        let dir = tempfile::tempdir()?;
        let (gw, url) = start(
            dir.path(),
            Some(&tg),
            // Faster than the default cap of 30 actions a minute allows.
            "[automation]\nmax_actions_per_minute = 1000\n\
             [[automations]]\nname = \"hall-motion\"\nwhen = { device = \"pir1\", to = \"on\" }\n\
             do = { notify = { channel = \"telegram\", to = \"42\", text = \"Motion at {time}\" } }\n",
        )?;
        let mut op = admin(&url).await?;
        let mut ms = Vec::with_capacity(edges);
        for _ in 0..edges {
            let before = tg.calls_of("sendMessage").len();
            let sent = Instant::now();
            pir(&mut op, true).await?;
            wait_until("the notification", Duration::from_secs(10), || {
                tg.calls_of("sendMessage").len() > before
            })
            .await?;
            let arrived = tg.calls_of("sendMessage")[before].at;
            ms.push(arrived.duration_since(sent).as_secs_f64() * 1000.0);
            // Past the PIR's 200 ms debounce, off, and again.
            tokio::time::sleep(Duration::from_millis(220)).await;
            pir(&mut op, false).await?;
            tokio::time::sleep(Duration::from_millis(220)).await;
        }
        ms.sort_by(|a, b| a.total_cmp(b));
        println!(
            "pass {pass} edge→notification over {edges} edges: p50 {:.3} ms, p99 {:.3} ms",
            pct(&ms, 0.5),
            pct(&ms, 0.99)
        );
        p50s.push(pct(&ms, 0.5));
        p99s.push(pct(&ms, 0.99));
        drop(op);
        drop(gw);

        // Schedule accuracy.
        let dir = tempfile::tempdir()?;
        let (gw, url) = start(
            dir.path(),
            None,
            "[[automations]]\nname = \"tick\"\nwhen = { every = \"1s\" }\n\
             do = { invoke = { command = \"gpio.read\", params = { name = \"relay1\" } } }\n",
        )?;
        tokio::time::sleep(Duration::from_secs(ticks as u64 + 2)).await;
        // Connected after the wait: a client that reads nothing for a
        // minute misses the gateway's pings and is dropped.
        let mut op = admin(&url).await?;
        let runs = op
            .call("cron.runs", json!({"id": "tick", "limit": 200}))
            .await?;
        let mut late: Vec<f64> = runs["entries"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|r| r["runAtMs"].as_i64())
                    .map(|at| (at % 1000) as f64)
                    .collect()
            })
            .unwrap_or_default();
        late.sort_by(|a, b| a.total_cmp(b));
        println!(
            "pass {pass} every 1s over {} runs: late p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            late.len(),
            pct(&late, 0.5),
            pct(&late, 0.99),
            late.last().copied().unwrap_or(f64::NAN)
        );
        late50.push(pct(&late, 0.5));
        late99.push(pct(&late, 0.99));
        drop(op);
        drop(gw);

        // Idle cost of 25 automations.
        let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
        let (plain, _) = start(dir_a.path(), None, "")?;
        let (busy, _) = start(dir_b.path(), None, &quiet_automations())?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (a0, b0) = (sample(plain.0.id()), sample(busy.0.id()));
        tokio::time::sleep(Duration::from_secs(idle_s)).await;
        let (a1, b1) = (sample(plain.0.id()), sample(busy.0.id()));
        let (cpu_a, wake_a) = rates(a0, a1);
        let (cpu_b, wake_b) = rates(b0, b1);
        println!(
            "pass {pass} idle {idle_s} s: no automations CPU {cpu_a:.4} %, {wake_a:.3} wake-ups/s, RSS {} KiB ({} private); \
             25 automations CPU {cpu_b:.4} %, {wake_b:.3} wake-ups/s, RSS {} KiB ({} private)",
            a1.rss_kb, a1.anon_kb, b1.rss_kb, b1.anon_kb
        );
        cpu_without.push(cpu_a);
        cpu_with.push(cpu_b);
        wake_without.push(wake_a);
        wake_with.push(wake_b);
        rss_added.push(b1.rss_kb as f64 - a1.rss_kb as f64);
        anon_added.push(b1.anon_kb as f64 - a1.anon_kb as f64);
    }
    figure("edge_to_notification_p50_ms", "ms", p50s);
    figure("edge_to_notification_p99_ms", "ms", p99s);
    figure("schedule_late_p50_ms", "ms", late50);
    figure("schedule_late_p99_ms", "ms", late99);
    figure("idle_cpu_pct_25_automations", "%", cpu_with);
    figure("idle_cpu_pct_no_automations", "%", cpu_without);
    figure("idle_wakeups_per_s_25_automations", "/s", wake_with);
    figure("idle_wakeups_per_s_no_automations", "/s", wake_without);
    figure("rss_added_25_automations_kib", "KiB", rss_added);
    figure("private_memory_added_25_automations_kib", "KiB", anon_added);
    Ok(())
}
