//! `config.get`, `logs.tail` and `models.list`.

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

/// `models.list`: configured models with their circuit state.
pub async fn models_list(call: &Call, _params: Value) -> Reply {
    let shared = &call.shared;
    let models = shared
        .providers
        .as_ref()
        .map(|p| p.models_snapshot())
        .unwrap_or_default();
    let agent = &shared.settings.config.agent;
    Ok(json!({"models": models, "default": agent.model, "fallbacks": agent.fallbacks}))
}
