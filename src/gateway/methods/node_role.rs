//! Methods nodes call: `node.invoke.result`, `node.event` and the
//! bookkeeping updates of OpenClaw's node host.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Call, Reply, parse, store_error};
use crate::ids;
use crate::limits;
use crate::node::InvokeReply;
use crate::protocol::error::{ErrorShape, codes};

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

/// `node.invoke.result`: a node answers an invoke it was sent.
pub async fn invoke_result(call: &Call, params: Value) -> Reply {
    let p: ResultParams = parse("node.invoke.result", params)?;
    if call.conn.device_id.as_deref() != Some(p.node_id.as_str()) {
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
    if !call.shared.nodes.resolve(&p.id, &p.node_id, reply) {
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

/// `node.event` from a node: host stats are kept (up to
/// [`limits::NODE_HOST_STATS_MAX_BYTES`]); every event is relayed to
/// read-scoped operators as `node.event`.
pub async fn event(call: &Call, params: Value) -> Reply {
    let p: EventParams = parse("node.event", params)?;
    let shared = &call.shared;
    let node_id = call.conn.device_id.clone().unwrap_or_default();
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
        if stats.to_string().len() <= limits::NODE_HOST_STATS_MAX_BYTES {
            shared.nodes.set_host_stats(&node_id, stats);
        } else {
            tracing::debug!(node = %node_id, "host stats larger than the cap; not kept");
        }
    }
    shared.bus.broadcast(
        "node.event",
        &json!({"nodeId": node_id, "event": p.event, "payload": payload, "ts": ids::now_ms()}),
    );
    Ok(json!({"ok": true, "event": p.event, "handled": true, "reason": "updated"}))
}

/// `node.runnerInventory.update`: answered once the node's command surface
/// is approved, as OpenClaw does.
pub async fn runner_inventory(call: &Call, _params: Value) -> Reply {
    let node_id = call.conn.device_id.clone().unwrap_or_default();
    let record = call
        .shared
        .store
        .node_record(&node_id)
        .await
        .map_err(store_error)?;
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

/// `node.skills.update`: pinclaw keeps no node skills.
pub async fn skills(call: &Call, _params: Value) -> Reply {
    Ok(json!({"nodeId": call.conn.device_id, "skills": []}))
}

/// `node.pluginTools.update`: pinclaw keeps no node plugin tools.
pub async fn plugin_tools(call: &Call, _params: Value) -> Reply {
    Ok(json!({"nodeId": call.conn.device_id, "tools": []}))
}
