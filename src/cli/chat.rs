//! `pinclaw chat`: a plain-terminal chat with the gateway's assistant (over
//! SSH on a Pi, no full-screen UI). The reply streams as it arrives, each
//! tool call is one short line (`→ nodes invoke sensors.read room … 21.4 °C`),
//! approvals are asked inline, and `/new`, `/abort`, `/history`, `/quit`
//! steer the session. With a one-shot message it prints the final text and
//! fails (non-zero) when the run does.

use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::client::{Client, ClientError, ClientOptions};

/// Longest a one-shot message waits for its run to end.
const ONE_SHOT_WAIT: Duration = Duration::from_secs(15 * 60);

/// Longest summary of a tool result on its line.
const TOOL_RESULT_CHARS: usize = 60;

/// Lines typed ahead while a reply streams.
const TYPED_AHEAD: usize = 16;

/// What `pinclaw chat` was asked for.
pub struct ChatOptions {
    /// Gateway URL.
    pub url: String,
    /// How to connect (token or password; the scopes are set here).
    pub client: ClientOptions,
    /// Session key (`main` by default).
    pub session: String,
    /// One message to send, print the answer and exit (`-m`).
    pub message: Option<String>,
}

/// Why the chat ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The gateway could not be reached or went away.
    #[error("{0}")]
    Connection(#[from] ClientError),
    /// The run failed (one-shot mode).
    #[error("{0}")]
    RunFailed(String),
}

/// Run the chat until `/quit`, end of input, or (one-shot) the run's end.
pub async fn run(mut options: ChatOptions) -> Result<(), ChatError> {
    options.client.caps = vec!["tool-events".into()];
    let mut client = Client::connect(&options.url, &options.client).await?;
    let history = client
        .call(
            "chat.history",
            json!({"sessionKey": options.session, "limit": 1}),
        )
        .await?;
    let session = history["sessionKey"]
        .as_str()
        .unwrap_or(&options.session)
        .to_owned();
    let mut view = View::new(session);
    match options.message.take() {
        Some(message) => one_shot(&mut client, &mut view, &message).await,
        None => interactive(&mut client, &mut view, &options.url).await,
    }
}

async fn one_shot(client: &mut Client, view: &mut View, message: &str) -> Result<(), ChatError> {
    view.quiet = true;
    let run_id = send(client, &view.session, message).await?;
    view.run = Some(run_id);
    let deadline = tokio::time::Instant::now() + ONE_SHOT_WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = client.next_event(left).await?;
        if let Some(end) = view.event(&event) {
            return match end {
                RunEnd::Final(text) => {
                    println!("{text}");
                    Ok(())
                }
                RunEnd::Failed(why) => Err(ChatError::RunFailed(why)),
            };
        }
    }
}

async fn interactive(client: &mut Client, view: &mut View, url: &str) -> Result<(), ChatError> {
    println!(
        "pinclaw chat: session {} on {url}. /help for commands, /quit to leave.",
        view.session
    );
    let mut lines = stdin_lines();
    prompt();
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break };
                if !handle_line(client, view, line.trim()).await? {
                    break;
                }
            }
            event = client.next_event(Duration::from_secs(3600)) => {
                match event {
                    Ok(event) => {
                        if view.event(&event).is_some() {
                            prompt();
                        }
                    }
                    Err(ClientError::Timeout) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

/// Handle a typed line; false to leave.
async fn handle_line(client: &mut Client, view: &mut View, line: &str) -> Result<bool, ChatError> {
    if let Some(id) = view.approval.clone() {
        let decision = match line.to_ascii_lowercase().as_str() {
            "y" | "yes" => "allow",
            "n" | "no" => "deny",
            _ => {
                println!("answer y (approve) or n (deny)");
                return Ok(true);
            }
        };
        view.approval = None;
        let answer = client
            .call(
                "exec.approval.resolve",
                json!({"id": id, "decision": decision}),
            )
            .await;
        match answer {
            Ok(_) => println!(
                "({})",
                if decision == "allow" {
                    "approved"
                } else {
                    "denied"
                }
            ),
            Err(e) => println!("could not answer the approval: {e}"),
        }
        return Ok(true);
    }
    match line {
        "" => prompt(),
        "/quit" | "/exit" | "/q" => return Ok(false),
        "/help" => {
            println!(
                "/new      start a new conversation (the session is reset)\n\
                 /abort    stop the reply that is running\n\
                 /history  the last messages of this session\n\
                 /quit     leave (the session stays)"
            );
            prompt();
        }
        "/new" | "/reset" => {
            client
                .call("sessions.reset", json!({"key": view.session}))
                .await?;
            println!("(new conversation)");
            prompt();
        }
        "/abort" | "/stop" => {
            let stopped = client
                .call("chat.abort", json!({"sessionKey": view.session}))
                .await?;
            if stopped["runIds"].as_array().is_none_or(Vec::is_empty) {
                println!("(nothing is running)");
                prompt();
            }
        }
        "/history" => {
            let history = client
                .call(
                    "chat.history",
                    json!({"sessionKey": view.session, "limit": 20}),
                )
                .await?;
            for m in history["messages"].as_array().into_iter().flatten() {
                println!("{}", history_line(m));
            }
            prompt();
        }
        command if command.starts_with('/') => {
            println!("unknown command {command}; /help lists them");
            prompt();
        }
        message => {
            let run_id = send(client, &view.session, message).await?;
            view.run = Some(run_id);
        }
    }
    Ok(true)
}

async fn send(client: &mut Client, session: &str, message: &str) -> Result<String, ClientError> {
    let sent = client
        .call(
            "chat.send",
            json!({"sessionKey": session, "message": message, "idempotencyKey": crate::ids::uuid_v4()}),
        )
        .await?;
    Ok(sent["runId"].as_str().unwrap_or_default().to_owned())
}

/// How a run ended, for the one-shot mode.
#[derive(Debug, PartialEq)]
enum RunEnd {
    Final(String),
    Failed(String),
}

/// Where the cursor is: at the start of a line, after streamed reply text,
/// or after a tool call's line waiting for its result.
#[derive(Clone, Copy, PartialEq)]
enum Line {
    Clean,
    Text,
    Tool,
}

/// What the terminal shows of one session's events.
struct View {
    session: String,
    /// The run whose reply is being shown.
    run: Option<String>,
    /// Reply text was printed for the current run.
    streamed: bool,
    line: Line,
    /// An approval waiting for y/n.
    approval: Option<String>,
    /// One-shot: print nothing but the final text (and notices to stderr).
    quiet: bool,
}

impl View {
    fn new(session: String) -> Self {
        Self {
            session,
            run: None,
            streamed: false,
            line: Line::Clean,
            approval: None,
            quiet: false,
        }
    }

    /// Show an event; `Some` when the current run ended.
    fn event(&mut self, event: &Value) -> Option<RunEnd> {
        let p = &event["payload"];
        match event["event"].as_str() {
            Some("exec.approval.requested") => {
                let id = p["id"].as_str().unwrap_or_default();
                let summary = p["summary"].as_str().unwrap_or("an action");
                if self.quiet {
                    eprintln!(
                        "waiting for an operator's approval: {summary} (pinclaw approvals approve {id})"
                    );
                } else {
                    self.new_line();
                    println!("⚠ approval needed: {summary}. Approve? [y/n]");
                    self.approval = Some(id.to_owned());
                }
                None
            }
            Some("exec.approval.resolved") => {
                if self.approval.as_deref() == p["id"].as_str() {
                    self.approval = None;
                    self.new_line();
                    println!(
                        "(answered elsewhere: {})",
                        p["decision"].as_str().unwrap_or("?")
                    );
                }
                None
            }
            Some("agent") if p["sessionKey"] == self.session.as_str() && p["stream"] == "tool" => {
                if !self.quiet {
                    self.tool(&p["data"]);
                }
                None
            }
            Some("chat") if p["sessionKey"] == self.session.as_str() => self.chat(p),
            _ => None,
        }
    }

    fn chat(&mut self, p: &Value) -> Option<RunEnd> {
        let mine = self.run.as_deref().is_none_or(|r| p["runId"] == r);
        match p["state"].as_str() {
            Some("delta") => {
                if !self.quiet {
                    if self.line == Line::Tool {
                        self.new_line();
                    }
                    self.print(p["deltaText"].as_str().unwrap_or_default(), Line::Text);
                    self.streamed = true;
                }
                None
            }
            Some("final") if mine => {
                let text = p["message"]["content"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if !self.quiet && !self.streamed {
                    self.new_line();
                    self.print(&text, Line::Text);
                }
                self.end(RunEnd::Final(text))
            }
            Some("error") if mine => {
                let why = p["errorMessage"]
                    .as_str()
                    .unwrap_or("the run failed")
                    .to_owned();
                if !self.quiet {
                    self.new_line();
                    println!("error: {why}");
                }
                self.end(RunEnd::Failed(why))
            }
            Some("aborted") if mine => {
                if !self.quiet {
                    self.new_line();
                    println!("(aborted)");
                }
                self.end(RunEnd::Failed("the run was aborted".into()))
            }
            _ => None,
        }
    }

    fn end(&mut self, end: RunEnd) -> Option<RunEnd> {
        if !self.quiet {
            self.new_line();
        }
        self.streamed = false;
        self.run = None;
        Some(end)
    }

    fn tool(&mut self, data: &Value) {
        match data["phase"].as_str() {
            Some("start") => {
                self.new_line();
                self.print(&format!("→ {}", tool_call_line(data)), Line::Tool);
            }
            Some("result") => {
                let mark = if data["isError"] == true {
                    "✗"
                } else {
                    "…"
                };
                let summary = result_summary(data["result"].as_str().unwrap_or_default());
                if self.line == Line::Tool {
                    println!(" {mark} {summary}");
                } else {
                    self.new_line();
                    println!("  {mark} {summary}");
                }
                self.line = Line::Clean;
            }
            _ => {}
        }
    }

    /// Print without ending the line.
    fn print(&mut self, text: &str, line: Line) {
        print!("{text}");
        let _ = std::io::stdout().flush();
        self.line = line;
    }

    /// Finish the line in progress, if any.
    fn new_line(&mut self) {
        if self.line != Line::Clean {
            println!();
            self.line = Line::Clean;
        }
    }
}

/// `nodes invoke sensors.read room` for a tool call's start event.
fn tool_call_line(data: &Value) -> String {
    let args = &data["args"];
    let mut parts = vec![data["name"].as_str().unwrap_or("tool").to_owned()];
    if let Some(action) = args["action"].as_str() {
        parts.push(action.to_owned());
    }
    if let Some(command) = args["invokeCommand"].as_str() {
        parts.push(command.to_owned());
    }
    let params: Value = args["invokeParamsJson"]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    if let Some(name) = params["name"].as_str() {
        parts.push(name.to_owned());
    }
    if let Some(value) = params.get("value").filter(|v| !v.is_null()) {
        parts.push(format!("= {}", on_off(value)));
    }
    parts.join(" ")
}

/// A tool result in a few words: a reading with its unit (`21.4 °C`), a
/// switch as on/off, else the start of the text.
pub fn result_summary(result: &str) -> String {
    let value: Value = serde_json::from_str(result).unwrap_or(Value::Null);
    let value = value.get("payload").unwrap_or(&value);
    let mut words: Vec<String> = Vec::new();
    // A sensor: `readings: {temperature: {value, unit}, …}`, temperature first.
    if let Some(readings) = value["readings"].as_object() {
        let mut quantities: Vec<(&String, &Value)> = readings.iter().collect();
        quantities.sort_by_key(|(q, _)| {
            ["temperature", "humidity", "pressure"]
                .iter()
                .position(|k| q.as_str() == *k)
                .unwrap_or(usize::MAX)
        });
        for (_, r) in quantities {
            match (r["value"].as_f64(), r["unit"].as_str()) {
                (Some(n), Some(unit)) => {
                    words.push(format!("{} {unit}", (n * 10.0).round() / 10.0))
                }
                (_, _) if r["value"].is_boolean() => words.push(on_off(&r["value"])),
                _ => {}
            }
        }
    }
    if words.is_empty()
        && let Some(v) = value.get("value").filter(|v| v.is_boolean())
    {
        words.push(on_off(v));
    }
    if words.is_empty() {
        let flat: String = result.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut cut: String = flat.chars().take(TOOL_RESULT_CHARS).collect();
        if flat.chars().count() > TOOL_RESULT_CHARS {
            cut.push('…');
        }
        return cut;
    }
    words.join(", ")
}

fn on_off(v: &Value) -> String {
    match v.as_bool() {
        Some(true) => "on".into(),
        Some(false) => "off".into(),
        None => v.to_string(),
    }
}

/// One line of `/history`.
fn history_line(m: &Value) -> String {
    let text = m["text"].as_str().unwrap_or_default().replace('\n', " ");
    match (m["kind"].as_str(), m["role"].as_str()) {
        (Some("error"), _) => format!("  ⚠ {text}"),
        (_, Some("user")) => format!("you: {text}"),
        (_, Some("assistant")) if m["toolCalls"].is_array() && text.is_empty() => m["toolCalls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|call| {
                let args = match &call["arguments"] {
                    Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
                    other => other.clone(),
                };
                format!(
                    "  → {}",
                    tool_call_line(&json!({"name": call["name"], "args": args}))
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        (_, Some("assistant")) => format!("assistant: {text}"),
        (_, Some("tool")) => format!(
            "  {} … {}",
            m["toolName"].as_str().unwrap_or("tool"),
            result_summary(&text)
        ),
        _ => format!("  ({text})"),
    }
}

fn prompt() {
    print!("> ");
    let _ = std::io::stdout().flush();
}

/// Typed lines, read on a thread of their own (a blocking read must not
/// hold the event loop); closed at end of input.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(TYPED_AHEAD);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_call_is_one_short_line() {
        let data = json!({"phase": "start", "name": "nodes", "args": {
            "action": "invoke", "invokeCommand": "sensors.read",
            "invokeParamsJson": "{\"name\":\"room\"}"}});
        assert_eq!(tool_call_line(&data), "nodes invoke sensors.read room");
        let data = json!({"name": "nodes", "args": {"action": "invoke",
            "invokeCommand": "gpio.write", "invokeParamsJson": "{\"name\":\"relay1\",\"value\":true}"}});
        assert_eq!(tool_call_line(&data), "nodes invoke gpio.write relay1 = on");
    }

    #[test]
    fn results_are_summarised_with_units() {
        assert_eq!(
            result_summary(
                r#"{"name":"room","readings":{"humidity":{"unit":"%","value":40.0},"temperature":{"unit":"°C","value":21.43}}}"#
            ),
            "21.4 °C, 40 %"
        );
        assert_eq!(
            result_summary(r#"{"payload":{"name":"relay1","value":false}}"#),
            "off"
        );
        let long = "x".repeat(100);
        assert_eq!(result_summary(&long).chars().count(), TOOL_RESULT_CHARS + 1);
    }
}
