use super::*;

/// Decode everything, fed whole, byte by byte and in pieces of 3 and 7:
/// every split must give the same packets and the same error.
fn decode_all(bytes: &[u8], max: usize) -> (Vec<Packet>, Result<(), DecodeError>) {
    let run = |piece: usize| {
        let mut d = Decoder::new(max);
        let mut out = Vec::new();
        let mut result = Ok(());
        for chunk in bytes.chunks(piece.max(1)) {
            result = d.push(chunk, &mut out);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            assert_eq!(d.buffered(), 0, "a complete stream leaves nothing");
        }
        (out, result)
    };
    let whole = run(bytes.len());
    for piece in [1, 3, 7] {
        assert_eq!(run(piece), whole, "pieces of {piece}");
    }
    whole
}

fn decode_one(bytes: &[u8]) -> Result<Packet, DecodeError> {
    let (mut packets, result) = decode_all(bytes, 1 << 20);
    result?;
    assert_eq!(packets.len(), 1, "{packets:?}");
    Ok(packets.remove(0))
}

fn encoded(packet: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    packet.encode(&mut out).expect("encodes");
    out
}

fn publish(topic: &str, payload: &[u8], packet_id: Option<u16>, retain: bool, dup: bool) -> Packet {
    Packet::Publish(Publish {
        topic: topic.into(),
        payload: payload.to_vec(),
        packet_id,
        retain,
        dup,
    })
}

#[test]
fn every_broker_packet_round_trips() {
    let packets = [
        Packet::ConnAck {
            session_present: false,
            return_code: 0,
        },
        Packet::ConnAck {
            session_present: true,
            return_code: 5,
        },
        publish("a/b", b"hello", None, false, false),
        publish("a/b", b"", Some(7), true, false),
        publish("küche/temp", &[0, 255, 10], Some(65_535), false, true),
        publish("t", &vec![b'x'; 20_000], Some(1), true, false),
        Packet::PubAck { packet_id: 1 },
        Packet::SubAck {
            packet_id: 9,
            return_codes: vec![0, 1, 2, SUBACK_FAILURE],
        },
        Packet::UnsubAck { packet_id: 300 },
        Packet::PingResp,
    ];
    let mut stream = Vec::new();
    for packet in &packets {
        let bytes = encoded(packet);
        assert_eq!(decode_one(&bytes).as_ref(), Ok(packet));
        stream.extend_from_slice(&bytes);
    }
    let (all, result) = decode_all(&stream, 1 << 20);
    assert_eq!(result, Ok(()));
    assert_eq!(all, packets);
}

#[test]
fn known_bytes() {
    assert_eq!(encoded(&Packet::PingResp), [0xd0, 0]);
    assert_eq!(
        encoded(&Packet::PubAck { packet_id: 0x0102 }),
        [0x40, 2, 1, 2]
    );
    assert_eq!(
        encoded(&publish("a/b", b"hi", Some(10), true, true)),
        [0x3b, 9, 0, 3, b'a', b'/', b'b', 0, 10, b'h', b'i']
    );
    let mut out = Vec::new();
    encode_pingreq(&mut out);
    encode_disconnect(&mut out);
    encode_puback(5, &mut out);
    assert_eq!(out, [0xc0, 0, 0xe0, 0, 0x40, 2, 0, 5]);
}

#[test]
fn remaining_length_varint_boundaries() {
    for len in [
        0,
        127,
        128,
        16_383,
        16_384,
        2_097_151,
        2_097_152,
        MAX_REMAINING_LENGTH,
    ] {
        let mut out = Vec::new();
        header(&mut out, 0x30, len).expect("fits");
        let header_len = out.len();
        assert_eq!(
            frame_length(&out, usize::MAX),
            Ok(Some((header_len, header_len + len))),
            "{len}"
        );
        // Every prefix of the header is still incomplete.
        for cut in 0..header_len {
            assert_eq!(frame_length(&out[..cut], usize::MAX), Ok(None));
        }
    }
    assert_eq!(
        header(&mut Vec::new(), 0x30, MAX_REMAINING_LENGTH + 1),
        Err(EncodeError::TooLarge(MAX_REMAINING_LENGTH + 1))
    );
    for (topic_len, payload_len) in [(1, 0), (3, 120), (3, 123), (10, 20_000), (5, 3_000_000)] {
        let topic = "t".repeat(topic_len);
        let payload = vec![0; payload_len];
        for id in [None, Some(1)] {
            let mut out = Vec::new();
            encode_publish(&topic, &payload, id, false, false, &mut out).expect("encodes");
            assert_eq!(publish_size(&topic, payload_len, id.is_some()), out.len());
        }
    }
}

#[test]
fn malformed_input_gives_a_specific_error() {
    let cases: &[(&[u8], DecodeError)] = &[
        (
            &[0x30, 0xff, 0xff, 0xff, 0xff, 0x01],
            DecodeError::BadLength,
        ),
        (&[0x30, 0x80, 0x80, 0x80, 0x80], DecodeError::BadLength),
        (&[0x30, 3, 0, 5, b'a'], DecodeError::Truncated("PUBLISH")),
        (&[0x30, 1, 0], DecodeError::Truncated("PUBLISH")),
        (&[0x32, 3, 0, 1, b'a'], DecodeError::Truncated("PUBLISH")),
        (&[0x34, 3, 0, 1, b'a'], DecodeError::QoS2),
        (&[0x36, 3, 0, 1, b'a'], DecodeError::BadQoS),
        (&[0x38, 3, 0, 1, b'a'], DecodeError::BadFlags("PUBLISH")),
        (&[0x30, 2, 0, 0], DecodeError::Topic(TopicError::Empty)),
        (&[0x30, 4, 0, 2, 0xff, 0xfe], DecodeError::BadUtf8),
        (
            &[0x30, 4, 0, 2, b'a', 0],
            DecodeError::Topic(TopicError::Nul),
        ),
        (
            &[0x30, 4, 0, 2, b'a', b'#'],
            DecodeError::Topic(TopicError::Wildcard),
        ),
        (
            &[0x32, 5, 0, 1, b'a', 0, 0],
            DecodeError::ZeroPacketId("PUBLISH"),
        ),
        (&[0x20, 2, 2, 0], DecodeError::BadFlags("CONNACK")),
        (&[0x21, 2, 0, 0], DecodeError::BadFlags("CONNACK")),
        (&[0x20, 3, 0, 0, 0], DecodeError::Trailing("CONNACK")),
        (&[0x20, 1, 0], DecodeError::Truncated("CONNACK")),
        (&[0x40, 2, 0, 0], DecodeError::ZeroPacketId("PUBACK")),
        (&[0x40, 3, 0, 1, 0], DecodeError::Trailing("PUBACK")),
        (&[0x42, 2, 0, 1], DecodeError::BadFlags("PUBACK")),
        (&[0x90, 2, 0, 1], DecodeError::Truncated("SUBACK")),
        (&[0x90, 3, 0, 1, 3], DecodeError::BadSubAckCode(3)),
        (&[0xb0, 1, 0], DecodeError::Truncated("UNSUBACK")),
        (&[0xd0, 1, 0], DecodeError::Trailing("PINGRESP")),
        (&[0x10, 0], DecodeError::Unexpected(1)),
        (&[0x50, 2, 0, 1], DecodeError::Unexpected(5)),
        (&[0x82, 0], DecodeError::Unexpected(8)),
        (&[0x00, 0], DecodeError::Unexpected(0)),
        (&[0xf0, 0], DecodeError::Unexpected(15)),
    ];
    for (bytes, want) in cases {
        assert_eq!(decode_one(bytes).as_ref(), Err(want), "{bytes:x?}");
    }
}

#[test]
fn packets_before_an_error_are_kept_and_the_error_sticks() {
    let mut stream = encoded(&Packet::PingResp);
    stream.extend_from_slice(&encoded(&Packet::PubAck { packet_id: 3 }));
    stream.extend_from_slice(&[0x34, 3, 0, 1, b'a']);
    stream.extend_from_slice(&encoded(&Packet::PingResp));
    let (packets, result) = decode_all(&stream, 1024);
    assert_eq!(packets, [Packet::PingResp, Packet::PubAck { packet_id: 3 }]);
    assert_eq!(result, Err(DecodeError::QoS2));

    let mut d = Decoder::new(1024);
    let mut out = Vec::new();
    assert_eq!(
        d.push(&[0x34, 3, 0, 1, b'a'], &mut out),
        Err(DecodeError::QoS2)
    );
    assert_eq!(
        d.push(&encoded(&Packet::PingResp), &mut out),
        Err(DecodeError::QoS2)
    );
    assert!(out.is_empty());
}

#[test]
fn an_oversized_packet_is_refused_before_allocation() {
    // A PUBLISH announcing 2 MiB against a 256 KiB cap: refused from the
    // fixed header alone, with nothing buffered beyond the header.
    let max = 256 * 1024;
    let header = [0x30, 0x80, 0x80, 0x80, 0x01];
    for piece in [1, 2, 5] {
        let mut d = Decoder::new(max);
        let mut out = Vec::new();
        let mut result = Ok(());
        for chunk in header.chunks(piece) {
            result = d.push(chunk, &mut out);
            assert!(d.buffered() <= 5);
            assert!(d.buf.capacity() <= 64, "{}", d.buf.capacity());
        }
        assert_eq!(
            result,
            Err(DecodeError::TooLarge {
                size: 5 + 2_097_152,
                max
            })
        );
    }
    // Exactly at the cap is fine, one byte over is not.
    let at_cap = publish("t", &[1; 100 - 2 - 2 - 1], None, false, false);
    let bytes = encoded(&at_cap);
    assert_eq!(bytes.len(), 100);
    assert_eq!(decode_all(&bytes, 100), (vec![at_cap], Ok(())));
    assert_eq!(
        decode_all(&bytes, 99).1,
        Err(DecodeError::TooLarge { size: 100, max: 99 })
    );
    // The largest varint (256 MiB) with the default cap: refused, nothing kept.
    let mut d = Decoder::new(crate::limits::MQTT_MAX_PACKET_BYTES);
    let mut out = Vec::new();
    assert!(matches!(
        d.push(&[0x30, 0xff, 0xff, 0xff, 0x7f], &mut out),
        Err(DecodeError::TooLarge { .. })
    ));
    assert_eq!(d.buffered(), 0);
}

#[test]
fn a_large_packet_grows_the_buffer_only_to_its_size_and_gives_it_back() {
    let big = publish("t", &vec![7; 200_000], Some(2), false, false);
    let bytes = encoded(&big);
    let mut d = Decoder::new(256 * 1024);
    let mut out = Vec::new();
    let (first, rest) = bytes.split_at(10);
    d.push(first, &mut out).expect("header");
    assert!(d.buf.capacity() <= bytes.len());
    d.push(rest, &mut out).expect("body");
    assert_eq!(out, [big]);
    assert!(d.buf.capacity() <= KEEP_BUFFER_BYTES);
}

/// Found by the `mqtt_packet` fuzz target: a SUBACK with 37 return codes
/// was collected into a `Vec<Option<u8>>` that grew by doubling, a
/// 128-byte allocation under a 64-byte cap. The codes are now kept as the
/// bytes received.
#[test]
fn a_suback_with_many_codes_keeps_them_as_received() {
    let mut bytes = vec![0x90, 39, 0x04, 0x00, 0x01];
    bytes.extend_from_slice(&[0; 35]);
    bytes.push(SUBACK_FAILURE);
    let mut codes = vec![1];
    codes.extend_from_slice(&[0; 35]);
    codes.push(SUBACK_FAILURE);
    assert_eq!(
        decode_all(&bytes, 64),
        (
            vec![Packet::SubAck {
                packet_id: 0x0400,
                return_codes: codes,
            }],
            Ok(())
        )
    );
    let mut d = Decoder::new(64);
    let mut out = Vec::new();
    d.push(&bytes, &mut out).expect("decodes");
    let Packet::SubAck { return_codes, .. } = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(return_codes.capacity(), 37);
}

#[test]
fn connack_codes_read_as_reasons() {
    assert_eq!(connack_refusal(0), None);
    let reasons: Vec<String> = (1..=6).filter_map(connack_refusal).collect();
    assert_eq!(
        reasons,
        [
            "unacceptable protocol version",
            "identifier rejected",
            "server unavailable",
            "bad user name or password",
            "not authorized",
            "unknown return code 6"
        ]
    );
}

// ---- what the client sends, read back the way a broker reads it ----

/// A broker's view of a CONNECT.
#[derive(Debug, PartialEq)]
struct ParsedConnect {
    client_id: String,
    clean_session: bool,
    keep_alive_s: u16,
    will: Option<(String, Vec<u8>, u8, bool)>,
    username: Option<String>,
    password: Option<String>,
}

fn body_of(bytes: &[u8], first: u8) -> &[u8] {
    let (header_len, size) = frame_length(bytes, usize::MAX)
        .expect("length")
        .expect("complete");
    assert_eq!(bytes[0], first);
    assert_eq!(size, bytes.len());
    &bytes[header_len..]
}

fn parse_connect(bytes: &[u8]) -> ParsedConnect {
    let mut f = Fields {
        data: body_of(bytes, 0x10),
        packet: "CONNECT",
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("utf-8");
    assert_eq!(f.string().unwrap(), b"MQTT");
    assert_eq!(f.take(1).unwrap(), [4]);
    let flags = f.take(1).unwrap()[0];
    assert_eq!(flags & 1, 0, "reserved bit");
    let keep_alive_s = f.u16().unwrap();
    let client_id = text(f.string().unwrap());
    let will = (flags & 0x04 != 0).then(|| {
        (
            text(f.string().unwrap()),
            f.string().unwrap().to_vec(),
            (flags >> 3) & 3,
            flags & 0x20 != 0,
        )
    });
    if flags & 0x04 == 0 {
        assert_eq!(flags & 0x38, 0, "will flags without a will");
    }
    let username = (flags & 0x80 != 0).then(|| text(f.string().unwrap()));
    let password = (flags & 0x40 != 0).then(|| text(f.string().unwrap()));
    f.end().unwrap();
    ParsedConnect {
        client_id,
        clean_session: flags & 0x02 != 0,
        keep_alive_s,
        will,
        username,
        password,
    }
}

#[test]
fn connect_round_trips_with_every_field() {
    let password = Secret::new("pa55");
    let full = Connect {
        client_id: "pinclaw-hub1",
        clean_session: true,
        keep_alive_s: 30,
        username: Some("pinclaw"),
        password: Some(&password),
        will: Some(Will {
            topic: "pinclaw/hub1/status",
            payload: b"offline",
            qos: 1,
            retain: true,
        }),
    };
    let mut out = Vec::new();
    encode_connect(&full, &mut out).expect("encodes");
    assert_eq!(
        parse_connect(&out),
        ParsedConnect {
            client_id: "pinclaw-hub1".into(),
            clean_session: true,
            keep_alive_s: 30,
            will: Some(("pinclaw/hub1/status".into(), b"offline".to_vec(), 1, true)),
            username: Some("pinclaw".into()),
            password: Some("pa55".into()),
        }
    );

    let bare = Connect {
        client_id: "c",
        clean_session: true,
        keep_alive_s: 60,
        username: None,
        password: None,
        will: None,
    };
    let mut out = Vec::new();
    encode_connect(&bare, &mut out).expect("encodes");
    // The spec's own layout: protocol name, level 4, flags 0x02, keep-alive 60.
    assert_eq!(
        out,
        [
            0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 1, b'c'
        ]
    );
}

#[test]
fn connect_refuses_what_the_protocol_forbids() {
    let password = Secret::new("x");
    let base = Connect {
        client_id: "c",
        clean_session: true,
        keep_alive_s: 60,
        username: None,
        password: None,
        will: None,
    };
    let cases = [
        Connect {
            password: Some(&password),
            ..base
        },
        Connect {
            client_id: "",
            clean_session: false,
            ..base
        },
        Connect {
            will: Some(Will {
                topic: "a/#",
                payload: b"",
                qos: 0,
                retain: false,
            }),
            ..base
        },
        Connect {
            will: Some(Will {
                topic: "a",
                payload: b"",
                qos: 2,
                retain: false,
            }),
            ..base
        },
    ];
    for c in &cases {
        let mut out = Vec::new();
        let e = encode_connect(c, &mut out).expect_err("refused");
        assert!(!e.to_string().contains('x'), "{e}");
        assert!(out.is_empty());
    }
    let long = "u".repeat(70_000);
    let mut out = Vec::new();
    assert_eq!(
        encode_connect(
            &Connect {
                username: Some(&long),
                ..base
            },
            &mut out
        ),
        Err(EncodeError::StringTooLong("user name"))
    );
}

fn parse_filters(bytes: &[u8], first: u8, with_qos: bool) -> (u16, Vec<(String, u8)>) {
    let mut f = Fields {
        data: body_of(bytes, first),
        packet: "SUBSCRIBE",
    };
    let id = f.u16().unwrap();
    let mut filters = Vec::new();
    while !f.data.is_empty() {
        let filter = String::from_utf8(f.string().unwrap().to_vec()).unwrap();
        let qos = if with_qos { f.take(1).unwrap()[0] } else { 0 };
        filters.push((filter, qos));
    }
    (id, filters)
}

#[test]
fn subscribe_and_unsubscribe_round_trip() {
    let mut out = Vec::new();
    encode_subscribe(42, &[("a/+/c", 1), ("#", 0), ("$SYS/#", 2)], &mut out).expect("encodes");
    assert_eq!(
        parse_filters(&out, 0x82, true),
        (
            42,
            vec![("a/+/c".into(), 1), ("#".into(), 0), ("$SYS/#".into(), 2)]
        )
    );
    let mut out = Vec::new();
    encode_unsubscribe(43, &["a/+/c", "b"], &mut out).expect("encodes");
    assert_eq!(
        parse_filters(&out, 0xa2, false),
        (43, vec![("a/+/c".into(), 0), ("b".into(), 0)])
    );
    let mut out = Vec::new();
    assert!(encode_subscribe(1, &[], &mut out).is_err());
    assert!(encode_subscribe(0, &[("a", 1)], &mut out).is_err());
    assert!(encode_subscribe(1, &[("a", 3)], &mut out).is_err());
    assert_eq!(
        encode_subscribe(1, &[("a/b#", 1)], &mut out),
        Err(EncodeError::Topic(TopicError::HashNotLast))
    );
    assert!(encode_unsubscribe(1, &[], &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn publish_refuses_what_the_protocol_forbids() {
    let mut out = Vec::new();
    assert_eq!(
        encode_publish("a/+", b"", None, false, false, &mut out),
        Err(EncodeError::Topic(TopicError::Wildcard))
    );
    assert_eq!(
        encode_publish("", b"", None, false, false, &mut out),
        Err(EncodeError::Topic(TopicError::Empty))
    );
    assert!(encode_publish("a", b"", None, false, true, &mut out).is_err());
    assert!(encode_publish("a", b"", Some(0), false, false, &mut out).is_err());
    assert!(out.is_empty());
}
