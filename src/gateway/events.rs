//! The event table: every event the gateway emits, who may receive it and
//! whether a newer copy replaces a queued older one. `hello-ok.features.events`
//! and the bus's scope guards come from [`EVENTS`]; adding an event is one
//! entry here.

use crate::protocol::scopes;

/// Who may receive an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Every authenticated connection, nodes included.
    Everyone,
    /// Operators holding (or implying) this scope.
    Scope(&'static str),
    /// Never broadcast: sent to one connection only (`connect.challenge`
    /// before auth, `node.invoke.*` to the node concerned).
    Targeted,
}

/// One event the gateway emits.
#[derive(Debug)]
pub struct Event {
    /// Wire name.
    pub name: &'static str,
    /// Who may receive it (OpenClaw's `EVENT_SCOPE_GUARDS`).
    pub guard: Guard,
    /// A state snapshot: a newer copy replaces a queued older one, and it
    /// is dropped rather than closing a slow connection.
    pub supersedes: bool,
}

const fn event(name: &'static str, guard: Guard, supersedes: bool) -> Event {
    Event {
        name,
        guard,
        supersedes,
    }
}

use Guard::{Everyone, Scope, Targeted};

/// Every event pinclaw emits.
pub static EVENTS: &[Event] = &[
    event("connect.challenge", Targeted, false),
    event("tick", Everyone, true),
    event("health", Everyone, true),
    event("shutdown", Everyone, false),
    event("presence", Scope(scopes::READ), true),
    event("agent", Scope(scopes::READ), false),
    event("chat", Scope(scopes::READ), false),
    event("sessions.changed", Scope(scopes::READ), false),
    event("node.presence", Scope(scopes::READ), false),
    event("node.event", Scope(scopes::READ), false),
    event("device.pair.requested", Scope(scopes::PAIRING), false),
    event("device.pair.resolved", Scope(scopes::PAIRING), false),
    event("node.pair.requested", Scope(scopes::PAIRING), false),
    event("node.pair.resolved", Scope(scopes::PAIRING), false),
    event("node.invoke.request", Targeted, false),
    event("node.invoke.cancel", Targeted, false),
    event("exec.approval.requested", Scope(scopes::APPROVALS), false),
    event("exec.approval.resolved", Scope(scopes::APPROVALS), false),
    event("cron", Scope(scopes::READ), false),
];

/// The entry of an event, if the gateway emits it.
pub fn find(name: &str) -> Option<&'static Event> {
    EVENTS.iter().find(|e| e.name == name)
}

/// Names of every event (`hello-ok.features.events`).
pub fn served_events() -> Vec<&'static str> {
    EVENTS.iter().map(|e| e.name).collect()
}
