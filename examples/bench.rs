//! Footprint and latency benchmark for pinclaw (or any OpenClaw protocol v4 gateway).
//!
//! Not a test: it prints figures and never fails on timing. `bench/run.sh` drives it.
//!
//! ```text
//! # process start -> GET /readyz 200, polled every 1 ms; {port} is a free loopback port,
//! # {tmp} a fresh empty directory per run
//! cargo run --release --example bench -- ready --runs 5 -- \
//!     target/release/pinclaw gateway --port {port} --token T --state-dir {tmp}
//!
//! # against a running gateway: idle RSS, health latency (and a bare tokio-tungstenite
//! # baseline server measured with the same client loop), RSS with N idle connections
//! cargo run --release --example bench -- run --url ws://127.0.0.1:18789 --token T \
//!     --pid <gateway pid> --n 2000 --levels 100,1000
//! ```
//!
//! The client connects like OpenClaw's CLI on loopback: `connect` with
//! client {id:"cli", mode:"cli"}, role operator, scopes operator.read/write/admin,
//! auth.token, no device identity. Figures are printed as `figure <name> <value>`
//! lines (for scripts) and as a table.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use ed25519_dalek::SigningKey;
use futures_util::{SinkExt, StreamExt};
use pinclaw::client::{ClientOptions, connect_params};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, BoxError>;

#[derive(Parser)]
#[command(name = "bench", about = "pinclaw footprint and latency benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a gateway command repeatedly and time process start -> /readyz 200.
    Ready(ReadyArgs),
    /// Measure a running gateway: idle RSS, health latency vs a baseline, RSS under idle connections.
    Run(RunArgs),
    /// Under write load: `health` latency on an idle connection while another
    /// sends `chat.send` at a steady rate, then acknowledged `chat.send`s per
    /// second from several clients at once (run the gateway with the fsync
    /// delay shim to see an SD card's flush).
    Disk(DiskArgs),
}

#[derive(Args)]
struct DiskArgs {
    /// Gateway WebSocket URL.
    #[arg(long)]
    url: String,
    /// Shared token.
    #[arg(long, env = "PINCLAW_GATEWAY_TOKEN")]
    token: String,
    /// `chat.send` per second from the writing client.
    #[arg(long, default_value_t = 10)]
    rate: u32,
    /// Seconds of the latency phase.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Clients sending `chat.send` back to back in the throughput phase.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds of the throughput phase.
    #[arg(long, default_value_t = 5)]
    burst_secs: u64,
    /// Label for the figures.
    #[arg(long, default_value = "disk")]
    label: String,
}

#[derive(Args)]
struct ReadyArgs {
    /// How many starts.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Give up on one start after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// The gateway command; `{port}` becomes a free loopback port, `{tmp}` a fresh directory.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(Args)]
struct RunArgs {
    /// Gateway WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:18789")]
    url: String,
    /// Shared token.
    #[arg(long, env = "PINCLAW_GATEWAY_TOKEN")]
    token: String,
    /// Gateway PID, for RSS from /proc/PID/status (0 = do not measure memory).
    #[arg(long, default_value_t = 0)]
    pid: u32,
    /// Sequential calls measured on one connection.
    #[arg(long, default_value_t = 2000)]
    n: usize,
    /// Calls before measuring.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Method for the latency loop.
    #[arg(long, default_value = "health")]
    method: String,
    /// Idle authenticated connection levels (comma separated; 0 or empty = skip).
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    levels: Vec<usize>,
    /// Connections opened at once (the gateway allows 32 unauthenticated per IP).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Seconds to wait at each level before checking the connections and reading RSS.
    #[arg(long, default_value_t = 3)]
    settle: u64,
    /// Also open and close this many connections one after another and report the
    /// RSS change (a leak check: it should come back to where it was).
    #[arg(long, default_value_t = 0)]
    churn: usize,
    /// The latency loop alternates between the gateway and the baseline in this many blocks.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Skip the bare tokio-tungstenite baseline server.
    #[arg(long)]
    no_baseline: bool,
    /// Label for the table.
    #[arg(long, default_value = "gateway")]
    label: String,
    /// Device identity of the idle connections: none, paired (each proves a
    /// key paired before the level is measured) or new (each is a device
    /// paired while measuring).
    #[arg(long, value_enum, default_value_t = Identity::None)]
    identity: Identity,
}

/// How the idle connections identify themselves.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Identity {
    /// Token only (like OpenClaw's CLI on loopback).
    None,
    /// An Ed25519 identity paired before the measurement.
    Paired,
    /// A new Ed25519 identity, paired during the measurement.
    New,
}

fn new_key() -> SigningKey {
    SigningKey::from_bytes(&pinclaw::ids::random_bytes::<32>())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Ready(a) => ready(a),
        Cmd::Run(a) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(BoxError::from)
            .and_then(|rt| rt.block_on(run(a))),
        Cmd::Disk(a) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(BoxError::from)
            .and_then(|rt| rt.block_on(disk(a))),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn figure(name: &str, value: impl std::fmt::Display) {
    println!("figure {name} {value}");
}

// ------------------------------------------------------------------ statistics

#[derive(Clone, Copy)]
struct Stats {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
    rps: f64,
}

/// Percentiles by nearest rank, in milliseconds (the same rule as oc-bench.mjs).
fn stats(samples: &mut [Duration], wall: Duration) -> Stats {
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let pct = |p: f64| {
        let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        ms(samples[rank.clamp(1, samples.len()) - 1])
    };
    let total: Duration = samples.iter().sum();
    Stats {
        p50: pct(50.0),
        p90: pct(90.0),
        p99: pct(99.0),
        max: ms(samples[samples.len() - 1]),
        mean: ms(total) / samples.len() as f64,
        rps: samples.len() as f64 / wall.as_secs_f64(),
    }
}

// ------------------------------------------------------------------ /proc

#[derive(Clone, Copy, Default)]
struct Mem {
    rss_kb: u64,
    threads: u64,
    tree_rss_kb: u64,
}

fn proc_status(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("Threads:").unwrap_or(0)))
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(c.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// RSS of the process, and of it plus its descendants (OpenClaw runs worker processes).
fn mem(pid: u32) -> Option<Mem> {
    let (rss_kb, threads) = proc_status(pid)?;
    let mut tree = rss_kb;
    let mut stack = children(pid);
    while let Some(p) = stack.pop() {
        tree += proc_status(p).map(|(r, _)| r).unwrap_or(0);
        stack.extend(children(p));
    }
    Some(Mem {
        rss_kb,
        threads,
        tree_rss_kb: tree,
    })
}

// ------------------------------------------------------------------ ready

fn free_port() -> Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One plain HTTP GET on loopback; returns the status code.
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = StdStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    std::str::from_utf8(&buf[..n])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

fn ready(a: ReadyArgs) -> Result<()> {
    let mut starts = Vec::new();
    let mut stops = Vec::new();
    for run in 1..=a.runs {
        let port = free_port()?;
        let tmp =
            std::env::temp_dir().join(format!("pinclaw-bench-ready-{}-{run}", std::process::id()));
        std::fs::create_dir_all(&tmp)?;
        let args: Vec<String> = a
            .command
            .iter()
            .map(|s| {
                s.replace("{port}", &port.to_string())
                    .replace("{tmp}", &tmp.to_string_lossy())
            })
            .collect();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let t0 = Instant::now();
        let mut child = Command::new(&args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", args[0]))?;
        let deadline = t0 + Duration::from_secs(a.timeout);
        let mut first_accept = None;
        let ready_at = loop {
            match http_status(addr, "/readyz") {
                Some(200) => break Some(t0.elapsed()),
                Some(_) => {
                    first_accept.get_or_insert(t0.elapsed());
                }
                None => {}
            }
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!("gateway exited ({st}) before /readyz returned 200").into());
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let t_term = Instant::now();
        sigterm(child.id());
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break Some(st);
            }
            if t_term.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let stop = t_term.elapsed();
        let _ = std::fs::remove_dir_all(&tmp);
        let Some(ready_at) = ready_at else {
            return Err(format!("/readyz not 200 within {} s", a.timeout).into());
        };
        println!(
            "run {run}: ready {:.1} ms{}; SIGTERM -> {} in {:.1} ms",
            ready_at.as_secs_f64() * 1e3,
            first_accept
                .map(|d| format!(" (first HTTP answer {:.1} ms)", d.as_secs_f64() * 1e3))
                .unwrap_or_default(),
            status.map_or("killed after 10 s".to_string(), |s| s.to_string()),
            stop.as_secs_f64() * 1e3
        );
        starts.push(ready_at);
        stops.push(stop);
    }
    starts.sort_unstable();
    stops.sort_unstable();
    let med = |v: &[Duration]| v[v.len() / 2].as_secs_f64() * 1e3;
    figure("ready_ms_median", format!("{:.1}", med(&starts)));
    figure(
        "ready_ms_min",
        format!("{:.1}", starts[0].as_secs_f64() * 1e3),
    );
    figure(
        "ready_ms_max",
        format!("{:.1}", starts[starts.len() - 1].as_secs_f64() * 1e3),
    );
    figure("stop_ms_median", format!("{:.1}", med(&stops)));
    Ok(())
}

// ------------------------------------------------------------------ the protocol client

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Conn {
    ws: Ws,
    next_id: u64,
}

impl Conn {
    /// Opens a socket, waits for `connect.challenge`, sends `connect`, waits for hello-ok.
    async fn open(url: &str, token: &str) -> Result<Conn> {
        Conn::open_as(url, token, None).await
    }

    /// Like [`Conn::open`], proving the Ed25519 identity `device` when given
    /// (a new key is paired silently on loopback; a known one reconnects).
    async fn open_as(url: &str, token: &str, device: Option<&SigningKey>) -> Result<Conn> {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
        let mut conn = Conn { ws, next_id: 0 };
        let challenge = loop {
            let v = conn.next_json().await?;
            if v["type"] == "event" && v["event"] == "connect.challenge" {
                break v;
            }
        };
        let options = ClientOptions {
            token: Some(token.to_owned()),
            scopes: vec![
                "operator.read".into(),
                "operator.write".into(),
                "operator.admin".into(),
            ],
            device: device.cloned(),
            ..ClientOptions::default()
        };
        let nonce = challenge["payload"]["nonce"].as_str().unwrap_or("");
        let ts = challenge["payload"]["ts"].as_i64().unwrap_or(0);
        let params = connect_params(&options, nonce, ts);
        let hello = conn.request("connect", params).await?;
        if hello.0["ok"] != true {
            return Err(format!("connect refused: {}", hello.0["error"]).into());
        }
        Ok(conn)
    }

    async fn next_json(&mut self) -> Result<Value> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str())?),
                Some(Ok(Message::Close(c))) => return Err(format!("closed by peer: {c:?}").into()),
                Some(Ok(_)) => continue, // ping/pong/binary: tungstenite answers pings itself
                Some(Err(e)) => return Err(e.into()),
                None => return Err("connection closed".into()),
            }
        }
    }

    /// Sends one `req` and returns its `res` frame and that frame's size in bytes.
    /// Events that arrive in between are skipped.
    async fn request(&mut self, method: &str, params: Value) -> Result<(Value, usize)> {
        self.next_id += 1;
        let id = format!("b{}", self.next_id);
        let frame = json!({"type": "req", "id": id, "method": method, "params": params});
        self.ws.send(Message::text(frame.to_string())).await?;
        loop {
            let msg = match self.ws.next().await {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(c))) => return Err(format!("closed by peer: {c:?}").into()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => return Err("connection closed".into()),
            };
            let v: Value = serde_json::from_str(msg.as_str())?;
            if v["type"] == "res" && v["id"] == id.as_str() {
                return Ok((v, msg.len()));
            }
        }
    }

    async fn call(&mut self, method: &str) -> Result<usize> {
        let (v, size) = self.request(method, json!({})).await?;
        if v["ok"] != true {
            return Err(format!("{method} failed: {}", v["error"]).into());
        }
        Ok(size)
    }
}

/// One connection's samples for the latency loop.
struct Loop {
    conn: Conn,
    method: String,
    samples: Vec<Duration>,
    busy: Duration,
    size: usize,
}

impl Loop {
    async fn open(url: &str, token: &str, method: &str, warmup: usize) -> Result<Loop> {
        let mut conn = Conn::open(url, token).await?;
        let mut size = 0;
        for _ in 0..warmup {
            size = conn.call(method).await?;
        }
        Ok(Loop {
            conn,
            method: method.to_string(),
            samples: Vec::new(),
            busy: Duration::ZERO,
            size,
        })
    }

    async fn measure(&mut self, n: usize) -> Result<()> {
        let t0 = Instant::now();
        for _ in 0..n {
            let s = Instant::now();
            self.size = self.conn.call(&self.method).await?;
            self.samples.push(s.elapsed());
        }
        self.busy += t0.elapsed();
        Ok(())
    }

    fn stats(&mut self) -> Stats {
        stats(&mut self.samples, self.busy)
    }
}

// ------------------------------------------------------------------ baseline server

/// A bare tokio-tungstenite server on its own thread and runtime (as the gateway is
/// its own process): it sends a challenge, accepts `connect`, and answers every
/// other request with a `res` frame of `response_bytes` bytes. Returns its URL and a
/// handle that stops it.
fn start_baseline(response_bytes: usize) -> Result<(String, oneshot::Sender<()>)> {
    let listener = StdListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let url = format!("ws://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("baseline runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("baseline listener");
            let serve = async {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(baseline_conn(stream, response_bytes));
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = stop_rx => {}
            }
        });
    });
    Ok((url, stop_tx))
}

async fn baseline_conn(stream: TcpStream, response_bytes: usize) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let challenge =
        r#"{"type":"event","event":"connect.challenge","payload":{"nonce":"baseline","ts":0}}"#;
    if ws.send(Message::text(challenge)).await.is_err() {
        return;
    }
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(t) = msg else { continue };
        let Ok(req) = serde_json::from_str::<Value>(t.as_str()) else {
            continue;
        };
        let id = req["id"].as_str().unwrap_or_default();
        let reply = if req["method"] == "connect" {
            json!({"type": "res", "id": id, "ok": true,
                   "payload": {"type": "hello-ok", "protocol": 4}})
            .to_string()
        } else {
            let base = json!({"type": "res", "id": id, "ok": true,
                              "payload": {"ok": true, "pad": ""}})
            .to_string();
            let pad = "x".repeat(response_bytes.saturating_sub(base.len()));
            json!({"type": "res", "id": id, "ok": true,
                   "payload": {"ok": true, "pad": pad}})
            .to_string()
        };
        if ws.send(Message::text(reply)).await.is_err() {
            return;
        }
    }
}

// ------------------------------------------------------------------ idle connections

type Probe = oneshot::Sender<Result<()>>;

/// Holds one authenticated connection open; reads (so pings are answered and events
/// drained) until asked to make a `health` call or the socket closes.
async fn idle_conn(mut c: Conn, mut probes: mpsc::Receiver<Probe>) {
    loop {
        tokio::select! {
            msg = c.ws.next() => match msg {
                Some(Ok(_)) => {}
                _ => return,
            },
            probe = probes.recv() => match probe {
                Some(reply) => {
                    let r = c.call("health").await.map(|_| ());
                    let failed = r.is_err();
                    let _ = reply.send(r);
                    if failed {
                        return;
                    }
                }
                None => {
                    let _ = c.ws.close(None).await;
                    return;
                }
            },
        }
    }
}

/// Asks every held connection for one `health` call, `chunk` at a time; returns the failures.
async fn check_all(holders: &[mpsc::Sender<Probe>], chunk: usize) -> usize {
    let mut failed = 0;
    for group in holders.chunks(chunk.max(1)) {
        let mut waits = Vec::with_capacity(group.len());
        for h in group {
            let (tx, rx) = oneshot::channel();
            if h.send(tx).await.is_err() {
                failed += 1;
                continue;
            }
            waits.push(rx);
        }
        for w in waits {
            if !matches!(w.await, Ok(Ok(()))) {
                failed += 1;
            }
        }
    }
    failed
}

// ------------------------------------------------------------------ run

fn kb(v: u64) -> String {
    format!("{:.1} MB", v as f64 / 1024.0)
}

async fn run(a: RunArgs) -> Result<()> {
    let pid = (a.pid != 0).then_some(a.pid);
    let mut table: Vec<(String, String)> = Vec::new();

    // Idle memory first, before this client has opened anything.
    let idle = pid.and_then(mem);
    if let Some(m) = idle {
        figure("idle_rss_kb", m.rss_kb);
        figure("idle_tree_rss_kb", m.tree_rss_kb);
        figure("idle_threads", m.threads);
        table.push((
            "idle RSS".into(),
            format!(
                "{} ({} threads; with children {})",
                kb(m.rss_kb),
                m.threads,
                kb(m.tree_rss_kb)
            ),
        ));
    }

    // Handshake time on a fresh connection.
    let t = Instant::now();
    let c = Conn::open(&a.url, &a.token).await?;
    let hs = t.elapsed();
    drop(c);
    figure("handshake_ms", format!("{:.2}", hs.as_secs_f64() * 1e3));
    table.push((
        "handshake (connect → hello-ok)".into(),
        format!("{:.2} ms", hs.as_secs_f64() * 1e3),
    ));

    // Latency: the gateway and the baseline server (same client loop, same response
    // size), measured in interleaved blocks so that load changes on a shared machine
    // hit both alike.
    let row = |s: &Stats| {
        format!(
            "p50 {:.3} · p90 {:.3} · p99 {:.3} · max {:.2} ms · {:.0} rps",
            s.p50, s.p90, s.p99, s.max, s.rps
        )
    };
    let mut gl = Loop::open(&a.url, &a.token, &a.method, a.warmup.max(1)).await?;
    let mut baseline = None;
    if !a.no_baseline {
        let (url, stop) = start_baseline(gl.size)?;
        baseline = Some((
            Loop::open(&url, "baseline", "health", a.warmup.max(1)).await?,
            stop,
        ));
    }
    let rounds = a.rounds.clamp(1, a.n.max(1));
    for r in 0..rounds {
        let k = a.n / rounds + usize::from(r < a.n % rounds);
        gl.measure(k).await?;
        if let Some((bl, _)) = baseline.as_mut() {
            bl.measure(k).await?;
        }
    }
    let g = gl.stats();
    let size = gl.size;
    for (k, v) in [
        ("p50", g.p50),
        ("p90", g.p90),
        ("p99", g.p99),
        ("max", g.max),
        ("mean", g.mean),
    ] {
        figure(&format!("{}_{k}_ms", a.method), format!("{v:.3}"));
    }
    figure(&format!("{}_rps", a.method), format!("{:.0}", g.rps));
    figure(&format!("{}_response_bytes", a.method), size);
    table.push((
        format!("{} × {} sequential ({} B reply)", a.method, a.n, size),
        row(&g),
    ));
    if let Some((mut bl, stop)) = baseline {
        let b = bl.stats();
        let bsize = bl.size;
        let _ = bl.conn.ws.close(None).await;
        let _ = stop.send(());
        for (k, v) in [
            ("p50", b.p50),
            ("p90", b.p90),
            ("p99", b.p99),
            ("max", b.max),
        ] {
            figure(&format!("baseline_{k}_ms"), format!("{v:.3}"));
        }
        figure("baseline_rps", format!("{:.0}", b.rps));
        figure("p50_ratio_vs_baseline", format!("{:.2}", g.p50 / b.p50));
        table.push((
            format!("baseline tokio-tungstenite server ({bsize} B reply)"),
            row(&b),
        ));
        table.push((
            "p50 ratio gateway / baseline".into(),
            format!("{:.2}×", g.p50 / b.p50),
        ));
    }
    let _ = gl.conn.ws.close(None).await;

    // Connection churn: handshake + one health call + close, sequentially. Before the
    // connection levels, whose freed memory would otherwise show as a negative trend.
    if a.churn > 0 {
        let before = pid.and_then(mem);
        let t = Instant::now();
        for _ in 0..a.churn {
            let mut c = Conn::open(&a.url, &a.token).await?;
            c.call("health").await?;
            let _ = c.ws.close(None).await;
            // Read until the close completes so the server sees a clean close.
            while let Some(Ok(_)) = c.ws.next().await {}
        }
        let secs = t.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut cell = format!("{} cycles in {secs:.1} s", a.churn);
        if let (Some(b), Some(m)) = (before, pid.and_then(mem)) {
            let per = (m.rss_kb as f64 - b.rss_kb as f64) / a.churn as f64;
            figure("churn_rss_before_kb", b.rss_kb);
            figure("churn_rss_after_kb", m.rss_kb);
            figure("churn_rss_per_cycle_kb", format!("{per:.1}"));
            cell = format!(
                "{} → {} ({per:.1} KB per cycle); {cell}",
                kb(b.rss_kb),
                kb(m.rss_kb)
            );
        }
        table.push((
            format!("RSS over {} connect/health/close cycles", a.churn),
            cell,
        ));
    }

    // Idle authenticated connections, opened `batch` at a time.
    let mut levels: Vec<usize> = a.levels.iter().copied().filter(|&l| l > 0).collect();
    levels.sort_unstable();
    let mut holders: Vec<mpsc::Sender<Probe>> = Vec::new();
    let base = pid.and_then(mem);
    let mut keys: Vec<SigningKey> = Vec::new();
    let mut base = base;
    for level in levels {
        if a.identity == Identity::Paired {
            // Pair the identities first (connect once, close), so the level
            // measures known devices reconnecting.
            while keys.len() < level {
                let key = new_key();
                let c = Conn::open_as(&a.url, &a.token, Some(&key)).await?;
                let mut ws = c.ws;
                let _ = ws.close(None).await;
                while let Some(Ok(_)) = ws.next().await {}
                keys.push(key);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            if holders.is_empty() {
                base = pid.and_then(mem);
            }
        }
        let t = Instant::now();
        while holders.len() < level {
            let k = a.batch.max(1).min(level - holders.len());
            let first = holders.len();
            let chosen: Vec<Option<SigningKey>> = (first..first + k)
                .map(|i| match a.identity {
                    Identity::None => None,
                    Identity::Paired => keys.get(i).cloned(),
                    Identity::New => Some(new_key()),
                })
                .collect();
            let opens = chosen
                .iter()
                .map(|key| Conn::open_as(&a.url, &a.token, key.as_ref()));
            for r in futures_util::future::join_all(opens).await {
                let c = r.map_err(|e| format!("opening connection #{}: {e}", holders.len() + 1))?;
                let (tx, rx) = mpsc::channel(1);
                tokio::spawn(idle_conn(c, rx));
                holders.push(tx);
            }
        }
        let open_ms = t.elapsed().as_secs_f64() * 1e3;
        tokio::time::sleep(Duration::from_secs(a.settle)).await;
        let failed = check_all(&holders, 100).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        figure(&format!("conns_{level}_open_ms"), format!("{open_ms:.0}"));
        figure(&format!("conns_{level}_health_failed"), failed);
        let mut cell = format!(
            "opened in {open_ms:.0} ms; {} of {level} answered health",
            level - failed
        );
        if let (Some(m), Some(b)) = (pid.and_then(mem), base) {
            let per = (m.rss_kb as f64 - b.rss_kb as f64) / level as f64;
            figure(&format!("conns_{level}_rss_kb"), m.rss_kb);
            figure(&format!("conns_{level}_tree_rss_kb"), m.tree_rss_kb);
            figure(&format!("conns_{level}_per_conn_kb"), format!("{per:.1}"));
            cell = format!(
                "{} ({per:.1} KB per connection; {} threads); {cell}",
                kb(m.rss_kb),
                m.threads
            );
        }
        let kind = match a.identity {
            Identity::None => "",
            Identity::Paired => " (paired device identities)",
            Identity::New => " (each a newly paired device)",
        };
        table.push((format!("RSS with {level} idle connections{kind}"), cell));
    }
    drop(holders);
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Some(m) = pid.and_then(mem) {
        figure("after_close_rss_kb", m.rss_kb);
        table.push(("RSS after closing them".into(), kb(m.rss_kb)));
    }

    println!();
    println!("| {} ({}) | |", a.label, a.url);
    println!("|---|---|");
    for (k, v) in table {
        println!("| {k} | {v} |");
    }
    Ok(())
}

// ------------------------------------------------------------------ disk

/// `chat.send` once, with a fresh idempotency key; returns the time to its ack.
async fn chat_send(conn: &mut Conn, session: &str, n: u64) -> Result<Duration> {
    let t = Instant::now();
    let (v, _) = conn
        .request(
            "chat.send",
            json!({"sessionKey": session, "message": format!("bench message {n}"),
                   "idempotencyKey": format!("{}-{n}", pinclaw::ids::uuid_v4())}),
        )
        .await?;
    if v["ok"] != true {
        return Err(format!("chat.send failed: {}", v["error"]).into());
    }
    Ok(t.elapsed())
}

async fn disk(a: DiskArgs) -> Result<()> {
    // Phase 1: health on an idle connection while another writes steadily.
    let mut writer = Conn::open(&a.url, &a.token).await?;
    let mut prober = Conn::open(&a.url, &a.token).await?;
    let deadline = Instant::now() + Duration::from_secs(a.secs);
    let period = Duration::from_secs_f64(1.0 / f64::from(a.rate.max(1)));
    let write = async {
        let mut acks = Vec::new();
        let mut tick = tokio::time::interval(period);
        let mut n = 0;
        while Instant::now() < deadline {
            tick.tick().await;
            n += 1;
            acks.push(chat_send(&mut writer, "bench-disk", n).await?);
        }
        Ok::<_, BoxError>(acks)
    };
    let probe = async {
        let mut samples = Vec::new();
        let t0 = Instant::now();
        while Instant::now() < deadline {
            let s = Instant::now();
            prober.call("health").await?;
            samples.push(s.elapsed());
        }
        Ok::<_, BoxError>((samples, t0.elapsed()))
    };
    let (acks, probed) = tokio::join!(write, probe);
    let mut acks = acks?;
    let (mut samples, wall) = probed?;
    let h = stats(&mut samples, wall);
    let ack = stats(&mut acks, Duration::from_secs(a.secs));
    for (k, v) in [("p50", h.p50), ("p99", h.p99), ("max", h.max)] {
        figure(&format!("{}_health_{k}_ms", a.label), format!("{v:.3}"));
    }
    for (k, v) in [("p50", ack.p50), ("p99", ack.p99)] {
        figure(
            &format!("{}_chat_send_ack_{k}_ms", a.label),
            format!("{v:.3}"),
        );
    }
    // Phase 2: acknowledged chat.send per second, clients back to back.
    let mut clients = Vec::new();
    for _ in 0..a.clients.max(1) {
        clients.push(Conn::open(&a.url, &a.token).await?);
    }
    let deadline = Instant::now() + Duration::from_secs(a.burst_secs);
    let t0 = Instant::now();
    let runs = clients
        .into_iter()
        .enumerate()
        .map(|(c, mut conn)| async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                chat_send(&mut conn, &format!("bench-burst-{c}"), n).await?;
            }
            Ok::<u64, BoxError>(n)
        });
    let mut total = 0;
    for r in futures_util::future::join_all(runs).await {
        total += r?;
    }
    let per_sec = total as f64 / t0.elapsed().as_secs_f64();
    figure(&format!("{}_acks_per_s", a.label), format!("{per_sec:.0}"));
    println!(
        "| {} | health on an idle connection while chat.send runs at {}/s: p50 {:.3} · p99 {:.3} · max {:.2} ms; chat.send ack p50 {:.1} ms; {} clients back to back: {per_sec:.0} acks/s |",
        a.label, a.rate, h.p50, h.p99, h.max, ack.p50, a.clients
    );
    Ok(())
}
