//! The client's bookkeeping, without I/O: the outbox between `publish`
//! and the socket (bounded in messages and bytes), the QoS 1 messages in
//! flight until their PUBACK (bounded, with packet ids), and the
//! keep-alive clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::client::Message;

/// Bytes a message holds in memory (what the byte cap counts).
fn weight(message: &Message) -> usize {
    message.topic.len() + message.payload.len()
}

/// Messages waiting to be written, oldest first. The byte count covers
/// them and the QoS 1 messages in flight (released on PUBACK).
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Message>,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
}

impl Outbox {
    /// At most `max_messages` waiting and `max_bytes` waiting or in flight.
    pub fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            bytes: 0,
            max_messages,
            max_bytes,
        }
    }

    /// Queue a message, or give it back when a cap is reached. An empty
    /// outbox with nothing in flight takes any one message.
    pub fn push(&mut self, message: Message) -> Result<(), Message> {
        let w = weight(&message);
        if self.queue.len() >= self.max_messages
            || (self.bytes > 0 && self.bytes + w > self.max_bytes)
        {
            return Err(message);
        }
        self.force(message);
        Ok(())
    }

    /// Queue past the caps (the last words at stop).
    pub fn force(&mut self, message: Message) {
        self.bytes += weight(&message);
        self.queue.push_back(message);
    }

    /// The oldest waiting message.
    pub fn front(&self) -> Option<&Message> {
        self.queue.front()
    }

    /// Take the oldest waiting message (its bytes stay counted until
    /// [`Outbox::release`]).
    pub fn pop(&mut self) -> Option<Message> {
        self.queue.pop_front()
    }

    /// A taken message is gone (written at QoS 0, or acknowledged).
    pub fn release(&mut self, message: &Message) {
        self.bytes = self.bytes.saturating_sub(weight(message));
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes waiting or in flight.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// QoS 1 messages written and not yet acknowledged, in the order written.
#[derive(Debug)]
pub struct InFlight {
    entries: VecDeque<(u16, Message)>,
    last_id: u16,
    cap: usize,
}

impl InFlight {
    /// At most `cap` at once.
    pub fn new(cap: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            last_id: 0,
            cap,
        }
    }

    /// No room for another.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.cap
    }

    /// None in flight.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many are in flight.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// A fresh packet id: non-zero, not in flight and not in `busy`
    /// (SUBSCRIBEs waiting for their SUBACK).
    pub fn next_id(&mut self, busy: &[u16]) -> u16 {
        loop {
            self.last_id = self.last_id.checked_add(1).unwrap_or(1);
            let id = self.last_id;
            if !busy.contains(&id) && !self.entries.iter().any(|(used, _)| *used == id) {
                return id;
            }
        }
    }

    /// Record a message written with `id`.
    pub fn insert(&mut self, id: u16, message: Message) {
        self.entries.push_back((id, message));
    }

    /// The PUBACK for `id` arrived: the message, if it was ours.
    pub fn ack(&mut self, id: u16) -> Option<Message> {
        let at = self.entries.iter().position(|(used, _)| *used == id)?;
        self.entries.remove(at).map(|(_, message)| message)
    }

    /// Every message in flight with its id, oldest first (written again,
    /// with DUP, after a reconnect).
    pub fn iter(&self) -> impl Iterator<Item = &(u16, Message)> {
        self.entries.iter()
    }
}

/// When to send PINGREQ and when the connection counts as dead.
#[derive(Debug)]
pub struct KeepAlive {
    interval: Duration,
    last_sent: Instant,
    last_received: Instant,
    ping_outstanding: bool,
}

impl KeepAlive {
    /// A connection that just got its CONNACK at `now`.
    pub fn new(interval: Duration, now: Instant) -> Self {
        Self {
            interval,
            last_sent: now,
            last_received: now,
            ping_outstanding: false,
        }
    }

    /// Bytes were written.
    pub fn sent(&mut self, now: Instant) {
        self.last_sent = now;
    }

    /// Bytes arrived: the broker is alive.
    pub fn received(&mut self, now: Instant) {
        self.last_received = now;
        self.ping_outstanding = false;
    }

    /// A PINGREQ is due: nothing written, or nothing heard, for a whole
    /// interval, and no ping is waiting for its answer.
    pub fn ping_due(&self, now: Instant) -> bool {
        !self.ping_outstanding
            && (now.duration_since(self.last_sent) >= self.interval
                || now.duration_since(self.last_received) >= self.interval)
    }

    /// A PINGREQ was queued.
    pub fn pinged(&mut self) {
        self.ping_outstanding = true;
    }

    /// Nothing heard for 1.5 intervals: the connection is dead.
    pub fn dead(&self, now: Instant) -> bool {
        now.duration_since(self.last_received) >= self.interval * 3 / 2
    }

    /// How long until [`KeepAlive::ping_due`] or [`KeepAlive::dead`] can
    /// change: the longest the connection may sleep.
    pub fn until_next(&self, now: Instant) -> Duration {
        let mut next = self.last_received + self.interval * 3 / 2;
        if !self.ping_outstanding {
            next = next
                .min(self.last_sent + self.interval)
                .min(self.last_received + self.interval);
        }
        next.saturating_duration_since(now)
    }

    /// Seconds since anything was heard.
    pub fn silent_s(&self, now: Instant) -> u64 {
        now.duration_since(self.last_received).as_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &str, payload_len: usize) -> Message {
        Message {
            topic: topic.into(),
            payload: vec![0; payload_len],
            qos: 1,
            retain: false,
        }
    }

    #[test]
    fn the_outbox_caps_messages_and_bytes() {
        let mut outbox = Outbox::new(3, 100);
        // One message over the byte cap fits into an empty outbox.
        assert!(outbox.push(message("t", 500)).is_ok());
        assert!(outbox.push(message("t", 1)).is_err());
        let big = outbox.pop().expect("queued");
        assert_eq!(outbox.bytes(), 501, "in flight still counts");
        outbox.release(&big);
        assert_eq!(outbox.bytes(), 0);
        for _ in 0..3 {
            assert!(outbox.push(message("t", 9)).is_ok());
        }
        assert_eq!(outbox.push(message("t", 0)), Err(message("t", 0)));
        assert_eq!(outbox.len(), 3);
        outbox.force(message("last", 0));
        assert_eq!(outbox.len(), 4);
        assert_eq!(outbox.bytes(), 34);
    }

    #[test]
    fn packet_ids_skip_zero_and_ids_in_use() {
        let mut flight = InFlight::new(4);
        assert_eq!(flight.next_id(&[]), 1);
        flight.insert(2, message("a", 0));
        assert_eq!(flight.next_id(&[3]), 4);
        flight.last_id = u16::MAX - 1;
        assert_eq!(flight.next_id(&[]), u16::MAX);
        assert_eq!(
            flight.next_id(&[1]),
            3,
            "wraps past 0, skips 1 (busy) and 2"
        );
        assert_eq!(flight.ack(2).map(|m| m.topic), Some("a".into()));
        assert_eq!(flight.ack(2), None);
        for id in 10..14 {
            assert!(!flight.is_full());
            flight.insert(id, message("x", 0));
        }
        assert!(flight.is_full());
        let order: Vec<u16> = flight.iter().map(|(id, _)| *id).collect();
        assert_eq!(order, [10, 11, 12, 13]);
    }

    #[test]
    fn keep_alive_pings_then_declares_death() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut ka = KeepAlive::new(10 * second, t0);
        assert_eq!(ka.until_next(t0 + 4 * second), 6 * second);
        assert!(!ka.ping_due(t0 + 9 * second));
        assert!(ka.ping_due(t0 + 10 * second));
        assert_eq!(ka.until_next(t0 + 11 * second), Duration::ZERO);
        // Writing resets one clock, not the other: silence still pings.
        ka.sent(t0 + 9 * second);
        assert!(ka.ping_due(t0 + 10 * second));
        ka.pinged();
        // Waiting for the PINGRESP: sleep until it is overdue.
        assert_eq!(ka.until_next(t0 + 10 * second), 5 * second);
        assert!(!ka.ping_due(t0 + 12 * second));
        assert!(!ka.dead(t0 + 14 * second));
        assert!(ka.dead(t0 + 15 * second));
        ka.received(t0 + 14 * second);
        assert!(!ka.dead(t0 + 15 * second));
        assert!(!ka.ping_due(t0 + 15 * second));
    }
}
