//! Node methods: the registry of connected nodes, command-surface approval
//! (`node.pair.*`), `node.list|describe|rename`, `node.invoke` routing and
//! the node-role methods (`node.invoke.result`, `node.event`, …).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::bus::Conn;
use super::methods::{parse, store_error};
use crate::ids;
use crate::limits;
use crate::node::policy::{self, Refusal};
use crate::node::{InvokeError, InvokeReply, NodeInfo, NodeLink};
use crate::protocol::connect::ConnectParams;
use crate::protocol::error::{ErrorShape, codes};
use crate::protocol::scopes;
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

/// A node connected: register it, create or update its record, and ask for
/// approval when it declares commands not yet approved.
pub fn on_connect(shared: &Shared, conn: &Arc<Conn>, info: NodeInfo) -> Result<(), ErrorShape> {
    let now = ids::now_ms();
    let mut record = shared
        .store
        .node_record(&info.node_id)
        .map_err(store_error)?
        .unwrap_or_else(|| NodeRecord {
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
    shared.store.put_node_record(&record).map_err(store_error)?;
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

fn pending_view(record: &NodeRecord, request: &SurfaceRequest) -> Value {
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

fn paired_view(record: &NodeRecord) -> Value {
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
fn node_entry(shared: &Shared, record: Option<&NodeRecord>, node_id: &str) -> Value {
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

/// `node.list`.
pub fn list(shared: &Shared) -> Result<Value, ErrorShape> {
    let records = shared.store.node_records().map_err(store_error)?;
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

/// Resolve a node reference: `local`, an exact id, a unique display name or
/// a unique id prefix of at least 6 characters.
pub fn resolve_node(shared: &Shared, reference: &str) -> Result<String, ErrorShape> {
    let reference = reference.trim();
    if let Some(local) = &shared.local_node
        && (reference == "local"
            || reference == local.node_id()
            || Some(reference) == local.display_name().as_deref())
    {
        return Ok(local.node_id().to_owned());
    }
    let records = shared.store.node_records().map_err(store_error)?;
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeIdParams {
    node_id: String,
}

/// `node.describe`.
pub fn describe(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: NodeIdParams = parse("node.describe", params)?;
    let node_id = resolve_node(shared, &p.node_id)?;
    if let Some(local) = &shared.local_node
        && local.node_id() == node_id
    {
        let mut entry = local.entry();
        entry["ts"] = json!(ids::now_ms());
        return Ok(entry);
    }
    let record = shared.store.node_record(&node_id).map_err(store_error)?;
    let mut entry = node_entry(shared, record.as_ref(), &node_id);
    entry["ts"] = json!(ids::now_ms());
    Ok(entry)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RenameParams {
    node_id: String,
    display_name: String,
}

/// `node.rename`.
pub fn rename(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: RenameParams = parse("node.rename", params)?;
    let name = p.display_name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ErrorShape::invalid_params(
            "node.rename",
            "displayName must be 1 to 64 characters",
        ));
    }
    let node_id = resolve_node(shared, &p.node_id)?;
    let mut record = shared
        .store
        .node_record(&node_id)
        .map_err(store_error)?
        .ok_or_else(|| ErrorShape::invalid(format!("node {node_id} is not paired")))?;
    record.renamed_to = Some(name.to_owned());
    shared.store.put_node_record(&record).map_err(store_error)?;
    Ok(json!({"nodeId": node_id, "displayName": name}))
}

/// `node.pair.list`.
pub fn pair_list(shared: &Shared) -> Result<Value, ErrorShape> {
    let records = shared.store.node_records().map_err(store_error)?;
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

/// `node.pair.approve`: the pending surface becomes the approved one. The
/// caller needs more scopes when the surface holds shell or file commands.
pub fn pair_approve(shared: &Shared, conn: &Conn, params: Value) -> Result<Value, ErrorShape> {
    let p: RequestIdParams = parse("node.pair.approve", params)?;
    let mut record = shared
        .store
        .node_record_by_request(&p.request_id)
        .map_err(store_error)?
        .ok_or_else(|| ErrorShape::invalid(format!("unknown requestId: {}", p.request_id)))?;
    let Some(request) = record.pending.clone() else {
        return Err(ErrorShape::invalid(format!(
            "unknown requestId: {}",
            p.request_id
        )));
    };
    for scope in policy::approve_scopes(&request.commands) {
        if !scopes::satisfied(&conn.scopes, scope) {
            return Err(ErrorShape::missing_scope(scope));
        }
    }
    let now = ids::now_ms();
    record.approved_commands = request.commands.clone();
    record.pending = None;
    record.approved_at_ms = Some(now);
    shared.store.put_node_record(&record).map_err(store_error)?;
    tracing::info!(node_id = %record.node_id, commands = request.commands.len(), "node commands approved");
    let resolved = json!({"requestId": p.request_id, "nodeId": record.node_id, "decision": "approved", "ts": now});
    shared
        .nodes
        .send(&record.node_id, "node.pair.resolved", &resolved);
    shared.bus.broadcast("node.pair.resolved", &resolved);
    Ok(json!({"requestId": p.request_id, "node": paired_view(&record)}))
}

/// `node.pair.reject`: the pending surface is dropped; approved commands stay.
pub fn pair_reject(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: RequestIdParams = parse("node.pair.reject", params)?;
    let mut record = shared
        .store
        .node_record_by_request(&p.request_id)
        .map_err(store_error)?
        .ok_or_else(|| ErrorShape::invalid(format!("unknown requestId: {}", p.request_id)))?;
    record.pending = None;
    shared.store.put_node_record(&record).map_err(store_error)?;
    let resolved = json!({"requestId": p.request_id, "nodeId": record.node_id, "decision": "rejected", "ts": ids::now_ms()});
    shared
        .nodes
        .send(&record.node_id, "node.pair.resolved", &resolved);
    shared.bus.broadcast("node.pair.resolved", &resolved);
    Ok(json!({"requestId": p.request_id, "nodeId": record.node_id}))
}

/// `node.pair.remove`: forget the node and close its connection.
pub fn pair_remove(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: NodeIdParams = parse("node.pair.remove", params)?;
    if !shared
        .store
        .remove_node_record(&p.node_id)
        .map_err(store_error)?
    {
        return Err(ErrorShape::invalid(format!("unknown node: {}", p.node_id)));
    }
    for conn in shared.bus.connections() {
        if conn.device_id.as_deref() == Some(p.node_id.as_str())
            && conn.role == crate::protocol::connect::Role::Node
        {
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

fn invoke_error(e: &InvokeError) -> ErrorShape {
    let error = ErrorShape::new(codes::UNAVAILABLE, e.message()).with_details(
        json!({"code": e.code(), "nodeError": {"code": e.code(), "message": e.message()}}),
    );
    match e {
        InvokeError::Busy => error.retry_after(500),
        _ => error,
    }
}

/// `node.invoke`: gates, idempotency, then route to the node and wait.
pub async fn invoke(shared: &Arc<Shared>, conn: &Conn, params: Value) -> Result<Value, ErrorShape> {
    let p: InvokeParams = parse("node.invoke", params)?;
    if p.idempotency_key.trim().is_empty() {
        return Err(ErrorShape::invalid_params(
            "node.invoke",
            "idempotencyKey must not be empty",
        ));
    }
    if policy::invoke_needs_admin(&p.command) && !scopes::satisfied(&conn.scopes, scopes::ADMIN) {
        return Err(ErrorShape::missing_scope(scopes::ADMIN));
    }
    let node_id = resolve_node(shared, &p.node_id)?;
    let timeout = Duration::from_millis(
        p.timeout_ms
            .unwrap_or(shared.settings.config.nodes.invoke_timeout_ms)
            .clamp(1, limits::NODE_INVOKE_MAX_TIMEOUT.as_millis() as u64),
    );
    let key = format!("node.invoke:{node_id}:{}", p.idempotency_key);
    let cached = shared.idempotency_begin(&key);
    if let Some(result) = cached {
        return result;
    }
    let result = invoke_uncached(
        shared,
        &node_id,
        &p.command,
        p.params,
        timeout,
        &p.idempotency_key,
    )
    .await;
    shared.idempotency_finish(&key, &result);
    result
}

pub(super) async fn invoke_uncached(
    shared: &Arc<Shared>,
    node_id: &str,
    command: &str,
    params: Value,
    timeout: Duration,
    idempotency_key: &str,
) -> Result<Value, ErrorShape> {
    let node_policy = &shared.node_policy;
    if let Some(local) = shared
        .local_node
        .as_ref()
        .filter(|l| l.node_id() == node_id)
    {
        local_check(node_policy, command, local.commands())?;
        return local.invoke(shared, command, params, timeout).await;
    }
    let record = shared.store.node_record(node_id).map_err(store_error)?;
    let Some(live) = shared.nodes.get(node_id) else {
        return Err(invoke_error(&InvokeError::NotConnected));
    };
    let approved = record.map(|r| r.approved_commands).unwrap_or_default();
    node_policy
        .check(command, &live.info.commands, &approved)
        .map_err(|refusal| ErrorShape::invalid(refusal.message(command)))?;
    let params_json = (!params.is_null()).then(|| params.to_string());
    match shared
        .nodes
        .invoke(node_id, command, params_json, timeout, idempotency_key)
        .await
    {
        Ok(InvokeReply::Ok {
            payload,
            payload_json,
        }) => Ok(json!({
            "ok": true, "nodeId": node_id, "command": command, "payload": payload, "payloadJSON": payload_json,
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

fn local_check(
    node_policy: &policy::CommandPolicy,
    command: &str,
    commands: &[&str],
) -> Result<(), ErrorShape> {
    if !commands.contains(&command) {
        return Err(ErrorShape::invalid(Refusal::NotDeclared.message(command)));
    }
    node_policy
        .permits(command)
        .map_err(|refusal| ErrorShape::invalid(refusal.message(command)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultParams {
    id: String,
    node_id: String,
    ok: bool,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default, rename = "payloadJSON")]
    payload_json: Option<String>,
    #[serde(default)]
    error: Option<Value>,
}

/// `node.invoke.result` from a node.
pub fn invoke_result(shared: &Shared, conn: &Conn, params: Value) -> Result<Value, ErrorShape> {
    let p: ResultParams = parse("node.invoke.result", params)?;
    if conn.device_id.as_deref() != Some(p.node_id.as_str()) {
        return Err(ErrorShape::invalid("node.invoke.result for another node"));
    }
    let reply = if p.ok {
        match (p.payload, p.payload_json) {
            (_, Some(text)) if text.len() > limits::NODE_RESULT_MAX_BYTES => InvokeReply::Err {
                code: "RESULT_TOO_LARGE".into(),
                message: format!(
                    "node result exceeds {} bytes",
                    limits::NODE_RESULT_MAX_BYTES
                ),
            },
            (_, Some(text)) => InvokeReply::Ok {
                payload: serde_json::from_str(&text).unwrap_or(Value::String(text.clone())),
                payload_json: Some(text),
            },
            (payload, None) => InvokeReply::Ok {
                payload: payload.unwrap_or(Value::Null),
                payload_json: None,
            },
        }
    } else {
        let error = p.error.unwrap_or(Value::Null);
        InvokeReply::Err {
            code: error["code"].as_str().unwrap_or("NODE_ERROR").to_owned(),
            message: error["message"]
                .as_str()
                .unwrap_or("node reported an error")
                .to_owned(),
        }
    };
    // A late result (after a timeout or cancel) is acknowledged and ignored.
    let delivered = shared.nodes.resolve(&p.id, &p.node_id, reply);
    if !delivered {
        tracing::debug!(invoke = %p.id, "late or unknown node.invoke.result ignored");
    }
    Ok(json!({"ok": true}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventParams {
    event: String,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default, rename = "payloadJSON")]
    payload_json: Option<String>,
}

/// `node.event` from a node: host stats are kept; every event is relayed to
/// read-scoped operators as `node.event`.
pub fn node_event(shared: &Shared, conn: &Conn, params: Value) -> Result<Value, ErrorShape> {
    let p: EventParams = parse("node.event", params)?;
    let node_id = conn.device_id.clone().unwrap_or_default();
    let payload = match (p.payload, p.payload_json) {
        (Some(v), _) => v,
        (None, Some(text)) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        (None, None) => Value::Null,
    };
    if p.event == "node.host.stats" {
        let mut stats = payload.clone();
        if stats.is_object() {
            stats["updatedAtMs"] = json!(ids::now_ms());
        }
        shared.nodes.set_host_stats(&node_id, stats);
    }
    shared.bus.broadcast(
        "node.event",
        &json!({"nodeId": node_id, "event": p.event, "payload": payload, "ts": ids::now_ms()}),
    );
    Ok(json!({"ok": true, "event": p.event, "handled": true, "reason": "updated"}))
}

/// Node-role bookkeeping calls of OpenClaw's node host. The runner inventory
/// waits for the command surface to be approved, as OpenClaw does.
pub fn node_update(shared: &Shared, conn: &Conn, method: &str) -> Result<Value, ErrorShape> {
    let node_id = conn.device_id.clone().unwrap_or_default();
    match method {
        "node.skills.update" => Ok(json!({"nodeId": node_id, "skills": []})),
        "node.pluginTools.update" => Ok(json!({"nodeId": node_id, "tools": []})),
        _ => {
            let record = shared.store.node_record(&node_id).map_err(store_error)?;
            if let Some(request) = record.and_then(|r| r.pending) {
                return Err(ErrorShape::new(
                    codes::UNAVAILABLE,
                    format!(
                        "node capability surface is awaiting operator approval; run `pinclaw nodes approve {}` (see `pinclaw nodes pending`), then this node retries automatically",
                        request.request_id
                    ),
                ));
            }
            Ok(json!({"nodeId": node_id}))
        }
    }
}
