//! A small Chrome DevTools Protocol client for browser tests, on the crates
//! the project already has (tokio-tungstenite, serde_json): it starts a
//! headless Chromium with a fresh profile, reads the DevTools URL from its
//! stderr, and drives pages over the browser's one WebSocket with flattened
//! sessions (`Target.attachToTarget {flatten: true}`). Each page collects
//! its console errors, uncaught exceptions and error log entries (CSP
//! violations arrive as those). The browser is killed by PID on drop.
//!
//! No browser is downloaded: `$PINCLAW_CHROMIUM`, else a Debian
//! `chromium` / `chromium-headless-shell` / `google-chrome` on the PATH.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// Where Chromium is, if anywhere.
pub fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PINCLAW_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-headless-shell",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

type Reply = Result<Value, String>;

/// What the reader task shares with callers.
#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    /// Problems each session's page reported, by session id.
    problems: Mutex<HashMap<String, Vec<String>>>,
    /// Event-method prefixes each session records (see [`Page::record`]).
    recording: Mutex<HashMap<String, Vec<String>>>,
    /// The recorded events (`{method, params}`), by session id.
    events: Mutex<HashMap<String, Vec<Value>>>,
}

/// A running headless Chromium and its DevTools connection.
pub struct Browser {
    child: Child,
    profile: tempfile::TempDir,
    out: mpsc::UnboundedSender<Message>,
    shared: Arc<Shared>,
    next: Arc<AtomicU64>,
    /// The last lines Chromium printed (for failure messages).
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The flags every test browser gets; `extra` come before the URL.
fn args(profile: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--mute-audio",
        "--hide-scrollbars",
        "--no-proxy-server",
        "--remote-debugging-port=0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("about:blank".into());
    args
}

impl Browser {
    /// Start `binary` headless with `extra` flags and connect to it.
    pub async fn launch(binary: &Path, extra: &[&str]) -> Browser {
        let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("profile dir: {e}"));
        let mut child = Command::new(binary)
            .args(args(profile.path(), extra))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        // Chromium prints "DevTools listening on ws://…" on stderr; the pipe
        // is drained for as long as it runs so it never blocks on a full pipe.
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = url_tx.send(url.trim().to_owned());
                }
                let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
                kept.push(line);
                let excess = kept.len().saturating_sub(50);
                kept.drain(..excess);
            }
        });
        let url = tokio::task::spawn_blocking(move || url_rx.recv_timeout(Duration::from_secs(60)))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "{} printed no DevTools URL: {:?}",
                    binary.display(),
                    lines.lock().map(|l| l.clone()).unwrap_or_default()
                )
            });
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(256 << 20))
            .max_frame_size(Some(256 << 20));
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false)
                .await
                .unwrap_or_else(|e| panic!("DevTools connect {url}: {e}"));
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let shared = Arc::new(Shared::default());
        let reader = shared.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                reader.dispatch(frame);
            }
            // The browser went away: fail whoever still waits.
            let waiting: Vec<_> = reader
                .pending
                .lock()
                .map(|mut p| p.drain().collect())
                .unwrap_or_default();
            for (_, tx) in waiting {
                let _ = tx.send(Err("the browser closed its DevTools connection".into()));
            }
        });
        Browser {
            child,
            profile,
            out,
            shared,
            next: Arc::new(AtomicU64::new(1)),
            stderr: lines,
        }
    }

    /// A browser-level command.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.send(None, method, params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    async fn send(&self, session: Option<&str>, method: &str, params: Value) -> Reply {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut frame = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            frame["sessionId"] = json!(session);
        }
        let (tx, rx) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        self.out
            .send(Message::text(frame.to_string()))
            .map_err(|_| "the DevTools writer stopped".to_owned())?;
        match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err("no reply".into()),
            Err(_) => Err(format!("{method}: no reply within 60 s")),
        }
    }

    /// A new tab in a fresh browser context (its own storage, like a
    /// separate profile), attached, with Page/Runtime/Log enabled.
    pub async fn new_page(&self) -> Page<'_> {
        let context =
            self.call("Target.createBrowserContext", json!({})).await["browserContextId"].clone();
        self.page_in(context).await
    }

    /// A new tab in the default context.
    pub async fn page_in(&self, context: Value) -> Page<'_> {
        let mut params = json!({"url": "about:blank"});
        if context.is_string() {
            params["browserContextId"] = context.clone();
        }
        let target = self.call("Target.createTarget", params).await["targetId"].clone();
        let session = self
            .call(
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .await["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId"))
            .to_owned();
        let page = Page {
            browser: self,
            session,
            context,
        };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            page.call(domain, json!({})).await;
        }
        page
    }
}

impl Shared {
    fn dispatch(&self, frame: Value) {
        if let Some(id) = frame["id"].as_u64() {
            let tx = self
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if let Some(tx) = tx {
                let reply = match frame.get("error") {
                    Some(e) => Err(e.to_string()),
                    None => Ok(frame["result"].clone()),
                };
                let _ = tx.send(reply);
            }
            return;
        }
        let Some(session) = frame["sessionId"].as_str() else {
            return;
        };
        let params = &frame["params"];
        let method = frame["method"].as_str().unwrap_or("");
        let recorded = self
            .recording
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(session)
            .is_some_and(|prefixes| prefixes.iter().any(|p| method.starts_with(p.as_str())));
        if recorded {
            self.events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(session.to_owned())
                .or_default()
                .push(json!({"method": method, "params": params}));
        }
        let problem = match method {
            "Runtime.consoleAPICalled" if params["type"] == "error" => {
                let args: Vec<String> = params["args"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|v| match &v["value"] {
                                Value::String(s) => s.clone(),
                                Value::Null => v["description"].as_str().unwrap_or("").to_owned(),
                                other => other.to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Some(format!("console.error: {}", args.join(" ")))
            }
            "Runtime.exceptionThrown" => {
                let d = &params["exceptionDetails"];
                Some(format!(
                    "uncaught: {} {}",
                    d["text"].as_str().unwrap_or(""),
                    d["exception"]["description"].as_str().unwrap_or("")
                ))
            }
            "Log.entryAdded" if params["entry"]["level"] == "error" => Some(format!(
                "log ({}): {} {}",
                params["entry"]["source"].as_str().unwrap_or(""),
                params["entry"]["text"].as_str().unwrap_or(""),
                params["entry"]["url"].as_str().unwrap_or("")
            )),
            _ => None,
        };
        if let Some(problem) = problem {
            self.problems
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(session.to_owned())
                .or_default()
                .push(problem);
        }
    }
}

/// One attached tab.
pub struct Page<'b> {
    browser: &'b Browser,
    session: String,
    context: Value,
}

impl Page<'_> {
    /// A command in this tab's session.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.browser
            .send(Some(&self.session), method, params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Another tab in the same browser context (same storage).
    pub async fn sibling(&self) -> Page<'_> {
        self.browser.page_in(self.context.clone()).await
    }

    /// Evaluate `expression` (promises awaited) and return its value, or
    /// the exception's text.
    pub async fn try_eval(&self, expression: &str) -> Result<Value, String> {
        let r = self
            .browser
            .send(
                Some(&self.session),
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(e["exception"]["description"]
                .as_str()
                .or(e["text"].as_str())
                .unwrap_or("exception")
                .to_owned());
        }
        Ok(r["result"]["value"].clone())
    }

    /// Evaluate `expression`; an exception fails the test.
    pub async fn eval(&self, expression: &str) -> Value {
        self.try_eval(expression)
            .await
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
    }

    /// Poll `expression` every 50 ms until it is truthy (an exception
    /// counts as not yet) and return its value; fail after `timeout`.
    pub async fn wait_for(&self, expression: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let last = match self.try_eval(expression).await {
                Ok(v) if truthy(&v) => return v,
                other => other,
            };
            if start.elapsed() > timeout {
                panic!(
                    "not true within {timeout:?}: {expression}\n last: {last:?}\n page problems: {:?}\n body: {}",
                    self.problems(),
                    self.try_eval("document.body && document.body.innerText.slice(0, 2000)")
                        .await
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Navigate and wait for the load event's document to be there.
    pub async fn goto(&self, url: &str) {
        let r = self.call("Page.navigate", json!({"url": url})).await;
        if let Some(e) = r["errorText"].as_str() {
            panic!("navigate {url}: {e}");
        }
        self.wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(30),
        )
        .await;
    }

    /// A phone (390×844, touch, DPR 2) or a desktop viewport.
    pub async fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": if mobile { 2 } else { 1 }, "mobile": mobile}),
        )
        .await;
        self.call(
            "Emulation.setTouchEmulationEnabled",
            json!({"enabled": mobile}),
        )
        .await;
    }

    /// Emulate the OS colour scheme.
    pub async fn color_scheme(&self, dark: bool) {
        self.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": if dark { "dark" } else { "light" }}]}),
        )
        .await;
    }

    /// A PNG of the viewport, written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or(""))
            .unwrap_or_else(|e| panic!("screenshot base64: {e}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Console errors, uncaught exceptions and error log entries so far.
    pub fn problems(&self) -> Vec<String> {
        self.browser
            .shared
            .problems
            .lock()
            .map(|p| p.get(&self.session).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Keep every event of this tab whose method starts with one of
    /// `prefixes` (e.g. `Network.webSocket` once `Network.enable` is on), for
    /// [`Page::events`].
    pub fn record(&self, prefixes: &[&str]) {
        self.browser
            .shared
            .recording
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(self.session.clone())
            .or_default()
            .extend(prefixes.iter().map(|p| p.to_string()));
    }

    /// The events recorded so far (`{method, params}`, in arrival order).
    pub fn events(&self) -> Vec<Value> {
        self.browser
            .shared
            .events
            .lock()
            .map(|e| e.get(&self.session).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Close the tab.
    pub async fn close(self) {
        let target =
            self.call("Target.getTargetInfo", json!({})).await["targetInfo"]["targetId"].clone();
        self.browser
            .call("Target.closeTarget", json!({"targetId": target}))
            .await;
    }
}

/// JavaScript truthiness of a returned value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}
