//! Nodes: devices that expose commands (remote boards, OpenClaw node hosts,
//! and the gateway's own board). This layer keeps the registry of connected
//! nodes, routes `node.invoke` to them and matches results, and decides which
//! commands may run (the three gates). It talks to connections only through
//! the [`NodeLink`] trait, so it knows nothing of sockets. The board's
//! commands themselves ([`BoardCommands`]) map the OpenClaw command surface
//! onto the board's typed API.

pub mod board_commands;
pub mod board_handler;
pub mod host;
pub mod policy;
pub mod registry;

pub use board_commands::BoardCommands;
pub use policy::CommandPolicy;
pub use registry::{InvokeError, InvokeReply, NodeInfo, NodeLink, NodeRegistry};
