//! The registry of connected nodes and of invokes waiting for results.
//!
//! Bounded: at most [`limits::MAX_NODES`] live nodes and
//! [`limits::MAX_INVOKES_PER_NODE`] invokes in flight per node. An invoke
//! whose caller goes away (its future is dropped) or times out is removed and
//! the node is told with `node.invoke.cancel`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use crate::{ids, limits};

/// A way to reach a node's connection.
pub trait NodeLink: Send + Sync {
    /// Queue a targeted event (no `seq`); false if the connection is gone.
    fn send(&self, event: &str, payload: &Value) -> bool;
    /// Id of the connection, to tell a reconnect from the old socket.
    fn conn_id(&self) -> &str;
}

/// What a node said about itself at connect.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// Node id (its device id).
    pub node_id: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Platform.
    pub platform: String,
    /// Client version.
    pub version: String,
    /// `client.id`.
    pub client_id: String,
    /// `client.mode`.
    pub client_mode: String,
    /// Device family.
    pub device_family: Option<String>,
    /// Model identifier.
    pub model_identifier: Option<String>,
    /// Remote IP.
    pub remote_ip: Option<String>,
    /// Capability categories.
    pub caps: Vec<String>,
    /// Declared commands.
    pub commands: Vec<String>,
    /// Permissions.
    pub permissions: Map<String, Value>,
    /// PATH of the node host.
    pub path_env: Option<String>,
}

/// A node's answer to an invoke.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeReply {
    /// Success with a payload.
    Ok {
        /// Parsed payload (`null` when none).
        payload: Value,
        /// The payload as the node sent it, when sent as a string.
        payload_json: Option<String>,
    },
    /// The node reported an error.
    Err {
        /// Node's error code.
        code: String,
        /// Node's error message.
        message: String,
    },
}

/// Why an invoke did not produce a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeError {
    /// The node is not connected (or disconnected mid-invoke).
    NotConnected,
    /// No reply before the deadline.
    Timeout,
    /// Too many invokes already in flight for this node.
    Busy,
}

impl InvokeError {
    /// Stable `details.code`.
    pub fn code(&self) -> &'static str {
        match self {
            InvokeError::NotConnected => "NOT_CONNECTED",
            InvokeError::Timeout => "TIMEOUT",
            InvokeError::Busy => "BUSY",
        }
    }

    /// Message for the caller.
    pub fn message(&self) -> &'static str {
        match self {
            InvokeError::NotConnected => "node not connected",
            InvokeError::Timeout => "node invoke timed out",
            InvokeError::Busy => "node has too many invokes in flight; retry shortly",
        }
    }
}

/// Snapshot of a live node.
#[derive(Debug, Clone)]
pub struct LiveNode {
    /// What it declared.
    pub info: NodeInfo,
    /// When it connected.
    pub connected_at_ms: i64,
    /// Last host stats it reported.
    pub host_stats: Option<Value>,
    /// Invokes in flight.
    pub inflight: usize,
}

struct Entry {
    node: LiveNode,
    link: Arc<dyn NodeLink>,
}

struct Pending {
    node_id: String,
    reply: oneshot::Sender<Result<InvokeReply, InvokeError>>,
}

#[derive(Default)]
struct Inner {
    live: HashMap<String, Entry>,
    pending: HashMap<String, Pending>,
}

/// Live nodes and pending invokes.
pub struct NodeRegistry {
    inner: Mutex<Inner>,
    max_nodes: usize,
}

/// The registry is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryFull;

impl NodeRegistry {
    /// An empty registry for at most `max_nodes` live nodes.
    pub fn new(max_nodes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_nodes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a node could attach now (a reconnect of a live node always can).
    pub fn has_room_for(&self, node_id: &str) -> bool {
        let inner = self.lock();
        inner.live.contains_key(node_id) || inner.live.len() < self.max_nodes
    }

    /// Register a connected node. A reconnect replaces the old entry.
    pub fn attach(&self, info: NodeInfo, link: Arc<dyn NodeLink>) -> Result<(), RegistryFull> {
        let mut inner = self.lock();
        if !inner.live.contains_key(&info.node_id) && inner.live.len() >= self.max_nodes {
            return Err(RegistryFull);
        }
        let node_id = info.node_id.clone();
        let node = LiveNode {
            info,
            connected_at_ms: ids::now_ms(),
            host_stats: None,
            inflight: 0,
        };
        inner.live.insert(node_id, Entry { node, link });
        Ok(())
    }

    /// Remove a node if `conn_id` is still its connection; its pending
    /// invokes fail with `NOT_CONNECTED`. Returns whether it was removed.
    pub fn detach(&self, node_id: &str, conn_id: &str) -> bool {
        let mut inner = self.lock();
        if inner
            .live
            .get(node_id)
            .is_none_or(|e| e.link.conn_id() != conn_id)
        {
            return false;
        }
        inner.live.remove(node_id);
        let ids: Vec<String> = inner
            .pending
            .iter()
            .filter(|(_, p)| p.node_id == node_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(p) = inner.pending.remove(&id) {
                let _ = p.reply.send(Err(InvokeError::NotConnected));
            }
        }
        true
    }

    /// A live node by id.
    pub fn get(&self, node_id: &str) -> Option<LiveNode> {
        self.lock().live.get(node_id).map(|e| e.node.clone())
    }

    /// Every live node.
    pub fn list(&self) -> Vec<LiveNode> {
        self.lock().live.values().map(|e| e.node.clone()).collect()
    }

    /// Record host stats a node reported.
    pub fn set_host_stats(&self, node_id: &str, stats: Value) {
        if let Some(e) = self.lock().live.get_mut(node_id) {
            e.node.host_stats = Some(stats);
        }
    }

    /// Send a targeted event to a live node.
    pub fn send(&self, node_id: &str, event: &str, payload: &Value) -> bool {
        let link = self.lock().live.get(node_id).map(|e| e.link.clone());
        link.is_some_and(|l| l.send(event, payload))
    }

    /// Invoke `command` on a node and wait for its reply.
    pub async fn invoke(
        &self,
        node_id: &str,
        command: &str,
        params_json: Option<String>,
        timeout: Duration,
        idempotency_key: &str,
    ) -> Result<InvokeReply, InvokeError> {
        let invoke_id = ids::uuid_v4();
        let (tx, rx) = oneshot::channel();
        let link = {
            let mut inner = self.lock();
            let entry = inner
                .live
                .get_mut(node_id)
                .ok_or(InvokeError::NotConnected)?;
            if entry.node.inflight >= limits::MAX_INVOKES_PER_NODE {
                return Err(InvokeError::Busy);
            }
            entry.node.inflight += 1;
            let link = entry.link.clone();
            inner.pending.insert(
                invoke_id.clone(),
                Pending {
                    node_id: node_id.to_owned(),
                    reply: tx,
                },
            );
            link
        };
        let mut guard = InvokeGuard {
            registry: self,
            invoke_id: invoke_id.clone(),
            node_id: node_id.to_owned(),
            finished: false,
        };
        let request = json!({
            "id": invoke_id,
            "nodeId": node_id,
            "command": command,
            "paramsJSON": params_json,
            "timeoutMs": timeout.as_millis() as u64,
            "idempotencyKey": idempotency_key,
        });
        if !link.send("node.invoke.request", &request) {
            guard.finished = true;
            self.finish(&invoke_id, node_id);
            return Err(InvokeError::NotConnected);
        }
        let outcome = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => {
                guard.finished = true;
                result
            }
            Ok(Err(_)) => {
                guard.finished = true;
                Err(InvokeError::NotConnected)
            }
            // Dropping the guard cancels on the node.
            Err(_) => Err(InvokeError::Timeout),
        };
        drop(guard);
        outcome
    }

    /// Deliver a node's `node.invoke.result`. Returns false for an unknown
    /// (finished, cancelled or foreign) invoke id.
    pub fn resolve(&self, invoke_id: &str, node_id: &str, reply: InvokeReply) -> bool {
        let mut inner = self.lock();
        match inner.pending.get(invoke_id) {
            Some(p) if p.node_id == node_id => {}
            _ => return false,
        }
        let Some(pending) = inner.pending.remove(invoke_id) else {
            return false;
        };
        if let Some(e) = inner.live.get_mut(node_id) {
            e.node.inflight = e.node.inflight.saturating_sub(1);
        }
        pending.reply.send(Ok(reply)).is_ok()
    }

    fn finish(&self, invoke_id: &str, node_id: &str) -> bool {
        let mut inner = self.lock();
        let was_pending = inner.pending.remove(invoke_id).is_some();
        if was_pending && let Some(e) = inner.live.get_mut(node_id) {
            e.node.inflight = e.node.inflight.saturating_sub(1);
        }
        was_pending
    }

    /// Invokes waiting for results (all nodes).
    pub fn pending_invokes(&self) -> usize {
        self.lock().pending.len()
    }
}

/// Cancels an unfinished invoke when the waiting future goes away.
struct InvokeGuard<'a> {
    registry: &'a NodeRegistry,
    invoke_id: String,
    node_id: String,
    finished: bool,
}

impl Drop for InvokeGuard<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if self.registry.finish(&self.invoke_id, &self.node_id) {
            self.registry.send(
                &self.node_id,
                "node.invoke.cancel",
                &json!({"invokeId": self.invoke_id, "nodeId": self.node_id}),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    #[derive(Default)]
    struct FakeLink {
        sent: StdMutex<Vec<(String, Value)>>,
    }

    impl NodeLink for FakeLink {
        fn send(&self, event: &str, payload: &Value) -> bool {
            self.sent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((event.to_owned(), payload.clone()));
            true
        }
        fn conn_id(&self) -> &str {
            "c1"
        }
    }

    fn info(id: &str) -> NodeInfo {
        NodeInfo {
            node_id: id.into(),
            ..NodeInfo::default()
        }
    }

    #[tokio::test]
    async fn invoke_resolves_and_timeout_cancels() {
        let registry = Arc::new(NodeRegistry::new(2));
        let link = Arc::new(FakeLink::default());
        registry
            .attach(info("n1"), link.clone())
            .unwrap_or_else(|_| panic!("attach"));
        let r = registry.clone();
        let task =
            tokio::spawn(
                async move { r.invoke("n1", "x", None, Duration::from_secs(5), "k").await },
            );
        let invoke_id = loop {
            tokio::task::yield_now().await;
            let sent = link.sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some((_, p)) = sent.first() {
                break p["id"].as_str().unwrap_or("").to_owned();
            }
        };
        let reply = InvokeReply::Ok {
            payload: json!(1),
            payload_json: None,
        };
        assert!(
            !registry.resolve(&invoke_id, "other", reply.clone()),
            "foreign node"
        );
        assert!(registry.resolve(&invoke_id, "n1", reply.clone()));
        assert_eq!(task.await.ok(), Some(Ok(reply)));
        assert_eq!(registry.get("n1").map(|n| n.inflight), Some(0));

        let timed_out = registry
            .invoke("n1", "x", None, Duration::from_millis(10), "k2")
            .await;
        assert_eq!(timed_out, Err(InvokeError::Timeout));
        let sent = link.sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(
            sent.last().map(|(e, _)| e.as_str()),
            Some("node.invoke.cancel")
        );
        assert_eq!(registry.pending_invokes(), 0);
    }

    #[tokio::test]
    async fn capacity_and_disconnect() {
        let registry = NodeRegistry::new(1);
        let link: Arc<dyn NodeLink> = Arc::new(FakeLink::default());
        assert!(registry.attach(info("a"), link.clone()).is_ok());
        assert_eq!(registry.attach(info("b"), link.clone()), Err(RegistryFull));
        assert!(
            registry.attach(info("a"), link.clone()).is_ok(),
            "a reconnect replaces"
        );
        assert_eq!(
            registry
                .invoke("b", "x", None, Duration::from_secs(1), "k")
                .await,
            Err(InvokeError::NotConnected)
        );
        assert!(!registry.detach("a", "other-conn"));
        assert!(registry.detach("a", "c1"));
        assert!(registry.get("a").is_none());
    }
}
