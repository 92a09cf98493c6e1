//! How the session lanes and the agent loop reach the gateway: their
//! events onto the bus, and the `nodes` tool onto the one invoke path.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{Value, json};

use super::bus::Bus;
use super::invoke::{self, InvokeRequest};
use super::{Shared, nodes};
use crate::agent::tools::{BoxFuture, NodeAccess, ToolContext};
use crate::ids;
use crate::protocol::error::ErrorShape;
use crate::session::EventSink;

/// Session and agent events onto the bus.
pub struct BusEvents(pub Arc<Bus>);

impl EventSink for BusEvents {
    fn agent(&self, payload: &Value, tool: bool) {
        if tool {
            self.0.broadcast_where("agent", payload, |c| {
                c.caps.iter().any(|cap| cap == "tool-events")
            });
        } else {
            self.0.broadcast("agent", payload);
        }
    }
    fn chat(&self, payload: &Value) {
        self.0.broadcast("chat", payload);
    }
    fn session_changed(&self, session_key: &str) {
        let payload = json!({"sessionKey": session_key, "ts": ids::now_ms()});
        self.0.broadcast_where("sessions.changed", &payload, |c| {
            c.sessions_subscribed.load(Ordering::Relaxed)
        });
    }
}

/// The `nodes` tool's way into the gateway.
pub struct GatewayNodes(pub Weak<Shared>);

impl GatewayNodes {
    fn shared(&self) -> Result<Arc<Shared>, String> {
        self.0
            .upgrade()
            .ok_or_else(|| "the gateway is shutting down".to_owned())
    }
}

/// An error as the one line the model reads.
fn shape_text(e: ErrorShape) -> String {
    match e.detail_code() {
        Some(code) => format!("{} ({code})", e.message),
        None => e.message,
    }
}

impl NodeAccess for GatewayNodes {
    fn list(&self) -> BoxFuture<Result<Value, String>> {
        let shared = self.shared();
        Box::pin(async move {
            let shared = shared?;
            nodes::list(&shared).await.map_err(shape_text)
        })
    }

    fn describe(&self, node: String) -> BoxFuture<Result<Value, String>> {
        let shared = self.shared();
        Box::pin(async move {
            let shared = shared?;
            nodes::describe(&shared, &node).await.map_err(shape_text)
        })
    }

    fn invoke(
        &self,
        caller: ToolContext,
        node: String,
        command: String,
        params: Value,
        timeout: Duration,
    ) -> BoxFuture<Result<Value, String>> {
        let ToolContext { scopes, who } = caller;
        let shared = self.shared();
        Box::pin(async move {
            let shared = shared?;
            let request = InvokeRequest {
                node,
                command,
                params,
                timeout,
                idempotency_key: ids::uuid_v4(),
                who,
            };
            let result = invoke::invoke(&shared, &scopes, request)
                .await
                .map_err(shape_text)?;
            Ok(result.get("payload").cloned().unwrap_or(result))
        })
    }

    fn summary(&self) -> String {
        let Ok(shared) = self.shared() else {
            return String::new();
        };
        let mut lines = vec!["Reachable nodes (use the nodes tool):".to_owned()];
        if let Some(local) = &shared.local_node {
            lines.push(format!(
                "- local ({}): this board; commands {}",
                local.display_name().unwrap_or_default(),
                local.commands().join(", ")
            ));
        }
        for live in shared.nodes.list() {
            lines.push(format!(
                "- {} ({}): commands {}",
                live.info.display_name.clone().unwrap_or_default(),
                &live.info.node_id[..live.info.node_id.len().min(12)],
                live.info.commands.join(", ")
            ));
        }
        lines.join("\n")
    }
}
