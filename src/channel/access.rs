//! Who may talk to the hub on a channel: the DM policy (`pairing` |
//! `allowlist` | `open` | `disabled`), the group policy (`allowlist` |
//! `open` | `disabled`, with `require_mention` per group), and DM pairing
//! codes as OpenClaw makes them (8 characters without 0/O/1/I, an hour to
//! live, at most 3 pending per account).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who may send direct messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    /// Unknown senders get a pairing code; an operator approves them.
    #[default]
    Pairing,
    /// Only `allow_from` (and senders approved earlier).
    Allowlist,
    /// Anyone (`allow_from` must contain `"*"`).
    Open,
    /// No direct messages.
    Disabled,
}

impl DmPolicy {
    /// Config/wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DmPolicy::Pairing => "pairing",
            DmPolicy::Allowlist => "allowlist",
            DmPolicy::Open => "open",
            DmPolicy::Disabled => "disabled",
        }
    }
}

/// Which groups the bot answers in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupPolicy {
    /// Only the groups listed under `groups`.
    #[default]
    Allowlist,
    /// Any group (each still needs a mention unless configured otherwise).
    Open,
    /// No groups.
    Disabled,
}

/// One group's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupRule {
    /// Answer only messages that mention the bot (or reply to it).
    pub require_mention: bool,
}

impl Default for GroupRule {
    fn default() -> Self {
        Self {
            require_mention: true,
        }
    }
}

/// An `allow_from` entry: a numeric sender id, or `"*"` (anyone; only with
/// `dm_policy = "open"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AllowEntry {
    /// A sender id.
    Id(i64),
    /// `"*"`.
    Any(String),
}

/// By hand rather than `untagged`: a clear error in the config's words, and
/// a fraction of the code serde's buffering of untagged enums costs.
impl<'de> Deserialize<'de> for AllowEntry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entry;
        impl serde::de::Visitor<'_> for Entry {
            type Value = AllowEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a numeric user id or \"*\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<AllowEntry, E> {
                Ok(AllowEntry::Id(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<AllowEntry, E> {
                i64::try_from(v)
                    .map(AllowEntry::Id)
                    .map_err(|_| E::custom("user id out of range"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AllowEntry, E> {
                Ok(AllowEntry::Any(v.to_owned()))
            }
        }
        deserializer.deserialize_any(Entry)
    }
}

impl AllowEntry {
    /// Whether this entry admits `sender`.
    pub fn admits(&self, sender: &str) -> bool {
        match self {
            AllowEntry::Id(id) => id.to_string() == sender,
            AllowEntry::Any(s) => s == "*",
        }
    }
}

/// The access rules of one account.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Direct messages.
    pub dm: DmPolicy,
    /// Configured senders.
    pub allow_from: Vec<AllowEntry>,
    /// Groups.
    pub group: GroupPolicy,
    /// Per-group settings, by chat id.
    pub groups: BTreeMap<String, GroupRule>,
}

/// What to do with a message, before looking at its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Allow,
    /// An unknown sender under the pairing policy: answer with a code.
    Pair,
    /// Ignore it, for this reason (logged, counted).
    Deny(&'static str),
}

impl Rules {
    /// Decide a direct message from `sender`; `paired` = approved earlier.
    pub fn direct(&self, sender: &str, paired: bool) -> Verdict {
        let listed = self.allow_from.iter().any(|e| e.admits(sender));
        match self.dm {
            DmPolicy::Disabled => Verdict::Deny("direct messages are disabled"),
            DmPolicy::Open => Verdict::Allow,
            DmPolicy::Allowlist if listed || paired => Verdict::Allow,
            DmPolicy::Allowlist => Verdict::Deny("sender not in allow_from"),
            DmPolicy::Pairing if listed || paired => Verdict::Allow,
            DmPolicy::Pairing => Verdict::Pair,
        }
    }

    /// Decide a message in group `chat`; `mentioned` = the bot was
    /// mentioned or replied to.
    pub fn group(&self, chat: &str, mentioned: bool) -> Verdict {
        let rule = match (self.group, self.groups.get(chat)) {
            (GroupPolicy::Disabled, _) => return Verdict::Deny("groups are disabled"),
            (GroupPolicy::Allowlist, None) => return Verdict::Deny("group not in the allowlist"),
            (_, Some(rule)) => *rule,
            (GroupPolicy::Open, None) => GroupRule::default(),
        };
        if rule.require_mention && !mentioned {
            Verdict::Deny("not mentioned")
        } else {
            Verdict::Allow
        }
    }
}

/// The alphabet of pairing codes: no 0, O, 1 or I.
pub const CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A new 8-character pairing code.
pub fn new_code() -> String {
    crate::ids::random_bytes::<8>()
        .iter()
        .map(|b| char::from(CODE_ALPHABET[usize::from(b % 32)]))
        .collect()
}

/// Normalise a code typed by a person (case, spaces).
pub fn normalize_code(code: &str) -> String {
    code.trim().to_ascii_uppercase().replace([' ', '-'], "")
}

/// The one message an unknown sender gets.
pub fn pairing_message(channel: &str, sender: &str, code: &str) -> String {
    format!(
        "pinclaw: access not configured.\nYour {channel} user id: {sender}\nPairing code: {code}\n\nAsk the bot owner to approve with:\npinclaw pairing approve {channel} {code}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_unambiguous_alphabet() {
        for _ in 0..200 {
            let code = new_code();
            assert_eq!(code.len(), 8);
            assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{code}");
            assert!(!code.contains(['0', 'O', '1', 'I']));
        }
        assert_eq!(normalize_code(" abcd-efgh "), "ABCDEFGH");
    }

    #[test]
    fn dm_and_group_policies() {
        let mut rules = Rules {
            allow_from: vec![AllowEntry::Id(42)],
            ..Rules::default()
        };
        assert_eq!(rules.direct("42", false), Verdict::Allow);
        assert_eq!(rules.direct("7", false), Verdict::Pair);
        assert_eq!(rules.direct("7", true), Verdict::Allow);
        rules.dm = DmPolicy::Allowlist;
        assert!(matches!(rules.direct("7", false), Verdict::Deny(_)));
        rules.dm = DmPolicy::Disabled;
        assert!(matches!(rules.direct("42", false), Verdict::Deny(_)));
        rules.dm = DmPolicy::Open;
        assert_eq!(rules.direct("7", false), Verdict::Allow);

        assert!(
            matches!(rules.group("-100", true), Verdict::Deny(_)),
            "not listed"
        );
        rules.groups.insert("-100".into(), GroupRule::default());
        assert!(
            matches!(rules.group("-100", false), Verdict::Deny(_)),
            "no mention"
        );
        assert_eq!(rules.group("-100", true), Verdict::Allow);
        rules.groups.insert(
            "-200".into(),
            GroupRule {
                require_mention: false,
            },
        );
        assert_eq!(rules.group("-200", false), Verdict::Allow);
        rules.group = GroupPolicy::Open;
        assert_eq!(rules.group("-300", true), Verdict::Allow);
        rules.group = GroupPolicy::Disabled;
        assert!(matches!(rules.group("-200", true), Verdict::Deny(_)));
    }
}
