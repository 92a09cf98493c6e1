//! Chat and agent methods: `chat.send|history|abort`, `agent` (two-phase)
//! and `agent.wait`. Every message goes through the session lanes, which
//! make it durable before it is acknowledged; a retried idempotency key
//! never starts a second run, and a key reused for a different message is
//! refused.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::super::Shared;
use super::super::errors::submit_error;
use super::{Call, Reply, parse, store_error};
use crate::ids;
use crate::limits;
use crate::protocol::error::{ErrorShape, codes};
use crate::protocol::frames;
use crate::protocol::scopes;
use crate::session::{Accepted, QueueMode, RunRecord, RunStatus, Submission, Submitted, keys};
use crate::store::TranscriptEntry;

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

/// A client's session key, resolved (`main`, bare names, full keys).
pub(super) fn session_key(method: &str, key: Option<&str>) -> Result<String, ErrorShape> {
    keys::resolve(key).map_err(|e| ErrorShape::invalid_params(method, e))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendParams {
    session_key: String,
    message: String,
    idempotency_key: String,
    #[serde(default)]
    queue_mode: Option<String>,
}

fn retried(record: &RunRecord) -> Value {
    if record.status.is_final() {
        json!({"runId": record.run_id, "status": record.status, "cached": true})
    } else {
        json!({"runId": record.run_id, "status": "in_flight"})
    }
}

/// `chat.send`: the message is durable, then acknowledged; the run streams
/// `chat`/`agent` events.
pub async fn send(call: &Call, params: Value) -> Reply {
    let p: SendParams = parse("chat.send", params)?;
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
    let submission = Submission {
        session_key: key,
        run_id: p.idempotency_key,
        message: p.message,
        mode,
        scopes: call.conn.scopes.clone(),
        route: None,
    };
    let run_id = submission.run_id.clone();
    match call
        .shared
        .sessions
        .submit(submission)
        .await
        .map_err(submit_error)?
    {
        Submitted::New(accepted) => Ok(json!({
            "runId": run_id,
            "status": "started",
            "queued": accepted == Accepted::Queued,
            "steered": accepted == Accepted::Steered,
            "interruptedActiveRun": accepted == Accepted::Interrupted,
        })),
        Submitted::Retry(record) => Ok(retried(&record)),
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

/// The reply of a finished run: from its record, else (evicted under
/// memory pressure) its last assistant message in the transcript.
async fn reply_of(shared: &Shared, record: &RunRecord) -> String {
    if let Some(reply) = &record.reply {
        return reply.clone();
    }
    let rows = shared
        .store
        .transcript_since(&record.session_key, 0, 64)
        .await
        .unwrap_or_default();
    rows.iter()
        .rev()
        .find(|r: &&TranscriptEntry| {
            r.role.as_deref() == Some("assistant") && r.run_id.as_deref() == Some(&record.run_id)
        })
        .map(|r| r.content.clone())
        .unwrap_or_default()
}

async fn final_payload(shared: &Shared, record: &RunRecord, key: &str) -> Reply {
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
                "payloads": [{"text": reply_of(shared, record).await}],
                "meta": {"durationMs": duration, "agentMeta": {"sessionKey": key}},
            },
        })),
        status => {
            let message = record
                .error
                .clone()
                .unwrap_or_else(|| "run did not complete".into());
            let code = if status == RunStatus::Timeout {
                codes::AGENT_TIMEOUT
            } else {
                codes::UNAVAILABLE
            };
            let word = match status {
                RunStatus::Timeout => "timeout",
                RunStatus::Dropped => "dropped",
                RunStatus::Aborted => "aborted",
                _ => "error",
            };
            Err(ErrorShape::new(code, message.clone()).with_details(json!({
                "runId": record.run_id,
                "status": word,
                "summary": message,
            })))
        }
    }
}

/// `agent`: answers `accepted` at once, then the final result under the
/// same request id (the caller's `expectFinal`).
pub async fn agent(call: &Call, params: Value) -> Reply {
    let p: AgentParams = parse("agent", params)?;
    check_message("agent", &p.message)?;
    check_key("agent", &p.idempotency_key)?;
    let trimmed = p.message.trim();
    if (trimmed == "/new" || trimmed == "/reset")
        && !scopes::satisfied(&call.conn.scopes, scopes::ADMIN)
    {
        return Err(ErrorShape::missing_scope(scopes::ADMIN));
    }
    let key = session_key("agent", p.session_key.as_deref())?;
    let run_id = p.idempotency_key;
    let shared = &call.shared;
    shared
        .sessions
        .submit(Submission {
            session_key: key.clone(),
            run_id: run_id.clone(),
            message: p.message,
            mode: None,
            scopes: call.conn.scopes.clone(),
            route: None,
        })
        .await
        .map_err(submit_error)?;
    let accepted = json!({"runId": run_id, "sessionKey": key, "agentId": keys::DEFAULT_AGENT,
                          "status": "accepted", "acceptedAt": ids::now_ms()});
    call.conn
        .outbound
        .push(frames::response_ok(&call.request_id, &accepted), false);
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
    final_payload(shared, &record, &key).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WaitParams {
    run_id: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// `agent.wait`: wait for a run to finish; a timeout does not cancel it.
pub async fn agent_wait(call: &Call, params: Value) -> Reply {
    let p: WaitParams = parse("agent.wait", params)?;
    let timeout = Duration::from_millis(p.timeout_ms.unwrap_or(30_000).min(600_000));
    let record = call
        .shared
        .sessions
        .wait(&p.run_id, timeout)
        .await
        .ok_or_else(|| ErrorShape::invalid(format!("unknown runId: {}", p.run_id)))?;
    let status = match record.status {
        RunStatus::Queued | RunStatus::Running => "pending",
        done => done.as_str(),
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
    /// OpenClaw's Control UI asks what became of the messages it sent.
    #[serde(default)]
    input_run_ids: Vec<String>,
}

/// A message's identity as OpenClaw's clients match it: a stable id, its
/// position, and for a user message the idempotency key it was sent with.
fn identity(session_id: &str, entry: &TranscriptEntry) -> Value {
    let id = format!("{session_id}:{}", entry.seq);
    match (entry.role.as_deref(), &entry.run_id) {
        (Some("user"), Some(run)) => json!({"id": id, "seq": entry.seq, "idempotencyKey": run}),
        (_, Some(run)) => json!({"id": id, "seq": entry.seq, "runId": run}),
        _ => json!({"id": id, "seq": entry.seq}),
    }
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
        (
            "errorMessage",
            (entry.kind == "error").then(|| json!(entry.content)),
        ),
        ("dropped", entry.dropped.as_ref().map(|_| json!(true))),
        (
            "droppedReason",
            entry.dropped.as_ref().map(|why| json!(why)),
        ),
    ];
    for (k, val) in extra {
        if let Some(val) = val {
            v[k] = val;
        }
    }
    v
}

/// `chat.startup`: what OpenClaw's Control UI loads a conversation with;
/// with a `sessionKey` it is `chat.history` (short links are not served).
pub async fn startup(call: &Call, params: Value) -> Reply {
    if params.get("sessionKey").is_none() {
        return Err(ErrorShape::invalid_params(
            "chat.startup",
            "sessionKey is required (short links are not supported)",
        ));
    }
    history_of("chat.startup", call, params).await
}

/// `chat.history`: transcript messages, oldest first (`limit` newest, after
/// skipping `offset` newest), plus messages still queued. With
/// `inputRunIds`, `inputReceipts` says for each whether it is in the
/// transcript (`consumed`) or still queued (`pending`).
pub async fn history(call: &Call, params: Value) -> Reply {
    history_of("chat.history", call, params).await
}

async fn history_of(method: &str, call: &Call, params: Value) -> Reply {
    let p: HistoryParams = parse(method, params)?;
    let key = session_key(method, Some(&p.session_key))?;
    let limit = p.limit.unwrap_or(200).clamp(1, 1000);
    let shared = &call.shared;
    let rows = shared
        .store
        .transcript_page(&key, limit, p.offset.unwrap_or(0))
        .await
        .map_err(store_error)?;
    let meta = shared.store.session(&key).await.map_err(store_error)?;
    let queued: Vec<Value> = shared
        .store
        .inbox_of(&key)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|i| json!({"runId": i.run_id, "text": i.message, "timestamp": i.ts, "queueMode": i.mode}))
        .collect();
    let session_id = meta.as_ref().map_or("", |m| m.session_id.as_str());
    let messages: Vec<Value> = rows
        .iter()
        .map(|e| {
            let mut v = message_view(e);
            v["__openclaw"] = identity(session_id, e);
            v
        })
        .collect();
    let mut out = json!({
        "sessionKey": key,
        "sessionId": meta.as_ref().map(|m| m.session_id.clone()),
        "messages": messages,
        "queued": queued,
        "sessionInfo": meta.as_ref().map(|m| super::sessions::session_row(shared, m)),
    });
    if !p.input_run_ids.is_empty() {
        let consumed = |run: &str| {
            rows.iter()
                .find(|e| e.role.as_deref() == Some("user") && e.run_id.as_deref() == Some(run))
                .map(|e| format!("{session_id}:{}", e.seq))
        };
        let mut receipts = Vec::new();
        let mut consumptions = Vec::new();
        for run in p
            .input_run_ids
            .iter()
            .take(crate::limits::MAX_INPUT_RECEIPTS)
        {
            if let Some(event) = consumed(run) {
                receipts
                    .push(json!({"runId": run, "state": "consumed", "consumedByEventId": event}));
                consumptions.push(json!({"runId": run, "consumedByEventId": event}));
            } else if queued.iter().any(|q| q["runId"] == run.as_str()) {
                receipts.push(json!({"runId": run, "state": "pending"}));
            }
        }
        out["inputReceipts"] = json!(receipts);
        out["inputConsumptions"] = json!(consumptions);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AbortParams {
    session_key: String,
    #[serde(default)]
    run_id: Option<String>,
}

/// `chat.abort`: queued turns first, then the active run.
pub async fn abort(call: &Call, params: Value) -> Reply {
    let p: AbortParams = parse("chat.abort", params)?;
    let key = session_key("chat.abort", Some(&p.session_key))?;
    let aborted = call.shared.sessions.abort(&key, p.run_id.as_deref()).await;
    Ok(json!({"ok": true, "aborted": !aborted.is_empty(), "runIds": aborted}))
}
