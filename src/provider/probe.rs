//! A cheap check that a provider answers and takes its key, for `pinclaw
//! doctor`: its models list, with the same base URL, auth headers and
//! proxy as a turn. `GET {base}/models` (openai-chat, whose base ends in
//! `/v1`), `GET {base}/v1/models` (anthropic-messages) or `GET
//! {base}/api/tags` (ollama). Errors are classified like a turn's and never
//! carry the key.

use std::time::Duration;

use serde_json::Value;

use super::anthropic::ANTHROPIC_VERSION;
use super::config::{ApiKind, ConfigError, ProviderConfig, load_key, load_proxy};
use super::error::{AttemptError, FailureKind, classify_http};
use super::http::{map_ureq, redact};
use super::limits::{HTTP_INPUT_BUFFER_BYTES, HTTP_OUTPUT_BUFFER_BYTES, MAX_ERROR_BODY_BYTES};
use crate::limits::PROVIDER_MODELS_LIST_MAX_BYTES;

/// What a provider's models list said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelsList {
    /// The URL asked (credentials in it redacted).
    pub url: String,
    /// The model ids it lists (`None` when the answer could not be read as
    /// a list, e.g. it was larger than [`PROVIDER_MODELS_LIST_MAX_BYTES`]).
    pub ids: Option<Vec<String>>,
}

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProbeError {
    /// The key (or proxy) could not be read from the config's source.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The request failed: transport, timeout, or an HTTP error status.
    #[error("{0}")]
    Attempt(#[from] AttemptError),
}

impl ProbeError {
    /// How the failure is classified (`None` for a config problem).
    pub fn kind(&self) -> Option<FailureKind> {
        match self {
            ProbeError::Config(_) => None,
            ProbeError::Attempt(e) => Some(e.kind),
        }
    }
}

/// The models-list URL of a provider.
pub fn models_url(api: ApiKind, base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    match api {
        ApiKind::OpenAiChat => format!("{base}/models"),
        ApiKind::AnthropicMessages => format!("{base}/v1/models"),
        ApiKind::Ollama => format!("{base}/api/tags"),
    }
}

/// Ask `cfg`'s provider for its models list, all within `timeout`
/// (blocking: run it on a thread of its own).
pub fn probe(cfg: &ProviderConfig, timeout: Duration) -> Result<ModelsList, ProbeError> {
    let key = load_key(cfg)?;
    let proxy = load_proxy(cfg)?;
    let connect = cfg.timeouts().connect.min(timeout);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(proxy)
        .timeout_global(Some(timeout))
        .timeout_connect(Some(connect))
        .max_redirects(0)
        .accept_encoding("identity")
        .input_buffer_size(HTTP_INPUT_BUFFER_BYTES)
        .output_buffer_size(HTTP_OUTPUT_BUFFER_BYTES)
        .build()
        .into();
    let url = models_url(cfg.api, &cfg.base_url);
    let mut req = agent.get(&url).header("accept", "application/json");
    req = match (cfg.api, &key) {
        (ApiKind::AnthropicMessages, Some(k)) => req.header("x-api-key", k.expose()),
        (_, Some(k)) => req.header("authorization", format!("Bearer {}", k.expose())),
        (_, None) => req,
    };
    if cfg.api == ApiKind::AnthropicMessages {
        req = req.header("anthropic-version", ANTHROPIC_VERSION);
    }
    let fail = |e: AttemptError| ProbeError::Attempt(redact(e, key.as_ref()));
    let mut resp = req.call().map_err(|e| fail(map_ureq(&e)))?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let limit = if (200..300).contains(&status) {
        PROVIDER_MODELS_LIST_MAX_BYTES
    } else {
        MAX_ERROR_BODY_BYTES
    };
    let body = resp.body_mut().with_config().limit(limit).read_to_string();
    if !(200..300).contains(&status) {
        let body = body.unwrap_or_default();
        return Err(fail(classify_http(
            status,
            &content_type,
            &body,
            None,
            None,
        )));
    }
    let ids = body
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|v| model_ids(cfg.api, &v));
    Ok(ModelsList {
        url: super::config::redact_url_userinfo(&url),
        ids,
    })
}

/// The ids in a models list: `data[].id` (OpenAI, Anthropic) or
/// `models[].name` (Ollama).
fn model_ids(api: ApiKind, v: &Value) -> Option<Vec<String>> {
    let (list, field) = match api {
        ApiKind::Ollama => ("models", "name"),
        _ => ("data", "id"),
    };
    let items = v.get(list)?.as_array()?;
    Some(
        items
            .iter()
            .filter_map(|m| m.get(field).and_then(Value::as_str).map(str::to_owned))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_wire_format_lists_models_at_its_own_path() {
        assert_eq!(
            models_url(ApiKind::OpenAiChat, "https://api.openai.com/v1/"),
            "https://api.openai.com/v1/models"
        );
        assert_eq!(
            models_url(ApiKind::AnthropicMessages, "https://api.anthropic.com"),
            "https://api.anthropic.com/v1/models"
        );
        assert_eq!(
            models_url(ApiKind::Ollama, "http://127.0.0.1:11434"),
            "http://127.0.0.1:11434/api/tags"
        );
        let openai = json!({"object": "list", "data": [{"id": "gpt-4o-mini"}, {"id": "o3"}]});
        assert_eq!(
            model_ids(ApiKind::OpenAiChat, &openai),
            Some(vec!["gpt-4o-mini".into(), "o3".into()])
        );
        let ollama = json!({"models": [{"name": "qwen3:0.6b", "size": 1}]});
        assert_eq!(
            model_ids(ApiKind::Ollama, &ollama),
            Some(vec!["qwen3:0.6b".into()])
        );
        assert_eq!(model_ids(ApiKind::Ollama, &json!({"error": "x"})), None);
    }
}
