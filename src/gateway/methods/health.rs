//! `health`, `status`, `system-presence` and `gateway.identity.get`.

use serde_json::{Value, json};

use super::super::Shared;
use super::{Call, Reply};
use crate::ids;
use crate::protocol::scopes;

/// The health snapshot (`health` method, `health` event, hello-ok snapshot).
pub fn health_snapshot(shared: &Shared) -> Value {
    let (operators, nodes) = shared.bus.counts();
    let providers = shared.providers.as_ref().map(|p| p.health());
    let degraded = providers.as_ref().is_some_and(|h| h.available == 0);
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
        "providers": providers.map(|h| serde_json::to_value(h).unwrap_or(Value::Null)),
        "modelRuntime": {"degraded": degraded, "pendingAgents": []},
        "eventLoop": {"degraded": false, "reasons": []},
    })
}

/// `health`.
pub async fn health(call: &Call, _params: Value) -> Reply {
    Ok(health_snapshot(&call.shared))
}

/// Resident set size of this process from /proc, in bytes.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `status`.
pub async fn status(call: &Call, _params: Value) -> Reply {
    let shared = &call.shared;
    let (operators, nodes) = shared.bus.counts();
    let (busy_sessions, running_runs) = shared.sessions.load();
    let session_count = shared.store.session_count().await.unwrap_or(0);
    let providers = shared.providers.as_ref();
    let health = providers.map(|p| p.health());
    let degraded = health.as_ref().is_some_and(|h| h.available == 0);
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
        "sessions": {"count": session_count, "busy": busy_sessions, "runningRuns": running_runs},
        "providers": health.map(|h| serde_json::to_value(h).unwrap_or(Value::Null)),
        "models": providers.map(|p| serde_json::to_value(p.models_snapshot()).unwrap_or(Value::Null)),
        "modelRuntime": {"degraded": degraded, "pendingAgents": []},
        "eventLoop": {"degraded": false, "reasons": []},
        "store": store_counters(shared),
        "caches": caches(shared),
    });
    if scopes::satisfied(&call.conn.scopes, scopes::ADMIN)
        && let Some(obj) = status.as_object_mut()
    {
        obj.insert("pid".into(), json!(std::process::id()));
        obj.insert("processMemory".into(), json!({"rssBytes": rss_bytes()}));
        obj.insert("stateDir".into(), json!(shared.settings.state_dir));
    }
    Ok(status)
}

/// What the store thread has done: writes, commits (group commit shows as
/// fewer commits than writes) and fsyncs.
fn store_counters(shared: &Shared) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let c = shared.store.counters();
    json!({
        "writes": c.writes.load(Relaxed),
        "commits": c.commits.load(Relaxed),
        "durableCommits": c.durable_commits.load(Relaxed),
        "reads": c.reads.load(Relaxed),
    })
}

/// How full the bounded caches are (entries and bytes).
fn caches(shared: &Shared) -> Value {
    let (idem_entries, idem_bytes) = shared.idempotency.usage();
    let (run_records, run_bytes) = shared.sessions.record_usage();
    json!({
        "idempotency": {"entries": idem_entries, "bytes": idem_bytes},
        "runRecords": {"entries": run_records, "bytes": run_bytes},
        "approvals": {"pending": shared.approvals.pending_count()},
        "unauthenticatedSockets": shared.admission.unauthenticated(),
        "sockets": shared.admission.sockets(),
    })
}

/// `system-presence`.
pub async fn presence(call: &Call, _params: Value) -> Reply {
    Ok(json!(call.shared.bus.presence_list()))
}

/// `gateway.identity.get`.
pub async fn identity(call: &Call, _params: Value) -> Reply {
    let public = call.shared.identity.verifying_key().to_bytes();
    Ok(json!({
        "deviceId": crate::protocol::device_auth::device_id_for(&public),
        "publicKey": crate::protocol::device_auth::encode_base64url(&public),
    }))
}
