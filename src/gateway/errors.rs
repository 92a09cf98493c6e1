//! How failures of the layers below become the protocol's errors: store
//! failures, refused submissions and node invoke failures, each with the
//! code and retry hint a client acts on.

use serde_json::json;

use crate::node::InvokeError;
use crate::protocol::error::{ErrorShape, codes};
use crate::session::SubmitError;
use crate::store::StoreError;

/// A store failure as the error a client sees: retryable `UNAVAILABLE` for
/// transient ones (busy, a failed commit), otherwise the message.
pub fn store_error(e: StoreError) -> ErrorShape {
    tracing::error!("state database: {e}");
    let shape = ErrorShape::new(codes::UNAVAILABLE, format!("state database error: {e}"));
    if e.is_transient() {
        shape.retry_after(1000)
    } else {
        shape
    }
}

/// A refused submission as the error a client sees.
pub fn submit_error(e: SubmitError) -> ErrorShape {
    match e {
        SubmitError::QueueFull(_) | SubmitError::Busy => {
            ErrorShape::new(codes::UNAVAILABLE, e.to_string()).retry_after(1000)
        }
        SubmitError::KeyReused(_) => ErrorShape::invalid(e.to_string())
            .with_details(json!({"code": "IDEMPOTENCY_KEY_REUSED"})),
        SubmitError::Store(e) => store_error(e),
    }
}

/// A node registry failure as the error the caller sees.
pub fn invoke_error(e: &InvokeError) -> ErrorShape {
    let error = ErrorShape::new(codes::UNAVAILABLE, e.message()).with_details(
        json!({"code": e.code(), "nodeError": {"code": e.code(), "message": e.message()}}),
    );
    match e {
        InvokeError::Busy => error.retry_after(500),
        _ => error,
    }
}
