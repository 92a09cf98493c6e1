//! `exec.approval.list` and `exec.approval.resolve`: operators answer the
//! approvals that side effects wait for (writes to `confirm = true` outputs).

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Call, Reply, parse};
use crate::protocol::error::{ErrorShape, codes};

/// `exec.approval.list`: pending approvals, oldest first, as OpenClaw's
/// array of `{id, request: {command, …}, createdAtMs, expiresAtMs}` (plus
/// pinclaw's `summary`, `kind`, `nodeId`, `device`).
pub async fn list(call: &Call, _params: Value) -> Reply {
    Ok(Value::Array(call.shared.approvals.list()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResolveParams {
    id: String,
    decision: String,
}

/// `exec.approval.resolve`: allow or deny a pending approval.
pub async fn resolve(call: &Call, params: Value) -> Reply {
    let p: ResolveParams = parse("exec.approval.resolve", params)?;
    let allow = match p.decision.as_str() {
        "allow" | "allow-once" | "approve" | "approved" => true,
        "deny" | "reject" | "rejected" => false,
        other => {
            return Err(ErrorShape::invalid_params(
                "exec.approval.resolve",
                format!("decision must be allow or deny, not {other:?}"),
            ));
        }
    };
    let shared = &call.shared;
    let Some(id) = shared.approvals.resolve(&shared.bus, &p.id, allow) else {
        return Err(ErrorShape::new(
            codes::APPROVAL_NOT_FOUND,
            format!(
                "no pending approval {:?} (expired, already answered, or the prefix fits none or several; see pinclaw approvals list)",
                p.id
            ),
        ));
    };
    Ok(json!({"id": id, "decision": if allow { "allow" } else { "deny" }}))
}
