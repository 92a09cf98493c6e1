//! The hub every channel hands its messages to: access (DM policy,
//! pairing, groups), native commands, and routing into a session's lane
//! with the reply route kept on the run. An inbound message is durable
//! (in a session inbox or transcript, or its answer in the outbound
//! ledger) before [`Hub::receive`] returns, so a channel advances its
//! cursor only past messages that cannot be lost; a message delivered
//! twice is recognised by its event id and handled once.

use std::sync::{Arc, Mutex, OnceLock};

use super::access::Verdict;
use super::delivery::Delivery;
use super::progress::Progress;
use super::{AccountStatus, Channel, Content, Conversation, Handled, Inbound};
use crate::abort::Abort;
use crate::session::keys::{self, DmScope, Origin};
use crate::session::{EventSink, Sessions, Submission, SubmitError, Submitted};
use crate::store::{OutboxItem, PairingRequest, ReplyRoute, Store, StoreError};

/// Scopes of a message from an allowed channel sender: it may read and
/// switch what the board offers, like an operator with write access, and
/// nothing that needs `operator.admin`.
pub const SENDER_SCOPES: [&str; 2] = ["operator.read", "operator.write"];

/// A one-line summary of the hub for `/status` (model, board).
pub type About = Box<dyn Fn() -> String + Send + Sync>;

/// Why a batch of inbound messages could not be taken now (the channel
/// keeps its cursor and hands the batch again later).
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The store or the lanes are busy or closing.
    #[error("{0}")]
    Busy(String),
}

impl From<StoreError> for ReceiveError {
    fn from(e: StoreError) -> Self {
        ReceiveError::Busy(e.to_string())
    }
}

/// Shared by every channel: inbound routing, delivery, typing/progress.
pub struct Hub {
    pub(super) store: Store,
    dm_scope: DmScope,
    pub(super) channels: Vec<Arc<dyn Channel>>,
    sessions: OnceLock<Arc<Sessions>>,
    /// Where session changes are announced (the gateway's bus).
    announce: OnceLock<Arc<dyn EventSink>>,
    about: Mutex<Option<About>>,
    pub(super) delivery: Delivery,
    pub(super) progress: Progress,
    pub(super) stop: Abort,
}

impl Hub {
    /// A hub over `channels` (not started).
    pub fn new(store: Store, dm_scope: DmScope, channels: Vec<Arc<dyn Channel>>) -> Arc<Self> {
        Arc::new(Self {
            store,
            dm_scope,
            channels,
            sessions: OnceLock::new(),
            announce: OnceLock::new(),
            about: Mutex::new(None),
            delivery: Delivery::default(),
            progress: Progress::default(),
            stop: Abort::new(),
        })
    }

    /// Connect the hub to the session lanes (they are built after it, as
    /// it is one of their event sinks), the bus session changes are
    /// announced on, and what `/status` says about the hub.
    pub fn attach(&self, sessions: Arc<Sessions>, announce: Arc<dyn EventSink>, about: About) {
        let _ = self.sessions.set(sessions);
        let _ = self.announce.set(announce);
        *self.about.lock().unwrap_or_else(|p| p.into_inner()) = Some(about);
    }

    /// Start every channel and its delivery task.
    pub fn start(self: &Arc<Self>) {
        for channel in &self.channels {
            tracing::info!(
                channel = channel.id(),
                account = channel.account(),
                "starting channel"
            );
            channel.clone().start(self.clone());
            tokio::spawn(super::delivery::run(self.clone(), channel.clone()));
        }
    }

    /// Stop every channel (shutdown).
    pub fn stop(&self) {
        self.stop.abort();
        for channel in &self.channels {
            channel.stop();
        }
    }

    /// The configured channels.
    pub fn channels(&self) -> &[Arc<dyn Channel>] {
        &self.channels
    }

    /// A channel account by ids.
    pub fn channel(&self, id: &str, account: &str) -> Option<&Arc<dyn Channel>> {
        self.channels
            .iter()
            .find(|c| c.id() == id && c.account() == account)
    }

    /// Every account's state as it is now (health state computed).
    pub fn statuses_now(&self) -> Vec<(&'static str, &'static str, AccountStatus)> {
        let now = crate::ids::now_ms();
        self.channels
            .iter()
            .map(|channel| {
                let mut status = channel.status();
                status.health_state = status.health_state(now);
                (channel.id(), channel.label(), status)
            })
            .collect()
    }

    /// The accounts that need attention, as `channel:account (state)`.
    pub fn degraded(&self) -> Vec<String> {
        self.statuses_now()
            .into_iter()
            .filter(|(_, _, s)| s.degraded())
            .map(|(id, _, s)| format!("{id}:{} ({})", s.account_id, s.health_state))
            .collect()
    }

    /// Every account's state, with its undelivered messages counted.
    pub async fn statuses(&self) -> Vec<(&'static str, &'static str, AccountStatus)> {
        let mut out = Vec::new();
        for (id, label, mut status) in self.statuses_now() {
            status.outbox_pending = self
                .store
                .outbox_count(id, &status.account_id)
                .await
                .unwrap_or(0);
            out.push((id, label, status));
        }
        out
    }

    fn sessions(&self) -> Result<&Arc<Sessions>, ReceiveError> {
        self.sessions
            .get()
            .ok_or_else(|| ReceiveError::Busy("the session lanes are not ready".into()))
    }

    /// Handle a batch of messages from `channel`, in order. Everything
    /// handled is durable when this returns `Ok`; on `Err` the messages
    /// before the failing one are handled (and recognised when handed
    /// again), the rest are not.
    pub async fn receive(
        &self,
        channel: &Arc<dyn Channel>,
        batch: Vec<Inbound>,
    ) -> Result<Vec<Handled>, ReceiveError> {
        let mut handled = Vec::with_capacity(batch.len());
        for message in batch {
            let outcome = self.handle(channel, message).await?;
            handled.push(outcome);
        }
        Ok(handled)
    }

    async fn handle(
        &self,
        channel: &Arc<dyn Channel>,
        message: Inbound,
    ) -> Result<Handled, ReceiveError> {
        let rules = channel.rules();
        let verdict = match message.conversation {
            Conversation::Direct => {
                let paired = self
                    .store
                    .channel_sender_allowed(channel.id(), channel.account(), &message.sender)
                    .await?;
                rules.direct(&message.sender, paired)
            }
            Conversation::Group { mentioned } => {
                let command = matches!(message.content, Content::Command { .. });
                rules.group(&message.target.chat, mentioned || command)
            }
        };
        match verdict {
            Verdict::Deny(why) => {
                tracing::debug!(
                    channel = channel.id(),
                    sender = %message.sender,
                    chat = %message.target.chat,
                    "message ignored: {why}"
                );
                Ok(Handled::Ignored(why))
            }
            Verdict::Pair => self.pair(channel, &message).await,
            Verdict::Allow => match message.content.clone() {
                Content::Unsupported(kind) => {
                    self.answer(
                        channel,
                        &message,
                        format!("Sorry, I can only read text for now (this was {kind})."),
                    )
                    .await
                }
                Content::Command { name, text } => {
                    self.command(channel, &message, &name, text).await
                }
                Content::Text(text) => self.submit(channel, &message, text).await,
            },
        }
    }

    /// The unique key of an inbound event: the run id of the message and
    /// its dedupe key.
    fn event_key(channel: &Arc<dyn Channel>, message: &Inbound) -> String {
        format!(
            "{}:{}:{}",
            channel.id(),
            channel.account(),
            message.event_id
        )
    }

    fn route(channel: &Arc<dyn Channel>, message: &Inbound) -> ReplyRoute {
        ReplyRoute {
            channel: channel.id().to_owned(),
            account: channel.account().to_owned(),
            to: message.target.chat.clone(),
            thread: message.target.thread.clone(),
        }
    }

    /// The session a message goes to (`session.dm_scope` for DMs; every
    /// group and forum topic its own).
    pub fn session_key(&self, channel: &Arc<dyn Channel>, message: &Inbound) -> String {
        let origin = match (&message.conversation, &message.target.thread) {
            (Conversation::Direct, _) => Origin::Direct {
                peer: &message.sender,
            },
            (Conversation::Group { .. }, Some(topic)) => Origin::Topic {
                id: &message.target.chat,
                topic,
            },
            (Conversation::Group { .. }, None) => Origin::Group {
                id: &message.target.chat,
                thread: None,
            },
        };
        keys::inbound(self.dm_scope, channel.id(), origin)
    }

    /// Answer a message outside any session (once, even if it arrives
    /// again).
    async fn answer(
        &self,
        channel: &Arc<dyn Channel>,
        message: &Inbound,
        text: String,
    ) -> Result<Handled, ReceiveError> {
        let item = OutboxItem::new(Self::route(channel, message), text, "notice", None);
        let event = Self::event_key(channel, message);
        match self.store.outbox_push(vec![item], Some(event)).await {
            Ok(Some(_)) => Ok(Handled::Answered),
            Ok(None) => Ok(Handled::Duplicate),
            Err(StoreError::Full(why)) => {
                tracing::warn!(channel = channel.id(), "an answer was not queued: {why}");
                Ok(Handled::Ignored("the outbound ledger is full"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// An unknown sender under the pairing policy: a code the first time,
    /// nothing after that (nor beyond the pending cap).
    async fn pair(
        &self,
        channel: &Arc<dyn Channel>,
        message: &Inbound,
    ) -> Result<Handled, ReceiveError> {
        let now = crate::ids::now_ms();
        let request = PairingRequest {
            channel: channel.id().to_owned(),
            account: channel.account().to_owned(),
            sender: message.sender.clone(),
            sender_label: message.sender_label.clone(),
            code: super::access::new_code(),
            created_at: now,
            last_seen_at: now,
        };
        match self.store.pairing_touch(request).await? {
            Some((request, true)) => {
                tracing::info!(
                    channel = channel.id(),
                    sender = %message.sender,
                    "pairing requested (approve with: pinclaw pairing approve {} <code>)",
                    channel.id()
                );
                let text =
                    super::access::pairing_message(channel.id(), &message.sender, &request.code);
                self.answer(channel, message, text).await
            }
            Some((_, false)) => Ok(Handled::Ignored("pairing already requested")),
            None => Ok(Handled::Ignored("too many pending pairing requests")),
        }
    }

    /// Hand a message to its session's lane; the run carries the route its
    /// reply goes back on.
    async fn submit(
        &self,
        channel: &Arc<dyn Channel>,
        message: &Inbound,
        text: String,
    ) -> Result<Handled, ReceiveError> {
        let sessions = self.sessions()?;
        let text = match message.conversation {
            Conversation::Group { .. } => format!("{}: {text}", message.sender_label),
            Conversation::Direct => text,
        };
        let run_id = Self::event_key(channel, message);
        let submission = Submission {
            session_key: self.session_key(channel, message),
            run_id: run_id.clone(),
            message: text,
            mode: None,
            scopes: SENDER_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            route: Some(Self::route(channel, message)),
        };
        match sessions.submit(submission).await {
            Ok(Submitted::New(_)) => {
                self.progress
                    .track(&run_id, channel.clone(), message.target.clone());
                Ok(Handled::Submitted(run_id))
            }
            Ok(Submitted::Retry(_)) | Err(SubmitError::KeyReused(_)) => Ok(Handled::Duplicate),
            Err(SubmitError::QueueFull(n)) => {
                self.answer(
                    channel,
                    message,
                    format!(
                        "Too many messages are waiting ({n}); this one was not taken. Send it again after the current answer."
                    ),
                )
                .await
            }
            Err(SubmitError::Busy) => Err(ReceiveError::Busy(SubmitError::Busy.to_string())),
            Err(SubmitError::Store(e)) => Err(e.into()),
        }
    }

    /// A native command.
    async fn command(
        &self,
        channel: &Arc<dyn Channel>,
        message: &Inbound,
        name: &str,
        text: String,
    ) -> Result<Handled, ReceiveError> {
        let key = self.session_key(channel, message);
        let reply = match name {
            "start" => format!(
                "Hi {}! I am your pinclaw hub. Write to me in plain words; /help lists the commands.",
                message.sender_label
            ),
            "help" => HELP.to_owned(),
            "new" | "reset" => {
                // A redelivered /new resets again: harmless, as nothing of
                // its chat can have been handled after it.
                self.sessions()?.abort(&key, None).await;
                self.store.clear_session(&key, true).await?;
                if let Some(announce) = self.announce.get() {
                    announce.session_changed(&key);
                }
                "Started a fresh session.".to_owned()
            }
            "stop" => {
                let aborted = self.sessions()?.abort(&key, None).await;
                if aborted.is_empty() {
                    "Nothing is running.".to_owned()
                } else {
                    "Stopped.".to_owned()
                }
            }
            "status" => self.status_text(channel, &key),
            _ => return self.submit(channel, message, text).await,
        };
        self.answer(channel, message, reply).await
    }

    fn status_text(&self, channel: &Arc<dyn Channel>, key: &str) -> String {
        let about = self
            .about
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|f| f())
            .unwrap_or_default();
        let health: Vec<String> = self
            .statuses_now()
            .into_iter()
            .map(|(_, label, s)| {
                let state = s.health_state;
                match s.last_error.filter(|_| state != "healthy") {
                    Some(e) => format!("{label} {}: {state} ({e})", s.account_id),
                    None => format!("{label} {}: {state}", s.account_id),
                }
            })
            .collect();
        let busy = self
            .sessions
            .get()
            .map(|s| s.runs_of(key).0.is_some())
            .unwrap_or(false);
        format!(
            "{about}\nSession: {key}{}\nChannels: {}\nvia {} {}",
            if busy { " (working)" } else { "" },
            health.join("; "),
            channel.label(),
            channel.account()
        )
    }

    /// Queue a message for delivery (the `send` method, automations); it
    /// is durable when this returns. Returns its ledger entry.
    pub async fn enqueue(&self, item: OutboxItem) -> Result<OutboxItem, StoreError> {
        let mut stored = self
            .store
            .outbox_push(vec![item], None)
            .await?
            .unwrap_or_default();
        stored
            .pop()
            .ok_or(StoreError::Batch("nothing was stored".into()))
    }
}

/// What `/help` says.
const HELP: &str = "Commands:\n/new or /reset: start a fresh session\n/stop: stop the current answer\n/status: model, session, board and channel health\n/help: this list\nAnything else is a message for the assistant.";

/// The commands registered with the chat service's menu.
pub const COMMANDS: [(&str, &str); 6] = [
    ("start", "Say hello (or get a pairing code)"),
    ("new", "Start a fresh session"),
    ("reset", "Start a fresh session"),
    ("stop", "Stop the current answer"),
    ("status", "Model, session, board and channel health"),
    ("help", "What I can do"),
];
