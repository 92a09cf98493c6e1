//! The real `pinclaw` binary as a child process: started from a config
//! file (optionally with extra environment, e.g. an `LD_PRELOAD` fault
//! shim), its ready URL read from stdout, its RSS read from `/proc`, and
//! stopped by PID (SIGKILL on drop, or SIGTERM on request).
//!
//! Test files that include this module spawn the binary, so `.ci/run` runs
//! them natively, not under qemu (it greps for `support/process.rs`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_pinclaw");

/// A running gateway process; SIGKILLed on drop if still running.
pub struct GatewayProcess {
    child: Child,
    /// `ws://127.0.0.1:PORT`.
    pub url: String,
    /// Lines printed before the ready line.
    pub stdout_lines: Vec<String>,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `pinclaw gateway --config CONFIG` with `env` added, and wait for
/// its ready line.
pub fn start(config: &Path, env: &[(&str, &str)]) -> GatewayProcess {
    start_args(
        &["gateway".as_ref(), "--config".as_ref(), config.as_os_str()],
        env,
    )
}

/// Start `pinclaw ARGS…` (a gateway) with `env` added, and wait for its
/// ready line.
pub fn start_args(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> GatewayProcess {
    spawn(args, env, Stdio::null())
}

/// Start `pinclaw gateway --config CONFIG` with `env` added and its stderr
/// (the log) appended to `log`, and wait for its ready line.
pub fn start_logged(config: &Path, env: &[(&str, &str)], log: &Path) -> GatewayProcess {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
    spawn(
        &["gateway".as_ref(), "--config".as_ref(), config.as_os_str()],
        env,
        Stdio::from(file),
    )
}

fn spawn(args: &[&std::ffi::OsStr], env: &[(&str, &str)], stderr: Stdio) -> GatewayProcess {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("PINCLAW_GATEWAY_TOKEN")
        .env_remove("PINCLAW_STATE_DIR")
        .env_remove("PINCLAW_CONFIG")
        .stdout(Stdio::piped())
        .stderr(stderr);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let mut lines = Vec::new();
    let mut url = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap_or_default();
        if let Some(rest) = line.strip_prefix("pinclaw gateway ready at ") {
            url = rest.trim().to_owned();
            break;
        }
        lines.push(line);
    }
    assert!(!url.is_empty(), "the gateway did not start: {lines:?}");
    GatewayProcess {
        child,
        url,
        stdout_lines: lines,
    }
}

impl GatewayProcess {
    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL it and reap it (no chance to flush anything).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send SIGTERM (a graceful stop) without waiting.
    pub fn signal_term(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Its exit status, if it has exited.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM it and wait (up to 10 s) for it to exit; its exit code.
    pub fn terminate(mut self) -> Option<i32> {
        self.signal_term();
        for _ in 0..1000 {
            if let Some(status) = self.try_exit() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Resident set size in KiB (`VmRSS`).
    pub fn rss_kb(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// Write a config file for a gateway on a free loopback port with `token`,
/// its state in `dir/state`, plus `extra` TOML appended. Returns its path.
pub fn write_config(dir: &Path, token: &str, extra: &str) -> PathBuf {
    let config = dir.join("pinclaw.toml");
    let toml = format!(
        "state_dir = \"{state}\"\n[gateway]\nport = 0\n[gateway.auth]\ntoken = \"{token}\"\n{extra}\n",
        state = dir.join("state").display(),
    );
    std::fs::write(&config, toml).unwrap_or_else(|e| panic!("config: {e}"));
    config
}

/// Whether the `CI` variable is set (a missing tool is then a failure).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Skip with a printed reason, or fail under CI, where `.ci/run` installs
/// every tool a test needs.
pub fn skip(test: &str, reason: &str) {
    eprintln!("SKIPPED {test}: {reason}");
    assert!(!in_ci(), "CI is set, so {test} must run: {reason}");
}

/// Build the fsync-delay shim (`tests/support/fsync_delay.c`) into `dir`
/// with the system C compiler; `None` (with the reason) when there is none.
pub fn build_fsync_shim(dir: &Path) -> Result<PathBuf, String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fsync_delay.c");
    let out = dir.join("fsync_delay.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let built = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&out)
        .arg(&source)
        .arg("-ldl")
        .output()
        .map_err(|e| format!("no C compiler ({cc}): {e}"))?;
    if !built.status.success() {
        return Err(format!(
            "{cc} failed: {}",
            String::from_utf8_lossy(&built.stderr)
        ));
    }
    Ok(out)
}

/// [`write_config`] with the fake provider at `base_url` as model `fake/m`
/// and `agent` appended to the `[agent]` table.
pub fn write_fake_provider_config(dir: &Path, token: &str, base_url: &str, agent: &str) -> PathBuf {
    write_config(
        dir,
        token,
        &format!(
            "[[providers]]\nid = \"fake\"\napi = \"openai-chat\"\nbase_url = \"{base_url}/v1\"\n[[providers.models]]\nid = \"m\"\ncontext_window = 1000000\n[agent]\nmodel = \"fake/m\"\n{agent}\n"
        ),
    )
}
