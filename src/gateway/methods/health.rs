//! `health`, `status`, `system-presence` and `gateway.identity.get`.

use serde::Serialize;
use serde_json::{Value, json};

use super::super::Shared;
use super::{Call, Reply};
use crate::ids;
use crate::protocol::error::ErrorShape;
use crate::protocol::frames::Payload;
use crate::protocol::scopes;

/// `[]` in a typed snapshot.
const NONE: [(); 0] = [];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Plugins {
    loaded: [(); 0],
    errors: [(); 0],
    unavailable: [(); 0],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigReload {
    hot_reload_status: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Heartbeat {
    enabled: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionCount {
    count: usize,
    recent: [(); 0],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AgentHealth {
    agent_id: &'static str,
    is_default: bool,
    heartbeat: Heartbeat,
    sessions: SessionCount,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Connections {
    operators: usize,
    nodes: usize,
}

/// Automations and cron jobs: how many, and how many fail.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AutomationHealth {
    total: usize,
    enabled: usize,
    /// Last run failed, or stopped by the actions-per-minute cap.
    failing: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelRuntime {
    degraded: bool,
    pending_agents: [(); 0],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventLoop {
    degraded: bool,
    reasons: [(); 0],
}

/// The health snapshot, as OpenClaw shapes it: typed, so the `health`
/// method serializes it directly instead of building a value tree.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthSnapshot {
    ok: bool,
    ts: i64,
    duration_ms: u64,
    uptime_ms: u64,
    version: &'static str,
    plugins: Plugins,
    config_reload: ConfigReload,
    channels: serde_json::Map<String, Value>,
    channel_order: Vec<&'static str>,
    channel_labels: serde_json::Map<String, Value>,
    heartbeat_seconds: u64,
    default_agent_id: &'static str,
    agents: [AgentHealth; 1],
    sessions: SessionCount,
    connections: Connections,
    providers: Option<crate::provider::ProviderHealth>,
    automations: AutomationHealth,
    #[serde(skip_serializing_if = "Option::is_none")]
    mqtt: Option<Value>,
    model_runtime: ModelRuntime,
    event_loop: EventLoop,
}

fn snapshot(shared: &Shared) -> HealthSnapshot {
    let (operators, nodes) = shared.bus.counts();
    let providers = shared.providers.as_ref().map(|p| p.health());
    let degraded = providers.as_ref().is_some_and(|h| h.available == 0);
    let session_count = shared
        .store
        .counters()
        .sessions
        .load(std::sync::atomic::Ordering::Relaxed) as usize;
    let sessions = || SessionCount {
        count: session_count,
        recent: NONE,
    };
    let mut channels = serde_json::Map::new();
    let mut channel_order = Vec::new();
    let mut channel_labels = serde_json::Map::new();
    for (id, label, s) in shared.channels.statuses_now() {
        if !channel_order.contains(&id) {
            channel_order.push(id);
            channel_labels.insert(id.into(), json!(label));
        }
        channels.insert(
            id.into(),
            json!({
                "accountId": s.account_id, "configured": s.configured, "running": s.running,
                "connected": s.connected, "healthState": s.health_state, "lastError": s.last_error,
                "lastTransportActivityAt": s.last_transport_activity_at,
                "lastInboundAt": s.last_inbound_at, "lastOutboundAt": s.last_outbound_at,
                "restartCount": s.restart_count,
            }),
        );
    }
    HealthSnapshot {
        ok: true,
        ts: ids::now_ms(),
        duration_ms: 0,
        uptime_ms: shared.started.elapsed().as_millis() as u64,
        version: env!("CARGO_PKG_VERSION"),
        plugins: Plugins {
            loaded: NONE,
            errors: NONE,
            unavailable: NONE,
        },
        config_reload: ConfigReload {
            hot_reload_status: "disabled",
        },
        channels,
        channel_order,
        channel_labels,
        heartbeat_seconds: 0,
        default_agent_id: "main",
        agents: [AgentHealth {
            agent_id: "main",
            is_default: true,
            heartbeat: Heartbeat { enabled: false },
            sessions: sessions(),
        }],
        sessions: sessions(),
        connections: Connections { operators, nodes },
        providers,
        automations: {
            let list = shared.automations.list();
            AutomationHealth {
                total: list.len(),
                enabled: list.iter().filter(|e| e.enabled).count(),
                failing: shared.automations.failing(),
            }
        },
        mqtt: shared.mqtt.get().map(|b| b.status_json()),
        model_runtime: ModelRuntime {
            degraded,
            pending_agents: NONE,
        },
        event_loop: EventLoop {
            degraded: false,
            reasons: NONE,
        },
    }
}

/// The health snapshot as a value (`health` event, hello-ok snapshot).
pub fn health_snapshot(shared: &Shared) -> Value {
    serde_json::to_value(snapshot(shared)).unwrap_or(Value::Null)
}

/// `health`: the snapshot, serialized straight to JSON text.
pub async fn health(call: &Call, _params: Value) -> Result<Payload, ErrorShape> {
    Ok(Payload::json(&snapshot(&call.shared)))
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
