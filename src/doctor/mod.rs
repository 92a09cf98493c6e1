//! `pinclaw doctor`: every check that tells a Pi owner what is wrong, each
//! with a fix when it fails. Run by the command line (`src/cli/doctor.rs`
//! prints the [`Report`]); reuses the code the gateway runs, never a copy:
//! the config through [`crate::app::check_config`], the board profile
//! through [`crate::board::profile::resolve`], sensors through
//! [`crate::board::sensors::reading`], providers through
//! [`crate::provider::probe`], Telegram through its Bot API client, the
//! broker through [`crate::mqtt::check`], Home Assistant through its
//! connection.
//!
//! - [`board`]: which board and profile, every declared sensor read once,
//!   the firmware's under-voltage and throttling flags.
//! - [`access`]: the device files the profile needs (`/dev/gpiochip*`,
//!   `/dev/i2c-N`, 1-Wire, PWM), with the `config.txt` line or the group
//!   that is missing.
//! - [`host`]: the clock (TLS needs it) and the state directory's disk.
//! - [`remote`]: each provider's key, each channel's token, the MQTT
//!   broker, Home Assistant.
//!
//! Checks that wait on something (a sensor, the network) run on threads of
//! their own, side by side, each bounded by [`limits::DOCTOR_CHECK_TIMEOUT`];
//! one that has not answered by then fails as such, so a dead provider
//! never holds the doctor up. The doctor never opens the state database
//! (the running gateway holds it) and never switches an output. No secret
//! reaches a detail: keys and tokens are redacted by the code that sends
//! them.

pub mod access;
pub mod board;
pub mod host;
pub mod remote;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::config::Config;
use crate::limits;

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked (`config`, `board`, `i2c`, `sensor room`, …).
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, in one line (or a few, for several problems).
    pub detail: String,
    /// What to do about a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    /// A passed check.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            hint: None,
        }
    }

    /// A failed check, with what to do about it when there is something.
    pub fn fail(name: impl Into<String>, detail: impl Into<String>, hint: Option<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            hint,
        }
    }
}

/// Every check, in the order they are shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// `{"ok": bool, "checks": [{"name", "ok", "detail", "hint"?}, …]}`.
    pub fn to_json(&self) -> Value {
        json!({"ok": self.ok(), "checks": self.checks})
    }
}

/// What the doctor looks at.
#[derive(Debug)]
pub struct Inputs {
    /// The config file (`None`: the embedded defaults).
    pub file: Option<PathBuf>,
    /// The config with the command line's flags applied, or why the file
    /// does not load.
    pub config: Result<Config, String>,
    /// The state directory the gateway uses.
    pub state_dir: PathBuf,
    /// The longest one check may take.
    pub timeout: Duration,
}

impl Inputs {
    /// Inputs with the default timeout.
    pub fn new(file: Option<PathBuf>, config: Result<Config, String>, state_dir: PathBuf) -> Self {
        Self {
            file,
            config,
            state_dir,
            timeout: limits::DOCTOR_CHECK_TIMEOUT,
        }
    }
}

/// Run every check. Blocking; the slow ones run side by side on their own
/// threads, so this returns within about `inputs.timeout`.
pub fn run(inputs: &Inputs) -> Report {
    let started = Instant::now();
    let timeout = inputs.timeout;
    let config = match &inputs.config {
        Ok(config) => config,
        Err(e) => {
            let hint = if e.contains("ermission denied") {
                "read it as root or as a member of the pinclaw group: sudo usermod -aG pinclaw $USER, then log in again"
            } else {
                "fix the file, then run `pinclaw config check FILE`"
            };
            // Nothing else can be judged without the config.
            return Report {
                checks: vec![
                    Check::fail("config", e.clone(), Some(hint.into())),
                    host::clock(false),
                    host::disk(&inputs.state_dir),
                ],
            };
        }
    };
    let spec = crate::board::profile::resolve(&config.board);
    // The waiting kind first, so they run while the rest is looked at.
    let sensors = spec
        .as_ref()
        .ok()
        .map(|spec| board::start_reads(spec, timeout));
    let remotes = remote::start(config, timeout);

    let mut checks = vec![config_check(inputs.file.as_deref(), config)];
    let on_pi = spec
        .as_ref()
        .is_ok_and(|s| s.backend == crate::board::profile::BackendKind::Rppal);
    match &spec {
        Ok(spec) => {
            checks.push(board::detected(spec));
            checks.extend(access::check(spec));
        }
        Err(e) => checks.push(Check::fail(
            "board",
            e.to_string(),
            Some(format!(
                "set [board] profile to auto or this board's ({}), or [board] simulate = true \
                 on a machine that is not a Raspberry Pi",
                crate::board::profile::builtin_names().join(", ")
            )),
        )),
    }
    let deadline = started + timeout + COLLECT_GRACE;
    if let (Some(reads), Ok(spec)) = (sensors, &spec) {
        checks.extend(board::finish_reads(spec, reads, deadline));
    }
    checks.push(host::clock(on_pi));
    checks.push(host::disk(&inputs.state_dir));
    checks.extend(remotes.into_iter().flat_map(|p| p.wait(deadline)));
    Report { checks }
}

/// Time beyond a check's own timeout before it is given up: its own
/// timeout error says more than "no answer".
const COLLECT_GRACE: Duration = Duration::from_millis(500);

/// The config as the gateway's start would judge it.
fn config_check(file: Option<&Path>, config: &Config) -> Check {
    let source = match file {
        Some(f) => f.display().to_string(),
        None => "the embedded defaults (no --config, PINCLAW_CONFIG or /etc/pinclaw/pinclaw.toml)"
            .to_owned(),
    };
    match crate::app::check_config(config.clone(), file.map(Path::to_owned)) {
        Ok(_) => Check::pass("config", format!("{source}: ok")),
        Err(problems) => {
            let count = problems.len();
            let lines = crate::app::problem_lines(file, problems);
            Check::fail(
                "config",
                format!(
                    "{count} problem{} the gateway would refuse to start with:\n{}",
                    if count == 1 { "" } else { "s" },
                    lines.join("\n")
                ),
                Some(match file {
                    Some(f) => format!(
                        "edit {0}, then run `pinclaw config check {0}` until it says ok",
                        f.display()
                    ),
                    None => "check the command line's flags".into(),
                }),
            )
        }
    }
}

/// A check running on a thread of its own.
pub(crate) struct Pending {
    name: String,
    timeout: Duration,
    rx: mpsc::Receiver<Vec<Check>>,
}

impl Pending {
    /// Run `work` (bounded by `timeout` itself) on a new thread; its checks
    /// are collected by [`Pending::wait`] (one failed check named `name` if
    /// it does not answer in time).
    pub(crate) fn spawn(
        name: impl Into<String>,
        timeout: Duration,
        work: impl FnOnce() -> Vec<Check> + Send + 'static,
    ) -> Self {
        let name = name.into();
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("pinclaw-doctor".into())
            .stack_size(limits::CHANNEL_THREAD_STACK_BYTES)
            .spawn(move || {
                let _ = tx.send(work());
            });
        if let Err(e) = spawned {
            let (tx, failed) = mpsc::channel();
            let _ = tx.send(vec![Check::fail(
                name.clone(),
                format!("cannot start a thread for it: {e}"),
                None,
            )]);
            return Self {
                name,
                timeout,
                rx: failed,
            };
        }
        Self { name, timeout, rx }
    }

    /// The checks, or a failure if they are not done by `deadline` (the
    /// thread is left to end on its own; the process exits after the
    /// report).
    pub(crate) fn wait(self, deadline: Instant) -> Vec<Check> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(checks) => checks,
            Err(_) => vec![Check::fail(
                self.name,
                format!(
                    "no answer within {} s (hung, or unreachable)",
                    self.timeout.as_secs_f64()
                ),
                None,
            )],
        }
    }
}
