//! `board.state`: every declared device of the gateway's own board with its
//! last known value (outputs and PWM as last written, inputs as last read
//! or changed, sensors as last read), for a dashboard's first paint.

use serde_json::{Map, Value, json};

use super::{Call, Reply};
use crate::board::BoardChange;
use crate::protocol::error::{ErrorShape, codes};

/// `board.state {}` → `{nodeId, devices: [{name, kind, label?, confirm?,
/// value? | duty? | values?, ts?}]}`.
pub async fn state(call: &Call, _params: Value) -> Reply {
    let Some(board) = &call.shared.board else {
        return Err(ErrorShape::new(
            codes::UNAVAILABLE,
            "this gateway has no board",
        ));
    };
    let changes = board.devices().changes();
    let devices: Vec<Value> = board
        .devices()
        .info()
        .devices
        .iter()
        .map(|d| {
            let mut entry = match serde_json::to_value(d) {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            };
            match changes.latest(&d.name) {
                Some(BoardChange::Input { value, ts, .. })
                | Some(BoardChange::Output { value, ts, .. }) => {
                    entry.insert("value".into(), json!(value));
                    entry.insert("ts".into(), json!(ts));
                }
                Some(BoardChange::Pwm { duty, ts, .. }) => {
                    entry.insert("duty".into(), json!(duty));
                    entry.insert("ts".into(), json!(ts));
                }
                Some(BoardChange::Reading { values, ts, .. }) => {
                    let values: Map<String, Value> = values
                        .iter()
                        .map(|(f, v)| ((*f).to_owned(), json!(v)))
                        .collect();
                    entry.insert("values".into(), Value::Object(values));
                    entry.insert("ts".into(), json!(ts));
                }
                None => {}
            }
            Value::Object(entry)
        })
        .collect();
    let node_id = call
        .shared
        .local_node
        .as_ref()
        .map(|n| n.node_id().to_owned());
    Ok(json!({"nodeId": node_id, "devices": devices}))
}
