//! Nodes: devices that expose commands (remote boards, OpenClaw node hosts,
//! and the gateway's own board). This layer keeps the registry of connected
//! nodes, routes `node.invoke` to them and matches results, and decides which
//! commands may run (the three gates). It talks to connections only through
//! the [`NodeLink`] trait, so it knows nothing of sockets.

pub mod board_handler;
pub mod host;
pub mod policy;
pub mod registry;

pub use policy::CommandPolicy;
pub use registry::{InvokeError, InvokeReply, NodeInfo, NodeLink, NodeRegistry};
