//! `protocol::frames::parse_request` and `salvage_id` on any text a client
//! may send as a WebSocket text frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinclaw::protocol::frames::{parse_request, salvage_id};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let salvaged = salvage_id(&text);
    match parse_request(&text) {
        Ok(frame) => {
            // Only a complete `req` frame is accepted.
            assert_eq!(frame.kind, "req");
            assert!(!frame.id.is_empty() && !frame.method.is_empty());
            // The error path salvages the same id the parser saw.
            assert_eq!(salvaged, frame.id);
            // A frame re-serialized by us parses back to the same request.
            let again = serde_json::to_string(&frame).expect("a parsed frame serializes");
            let back = parse_request(&again).expect("a re-serialized frame parses");
            assert_eq!((back.id, back.method), (frame.id, frame.method));
        }
        Err(_) => {
            // Whatever was salvaged is the frame's own string `id`.
            if !salvaged.is_empty() {
                let v: Value = serde_json::from_str(&text).expect("an id came from valid JSON");
                assert_eq!(v.get("id").and_then(Value::as_str), Some(salvaged.as_str()));
            }
        }
    }
});
