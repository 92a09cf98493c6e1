//! The board: GPIO, PWM, I2C and sensors behind one trait (issue 5).
//!
//! - [`hal`]: the [`Board`] trait (BCM pins, levels, edges, PWM, I2C via
//!   embedded-hal 1.0, a [`SysRoot`] for file sensors) and its value types.
//! - [`sim`]: the simulated backend (default off a Pi; deterministic).
//! - `rpi` (Linux ARM builds only): the Raspberry Pi backend.
//! - [`profile`]: `boards/*.toml` profiles, the `[board]` config section
//!   ([`BoardConfig`]) and validation into a [`BoardSpec`].
//! - [`sensors`]: pure parsers and readers for each sensor.
//! - [`worker`]: the board's own threads (pin I/O, sensor reads), so
//!   hardware calls never wait on tokio's blocking pool.
//! - [`node`]: the command surface ([`LocalBoardNode`]) the node layer exposes.
//!
//! This module knows nothing of the protocol or the gateway.

#![warn(missing_docs)]

pub mod error;
pub mod hal;
pub mod node;
pub mod profile;
pub mod sensors;
pub mod sim;
pub mod worker;

#[cfg(all(target_os = "linux", any(target_arch = "aarch64", target_arch = "arm")))]
pub mod rpi;

pub use error::{BoardError, ConfigError};
pub use hal::{
    Board, DynI2c, Edge, EdgeEvent, EdgeKind, EdgeSink, I2cError, Level, PinMode, Pull, SysRoot,
};
pub use node::{COMMANDS, ConfirmRequest, EDGE_QUEUE, LocalBoardNode, command_schemas, open_board};
pub use profile::{BoardConfig, BoardSpec, Device, DeviceKind, DeviceSpec, MAX_DEVICES, Profile};
pub use sim::{SimBoard, SimStep};

/// Whether the rppal (Raspberry Pi) backend is compiled into this build.
pub const RPPAL_COMPILED: bool = cfg!(all(
    target_os = "linux",
    any(target_arch = "aarch64", target_arch = "arm")
));
