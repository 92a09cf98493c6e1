//! The event bus: live connections, broadcasts with per-connection `seq`,
//! event scope guards, and presence.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::Notify;

use super::events::{self, Guard};
use super::outbound::{Outbound, Pushed};
use crate::limits;
use crate::protocol::connect::Role;
use crate::protocol::{frames, scopes};

/// One authenticated connection as the bus sees it.
pub struct Conn {
    /// Connection id (uuid).
    pub conn_id: String,
    /// Role.
    pub role: Role,
    /// Live scopes (what dispatch enforces).
    pub scopes: Vec<String>,
    /// Paired device, if any.
    pub device_id: Option<String>,
    /// Client capabilities declared at connect.
    pub caps: Vec<String>,
    /// Presence entry for `system-presence` (nodes only: operators are not
    /// presence entries).
    pub presence: Option<Value>,
    /// Who this is, for the audit log: `operator cli (device 1a2b3c4d5e6f) from 127.0.0.1`.
    pub who: String,
    /// Outbound frames.
    pub outbound: Arc<Outbound>,
    /// Woken to force-close the connection (device removed, token revoked).
    pub kick: Notify,
    /// Subscribed to `sessions.changed` (`sessions.subscribe`).
    pub sessions_subscribed: std::sync::atomic::AtomicBool,
    seq: AtomicU64,
}

impl Conn {
    /// A connection record.
    pub fn new(
        conn_id: String,
        role: Role,
        scopes: Vec<String>,
        device_id: Option<String>,
        caps: Vec<String>,
        presence: Option<Value>,
        who: String,
    ) -> Self {
        Self {
            who,
            conn_id,
            role,
            scopes,
            device_id,
            caps,
            presence,
            outbound: Arc::new(Outbound::new(
                limits::MAX_QUEUED_FRAMES,
                limits::MAX_BUFFERED_BYTES,
            )),
            kick: Notify::new(),
            sessions_subscribed: std::sync::atomic::AtomicBool::new(false),
            seq: AtomicU64::new(0),
        }
    }

    fn receives(&self, guard: Guard) -> bool {
        match guard {
            Guard::Everyone => true,
            Guard::Scope(scope) => {
                self.role == Role::Operator && scopes::satisfied(&self.scopes, scope)
            }
            Guard::Targeted => false,
        }
    }

    /// Queue a targeted event without `seq` (e.g. `node.invoke.request`).
    pub fn send_event(&self, event: &str, payload: &Value) -> Pushed {
        self.outbound
            .push(frames::event_unsequenced(event, payload), false)
    }
}

/// Live connections and the counters behind `stateVersion`.
pub struct Bus {
    conns: Mutex<HashMap<String, Arc<Conn>>>,
    presence_version: AtomicU64,
    health_version: AtomicU64,
    self_presence: Value,
}

impl Bus {
    /// An empty bus; `self_presence` is the gateway's own presence entry.
    pub fn new(self_presence: Value) -> Self {
        Self {
            conns: Mutex::new(HashMap::new()),
            presence_version: AtomicU64::new(1),
            health_version: AtomicU64::new(1),
            self_presence,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a connection; a node's arrival changes presence and is broadcast.
    /// (Operators are not presence entries, as in OpenClaw: a CLI call must
    /// not cost every other client a frame.)
    pub fn register(&self, conn: Arc<Conn>) {
        let is_node = conn.role == Role::Node;
        // Bounded by the connection cap enforced before the upgrade.
        self.lock().insert(conn.conn_id.clone(), conn);
        if is_node {
            self.presence_changed();
        }
    }

    /// Remove a connection; a node's departure is broadcast as presence.
    pub fn unregister(&self, conn_id: &str) {
        let removed = self.lock().remove(conn_id);
        if removed.is_some_and(|c| c.role == Role::Node) {
            self.presence_changed();
        }
    }

    fn presence_changed(&self) {
        self.presence_version.fetch_add(1, Ordering::Relaxed);
        let payload = json!({ "presence": self.presence_list() });
        self.broadcast("presence", &payload);
    }

    /// Bump the health version (a new health snapshot is being broadcast).
    pub fn health_changed(&self) {
        self.health_version.fetch_add(1, Ordering::Relaxed);
    }

    /// `{presence, health}` state versions.
    pub fn state_version(&self) -> Value {
        json!({
            "presence": self.presence_version.load(Ordering::Relaxed),
            "health": self.health_version.load(Ordering::Relaxed),
        })
    }

    /// Presence entries: the gateway itself, then every connected node.
    pub fn presence_list(&self) -> Vec<Value> {
        let conns = self.lock();
        std::iter::once(self.self_presence.clone())
            .chain(conns.values().filter_map(|c| c.presence.clone()))
            .collect()
    }

    /// Every live connection.
    pub fn connections(&self) -> Vec<Arc<Conn>> {
        self.lock().values().cloned().collect()
    }

    /// Number of live connections by role: (operators, nodes).
    pub fn counts(&self) -> (usize, usize) {
        let conns = self.lock();
        let nodes = conns.values().filter(|c| c.role == Role::Node).count();
        (conns.len() - nodes, nodes)
    }

    /// Broadcast an event to every connection its guard admits. Each
    /// recipient's `seq` advances even when the frame is dropped for being
    /// slow, so the client sees the gap.
    pub fn broadcast(&self, event: &str, payload: &Value) {
        self.broadcast_where(event, payload, |_| true);
    }

    /// Like [`Self::broadcast`], to the admitted connections that also pass
    /// `filter` (e.g. only those that declared the `tool-events` cap).
    pub fn broadcast_where(&self, event: &str, payload: &Value, filter: impl Fn(&Conn) -> bool) {
        let Some(spec) = events::find(event).filter(|e| e.guard != Guard::Targeted) else {
            tracing::warn!(
                event,
                "refusing to broadcast an event that is not in the event table"
            );
            return;
        };
        let guard = spec.guard;
        let payload_json = payload.to_string();
        let state_version =
            matches!(event, "presence" | "health").then(|| self.state_version().to_string());
        let recipients: Vec<Arc<Conn>> = self
            .lock()
            .values()
            .filter(|c| c.receives(guard) && filter(c))
            .cloned()
            .collect();
        for conn in recipients {
            let seq = conn.seq.fetch_add(1, Ordering::Relaxed) + 1;
            let frame =
                frames::event_sequenced(event, &payload_json, seq, state_version.as_deref());
            let pushed = if spec.supersedes {
                conn.outbound.push_superseding(frame, spec.name)
            } else {
                conn.outbound.push(frame, false)
            };
            if pushed == Pushed::Dropped {
                tracing::debug!(conn = %conn.conn_id, event, seq, "dropped event for a slow consumer");
            }
        }
    }
}
