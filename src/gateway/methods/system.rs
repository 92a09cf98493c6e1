//! `config.get`, `logs.tail`, `models.list`, and what the gateway says
//! about itself to OpenClaw's clients: `system.info`, `agents.list`,
//! `agent.identity.get`, `environments.list` (this board and the nodes),
//! `models.authStatus`, `exec.approvals.get`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Call, Reply, parse};
use crate::limits;

/// `config.get`: the effective configuration, secrets redacted.
pub async fn config_get(call: &Call, _params: Value) -> Reply {
    let settings = &call.shared.settings;
    let config = serde_json::to_value(settings.effective_config()).unwrap_or(Value::Null);
    let path = settings.config_path.as_ref();
    Ok(json!({
        "path": path,
        // The file was read at start (no disk access on the event loop).
        "exists": path.is_some(),
        "valid": true,
        "config": config,
        "hash": crate::protocol::device_auth::device_id_for(config.to_string().as_bytes()),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LogsTailParams {
    cursor: Option<u64>,
    limit: Option<usize>,
    max_bytes: Option<usize>,
}

/// `logs.tail`: lines from the in-memory log ring.
pub async fn logs_tail(_call: &Call, params: Value) -> Reply {
    let p: LogsTailParams = parse("logs.tail", params)?;
    let page = crate::logging::ring().tail(
        p.cursor,
        p.limit.unwrap_or(200).min(limits::LOGS_TAIL_MAX_LINES),
        p.max_bytes.unwrap_or(256 * 1024).min(1_000_000),
    );
    Ok(serde_json::to_value(page).unwrap_or(Value::Null))
}

/// `models.list`: configured models with their circuit state, in OpenClaw's
/// model-choice shape (`id` without the provider, `name`, `provider`,
/// `available`, `contextWindow`) plus pinclaw's `ref` (`provider/model`),
/// `status`, `cooldownRemainingMs` and `failures`.
pub async fn models_list(call: &Call, _params: Value) -> Reply {
    let shared = &call.shared;
    let models: Vec<Value> = shared
        .providers
        .as_ref()
        .map(|p| p.models_snapshot())
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let mut v = serde_json::to_value(&m).unwrap_or(Value::Null);
            v["ref"] = json!(m.id);
            v["id"] = json!(m.model);
            v["name"] = json!(m.model);
            v["available"] = json!(v["status"] != "cooldown");
            v
        })
        .collect();
    let agent = &shared.settings.config.agent;
    Ok(json!({"models": models, "default": agent.model, "fallbacks": agent.fallbacks}))
}

/// The one agent: its name and model chain.
fn agent_summary(call: &Call) -> Value {
    let agent = &call.shared.settings.config.agent;
    json!({
        "id": "main",
        "name": "pinclaw",
        "identity": {"name": "pinclaw", "emoji": "🦀"},
        "model": {"primary": agent.model, "fallbacks": agent.fallbacks},
    })
}

/// `agents.list`: pinclaw has one agent, `main`.
pub async fn agents_list(call: &Call, _params: Value) -> Reply {
    Ok(json!({
        "defaultId": "main",
        "mainKey": "main",
        "scope": "per-sender",
        "agents": [agent_summary(call)],
    }))
}

/// `agent.identity.get`: the agent's name.
pub async fn agent_identity(_call: &Call, _params: Value) -> Reply {
    Ok(json!({"agentId": "main", "name": "pinclaw", "emoji": "🦀", "avatarStatus": "none"}))
}

/// Reads `key:   1234 kB` from /proc/meminfo, in bytes.
fn meminfo(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `system.info`: the machine (host name, kernel, architecture, CPUs,
/// memory, load) and this process (pid, uptime, RSS). Reads small /proc
/// files, which never block.
pub async fn system_info(call: &Call, _params: Value) -> Reply {
    let shared = &call.shared;
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let memory = read("/proc/meminfo");
    let status = read("/proc/self/status");
    let load: Vec<f64> = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    let os = read("/etc/os-release");
    let os_label = os
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "Linux".into());
    let model = read("/proc/device-tree/model");
    Ok(json!({
        "machineName": shared.hostname,
        "hostname": shared.hostname,
        "platform": std::env::consts::OS,
        "release": read("/proc/sys/kernel/osrelease").trim(),
        "arch": std::env::consts::ARCH,
        "osLabel": os_label,
        "nodeVersion": "n/a",
        "pid": std::process::id(),
        "uptimeMs": shared.started.elapsed().as_millis() as u64,
        "cpuCount": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "memoryTotalBytes": meminfo(&memory, "MemTotal"),
        "memoryFreeBytes": meminfo(&memory, "MemAvailable"),
        "loadAverage": load,
        "processInstanceId": shared.boot_id,
        "processMemory": {"rssBytes": meminfo(&status, "VmRSS")},
        "boardModel": model.trim_end_matches('\0'),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// `environments.list`: where agent work can run, as OpenClaw's Control UI
/// lists machines: this gateway, and one `node:<id>` row per node (this
/// board first).
pub async fn environments_list(call: &Call, _params: Value) -> Reply {
    let shared = &call.shared;
    let nodes = crate::gateway::nodes::list(shared).await?;
    let mut environments = vec![json!({
        "id": "gateway", "type": "local", "label": shared.hostname, "status": "available",
        "platform": std::env::consts::OS, "sessionHost": true, "trust": "persistent",
        "capabilities": ["agent.run", "sessions", "tools"],
    })];
    for node in nodes["nodes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        environments.push(json!({
            "id": format!("node:{}", node["nodeId"].as_str().unwrap_or_default()),
            "type": "node",
            "label": node["displayName"].as_str().or(node["nodeId"].as_str()),
            "status": if node["connected"] == true { "available" } else { "unavailable" },
            "platform": node["platform"],
            "sessionHost": false,
            "trust": "persistent",
            "capabilities": node["caps"],
            "invocableCommands": node["commands"],
            "lastSeenAtMs": node["lastSeenAtMs"],
        }));
    }
    Ok(json!({"environments": environments}))
}

/// `models.authStatus`: the configured providers and whether each has its
/// key (never the key).
pub async fn models_auth_status(call: &Call, _params: Value) -> Reply {
    let providers: Vec<Value> = call
        .shared
        .settings
        .config
        .providers
        .iter()
        .map(|p| json!({"provider": p.id, "ok": true}))
        .collect();
    Ok(json!({"ts": crate::ids::now_ms(), "providers": providers}))
}

/// `exec.approvals.get`: OpenClaw's exec-approval policy file. pinclaw runs
/// no shell commands; its approvals are for `confirm = true` outputs, in
/// the config file.
pub async fn exec_approvals_get(call: &Call, _params: Value) -> Reply {
    let path = call
        .shared
        .settings
        .config_path
        .as_ref()
        .map_or_else(|| "(defaults)".to_owned(), |p| p.display().to_string());
    Ok(json!({"path": path, "exists": false, "hash": "none", "file": {"version": 1}}))
}
