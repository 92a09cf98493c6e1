//! Nodes as the gateway sees them: registering a node's connection and its
//! pairing record, the views `node.list`/`node.pair.list` show, and
//! resolving a node reference (`local`, an id, a name or an id prefix).

use std::sync::Arc;

use serde_json::{Value, json};

use super::Shared;
use super::bus::Conn;
use crate::ids;
use crate::node::policy;
use crate::node::{NodeInfo, NodeLink};
use crate::protocol::connect::ConnectParams;
use crate::protocol::error::{ErrorShape, codes};
use crate::store::{NodeRecord, SurfaceRequest};

impl NodeLink for Conn {
    fn send(&self, event: &str, payload: &Value) -> bool {
        self.send_event(event, payload) == super::outbound::Pushed::Queued
    }
    fn conn_id(&self) -> &str {
        &self.conn_id
    }
}

/// Build the node's self-description from its connect params.
pub fn node_info(node_id: &str, params: &ConnectParams, remote_ip: &str) -> NodeInfo {
    NodeInfo {
        node_id: node_id.to_owned(),
        display_name: params.client.display_name.clone(),
        platform: params.client.platform.clone(),
        version: params.client.version.clone(),
        client_id: params.client.id.clone(),
        client_mode: params.client.mode.clone(),
        device_family: params.client.device_family.clone(),
        model_identifier: params.client.model_identifier.clone(),
        remote_ip: Some(remote_ip.to_owned()),
        caps: params.caps.clone(),
        commands: params.commands.clone(),
        permissions: params.permissions.clone(),
        path_env: params.path_env.clone(),
    }
}

/// The node's record after a connect: its self-description refreshed, and
/// a new surface request when it declares commands not yet approved.
/// Returns the record and the new request, if one was made.
fn record_connect(
    current: Option<NodeRecord>,
    info: &NodeInfo,
    now: i64,
) -> (NodeRecord, Option<SurfaceRequest>) {
    let mut record = current.unwrap_or_else(|| NodeRecord {
        node_id: info.node_id.clone(),
        display_name: None,
        renamed_to: None,
        client_id: String::new(),
        client_mode: String::new(),
        platform: String::new(),
        version: String::new(),
        device_family: None,
        caps: Vec::new(),
        approved_commands: Vec::new(),
        pending: None,
        created_at_ms: now,
        approved_at_ms: None,
        last_seen_at_ms: now,
    });
    record.display_name = info.display_name.clone();
    record.client_id = info.client_id.clone();
    record.client_mode = info.client_mode.clone();
    record.platform = info.platform.clone();
    record.version = info.version.clone();
    record.device_family = info.device_family.clone();
    record.caps = info.caps.clone();
    record.last_seen_at_ms = now;
    let widened = info
        .commands
        .iter()
        .any(|c| !record.approved_commands.contains(c));
    let mut requested = None;
    if widened {
        let same = record
            .pending
            .as_ref()
            .is_some_and(|p| p.commands == info.commands);
        if !same {
            record.pending = Some(SurfaceRequest {
                request_id: ids::uuid_v4(),
                commands: info.commands.clone(),
                caps: info.caps.clone(),
                ts: now,
            });
            requested = record.pending.clone();
        }
    } else {
        record.pending = None;
    }
    (record, requested)
}

/// A node connected: create or update its record (one transaction),
/// register it, and ask for approval when it declares commands not yet
/// approved.
pub async fn on_connect(
    shared: &Shared,
    conn: &Arc<Conn>,
    info: NodeInfo,
) -> Result<(), ErrorShape> {
    let now = ids::now_ms();
    let for_record = info.clone();
    let (record, requested) = shared
        .store
        .update_node_record(&info.node_id, move |current| {
            let (record, requested) = record_connect(current, &for_record, now);
            Ok((Some(record.clone()), (record, requested)))
        })
        .await
        .map_err(super::errors::store_error)?;
    shared
        .nodes
        .attach(info, conn.clone())
        .map_err(|_| ErrorShape::new(codes::UNAVAILABLE, "too many nodes connected"))?;
    if let Some(request) = requested {
        tracing::info!(
            node_id = %record.node_id,
            request_id = %request.request_id,
            "node declared commands that need approval: pinclaw nodes approve {}",
            request.request_id
        );
        shared
            .bus
            .broadcast("node.pair.requested", &pending_view(&record, &request));
    }
    shared.bus.broadcast(
        "node.presence",
        &json!({"nodeId": record.node_id, "connected": true, "ts": now}),
    );
    Ok(())
}

/// A node's connection ended.
pub fn on_disconnect(shared: &Shared, node_id: &str, conn_id: &str) {
    if shared.nodes.detach(node_id, conn_id) {
        shared.bus.broadcast(
            "node.presence",
            &json!({"nodeId": node_id, "connected": false, "ts": ids::now_ms()}),
        );
    }
}

fn approval_state(record: &NodeRecord) -> &'static str {
    match (&record.pending, record.approved_at_ms) {
        (Some(_), None) => "pending-approval",
        (Some(_), Some(_)) => "pending-reapproval",
        (None, Some(_)) => "approved",
        (None, None) if record.approved_commands.is_empty() => "approved",
        (None, None) => "unapproved",
    }
}

pub fn pending_view(record: &NodeRecord, request: &SurfaceRequest) -> Value {
    json!({
        "requestId": request.request_id,
        "nodeId": record.node_id,
        "clientId": record.client_id,
        "clientMode": record.client_mode,
        "displayName": record.name(),
        "platform": record.platform,
        "version": record.version,
        "deviceFamily": record.device_family,
        "caps": request.caps,
        "commands": request.commands,
        "requiredApproveScopes": policy::approve_scopes(&request.commands),
        "silent": false,
        "ts": request.ts,
    })
}

pub fn paired_view(record: &NodeRecord) -> Value {
    json!({
        "nodeId": record.node_id,
        "clientId": record.client_id,
        "clientMode": record.client_mode,
        "displayName": record.name(),
        "platform": record.platform,
        "version": record.version,
        "deviceFamily": record.device_family,
        "caps": record.caps,
        "commands": record.approved_commands,
        "createdAtMs": record.created_at_ms,
        "approvedAtMs": record.approved_at_ms,
        "lastSeenAtMs": record.last_seen_at_ms,
        "lastSeenReason": "connect",
    })
}

/// The `node.list` entry of a node (live, offline, or the local board).
pub fn node_entry(shared: &Shared, record: Option<&NodeRecord>, node_id: &str) -> Value {
    let live = shared.nodes.get(node_id);
    let info = live.as_ref().map(|l| &l.info);
    let name = record
        .and_then(|r| r.renamed_to.clone())
        .or_else(|| info.and_then(|i| i.display_name.clone()))
        .or_else(|| record.and_then(|r| r.display_name.clone()));
    json!({
        "nodeId": node_id,
        "displayName": name,
        "platform": info.map(|i| i.platform.clone()).or_else(|| record.map(|r| r.platform.clone())),
        "version": info.map(|i| i.version.clone()).or_else(|| record.map(|r| r.version.clone())),
        "clientId": info.map(|i| i.client_id.clone()).or_else(|| record.map(|r| r.client_id.clone())),
        "clientMode": info.map(|i| i.client_mode.clone()).or_else(|| record.map(|r| r.client_mode.clone())),
        "deviceFamily": info.and_then(|i| i.device_family.clone()).or_else(|| record.and_then(|r| r.device_family.clone())),
        "modelIdentifier": info.and_then(|i| i.model_identifier.clone()),
        "remoteIp": info.and_then(|i| i.remote_ip.clone()),
        "caps": info.map(|i| i.caps.clone()).or_else(|| record.map(|r| r.caps.clone())).unwrap_or_default(),
        "commands": info.map(|i| i.commands.clone()).or_else(|| record.map(|r| r.approved_commands.clone())).unwrap_or_default(),
        "approvedCommands": record.map(|r| r.approved_commands.clone()).unwrap_or_default(),
        "permissions": info.map(|i| Value::Object(i.permissions.clone())).unwrap_or(json!({})),
        "pathEnv": info.and_then(|i| i.path_env.clone()),
        "hostStats": live.as_ref().and_then(|l| l.host_stats.clone()),
        "sessionHost": false,
        "nodePluginTools": [],
        "approvalState": record.map(approval_state).unwrap_or("unapproved"),
        "pendingRequestId": record.and_then(|r| r.pending.as_ref().map(|p| p.request_id.clone())),
        "connectedAtMs": live.as_ref().map(|l| l.connected_at_ms),
        "lastConnectedAtMs": live.as_ref().map(|l| l.connected_at_ms),
        "lastSeenAtMs": record.map(|r| r.last_seen_at_ms),
        "lastSeenReason": "connect",
        "approvedAtMs": record.and_then(|r| r.approved_at_ms),
        "paired": record.is_some(),
        "connected": live.is_some(),
    })
}

/// Resolve a node reference: `local`, an exact id, a unique display name or
/// a unique id prefix of at least 6 characters.
pub async fn resolve_node(shared: &Shared, reference: &str) -> Result<String, ErrorShape> {
    let reference = reference.trim();
    if let Some(local) = &shared.local_node
        && (reference == "local"
            || reference == local.node_id()
            || Some(reference) == local.display_name().as_deref())
    {
        return Ok(local.node_id().to_owned());
    }
    let records = shared
        .store
        .node_records()
        .await
        .map_err(super::errors::store_error)?;
    let mut known: Vec<(String, Option<String>)> = records
        .iter()
        .map(|r| (r.node_id.clone(), r.name().map(str::to_owned)))
        .collect();
    for live in shared.nodes.list() {
        if !known.iter().any(|(id, _)| *id == live.info.node_id) {
            known.push((live.info.node_id.clone(), live.info.display_name.clone()));
        }
    }
    if known.iter().any(|(id, _)| id == reference) {
        return Ok(reference.to_owned());
    }
    let by_name: Vec<&String> = known
        .iter()
        .filter(|(_, n)| n.as_deref() == Some(reference))
        .map(|(id, _)| id)
        .collect();
    let by_prefix: Vec<&String> = if reference.len() >= 6 {
        known
            .iter()
            .filter(|(id, _)| id.starts_with(reference))
            .map(|(id, _)| id)
            .collect()
    } else {
        Vec::new()
    };
    match (by_name.as_slice(), by_prefix.as_slice()) {
        ([one], _) | ([], [one]) => Ok((*one).clone()),
        ([], []) => Err(ErrorShape::invalid(format!("unknown node: {reference}"))),
        _ => Err(ErrorShape::invalid(format!(
            "ambiguous node reference: {reference}"
        ))),
    }
}

/// Every node: the gateway's own board, paired nodes (connected or not)
/// and connected nodes without a record (`node.list`, the `nodes` tool).
pub async fn list(shared: &Shared) -> Result<Value, ErrorShape> {
    let records = shared
        .store
        .node_records()
        .await
        .map_err(super::errors::store_error)?;
    let mut nodes: Vec<Value> = Vec::new();
    if let Some(local) = &shared.local_node {
        nodes.push(local.entry());
    }
    for record in &records {
        nodes.push(node_entry(shared, Some(record), &record.node_id));
    }
    for live in shared.nodes.list() {
        if !records.iter().any(|r| r.node_id == live.info.node_id) {
            nodes.push(node_entry(shared, None, &live.info.node_id));
        }
    }
    Ok(json!({"ts": ids::now_ms(), "nodes": nodes}))
}

/// One node by reference (`node.describe`, the `nodes` tool).
pub async fn describe(shared: &Shared, reference: &str) -> Result<Value, ErrorShape> {
    let node_id = resolve_node(shared, reference).await?;
    let mut entry = match &shared.local_node {
        Some(local) if local.node_id() == node_id => local.entry(),
        _ => {
            let record = shared
                .store
                .node_record(&node_id)
                .await
                .map_err(super::errors::store_error)?;
            node_entry(shared, record.as_ref(), &node_id)
        }
    };
    entry["ts"] = json!(ids::now_ms());
    Ok(entry)
}
