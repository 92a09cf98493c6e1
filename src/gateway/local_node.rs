//! The gateway's own board as a node: what `node.list` shows for it and how
//! `node.invoke` reaches it (in-process, no socket).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::Shared;
use crate::protocol::error::ErrorShape;

/// A boxed future, so the trait stays object-safe without extra crates.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A node that lives inside the gateway process.
pub trait LocalNode: Send + Sync {
    /// Its node id.
    fn node_id(&self) -> &str;
    /// Its display name.
    fn display_name(&self) -> Option<String>;
    /// Commands it serves.
    fn commands(&self) -> &[&'static str];
    /// Its `node.list` entry (with `gatewayLocal: true`).
    fn entry(&self) -> Value;
    /// Run a command for `who` (as in the audit log: `agent run R in
    /// session S`, `mqtt command on T`, …); the `node.invoke` response
    /// payload on success.
    fn invoke<'a>(
        &'a self,
        shared: &'a Arc<Shared>,
        who: &'a str,
        command: &'a str,
        params: Value,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Value, ErrorShape>>;
}
