//! Telegram `Update` objects (outside input) → inbound messages: who wrote,
//! where (DM, group, forum topic), whether the bot was mentioned or
//! replied to, and what (text, a command, or something not handled).
//! Anything malformed is skipped with its `update_id` so the offset still
//! moves past it.

use serde_json::Value;

use crate::channel::{Content, Conversation, Inbound, Target};

/// Who the bot is (from `getMe`), for mentions and replies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BotIdentity {
    /// The bot's user id.
    pub id: i64,
    /// Its @username, without the `@`.
    pub username: String,
}

/// One update: its id, and the message in it if there is one to handle.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// `update_id` (the offset moves past it in any case).
    pub update_id: i64,
    /// The message, or why there is none.
    pub message: Result<Inbound, &'static str>,
}

/// Longest text taken from one message (Telegram's own limit is 4096).
const MAX_TEXT_CHARS: usize = 16 * 1024;

/// Parse the `result` of `getUpdates`. Entries without a numeric
/// `update_id` cannot be acknowledged individually and are dropped (the
/// offset moves past the largest id seen).
pub fn parse_updates(result: &Value, bot: &BotIdentity) -> Vec<Parsed> {
    let Some(updates) = result.as_array() else {
        return Vec::new();
    };
    updates
        .iter()
        .filter_map(|u| {
            let update_id = u["update_id"].as_i64()?;
            Some(Parsed {
                update_id,
                message: parse_message(update_id, &u["message"], bot),
            })
        })
        .collect()
}

fn parse_message(update_id: i64, m: &Value, bot: &BotIdentity) -> Result<Inbound, &'static str> {
    if !m.is_object() {
        return Err("not a message update");
    }
    let from = &m["from"];
    let sender = from["id"].as_i64().ok_or("message without a sender")?;
    if from["is_bot"].as_bool() == Some(true) {
        return Err("message from a bot");
    }
    let chat = &m["chat"];
    let chat_id = chat["id"].as_i64().ok_or("message without a chat")?;
    let conversation_kind = chat["type"].as_str().unwrap_or("");
    let text = m["text"].as_str().or_else(|| m["caption"].as_str());
    let text: Option<String> = text.map(|t| t.chars().take(MAX_TEXT_CHARS).collect());
    let (conversation, thread) = match conversation_kind {
        "private" => (Conversation::Direct, None),
        "group" | "supergroup" => {
            let mentioned = mentions(m, text.as_deref(), bot);
            // Forum topics get their own session; the General topic (id 1)
            // carries no thread id on its messages.
            let thread = if chat["is_forum"].as_bool() == Some(true) {
                match (
                    m["is_topic_message"].as_bool(),
                    m["message_thread_id"].as_i64(),
                ) {
                    (Some(true), Some(t)) => Some(t.to_string()),
                    _ => Some(GENERAL_TOPIC.to_owned()),
                }
            } else {
                None
            };
            (Conversation::Group { mentioned }, thread)
        }
        _ => return Err("not a private or group chat"),
    };
    // A photo with a caption is still a photo: it is named, rather than
    // its caption answered alone.
    let content = match text {
        Some(t) if m["text"].is_string() => command(&t, bot).unwrap_or(Content::Text(t)),
        _ => Content::Unsupported(media_kind(m)),
    };
    Ok(Inbound {
        event_id: update_id.to_string(),
        sender: sender.to_string(),
        sender_label: sender_label(from),
        target: Target {
            chat: chat_id.to_string(),
            thread,
        },
        conversation,
        content,
    })
}

/// The General topic of a forum: sends omit its thread id.
pub const GENERAL_TOPIC: &str = "1";

fn sender_label(from: &Value) -> String {
    let first = from["first_name"].as_str().unwrap_or("").trim();
    let label = match (first, from["username"].as_str()) {
        ("", Some(user)) => format!("@{user}"),
        (first, Some(user)) => format!("{first} (@{user})"),
        ("", None) => from["id"].as_i64().unwrap_or(0).to_string(),
        (first, None) => first.to_owned(),
    };
    label.chars().take(64).collect()
}

/// A `/command` (with an optional `@botname`, which must be ours).
fn command(text: &str, bot: &BotIdentity) -> Option<Content> {
    let first = text.split_whitespace().next()?;
    let name = first.strip_prefix('/')?;
    let (name, addressee) = match name.split_once('@') {
        Some((n, a)) => (n, Some(a)),
        None => (name, None),
    };
    if addressee.is_some_and(|a| !a.eq_ignore_ascii_case(&bot.username)) {
        return None;
    }
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some(Content::Command {
        name: name.to_ascii_lowercase(),
        text: text.to_owned(),
    })
}

/// Whether a group message is addressed to the bot: `@botname` in the
/// text, a text mention of the bot, a command for it, or a reply to one of
/// its messages.
fn mentions(m: &Value, text: Option<&str>, bot: &BotIdentity) -> bool {
    let replied = m["reply_to_message"]["from"]["id"].as_i64() == Some(bot.id);
    let named = !bot.username.is_empty()
        && text.is_some_and(|t| {
            let needle = format!("@{}", bot.username.to_ascii_lowercase());
            let lower = t.to_ascii_lowercase();
            lower.match_indices(&needle).any(|(at, _)| {
                !lower[at + needle.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        });
    let text_mention = m["entities"].as_array().is_some_and(|entities| {
        entities
            .iter()
            .any(|e| e["type"] == "text_mention" && e["user"]["id"].as_i64() == Some(bot.id))
    });
    replied || named || text_mention
}

fn media_kind(m: &Value) -> &'static str {
    const KINDS: [(&str, &str); 10] = [
        ("photo", "a photo"),
        ("voice", "a voice message"),
        ("audio", "audio"),
        ("video", "a video"),
        ("video_note", "a video message"),
        ("document", "a file"),
        ("sticker", "a sticker"),
        ("animation", "an animation"),
        ("location", "a location"),
        ("contact", "a contact"),
    ];
    KINDS
        .iter()
        .find(|(key, _)| !m[*key].is_null())
        .map_or("something other than text", |(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bot() -> BotIdentity {
        BotIdentity {
            id: 999,
            username: "pi_bot".into(),
        }
    }

    fn one(update: Value) -> Result<Inbound, &'static str> {
        let parsed = parse_updates(&json!([update]), &bot());
        assert_eq!(parsed.len(), 1);
        parsed
            .into_iter()
            .next()
            .map(|p| p.message)
            .unwrap_or(Err("none"))
    }

    #[test]
    fn direct_messages_commands_and_media() {
        let dm = one(json!({"update_id": 5, "message": {"message_id": 1, "from": {"id": 42, "first_name": "Ann", "username": "ann"}, "chat": {"id": 42, "type": "private"}, "text": "hello"}}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dm.event_id, "5");
        assert_eq!(dm.sender, "42");
        assert_eq!(dm.sender_label, "Ann (@ann)");
        assert_eq!(dm.conversation, Conversation::Direct);
        assert_eq!(dm.content, Content::Text("hello".into()));
        let cmd = one(json!({"update_id": 6, "message": {"from": {"id": 42}, "chat": {"id": 42, "type": "private"}, "text": "/New@pi_bot now"}}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            cmd.content,
            Content::Command {
                name: "new".into(),
                text: "/New@pi_bot now".into()
            }
        );
        let other_bot = one(json!({"update_id": 7, "message": {"from": {"id": 42}, "chat": {"id": 42, "type": "private"}, "text": "/new@other_bot"}}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(other_bot.content, Content::Text(_)));
        let photo = one(json!({"update_id": 8, "message": {"from": {"id": 42}, "chat": {"id": 42, "type": "private"}, "photo": [{}], "caption": "look"}}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(photo.content, Content::Unsupported("a photo"));
    }

    #[test]
    fn groups_mentions_and_topics() {
        let plain = one(json!({"update_id": 1, "message": {"from": {"id": 42}, "chat": {"id": -100, "type": "supergroup"}, "text": "hi all"}}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plain.conversation, Conversation::Group { mentioned: false });
        let named = one(json!({"update_id": 2, "message": {"from": {"id": 42}, "chat": {"id": -100, "type": "supergroup"}, "text": "hey @Pi_Bot, lights?"}}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(named.conversation, Conversation::Group { mentioned: true });
        let longer = one(json!({"update_id": 3, "message": {"from": {"id": 42}, "chat": {"id": -100, "type": "group"}, "text": "@pi_bot_fan"}}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            longer.conversation,
            Conversation::Group { mentioned: false }
        );
        let reply = one(json!({"update_id": 4, "message": {"from": {"id": 42}, "chat": {"id": -100, "type": "group"}, "text": "and now?", "reply_to_message": {"from": {"id": 999}}}}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply.conversation, Conversation::Group { mentioned: true });
        let topic = one(json!({"update_id": 5, "message": {"from": {"id": 42}, "chat": {"id": -100, "type": "supergroup", "is_forum": true}, "is_topic_message": true, "message_thread_id": 7, "text": "x"}}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(topic.target.thread.as_deref(), Some("7"));
        let general = one(json!({"update_id": 6, "message": {"from": {"id": 42}, "chat": {"id": -100, "type": "supergroup", "is_forum": true}, "text": "x"}}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(general.target.thread.as_deref(), Some(GENERAL_TOPIC));
    }

    #[test]
    fn malformed_updates_are_skipped_not_fatal() {
        let parsed = parse_updates(
            &json!([{"update_id": 1}, {"nope": true}, {"update_id": 3, "message": {"chat": {"id": 1, "type": "private"}}}, {"update_id": 4, "message": {"from": {"id": 1, "is_bot": true}, "chat": {"id": 1, "type": "private"}, "text": "x"}}]),
            &bot(),
        );
        assert_eq!(parsed.len(), 3);
        assert!(parsed.iter().all(|p| p.message.is_err()));
        assert!(parse_updates(&json!({"not": "an array"}), &bot()).is_empty());
    }
}
