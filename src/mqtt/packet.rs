//! MQTT 3.1.1 packets, without I/O: encoders for what a client sends
//! (CONNECT, PUBLISH, PUBACK, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT)
//! and a streaming [`Decoder`] for what a broker sends (CONNACK, PUBLISH,
//! PUBACK, SUBACK, UNSUBACK, PINGRESP).
//!
//! Decoding is strict: every length is checked against the bytes present,
//! reserved flags must be zero, topics must be valid UTF-8 topic names,
//! QoS 2 is refused (pinclaw never asks for it), and a packet whose fixed
//! header announces more than the cap is refused before anything is
//! allocated for it. The decoder gives the same packets and the same error
//! however the bytes are cut into pieces.

use super::topic::{self, TopicError};
use crate::config::Secret;

/// The largest remaining length the 4-byte varint can carry.
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PUBACK: u8 = 4;
const SUBSCRIBE: u8 = 8;
const SUBACK: u8 = 9;
const UNSUBSCRIBE: u8 = 10;
const UNSUBACK: u8 = 11;
const PINGREQ: u8 = 12;
const PINGRESP: u8 = 13;
const DISCONNECT: u8 = 14;

/// The SUBACK return code of a refused subscription (the others are the
/// granted QoS, 0–2).
pub const SUBACK_FAILURE: u8 = 0x80;

/// A decoder buffer grown past this is given back after its packet.
const KEEP_BUFFER_BYTES: usize = 16 * 1024;

/// A packet from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// The answer to CONNECT; `return_code` 0 is success (see
    /// [`connack_refusal`]).
    ConnAck {
        /// The broker kept a session (never, with a clean session).
        session_present: bool,
        /// 0 accepted; 1–5 refusals.
        return_code: u8,
    },
    /// A message.
    Publish(Publish),
    /// A QoS 1 publish of ours arrived.
    PubAck {
        /// The publish's packet id.
        packet_id: u16,
    },
    /// The answer to SUBSCRIBE.
    SubAck {
        /// The subscribe's packet id.
        packet_id: u16,
        /// One code per filter, in order: the granted QoS (0–2) or
        /// [`SUBACK_FAILURE`]. Kept as the bytes received, so it takes no
        /// more memory than the packet did.
        return_codes: Vec<u8>,
    },
    /// The answer to UNSUBSCRIBE.
    UnsubAck {
        /// The unsubscribe's packet id.
        packet_id: u16,
    },
    /// The answer to PINGREQ.
    PingResp,
}

/// A PUBLISH packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// A valid topic name.
    pub topic: String,
    /// The payload (any bytes).
    pub payload: Vec<u8>,
    /// `Some` (non-zero) exactly for QoS 1; `None` is QoS 0.
    pub packet_id: Option<u16>,
    /// The retain flag (from a broker: a retained message replayed on
    /// subscribe).
    pub retain: bool,
    /// A re-delivery of an earlier attempt (QoS 1 only).
    pub dup: bool,
}

/// The last will a CONNECT carries: the broker publishes it when the
/// connection ends without DISCONNECT.
#[derive(Debug, Clone, Copy)]
pub struct Will<'a> {
    /// A valid topic name.
    pub topic: &'a str,
    /// At most 65535 bytes.
    pub payload: &'a [u8],
    /// 0 or 1.
    pub qos: u8,
    /// Publish it retained.
    pub retain: bool,
}

/// A CONNECT packet.
#[derive(Debug, Clone, Copy)]
pub struct Connect<'a> {
    /// May be empty only with a clean session.
    pub client_id: &'a str,
    /// Start without any state kept from an earlier session.
    pub clean_session: bool,
    /// Seconds; 0 turns the broker's keep-alive check off.
    pub keep_alive_s: u16,
    /// The user name, if any.
    pub username: Option<&'a str>,
    /// The password (MQTT 3.1.1 allows one only with a user name).
    pub password: Option<&'a Secret>,
    /// The last will, if any.
    pub will: Option<Will<'a>>,
}

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A string or binary field over 65535 bytes.
    #[error("the {0} is longer than 65535 bytes")]
    StringTooLong(&'static str),
    /// Over MQTT's remaining-length limit (256 MiB).
    #[error("a packet of {0} bytes is over MQTT's limit")]
    TooLarge(usize),
    /// A topic name or filter that is not valid.
    #[error("invalid topic: {0}")]
    Topic(TopicError),
    /// Anything else the protocol forbids.
    #[error("{0}")]
    Invalid(&'static str),
}

/// Why the bytes from a broker are not a valid packet stream. The
/// connection cannot continue after one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The remaining-length varint runs over 4 bytes.
    #[error("malformed remaining length (more than 4 bytes)")]
    BadLength,
    /// The fixed header announces more than the cap.
    #[error("a packet of {size} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Bytes announced (whole packet).
        size: usize,
        /// The cap.
        max: usize,
    },
    /// A field runs past the end of the packet.
    #[error("truncated {0} packet")]
    Truncated(&'static str),
    /// Bytes left over after the last field.
    #[error("{0} packet has trailing bytes")]
    Trailing(&'static str),
    /// Reserved flag bits set.
    #[error("{0} packet has invalid flags")]
    BadFlags(&'static str),
    /// A packet a broker must not send to a client (or a QoS 2 flow).
    #[error("unexpected packet type {0} from the broker")]
    Unexpected(u8),
    /// A QoS 2 publish (pinclaw subscribes with QoS 1 at most).
    #[error("QoS 2 publish refused (pinclaw subscribes with QoS 1 at most)")]
    QoS2,
    /// QoS bits set to 3.
    #[error("PUBLISH with the invalid QoS 3")]
    BadQoS,
    /// Packet id 0, which MQTT forbids.
    #[error("{0} packet with packet id 0")]
    ZeroPacketId(&'static str),
    /// A topic that is not UTF-8.
    #[error("PUBLISH topic is not valid UTF-8")]
    BadUtf8,
    /// A topic that is not a valid topic name.
    #[error("PUBLISH with an invalid topic: {0}")]
    Topic(TopicError),
    /// A SUBACK code other than 0, 1, 2 or 0x80.
    #[error("SUBACK with the invalid return code {0:#04x}")]
    BadSubAckCode(u8),
}

/// The reason a CONNACK return code refuses the connection, or `None` for
/// 0 (accepted).
pub fn connack_refusal(return_code: u8) -> Option<String> {
    let reason = match return_code {
        0 => return None,
        1 => "unacceptable protocol version",
        2 => "identifier rejected",
        3 => "server unavailable",
        4 => "bad user name or password",
        5 => "not authorized",
        other => return Some(format!("unknown return code {other}")),
    };
    Some(reason.to_owned())
}

// ---- encoding ----

fn header(out: &mut Vec<u8>, first: u8, remaining: usize) -> Result<(), EncodeError> {
    if remaining > MAX_REMAINING_LENGTH {
        return Err(EncodeError::TooLarge(remaining));
    }
    out.push(first);
    let mut n = remaining;
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return Ok(());
        }
    }
}

/// 2 + the length of a length-prefixed field, or an error over 65535 bytes.
fn field_len(what: &'static str, bytes: &[u8]) -> Result<usize, EncodeError> {
    if bytes.len() > usize::from(u16::MAX) {
        return Err(EncodeError::StringTooLong(what));
    }
    Ok(2 + bytes.len())
}

/// A length-prefixed field (checked by [`field_len`] first).
fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn nonzero(packet_id: u16) -> Result<u16, EncodeError> {
    if packet_id == 0 {
        return Err(EncodeError::Invalid("packet id 0 is not allowed"));
    }
    Ok(packet_id)
}

/// Append a CONNECT packet.
pub fn encode_connect(c: &Connect<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if c.password.is_some() && c.username.is_none() {
        return Err(EncodeError::Invalid(
            "MQTT 3.1.1 allows a password only with a user name",
        ));
    }
    if c.client_id.is_empty() && !c.clean_session {
        return Err(EncodeError::Invalid(
            "an empty client id needs a clean session",
        ));
    }
    let password = c.password.map(|p| p.expose().as_bytes());
    let mut remaining = 10 + field_len("client id", c.client_id.as_bytes())?;
    let mut flags = 0u8;
    if c.clean_session {
        flags |= 0x02;
    }
    if let Some(will) = &c.will {
        topic::check_topic_name(will.topic).map_err(EncodeError::Topic)?;
        if will.qos > 1 {
            return Err(EncodeError::Invalid("the will's QoS must be 0 or 1"));
        }
        remaining += field_len("will topic", will.topic.as_bytes())?;
        remaining += field_len("will payload", will.payload)?;
        flags |= 0x04 | (will.qos << 3);
        if will.retain {
            flags |= 0x20;
        }
    }
    if let Some(username) = c.username {
        remaining += field_len("user name", username.as_bytes())?;
        flags |= 0x80;
    }
    if let Some(password) = password {
        remaining += field_len("password", password)?;
        flags |= 0x40;
    }
    header(out, CONNECT << 4, remaining)?;
    field(out, b"MQTT");
    out.push(4); // protocol level 3.1.1
    out.push(flags);
    out.extend_from_slice(&c.keep_alive_s.to_be_bytes());
    field(out, c.client_id.as_bytes());
    if let Some(will) = &c.will {
        field(out, will.topic.as_bytes());
        field(out, will.payload);
    }
    if let Some(username) = c.username {
        field(out, username.as_bytes());
    }
    if let Some(password) = password {
        field(out, password);
    }
    Ok(())
}

/// Bytes a PUBLISH of this topic and payload takes on the wire.
pub fn publish_size(topic: &str, payload_len: usize, qos1: bool) -> usize {
    let remaining = 2 + topic.len() + if qos1 { 2 } else { 0 } + payload_len;
    let varint = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + varint + remaining
}

/// Append a PUBLISH packet: QoS 1 when `packet_id` is `Some`, else QoS 0
/// (which may not carry `dup`).
pub fn encode_publish(
    topic: &str,
    payload: &[u8],
    packet_id: Option<u16>,
    retain: bool,
    dup: bool,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    topic::check_topic_name(topic).map_err(EncodeError::Topic)?;
    let mut first = PUBLISH << 4;
    if retain {
        first |= 0x01;
    }
    match packet_id {
        Some(id) => {
            nonzero(id)?;
            first |= 0x02;
            if dup {
                first |= 0x08;
            }
        }
        None if dup => return Err(EncodeError::Invalid("a QoS 0 publish cannot be a DUP")),
        None => {}
    }
    let remaining = field_len("topic", topic.as_bytes())?
        + if packet_id.is_some() { 2 } else { 0 }
        + payload.len();
    header(out, first, remaining)?;
    field(out, topic.as_bytes());
    if let Some(id) = packet_id {
        out.extend_from_slice(&id.to_be_bytes());
    }
    out.extend_from_slice(payload);
    Ok(())
}

/// Append a PUBACK for a QoS 1 publish received.
pub fn encode_puback(packet_id: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&[PUBACK << 4, 2]);
    out.extend_from_slice(&packet_id.to_be_bytes());
}

/// Append a SUBSCRIBE for these filters, each with its requested QoS (0–2).
pub fn encode_subscribe(
    packet_id: u16,
    filters: &[(&str, u8)],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    nonzero(packet_id)?;
    if filters.is_empty() {
        return Err(EncodeError::Invalid("SUBSCRIBE needs at least one filter"));
    }
    let mut remaining = 2;
    for (filter, qos) in filters {
        topic::check_topic_filter(filter).map_err(EncodeError::Topic)?;
        if *qos > 2 {
            return Err(EncodeError::Invalid(
                "a subscription's QoS must be 0, 1 or 2",
            ));
        }
        remaining += field_len("topic filter", filter.as_bytes())? + 1;
    }
    header(out, SUBSCRIBE << 4 | 0x02, remaining)?;
    out.extend_from_slice(&packet_id.to_be_bytes());
    for (filter, qos) in filters {
        field(out, filter.as_bytes());
        out.push(*qos);
    }
    Ok(())
}

/// Append an UNSUBSCRIBE for these filters.
pub fn encode_unsubscribe(
    packet_id: u16,
    filters: &[&str],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    nonzero(packet_id)?;
    if filters.is_empty() {
        return Err(EncodeError::Invalid(
            "UNSUBSCRIBE needs at least one filter",
        ));
    }
    let mut remaining = 2;
    for filter in filters {
        topic::check_topic_filter(filter).map_err(EncodeError::Topic)?;
        remaining += field_len("topic filter", filter.as_bytes())?;
    }
    header(out, UNSUBSCRIBE << 4 | 0x02, remaining)?;
    out.extend_from_slice(&packet_id.to_be_bytes());
    for filter in filters {
        field(out, filter.as_bytes());
    }
    Ok(())
}

/// Append a PINGREQ.
pub fn encode_pingreq(out: &mut Vec<u8>) {
    out.extend_from_slice(&[PINGREQ << 4, 0]);
}

/// Append a DISCONNECT (the broker then discards the will).
pub fn encode_disconnect(out: &mut Vec<u8>) {
    out.extend_from_slice(&[DISCONNECT << 4, 0]);
}

impl Publish {
    /// Append this publish as a packet.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_publish(
            &self.topic,
            &self.payload,
            self.packet_id,
            self.retain,
            self.dup,
            out,
        )
    }
}

impl Packet {
    /// Append this packet as a broker would send it (for tests, the fuzz
    /// target and test brokers).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Packet::ConnAck {
                session_present,
                return_code,
            } => {
                out.extend_from_slice(&[CONNACK << 4, 2, u8::from(*session_present), *return_code])
            }
            Packet::Publish(publish) => publish.encode(out)?,
            Packet::PubAck { packet_id } => encode_puback(nonzero(*packet_id)?, out),
            Packet::SubAck {
                packet_id,
                return_codes,
            } => {
                nonzero(*packet_id)?;
                header(out, SUBACK << 4, 2 + return_codes.len())?;
                out.extend_from_slice(&packet_id.to_be_bytes());
                out.extend_from_slice(return_codes);
            }
            Packet::UnsubAck { packet_id } => {
                out.extend_from_slice(&[UNSUBACK << 4, 2]);
                out.extend_from_slice(&nonzero(*packet_id)?.to_be_bytes());
            }
            Packet::PingResp => out.extend_from_slice(&[PINGRESP << 4, 0]),
        }
        Ok(())
    }
}

// ---- decoding ----

/// The fixed header's length and the whole packet's length, once the
/// header is complete (`None` before). Refuses a packet over `max` here,
/// before anything is buffered for it.
pub fn frame_length(bytes: &[u8], max: usize) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut remaining = 0usize;
    for i in 0..4 {
        let Some(&byte) = bytes.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let header_len = 2 + i;
            let size = header_len + remaining;
            if size > max {
                return Err(DecodeError::TooLarge { size, max });
            }
            return Ok(Some((header_len, size)));
        }
    }
    Err(DecodeError::BadLength)
}

/// Reads the fields of one packet's body.
struct Fields<'a> {
    data: &'a [u8],
    packet: &'static str,
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.data.len() < n {
            return Err(DecodeError::Truncated(self.packet));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn packet_id(&mut self) -> Result<u16, DecodeError> {
        match self.u16()? {
            0 => Err(DecodeError::ZeroPacketId(self.packet)),
            id => Ok(id),
        }
    }

    fn string(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    fn end(self) -> Result<(), DecodeError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing(self.packet))
        }
    }
}

/// Decode one whole packet (`frame` is exactly header + body).
fn decode(frame: &[u8], header_len: usize) -> Result<Packet, DecodeError> {
    let kind = frame[0] >> 4;
    let flags = frame[0] & 0x0f;
    let body = &frame[header_len..];
    let name = match kind {
        CONNACK => "CONNACK",
        PUBLISH => return decode_publish(flags, body),
        PUBACK => "PUBACK",
        SUBACK => "SUBACK",
        UNSUBACK => "UNSUBACK",
        PINGRESP => "PINGRESP",
        other => return Err(DecodeError::Unexpected(other)),
    };
    if flags != 0 {
        return Err(DecodeError::BadFlags(name));
    }
    let mut f = Fields {
        data: body,
        packet: name,
    };
    let packet = match kind {
        CONNACK => {
            let b = f.take(2)?;
            if b[0] & 0xfe != 0 {
                return Err(DecodeError::BadFlags(name));
            }
            Packet::ConnAck {
                session_present: b[0] & 1 == 1,
                return_code: b[1],
            }
        }
        PUBACK => Packet::PubAck {
            packet_id: f.packet_id()?,
        },
        SUBACK => {
            let packet_id = f.packet_id()?;
            if f.data.is_empty() {
                return Err(DecodeError::Truncated(name));
            }
            let codes = f.take(f.data.len())?;
            if let Some(&bad) = codes
                .iter()
                .find(|&&code| code > 2 && code != SUBACK_FAILURE)
            {
                return Err(DecodeError::BadSubAckCode(bad));
            }
            Packet::SubAck {
                packet_id,
                return_codes: codes.to_vec(),
            }
        }
        UNSUBACK => Packet::UnsubAck {
            packet_id: f.packet_id()?,
        },
        _ => Packet::PingResp,
    };
    f.end()?;
    Ok(packet)
}

fn decode_publish(flags: u8, body: &[u8]) -> Result<Packet, DecodeError> {
    let dup = flags & 0x08 != 0;
    let retain = flags & 0x01 != 0;
    let qos1 = match (flags >> 1) & 0x03 {
        0 => false,
        1 => true,
        2 => return Err(DecodeError::QoS2),
        _ => return Err(DecodeError::BadQoS),
    };
    if dup && !qos1 {
        return Err(DecodeError::BadFlags("PUBLISH"));
    }
    let mut f = Fields {
        data: body,
        packet: "PUBLISH",
    };
    let topic = std::str::from_utf8(f.string()?).map_err(|_| DecodeError::BadUtf8)?;
    topic::check_topic_name(topic).map_err(DecodeError::Topic)?;
    let packet_id = if qos1 { Some(f.packet_id()?) } else { None };
    Ok(Packet::Publish(Publish {
        topic: topic.to_owned(),
        payload: f.data.to_vec(),
        packet_id,
        retain,
        dup,
    }))
}

/// Turns the bytes from a broker, as they arrive, into packets. Holds at
/// most one incomplete packet (never more than the cap).
#[derive(Debug)]
pub struct Decoder {
    max_packet: usize,
    buf: Vec<u8>,
    failed: Option<DecodeError>,
}

impl Decoder {
    /// Refusing packets over `max_packet` bytes (header included).
    pub fn new(max_packet: usize) -> Self {
        Self {
            max_packet,
            buf: Vec::new(),
            failed: None,
        }
    }

    /// Bytes held of an incomplete packet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feed the next bytes; each packet they complete is appended to
    /// `out`, in order. An error ends the stream: the packets before it
    /// are in `out`, and every later push returns the same error.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<Packet>) -> Result<(), DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.push_inner(data, out);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
            self.buf = Vec::new();
        }
        result
    }

    fn push_inner(&mut self, mut data: &[u8], out: &mut Vec<Packet>) -> Result<(), DecodeError> {
        while !data.is_empty() {
            // Whole packets straight from the input, without copying.
            if self.buf.is_empty()
                && let Some((header_len, size)) = frame_length(data, self.max_packet)?
                && size <= data.len()
            {
                out.push(decode(&data[..size], header_len)?);
                data = &data[size..];
                continue;
            }
            // Otherwise collect: the header byte by byte, then the body.
            match frame_length(&self.buf, self.max_packet)? {
                None => {
                    self.buf.push(data[0]);
                    data = &data[1..];
                }
                Some((_, size)) => {
                    if self.buf.capacity() < size {
                        self.buf.reserve_exact(size - self.buf.len());
                    }
                    let take = (size - self.buf.len()).min(data.len());
                    self.buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                }
            }
            if let Some((header_len, size)) = frame_length(&self.buf, self.max_packet)?
                && self.buf.len() == size
            {
                let packet = decode(&self.buf, header_len);
                self.buf.clear();
                if self.buf.capacity() > KEEP_BUFFER_BYTES {
                    self.buf = Vec::new();
                }
                out.push(packet?);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
