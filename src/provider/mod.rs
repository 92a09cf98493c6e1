//! Model providers: streaming adapters and failover (issue 3).
//!
//! # Flow
//!
//! ```text
//! agent loop ── run_turn(chain, TurnRequest, mpsc::Sender<StreamEvent>, Abort) ──► Providers
//!   Providers (failover.rs): for each candidate "provider/model" of the chain
//!     skip it while its circuit is open (cooldown 1 m → 5 m → 25 m → 1 h)
//!     attempt (http.rs): a fresh ureq Agent per attempt (so shutdown() cancels
//!        only this turn), run on tokio's blocking pool;
//!        POST the adapter's JSON body, read the body in 8 KiB reads,
//!        feed a pure TurnDecoder (openai.rs / anthropic.rs / ollama.rs over
//!        sse.rs / ndjson.rs), forward events over the bounded channel (a full
//!        channel blocks the reader until the consumer reads or the turn aborts)
//!     abort: Agent::shutdown() ends the blocking read at once
//!     failure before any output → retry with backoff / next candidate;
//!     failure after output → TurnError::Interrupted (never a silent retry)
//! ```
//!
//! Text and reasoning deltas are forwarded as they arrive; tool calls, usage
//! and `Finish` only after the terminal marker (`[DONE]`, `message_stop`,
//! `"done":true`), so a truncated stream never runs a tool. Every buffer is
//! capped by a constant in [`limits`]. API keys live in [`ApiKey`], whose
//! `Debug` redacts and which has no `Serialize`.
//!
//! # Configuration (`config/pinclaw.toml`)
//!
//! ```toml
//! [[providers]]
//! id = "anthropic"
//! api = "anthropic-messages"          # or "openai-chat", "ollama"
//! base_url = "https://api.anthropic.com"
//! api_key_env = "ANTHROPIC_API_KEY"   # or api_key_file = "/etc/pinclaw/anthropic.key"
//! [[providers.models]]
//! id = "claude-sonnet-4-5"
//! context_window = 200000
//! max_output_tokens = 8192
//!
//! [[providers]]
//! id = "ollama"
//! api = "ollama"
//! base_url = "http://192.168.1.20:11434"
//! local = true                        # 10 min first-byte / idle timeouts
//! [[providers.models]]
//! id = "qwen3:0.6b"
//! context_window = 8192
//!
//! [agent]                             # owned by the agent config
//! model = "anthropic/claude-sonnet-4-5"
//! fallbacks = ["ollama/qwen3:0.6b"]
//! ```
//!
//! # API for the rest of the crate
//!
//! ```text
//! Providers::new(Vec<ProviderConfig>) -> Result<Providers, ConfigError>   // validates, reads keys
//! Providers::resolve_chain(&self, primary, &[fallbacks]) -> Result<Vec<ModelRef>, ConfigError>
//! Providers::run_turn(&self, primary, &[fallbacks], &TurnRequest, mpsc::Sender<StreamEvent>, &Abort)
//!     -> Result<TurnSummary, TurnError>                                  // async
//! Providers::spawn_turn(self: &Arc<Self>, primary, fallbacks, TurnRequest, Abort)
//!     -> (mpsc::Receiver<StreamEvent>, JoinHandle<Result<TurnSummary, TurnError>>)
//! Providers::model_config(&self, "provider/model") -> Option<ModelConfig> // context window
//! Providers::models_snapshot(&self) -> Vec<ModelStatus>                   // models.list
//! Providers::health(&self) -> ProviderHealth                              // status / health
//! ```
//!
//! The agent loop reacts to [`TurnError`]: `ContextOverflow` → compact and
//! retry; `Interrupted` → keep the partial text, mark the reply incomplete;
//! `Exhausted` → show its message (it names every attempt and why);
//! [`StreamEvent::InvalidToolCall`] → answer with an error tool result, do
//! not run it.
//!
//! Tests: decoders inline (`fixture_tests.rs`: whole, byte-by-byte and
//! random splits); `tests/provider_*.rs` over HTTP against the fake provider
//! in `tests/support/fake_provider.rs`; `tests/provider_live_local.rs` is an
//! opt-in smoke test against a real llama-cpp-python server.

pub mod accumulate;
pub mod anthropic;
pub mod config;
pub mod error;
pub mod failover;
mod http;
pub mod limits;
pub mod ndjson;
pub mod ollama;
pub mod openai;
pub mod probe;
pub mod sse;
pub mod types;

pub use crate::abort::Abort;
pub use config::{ApiKey, ApiKind, ConfigError, ModelConfig, ModelRef, ProviderConfig};
pub use error::{AttemptError, AttemptRecord, ChainFailure, FailureKind, StreamFailure, TurnError};
pub use failover::{
    Clock, FailoverPolicy, ModelState, ModelStatus, ProviderHealth, Providers, SystemClock,
    TurnSummary,
};
pub use types::{Message, StopReason, StreamEvent, ToolCall, ToolSpec, TurnRequest, Usage};

#[cfg(test)]
mod fixture_tests;
