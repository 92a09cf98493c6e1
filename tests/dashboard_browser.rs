//! The dashboard in a real headless Chromium, driven over the DevTools
//! protocol (tests/support/cdp.rs), against an in-process gateway that
//! serves the page itself, with the simulated board, a confirm-gated
//! `heater` output and the fake model provider.
//!
//! One browser for the whole binary (two cores): the scenarios run in
//! order in one test, each tab in its own browser context (its own storage,
//! so its own device identity). Every dashboard tab must finish without a
//! console error, an uncaught exception or an error log entry (a CSP
//! violation is one). Screenshots of every view go to
//! `target/dashboard-shots/` (phone 390×844 and desktop 1280×800, light and
//! dark).
//!
//! Without Chromium (`$PINCLAW_CHROMIUM` or a Debian `chromium`) the
//! browser test skips with a printed reason; with `CI` set it fails.

mod agent_support;
#[path = "support/cdp.rs"]
mod cdp;
#[path = "support/fake_provider.rs"]
mod fake_provider;
#[path = "support/fake_telegram.rs"]
mod fake_telegram;
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use agent_support::{agent_settings, text_reply, tool_reply};
use cdp::{Browser, Page};
use fake_provider::{FakeProvider, Reply};
use fake_telegram::FakeTelegram;
use pinclaw::board::profile::DeviceKindName;
use pinclaw::board::{DeviceSpec, Level};
use pinclaw::client::{Client, ClientOptions};
use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(30);
const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 800);
const TELEGRAM_TOKEN: &str = "123456:TEST-dashboard-bot-token";
const VIEWS: [&str; 5] = ["home", "chat", "history", "approvals", "health"];

/// Prints past libtest's output capture, so a skip reason shows in CI logs.
fn say(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Skip with a printed reason; under CI (`CI` set), where .ci/run installs
/// Chromium, a missing browser is a failure instead.
fn skip(test: &str, reason: &str) {
    say(&format!("SKIPPED {test}: {reason}"));
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set, so {test} must run (.ci/run installs it): {reason}"
    );
}

fn shots_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("dashboard-shots")
}

/// A JS string literal.
fn js(s: &str) -> String {
    Value::from(s).to_string()
}

/// The text of a device's value on the home view.
fn value_of(device: &str) -> String {
    format!(
        "document.querySelector('[data-device={}] [data-testid=value]')?.textContent",
        js(device)
    )
}

/// Wait until the page is connected.
async fn connected(page: &Page<'_>) {
    page.wait_for("document.body.dataset.conn === 'ok'", WAIT)
        .await;
}

/// The request id the pairing view shows.
async fn shown_request_id(page: &Page<'_>) -> String {
    page.wait_for("document.body.dataset.conn === 'pairing'", WAIT)
        .await;
    let shown = page
        .eval("document.querySelector('[data-testid=pairing-command]').textContent")
        .await;
    let shown = shown.as_str().unwrap_or("").to_owned();
    let id = shown.rsplit(' ').next().unwrap_or("").to_owned();
    assert!(
        shown.starts_with("pinclaw devices approve ") && id.len() >= 8,
        "the page shows the command to run: {shown:?}"
    );
    id
}

/// The pending request `id` of the dashboard, if listed.
async fn pending_request(admin: &mut Client, id: &str) -> Option<Value> {
    let list = admin
        .call("device.pair.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    list["pending"]
        .as_array()?
        .iter()
        .find(|r| r["requestId"] == id && r["clientId"] == "pinclaw-dashboard")
        .cloned()
}

/// Approve this page's pending device pairing as the hub owner would, with
/// the request id the page shows. First the page retries once ("Check
/// now"): the gateway refreshes the same request, so the id on the screen
/// stays the one to approve.
async fn approve_shown_request(page: &Page<'_>, admin: &mut Client) {
    let id = shown_request_id(page).await;
    let before = pending_request(admin, &id)
        .await
        .unwrap_or_else(|| panic!("`pinclaw devices list` shows the request {id}"));
    page.eval("document.getElementById('check-now').click()")
        .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let now = pending_request(admin, &id).await;
        let now = now.unwrap_or_else(|| panic!("the retry replaced request {id}"));
        if now["ts"] != before["ts"] {
            break;
        }
        assert!(Instant::now() < deadline, "the page did not retry");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        shown_request_id(page).await,
        id,
        "the same id after a retry"
    );
    admin
        .call("device.pair.approve", json!({"requestId": id}))
        .await
        .unwrap_or_else(|e| panic!("approve {id}: {e}"));
}

/// Open a view by its tab, as a user would.
async fn open_view(page: &Page<'_>, view: &str) {
    page.eval(&format!(
        "document.querySelector('[data-tab={}]').click()",
        js(view)
    ))
    .await;
    page.wait_for(
        &format!("!document.getElementById('view-{view}').hidden"),
        WAIT,
    )
    .await;
}

/// No horizontal overflow: neither the document nor the scrolling main area
/// is wider than the viewport.
async fn assert_fits(page: &Page<'_>, what: &str) {
    let sizes = page
        .eval(
            "(() => { const m = document.querySelector('main'); return [document.documentElement.scrollWidth, innerWidth, m.scrollWidth, m.clientWidth]; })()",
        )
        .await;
    let n = |i: usize| sizes[i].as_f64().unwrap_or(f64::MAX);
    assert!(
        n(0) <= n(1) && n(2) <= n(3),
        "{what} overflows horizontally: [doc scrollWidth, innerWidth, main scrollWidth, main clientWidth] = {sizes}"
    );
}

/// Every visible control of the view is a 44 px touch target (height; and
/// width for icon-sized ones), and its text input font is at least 16 px.
async fn assert_touch_targets(page: &Page<'_>, what: &str) {
    let small = page
        .eval(
            "[...document.querySelectorAll('button, a[href], input, select, textarea, summary, [role=switch]')].filter(e => e.offsetParent !== null).map(e => [e, e.getBoundingClientRect()]).filter(([e, r]) => r.height < 44 || r.width < 44 || (e.matches('input, select, textarea') && parseFloat(getComputedStyle(e).fontSize) < 16)).map(([e, r]) => `${e.outerHTML.slice(0, 80)} ${Math.round(r.width)}x${Math.round(r.height)}`)",
        )
        .await;
    assert_eq!(small, json!([]), "{what}: controls smaller than 44 px");
}

/// The gateway: sim board, a `heater` output that needs approval, the fake
/// model, Telegram on the fake Bot API (DM pairing on), and `pinclaw.test`
/// as a name it answers to (the insecure-context run). `port` 0 picks one.
fn gateway_settings(
    dir: &std::path::Path,
    fake: &FakeProvider,
    tg: &FakeTelegram,
    port: u16,
) -> pinclaw::gateway::GatewaySettings {
    let mut s = agent_settings(&dir.join("state"), fake, 16_384);
    s.port = port;
    let token_file = dir.join("telegram.token");
    std::fs::write(&token_file, format!("{TELEGRAM_TOKEN}\n")).unwrap_or_else(|e| panic!("{e}"));
    s.config.channels.telegram = pinclaw::channel::telegram::TelegramConfig {
        enabled: true,
        bot_token_file: Some(token_file),
        api_root: tg.api_root(),
        poll_timeout_s: 1,
        ..Default::default()
    };
    s.config.board.devices.push(DeviceSpec {
        name: "heater".into(),
        label: Some("Heater".into()),
        kind: Some(DeviceKindName::Output),
        pin: Some(23),
        confirm: Some(true),
        ..DeviceSpec::default()
    });
    s.config.gateway.allowed_hosts = vec!["pinclaw.test".into()];
    // A sample a second, so the sparklines have a shape within the test.
    s.config.history.step_s = 1;
    s.config.history.hours = 1;
    s
}

/// Weather for the sim board: a few sensors drift (sim.set from another
/// client) until aborted, so history has curves and home sees live values.
fn weather(url: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut client = operator_at(&url, TOKEN, &["operator.admin"]).await;
        for i in 0u32.. {
            let t = f64::from(i) / 8.0;
            let readings = [
                ("water", json!({"temperature_c": 21.0 + 1.5 * t.sin()})),
                (
                    "shed",
                    json!({"temperature_c": 14.0 + 3.0 * (0.7 * t).sin(), "humidity_pct": 70.0 + 8.0 * (0.5 * t).cos()}),
                ),
                (
                    "porch",
                    json!({"temperature_c": 17.0 + 2.0 * (0.4 * t).cos(), "humidity_pct": 62.0 + 5.0 * (0.9 * t).sin()}),
                ),
                (
                    "cpu_temp",
                    json!({"temperature_c": 47.0 + 4.0 * (1.3 * t).sin()}),
                ),
            ];
            for (name, mut params) in readings {
                params["name"] = json!(name);
                let _ = client
                    .call(
                        "node.invoke",
                        json!({"nodeId": "local", "command": "sim.set", "params": params, "idempotencyKey": format!("weather-{i}-{name}")}),
                    )
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

#[tokio::test]
async fn dashboard_in_a_real_browser() {
    let Some(chromium) = cdp::chromium() else {
        return skip(
            "dashboard_browser",
            "no Chromium (install Debian's chromium or set PINCLAW_CHROMIUM)",
        );
    };
    let fake = FakeProvider::start();
    let tg = FakeTelegram::start(TELEGRAM_TOKEN);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start_with(gateway_settings(dir.path(), &fake, &tg, 0)).await;
    let sim = gw
        .handle
        .board()
        .and_then(|b| b.sim().cloned())
        .unwrap_or_else(|| panic!("the sim board"));
    let base = format!("http://{}", gw.addr);
    let mut admin = gw
        .client(&[
            "operator.admin",
            "operator.read",
            "operator.write",
            "operator.approvals",
            "operator.pairing",
        ])
        .await;
    // pinclaw.test resolves to loopback inside this browser only: a name,
    // so the page is not a secure context there (scenario 9).
    let browser = Browser::launch(
        &chromium,
        &["--host-resolver-rules=MAP pinclaw.test 127.0.0.1"],
    )
    .await;
    let shots = shots_dir();
    let weather = weather(gw.url.clone());

    // 1. Login by link: the token leaves the address bar and stays in
    //    sessionStorage. 2. The browser shows up as a pending device; the
    //    owner approves it; the page connects by itself.
    let phone = browser.new_page().await;
    phone.viewport(PHONE.0, PHONE.1, true).await;
    phone.goto(&format!("{base}/#token={TOKEN}")).await;
    phone
        .wait_for(
            "['pairing', 'ok'].includes(document.body.dataset.conn)",
            WAIT,
        )
        .await;
    let url = phone.eval("location.href").await;
    assert_eq!(
        url,
        json!(format!("{base}/")),
        "the token is stripped from the URL"
    );
    assert_eq!(
        phone.eval("sessionStorage.getItem('pinclaw.secret')").await,
        json!(TOKEN)
    );
    assert_eq!(
        phone.eval("document.body.dataset.conn").await,
        json!("pairing"),
        "a browser is a new device, even on loopback"
    );
    assert_eq!(
        phone.eval("document.body.dataset.identity").await,
        json!("webcrypto"),
        "127.0.0.1 is a secure context: WebCrypto Ed25519"
    );
    let pairing_text = phone
        .eval("document.querySelector('[data-testid=pairing]').innerText")
        .await;
    assert!(
        pairing_text.as_str().is_some_and(
            |t| t.contains("Waiting for approval") && t.contains("pinclaw devices approve")
        ),
        "{pairing_text}"
    );
    assert_fits(&phone, "the pairing view at 390 px").await;
    phone.screenshot(&shots.join("pairing-phone.png")).await;
    let pending = admin
        .call("device.pair.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        pending["pending"]
            .as_array()
            .is_some_and(|p| p.iter().any(|r| r["clientId"] == "pinclaw-dashboard")),
        "`pinclaw devices list` shows the browser as pending: {pending}"
    );
    approve_shown_request(&phone, &mut admin).await;
    // It retries on its own (0.8 s × 1.7 up to 15 s); "Check now" skips the wait.
    phone
        .eval("document.getElementById('check-now').click()")
        .await;
    connected(&phone).await;
    assert_eq!(
        phone.eval("document.body.dataset.auth").await,
        json!("token")
    );
    assert!(
        phone
            .eval("Object.keys(localStorage).some(k => k.startsWith('pinclaw.device:'))")
            .await
            == json!(true),
        "the device token is kept per gateway"
    );
    // A reload without the shared token (a new tab's session) gets in with
    // the device token alone.
    phone
        .eval("sessionStorage.removeItem('pinclaw.secret'); location.reload()")
        .await;
    phone
        .wait_for("document.readyState === 'complete'", WAIT)
        .await;
    connected(&phone).await;
    assert_eq!(
        phone.eval("document.body.dataset.auth").await,
        json!("device-token")
    );

    // 4. A relay switched in the page moves the sim pin; a change by another
    //    client shows up in the page.
    open_view(&phone, "home").await;
    phone
        .wait_for(&format!("{} === 'Off'", value_of("relay1")), WAIT)
        .await;
    assert_eq!(
        sim.level(17),
        Some(Level::High),
        "relay1 (active-low) starts off"
    );
    assert_eq!(
        phone
            .eval("document.querySelector('[data-device=relay1] [role=switch]').getAttribute('aria-checked')")
            .await,
        json!("false")
    );
    phone
        .eval("document.querySelector('[data-device=relay1] [role=switch]').click()")
        .await;
    phone
        .wait_for(&format!("{} === 'On'", value_of("relay1")), WAIT)
        .await;
    assert_eq!(sim.level(17), Some(Level::Low), "the sim pin moved");
    admin
        .call(
            "node.invoke",
            json!({"nodeId": "local", "command": "gpio.write", "params": {"name": "relay1", "value": false}, "idempotencyKey": "rust-off"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = Instant::now();
    phone
        .wait_for(&format!("{} === 'Off'", value_of("relay1")), WAIT)
        .await;
    say(&format!(
        "dashboard_browser: another client's relay write shown after {:?}",
        seen.elapsed()
    ));
    admin
        .call(
            "node.invoke",
            json!({"nodeId": "local", "command": "sim.set", "params": {"name": "pir1", "value": true}, "idempotencyKey": "pir-on"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    phone
        .wait_for(&format!("{} === 'Motion'", value_of("pir1")), WAIT)
        .await;
    // An input says what its states mean by its class (button1: class = "button").
    assert_eq!(phone.eval(&value_of("button1")).await, json!("Released"));
    admin
        .call(
            "node.invoke",
            json!({"nodeId": "local", "command": "sim.set", "params": {"name": "room", "temperature_c": 30.5}, "idempotencyKey": "room-30"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    phone
        .wait_for(&format!("{} === '30.5 °C'", value_of("room")), WAIT)
        .await;

    // 5. A confirm = true output waits for approval without flipping, is
    //    approved from the page, then shows on.
    phone
        .wait_for(&format!("{} === 'Off'", value_of("heater")), WAIT)
        .await;
    phone
        .eval("document.querySelector('[data-device=heater] [role=switch]').click()")
        .await;
    phone
        .wait_for(
            "document.querySelector('[data-device=heater]').textContent.includes('Waiting for approval')",
            WAIT,
        )
        .await;
    phone
        .wait_for(
            "document.querySelector('[data-device=heater] [data-testid=approve]')",
            WAIT,
        )
        .await;
    assert_eq!(
        phone.eval(&value_of("heater")).await,
        json!("Off"),
        "no optimistic flip"
    );
    assert_eq!(
        phone
            .eval("document.querySelector('[data-device=heater] [role=switch]').getAttribute('aria-checked')")
            .await,
        json!("false")
    );
    assert_eq!(sim.level(23), Some(Level::Low), "nothing written yet");
    assert_eq!(sim.writes(23), 0);
    assert_eq!(
        phone
            .eval("document.querySelector('[data-testid=approvals-badge]').textContent")
            .await,
        json!("1"),
        "the Approvals tab counts it"
    );
    phone
        .eval("document.querySelector('[data-device=heater]').scrollIntoView({block: 'center'})")
        .await;
    phone
        .screenshot(&shots.join("home-approval-phone.png"))
        .await;
    // The same request waits in the Approvals view.
    open_view(&phone, "approvals").await;
    phone
        .wait_for(
            "document.querySelector('#approval-list [data-testid=approval]')?.textContent.includes('heater')",
            WAIT,
        )
        .await;
    phone
        .screenshot(&shots.join("approvals-waiting-phone.png"))
        .await;
    open_view(&phone, "home").await;
    phone
        .eval("document.querySelector('[data-device=heater] [data-testid=approve]').click()")
        .await;
    phone
        .wait_for(&format!("{} === 'On'", value_of("heater")), WAIT)
        .await;
    assert_eq!(sim.level(23), Some(Level::High), "written once approved");
    phone
        .wait_for(
            "!document.querySelector('[data-device=heater]').textContent.includes('Waiting for approval')",
            WAIT,
        )
        .await;

    // 3. Chat: a reply streamed token by token (the assistant's text grows
    //    through intermediate states), a tool call as a card, data-role on
    //    messages, the final reply announced; a failed run's error line.
    fake.push(tool_reply(
        "call_room",
        "nodes",
        json!({"action": "invoke", "node": "local", "invokeCommand": "sensors.read", "invokeParamsJson": "{\"name\":\"room\"}"}),
    ));
    let reply = "The living room is **30.5 °C** right now, a little warm; shall I open a window or switch the fan on for you?";
    fake.push(text_reply(reply, Duration::from_millis(120)));
    open_view(&phone, "chat").await;
    phone
        .eval(
            "(() => { const i = document.querySelector('[data-testid=chat-input]'); i.value = 'How warm is the living room?'; i.dispatchEvent(new Event('input')); document.querySelector('[data-testid=chat-send]').click(); })()",
        )
        .await;
    let mut states: Vec<String> = Vec::new();
    let deadline = Instant::now() + WAIT;
    let last_assistant = "(() => { const m = [...document.querySelectorAll('[data-role=assistant]')].pop(); return m ? [m.textContent, m.hasAttribute('aria-busy')] : null; })()";
    let rendered = reply.replace("**", "");
    loop {
        let now = phone.eval(last_assistant).await;
        if let Some(text) = now[0].as_str() {
            if states.last().map(String::as_str) != Some(text) {
                states.push(text.to_owned());
            }
            if now[1] == json!(false) && text == rendered {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no final reply; states seen: {states:?}; problems {:?}",
            phone.problems()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // (An unclosed **bold** shows its stars until the closing pair arrives.)
    let growing: Vec<String> = states
        .iter()
        .map(|s| s.replace('*', ""))
        .filter(|s| !s.is_empty())
        .collect();
    assert!(
        growing.len() >= 3,
        "the reply streamed in visible steps: {states:?}"
    );
    for pair in growing.windows(2) {
        assert!(
            pair[1].starts_with(pair[0].as_str()) && pair[1].len() > pair[0].len(),
            "each state extends the last: {states:?}"
        );
    }
    assert_eq!(
        phone
            .eval("[...document.querySelectorAll('[data-role=user]')].pop().textContent")
            .await,
        json!("How warm is the living room?")
    );
    let tool = phone
        .eval("document.querySelector('[data-role=tool]')?.textContent")
        .await;
    assert!(
        tool.as_str()
            .is_some_and(|t| t.contains("sensors.read room")),
        "the tool call is a compact card: {tool}"
    );
    assert_eq!(
        phone
            .eval("document.querySelector('[data-role=assistant] strong')?.textContent")
            .await,
        json!("30.5 °C"),
        "the Markdown subset, built from nodes"
    );
    assert_eq!(
        phone
            .eval("document.getElementById('announce').textContent")
            .await,
        json!(reply),
        "the final reply is announced once (aria-live)"
    );
    // A run that fails leaves a clear error line (the provider refuses).
    fake.push(Reply::http_error(
        400,
        r#"{"error":{"message":"model not found","type":"invalid_request_error"}}"#,
        None,
    ));
    phone
        .eval(
            "(() => { const i = document.querySelector('[data-testid=chat-input]'); i.value = 'and the porch?'; document.querySelector('[data-testid=chat-send]').click(); })()",
        )
        .await;
    let error = phone
        .wait_for(
            "document.querySelector('[data-role=assistant][data-kind=error]')?.textContent",
            WAIT,
        )
        .await;
    say(&format!("dashboard_browser: the failed run says {error}"));
    // Model and tool output is text, never markup: a reply full of HTML
    // shows as those characters and creates no element.
    fake.push(text_reply(
        "<img src=x onerror=alert(1)><script>alert(2)</script> done",
        Duration::ZERO,
    ));
    phone
        .eval(
            "(() => { const i = document.querySelector('[data-testid=chat-input]'); i.value = 'say html'; document.querySelector('[data-testid=chat-send]').click(); })()",
        )
        .await;
    phone
        .wait_for(
            "[...document.querySelectorAll('[data-role=assistant]')].pop().textContent.endsWith(' done')",
            WAIT,
        )
        .await;
    assert_eq!(
        phone
            .eval("document.querySelectorAll('#log img, #log script').length")
            .await,
        json!(0)
    );

    // A long reply can be stopped from the page.
    fake.push(text_reply(
        &"and so on, ".repeat(60),
        Duration::from_millis(250),
    ));
    phone
        .eval(
            "(() => { const i = document.querySelector('[data-testid=chat-input]'); i.value = 'tell me a long story'; document.querySelector('[data-testid=chat-send]').click(); })()",
        )
        .await;
    phone
        .wait_for(
            "!document.querySelector('[data-testid=chat-abort]').hidden && [...document.querySelectorAll('[data-role=assistant]')].pop().textContent.startsWith('and so on')",
            WAIT,
        )
        .await;
    phone
        .eval("document.querySelector('[data-testid=chat-abort]').click()")
        .await;
    phone
        .wait_for(
            "document.querySelector('[data-testid=chat-abort]').hidden && [...document.querySelectorAll('#log .msg')].pop().textContent === 'Stopped.'",
            WAIT,
        )
        .await;

    // A run that switches a guarded output waits in the chat for the
    // owner, who approves it right there.
    fake.push(tool_reply(
        "call_heater",
        "nodes",
        json!({"action": "invoke", "node": "local", "invokeCommand": "gpio.write", "invokeParamsJson": "{\"name\":\"heater\",\"value\":false}"}),
    ));
    fake.push(text_reply("The heater is off now.", Duration::ZERO));
    phone
        .eval(
            "(() => { const i = document.querySelector('[data-testid=chat-input]'); i.value = 'switch the heater off'; document.querySelector('[data-testid=chat-send]').click(); })()",
        )
        .await;
    phone
        .wait_for(
            "document.querySelector('[data-testid=chat-approvals] [data-testid=approve]')",
            WAIT,
        )
        .await;
    assert_eq!(sim.level(23), Some(Level::High), "still on while it waits");
    phone
        .screenshot(&shots.join("chat-approval-phone.png"))
        .await;
    phone
        .eval(
            "document.querySelector('[data-testid=chat-approvals] [data-testid=approve]').click()",
        )
        .await;
    phone
        .wait_for(
            "[...document.querySelectorAll('[data-role=assistant]')].pop().textContent === 'The heater is off now.'",
            WAIT,
        )
        .await;
    assert_eq!(
        sim.level(23),
        Some(Level::Low),
        "switched off once approved"
    );
    assert_eq!(
        phone
            .eval("document.querySelector('[data-testid=chat-approvals]').childElementCount")
            .await,
        json!(0)
    );

    // 2b. Login by form, in a second browser (context): a wrong token is
    //     refused, the right one leads to pairing, approved from the first
    //     dashboard's Approvals view.
    let desk = browser.new_page().await;
    desk.viewport(DESKTOP.0, DESKTOP.1, false).await;
    desk.goto(&format!("{base}/")).await;
    desk.wait_for("document.body.dataset.conn === 'login'", WAIT)
        .await;
    desk.wait_for("!document.getElementById('login').hidden", WAIT)
        .await;
    desk.screenshot(&shots.join("login-desktop.png")).await;
    // A first load (fresh profile, nothing cached): what went over the wire,
    // page and assets, gzipped, headers included.
    let loaded = desk
        .eval(
            "[...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')].map(e => [e.name, e.transferSize])",
        )
        .await;
    let total: u64 = loaded
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e[1].as_u64())
        .sum();
    say(&format!(
        "dashboard_browser: first load {total} bytes over the wire: {loaded}"
    ));
    assert!(total <= 60 * 1024, "first load {total} B > 60 KB: {loaded}");
    assert!(
        !loaded.to_string().contains("ed25519.js"),
        "the fallback is not fetched where WebCrypto has Ed25519: {loaded}"
    );
    let sign_in = |secret: &str| {
        format!(
            "(() => {{ document.querySelector('[data-testid=login-secret]').value = {}; document.querySelector('[data-testid=login-submit]').click(); }})()",
            js(secret)
        )
    };
    desk.eval(&sign_in("not-the-token")).await;
    desk.wait_for(
        "document.body.dataset.conn === 'login' && document.querySelector('[data-testid=login-error]').textContent.includes('did not accept')",
        WAIT,
    )
    .await;
    desk.eval(&sign_in(TOKEN)).await;
    desk.wait_for("document.body.dataset.conn === 'pairing'", WAIT)
        .await;
    let id = shown_request_id(&desk).await;
    open_view(&phone, "approvals").await;
    let card = format!(
        "document.querySelector('[data-testid=device-request][data-request={}]')",
        js(&id)
    );
    phone.wait_for(&card, WAIT).await;
    phone
        .screenshot(&shots.join("approvals-device-phone.png"))
        .await;
    phone
        .eval(&format!(
            "{card}.querySelector('[data-testid=device-request-approve]').click()"
        ))
        .await;
    desk.eval("document.getElementById('check-now').click()")
        .await;
    connected(&desk).await;
    assert!(
        pending_request(&mut admin, &id).await.is_none(),
        "approved from the page"
    );

    // Approvals also covers chat senders: a Telegram DM from a stranger
    // (dm_policy = "pairing") waits for the owner, who approves it here.
    tg.dm(777, "hello, is this the hub?");
    let deadline = Instant::now() + WAIT;
    while admin
        .call("channels.pairing.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"))["requests"]
        .as_array()
        .is_none_or(|r| r.is_empty())
    {
        assert!(Instant::now() < deadline, "no DM pairing request");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    open_view(&phone, "home").await;
    phone
        .wait_for(
            "document.getElementById('glance').textContent.includes('Telegram ok')",
            WAIT,
        )
        .await;
    open_view(&phone, "approvals").await;
    phone
        .wait_for(
            "document.querySelector('[data-testid=dm-request]')?.textContent.includes('User777')",
            WAIT,
        )
        .await;
    phone
        .screenshot(&shots.join("approvals-pairing-phone.png"))
        .await;
    phone
        .eval("document.querySelector('[data-testid=dm-request-approve]').click()")
        .await;
    phone
        .wait_for("!document.querySelector('[data-testid=dm-request]')", WAIT)
        .await;
    let left = admin
        .call("channels.pairing.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(left["requests"], json!([]), "approved: {left}");

    // A node (another board) asking to join is approved from the page too.
    let node = Client::connect(
        &gw.url,
        &ClientOptions {
            token: Some(TOKEN.into()),
            role: "node".into(),
            client_id: "node-host".into(),
            mode: "node".into(),
            scopes: vec![],
            commands: vec!["gpio.read".into(), "gpio.write".into()],
            device: Some(new_key()),
            display_name: Some("garage".into()),
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("node connect: {e}"));
    phone
        .wait_for(
            "document.querySelector('[data-testid=node-request]')?.textContent.includes('garage')",
            WAIT,
        )
        .await;
    phone
        .eval("document.querySelector('[data-testid=node-request] [data-testid=node-request-approve]').click()")
        .await;
    phone
        .wait_for(
            "!document.querySelector('[data-testid=node-request]')",
            WAIT,
        )
        .await;
    let nodes = admin
        .call("node.pair.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(nodes["pending"], json!([]), "approved: {nodes}");
    phone
        .wait_for(
            "document.querySelector('[data-testid=approvals-badge]').hidden",
            WAIT,
        )
        .await;

    // Health lists automations and tails the log ring (nothing logs into
    // it in tests, so the test writes two lines of its own).
    admin
        .call(
            "cron.add",
            json!({"name": "Evening lights", "schedule": {"kind": "cron", "expr": "0 19 * * *"}, "payload": {"kind": "agentTurn", "message": "switch relay1 on"}, "sessionTarget": "isolated"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    pinclaw::logging::ring()
        .push("INFO dashboard_browser: a line the test wrote into the log ring");
    pinclaw::logging::ring()
        .push("WARN dashboard_browser: a warning the test wrote, <b>not markup</b>");

    // 7. + 8. Every view, phone and desktop, light and dark: no overflow at
    //    390 px, a screenshot each.
    for (page, (w, h), name) in [(&phone, PHONE, "phone"), (&desk, DESKTOP, "desktop")] {
        page.viewport(w, h, name == "phone").await;
        for dark in [false, true] {
            page.color_scheme(dark).await;
            for view in VIEWS {
                open_view(page, view).await;
                // What each view loads is there.
                let ready = match view {
                    "home" => {
                        "document.querySelector('[data-device=room] [data-testid=value]')?.textContent.includes('°C')"
                    }
                    "chat" => "document.querySelector('[data-role=assistant]')",
                    "history" => "document.querySelector('#charts .spark')",
                    "approvals" => {
                        "document.querySelector('#approval-list p, #approval-list article')"
                    }
                    _ => {
                        "document.getElementById('logs').textContent.includes('<b>not markup</b>') && document.getElementById('health').textContent.includes('Evening lights')"
                    }
                };
                page.wait_for(ready, WAIT).await;
                if name == "phone" {
                    assert_fits(page, &format!("{view} at 390 px")).await;
                    assert_touch_targets(page, &format!("{view} at 390 px")).await;
                }
                let suffix = if dark { "-dark" } else { "" };
                page.screenshot(&shots.join(format!("{view}-{name}{suffix}.png")))
                    .await;
            }
        }
        page.color_scheme(false).await;
    }

    // 9. The insecure-context path: http://pinclaw.test is a name, not
    //    loopback, so isSecureContext is false and crypto.subtle missing;
    //    the pure-JS Ed25519 fallback signs, and the device pairs.
    let lan = browser.new_page().await;
    lan.viewport(PHONE.0, PHONE.1, true).await;
    lan.goto(&format!(
        "http://pinclaw.test:{}/#token={TOKEN}",
        gw.addr.port()
    ))
    .await;
    assert_eq!(lan.eval("isSecureContext").await, json!(false));
    assert_eq!(lan.eval("typeof crypto.subtle").await, json!("undefined"));
    lan.wait_for("document.body.dataset.conn === 'pairing'", WAIT)
        .await;
    assert_eq!(
        lan.eval("document.body.dataset.identity").await,
        json!("js"),
        "the fallback made the identity"
    );
    // The fallback in this browser against the protocol's test vector.
    let vector = lan
        .eval(
            "import('/ed25519.js').then(ed => { const seed = new Uint8Array(32).fill(7); const b64 = b => btoa(String.fromCharCode(...b)).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, ''); const pub = ed.publicKey(seed); const id = Array.from(ed.sha256(pub), b => b.toString(16).padStart(2, '0')).join(''); const v3 = `v3|${id}|cli|cli|operator|operator.read,operator.write|1737264000000|secret-token|3f0c1a9e-1111-4222-8333-944455556666|linux|`; return [b64(pub), id, b64(ed.sign(new TextEncoder().encode(v3), seed))]; })",
        )
        .await;
    assert_eq!(
        vector,
        json!([
            "6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw",
            "fe812c12f3ab4ce6ac5db69ac352f906cb1b11ef43fb33e252ef7ff552263889",
            "0yjtuMM1VQs5L3A-gkve5-ghAvwel-JPIA_6UW0mVFWLWixC80oyMsGMpVoqUn128IkDocavvmgUuQMxVVkTBg"
        ])
    );
    approve_shown_request(&lan, &mut admin).await;
    lan.eval("document.getElementById('check-now').click()")
        .await;
    connected(&lan).await;
    lan.wait_for(&format!("{} === 'Off'", value_of("relay1")), WAIT)
        .await;

    // 6. A page from another origin cannot open the gateway's WebSocket
    //    (the Origin check), while the dashboard's own origin can.
    let other = OtherOrigin::start().await;
    let evil = browser.new_page().await;
    evil.goto(&other.url).await;
    let try_ws = format!(
        "new Promise(r => {{ const ws = new WebSocket({}); ws.onopen = () => {{ ws.close(); r('open'); }}; ws.onerror = () => r('refused'); }})",
        js(&gw.url)
    );
    assert_eq!(
        evil.eval(&try_ws).await,
        json!("refused"),
        "a cross-origin page must not reach the gateway"
    );
    assert_eq!(
        phone.eval(&try_ws).await,
        json!("open"),
        "the dashboard's own origin may"
    );

    // The offline banner and the reconnect: the gateway goes away and comes
    // back on the same port (a restart resets the sim board); the page says
    // so, reconnects by itself and refetches the board.
    open_view(&phone, "home").await;
    phone
        .eval("document.querySelector('[data-device=relay1] [role=switch]').click()")
        .await;
    phone
        .wait_for(&format!("{} === 'On'", value_of("relay1")), WAIT)
        .await;
    let port = gw.addr.port();
    weather.abort();
    node.close().await;
    drop(admin);
    gw.stop().await;
    phone
        .wait_for(
            "document.body.dataset.conn === 'offline' && !document.querySelector('[data-testid=offline-banner]').hidden",
            WAIT,
        )
        .await;
    phone.screenshot(&shots.join("offline-phone.png")).await;
    let gw = TestGateway::start_with(gateway_settings(dir.path(), &fake, &tg, port)).await;
    phone
        .wait_for("document.body.dataset.conn === 'ok'", WAIT)
        .await;
    phone
        .wait_for(&format!("{} === 'Off'", value_of("relay1")), WAIT)
        .await;
    assert!(
        phone
            .eval("document.querySelector('[data-testid=offline-banner]').hidden")
            .await
            == json!(true)
    );

    // A gateway with a password instead of a token: the same form signs in.
    let dir2 = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut s = settings(dir2.path());
    s.auth_mode = pinclaw::config::AuthMode::Password;
    s.token = None;
    s.password = Some(pinclaw::config::Secret::new("correct horse battery staple"));
    let gw2 = TestGateway::start_with(s).await;
    let pw = browser.new_page().await;
    pw.viewport(PHONE.0, PHONE.1, true).await;
    pw.goto(&format!("http://{}/", gw2.addr)).await;
    pw.wait_for("document.body.dataset.conn === 'login'", WAIT)
        .await;
    pw.eval(&sign_in("correct horse battery staple")).await;
    pw.wait_for("document.body.dataset.conn === 'pairing'", WAIT)
        .await;
    gw2.stop().await;
    // Signing out forgets this tab's secret and the device token: back to
    // the login form.
    lan.eval("location.hash = '#health'").await;
    lan.wait_for("document.querySelector('[data-testid=sign-out]')", WAIT)
        .await;
    lan.eval("document.querySelector('[data-testid=sign-out]').click()")
        .await;
    lan.wait_for("document.body.dataset.conn === 'login'", WAIT)
        .await;
    assert_fits(&lan, "the login form at 390 px").await;
    assert_touch_targets(&lan, "the login form at 390 px").await;
    lan.screenshot(&shots.join("login-phone.png")).await;
    assert_eq!(
        lan.eval("[sessionStorage.getItem('pinclaw.secret'), Object.keys(localStorage).filter(k => k.startsWith('pinclaw.device:')).length]")
            .await,
        json!([null, 0])
    );

    // The harness sees CSP violations: an inline style and an inline
    // script put into the served page are blocked and reported.
    let probe = browser.new_page().await;
    probe
        .goto(&format!("{}/", gw.url.replace("ws://", "http://")))
        .await;
    probe
        .eval("document.body.setAttribute('style', 'color: red'); const s = document.createElement('script'); s.textContent = 'window.ran = 1'; document.body.append(s); 0")
        .await;
    let deadline = Instant::now() + WAIT;
    while probe
        .problems()
        .iter()
        .filter(|p| p.contains("Content Security Policy"))
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "CSP violations not reported: {:?}",
            probe.problems()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(probe.eval("window.ran ?? null").await, Value::Null);

    // 7. No console errors, exceptions or CSP violations in any dashboard
    //    tab. The refused connection attempts while the gateway was down
    //    are the browser's own network errors, not the page's.
    for (page, what) in [
        (&phone, "phone"),
        (&desk, "desktop"),
        (&lan, "pinclaw.test"),
        (&pw, "password"),
    ] {
        let problems: Vec<String> = page
            .problems()
            .into_iter()
            .filter(|p| {
                !(p.contains("WebSocket connection to") && p.contains("ERR_CONNECTION_REFUSED"))
            })
            .collect();
        assert!(
            problems.is_empty(),
            "{what}: the page reported {problems:#?}"
        );
    }
    drop(browser);
    gw.stop().await;
}

/// A second origin on 127.0.0.1: any request gets an empty HTML page.
struct OtherOrigin {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtherOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OtherOrigin {
    async fn start() -> OtherOrigin {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let url = format!(
            "http://{}/",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    let body = "<!doctype html><title>elsewhere</title><p>another site";
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(body.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        OtherOrigin { url, task }
    }
}

/// The pure-JS Ed25519 fallback's unit test (`node --test tests/web/`):
/// SHA-2 against node:crypto and the protocol's device-signature vector.
#[test]
fn ed25519_fallback_node_unit_test() {
    let node = std::env::var_os("PINCLAW_NODE").unwrap_or_else(|| "node".into());
    let out = match std::process::Command::new(&node)
        .args(["--test", "tests/web/"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
    {
        Ok(out) => out,
        Err(e) => return skip("ed25519_fallback_node_unit_test", &format!("no node ({e})")),
    };
    assert!(
        out.status.success(),
        "node --test tests/web/ failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
