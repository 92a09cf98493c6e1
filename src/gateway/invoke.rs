//! The one path by which a node command runs, whoever asks: `node.invoke`
//! from an operator and the agent's `nodes` tool alike. Every gate is
//! applied here, with the scopes of whoever asked (for the agent: the
//! client whose message started the run):
//!
//! 1. commands that need `operator.admin` (shell, files, browser proxy);
//! 2. declared by the node;
//! 3. approved by an operator (`node.pair.approve`; the gateway's own board
//!    is approved by construction);
//! 4. permitted by `[nodes] allow_commands` / `deny_commands` (deny wins;
//!    capturing commands need an explicit allow).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::Shared;
use super::errors::{invoke_error, store_error};
use super::nodes::resolve_node;
use crate::node::policy::{self, Refusal};
use crate::node::{InvokeError, InvokeReply};
use crate::protocol::error::{ErrorShape, codes};
use crate::protocol::scopes;

/// One command to run on a node.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    /// Node reference: `local`, an id, a display name or an id prefix.
    pub node: String,
    /// Command name.
    pub command: String,
    /// Command parameters.
    pub params: Value,
    /// Deadline.
    pub timeout: Duration,
    /// Passed to the node so it can recognise a retry.
    pub idempotency_key: String,
    /// Who asks, for the audit log (`operator cli from 127.0.0.1`,
    /// `agent run R in session S`).
    pub who: String,
}

/// Commands that only look: not written to the audit log (a dashboard or
/// an automation reading sensors every minute would crowd out the writes).
fn only_looks(command: &str) -> bool {
    [".read", ".list", ".info", ".status", ".describe", ".get"]
        .iter()
        .any(|end| command.ends_with(end))
}

/// `gpio.write {"name":"relay1","value":true}` → `gpio.write relay1 = on`.
fn describe(command: &str, params: &Value) -> String {
    let mut what = command.to_owned();
    if let Some(name) = params["name"].as_str() {
        what.push(' ');
        what.push_str(name);
    }
    match &params["value"] {
        Value::Bool(b) => what.push_str(if *b { " = on" } else { " = off" }),
        Value::Null => {}
        other => what.push_str(&format!(" = {other}")),
    }
    for key in ["duty", "duty_pct", "ms"] {
        if let Some(v) = params.get(key) {
            what.push_str(&format!(" {key} {v}"));
        }
    }
    what
}

fn refused(refusal: &Refusal, command: &str) -> ErrorShape {
    ErrorShape::invalid(refusal.message(command))
}

/// Run a node command for a caller holding `caller_scopes`, through every
/// gate. Returns the `node.invoke` response payload. Every command that
/// changes something is written to the audit log with its outcome, and an
/// actuator write gets an INFO log line.
pub async fn invoke(
    shared: &Arc<Shared>,
    caller_scopes: &[String],
    req: InvokeRequest,
) -> Result<Value, ErrorShape> {
    let audited = !only_looks(&req.command);
    let is_local = req.node == "local"
        || shared
            .local_node
            .as_ref()
            .is_some_and(|l| l.node_id() == req.node);
    let node = if is_local {
        "local".to_owned()
    } else {
        req.node.chars().take(16).collect()
    };
    let (who, what) = (req.who.clone(), describe(&req.command, &req.params));
    let result = gated_invoke(shared, caller_scopes, req).await;
    if audited {
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("refused: {}", e.message),
        };
        tracing::info!(%who, %node, %outcome, "{what}");
        shared.store.audit(crate::store::AuditEntry::new(
            &who,
            "invoke",
            &format!("{what} on node {node}"),
            &outcome,
        ));
    }
    result
}

async fn gated_invoke(
    shared: &Arc<Shared>,
    caller_scopes: &[String],
    req: InvokeRequest,
) -> Result<Value, ErrorShape> {
    if policy::invoke_needs_admin(&req.command) && !scopes::satisfied(caller_scopes, scopes::ADMIN)
    {
        return Err(ErrorShape::missing_scope(scopes::ADMIN));
    }
    let node_id = resolve_node(shared, &req.node).await?;
    let node_policy = &shared.node_policy;
    if let Some(local) = shared
        .local_node
        .as_ref()
        .filter(|l| l.node_id() == node_id)
    {
        if !local.commands().contains(&req.command.as_str()) {
            return Err(refused(&Refusal::NotDeclared, &req.command));
        }
        node_policy
            .permits(&req.command)
            .map_err(|r| refused(&r, &req.command))?;
        return local
            .invoke(shared, &req.who, &req.command, req.params, req.timeout)
            .await;
    }
    let record = shared
        .store
        .node_record(&node_id)
        .await
        .map_err(store_error)?;
    let Some(live) = shared.nodes.get(&node_id) else {
        return Err(invoke_error(&InvokeError::NotConnected));
    };
    let approved = record.map(|r| r.approved_commands).unwrap_or_default();
    node_policy
        .check(&req.command, &live.info.commands, &approved)
        .map_err(|r| refused(&r, &req.command))?;
    let params_json = (!req.params.is_null()).then(|| req.params.to_string());
    match shared
        .nodes
        .invoke(
            &node_id,
            &req.command,
            params_json,
            req.timeout,
            &req.idempotency_key,
        )
        .await
    {
        Ok(InvokeReply::Ok {
            payload,
            payload_json,
        }) => Ok(json!({
            "ok": true, "nodeId": node_id, "command": req.command, "payload": payload, "payloadJSON": payload_json,
        })),
        Ok(InvokeReply::Err { code, message }) => {
            Err(
                ErrorShape::new(codes::UNAVAILABLE, message.clone()).with_details(
                    json!({"code": "NODE_ERROR", "nodeError": {"code": code, "message": message}}),
                ),
            )
        }
        Err(e) => Err(invoke_error(&e)),
    }
}
