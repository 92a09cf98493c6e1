//! `audit.list`: the audit log (actuator writes, node invokes, approvals,
//! pairing decisions), oldest first.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Call, Reply, parse, store_error};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ListParams {
    since_ms: Option<i64>,
    limit: Option<usize>,
}

/// `audit.list {sinceMs?, limit?}`: entries since `sinceMs` (default: all
/// kept), at most the newest `limit` (default 100).
pub async fn list(call: &Call, params: Value) -> Reply {
    let p: ListParams = parse("audit.list", params)?;
    let entries = call
        .shared
        .store
        .audit_since(p.since_ms.unwrap_or(0), p.limit.unwrap_or(100))
        .await
        .map_err(store_error)?;
    Ok(json!({"entries": entries, "ts": crate::ids::now_ms()}))
}
