//! Operator approvals: a side effect that needs a human's yes (a write to a
//! `confirm = true` output) waits here until an operator holding
//! `operator.approvals` resolves it, or until its deadline passes. Without an
//! approval the action never happens.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::bus::Bus;
use crate::{ids, limits};

/// How an approval ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused by an operator.
    Deny,
    /// Nobody answered in time.
    Expired,
}

struct Waiting {
    request: Value,
    reply: oneshot::Sender<Decision>,
}

/// Pending approvals, bounded by [`limits::MAX_PENDING_APPROVALS`].
#[derive(Default)]
pub struct Approvals {
    pending: Mutex<HashMap<String, Waiting>>,
}

/// Too many approvals are already waiting.
#[derive(Debug)]
pub struct ApprovalsFull;

/// Removes a pending approval when its waiter goes away (decided,
/// expired, or the future dropped because the caller left), and tells
/// operators it is gone unless an operator already decided it.
struct Waiter<'a> {
    approvals: &'a Approvals,
    bus: &'a Bus,
    id: String,
    reason: &'static str,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let was_pending = self
            .approvals
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id)
            .is_some();
        if was_pending {
            self.bus.broadcast(
                "exec.approval.resolved",
                &json!({"id": self.id, "decision": self.reason, "ts": ids::now_ms()}),
            );
        }
    }
}

impl Approvals {
    /// Ask operators and wait up to `timeout` for a decision. `request` is
    /// the event payload (it gains `id`, `ts` and `expiresAtMs`). If the
    /// returned future is dropped (the caller went away), the request is
    /// withdrawn.
    pub async fn request(
        &self,
        bus: &Bus,
        mut request: Value,
        timeout: Duration,
    ) -> Result<Decision, ApprovalsFull> {
        let id = ids::uuid_v4();
        let now = ids::now_ms();
        request["id"] = json!(id);
        request["ts"] = json!(now);
        request["createdAtMs"] = json!(now);
        request["expiresAtMs"] = json!(now + timeout.as_millis() as i64);
        // OpenClaw's approval shape: what to approve as `request.command`.
        request["request"] = json!({
            "command": request["summary"],
            "host": "node",
            "nodeId": request["nodeId"],
        });
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending.len() >= limits::MAX_PENDING_APPROVALS {
                return Err(ApprovalsFull);
            }
            pending.insert(
                id.clone(),
                Waiting {
                    request: request.clone(),
                    reply: tx,
                },
            );
        }
        let mut waiter = Waiter {
            approvals: self,
            bus,
            id: id.clone(),
            reason: "cancelled",
        };
        tracing::info!(
            approval = %id,
            summary = %request["summary"],
            "approval requested; answer with: pinclaw approvals approve {id} (or deny {id})"
        );
        bus.broadcast("exec.approval.requested", &request);
        let decision = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(decision)) => decision,
            _ => Decision::Expired,
        };
        waiter.reason = "expired";
        drop(waiter);
        Ok(decision)
    }

    /// Approvals waiting now.
    pub fn pending_count(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Pending requests, oldest first.
    pub fn list(&self) -> Vec<Value> {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<Value> = pending.values().map(|w| w.request.clone()).collect();
        list.sort_by_key(|r| r["ts"].as_i64().unwrap_or(0));
        list
    }

    /// Resolve a pending request by its id or a unique prefix of it (at
    /// least [`MIN_ID_PREFIX`] characters, for typing at a prompt). Returns
    /// the full id; `None` when it is unknown, expired or ambiguous.
    pub fn resolve(&self, bus: &Bus, id: &str, allow: bool) -> Option<String> {
        let (id, waiting) = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let full = if pending.contains_key(id) {
                id.to_owned()
            } else {
                let mut matches = pending
                    .keys()
                    .filter(|k| id.len() >= MIN_ID_PREFIX && k.starts_with(id));
                match (matches.next(), matches.next()) {
                    (Some(only), None) => only.clone(),
                    _ => return None,
                }
            };
            let waiting = pending.remove(&full)?;
            (full, waiting)
        };
        let decision = if allow {
            Decision::Allow
        } else {
            Decision::Deny
        };
        let _ = waiting.reply.send(decision);
        let word = if allow { "allow" } else { "deny" };
        tracing::info!(approval = %id, decision = word, summary = %waiting.request["summary"], "approval resolved");
        bus.broadcast(
            "exec.approval.resolved",
            &json!({"id": id, "decision": word, "ts": ids::now_ms()}),
        );
        Some(id)
    }
}

/// Shortest id prefix [`Approvals::resolve`] accepts.
pub const MIN_ID_PREFIX: usize = 4;
