//! Provider-layer figures: time to first token against the fake provider
//! compared with a raw socket read, and memory per concurrent streaming turn.
//!
//! `cargo run --release --example provider_bench` (prints figures, never fails
//! on timing). The fake runs in a child process so its threads do not count
//! in the memory figure.

#[path = "../tests/support/fake_provider.rs"]
mod fake_provider;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fake_provider::{FakeProvider, Reply, Step};
use pinclaw::provider::{
    Abort, ApiKind, Message, ProviderConfig, Providers, StreamEvent, TurnRequest,
};

const TTFT_RUNS: usize = 300;
const CONCURRENT_TURNS: usize = 64;

fn serve(mode: &str) {
    let fake = FakeProvider::start();
    let reply = match mode {
        "stall" => {
            Reply::fixture("openai_text.sse").cut_after(2, Step::Sleep(Duration::from_secs(60)))
        }
        _ => Reply::fixture("openai_text.sse"),
    };
    fake.set_default(reply);
    println!("{}", fake.addr().port());
    let _ = std::io::stdout().flush();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink); // until the parent goes away
}

fn spawn_fake(mode: &str) -> (Child, u16) {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args(["serve", mode])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn fake");
    let mut line = String::new();
    let out = child.stdout.take().expect("stdout");
    BufReader::new(out).read_line(&mut line).expect("port");
    (child, line.trim().parse().expect("port number"))
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn request() -> TurnRequest {
    TurnRequest {
        system: Some("You run on a Raspberry Pi gateway.".into()),
        messages: vec![Message::User {
            content: "hello".into(),
        }],
        tools: Vec::new(),
        max_tokens: Some(64),
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p) as usize]
}

fn raw_ttft(port: u16, body: &[u8]) -> Duration {
    let t = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write");
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    while !buf.windows(5).any(|w| w == b"Pi is") {
        let n = s.read(&mut tmp).expect("read");
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    t.elapsed()
}

async fn provider_ttft(p: &Providers) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let t = Instant::now();
    let req = request();
    let abort = Abort::new();
    let turn = p.run_turn("fake/gpt-fixture", &[], &req, tx, &abort);
    let first = async {
        let mut first = None;
        while let Some(e) = rx.recv().await {
            if first.is_none() && matches!(e, StreamEvent::TextDelta { .. }) {
                first = Some(t.elapsed());
            }
        }
        first
    };
    let (r, first) = tokio::join!(turn, first);
    r.expect("turn");
    first.expect("text")
}

fn providers(port: u16) -> Providers {
    let cfg = ProviderConfig::new(
        "fake",
        ApiKind::OpenAiChat,
        &format!("http://127.0.0.1:{port}/v1"),
    );
    Providers::new(vec![cfg]).expect("providers")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        serve(args.get(2).map(String::as_str).unwrap_or("text"));
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");

    // time to first token
    let (mut child, port) = spawn_fake("text");
    let p = providers(port);
    let body = serde_json::to_vec(&serde_json::json!({"model": "gpt-fixture", "stream": true,
        "messages": [{"role": "user", "content": "hello"}]}))
    .expect("json");
    let mut raw = Vec::new();
    let mut prov = Vec::new();
    rt.block_on(async {
        for _ in 0..20 {
            raw_ttft(port, &body);
            provider_ttft(&p).await;
        }
        for _ in 0..TTFT_RUNS {
            raw.push(raw_ttft(port, &body));
            prov.push(provider_ttft(&p).await);
        }
    });
    let (r50, r90) = (pct(&mut raw, 0.5), pct(&mut raw, 0.9));
    let (p50, p90) = (pct(&mut prov, 0.5), pct(&mut prov, 0.9));
    println!("time to first token over loopback, {TTFT_RUNS} runs (new connection each):");
    println!("  raw socket read      p50 {r50:>10.1?}  p90 {r90:>10.1?}");
    println!("  provider layer       p50 {p50:>10.1?}  p90 {p90:>10.1?}");
    println!(
        "  overhead             p50 {:>10.1?}",
        p50.saturating_sub(r50)
    );
    drop(child.stdin.take());
    let _ = child.wait();

    // memory per concurrent streaming turn
    let (mut child, port) = spawn_fake("stall");
    let p = Arc::new(providers(port));
    rt.block_on(async {
        // warm up: one full turn path (allocator arenas, lazy statics)
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let abort = Abort::new();
        let a2 = abort.clone();
        let req = request();
        let warm = p.run_turn("fake/gpt-fixture", &[], &req, tx, &abort);
        let stop = async move {
            rx.recv().await; // the first text delta
            a2.abort();
        };
        let (r, ()) = tokio::join!(warm, stop);
        if !matches!(r, Err(pinclaw::provider::TurnError::Aborted)) {
            eprintln!("warm-up turn: unexpected {r:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;

        let before = rss_kib();
        let started = Arc::new(AtomicUsize::new(0));
        let aborts: Vec<Abort> = (0..CONCURRENT_TURNS).map(|_| Abort::new()).collect();
        let mut tasks = Vec::new();
        for abort in &aborts {
            let p = p.clone();
            let abort = abort.clone();
            let started = started.clone();
            tasks.push(tokio::spawn(async move {
                let (tx, mut rx) = tokio::sync::mpsc::channel(64);
                let req = request();
                let reader = tokio::spawn(async move {
                    let mut seen = false;
                    while let Some(e) = rx.recv().await {
                        if !seen && matches!(e, StreamEvent::TextDelta { .. }) {
                            seen = true;
                            started.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
                let r = p.run_turn("fake/gpt-fixture", &[], &req, tx, &abort).await;
                let _ = reader.await;
                if let Err(e) = r
                    && !abort.is_aborted()
                {
                    eprintln!("turn failed: {e}");
                }
            }));
        }
        let t = Instant::now();
        while started.load(Ordering::SeqCst) < CONCURRENT_TURNS
            && t.elapsed() < Duration::from_secs(20)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let during = rss_kib();
        let n = started.load(Ordering::SeqCst);
        println!("memory: {n} concurrent streaming turns (each mid-stream, blocked in a read):");
        println!("  RSS before {before} KiB, during {during} KiB");
        if n > 0 {
            println!(
                "  ≈ {:.1} KiB per turn (blocking thread + ureq agent + buffers + decoder)",
                during.saturating_sub(before) as f64 / n as f64
            );
        }
        let t = Instant::now();
        for a in &aborts {
            a.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        println!("  aborting all {n} turns took {:?}", t.elapsed());
    });
    drop(child.stdin.take());
    let _ = child.wait();
}
