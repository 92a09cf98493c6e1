//! `[mqtt]`: the broker, the identity on it, and the topic layout of the
//! bridge. Checked at start (and by `pinclaw config check`): the URL, the
//! names that become topics, and the password source (read then).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{Problem, Secret};

/// How Home Assistant discovery is published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryMode {
    /// One retained `{prefix}/device/{node_id}/config` with every entity
    /// (Home Assistant 2024.12 and newer).
    #[default]
    Device,
    /// One config topic per entity (older Home Assistant, openHAB).
    Entity,
}

/// `[mqtt]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `mqtt://host:1883` or `mqtts://host:8883` (unset: no bridge).
    pub url: Option<String>,
    /// User name on the broker.
    pub username: Option<String>,
    /// A file holding the password.
    pub password_file: Option<PathBuf>,
    /// Or an environment variable holding it.
    pub password_env: Option<String>,
    /// `mqtts://` only: a PEM file of the CA certificate(s) the broker's
    /// certificate must chain to, instead of the public roots (a broker
    /// with its own CA or a self-signed certificate).
    pub ca_file: Option<PathBuf>,
    /// This board's id in topics and entity ids (default: the board node's
    /// name, lowercased, `[a-z0-9_-]`).
    pub node_id: Option<String>,
    /// The first topic level (`pinclaw/{node_id}/…`).
    pub base_topic: String,
    /// Home Assistant's discovery prefix; `""` turns discovery off.
    pub discovery_prefix: String,
    /// `device` or `entity`.
    pub discovery: DiscoveryMode,
    /// Every state is published at least this often (seconds), besides on
    /// change; a sensor not heard from for 3× this shows unavailable.
    pub republish_s: u64,
    /// MQTT keep-alive, seconds.
    pub keep_alive_s: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: None,
            username: None,
            password_file: None,
            password_env: None,
            ca_file: None,
            node_id: None,
            base_topic: "pinclaw".into(),
            discovery_prefix: "homeassistant".into(),
            discovery: DiscoveryMode::Device,
            republish_s: 300,
            keep_alive_s: 30,
        }
    }
}

/// `[a-z0-9_-]`, 1–64 characters.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A host name as a node id: lowercased, anything else becomes `_`.
pub fn node_id_from(name: &str) -> String {
    let id: String = name
        .chars()
        .take(64)
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() { "pinclaw".into() } else { id }
}

/// A topic level or prefix the bridge builds topics from: no wildcards, no
/// empty levels, no leading `$`.
fn valid_prefix(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 128
        && !topic.starts_with('$')
        && !topic.contains(['+', '#', '\0'])
        && topic.split('/').all(|level| !level.is_empty())
}

impl MqttConfig {
    /// Every problem with the section (nothing when there is no url).
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let Some(url) = &self.url else {
            return out;
        };
        match crate::mqtt::parse_url(url) {
            Err(e) => out.push(Problem::new("mqtt.url", e)),
            Ok((_, _, tls)) => {
                if let Some(file) = &self.ca_file {
                    if !tls {
                        out.push(Problem::new(
                            "mqtt.ca_file",
                            "only used with an mqtts:// url",
                        ));
                    } else if let Err(e) = crate::mqtt::load_ca_file(file) {
                        out.push(Problem::new("mqtt.ca_file", e));
                    }
                }
            }
        }
        if let Some(id) = &self.node_id
            && !valid_id(id)
        {
            out.push(Problem::new(
                "mqtt.node_id",
                "must be 1-64 characters of a-z, 0-9, _ and -",
            ));
        }
        if !valid_prefix(&self.base_topic) {
            out.push(Problem::new(
                "mqtt.base_topic",
                "must be a topic without wildcards (+, #), empty levels or a leading $",
            ));
        }
        if !self.discovery_prefix.is_empty() && !valid_prefix(&self.discovery_prefix) {
            out.push(Problem::new(
                "mqtt.discovery_prefix",
                "must be a topic without wildcards, or \"\" to turn discovery off",
            ));
        }
        if !(10..=86_400).contains(&self.republish_s) {
            out.push(Problem::new(
                "mqtt.republish_s",
                "must be between 10 and 86400",
            ));
        }
        if !(5..=3600).contains(&self.keep_alive_s) {
            out.push(Problem::new(
                "mqtt.keep_alive_s",
                "must be between 5 and 3600",
            ));
        }
        if self.password_file.is_some() && self.password_env.is_some() {
            out.push(Problem::new(
                "mqtt.password_file",
                "give password_file or password_env, not both",
            ));
        }
        if let Err(p) = self.password() {
            out.push(p);
        }
        out
    }

    /// The password, read from its file or the environment now.
    pub fn password(&self) -> Result<Option<Secret>, Problem> {
        match (&self.password_file, &self.password_env) {
            (Some(file), _) => std::fs::read_to_string(file)
                .map(|p| Some(Secret::new(p.trim_end_matches(['\r', '\n']))))
                .map_err(|e| {
                    Problem::new(
                        "mqtt.password_file",
                        format!("cannot read {}: {e}", file.display()),
                    )
                }),
            (None, Some(var)) => std::env::var(var)
                .map(|p| Some(Secret::new(p)))
                .map_err(|_| {
                    Problem::new(
                        "mqtt.password_env",
                        format!("the environment variable {var} is not set"),
                    )
                }),
            (None, None) => Ok(None),
        }
    }

    /// The node id in effect: configured, else from the board node's name.
    pub fn node_id(&self, board_name: &str) -> String {
        self.node_id
            .clone()
            .unwrap_or_else(|| node_id_from(board_name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_prefixes() {
        assert_eq!(node_id_from("RaspberryPi 4.local"), "raspberrypi_4_local");
        assert!(valid_prefix("pinclaw") && valid_prefix("home/pinclaw"));
        assert!(!valid_prefix("a/+/b") && !valid_prefix("a//b") && !valid_prefix("$SYS"));
        let c = MqttConfig {
            url: Some("ftp://x".into()),
            node_id: Some("Hub!".into()),
            base_topic: "a/#".into(),
            ..MqttConfig::default()
        };
        let keys: Vec<String> = c.problems().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["mqtt.url", "mqtt.node_id", "mqtt.base_topic"]);
    }
}
