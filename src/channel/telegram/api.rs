//! The Telegram Bot API over HTTPS: `POST {api_root}/bot{token}/{method}`
//! with a JSON body, blocking (ureq), on the channel's own threads. Errors
//! are classified the way the poller and the sender act on them, and never
//! carry the token: every message is redacted before it leaves this file.

use std::time::Duration;

use serde_json::Value;

use crate::config::Secret;
use crate::limits;

/// A Bot API failure, by what to do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 409: another `getUpdates` poller (or a webhook) uses this token.
    #[error("conflict: {0}")]
    Conflict(String),
    /// 401 / 404: the token is revoked or wrong.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 429: wait this long.
    #[error("rate limited for {}s: {description}", retry_after.as_secs())]
    RateLimited {
        /// Telegram's `retry_after`.
        retry_after: Duration,
        /// Its description.
        description: String,
    },
    /// 5xx.
    #[error("server error {status}: {description}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Its description.
        description: String,
    },
    /// 400 and other 4xx: the request itself is refused.
    #[error("rejected {status}: {description}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Telegram's description (e.g. "can't parse entities").
        description: String,
    },
    /// Connect, TLS, reset, timeout, a truncated or unreadable body.
    #[error("network: {0}")]
    Network(String),
    /// The call was cancelled (the channel is stopping or restarting it).
    #[error("cancelled")]
    Cancelled,
}

impl ApiError {
    /// Whether a later retry may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited { .. } | ApiError::Server { .. } | ApiError::Network(_)
        )
    }
}

/// One account's endpoint and token.
#[derive(Clone)]
pub struct BotApi {
    root: String,
    token: Secret,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotApi")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl BotApi {
    /// The API at `root` (e.g. `https://api.telegram.org`) for `token`.
    pub fn new(root: &str, token: Secret) -> Self {
        Self {
            root: root.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// A connection pool for one thread (a poller's or a sender's): its own
    /// so that shutting it down cancels only that thread's call.
    pub fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(limits::TELEGRAM_CONNECT_TIMEOUT))
            .max_redirects(0)
            .proxy(None)
            .input_buffer_size(limits::TELEGRAM_HTTP_INPUT_BUFFER_BYTES)
            .output_buffer_size(limits::TELEGRAM_HTTP_OUTPUT_BUFFER_BYTES)
            .build()
            .into()
    }

    /// Remove the token from text (errors of the HTTP stack carry the URL).
    /// The secret half (after `<bot id>:`) goes too, so an echo that
    /// percent-encodes the colon or alters the id leaks nothing.
    pub fn redact(&self, text: &str) -> String {
        let token = self.token.expose();
        if token.len() < 4 {
            return text.to_owned();
        }
        let text = text.replace(token, "<redacted>");
        match token.split_once(':') {
            Some((_, secret)) if secret.len() >= 4 => text.replace(secret, "<redacted>"),
            _ => text,
        }
    }

    /// Call `method` with a JSON body; the whole call (connect, send, the
    /// answer) must finish within `timeout`. The `result` on success.
    pub fn call(
        &self,
        agent: &ureq::Agent,
        method: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let url = format!("{}/bot{}/{method}", self.root, self.token.expose());
        let sent = agent
            .post(&url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes());
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Err(self.transport(&e)),
        };
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .with_config()
            .limit(limits::TELEGRAM_MAX_RESPONSE_BYTES as u64)
            .read_to_string()
            .map_err(|e| self.transport(&e))?;
        self.answer(method, status, &text)
    }

    /// Read Telegram's answer to `method` (HTTP `status`, body `text`): the
    /// envelope's `result`, or the error it describes, classified, with
    /// the token redacted from its description.
    pub fn answer(&self, method: &str, status: u16, text: &str) -> Result<Value, ApiError> {
        let answer: Value = serde_json::from_str(text).map_err(|e| {
            ApiError::Network(format!("{method}: answer is not JSON (HTTP {status}): {e}"))
        })?;
        if answer["ok"] == true {
            return Ok(answer["result"].clone());
        }
        let code = answer["error_code"]
            .as_u64()
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(status);
        let description = self.redact(answer["description"].as_str().unwrap_or("(no description)"));
        Err(match code {
            409 => ApiError::Conflict(description),
            401 | 404 => ApiError::Unauthorized(description),
            429 => ApiError::RateLimited {
                retry_after: Duration::from_secs(
                    answer["parameters"]["retry_after"]
                        .as_u64()
                        .unwrap_or(1)
                        .clamp(1, limits::TELEGRAM_MAX_RETRY_AFTER.as_secs()),
                ),
                description,
            },
            500..=599 => ApiError::Server {
                status: code,
                description,
            },
            _ => ApiError::Rejected {
                status: code,
                description,
            },
        })
    }

    fn transport(&self, e: &ureq::Error) -> ApiError {
        ApiError::Network(self.redact(&e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_leaves_an_error() {
        let api = BotApi::new("http://127.0.0.1:1/", Secret::new("123:SECRET-token"));
        let agent = BotApi::agent();
        let err = api
            .call(
                &agent,
                "getMe",
                &serde_json::json!({}),
                Duration::from_secs(2),
            )
            .unwrap_err();
        assert!(matches!(err, ApiError::Network(_)), "{err:?}");
        assert!(!err.to_string().contains("SECRET"), "{err}");
        assert_eq!(
            api.redact("bot123:SECRET-token/getMe"),
            "bot<redacted>/getMe"
        );
        assert!(!format!("{api:?}").contains("SECRET"));
        // Found by the telegram_api fuzz target: an echo of an altered or
        // percent-encoded token.
        assert_eq!(
            api.redact("/bot124:SECRET-token/x /bot123%3ASECRET-token/y"),
            "/bot124:<redacted>/x /bot123%3A<redacted>/y"
        );
    }
}
