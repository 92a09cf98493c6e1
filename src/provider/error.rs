//! Error types and the classification of provider failures.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use super::limits::{MAX_ERROR_MESSAGE_CHARS, MAX_RETRY_AFTER};
use super::sse::DecodeError;

/// What went wrong in one attempt, as far as failover cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// 401/403: bad or unauthorised key. Next candidate, no retry.
    Auth,
    /// 402, `insufficient_quota`, spend limit: credits are gone. Next candidate,
    /// no retry.
    Billing,
    /// 429 rate limit. Retried with backoff, honouring `retry-after`.
    RateLimited,
    /// 529/503 or an `overloaded_error`. Retried with backoff.
    Overloaded,
    /// Other 5xx, 408, 409, a mid-stream `error` event. Retried with backoff.
    Server,
    /// 404: the model does not exist there. Next candidate, no retry.
    NotFound,
    /// The prompt does not fit the model's context window. The agent loop
    /// must compact; no failover.
    ContextOverflow,
    /// Any other 4xx: the request itself was refused. Next candidate, no retry.
    BadRequest,
    /// Connect, first-byte or idle-read timeout. Retried with backoff.
    Timeout,
    /// Connection refused/reset, DNS or TLS failure. Retried with backoff.
    Connect,
    /// The body ended without the terminal marker (including an empty 200).
    /// Retried with backoff.
    Truncated,
    /// The body was not what the API promises: an HTML page, invalid JSON,
    /// an oversized line. Next candidate, no retry.
    BadResponse,
    /// The caller aborted the turn.
    Aborted,
}

impl FailureKind {
    /// Whether the same candidate may be tried again (before any output).
    pub fn retryable(self) -> bool {
        matches!(
            self,
            FailureKind::RateLimited
                | FailureKind::Overloaded
                | FailureKind::Server
                | FailureKind::Timeout
                | FailureKind::Connect
                | FailureKind::Truncated
        )
    }

    /// Whether a failure of this kind puts the (provider, model) in cooldown.
    pub fn cools_down(self) -> bool {
        !matches!(
            self,
            FailureKind::ContextOverflow | FailureKind::BadRequest | FailureKind::Aborted
        )
    }

    /// Short human label.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Auth => "authentication failed",
            FailureKind::Billing => "billing/quota exhausted",
            FailureKind::RateLimited => "rate limited",
            FailureKind::Overloaded => "overloaded",
            FailureKind::Server => "server error",
            FailureKind::NotFound => "model not found",
            FailureKind::ContextOverflow => "context window exceeded",
            FailureKind::BadRequest => "request rejected",
            FailureKind::Timeout => "timed out",
            FailureKind::Connect => "unreachable",
            FailureKind::Truncated => "stream truncated",
            FailureKind::BadResponse => "bad response",
            FailureKind::Aborted => "aborted",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The failure of one attempt against one (provider, model).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct AttemptError {
    /// The classification that drives retry and failover.
    pub kind: FailureKind,
    /// HTTP status, when the failure was an HTTP error response.
    pub status: Option<u16>,
    /// What the provider or the transport said (cut to a short excerpt).
    pub message: String,
    /// Wait the provider asked for (`retry-after-ms` / `retry-after`).
    pub retry_after: Option<Duration>,
    /// `x-should-retry` header, which overrides the status-based decision.
    pub should_retry: Option<bool>,
    /// True when some output had already been forwarded downstream.
    pub after_output: bool,
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.label())?;
        if let Some(s) = self.status {
            write!(f, " (HTTP {s})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl AttemptError {
    /// A failure with no status and no retry hints.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        AttemptError {
            kind,
            status: None,
            message: excerpt(&message.into()),
            retry_after: None,
            should_retry: None,
            after_output: false,
        }
    }

    /// Whether to try the same candidate again, `x-should-retry` included.
    pub fn retryable(&self) -> bool {
        match self.kind {
            FailureKind::ContextOverflow | FailureKind::Aborted => false,
            k => self.should_retry.unwrap_or(k.retryable()),
        }
    }
}

/// A failure detected while decoding a 2xx streaming body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StreamFailure {
    /// A line or event beyond the caps.
    #[error("{0}")]
    LineTooLong(DecodeError),
    /// A chunk that is not valid JSON.
    #[error("invalid JSON in stream chunk ({error}): {excerpt}")]
    InvalidJson {
        /// The parser's complaint.
        error: String,
        /// The start of the chunk.
        excerpt: String,
    },
    /// The provider reported an error inside the stream.
    #[error("error event in stream: {message}")]
    ErrorEvent {
        /// Classification of the error type/code the event carried.
        kind: FailureKind,
        /// The provider's message.
        message: String,
    },
    /// Tool arguments beyond the caps.
    #[error("tool call arguments larger than {limit} bytes")]
    ToolArgsTooLarge {
        /// The cap that was hit.
        limit: usize,
    },
    /// More tool calls than the cap.
    #[error("more than {limit} tool calls in one turn")]
    TooManyToolCalls {
        /// The cap.
        limit: usize,
    },
    /// The body ended before the terminal marker.
    #[error("stream ended without its terminal marker after {events} events")]
    Truncated {
        /// Events decoded before the end.
        events: u64,
    },
    /// A 200 response with no event at all.
    #[error("empty 200 response body")]
    EmptyBody,
    /// A 2xx response that is not a stream (an HTML page from a proxy, ...).
    #[error("unexpected content-type {content_type:?} (wanted a stream): {excerpt}")]
    NotAStream {
        /// The content-type header.
        content_type: String,
        /// The start of the body.
        excerpt: String,
    },
}

impl From<DecodeError> for StreamFailure {
    fn from(e: DecodeError) -> Self {
        StreamFailure::LineTooLong(e)
    }
}

impl StreamFailure {
    /// The failover classification of this stream failure.
    pub fn kind(&self) -> FailureKind {
        match self {
            StreamFailure::ErrorEvent { kind, .. } => *kind,
            StreamFailure::Truncated { .. } | StreamFailure::EmptyBody => FailureKind::Truncated,
            _ => FailureKind::BadResponse,
        }
    }

    /// Turn into an attempt error.
    pub fn into_attempt(self, after_output: bool) -> AttemptError {
        let mut e = AttemptError::new(self.kind(), self.to_string());
        e.after_output = after_output;
        e
    }
}

/// Why a turn failed, as the agent loop sees it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TurnError {
    /// The caller aborted the turn (or dropped the event receiver).
    #[error("turn aborted")]
    Aborted,
    /// The prompt is too long for the model: compact the transcript, then retry.
    #[error("context window exceeded on {model}: {message}")]
    ContextOverflow {
        /// `provider/model` that refused.
        model: String,
        /// The provider's message.
        message: String,
    },
    /// The stream failed after output had reached downstream. Nothing was
    /// retried; partial text was already delivered and no tool call was sent.
    #[error("reply from {model} interrupted: {error}")]
    Interrupted {
        /// `provider/model` that was streaming.
        model: String,
        /// What went wrong.
        error: AttemptError,
    },
    /// Every candidate failed or was cooling down.
    #[error("{0}")]
    Exhausted(ChainFailure),
    /// The chain names an unknown provider or is empty.
    #[error("invalid model chain: {0}")]
    InvalidChain(String),
}

/// One line of the chain-exhausted report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    /// `provider/model`.
    pub model: String,
    /// How many requests were sent to it in this turn (0 when skipped).
    pub requests: u32,
    /// Why it was given up, e.g. "rate limited (HTTP 429): slow down" or
    /// "skipped: cooling down for 4m 10s".
    pub reason: String,
}

/// Every candidate of the chain failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainFailure {
    /// One record per candidate, in chain order.
    pub attempts: Vec<AttemptRecord>,
    /// Time until the soonest candidate leaves its cooldown, if any is cooling.
    pub retry_in: Option<Duration>,
}

impl fmt::Display for ChainFailure {
    /// One model: "model a/m unreachable: connection refused (3 attempts)";
    /// several: "all 2 models failed: a/m …; b/n skipped: cooling down …".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [only] = self.attempts.as_slice() {
            write!(f, "model {} {}", only.model, only.reason)?;
            if only.requests > 0 {
                write!(f, " ({})", attempts(only.requests))?;
            }
        } else {
            write!(f, "all {} models failed: ", self.attempts.len())?;
            for (i, a) in self.attempts.iter().enumerate() {
                if i > 0 {
                    f.write_str("; ")?;
                }
                write!(f, "{} {}", a.model, a.reason)?;
                if a.requests > 0 {
                    write!(f, " ({})", attempts(a.requests))?;
                }
            }
        }
        if let Some(d) = self.retry_in {
            write!(f, "; next try possible in {}", human_duration(d))?;
        }
        Ok(())
    }
}

fn attempts(n: u32) -> String {
    if n == 1 {
        "1 attempt".to_owned()
    } else {
        format!("{n} attempts")
    }
}

/// `1h 2m`, `4m 10s`, `12s`, `350ms`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h {}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m {}s", s / 60, s % 60)
    } else if s > 0 {
        format!("{s}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Cut provider text to [`MAX_ERROR_MESSAGE_CHARS`] characters on one line.
pub fn excerpt(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_MESSAGE_CHARS)
        .collect();
    if s.chars().count() > MAX_ERROR_MESSAGE_CHARS {
        out.push('…');
    }
    out.trim().to_owned()
}

/// The interesting parts of a provider error body, whatever its shape.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ErrorBody {
    pub kind_hint: String,
    pub message: String,
}

/// Parse OpenAI (`{"error":{"message","type","code"}}`, numeric code for
/// OpenRouter), Anthropic (`{"type":"error","error":{"type","message"}}`),
/// vLLM (`{"object":"error",...}`) and Ollama (`{"error":"..."}`) error bodies.
pub(crate) fn parse_error_value(v: &Value) -> Option<ErrorBody> {
    let obj = match v.get("error") {
        Some(Value::String(s)) => {
            return Some(ErrorBody {
                kind_hint: String::new(),
                message: s.clone(),
            });
        }
        Some(e @ Value::Object(_)) => e,
        _ if v.get("object").and_then(Value::as_str) == Some("error") => v,
        _ => return None,
    };
    let mut hints = Vec::new();
    for key in ["type", "code"] {
        match obj.get(key) {
            Some(Value::String(s)) => hints.push(s.clone()),
            Some(Value::Number(n)) => hints.push(n.to_string()),
            _ => {}
        }
    }
    if let Some(s) = obj
        .get("details")
        .and_then(|d| d.get("error_code"))
        .and_then(Value::as_str)
    {
        hints.push(s.to_owned());
    }
    let message = obj
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Some(ErrorBody {
        kind_hint: hints.join(" "),
        message,
    })
}

fn looks_like_context_overflow(hint: &str, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    hint.contains("context_length_exceeded")
        || hint.contains("request_too_large")
        || m.contains("context length")
        || m.contains("context window")
        || m.contains("maximum context")
        || m.contains("prompt is too long")
        || m.contains("input is too long")
}

/// Classify an error reported inside a 200 stream.
pub(crate) fn classify_stream_error(body: &ErrorBody) -> FailureKind {
    let h = body.kind_hint.as_str();
    if h.contains("overloaded") {
        FailureKind::Overloaded
    } else if h.contains("rate_limit") || h.contains("429") {
        FailureKind::RateLimited
    } else if looks_like_context_overflow(h, &body.message) {
        FailureKind::ContextOverflow
    } else {
        FailureKind::Server
    }
}

/// Classify a non-2xx response from its status, `content-type`, (capped)
/// body and the retry hints already parsed from its headers.
pub fn classify_http(
    status: u16,
    content_type: &str,
    body: &str,
    retry_after: Option<Duration>,
    should_retry: Option<bool>,
) -> AttemptError {
    let parsed = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| parse_error_value(&v));
    let (hint, message) = match &parsed {
        Some(b) => (b.kind_hint.clone(), b.message.clone()),
        None if content_type.contains("html") || body.trim_start().starts_with('<') => {
            (String::new(), format!("HTML error page: {}", excerpt(body)))
        }
        None => (String::new(), body.to_owned()),
    };
    let kind = match status {
        401 | 403 => FailureKind::Auth,
        402 => FailureKind::Billing,
        429 if hint.contains("insufficient_quota")
            || hint.contains("enforced_spend_limit_reached") =>
        {
            FailureKind::Billing
        }
        429 => FailureKind::RateLimited,
        404 => FailureKind::NotFound,
        413 => FailureKind::ContextOverflow,
        400 | 422 if looks_like_context_overflow(&hint, &message) => FailureKind::ContextOverflow,
        408 | 409 => FailureKind::Server,
        503 | 529 => FailureKind::Overloaded,
        500..=599 => FailureKind::Server,
        _ => FailureKind::BadRequest,
    };
    let message = if hint.is_empty() {
        message
    } else {
        format!("{hint}: {message}")
    };
    AttemptError {
        kind,
        status: Some(status),
        message: excerpt(&message),
        retry_after,
        should_retry,
        after_output: false,
    }
}

/// Parse `retry-after-ms` (milliseconds, float) or `retry-after` (seconds,
/// float, or an HTTP date), preferring the former. `None` when neither header
/// holds a usable value; a wait longer than [`MAX_RETRY_AFTER`] is cut to it.
pub fn parse_retry_after(ms: Option<&str>, secs: Option<&str>) -> Option<Duration> {
    if let Some(v) = ms.and_then(|s| s.trim().parse::<f64>().ok())
        && v.is_finite()
        && v >= 0.0
    {
        return Some(capped_secs(v / 1000.0));
    }
    let s = secs?.trim();
    if let Ok(v) = s.parse::<f64>() {
        return (v.is_finite() && v >= 0.0).then(|| capped_secs(v));
    }
    let at = parse_http_date(s)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)).min(MAX_RETRY_AFTER))
}

/// A finite, non-negative number of seconds as a Duration of at most
/// [`MAX_RETRY_AFTER`] (`Duration::from_secs_f64` panics past `u64::MAX` s).
fn capped_secs(secs: f64) -> Duration {
    if secs >= MAX_RETRY_AFTER.as_secs_f64() {
        MAX_RETRY_AFTER
    } else {
        Duration::from_secs_f64(secs)
    }
}

/// IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`) to seconds since the epoch.
/// Fields out of their calendar range (a 5-digit year, day 32, hour 24) make
/// it `None`, so the arithmetic below cannot overflow.
fn parse_http_date(s: &str) -> Option<u64> {
    let mut it = s.split_whitespace();
    let _weekday = it.next()?;
    let day: i64 = it.next()?.parse().ok().filter(|d| (1..=31).contains(d))?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok().filter(|y| (0..=9999).contains(y))?;
    let mut hms = it.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, mi, se) = (hms.next()??, hms.next()??, hms.next()??);
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // days from civil (Howard Hinnant)
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + h * 3600 + mi * 60 + se)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            parse_retry_after(Some("1500"), Some("9")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after(None, Some("2")),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after(None, Some("0.5")),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_retry_after(None, Some("soon")), None);
        assert_eq!(
            parse_retry_after(None, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(1_445_412_480)
        );
    }

    #[test]
    fn retry_after_out_of_range_is_capped_or_ignored() {
        // Found by fuzz/provider_errors: these overflowed (HTTP date
        // arithmetic) or panicked (Duration::from_secs_f64 past u64::MAX s),
        // and a huge wait overflowed `Instant + cooldown` in failover.
        let cap = Some(MAX_RETRY_AFTER);
        assert_eq!(parse_retry_after(Some("1e300"), None), cap);
        assert_eq!(parse_retry_after(None, Some("1e300")), cap);
        assert_eq!(parse_retry_after(None, Some("1e19")), cap);
        assert_eq!(
            parse_retry_after(None, Some("Fri, 31 Dec 9999 23:59:59 GMT")),
            cap
        );
        assert_eq!(
            parse_retry_after(Some("2000"), None),
            Some(Duration::from_secs(2))
        );
        for date in [
            "Wed, 9618675685684069 Jan 0 00:00:00 GMT",
            "Wed, 21 Oct 9223372036854775807 07:28:00 GMT",
            "Wed, 21 Oct -9223372036854775808 07:28:00 GMT",
            "Wed, 21 Oct 2015 18446744073709551615:00:00 GMT",
            "Wed, 21 Oct 2015 07:18446744073709551615:00 GMT",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "Wed, 0 Oct 2015 07:28:00 GMT",
            "Wed, 21 Oct 2015 24:00:00 GMT",
        ] {
            assert_eq!(parse_http_date(date), None, "{date}");
            assert_eq!(parse_retry_after(None, Some(date)), None, "{date}");
        }
        assert_eq!(
            parse_http_date("Fri, 31 Dec 9999 23:59:60 GMT"),
            Some(253_402_300_800)
        );
    }

    #[test]
    fn http_classification() {
        let c = |s, b: &str| classify_http(s, "application/json", b, None, None).kind;
        assert_eq!(c(401, "{}"), FailureKind::Auth);
        assert_eq!(c(403, ""), FailureKind::Auth);
        assert_eq!(
            c(
                429,
                r#"{"error":{"type":"requests","code":"rate_limit_exceeded","message":"x"}}"#
            ),
            FailureKind::RateLimited
        );
        assert_eq!(
            c(
                429,
                r#"{"error":{"type":"insufficient_quota","code":"insufficient_quota","message":"x"}}"#
            ),
            FailureKind::Billing
        );
        assert_eq!(
            c(
                429,
                r#"{"type":"error","error":{"type":"rate_limit_error","message":"x","details":{"error_code":"enforced_spend_limit_reached"}}}"#
            ),
            FailureKind::Billing
        );
        assert_eq!(
            c(
                529,
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            ),
            FailureKind::Overloaded
        );
        assert_eq!(
            c(
                400,
                r#"{"error":{"message":"This model's maximum context length is 2048 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}"#
            ),
            FailureKind::ContextOverflow
        );
        assert_eq!(
            c(400, r#"{"error":"context length exceeded"}"#),
            FailureKind::ContextOverflow
        );
        assert_eq!(
            c(
                400,
                r#"{"error":{"message":"bad","type":"invalid_request_error"}}"#
            ),
            FailureKind::BadRequest
        );
        assert_eq!(
            c(404, r#"{"error":"model 'x' not found"}"#),
            FailureKind::NotFound
        );
        assert_eq!(c(500, "oops"), FailureKind::Server);
        let html = classify_http(
            502,
            "text/html",
            "<html><body>Bad gateway</body></html>",
            None,
            None,
        );
        assert_eq!(html.kind, FailureKind::Server);
        assert!(
            html.message.starts_with("HTML error page"),
            "{}",
            html.message
        );
    }

    #[test]
    fn should_retry_header_overrides() {
        let mut e = classify_http(400, "", "{}", None, Some(true));
        assert!(e.retryable());
        e = classify_http(500, "", "{}", None, Some(false));
        assert!(!e.retryable());
    }

    #[test]
    fn excerpt_is_bounded_and_single_line() {
        let long = "a\nb".repeat(1000);
        let e = excerpt(&long);
        assert!(e.chars().count() <= MAX_ERROR_MESSAGE_CHARS + 1);
        assert!(!e.contains('\n'));
    }
}
