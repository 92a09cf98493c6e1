//! The gateway's own board as a node (`gatewayLocal: true`): commands run
//! in-process through [`BoardCommands`]; writes to `confirm = true` outputs
//! wait for an operator's approval first; edge events are published as
//! `node.event`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::Shared;
use super::approvals::Decision;
use super::local_node::{BoxFuture, LocalNode};
use crate::board::{BoardChange, BoardError};
use crate::ids;
use crate::node::BoardCommands;
use crate::protocol::error::{ErrorShape, codes};

/// The board wrapped as a node.
pub struct BoardNode {
    board: Arc<BoardCommands>,
    node_id: String,
    name: String,
}

impl BoardNode {
    /// Wrap `board` under the gateway's device id.
    pub fn new(board: Arc<BoardCommands>, node_id: String, name: String) -> Self {
        Self {
            board,
            node_id,
            name,
        }
    }
}

/// A board error as the protocol error the caller sees.
pub fn board_error(node_id: &str, e: &BoardError) -> ErrorShape {
    let details = json!({"code": e.code(), "nodeId": node_id, "nodeError": {"code": e.code(), "message": e.to_string()}});
    if let Some(retry_after_ms) = e.retry_after_ms() {
        return ErrorShape::new(codes::UNAVAILABLE, e.to_string())
            .with_details(details)
            .retry_after(retry_after_ms);
    }
    match e {
        BoardError::Hardware(_) | BoardError::I2cNack { .. } | BoardError::SensorMissing { .. } => {
            ErrorShape::new(codes::UNAVAILABLE, e.to_string()).with_details(details)
        }
        _ => ErrorShape::invalid(e.to_string()).with_details(details),
    }
}

impl LocalNode for BoardNode {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    fn display_name(&self) -> Option<String> {
        Some(self.name.clone())
    }

    fn commands(&self) -> &[&'static str] {
        self.board.commands()
    }

    fn entry(&self) -> Value {
        let now = ids::now_ms();
        json!({
            "nodeId": self.node_id,
            "displayName": self.name,
            "platform": std::env::consts::OS,
            "version": env!("CARGO_PKG_VERSION"),
            "clientId": "pinclaw",
            "clientMode": "gateway",
            "caps": ["board"],
            "commands": self.board.commands(),
            "approvedCommands": self.board.commands(),
            "permissions": {},
            "board": {"profile": self.board.spec().profile.name},
            "approvalState": "approved",
            "connectedAtMs": now,
            "lastSeenAtMs": now,
            "paired": true,
            "connected": true,
            "gatewayLocal": true,
        })
    }

    fn invoke<'a>(
        &'a self,
        shared: &'a Arc<Shared>,
        who: &'a str,
        command: &'a str,
        params: Value,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Value, ErrorShape>> {
        Box::pin(async move {
            let confirm = self
                .board
                .confirmation(command, &params)
                .map_err(|e| board_error(&self.node_id, &e))?;
            let result = match confirm {
                None => self.board.invoke(command, params).await,
                Some(request) => {
                    let ask = json!({
                        "kind": "board.output",
                        "nodeId": self.node_id,
                        "command": request.command,
                        "device": request.device,
                        "summary": request.summary,
                        "requestedBy": who,
                    });
                    let decision = shared
                        .approvals
                        .request(&shared.bus, ask, timeout)
                        .await
                        .map_err(|_| {
                            ErrorShape::new(codes::UNAVAILABLE, "too many approvals pending")
                                .retry_after(5000)
                        })?;
                    match decision {
                        Decision::Allow => self.board.invoke_approved(command, params).await,
                        Decision::Deny => {
                            return Err(ErrorShape::invalid(format!(
                                "{} was denied by an operator",
                                request.summary
                            ))
                            .with_details(json!({"code": "APPROVAL_DENIED"})));
                        }
                        Decision::Expired => {
                            return Err(ErrorShape::new(
                                codes::UNAVAILABLE,
                                format!(
                                    "{} needs an operator's approval; none came in time",
                                    request.summary
                                ),
                            )
                            .with_details(json!({"code": "APPROVAL_TIMEOUT"})));
                        }
                    }
                }
            };
            let payload = result.map_err(|e| board_error(&self.node_id, &e))?;
            Ok(json!({
                "ok": true,
                "nodeId": self.node_id,
                "command": command,
                "payloadJSON": payload.to_string(),
                "payload": payload,
            }))
        })
    }
}

/// Publish what happens on the board to operators as `node.event`: each
/// debounced edge as `board.edge` (OpenClaw node-event style) and, after
/// forwarding edges into the board's change feed, every change (edges,
/// writes by anyone, sensor reads) as `board.change` (`{kind, name, …}`),
/// so a dashboard shows another client's switch within a moment.
pub async fn publish_board(board: Arc<BoardCommands>, node_id: String, shared: Arc<Shared>) {
    let feed = board.devices().changes().clone();
    let mut changes = feed.subscribe();
    let mut edges = board.take_events();
    // Where every input stands at start (edges only tell what changes).
    for device in &board.spec().devices {
        if let crate::board::DeviceKind::Input { .. } = device.kind {
            match board.devices().read_pin(&device.name).await {
                Ok(pin) => feed.publish(BoardChange::Input {
                    name: pin.name,
                    value: pin.value,
                    ts: ids::now_ms() as u64,
                }),
                Err(e) => tracing::warn!(device = %device.name, "cannot read its state: {e}"),
            }
        }
    }
    let node_event = |event: &str, payload: Value| {
        shared.bus.broadcast(
            "node.event",
            &json!({"nodeId": node_id, "event": event, "payload": payload, "ts": ids::now_ms()}),
        );
    };
    loop {
        tokio::select! {
            edge = async { edges.as_mut()?.recv().await }, if edges.is_some() => {
                let Some(edge) = edge else {
                    edges = None;
                    continue;
                };
                node_event("board.edge", serde_json::to_value(&edge).unwrap_or(Value::Null));
                feed.publish(BoardChange::Input {
                    name: edge.device,
                    value: edge.active,
                    ts: edge.ts,
                });
            }
            change = changes.recv() => match change {
                Ok(change) => node_event("board.change", change.to_json()),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!("board.change: {n} change(s) not published (too many at once)");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}
