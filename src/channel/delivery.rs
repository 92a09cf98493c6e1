//! Delivery from the durable outbound ledger: one task per channel account
//! takes its undelivered messages oldest first, hands each to the channel,
//! and removes it from the ledger once the service accepted it (so a crash
//! before that delivers it after the restart; a duplicate is possible only
//! when the crash falls between the service's answer and the removal). A
//! failure worth retrying keeps the message and its successors, and waits
//! (1 s doubling to a minute, or until the channel says it works again).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use super::hub::Hub;
use super::{Channel, Delivered, DeliveryError, Outbound, Target};
use crate::backoff::Backoff;
use crate::limits;
use crate::store::{OutboxItem, StoreError};

/// Messages taken from the ledger per look.
const BATCH: usize = 16;

/// The outcome of one message's delivery.
pub type Outcome = Result<Delivered, DeliveryError>;

/// Who waits for which message, and the wake-up of the delivery tasks.
#[derive(Default)]
pub struct Delivery {
    waiters: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
    kick: Notify,
}

impl Delivery {
    fn waiters(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Outcome>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Be told how message `seq` fares (`None`: too many waiters already;
    /// the message is delivered all the same).
    pub fn watch(&self, seq: u64) -> Option<oneshot::Receiver<Outcome>> {
        let mut waiters = self.waiters();
        if waiters.len() >= limits::CHANNEL_OUTBOX_MAX {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        waiters.insert(seq, tx);
        Some(rx)
    }

    /// Stop waiting for message `seq`.
    pub fn forget(&self, seq: u64) {
        self.waiters().remove(&seq);
    }

    fn settle(&self, seq: u64, outcome: Outcome) {
        if let Some(tx) = self.waiters().remove(&seq) {
            let _ = tx.send(outcome);
        }
    }

    /// A channel works again (its receiver recovered): retry now instead
    /// of at the end of the backoff.
    pub fn kick(&self) {
        self.kick.notify_waiters();
    }
}

/// How a [`Hub::send`] went.
#[derive(Debug)]
pub enum Sent {
    /// The service accepted it.
    Delivered(Delivered),
    /// Not yet (the channel is down or slow): it stays in the ledger and
    /// is delivered later. With why, when the account cannot deliver now
    /// (blocked: no token, or a revoked one).
    Queued(Option<String>),
    /// It will not be delivered (refused, or given up on).
    Failed(DeliveryError),
}

impl Hub {
    /// Put a message in the ledger (durable when this returns anything but
    /// a store error) and wait up to `wait` for its delivery.
    /// An account that is blocked answers at once, with its error.
    pub async fn send(&self, item: OutboxItem, wait: Duration) -> Result<Sent, StoreError> {
        let blocked = self
            .channel(&item.channel, &item.account)
            .map(|c| c.status())
            .filter(|s| s.lifecycle == super::status::Lifecycle::Blocked)
            .map(|s| {
                s.last_error
                    .unwrap_or_else(|| "the account is blocked".into())
            });
        let stored = self.enqueue(item).await?;
        if blocked.is_some() {
            return Ok(Sent::Queued(blocked));
        }
        let Some(outcome) = self.delivery.watch(stored.seq) else {
            return Ok(Sent::Queued(None));
        };
        match tokio::time::timeout(wait, outcome).await {
            Ok(Ok(Ok(delivered))) => Ok(Sent::Delivered(delivered)),
            Ok(Ok(Err(e))) => Ok(Sent::Failed(e)),
            Ok(Err(_)) | Err(_) => {
                self.delivery.forget(stored.seq);
                Ok(Sent::Queued(None))
            }
        }
    }
}

/// Deliver `channel`'s messages until the hub stops.
pub async fn run(hub: Arc<Hub>, channel: Arc<dyn Channel>) {
    let signal = hub.store.outbox_signal();
    let mut backoff = Backoff::new(
        limits::CHANNEL_DELIVERY_BACKOFF,
        limits::CHANNEL_DELIVERY_BACKOFF_MAX,
    );
    // Delivered, but their removal from the ledger failed: never sent twice
    // by this process.
    let mut settled: HashSet<u64> = HashSet::new();
    loop {
        let added = signal.notified();
        tokio::pin!(added);
        added.as_mut().enable();
        let kicked = hub.delivery.kick.notified();
        tokio::pin!(kicked);
        kicked.as_mut().enable();
        if hub.stop.is_aborted() {
            return;
        }
        let pending = match hub
            .store
            .outbox_pending(channel.id(), channel.account(), BATCH)
            .await
        {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(
                    channel = channel.id(),
                    "cannot read the outbound ledger: {e}"
                );
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = hub.stop.aborted() => return,
                }
            }
        };
        if pending.is_empty() {
            tokio::select! {
                _ = &mut added => continue,
                _ = hub.stop.aborted() => return,
            }
        }
        let mut retry_later = false;
        for item in pending {
            if settled.contains(&item.seq) {
                if hub.store.outbox_done(&item).await.is_ok() {
                    settled.remove(&item.seq);
                } else {
                    retry_later = true;
                }
                continue;
            }
            let outcome = tokio::select! {
                outcome = channel.deliver(outbound(&item)) => outcome,
                _ = hub.stop.aborted() => return,
            };
            // A message retried too often is given up on like a refused one.
            let outcome = match outcome {
                Err(DeliveryError::Retry { reason, .. })
                    if item.attempts + 1 >= limits::CHANNEL_DELIVERY_MAX_ATTEMPTS =>
                {
                    Err(DeliveryError::Rejected(format!(
                        "given up after {} attempts: {reason}",
                        item.attempts + 1
                    )))
                }
                other => other,
            };
            match outcome {
                Ok(delivered) => {
                    backoff.reset();
                    finish(&hub, &channel, &item, Ok(delivered), &mut settled).await;
                }
                Err(DeliveryError::Rejected(why)) => {
                    tracing::warn!(
                        channel = channel.id(),
                        to = %item.to,
                        kind = %item.kind,
                        "message not delivered: {why}"
                    );
                    finish(
                        &hub,
                        &channel,
                        &item,
                        Err(DeliveryError::Rejected(why)),
                        &mut settled,
                    )
                    .await;
                }
                Err(DeliveryError::Retry {
                    reason: why,
                    parts_sent,
                }) => {
                    tracing::info!(
                        channel = channel.id(),
                        to = %item.to,
                        "delivery failed, retrying in {} s: {why}",
                        backoff.peek().as_secs()
                    );
                    if let Err(e) = hub.store.outbox_attempted(&item, parts_sent).await {
                        tracing::debug!("delivery attempt not counted: {e}");
                    }
                    retry_later = true;
                    break;
                }
            }
        }
        if retry_later {
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_wait()) => {}
                _ = &mut kicked => {}
                _ = hub.stop.aborted() => return,
            }
        }
    }
}

fn outbound(item: &OutboxItem) -> Outbound {
    Outbound {
        target: Target {
            chat: item.to.clone(),
            thread: item.thread.clone(),
        },
        text: item.text.clone(),
        parts_sent: item.parts_sent,
    }
}

/// The message is settled: it leaves the ledger and its waiter hears.
async fn finish(
    hub: &Hub,
    channel: &Arc<dyn Channel>,
    item: &OutboxItem,
    outcome: Outcome,
    settled: &mut HashSet<u64>,
) {
    if let Err(e) = hub.store.outbox_done(item).await {
        tracing::warn!(
            channel = channel.id(),
            "a delivered message stays in the ledger (it may be sent again after a restart): {e}"
        );
        if settled.len() < limits::CHANNEL_OUTBOX_MAX {
            settled.insert(item.seq);
        }
    }
    hub.delivery.settle(item.seq, outcome);
}
