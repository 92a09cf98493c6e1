//! Operator node methods: `node.list|describe|rename|invoke` and the
//! command-surface approvals `node.pair.*`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::super::invoke::{self, InvokeRequest};
use super::super::nodes::{self as gw_nodes, paired_view, pending_view, resolve_node};
use super::{Call, Reply, parse, store_error};
use crate::ids;
use crate::limits;
use crate::node::policy;
use crate::protocol::connect::Role;
use crate::protocol::error::ErrorShape;
use crate::protocol::scopes;

/// `node.list`.
pub async fn list(call: &Call, _params: Value) -> Reply {
    gw_nodes::list(&call.shared).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeIdParams {
    node_id: String,
}

/// `node.describe`.
pub async fn describe(call: &Call, params: Value) -> Reply {
    let p: NodeIdParams = parse("node.describe", params)?;
    gw_nodes::describe(&call.shared, &p.node_id).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RenameParams {
    node_id: String,
    display_name: String,
}

/// `node.rename`: an operator's name for a paired node, in one transaction.
pub async fn rename(call: &Call, params: Value) -> Reply {
    let p: RenameParams = parse("node.rename", params)?;
    let name = p.display_name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ErrorShape::invalid_params(
            "node.rename",
            "displayName must be 1 to 64 characters",
        ));
    }
    let node_id = resolve_node(&call.shared, &p.node_id).await?;
    let new_name = name.clone();
    let renamed = call
        .shared
        .store
        .update_node_record(&node_id, move |current| match current {
            Some(mut record) => {
                record.renamed_to = Some(new_name);
                Ok((Some(record), true))
            }
            None => Ok((None, false)),
        })
        .await
        .map_err(store_error)?;
    if !renamed {
        return Err(ErrorShape::invalid(format!("node {node_id} is not paired")));
    }
    Ok(json!({"nodeId": node_id, "displayName": name}))
}

/// `node.pair.list`.
pub async fn pair_list(call: &Call, _params: Value) -> Reply {
    let records = call
        .shared
        .store
        .node_records()
        .await
        .map_err(store_error)?;
    let pending: Vec<Value> = records
        .iter()
        .filter_map(|r| r.pending.as_ref().map(|p| pending_view(r, p)))
        .collect();
    let paired: Vec<Value> = records
        .iter()
        .filter(|r| r.approved_at_ms.is_some())
        .map(paired_view)
        .collect();
    Ok(json!({"pending": pending, "paired": paired}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIdParams {
    request_id: String,
}

fn unknown_request(id: &str) -> ErrorShape {
    ErrorShape::invalid(format!("unknown requestId: {id}"))
}

/// `node.pair.approve`: the pending surface becomes the approved one, in
/// one transaction. The caller needs more scopes when the surface holds
/// shell or file commands.
pub async fn pair_approve(call: &Call, params: Value) -> Reply {
    let p: RequestIdParams = parse("node.pair.approve", params)?;
    let shared = &call.shared;
    let granted = call.conn.scopes.clone();
    let now = ids::now_ms();
    let (record, outcome) = shared
        .store
        .update_node_by_request(&p.request_id, move |record| {
            let Some(request) = record.pending.clone() else {
                return Err(None);
            };
            if let Some(scope) = policy::approve_scopes(&request.commands)
                .into_iter()
                .find(|scope| !scopes::satisfied(&granted, scope))
            {
                return Err(Some(scope));
            }
            record.approved_commands = request.commands.clone();
            record.pending = None;
            record.approved_at_ms = Some(now);
            Ok(request.commands.len())
        })
        .await
        .map_err(store_error)?
        .ok_or_else(|| unknown_request(&p.request_id))?;
    let approved = match outcome {
        Ok(n) => n,
        Err(Some(scope)) => return Err(ErrorShape::missing_scope(scope)),
        Err(None) => return Err(unknown_request(&p.request_id)),
    };
    tracing::info!(node_id = %record.node_id, commands = approved, "node commands approved");
    let resolved = json!({"requestId": p.request_id, "nodeId": record.node_id, "decision": "approved", "ts": now});
    shared
        .nodes
        .send(&record.node_id, "node.pair.resolved", &resolved);
    shared.bus.broadcast("node.pair.resolved", &resolved);
    Ok(json!({"requestId": p.request_id, "node": paired_view(&record)}))
}

/// `node.pair.reject`: the pending surface is dropped; approved commands stay.
pub async fn pair_reject(call: &Call, params: Value) -> Reply {
    let p: RequestIdParams = parse("node.pair.reject", params)?;
    let shared = &call.shared;
    let (record, ()) = shared
        .store
        .update_node_by_request(&p.request_id, |record| record.pending = None)
        .await
        .map_err(store_error)?
        .ok_or_else(|| unknown_request(&p.request_id))?;
    let resolved = json!({"requestId": p.request_id, "nodeId": record.node_id, "decision": "rejected", "ts": ids::now_ms()});
    shared
        .nodes
        .send(&record.node_id, "node.pair.resolved", &resolved);
    shared.bus.broadcast("node.pair.resolved", &resolved);
    Ok(json!({"requestId": p.request_id, "nodeId": record.node_id}))
}

/// `node.pair.remove`: forget the node and close its connection.
pub async fn pair_remove(call: &Call, params: Value) -> Reply {
    let p: NodeIdParams = parse("node.pair.remove", params)?;
    let shared = &call.shared;
    if !shared
        .store
        .remove_node_record(&p.node_id)
        .await
        .map_err(store_error)?
    {
        return Err(ErrorShape::invalid(format!("unknown node: {}", p.node_id)));
    }
    for conn in shared.bus.connections() {
        if conn.device_id.as_deref() == Some(p.node_id.as_str()) && conn.role == Role::Node {
            conn.kick.notify_one();
        }
    }
    Ok(json!({"nodeId": p.node_id, "removed": true}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvokeParams {
    node_id: String,
    command: String,
    #[serde(default)]
    params: Value,
    #[serde(default)]
    timeout_ms: Option<u64>,
    idempotency_key: String,
}

/// `node.invoke`: idempotency, then the one invoke path with the caller's
/// scopes.
pub async fn invoke(call: &Call, params: Value) -> Reply {
    let p: InvokeParams = parse("node.invoke", params)?;
    if p.idempotency_key.trim().is_empty() {
        return Err(ErrorShape::invalid_params(
            "node.invoke",
            "idempotencyKey must not be empty",
        ));
    }
    let shared = &call.shared;
    let node_id = resolve_node(shared, &p.node_id).await?;
    // What makes two requests the same request (the node however it was
    // named, the command and its params; not the deadline).
    let fingerprint = ids::fingerprint(&json!([node_id, p.command, p.params]).to_string());
    let timeout = Duration::from_millis(
        p.timeout_ms
            .unwrap_or(shared.settings.config.nodes.invoke_timeout_ms)
            .clamp(1, limits::NODE_INVOKE_MAX_TIMEOUT.as_millis() as u64),
    );
    let key = format!("node.invoke:{}", p.idempotency_key);
    let in_flight = match shared.idempotency.begin(&key, &fingerprint) {
        Ok(guard) => guard,
        Err(seen) => return seen.0,
    };
    let request = InvokeRequest {
        node: node_id,
        command: p.command,
        params: p.params,
        timeout,
        idempotency_key: p.idempotency_key,
        who: call.conn.who.clone(),
    };
    let result = invoke::invoke(shared, &call.conn.scopes, request).await;
    in_flight.finish(&result);
    result
}
