//! Wire types of OpenClaw's gateway protocol (v4): frames, the connect
//! handshake, errors, scopes and device-auth payloads. Nothing here touches a
//! socket; the gateway layer does the I/O.

pub mod connect;
pub mod device_auth;
pub mod error;
pub mod frames;
pub mod scopes;

/// The protocol version pinclaw speaks.
pub const PROTOCOL_VERSION: u32 = 4;
/// Oldest protocol accepted from nodes and probes.
pub const MIN_LEGACY_PROTOCOL_VERSION: u32 = 3;
