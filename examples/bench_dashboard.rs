//! Dashboard figures (issue 10). Not a test: it prints figures and never
//! fails on timing.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example bench_dashboard -- target/release/pinclaw
//! ```
//!
//! Each pass starts the real gateway on the simulated board and a headless
//! Chromium (the tests' DevTools client, `tests/support/cdp.rs`; Debian's
//! `chromium` or `$PINCLAW_CHROMIUM`), at a phone viewport, and measures:
//! - first load: requests and bytes on the wire (`encodedDataLength`:
//!   headers and gzipped bodies) of a browser that never saw the page, up
//!   to a connected page (its device pairing approved by an operator);
//! - time to a connected, rendered board view: `performance.now()` (from
//!   the navigation's start) when the page is connected and the relay's
//!   value is on screen, over `BENCH_LOADS` reloads of a paired page, with
//!   the browser cache (304s) and with it disabled;
//! - RSS added per open dashboard: the gateway's RSS with `BENCH_TABS`
//!   connected tabs against none;
//! - idle wake-ups: the gateway's context switches per second over
//!   `BENCH_IDLE_S` seconds with no dashboard, then with one open.
//!
//! Medians over `BENCH_PASSES` passes (default 3) with the spread.

#[path = "../tests/support/cdp.rs"]
mod cdp;
mod common;

use std::time::Duration;

use cdp::{Browser, Page};
use common::{Result, TOKEN, admin, env_num, figure, gateway, pct, rates, sample};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// Resolves with `performance.now()` once the page is connected and the
/// relay's value is rendered.
const RENDERED: &str = "new Promise((done) => { const check = () => \
    (document.body?.dataset.conn === 'ok' && \
     document.querySelector('[data-device=\"relay1\"] [data-testid=value]')?.textContent) \
    ? done(performance.now()) : requestAnimationFrame(check); check(); })";

/// Approve the pending `pinclaw-dashboard` pairing request.
async fn approve_dashboard(op: &mut pinclaw::client::Client) -> Result<()> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let list = op.call("device.pair.list", json!({})).await?;
        let pending = list["pending"].as_array().cloned().unwrap_or_default();
        if let Some(r) = pending
            .iter()
            .find(|r| r["clientId"] == "pinclaw-dashboard")
        {
            op.call("device.pair.approve", json!({"requestId": r["requestId"]}))
                .await?;
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err("the dashboard never asked to be paired".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Bytes and requests of the HTTP loads recorded on `page`.
fn http_loads(page: &Page<'_>) -> (u64, usize) {
    let events = page.events();
    let http: std::collections::HashSet<String> = events
        .iter()
        .filter(|e| e["method"] == "Network.requestWillBeSent")
        .filter(|e| {
            e["params"]["request"]["url"]
                .as_str()
                .is_some_and(|u| u.starts_with("http"))
        })
        .filter_map(|e| e["params"]["requestId"].as_str().map(str::to_owned))
        .collect();
    let bytes = events
        .iter()
        .filter(|e| e["method"] == "Network.loadingFinished")
        .filter(|e| {
            e["params"]["requestId"]
                .as_str()
                .is_some_and(|id| http.contains(id))
        })
        .filter_map(|e| e["params"]["encodedDataLength"].as_f64())
        .sum::<f64>();
    (bytes as u64, http.len())
}

/// Reload `page` `loads` times; milliseconds to the rendered board each.
async fn reloads(page: &Page<'_>, loads: u64) -> Vec<f64> {
    let mut ms = Vec::new();
    for _ in 0..loads {
        page.call("Page.reload", json!({})).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        page.wait_for("document.readyState === 'complete'", WAIT)
            .await;
        if let Some(t) = page.eval(RENDERED).await.as_f64() {
            ms.push(t);
        }
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    ms
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let passes = env_num("BENCH_PASSES", 3);
    let loads = env_num("BENCH_LOADS", 10);
    let tabs = env_num("BENCH_TABS", 5);
    let idle_s = env_num("BENCH_IDLE_S", 60);
    let chromium = cdp::chromium().ok_or("no Chromium (apt install chromium)")?;
    let (mut first_bytes, mut first_requests) = (Vec::new(), Vec::new());
    let (mut warm, mut cold, mut per_tab, mut per_tab_private) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut wake_none, mut wake_one) = (Vec::new(), Vec::new());
    for pass in 0..passes {
        let dir = tempfile::tempdir()?;
        let (gw, url) = gateway(dir.path(), "")?;
        let pid = gw.0.id();
        let http = url.replacen("ws://", "http://", 1);
        let browser = Browser::launch(&chromium, &[]).await;
        tokio::time::sleep(Duration::from_secs(2)).await;

        // Idle with no dashboard.
        let s0 = sample(pid);
        tokio::time::sleep(Duration::from_secs(idle_s)).await;
        let s1 = sample(pid);
        let (_, none) = rates(s0, s1);

        // First load of a browser that never saw the page.
        let page = browser.new_page().await;
        page.viewport(390, 844, true).await;
        page.call("Network.enable", json!({})).await;
        page.record(&["Network.requestWillBeSent", "Network.loadingFinished"]);
        page.goto(&format!("{http}/#token={TOKEN}")).await;
        // Connected when needed: a client that reads nothing for a minute
        // misses the gateway's pings and is dropped.
        approve_dashboard(&mut admin(&url).await?).await?;
        page.eval(RENDERED).await;
        let (bytes, requests) = http_loads(&page);
        println!("pass {pass} first load: {requests} requests, {bytes} bytes on the wire");
        first_bytes.push(bytes as f64);
        first_requests.push(requests as f64);

        // Paired: reloads with the cache, then without.
        let with_cache = reloads(&page, loads).await;
        page.call("Network.setCacheDisabled", json!({"cacheDisabled": true}))
            .await;
        let without_cache = reloads(&page, loads).await;
        page.call("Network.setCacheDisabled", json!({"cacheDisabled": false}))
            .await;
        println!(
            "pass {pass} connected, rendered board: cached p50 {:.1} ms (max {:.1}), uncached p50 {:.1} ms (max {:.1})",
            pct(&with_cache, 0.5),
            with_cache.last().copied().unwrap_or(f64::NAN),
            pct(&without_cache, 0.5),
            without_cache.last().copied().unwrap_or(f64::NAN)
        );
        warm.push(pct(&with_cache, 0.5));
        cold.push(pct(&without_cache, 0.5));

        // Idle with one dashboard open on the board view.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let s0 = sample(pid);
        tokio::time::sleep(Duration::from_secs(idle_s)).await;
        let s1 = sample(pid);
        let (_, one) = rates(s0, s1);
        println!(
            "pass {pass} idle {idle_s} s: {none:.3} wake-ups/s with no dashboard, {one:.3} with one open"
        );
        wake_none.push(none);
        wake_one.push(one);

        // More tabs of the same (paired) browser.
        let before = sample(pid);
        let mut open: Vec<Page<'_>> = Vec::new();
        for _ in 0..tabs {
            let tab = page.sibling().await;
            tab.goto(&format!("{http}/#token={TOKEN}")).await;
            tab.eval(RENDERED).await;
            open.push(tab);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after = sample(pid);
        let added = (after.rss_kb as f64 - before.rss_kb as f64) / tabs as f64;
        let added_private = (after.anon_kb as f64 - before.anon_kb as f64) / tabs as f64;
        println!(
            "pass {pass} {tabs} more dashboards: RSS {} → {} KiB, {added:.1} KiB each ({added_private:.1} private)",
            before.rss_kb, after.rss_kb
        );
        per_tab.push(added);
        per_tab_private.push(added_private);
        let problems: Vec<String> = open
            .iter()
            .chain(std::iter::once(&page))
            .flat_map(|p| p.problems())
            .collect();
        if !problems.is_empty() {
            println!("pass {pass} page problems: {problems:?}");
        }
        let health: Value = admin(&url).await?.call("health", json!({})).await?;
        println!("pass {pass} gateway connections: {}", health["connections"]);
        for tab in open {
            tab.close().await;
        }
        drop(browser);
        drop(gw);
    }
    figure("first_load_bytes", "B", first_bytes);
    figure("first_load_requests", "", first_requests);
    figure("time_to_rendered_board_cached_ms", "ms", warm);
    figure("time_to_rendered_board_uncached_ms", "ms", cold);
    figure("rss_added_per_dashboard_kib", "KiB", per_tab);
    figure(
        "private_memory_added_per_dashboard_kib",
        "KiB",
        per_tab_private,
    );
    figure("idle_wakeups_per_s_no_dashboard", "/s", wake_none);
    figure("idle_wakeups_per_s_one_dashboard", "/s", wake_one);
    Ok(())
}
