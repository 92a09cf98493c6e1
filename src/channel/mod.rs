//! Chat channels: where people talk to the hub from their phone.
//!
//! A [`Channel`] is one account on one chat service (a Telegram bot). It
//! turns what arrives into [`Inbound`] messages for the [`Hub`], and
//! delivers what the hub gives it. The hub is shared by every channel:
//! who may talk ([`access`]: DM policy and pairing), inbound routing
//! (message → session key, honouring `session.dm_scope` → the session's
//! lane), replies back to the chat (and topic) a message came from, the
//! durable outbound ledger, typing and progress while a run works, and
//! the `channels.status` report ([`status`]).
//!
//! Layering: channels know the session layer (they submit messages) and
//! the store; the gateway serves their methods; the agent knows nothing of
//! channels (it reaches them only through the event sink).

pub mod access;
pub mod delivery;
pub mod hub;
pub mod pairing;
pub mod progress;
pub mod status;
pub mod telegram;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use hub::Hub;
pub use status::AccountStatus;

/// A boxed future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a message is, or goes: a chat on an account, maybe a topic in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Chat id.
    pub chat: String,
    /// Forum topic / thread id.
    pub thread: Option<String>,
}

/// Who wrote a message and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversation {
    /// A direct message.
    Direct,
    /// A group chat.
    Group {
        /// Whether the bot was mentioned (or replied to).
        mentioned: bool,
    },
}

/// A message that arrived on a channel.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// A stable id of this arrival (Telegram: the `update_id`), unique per
    /// account: a message delivered twice is recognised by it.
    pub event_id: String,
    /// The sender's id on the channel.
    pub sender: String,
    /// A label for the sender (name, @username).
    pub sender_label: String,
    /// Where it was written (and where the reply goes).
    pub target: Target,
    /// Direct or group.
    pub conversation: Conversation,
    /// What arrived.
    pub content: Content,
}

/// What an inbound message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Text for the assistant.
    Text(String),
    /// A command (`/new`): its name lowercased, without the slash and any
    /// `@botname`, and the whole text as written (an unknown command is
    /// passed on as text).
    Command {
        /// `new`, `status`, …
        name: String,
        /// The text as written.
        text: String,
    },
    /// Something not handled (photo, voice, file…), named.
    Unsupported(&'static str),
}

/// How the hub answered an inbound message (for the channel's records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Submitted to a session's lane as this run.
    Submitted(String),
    /// Answered directly (a command, a pairing code, a polite refusal).
    Answered,
    /// Ignored on purpose (policy, a group message without a mention).
    Ignored(&'static str),
    /// Seen before (redelivered after a restart): nothing done again.
    Duplicate,
}

/// A message to deliver on a channel.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Where.
    pub target: Target,
    /// Markdown text; the channel formats and splits it.
    pub text: String,
    /// Parts of a split message already delivered by an earlier attempt.
    pub parts_sent: u32,
}

/// What a delivery produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The id of the (last) message sent.
    pub message_id: String,
}

/// Why a delivery failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying later (network, rate limit, the service is down).
    #[error("{reason}")]
    Retry {
        /// Why, in one line.
        reason: String,
        /// Parts of a split message delivered before the failure (the
        /// retry starts after them).
        parts_sent: u32,
    },
    /// Retrying will not help (chat not found, bot blocked, bad request).
    #[error("{0}")]
    Rejected(String),
}

/// What a channel shows while a run works on a message from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// The assistant is working (typing indicator).
    Typing,
    /// A progress line (a tool being called, e.g. "reading room…").
    Progress(String),
    /// The run is over: clear progress.
    Done,
}

/// One account on one chat service.
pub trait Channel: Send + Sync + 'static {
    /// Channel id (`telegram`).
    fn id(&self) -> &'static str;
    /// Human label (`Telegram`).
    fn label(&self) -> &'static str;
    /// Account id (`default`).
    fn account(&self) -> &str;
    /// Start receiving (spawns the channel's own tasks and threads); inbound
    /// messages go to `hub`.
    fn start(self: Arc<Self>, hub: Arc<Hub>);
    /// Stop receiving and sending.
    fn stop(&self);
    /// The account's state, for `channels.status` and `health`.
    fn status(&self) -> AccountStatus;
    /// Who may talk to it.
    fn rules(&self) -> &access::Rules;
    /// Where a `send` goes: `to` as the service names chats, optionally a
    /// thread (checked, not looked up).
    fn target(&self, to: &str, thread: Option<&str>) -> Result<Target, String>;
    /// Deliver one message (formatted and split by the channel).
    fn deliver(&self, message: Outbound) -> BoxFuture<'_, Result<Delivered, DeliveryError>>;
    /// Show activity in a chat (best effort, never retried).
    fn activity(&self, target: &Target, activity: Activity);
}
