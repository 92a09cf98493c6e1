//! The board's command surface: what the node layer exposes as the local
//! node's commands (`board.info`, `sensors.list`, `sensors.read`,
//! `gpio.read`, `gpio.write`, `gpio.pulse`, `pwm.set`).
//!
//! [`LocalBoardNode`] takes JSON params and returns JSON payloads, but knows
//! nothing of frames or the gateway. It enforces the device table (only
//! declared devices can be touched), output rate limits, and approval for
//! `confirm = true` outputs: [`LocalBoardNode::invoke`] refuses those with
//! [`BoardError::ConfirmationRequired`]; the gateway asks
//! [`LocalBoardNode::confirmation`] first, obtains an operator's approval and
//! then calls [`LocalBoardNode::invoke_approved`]. Without approval the write
//! never happens.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::error::BoardError;
use super::hal::{Board, EdgeEvent, EdgeSink, Level, PinMode};
use super::profile::{self, BackendKind, BoardConfig, BoardSpec, Device, DeviceKind};
use super::sensors::reading::{SensorState, quantities, read_named};
use super::sim::SimBoard;
use super::worker::{BoardWorker, Lane};

/// The commands of the local board node.
pub const COMMANDS: &[&str] = &[
    "board.info",
    "sensors.list",
    "sensors.read",
    "gpio.read",
    "gpio.write",
    "gpio.pulse",
    "pwm.set",
];

/// Capacity of the edge event queue; when full, new events are dropped and
/// counted ([`LocalBoardNode::edge_drops`]).
pub const EDGE_QUEUE: usize = 64;

/// Longest `gpio.pulse` (fits inside the node layer's default 30 s invoke
/// timeout, so the caller sees the pulse end).
pub const MAX_PULSE_MS: u64 = 20_000;

/// I2C conversion wait on real hardware.
pub const HW_I2C_WAIT: Duration = Duration::from_millis(10);

/// Opens the backend a spec asks for.
pub fn open_board(spec: &BoardSpec) -> Result<Arc<dyn Board>, BoardError> {
    match spec.backend {
        BackendKind::Sim => Ok(Arc::new(SimBoard::for_spec(spec))),
        BackendKind::Rppal => open_rppal(spec),
    }
}

#[cfg(all(target_os = "linux", any(target_arch = "aarch64", target_arch = "arm")))]
fn open_rppal(spec: &BoardSpec) -> Result<Arc<dyn Board>, BoardError> {
    Ok(Arc::new(super::rpi::RppalBoard::new(spec)?))
}

#[cfg(not(all(target_os = "linux", any(target_arch = "aarch64", target_arch = "arm"))))]
fn open_rppal(spec: &BoardSpec) -> Result<Arc<dyn Board>, BoardError> {
    Err(BoardError::Config(
        super::error::ConfigError::BackendUnavailable {
            profile: spec.profile.name.clone(),
        },
    ))
}

/// A write that needs an operator's approval before it may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmRequest {
    /// The output device.
    pub device: String,
    /// The command (`gpio.write`, `gpio.pulse`, `pwm.set`).
    pub command: String,
    /// One line for the operator, e.g. `gpio.write relay1 = on`.
    pub summary: String,
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

    /// Returns one token taken by [`TokenBucket::take`].
    fn refund(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.capacity);
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
}

struct Output {
    /// Write generation, held while writing: every write bumps it, and a
    /// pulse only switches off at its end if nothing wrote in between.
    generation: Mutex<u64>,
    bucket: Option<Mutex<TokenBucket>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The board as a node: a device table over a [`Board`], with the command
/// surface, approvals, rate limits and edge events.
pub struct LocalBoardNode {
    board: Arc<dyn Board>,
    sim: Option<Arc<SimBoard>>,
    spec: Arc<BoardSpec>,
    sensors: Arc<SensorState>,
    outputs: BTreeMap<String, Arc<Output>>,
    /// The threads every hardware call runs on.
    worker: BoardWorker,
    events: Mutex<Option<mpsc::Receiver<EdgeEvent>>>,
    /// Keeps the event channel open while the node lives, so a board with no
    /// inputs gives a receiver that waits instead of one that is closed.
    _events_tx: mpsc::Sender<EdgeEvent>,
    drops: Arc<AtomicU64>,
    debounced: Arc<AtomicU64>,
}

impl std::fmt::Debug for LocalBoardNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBoardNode")
            .field("profile", &self.spec.profile.name)
            .field("backend", &self.board.backend())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameParams {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteParams {
    name: String,
    value: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PulseParams {
    name: String,
    ms: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PwmParams {
    name: String,
    duty: Value,
    #[serde(default)]
    hz: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

fn parse<T: DeserializeOwned>(command: &str, params: Value) -> Result<T, BoardError> {
    let params = if params.is_null() { json!({}) } else { params };
    serde_json::from_value(params)
        .map_err(|e| BoardError::invalid_params(format!("{command}: {e}")))
}

/// Reads a logical on/off value: `true`/`false`, `1`/`0`, `"on"`/`"off"`.
fn parse_on_off(v: &Value) -> Result<bool, BoardError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        Value::Number(_) => Err(BoardError::OutOfRange {
            field: "value",
            value: v.to_string(),
            range: "0 or 1",
        }),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" => Ok(false),
            _ => Err(BoardError::invalid_params(format!(
                "value `{s}` is not on/off (use true/false, 1/0 or \"on\"/\"off\")"
            ))),
        },
        _ => Err(BoardError::invalid_params(
            "value must be true/false, 1/0 or \"on\"/\"off\"",
        )),
    }
}

fn number(v: &Value, field: &'static str) -> Result<f64, BoardError> {
    v.as_f64()
        .ok_or_else(|| BoardError::invalid_params(format!("`{field}` must be a number")))
}

fn level_for(active: bool, active_low: bool) -> Level {
    Level::from_bool(active != active_low)
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

/// Runs one write of `output` on the pin I/O thread and returns the write's
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
            let mut g = lock(&out.generation);
            *g += 1;
            write(board.as_ref())?;
            Ok(*g)
        })
        .await;
    if let Err(BoardError::Busy { .. }) = written {
        output.refund_token();
    }
    written
}

/// A validated write, ready to run.
enum WriteOp {
    Set { pin: u8, active: bool, level: Level },
    Pulse { pin: u8, ms: u64, active: Level },
    Pwm { pin: u8, duty: f64, hz: f64 },
}

impl LocalBoardNode {
    /// Resolves `[board]` config, opens the backend it picks, and builds the
    /// node (see [`LocalBoardNode::new`]).
    ///
    /// On the simulated backend, the simulator stays reachable through
    /// [`LocalBoardNode::sim`] to script inputs and sensor values.
    pub fn from_config(config: &BoardConfig) -> Result<Self, BoardError> {
        let spec = profile::resolve(config)?;
        if spec.backend == BackendKind::Sim {
            let sim = Arc::new(SimBoard::for_spec(&spec));
            return LocalBoardNode::new_sim(sim, spec);
        }
        let board = open_board(&spec)?;
        LocalBoardNode::new(board, spec)
    }

    /// Builds the node over a simulator, keeping a handle on it for
    /// [`LocalBoardNode::sim`].
    pub fn new_sim(sim: Arc<SimBoard>, spec: BoardSpec) -> Result<Self, BoardError> {
        let board: Arc<dyn Board> = sim.clone();
        let mut node = LocalBoardNode::new(board, spec)?;
        node.sim = Some(sim);
        Ok(node)
    }

    /// The simulator behind this node, when it runs on the simulated backend
    /// (demos and end-to-end tests inject edges and change sensor values).
    pub fn sim(&self) -> Option<&Arc<SimBoard>> {
        self.sim.as_ref()
    }

    /// Builds the node over an opened board: configures every declared pin
    /// (outputs to their initial state, inputs with their bias) and starts
    /// watching inputs for edges.
    pub fn new(board: Arc<dyn Board>, spec: BoardSpec) -> Result<Self, BoardError> {
        let i2c_wait = if board.backend() == "sim" {
            Duration::ZERO
        } else {
            HW_I2C_WAIT
        };
        let sensors = SensorState::new(spec.devices.iter(), i2c_wait);
        LocalBoardNode::with_sensor_state(board, spec, sensors)
    }

    /// Like [`LocalBoardNode::new`] with explicit sensor state (tests use it
    /// to shorten the DHT22 interval).
    pub fn with_sensor_state(
        board: Arc<dyn Board>,
        spec: BoardSpec,
        sensors: SensorState,
    ) -> Result<Self, BoardError> {
        let worker = BoardWorker::start()?;
        let (tx, rx) = mpsc::channel(EDGE_QUEUE);
        let drops = Arc::new(AtomicU64::new(0));
        let debounced = Arc::new(AtomicU64::new(0));
        let mut outputs = BTreeMap::new();
        for d in &spec.devices {
            match &d.kind {
                DeviceKind::Output {
                    pin,
                    active_low,
                    initial,
                    max_writes_per_minute,
                    ..
                } => {
                    board.gpio_setup(*pin, PinMode::Output(level_for(*initial, *active_low)))?;
                    outputs.insert(
                        d.name.clone(),
                        Arc::new(Output::new(*max_writes_per_minute)),
                    );
                }
                DeviceKind::Pwm {
                    max_writes_per_minute,
                    ..
                } => {
                    outputs.insert(
                        d.name.clone(),
                        Arc::new(Output::new(*max_writes_per_minute)),
                    );
                }
                DeviceKind::Input {
                    pin,
                    pull,
                    edge,
                    debounce,
                    active_low,
                } => {
                    board.gpio_setup(*pin, PinMode::Input(*pull))?;
                    let sink = EdgeSink::new(
                        &d.name,
                        *edge,
                        *active_low,
                        *debounce,
                        tx.clone(),
                        Arc::clone(&drops),
                        Arc::clone(&debounced),
                    );
                    board.gpio_watch(*pin, sink)?;
                }
                _ => {}
            }
        }
        Ok(LocalBoardNode {
            board,
            sim: None,
            spec: Arc::new(spec),
            sensors: Arc::new(sensors),
            outputs,
            worker,
            events: Mutex::new(Some(rx)),
            _events_tx: tx,
            drops,
            debounced,
        })
    }

    /// The commands this node answers.
    pub fn commands(&self) -> &'static [&'static str] {
        COMMANDS
    }

    /// The resolved profile and devices.
    pub fn spec(&self) -> &BoardSpec {
        &self.spec
    }

    /// The backend.
    pub fn board(&self) -> &Arc<dyn Board> {
        &self.board
    }

    /// Takes the receiver of debounced edge events (`{device, edge, active,
    /// ts}`) to publish as node events. Only the first call gets it. The
    /// channel holds [`EDGE_QUEUE`] events; when the consumer falls behind,
    /// new events are dropped and counted. It closes when the node is dropped.
    pub fn take_events(&self) -> Option<mpsc::Receiver<EdgeEvent>> {
        match self.events.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        }
    }

    /// Edge events dropped because the queue was full.
    pub fn edge_drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }

    /// Raw edges ignored by debouncing.
    pub fn edges_debounced(&self) -> u64 {
        self.debounced.load(Ordering::Relaxed)
    }

    fn device(&self, name: &str) -> Result<&Device, BoardError> {
        self.spec
            .device(name)
            .ok_or_else(|| BoardError::UnknownDevice {
                name: name.to_string(),
            })
    }

    /// Whether `command` with `params` needs an operator's approval, and what
    /// to show them. Validates the params as `invoke` would (so a bad call
    /// fails before anyone is asked). `Ok(None)` = no approval needed.
    pub fn confirmation(
        &self,
        command: &str,
        params: &Value,
    ) -> Result<Option<ConfirmRequest>, BoardError> {
        if !matches!(command, "gpio.write" | "gpio.pulse" | "pwm.set") {
            if !COMMANDS.contains(&command) {
                return Err(BoardError::UnknownCommand {
                    command: command.to_string(),
                });
            }
            return Ok(None);
        }
        let (device, op) = self.plan_write(command, params.clone())?;
        let confirm = matches!(
            device.kind,
            DeviceKind::Output { confirm: true, .. } | DeviceKind::Pwm { confirm: true, .. }
        );
        if !confirm {
            return Ok(None);
        }
        let summary = match op {
            WriteOp::Set { active, .. } => format!(
                "gpio.write {} = {}",
                device.name,
                if active { "on" } else { "off" }
            ),
            WriteOp::Pulse { ms, .. } => format!("gpio.pulse {} for {ms} ms", device.name),
            WriteOp::Pwm { duty, hz, .. } => {
                format!("pwm.set {} duty {duty} at {hz} Hz", device.name)
            }
        };
        Ok(Some(ConfirmRequest {
            device: device.name.clone(),
            command: command.to_string(),
            summary,
        }))
    }

    /// Runs a command. Writes to `confirm = true` outputs are refused with
    /// [`BoardError::ConfirmationRequired`]; use
    /// [`LocalBoardNode::invoke_approved`] once an operator approved.
    pub async fn invoke(&self, command: &str, params: Value) -> Result<Value, BoardError> {
        if let Some(req) = self.confirmation(command, &params)? {
            return Err(BoardError::ConfirmationRequired {
                name: req.device,
                command: req.command,
            });
        }
        self.run(command, params).await
    }

    /// Runs a command whose approval (if it needed one) has been granted.
    pub async fn invoke_approved(&self, command: &str, params: Value) -> Result<Value, BoardError> {
        self.run(command, params).await
    }

    async fn run(&self, command: &str, params: Value) -> Result<Value, BoardError> {
        match command {
            "board.info" => {
                parse::<NoParams>(command, params)?;
                Ok(self.info())
            }
            "sensors.list" => {
                parse::<NoParams>(command, params)?;
                Ok(self.sensors_list())
            }
            "sensors.read" => {
                let p: NameParams = parse(command, params)?;
                let device = self.device(&p.name)?.clone();
                if !device.kind.is_sensor() {
                    return Err(BoardError::NotASensor {
                        name: device.name,
                        kind: device.kind.name(),
                    });
                }
                let board = Arc::clone(&self.board);
                let sensors = Arc::clone(&self.sensors);
                let reading = self
                    .worker
                    .sensors()
                    .run(move || read_named(board.as_ref(), &device, &sensors))
                    .await?;
                serde_json::to_value(reading)
                    .map_err(|e| BoardError::Hardware(format!("encoding reading: {e}")))
            }
            "gpio.read" => {
                let p: NameParams = parse(command, params)?;
                let device = self.device(&p.name)?;
                let (pin, active_low) = match &device.kind {
                    DeviceKind::Output {
                        pin, active_low, ..
                    }
                    | DeviceKind::Input {
                        pin, active_low, ..
                    } => (*pin, *active_low),
                    other => {
                        return Err(BoardError::NotAPin {
                            name: device.name.clone(),
                            kind: other.name(),
                        });
                    }
                };
                let board = Arc::clone(&self.board);
                let level = self.worker.io().run(move || board.gpio_read(pin)).await?;
                Ok(json!({
                    "name": device.name,
                    "value": level.is_high() != active_low,
                    "level": level,
                }))
            }
            "gpio.write" | "gpio.pulse" | "pwm.set" => self.write(command, params).await,
            other => Err(BoardError::UnknownCommand {
                command: other.to_string(),
            }),
        }
    }

    fn plan_write(&self, command: &str, params: Value) -> Result<(&Device, WriteOp), BoardError> {
        match command {
            "gpio.write" => {
                let p: WriteParams = parse(command, params)?;
                let device = self.device(&p.name)?;
                let active = parse_on_off(&p.value)?;
                let (pin, active_low) = output_pin(device)?;
                Ok((
                    device,
                    WriteOp::Set {
                        pin,
                        active,
                        level: level_for(active, active_low),
                    },
                ))
            }
            "gpio.pulse" => {
                let p: PulseParams = parse(command, params)?;
                let device = self.device(&p.name)?;
                let ms = p.ms.as_u64().filter(|ms| (1..=MAX_PULSE_MS).contains(ms));
                let Some(ms) = ms else {
                    return Err(BoardError::OutOfRange {
                        field: "ms",
                        value: p.ms.to_string(),
                        range: "1..=20000 (integer)",
                    });
                };
                let (pin, active_low) = output_pin(device)?;
                Ok((
                    device,
                    WriteOp::Pulse {
                        pin,
                        ms,
                        active: level_for(true, active_low),
                    },
                ))
            }
            "pwm.set" => {
                let p: PwmParams = parse(command, params)?;
                let device = self.device(&p.name)?;
                let (pin, default_hz) = match &device.kind {
                    DeviceKind::Pwm { pin, hz, .. } => (*pin, *hz),
                    other => {
                        return Err(BoardError::NotPwm {
                            name: device.name.clone(),
                            kind: other.name(),
                        });
                    }
                };
                let duty = number(&p.duty, "duty")?;
                if !(0.0..=1.0).contains(&duty) {
                    return Err(BoardError::OutOfRange {
                        field: "duty",
                        value: p.duty.to_string(),
                        range: "0.0..=1.0",
                    });
                }
                let hz = match &p.hz {
                    None | Some(Value::Null) => default_hz,
                    Some(v) => number(v, "hz")?,
                };
                if !(hz > 0.0 && hz <= profile::MAX_PWM_HZ) {
                    return Err(BoardError::OutOfRange {
                        field: "hz",
                        value: hz.to_string(),
                        range: "(0, 1000000]",
                    });
                }
                Ok((device, WriteOp::Pwm { pin, duty, hz }))
            }
            other => Err(BoardError::UnknownCommand {
                command: other.to_string(),
            }),
        }
    }

    async fn write(&self, command: &str, params: Value) -> Result<Value, BoardError> {
        let (device, op) = self.plan_write(command, params)?;
        let name = device.name.clone();
        let output = self
            .outputs
            .get(&name)
            .ok_or_else(|| BoardError::Hardware(format!("output `{name}` is not set up")))?;
        output.take_token(&name)?;
        let output = Arc::clone(output);
        let board = Arc::clone(&self.board);
        let io = self.worker.io();
        match op {
            WriteOp::Set { pin, active, level } => {
                write_now(io, &output, board, move |b| b.gpio_write(pin, level)).await?;
                Ok(json!({ "name": name, "value": active }))
            }
            WriteOp::Pwm { pin, duty, hz } => {
                write_now(io, &output, board, move |b| b.pwm_set(pin, duty, hz)).await?;
                Ok(json!({ "name": name, "duty": duty, "hz": hz }))
            }
            WriteOp::Pulse { pin, ms, active } => {
                let io = io.clone();
                // The whole pulse runs in its own task, so that once it has
                // started the output returns to inactive even if the caller
                // goes away. The off-edge waits for room on the pin I/O
                // queue rather than being refused: a pulse always ends.
                let task = tokio::spawn(async move {
                    let on = Arc::clone(&board);
                    let mine =
                        write_now(&io, &output, on, move |b| b.gpio_write(pin, active)).await?;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    io.run_when_free(move || {
                        let g = lock(&output.generation);
                        if *g != mine {
                            return Ok(false);
                        }
                        board.gpio_write(pin, active.toggled())?;
                        Ok(true)
                    })
                    .await
                });
                let ended = task
                    .await
                    .map_err(|e| BoardError::Hardware(format!("pulse task failed: {e}")))??;
                if ended {
                    Ok(json!({ "name": name, "ms": ms, "value": false }))
                } else {
                    Ok(json!({ "name": name, "ms": ms, "superseded": true }))
                }
            }
        }
    }

    /// Puts every output in its safe state for a graceful shutdown: digital
    /// outputs inactive (off, honouring active-low) and PWM duty 0. Keeps
    /// going past failures and returns the first. The rppal backend leaves
    /// pins driven after exit, so the safe state persists (a crash keeps the
    /// last state; the next start drives outputs to their `initial` state).
    /// Blocking but fast; call it once at shutdown.
    pub fn shutdown(&self) -> Result<(), BoardError> {
        let mut first_err = None;
        for d in &self.spec.devices {
            let r = match &d.kind {
                DeviceKind::Output {
                    pin, active_low, ..
                } => self.board.gpio_write(*pin, level_for(false, *active_low)),
                DeviceKind::Pwm { pin, hz, .. } => self.board.pwm_set(*pin, 0.0, *hz),
                _ => Ok(()),
            };
            if let Err(e) = r {
                tracing::warn!(device = %d.name, error = %e, "could not switch output off at shutdown");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn info(&self) -> Value {
        let devices: Vec<Value> = self
            .spec
            .devices
            .iter()
            .map(|d| {
                let mut v = json!({ "name": d.name, "kind": d.kind.name() });
                if let Some(label) = &d.label {
                    v["label"] = json!(label);
                }
                match &d.kind {
                    DeviceKind::Output {
                        pin,
                        active_low,
                        confirm,
                        max_writes_per_minute,
                        ..
                    } => {
                        v["pin"] = json!(pin);
                        v["activeLow"] = json!(active_low);
                        v["confirm"] = json!(confirm);
                        v["maxWritesPerMinute"] = json!(max_writes_per_minute);
                    }
                    DeviceKind::Input {
                        pin,
                        pull,
                        edge,
                        debounce,
                        active_low,
                    } => {
                        v["pin"] = json!(pin);
                        v["pull"] = json!(pull);
                        v["edge"] = json!(edge);
                        v["debounceMs"] = json!(debounce.as_millis() as u64);
                        v["activeLow"] = json!(active_low);
                    }
                    DeviceKind::Pwm {
                        pin,
                        hz,
                        confirm,
                        max_writes_per_minute,
                        ..
                    } => {
                        v["pin"] = json!(pin);
                        v["hz"] = json!(hz);
                        v["confirm"] = json!(confirm);
                        v["maxWritesPerMinute"] = json!(max_writes_per_minute);
                    }
                    DeviceKind::Bme280 { bus, address, .. }
                    | DeviceKind::Sht31 { bus, address } => {
                        v["bus"] = json!(bus);
                        v["address"] = json!(format!("0x{address:02x}"));
                    }
                    DeviceKind::Ds18b20 { id, .. } => v["id"] = json!(id),
                    _ => {}
                }
                v
            })
            .collect();
        json!({
            "profile": self.spec.profile.name,
            "description": self.spec.profile.description,
            "backend": self.board.backend(),
            "model": self.spec.model.clone().unwrap_or_else(|| self.board.model()),
            "sysfsRoot": self.board.sysroot().path().display().to_string(),
            "devices": devices,
            "commands": COMMANDS,
            "edgeDrops": self.edge_drops(),
            "edgesDebounced": self.edges_debounced(),
        })
    }

    fn sensors_list(&self) -> Value {
        let sensors: Vec<Value> = self
            .spec
            .devices
            .iter()
            .filter(|d| d.kind.is_sensor())
            .map(|d| {
                json!({
                    "name": d.name,
                    "kind": d.kind.name(),
                    "label": d.label,
                    "quantities": quantities(&d.kind),
                })
            })
            .collect();
        json!({ "sensors": sensors })
    }
}

impl Output {
    fn new(per_minute: u32) -> Self {
        Output {
            generation: Mutex::new(0),
            bucket: (per_minute > 0).then(|| Mutex::new(TokenBucket::new(per_minute))),
        }
    }

    /// Gives back the token of a write that was refused before it ran.
    fn refund_token(&self) {
        if let Some(bucket) = &self.bucket {
            lock(bucket).refund();
        }
    }

    fn take_token(&self, name: &str) -> Result<(), BoardError> {
        let Some(bucket) = &self.bucket else {
            return Ok(());
        };
        let mut b = match bucket.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        b.take().map_err(|wait| BoardError::RateLimited {
            name: name.to_string(),
            retry_after_ms: wait.as_millis().max(1) as u64,
        })
    }
}

/// One line and a JSON-schema for the params of each command, for the node
/// layer to advertise and the agent to turn into tool schemas.
pub fn command_schemas() -> Value {
    let name = json!({ "type": "string", "description": "device name from board.info" });
    json!([
        {
            "command": "board.info",
            "description": "Board profile, backend, model and every declared device.",
            "params": { "type": "object", "properties": {}, "additionalProperties": false }
        },
        {
            "command": "sensors.list",
            "description": "Declared sensors and the quantities each reports.",
            "params": { "type": "object", "properties": {}, "additionalProperties": false }
        },
        {
            "command": "sensors.read",
            "description": "Read a sensor: {name, value, unit, ts}, plus readings for multi-quantity sensors.",
            "params": { "type": "object", "properties": { "name": name }, "required": ["name"], "additionalProperties": false }
        },
        {
            "command": "gpio.read",
            "description": "Read an input or output: {name, value (logical on/active), level}.",
            "params": { "type": "object", "properties": { "name": name }, "required": ["name"], "additionalProperties": false }
        },
        {
            "command": "gpio.write",
            "description": "Switch an output on (true) or off (false); active-low wiring is handled.",
            "params": {
                "type": "object",
                "properties": { "name": name, "value": { "type": ["boolean", "integer", "string"], "description": "true/false, 1/0 or \"on\"/\"off\"" } },
                "required": ["name", "value"], "additionalProperties": false
            }
        },
        {
            "command": "gpio.pulse",
            "description": "Switch an output on for `ms` milliseconds, then off.",
            "params": {
                "type": "object",
                "properties": { "name": name, "ms": { "type": "integer", "minimum": 1, "maximum": MAX_PULSE_MS } },
                "required": ["name", "ms"], "additionalProperties": false
            }
        },
        {
            "command": "pwm.set",
            "description": "Set a PWM output's duty cycle (0.0-1.0) and optionally its frequency.",
            "params": {
                "type": "object",
                "properties": {
                    "name": name,
                    "duty": { "type": "number", "minimum": 0.0, "maximum": 1.0 },
                    "hz": { "type": "number", "exclusiveMinimum": 0.0, "maximum": profile::MAX_PWM_HZ }
                },
                "required": ["name", "duty"], "additionalProperties": false
            }
        }
    ])
}
