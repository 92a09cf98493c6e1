//! Chat and agent methods: `chat.send|history|abort`, `agent` (two-phase),
//! `agent.wait`, `sessions.*` and `models.list`, plus the bridges the agent
//! loop uses to reach the gateway (events and nodes).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::bus::{Bus, Conn};
use super::methods::{parse, store_error};
use super::{Shared, nodes};
use crate::agent::EventSink;
use crate::agent::tools::{BoxFuture, NodeAccess};
use crate::ids;
use crate::limits;
use crate::protocol::error::{ErrorShape, codes};
use crate::protocol::frames;
use crate::protocol::scopes;
use crate::session::{Accepted, QueueMode, RunRecord, RunStatus, SubmitError, keys};
use crate::store::{SessionMeta, TranscriptEntry};

/// The agent loop's events onto the bus.
pub struct BusEvents(pub Arc<Bus>);

impl EventSink for BusEvents {
    fn agent(&self, payload: &Value, tool: bool) {
        if tool {
            self.0.broadcast_where("agent", payload, |c| {
                c.caps.iter().any(|cap| cap == "tool-events")
            });
        } else {
            self.0.broadcast("agent", payload);
        }
    }
    fn chat(&self, payload: &Value) {
        self.0.broadcast("chat", payload);
    }
    fn session_changed(&self, session_key: &str) {
        let payload = json!({"sessionKey": session_key, "ts": ids::now_ms()});
        self.0.broadcast_where("sessions.changed", &payload, |c| {
            c.sessions_subscribed.load(Ordering::Relaxed)
        });
    }
}

/// The `nodes` tool's way into the gateway.
pub struct GatewayNodes(pub Weak<Shared>);

impl GatewayNodes {
    fn shared(&self) -> Result<Arc<Shared>, String> {
        self.0
            .upgrade()
            .ok_or_else(|| "the gateway is shutting down".to_owned())
    }
}

fn shape_text(e: ErrorShape) -> String {
    match e.detail_code() {
        Some(code) => format!("{} ({code})", e.message),
        None => e.message,
    }
}

impl NodeAccess for GatewayNodes {
    fn list(&self) -> BoxFuture<Result<Value, String>> {
        let shared = self.shared();
        Box::pin(async move {
            let shared = shared?;
            nodes::list(&shared).map_err(shape_text)
        })
    }

    fn describe(&self, node: String) -> BoxFuture<Result<Value, String>> {
        let shared = self.shared();
        Box::pin(async move {
            let shared = shared?;
            nodes::describe(&shared, json!({"nodeId": node})).map_err(shape_text)
        })
    }

    fn invoke(
        &self,
        node: String,
        command: String,
        params: Value,
        timeout: Duration,
    ) -> BoxFuture<Result<Value, String>> {
        let shared = self.shared();
        Box::pin(async move {
            let shared = shared?;
            let node_id = nodes::resolve_node(&shared, &node).map_err(shape_text)?;
            let key = ids::uuid_v4();
            let result = nodes::invoke_uncached(&shared, &node_id, &command, params, timeout, &key)
                .await
                .map_err(shape_text)?;
            Ok(result.get("payload").cloned().unwrap_or(result))
        })
    }

    fn summary(&self) -> String {
        let Ok(shared) = self.shared() else {
            return String::new();
        };
        let mut lines = vec!["Reachable nodes (use the nodes tool):".to_owned()];
        if let Some(local) = &shared.local_node {
            lines.push(format!(
                "- local ({}): this board; commands {}",
                local.display_name().unwrap_or_default(),
                local.commands().join(", ")
            ));
        }
        for live in shared.nodes.list() {
            lines.push(format!(
                "- {} ({}): commands {}",
                live.info.display_name.clone().unwrap_or_default(),
                &live.info.node_id[..live.info.node_id.len().min(12)],
                live.info.commands.join(", ")
            ));
        }
        lines.join("\n")
    }
}

fn submit_error(e: SubmitError) -> ErrorShape {
    match e {
        SubmitError::QueueFull(_) | SubmitError::Busy => {
            ErrorShape::new(codes::UNAVAILABLE, e.to_string()).retry_after(1000)
        }
        SubmitError::Store(e) => store_error(e),
    }
}

fn check_message(method: &str, message: &str) -> Result<(), ErrorShape> {
    if message.trim().is_empty() {
        return Err(ErrorShape::invalid_params(
            method,
            "message must not be empty",
        ));
    }
    if message.len() > limits::MAX_MESSAGE_BYTES {
        return Err(ErrorShape::invalid_params(
            method,
            format!("message is larger than {} bytes", limits::MAX_MESSAGE_BYTES),
        ));
    }
    Ok(())
}

fn check_key(method: &str, key: &str) -> Result<(), ErrorShape> {
    if key.trim().is_empty() {
        return Err(ErrorShape::invalid_params(
            method,
            "idempotencyKey must not be empty",
        ));
    }
    if key.len() > 256 {
        return Err(ErrorShape::invalid_params(
            method,
            "idempotencyKey is longer than 256 characters",
        ));
    }
    Ok(())
}

fn session_key(method: &str, key: Option<&str>) -> Result<String, ErrorShape> {
    keys::resolve(key).map_err(|e| ErrorShape::invalid_params(method, e))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatSendParams {
    session_key: String,
    message: String,
    idempotency_key: String,
    #[serde(default)]
    queue_mode: Option<String>,
}

/// `chat.send`: the message is durable, then acknowledged; the run streams
/// `chat`/`agent` events. A retried key never starts a second run.
pub fn chat_send(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: ChatSendParams = parse("chat.send", params)?;
    check_message("chat.send", &p.message)?;
    check_key("chat.send", &p.idempotency_key)?;
    let key = session_key("chat.send", Some(&p.session_key))?;
    let mode = match p.queue_mode.as_deref() {
        None => None,
        Some(m) => Some(QueueMode::parse(m).ok_or_else(|| {
            ErrorShape::invalid_params(
                "chat.send",
                format!("queueMode must be steer, followup, collect or interrupt, not {m:?}"),
            )
        })?),
    };
    let run_id = p.idempotency_key;
    if let Some(record) = shared.sessions.record(&run_id) {
        return Ok(retried(&record));
    }
    let accepted = shared
        .sessions
        .submit(&key, &run_id, &p.message, mode)
        .map_err(submit_error)?;
    Ok(json!({
        "runId": run_id,
        "status": "started",
        "queued": accepted == Accepted::Queued,
        "steered": accepted == Accepted::Steered,
        "interruptedActiveRun": accepted == Accepted::Interrupted,
    }))
}

fn retried(record: &RunRecord) -> Value {
    if record.status.is_final() {
        json!({"runId": record.run_id, "status": record.status, "cached": true})
    } else {
        json!({"runId": record.run_id, "status": "in_flight"})
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentParams {
    message: String,
    idempotency_key: String,
    #[serde(default)]
    session_key: Option<String>,
    #[serde(default)]
    timeout: Option<u64>,
}

fn final_payload(record: &RunRecord, key: &str) -> Result<Value, ErrorShape> {
    let duration = match (record.started_at, record.ended_at) {
        (Some(s), Some(e)) => e - s,
        _ => 0,
    };
    match record.status {
        RunStatus::Ok => Ok(json!({
            "runId": record.run_id,
            "status": "ok",
            "summary": "completed",
            "result": {
                "payloads": [{"text": record.reply.clone().unwrap_or_default()}],
                "meta": {"durationMs": duration, "agentMeta": {"sessionKey": key}},
            },
        })),
        status => {
            let message = record
                .error
                .clone()
                .unwrap_or_else(|| "run did not complete".into());
            let code = if status == RunStatus::Timeout {
                "AGENT_TIMEOUT"
            } else {
                codes::UNAVAILABLE
            };
            Err(ErrorShape::new(code, message.clone()).with_details(json!({
                "runId": record.run_id,
                "status": if status == RunStatus::Timeout { "timeout" } else { "error" },
                "summary": message,
            })))
        }
    }
}

/// `agent`: answers `accepted` at once, then the final result under the
/// same request id (the caller's `expectFinal`).
pub async fn agent(
    shared: &Arc<Shared>,
    conn: &Conn,
    request_id: &str,
    params: Value,
) -> Result<Value, ErrorShape> {
    let p: AgentParams = parse("agent", params)?;
    check_message("agent", &p.message)?;
    check_key("agent", &p.idempotency_key)?;
    let trimmed = p.message.trim();
    if (trimmed == "/new" || trimmed == "/reset") && !scopes::satisfied(&conn.scopes, scopes::ADMIN)
    {
        return Err(ErrorShape::missing_scope(scopes::ADMIN));
    }
    let key = session_key("agent", p.session_key.as_deref())?;
    let run_id = p.idempotency_key;
    if shared.sessions.record(&run_id).is_none() {
        shared
            .sessions
            .submit(&key, &run_id, &p.message, None)
            .map_err(submit_error)?;
    }
    let accepted = json!({"runId": run_id, "sessionKey": key, "agentId": keys::DEFAULT_AGENT,
                          "status": "accepted", "acceptedAt": ids::now_ms()});
    conn.outbound
        .push(frames::response_ok(request_id, &accepted), false);
    let run_timeout = shared.settings.config.agent.run_timeout_secs;
    let wait = Duration::from_secs(p.timeout.unwrap_or(run_timeout).min(run_timeout) + 5);
    let record = shared
        .sessions
        .wait(&run_id, wait)
        .await
        .ok_or_else(|| ErrorShape::new(codes::UNAVAILABLE, "run record evicted"))?;
    if !record.status.is_final() {
        return Err(ErrorShape::new(
            codes::AGENT_TIMEOUT,
            "agent run is still going; use agent.wait",
        )
        .with_details(json!({"runId": run_id, "status": "timeout"})));
    }
    final_payload(&record, &key)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WaitParams {
    run_id: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// `agent.wait`: wait for a run to finish; a timeout does not cancel it.
pub async fn agent_wait(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: WaitParams = parse("agent.wait", params)?;
    let timeout = Duration::from_millis(p.timeout_ms.unwrap_or(30_000).min(600_000));
    let record = shared
        .sessions
        .wait(&p.run_id, timeout)
        .await
        .ok_or_else(|| ErrorShape::invalid(format!("unknown runId: {}", p.run_id)))?;
    let status = match record.status {
        RunStatus::Ok => "ok",
        RunStatus::Error | RunStatus::Dropped => "error",
        RunStatus::Aborted => "aborted",
        RunStatus::Timeout => "timeout",
        RunStatus::Queued | RunStatus::Running => "pending",
    };
    let mut out = json!({
        "runId": record.run_id, "status": status, "startedAt": record.started_at, "endedAt": record.ended_at,
        "error": record.error, "terminalReply": record.reply,
    });
    if record.status == RunStatus::Queued {
        out["timeoutPhase"] = json!("queue");
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryParams {
    session_key: String,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    offset: Option<usize>,
}

fn message_view(entry: &TranscriptEntry) -> Value {
    let role = match entry.kind.as_str() {
        "compaction" => "system",
        _ => entry.role.as_deref().unwrap_or("system"),
    };
    let mut v = json!({
        "role": role,
        "content": [{"type": "text", "text": entry.content}],
        "text": entry.content,
        "timestamp": entry.ts,
        "seq": entry.seq,
        "kind": entry.kind,
    });
    let extra = [
        ("runId", entry.run_id.as_ref().map(|s| json!(s))),
        ("toolCalls", entry.tool_calls.clone()),
        ("toolCallId", entry.tool_call_id.as_ref().map(|s| json!(s))),
        ("toolName", entry.name.as_ref().map(|s| json!(s))),
        ("isError", entry.is_error.map(|b| json!(b))),
    ];
    for (k, val) in extra {
        if let Some(val) = val {
            v[k] = val;
        }
    }
    v
}

/// `chat.history`: transcript messages, oldest first (`limit` newest, after
/// skipping `offset` newest), plus messages still queued.
pub fn chat_history(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: HistoryParams = parse("chat.history", params)?;
    let key = session_key("chat.history", Some(&p.session_key))?;
    let limit = p.limit.unwrap_or(200).clamp(1, 1000);
    let rows = shared
        .store
        .transcript_page(&key, limit, p.offset.unwrap_or(0))
        .map_err(store_error)?;
    let meta = shared.store.session(&key).map_err(store_error)?;
    let queued: Vec<Value> = shared
        .store
        .inbox_of(&key)
        .map_err(store_error)?
        .into_iter()
        .map(|i| json!({"runId": i.run_id, "text": i.message, "timestamp": i.ts, "queueMode": i.mode}))
        .collect();
    Ok(json!({
        "sessionKey": key,
        "sessionId": meta.as_ref().map(|m| m.session_id.clone()),
        "messages": rows.iter().map(message_view).collect::<Vec<_>>(),
        "queued": queued,
        "sessionInfo": meta.as_ref().map(|m| session_row(shared, m)),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AbortParams {
    session_key: String,
    #[serde(default)]
    run_id: Option<String>,
}

/// `chat.abort`: queued turns first, then the active run.
pub fn chat_abort(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: AbortParams = parse("chat.abort", params)?;
    let key = session_key("chat.abort", Some(&p.session_key))?;
    let aborted = shared.sessions.abort(&key, p.run_id.as_deref());
    Ok(json!({"ok": true, "aborted": !aborted.is_empty(), "runIds": aborted}))
}

fn session_row(shared: &Shared, meta: &SessionMeta) -> Value {
    let (active, queued) = shared.sessions.runs_of(&meta.key);
    let kind = if meta.key.contains(":group:") || meta.key.contains(":channel:") {
        "group"
    } else {
        "direct"
    };
    let status = match (&active, queued.is_empty()) {
        (Some(_), _) => "running",
        (None, false) => "queued",
        (None, true) => "done",
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

/// `sessions.list`.
pub fn sessions_list(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: ListParams = parse("sessions.list", params)?;
    let all = shared.store.sessions().map_err(store_error)?;
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let offset = p.offset.unwrap_or(0);
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|m| session_row(shared, m))
        .collect();
    let next = offset + page.len();
    Ok(json!({
        "ts": ids::now_ms(),
        "count": page.len(),
        "totalCount": all.len(),
        "limitApplied": limit,
        "offset": offset,
        "nextOffset": (next < all.len()).then_some(next),
        "hasMore": next < all.len(),
        "defaults": {"model": shared.settings.config.agent.model, "contextTokens": shared.settings.config.agent.default_context_window},
        "sessions": page,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyParams {
    key: String,
}

fn existing(shared: &Shared, method: &str, key: &str) -> Result<SessionMeta, ErrorShape> {
    let key = session_key(method, Some(key))?;
    shared
        .store
        .session(&key)
        .map_err(store_error)?
        .ok_or_else(|| ErrorShape::invalid(format!("unknown session: {key}")))
}

/// `sessions.get`.
pub fn sessions_get(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: KeyParams = parse("sessions.get", params)?;
    let meta = existing(shared, "sessions.get", &p.key)?;
    Ok(session_row(shared, &meta))
}

/// `sessions.reset`: a fresh session id and an empty transcript.
pub fn sessions_reset(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: KeyParams = parse("sessions.reset", params)?;
    let meta = existing(shared, "sessions.reset", &p.key)?;
    shared.sessions.abort(&meta.key, None);
    let meta = shared
        .store
        .clear_session(&meta.key, true)
        .map_err(store_error)?
        .ok_or_else(|| ErrorShape::invalid("unknown session"))?;
    shared.bus.broadcast_where(
        "sessions.changed",
        &json!({"sessionKey": meta.key, "reason": "reset"}),
        |c| c.sessions_subscribed.load(Ordering::Relaxed),
    );
    Ok(json!({"ok": true, "key": meta.key, "sessionId": meta.session_id}))
}

/// `sessions.delete`.
pub fn sessions_delete(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: KeyParams = parse("sessions.delete", params)?;
    let meta = existing(shared, "sessions.delete", &p.key)?;
    shared.sessions.abort(&meta.key, None);
    shared
        .store
        .clear_session(&meta.key, false)
        .map_err(store_error)?;
    shared.bus.broadcast_where(
        "sessions.changed",
        &json!({"sessionKey": meta.key, "reason": "deleted"}),
        |c| c.sessions_subscribed.load(Ordering::Relaxed),
    );
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

/// `sessions.patch`: label and model.
pub fn sessions_patch(shared: &Shared, params: Value) -> Result<Value, ErrorShape> {
    let p: PatchParams = parse("sessions.patch", params)?;
    let mut meta = existing(shared, "sessions.patch", &p.key)?;
    if let Some(label) = p.label {
        if label.as_ref().is_some_and(|l| l.chars().count() > 128) {
            return Err(ErrorShape::invalid_params(
                "sessions.patch",
                "label is longer than 128 characters",
            ));
        }
        meta.label = label;
    }
    if let Some(model) = p.model {
        if let (Some(m), Some(providers)) = (&model, &shared.providers)
            && providers.resolve_chain(m, &[]).is_err()
        {
            return Err(ErrorShape::invalid_params(
                "sessions.patch",
                format!("unknown model {m:?}"),
            ));
        }
        meta.model = model;
    }
    shared.store.put_session(&meta).map_err(store_error)?;
    Ok(session_row(shared, &meta))
}

/// `sessions.subscribe`: this connection receives `sessions.changed`.
pub fn sessions_subscribe(shared: &Shared, conn: &Conn) -> Result<Value, ErrorShape> {
    conn.sessions_subscribed.store(true, Ordering::Relaxed);
    let _ = shared;
    Ok(json!({"subscribed": true}))
}

/// `models.list`.
pub fn models_list(shared: &Shared) -> Value {
    let models = shared
        .providers
        .as_ref()
        .map(|p| p.models_snapshot())
        .unwrap_or_default();
    json!({"models": models, "default": shared.settings.config.agent.model, "fallbacks": shared.settings.config.agent.fallbacks})
}
