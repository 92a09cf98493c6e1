//! OpenClaw's own Control UI (the static single-page app inside the
//! `openclaw` npm package, `dist/control-ui/`) against pinclaw, in a real
//! headless Chromium driven over the DevTools protocol
//! (tests/support/cdp.rs).
//!
//! The UI's files are served by a small static server in this test on one
//! loopback port; an in-process gateway with the fake model provider runs on
//! another, and lists the static origin in `gateway.allowed_origins`. The
//! browser opens `http://127.0.0.1:S/?gatewayUrl=ws://127.0.0.1:G#token=T`,
//! accepts the UI's "Switch to a different Gateway?" question, and is a new
//! device: while it waits for approval it reconnects, and every refusal
//! names the same pairing request, which the test then approves as the hub
//! owner would (`device.pair.approve`). Connected, it sends a chat message
//! and must show pinclaw's reply, then renders pinclaw's data on the
//! sessions, systems (nodes) and devices views.
//!
//! Every request the UI makes on the gateway WebSocket (seen through the
//! DevTools `Network.webSocketFrame*` events) must succeed, except the
//! `connect` refusals while pairing is pending; no error toast or banner
//! may show; the page may report no console error, uncaught exception or
//! error log entry beyond the two the UI always causes against a plain
//! static server (see [`expected_problem`]). Screenshots go to
//! `target/control-ui-shots/`.
//!
//! Needs the `openclaw` package (`.ci/run` installs it into the cache dir,
//! found like tests/interop_openclaw.rs finds it) and Chromium; without
//! either the test skips with a printed reason, and with `CI` set it fails.

mod agent_support;
#[path = "support/cdp.rs"]
mod cdp;
#[path = "support/fake_provider.rs"]
mod fake_provider;
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_support::{agent_settings, text_reply};
use cdp::{Browser, Page};
use fake_provider::FakeProvider;
use pinclaw::client::Client;
use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(30);
const VIEWPORT: (u32, u32) = (1440, 900);
const MESSAGE: &str = "Is the porch light on?";
const REPLY: &str = "The porch light is off, and the room is at 21.5 degrees.";
/// A second node, besides the board itself.
const NODE: &str = "greenhouse-pi";
/// Refusals (the first connect and at least two reconnects) that must all
/// name the same pairing request.
const REFUSALS: usize = 3;

/// Prints past libtest's output capture, so a skip reason shows in CI logs.
fn say(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Skip with a printed reason; under CI (`CI` set), where .ci/run installs
/// OpenClaw and Chromium, a missing one is a failure instead.
fn skip(reason: &str) {
    say(&format!("SKIPPED control_ui: {reason}"));
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set, so control_ui must run (.ci/run installs OpenClaw and Chromium): {reason}"
    );
}

fn env_path(key: &str) -> Option<PathBuf> {
    std::env::var_os(key)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn cache_dir() -> Option<PathBuf> {
    env_path("PINCLAW_CACHE_DIR")
        .or_else(|| env_path("XDG_CACHE_HOME").map(|d| d.join("pinclaw")))
        .or_else(|| env_path("HOME").map(|d| d.join(".cache/pinclaw")))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The Control UI's directory, found from the `openclaw` CLI as
/// tests/interop_openclaw.rs finds it (`$PINCLAW_OPENCLAW_BIN`, `openclaw`
/// on `PATH`, the cache dir's `openclaw/openclaw/node_modules/.bin/openclaw`):
/// the CLI is the package's `openclaw.mjs` (a symlink from `.bin`), and the
/// UI is the package's `dist/control-ui/`.
fn control_ui_dir() -> Result<PathBuf, String> {
    let cache = cache_dir();
    let candidates = [
        env_path("PINCLAW_OPENCLAW_BIN"),
        on_path("openclaw"),
        cache
            .as_ref()
            .map(|c| c.join("openclaw/openclaw/node_modules/.bin/openclaw")),
    ];
    let mut looked = Vec::new();
    for bin in candidates.into_iter().flatten() {
        let Ok(real) = bin.canonicalize() else {
            looked.push(format!("{} (missing)", bin.display()));
            continue;
        };
        let dir = real
            .parent()
            .map(|p| p.join("dist/control-ui"))
            .unwrap_or_default();
        if dir.join("index.html").is_file() {
            return Ok(dir);
        }
        looked.push(format!("{} (no index.html)", dir.display()));
    }
    Err(format!(
        "OpenClaw's Control UI not found ($PINCLAW_OPENCLAW_BIN, openclaw on PATH, the cache dir; \
         looked at: {}); install it with scripts/install-openclaw.sh or run .ci/run",
        if looked.is_empty() {
            "nothing".to_owned()
        } else {
            looked.join(", ")
        }
    ))
}

fn shots_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("control-ui-shots")
}

// ---------------------------------------------------------------------------
// The static server

/// The content type of a file, by extension.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "wasm" => "application/wasm",
        "txt" | "md" => "text/plain; charset=utf-8",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        _ => "application/octet-stream",
    }
}

/// `%XX` decoding of a URL path (the UI's own paths are plain ASCII).
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the static server answers for `target` (path and query): the file
/// under `root`, `index.html` for a route (a path without an extension: the
/// single-page app's fallback), or 404.
fn resolve(root: &Path, target: &str) -> (u16, PathBuf) {
    let path = percent_decode(target.split(['?', '#']).next().unwrap_or("/"));
    let relative: PathBuf = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if relative.components().any(|c| c.as_os_str() == "..") {
        return (404, PathBuf::new());
    }
    let file = root.join(&relative);
    if file.is_file() {
        return (200, file);
    }
    if file.is_dir() && file.join("index.html").is_file() {
        return (200, file.join("index.html"));
    }
    if relative.extension().is_none() {
        return (200, root.join("index.html"));
    }
    (404, PathBuf::new())
}

/// A static HTTP server for one directory on 127.0.0.1 (GET and HEAD,
/// `connection: close`); it logs every request as `STATUS PATH`. Stopped
/// on drop.
struct StaticServer {
    origin: String,
    log: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StaticServer {
    async fn start(root: PathBuf) -> StaticServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("static server bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = log.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let root = root.clone();
                let log = kept.clone();
                tokio::spawn(async move {
                    let _ = serve_one(stream, &root, &log).await;
                });
            }
        });
        StaticServer {
            origin: format!("http://{addr}"),
            log,
            task,
        }
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

async fn serve_one(
    mut stream: tokio::net::TcpStream,
    root: &Path,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut request_line = text.lines().next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_owned();
    let target = request_line.next().unwrap_or("/").to_owned();
    let (status, file) = if method == "GET" || method == "HEAD" {
        resolve(root, &target)
    } else {
        (405, PathBuf::new())
    };
    let body = if status == 200 {
        std::fs::read(&file)?
    } else {
        b"not found\n".to_vec()
    };
    let kind = if status == 200 {
        content_type(&file)
    } else {
        "text/plain; charset=utf-8"
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    if let Ok(mut log) = log.lock() {
        log.push(format!("{status} {method} {target}"));
    }
    let response_head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(response_head.as_bytes()).await?;
    if method != "HEAD" {
        stream.write_all(&body).await?;
    }
    stream.shutdown().await
}

// ---------------------------------------------------------------------------
// Reading the page

/// JavaScript helpers the page-side expressions use: every element and
/// shadow root (the UI is Lit, partly in shadow DOM), visibility, and the
/// visible text of the whole page.
const JS_HELPERS: &str = r#"
const __roots = (r = document, out = [document]) => { for (const el of r.querySelectorAll('*')) if (el.shadowRoot) { out.push(el.shadowRoot); __roots(el.shadowRoot, out); } return out; };
const __all = (sel) => __roots().flatMap((r) => [...r.querySelectorAll(sel)]);
const __visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0 && (!el.checkVisibility || el.checkVisibility({visibilityProperty: true})); };
const __text = (el) => (el.innerText || el.textContent || '').trim().replace(/\s+/g, ' ');
const __pageText = () => __roots().map((r) => { const w = document.createTreeWalker(r, NodeFilter.SHOW_TEXT); let s = ''; let n; while ((n = w.nextNode())) { const p = n.parentElement; if (!p || ['SCRIPT', 'STYLE', 'TEMPLATE'].includes(p.tagName) || (p.checkVisibility && !p.checkVisibility({visibilityProperty: true}))) continue; s += n.nodeValue + ' '; } return s; }).join(' ').replace(/\s+/g, ' ');
"#;

/// `body` (a JS expression) with the helpers in scope.
fn with_helpers(body: &str) -> String {
    format!("(() => {{ {JS_HELPERS}\n return ({body}); }})()")
}

/// A JS string literal.
fn js(s: &str) -> String {
    Value::from(s).to_string()
}

/// Error toasts and banners, recorded in the page as they appear (a poll
/// every 200 ms, shadow DOM included, installed before the UI's scripts
/// run): the UI's toast, callout, banner and `role=alert` elements.
const TOAST_WATCH: &str = r#"
(() => {
  const sels = ['.app-toast', '.callout.danger', '.callout.warning', '.callout.warn', '.oc-banner-error',
    '.oc-banner', '.cron-error-banner', '.systems-callout--error', '.chat-notice--danger', '[role="alert"]',
    '.sidebar-session-error'];
  const seen = (window.__cuiToasts = []);
  const keys = new Set();
  const roots = (r = document, out = [document]) => { for (const el of r.querySelectorAll('*')) if (el.shadowRoot) { out.push(el.shadowRoot); roots(el.shadowRoot, out); } return out; };
  setInterval(() => {
    if (!document.documentElement) return;
    for (const root of roots()) for (const sel of sels) for (const el of root.querySelectorAll(sel)) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0 || (el.checkVisibility && !el.checkVisibility({visibilityProperty: true}))) continue;
      const text = (el.innerText || el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 300);
      if (!text || keys.has(sel + text)) continue;
      keys.add(sel + text);
      seen.push({sel, text, path: location.pathname});
    }
  }, 200);
})();
"#;

/// One WebSocket frame the page sent or received.
#[derive(Debug, Clone)]
struct Frame {
    /// The socket's URL.
    url: String,
    /// The DevTools id of the socket.
    socket: String,
    sent: bool,
    data: Value,
}

/// The page's WebSocket frames so far, in order.
fn frames(page: &Page<'_>) -> Vec<Frame> {
    let mut urls = std::collections::HashMap::new();
    let mut out = Vec::new();
    for event in page.events() {
        let params = &event["params"];
        let socket = params["requestId"].as_str().unwrap_or("").to_owned();
        match event["method"].as_str().unwrap_or("") {
            "Network.webSocketCreated" => {
                urls.insert(socket, params["url"].as_str().unwrap_or("").to_owned());
            }
            m @ ("Network.webSocketFrameSent" | "Network.webSocketFrameReceived") => {
                let payload = params["response"]["payloadData"].as_str().unwrap_or("");
                out.push(Frame {
                    url: urls.get(&socket).cloned().unwrap_or_default(),
                    socket,
                    sent: m.ends_with("Sent"),
                    data: serde_json::from_str(payload).unwrap_or(Value::Null),
                });
            }
            _ => {}
        }
    }
    out
}

/// `ws://h:p` and `ws://h:p/` are the same socket URL.
fn same_socket_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// A request the page made on a WebSocket and its response, if any yet.
#[derive(Debug, Clone)]
struct Rpc {
    method: String,
    params: Value,
    response: Option<Value>,
}

/// The page's requests on sockets to `url`, in order.
fn rpcs(page: &Page<'_>, url: &str) -> Vec<Rpc> {
    let mut out: Vec<Rpc> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for f in frames(page)
        .into_iter()
        .filter(|f| same_socket_url(&f.url, url))
    {
        let id = (f.socket.clone(), f.data["id"].to_string());
        if f.sent && f.data["type"] == "req" {
            index.insert(id, out.len());
            out.push(Rpc {
                method: f.data["method"].as_str().unwrap_or("").to_owned(),
                params: f.data["params"].clone(),
                response: None,
            });
        } else if !f.sent
            && f.data["type"] == "res"
            && let Some(&i) = index.get(&id)
        {
            out[i].response = Some(f.data.clone());
        }
    }
    out
}

/// Poll `check` over the page's requests until it returns something.
async fn wait_rpcs<T>(
    page: &Page<'_>,
    url: &str,
    what: &str,
    mut check: impl FnMut(&[Rpc]) -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let calls = rpcs(page, url);
        if let Some(found) = check(&calls) {
            return found;
        }
        if Instant::now() > deadline {
            let summary: Vec<String> = calls
                .iter()
                .map(|c| {
                    format!(
                        "{} -> {}",
                        c.method,
                        c.response.as_ref().map_or("(no answer)".to_owned(), |r| r
                            .to_string()
                            .chars()
                            .take(200)
                            .collect())
                    )
                })
                .collect();
            panic!(
                "not within {WAIT:?}: {what}\n requests: {summary:#?}\n page: {}",
                page_text(page).await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A refused `connect` while the device's pairing is pending.
fn pairing_refusal(call: &Rpc) -> Option<&Value> {
    let r = call.response.as_ref()?;
    (call.method == "connect" && r["ok"] == false && r["error"]["code"] == "NOT_PAIRED")
        .then_some(&r["error"])
}

/// Let the page finish what it started: wait (at most 10 s, no failure)
/// until every request on the gateway socket is answered and none came for
/// a second. Screenshots then show a rendered view, and late failures are
/// in the record.
async fn settle(page: &Page<'_>, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = (usize::MAX, Instant::now());
    while Instant::now() < deadline {
        let calls = rpcs(page, url);
        let open = calls.iter().any(|c| c.response.is_none());
        if calls.len() != last.0 || open {
            last = (calls.len(), Instant::now());
        } else if last.1.elapsed() >= Duration::from_secs(1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until the visible elements matching `selector` include one whose
/// text is each of `names`.
async fn wait_names(page: &Page<'_>, selector: &str, names: &[&str]) {
    let list: Vec<String> = names.iter().map(|n| js(n)).collect();
    page.wait_for(
        &with_helpers(&format!(
            "(() => {{ const shown = __all({}).filter(__visible).map(__text); return [{}].every((n) => shown.includes(n)); }})()",
            js(selector),
            list.join(", ")
        )),
        WAIT,
    )
    .await;
}

/// The page's visible text (shadow DOM included), for failure messages.
async fn page_text(page: &Page<'_>) -> String {
    page.try_eval(&with_helpers("__pageText().slice(0, 3000)"))
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Wait until the page's visible text contains every one of `needles`.
async fn wait_text(page: &Page<'_>, needles: &[&str]) {
    let list: Vec<String> = needles.iter().map(|n| js(n)).collect();
    page.wait_for(
        &with_helpers(&format!(
            "(() => {{ const t = __pageText(); return [{}].every((n) => t.includes(n)); }})()",
            list.join(", ")
        )),
        WAIT,
    )
    .await;
}

/// Click the first visible button whose text (or aria-label) matches the
/// case-insensitive regular expression `pattern`; returns its text, or
/// null when there is none.
async fn click_button(page: &Page<'_>, pattern: &str) -> Value {
    page.eval(&with_helpers(&format!(
        "(() => {{ const re = new RegExp({}, 'i'); const b = __all('button, [role=button]').find((b) => __visible(b) && (re.test(__text(b)) || re.test(b.getAttribute('aria-label') || ''))); if (!b) return null; b.click(); return __text(b) || b.getAttribute('aria-label'); }})()",
        js(pattern)
    )))
    .await
}

/// Open a view of the single-page app as a user would: its navigation link
/// when one is visible, else by the router (history API + popstate).
async fn open_route(page: &Page<'_>, route: &str) {
    let how = page
        .eval(&with_helpers(&format!(
            "(() => {{ const r = {route}; const a = __all('a[href]').find((a) => __visible(a) && new URL(a.href).pathname === r); if (a) {{ a.click(); return 'link'; }} history.pushState({{}}, '', r); dispatchEvent(new PopStateEvent('popstate', {{state: {{}}}})); return 'router'; }})()",
            route = js(route)
        )))
        .await;
    page.wait_for(
        &format!(
            "location.pathname === {r} || location.pathname.startsWith({r} + '/')",
            r = js(route)
        ),
        WAIT,
    )
    .await;
    say(&format!("control_ui: opened {route} by {how}"));
}

/// The two problems the UI always reports against a plain static server:
/// before "Switch" is confirmed it tries a WebSocket to its own origin (a
/// static server is no gateway), and it asks its own origin for
/// `/control-ui-config.json` (a 404 means defaults).
fn expected_problem(problem: &str, static_origin: &str) -> bool {
    let own_ws = static_origin.replacen("http://", "ws://", 1);
    (problem.contains("WebSocket connection to") && problem.contains(&own_ws))
        || (problem.contains("404") && problem.contains("/control-ui-config.json"))
}

async fn shot(page: &Page<'_>, n: &mut u32, name: &str) {
    *n += 1;
    page.screenshot(&shots_dir().join(format!("{n:02}-{name}.png")))
        .await;
}

#[tokio::test]
async fn openclaw_control_ui_against_pinclaw() {
    let started = Instant::now();
    let ui_dir = match control_ui_dir() {
        Ok(dir) => dir,
        Err(reason) => return skip(&reason),
    };
    let Some(chromium) = cdp::chromium() else {
        return skip("no Chromium (install Debian's chromium or set PINCLAW_CHROMIUM)");
    };
    let _ = std::fs::remove_dir_all(shots_dir());

    let ui = StaticServer::start(ui_dir.clone()).await;
    let fake = FakeProvider::start();
    fake.set_default(text_reply(REPLY, Duration::from_millis(40)));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut settings = agent_settings(&dir.path().join("state"), &fake, 16_384);
    settings.config.gateway.allowed_origins = vec![ui.origin.clone()];
    let gw = TestGateway::start_with(settings).await;
    let mut admin: Client = gw
        .client(&[
            "operator.admin",
            "operator.read",
            "operator.write",
            "operator.pairing",
        ])
        .await;
    let nodes = admin
        .call("node.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let board = nodes["nodes"][0]["displayName"]
        .as_str()
        .or(nodes["nodes"][0]["nodeId"].as_str())
        .unwrap_or_else(|| panic!("the board is a node: {nodes}"))
        .to_owned();
    let node = paired_node(&gw.url, &mut admin, NODE, &["system.run"]).await;

    let browser = Browser::launch(&chromium, &[]).await;
    let page = browser.new_page().await;
    page.viewport(VIEWPORT.0, VIEWPORT.1, false).await;
    page.record(&["Network.webSocket"]);
    page.call("Network.enable", json!({})).await;
    page.call(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({"source": TOAST_WATCH}),
    )
    .await;
    let mut n = 0;

    // 1. Open the UI with the gateway in the link and the token in the
    //    fragment; accept the switch to that gateway.
    let gateway_url = format!("ws://{}", gw.addr);
    page.goto(&format!(
        "{}/?gatewayUrl={gateway_url}#token={TOKEN}",
        ui.origin
    ))
    .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let clicked = click_button(&page, "^switch to ").await;
        if !clicked.is_null() {
            say(&format!("control_ui: clicked {clicked}"));
            break;
        }
        if !rpcs(&page, &gateway_url).is_empty() {
            say("control_ui: no switch question; the UI went to the gateway by itself");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "neither a switch question nor a connect: {}",
            page_text(&page).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 2. A new device: refused until approved, and while it waits, every
    //    reconnect is told the same pairing request id.
    let refusals = wait_rpcs(
        &page,
        &gateway_url,
        &format!("{REFUSALS} pairing refusals"),
        |calls| {
            let refused: Vec<Value> = calls.iter().filter_map(pairing_refusal).cloned().collect();
            (refused.len() >= REFUSALS).then_some(refused)
        },
    )
    .await;
    let connects = rpcs(&page, &gateway_url)
        .iter()
        .filter(|c| c.method == "connect")
        .count();
    let ids: BTreeSet<&str> = refusals
        .iter()
        .map(|e| e["details"]["requestId"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "{} refusals over {connects} connects name one request: {refusals:#?}",
        refusals.len()
    );
    let request_id = ids.into_iter().next().unwrap_or_default().to_owned();
    assert!(!request_id.is_empty(), "{refusals:#?}");
    assert_eq!(
        refusals[0]["details"]["recommendedNextStep"], "wait_then_retry",
        "the UI is told to keep retrying by itself"
    );
    let sockets: BTreeSet<String> = frames(&page)
        .into_iter()
        .filter(|f| same_socket_url(&f.url, &gateway_url))
        .map(|f| f.socket)
        .collect();
    assert!(
        sockets.len() >= REFUSALS,
        "each retry is a new socket: {sockets:?}"
    );
    let listed = admin
        .call("device.pair.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pending: Vec<&Value> = listed["pending"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter(|r| r["clientId"] == "openclaw-control-ui")
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        pending.len(),
        1,
        "one pending request for the browser: {listed}"
    );
    assert_eq!(pending[0]["requestId"], json!(request_id));
    wait_text(&page, &[&request_id]).await;
    shot(&page, &mut n, "pairing").await;
    admin
        .call("device.pair.approve", json!({"requestId": request_id}))
        .await
        .unwrap_or_else(|e| panic!("approve {request_id}: {e}"));
    // It reconnects by itself (backoff up to 15 s); "Check now" skips that.
    let _ = click_button(&page, "^check now").await;
    wait_rpcs(&page, &gateway_url, "hello-ok after approval", |calls| {
        calls
            .iter()
            .any(|c| {
                c.response
                    .as_ref()
                    .is_some_and(|r| r["payload"]["type"] == "hello-ok")
            })
            .then_some(())
    })
    .await;
    // The UI's connection status (a live region in the sidebar's footer).
    page.wait_for(
        &with_helpers("__all('[role=status]').some((e) => __text(e) === 'Connected')"),
        WAIT,
    )
    .await;
    settle(&page, &gateway_url).await;
    shot(&page, &mut n, "connected").await;
    say(&format!(
        "control_ui: connected after {:?}",
        started.elapsed()
    ));

    // 3. Chat: the conversation loads, a message typed into the composer is
    //    sent, and pinclaw's reply shows.
    if !page
        .eval("location.pathname.startsWith('/chat')")
        .await
        .as_bool()
        .unwrap_or(false)
    {
        open_route(&page, "/chat").await;
    }
    wait_rpcs(&page, &gateway_url, "chat.startup answered", |calls| {
        calls
            .iter()
            .any(|c| c.method == "chat.startup" && c.response.is_some())
            .then_some(())
    })
    .await;
    page.wait_for(
        &with_helpers(
            "(() => { const t = __all('textarea').find((t) => __visible(t) && !t.disabled && !t.readOnly); if (!t) return false; t.focus(); return document.activeElement === t || t.matches(':focus'); })()",
        ),
        WAIT,
    )
    .await;
    page.call("Input.insertText", json!({"text": MESSAGE}))
        .await;
    for kind in ["keyDown", "keyUp"] {
        page.call(
            "Input.dispatchKeyEvent",
            json!({"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13, "text": if kind == "keyDown" { "\r" } else { "" }}),
        )
        .await;
    }
    let send = wait_rpcs(&page, &gateway_url, "chat.send answered", |calls| {
        calls
            .iter()
            .find(|c| c.method == "chat.send" && c.response.is_some())
            .cloned()
    })
    .await;
    assert_eq!(send.params["message"], MESSAGE, "{send:?}");
    assert_eq!(
        send.response.as_ref().map(|r| r["ok"].clone()),
        Some(json!(true)),
        "{send:?}"
    );
    let asked = fake.arrived(1, WAIT).await;
    assert!(
        asked.iter().any(|r| r
            .json
            .as_ref()
            .is_some_and(|b| agent_support::last_user(b) == MESSAGE)),
        "the model was asked the message"
    );
    wait_text(&page, &[MESSAGE, REPLY]).await;
    settle(&page, &gateway_url).await;
    shot(&page, &mut n, "chat-reply").await;

    // 4. Sessions: the chat's session is a row.
    open_route(&page, "/sessions").await;
    page.wait_for(
        &with_helpers(
            "__all('a, td, span, div, button').some((e) => __visible(e) && __text(e) === 'agent:main:main')",
        ),
        WAIT,
    )
    .await;
    settle(&page, &gateway_url).await;
    shot(&page, &mut n, "sessions").await;

    // 5. Systems: the gateway host and, under the paired nodes, the board
    //    and the other node.
    open_route(&page, "/systems").await;
    page.wait_for(
        &with_helpers(&format!(
            "(() => {{ const group = __all('.systems-group').find((g) => __visible(g) && __text(g.querySelector('h3') || g).startsWith('Paired nodes')); if (!group) return false; const shown = [...group.querySelectorAll('.systems-machine__name')].map(__text); return shown.includes({}) && shown.includes({}); }})()",
            js(&board),
            js(NODE)
        )),
        WAIT,
    )
    .await;
    settle(&page, &gateway_url).await;
    shot(&page, &mut n, "systems").await;

    // 6. Devices: the nodes and this browser, paired.
    open_route(&page, "/settings/devices").await;
    wait_names(
        &page,
        ".device-entry .settings-row__title",
        &[&board, NODE, "openclaw-control-ui"],
    )
    .await;
    settle(&page, &gateway_url).await;
    shot(&page, &mut n, "devices").await;

    // 7. Back to chat: the conversation is still there.
    open_route(&page, "/chat").await;
    wait_text(&page, &[MESSAGE, REPLY]).await;
    settle(&page, &gateway_url).await;
    shot(&page, &mut n, "chat-again").await;

    // Every request on the gateway socket succeeded (but the pairing
    // refusals) and was answered.
    let calls = rpcs(&page, &gateway_url);
    let failed: Vec<String> = calls
        .iter()
        .filter(|c| pairing_refusal(c).is_none())
        .filter(|c| c.response.as_ref().is_none_or(|r| r["ok"] != true))
        .map(|c| format!("{} {} -> {:?}", c.method, c.params, c.response))
        .collect();
    let methods: BTreeSet<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    say(&format!(
        "control_ui: {} requests on the gateway socket, {} methods: {methods:?}",
        calls.len(),
        methods.len()
    ));
    assert!(
        failed.is_empty(),
        "failed or unanswered gateway calls: {failed:#?}"
    );
    // No error toast or banner at any time. The watcher itself works: an
    // alert put in the page is seen.
    page.eval("(() => { const d = document.createElement('div'); d.setAttribute('role', 'alert'); d.id = 'cui-probe-alert'; d.textContent = 'the watcher sees this'; document.body.append(d); })()")
        .await;
    page.wait_for(
        "(window.__cuiToasts || []).some((t) => t.text === 'the watcher sees this')",
        WAIT,
    )
    .await;
    page.eval("document.getElementById('cui-probe-alert').remove()")
        .await;
    let toasts = page
        .eval("window.__cuiToasts.filter((t) => t.text !== 'the watcher sees this')")
        .await;
    assert_eq!(toasts, json!([]), "error toasts or banners");
    let (expected, problems): (Vec<String>, Vec<String>) = page
        .problems()
        .into_iter()
        .partition(|p| expected_problem(p, &ui.origin));
    assert!(problems.is_empty(), "the page reported {problems:#?}");
    say(&format!(
        "control_ui: the expected page problems: {expected:?}"
    ));
    let missing: Vec<String> = ui
        .log()
        .into_iter()
        .filter(|l| !l.starts_with("200 ") && !l.contains("/control-ui-config.json"))
        .collect();
    assert!(
        missing.is_empty(),
        "the UI asked for files it lacks: {missing:#?}"
    );

    drop(browser);
    drop(node);
    gw.stop().await;
    say(&format!("control_ui: done in {:?}", started.elapsed()));
}

/// The static server's answers: files with their types, the single-page
/// app's fallback for routes, 404 for a missing asset or a way out of the
/// root.
#[test]
fn static_server_resolves_files_routes_and_misses() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(root.path().join("assets")).unwrap_or_else(|e| panic!("{e}"));
    for f in ["index.html", "assets/app-1.js", "assets/a b.css"] {
        std::fs::write(root.path().join(f), f).unwrap_or_else(|e| panic!("{e}"));
    }
    let index = root.path().join("index.html");
    assert_eq!(resolve(root.path(), "/"), (200, index.clone()));
    assert_eq!(
        resolve(root.path(), "/assets/app-1.js?v=build"),
        (200, root.path().join("assets/app-1.js"))
    );
    assert_eq!(
        resolve(root.path(), "/assets/a%20b.css"),
        (200, root.path().join("assets/a b.css"))
    );
    assert_eq!(resolve(root.path(), "/chat/main"), (200, index.clone()));
    assert_eq!(resolve(root.path(), "/settings/devices?x=1"), (200, index));
    assert_eq!(resolve(root.path(), "/control-ui-config.json").0, 404);
    assert_eq!(resolve(root.path(), "/assets/gone.js").0, 404);
    assert_eq!(resolve(root.path(), "/../Cargo.toml").0, 404);
    assert_eq!(resolve(root.path(), "/assets/%2e%2e/%2e%2e/x.js").0, 404);
    assert_eq!(
        content_type(Path::new("a.js")),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(content_type(Path::new("a.css")), "text/css; charset=utf-8");
    assert_eq!(content_type(Path::new("a.svg")), "image/svg+xml");
    assert_eq!(content_type(Path::new("a.woff2")), "font/woff2");
    assert_eq!(
        content_type(Path::new("manifest.webmanifest")),
        "application/manifest+json"
    );
}
