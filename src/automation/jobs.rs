//! OpenClaw's cron jobs on pinclaw: a runtime job (`cron.add`) is a
//! schedule plus an agent turn, kept as the JSON OpenClaw's clients sent
//! (so `cron.get` gives it back as written) and compiled into an
//! [`Automation`]. Config automations are shown to the same clients as
//! read-only jobs.
//!
//! Supported: schedules `at`, `every`, `cron` (with `tz`); payloads
//! `agentTurn` and `systemEvent` (both become a turn in the target
//! session); session targets `main`, `current`, `isolated` (a `cron:<id>`
//! session per job) and `session:<key>`; delivery `none` and `announce`
//! (the reply goes to a channel chat). Shell commands, scripts, streams and
//! webhooks are refused with a reason: pinclaw runs no shell.

use serde_json::{Map, Value, json};

use super::config::{AgentAction, Automation, Do, Target, Trigger};
use super::engine::{EntryView, Origin};
use super::schedule::{self, CronExpr, Schedule, TimeZone};

/// Keys `cron.add` accepts (OpenClaw's schema is closed).
pub const ADD_KEYS: &[&str] = &[
    "name",
    "schedule",
    "sessionTarget",
    "wakeMode",
    "payload",
    "agentId",
    "sessionKey",
    "description",
    "enabled",
    "deleteAfterRun",
    "declarationKey",
    "displayName",
    "owner",
    "pacing",
    "trigger",
    "delivery",
    "failureAlert",
];

/// The schedule of a job's `schedule` object.
pub fn parse_schedule(
    s: &Value,
    created_ms: i64,
    default_tz: &TimeZone,
) -> Result<Schedule, String> {
    let tz = |s: &Value| -> Result<TimeZone, String> {
        match s["tz"].as_str() {
            Some(name) => TimeZone::named(name).map_err(|e| format!("schedule.tz: {e}")),
            None => Ok(default_tz.clone()),
        }
    };
    match s["kind"].as_str() {
        Some("at") => {
            let at = s["at"]
                .as_str()
                .ok_or("schedule.at must be an ISO-8601 time")?;
            // Offset-less times are UTC unless the schedule names a zone.
            let zone = match s["tz"].as_str() {
                Some(_) => tz(s)?,
                None => TimeZone::utc(),
            };
            schedule::parse_instant(at, &zone)
                .map(|at_ms| Schedule::At { at_ms })
                .map_err(|e| format!("schedule.at: {e}"))
        }
        Some("every") => {
            let every_ms = s["everyMs"]
                .as_u64()
                .filter(|ms| *ms >= 1000)
                .ok_or("schedule.everyMs must be a whole number of milliseconds, at least 1000")?;
            let anchor_ms = s["anchorMs"].as_i64().unwrap_or(created_ms);
            Ok(Schedule::Every {
                every_ms,
                anchor_ms,
            })
        }
        Some("cron") => {
            let expr = s["expr"]
                .as_str()
                .ok_or("schedule.expr must be a cron expression")?;
            let expr = CronExpr::parse(expr).map_err(|e| format!("schedule.expr: {e}"))?;
            Ok(Schedule::Cron { expr, tz: tz(s)? })
        }
        Some(kind @ ("on-exit" | "stream")) => Err(format!(
            "schedule.kind {kind} runs a command; pinclaw runs no shell commands"
        )),
        _ => Err("schedule.kind must be at, every or cron".into()),
    }
}

/// The session a job's turns run in.
fn session_of(job: &Value, id: &str) -> Result<String, String> {
    match job["sessionTarget"].as_str().unwrap_or("main") {
        "main" | "current" => Ok(job["sessionKey"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| "agent:main:main".into())),
        "isolated" => Ok(format!("agent:main:cron:{id}")),
        other => match other.strip_prefix("session:") {
            Some(key) if !key.is_empty() => {
                crate::session::keys::resolve(Some(key)).map_err(|e| format!("sessionTarget: {e}"))
            }
            _ => Err(format!(
                "sessionTarget must be main, current, isolated or session:<key>, not {other:?}"
            )),
        },
    }
}

/// Compiles a stored (or new) job into `(id, automation)`.
pub fn compile(job: &Value, default_tz: &TimeZone) -> Result<(String, Automation), String> {
    let id = job["id"].as_str().ok_or("a job has no id")?.to_owned();
    let name = job["name"].as_str().unwrap_or(&id).to_owned();
    let created = job["createdAtMs"].as_i64().unwrap_or(0);
    let schedule = parse_schedule(&job["schedule"], created, default_tz)?;
    let payload = &job["payload"];
    let message = match payload["kind"].as_str() {
        Some("agentTurn") => payload["message"].as_str(),
        Some("systemEvent") => payload["text"].as_str(),
        Some(kind @ ("command" | "script")) => {
            return Err(format!(
                "payload.kind {kind} runs code on the host; pinclaw runs no shell commands or scripts (use agentTurn)"
            ));
        }
        _ => return Err("payload.kind must be agentTurn or systemEvent".into()),
    }
    .filter(|m| !m.trim().is_empty())
    .ok_or("the payload needs a non-empty message (agentTurn) or text (systemEvent)")?
    .to_owned();
    let delivery = &job["delivery"];
    let deliver = match delivery["mode"].as_str() {
        None | Some("none") => None,
        // OpenClaw's CLI asks to announce to the "last" chat by default;
        // without a named chat the reply stays in the job's session (where
        // `pinclaw chat`, the dashboard and `chat.history` show it).
        Some("announce") => match (delivery["channel"].as_str(), delivery["to"].as_str()) {
            (Some(channel), Some(to)) if channel != "last" => Some(Target {
                channel: channel.to_owned(),
                to: to.to_owned(),
            }),
            (None, Some(to)) => Some(Target {
                channel: "telegram".into(),
                to: to.to_owned(),
            }),
            _ => None,
        },
        Some(mode) => {
            return Err(format!(
                "delivery.mode {mode} is not supported (none or announce)"
            ));
        }
    };
    let describe = schedule.to_string();
    let automation = Automation {
        name,
        enabled: job["enabled"].as_bool().unwrap_or(true),
        trigger: Trigger::Schedule(schedule),
        actions: Do {
            agent: Some(AgentAction {
                session: session_of(job, &id)?,
                message,
                deliver,
            }),
            ..Do::default()
        },
        cooldown_ms: 0,
        quiet: None,
        describe,
    };
    Ok((id, automation))
}

/// A config automation's trigger as an OpenClaw `schedule`: schedules as
/// themselves; board, MQTT and start triggers as a `stream` (what fires
/// them, as a command line that names the source).
fn schedule_json(trigger: &Trigger, describe: &str) -> Value {
    match trigger {
        Trigger::Schedule(Schedule::Cron { expr, tz }) => {
            json!({"kind": "cron", "expr": expr.to_string(), "tz": tz.name()})
        }
        Trigger::Schedule(Schedule::Every {
            every_ms,
            anchor_ms,
        }) => json!({"kind": "every", "everyMs": every_ms, "anchorMs": anchor_ms}),
        Trigger::Schedule(Schedule::At { at_ms }) => {
            json!({"kind": "at", "at": schedule::format_instant(*at_ms)})
        }
        _ => json!({"kind": "stream", "command": ["pinclaw", "when", describe], "mode": "line"}),
    }
}

/// The OpenClaw `CronJob` read view of an entry (with `state` flattened
/// onto the top level as OpenClaw's list does).
pub fn view(e: &EntryView) -> Value {
    let st = &e.state;
    let mut job = match &e.origin {
        Origin::Job(job) => job.clone(),
        Origin::Config => {
            let a = &e.automation;
            let mut payload = Map::new();
            payload.insert("kind".into(), json!("systemEvent"));
            payload.insert("text".into(), json!(describe_actions(&a.actions)));
            json!({
                "id": e.id,
                "name": a.name,
                "description": format!("when {} (declared in the config file; read-only)", a.describe),
                "createdAtMs": 0,
                "updatedAtMs": 0,
                "schedule": schedule_json(&a.trigger, &a.describe),
                "sessionTarget": "main",
                "wakeMode": "now",
                "payload": payload,
                "declarationKey": format!("config:{}", a.name),
                "owner": {"agentId": "main"},
            })
        }
    };
    // Only the keys that have a value (OpenClaw's state keys are optional,
    // not nullable).
    let mut state = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            state.insert(k.to_owned(), v);
        }
    };
    put("nextRunAtMs", st.next_run_ms.map(Value::from));
    put(
        "runningAtMs",
        st.last_run_ms.filter(|_| e.running).map(Value::from),
    );
    put("lastRunAtMs", st.last_run_ms.map(Value::from));
    put("lastRunStatus", st.last_status.clone().map(Value::from));
    put("lastStatus", st.last_status.clone().map(Value::from));
    put("lastError", st.last_error.clone().map(Value::from));
    put("lastDurationMs", st.last_duration_ms.map(Value::from));
    put("consecutiveErrors", Some(json!(st.consecutive_errors)));
    put(
        "autoDisabled",
        st.auto_disabled.then(|| {
            json!({"reason": "rate-limit", "atMs": st.last_run_ms, "consecutiveErrors": st.consecutive_errors})
        }),
    );
    let state = Value::Object(state);
    if let Some(obj) = job.as_object_mut() {
        obj.insert("enabled".into(), json!(e.enabled));
        for (k, v) in [
            ("nextRunAtMs", st.next_run_ms.map(Value::from)),
            ("lastRunAtMs", st.last_run_ms.map(Value::from)),
            ("lastRunStatus", st.last_status.clone().map(Value::from)),
            ("lastRunError", st.last_error.clone().map(Value::from)),
        ] {
            match v {
                Some(v) => obj.insert(k.into(), v),
                None => obj.remove(k),
            };
        }
        obj.insert("state".into(), state);
        obj.insert(
            "pinclaw".into(),
            json!({
                "source": if matches!(e.origin, Origin::Config) { "config" } else { "runtime" },
                "when": e.automation.describe,
                "do": describe_actions(&e.automation.actions),
            }),
        );
        obj.insert("configRevision".into(), json!(revision_of(e)));
    }
    job
}

/// The revision of one entry's definition (for `expectedConfigRevision`).
pub fn revision_of(e: &EntryView) -> String {
    let basis = match &e.origin {
        Origin::Job(job) => job["updatedAtMs"].to_string(),
        Origin::Config => "config".into(),
    };
    format!("{}:{basis}", e.id)
}

/// `notify telegram 123 "…"; invoke gpio.write relay1` for listings.
pub fn describe_actions(d: &Do) -> String {
    let mut out = Vec::new();
    if let Some(i) = &d.invoke {
        let target = i.params["name"].as_str().unwrap_or("");
        out.push(
            format!("invoke {} {target}", i.command)
                .trim_end()
                .to_owned(),
        );
    }
    if let Some(n) = &d.notify {
        out.push(format!("notify {} {}", n.channel, n.to));
    }
    if let Some(a) = &d.agent {
        out.push(format!("agent turn in {}", a.session));
    }
    if let Some(m) = &d.mqtt {
        out.push(format!("mqtt {}", m.topic));
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_compiles_into_a_scheduled_agent_turn() {
        let job = json!({
            "id": "j1", "name": "morning", "createdAtMs": 1_000,
            "schedule": {"kind": "every", "everyMs": 60_000},
            "sessionTarget": "isolated", "wakeMode": "now",
            "payload": {"kind": "agentTurn", "message": "water the plants"},
            "delivery": {"mode": "announce", "channel": "telegram", "to": "42"},
        });
        let (id, a) = compile(&job, &TimeZone::utc()).unwrap();
        assert_eq!(id, "j1");
        let agent = a.actions.agent.unwrap();
        assert_eq!(agent.session, "agent:main:cron:j1");
        assert_eq!(agent.message, "water the plants");
        assert_eq!(agent.deliver.map(|t| t.to), Some("42".into()));
        let Trigger::Schedule(s) = a.trigger else {
            panic!("a schedule")
        };
        assert_eq!(s.next_after(1_000), Some(61_000), "anchored at creation");
    }

    #[test]
    fn what_pinclaw_cannot_do_is_refused_with_a_reason() {
        let base = json!({"id": "j", "name": "n", "schedule": {"kind": "every", "everyMs": 60_000},
                          "payload": {"kind": "agentTurn", "message": "hi"}});
        let with = |k: &str, v: Value| {
            let mut j = base.clone();
            j[k] = v;
            compile(&j, &TimeZone::utc()).unwrap_err()
        };
        assert!(with("payload", json!({"kind": "command", "argv": ["rm"]})).contains("no shell"));
        assert!(with("schedule", json!({"kind": "stream", "command": ["x"]})).contains("no shell"));
        assert!(
            with("schedule", json!({"kind": "cron", "expr": "61 * * * *"}))
                .contains("schedule.expr")
        );
        assert!(with("schedule", json!({"kind": "every", "everyMs": 5})).contains("at least 1000"));
        assert!(
            with("delivery", json!({"mode": "webhook", "to": "http://x"}))
                .contains("not supported")
        );
        assert!(with("sessionTarget", json!("elsewhere")).contains("sessionTarget"));
        assert!(
            with("payload", json!({"kind": "agentTurn", "message": " "})).contains("non-empty")
        );
    }
}
