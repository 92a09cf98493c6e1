//! Everything the bot sends, on its own thread and in order: replies
//! (Markdown → HTML, split, with a plain-text resend when Telegram rejects
//! the entities), the typing indicator, and the progress message edited in
//! place while a run calls tools (at most one edit per second, the latest
//! text wins) and deleted when the run ends.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::TelegramChannel;
use super::api::{ApiError, BotApi};
use super::format;
use super::update::GENERAL_TOPIC;
use crate::channel::{Activity, Delivered, DeliveryError, Outbound, Target};
use crate::limits;

type Reply = oneshot::Sender<Result<Delivered, DeliveryError>>;

enum Job {
    Deliver(Outbound, Reply),
    Typing(Target),
    Progress(Target, String),
    Done(Target),
}

/// The sender thread's queue (empty until started).
#[derive(Default)]
pub struct Sender {
    queue: Mutex<Option<(SyncSender<Job>, ureq::Agent)>>,
}

impl Sender {
    fn queue(&self) -> Option<SyncSender<Job>> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(q, _)| q.clone())
    }

    /// Start the thread.
    pub(super) fn start(&self, channel: Arc<TelegramChannel>, api: BotApi) {
        let (tx, rx) = sync_channel(limits::CHANNEL_SEND_QUEUE);
        let agent = BotApi::agent();
        let thread_agent = agent.clone();
        let spawned = std::thread::Builder::new()
            .name("pinclaw-telegram-send".into())
            .stack_size(limits::CHANNEL_THREAD_STACK_BYTES)
            .spawn(move || run(&channel, &api, &thread_agent, &rx));
        match spawned {
            Ok(_) => *self.queue.lock().unwrap_or_else(|p| p.into_inner()) = Some((tx, agent)),
            Err(e) => tracing::error!("cannot start the Telegram sender thread: {e}"),
        }
    }

    /// Stop the thread (a call in flight is cut off).
    pub(super) fn stop(&self) {
        if let Some((queue, agent)) = self.queue.lock().unwrap_or_else(|p| p.into_inner()).take() {
            drop(queue);
            agent.shutdown();
        }
    }

    /// Deliver one message; waits for room in the queue (typing and
    /// progress are dropped when it is full, deliveries are not).
    pub(super) async fn deliver(&self, message: Outbound) -> Result<Delivered, DeliveryError> {
        let not_running = || DeliveryError::Retry {
            reason: "the Telegram sender is not running".into(),
            parts_sent: message.parts_sent,
        };
        let Some(queue) = self.queue() else {
            return Err(not_running());
        };
        let (tx, rx) = oneshot::channel();
        let mut job = Job::Deliver(message.clone(), tx);
        loop {
            match queue.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => {
                    job = back;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(TrySendError::Disconnected(_)) => return Err(not_running()),
            }
        }
        rx.await.unwrap_or_else(|_| Err(not_running()))
    }

    /// Typing or progress (best effort: dropped when the queue is full).
    pub(super) fn activity(&self, target: &Target, activity: Activity) {
        let Some(queue) = self.queue() else {
            return;
        };
        let job = match activity {
            Activity::Typing => Job::Typing(target.clone()),
            Activity::Progress(text) => Job::Progress(target.clone(), text),
            Activity::Done => Job::Done(target.clone()),
        };
        if queue.try_send(job).is_err() {
            tracing::debug!("Telegram send queue full: typing/progress dropped");
        }
    }
}

/// The progress message shown in one chat.
struct Shown {
    message_id: i64,
    text: String,
    edited: Instant,
    pending: Option<String>,
}

struct Thread<'a> {
    channel: &'a TelegramChannel,
    api: &'a BotApi,
    agent: &'a ureq::Agent,
    progress: HashMap<Target, Shown>,
    typing_paused_until: Option<Instant>,
}

fn run(channel: &TelegramChannel, api: &BotApi, agent: &ureq::Agent, rx: &Receiver<Job>) {
    let mut thread = Thread {
        channel,
        api,
        agent,
        progress: HashMap::new(),
        typing_paused_until: None,
    };
    loop {
        let due = thread
            .progress
            .values()
            .filter(|s| s.pending.is_some())
            .map(|s| s.edited + limits::CHANNEL_PROGRESS_EDIT_INTERVAL)
            .min();
        let job = match due {
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match rx.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            },
        };
        match job {
            Some(Job::Deliver(message, reply)) => {
                let _ = reply.send(thread.deliver(&message));
            }
            Some(Job::Typing(target)) => thread.typing(&target),
            Some(Job::Progress(target, text)) => thread.progress(&target, text),
            Some(Job::Done(target)) => thread.done(&target),
            None => thread.flush_edits(),
        }
    }
}

/// `chat_id` and, for a forum topic other than General, `message_thread_id`.
fn address(target: &Target, with_general: bool) -> Value {
    let mut body = json!({"chat_id": target.chat});
    if let Some(thread) = &target.thread
        && (with_general || thread != GENERAL_TOPIC)
        && let Ok(id) = thread.parse::<i64>()
    {
        body["message_thread_id"] = json!(id);
    }
    body
}

/// Telegram refused the HTML version (bad entities, or longer than it
/// counts); the plain text is sent instead.
fn entities_refused(description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    d.contains("message is too long")
        || d.contains("can't parse entities")
        || d.contains("can't find end")
        || d.contains("unsupported start tag")
        || d.contains("unexpected end tag")
        || d.contains("entity")
}

impl Thread<'_> {
    fn call(&self, method: &str, body: &Value) -> Result<Value, ApiError> {
        self.api
            .call(self.agent, method, body, limits::TELEGRAM_CALL_TIMEOUT)
    }

    fn deliver(&mut self, message: &Outbound) -> Result<Delivered, DeliveryError> {
        let chunks = format::render(&message.text);
        if chunks.is_empty() {
            return Err(DeliveryError::Rejected("empty message".into()));
        }
        let mut last = Delivered {
            message_id: String::new(),
        };
        for (index, chunk) in chunks.iter().enumerate() {
            let index = index as u32;
            if index < message.parts_sent {
                continue;
            }
            let retry = |reason: String| DeliveryError::Retry {
                reason,
                parts_sent: index,
            };
            let mut body = address(&message.target, false);
            body["text"] = json!(chunk.html);
            body["parse_mode"] = json!("HTML");
            body["link_preview_options"] = json!({"is_disabled": true});
            let mut rate_limited = 0;
            let sent = loop {
                match self.call("sendMessage", &body) {
                    Ok(result) => break result,
                    Err(ApiError::Rejected { description, .. })
                        if body.get("parse_mode").is_some() && entities_refused(&description) =>
                    {
                        tracing::debug!(
                            "Telegram refused the HTML ({description}); sending plain text"
                        );
                        if let Some(obj) = body.as_object_mut() {
                            obj.remove("parse_mode");
                        }
                        body["text"] = json!(chunk.plain);
                    }
                    Err(ApiError::RateLimited { retry_after, .. })
                        if rate_limited < 3 && retry_after <= Duration::from_secs(60) =>
                    {
                        rate_limited += 1;
                        std::thread::sleep(retry_after);
                    }
                    Err(ApiError::Rejected {
                        status,
                        description,
                    }) => {
                        return Err(if index == 0 {
                            DeliveryError::Rejected(format!(
                                "Telegram refused the message ({status}): {description}"
                            ))
                        } else {
                            // Part of it is out: the rest is dropped, never resent.
                            DeliveryError::Rejected(format!(
                                "Telegram refused part {} of {} ({status}): {description}",
                                index + 1,
                                chunks.len()
                            ))
                        });
                    }
                    Err(e) => return Err(retry(e.to_string())),
                }
            };
            last.message_id = sent["message_id"]
                .as_i64()
                .map(|id| id.to_string())
                .unwrap_or_default();
            self.channel.runtime().status.last_outbound_at = Some(crate::ids::now_ms());
        }
        Ok(last)
    }

    fn typing(&mut self, target: &Target) {
        if self.typing_paused_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let mut body = address(target, true);
        body["action"] = json!("typing");
        match self.call("sendChatAction", &body) {
            Ok(_) => self.typing_paused_until = None,
            Err(e @ (ApiError::Unauthorized(_) | ApiError::RateLimited { .. })) => {
                let pause = match &e {
                    ApiError::RateLimited { retry_after, .. } => *retry_after,
                    _ => Duration::from_secs(300),
                };
                tracing::debug!("typing paused for {} s: {e}", pause.as_secs());
                self.typing_paused_until = Some(Instant::now() + pause);
            }
            Err(e) => tracing::debug!("typing not shown: {e}"),
        }
    }

    fn progress(&mut self, target: &Target, text: String) {
        if let Some(shown) = self.progress.get_mut(target) {
            if shown.text != text {
                shown.pending = Some(text);
            }
            self.flush_edits();
            return;
        }
        if self.progress.len() >= limits::CHANNEL_MAX_TRACKED_RUNS {
            return;
        }
        let mut body = address(target, false);
        body["text"] = json!(text);
        body["disable_notification"] = json!(true);
        match self.call("sendMessage", &body) {
            Ok(sent) => {
                if let Some(message_id) = sent["message_id"].as_i64() {
                    self.progress.insert(
                        target.clone(),
                        Shown {
                            message_id,
                            text,
                            edited: Instant::now(),
                            pending: None,
                        },
                    );
                }
            }
            Err(e) => tracing::debug!("progress not shown: {e}"),
        }
    }

    /// Edits whose time has come.
    fn flush_edits(&mut self) {
        let now = Instant::now();
        let due: Vec<(Target, i64, String)> = self
            .progress
            .iter_mut()
            .filter(|(_, s)| now >= s.edited + limits::CHANNEL_PROGRESS_EDIT_INTERVAL)
            .filter_map(|(t, s)| s.pending.take().map(|text| (t.clone(), s.message_id, text)))
            .collect();
        for (target, message_id, text) in due {
            let mut body = json!({"chat_id": target.chat, "message_id": message_id});
            body["text"] = json!(text);
            match self.call("editMessageText", &body) {
                Ok(_) => {}
                Err(ApiError::Rejected { description, .. })
                    if description.contains("message is not modified") => {}
                Err(e) => tracing::debug!("progress not updated: {e}"),
            }
            if let Some(shown) = self.progress.get_mut(&target) {
                shown.text = text;
                shown.edited = Instant::now();
            }
        }
    }

    fn done(&mut self, target: &Target) {
        if let Some(shown) = self.progress.remove(target) {
            let body = json!({"chat_id": target.chat, "message_id": shown.message_id});
            if let Err(e) = self.call("deleteMessage", &body) {
                tracing::debug!("progress message not removed: {e}");
            }
        }
    }
}
