//! Channel state that must survive restarts: each account's update offset,
//! DM pairing requests and approved senders, and the outbound ledger of
//! messages accepted for delivery but not yet delivered.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    JsonTable, ReplyRoute, Store, StoreError, db_err, decode, encode, get_json, list_json_prefixed,
    put_json,
};
use crate::limits;

/// `"<channel>:<account>"` → the account's persisted cursor and identity.
const CURSORS: JsonTable = TableDefinition::new("channel_cursors");
/// `"<channel>:<account>:<code>"` → a pending DM pairing request.
const PAIRING: JsonTable = TableDefinition::new("channel_pairing");
/// `"<channel>:<account>:<sender>"` → an approved sender.
const ALLOWED: JsonTable = TableDefinition::new("channel_allowed");
/// `("<channel>:<account>", seq)` → an accepted outbound message, in
/// delivery order. (Every table here reuses a key/value shape of another
/// store table: each new shape is a whole btree instantiated in the binary.)
const OUTBOX: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("channel_outbox");
/// `"<channel>:<account>:<event>"` → its place in [`SEEN_ORDER`] (u64, LE):
/// inbound events already answered outside a session (commands, pairing
/// codes).
const SEEN: JsonTable = TableDefinition::new("channel_seen");
/// `(place, event key)`: the pruning order of [`SEEN`].
const SEEN_ORDER: TableDefinition<(i64, &str), ()> = TableDefinition::new("channel_seen_order");
/// Counters: the next outbox sequence number (JSON), so that `seq` is
/// unique across accounts.
const COUNTERS: JsonTable = TableDefinition::new("channel_counters");
const NEXT_OUTBOX_SEQ: &str = "outbox_seq";

/// The ledger key of a message of one account.
fn outbox_account(channel: &str, account: &str) -> String {
    format!("{channel}:{account}")
}

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(CURSORS).map_err(db_err)?;
    txn.open_table(PAIRING).map_err(db_err)?;
    txn.open_table(ALLOWED).map_err(db_err)?;
    txn.open_table(OUTBOX).map_err(db_err)?;
    txn.open_table(SEEN).map_err(db_err)?;
    txn.open_table(SEEN_ORDER).map_err(db_err)?;
    txn.open_table(COUNTERS).map_err(db_err)?;
    Ok(())
}

/// Put messages in the outbound ledger inside `txn`, in order; refused
/// beyond [`limits::CHANNEL_OUTBOX_MAX`] undelivered messages.
pub(super) fn outbox_insert(
    txn: &WriteTransaction,
    items: Vec<OutboxItem>,
) -> Result<Vec<OutboxItem>, StoreError> {
    let mut table = txn.open_table(OUTBOX).map_err(db_err)?;
    if table.len().map_err(db_err)? as usize + items.len() > limits::CHANNEL_OUTBOX_MAX {
        return Err(StoreError::Full(
            "too many undelivered channel messages; the channel is not delivering",
        ));
    }
    let mut counters = txn.open_table(COUNTERS).map_err(db_err)?;
    let first: u64 = get_json(&counters, NEXT_OUTBOX_SEQ)?.unwrap_or(1);
    let mut stored = Vec::with_capacity(items.len());
    for (seq, mut item) in (first..).zip(items) {
        item.seq = seq;
        let bytes = encode("outbox", &item)?;
        let account = outbox_account(&item.channel, &item.account);
        table
            .insert((account.as_str(), item.seq), bytes.as_slice())
            .map_err(db_err)?;
        stored.push(item);
    }
    put_json(
        &mut counters,
        NEXT_OUTBOX_SEQ,
        &(first + stored.len() as u64),
    )?;
    Ok(stored)
}

/// Remember an inbound event inside `txn`; `false` if it was seen before.
/// The oldest are forgotten beyond [`limits::CHANNEL_SEEN_EVENTS`].
fn mark_seen(txn: &WriteTransaction, event: &str) -> Result<bool, StoreError> {
    let mut seen = txn.open_table(SEEN).map_err(db_err)?;
    if seen.get(event).map_err(db_err)?.is_some() {
        return Ok(false);
    }
    let mut order = txn.open_table(SEEN_ORDER).map_err(db_err)?;
    let next = order
        .last()
        .map_err(db_err)?
        .map(|(k, _)| k.value().0 + 1)
        .unwrap_or(1);
    seen.insert(event, next.to_le_bytes().as_slice())
        .map_err(db_err)?;
    order.insert((next, event), ()).map_err(db_err)?;
    while order.len().map_err(db_err)? as usize > limits::CHANNEL_SEEN_EVENTS {
        let oldest = order
            .pop_first()
            .map_err(db_err)?
            .map(|(k, _)| k.value().1.to_owned());
        match oldest {
            Some(key) => {
                seen.remove(key.as_str()).map_err(db_err)?;
            }
            None => break,
        }
    }
    Ok(true)
}

/// Where an account's inbound stream stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelCursor {
    /// The next update to ask for (Telegram: last `update_id` + 1).
    pub offset: i64,
    /// Whose stream it is (Telegram: the bot id); a different identity
    /// starts from scratch.
    pub identity: String,
}

/// A DM pairing request from an unknown sender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairingRequest {
    /// Channel id (`telegram`).
    pub channel: String,
    /// Account id (`default`).
    pub account: String,
    /// The sender's id on the channel.
    pub sender: String,
    /// A label for the sender (name, username).
    pub sender_label: String,
    /// The code the sender was given.
    pub code: String,
    /// Created (ms).
    pub created_at: i64,
    /// Last message from the sender (ms).
    pub last_seen_at: i64,
}

impl PairingRequest {
    /// When the request expires (ms).
    pub fn expires_at(&self) -> i64 {
        self.created_at + limits::CHANNEL_PAIRING_TTL.as_millis() as i64
    }
}

/// A sender approved to talk to an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowedSender {
    /// The sender's id on the channel.
    pub sender: String,
    /// A label for the sender.
    pub sender_label: String,
    /// Approved (ms).
    pub approved_at: i64,
}

/// A message accepted for delivery on a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxItem {
    /// Delivery order (assigned on insert).
    #[serde(default)]
    pub seq: u64,
    /// Channel id.
    pub channel: String,
    /// Account id.
    pub account: String,
    /// Chat id.
    pub to: String,
    /// Forum topic / thread, if any.
    #[serde(default)]
    pub thread: Option<String>,
    /// The text (Markdown allowed; the channel formats it).
    pub text: String,
    /// What it is (`reply`, `notice`, `send`), for logs and status.
    pub kind: String,
    /// The run it answers, if any.
    #[serde(default)]
    pub run_id: Option<String>,
    /// Accepted (ms).
    pub created_at: i64,
    /// Delivery attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Parts of a split message delivered so far.
    #[serde(default)]
    pub parts_sent: u32,
}

impl OutboxItem {
    /// A message for the chat of `route`.
    pub fn new(route: ReplyRoute, text: String, kind: &str, run_id: Option<String>) -> Self {
        Self {
            seq: 0,
            channel: route.channel,
            account: route.account,
            to: route.to,
            thread: route.thread,
            text,
            kind: kind.to_owned(),
            run_id,
            created_at: crate::ids::now_ms(),
            attempts: 0,
            parts_sent: 0,
        }
    }

    /// Where it goes.
    pub fn route(&self) -> ReplyRoute {
        ReplyRoute {
            channel: self.channel.clone(),
            account: self.account.clone(),
            to: self.to.clone(),
            thread: self.thread.clone(),
        }
    }
}

fn pairing_key(channel: &str, account: &str, code: &str) -> String {
    format!("{channel}:{account}:{code}")
}

impl Store {
    /// An account's cursor.
    pub async fn channel_cursor(
        &self,
        account_key: &str,
    ) -> Result<Option<ChannelCursor>, StoreError> {
        let key = account_key.to_owned();
        self.read(move |txn| get_json(&txn.open_table(CURSORS).map_err(db_err)?, &key))
            .await
    }

    /// Move an account's cursor (durable: the messages before it are all in
    /// session inboxes already).
    pub async fn set_channel_cursor(
        &self,
        account_key: &str,
        cursor: ChannelCursor,
    ) -> Result<(), StoreError> {
        let key = account_key.to_owned();
        self.write(true, move |txn| {
            put_json(&mut txn.open_table(CURSORS).map_err(db_err)?, &key, &cursor)
        })
        .await
    }

    /// The pending pairing requests of an account that have not expired,
    /// oldest first.
    pub async fn pairing_requests(
        &self,
        channel: &str,
        account: &str,
        now_ms: i64,
    ) -> Result<Vec<PairingRequest>, StoreError> {
        let prefix = format!("{channel}:{account}:");
        self.read(move |txn| {
            let table = txn.open_table(PAIRING).map_err(db_err)?;
            let mut out: Vec<PairingRequest> = list_json_prefixed(&table, &prefix)?
                .into_iter()
                .map(|(_, r): (String, PairingRequest)| r)
                .filter(|r| r.expires_at() > now_ms)
                .collect();
            out.sort_by_key(|r| r.created_at);
            Ok(out)
        })
        .await
    }

    /// Record a message from an unknown sender in one transaction: an
    /// existing live request of the sender only gets `last_seen_at` bumped;
    /// otherwise a new one with `code` is stored (expired ones are removed),
    /// unless [`limits::CHANNEL_PAIRING_MAX_PENDING`] are pending. Returns the
    /// request and whether it is new (only a new one is answered).
    pub async fn pairing_touch(
        &self,
        request: PairingRequest,
    ) -> Result<Option<(PairingRequest, bool)>, StoreError> {
        self.write(true, move |txn| {
            let mut table = txn.open_table(PAIRING).map_err(db_err)?;
            let prefix = format!("{}:{}:", request.channel, request.account);
            let (expired, live): (Vec<_>, Vec<_>) =
                list_json_prefixed::<PairingRequest>(&table, &prefix)?
                    .into_iter()
                    .partition(|(_, r)| r.expires_at() <= request.last_seen_at);
            for (k, _) in &expired {
                table.remove(k.as_str()).map_err(db_err)?;
            }
            let pending = live.len();
            if let Some((key, mut mine)) =
                live.into_iter().find(|(_, r)| r.sender == request.sender)
            {
                mine.last_seen_at = request.last_seen_at;
                put_json(&mut table, &key, &mine)?;
                return Ok(Some((mine, false)));
            }
            if pending >= limits::CHANNEL_PAIRING_MAX_PENDING {
                return Ok(None);
            }
            let key = pairing_key(&request.channel, &request.account, &request.code);
            put_json(&mut table, &key, &request)?;
            Ok(Some((request, true)))
        })
        .await
    }

    /// Approve (or with `approve = false`, dismiss) a pending request by its
    /// code, in one transaction: the request goes, and an approval adds the
    /// sender to the account's allowed senders. `None` when no live request
    /// has that code.
    pub async fn pairing_resolve(
        &self,
        channel: &str,
        account: &str,
        code: &str,
        approve: bool,
        now_ms: i64,
    ) -> Result<Option<PairingRequest>, StoreError> {
        let key = pairing_key(channel, account, code);
        let allowed_prefix = format!("{channel}:{account}:");
        self.write(true, move |txn| {
            let mut table = txn.open_table(PAIRING).map_err(db_err)?;
            let Some(request): Option<PairingRequest> = get_json(&table, &key)? else {
                return Ok(None);
            };
            table.remove(key.as_str()).map_err(db_err)?;
            if request.expires_at() <= now_ms {
                return Ok(None);
            }
            if approve {
                let mut allowed = txn.open_table(ALLOWED).map_err(db_err)?;
                if allowed.len().map_err(db_err)? as usize >= limits::CHANNEL_MAX_ALLOWED_SENDERS {
                    return Err(StoreError::Full(
                        "too many approved channel senders; remove some first",
                    ));
                }
                let sender = AllowedSender {
                    sender: request.sender.clone(),
                    sender_label: request.sender_label.clone(),
                    approved_at: now_ms,
                };
                put_json(
                    &mut allowed,
                    &format!("{allowed_prefix}{}", request.sender),
                    &sender,
                )?;
            }
            Ok(Some(request))
        })
        .await
    }

    /// Whether a sender was approved by pairing.
    pub async fn channel_sender_allowed(
        &self,
        channel: &str,
        account: &str,
        sender: &str,
    ) -> Result<bool, StoreError> {
        let key = format!("{channel}:{account}:{sender}");
        self.read(move |txn| {
            Ok(txn
                .open_table(ALLOWED)
                .map_err(db_err)?
                .get(key.as_str())
                .map_err(db_err)?
                .is_some())
        })
        .await
    }

    /// Every approved sender of an account.
    pub async fn channel_allowed(
        &self,
        channel: &str,
        account: &str,
    ) -> Result<Vec<AllowedSender>, StoreError> {
        let prefix = format!("{channel}:{account}:");
        self.read(move |txn| {
            let table = txn.open_table(ALLOWED).map_err(db_err)?;
            Ok(list_json_prefixed(&table, &prefix)?
                .into_iter()
                .map(|(_, sender)| sender)
                .collect())
        })
        .await
    }

    /// Accept messages for delivery, durably and in order; returns them
    /// with their sequence numbers. With `event` (an inbound event they
    /// answer), an event seen before writes nothing and returns `None`: a
    /// redelivered update is answered once. Refused beyond
    /// [`limits::CHANNEL_OUTBOX_MAX`] undelivered messages.
    pub async fn outbox_push(
        &self,
        items: Vec<OutboxItem>,
        event: Option<String>,
    ) -> Result<Option<Vec<OutboxItem>>, StoreError> {
        let stored = self
            .write(true, move |txn| {
                if let Some(event) = &event
                    && !mark_seen(txn, event)?
                {
                    return Ok(None);
                }
                outbox_insert(txn, items).map(Some)
            })
            .await?;
        if stored.as_ref().is_some_and(|s| !s.is_empty()) {
            self.outbox_signal().notify_waiters();
        }
        Ok(stored)
    }

    /// Undelivered messages of one account, oldest first (at most `max`).
    pub async fn outbox_pending(
        &self,
        channel: &str,
        account: &str,
        max: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let account = outbox_account(channel, account);
        self.read(move |txn| {
            let table = txn.open_table(OUTBOX).map_err(db_err)?;
            let mut out = Vec::new();
            let rows = table
                .range((account.as_str(), 0)..=(account.as_str(), u64::MAX))
                .map_err(db_err)?;
            for row in rows.take(max) {
                let (_, v) = row.map_err(db_err)?;
                out.push(decode("outbox", v.value())?);
            }
            Ok(out)
        })
        .await
    }

    /// How many messages of one account wait in the ledger (counted, not
    /// read).
    pub async fn outbox_count(&self, channel: &str, account: &str) -> Result<u64, StoreError> {
        let account = outbox_account(channel, account);
        self.read(move |txn| {
            let table = txn.open_table(OUTBOX).map_err(db_err)?;
            let rows = table
                .range((account.as_str(), 0)..=(account.as_str(), u64::MAX))
                .map_err(db_err)?;
            Ok(rows.count() as u64)
        })
        .await
    }

    /// A message was delivered (or given up on): it leaves the ledger.
    pub async fn outbox_done(&self, item: &OutboxItem) -> Result<(), StoreError> {
        let (account, seq) = (outbox_account(&item.channel, &item.account), item.seq);
        self.write(true, move |txn| {
            txn.open_table(OUTBOX)
                .map_err(db_err)?
                .remove((account.as_str(), seq))
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    /// Count a failed delivery attempt of a ledgered message, and how many
    /// of its parts were delivered (durable: a restart must not send them
    /// again).
    pub async fn outbox_attempted(
        &self,
        item: &OutboxItem,
        parts_sent: u32,
    ) -> Result<(), StoreError> {
        let (account, seq) = (outbox_account(&item.channel, &item.account), item.seq);
        self.write(true, move |txn| {
            let mut table = txn.open_table(OUTBOX).map_err(db_err)?;
            let key = (account.as_str(), seq);
            let item = match table.get(key).map_err(db_err)? {
                Some(v) => Some(decode::<OutboxItem>("outbox", v.value())?),
                None => None,
            };
            if let Some(mut item) = item {
                item.attempts += 1;
                item.parts_sent = item.parts_sent.max(parts_sent);
                let bytes = encode("outbox", &item)?;
                table.insert(key, bytes.as_slice()).map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }
}
