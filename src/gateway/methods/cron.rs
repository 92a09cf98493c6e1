//! OpenClaw's cron methods over pinclaw's automation engine: `cron.status`,
//! `cron.list` (the canonical page `openclaw cron list` validates),
//! `cron.get`, `cron.add`, `cron.update`, `cron.remove`, `cron.run` and
//! `cron.runs`. Config automations are listed too; they can be run,
//! enabled and disabled, but are changed only in the config file.

use base64::Engine as _;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{Call, Reply};
use crate::automation::engine::{EngineError, Origin};
use crate::automation::jobs;
use crate::protocol::error::{ErrorShape, codes};

/// Most jobs on one `cron.list` page (OpenClaw's maximum).
const MAX_PAGE: usize = 200;

fn engine_error(e: EngineError) -> ErrorShape {
    match e {
        EngineError::NotFound(id) => ErrorShape::invalid(format!(
            "cron job not found: {id}. List automations and retry with an id from `cron.list`."
        ))
        .with_details(json!({"code": "CRON_JOB_NOT_FOUND", "jobId": id})),
        EngineError::ReadOnly(_) | EngineError::Invalid(_) => ErrorShape::invalid(e.to_string()),
        EngineError::Store(e) => super::store_error(e),
    }
}

/// The params object, or an error naming the first key not in `allowed`
/// (OpenClaw's cron params are closed objects).
fn closed(method: &str, params: Value, allowed: &[&str]) -> Result<Map<String, Value>, ErrorShape> {
    let map = match params {
        Value::Null => Map::new(),
        Value::Object(map) => map,
        _ => {
            return Err(ErrorShape::invalid(format!(
                "invalid {method} params: expected an object"
            )));
        }
    };
    if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ErrorShape::invalid(format!(
            "invalid {method} params: unexpected property '{key}'"
        )));
    }
    Ok(map)
}

/// `id` or `jobId`.
fn job_id(method: &str, p: &Map<String, Value>) -> Result<String, ErrorShape> {
    p.get("id")
        .or_else(|| p.get("jobId"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ErrorShape::invalid(format!("invalid {method} params: id is required")))
}

fn usize_param(p: &Map<String, Value>, key: &str) -> Option<usize> {
    p.get(key).and_then(Value::as_u64).map(|n| n as usize)
}

/// `cron.status {}`.
pub async fn status(call: &Call, params: Value) -> Reply {
    closed("cron.status", params, &[])?;
    let engine = &call.shared.automations;
    Ok(json!({
        "enabled": true,
        "triggersEnabled": true,
        "storage": "redb",
        "storePath": call.shared.settings.state_dir.join("state.redb").display().to_string(),
        "jobs": engine.list().len(),
        "failing": engine.failing(),
        "nextWakeAtMs": engine.next_wake_ms(),
    }))
}

/// `cron.list`: filtered, sorted, paged, with the page metadata OpenClaw's
/// CLI checks (`snapshotRevision`, `total`, `offset`, `limit`, `hasMore`,
/// `nextOffset`).
pub async fn list(call: &Call, params: Value) -> Reply {
    let p = closed(
        "cron.list",
        params,
        &[
            "includeDisabled",
            "limit",
            "offset",
            "query",
            "enabled",
            "scheduleKind",
            "lastRunStatus",
            "trigger",
            "sortBy",
            "sortDir",
            "agentId",
            "sessionKey",
            "sessionAgentId",
            "compact",
            "includeDeliveryPreviews",
        ],
    )?;
    let enabled_filter = match (
        p.get("enabled").and_then(Value::as_str),
        p.get("includeDisabled"),
    ) {
        (Some(f), _) => f.to_owned(),
        (None, Some(Value::Bool(true))) => "all".into(),
        _ => "enabled".into(),
    };
    let query = p
        .get("query")
        .and_then(Value::as_str)
        .map(str::to_lowercase);
    let mut jobs: Vec<Value> = call
        .shared
        .automations
        .list()
        .iter()
        .filter(|e| match enabled_filter.as_str() {
            "enabled" => e.enabled,
            "disabled" => !e.enabled,
            _ => true,
        })
        .filter(|e| {
            query.as_ref().is_none_or(|q| {
                e.id.to_lowercase().contains(q) || e.automation.name.to_lowercase().contains(q)
            })
        })
        .map(|e| {
            let mut v = jobs::view(e);
            v["effectiveAgentId"] = json!("main");
            v
        })
        .filter(|v| {
            p.get("scheduleKind")
                .and_then(Value::as_str)
                .is_none_or(|k| v["schedule"]["kind"] == k)
        })
        .filter(|v| {
            p.get("lastRunStatus")
                .and_then(Value::as_str)
                .is_none_or(|s| v["lastRunStatus"] == s)
        })
        .collect();
    let key = p
        .get("sortBy")
        .and_then(Value::as_str)
        .unwrap_or("nextRunAtMs");
    jobs.sort_by(|a, b| match key {
        "name" => a["name"].as_str().cmp(&b["name"].as_str()),
        "updatedAtMs" => a["updatedAtMs"].as_i64().cmp(&b["updatedAtMs"].as_i64()),
        // No next run sorts last.
        _ => (
            a["nextRunAtMs"].as_i64().unwrap_or(i64::MAX),
            a["id"].as_str(),
        )
            .cmp(&(
                b["nextRunAtMs"].as_i64().unwrap_or(i64::MAX),
                b["id"].as_str(),
            )),
    });
    if p.get("sortDir").and_then(Value::as_str) == Some("desc") {
        jobs.reverse();
    }
    let total = jobs.len();
    let digest = Sha256::digest(Value::Array(jobs.clone()).to_string().as_bytes());
    let revision = format!(
        "sha256:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    );
    let offset = usize_param(&p, "offset").unwrap_or(0).min(total);
    let default_limit = if total == 0 { 50 } else { total.min(MAX_PAGE) };
    let limit = usize_param(&p, "limit")
        .unwrap_or(default_limit)
        .clamp(1, MAX_PAGE);
    let page: Vec<Value> = jobs.into_iter().skip(offset).take(limit).collect();
    let end = offset + page.len();
    let has_more = end < total;
    Ok(json!({
        "jobs": page,
        "snapshotRevision": revision,
        "total": total,
        "offset": offset,
        "limit": limit,
        "hasMore": has_more,
        "nextOffset": if has_more { Some(end) } else { None },
    }))
}

/// `cron.get {id | jobId}`.
pub async fn get(call: &Call, params: Value) -> Reply {
    let p = closed("cron.get", params, &["id", "jobId"])?;
    let id = job_id("cron.get", &p)?;
    call.shared
        .automations
        .get(&id)
        .map(|e| jobs::view(&e))
        .ok_or_else(|| engine_error(EngineError::NotFound(id)))
}

/// `cron.add {name, schedule, sessionTarget, wakeMode, payload, …}`: a
/// runtime job, stored durably before the answer.
pub async fn add(call: &Call, params: Value) -> Reply {
    let p = closed("cron.add", params, jobs::ADD_KEYS)?;
    for key in ["name", "schedule", "payload"] {
        if !p.contains_key(key) {
            return Err(ErrorShape::invalid(format!(
                "invalid cron.add params: must have required property '{key}'"
            )));
        }
    }
    let name = p["name"].as_str().map(str::trim).unwrap_or_default();
    if name.is_empty() || name.len() > 200 {
        return Err(ErrorShape::invalid(
            "invalid cron.add params: name must be 1-200 characters",
        ));
    }
    let now = crate::ids::now_ms();
    let mut job = Value::Object(p);
    job["id"] = json!(crate::ids::uuid_v4());
    job["createdAtMs"] = json!(now);
    job["updatedAtMs"] = json!(now);
    if job.get("sessionTarget").is_none() {
        job["sessionTarget"] = json!("main");
    }
    if job.get("wakeMode").is_none() {
        job["wakeMode"] = json!("now");
    }
    if job.get("enabled").is_none() {
        job["enabled"] = json!(true);
    }
    let view = call
        .shared
        .automations
        .put_job(job)
        .await
        .map_err(engine_error)?;
    Ok(jobs::view(&view))
}

/// `cron.update {id | jobId, patch, expectedConfigRevision?}`.
pub async fn update(call: &Call, params: Value) -> Reply {
    let p = closed(
        "cron.update",
        params,
        &["id", "jobId", "patch", "expectedConfigRevision"],
    )?;
    let id = job_id("cron.update", &p)?;
    let Some(Value::Object(patch)) = p.get("patch").cloned() else {
        return Err(ErrorShape::invalid(
            "invalid cron.update params: patch must be an object",
        ));
    };
    let engine = &call.shared.automations;
    let entry = engine
        .get(&id)
        .ok_or_else(|| engine_error(EngineError::NotFound(id.clone())))?;
    if let Some(expected) = p.get("expectedConfigRevision").and_then(Value::as_str)
        && expected != jobs::revision_of(&entry)
    {
        return Err(ErrorShape::new(
            codes::INVALID_REQUEST,
            format!("cron job {id} changed since it was read; reload and retry"),
        )
        .with_details(json!({"code": "CRON_CONFIG_REVISION_MISMATCH"})));
    }
    let mut view = entry;
    let definition: Map<String, Value> = patch
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "enabled" | "state"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !definition.is_empty() {
        let Origin::Job(mut job) = view.origin.clone() else {
            return Err(engine_error(EngineError::ReadOnly(view.id)));
        };
        if let Some(key) = definition
            .keys()
            .find(|k| !jobs::ADD_KEYS.contains(&k.as_str()))
        {
            return Err(ErrorShape::invalid(format!(
                "invalid cron.update params: unexpected property 'patch.{key}'"
            )));
        }
        for (k, v) in definition {
            job[k] = v;
        }
        job["updatedAtMs"] = json!(crate::ids::now_ms());
        view = engine.put_job(job).await.map_err(engine_error)?;
    }
    if let Some(enabled) = patch.get("enabled").and_then(Value::as_bool) {
        view = engine
            .set_enabled(&view.id, enabled)
            .await
            .map_err(engine_error)?;
    }
    Ok(jobs::view(&view))
}

/// `cron.remove {id | jobId}` → `{ok, removed}`.
pub async fn remove(call: &Call, params: Value) -> Reply {
    let p = closed("cron.remove", params, &["id", "jobId"])?;
    let id = job_id("cron.remove", &p)?;
    match call.shared.automations.remove_job(&id).await {
        Ok(()) => Ok(json!({"ok": true, "removed": true})),
        Err(EngineError::NotFound(id)) => Err(ErrorShape::invalid(format!(
            "Automation not found: {id}. List automations and retry with an id from `cron.list`."
        ))
        .with_details(json!({"code": "CRON_JOB_NOT_FOUND", "jobId": id}))),
        Err(e) => Err(engine_error(e)),
    }
}

/// `cron.run {id | jobId, mode?: force | due | if-enabled}`.
pub async fn run(call: &Call, params: Value) -> Reply {
    let p = closed(
        "cron.run",
        params,
        &["id", "jobId", "mode", "expectedProcessInstanceId"],
    )?;
    let id = job_id("cron.run", &p)?;
    let engine = &call.shared.automations;
    let entry = engine
        .get(&id)
        .ok_or_else(|| engine_error(EngineError::NotFound(id.clone())))?;
    let not_run = |reason: &str| Ok(json!({"ok": true, "ran": false, "reason": reason}));
    match p.get("mode").and_then(Value::as_str).unwrap_or("force") {
        "force" => {}
        "if-enabled" if !entry.enabled => return not_run("disabled"),
        "if-enabled" => {}
        "due" if !entry.enabled => return not_run("disabled"),
        "due"
            if entry
                .state
                .next_run_ms
                .is_none_or(|next| next > crate::ids::now_ms()) =>
        {
            return not_run("not-due");
        }
        "due" => {}
        other => {
            return Err(ErrorShape::invalid(format!(
                "invalid cron.run params: mode must be force, due or if-enabled, not {other:?}"
            )));
        }
    }
    match engine.run_now(&entry.id).await.map_err(engine_error)? {
        Some(run_id) => Ok(json!({
            "ok": true, "enqueued": true, "runId": run_id,
            "processInstanceId": call.shared.boot_id,
        })),
        None => not_run("already-running"),
    }
}

/// `cron.runs {id | jobId?, scope?, runId?, limit?, offset?, statuses?, …}`.
pub async fn runs(call: &Call, params: Value) -> Reply {
    let p = closed(
        "cron.runs",
        params,
        &[
            "id",
            "jobId",
            "scope",
            "runId",
            "limit",
            "offset",
            "statuses",
            "status",
            "deliveryStatuses",
            "deliveryStatus",
            "query",
            "sortDir",
            "agentId",
        ],
    )?;
    let job = p
        .get("id")
        .or_else(|| p.get("jobId"))
        .and_then(Value::as_str)
        .filter(|_| p.get("scope").and_then(Value::as_str) != Some("all"))
        .map(|id| {
            call.shared
                .automations
                .get(id)
                .map(|e| e.id)
                .unwrap_or_else(|| id.to_owned())
        });
    let offset = usize_param(&p, "offset").unwrap_or(0);
    let limit = usize_param(&p, "limit").unwrap_or(50).clamp(1, MAX_PAGE);
    let mut statuses: Vec<String> = p
        .get("statuses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Some(s) = p.get("status").and_then(Value::as_str) {
        statuses.push(s.to_owned());
    }
    let run_id = p.get("runId").and_then(Value::as_str).map(str::to_owned);
    // Filters beyond the job are applied over the whole (bounded) history.
    let (all, _) = call
        .shared
        .store
        .automation_runs(job, 0, crate::limits::MAX_AUTOMATION_RUNS)
        .await
        .map_err(super::store_error)?;
    let matching: Vec<_> = all
        .into_iter()
        .filter(|r| statuses.is_empty() || statuses.contains(&r.status))
        .filter(|r| run_id.as_ref().is_none_or(|id| *id == r.run_id))
        .collect();
    let total = matching.len();
    let entries: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|r| {
            json!({
                "ts": r.ts, "jobId": r.job_id, "jobName": r.job_name, "action": "finished",
                "status": r.status,
                "completionStatus": if r.status == "ok" { "succeeded" } else { "failed" },
                "error": r.error, "summary": r.summary, "runId": r.run_id,
                "runAtMs": r.run_at_ms, "durationMs": r.duration_ms,
            })
        })
        .collect();
    let end = offset.min(total) + entries.len();
    Ok(json!({
        "entries": entries,
        "total": total,
        "offset": offset,
        "limit": limit,
        "hasMore": end < total,
        "nextOffset": if end < total { Some(end) } else { None },
    }))
}
