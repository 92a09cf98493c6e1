//! Model providers: streaming adapters and failover (issue 3).
//!
//! # Flow
//!
//! ```text
//! agent loop ── run_turn(chain, TurnRequest, mpsc::Sender<StreamEvent>, Abort) ──► Providers
//!   Providers (failover.rs): for each candidate "provider/model" of the chain
//!     skip it while its circuit is open (cooldown 1 m → 5 m → 25 m → 1 h)
//!     attempt (http.rs): one ureq Agent per attempt, run on tokio's blocking pool;
//!        POST the adapter's JSON body, read the body in 8 KiB reads,
//!        feed a pure TurnDecoder (openai.rs / anthropic.rs / ollama.rs over
//!        sse.rs / ndjson.rs), forward events with blocking_send (bounded channel)
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
//! For the gateway: [`Providers::models_snapshot`] feeds `models.list`,
//! [`Providers::health`] feeds `status` / `health`.

pub mod accumulate;
pub mod anthropic;
pub mod config;
pub mod error;
pub mod failover;
pub mod http;
pub mod limits;
pub mod ndjson;
pub mod ollama;
pub mod openai;
pub mod sse;
pub mod types;

pub use config::{ApiKey, ApiKind, ConfigError, ModelConfig, ModelRef, ProviderConfig};
pub use error::{AttemptError, AttemptRecord, ChainFailure, FailureKind, StreamFailure, TurnError};
pub use failover::{
    Abort, Clock, FailoverPolicy, ModelStatus, ProviderHealth, Providers, SystemClock, TurnSummary,
};
pub use types::{Message, StopReason, StreamEvent, ToolCall, ToolSpec, TurnRequest, Usage};

#[cfg(test)]
mod fixture_tests;
