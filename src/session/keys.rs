//! Session keys, formed as OpenClaw forms them.
//!
//! - the main session: `agent:<agentId>:main`;
//! - direct messages by `dm_scope`: `main` (all DMs share the main session),
//!   `per-peer` → `agent:<agentId>:direct:<peer>`, `per-channel-peer` →
//!   `agent:<agentId>:<channel>:direct:<peer>`;
//! - groups: `agent:<agentId>:<channel>:group:<id>` (threads append
//!   `:thread:<id>`, Telegram forum topics `:topic:<id>`).
//!
//! Peer ids and channels are lowercased.

use serde::{Deserialize, Serialize};

/// The default agent id.
pub const DEFAULT_AGENT: &str = "main";
/// Longest session key accepted from a client.
pub const MAX_KEY_LEN: usize = 512;

/// How direct messages map to sessions (`session.dm_scope`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DmScope {
    /// Every DM goes to the main session.
    #[default]
    Main,
    /// One session per peer.
    PerPeer,
    /// One session per channel and peer.
    PerChannelPeer,
}

/// The main session of an agent.
pub fn main_key(agent_id: &str) -> String {
    format!("agent:{}:main", normalize(agent_id))
}

/// The session of a direct message from `peer` on `channel`.
pub fn dm_key(agent_id: &str, scope: DmScope, channel: &str, peer: &str) -> String {
    let agent = normalize(agent_id);
    match scope {
        DmScope::Main => main_key(&agent),
        DmScope::PerPeer => format!("agent:{agent}:direct:{}", normalize(peer)),
        DmScope::PerChannelPeer => format!(
            "agent:{agent}:{}:direct:{}",
            normalize(channel),
            normalize(peer)
        ),
    }
}

/// The session of a group chat, optionally a thread in it.
pub fn group_key(agent_id: &str, channel: &str, group: &str, thread: Option<&str>) -> String {
    let base = format!(
        "agent:{}:{}:group:{}",
        normalize(agent_id),
        normalize(channel),
        normalize(group)
    );
    match thread {
        Some(t) => format!("{base}:thread:{}", normalize(t)),
        None => base,
    }
}

/// Where an inbound channel message comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin<'a> {
    /// A direct message from `peer`.
    Direct {
        /// The sender's id on the channel.
        peer: &'a str,
    },
    /// A message in a group chat, optionally in a thread.
    Group {
        /// The group's id on the channel.
        id: &'a str,
        /// The thread id.
        thread: Option<&'a str>,
    },
    /// A message in a forum topic of a group (Telegram): its own session.
    Topic {
        /// The group's id on the channel.
        id: &'a str,
        /// The topic id.
        topic: &'a str,
    },
}

/// The session key of an inbound channel message, honouring
/// `session.dm_scope` for direct messages (groups always get their own).
pub fn inbound(scope: DmScope, channel: &str, origin: Origin<'_>) -> String {
    match origin {
        Origin::Direct { peer } => dm_key(DEFAULT_AGENT, scope, channel, peer),
        Origin::Group { id, thread } => group_key(DEFAULT_AGENT, channel, id, thread),
        Origin::Topic { id, topic } => format!(
            "{}:topic:{}",
            group_key(DEFAULT_AGENT, channel, id, None),
            normalize(topic)
        ),
    }
}

fn normalize(part: &str) -> String {
    part.trim().to_lowercase().replace(':', "_")
}

/// Validate and normalize a client-supplied session key. `main` and empty
/// mean the main session; bare names become `agent:main:<name>`.
pub fn resolve(key: Option<&str>) -> Result<String, String> {
    let key = key.map(str::trim).unwrap_or("");
    if key.len() > MAX_KEY_LEN {
        return Err(format!(
            "sessionKey is longer than {MAX_KEY_LEN} characters"
        ));
    }
    if key.chars().any(char::is_control) {
        return Err("sessionKey contains control characters".into());
    }
    Ok(match key {
        "" | "main" => main_key(DEFAULT_AGENT),
        k if k.starts_with("agent:") => k.to_owned(),
        k => format!("agent:{DEFAULT_AGENT}:{k}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_openclaw() {
        assert_eq!(main_key("main"), "agent:main:main");
        assert_eq!(
            dm_key("main", DmScope::Main, "telegram", "42"),
            "agent:main:main"
        );
        assert_eq!(
            dm_key("main", DmScope::PerPeer, "telegram", "Alice"),
            "agent:main:direct:alice"
        );
        assert_eq!(
            dm_key("main", DmScope::PerChannelPeer, "Telegram", "42"),
            "agent:main:telegram:direct:42"
        );
        assert_eq!(
            group_key("main", "telegram", "-1001234", Some("42")),
            "agent:main:telegram:group:-1001234:thread:42"
        );
        assert_eq!(resolve(None).as_deref(), Ok("agent:main:main"));
        assert_eq!(resolve(Some("main")).as_deref(), Ok("agent:main:main"));
        assert_eq!(
            resolve(Some("kitchen")).as_deref(),
            Ok("agent:main:kitchen")
        );
        assert_eq!(
            resolve(Some("agent:main:direct:bob")).as_deref(),
            Ok("agent:main:direct:bob")
        );
        assert!(resolve(Some(&"x".repeat(600))).is_err());
        let dm = Origin::Direct { peer: "42" };
        assert_eq!(inbound(DmScope::Main, "telegram", dm), "agent:main:main");
        assert_eq!(
            inbound(DmScope::PerPeer, "telegram", dm),
            "agent:main:direct:42"
        );
        assert_eq!(
            inbound(DmScope::PerChannelPeer, "telegram", dm),
            "agent:main:telegram:direct:42"
        );
        assert_eq!(
            inbound(
                DmScope::PerPeer,
                "telegram",
                Origin::Group {
                    id: "-100",
                    thread: Some("7")
                }
            ),
            "agent:main:telegram:group:-100:thread:7"
        );
        assert!(resolve(Some("a\nb")).is_err());
        assert_eq!(
            inbound(
                DmScope::Main,
                "telegram",
                Origin::Topic {
                    id: "-1001234567890",
                    topic: "3"
                }
            ),
            "agent:main:telegram:group:-1001234567890:topic:3"
        );
    }
}
