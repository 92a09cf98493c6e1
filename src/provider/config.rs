//! `[[providers]]` configuration, model references and API keys.

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::limits::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_FIRST_BYTE_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LOCAL_IDLE_TIMEOUT, MAX_CHAIN_LEN, MAX_KEY_FILE_BYTES, MAX_MODELS_PER_PROVIDER,
    MAX_PROVIDERS,
};

/// Wire format spoken by a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiKind {
    /// OpenAI Chat Completions: OpenAI, OpenRouter, Groq, vLLM, llama.cpp,
    /// LM Studio, Ollama `/v1`.
    #[serde(rename = "openai-chat")]
    OpenAiChat,
    /// Anthropic Messages.
    #[serde(rename = "anthropic-messages")]
    AnthropicMessages,
    /// Ollama's native `/api/chat` (NDJSON).
    #[serde(rename = "ollama")]
    Ollama,
}

impl ApiKind {
    /// The config spelling (`openai-chat`, `anthropic-messages`, `ollama`).
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKind::OpenAiChat => "openai-chat",
            ApiKind::AnthropicMessages => "anthropic-messages",
            ApiKind::Ollama => "ollama",
        }
    }
}

/// One `[[providers]]` entry. `Debug` hides proxy credentials.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Provider id used in model refs (`<id>/<model>`). Letters, digits, `-`, `_`, `.`.
    pub id: String,
    /// Wire format: `"openai-chat"`, `"anthropic-messages"` or `"ollama"`.
    pub api: ApiKind,
    /// Base URL. openai-chat: up to and including `/v1`
    /// (`https://api.openai.com/v1`; `/chat/completions` is appended).
    /// anthropic-messages: the host (`https://api.anthropic.com`; `/v1/messages`
    /// is appended). ollama: the host (`http://127.0.0.1:11434`; `/api/chat` is
    /// appended).
    pub base_url: String,
    /// Name of the environment variable holding the API key. The key itself is
    /// never logged, serialized or shown by `config.get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// File holding the API key (surrounding whitespace is trimmed). Use one of
    /// `api_key_env` / `api_key_file`, or neither for keyless local servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// A model on the LAN or the board itself: defaults the first-byte and
    /// idle timeouts to 10 minutes (model loading and prompt reading are slow).
    #[serde(default)]
    pub local: bool,
    /// HTTP(S) proxy URL for this provider. Proxies are taken only from here,
    /// never from `HTTP_PROXY` and friends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// TCP + TLS connect timeout in milliseconds (default 10 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// Time until the response headers arrive, in milliseconds (default 60 000,
    /// 600 000 when `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_timeout_ms: Option<u64>,
    /// Longest silence between two reads of the streaming body, in milliseconds
    /// (default 120 000, 600 000 when `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    /// openai-chat only: name of the output cap field, `"max_tokens"` or
    /// `"max_completion_tokens"` (default: the latter for api.openai.com, the
    /// former elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_field: Option<String>,
    /// openai-chat only: ask for usage in the stream
    /// (`stream_options.include_usage`, default true). Turn off for servers
    /// that reject the field.
    #[serde(default = "default_true")]
    pub stream_usage: bool,
    /// Models of this provider (`[[providers.models]]`). Refs to models not
    /// listed here are allowed and use the defaults.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
}

fn default_true() -> bool {
    true
}

/// `http://user:pass@host:3128` → `http://[redacted]@host:3128`.
pub fn redact_url_userinfo(url: &str) -> String {
    let Some(s) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[s..].find('/').map_or(url.len(), |i| s + i);
    match url[s..authority_end].rfind('@') {
        Some(at) => format!("{}[redacted]{}", &url[..s], &url[s + at..]),
        None => url.to_owned(),
    }
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("id", &self.id)
            .field("api", &self.api)
            .field("base_url", &redact_url_userinfo(&self.base_url))
            .field("api_key_env", &self.api_key_env)
            .field("api_key_file", &self.api_key_file)
            .field("local", &self.local)
            .field("proxy", &self.proxy.as_deref().map(redact_url_userinfo))
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("first_byte_timeout_ms", &self.first_byte_timeout_ms)
            .field("idle_timeout_ms", &self.idle_timeout_ms)
            .field("max_tokens_field", &self.max_tokens_field)
            .field("stream_usage", &self.stream_usage)
            .field("models", &self.models)
            .finish()
    }
}

/// One `[[providers.models]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Model id as the provider spells it (may contain `/`, e.g. OpenRouter's
    /// `anthropic/claude-sonnet-4`).
    pub id: String,
    /// Context window in tokens; the agent loop sizes the transcript window
    /// from it (and Ollama gets it as `num_ctx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// Output token cap sent with every request to this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
}

/// Timeouts of one provider, resolved from its config and `local` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// Until the response headers.
    pub first_byte: Duration,
    /// Between two body reads.
    pub idle: Duration,
}

impl ProviderConfig {
    /// The effective timeouts.
    pub fn timeouts(&self) -> Timeouts {
        let ms = Duration::from_millis;
        let (fb, idle) = if self.local {
            (DEFAULT_LOCAL_IDLE_TIMEOUT, DEFAULT_LOCAL_IDLE_TIMEOUT)
        } else {
            (DEFAULT_FIRST_BYTE_TIMEOUT, DEFAULT_IDLE_TIMEOUT)
        };
        Timeouts {
            connect: self.connect_timeout_ms.map_or(DEFAULT_CONNECT_TIMEOUT, ms),
            first_byte: self.first_byte_timeout_ms.map_or(fb, ms),
            idle: self.idle_timeout_ms.map_or(idle, ms),
        }
    }

    /// The configured model entry, if listed.
    pub fn model(&self, id: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.id == id)
    }

    /// The effective openai-chat output cap field name.
    pub fn openai_max_tokens_field(&self) -> &str {
        match self.max_tokens_field.as_deref() {
            Some(f) => f,
            None if self.base_url.contains("://api.openai.com") => "max_completion_tokens",
            None => "max_tokens",
        }
    }

    /// A minimal config (tests and examples).
    pub fn new(id: &str, api: ApiKind, base_url: &str) -> Self {
        ProviderConfig {
            id: id.into(),
            api,
            base_url: base_url.into(),
            api_key_env: None,
            api_key_file: None,
            local: false,
            proxy: None,
            connect_timeout_ms: None,
            first_byte_timeout_ms: None,
            idle_timeout_ms: None,
            max_tokens_field: None,
            stream_usage: true,
            models: Vec::new(),
        }
    }
}

/// An API key. `Debug` and `Display` print `[redacted]`; it has no
/// `Serialize`, so it cannot leak into logs, config dumps or status replies.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wrap a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for the request header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A `provider/model` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ModelRef {
    /// Provider id.
    pub provider: String,
    /// Model id (everything after the first `/`).
    pub model: String,
}

impl ModelRef {
    /// Parse `provider/model`; the model part may itself contain `/`.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        match s.split_once('/') {
            Some((p, m)) if !p.is_empty() && !m.is_empty() => Ok(ModelRef {
                provider: p.to_owned(),
                model: m.to_owned(),
            }),
            _ => Err(ConfigError::InvalidModelRef(s.to_owned())),
        }
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

/// A provider or model-chain configuration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Two `[[providers]]` share an id.
    #[error("duplicate provider id {0:?}")]
    DuplicateProvider(String),
    /// Two models of one provider share an id.
    #[error("provider {provider:?}: duplicate model id {model:?}")]
    DuplicateModel {
        /// Provider id.
        provider: String,
        /// Model id.
        model: String,
    },
    /// A provider id that is empty or has characters outside `[A-Za-z0-9._-]`.
    #[error("invalid provider id {0:?} (use letters, digits, '-', '_', '.')")]
    InvalidProviderId(String),
    /// A base URL that is not `http://` or `https://`.
    #[error("provider {provider:?}: base_url {url:?} must start with http:// or https://")]
    InvalidBaseUrl {
        /// Provider id.
        provider: String,
        /// The URL.
        url: String,
    },
    /// A model ref not of the form `provider/model`.
    #[error("invalid model ref {0:?} (expected \"provider/model\")")]
    InvalidModelRef(String),
    /// A model ref naming a provider that is not configured.
    #[error("model ref {model_ref:?} names unknown provider {provider:?}")]
    UnknownProvider {
        /// The ref.
        model_ref: String,
        /// The provider part.
        provider: String,
    },
    /// Both `api_key_env` and `api_key_file` are set.
    #[error("provider {0:?}: set only one of api_key_env and api_key_file")]
    BothKeySources(String),
    /// The key file cannot be read.
    #[error("provider {provider:?}: cannot read api_key_file {path:?}: {error}")]
    KeyFile {
        /// Provider id.
        provider: String,
        /// The path.
        path: PathBuf,
        /// Why.
        error: String,
    },
    /// The key environment variable is not set.
    #[error("provider {provider:?}: environment variable {var} (api_key_env) is not set")]
    KeyEnvMissing {
        /// Provider id.
        provider: String,
        /// The variable name.
        var: String,
    },
    /// The key source holds an empty key.
    #[error("provider {0:?}: the API key is empty")]
    KeyEmpty(String),
    /// The proxy URL is invalid.
    #[error("provider {provider:?}: invalid proxy: {error}")]
    InvalidProxy {
        /// Provider id.
        provider: String,
        /// Why.
        error: String,
    },
    /// `max_tokens_field` is neither `max_tokens` nor `max_completion_tokens`.
    #[error(
        "provider {provider:?}: max_tokens_field must be \"max_tokens\" or \"max_completion_tokens\", not {value:?}"
    )]
    InvalidMaxTokensField {
        /// Provider id.
        provider: String,
        /// The value.
        value: String,
    },
    /// Too many providers, models or chain entries.
    #[error("too many {what} (limit {limit})")]
    TooMany {
        /// What.
        what: &'static str,
        /// The cap.
        limit: usize,
    },
    /// The model chain is empty.
    #[error("no model configured ([agent] model is empty)")]
    EmptyChain,
}

impl ConfigError {
    /// The dotted key path in the config file the problem belongs to
    /// (`providers[1].api_key_env`).
    pub fn key_path(&self, configs: &[ProviderConfig]) -> String {
        let at = |id: &str, field: &str| {
            let i = configs.iter().rposition(|c| c.id == id);
            match (i, field) {
                (Some(i), "") => format!("providers[{i}]"),
                (Some(i), f) => format!("providers[{i}].{f}"),
                (None, _) => "providers".into(),
            }
        };
        match self {
            ConfigError::DuplicateProvider(id) | ConfigError::InvalidProviderId(id) => at(id, "id"),
            ConfigError::DuplicateModel { provider, .. } => at(provider, "models"),
            ConfigError::InvalidBaseUrl { provider, .. } => at(provider, "base_url"),
            ConfigError::BothKeySources(provider) | ConfigError::KeyEmpty(provider) => {
                at(provider, "")
            }
            ConfigError::KeyFile { provider, .. } => at(provider, "api_key_file"),
            ConfigError::KeyEnvMissing { provider, .. } => at(provider, "api_key_env"),
            ConfigError::InvalidProxy { provider, .. } => at(provider, "proxy"),
            ConfigError::InvalidMaxTokensField { provider, .. } => at(provider, "max_tokens_field"),
            ConfigError::InvalidModelRef(_)
            | ConfigError::UnknownProvider { .. }
            | ConfigError::EmptyChain => "agent.model".into(),
            ConfigError::TooMany { .. } => "providers".into(),
        }
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Check the static shape of the provider list (no file or env access).
pub fn validate_providers(providers: &[ProviderConfig]) -> Result<(), ConfigError> {
    if providers.len() > MAX_PROVIDERS {
        return Err(ConfigError::TooMany {
            what: "providers",
            limit: MAX_PROVIDERS,
        });
    }
    let mut ids = HashSet::new();
    for p in providers {
        if !valid_id(&p.id) {
            return Err(ConfigError::InvalidProviderId(p.id.clone()));
        }
        if !ids.insert(p.id.as_str()) {
            return Err(ConfigError::DuplicateProvider(p.id.clone()));
        }
        if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
            return Err(ConfigError::InvalidBaseUrl {
                provider: p.id.clone(),
                url: p.base_url.clone(),
            });
        }
        if p.api_key_env.is_some() && p.api_key_file.is_some() {
            return Err(ConfigError::BothKeySources(p.id.clone()));
        }
        if let Some(f) = p.max_tokens_field.as_deref()
            && f != "max_tokens"
            && f != "max_completion_tokens"
        {
            return Err(ConfigError::InvalidMaxTokensField {
                provider: p.id.clone(),
                value: f.to_owned(),
            });
        }
        if p.models.len() > MAX_MODELS_PER_PROVIDER {
            return Err(ConfigError::TooMany {
                what: "models for one provider",
                limit: MAX_MODELS_PER_PROVIDER,
            });
        }
        let mut models = HashSet::new();
        for m in &p.models {
            if !models.insert(m.id.as_str()) {
                return Err(ConfigError::DuplicateModel {
                    provider: p.id.clone(),
                    model: m.id.clone(),
                });
            }
        }
        if let Some(proxy) = &p.proxy {
            ureq::Proxy::new(proxy).map_err(|e| ConfigError::InvalidProxy {
                provider: p.id.clone(),
                error: e.to_string(),
            })?;
        }
    }
    Ok(())
}

/// Parse and check `primary` + `fallbacks` against the providers; repeated
/// refs are dropped (first wins).
pub fn resolve_chain(
    providers: &[ProviderConfig],
    primary: &str,
    fallbacks: &[String],
) -> Result<Vec<ModelRef>, ConfigError> {
    if primary.trim().is_empty() {
        return Err(ConfigError::EmptyChain);
    }
    if fallbacks.len() + 1 > MAX_CHAIN_LEN {
        return Err(ConfigError::TooMany {
            what: "models in the fallback chain",
            limit: MAX_CHAIN_LEN,
        });
    }
    let mut out: Vec<ModelRef> = Vec::new();
    for s in std::iter::once(primary).chain(fallbacks.iter().map(String::as_str)) {
        let r = ModelRef::parse(s.trim())?;
        if !providers.iter().any(|p| p.id == r.provider) {
            return Err(ConfigError::UnknownProvider {
                model_ref: s.to_owned(),
                provider: r.provider,
            });
        }
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

/// The provider's HTTP proxy (`None` when it has none).
pub fn load_proxy(p: &ProviderConfig) -> Result<Option<ureq::Proxy>, ConfigError> {
    p.proxy
        .as_deref()
        .map(|proxy| {
            ureq::Proxy::new(proxy).map_err(|e| ConfigError::InvalidProxy {
                provider: p.id.clone(),
                error: e.to_string(),
            })
        })
        .transpose()
}

/// Read the provider's key from its env var or file (`None` when neither is set).
pub fn load_key(p: &ProviderConfig) -> Result<Option<ApiKey>, ConfigError> {
    let raw = if let Some(var) = &p.api_key_env {
        std::env::var(var).map_err(|_| ConfigError::KeyEnvMissing {
            provider: p.id.clone(),
            var: var.clone(),
        })?
    } else if let Some(path) = &p.api_key_file {
        let err = |e: std::io::Error| ConfigError::KeyFile {
            provider: p.id.clone(),
            path: path.clone(),
            error: e.to_string(),
        };
        let mut s = String::new();
        std::fs::File::open(path)
            .map_err(err)?
            .take(MAX_KEY_FILE_BYTES)
            .read_to_string(&mut s)
            .map_err(err)?;
        s
    } else {
        return Ok(None);
    };
    let key = raw.trim();
    if key.is_empty() {
        return Err(ConfigError::KeyEmpty(p.id.clone()));
    }
    Ok(Some(ApiKey::new(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        // the shape config/pinclaw.toml uses (the [agent] table is the integrator's)
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            providers: Vec<ProviderConfig>,
        }
        let t = r#"
            [[providers]]
            id = "anthropic"
            api = "anthropic-messages"
            base_url = "https://api.anthropic.com"
            api_key_env = "ANTHROPIC_API_KEY"
            [[providers.models]]
            id = "claude-sonnet-4-5"
            context_window = 200000
            max_output_tokens = 8192

            [[providers]]
            id = "ollama"
            api = "ollama"
            base_url = "http://127.0.0.1:11434"
            local = true
            proxy = "http://user:hunter2@10.0.0.1:3128"
            [[providers.models]]
            id = "qwen3:0.6b"
            context_window = 8192
        "#;
        let f: File = toml::from_str(t).unwrap();
        assert_eq!(f.providers.len(), 2);
        assert_eq!(f.providers[1].models[0].context_window, Some(8192));
        validate_providers(&f.providers).unwrap();
        let chain = resolve_chain(
            &f.providers,
            "anthropic/claude-sonnet-4-5",
            &["ollama/qwen3:0.6b".into()],
        )
        .unwrap();
        assert_eq!(chain[1].to_string(), "ollama/qwen3:0.6b");
        assert_eq!(
            redact_url_userinfo("http://h/p@x"),
            "http://h/p@x",
            "an @ in the path is not userinfo"
        );
        let dbg = format!("{:?}", f.providers[1]);
        assert!(
            !dbg.contains("hunter2") && dbg.contains("[redacted]@10.0.0.1"),
            "{dbg}"
        );
    }

    #[test]
    fn toml_roundtrip_rejects_unknown_fields() {
        let t = r#"
            id = "oai"
            api = "openai-chat"
            base_url = "https://api.openai.com/v1"
            api_key_env = "OPENAI_API_KEY"
            [[models]]
            id = "gpt-4.1-mini"
            context_window = 128000
            max_output_tokens = 4096
        "#;
        let p: ProviderConfig = toml::from_str(t).unwrap();
        assert_eq!(p.api, ApiKind::OpenAiChat);
        assert_eq!(p.models[0].context_window, Some(128000));
        assert_eq!(p.openai_max_tokens_field(), "max_completion_tokens");
        assert!(p.stream_usage);
        let bad = format!("{t}\nsurprise = 1");
        assert!(toml::from_str::<ProviderConfig>(&bad).is_err());
        let bad = t.replace("openai-chat", "openai");
        assert!(toml::from_str::<ProviderConfig>(&bad).is_err());
    }

    #[test]
    fn local_providers_get_longer_timeouts() {
        let mut p = ProviderConfig::new("o", ApiKind::Ollama, "http://127.0.0.1:11434");
        let remote = p.timeouts();
        assert_eq!(remote.first_byte, DEFAULT_FIRST_BYTE_TIMEOUT);
        assert_eq!(remote.idle, DEFAULT_IDLE_TIMEOUT);
        p.local = true;
        let local = p.timeouts();
        assert!(local.idle > remote.idle && local.first_byte > remote.first_byte);
        p.idle_timeout_ms = Some(1500);
        assert_eq!(p.timeouts().idle, Duration::from_millis(1500));
        assert_eq!(p.openai_max_tokens_field(), "max_tokens");
    }

    #[test]
    fn validation_errors_are_specific() {
        let a = ProviderConfig::new("a", ApiKind::Ollama, "http://127.0.0.1:11434");
        assert_eq!(
            validate_providers(&[a.clone(), a.clone()]),
            Err(ConfigError::DuplicateProvider("a".into()))
        );
        let mut m = a.clone();
        m.models = vec![
            ModelConfig {
                id: "x".into(),
                context_window: None,
                max_output_tokens: None
            };
            2
        ];
        assert!(matches!(
            validate_providers(&[m]),
            Err(ConfigError::DuplicateModel { .. })
        ));
        let mut u = a.clone();
        u.base_url = "ftp://x".into();
        assert!(matches!(
            validate_providers(&[u]),
            Err(ConfigError::InvalidBaseUrl { .. })
        ));
        let mut i = a.clone();
        i.id = "a/b".into();
        assert!(matches!(
            validate_providers(&[i]),
            Err(ConfigError::InvalidProviderId(_))
        ));
        let mut p = a.clone();
        p.proxy = Some("not a url at all".into());
        assert!(matches!(
            validate_providers(&[p]),
            Err(ConfigError::InvalidProxy { .. })
        ));
        assert!(matches!(
            resolve_chain(std::slice::from_ref(&a), "b/m", &[]),
            Err(ConfigError::UnknownProvider { provider, .. }) if provider == "b"
        ));
        assert!(matches!(
            resolve_chain(std::slice::from_ref(&a), "nomodel", &[]),
            Err(ConfigError::InvalidModelRef(_))
        ));
        let chain = resolve_chain(
            std::slice::from_ref(&a),
            "a/x",
            &["a/org/y".into(), "a/x".into()],
        )
        .unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1].model, "org/y");
    }

    #[test]
    fn keys_from_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = ProviderConfig::new("k", ApiKind::OpenAiChat, "http://x");
        p.api_key_file = Some(dir.path().join("missing"));
        assert!(matches!(load_key(&p), Err(ConfigError::KeyFile { .. })));
        std::fs::write(dir.path().join("key"), "  sk-file\n").unwrap();
        p.api_key_file = Some(dir.path().join("key"));
        let k = load_key(&p).unwrap().unwrap();
        assert_eq!(k.expose(), "sk-file");
        assert_eq!(format!("{k:?} {k}"), "ApiKey([redacted]) [redacted]");
        p.api_key_file = None;
        p.api_key_env = Some("PINCLAW_TEST_SURELY_UNSET_VAR".into());
        assert!(matches!(
            load_key(&p),
            Err(ConfigError::KeyEnvMissing { .. })
        ));
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        p.api_key_env = None;
        p.api_key_file = Some(dir.path().join("empty"));
        assert_eq!(load_key(&p), Err(ConfigError::KeyEmpty("k".into())));
    }
}
