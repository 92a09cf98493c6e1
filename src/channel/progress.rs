//! What a chat sees while the assistant works on its message: the typing
//! indicator (re-sent every few seconds while the run is active) and one
//! progress line per tool call ("reading room…"), which the channel shows
//! by editing one status message in place and removes when the run ends.
//! Fed by the agent's events (the hub is one of the session event sinks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;

use super::hub::Hub;
use super::{Activity, Channel, Target};
use crate::abort::Abort;
use crate::limits;
use crate::session::EventSink;

struct Tracked {
    channel: Arc<dyn Channel>,
    target: Target,
    since: Instant,
    typing: Option<Abort>,
}

/// Runs of channel messages being watched, by run id.
#[derive(Default)]
pub struct Progress {
    runs: Mutex<HashMap<String, Tracked>>,
}

impl Progress {
    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tracked>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watch run `run_id`, whose message came from `target` on `channel`.
    /// Beyond [`limits::CHANNEL_MAX_TRACKED_RUNS`] the oldest is forgotten
    /// (a run merged into another never sends events of its own).
    pub fn track(&self, run_id: &str, channel: Arc<dyn Channel>, target: Target) {
        let mut runs = self.runs();
        if runs.len() >= limits::CHANNEL_MAX_TRACKED_RUNS
            && let Some(oldest) = runs
                .iter()
                .min_by_key(|(_, t)| t.since)
                .map(|(id, _)| id.clone())
            && let Some(gone) = runs.remove(&oldest)
            && let Some(typing) = gone.typing
        {
            typing.abort();
        }
        runs.insert(
            run_id.to_owned(),
            Tracked {
                channel,
                target,
                since: Instant::now(),
                typing: None,
            },
        );
    }

    fn on_agent(&self, payload: &Value) {
        let Some(run_id) = payload["runId"].as_str() else {
            return;
        };
        let data = &payload["data"];
        match (payload["stream"].as_str(), data["phase"].as_str()) {
            (Some("lifecycle"), Some("start")) => self.start_typing(run_id),
            (Some("lifecycle"), Some("end" | "error")) => {
                if let Some(done) = self.runs().remove(run_id) {
                    if let Some(typing) = done.typing {
                        typing.abort();
                    }
                    done.channel.activity(&done.target, Activity::Done);
                }
            }
            (Some("tool"), Some("start")) => {
                let runs = self.runs();
                if let Some(t) = runs.get(run_id) {
                    t.channel
                        .activity(&t.target, Activity::Progress(tool_label(data)));
                }
            }
            _ => {}
        }
    }

    fn start_typing(&self, run_id: &str) {
        let mut runs = self.runs();
        let Some(tracked) = runs.get_mut(run_id) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let stop = Abort::new();
        tracked.typing = Some(stop.clone());
        let (channel, target) = (tracked.channel.clone(), tracked.target.clone());
        runtime.spawn(async move {
            while !stop.is_aborted() {
                channel.activity(&target, Activity::Typing);
                tokio::select! {
                    _ = tokio::time::sleep(limits::CHANNEL_TYPING_INTERVAL) => {}
                    _ = stop.aborted() => return,
                }
            }
        });
    }
}

/// The progress line of a tool call, in words a person reads.
pub fn tool_label(data: &Value) -> String {
    let args = &data["args"];
    let label = match data["name"].as_str().unwrap_or("a tool") {
        "time" => "checking the time".to_owned(),
        "nodes" => match args["action"].as_str() {
            Some("invoke") => {
                let params: Value = args["invokeParamsJson"]
                    .as_str()
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or(Value::Null);
                let device = params["name"].as_str().unwrap_or("the board");
                match args["invokeCommand"].as_str().unwrap_or("") {
                    "sensors.read" | "gpio.read" => format!("reading {device}"),
                    "gpio.write" => match params["value"].as_bool() {
                        Some(true) => format!("switching {device} on"),
                        Some(false) => format!("switching {device} off"),
                        None => format!("switching {device}"),
                    },
                    "gpio.pulse" => format!("pulsing {device}"),
                    "" => "running a command".to_owned(),
                    other => format!("running {other}"),
                }
            }
            _ => "looking at the devices".to_owned(),
        },
        other => format!("using {other}"),
    };
    let label: String = label.chars().take(MAX_LABEL_CHARS).collect();
    format!("⚙️ {label}…")
}

/// Longest progress line.
const MAX_LABEL_CHARS: usize = 80;

impl EventSink for Hub {
    fn agent(&self, payload: &Value, _tool: bool) {
        self.progress.on_agent(payload);
    }
    fn chat(&self, _payload: &Value) {}
    fn session_changed(&self, _session_key: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_calls_read_as_words() {
        let read = json!({"name": "nodes", "args": {"action": "invoke", "node": "local", "invokeCommand": "sensors.read", "invokeParamsJson": "{\"name\":\"room\"}"}});
        assert_eq!(tool_label(&read), "⚙️ reading room…");
        let write = json!({"name": "nodes", "args": {"action": "invoke", "invokeCommand": "gpio.write", "invokeParamsJson": "{\"name\":\"relay1\",\"value\":true}"}});
        assert_eq!(tool_label(&write), "⚙️ switching relay1 on…");
        assert_eq!(
            tool_label(&json!({"name": "nodes", "args": {"action": "status"}})),
            "⚙️ looking at the devices…"
        );
        assert_eq!(
            tool_label(&json!({"name": "time"})),
            "⚙️ checking the time…"
        );
    }
}
