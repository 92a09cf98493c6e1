//! Provider-neutral turn request and stream events.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One model turn: everything an adapter needs except the model itself, which
/// the failover chain chooses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TurnRequest {
    /// System prompt; `None` or empty sends none.
    pub system: Option<String>,
    /// The conversation so far, oldest first.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// Output token cap. `None` uses the model's `max_output_tokens`, then
    /// [`DEFAULT_MAX_TOKENS`].
    pub max_tokens: Option<u32>,
}

/// Output token cap used when neither the request nor the model config sets one
/// (Anthropic requires a value).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    /// Text from the user.
    User {
        /// The text.
        content: String,
    },
    /// A previous model reply: visible text and the tool calls it made.
    Assistant {
        /// Visible text (may be empty).
        content: String,
        /// Tool calls of that reply, in order.
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call.
    Tool {
        /// The id of the call this answers.
        call_id: String,
        /// The tool name (Ollama keys results by name).
        name: String,
        /// The result text.
        content: String,
        /// True when the tool failed; `content` then explains why.
        is_error: bool,
    },
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Tool name.
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// A complete tool call with parsed arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id (synthesized as `ollama_call_<n>` when the provider has none).
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments, always a JSON value (empty arguments become `{}`).
    pub arguments: Value,
}

/// Token usage reported by the provider (the latest value when it repeats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache, when reported.
    pub cached_input_tokens: Option<u64>,
}

impl Usage {
    /// Input plus output tokens.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model finished its reply.
    EndTurn,
    /// The model wants tool results (set whenever tool calls were received,
    /// whatever the provider reported).
    ToolUse,
    /// The output token cap was hit.
    MaxTokens,
    /// A stop sequence matched.
    StopSequence,
    /// The provider filtered or refused the content.
    ContentFilter,
    /// Any other reason, as the provider spelled it.
    Other(String),
}

/// One event of a streaming turn, in arrival order.
///
/// Text and reasoning deltas are forwarded as they arrive. Tool calls, usage and
/// `Finish` are sent only once the provider's terminal marker arrived, so a
/// truncated stream never yields a tool call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// A fragment of the visible reply.
    TextDelta {
        /// The fragment.
        text: String,
    },
    /// A fragment of reasoning/thinking. Never part of the visible reply and
    /// never sent back to the model.
    ReasoningDelta {
        /// The fragment.
        text: String,
    },
    /// A complete tool call whose arguments parsed as JSON.
    ToolCall(ToolCall),
    /// A tool call whose arguments are not valid JSON (for example cut by the
    /// token cap). Do not run it; answer it with an error tool result.
    InvalidToolCall {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// The raw argument text, cut to a short excerpt.
        raw_arguments: String,
        /// Why parsing failed.
        error: String,
    },
    /// Token usage.
    Usage(Usage),
    /// The last event of a successful turn.
    Finish {
        /// Why the model stopped.
        reason: StopReason,
    },
}

/// A tool result as text for wire formats without an error flag (OpenAI,
/// Ollama): failures are prefixed so the model can tell.
pub(crate) fn tool_result_text(content: &str, is_error: bool) -> String {
    if is_error {
        format!("error: {content}")
    } else {
        content.to_owned()
    }
}
