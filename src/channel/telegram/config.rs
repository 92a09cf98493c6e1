//! `[channels.telegram]`: the bot token's source, the Bot API root, who may
//! talk (DM and group policies) and the long-poll timeout.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::channel::access::{AllowEntry, DmPolicy, GroupPolicy, GroupRule, Rules};
use crate::config::Secret;

/// `[channels.telegram]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramConfig {
    /// Run the bot.
    pub enabled: bool,
    /// Environment variable holding the bot token.
    pub bot_token_env: Option<String>,
    /// File holding the bot token (surrounding whitespace trimmed).
    pub bot_token_file: Option<PathBuf>,
    /// Bot API root; requests go to `{api_root}/bot{token}/{method}`.
    pub api_root: String,
    /// Direct messages: pairing | allowlist | open | disabled.
    pub dm_policy: DmPolicy,
    /// Numeric user ids allowed to send direct messages; `"*"` only with
    /// `dm_policy = "open"`.
    pub allow_from: Vec<AllowEntry>,
    /// Groups: allowlist | open | disabled.
    pub group_policy: GroupPolicy,
    /// Per-group settings by chat id (the allowlist under `allowlist`).
    pub groups: BTreeMap<String, GroupRule>,
    /// `getUpdates` long-poll timeout in seconds (1–50).
    pub poll_timeout_s: u64,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            bot_token_env: None,
            bot_token_file: None,
            api_root: "https://api.telegram.org".into(),
            dm_policy: DmPolicy::Pairing,
            allow_from: Vec::new(),
            group_policy: GroupPolicy::Allowlist,
            groups: BTreeMap::new(),
            poll_timeout_s: 30,
        }
    }
}

/// The bot token and where it came from.
pub struct Token {
    /// The token.
    pub secret: Secret,
    /// `env` or `file`.
    pub source: &'static str,
}

impl TelegramConfig {
    /// Check the values against each other; the first problem as
    /// `(key, message)` in the config's words.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(1..=50).contains(&self.poll_timeout_s) {
            return Err((
                "channels.telegram.poll_timeout_s",
                "must be between 1 and 50 seconds".into(),
            ));
        }
        let wildcard = self
            .allow_from
            .iter()
            .any(|e| matches!(e, AllowEntry::Any(_)));
        if let Some(AllowEntry::Any(bad)) = self
            .allow_from
            .iter()
            .find(|e| matches!(e, AllowEntry::Any(s) if s != "*"))
        {
            return Err((
                "channels.telegram.allow_from",
                format!("{bad:?} is not a numeric user id or \"*\""),
            ));
        }
        if wildcard && self.dm_policy != DmPolicy::Open {
            return Err((
                "channels.telegram.allow_from",
                "\"*\" is allowed only with dm_policy = \"open\"".into(),
            ));
        }
        if self.dm_policy == DmPolicy::Open && !wildcard {
            return Err((
                "channels.telegram.allow_from",
                "dm_policy = \"open\" needs allow_from = [\"*\"] (anyone may talk to the bot)"
                    .into(),
            ));
        }
        if self.bot_token_env.is_some() && self.bot_token_file.is_some() {
            return Err((
                "channels.telegram.bot_token_env",
                "set only one of bot_token_env and bot_token_file".into(),
            ));
        }
        if self.enabled && self.bot_token_env.is_none() && self.bot_token_file.is_none() {
            return Err((
                "channels.telegram.bot_token_env",
                "an enabled bot needs bot_token_env or bot_token_file".into(),
            ));
        }
        if !(self.api_root.starts_with("https://") || self.api_root.starts_with("http://")) {
            return Err((
                "channels.telegram.api_root",
                "must be an http:// or https:// URL".into(),
            ));
        }
        for id in self.groups.keys() {
            if id.parse::<i64>().is_err() {
                return Err((
                    "channels.telegram.groups",
                    format!("{id:?} is not a numeric chat id"),
                ));
            }
        }
        Ok(())
    }

    /// The bot token from its configured source.
    pub fn token(&self) -> Result<Token, String> {
        if let Some(var) = &self.bot_token_env {
            let value = std::env::var(var).map_err(|_| {
                format!("channels.telegram.bot_token_env: environment variable {var} is not set")
            })?;
            let value = value.trim().to_owned();
            if value.is_empty() {
                return Err(format!(
                    "channels.telegram.bot_token_env: environment variable {var} is empty"
                ));
            }
            return Ok(Token {
                secret: Secret::new(value),
                source: "env",
            });
        }
        if let Some(path) = &self.bot_token_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "channels.telegram.bot_token_file: cannot read {}: {e}",
                    path.display()
                )
            })?;
            let value = text.trim().to_owned();
            if value.is_empty() {
                return Err(format!(
                    "channels.telegram.bot_token_file: {} is empty",
                    path.display()
                ));
            }
            return Ok(Token {
                secret: Secret::new(value),
                source: "file",
            });
        }
        Err("channels.telegram: no bot_token_env or bot_token_file".into())
    }

    /// The access rules.
    pub fn rules(&self) -> Rules {
        Rules {
            dm: self.dm_policy,
            allow_from: self.allow_from.clone(),
            group: self.group_policy,
            groups: self.groups.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TelegramConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_keys_parse_and_check() {
        let cfg = parse(
            r#"
enabled = true
bot_token_env = "TELEGRAM_BOT_TOKEN"
api_root = "https://api.telegram.org"
dm_policy = "pairing"
allow_from = [123456789]
group_policy = "allowlist"
poll_timeout_s = 30
[groups."-1001234567890"]
require_mention = true
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.check(), Ok(()));
        assert_eq!(cfg.allow_from, vec![AllowEntry::Id(123456789)]);
        assert!(cfg.groups["-1001234567890"].require_mention);
    }

    #[test]
    fn wildcards_only_with_open() {
        let mut cfg = parse("allow_from = [\"*\"]").unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.check().is_err());
        cfg.dm_policy = DmPolicy::Open;
        assert_eq!(cfg.check(), Ok(()));
        let cfg = parse("allow_from = [\"bob\"]").unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.check().is_err_and(|(_, m)| m.contains("\"bob\"")));
        let cfg = parse("enabled = true").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            cfg.check()
                .is_err_and(|(k, _)| k.ends_with("bot_token_env"))
        );
    }
}
