//! The MQTT client: one thread, `pinclaw-mqtt`, owns the connection and
//! keeps it up; the event loop talks to it through a bounded outbox
//! ([`Client::publish`], which never blocks and wakes the thread) and hears
//! from it through a tokio channel ([`Event`], sent with `try_send`: when
//! the channel is full the event is dropped and counted, the socket thread
//! never waits). Between packets the thread sleeps in `epoll` until the
//! socket, a publish, a stop or the keep-alive clock needs it: a quiet
//! connection wakes it once per keep-alive interval.
//!
//! The connection: clean session, the last will set on every CONNECT (so
//! the broker publishes it when the process dies), every filter subscribed
//! again after each CONNACK (QoS 1; a refused filter shows in
//! [`Status::last_error`]), [`Event::Connected`] once every SUBACK is in.
//! QoS 1 publishes get packet ids and wait for their PUBACK (at most
//! [`limits::MQTT_MAX_INFLIGHT`]; after a reconnect they are written again
//! with DUP); an incoming QoS 1 publish is acknowledged. PINGREQ after a
//! keep-alive interval of silence either way; nothing heard for 1.5
//! intervals ends the connection. A lost or refused connection is made
//! again after 1 s doubling to 15 s with jitter, back to 1 s after a
//! connection that lasted [`limits::MQTT_STABLE_CONNECTION`]. Stopping
//! publishes the last words, waits for their PUBACK (≤ 1 s) and sends
//! DISCONNECT, so the broker discards the will.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::connection::{self, Link, LiveLink, Target};
use super::packet::{self, Connect, Packet, Will};
use super::session::{InFlight, KeepAlive, Outbox};
use super::topic;
use crate::backoff::{Backoff, jitter};
use crate::config::Secret;
use crate::ids::now_ms;
use crate::limits;

/// Keep-alive when none is configured.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(30);

/// How to reach the broker and what to tell it. `Debug` never shows the
/// password.
#[derive(Debug, Clone)]
pub struct Options {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (1883 plain, 8883 TLS by convention).
    pub port: u16,
    /// TLS (`mqtts://`), checked against the webpki roots, or against
    /// the certificates in `ca_file` when set.
    pub tls: bool,
    /// A PEM file of the CA certificate(s) to trust instead of the public
    /// roots (a broker with its own CA or a self-signed certificate).
    pub ca_file: Option<std::path::PathBuf>,
    /// The MQTT client id (a second connection with the same id makes the
    /// broker drop the first).
    pub client_id: String,
    /// User name, if the broker wants one.
    pub username: Option<String>,
    /// Password (needs a user name).
    pub password: Option<Secret>,
    /// PINGREQ interval; 1 s to 65535 s.
    pub keep_alive: Duration,
    /// Published by the broker when the connection dies without
    /// DISCONNECT (e.g. `<base>/status` = `offline`, retained).
    pub will: Option<Message>,
    /// Topic filters, subscribed with QoS 1 after every connect.
    pub subscriptions: Vec<String>,
    /// Largest packet read or written (default
    /// [`limits::MQTT_MAX_PACKET_BYTES`]).
    pub max_packet: usize,
}

impl Options {
    /// Options for a broker and client id, everything else at its default
    /// (no user, no will, no subscriptions).
    pub fn new(
        host: impl Into<String>,
        port: u16,
        tls: bool,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            tls,
            ca_file: None,
            client_id: client_id.into(),
            username: None,
            password: None,
            keep_alive: DEFAULT_KEEP_ALIVE,
            will: None,
            subscriptions: Vec::new(),
            max_packet: limits::MQTT_MAX_PACKET_BYTES,
        }
    }

    /// Every problem that would make the broker (or this client) refuse
    /// these options, as one readable line.
    pub fn validate(&self) -> Result<(), String> {
        if self.host.is_empty() {
            return Err("mqtt: the broker host is empty".into());
        }
        if self.client_id.len() > usize::from(u16::MAX) || self.client_id.contains('\0') {
            return Err("mqtt: the client id must be at most 65535 bytes, without NUL".into());
        }
        if self.password.is_some() && self.username.is_none() {
            return Err("mqtt: a password needs a user name (MQTT 3.1.1)".into());
        }
        if self
            .username
            .as_ref()
            .is_some_and(|u| u.len() > usize::from(u16::MAX))
        {
            return Err("mqtt: the user name is longer than 65535 bytes".into());
        }
        if self
            .password
            .as_ref()
            .is_some_and(|p| p.expose().len() > usize::from(u16::MAX))
        {
            return Err("mqtt: the password is longer than 65535 bytes".into());
        }
        if self.keep_alive < Duration::from_secs(1)
            || self.keep_alive.as_secs() > u64::from(u16::MAX)
        {
            return Err("mqtt: keep-alive must be between 1 s and 65535 s".into());
        }
        if self.max_packet < 128 || self.max_packet > packet::MAX_REMAINING_LENGTH {
            return Err("mqtt: the packet size limit must be between 128 bytes and 256 MiB".into());
        }
        if let Some(will) = &self.will {
            // The will travels in CONNECT: its payload is a 16-bit-length field.
            check_message(will, usize::MAX).map_err(|e| format!("mqtt: the will: {e}"))?;
            if will.payload.len() > usize::from(u16::MAX) {
                return Err("mqtt: the will's payload is longer than 65535 bytes".into());
            }
        }
        if self.subscriptions.len() > limits::MQTT_MAX_SUBSCRIPTIONS {
            return Err(format!(
                "mqtt: {} subscriptions, at most {} allowed",
                self.subscriptions.len(),
                limits::MQTT_MAX_SUBSCRIPTIONS
            ));
        }
        for filter in &self.subscriptions {
            topic::check_topic_filter(filter)
                .map_err(|e| format!("mqtt: subscription {:?}: {e}", shorten(filter)))?;
        }
        Ok(())
    }

    /// The CONNECT these options make (clean session, the will).
    pub(super) fn connect_packet(&self) -> Connect<'_> {
        Connect {
            client_id: &self.client_id,
            clean_session: true,
            keep_alive_s: self.keep_alive.as_secs().min(u64::from(u16::MAX)) as u16,
            username: self.username.as_deref(),
            password: self.password.as_ref(),
            will: self.will.as_ref().map(|w| Will {
                topic: &w.topic,
                payload: &w.payload,
                qos: w.qos,
                retain: w.retain,
            }),
        }
    }
}

/// At most 80 characters of outside text for an error line.
fn shorten(text: &str) -> &str {
    match text.char_indices().nth(80) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// Whether a message can be published: QoS 0 or 1, a valid topic name,
/// and at most `max_packet` bytes as a packet.
fn check_message(message: &Message, max_packet: usize) -> Result<(), String> {
    if message.qos > 1 {
        return Err("QoS must be 0 or 1".into());
    }
    topic::check_topic_name(&message.topic)
        .map_err(|e| format!("topic {:?}: {e}", shorten(&message.topic)))?;
    let size = packet::publish_size(&message.topic, message.payload.len(), message.qos == 1);
    if size > max_packet {
        return Err(format!(
            "a message of {size} bytes is over the {max_packet}-byte limit"
        ));
    }
    Ok(())
}

/// Parse `mqtt://host[:port]` (default 1883) or `mqtts://host[:port]`
/// (default 8883; TLS) into host, port and TLS. IPv6 hosts go in
/// brackets. The error never repeats the URL (it may hold a password).
pub fn parse_url(url: &str) -> Result<(String, u16, bool), String> {
    let (rest, tls, default_port) = if let Some(rest) = url.strip_prefix("mqtt://") {
        (rest, false, 1883)
    } else if let Some(rest) = url.strip_prefix("mqtts://") {
        (rest, true, 8883)
    } else {
        return Err("the MQTT URL must start with mqtt:// or mqtts://".into());
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        return Err(
            "the MQTT URL must not carry a user or password: set them as their own keys".into(),
        );
    }
    if authority.contains(['/', '?', '#']) {
        return Err("the MQTT URL must not have a path or query: mqtt://host[:port]".into());
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err("the MQTT URL has an IPv6 address without its closing ]".into());
        };
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("the MQTT URL has junk after its IPv6 address")?,
            ),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the MQTT URL has no host".into());
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err("the MQTT URL's port must be a number from 1 to 65535".into()),
        },
    };
    Ok((host.to_owned(), port, tls))
}

/// A message to publish (or the will).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// A topic name (no wildcards).
    pub topic: String,
    /// Any bytes.
    pub payload: Vec<u8>,
    /// 0 or 1.
    pub qos: u8,
    /// Keep it on the broker for later subscribers.
    pub retain: bool,
}

/// What the client tells the event loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Connected and subscribed (after every reconnect too): the time to
    /// publish availability, discovery and current states.
    Connected,
    /// A connection that had been announced ended; the client reconnects.
    Disconnected {
        /// Why, one readable line.
        error: String,
    },
    /// A message on a subscribed topic.
    Message {
        /// Its topic.
        topic: String,
        /// Its payload.
        payload: Vec<u8>,
        /// A retained message replayed by the broker on subscribe (not a
        /// live one); command topics should ignore these.
        retained: bool,
    },
}

/// A snapshot of the client for status pages and the doctor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Connected and subscribed now.
    pub connected: bool,
    /// When `connected` last changed (ms since the epoch; 0 = never).
    pub since_ms: i64,
    /// The latest failure: why the last attempt or connection failed, or
    /// a subscription the broker refused. Cleared by an accepted CONNECT.
    pub last_error: Option<String>,
    /// Connection attempts, successful or not.
    pub attempts: u64,
    /// Successful connections after the first.
    pub reconnects: u64,
    /// Messages waiting to be written.
    pub queued: usize,
    /// `publish` calls refused because the outbox was full.
    pub dropped_publishes: u64,
    /// Events dropped because the event channel was full or closed.
    pub dropped_events: u64,
}

/// Why [`Client::publish`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The outbox is full (the broker is away or slow); counted in
    /// [`Status::dropped_publishes`].
    #[error("the MQTT outbox is full")]
    Busy,
    /// The message can never be sent (bad topic, QoS, size).
    #[error("invalid MQTT message: {0}")]
    Invalid(String),
    /// The client was stopped.
    #[error("the MQTT client is stopped")]
    Stopped,
}

/// Connection state the thread writes and `status` reads.
#[derive(Default)]
struct LinkState {
    connected: bool,
    since_ms: i64,
    last_error: Option<String>,
}

#[derive(Default)]
struct StopRequest {
    asked: bool,
    last_words: Option<Message>,
    taken: bool,
}

/// What the API and the socket thread share.
struct Shared {
    outbox: Mutex<Outbox>,
    state: Mutex<LinkState>,
    stop: Mutex<StopRequest>,
    wake: Condvar,
    /// Wakes the socket thread out of `epoll` (a publish, a stop).
    waker: mio::Waker,
    attempts: AtomicU64,
    reconnects: AtomicU64,
    dropped_publishes: AtomicU64,
    dropped_events: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn stop_asked(&self) -> bool {
        lock(&self.stop).asked
    }

    /// The stop request with its last words, once.
    fn take_stop(&self) -> Option<Option<Message>> {
        let mut stop = lock(&self.stop);
        if !stop.asked || stop.taken {
            return None;
        }
        stop.taken = true;
        Some(stop.last_words.take())
    }

    fn ask_stop(&self, last_words: Option<Message>) {
        let mut stop = lock(&self.stop);
        if !stop.asked {
            stop.asked = true;
            stop.last_words = last_words;
        }
        self.wake.notify_all();
        self.nudge();
    }

    /// Sleep up to `wait`; `false` when woken by a stop.
    fn sleep(&self, wait: Duration) -> bool {
        let guard = lock(&self.stop);
        let (guard, _) = self
            .wake
            .wait_timeout_while(guard, wait, |s| !s.asked)
            .unwrap_or_else(|p| p.into_inner());
        !guard.asked
    }

    /// Wake the socket thread if it sleeps in `epoll`.
    fn nudge(&self) {
        if let Err(e) = self.waker.wake() {
            tracing::debug!("MQTT: waking the client thread failed: {e}");
        }
    }

    fn set_connected(&self, connected: bool, error: Option<String>) {
        let mut state = lock(&self.state);
        if state.connected != connected {
            state.connected = connected;
            state.since_ms = now_ms();
        }
        if error.is_some() {
            state.last_error = error;
        }
    }

    fn set_error(&self, error: Option<String>) {
        lock(&self.state).last_error = error;
    }
}

/// A running MQTT client (see the module docs). Dropping it asks the
/// thread to disconnect cleanly without waiting; [`Client::stop`] waits.
pub struct Client {
    shared: Arc<Shared>,
    thread: Mutex<Option<(JoinHandle<()>, std_mpsc::Receiver<()>)>>,
    max_packet: usize,
}

impl Client {
    /// Check the options and start the `pinclaw-mqtt` thread, which
    /// connects at once and keeps reconnecting until stopped. Events go to
    /// `events` (give it [`limits::MQTT_EVENT_QUEUE`] slots).
    pub fn start(options: Options, events: mpsc::Sender<Event>) -> std::io::Result<Client> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        options.validate().map_err(invalid)?;
        let tls = if options.tls {
            Some(connection::tls_config(options.ca_file.as_deref()).map_err(invalid)?)
        } else {
            None
        };
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), connection::WAKE)?;
        let shared = Arc::new(Shared {
            outbox: Mutex::new(Outbox::new(limits::MQTT_OUTBOX, limits::MQTT_OUTBOX_BYTES)),
            state: Mutex::new(LinkState::default()),
            stop: Mutex::new(StopRequest::default()),
            wake: Condvar::new(),
            waker,
            attempts: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            dropped_publishes: AtomicU64::new(0),
            dropped_events: AtomicU64::new(0),
        });
        let max_packet = options.max_packet;
        let worker = Worker {
            options,
            tls,
            shared: shared.clone(),
            events,
            in_flight: InFlight::new(limits::MQTT_MAX_INFLIGHT),
            poll,
            readiness: mio::Events::with_capacity(4),
        };
        let (done_tx, done_rx) = std_mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("pinclaw-mqtt".into())
            .stack_size(limits::MQTT_THREAD_STACK_BYTES)
            .spawn(move || {
                // Dropped when the thread ends: `stop` waits for that.
                let _done = done_tx;
                worker.run();
            })?;
        Ok(Client {
            shared,
            thread: Mutex::new(Some((handle, done_rx))),
            max_packet,
        })
    }

    /// Queue a message; never blocks. QoS 1 messages are kept until the
    /// broker acknowledges them (across reconnects); QoS 0 ones until
    /// written.
    pub fn publish(&self, message: Message) -> Result<(), PublishError> {
        check_message(&message, self.max_packet).map_err(PublishError::Invalid)?;
        if self.shared.stop_asked() {
            return Err(PublishError::Stopped);
        }
        let refused = lock(&self.shared.outbox).push(message).is_err();
        if refused {
            let n = self
                .shared
                .dropped_publishes
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            if n.is_power_of_two() {
                tracing::warn!("MQTT: outbox full, {n} publishes refused so far");
            }
            return Err(PublishError::Busy);
        }
        self.shared.nudge();
        Ok(())
    }

    /// The connection state and counters now.
    pub fn status(&self) -> Status {
        let state = lock(&self.shared.state);
        Status {
            connected: state.connected,
            since_ms: state.since_ms,
            last_error: state.last_error.clone(),
            attempts: self.shared.attempts.load(Ordering::Relaxed),
            reconnects: self.shared.reconnects.load(Ordering::Relaxed),
            queued: lock(&self.shared.outbox).len(),
            dropped_publishes: self.shared.dropped_publishes.load(Ordering::Relaxed),
            dropped_events: self.shared.dropped_events.load(Ordering::Relaxed),
        }
    }

    /// Shut down cleanly: write what is queued and `last_words` (e.g.
    /// `offline`, QoS 1, retained), wait up to
    /// [`limits::MQTT_STOP_ACK_WAIT`] for the PUBACKs, send DISCONNECT (so
    /// the broker does not publish the will), and wait up to
    /// [`limits::MQTT_STOP_JOIN`] for the thread. Blocks the caller that
    /// long at most: from async code, call it on a blocking thread.
    pub fn stop(&self, last_words: Option<Message>) {
        let last_words = last_words.filter(|m| match check_message(m, self.max_packet) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("MQTT: last words not sent: {e}");
                false
            }
        });
        self.shared.ask_stop(last_words);
        let Some((handle, done)) = lock(&self.thread).take() else {
            return;
        };
        match done.recv_timeout(limits::MQTT_STOP_JOIN) {
            Err(std_mpsc::RecvTimeoutError::Timeout) => tracing::warn!(
                "MQTT: the client thread did not end within {} s; it ends on its own",
                limits::MQTT_STOP_JOIN.as_secs()
            ),
            _ => {
                let _ = handle.join();
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shared.ask_stop(None);
    }
}

/// How a served connection ended.
enum End {
    Stopped,
    Lost {
        error: String,
        /// `Event::Connected` had been sent for it.
        announced: bool,
    },
}

/// The socket thread.
struct Worker {
    options: Options,
    tls: Option<Arc<ClientConfig>>,
    shared: Arc<Shared>,
    events: mpsc::Sender<Event>,
    in_flight: InFlight,
    poll: mio::Poll,
    readiness: mio::Events,
}

impl Worker {
    fn run(mut self) {
        let mut backoff = Backoff::new(limits::MQTT_BACKOFF, limits::MQTT_BACKOFF_MAX);
        let mut connected_before = false;
        while !self.shared.stop_asked() {
            let began = Instant::now();
            self.shared.attempts.fetch_add(1, Ordering::Relaxed);
            let opened = self.open().and_then(|link| link.into_live(&self.poll));
            let error = match opened {
                Ok(mut link) => {
                    if connected_before {
                        self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    connected_before = true;
                    self.shared.set_error(None);
                    let end = self.serve(&mut link);
                    link.close(&self.poll);
                    match end {
                        End::Stopped => {
                            self.shared.set_connected(false, None);
                            return;
                        }
                        End::Lost { error, announced } => {
                            self.shared.set_connected(false, Some(error.clone()));
                            if announced {
                                self.deliver(Event::Disconnected {
                                    error: error.clone(),
                                });
                            }
                            if began.elapsed() >= limits::MQTT_STABLE_CONNECTION {
                                backoff.reset();
                            }
                            error
                        }
                    }
                }
                Err(error) => {
                    if self.shared.stop_asked() {
                        return;
                    }
                    self.shared.set_error(Some(error.clone()));
                    error
                }
            };
            let wait = jitter(backoff.next_wait());
            tracing::warn!(
                host = %self.options.host,
                "MQTT: {error}; retrying in {:.1} s",
                wait.as_secs_f64()
            );
            if !self.shared.sleep(wait) {
                return;
            }
        }
    }

    fn open(&self) -> Result<Link, String> {
        let target = Target {
            host: &self.options.host,
            port: self.options.port,
            tls: self.tls.as_ref(),
        };
        let stop = || self.shared.stop_asked();
        Link::open(
            &target,
            &self.options.connect_packet(),
            self.options.max_packet,
            Instant::now() + limits::MQTT_CONNECT_TIMEOUT,
            &stop,
        )
    }

    /// Run one accepted connection until it is lost or the client stops.
    fn serve(&mut self, link: &mut LiveLink) -> End {
        let mut out = Vec::new();
        // Every filter again (clean session), one SUBSCRIBE each, so a
        // refusal names its filter.
        let mut pending: Vec<(u16, usize)> = Vec::new();
        for (index, filter) in self.options.subscriptions.iter().enumerate() {
            let busy: Vec<u16> = pending.iter().map(|(id, _)| *id).collect();
            let id = self.in_flight.next_id(&busy);
            if let Err(e) = packet::encode_subscribe(id, &[(filter, 1)], &mut out) {
                tracing::warn!("MQTT: subscription not sent: {e}");
                continue;
            }
            pending.push((id, index));
        }
        // QoS 1 messages the last connection did not see acknowledged.
        for (id, m) in self.in_flight.iter() {
            if let Err(e) =
                packet::encode_publish(&m.topic, &m.payload, Some(*id), m.retain, true, &mut out)
            {
                tracing::warn!("MQTT: message not sent again: {e}");
            }
        }
        let ready_by = Instant::now() + limits::MQTT_CONNECT_TIMEOUT;
        let mut announced = false;
        let mut clock = KeepAlive::new(self.options.keep_alive, Instant::now());
        let mut packets = Vec::new();
        let lost = |error: String, announced: bool| End::Lost { error, announced };
        loop {
            if !announced && pending.is_empty() {
                announced = true;
                self.shared.set_connected(true, None);
                tracing::info!(host = %self.options.host, "MQTT: connected");
                self.deliver(Event::Connected);
            }
            if let Some(last_words) = self.shared.take_stop() {
                let busy: Vec<u16> = pending.iter().map(|(id, _)| *id).collect();
                self.finish(link, last_words, &busy, out);
                return End::Stopped;
            }
            let busy: Vec<u16> = pending.iter().map(|(id, _)| *id).collect();
            // What the socket has not taken yet stays in the outbox.
            if link.backlog() < limits::MQTT_MAX_PACKET_BYTES {
                self.fill(&mut out, &busy);
            }
            let now = Instant::now();
            if clock.ping_due(now) {
                packet::encode_pingreq(&mut out);
                clock.pinged();
            }
            if !out.is_empty() {
                if let Err(e) = link.queue(&out) {
                    return lost(e, announced);
                }
                clock.sent(now);
                out.clear();
            }
            if let Err(e) = link.pump(now) {
                return lost(e, announced);
            }
            let received = link.receive(&mut packets);
            let now = Instant::now();
            for p in packets.drain(..) {
                if let Err(e) = self.handle(p, &mut out, &mut pending) {
                    return lost(e, announced);
                }
            }
            match received {
                Ok(true) => clock.received(now),
                Ok(false) => {}
                Err(e) => return lost(e, announced),
            }
            if !out.is_empty() {
                continue; // acknowledgements go out before any sleep
            }
            if link.backlog() < limits::MQTT_MAX_PACKET_BYTES && self.can_fill() {
                continue; // a PUBACK made room in flight for what waits
            }
            if !announced && pending.is_empty() {
                continue; // the last SUBACK came: connected, say so now
            }
            if clock.dead(now) {
                return lost(
                    format!(
                        "no answer from the broker for {} s (keep-alive {} s)",
                        clock.silent_s(now),
                        self.options.keep_alive.as_secs()
                    ),
                    announced,
                );
            }
            if let Some(e) = link.write_stalled(now) {
                return lost(e, announced);
            }
            let mut sleep = clock.until_next(now);
            if !announced {
                if now >= ready_by {
                    return lost(
                        format!(
                            "no SUBACK from the broker within {} s",
                            limits::MQTT_CONNECT_TIMEOUT.as_secs()
                        ),
                        announced,
                    );
                }
                sleep = sleep.min(ready_by - now);
            }
            if link.backlog() > 0 {
                sleep = sleep.min(limits::MQTT_WRITE_TIMEOUT);
            }
            if let Err(e) = link.wait(&mut self.poll, &mut self.readiness, sleep) {
                return lost(e, announced);
            }
        }
    }

    /// Whether [`Self::fill`] would move a message now: the outbox's
    /// next one is QoS 0 or has room in flight.
    fn can_fill(&self) -> bool {
        lock(&self.shared.outbox)
            .front()
            .is_some_and(|front| front.qos == 0 || !self.in_flight.is_full())
    }

    /// Move messages from the outbox to `out`, in order, while QoS 1 ones
    /// have room in flight.
    fn fill(&mut self, out: &mut Vec<u8>, busy: &[u16]) {
        let mut outbox = lock(&self.shared.outbox);
        while let Some(front) = outbox.front() {
            if front.qos == 1 && self.in_flight.is_full() {
                break;
            }
            let Some(message) = outbox.pop() else { break };
            let id = (message.qos == 1).then(|| self.in_flight.next_id(busy));
            let encoded = packet::encode_publish(
                &message.topic,
                &message.payload,
                id,
                message.retain,
                false,
                out,
            );
            match (encoded, id) {
                (Ok(()), Some(id)) => self.in_flight.insert(id, message),
                (Ok(()), None) => outbox.release(&message),
                (Err(e), _) => {
                    tracing::warn!("MQTT: message dropped: {e}");
                    outbox.release(&message);
                }
            }
        }
    }

    /// React to one packet from the broker.
    fn handle(
        &mut self,
        packet: Packet,
        out: &mut Vec<u8>,
        pending: &mut Vec<(u16, usize)>,
    ) -> Result<(), String> {
        match packet {
            Packet::Publish(p) => {
                if let Some(id) = p.packet_id {
                    packet::encode_puback(id, out);
                }
                self.deliver(Event::Message {
                    topic: p.topic,
                    payload: p.payload,
                    retained: p.retain,
                });
            }
            Packet::PubAck { packet_id } => match self.in_flight.ack(packet_id) {
                Some(message) => lock(&self.shared.outbox).release(&message),
                None => tracing::debug!("MQTT: PUBACK for unknown packet id {packet_id}"),
            },
            Packet::SubAck {
                packet_id,
                return_codes,
            } => {
                let Some(at) = pending.iter().position(|(id, _)| *id == packet_id) else {
                    tracing::debug!("MQTT: SUBACK for unknown packet id {packet_id}");
                    return Ok(());
                };
                let (_, index) = pending.remove(at);
                if return_codes
                    .first()
                    .is_none_or(|&code| code == packet::SUBACK_FAILURE)
                {
                    let filter = shorten(&self.options.subscriptions[index]);
                    let error = format!(
                        "the broker refused the subscription to {filter} (does its ACL allow it?)"
                    );
                    tracing::warn!("MQTT: {error}");
                    self.shared.set_error(Some(error));
                }
            }
            Packet::UnsubAck { .. } | Packet::PingResp => {}
            Packet::ConnAck { .. } => {
                return Err("protocol error: a second CONNACK from the broker".into());
            }
        }
        Ok(())
    }

    /// Hand an event to the event loop without waiting; drop and count it
    /// when the channel is full or gone.
    fn deliver(&self, event: Event) {
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                let n = self.shared.dropped_events.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!("MQTT: event channel full, {n} events dropped so far");
                }
            }
        }
    }

    /// The clean end of a connection: what is queued plus the last words,
    /// their PUBACKs (bounded wait), DISCONNECT.
    fn finish(
        &mut self,
        link: &mut LiveLink,
        last_words: Option<Message>,
        busy: &[u16],
        mut out: Vec<u8>,
    ) {
        if let Some(message) = last_words {
            lock(&self.shared.outbox).force(message);
        }
        let deadline = Instant::now() + limits::MQTT_STOP_ACK_WAIT;
        let mut packets = Vec::new();
        let mut acknowledged = false;
        loop {
            let now = Instant::now();
            if !acknowledged {
                self.fill(&mut out, busy);
                acknowledged = self.in_flight.is_empty() && lock(&self.shared.outbox).is_empty();
                if acknowledged {
                    packet::encode_disconnect(&mut out);
                }
            }
            if !out.is_empty() {
                if link.queue(&out).is_err() {
                    return;
                }
                out.clear();
            }
            if link.pump(now).is_err() || (acknowledged && link.backlog() == 0) {
                return;
            }
            if now >= deadline {
                tracing::warn!(
                    "MQTT: stopping with {} messages not acknowledged",
                    self.in_flight.len()
                );
                // DISCONNECT anyway, as far as the socket takes it now.
                if !acknowledged {
                    packet::encode_disconnect(&mut out);
                    let _ = link.queue(&out).and_then(|()| link.pump(now));
                }
                return;
            }
            let received = link.receive(&mut packets);
            for p in packets.drain(..) {
                if let Packet::PubAck { packet_id } = p
                    && let Some(message) = self.in_flight.ack(packet_id)
                {
                    lock(&self.shared.outbox).release(&message);
                }
            }
            if received.is_err() {
                return;
            }
            if !acknowledged && self.in_flight.is_empty() && lock(&self.shared.outbox).is_empty() {
                continue;
            }
            let _ = link.wait(&mut self.poll, &mut self.readiness, deadline - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = [
            ("mqtt://broker.local", ("broker.local", 1883, false)),
            ("mqtt://broker.local:1884", ("broker.local", 1884, false)),
            ("mqtts://broker.local", ("broker.local", 8883, true)),
            ("mqtts://10.0.0.2:9883/", ("10.0.0.2", 9883, true)),
            ("mqtt://[::1]", ("::1", 1883, false)),
            ("mqtt://[fe80::1]:2000", ("fe80::1", 2000, false)),
        ];
        for (url, (host, port, tls)) in ok {
            assert_eq!(parse_url(url), Ok((host.to_owned(), port, tls)), "{url}");
        }
        let bad = [
            ("http://broker", "must start with mqtt:// or mqtts://"),
            ("broker:1883", "must start with"),
            ("mqtt://", "no host"),
            ("mqtt://:1883", "no host"),
            ("mqtt://host:0", "port"),
            ("mqtt://host:65536", "port"),
            ("mqtt://host:x", "port"),
            ("mqtt://host/path", "path"),
            ("mqtt://[::1", "closing ]"),
            ("mqtt://[::1]x", "junk"),
            ("mqtt://user:hunter2@host", "user or password"),
        ];
        for (url, want) in bad {
            let e = parse_url(url).expect_err(url);
            assert!(e.contains(want), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    fn options() -> Options {
        let mut o = Options::new("broker", 1883, false, "pinclaw-test");
        o.username = Some("pinclaw".into());
        o.password = Some(Secret::new("hunter2-secret"));
        o.will = Some(Message {
            topic: "pinclaw/hub/status".into(),
            payload: b"offline".to_vec(),
            qos: 1,
            retain: true,
        });
        o.subscriptions = vec!["pinclaw/hub/+/set".into()];
        o
    }

    #[test]
    fn options_are_checked() {
        assert_eq!(options().validate(), Ok(()));
        type Change = Box<dyn Fn(&mut Options)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|o| o.host.clear()), "host"),
            (Box::new(|o| o.username = None), "needs a user name"),
            (Box::new(|o| o.keep_alive = Duration::ZERO), "keep-alive"),
            (
                Box::new(|o| o.keep_alive = Duration::from_secs(70_000)),
                "keep-alive",
            ),
            (Box::new(|o| o.max_packet = 10), "packet size"),
            (Box::new(|o| o.subscriptions.push("a/#/b".into())), "a/#/b"),
            (
                Box::new(|o| o.subscriptions = vec!["a".into(); 65]),
                "at most 64",
            ),
            (
                Box::new(|o| o.will.as_mut().into_iter().for_each(|w| w.qos = 2)),
                "will",
            ),
            (
                Box::new(|o| {
                    o.will
                        .as_mut()
                        .into_iter()
                        .for_each(|w| w.topic = "a/+".into())
                }),
                "will",
            ),
            (
                Box::new(|o| {
                    o.will
                        .as_mut()
                        .into_iter()
                        .for_each(|w| w.payload = vec![0; 65_536])
                }),
                "65535",
            ),
        ];
        for (change, want) in cases {
            let mut o = options();
            change(&mut o);
            let e = o.validate().expect_err(want);
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn the_password_never_shows() {
        let o = options();
        let mut lines = vec![format!("{o:?}"), format!("{o:#?}")];
        let mut bad = o.clone();
        bad.keep_alive = Duration::ZERO;
        lines.extend(bad.validate().err());
        let mut bad = o.clone();
        bad.username = None;
        lines.extend(bad.validate().err());
        // The connect errors, against nothing listening.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut closed = o.clone();
        closed.host = "127.0.0.1".into();
        closed.port = port;
        lines.extend(super::super::check(closed, Duration::from_secs(2)).err());
        let events = mpsc::channel(1).0;
        let client = Client::start(o.clone(), events).expect("starts");
        lines.push(format!("{:?}", client.status()));
        lines.push(format!(
            "{:?}",
            client.publish(Message {
                topic: "a/#".into(),
                payload: vec![],
                qos: 0,
                retain: false
            })
        ));
        client.stop(None);
        assert!(
            lines.iter().any(|l| l.contains("pinclaw-test")),
            "{lines:?}"
        );
        for line in &lines {
            assert!(!line.contains("hunter2"), "{line}");
        }
    }

    #[test]
    fn publish_refuses_invalid_messages_at_once() {
        let (tx, _rx) = mpsc::channel(1);
        let mut o = Options::new("127.0.0.1", 1, false, "c");
        o.max_packet = 200;
        let client = Client::start(o, tx).expect("starts");
        let message = |topic: &str, len: usize, qos: u8| Message {
            topic: topic.into(),
            payload: vec![0; len],
            qos,
            retain: false,
        };
        for (m, want) in [
            (message("a/+", 0, 0), "+ or #"),
            (message("", 0, 0), "empty"),
            (message("a", 0, 2), "QoS"),
            (message("a", 300, 1), "over the 200-byte limit"),
        ] {
            match client.publish(m) {
                Err(PublishError::Invalid(e)) => assert!(e.contains(want), "{e}"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(client.publish(message("a", 10, 1)), Ok(()));
        assert_eq!(client.status().queued, 1);
        client.stop(None);
        assert_eq!(
            client.publish(message("a", 10, 1)),
            Err(PublishError::Stopped)
        );
    }

    #[test]
    fn a_full_outbox_refuses_and_counts() {
        let (tx, _rx) = mpsc::channel(1);
        let client = Client::start(Options::new("127.0.0.1", 1, false, "c"), tx).expect("starts");
        let message = Message {
            topic: "t".into(),
            payload: vec![1; 8],
            qos: 1,
            retain: false,
        };
        for _ in 0..limits::MQTT_OUTBOX {
            assert_eq!(client.publish(message.clone()), Ok(()));
        }
        assert_eq!(client.publish(message.clone()), Err(PublishError::Busy));
        assert_eq!(client.publish(message), Err(PublishError::Busy));
        let status = client.status();
        assert_eq!(status.dropped_publishes, 2);
        assert_eq!(status.queued, limits::MQTT_OUTBOX);
        assert!(!status.connected);
        client.stop(None);
    }
}
