//! Methods of OpenClaw features pinclaw does not have (talk modes, tasks,
//! questions, plugin approvals, update channels, session branches,
//! companions, slash-command catalogs): answered with OpenClaw's own empty
//! shapes, so its Control UI shows "nothing here" instead of an error, and
//! stops polling. One handler serves them all, from [`EMPTY`].

use serde_json::Value;

use super::{Answer, BoxFuture, Call};
use crate::protocol::frames::Payload;

/// Method → its empty answer (JSON text).
pub const EMPTY: &[(&str, &str)] = &[
    (
        "update.status",
        r#"{"sentinel":null,"updateAvailable":null}"#,
    ),
    (
        "talk.catalog",
        r#"{"modes":[],"transports":[],"brains":[],"speech":{"providers":[]},"transcription":{"providers":[]},"realtime":{"providers":[]}}"#,
    ),
    ("chat.metadata", "{}"),
    ("progressCard.get", r#"{"card":null}"#),
    ("sessions.branches.list", r#"{"branches":[]}"#),
    ("sessions.companion.state", r#"{"exchanges":[]}"#),
    ("tasks.list", r#"{"tasks":[]}"#),
    ("sessions.observer.visibility", r#"{"ok":true}"#),
    ("plugin.approval.list", "[]"),
    ("openclaw.approval.list", "[]"),
    ("question.list", r#"{"questions":[]}"#),
    ("commands.list", r#"{"commands":[]}"#),
];

/// The handler of every [`EMPTY`] method.
pub fn empty(call: &Call, _params: Value) -> BoxFuture<'_, Answer> {
    let text = EMPTY
        .iter()
        .find(|(name, _)| *name == call.method)
        .map_or("{}", |(_, text)| *text);
    Box::pin(async move { Ok(Payload::Json(text.to_owned())) })
}
