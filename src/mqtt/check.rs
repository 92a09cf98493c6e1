//! `pinclaw mqtt check` and the doctor: one round trip through the broker
//! with the configured credentials, each step timed: connect (TCP, TLS,
//! CONNECT → CONNACK), subscribe to a fresh `pinclaw/check/<random>`
//! topic, publish to it with QoS 1 and receive it back, disconnect. Runs
//! on the calling thread; every wait is bounded by the timeout.

use std::time::{Duration, Instant};

use super::client::Options;
use super::connection::{self, Link, Target};
use super::packet::{self, Packet};

/// How long each step of a successful check took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// TCP connect, TLS handshake and CONNECT → CONNACK (auth accepted).
    pub connect: Duration,
    /// SUBSCRIBE → SUBACK.
    pub subscribe: Duration,
    /// PUBLISH (QoS 1) → PUBACK and the message back.
    pub round_trip: Duration,
    /// From the start to the DISCONNECT.
    pub total: Duration,
    /// The topic used.
    pub topic: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Connect with `options` (its will and subscriptions are not used; the
/// client id gets a `-check` suffix so a running gateway keeps its
/// session), subscribe, publish, receive, disconnect, all within
/// `timeout`. The error names the step that failed.
pub fn check(options: Options, timeout: Duration) -> Result<CheckReport, String> {
    options.validate()?;
    let started = Instant::now();
    let deadline = started + timeout;
    let tls = if options.tls {
        Some(connection::tls_config(options.ca_file.as_deref())?)
    } else {
        None
    };
    let target = Target {
        host: &options.host,
        port: options.port,
        tls: tls.as_ref(),
    };
    let client_id = format!("{}-check", options.client_id);
    let mut connect = options.connect_packet();
    connect.client_id = &client_id;
    connect.will = None;
    let never = || false;
    let mut link = Link::open(&target, &connect, options.max_packet, deadline, &never)
        .map_err(|e| format!("connect: {e}"))?;
    let connected = started.elapsed();

    let topic = format!("pinclaw/check/{}", hex(&crate::ids::random_bytes::<8>()));
    let payload = hex(&crate::ids::random_bytes::<8>()).into_bytes();
    let result = round_trip(&mut link, &topic, &payload, deadline);
    let mut out = Vec::new();
    packet::encode_disconnect(&mut out);
    let _ = link.send(&out);
    link.close();
    let (subscribe, round_trip) = result?;
    Ok(CheckReport {
        connect: connected,
        subscribe,
        round_trip,
        total: started.elapsed(),
        topic,
    })
}

/// Wait for packets until `done` says so or the deadline passes.
fn until(
    link: &mut Link,
    deadline: Instant,
    mut done: impl FnMut(Packet, &mut Vec<u8>) -> Result<bool, String>,
) -> Result<bool, String> {
    let mut packets = Vec::new();
    let mut out = Vec::new();
    while Instant::now() < deadline {
        let received = link.receive(&mut packets);
        let mut finished = false;
        for p in packets.drain(..) {
            finished |= done(p, &mut out)?;
        }
        if !out.is_empty() {
            link.send(&out)?;
            out.clear();
        }
        received?;
        if finished {
            return Ok(true);
        }
    }
    Ok(false)
}

fn round_trip(
    link: &mut Link,
    topic: &str,
    payload: &[u8],
    deadline: Instant,
) -> Result<(Duration, Duration), String> {
    let step = Instant::now();
    let mut out = Vec::new();
    packet::encode_subscribe(1, &[(topic, 1)], &mut out).map_err(|e| e.to_string())?;
    link.send(&out).map_err(|e| format!("subscribe: {e}"))?;
    let mut refused = false;
    let subscribed = until(link, deadline, |p, _| match p {
        Packet::SubAck {
            packet_id: 1,
            return_codes,
        } => {
            refused = return_codes
                .first()
                .is_none_or(|&code| code == packet::SUBACK_FAILURE);
            Ok(true)
        }
        _ => Ok(false),
    })
    .map_err(|e| format!("subscribe: {e}"))?;
    if refused {
        return Err(format!(
            "subscribe: the broker refused {topic} (does its ACL allow pinclaw/check/#?)"
        ));
    }
    if !subscribed {
        return Err("subscribe: no SUBACK before the timeout".into());
    }
    let subscribe = step.elapsed();

    let step = Instant::now();
    out.clear();
    packet::encode_publish(topic, payload, Some(2), false, false, &mut out)
        .map_err(|e| e.to_string())?;
    link.send(&out).map_err(|e| format!("publish: {e}"))?;
    let (mut acked, mut echoed) = (false, false);
    let done = until(link, deadline, |p, out| {
        match p {
            Packet::PubAck { packet_id: 2 } => acked = true,
            Packet::Publish(p) if p.topic == topic => {
                if let Some(id) = p.packet_id {
                    packet::encode_puback(id, out);
                }
                echoed |= p.payload == payload;
            }
            _ => {}
        }
        Ok(acked && echoed)
    })
    .map_err(|e| format!("round trip: {e}"))?;
    if !done {
        return Err(match (acked, echoed) {
            (false, _) => {
                "round trip: the broker did not acknowledge the publish before the timeout".into()
            }
            (true, _) => format!(
                "round trip: the broker took the message but did not deliver it back before the timeout (does its ACL allow publishing to {topic}?)"
            ),
        });
    }
    Ok((subscribe, step.elapsed()))
}
