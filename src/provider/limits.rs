//! Caps of the provider layer, in one place.
//!
//! The integrator folds these into the crate's `src/limits.rs`. Each constant
//! names what it bounds and what happens when the bound is hit.

use std::time::Duration;

/// Longest SSE or NDJSON line accepted from a provider. A longer line fails
/// the attempt with [`super::StreamFailure::LineTooLong`].
pub const MAX_STREAM_LINE_BYTES: usize = 1024 * 1024;

/// Largest SSE event (all `data:` lines joined). Beyond it the attempt fails
/// with [`super::StreamFailure::LineTooLong`].
pub const MAX_STREAM_EVENT_BYTES: usize = 1024 * 1024;

/// Largest accumulated argument string of one tool call. Beyond it the attempt
/// fails with [`super::StreamFailure::ToolArgsTooLarge`].
pub const MAX_TOOL_ARGS_BYTES: usize = 256 * 1024;

/// Largest accumulated argument bytes of all tool calls of one turn. Beyond it
/// the attempt fails with [`super::StreamFailure::ToolArgsTooLarge`].
pub const MAX_TURN_TOOL_ARGS_BYTES: usize = 1024 * 1024;

/// Most tool calls accepted in one turn. More fail the attempt with
/// [`super::StreamFailure::TooManyToolCalls`].
pub const MAX_TOOL_CALLS_PER_TURN: usize = 64;

/// Bytes of a non-2xx response body read for classification and the error
/// message; the rest is discarded.
pub const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;

/// Characters of a provider error message kept in errors, logs and status.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 300;

/// Capacity of the bounded channel carrying stream events from the blocking
/// reader to async code. When full, the reader blocks (backpressure).
pub const EVENT_CHANNEL_CAPACITY: usize = 64;

/// ureq's per-connection input buffer (its default is 128 KiB, which is most
/// of a streaming turn's memory). It must hold the response headers.
pub const HTTP_INPUT_BUFFER_BYTES: usize = 32 * 1024;

/// ureq's per-connection output buffer (default 128 KiB).
pub const HTTP_OUTPUT_BUFFER_BYTES: usize = 16 * 1024;

/// Largest response head accepted from a provider; a bigger one fails the
/// attempt as a connection error.
pub const MAX_RESPONSE_HEADER_BYTES: usize = 32 * 1024;

/// Size of the read buffer used on a response body.
pub const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Default TCP/TLS connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time until the response headers arrive (time to first byte).
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default idle time allowed between two reads of a remote provider's body.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Default first-byte and idle timeout for `local = true` providers: a model
/// on a Pi or a LAN box may take minutes to load and to read a long prompt.
pub const DEFAULT_LOCAL_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// After an abort, how long the turn waits for its blocking HTTP thread to
/// end. Reads end at once (`Agent::shutdown`); a thread stuck in DNS or TCP
/// connect is detached instead and ends within the connect timeout.
pub const ABORT_JOIN_GRACE: Duration = Duration::from_millis(250);

/// Retries of one candidate after its first attempt (so 3 attempts in all)
/// before the chain moves on.
pub const MAX_RETRIES_PER_CANDIDATE: u32 = 2;

/// First backoff delay; doubles per retry up to [`BACKOFF_MAX`].
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);

/// Largest backoff delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(8);

/// Longest wait a `retry-after` may impose inside one turn. A longer one cools
/// the candidate down until then and fails over at once instead of sleeping.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// Longest `retry-after` / `retry-after-ms` honoured (a day); a longer one is
/// cut to it, so no header can push a cooldown past what an `Instant` holds.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Cooldown steps of a failing (provider, model): 1 min, 5 min, 25 min, then
/// 1 h for every further failure.
pub const COOLDOWN_STEPS: [Duration; 4] = [
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(25 * 60),
    Duration::from_secs(60 * 60),
];

/// Most candidates in one failover chain (primary + fallbacks).
pub const MAX_CHAIN_LEN: usize = 16;

/// Most `[[providers]]` entries.
pub const MAX_PROVIDERS: usize = 32;

/// Most `[[providers.models]]` entries per provider.
pub const MAX_MODELS_PER_PROVIDER: usize = 64;

/// Largest API key file read.
pub const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;
