//! The method table: which role and scope each method needs, and the
//! handlers of the methods the gateway core serves.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::bus::Conn;
use super::{Shared, chat, nodes, pairing};
use crate::ids;
use crate::limits;
use crate::protocol::connect::Role;
use crate::protocol::error::ErrorShape;
use crate::protocol::frames::{self, RequestFrame};
use crate::protocol::scopes;

/// What a method requires of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, any role (only `health`).
    Open,
    /// Operators holding this scope.
    Operator(&'static str),
    /// Node connections only.
    Node,
}

/// Methods pinclaw serves, with their access rule. `hello-ok.features.methods`
/// is derived from this table.
pub const SERVED: &[(&str, Access)] = &[
    ("health", Access::Open),
    ("status", Access::Operator(scopes::READ)),
    ("system-presence", Access::Operator(scopes::READ)),
    ("gateway.identity.get", Access::Operator(scopes::READ)),
    ("config.get", Access::Operator(scopes::READ)),
    ("logs.tail", Access::Operator(scopes::READ)),
    ("device.pair.list", Access::Operator(scopes::PAIRING)),
    ("device.pair.approve", Access::Operator(scopes::PAIRING)),
    ("device.pair.reject", Access::Operator(scopes::PAIRING)),
    ("device.pair.remove", Access::Operator(scopes::PAIRING)),
    ("device.token.rotate", Access::Operator(scopes::PAIRING)),
    ("device.token.revoke", Access::Operator(scopes::PAIRING)),
    ("node.list", Access::Operator(scopes::READ)),
    ("node.describe", Access::Operator(scopes::READ)),
    ("node.rename", Access::Operator(scopes::PAIRING)),
    ("node.invoke", Access::Operator(scopes::WRITE)),
    ("node.pair.list", Access::Operator(scopes::PAIRING)),
    ("node.pair.approve", Access::Operator(scopes::PAIRING)),
    ("node.pair.reject", Access::Operator(scopes::PAIRING)),
    ("node.pair.remove", Access::Operator(scopes::PAIRING)),
    ("agent", Access::Operator(scopes::WRITE)),
    ("agent.wait", Access::Operator(scopes::WRITE)),
    ("chat.send", Access::Operator(scopes::WRITE)),
    ("chat.history", Access::Operator(scopes::READ)),
    ("chat.abort", Access::Operator(scopes::WRITE)),
    ("sessions.list", Access::Operator(scopes::READ)),
    ("sessions.get", Access::Operator(scopes::READ)),
    ("sessions.subscribe", Access::Operator(scopes::READ)),
    ("sessions.patch", Access::Operator(scopes::WRITE)),
    ("sessions.reset", Access::Operator(scopes::ADMIN)),
    ("sessions.delete", Access::Operator(scopes::ADMIN)),
    ("models.list", Access::Operator(scopes::READ)),
    ("exec.approval.list", Access::Operator(scopes::APPROVALS)),
    ("exec.approval.resolve", Access::Operator(scopes::APPROVALS)),
    ("node.invoke.result", Access::Node),
    ("node.event", Access::Node),
    ("node.runnerInventory.update", Access::Node),
    ("node.skills.update", Access::Node),
    ("node.pluginTools.update", Access::Node),
];

/// Methods that may wait a long time (on a node, a model, an operator): they
/// run beside the connection loop instead of blocking it.
pub fn is_long_running(method: &str) -> bool {
    matches!(method, "node.invoke" | "agent" | "agent.wait")
}

/// Events pinclaw emits (`hello-ok.features.events`).
pub const SERVED_EVENTS: &[&str] = &[
    "connect.challenge",
    "tick",
    "agent",
    "chat",
    "sessions.changed",
    "health",
    "presence",
    "shutdown",
    "device.pair.requested",
    "device.pair.resolved",
    "node.pair.requested",
    "node.pair.resolved",
    "node.presence",
    "node.event",
    "node.invoke.request",
    "node.invoke.cancel",
    "exec.approval.requested",
    "exec.approval.resolved",
];

/// OpenClaw's node-role methods: refused to operators even when not served.
const NODE_ONLY: &[&str] = &[
    "node.event",
    "node.invoke.result",
    "node.invoke.progress",
    "node.pending.pull",
    "node.pending.ack",
    "node.pending.drain",
    "node.pluginTools.update",
    "node.skills.update",
    "node.pluginSurface.refresh",
    "node.runnerInventory.update",
    "skills.bins",
];

/// Names of the served methods.
pub fn served_methods() -> Vec<&'static str> {
    SERVED.iter().map(|(name, _)| *name).collect()
}

/// The access rule of any method name, served or not. Unknown methods need
/// `operator.admin`, as in OpenClaw.
pub fn access_of(method: &str) -> Access {
    if let Some((_, access)) = SERVED.iter().find(|(name, _)| *name == method) {
        return *access;
    }
    if NODE_ONLY.contains(&method) {
        return Access::Node;
    }
    Access::Operator(scopes::ADMIN)
}

/// Check role and scope for `method` on `conn`.
pub fn authorize(conn: &Conn, method: &str) -> Result<(), ErrorShape> {
    match (access_of(method), conn.role) {
        (Access::Open, _) => Ok(()),
        (Access::Node, Role::Node) => Ok(()),
        (Access::Node, role) | (Access::Operator(_), role @ Role::Node) => Err(
            ErrorShape::invalid(format!("unauthorized role: {}", role.as_str())),
        ),
        (Access::Operator(scope), Role::Operator) => {
            if scopes::satisfied(&conn.scopes, scope) {
                Ok(())
            } else {
                Err(ErrorShape::missing_scope(scope))
            }
        }
    }
}

/// Handle one request after the handshake; returns the serialized response.
pub async fn handle(shared: &Arc<Shared>, conn: &Arc<Conn>, req: RequestFrame) -> String {
    let result = match authorize(conn, &req.method) {
        Ok(()) if req.method == "agent" => chat::agent(shared, conn, &req.id, req.params).await,
        Ok(()) => dispatch(shared, conn, &req.method, req.params).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(payload) => frames::response_ok(&req.id, &payload),
        Err(error) => frames::response_err(&req.id, &error),
    }
}

async fn dispatch(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    method: &str,
    params: Value,
) -> Result<Value, ErrorShape> {
    match method {
        "health" => Ok(health_snapshot(shared)),
        "status" => Ok(status(shared, conn)),
        "system-presence" => Ok(json!(shared.bus.presence_list())),
        "gateway.identity.get" => Ok(identity(shared)),
        "config.get" => Ok(config_get(shared)),
        "logs.tail" => logs_tail(params),
        "device.pair.list" => device_pair_list(shared),
        "device.pair.approve" => device_pair_approve(shared, params),
        "device.pair.reject" => device_pair_reject(shared, params),
        "device.pair.remove" => device_pair_remove(shared, params),
        "device.token.rotate" => device_token_rotate(shared, params),
        "device.token.revoke" => device_token_revoke(shared, params),
        "node.list" => nodes::list(shared),
        "node.describe" => nodes::describe(shared, params),
        "node.rename" => nodes::rename(shared, params),
        "node.invoke" => nodes::invoke(shared, conn, params).await,
        "node.pair.list" => nodes::pair_list(shared),
        "node.pair.approve" => nodes::pair_approve(shared, conn, params),
        "node.pair.reject" => nodes::pair_reject(shared, params),
        "node.pair.remove" => nodes::pair_remove(shared, params),
        "agent.wait" => chat::agent_wait(shared, params).await,
        "chat.send" => chat::chat_send(shared, params),
        "chat.history" => chat::chat_history(shared, params),
        "chat.abort" => chat::chat_abort(shared, params),
        "sessions.list" => chat::sessions_list(shared, params),
        "sessions.get" => chat::sessions_get(shared, params),
        "sessions.subscribe" => chat::sessions_subscribe(shared, conn),
        "sessions.patch" => chat::sessions_patch(shared, params),
        "sessions.reset" => chat::sessions_reset(shared, params),
        "sessions.delete" => chat::sessions_delete(shared, params),
        "models.list" => Ok(chat::models_list(shared)),
        "exec.approval.list" => Ok(json!({"approvals": shared.approvals.list()})),
        "exec.approval.resolve" => approval_resolve(shared, params),
        "node.invoke.result" => nodes::invoke_result(shared, conn, params),
        "node.event" => nodes::node_event(shared, conn, params),
        "node.runnerInventory.update" | "node.skills.update" | "node.pluginTools.update" => {
            nodes::node_update(shared, conn, method)
        }
        "connect" => Err(ErrorShape::invalid(
            "connect is only valid as the first request",
        )),
        other => Err(ErrorShape::invalid(format!("unknown method: {other}"))),
    }
}

/// Deserialize method params (`null` counts as `{}`), or the protocol's
/// `invalid <method> params` error.
pub(super) fn parse<T: for<'de> Deserialize<'de>>(
    method: &str,
    params: Value,
) -> Result<T, ErrorShape> {
    let params = if params.is_null() { json!({}) } else { params };
    serde_json::from_value(params).map_err(|e| ErrorShape::invalid_params(method, e))
}

/// A store failure as a retryable `UNAVAILABLE`.
pub(super) fn store_error(e: crate::store::StoreError) -> ErrorShape {
    tracing::error!("state database: {e}");
    ErrorShape::new(
        crate::protocol::error::codes::UNAVAILABLE,
        format!("state database error: {e}"),
    )
    .retry_after(1000)
}

/// The health snapshot (`health` method, `health` event, hello-ok snapshot).
pub fn health_snapshot(shared: &Shared) -> Value {
    let (operators, nodes) = shared.bus.counts();
    json!({
        "ok": true,
        "ts": ids::now_ms(),
        "durationMs": 0,
        "uptimeMs": shared.started.elapsed().as_millis() as u64,
        "version": env!("CARGO_PKG_VERSION"),
        "plugins": {"loaded": [], "errors": [], "unavailable": []},
        "configReload": {"hotReloadStatus": "disabled"},
        "channels": {},
        "channelOrder": [],
        "channelLabels": {},
        "heartbeatSeconds": 0,
        "defaultAgentId": "main",
        "agents": [{"agentId": "main", "isDefault": true, "heartbeat": {"enabled": false},
                    "sessions": {"count": 0, "recent": []}}],
        "sessions": {"count": 0, "recent": []},
        "connections": {"operators": operators, "nodes": nodes},
        "providers": shared.providers.as_ref().map(|p| serde_json::to_value(p.health()).unwrap_or(Value::Null)),
        "modelRuntime": {"degraded": shared.providers.as_ref().is_some_and(|p| p.health().available == 0), "pendingAgents": []},
        "eventLoop": {"degraded": false, "reasons": []},
    })
}

/// Resident set size of this process from /proc, in bytes.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn status(shared: &Shared, conn: &Conn) -> Value {
    let (operators, nodes) = shared.bus.counts();
    let (busy_sessions, running_runs) = shared.sessions.load();
    let mut status = json!({
        "runtimeVersion": env!("CARGO_PKG_VERSION"),
        "uptimeMs": shared.started.elapsed().as_millis() as u64,
        "gateway": {
            "bind": shared.settings.bind.to_string(),
            "port": shared.settings.port,
            "authMode": shared.settings.auth_mode.as_str(),
            "connections": {"operators": operators, "nodes": nodes, "max": shared.settings.max_connections},
        },
        "heartbeat": {"defaultAgentId": "main", "agents": []},
        "channelSummary": [],
        "queuedSystemEvents": [],
        "degradedSecretOwners": [],
        "degradedPlugins": [],
        "sessions": {"count": shared.store.session_count().unwrap_or(0), "busy": busy_sessions, "runningRuns": running_runs},
        "providers": shared.providers.as_ref().map(|p| serde_json::to_value(p.health()).unwrap_or(Value::Null)),
        "models": shared.providers.as_ref().map(|p| serde_json::to_value(p.models_snapshot()).unwrap_or(Value::Null)),
        "modelRuntime": {"degraded": shared.providers.as_ref().is_some_and(|p| p.health().available == 0), "pendingAgents": []},
        "eventLoop": {"degraded": false, "reasons": []},
    });
    if scopes::satisfied(&conn.scopes, scopes::ADMIN)
        && let Some(obj) = status.as_object_mut()
    {
        obj.insert("pid".into(), json!(std::process::id()));
        obj.insert("processMemory".into(), json!({"rssBytes": rss_bytes()}));
        obj.insert("stateDir".into(), json!(shared.settings.state_dir));
    }
    status
}

fn identity(shared: &Shared) -> Value {
    let public = shared.identity.verifying_key().to_bytes();
    json!({
        "deviceId": crate::protocol::device_auth::device_id_for(&public),
        "publicKey": crate::protocol::device_auth::encode_base64url(&public),
    })
}

fn config_get(shared: &Shared) -> Value {
    let config = serde_json::to_value(shared.settings.effective_config()).unwrap_or(Value::Null);
    let path = shared.settings.config_path.as_ref();
    json!({
        "path": path,
        "exists": path.is_some_and(|p| p.exists()),
        "valid": true,
        "config": config,
        "hash": crate::protocol::device_auth::device_id_for(config.to_string().as_bytes()),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResolveParams {
    id: String,
    decision: String,
}

fn approval_resolve(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: ResolveParams = parse("exec.approval.resolve", params)?;
    let allow = match p.decision.as_str() {
        "allow" | "allow-once" | "approve" | "approved" => true,
        "deny" | "reject" | "rejected" => false,
        other => {
            return Err(ErrorShape::invalid_params(
                "exec.approval.resolve",
                format!("decision must be allow or deny, not {other:?}"),
            ));
        }
    };
    if !shared.approvals.resolve(&shared.bus, &p.id, allow) {
        return Err(ErrorShape::new(
            crate::protocol::error::codes::APPROVAL_NOT_FOUND,
            format!("unknown or expired approval: {}", p.id),
        ));
    }
    Ok(json!({"id": p.id, "decision": if allow { "allow" } else { "deny" }}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LogsTailParams {
    cursor: Option<u64>,
    limit: Option<usize>,
    max_bytes: Option<usize>,
}

fn logs_tail(params: Value) -> Result<Value, ErrorShape> {
    let p: LogsTailParams = parse("logs.tail", params)?;
    let page = crate::logging::ring().tail(
        p.cursor,
        p.limit.unwrap_or(200).min(limits::LOGS_TAIL_MAX_LINES),
        p.max_bytes.unwrap_or(256 * 1024).min(1_000_000),
    );
    Ok(serde_json::to_value(page).unwrap_or(Value::Null))
}

fn connected_devices(shared: &Shared) -> Vec<String> {
    shared
        .bus
        .connections()
        .iter()
        .filter_map(|c| c.device_id.clone())
        .collect()
}

fn device_pair_list(shared: &Shared) -> Result<Value, ErrorShape> {
    let now = ids::now_ms();
    let pending = shared.store.pending(now).map_err(store_error)?;
    let paired = shared.store.devices().map_err(store_error)?;
    let connected = connected_devices(shared);
    Ok(json!({
        "pending": pending.iter().map(pairing::pending_view).collect::<Vec<_>>(),
        "paired": paired.iter().map(|d| pairing::device_view(d, connected.contains(&d.device_id))).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIdParams {
    request_id: String,
}

fn device_pair_approve(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: RequestIdParams = parse("device.pair.approve", params)?;
    let request = shared
        .store
        .take_pending(&p.request_id, ids::now_ms())
        .map_err(store_error)?
        .ok_or_else(|| ErrorShape::invalid(format!("unknown requestId: {}", p.request_id)))?;
    let device = pairing::approve(shared, &request, "manual").map_err(store_error)?;
    tracing::info!(device_id = %device.device_id, request_id = %p.request_id, "device pairing approved");
    pairing::announce_resolution(shared, &p.request_id, &device.device_id, "approved");
    Ok(json!({"requestId": p.request_id, "device": pairing::device_view(&device, false)}))
}

fn device_pair_reject(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: RequestIdParams = parse("device.pair.reject", params)?;
    let request = shared
        .store
        .take_pending(&p.request_id, ids::now_ms())
        .map_err(store_error)?
        .ok_or_else(|| ErrorShape::invalid(format!("unknown requestId: {}", p.request_id)))?;
    tracing::info!(device_id = %request.device_id, request_id = %p.request_id, "device pairing rejected");
    pairing::announce_resolution(shared, &p.request_id, &request.device_id, "rejected");
    Ok(json!({"requestId": p.request_id, "deviceId": request.device_id}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceIdParams {
    device_id: String,
}

/// Close live connections of a device (after removal or token revocation).
fn kick_device(shared: &Shared, device_id: &str, role: Option<Role>) {
    for conn in shared.bus.connections() {
        if conn.device_id.as_deref() == Some(device_id) && role.is_none_or(|r| r == conn.role) {
            conn.kick.notify_one();
        }
    }
}

fn device_pair_remove(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: DeviceIdParams = parse("device.pair.remove", params)?;
    if !shared
        .store
        .remove_device(&p.device_id)
        .map_err(store_error)?
    {
        return Err(ErrorShape::invalid(format!(
            "unknown deviceId: {}",
            p.device_id
        )));
    }
    tracing::info!(device_id = %p.device_id, "paired device removed");
    kick_device(shared, &p.device_id, None);
    Ok(json!({"deviceId": p.device_id, "removed": true}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenParams {
    device_id: String,
    role: String,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

fn device_token_rotate(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: TokenParams = parse("device.token.rotate", params)?;
    let mut device = shared
        .store
        .device(&p.device_id)
        .map_err(store_error)?
        .ok_or_else(|| ErrorShape::invalid(format!("unknown deviceId: {}", p.device_id)))?;
    if !device.roles.contains(&p.role) {
        return Err(ErrorShape::invalid(format!(
            "device {} is not paired for role {}",
            p.device_id, p.role
        )));
    }
    let approved = if p.role == "node" {
        Vec::new()
    } else {
        device.scopes.clone()
    };
    let scopes = p.scopes.unwrap_or_else(|| approved.clone());
    if !scopes::covered(&approved, &scopes) {
        return Err(ErrorShape::invalid(
            "requested scopes exceed the device's approved scopes",
        ));
    }
    let now = ids::now_ms();
    let token = ids::new_token();
    match device.tokens.iter_mut().find(|t| t.role == p.role) {
        Some(t) => {
            t.token = token.clone();
            t.scopes = scopes.clone();
            t.rotated_at_ms = Some(now);
        }
        None => device.tokens.push(crate::store::DeviceToken {
            role: p.role.clone(),
            token: token.clone(),
            scopes: scopes.clone(),
            created_at_ms: now,
            rotated_at_ms: Some(now),
        }),
    }
    shared.store.put_device(&device).map_err(store_error)?;
    tracing::info!(device_id = %p.device_id, role = %p.role, "device token rotated");
    Ok(
        json!({"deviceId": p.device_id, "role": p.role, "token": token, "scopes": scopes, "rotatedAtMs": now}),
    )
}

fn device_token_revoke(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: TokenParams = parse("device.token.revoke", params)?;
    let mut device = shared
        .store
        .device(&p.device_id)
        .map_err(store_error)?
        .ok_or_else(|| ErrorShape::invalid(format!("unknown deviceId: {}", p.device_id)))?;
    let before = device.tokens.len();
    device.tokens.retain(|t| t.role != p.role);
    if device.tokens.len() == before {
        return Err(ErrorShape::invalid(format!(
            "device {} has no {} token",
            p.device_id, p.role
        )));
    }
    shared.store.put_device(&device).map_err(store_error)?;
    tracing::info!(device_id = %p.device_id, role = %p.role, "device token revoked");
    let role = match p.role.as_str() {
        "node" => Some(Role::Node),
        _ => Some(Role::Operator),
    };
    kick_device(shared, &p.device_id, role);
    Ok(json!({"deviceId": p.device_id, "role": p.role, "revokedAtMs": ids::now_ms()}))
}
