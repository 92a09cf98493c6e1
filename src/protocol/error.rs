//! The protocol's error shape and the codes pinclaw uses.

use serde::Serialize;
use serde_json::Value;

/// Top-level error codes (`error.code`).
pub mod codes {
    /// Malformed or refused request.
    pub const INVALID_REQUEST: &str = "INVALID_REQUEST";
    /// The connection lacks a scope the method needs.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// The device is not paired (or identity is missing).
    pub const NOT_PAIRED: &str = "NOT_PAIRED";
    /// A retryable condition: starting up, rate limits, a node not connected.
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    /// An agent run did not finish in time.
    pub const AGENT_TIMEOUT: &str = "AGENT_TIMEOUT";
    /// The approval id is unknown or already resolved.
    pub const APPROVAL_NOT_FOUND: &str = "APPROVAL_NOT_FOUND";
}

/// `error` object of a failed `res` frame.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorShape {
    /// One of [`codes`].
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Structured details, e.g. `{code: "MISSING_SCOPE", …}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// Whether retrying later may succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// Suggested wait before retrying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorShape {
    /// An error with a code and message only.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            retryable: None,
            retry_after_ms: None,
        }
    }

    /// `INVALID_REQUEST` with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_REQUEST, message)
    }

    /// Attach structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Mark retryable after the given delay.
    pub fn retry_after(mut self, ms: u64) -> Self {
        self.retryable = Some(true);
        self.retry_after_ms = Some(ms);
        self
    }

    /// `FORBIDDEN` for a missing scope, in OpenClaw's exact shape.
    pub fn missing_scope(scope: &str) -> Self {
        Self::new(codes::FORBIDDEN, format!("missing scope: {scope}")).with_details(
            serde_json::json!({"code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": [scope]}),
        )
    }

    /// `INVALID_REQUEST "invalid <method> params: <why>"`.
    pub fn invalid_params(method: &str, why: impl std::fmt::Display) -> Self {
        Self::invalid(format!("invalid {method} params: {why}"))
    }

    /// The `details.code` string, if any.
    pub fn detail_code(&self) -> Option<&str> {
        self.details.as_ref()?.get("code")?.as_str()
    }
}
