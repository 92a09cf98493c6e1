//! pinclaw: an OpenClaw-compatible gateway for Raspberry-Pi-class boards.
//!
//! Layers (see the README's "Layout" section): `protocol` (wire types, no I/O) → `gateway`
//! (sockets, handshake, auth, method table, event bus) → `store` (redb).
//! `provider` streams model turns; `board` hides the hardware behind a trait.

pub mod abort;
pub mod agent;
pub mod app;
pub mod backoff;
pub mod board;
pub mod channel;
pub mod client;
pub mod config;
pub mod gateway;
pub mod ids;
pub mod limits;
pub mod logging;
pub mod node;
pub mod protocol;
pub mod provider;
pub mod service;
pub mod session;
pub mod store;
