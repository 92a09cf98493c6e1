//! OpenAI Chat Completions (`api = "openai-chat"`): request body and stream
//! decoder. Also used for OpenRouter, Groq, vLLM, llama.cpp, LM Studio and
//! Ollama's `/v1`.

use serde_json::{Map, Value, json};

use super::accumulate::{
    SseTurn, ToolSlots, TurnDecoder, finish_turn, parse_json, sse_finish, sse_push,
};
use super::error::{StreamFailure, classify_stream_error, parse_error_value};
use super::sse::{SseDecoder, SseEvent};
use super::types::{Message, StopReason, StreamEvent, TurnRequest, Usage, tool_result_text};

/// Per-provider capabilities of an OpenAI-compatible server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiOptions {
    /// Name of the output cap field: `max_tokens` or `max_completion_tokens`.
    pub max_tokens_field: String,
    /// Send `stream_options.include_usage`.
    pub stream_usage: bool,
}

/// The JSON body of a streaming Chat Completions request.
pub fn request_body(
    req: &TurnRequest,
    model: &str,
    max_tokens: u32,
    opts: &OpenAiOptions,
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
                let mut o = Map::new();
                o.insert("role".into(), "assistant".into());
                o.insert(
                    "content".into(),
                    if content.is_empty() {
                        Value::Null
                    } else {
                        content.as_str().into()
                    },
                );
                if !tool_calls.is_empty() {
                    let calls: Vec<Value> = tool_calls
                        .iter()
                        .map(|c| {
                            json!({"id": c.id, "type": "function", "function": {
                                "name": c.name, "arguments": c.arguments.to_string()}})
                        })
                        .collect();
                    o.insert("tool_calls".into(), calls.into());
                }
                Value::Object(o)
            }
            Message::Tool {
                call_id,
                content,
                is_error,
                ..
            } => {
                let content = tool_result_text(content, *is_error);
                json!({"role": "tool", "tool_call_id": call_id, "content": content})
            }
        });
    }
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("stream".into(), true.into());
    if opts.stream_usage {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    body.insert(opts.max_tokens_field.clone(), max_tokens.into());
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
    Value::Object(body)
}

/// Stream decoder for Chat Completions chunks, ending at `data: [DONE]`.
#[derive(Debug, Default)]
pub struct OpenAiDecoder {
    sse: SseDecoder,
    events: Vec<SseEvent>,
    tools: ToolSlots,
    usage: Option<Usage>,
    finish: Option<StopReason>,
    seen: u64,
    done: bool,
}

impl OpenAiDecoder {
    /// A fresh decoder.
    pub fn new() -> Self {
        Self::default()
    }

    fn on_event(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<(), StreamFailure> {
        self.seen += 1;
        if data.trim() == "[DONE]" {
            self.done = true;
            finish_turn(
                &mut self.tools,
                "call_",
                self.usage,
                self.finish.take(),
                out,
            );
            return Ok(());
        }
        let v = parse_json(data)?;
        if let Some(err) = parse_error_value(&v) {
            return Err(StreamFailure::ErrorEvent {
                kind: classify_stream_error(&err),
                message: format!("{} {}", err.kind_hint, err.message)
                    .trim()
                    .to_owned(),
            });
        }
        let usage = v
            .get("usage")
            .filter(|u| u.is_object())
            .or_else(|| v.get("x_groq").and_then(|x| x.get("usage")));
        if let Some(u) = usage.filter(|u| u.is_object()) {
            let n = |k: &str| u.get(k).and_then(Value::as_u64);
            self.usage = Some(Usage {
                input_tokens: n("prompt_tokens").unwrap_or(0),
                output_tokens: n("completion_tokens").unwrap_or(0),
                cached_input_tokens: u
                    .get("prompt_tokens_details")
                    .and_then(|d| d.get("cached_tokens"))
                    .and_then(Value::as_u64),
            });
        }
        let choices = v.get("choices").and_then(Value::as_array);
        for c in choices.into_iter().flatten() {
            if c.get("index").and_then(Value::as_i64).unwrap_or(0) != 0 {
                continue;
            }
            if let Some(d) = c.get("delta") {
                for key in ["reasoning_content", "reasoning"] {
                    if let Some(t) = d.get(key).and_then(Value::as_str).filter(|t| !t.is_empty()) {
                        out.push(StreamEvent::ReasoningDelta { text: t.to_owned() });
                    }
                }
                // a refusal is visible text too (the finish reason says why)
                for key in ["content", "refusal"] {
                    if let Some(t) = d.get(key).and_then(Value::as_str).filter(|t| !t.is_empty()) {
                        out.push(StreamEvent::TextDelta { text: t.to_owned() });
                    }
                }
                for tc in d
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let f = tc.get("function");
                    self.tools.fragment(
                        tc.get("index").and_then(Value::as_i64),
                        tc.get("id").and_then(Value::as_str),
                        f.and_then(|f| f.get("name")).and_then(Value::as_str),
                        f.and_then(|f| f.get("arguments")).and_then(Value::as_str),
                    )?;
                }
            }
            if let Some(r) = c.get("finish_reason").and_then(Value::as_str) {
                self.finish = Some(match r {
                    "stop" => StopReason::EndTurn,
                    "length" => StopReason::MaxTokens,
                    "tool_calls" | "function_call" => StopReason::ToolUse,
                    "content_filter" => StopReason::ContentFilter,
                    other => StopReason::Other(other.to_owned()),
                });
            }
        }
        Ok(())
    }
}

impl SseTurn for OpenAiDecoder {
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

impl TurnDecoder for OpenAiDecoder {
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
