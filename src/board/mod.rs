//! The board: GPIO, PWM, I2C and sensors behind one trait (issue 5), and a
//! typed API over the declared devices.
//!
//! - [`hal`]: the [`Board`] trait (BCM pins, levels, edges, PWM, I2C via
//!   embedded-hal 1.0, a [`SysRoot`] for file sensors) and its value types.
//! - [`sim`]: the simulated backend (default off a Pi; deterministic).
//! - `rpi` (Linux ARM builds only): the Raspberry Pi backend.
//! - [`profile`]: `boards/*.toml` profiles, the `[board]` config section
//!   ([`BoardConfig`]) and validation into a [`BoardSpec`].
//! - [`sensors`]: pure parsers and readers for each sensor.
//! - [`devices`]: the [`DeviceTable`], the typed API over the declared
//!   devices: info, sensor and pin reads, planned and executed writes, edge
//!   events, shutdown to the safe state.
//! - [`info`]: what the table reports ([`BoardInfo`], [`SensorInfo`],
//!   [`PinState`]).
//! - [`outputs`]: write requests, plans (with whether an operator must
//!   approve), rate limits, pulses and the write-generation rule.
//! - [`changes`]: the change feed (writes, reads, edges) every watcher
//!   of the board subscribes to.
//! - [`history`]: fixed rings of recent sensor values (sparklines).
//! - [`worker`]: the board's own threads (pin I/O, sensor reads), so
//!   hardware calls never wait on tokio's blocking pool.
//!
//! This module knows nothing of the protocol, its command names or the
//! gateway: the node layer (`crate::node::board_commands`) maps commands and
//! JSON params onto this API.

#![warn(missing_docs)]

pub mod changes;
pub mod devices;
pub mod error;
pub mod hal;
pub mod history;
pub mod info;
pub mod outputs;
pub mod profile;
pub mod sensors;
pub mod sim;
pub mod worker;

#[cfg(all(target_os = "linux", any(target_arch = "aarch64", target_arch = "arm")))]
pub mod rpi;

pub use changes::{BoardChange, Changes};
pub use devices::{DeviceTable, open_board};
pub use error::{BoardError, ConfigError};
pub use hal::{
    Board, DynI2c, Edge, EdgeEvent, EdgeKind, EdgeSink, I2cError, Level, PinMode, Pull, SysRoot,
};
pub use info::{BoardInfo, DeviceInfo, PinState, SensorInfo, Wiring};
pub use outputs::{PlannedWrite, WriteOutcome, WriteRequest};
pub use profile::{BoardConfig, BoardSpec, Device, DeviceKind, DeviceSpec, MAX_DEVICES, Profile};
pub use sensors::{Quantity, Reading, ReadingValue, ThrottleDetail, ThrottleState};
pub use sim::{SimBoard, SimStep};

/// Whether the rppal (Raspberry Pi) backend is compiled into this build.
pub const RPPAL_COMPILED: bool = cfg!(all(
    target_os = "linux",
    any(target_arch = "aarch64", target_arch = "arm")
));
