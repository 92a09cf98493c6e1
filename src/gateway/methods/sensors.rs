//! `sensors.history`: recent values of a sensor's fields, one per step,
//! for sparklines.

use serde::Deserialize;
use serde_json::Value;

use super::{Call, Reply, parse};
use crate::protocol::error::{ErrorShape, codes};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HistoryParams {
    name: String,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    since_ms: Option<u64>,
}

/// `sensors.history {name, field?, sinceMs?}` →
/// `{name, stepMs, fields: {field: {startMs, values: [number | null]}}}`;
/// `values[i]` is the slot starting at `startMs + i × stepMs`.
pub async fn history(call: &Call, params: Value) -> Reply {
    let p: HistoryParams = parse("sensors.history", params)?;
    let Some(history) = &call.shared.history else {
        return Err(ErrorShape::new(
            codes::UNAVAILABLE,
            "the sensor history is off ([history] hours = 0)",
        ));
    };
    let declared = call
        .shared
        .board
        .as_ref()
        .and_then(|b| b.spec().device(&p.name).map(|d| d.kind.is_sensor()));
    match declared {
        None => Err(ErrorShape::invalid(format!(
            "sensors.history: no device `{}` is declared on this board",
            p.name
        ))),
        Some(false) => Err(ErrorShape::invalid(format!(
            "sensors.history: `{}` is not a sensor",
            p.name
        ))),
        Some(true) => Ok(history.payload(
            &p.name,
            p.field.as_deref(),
            p.since_ms.unwrap_or(0),
            crate::ids::now_ms() as u64,
        )),
    }
}
