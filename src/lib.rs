//! pinclaw: an OpenClaw-compatible gateway for Raspberry-Pi-class boards.
//!
//! Layers, each knowing only those below it (`docs/ARCHITECTURE.md`):
//! `gateway` (sockets, handshake, the method and event tables) and
//! `channel` (Telegram) on top of `session` (lanes) and `agent` (the loop),
//! which use `provider` (model turns), `node` (invoke routing, the board's
//! commands), `board` (hardware behind a trait) and `store` (redb);
//! `protocol` holds wire types only. `app` wires them all. `mqtt` is a
//! self-contained MQTT 3.1.1 client (its own thread, bounded queues) for
//! the Home Assistant bridge. `doctor` checks a board end to end (`pinclaw
//! doctor`), on top of everything else.

pub mod abort;
pub mod agent;
pub mod app;
pub mod automation;
pub mod backoff;
pub mod board;
pub mod bridge;
pub mod channel;
pub mod cli;
pub mod client;
pub mod config;
pub mod doctor;
pub mod gateway;
pub mod home_assistant;
pub mod ids;
pub mod limits;
pub mod logging;
pub mod mqtt;
pub mod node;
pub mod protocol;
pub mod provider;
pub mod service;
pub mod session;
pub mod store;
