//! A scripted fake model provider on 127.0.0.1 for tests (std only).
//!
//! It replays fixture transcripts (OpenAI / Anthropic SSE, Ollama NDJSON) and
//! injects faults: error statuses with `retry-after`, stalls before the
//! headers or mid-body, truncated bodies, byte-at-a-time delivery, HTML pages,
//! empty bodies. Every request is recorded (method, path, headers, body). An
//! unscripted request gets a loud `599 fake: no scripted reply`. The server
//! stops and joins its threads when dropped.
//!
//! Include it with `#[path = "support/fake_provider.rs"] mod fake_provider;`.
#![allow(dead_code)]

// Each fake includes it so either can be used alone; a test that uses
// both compiles it twice, which is harmless.
#[allow(clippy::duplicate_mod)]
#[path = "http_request.rs"]
mod http_request;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `transfer-encoding: chunked`; each step is one chunk.
    Chunked,
    /// No length: the body ends when the connection closes.
    CloseDelimited,
    /// `content-length` computed from the steps.
    ContentLength,
}

/// One step of a scripted response body.
#[derive(Debug, Clone)]
pub enum Step {
    /// Bytes sent as one chunk (one SSE event or NDJSON line, or anything).
    Chunk(Vec<u8>),
    /// Pause (mid-body stall).
    Sleep(Duration),
    /// Each byte as its own chunk, with a pause after each.
    Drip(Vec<u8>, Duration),
    /// Drop the socket now: no terminating chunk.
    CloseAbrupt,
}

/// Which requests a reply may answer (FIFO among matching replies).
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    /// Exact request path.
    pub path: Option<String>,
    /// The `model` field of the JSON body.
    pub model: Option<String>,
}

/// A scripted response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    /// Stall before sending the status line.
    pub delay_headers: Duration,
    pub steps: Vec<Step>,
    pub matcher: Matcher,
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub conn_id: u64,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub json: Option<serde_json::Value>,
}

impl Recorded {
    /// A header value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Directory of the fixture transcripts.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/providers")
        .join(name)
}

/// The raw bytes of a fixture.
pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Split an SSE body after each blank line (`\n\n` or `\r\n\r\n`), or an
/// NDJSON body after each `\n`.
pub fn split_events(body: &[u8], ndjson: bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < body.len() {
        let end = if ndjson {
            (body[i] == b'\n').then_some(i + 1)
        } else if body[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if body[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        };
        match end {
            Some(e) => {
                out.push(body[start..e].to_vec());
                start = e;
                i = e;
            }
            None => i += 1,
        }
    }
    if start < body.len() {
        out.push(body[start..].to_vec());
    }
    out
}

impl Reply {
    /// A reply with a status and no body.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            framing: Framing::Chunked,
            delay_headers: Duration::ZERO,
            steps: Vec::new(),
            matcher: Matcher::default(),
        }
    }

    /// Replay a fixture file: `.sse` as `text/event-stream` one event per
    /// chunk, `.ndjson` as `application/x-ndjson` one line per chunk.
    pub fn fixture(name: &str) -> Self {
        let ndjson = name.ends_with(".ndjson");
        let ct = if ndjson {
            "application/x-ndjson"
        } else {
            "text/event-stream"
        };
        let mut r = Reply::status(200).header("content-type", ct);
        r.steps = split_events(&fixture_bytes(name), ndjson)
            .into_iter()
            .map(Step::Chunk)
            .collect();
        r
    }

    /// An OpenAI-compatible streamed reply: one chunk per text part (the
    /// first with the assistant role), the stop chunk, `[DONE]`.
    pub fn openai_text(parts: &[&str]) -> Self {
        let chunk = |delta: serde_json::Value, finish: Option<&str>| {
            let event = serde_json::json!({"id": "b", "object": "chat.completion.chunk", "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
            Step::Chunk(format!("data: {event}\n\n").into_bytes())
        };
        let mut r = Reply::status(200).header("content-type", "text/event-stream");
        r.steps = parts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let delta = if i == 0 {
                    serde_json::json!({"role": "assistant", "content": text})
                } else {
                    serde_json::json!({"content": text})
                };
                chunk(delta, None)
            })
            .collect();
        r.steps.push(chunk(serde_json::json!({}), Some("stop")));
        r.steps.push(Step::Chunk(b"data: [DONE]\n\n".to_vec()));
        r
    }

    /// A streaming 200 from literal text, one chunk.
    pub fn stream_body(content_type: &str, body: &str) -> Self {
        let mut r = Reply::status(200).header("content-type", content_type);
        r.steps = vec![Step::Chunk(body.as_bytes().to_vec())];
        r
    }

    /// An error response with a JSON (or other) body and optional `retry-after`.
    pub fn http_error(status: u16, body: &str, retry_after: Option<&str>) -> Self {
        let ct = if body.trim_start().starts_with('<') {
            "text/html"
        } else {
            "application/json"
        };
        let mut r = Reply::status(status)
            .header("content-type", ct)
            .framing(Framing::ContentLength);
        if let Some(ra) = retry_after {
            r = r.header("retry-after", ra);
        }
        r.steps = vec![Step::Chunk(body.as_bytes().to_vec())];
        r
    }

    /// Add a response header.
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    /// Set the body framing.
    pub fn framing(mut self, f: Framing) -> Self {
        self.framing = f;
        self
    }

    /// Sleep this long between chunks.
    pub fn gap(mut self, d: Duration) -> Self {
        let mut steps = Vec::new();
        for s in self.steps.drain(..) {
            if !steps.is_empty() {
                steps.push(Step::Sleep(d));
            }
            steps.push(s);
        }
        self.steps = steps;
        self
    }

    /// Keep the first `n` chunks, then apply `end` (usually `CloseAbrupt`, or
    /// a long `Sleep` for a stall).
    pub fn cut_after(mut self, n: usize, end: Step) -> Self {
        let mut kept = 0;
        self.steps.retain(|s| {
            if matches!(s, Step::Chunk(_)) {
                kept += 1;
                kept <= n
            } else {
                kept < n
            }
        });
        self.steps.push(end);
        self
    }

    /// Deliver the whole body one byte per chunk with `d` between bytes.
    pub fn drip(mut self, d: Duration) -> Self {
        let mut all = Vec::new();
        for s in &self.steps {
            if let Step::Chunk(b) = s {
                all.extend_from_slice(b);
            }
        }
        self.steps = vec![Step::Drip(all, d)];
        self
    }

    /// Insert a step before chunk number `n`.
    pub fn insert_before(mut self, n: usize, step: Step) -> Self {
        let mut seen = 0;
        let mut at = self.steps.len();
        for (i, s) in self.steps.iter().enumerate() {
            if matches!(s, Step::Chunk(_)) {
                if seen == n {
                    at = i;
                    break;
                }
                seen += 1;
            }
        }
        self.steps.insert(at, step);
        self
    }

    /// Stall before the status line.
    pub fn delay_headers(mut self, d: Duration) -> Self {
        self.delay_headers = d;
        self
    }

    /// Only answer requests for this model.
    pub fn for_model(mut self, m: &str) -> Self {
        self.matcher.model = Some(m.into());
        self
    }

    /// Only answer requests on this path.
    pub fn for_path(mut self, p: &str) -> Self {
        self.matcher.path = Some(p.into());
        self
    }

    fn matches(&self, path: &str, json: Option<&serde_json::Value>) -> bool {
        if self.matcher.path.as_deref().is_some_and(|p| p != path) {
            return false;
        }
        if let Some(m) = &self.matcher.model {
            let got = json.and_then(|j| j.get("model")).and_then(|v| v.as_str());
            if got != Some(m.as_str()) {
                return false;
            }
        }
        true
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    default: Option<Reply>,
    log: Vec<Recorded>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    conns: AtomicU64,
}

/// The fake server. Dropping it stops it.
pub struct FakeProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    join: Option<JoinHandle<()>>,
}

impl FakeProvider {
    /// Bind 127.0.0.1:0 and serve.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            conns: AtomicU64::new(0),
        });
        let sh = shared.clone();
        let join = std::thread::spawn(move || {
            let mut workers = Vec::new();
            for conn in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let sh2 = sh.clone();
                let id = sh.conns.fetch_add(1, Ordering::SeqCst);
                workers.push(std::thread::spawn(move || serve(conn, id, &sh2)));
                workers.retain(|w| !w.is_finished());
            }
            for w in workers {
                let _ = w.join();
            }
        });
        FakeProvider {
            addr,
            shared,
            join: Some(join),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queue a reply (answered in FIFO order among matching replies).
    pub fn push(&self, r: Reply) {
        self.lock().script.push_back(r);
    }

    /// Reply used when no scripted reply matches.
    pub fn set_default(&self, r: Reply) {
        self.lock().default = Some(r);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().log.clone()
    }

    /// Wait (without blocking the async runtime the gateway under test
    /// shares) until at least `n` requests arrived; panics after `timeout`.
    pub async fn arrived(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.requests();
            if log.len() >= n {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the fake provider got {} request(s), not {n}, within {timeout:?}",
                log.len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

fn stopped(sh: &Shared) -> bool {
    sh.stop.load(Ordering::SeqCst)
}

/// Sleep in small steps so a dropped server stops promptly.
fn nap(sh: &Shared, d: Duration) {
    let end = Instant::now() + d;
    while !stopped(sh) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(10)));
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Fake",
    }
}

fn serve(mut conn: TcpStream, conn_id: u64, sh: &Shared) {
    let Some((method, path, headers, body)) = http_request::read_request(&mut conn, || stopped(sh))
    else {
        return;
    };
    let json = serde_json::from_slice(&body).ok();
    let reply = {
        let mut st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
        st.log.push(Recorded {
            at: Instant::now(),
            conn_id,
            method,
            path: path.clone(),
            headers,
            body,
            json: json.clone(),
        });
        sh.changed.notify_all();
        let pos = st
            .script
            .iter()
            .position(|r| r.matches(&path, json.as_ref()));
        match pos.and_then(|p| st.script.remove(p)) {
            Some(r) => r,
            None => st.default.clone().unwrap_or_else(|| {
                let mut r = Reply::status(599)
                    .header("content-type", "text/plain")
                    .framing(Framing::ContentLength);
                r.steps = vec![Step::Chunk(b"fake: no scripted reply".to_vec())];
                r
            }),
        }
    };
    let _ = write_reply(&mut conn, &reply, sh);
}

fn write_reply(conn: &mut TcpStream, r: &Reply, sh: &Shared) -> std::io::Result<()> {
    nap(sh, r.delay_headers);
    if stopped(sh) {
        return Ok(());
    }
    let mut head = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match r.framing {
        Framing::Chunked => head.push_str("transfer-encoding: chunked\r\n"),
        Framing::ContentLength => {
            let n: usize = r
                .steps
                .iter()
                .map(|s| match s {
                    Step::Chunk(b) | Step::Drip(b, _) => b.len(),
                    _ => 0,
                })
                .sum();
            head.push_str(&format!("content-length: {n}\r\n"));
        }
        Framing::CloseDelimited => {}
    }
    head.push_str("connection: close\r\n\r\n");
    conn.write_all(head.as_bytes())?;
    conn.flush()?;
    let chunked = r.framing == Framing::Chunked;
    let send = |conn: &mut TcpStream, b: &[u8]| -> std::io::Result<()> {
        if b.is_empty() {
            return Ok(());
        }
        if chunked {
            conn.write_all(format!("{:x}\r\n", b.len()).as_bytes())?;
            conn.write_all(b)?;
            conn.write_all(b"\r\n")?;
        } else {
            conn.write_all(b)?;
        }
        conn.flush()
    };
    for s in &r.steps {
        if stopped(sh) {
            return Ok(());
        }
        match s {
            Step::Chunk(b) => send(conn, b)?,
            Step::Sleep(d) => nap(sh, *d),
            Step::Drip(b, d) => {
                for byte in b {
                    send(conn, std::slice::from_ref(byte))?;
                    nap(sh, *d);
                }
            }
            Step::CloseAbrupt => {
                let _ = conn.shutdown(std::net::Shutdown::Both);
                return Ok(());
            }
        }
    }
    if chunked {
        conn.write_all(b"0\r\n\r\n")?;
    }
    conn.flush()?;
    let _ = conn.shutdown(std::net::Shutdown::Write);
    // let the client read everything before the socket is dropped
    let mut sink = [0u8; 256];
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = conn.read(&mut sink);
    Ok(())
}
