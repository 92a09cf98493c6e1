//! Writes to outputs: a typed [`WriteRequest`] is validated against the
//! device table into a [`PlannedWrite`] (which says whether an operator must
//! approve it), then executed on the pin I/O thread under the output's rate
//! limit and the write-generation rule: a later write wins over a running
//! pulse, and a pulse does not switch off at its end if anything wrote to
//! the output meanwhile.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::devices::declared;
use super::error::BoardError;
use super::hal::{Board, Level};
use super::profile::{self, BoardSpec, Device, DeviceKind};
use super::worker::Lane;
use crate::limits::MAX_PULSE_MS;

/// What to do to an output.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteRequest {
    /// Switch a digital output on (active) or off; active-low wiring is
    /// handled.
    Set {
        /// Device name.
        name: String,
        /// `true` = on.
        on: bool,
    },
    /// Switch a digital output on for `ms` milliseconds
    /// (1..=[`MAX_PULSE_MS`]), then off.
    Pulse {
        /// Device name.
        name: String,
        /// Pulse length.
        ms: u64,
    },
    /// Set a PWM output's duty cycle and, optionally, its frequency.
    Pwm {
        /// Device name.
        name: String,
        /// Duty cycle, 0.0..=1.0.
        duty: f64,
        /// Frequency in Hz; `None` = the device's configured frequency.
        hz: Option<f64>,
    },
}

impl WriteRequest {
    /// The device the request is aimed at.
    pub fn device(&self) -> &str {
        match self {
            WriteRequest::Set { name, .. }
            | WriteRequest::Pulse { name, .. }
            | WriteRequest::Pwm { name, .. } => name,
        }
    }
}

/// A validated write, ready to execute on the table that planned it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedWrite {
    device: String,
    confirm: bool,
    op: WriteOp,
}

/// The hardware side of a planned write.
#[derive(Debug, Clone, Copy, PartialEq)]
enum WriteOp {
    Set { pin: u8, on: bool, level: Level },
    Pulse { pin: u8, ms: u64, active: Level },
    Pwm { pin: u8, duty: f64, hz: f64 },
}

impl PlannedWrite {
    /// The output device.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Whether the output is declared `confirm = true`, so an operator must
    /// approve this write before it is executed.
    pub fn needs_confirmation(&self) -> bool {
        self.confirm
    }

    /// One line naming the device and what the write does, for an
    /// operator: `relay1 = on`, `relay1 for 750 ms`, `fan duty 0.5 at
    /// 25000 Hz` (callers prefix their own name for the action).
    pub fn summary(&self) -> String {
        let device = &self.device;
        match self.op {
            WriteOp::Set { on, .. } => format!("{device} = {}", if on { "on" } else { "off" }),
            WriteOp::Pulse { ms, .. } => format!("{device} for {ms} ms"),
            WriteOp::Pwm { duty, hz, .. } => format!("{device} duty {duty} at {hz} Hz"),
        }
    }
}

/// What an executed write did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum WriteOutcome {
    /// A digital output was switched.
    Switched {
        /// Device name.
        name: String,
        /// Its logical state now: `true` = on.
        value: bool,
    },
    /// A pulse ran to its end.
    Pulsed {
        /// Device name.
        name: String,
        /// Pulse length.
        ms: u64,
        /// Something else wrote to the output during the pulse, so the pulse
        /// left it as that write set it instead of switching it off.
        superseded: bool,
    },
    /// A PWM output was set.
    PwmSet {
        /// Device name.
        name: String,
        /// Duty cycle now.
        duty: f64,
        /// Frequency now.
        hz: f64,
    },
}

/// The logical state `active` as a level on a pin wired `active_low`.
pub(super) fn level_for(active: bool, active_low: bool) -> Level {
    Level::from_bool(active != active_low)
}

/// Validates `request` against the declared devices.
/// Validates a write against the declared devices (see [`PlannedWrite`]).
pub fn plan(spec: &BoardSpec, request: &WriteRequest) -> Result<PlannedWrite, BoardError> {
    let device = declared(spec, request.device())?;
    let op = match *request {
        WriteRequest::Set { on, .. } => {
            let (pin, active_low) = output_pin(device)?;
            let level = level_for(on, active_low);
            WriteOp::Set { pin, on, level }
        }
        WriteRequest::Pulse { ms, .. } => {
            if !(1..=MAX_PULSE_MS).contains(&ms) {
                return Err(BoardError::pulse_out_of_range(ms.to_string()));
            }
            let (pin, active_low) = output_pin(device)?;
            let active = level_for(true, active_low);
            WriteOp::Pulse { pin, ms, active }
        }
        WriteRequest::Pwm { duty, hz, .. } => {
            let DeviceKind::Pwm {
                pin, hz: default, ..
            } = device.kind
            else {
                return Err(BoardError::NotPwm {
                    name: device.name.clone(),
                    kind: device.kind.name(),
                });
            };
            if !(0.0..=1.0).contains(&duty) {
                return Err(BoardError::OutOfRange {
                    field: "duty",
                    value: duty.to_string(),
                    range: "0.0..=1.0",
                });
            }
            let hz = hz.unwrap_or(default);
            if !(hz > 0.0 && hz <= profile::MAX_PWM_HZ) {
                return Err(BoardError::OutOfRange {
                    field: "hz",
                    value: hz.to_string(),
                    range: "(0, 1000000]",
                });
            }
            WriteOp::Pwm { pin, duty, hz }
        }
    };
    let confirm = matches!(
        device.kind,
        DeviceKind::Output { confirm: true, .. } | DeviceKind::Pwm { confirm: true, .. }
    );
    Ok(PlannedWrite {
        device: device.name.clone(),
        confirm,
        op,
    })
}

/// The pin and polarity of an output device, or `NOT_AN_OUTPUT`.
fn output_pin(device: &Device) -> Result<(u8, bool), BoardError> {
    match &device.kind {
        DeviceKind::Output {
            pin, active_low, ..
        } => Ok((*pin, *active_low)),
        other => Err(BoardError::NotAnOutput {
            name: device.name.clone(),
            kind: other.name(),
        }),
    }
}

/// A token bucket refilled continuously: `capacity` writes per minute.
#[derive(Debug)]
struct TokenBucket {
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(per_minute: u32) -> Self {
        TokenBucket {
            capacity: per_minute as f64,
            tokens: per_minute as f64,
            last: Instant::now(),
        }
    }

    /// Takes one token, or returns how long until one is available.
    fn take(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        let rate_per_s = self.capacity / 60.0;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate_per_s).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / rate_per_s;
            Err(Duration::from_secs_f64(wait.max(0.001)))
        }
    }

    /// Returns one token taken by [`TokenBucket::take`].
    fn refund(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.capacity);
    }
}

/// Locks a mutex, carrying on past a poisoned one (the data is a counter or
/// a bucket, valid whatever panicked).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The write state of one output.
#[derive(Debug)]
struct Output {
    /// Write generation, held while writing: every write bumps it, and a
    /// pulse only switches off at its end if nothing wrote in between.
    generation: Mutex<u64>,
    /// The rate limit; `None` = unlimited.
    bucket: Option<Mutex<TokenBucket>>,
}

impl Output {
    fn take_token(&self, name: &str) -> Result<(), BoardError> {
        let Some(bucket) = &self.bucket else {
            return Ok(());
        };
        lock(bucket).take().map_err(|wait| BoardError::RateLimited {
            name: name.to_string(),
            retry_after_ms: wait.as_millis().max(1) as u64,
        })
    }

    fn refund_token(&self) {
        if let Some(bucket) = &self.bucket {
            lock(bucket).refund();
        }
    }
}

/// The outputs of a device table and their write state.
#[derive(Debug, Default)]
pub(super) struct Outputs(BTreeMap<String, Arc<Output>>);

impl Outputs {
    /// Adds output `name` allowing `per_minute` writes a minute (0 =
    /// unlimited).
    pub(super) fn add(&mut self, name: &str, per_minute: u32) {
        let output = Output {
            generation: Mutex::new(0),
            bucket: (per_minute > 0).then(|| Mutex::new(TokenBucket::new(per_minute))),
        };
        self.0.insert(name.to_string(), Arc::new(output));
    }

    /// Executes `plan` on `io` (the pin I/O lane). A pulse runs in its own
    /// task: once started it switches off at its end even if the caller
    /// goes away, and its off-edge waits for room on a full queue rather
    /// than being refused, so it always ends.
    pub(super) async fn execute(
        &self,
        board: &Arc<dyn Board>,
        io: &Lane,
        plan: PlannedWrite,
    ) -> Result<WriteOutcome, BoardError> {
        let name = plan.device;
        let output = self
            .0
            .get(&name)
            .ok_or_else(|| BoardError::Hardware(format!("output `{name}` is not set up")))?;
        output.take_token(&name)?;
        let output = Arc::clone(output);
        let board = Arc::clone(board);
        match plan.op {
            WriteOp::Set { pin, on, level } => {
                write_now(io, &output, board, move |b| b.gpio_write(pin, level)).await?;
                Ok(WriteOutcome::Switched { name, value: on })
            }
            WriteOp::Pwm { pin, duty, hz } => {
                write_now(io, &output, board, move |b| b.pwm_set(pin, duty, hz)).await?;
                Ok(WriteOutcome::PwmSet { name, duty, hz })
            }
            WriteOp::Pulse { pin, ms, active } => {
                let io = io.clone();
                let pulse = tokio::spawn(async move {
                    let on = Arc::clone(&board);
                    let mine =
                        write_now(&io, &output, on, move |b| b.gpio_write(pin, active)).await?;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    io.run_when_free(move || {
                        let generation = lock(&output.generation);
                        if *generation != mine {
                            return Ok(true);
                        }
                        board.gpio_write(pin, active.toggled())?;
                        Ok(false)
                    })
                    .await
                });
                let superseded = pulse
                    .await
                    .map_err(|e| BoardError::Hardware(format!("pulse task failed: {e}")))??;
                Ok(WriteOutcome::Pulsed {
                    name,
                    ms,
                    superseded,
                })
            }
        }
    }
}

/// Runs one write of `output` on the pin I/O lane and returns the write's
/// generation. Every write holds the output's generation lock while it writes
/// and bumps it, so a later write always wins over a running pulse: an
/// operator's "off" during a pulse takes effect at once and the pulse does
/// not switch anything at its end. A write refused as busy gives its rate
/// token back, since nothing was done.
async fn write_now(
    io: &Lane,
    output: &Arc<Output>,
    board: Arc<dyn Board>,
    write: impl FnOnce(&dyn Board) -> Result<(), BoardError> + Send + 'static,
) -> Result<u64, BoardError> {
    let out = Arc::clone(output);
    let written = io
        .run(move || {
            let mut generation = lock(&out.generation);
            *generation += 1;
            write(board.as_ref())?;
            Ok(*generation)
        })
        .await;
    if let Err(BoardError::Busy { .. }) = written {
        output.refund_token();
    }
    written
}
