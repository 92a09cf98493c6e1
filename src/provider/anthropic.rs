//! Anthropic Messages (`api = "anthropic-messages"`): request body and stream
//! decoder.

use serde_json::{Map, Value, json};

use super::accumulate::{
    SseTurn, ToolSlots, TurnDecoder, finish_turn, parse_json, sse_finish, sse_push,
};
use super::error::{StreamFailure, classify_stream_error, parse_error_value};
use super::sse::{SseDecoder, SseEvent};
use super::types::{Message, StopReason, StreamEvent, TurnRequest, Usage};

/// The `anthropic-version` header value sent with every request.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The JSON body of a streaming Messages request. Consecutive messages of the
/// same role are merged (tool results become `tool_result` blocks of a user
/// message, placed before its text).
pub fn request_body(req: &TurnRequest, model: &str, max_tokens: u32) -> Value {
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in &req.messages {
        let (role, blocks) = match m {
            Message::User { content } => ("user", vec![json!({"type": "text", "text": content})]),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut b = Vec::new();
                if !content.is_empty() {
                    b.push(json!({"type": "text", "text": content}));
                }
                for c in tool_calls {
                    let input = if c.arguments.is_object() {
                        c.arguments.clone()
                    } else {
                        json!({})
                    };
                    b.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
                }
                ("assistant", b)
            }
            Message::Tool {
                call_id,
                content,
                is_error,
                ..
            } => {
                let mut r =
                    json!({"type": "tool_result", "tool_use_id": call_id, "content": content});
                if *is_error {
                    r["is_error"] = true.into();
                }
                ("user", vec![r])
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((r, b)) if *r == role => b.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, mut blocks)| {
            // tool results first in a user message (stable)
            blocks.sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
            json!({"role": role, "content": blocks})
        })
        .collect();
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("max_tokens".into(), max_tokens.into());
    body.insert("stream".into(), true.into());
    if let Some(s) = req.system.as_deref().filter(|s| !s.is_empty()) {
        body.insert("system".into(), s.into());
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        body.insert("tools".into(), tools.into());
    }
    body.insert("messages".into(), messages.into());
    Value::Object(body)
}

/// Stream decoder for Messages events, ending at `message_stop`.
#[derive(Debug, Default)]
pub struct AnthropicDecoder {
    sse: SseDecoder,
    events: Vec<SseEvent>,
    tools: ToolSlots,
    usage: Option<Usage>,
    stop: Option<StopReason>,
    seen: u64,
    done: bool,
}

impl AnthropicDecoder {
    /// A fresh decoder.
    pub fn new() -> Self {
        Self::default()
    }

    fn merge_usage(&mut self, u: &Value) {
        let cur = self.usage.get_or_insert_with(Usage::default);
        if let Some(n) = u.get("input_tokens").and_then(Value::as_u64) {
            cur.input_tokens = n;
        }
        if let Some(n) = u.get("output_tokens").and_then(Value::as_u64) {
            cur.output_tokens = n;
        }
        if let Some(n) = u.get("cache_read_input_tokens").and_then(Value::as_u64) {
            cur.cached_input_tokens = Some(n);
        }
    }

    fn on_event(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<(), StreamFailure> {
        self.seen += 1;
        let v = parse_json(data)?;
        let ty = v.get("type").and_then(Value::as_str).unwrap_or_default();
        let index = v.get("index").and_then(Value::as_i64).unwrap_or(-1);
        match ty {
            "message_start" => {
                if let Some(u) = v.get("message").and_then(|m| m.get("usage")) {
                    self.merge_usage(u);
                }
            }
            "content_block_start" => {
                let b = v.get("content_block").cloned().unwrap_or_default();
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = b
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            out.push(StreamEvent::TextDelta { text: t.to_owned() });
                        }
                    }
                    Some("tool_use") => {
                        let s = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or_default();
                        self.tools.start(index, s("id"), s("name"))?;
                        if let Some(input) = b
                            .get("input")
                            .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                        {
                            self.tools.append_to(index, &input.to_string())?;
                        }
                    }
                    _ => {} // thinking, redacted_thinking, server tools: not visible
                }
            }
            "content_block_delta" => {
                let d = v.get("delta").cloned().unwrap_or_default();
                let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or_default();
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") if !s("text").is_empty() => {
                        out.push(StreamEvent::TextDelta {
                            text: s("text").to_owned(),
                        });
                    }
                    Some("input_json_delta") => self.tools.append_to(index, s("partial_json"))?,
                    Some("thinking_delta") if !s("thinking").is_empty() => {
                        out.push(StreamEvent::ReasoningDelta {
                            text: s("thinking").to_owned(),
                        });
                    }
                    _ => {} // signature_delta, citations_delta, future deltas
                }
            }
            "message_delta" => {
                if let Some(r) = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop = Some(match r {
                        "end_turn" => StopReason::EndTurn,
                        "tool_use" => StopReason::ToolUse,
                        "max_tokens" => StopReason::MaxTokens,
                        "stop_sequence" => StopReason::StopSequence,
                        "refusal" => StopReason::ContentFilter,
                        other => StopReason::Other(other.to_owned()),
                    });
                }
                if let Some(u) = v.get("usage") {
                    self.merge_usage(u);
                }
            }
            "message_stop" => {
                self.done = true;
                finish_turn(&mut self.tools, "toolu_", self.usage, self.stop.take(), out);
            }
            "error" => {
                let err = parse_error_value(&v).unwrap_or_default();
                return Err(StreamFailure::ErrorEvent {
                    kind: classify_stream_error(&err),
                    message: format!("{} {}", err.kind_hint, err.message)
                        .trim()
                        .to_owned(),
                });
            }
            "content_block_stop" | "ping" => {}
            other => tracing::debug!(event = other, "ignoring unknown anthropic stream event"),
        }
        Ok(())
    }
}

impl SseTurn for AnthropicDecoder {
    fn sse(&mut self) -> (&mut SseDecoder, &mut Vec<SseEvent>) {
        (&mut self.sse, &mut self.events)
    }
    fn on_sse_event(
        &mut self,
        data: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), StreamFailure> {
        self.on_event(data, out)
    }
    fn done(&self) -> bool {
        self.done
    }
    fn seen(&self) -> u64 {
        self.seen
    }
}

impl TurnDecoder for AnthropicDecoder {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), StreamFailure> {
        sse_push(self, bytes, out)
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), StreamFailure> {
        sse_finish(self, out)
    }

    fn is_done(&self) -> bool {
        self.done
    }
}
