//! `pinclaw::mqtt` against a real Mosquitto (`/usr/sbin/mosquitto`, one
//! broker per test on a free 127.0.0.1 port, with a password file),
//! checked with Mosquitto's own `mosquitto_pub`/`mosquitto_sub` and a
//! second client. Skips with `SKIPPED mosquitto tests: …` where Mosquitto is
//! missing, and fails then when `CI` is set (`.ci/run` installs it).
//!
//! Tests wait for conditions, never for fixed times, except where the
//! point is that something does *not* happen (no spinning while the
//! broker is down, no will after a clean stop).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pinclaw::config::Secret;
use pinclaw::mqtt::{self, Client, Event, Message, Options};
use tokio::sync::mpsc;

#[path = "support/mosquitto.rs"]
mod mosquitto;
use mosquitto::{Broker, free_port, skip};

/// A client and its event channel.
struct Running {
    client: Client,
    events: mpsc::Receiver<Event>,
}

fn start(options: Options) -> Running {
    let (tx, events) = mpsc::channel(pinclaw::limits::MQTT_EVENT_QUEUE);
    let client = Client::start(options, tx).expect("client starts");
    Running { client, events }
}

impl Running {
    /// The next event that `pick` accepts, skipping the rest, within `within`.
    fn wait_for<T>(&mut self, within: Duration, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            match self.events.try_recv() {
                Ok(event) => {
                    if let Some(found) = pick(&event) {
                        return found;
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        panic!(
            "no matching event within {within:?}; status {:?}",
            self.client.status()
        );
    }

    fn connected(&mut self) {
        self.wait_for(Duration::from_secs(30), |e| {
            (*e == Event::Connected).then_some(())
        });
    }

    /// The next message on `topic`: (payload, retained).
    fn message_on(&mut self, topic: &str, within: Duration) -> (String, bool) {
        self.wait_for(within, |e| match e {
            Event::Message {
                topic: t,
                payload,
                retained,
            } if t == topic => Some((String::from_utf8_lossy(payload).into_owned(), *retained)),
            _ => None,
        })
    }

    /// Every message event within `within`, as (topic, payload).
    fn drain(&mut self, within: Duration) -> Vec<(String, String)> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match self.events.try_recv() {
                Ok(Event::Message { topic, payload, .. }) => {
                    seen.push((topic, String::from_utf8_lossy(&payload).into_owned()))
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        seen
    }
}

fn message(topic: &str, payload: &str, qos: u8, retain: bool) -> Message {
    Message {
        topic: topic.into(),
        payload: payload.as_bytes().to_vec(),
        qos,
        retain,
    }
}

/// CPU time (clock ticks) of this process's `pinclaw-mqtt` threads.
fn mqtt_thread_ticks() -> u64 {
    let mut ticks = 0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "pinclaw-mqtt" {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the ")" that closes the name: state is 3, utime 14, stime 15.
        if let Some((_, rest)) = stat.rsplit_once(')') {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            for i in [11, 12] {
                ticks += fields
                    .get(i)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    ticks
}

#[test]
fn publishes_qos1_retained_that_mosquitto_sub_reads() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let mut observer = start(Options {
        subscriptions: vec!["pinclaw/t1/#".into()],
        ..broker.options("observer-t1")
    });
    observer.connected();
    let mut a = start(broker.options("pinclaw-t1"));
    a.connected();
    assert!(a.client.status().connected);
    a.client
        .publish(message("pinclaw/t1/switch/state", "ON", 1, true))
        .expect("queued");
    // Live to a subscriber (not retained), then retained to a new one.
    assert_eq!(
        observer.message_on("pinclaw/t1/switch/state", Duration::from_secs(10)),
        ("ON".into(), false)
    );
    assert_eq!(
        broker.read_one("pinclaw/t1/switch/state"),
        "1 1 pinclaw/t1/switch/state ON"
    );
    // A QoS 0 message and a large one (a discovery payload's size).
    a.client
        .publish(message("pinclaw/t1/q0", "zero", 0, false))
        .expect("queued");
    let big = "x".repeat(20_000);
    a.client
        .publish(message("pinclaw/t1/big", &big, 1, false))
        .expect("queued");
    assert_eq!(
        observer
            .message_on("pinclaw/t1/q0", Duration::from_secs(10))
            .0,
        "zero"
    );
    assert_eq!(
        observer
            .message_on("pinclaw/t1/big", Duration::from_secs(10))
            .0,
        big
    );
    assert_eq!(a.client.status().last_error, None);
}

#[test]
fn subscribes_and_receives_live_and_retained_messages() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.publish("pinclaw/t2/cfg", "kept", true);
    let mut a = start(Options {
        subscriptions: vec!["pinclaw/t2/#".into(), "other/+/x".into()],
        ..broker.options("pinclaw-t2")
    });
    // The retained message may arrive before or after Connected.
    assert_eq!(
        a.message_on("pinclaw/t2/cfg", Duration::from_secs(15)),
        ("kept".into(), true)
    );
    assert!(a.client.status().connected);
    broker.publish("pinclaw/t2/live", "hello", false);
    assert_eq!(
        a.message_on("pinclaw/t2/live", Duration::from_secs(10)),
        ("hello".into(), false)
    );
    broker.publish("other/y/x", "second filter", false);
    assert_eq!(
        a.message_on("other/y/x", Duration::from_secs(10)).0,
        "second filter"
    );
}

#[test]
fn connected_is_said_when_the_suback_arrives_not_at_the_next_timer() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    // A keep-alive of 60 s: no timer fires before the 10 s SUBACK deadline.
    // The client once read the SUBACK and slept on until that deadline,
    // so "connected" came 10 s late, after every (re)connect.
    let mut a = start(Options {
        keep_alive: Duration::from_secs(60),
        subscriptions: vec!["pinclaw/t13/#".into()],
        ..broker.options("pinclaw-t13")
    });
    a.wait_for(Duration::from_secs(8), |e| {
        (*e == Event::Connected).then_some(())
    });
    broker.stop();
    a.wait_for(Duration::from_secs(10), |e| {
        matches!(e, Event::Disconnected { .. }).then_some(())
    });
    broker.restart();
    // The first retry is at most 1.2 s away (backoff 1 s, ±20 %).
    a.wait_for(Duration::from_secs(8), |e| {
        (*e == Event::Connected).then_some(())
    });
}

#[test]
fn a_wrong_password_is_refused_readably_and_retried_with_backoff() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let mut o = broker.options("pinclaw-t3");
    o.password = Some(Secret::new("wrong-pw-91c2"));
    let mut a = start(o);
    let watched = Duration::from_secs(6);
    let began = Instant::now();
    let seen = a.drain(watched);
    let status = a.client.status();
    eprintln!("wrong password: {status:?} after {:?}", began.elapsed());
    assert!(seen.is_empty());
    assert!(!status.connected);
    let error = status.last_error.clone().expect("an error");
    assert!(
        error.contains("not authorized") || error.contains("bad user name or password"),
        "{error}"
    );
    assert!(!error.contains("wrong-pw"), "{error}");
    // Backoff 1 s, 2 s, 4 s (±20 %): attempts at 0, ≥0.8, ≥2.4, ≥5.6 s.
    assert!(
        (2..=4).contains(&status.attempts),
        "{} attempts in {watched:?}",
        status.attempts
    );
    assert_eq!(status.reconnects, 0);
}

#[test]
fn a_restarted_broker_is_reconnected_and_resubscribed_without_spinning() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let mut a = start(Options {
        subscriptions: vec!["pinclaw/t4/#".into()],
        ..broker.options("pinclaw-t4")
    });
    a.connected();
    broker.stop();
    let down = Instant::now();
    let error = a.wait_for(Duration::from_secs(15), |e| match e {
        Event::Disconnected { error } => Some(error.clone()),
        _ => None,
    });
    eprintln!("broker down: {error} (noticed after {:?})", down.elapsed());
    let attempts_before = a.client.status().attempts;
    let ticks_before = mqtt_thread_ticks();
    // Queued while the broker is away: delivered after it is back.
    a.client
        .publish(message("pinclaw/t4/queued", "while down", 1, true))
        .expect("queued while down");
    std::thread::sleep(Duration::from_secs(6));
    let status = a.client.status();
    let ticks = mqtt_thread_ticks() - ticks_before;
    let attempts = status.attempts - attempts_before;
    eprintln!(
        "broker down 6 s: {attempts} attempts, {ticks} CPU ticks of the mqtt threads, {status:?}"
    );
    assert!(!status.connected);
    assert_eq!(status.queued, 1);
    assert!((1..=4).contains(&attempts), "{attempts} attempts in 6 s");
    assert!(
        ticks < 60,
        "{ticks} ticks: the client spins while the broker is down"
    );
    let error = status.last_error.expect("an error while down");
    assert!(error.contains("127.0.0.1"), "{error}");

    broker.restart();
    let up = Instant::now();
    a.connected();
    eprintln!(
        "broker back: reconnected {:?} after the restart ({:?} after it went down)",
        up.elapsed(),
        down.elapsed()
    );
    let status = a.client.status();
    assert!(status.connected);
    assert_eq!(status.reconnects, 1);
    // Subscribed again: a message published after the restart arrives.
    broker.publish("pinclaw/t4/after", "back", false);
    assert_eq!(
        a.message_on("pinclaw/t4/after", Duration::from_secs(10)).0,
        "back"
    );
    assert_eq!(
        broker.read_one("pinclaw/t4/queued"),
        "1 1 pinclaw/t4/queued while down"
    );
}

/// A TCP proxy between the client and the broker that the test can cut
/// (the broker sees the connection die without DISCONNECT), stall
/// (everything either way is swallowed, nothing is closed) or hold (what
/// the broker sends is kept, then handed to the client in one write).
struct Proxy {
    port: u16,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    swallow: Arc<AtomicBool>,
    /// `Some`: the broker's bytes held back for the client.
    held: Arc<Mutex<Option<Vec<u8>>>>,
    /// The client side of the latest connection.
    client: Arc<Mutex<Option<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let swallow = Arc::new(AtomicBool::new(false));
        let held: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
        let latest = Arc::new(Mutex::new(None));
        let (list, swallowing) = (sockets.clone(), swallow.clone());
        let (holding, latest_client) = (held.clone(), latest.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let mut list = list.lock().expect("lock");
                for s in [&client, &server] {
                    list.push(s.try_clone().expect("clone"));
                }
                *latest_client.lock().expect("lock") = Some(client.try_clone().expect("clone"));
                let pipe = |mut from: TcpStream,
                            mut to: TcpStream,
                            swallow: Arc<AtomicBool>,
                            held: Option<Arc<Mutex<Option<Vec<u8>>>>>| {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n @ 1..) = from.read(&mut buf) {
                            if swallow.load(Ordering::Relaxed) {
                                continue;
                            }
                            // Written under the lock: `release` cannot
                            // overtake bytes that arrived before it.
                            let mut held = held.as_ref().map(|h| h.lock().expect("lock"));
                            if let Some(Some(kept)) = held.as_deref_mut() {
                                kept.extend_from_slice(&buf[..n]);
                                continue;
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        // A stalled link stays open: the far end hears nothing.
                        if !swallow.load(Ordering::Relaxed) {
                            let _ = to.shutdown(Shutdown::Both);
                        }
                    });
                };
                pipe(
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                    swallowing.clone(),
                    None,
                );
                pipe(server, client, swallowing.clone(), Some(holding.clone()));
            }
        });
        Proxy {
            port,
            sockets,
            swallow,
            held,
            client: latest,
        }
    }

    /// Keep what the broker sends from now on.
    fn hold(&self) {
        *self.held.lock().expect("lock") = Some(Vec::new());
    }

    /// How many bytes are held.
    fn held_bytes(&self) -> usize {
        self.held.lock().expect("lock").as_ref().map_or(0, Vec::len)
    }

    /// Hand the client everything held, in one write; pass through again.
    fn release(&self) {
        let mut held = self.held.lock().expect("lock");
        let kept = held.take().unwrap_or_default();
        if let Some(client) = self.client.lock().expect("lock").as_mut() {
            client.write_all(&kept).expect("release");
        }
    }

    /// Drop every connection through the proxy, both ways.
    fn cut(&self) {
        for s in self.sockets.lock().expect("lock").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn a_full_window_of_acks_at_once_lets_the_waiting_messages_go() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let mut observer = start(Options {
        subscriptions: vec!["pinclaw/t12/#".into()],
        ..broker.options("observer-t12")
    });
    observer.connected();
    let proxy = Proxy::start(broker.port);
    // A keep-alive longer than the waits below: no ping wakes the client.
    let mut a = start(Options {
        port: proxy.port,
        keep_alive: Duration::from_secs(60),
        ..broker.options("pinclaw-t12")
    });
    a.connected();
    // Two windows' worth of QoS 1 messages, while the broker's PUBACKs are
    // held: one window goes out, the rest waits in the outbox.
    let window = pinclaw::limits::MQTT_MAX_INFLIGHT;
    proxy.hold();
    for i in 0..2 * window {
        a.client
            .publish(message("pinclaw/t12/n", &i.to_string(), 1, false))
            .expect("queued");
    }
    let mut seen = Vec::new();
    let mut collect = |seen: &mut Vec<String>, until: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.len() < until && Instant::now() < deadline {
            match observer.events.try_recv() {
                Ok(Event::Message { payload, .. }) => {
                    seen.push(String::from_utf8_lossy(&payload).into_owned())
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    };
    collect(&mut seen, window);
    assert_eq!(seen.len(), window, "the first window reached the broker");
    assert_eq!(a.client.status().queued, window);
    // Every PUBACK (4 bytes each) held, however the broker split them…
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.held_bytes() < 4 * window {
        assert!(
            Instant::now() < deadline,
            "{} bytes held",
            proxy.held_bytes()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // …then all in one read, and nothing else arrives to wake the
    // client: the second window must still go (it once slept until the
    // next keep-alive ping, here 60 s).
    proxy.release();
    collect(&mut seen, 2 * window);
    let want: Vec<String> = (0..2 * window).map(|i| i.to_string()).collect();
    assert_eq!(seen, want, "every message, in order");
}

#[test]
fn the_will_is_published_when_the_connection_dies() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let proxy = Proxy::start(broker.port);
    let mut observer = start(Options {
        subscriptions: vec!["pinclaw/t5/#".into()],
        ..broker.options("observer-t5")
    });
    observer.connected();
    let mut o = broker.options("pinclaw-t5");
    o.port = proxy.port;
    o.will = Some(message("pinclaw/t5/status", "offline", 1, true));
    let mut a = start(o);
    a.connected();
    a.client
        .publish(message("pinclaw/t5/status", "online", 1, true))
        .expect("queued");
    assert_eq!(
        observer
            .message_on("pinclaw/t5/status", Duration::from_secs(10))
            .0,
        "online"
    );
    proxy.cut();
    assert_eq!(
        observer.message_on("pinclaw/t5/status", Duration::from_secs(10)),
        ("offline".into(), false)
    );
    assert_eq!(
        broker.read_one("pinclaw/t5/status"),
        "1 1 pinclaw/t5/status offline"
    );
    // The client notices and comes back through the proxy.
    a.wait_for(Duration::from_secs(15), |e| {
        matches!(e, Event::Disconnected { .. }).then_some(())
    });
    a.connected();
}

#[test]
fn unacknowledged_qos1_messages_are_sent_again_after_a_reconnect() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let proxy = Proxy::start(broker.port);
    let mut observer = start(Options {
        subscriptions: vec!["pinclaw/t6/#".into()],
        ..broker.options("observer-t6")
    });
    observer.connected();
    let mut o = broker.options("pinclaw-t6");
    o.port = proxy.port;
    let mut a = start(o);
    a.connected();
    // The broker never sees this one, so no PUBACK comes back.
    proxy.swallow.store(true, Ordering::Relaxed);
    a.client
        .publish(message("pinclaw/t6/cmd", "once", 1, false))
        .expect("queued");
    std::thread::sleep(Duration::from_millis(300));
    proxy.swallow.store(false, Ordering::Relaxed);
    proxy.cut();
    // Written again (DUP) on the next connection.
    assert_eq!(
        observer
            .message_on("pinclaw/t6/cmd", Duration::from_secs(15))
            .0,
        "once"
    );
    assert_eq!(a.client.status().reconnects, 1);
    let log = broker.log();
    assert!(
        log.contains("Received PUBLISH from pinclaw-t6 (d1, q1, r0"),
        "not resent with DUP:\n{log}"
    );
}

#[test]
fn a_silent_broker_is_detected_by_the_keep_alive() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let proxy = Proxy::start(broker.port);
    let mut o = broker.options("pinclaw-t9");
    o.port = proxy.port;
    o.keep_alive = Duration::from_secs(2);
    let mut a = start(o);
    a.connected();
    proxy.swallow.store(true, Ordering::Relaxed);
    let stalled = Instant::now();
    let error = a.wait_for(Duration::from_secs(15), |e| match e {
        Event::Disconnected { error } => Some(error.clone()),
        _ => None,
    });
    eprintln!("stalled broker: {error} (after {:?})", stalled.elapsed());
    assert!(
        error.starts_with("no answer from the broker for 3 s (keep-alive 2 s)"),
        "{error}"
    );
    proxy.swallow.store(false, Ordering::Relaxed);
    a.connected();
}

#[test]
fn a_full_event_channel_drops_and_counts_without_blocking() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let (tx, mut events) = mpsc::channel(1);
    let client = Client::start(
        Options {
            subscriptions: vec!["pinclaw/t10/#".into()],
            ..broker.options("pinclaw-t10")
        },
        tx,
    )
    .expect("starts");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !client.status().connected {
        assert!(Instant::now() < deadline, "not connected");
        std::thread::sleep(Duration::from_millis(10));
    }
    // `Connected` holds the one slot; these five have nowhere to go.
    for i in 0..5 {
        broker.publish("pinclaw/t10/flood", &i.to_string(), false);
    }
    while client.status().dropped_events < 5 {
        assert!(Instant::now() < deadline, "{:?}", client.status());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(events.try_recv().ok(), Some(Event::Connected));
    // Still serving: the next message gets through.
    broker.publish("pinclaw/t10/after", "ok", false);
    let mut running = Running { client, events };
    assert_eq!(
        running
            .message_on("pinclaw/t10/after", Duration::from_secs(10))
            .0,
        "ok"
    );
    assert_eq!(running.client.status().dropped_events, 5);
}

#[test]
fn stop_publishes_the_last_words_and_the_broker_keeps_the_will() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let mut observer = start(Options {
        subscriptions: vec!["pinclaw/t7/#".into()],
        ..broker.options("observer-t7")
    });
    observer.connected();
    let mut o = broker.options("pinclaw-t7");
    o.will = Some(message("pinclaw/t7/status", "offline", 1, true));
    let mut a = start(o);
    a.connected();
    a.client
        .publish(message("pinclaw/t7/status", "online", 1, true))
        .expect("queued");
    assert_eq!(
        observer
            .message_on("pinclaw/t7/status", Duration::from_secs(10))
            .0,
        "online"
    );
    let began = Instant::now();
    a.client
        .stop(Some(message("pinclaw/t7/status", "offline", 1, true)));
    eprintln!("stop took {:?}", began.elapsed());
    assert!(!a.client.status().connected);
    assert_eq!(
        observer.message_on("pinclaw/t7/status", Duration::from_secs(10)),
        ("offline".into(), false)
    );
    // A marker after the stop: a will would come before it or soon after.
    observer
        .client
        .publish(message("pinclaw/t7/marker", "m", 1, false))
        .expect("queued");
    let mut after = Vec::new();
    observer.wait_for(Duration::from_secs(10), |e| match e {
        Event::Message { topic, .. } if topic == "pinclaw/t7/marker" => Some(()),
        Event::Message { topic, payload, .. } => {
            after.push((topic.clone(), String::from_utf8_lossy(payload).into_owned()));
            None
        }
        _ => None,
    });
    after.extend(observer.drain(Duration::from_millis(1500)));
    assert_eq!(after, [], "the will was sent as well");
    assert!(broker.log().contains("Received DISCONNECT from pinclaw-t7"));
    assert_eq!(
        broker.read_one("pinclaw/t7/status"),
        "1 1 pinclaw/t7/status offline"
    );
}

/// A CA and a certificate for localhost/127.0.0.1 it signed, made with
/// `openssl` in `dir`: (ca.pem, server cert, server key); `None` without
/// openssl.
fn own_ca(
    dir: &std::path::Path,
) -> Option<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf)> {
    let path = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    std::fs::write(
        path("server.ext"),
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .ok()?;
    let made = openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-days", "2", "-subj", "/CN=pinclaw test CA"],
            &[
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
    ) && openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        ]
        .concat(),
    ) && openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    made.then(|| (path("ca.pem"), path("server.pem"), path("server.key")))
}

#[test]
fn tls_trusts_the_public_roots_or_the_brokers_own_ca_from_ca_file() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let Some((ca, cert, key)) = own_ca(broker.dir.path()) else {
        skip("no openssl to make a test CA");
        return;
    };
    let tls_port = free_port();
    broker.extra_conf = format!(
        "listener {tls_port} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
        cert.display(),
        key.display()
    );
    broker.stop();
    broker.restart();
    let mut o = broker.options("pinclaw-t11");
    o.port = tls_port;
    o.tls = true;
    // Not signed by a public CA: refused, readably, by the check…
    let e = mqtt::check(o.clone(), Duration::from_secs(10)).expect_err("own CA");
    eprintln!("own CA, public roots: {e}");
    assert!(
        e.starts_with("connect: TLS handshake with 127.0.0.1 failed: invalid peer certificate"),
        "{e}"
    );
    // …and on the client's own thread, by host name (SNI).
    o.host = "localhost".into();
    let a = start(o.clone());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = a.client.status();
        if let Some(error) = &status.last_error {
            assert!(
                error.starts_with("TLS handshake with localhost failed: invalid peer certificate"),
                "{error}"
            );
            assert!(!status.connected);
            break;
        }
        assert!(Instant::now() < deadline, "{status:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(a);

    // With ca_file: connected over TLS, both ways, with packets larger
    // than a TLS record and than the socket takes at once.
    o.ca_file = Some(ca.clone());
    let report = mqtt::check(o.clone(), Duration::from_secs(10)).expect("check over TLS");
    eprintln!("check over TLS: {report:?}");
    let mut observer = start(Options {
        subscriptions: vec!["pinclaw/tls/#".into()],
        ..Options {
            client_id: "observer-tls".into(),
            ..o.clone()
        }
    });
    observer.connected();
    let mut a = start(o);
    a.connected();
    let big: String = (0..200_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    a.client
        .publish(message("pinclaw/tls/big", &big, 1, false))
        .expect("queued");
    for i in 0..50 {
        a.client
            .publish(message("pinclaw/tls/n", &i.to_string(), 1, false))
            .expect("queued");
    }
    assert_eq!(
        observer
            .message_on("pinclaw/tls/big", Duration::from_secs(20))
            .0,
        big
    );
    let seen: Vec<String> = observer
        .drain(Duration::from_secs(2))
        .into_iter()
        .filter(|(t, _)| t == "pinclaw/tls/n")
        .map(|(_, p)| p)
        .collect();
    let want: Vec<String> = (0..50).map(|i: i32| i.to_string()).collect();
    assert_eq!(seen, want, "every message, in order");
    // The plain listener's subscribers see what came in over TLS.
    a.client
        .publish(message("pinclaw/tls/state", "ON", 1, true))
        .expect("queued");
    assert_eq!(
        broker.read_one("pinclaw/tls/state"),
        "1 1 pinclaw/tls/state ON"
    );
    assert_eq!(a.client.status().last_error, None);
    a.client.stop(None);
    observer.client.stop(None);

    // A CA file that is not one is refused before any connection.
    let not_pem = broker.dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    let e = mqtt::load_ca_file(&not_pem).expect_err("not PEM");
    assert!(e.contains("no \"BEGIN CERTIFICATE\" block"), "{e}");
}

#[test]
fn check_reports_a_round_trip_and_readable_failures() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let report = mqtt::check(broker.options("pinclaw-t8"), Duration::from_secs(10)).expect("check");
    eprintln!("check: {report:?}");
    assert!(report.topic.starts_with("pinclaw/check/"));
    assert!(report.connect <= report.total && report.round_trip <= report.total);

    let mut bad = broker.options("pinclaw-t8");
    bad.password = Some(Secret::new("wrong-pw-55e1"));
    let e = mqtt::check(bad, Duration::from_secs(10)).expect_err("bad password");
    assert!(
        e.starts_with("connect: the broker refused the connection: ")
            && (e.contains("not authorized") || e.contains("bad user name or password")),
        "{e}"
    );
    assert!(!e.contains("wrong-pw"), "{e}");

    let mut tls = broker.options("pinclaw-t8");
    tls.tls = true;
    let e = mqtt::check(tls, Duration::from_secs(10)).expect_err("TLS to a plain port");
    assert!(e.contains("TLS handshake with 127.0.0.1"), "{e}");

    let mut nobody = broker.options("pinclaw-t8");
    nobody.port = free_port();
    let e = mqtt::check(nobody, Duration::from_secs(10)).expect_err("nothing listening");
    assert!(e.contains("cannot connect to 127.0.0.1"), "{e}");
}
