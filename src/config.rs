//! The TOML configuration: schema, defaults, validation with file:line:column
//! errors that name the key path, and secret redaction for `config.get`.
//!
//! Precedence, highest first: command-line flags (and their environment
//! variables), the config file, built-in defaults.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};

use crate::limits;

/// The default gateway port (OpenClaw's).
pub const DEFAULT_PORT: u16 = 18789;

/// A secret string: never printed by `Debug`, redacted when serialized.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret value; callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where state (database, token, identity) lives. Default:
    /// `$PINCLAW_STATE_DIR`, else `$XDG_DATA_HOME/pinclaw`, else `~/.local/share/pinclaw`.
    pub state_dir: Option<PathBuf>,
    /// The gateway listener and its auth.
    pub gateway: GatewayConfig,
    /// Node connections and command policy.
    pub nodes: NodesConfig,
    /// The board this gateway runs on: profile and wired devices.
    pub board: crate::board::BoardConfig,
    /// Model providers (`[[providers]]`).
    pub providers: Vec<crate::provider::ProviderConfig>,
    /// The agent loop: model chain, prompt, limits, queueing.
    pub agent: crate::agent::AgentConfig,
    /// Session key formation.
    pub session: SessionConfig,
    /// Chat channels (`[channels.telegram]`).
    pub channels: ChannelsConfig,
    /// Logging.
    pub logging: LoggingConfig,
    /// Recent sensor values kept for sparklines (`sensors.history`).
    pub history: HistoryConfig,
    /// The automation engine's own settings (`[automation]`).
    pub automation: crate::automation::config::EngineConfig,
    /// What the board does on its own (`[[automations]]`).
    pub automations: Vec<crate::automation::config::AutomationConfig>,
    /// The MQTT bridge (`[mqtt]`): Home Assistant entities, commands, triggers.
    pub mqtt: crate::bridge::config::MqttConfig,
    /// Home Assistant's REST API for the agent's `home_assistant` tool.
    pub home_assistant: crate::home_assistant::HomeAssistantConfig,
}

impl Config {
    /// Whether the MQTT bridge is configured (`[mqtt] url`).
    pub fn mqtt_configured(&self) -> bool {
        self.mqtt.url.is_some()
    }
}

/// `[history]`: the sensor history rings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// How far back, in hours (0 turns sampling for the history off).
    pub hours: u64,
    /// One sample per this many seconds (each sensor is read this often).
    pub step_s: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            hours: 24,
            step_s: 60,
        }
    }
}

impl HistoryConfig {
    /// Slots per ring.
    pub fn slots(&self) -> usize {
        (self.hours.saturating_mul(3600) / self.step_s.max(1)) as usize
    }
}

/// `[session]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// How direct messages map to sessions: main | per-peer | per-channel-peer.
    pub dm_scope: crate::session::keys::DmScope,
    /// Days a transcript turn is kept; older turns are deleted in the
    /// background (0 = keep forever).
    pub retention_days: u64,
    /// Newest turns kept per session; older ones are deleted in the
    /// background (0 = no cap).
    pub max_turns_per_session: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            dm_scope: crate::session::keys::DmScope::default(),
            retention_days: limits::SESSION_RETENTION_DAYS,
            max_turns_per_session: limits::SESSION_MAX_TURNS,
        }
    }
}

impl SessionConfig {
    /// What the retention task keeps.
    pub fn retention(&self) -> crate::store::Retention {
        crate::store::Retention {
            max_age_ms: (self.retention_days > 0).then(|| {
                self.retention_days
                    .saturating_mul(86_400_000)
                    .min(i64::MAX as u64) as i64
            }),
            max_turns: (self.max_turns_per_session > 0).then_some(self.max_turns_per_session),
        }
    }
}

/// `[channels]`: one table per chat service.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelsConfig {
    /// The Telegram bot.
    pub telegram: crate::channel::telegram::TelegramConfig,
}

/// `[nodes]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodesConfig {
    /// Most nodes connected at once; more are refused.
    pub max_nodes: usize,
    /// Default `node.invoke` deadline in milliseconds.
    pub invoke_timeout_ms: u64,
    /// Commands permitted beyond the defaults (`camera.*` style prefixes
    /// allowed). Capturing commands such as `camera.snap` need an entry here.
    pub allow_commands: Vec<String>,
    /// Commands never permitted; deny wins over allow.
    pub deny_commands: Vec<String>,
}

impl Default for NodesConfig {
    fn default() -> Self {
        Self {
            max_nodes: limits::MAX_NODES,
            invoke_timeout_ms: limits::NODE_INVOKE_TIMEOUT.as_millis() as u64,
            allow_commands: Vec::new(),
            deny_commands: Vec::new(),
        }
    }
}

/// `[gateway]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// TCP port for HTTP and WebSocket.
    pub port: u16,
    /// `loopback` (127.0.0.1), `lan` (0.0.0.0) or an IP address.
    pub bind: String,
    /// Most simultaneous connections; beyond it new ones get HTTP 503.
    pub max_connections: usize,
    /// Authentication of clients.
    pub auth: AuthConfig,
    /// Page origins (`https://dash.example.org`) allowed to open the
    /// WebSocket besides the gateway's own (the dashboard); every other
    /// browser origin is refused with 403 before the upgrade.
    pub allowed_origins: Vec<String>,
    /// Host names the gateway answers to besides IP addresses, `localhost`
    /// and this machine's name (`<hostname>`, `<hostname>.local`): names
    /// you reach it by (a DNS name, a reverse proxy's). Against DNS
    /// rebinding, any other `Host` is refused.
    pub allowed_hosts: Vec<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            port: DEFAULT_PORT,
            bind: "loopback".into(),
            max_connections: limits::MAX_CONNECTIONS,
            auth: AuthConfig::default(),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// How clients authenticate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// A shared token (generated on first start when none is configured).
    #[default]
    Token,
    /// A shared password.
    Password,
    /// No shared secret: only allowed on a loopback bind.
    None,
}

impl AuthMode {
    /// Wire/config name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Token => "token",
            AuthMode::Password => "password",
            AuthMode::None => "none",
        }
    }
}

impl std::str::FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "token" => Ok(Self::Token),
            "password" => Ok(Self::Password),
            "none" => Ok(Self::None),
            other => Err(format!(
                "unknown auth mode {other:?} (expected token, password or none)"
            )),
        }
    }
}

/// `[gateway.auth]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `token`, `password` or `none`.
    pub mode: AuthMode,
    /// The shared token. When unset in token mode, one is generated on first
    /// start and kept in `<state_dir>/gateway.token`.
    pub token: Option<Secret>,
    /// The shared password (password mode).
    pub password: Option<Secret>,
}

/// `[logging]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// Filter in `RUST_LOG` syntax (`info`, `pinclaw=debug,warn`). `PINCLAW_LOG`
    /// overrides it.
    pub filter: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
        }
    }
}

/// A configuration error located in its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("{path}:{line}:{column}: {key}: {message}")]
    Invalid {
        /// File path.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Dotted key path, or `(document)` when unknown.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A value is well-formed but not usable.
    #[error("{path}: {key}: {message}")]
    Semantic {
        /// File path.
        path: PathBuf,
        /// Dotted key path.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read(path)?, path)
    }

    /// Read a config file and check it against the schema only.
    pub fn load_schema(path: &Path) -> Result<Self, ConfigError> {
        Self::parse_schema(&read(path)?, path)
    }

    /// Parse and validate config text; `path` is used in messages. The
    /// first problem is the error ([`Config::problems`] lists them all).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config = Self::parse_schema(text, path)?;
        if let Some(first) = Self::locate(text, path, config.problems())
            .into_iter()
            .next()
        {
            return Err(first);
        }
        Ok(config)
    }

    /// Parse config text against the schema only (TOML syntax, known keys,
    /// value types).
    pub fn parse_schema(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            let (line, column) = line_column(text, offset);
            let key = key_path_at(text, offset);
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message: plain_words(&key, e.message().trim()),
                key,
            }
        })?;
        Ok(config)
    }

    /// Every problem of values that parse but are not usable, at once.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut range = |key: &str, value: u64, min: u64, max: u64| {
            if value < min || value > max {
                let message = if max == u64::MAX {
                    format!("must be at least {min}")
                } else {
                    format!("must be between {min} and {max}")
                };
                out.push(Problem::new(key, message));
            }
        };
        range("nodes.max_nodes", self.nodes.max_nodes as u64, 1, 1024);
        let max_timeout = limits::NODE_INVOKE_MAX_TIMEOUT.as_millis() as u64;
        range(
            "nodes.invoke_timeout_ms",
            self.nodes.invoke_timeout_ms,
            1,
            max_timeout,
        );
        range(
            "agent.max_concurrent",
            self.agent.max_concurrent as u64,
            1,
            64,
        );
        range(
            "agent.max_tool_iterations",
            self.agent.max_tool_iterations as u64,
            1,
            100,
        );
        range("agent.queue_cap", self.agent.queue_cap as u64, 1, 1000);
        range(
            "agent.run_timeout_secs",
            self.agent.run_timeout_secs,
            1,
            u64::MAX,
        );
        range(
            "gateway.max_connections",
            self.gateway.max_connections as u64,
            1,
            u64::MAX,
        );
        range("history.step_s", self.history.step_s, 1, 3600);
        range(
            "session.retention_days",
            self.session.retention_days,
            0,
            36_500,
        );
        range(
            "session.max_turns_per_session",
            self.session.max_turns_per_session,
            0,
            1_000_000,
        );
        if self.history.slots() > limits::MAX_HISTORY_SLOTS {
            out.push(Problem::new(
                "history.hours",
                format!(
                    "{} h at one sample per {} s is {} samples per sensor field; at most {} fit",
                    self.history.hours,
                    self.history.step_s,
                    self.history.slots(),
                    limits::MAX_HISTORY_SLOTS
                ),
            ));
        }
        if let Err(m) = parse_bind(&self.gateway.bind) {
            out.push(Problem::new("gateway.bind", m));
        }
        if let Err((key, message)) = self.channels.telegram.check() {
            out.push(Problem::new(key, message));
        }
        out
    }

    /// Locate problems in the file's text (`file:line:column` where the key
    /// is written).
    pub fn locate(text: &str, path: &Path, problems: Vec<Problem>) -> Vec<ConfigError> {
        if problems.is_empty() {
            return Vec::new();
        }
        // Parsed once for all of them (the text parsed before, so this holds).
        let doc = toml::de::DeTable::parse(text).ok();
        problems
            .into_iter()
            .map(
                |p| match doc.as_ref().and_then(|d| locate_key(d.get_ref(), &p.key)) {
                    Some(offset) => {
                        let (line, column) = line_column(text, offset);
                        ConfigError::Invalid {
                            path: path.to_owned(),
                            line,
                            column,
                            key: p.key,
                            message: p.message,
                        }
                    }
                    None => ConfigError::Semantic {
                        path: path.to_owned(),
                        key: p.key,
                        message: p.message,
                    },
                },
            )
            .collect()
    }
}

/// A value that parses but cannot be used, with the dotted key path
/// (`board.devices[1].pin`) it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path; `[i]` indexes an array of tables.
    pub key: String,
    /// What is wrong, in the config's words.
    pub message: String,
}

impl Problem {
    /// A problem at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Byte offset in the parsed document where the deepest existing part of
/// `key` (`a.b[2].c`) is written: the key itself, or the table that would
/// hold it.
fn locate_key(doc: &toml::de::DeTable<'_>, key: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let mut table: &DeTable<'_> = doc;
    let mut found: Option<usize> = None;
    for part in key.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some((k, v)) = table.get_key_value(name) else {
            break;
        };
        found = Some(k.span().start);
        let value = match (v.get_ref(), index) {
            (DeValue::Array(items), Some(i)) => match items.get(i) {
                Some(item) => {
                    found = Some(item.span().start);
                    item.get_ref()
                }
                None => break,
            },
            (other, _) => other,
        };
        match value {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    found
}

/// A schema error in the config's words, not Rust's: "expected u16"
/// becomes "expected a port number 1–65535" for a port.
fn plain_words(key: &str, message: &str) -> String {
    let Some((head, expected)) = message.rsplit_once("expected ") else {
        return message.to_owned();
    };
    let word = expected.trim_end_matches(|c: char| !c.is_alphanumeric());
    let plain = match word {
        "u16" if key.ends_with("port") => "a port number 1–65535",
        "u8" => "a whole number 0–255",
        "u16" => "a whole number 0–65535",
        "u32" => "a whole number 0–4294967295",
        "u64" | "usize" => "a whole number (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a sequence" => "a list, e.g. [\"a\", \"b\"]",
        "a map" => "a table",
        w if w.starts_with("struct ") => "a table",
        _ => return message.to_owned(),
    };
    format!("{head}expected {plain}")
}

/// The text of a config file.
fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Resolve a bind value to an address: `loopback`, `lan` or a literal IP.
pub fn parse_bind(bind: &str) -> Result<IpAddr, String> {
    match bind {
        "loopback" => Ok(IpAddr::from([127, 0, 0, 1])),
        "lan" => Ok(IpAddr::from([0, 0, 0, 0])),
        other => other
            .parse()
            .map_err(|_| format!("{other:?} is not loopback, lan or an IP address")),
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// The dotted key path at a byte offset: the nearest table header above it
/// plus the key on that line.
fn key_path_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[line_start..].lines().next().unwrap_or("");
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|h| h.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
        .filter(|t| !t.is_empty());
    let trimmed = line.trim();
    let key = if trimmed.starts_with('[') {
        Some(
            trimmed
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned(),
        )
    } else {
        trimmed
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_owned())
    }
    // `= 1` or `[]` names no key: fall back to the table or the document.
    .filter(|k| !k.is_empty());
    match (table, key) {
        (_, Some(k)) if trimmed.starts_with('[') => k,
        (Some(t), Some(k)) => format!("{t}.{k}"),
        (None, Some(k)) => k,
        (Some(t), None) => t,
        (None, None) => "(document)".into(),
    }
}

/// The state directory of the packaged system service (`systemd/pinclaw.service`). The
/// CLI falls back to its token when the default local gateway is called.
pub const SERVICE_STATE_DIR: &str = "/var/lib/pinclaw";

/// The packaged service's config file (`pinclaw doctor` checks it when no
/// other is given).
pub const SERVICE_CONFIG: &str = "/etc/pinclaw/pinclaw.toml";

/// The default state directory.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PINCLAW_STATE_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("pinclaw");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/pinclaw"),
        None => PathBuf::from(SERVICE_STATE_DIR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("t.toml"))
    }

    #[test]
    fn defaults_and_example_parse() {
        let c = parse("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.gateway.port, DEFAULT_PORT);
        assert_eq!(c.gateway.auth.mode, AuthMode::Token);
        let example = include_str!("../config/pinclaw.toml");
        parse(example).unwrap_or_else(|e| panic!("example config: {e}"));
    }

    /// The README's path to a first model works by copy and paste: its
    /// provider block at the end of the example config, `model` set in the
    /// example's `[agent]` table.
    #[test]
    fn the_readme_provider_snippet_pastes_into_the_example_config() {
        let readme = include_str!("../README.md");
        let models = &readme[readme.find("## Models").unwrap_or(0)..];
        let block = models
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .unwrap_or_default();
        assert!(block.contains("[[providers]]"), "{block}");
        let example = include_str!("../config/pinclaw.toml").replace(
            "# model = \"openai/gpt-4o-mini\"",
            "model = \"openai/gpt-4o-mini\"",
        );
        let pasted = format!("{example}\n{block}");
        let c = parse(&pasted).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.agent.model.as_deref(), Some("openai/gpt-4o-mini"));
        assert_eq!(c.providers.len(), 1);
    }

    #[test]
    fn unknown_key_names_file_line_column_and_path() {
        let err =
            parse("[gateway]\nport = 1\n\n[gateway.auth]\nmode = \"token\"\ntokn = \"x\"\n").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.starts_with("t.toml:6:1: gateway.auth.tokn: unknown field `tokn`"),
            "{text}"
        );
    }

    #[test]
    fn wrong_type_and_bad_values_are_specific() {
        let text = parse("[gateway]\nport = \"high\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(text.starts_with("t.toml:2:8: gateway.port:"), "{text}");
        let text = parse("[gateway]\nbind = \"moon\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            text.contains("gateway.bind") && text.contains("moon"),
            "{text}"
        );
        let text = parse("[gateway.auth]\nmode = \"magic\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(text.starts_with("t.toml:2:8: gateway.auth.mode:"), "{text}");
    }

    #[test]
    fn a_line_without_a_key_names_its_table_or_the_document() {
        // Found by fuzz/config_toml: these gave an empty key path
        // ("t.toml:1:1: : …").
        let text = |t: &str| parse(t).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text(" = 1\n").starts_with("t.toml:1:"),
            "{}",
            text(" = 1\n")
        );
        assert!(
            text(" = 1\n").contains(": (document): "),
            "{}",
            text(" = 1\n")
        );
        assert!(
            text("[gateway]\n= 1\n").contains(": gateway: "),
            "{}",
            text("[gateway]\n= 1\n")
        );
        assert!(text("[]\n").contains(": (document): "), "{}", text("[]\n"));
        let t = text("[\r\nport ]\n");
        assert!(
            t.starts_with("t.toml:") && t.contains(": (document): "),
            "{t}"
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let c =
            parse("[gateway.auth]\ntoken = \"s3cret-value\"\n").unwrap_or_else(|e| panic!("{e}"));
        let json = serde_json::to_string(&c).unwrap_or_default();
        assert!(
            !json.contains("s3cret-value") && json.contains("<redacted>"),
            "{json}"
        );
        assert!(!format!("{c:?}").contains("s3cret-value"));
    }
}
