//! What the benchmark harnesses share: the real gateway started with a
//! config and stopped by PID on drop, an admin client, env knobs,
//! per-process CPU/wake-up/RSS samples from /proc, percentiles, and the
//! `figure` line format (median of passes with the spread).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pinclaw::client::{Client, ClientOptions};

/// The gateway token of every bench gateway.
pub const TOKEN: &str = "bench-token-0123456789abcdef";

/// Any error.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A child process, SIGKILLed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the gateway binary (the first argument, else
/// `target/release/pinclaw`) on a free port with its state in `dir` and
/// `extra` appended to its config; returns it and its WebSocket URL once
/// it printed its ready line. Its log goes to stderr when `BENCH_LOG` is
/// set.
pub fn gateway(dir: &Path, extra: &str) -> Result<(Proc, String)> {
    let toml = format!(
        "state_dir = \"{}\"\n[gateway]\nport = 0\n[gateway.auth]\ntoken = \"{TOKEN}\"\n{extra}",
        dir.join("state").display()
    );
    let config = dir.join("pinclaw.toml");
    std::fs::write(&config, toml)?;
    let mut child = Command::new(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/release/pinclaw".into()),
    )
    .arg("gateway")
    .arg("--config")
    .arg(&config)
    .stdout(Stdio::piped())
    .stderr(if std::env::var_os("BENCH_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    })
    .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    for line in BufReader::new(stdout).lines() {
        if let Some(url) = line?.strip_prefix("pinclaw gateway ready at ") {
            return Ok((Proc(child), url.trim().to_owned()));
        }
    }
    Err("the gateway did not print its ready line".into())
}

/// An `operator.admin` client of a bench gateway.
pub async fn admin(url: &str) -> Result<Client> {
    Ok(Client::connect(
        url,
        &ClientOptions {
            token: Some(TOKEN.into()),
            scopes: vec!["operator.admin".into()],
            ..ClientOptions::default()
        },
    )
    .await?)
}

/// A number from the environment, or `default`.
pub fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// RSS in KiB (all, and private), CPU time and context switches of all
/// threads (a thread that ended between two samples is not counted).
#[derive(Clone, Copy)]
pub struct Sample {
    /// Resident set.
    pub rss_kb: u64,
    /// Private memory (heap, stacks): what the process really costs.
    pub anon_kb: u64,
    /// CPU time, all threads.
    pub cpu_ns: u64,
    /// Context switches (wake-ups), all threads.
    pub switches: u64,
    /// When.
    pub at: Instant,
}

/// A sample of process `pid`.
pub fn sample(pid: u32) -> Sample {
    let read = |p: String| std::fs::read_to_string(p).unwrap_or_default();
    let field = |text: &str, key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let status = read(format!("/proc/{pid}/status"));
    let (rss_kb, anon_kb) = (field(&status, "VmRSS:"), field(&status, "RssAnon:"));
    // Per thread: nanoseconds on a CPU (`schedstat`'s first field; the
    // clock ticks of `stat` are too coarse for an idle process) and
    // context switches.
    let (mut cpu_ns, mut switches) = (0, 0);
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let dir = task.path().display().to_string();
            let s = read(format!("{dir}/status"));
            switches +=
                field(&s, "voluntary_ctxt_switches:") + field(&s, "nonvoluntary_ctxt_switches:");
            cpu_ns += read(format!("{dir}/schedstat"))
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Sample {
        rss_kb,
        anon_kb,
        cpu_ns,
        switches,
        at: Instant::now(),
    }
}

/// (CPU %, wake-ups per second) between two samples.
pub fn rates(a: Sample, b: Sample) -> (f64, f64) {
    let secs = b.at.duration_since(a.at).as_secs_f64();
    let cpu = b.cpu_ns.saturating_sub(a.cpu_ns) as f64 / 1e9 / secs * 100.0;
    (cpu, b.switches.saturating_sub(a.switches) as f64 / secs)
}

/// The `p` quantile (0–1) of sorted values.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Print the median of per-pass values with the spread across passes.
pub fn figure(name: &str, unit: &str, mut passes: Vec<f64>) {
    passes.sort_by(|a, b| a.total_cmp(b));
    let shown: Vec<String> = passes.iter().map(|v| format!("{v:.4}")).collect();
    println!(
        "figure {name} {:.4} {unit} (median of {}; spread {:.4}–{:.4}; passes {})",
        pct(&passes, 0.5),
        passes.len(),
        passes.first().copied().unwrap_or(f64::NAN),
        passes.last().copied().unwrap_or(f64::NAN),
        shown.join(" ")
    );
}

/// Waits (polling every 5 ms) until `check` holds, at most `timeout`.
pub async fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
