//! The three frame types: `req`, `res` and `event`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ErrorShape;

/// A request frame (client → gateway).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RequestFrame {
    /// Always `"req"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Client-chosen id echoed in the response.
    pub id: String,
    /// Method name.
    pub method: String,
    /// Method parameters (`null` when absent).
    #[serde(default)]
    pub params: Value,
}

/// Why an incoming text frame is not a usable request.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameError {
    /// Not JSON, not an object, or not `type:"req"` with a string id and method.
    NotARequest,
}

/// Parse one incoming text frame as a request.
pub fn parse_request(text: &str) -> Result<RequestFrame, FrameError> {
    let frame: RequestFrame = serde_json::from_str(text).map_err(|_| FrameError::NotARequest)?;
    if frame.kind != "req" || frame.id.is_empty() || frame.method.is_empty() {
        return Err(FrameError::NotARequest);
    }
    Ok(frame)
}

/// Best-effort request id from a frame that failed to parse, so the error
/// response can still echo it.
pub fn salvage_id(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

/// Serialize a successful response.
pub fn response_ok(id: &str, payload: &Value) -> String {
    serde_json::json!({"type": "res", "id": id, "ok": true, "payload": payload}).to_string()
}

/// Serialize a failed response.
pub fn response_err(id: &str, error: &ErrorShape) -> String {
    serde_json::json!({"type": "res", "id": id, "ok": false, "error": error}).to_string()
}

/// Serialize an event without `seq` (targeted events such as `connect.challenge`).
pub fn event_unsequenced(event: &str, payload: &Value) -> String {
    serde_json::json!({"type": "event", "event": event, "payload": payload}).to_string()
}

/// Serialize a broadcast event from its pre-serialized payload, stamping the
/// per-connection `seq` and optional pre-serialized `stateVersion`.
pub fn event_sequenced(
    event: &str,
    payload_json: &str,
    seq: u64,
    state_version: Option<&str>,
) -> String {
    let name = Value::String(event.to_owned()).to_string();
    let mut out = String::with_capacity(payload_json.len() + name.len() + 64);
    out.push_str("{\"type\":\"event\",\"event\":");
    out.push_str(&name);
    out.push_str(",\"payload\":");
    out.push_str(payload_json);
    out.push_str(",\"seq\":");
    out.push_str(&seq.to_string());
    if let Some(sv) = state_version {
        out.push_str(",\"stateVersion\":");
        out.push_str(sv);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request_and_rejects_other_frames() {
        let req = parse_request(r#"{"type":"req","id":"1","method":"health","params":{}}"#);
        assert_eq!(req.map(|r| r.method), Ok("health".to_owned()));
        assert_eq!(parse_request("{}").err(), Some(FrameError::NotARequest));
        assert_eq!(parse_request("nope").err(), Some(FrameError::NotARequest));
        assert_eq!(
            parse_request(r#"{"type":"event","id":"1","method":"x"}"#).err(),
            Some(FrameError::NotARequest)
        );
    }

    #[test]
    fn sequenced_event_is_valid_json() {
        let text = event_sequenced(
            "tick",
            r#"{"ts":1}"#,
            7,
            Some(r#"{"presence":1,"health":2}"#),
        );
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(v["seq"], 7);
        assert_eq!(v["payload"]["ts"], 1);
        assert_eq!(v["stateVersion"]["health"], 2);
    }
}
