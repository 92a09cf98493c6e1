//! `gateway::http::parse_head` on any bytes a client may send before its
//! request head is complete, fed whole and cut at a fuzzer-chosen point
//! (the gateway parses again after every read, so a prefix must never
//! disagree with the whole).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinclaw::gateway::http::{HeadError, parse_head};

fuzz_target!(|input: (u16, &[u8])| {
    let (split, data) = input;
    let whole = parse_head(data);
    if let Ok(Some((head, len))) = &whole {
        assert!(*len <= data.len());
        assert!(*len <= pinclaw::limits::MAX_HTTP_HEAD_BYTES);
        for (name, _) in &head.headers {
            assert_eq!(name, &name.to_ascii_lowercase(), "names are stored lowercased");
            assert!(head.header(name).is_some());
        }
        let _ = head.websocket_key();
        let _ = head.is_forwarded_or_browser();
    }
    let cut = usize::from(split) % (data.len() + 1);
    let prefix = parse_head(&data[..cut]);
    match (&prefix, &whole) {
        // A complete head in the prefix is the whole's head.
        (Ok(Some((a, la))), Ok(Some((b, lb)))) => {
            assert_eq!(la, lb);
            assert_eq!((&a.method, &a.path), (&b.method, &b.path));
        }
        (Ok(Some(_)), other) => panic!("the prefix parsed, the whole gave {other:?}"),
        // Bytes that are malformed stay malformed.
        (Err(HeadError::Malformed), Err(HeadError::Malformed)) => {}
        (Err(HeadError::Malformed), other) => {
            panic!("the prefix was malformed, the whole gave {other:?}")
        }
        _ => {}
    }
});
