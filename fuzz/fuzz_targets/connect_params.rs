//! `connect` parameters from a client, and the decisions made on them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinclaw::protocol::connect::{ConnectParams, Role};
use pinclaw::protocol::{MIN_LEGACY_PROTOCOL_VERSION, PROTOCOL_VERSION};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(params) = serde_json::from_str::<ConnectParams>(&text) else {
        return;
    };
    let role = params.role();
    match params.role.as_deref() {
        None | Some("operator") => assert_eq!(role, Some(Role::Operator)),
        Some("node") => assert_eq!(role, Some(Role::Node)),
        Some(_) => assert_eq!(role, None),
    }

    let acceptable = params.protocol_acceptable();
    let negotiated = params.negotiated_protocol();
    let (min, max) = (params.min_protocol, params.max_protocol);
    // Every range that covers the current protocol is accepted, and speaks it.
    if min <= PROTOCOL_VERSION && PROTOCOL_VERSION <= max {
        assert!(acceptable);
        assert_eq!(negotiated, PROTOCOL_VERSION);
    }
    // An accepted connection speaks a protocol pinclaw knows, never above the
    // client's maximum.
    if acceptable {
        assert!((MIN_LEGACY_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&negotiated));
        assert!(negotiated <= max);
    }
    // Nothing below the legacy floor is ever accepted.
    if max < MIN_LEGACY_PROTOCOL_VERSION || min > PROTOCOL_VERSION {
        assert!(!acceptable);
    }

    // The signature token is the first non-empty credential, or "".
    let token = params.signature_token();
    let candidates = [
        &params.auth.token,
        &params.auth.device_token,
        &params.auth.bootstrap_token,
    ];
    let first = candidates
        .iter()
        .filter_map(|t| t.as_deref())
        .find(|t| !t.is_empty())
        .unwrap_or("");
    assert_eq!(token, first);
});
