//! The device table: the declared devices of a [`BoardSpec`] over an opened
//! [`Board`], as a typed API.
//!
//! [`DeviceTable`] only lets declared devices be touched. It reports the
//! board ([`DeviceTable::info`], [`DeviceTable::sensors`]), reads sensors and
//! pins, and writes outputs in two steps: [`DeviceTable::plan`] validates a
//! [`WriteRequest`] into a [`PlannedWrite`] that says whether an operator must
//! approve it, and [`DeviceTable::execute`] runs it under the output's rate
//! limit. Approval itself is the caller's job: the table executes what it is
//! given. Every hardware call runs on the table's own threads
//! ([`super::worker`]); debounced input edges arrive on a channel
//! ([`DeviceTable::take_events`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::changes::{BoardChange, Changes};
use super::error::BoardError;
use super::hal::{Board, EdgeEvent, EdgeSink, PinMode};
use super::info::{BoardInfo, DeviceInfo, PinState, SensorInfo};
use super::outputs::{self, Outputs, PlannedWrite, WriteOutcome, WriteRequest};
use super::profile::{self, BackendKind, BoardConfig, BoardSpec, Device, DeviceKind};
use super::sensors::reading::{self, Reading, SensorState, read_named};
use super::sim::SimBoard;
use super::worker::BoardWorker;
use crate::limits::BOARD_EDGE_QUEUE;

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

/// A declared device, or `UNKNOWN_DEVICE`.
pub(super) fn declared<'a>(spec: &'a BoardSpec, name: &str) -> Result<&'a Device, BoardError> {
    spec.device(name).ok_or_else(|| BoardError::UnknownDevice {
        name: name.to_string(),
    })
}

/// The declared devices over a [`Board`]: typed reads and writes, rate
/// limits, edge events and the board's own threads.
pub struct DeviceTable {
    board: Arc<dyn Board>,
    sim: Option<Arc<SimBoard>>,
    spec: BoardSpec,
    sensors: Arc<SensorState>,
    outputs: Outputs,
    /// The threads every hardware call runs on.
    worker: BoardWorker,
    events: Mutex<Option<mpsc::Receiver<EdgeEvent>>>,
    /// Keeps the event channel open while the table lives, so a board with
    /// no inputs gives a receiver that waits instead of one that is closed.
    _events_tx: mpsc::Sender<EdgeEvent>,
    drops: Arc<AtomicU64>,
    debounced: Arc<AtomicU64>,
    changes: Changes,
}

impl std::fmt::Debug for DeviceTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTable")
            .field("profile", &self.spec.profile.name)
            .field("backend", &self.board.backend())
            .finish_non_exhaustive()
    }
}

impl DeviceTable {
    /// Resolves `[board]` config, opens the backend it picks, and builds the
    /// table (see [`DeviceTable::new`]).
    ///
    /// On the simulated backend, the simulator stays reachable through
    /// [`DeviceTable::sim`] to script inputs and sensor values.
    pub fn from_config(config: &BoardConfig) -> Result<Self, BoardError> {
        let spec = profile::resolve(config)?;
        if spec.backend == BackendKind::Sim {
            let sim = Arc::new(SimBoard::for_spec(&spec));
            return DeviceTable::new_sim(sim, spec);
        }
        let board = open_board(&spec)?;
        DeviceTable::new(board, spec)
    }

    /// Builds the table over a simulator, keeping a handle on it for
    /// [`DeviceTable::sim`].
    pub fn new_sim(sim: Arc<SimBoard>, spec: BoardSpec) -> Result<Self, BoardError> {
        let board: Arc<dyn Board> = sim.clone();
        let mut table = DeviceTable::new(board, spec)?;
        table.sim = Some(sim);
        Ok(table)
    }

    /// Builds the table over an opened board: starts the board's threads,
    /// configures every declared pin (outputs to their initial state, inputs
    /// with their bias) and starts watching inputs for edges.
    pub fn new(board: Arc<dyn Board>, spec: BoardSpec) -> Result<Self, BoardError> {
        let i2c_wait = if board.backend() == "sim" {
            Duration::ZERO
        } else {
            HW_I2C_WAIT
        };
        let sensors = SensorState::new(spec.devices.iter(), i2c_wait);
        DeviceTable::with_sensor_state(board, spec, sensors)
    }

    /// Like [`DeviceTable::new`] with explicit sensor state (tests use it to
    /// shorten the DHT22 interval).
    pub fn with_sensor_state(
        board: Arc<dyn Board>,
        spec: BoardSpec,
        sensors: SensorState,
    ) -> Result<Self, BoardError> {
        let worker = BoardWorker::start()?;
        let (tx, rx) = mpsc::channel(BOARD_EDGE_QUEUE);
        let drops = Arc::new(AtomicU64::new(0));
        let debounced = Arc::new(AtomicU64::new(0));
        let mut outputs = Outputs::default();
        for d in &spec.devices {
            match &d.kind {
                DeviceKind::Output {
                    pin,
                    active_low,
                    initial,
                    max_writes_per_minute,
                    ..
                } => {
                    let level = outputs::level_for(*initial, *active_low);
                    board.gpio_setup(*pin, PinMode::Output(level))?;
                    outputs.add(&d.name, *max_writes_per_minute);
                }
                DeviceKind::Pwm {
                    max_writes_per_minute,
                    ..
                } => outputs.add(&d.name, *max_writes_per_minute),
                DeviceKind::Input {
                    pin,
                    pull,
                    edge,
                    debounce,
                    active_low,
                    ..
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
        // Outputs start in their configured state, PWM at duty 0.
        let changes = Changes::default();
        let ts = super::hal::now_ms();
        for d in &spec.devices {
            match &d.kind {
                DeviceKind::Output { initial, .. } => changes.publish(BoardChange::Output {
                    name: d.name.clone(),
                    value: *initial,
                    ts,
                }),
                DeviceKind::Pwm { .. } => changes.publish(BoardChange::Pwm {
                    name: d.name.clone(),
                    duty: 0.0,
                    ts,
                }),
                _ => {}
            }
        }
        Ok(DeviceTable {
            board,
            sim: None,
            spec,
            sensors: Arc::new(sensors),
            outputs,
            worker,
            events: Mutex::new(Some(rx)),
            _events_tx: tx,
            drops,
            debounced,
            changes,
        })
    }

    /// The simulator behind this table, when it runs on the simulated
    /// backend (demos and end-to-end tests inject edges and change sensor
    /// values).
    pub fn sim(&self) -> Option<&Arc<SimBoard>> {
        self.sim.as_ref()
    }

    /// The resolved profile and devices.
    pub fn spec(&self) -> &BoardSpec {
        &self.spec
    }

    /// The backend.
    pub fn board(&self) -> &Arc<dyn Board> {
        &self.board
    }

    /// Takes the receiver of debounced edge events. Only the first call gets
    /// it. The channel holds [`BOARD_EDGE_QUEUE`] events; when the consumer
    /// falls behind, new events are dropped and counted. It closes when the
    /// table is dropped.
    pub fn take_events(&self) -> Option<mpsc::Receiver<EdgeEvent>> {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.take()
    }

    /// The change feed: every successful write and sensor read is published
    /// here by the table; input edges by whoever takes the edge events
    /// ([`DeviceTable::take_events`]) and forwards them.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// Edge events dropped because the queue was full.
    pub fn edge_drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }

    /// Raw edges ignored by debouncing.
    pub fn edges_debounced(&self) -> u64 {
        self.debounced.load(Ordering::Relaxed)
    }

    /// The board and every declared device.
    pub fn info(&self) -> BoardInfo {
        BoardInfo {
            profile: self.spec.profile.name.clone(),
            description: self.spec.profile.description.clone(),
            backend: self.board.backend(),
            model: self
                .spec
                .model
                .clone()
                .unwrap_or_else(|| self.board.model()),
            sysfs_root: self.board.sysroot().path().display().to_string(),
            devices: self.spec.devices.iter().map(DeviceInfo::of).collect(),
            edge_drops: self.edge_drops(),
            edges_debounced: self.edges_debounced(),
        }
    }

    /// The declared sensors and the quantities each reports.
    pub fn sensors(&self) -> Vec<SensorInfo> {
        self.spec
            .devices
            .iter()
            .filter_map(SensorInfo::of)
            .collect()
    }

    /// Reads sensor `name` on the sensor thread.
    pub async fn read_sensor(&self, name: &str) -> Result<Reading, BoardError> {
        let device = declared(&self.spec, name)?.clone();
        if !device.kind.is_sensor() {
            return Err(BoardError::NotASensor {
                name: device.name,
                kind: device.kind.name(),
            });
        }
        let board = Arc::clone(&self.board);
        let sensors = Arc::clone(&self.sensors);
        let mut reading = self
            .worker
            .sensors()
            .run(move || read_named(board.as_ref(), &device, &sensors))
            .await?;
        if let Some(sim) = &self.sim {
            for (field, value) in sim.forced(name) {
                reading.set_field(field, value);
            }
        }
        self.changes.publish(BoardChange::Reading {
            name: name.to_owned(),
            values: reading.fields(),
            ts: reading.ts,
        });
        Ok(reading)
    }

    /// Reads input or output `name` on the pin I/O thread (an output reads
    /// back the level last written).
    pub async fn read_pin(&self, name: &str) -> Result<PinState, BoardError> {
        let device = declared(&self.spec, name)?;
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
        Ok(PinState {
            name: device.name.clone(),
            value: level.is_high() != active_low,
            level,
        })
    }

    /// Validates a write against the device table without touching
    /// anything; the plan says whether an operator must approve it.
    pub fn plan(&self, request: &WriteRequest) -> Result<PlannedWrite, BoardError> {
        outputs::plan(&self.spec, request)
    }

    /// Executes a planned write on the pin I/O thread, under the output's
    /// rate limit. A pulse returns once it has ended.
    pub async fn execute(&self, plan: PlannedWrite) -> Result<WriteOutcome, BoardError> {
        let outcome = self
            .outputs
            .execute(&self.board, self.worker.io(), plan)
            .await?;
        let ts = super::hal::now_ms();
        self.changes.publish(match &outcome {
            WriteOutcome::Switched { name, value } => BoardChange::Output {
                name: name.clone(),
                value: *value,
                ts,
            },
            WriteOutcome::Pulsed { name, .. } => BoardChange::Output {
                name: name.clone(),
                value: false,
                ts,
            },
            WriteOutcome::PwmSet { name, duty, .. } => BoardChange::Pwm {
                name: name.clone(),
                duty: *duty,
                ts,
            },
        });
        Ok(outcome)
    }

    /// The simulator only: drives input `name` to its logical `active`
    /// state as if wired (an edge follows, debounced as on hardware).
    pub fn sim_input(&self, name: &str, active: bool) -> Result<(), BoardError> {
        let (sim, device) = self.sim_device(name)?;
        let DeviceKind::Input {
            pin, active_low, ..
        } = device.kind
        else {
            return Err(BoardError::invalid_params(format!(
                "sim.set: `{name}` is a {}; `value` drives inputs (give a sensor's fields instead)",
                device.kind.name()
            )));
        };
        sim.set_input(pin, super::hal::Level::from_bool(active != active_low))
            .map(|_| ())
    }

    /// The simulator only: forces fields of sensor `name` (`temperature_c`
    /// …) in every later read, then reads it so watchers see the change at
    /// once.
    pub async fn sim_sensor(
        &self,
        name: &str,
        values: &[(String, f64)],
    ) -> Result<Reading, BoardError> {
        let (sim, device) = self.sim_device(name)?;
        let known: Vec<&'static str> = reading::fields(&device.kind).collect();
        if known.is_empty() {
            return Err(BoardError::invalid_params(format!(
                "sim.set: `{name}` is a {}, not a sensor; give `value` for an input",
                device.kind.name()
            )));
        }
        let mut forced = Vec::with_capacity(values.len());
        for (field, value) in values {
            let Some(f) = known.iter().find(|k| **k == field.as_str()) else {
                return Err(BoardError::invalid_params(format!(
                    "sim.set: `{name}` has no field `{field}` (it has {})",
                    known.join(", ")
                )));
            };
            if !value.is_finite() {
                return Err(BoardError::invalid_params(format!(
                    "sim.set: `{field}` must be a finite number"
                )));
            }
            forced.push((*f, *value));
        }
        for (field, value) in forced {
            sim.force(name, field, value);
        }
        self.read_sensor(name).await
    }

    fn sim_device(&self, name: &str) -> Result<(&Arc<SimBoard>, &Device), BoardError> {
        let sim = self
            .sim
            .as_ref()
            .ok_or_else(|| BoardError::UnknownCommand {
                command: "sim.set".into(),
            })?;
        Ok((sim, declared(&self.spec, name)?))
    }

    /// Puts every output in its safe state for a graceful shutdown: digital
    /// outputs inactive (off, honouring active-low) and PWM duty 0. Keeps
    /// going past failures and returns the first. The rppal backend leaves
    /// pins driven after exit, so the safe state persists (a crash keeps the
    /// last state; the next start drives outputs to their `initial` state).
    /// Runs on the calling thread, so a stuck board thread cannot hold it
    /// up; blocking but fast, call it once at shutdown.
    pub fn shutdown(&self) -> Result<(), BoardError> {
        let mut first_err = None;
        for d in &self.spec.devices {
            let r = match &d.kind {
                DeviceKind::Output {
                    pin, active_low, ..
                } => self
                    .board
                    .gpio_write(*pin, outputs::level_for(false, *active_low)),
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
}
