//! Ollama native `/api/chat` (`api = "ollama"`): request body and NDJSON
//! stream decoder.

use serde_json::{Map, Value, json};

use super::accumulate::{ToolSlots, TurnDecoder, finish_turn, parse_json};
use super::error::{FailureKind, StreamFailure, classify_stream_error, parse_error_value};
use super::ndjson::NdjsonDecoder;
use super::types::{Message, StopReason, StreamEvent, TurnRequest, Usage, tool_result_text};

/// The JSON body of a streaming `/api/chat` request. `num_ctx` is sent when
/// the model's context window is configured.
pub fn request_body(
    req: &TurnRequest,
    model: &str,
    max_tokens: u32,
    context_window: Option<u32>,
) -> Value {
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(s) = req.system.as_deref().filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": s}));
    }
    for m in &req.messages {
        messages.push(match m {
            Message::User { content } => json!({"role": "user", "content": content}),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut o = json!({"role": "assistant", "content": content});
                if !tool_calls.is_empty() {
                    o["tool_calls"] = tool_calls
                        .iter()
                        .map(|c| json!({"function": {"name": c.name, "arguments": c.arguments}}))
                        .collect::<Vec<_>>()
                        .into();
                }
                o
            }
            Message::Tool {
                name,
                content,
                is_error,
                ..
            } => {
                let content = tool_result_text(content, *is_error);
                json!({"role": "tool", "tool_name": name, "content": content})
            }
        });
    }
    let mut options = Map::new();
    options.insert("num_predict".into(), max_tokens.into());
    if let Some(n) = context_window {
        options.insert("num_ctx".into(), n.into());
    }
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("stream".into(), true.into());
    body.insert("messages".into(), messages.into());
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters}})
            })
            .collect();
        body.insert("tools".into(), tools.into());
    }
    body.insert("options".into(), options.into());
    Value::Object(body)
}

/// Stream decoder for `/api/chat` NDJSON, ending at `"done": true`.
#[derive(Debug, Default)]
pub struct OllamaDecoder {
    lines: NdjsonDecoder,
    buf: Vec<String>,
    tools: ToolSlots,
    calls: i64,
    seen: u64,
    done: bool,
}

impl OllamaDecoder {
    /// A fresh decoder.
    pub fn new() -> Self {
        Self::default()
    }

    fn on_line(&mut self, line: &str, out: &mut Vec<StreamEvent>) -> Result<(), StreamFailure> {
        self.seen += 1;
        let v = parse_json(line)?;
        if let Some(err) = parse_error_value(&v) {
            let kind = match classify_stream_error(&err) {
                FailureKind::Server if err.message.contains("not found") => FailureKind::NotFound,
                k => k,
            };
            return Err(StreamFailure::ErrorEvent {
                kind,
                message: err.message,
            });
        }
        if let Some(m) = v.get("message") {
            if let Some(t) = m
                .get("thinking")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                out.push(StreamEvent::ReasoningDelta { text: t.to_owned() });
            }
            if let Some(t) = m
                .get("content")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                out.push(StreamEvent::TextDelta { text: t.to_owned() });
            }
            for c in m
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let f = c.get("function").cloned().unwrap_or_default();
                let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
                let id = c.get("id").and_then(Value::as_str).unwrap_or_default();
                let key = self.calls;
                self.calls += 1;
                self.tools.start(key, id, name)?;
                match f.get("arguments") {
                    Some(Value::String(s)) => self.tools.append_to(key, s)?,
                    Some(Value::Null) | None => {}
                    Some(a) => self.tools.append_to(key, &a.to_string())?,
                }
            }
        }
        if v.get("done").and_then(Value::as_bool) == Some(true) {
            self.done = true;
            let n = |k: &str| v.get(k).and_then(Value::as_u64);
            let usage =
                (n("prompt_eval_count").is_some() || n("eval_count").is_some()).then(|| Usage {
                    input_tokens: n("prompt_eval_count").unwrap_or(0),
                    output_tokens: n("eval_count").unwrap_or(0),
                    cached_input_tokens: None,
                });
            let reason = v
                .get("done_reason")
                .and_then(Value::as_str)
                .map(|r| match r {
                    "stop" => StopReason::EndTurn,
                    "length" => StopReason::MaxTokens,
                    other => StopReason::Other(other.to_owned()),
                });
            finish_turn(&mut self.tools, "ollama_call_", usage, reason, out);
        }
        Ok(())
    }
}

impl TurnDecoder for OllamaDecoder {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), StreamFailure> {
        if self.done {
            return Ok(());
        }
        // Lines completed before a framing error are handled first (see
        // `sse_push`), and bytes after `"done":true` are ignored.
        let framed = self.lines.push(bytes, &mut self.buf);
        let mut lines = std::mem::take(&mut self.buf);
        let mut handled = Ok(());
        for l in &lines {
            if self.done {
                break;
            }
            handled = self.on_line(l, out);
            if handled.is_err() {
                break;
            }
        }
        lines.clear();
        self.buf = lines;
        handled?;
        if self.done {
            return Ok(());
        }
        Ok(framed?)
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), StreamFailure> {
        if !self.done
            && let Some(last) = self.lines.finish()
        {
            // a cut last line is a truncation, not a JSON error
            let seen = self.seen;
            match self.on_line(&last, out) {
                Err(StreamFailure::InvalidJson { .. }) => {
                    return Err(StreamFailure::Truncated { events: seen });
                }
                r => r?,
            }
        }
        match (self.done, self.seen) {
            (true, _) => Ok(()),
            (false, 0) => Err(StreamFailure::EmptyBody),
            (false, events) => Err(StreamFailure::Truncated { events }),
        }
    }

    fn is_done(&self) -> bool {
        self.done
    }
}
