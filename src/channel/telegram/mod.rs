//! Telegram: one bot account over the Bot API with long polling (works
//! behind any home router, no port forwarding).
//!
//! - [`poller`]: `getUpdates` on its own thread, the offset moved only past
//!   updates the hub made durable, backoffs by error kind, and a watchdog
//!   that restarts a stuck poller and says so in the status;
//! - [`sender`]: replies, typing and progress on another thread, in order;
//! - [`update`]: Telegram updates → inbound messages (mentions, topics);
//! - [`format`]: Markdown → Telegram HTML, split into messages;
//! - [`api`]: the HTTP calls and their error kinds (the token redacted);
//! - [`config`]: the `channels.telegram` settings.

pub mod api;
pub mod config;
pub mod format;
pub mod poller;
pub mod sender;
pub mod update;

use std::sync::{Arc, Mutex, MutexGuard};

pub use config::TelegramConfig;

use self::api::BotApi;
use self::update::BotIdentity;
use super::access::Rules;
use super::status::{AccountStatus, Lifecycle};
use super::{Activity, BoxFuture, Channel, Delivered, DeliveryError, Hub, Outbound, Target};

/// The only account id (one bot per gateway for now).
pub const ACCOUNT: &str = "default";

/// The state a Telegram account reports, updated by its threads.
#[derive(Default)]
pub(crate) struct Runtime {
    pub status: AccountStatus,
    pub bot: Option<BotIdentity>,
}

/// One Telegram bot.
pub struct TelegramChannel {
    config: TelegramConfig,
    rules: Rules,
    /// `None`: the token could not be read (the account reports why).
    api: Option<BotApi>,
    runtime: Mutex<Runtime>,
    poller: poller::Control,
    sender: sender::Sender,
}

impl TelegramChannel {
    /// The bot of `config` (not started). A token that cannot be read does
    /// not stop the gateway: the account reports itself blocked, saying why.
    pub fn new(config: TelegramConfig) -> Arc<Self> {
        let mut status = AccountStatus {
            account_id: ACCOUNT.to_owned(),
            enabled: config.enabled,
            mode: "polling",
            dm_policy: config.dm_policy.as_str(),
            allow_from: config
                .allow_from
                .iter()
                .map(|e| match e {
                    super::access::AllowEntry::Id(id) => id.to_string(),
                    super::access::AllowEntry::Any(s) => s.clone(),
                })
                .collect(),
            ..AccountStatus::default()
        };
        let api = match config.token() {
            Ok(token) => {
                status.configured = true;
                status.token_source = token.source;
                Some(BotApi::new(&config.api_root, token.secret))
            }
            Err(why) => {
                status.token_source = "none";
                status.lifecycle = Lifecycle::Blocked;
                status.last_error = Some(why);
                None
            }
        };
        Arc::new(Self {
            rules: config.rules(),
            config,
            api,
            runtime: Mutex::new(Runtime { status, bot: None }),
            poller: poller::Control::default(),
            sender: sender::Sender::default(),
        })
    }

    pub(crate) fn runtime(&self) -> MutexGuard<'_, Runtime> {
        self.runtime.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `[channels.telegram]` settings.
    pub fn config(&self) -> &TelegramConfig {
        &self.config
    }

    /// The store key of this account's cursor.
    pub fn cursor_key(&self) -> String {
        format!("telegram:{ACCOUNT}")
    }
}

impl Channel for TelegramChannel {
    fn id(&self) -> &'static str {
        "telegram"
    }

    fn label(&self) -> &'static str {
        "Telegram"
    }

    fn account(&self) -> &str {
        ACCOUNT
    }

    fn start(self: Arc<Self>, hub: Arc<Hub>) {
        let Some(api) = self.api.clone() else {
            tracing::error!(
                "Telegram is enabled but cannot start: {}",
                self.runtime().status.last_error.clone().unwrap_or_default()
            );
            return;
        };
        {
            let mut rt = self.runtime();
            rt.status.running = true;
            rt.status.lifecycle = Lifecycle::Starting;
            rt.status.last_start_at = Some(crate::ids::now_ms());
        }
        self.sender.start(self.clone(), api.clone());
        poller::start(self, api, hub);
    }

    fn stop(&self) {
        self.poller.stop();
        self.sender.stop();
        let mut rt = self.runtime();
        if rt.status.lifecycle != Lifecycle::Blocked {
            rt.status.lifecycle = Lifecycle::Stopped;
        }
        rt.status.running = false;
        rt.status.connected = false;
        rt.status.last_stop_at = Some(crate::ids::now_ms());
    }

    fn status(&self) -> AccountStatus {
        let rt = self.runtime();
        let mut status = rt.status.clone();
        status.restart_count = self.poller.restarts();
        if let Some(bot) = &rt.bot {
            status.name = Some(format!("@{}", bot.username));
            status.probe = Some(serde_json::json!({
                "ok": true,
                "bot": {"id": bot.id, "username": bot.username},
            }));
        }
        status
    }

    fn rules(&self) -> &Rules {
        &self.rules
    }

    fn target(&self, to: &str, thread: Option<&str>) -> Result<Target, String> {
        parse_target(to, thread)
    }

    fn deliver(&self, message: Outbound) -> BoxFuture<'_, Result<Delivered, DeliveryError>> {
        Box::pin(self.sender.deliver(message))
    }

    fn activity(&self, target: &Target, activity: Activity) {
        self.sender.activity(target, activity);
    }
}

/// A Telegram send target: a numeric chat id, `@channelusername`, or
/// `<chatId>:topic:<topicId>`; `thread` names a forum topic too.
pub fn parse_target(to: &str, thread: Option<&str>) -> Result<Target, String> {
    let to = to.trim();
    let (chat, topic) = match to.split_once(":topic:") {
        Some((chat, topic)) => (chat, Some(topic)),
        None => (to, thread.map(str::trim).filter(|t| !t.is_empty())),
    };
    let numeric = chat.parse::<i64>().is_ok();
    let username = chat.strip_prefix('@').is_some_and(|u| {
        (4..=32).contains(&u.len()) && u.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if !numeric && !username {
        return Err(format!(
            "{to:?} is not a Telegram chat: use a numeric chat id (a user's id for a DM), @channelname, or <chatId>:topic:<topicId>"
        ));
    }
    if let Some(t) = topic
        && t.parse::<i64>().is_err()
    {
        return Err(format!("topic {t:?} is not a numeric forum topic id"));
    }
    Ok(Target {
        chat: chat.to_owned(),
        thread: topic.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_targets() {
        assert_eq!(
            parse_target("123456789", None),
            Ok(Target {
                chat: "123456789".into(),
                thread: None
            })
        );
        assert_eq!(
            parse_target("-1001234567890:topic:3", None).map(|t| t.thread),
            Ok(Some("3".into()))
        );
        assert_eq!(
            parse_target("-100", Some("7")).map(|t| t.thread),
            Ok(Some("7".into()))
        );
        assert!(parse_target("@pinclaw_news", None).is_ok());
        assert!(parse_target("bob", None).is_err());
        assert!(parse_target("-100:topic:x", None).is_err());
    }
}
