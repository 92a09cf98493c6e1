//! Long polling done right.
//!
//! The poller runs `getUpdates` on its own thread (never tokio's blocking
//! pool): `deleteWebhook` and `getMe` first, the first poll with
//! `timeout = 0`, then `poll_timeout_s`, each call abandoned a few seconds
//! after the server's timeout. A batch of updates goes to the hub, which
//! makes every message durable; only then is the cursor saved and the
//! offset moved past the batch — so a SIGKILL at any moment neither loses
//! nor double-handles an update (a redelivered one is recognised by its
//! `update_id`).
//!
//! Errors, by kind: 429 waits `retry_after`; 5xx and network errors back
//! off 1 s → 30 s with jitter; 409 (another poller, or a webhook) is a
//! conflict, backing off 30 s doubling to 10 min and clearing the webhook
//! again; 401/404 block the account (the token is revoked) until the
//! operator fixes it. A watchdog restarts the poller when no `getUpdates`
//! completed within two poll periods plus a grace, and counts restarts;
//! the account never reports itself connected meanwhile.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::api::{ApiError, BotApi};
use super::update::{self, BotIdentity};
use super::{ACCOUNT, TelegramChannel};
use crate::backoff::{Backoff, jitter};
use crate::channel::status::Lifecycle;
use crate::channel::{Channel, Hub, Inbound};
use crate::ids::now_ms;
use crate::limits;
use crate::store::ChannelCursor;

/// The update types asked for.
const ALLOWED_UPDATES: [&str; 1] = ["message"];

/// A batch for the hub, and where to say it is durable.
struct Batch {
    messages: Vec<Inbound>,
    cursor: ChannelCursor,
    durable: oneshot::Sender<bool>,
}

/// What the poller thread, the watchdog and the channel share.
#[derive(Default)]
pub struct Control {
    /// Bumped by every restart and by stop: a thread of an older
    /// generation ends at its next step without acting on what it got.
    generation: AtomicU64,
    stopping: AtomicBool,
    /// The current thread's HTTP agent (shut down to cut its call off).
    agent: Mutex<Option<ureq::Agent>>,
    /// Wakes a sleeping poller (stop, restart).
    wake: Condvar,
    sleeping: Mutex<()>,
    /// The next offset to ask for (past every durable update).
    offset: AtomicI64,
    /// Whose offset it is (the bot id; another bot starts from scratch).
    identity: Mutex<String>,
    /// The last time the poller proved alive (ms): a completed poll, its
    /// start, or the end of a wait it announced (429, conflict).
    alive_until: AtomicI64,
    restarts: AtomicU64,
    commands_set: AtomicBool,
}

impl Control {
    fn current(&self, generation: u64) -> bool {
        !self.stopping.load(Ordering::Relaxed)
            && self.generation.load(Ordering::Relaxed) == generation
    }

    /// Sleep up to `wait`; `false` when woken because this generation is
    /// over.
    fn sleep(&self, generation: u64, wait: Duration) -> bool {
        let guard = self.sleeping.lock().unwrap_or_else(|p| p.into_inner());
        drop(
            self.wake
                .wait_timeout_while(guard, wait, |_| self.current(generation)),
        );
        self.current(generation)
    }

    fn alive(&self, until_ms: i64) {
        self.alive_until.fetch_max(until_ms, Ordering::Relaxed);
    }

    /// Cut the current thread off and wake it.
    fn interrupt(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        if let Some(agent) = self.agent.lock().unwrap_or_else(|p| p.into_inner()).take() {
            agent.shutdown();
        }
        let _guard = self.sleeping.lock().unwrap_or_else(|p| p.into_inner());
        self.wake.notify_all();
    }

    /// Stop polling for good.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.interrupt();
    }

    /// Times the watchdog restarted the poller.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
}

/// Start polling: load the cursor, then the poller thread, the task that
/// hands batches to the hub, and the watchdog.
pub(super) fn start(channel: Arc<TelegramChannel>, api: BotApi, hub: Arc<Hub>) {
    let (batches, rx) = mpsc::channel(1);
    tokio::spawn(ingest(channel.clone(), hub.clone(), rx));
    tokio::spawn(async move {
        match hub.store.channel_cursor(&channel.cursor_key()).await {
            Ok(Some(cursor)) => {
                channel
                    .poller
                    .offset
                    .store(cursor.offset, Ordering::Relaxed);
                *channel
                    .poller
                    .identity
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = cursor.identity;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(
                "Telegram: cannot read the saved offset ({e}); starting from Telegram's"
            ),
        }
        channel.poller.alive(now_ms());
        spawn_thread(&channel, &api, &hub, &batches);
        watchdog(channel, api, hub, batches).await;
    });
}

fn spawn_thread(
    channel: &Arc<TelegramChannel>,
    api: &BotApi,
    hub: &Arc<Hub>,
    batches: &mpsc::Sender<Batch>,
) {
    let control = &channel.poller;
    let generation = control.generation.load(Ordering::Relaxed);
    let agent = BotApi::agent();
    *control.agent.lock().unwrap_or_else(|p| p.into_inner()) = Some(agent.clone());
    let poller = Poller {
        channel: channel.clone(),
        api: api.clone(),
        agent,
        hub: hub.clone(),
        batches: batches.clone(),
        generation,
    };
    let spawned = std::thread::Builder::new()
        .name("pinclaw-telegram-poll".into())
        .stack_size(limits::CHANNEL_THREAD_STACK_BYTES)
        .spawn(move || poller.run());
    if let Err(e) = spawned {
        tracing::error!("cannot start the Telegram poller thread: {e}");
        channel.runtime().status.last_error = Some(format!("cannot start the poller thread: {e}"));
    }
}

/// Restart the poller when it has not proved alive for two poll periods
/// plus a grace.
async fn watchdog(
    channel: Arc<TelegramChannel>,
    api: BotApi,
    hub: Arc<Hub>,
    batches: mpsc::Sender<Batch>,
) {
    let period = Duration::from_secs(channel.config().poll_timeout_s);
    let threshold = (period * 2 + limits::TELEGRAM_STALL_GRACE).as_millis() as i64;
    loop {
        let control = &channel.poller;
        if control.stopping.load(Ordering::Relaxed) {
            return;
        }
        if channel.runtime().status.lifecycle == Lifecycle::Blocked {
            return;
        }
        let deadline = control.alive_until.load(Ordering::Relaxed) + threshold;
        let now = now_ms();
        if now < deadline {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis((deadline - now) as u64)) => {}
                _ = hub.stop.aborted() => return,
            }
            continue;
        }
        let silent_s = (now - control.alive_until.load(Ordering::Relaxed)) / 1000;
        let why = format!(
            "polling stalled: no getUpdates completed for {silent_s} s (limit {} s); restarted the poller",
            threshold / 1000
        );
        tracing::warn!("Telegram {why}");
        {
            let mut rt = channel.runtime();
            rt.status.stalled = true;
            rt.status.connected = false;
            rt.status.lifecycle = Lifecycle::Recovering;
            rt.status.last_error = Some(why);
        }
        control.restarts.fetch_add(1, Ordering::Relaxed);
        control.interrupt();
        control.alive(now_ms());
        spawn_thread(&channel, &api, &hub, &batches);
    }
}

/// Hand batches to the hub; a batch is acknowledged once its messages are
/// durable and the cursor past it saved.
async fn ingest(channel: Arc<TelegramChannel>, hub: Arc<Hub>, mut rx: mpsc::Receiver<Batch>) {
    let dyn_channel: Arc<dyn Channel> = channel.clone();
    while let Some(batch) = rx.recv().await {
        let count = batch.messages.len();
        let durable = match hub.receive(&dyn_channel, batch.messages).await {
            Ok(_) => match hub
                .store
                .set_channel_cursor(&channel.cursor_key(), batch.cursor)
                .await
            {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("Telegram: cursor not saved ({e}); the updates come again");
                    false
                }
            },
            Err(e) => {
                tracing::warn!("Telegram: updates not taken now ({e}); they come again");
                false
            }
        };
        if durable && count > 0 {
            channel.runtime().status.last_inbound_at = Some(now_ms());
        }
        let _ = batch.durable.send(durable);
    }
}

struct Poller {
    channel: Arc<TelegramChannel>,
    api: BotApi,
    agent: ureq::Agent,
    hub: Arc<Hub>,
    batches: mpsc::Sender<Batch>,
    generation: u64,
}

/// What to do after a failed call.
enum After {
    /// Wait this long, then go on.
    Wait(Duration),
    /// The account is blocked: stop.
    Stop,
}

impl Poller {
    fn control(&self) -> &Control {
        &self.channel.poller
    }

    fn current(&self) -> bool {
        self.control().current(self.generation)
    }

    fn call(
        &self,
        method: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, ApiError> {
        self.api.call(&self.agent, method, body, timeout)
    }

    fn run(self) {
        let Some(bot) = self.setup() else {
            return;
        };
        let mut backoff = Backoff::new(limits::TELEGRAM_BACKOFF, limits::TELEGRAM_BACKOFF_MAX);
        let mut conflicts = Backoff::new(
            limits::TELEGRAM_CONFLICT_BACKOFF,
            limits::TELEGRAM_CONFLICT_BACKOFF_MAX,
        );
        let mut quick_empty = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        let mut timeout = 0;
        while self.current() {
            let offset = self.control().offset.load(Ordering::Relaxed);
            let body = json!({
                "offset": offset, "timeout": timeout,
                "limit": limits::TELEGRAM_UPDATES_PER_POLL, "allowed_updates": ALLOWED_UPDATES,
            });
            let started = std::time::Instant::now();
            let answer = self.call(
                "getUpdates",
                &body,
                Duration::from_secs(timeout) + limits::TELEGRAM_POLL_ABORT_GRACE,
            );
            if !self.current() {
                return;
            }
            let after = match answer {
                Ok(result) => {
                    backoff.reset();
                    conflicts.reset();
                    self.polled();
                    let parsed = update::parse_updates(&result, &bot);
                    let quick = started.elapsed() < Duration::from_secs(timeout) / 2;
                    timeout = self.channel.config().poll_timeout_s;
                    if parsed.is_empty() {
                        if quick {
                            After::Wait(quick_empty.next_wait())
                        } else {
                            quick_empty.reset();
                            continue;
                        }
                    } else {
                        quick_empty.reset();
                        if !self.hand_over(parsed, &bot) {
                            After::Wait(Duration::from_secs(1))
                        } else {
                            continue;
                        }
                    }
                }
                Err(e) => match self.failed(e, &mut backoff, &mut conflicts) {
                    After::Stop => return,
                    wait => wait,
                },
            };
            if let After::Wait(wait) = after
                && !self.control().sleep(self.generation, wait)
            {
                return;
            }
        }
    }

    /// `getMe`, `deleteWebhook`, `setMyCommands`, retried until they work
    /// (or the token is refused).
    fn setup(&self) -> Option<BotIdentity> {
        let mut backoff = Backoff::new(limits::TELEGRAM_BACKOFF, limits::TELEGRAM_BACKOFF_MAX);
        let mut conflicts = Backoff::new(limits::TELEGRAM_BACKOFF, limits::TELEGRAM_BACKOFF_MAX);
        let bot = loop {
            if !self.current() {
                return None;
            }
            match self.call("getMe", &json!({}), limits::TELEGRAM_CALL_TIMEOUT) {
                Ok(me) => {
                    let bot = BotIdentity {
                        id: me["id"].as_i64().unwrap_or(0),
                        username: me["username"].as_str().unwrap_or("").to_owned(),
                    };
                    self.channel.runtime().bot = Some(bot.clone());
                    break bot;
                }
                Err(e) => match self.failed(e, &mut backoff, &mut conflicts) {
                    After::Stop => return None,
                    After::Wait(wait) => {
                        if !self.control().sleep(self.generation, wait) {
                            return None;
                        }
                    }
                },
            }
        };
        {
            let mut identity = self
                .control()
                .identity
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let me = bot.id.to_string();
            if !identity.is_empty() && *identity != me {
                tracing::info!(
                    "Telegram: another bot than last time; starting from its first update"
                );
                self.control().offset.store(0, Ordering::Relaxed);
            }
            *identity = me;
        }
        self.clear_webhook();
        if !self.control().commands_set.swap(true, Ordering::Relaxed) {
            let commands: Vec<_> = crate::channel::hub::COMMANDS
                .iter()
                .map(|(command, description)| json!({"command": command, "description": description}))
                .collect();
            if let Err(e) = self.call(
                "setMyCommands",
                &json!({"commands": commands}),
                limits::TELEGRAM_CALL_TIMEOUT,
            ) {
                tracing::warn!("Telegram: command menu not set: {e}");
                self.control().commands_set.store(false, Ordering::Relaxed);
            }
        }
        tracing::info!(bot = %bot.username, "Telegram: polling");
        Some(bot)
    }

    fn clear_webhook(&self) {
        if let Err(e) = self.call(
            "deleteWebhook",
            &json!({"drop_pending_updates": false}),
            limits::TELEGRAM_CALL_TIMEOUT,
        ) {
            tracing::warn!("Telegram: deleteWebhook failed ({e}); polling anyway");
        }
    }

    /// A `getUpdates` completed.
    fn polled(&self) {
        let now = now_ms();
        self.control().alive(now);
        let recovered = {
            let mut rt = self.channel.runtime();
            let s = &mut rt.status;
            let recovered = !s.connected;
            if recovered {
                s.last_connected_at = Some(now);
            }
            s.connected = true;
            s.lifecycle = Lifecycle::Running;
            s.stalled = false;
            s.conflict = false;
            s.last_error = None;
            s.reconnect_attempts = 0;
            s.last_transport_activity_at = Some(now);
            s.last_event_at = Some(now);
            recovered
        };
        if recovered {
            self.hub.delivery.kick();
        }
    }

    /// Give updates to the hub and wait until they are durable; then the
    /// offset moves past them. `false`: not taken (asked again).
    fn hand_over(&self, parsed: Vec<update::Parsed>, bot: &BotIdentity) -> bool {
        let Some(last) = parsed.iter().map(|p| p.update_id).max() else {
            return true;
        };
        let messages = parsed
            .into_iter()
            .filter_map(|p| match p.message {
                Ok(m) => Some(m),
                Err(why) => {
                    tracing::debug!(update = p.update_id, "Telegram update skipped: {why}");
                    None
                }
            })
            .collect();
        let (durable, is_durable) = oneshot::channel();
        let batch = Batch {
            messages,
            cursor: ChannelCursor {
                offset: last + 1,
                identity: bot.id.to_string(),
            },
            durable,
        };
        if self.batches.blocking_send(batch).is_err() {
            return false;
        }
        let taken = is_durable.blocking_recv().unwrap_or(false);
        if taken && self.current() {
            self.control().offset.store(last + 1, Ordering::Relaxed);
            self.control().alive(now_ms());
        }
        taken
    }

    /// Record a failed call and decide what comes next.
    fn failed(&self, error: ApiError, backoff: &mut Backoff, conflicts: &mut Backoff) -> After {
        let mut rt = self.channel.runtime();
        let s = &mut rt.status;
        s.connected = false;
        s.reconnect_attempts += 1;
        let (after, message) = match &error {
            ApiError::Unauthorized(d) => {
                s.lifecycle = Lifecycle::Blocked;
                s.running = false;
                (
                    After::Stop,
                    format!(
                        "Telegram refused the bot token ({d}): it was revoked or is wrong; set a valid token in channels.telegram and restart"
                    ),
                )
            }
            ApiError::Conflict(d) => {
                let wait = conflicts.next_wait();
                s.conflict = true;
                s.lifecycle = Lifecycle::Recovering;
                self.control().alive(now_ms() + wait.as_millis() as i64);
                (
                    After::Wait(wait),
                    format!(
                        "getUpdates conflict ({d}): another poller (another gateway, a script) or a webhook uses this bot token; stop it. Retrying in {} s",
                        wait.as_secs()
                    ),
                )
            }
            ApiError::RateLimited { retry_after, .. } => {
                s.lifecycle = Lifecycle::Recovering;
                self.control()
                    .alive(now_ms() + retry_after.as_millis() as i64);
                (
                    After::Wait(*retry_after),
                    format!(
                        "rate limited by Telegram (429): retrying in {} s",
                        retry_after.as_secs()
                    ),
                )
            }
            other => {
                let wait = jitter(backoff.next_wait());
                s.lifecycle = Lifecycle::Recovering;
                (
                    After::Wait(wait),
                    format!("{other}; retrying in {:.0} s", wait.as_secs_f64().ceil()),
                )
            }
        };
        tracing::warn!(account = ACCOUNT, "Telegram: {message}");
        s.last_error = Some(message);
        drop(rt);
        if matches!(error, ApiError::Conflict(_))
            && let After::Wait(wait) = &after
        {
            // Clear a webhook someone set, after the wait.
            if self.control().sleep(self.generation, *wait) {
                self.clear_webhook();
            }
            return After::Wait(Duration::ZERO);
        }
        after
    }
}
