//! What the gateway talks to: each provider (its models list, with its
//! key), the Telegram bot (`getMe` with its token), the MQTT broker (one
//! message through it) and Home Assistant (`GET /api/`). Each runs on a
//! thread of its own within the doctor's timeout. Only configured ones are
//! checked. Keys and tokens are redacted by the clients that send them.

use std::time::Duration;

use serde_json::json;

use super::{Check, Pending};
use crate::channel::telegram::api::{ApiError, BotApi};
use crate::config::Config;
use crate::provider::config::redact_url_userinfo;
use crate::provider::probe::{ProbeError, models_url, probe};
use crate::provider::{ApiKind, FailureKind, ProviderConfig};

/// Start a check of everything configured.
pub(crate) fn start(config: &Config, timeout: Duration) -> Vec<Pending> {
    let mut pending = Vec::new();
    for p in &config.providers {
        let used = models_used(config, p);
        let p = p.clone();
        pending.push(Pending::spawn(
            format!("provider {}", p.id),
            timeout,
            move || vec![provider(&p, &used, timeout)],
        ));
    }
    let telegram = &config.channels.telegram;
    if telegram.enabled {
        let telegram = telegram.clone();
        pending.push(Pending::spawn("telegram", timeout, move || {
            vec![telegram_check(&telegram, timeout)]
        }));
    }
    if config.mqtt.url.is_some() {
        let mqtt = config.mqtt.clone();
        pending.push(Pending::spawn("mqtt", timeout, move || {
            vec![mqtt_check(&mqtt, timeout)]
        }));
    }
    if config.home_assistant.url.is_some() {
        let ha = config.home_assistant.clone();
        pending.push(Pending::spawn("home_assistant", timeout, move || {
            vec![home_assistant(&ha, timeout)]
        }));
    }
    pending
}

/// The models of provider `p` the config uses: its `[[providers.models]]`
/// and the agent's model chain entries that name it.
fn models_used(config: &Config, p: &ProviderConfig) -> Vec<String> {
    let mut used: Vec<String> = p.models.iter().map(|m| m.id.clone()).collect();
    let chain = config.agent.model.iter().chain(&config.agent.fallbacks);
    for reference in chain {
        if let Some((provider, model)) = reference.split_once('/')
            && provider == p.id
            && !used.iter().any(|m| m == model)
        {
            used.push(model.to_owned());
        }
    }
    used
}

/// One provider: reachable, the key accepted, its models there.
fn provider(p: &ProviderConfig, used: &[String], timeout: Duration) -> Check {
    let name = format!("provider {}", p.id);
    let base = redact_url_userinfo(&p.base_url);
    let list = match probe(p, timeout) {
        Ok(list) => list,
        Err(ProbeError::Config(e)) => {
            return Check::fail(
                name,
                e.to_string(),
                Some("put the key where the config says (api_key_file or api_key_env)".into()),
            );
        }
        Err(ProbeError::Attempt(e)) if e.kind == FailureKind::NotFound => {
            return Check::fail(
                name,
                format!(
                    "{}: HTTP 404, no models list there",
                    redact_url_userinfo(&models_url(p.api, &p.base_url))
                ),
                Some(
                    "check base_url: for openai-chat it ends in /v1; for anthropic-messages and ollama it is the host only"
                        .into(),
                ),
            );
        }
        Err(ProbeError::Attempt(e)) if e.kind == FailureKind::Timeout => {
            return Check::fail(
                name,
                format!("{base}: no answer within {} s", timeout.as_secs_f64()),
                Some("check base_url, the network and DNS (and that a local server runs)".into()),
            );
        }
        Err(e) => {
            let hint = match e.kind() {
                Some(FailureKind::Auth) => {
                    "the key is wrong or revoked: make a new one in the provider's console and put it in api_key_file / api_key_env"
                }
                Some(FailureKind::Billing) => "the account has no credit left",
                Some(FailureKind::Timeout | FailureKind::Connect) => {
                    "check base_url, the network and DNS (and that a local server runs)"
                }
                _ => "check base_url and the provider's status",
            };
            return Check::fail(name, format!("{base}: {e}"), Some(hint.into()));
        }
    };
    let Some(ids) = list.ids else {
        return Check::pass(name, format!("{base}: the key is accepted"));
    };
    let missing: Vec<&str> = used
        .iter()
        .filter(|m| !ids.iter().any(|id| id == *m))
        .map(String::as_str)
        .collect();
    let count = format!("{base}: the key is accepted, {} models listed", ids.len());
    match (missing.is_empty(), p.api) {
        (true, _) if used.is_empty() => Check::pass(name, count),
        (true, _) => Check::pass(name, format!("{count}, {} among them", used.join(", "))),
        (false, ApiKind::Ollama) => Check::fail(
            name,
            format!("{count}; not pulled: {}", missing.join(", ")),
            Some(format!(
                "on the Ollama machine: ollama pull {}",
                missing.join(" ")
            )),
        ),
        (false, _) => Check::pass(
            name,
            format!(
                "{count}; {} not among them (a server that lists no aliases may still serve it: check the model id if runs fail)",
                missing.join(", ")
            ),
        ),
    }
}

/// The Telegram bot's token, with `getMe`.
fn telegram_check(config: &crate::channel::telegram::TelegramConfig, timeout: Duration) -> Check {
    let token = match config.token() {
        Ok(token) => token,
        Err(e) => {
            return Check::fail(
                "telegram",
                e,
                Some("put the bot token from @BotFather where the config says".into()),
            );
        }
    };
    let api = BotApi::new(&config.api_root, token.secret);
    match api.call(&BotApi::agent(), "getMe", &json!({}), timeout) {
        Ok(me) => Check::pass(
            "telegram",
            format!(
                "@{} answers getMe (token from {})",
                me["username"].as_str().unwrap_or("?"),
                token.source
            ),
        ),
        Err(ApiError::Unauthorized(why)) => Check::fail(
            "telegram",
            format!("Telegram refused the bot token: {why}"),
            Some(
                "the token is wrong or was revoked: get the current one from @BotFather (/token) and put it in the bot token file"
                    .into(),
            ),
        ),
        Err(ApiError::Network(why)) if why.contains("timeout") => Check::fail(
            "telegram",
            format!(
                "{}: no answer within {} s",
                config.api_root,
                timeout.as_secs_f64()
            ),
            Some("check the network and DNS (api.telegram.org)".into()),
        ),
        Err(e) => Check::fail(
            "telegram",
            format!("{}: {e}", config.api_root),
            Some("check the network and DNS (api.telegram.org)".into()),
        ),
    }
}

/// The MQTT broker: connect, subscribe, one message there and back.
fn mqtt_check(config: &crate::bridge::config::MqttConfig, timeout: Duration) -> Check {
    let url = redact_url_userinfo(config.url.as_deref().unwrap_or_default());
    let node = config.node_id(&crate::gateway::hostname());
    let hint = Some(
        "check [mqtt] url, username and password, and that the broker runs (pinclaw mqtt check times each step)"
            .to_owned(),
    );
    let options = match crate::bridge::client_options(config, &node) {
        Ok(o) => o,
        Err(e) => return Check::fail("mqtt", format!("{url}: {e}"), hint),
    };
    match crate::mqtt::check(options, timeout) {
        Ok(r) => Check::pass(
            "mqtt",
            format!(
                "{url}: connected in {:.0} ms, a message there and back in {:.0} ms",
                r.connect.as_secs_f64() * 1000.0,
                r.round_trip.as_secs_f64() * 1000.0
            ),
        ),
        Err(e) => Check::fail("mqtt", format!("{url}: {e}"), hint),
    }
}

/// Home Assistant's REST API with the configured token.
fn home_assistant(config: &crate::home_assistant::HomeAssistantConfig, timeout: Duration) -> Check {
    let connection = match config.check() {
        Ok(Some(c)) => c,
        Ok(None) => return Check::pass("home_assistant", "not configured"),
        Err(problems) => {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Check::fail("home_assistant", lines.join("; "), None);
        }
    };
    match connection.ping(timeout) {
        Ok(message) => Check::pass(
            "home_assistant",
            format!("{}: {message}", redact_url_userinfo(connection.base_url())),
        ),
        Err(e) => Check::fail(
            "home_assistant",
            e,
            Some("check [home_assistant] url and the long-lived access token".into()),
        ),
    }
}
