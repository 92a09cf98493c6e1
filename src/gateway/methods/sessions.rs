//! `sessions.list|get|subscribe|patch|reset|delete`.

use std::sync::atomic::Ordering;

use serde::Deserialize;
use serde_json::{Value, json};

use super::super::Shared;
use super::chat::session_key;
use super::{Call, Reply, parse, store_error};
use crate::ids;
use crate::protocol::error::ErrorShape;
use crate::session::keys;
use crate::store::SessionMeta;

/// The `sessions.list` row of a session.
pub(super) fn session_row(shared: &Shared, meta: &SessionMeta) -> Value {
    let (active, queued) = shared.sessions.runs_of(&meta.key);
    let kind = if meta.key.contains(":group:") || meta.key.contains(":channel:") {
        "group"
    } else {
        "direct"
    };
    let last = meta.last_run.as_ref();
    let status = match (&active, queued.is_empty(), last.map(|l| l.status.as_str())) {
        (Some(_), _, _) => "running",
        (None, false, _) => "queued",
        (None, true, Some("error")) => "failed",
        (None, true, Some(s @ ("timeout" | "aborted"))) => s,
        (None, true, _) => "done",
    };
    json!({
        "key": meta.key,
        "sessionId": meta.session_id,
        "kind": kind,
        "label": meta.label,
        "displayName": meta.label.clone().unwrap_or_else(|| meta.key.clone()),
        "agentId": keys::DEFAULT_AGENT,
        "createdAt": meta.created_at,
        "updatedAt": meta.updated_at,
        "lastActivityAt": meta.updated_at,
        "status": status,
        "hasActiveRun": active.is_some(),
        "abortedLastRun": last.is_some_and(|l| l.status == "aborted"),
        "lastRunStatus": last.map(|l| l.status.as_str()),
        "lastError": last.and_then(|l| l.error.as_deref()),
        "activeRunIds": active.into_iter().collect::<Vec<_>>(),
        "queuedRunIds": queued,
        "model": meta.model.clone().or_else(|| shared.settings.config.agent.model.clone()),
        "messageCount": meta.entries,
        "inputTokens": meta.input_tokens,
        "outputTokens": meta.output_tokens,
        "totalTokens": meta.input_tokens + meta.output_tokens,
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ListParams {
    limit: Option<usize>,
    offset: Option<usize>,
}

/// `sessions.list`: most recently updated first, paged.
pub async fn list(call: &Call, params: Value) -> Reply {
    let p: ListParams = parse("sessions.list", params)?;
    let shared = &call.shared;
    let all = shared.store.sessions().await.map_err(store_error)?;
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let offset = p.offset.unwrap_or(0);
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|m| session_row(shared, m))
        .collect();
    let next = offset + page.len();
    let agent = &shared.settings.config.agent;
    Ok(json!({
        "ts": ids::now_ms(),
        "count": page.len(),
        "totalCount": all.len(),
        "limitApplied": limit,
        "offset": offset,
        "nextOffset": (next < all.len()).then_some(next),
        "hasMore": next < all.len(),
        "defaults": {"model": agent.model, "contextTokens": agent.default_context_window},
        "sessions": page,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyParams {
    key: String,
}

async fn existing(shared: &Shared, method: &str, key: &str) -> Result<SessionMeta, ErrorShape> {
    let key = session_key(method, Some(key))?;
    shared
        .store
        .session(&key)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ErrorShape::invalid(format!("unknown session: {key}")))
}

/// `sessions.describe {key}`: the session's row, or `null` when it does
/// not exist (yet).
pub async fn describe(call: &Call, params: Value) -> Reply {
    let p: KeyParams = parse("sessions.describe", params)?;
    let key = super::chat::session_key("sessions.describe", Some(&p.key))?;
    let meta = call.shared.store.session(&key).await.map_err(store_error)?;
    Ok(json!({"session": meta.as_ref().map(|m| session_row(&call.shared, m))}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessagesParams {
    key: String,
    #[serde(default)]
    include_approvals: bool,
}

/// `sessions.messages.subscribe {key, includeApprovals?}`: OpenClaw's
/// per-session transcript feed. pinclaw streams every session's `chat`
/// events to every reader already, so this only answers with the
/// canonical key (and no approvals to replay).
pub async fn messages_subscribe(_call: &Call, params: Value) -> Reply {
    let p: MessagesParams = parse("sessions.messages.subscribe", params)?;
    let key = super::chat::session_key("sessions.messages.subscribe", Some(&p.key))?;
    let mut out = json!({"subscribed": true, "key": key});
    if p.include_approvals {
        out["approvalReplay"] =
            json!({"sessionKey": key, "updatedAtMs": 0, "approvals": [], "truncated": false});
    }
    Ok(out)
}

/// `sessions.messages.unsubscribe {key}`.
pub async fn messages_unsubscribe(_call: &Call, params: Value) -> Reply {
    let p: MessagesParams = parse("sessions.messages.unsubscribe", params)?;
    let key = super::chat::session_key("sessions.messages.unsubscribe", Some(&p.key))?;
    Ok(json!({"subscribed": false, "key": key}))
}

/// `sessions.get`.
pub async fn get(call: &Call, params: Value) -> Reply {
    let p: KeyParams = parse("sessions.get", params)?;
    let meta = existing(&call.shared, "sessions.get", &p.key).await?;
    Ok(session_row(&call.shared, &meta))
}

fn announce(shared: &Shared, key: &str, reason: &str) {
    shared.bus.broadcast_where(
        "sessions.changed",
        &json!({"sessionKey": key, "reason": reason}),
        |c| c.sessions_subscribed.load(Ordering::Relaxed),
    );
}

/// `sessions.reset`: a fresh session id and an empty transcript.
pub async fn reset(call: &Call, params: Value) -> Reply {
    let p: KeyParams = parse("sessions.reset", params)?;
    let shared = &call.shared;
    let meta = existing(shared, "sessions.reset", &p.key).await?;
    shared.sessions.abort(&meta.key, None).await;
    let meta = shared
        .store
        .clear_session(&meta.key, true)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ErrorShape::invalid("unknown session"))?;
    announce(shared, &meta.key, "reset");
    Ok(json!({"ok": true, "key": meta.key, "sessionId": meta.session_id}))
}

/// `sessions.delete`.
pub async fn delete(call: &Call, params: Value) -> Reply {
    let p: KeyParams = parse("sessions.delete", params)?;
    let shared = &call.shared;
    let meta = existing(shared, "sessions.delete", &p.key).await?;
    shared.sessions.abort(&meta.key, None).await;
    shared
        .store
        .clear_session(&meta.key, false)
        .await
        .map_err(store_error)?;
    announce(shared, &meta.key, "deleted");
    Ok(json!({"ok": true, "key": meta.key, "deleted": true}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatchParams {
    key: String,
    #[serde(default)]
    label: Option<Option<String>>,
    #[serde(default)]
    model: Option<Option<String>>,
}

/// `sessions.patch`: label and model, checked first and written in one
/// transaction.
pub async fn patch(call: &Call, params: Value) -> Reply {
    let p: PatchParams = parse("sessions.patch", params)?;
    let shared = &call.shared;
    let key = session_key("sessions.patch", Some(&p.key))?;
    if let Some(Some(label)) = &p.label
        && label.chars().count() > 128
    {
        return Err(ErrorShape::invalid_params(
            "sessions.patch",
            "label is longer than 128 characters",
        ));
    }
    if let (Some(Some(m)), Some(providers)) = (&p.model, &shared.providers)
        && providers.resolve_chain(m, &[]).is_err()
    {
        return Err(ErrorShape::invalid_params(
            "sessions.patch",
            format!("unknown model {m:?}"),
        ));
    }
    let meta = shared
        .store
        .update_session(&key, move |meta| {
            if let Some(label) = p.label {
                meta.label = label;
            }
            if let Some(model) = p.model {
                meta.model = model;
            }
        })
        .await
        .map_err(store_error)?
        .ok_or_else(|| ErrorShape::invalid(format!("unknown session: {key}")))?;
    Ok(session_row(shared, &meta))
}

/// `sessions.subscribe`: this connection receives `sessions.changed`.
pub async fn subscribe(call: &Call, _params: Value) -> Reply {
    call.conn.sessions_subscribed.store(true, Ordering::Relaxed);
    Ok(json!({"subscribed": true}))
}
