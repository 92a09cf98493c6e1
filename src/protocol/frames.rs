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

/// A response payload: a JSON value, or JSON text serialized already (a
/// hot method can serialize a typed struct directly, without building a
/// value tree first).
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A JSON value.
    Value(Value),
    /// Valid JSON text.
    Json(String),
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Payload::Value(value)
    }
}

impl Payload {
    /// Serialize `data` as JSON text now.
    pub fn json(data: &impl Serialize) -> Self {
        Payload::Json(serde_json::to_string(data).unwrap_or_else(|_| "null".into()))
    }

    /// The payload as a JSON value (parses JSON text).
    pub fn into_value(self) -> Value {
        match self {
            Payload::Value(v) => v,
            Payload::Json(text) => serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }
}

/// A `res` frame borrowing its parts (serialized without copying them).
#[derive(Serialize)]
struct Response<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorShape>,
}

/// An unsequenced `event` frame borrowing its parts.
#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    event: &'a str,
    payload: &'a Value,
}

/// JSON text of a frame (serializing these shapes cannot fail: every map
/// key is a string).
fn to_text(frame: &impl Serialize) -> String {
    serde_json::to_string(frame).unwrap_or_default()
}

/// Serialize a successful response.
pub fn response_ok(id: &str, payload: &Value) -> String {
    to_text(&Response {
        kind: "res",
        id,
        ok: true,
        payload: Some(payload),
        error: None,
    })
}

/// Serialize a successful response from a [`Payload`].
pub fn response_payload(id: &str, payload: &Payload) -> String {
    match payload {
        Payload::Value(v) => response_ok(id, v),
        Payload::Json(text) => {
            let id = Value::String(id.to_owned()).to_string();
            let mut out = String::with_capacity(text.len() + id.len() + 40);
            out.push_str("{\"type\":\"res\",\"id\":");
            out.push_str(&id);
            out.push_str(",\"ok\":true,\"payload\":");
            out.push_str(text);
            out.push('}');
            out
        }
    }
}

/// Serialize a failed response.
pub fn response_err(id: &str, error: &ErrorShape) -> String {
    to_text(&Response {
        kind: "res",
        id,
        ok: false,
        payload: None,
        error: Some(error),
    })
}

/// Serialize an event without `seq` (targeted events such as `connect.challenge`).
pub fn event_unsequenced(event: &str, payload: &Value) -> String {
    to_text(&Event {
        kind: "event",
        event,
        payload,
    })
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
    fn responses_and_events_have_the_protocol_shape() {
        let ok: Value = serde_json::from_str(&response_ok("a\"1", &serde_json::json!({"x": 1})))
            .unwrap_or_default();
        assert_eq!(
            ok,
            serde_json::json!({"type": "res", "id": "a\"1", "ok": true, "payload": {"x": 1}})
        );
        let err: Value = serde_json::from_str(&response_err("2", &ErrorShape::invalid("no")))
            .unwrap_or_default();
        assert_eq!(err["ok"], false);
        assert_eq!(err["error"]["code"], "INVALID_REQUEST");
        assert!(err.get("payload").is_none());
        let ev: Value = serde_json::from_str(&event_unsequenced("tick", &serde_json::json!(1)))
            .unwrap_or_default();
        assert_eq!(
            ev,
            serde_json::json!({"type": "event", "event": "tick", "payload": 1})
        );
        let raw: Value = serde_json::from_str(&response_payload(
            "3",
            &Payload::json(&serde_json::json!({"a": [1]})),
        ))
        .unwrap_or_default();
        assert_eq!(
            raw,
            serde_json::json!({"type": "res", "id": "3", "ok": true, "payload": {"a": [1]}})
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
