//! The method table: every method the gateway serves, with the role and
//! scope it needs, whether it runs beside the connection loop, and its
//! handler. `hello-ok.features.methods`, authorization and dispatch all come
//! from [`METHODS`]; adding a method is one entry here plus its handler in
//! the file named after its family (`health.rs`, `devices.rs`, `nodes.rs`,
//! `node_role.rs`, `chat.rs`, `sessions.rs`, `approvals.rs`, `audit.rs`,
//! `system.rs`, `channels.rs`). Trust decisions in [`AUDITED`] are written
//! to the audit log here, after their handler.

mod approvals;
mod audit;
mod board;
mod channels;
mod chat;
mod compat;
mod cron;
mod devices;
mod health;
mod node_role;
mod nodes;
mod sensors;
mod sessions;
mod system;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::bus::Conn;
pub(crate) use super::errors::store_error;
use crate::protocol::connect::Role;
use crate::protocol::error::ErrorShape;
use crate::protocol::frames::{self, Payload, RequestFrame};
use crate::protocol::scopes;

pub use health::health_snapshot;

/// What a method requires of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, any role (only `health`).
    Open,
    /// Operators holding this scope.
    Operator(&'static str),
    /// Node connections only.
    Node,
}

/// Where a method runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// Answered inside the connection loop: only for handlers that never
    /// wait (no store, no node, no model).
    Inline,
    /// Spawned beside the connection loop (bounded per connection by
    /// [`crate::limits::MAX_INFLIGHT_REQUESTS_PER_CONN`]): anything that may
    /// wait on the store, a node, a model or an operator.
    Beside,
}

/// One request as a handler sees it.
pub struct Call {
    /// Gateway state.
    pub shared: Arc<Shared>,
    /// The connection it came on.
    pub conn: Arc<Conn>,
    /// The request id (for methods that answer twice, like `agent`).
    pub request_id: String,
    /// The method's name (one handler may serve several).
    pub method: &'static str,
}

/// A handler's answer: the response payload or error.
pub type Reply = Result<Value, ErrorShape>;

/// What a handler returns after the table's wrapper: a payload (a value or
/// JSON text serialized already) or an error.
pub type Answer = Result<Payload, ErrorShape>;

/// A boxed handler future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A method handler.
pub type Handler = for<'a> fn(&'a Call, Value) -> BoxFuture<'a, Answer>;

/// One served method.
pub struct Method {
    /// Wire name.
    pub name: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Where it runs.
    pub run: Run,
    /// Its handler.
    pub handler: Handler,
}

/// A table entry from an `async fn(&Call, Value) -> Result<T, ErrorShape>`
/// where `T` is a [`Value`] or a [`Payload`].
macro_rules! method {
    ($name:literal, $access:expr, $run:ident, $handler:path) => {
        Method {
            name: $name,
            access: $access,
            run: Run::$run,
            handler: {
                fn handler(call: &Call, params: Value) -> BoxFuture<'_, Answer> {
                    Box::pin(async move { $handler(call, params).await.map(Payload::from) })
                }
                handler
            },
        }
    };
}

use Access::{Node, Open, Operator};

/// A table entry answered by [`compat::empty`] (an OpenClaw feature pinclaw
/// does not have).
const fn empty(name: &'static str) -> Method {
    Method {
        name,
        access: Operator(scopes::READ),
        run: Run::Inline,
        handler: compat::empty,
    }
}

/// Every method pinclaw serves.
pub static METHODS: &[Method] = &[
    method!("health", Open, Inline, health::health),
    method!("status", Operator(scopes::READ), Beside, health::status),
    method!(
        "system-presence",
        Operator(scopes::READ),
        Inline,
        health::presence
    ),
    method!(
        "gateway.identity.get",
        Operator(scopes::READ),
        Inline,
        health::identity
    ),
    method!(
        "config.get",
        Operator(scopes::READ),
        Inline,
        system::config_get
    ),
    method!(
        "logs.tail",
        Operator(scopes::READ),
        Inline,
        system::logs_tail
    ),
    method!(
        "device.pair.list",
        Operator(scopes::PAIRING),
        Beside,
        devices::pair_list
    ),
    method!(
        "device.pair.approve",
        Operator(scopes::PAIRING),
        Beside,
        devices::pair_approve
    ),
    method!(
        "device.pair.reject",
        Operator(scopes::PAIRING),
        Beside,
        devices::pair_reject
    ),
    method!(
        "device.pair.remove",
        Operator(scopes::PAIRING),
        Beside,
        devices::pair_remove
    ),
    method!(
        "device.token.rotate",
        Operator(scopes::PAIRING),
        Beside,
        devices::token_rotate
    ),
    method!(
        "device.token.revoke",
        Operator(scopes::PAIRING),
        Beside,
        devices::token_revoke
    ),
    method!(
        "channels.status",
        Operator(scopes::READ),
        Beside,
        channels::status
    ),
    method!(
        "channels.pairing.list",
        Operator(scopes::PAIRING),
        Beside,
        channels::pairing_list
    ),
    method!(
        "channels.pairing.approve",
        Operator(scopes::PAIRING),
        Beside,
        channels::pairing_approve
    ),
    method!(
        "channels.pairing.dismiss",
        Operator(scopes::PAIRING),
        Beside,
        channels::pairing_dismiss
    ),
    method!("send", Operator(scopes::WRITE), Beside, channels::send),
    method!("node.list", Operator(scopes::READ), Beside, nodes::list),
    method!(
        "node.describe",
        Operator(scopes::READ),
        Beside,
        nodes::describe
    ),
    method!(
        "node.rename",
        Operator(scopes::PAIRING),
        Beside,
        nodes::rename
    ),
    method!(
        "node.invoke",
        Operator(scopes::WRITE),
        Beside,
        nodes::invoke
    ),
    method!(
        "node.pair.list",
        Operator(scopes::PAIRING),
        Beside,
        nodes::pair_list
    ),
    method!(
        "node.pair.approve",
        Operator(scopes::PAIRING),
        Beside,
        nodes::pair_approve
    ),
    method!(
        "node.pair.reject",
        Operator(scopes::PAIRING),
        Beside,
        nodes::pair_reject
    ),
    method!(
        "node.pair.remove",
        Operator(scopes::PAIRING),
        Beside,
        nodes::pair_remove
    ),
    method!("agent", Operator(scopes::WRITE), Beside, chat::agent),
    method!(
        "agent.wait",
        Operator(scopes::WRITE),
        Beside,
        chat::agent_wait
    ),
    method!("chat.send", Operator(scopes::WRITE), Beside, chat::send),
    method!(
        "chat.history",
        Operator(scopes::READ),
        Beside,
        chat::history
    ),
    method!("chat.abort", Operator(scopes::WRITE), Beside, chat::abort),
    method!(
        "sessions.list",
        Operator(scopes::READ),
        Beside,
        sessions::list
    ),
    method!(
        "sessions.get",
        Operator(scopes::READ),
        Beside,
        sessions::get
    ),
    method!(
        "sessions.subscribe",
        Operator(scopes::READ),
        Inline,
        sessions::subscribe
    ),
    method!(
        "sessions.patch",
        Operator(scopes::WRITE),
        Beside,
        sessions::patch
    ),
    method!(
        "sessions.reset",
        Operator(scopes::ADMIN),
        Beside,
        sessions::reset
    ),
    method!(
        "sessions.delete",
        Operator(scopes::ADMIN),
        Beside,
        sessions::delete
    ),
    method!(
        "models.list",
        Operator(scopes::READ),
        Inline,
        system::models_list
    ),
    method!("audit.list", Operator(scopes::READ), Beside, audit::list),
    method!("board.state", Operator(scopes::READ), Inline, board::state),
    method!(
        "chat.startup",
        Operator(scopes::READ),
        Beside,
        chat::startup
    ),
    method!(
        "sessions.describe",
        Operator(scopes::READ),
        Beside,
        sessions::describe
    ),
    method!(
        "sessions.messages.subscribe",
        Operator(scopes::READ),
        Inline,
        sessions::messages_subscribe
    ),
    method!(
        "sessions.messages.unsubscribe",
        Operator(scopes::READ),
        Inline,
        sessions::messages_unsubscribe
    ),
    method!(
        "agents.list",
        Operator(scopes::READ),
        Inline,
        system::agents_list
    ),
    method!(
        "agent.identity.get",
        Operator(scopes::READ),
        Inline,
        system::agent_identity
    ),
    method!(
        "system.info",
        Operator(scopes::READ),
        Inline,
        system::system_info
    ),
    method!(
        "environments.list",
        Operator(scopes::READ),
        Beside,
        system::environments_list
    ),
    method!(
        "models.authStatus",
        Operator(scopes::READ),
        Inline,
        system::models_auth_status
    ),
    method!(
        "exec.approvals.get",
        Operator(scopes::READ),
        Inline,
        system::exec_approvals_get
    ),
    empty("update.status"),
    empty("talk.catalog"),
    empty("chat.metadata"),
    empty("progressCard.get"),
    empty("sessions.branches.list"),
    empty("sessions.companion.state"),
    empty("tasks.list"),
    empty("sessions.observer.visibility"),
    empty("plugin.approval.list"),
    empty("openclaw.approval.list"),
    empty("question.list"),
    empty("commands.list"),
    method!("cron.status", Operator(scopes::READ), Inline, cron::status),
    method!("cron.list", Operator(scopes::READ), Inline, cron::list),
    method!("cron.get", Operator(scopes::READ), Inline, cron::get),
    method!("cron.runs", Operator(scopes::READ), Beside, cron::runs),
    method!("cron.add", Operator(scopes::ADMIN), Beside, cron::add),
    method!("cron.update", Operator(scopes::ADMIN), Beside, cron::update),
    method!("cron.remove", Operator(scopes::ADMIN), Beside, cron::remove),
    method!("cron.run", Operator(scopes::ADMIN), Beside, cron::run),
    method!(
        "sensors.history",
        Operator(scopes::READ),
        Inline,
        sensors::history
    ),
    method!(
        "exec.approval.list",
        Operator(scopes::APPROVALS),
        Inline,
        approvals::list
    ),
    method!(
        "exec.approval.resolve",
        Operator(scopes::APPROVALS),
        Inline,
        approvals::resolve
    ),
    method!("node.invoke.result", Node, Inline, node_role::invoke_result),
    method!("node.event", Node, Inline, node_role::event),
    method!(
        "node.runnerInventory.update",
        Node,
        Beside,
        node_role::runner_inventory
    ),
    method!("node.skills.update", Node, Inline, node_role::skills),
    method!(
        "node.pluginTools.update",
        Node,
        Inline,
        node_role::plugin_tools
    ),
];

/// OpenClaw's node-role methods: refused to operators even when not served.
const NODE_ONLY: &[&str] = &[
    "node.event",
    "node.invoke.result",
    "node.invoke.progress",
    "node.pending.pull",
    "node.pending.ack",
    "node.pending.drain",
    "node.pluginTools.update",
    "node.skills.update",
    "node.pluginSurface.refresh",
    "node.runnerInventory.update",
    "skills.bins",
];

/// The served method of this name.
pub fn find(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

/// Names of the served methods (`hello-ok.features.methods`).
pub fn served_methods() -> Vec<&'static str> {
    METHODS.iter().map(|m| m.name).collect()
}

/// The access rule of any method name, served or not. Unknown methods need
/// `operator.admin`, as in OpenClaw.
pub fn access_of(method: &str) -> Access {
    if let Some(m) = find(method) {
        return m.access;
    }
    if NODE_ONLY.contains(&method) {
        return Access::Node;
    }
    Access::Operator(scopes::ADMIN)
}

/// Where a request for `method` runs (unknown methods answer inline).
pub fn run_of(method: &str) -> Run {
    find(method).map_or(Run::Inline, |m| m.run)
}

/// Check role and scope for `method` on `conn`.
pub fn authorize(conn: &Conn, method: &str) -> Result<(), ErrorShape> {
    match (access_of(method), conn.role) {
        (Access::Open, _) => Ok(()),
        (Access::Node, Role::Node) => Ok(()),
        (Access::Node, role) | (Access::Operator(_), role @ Role::Node) => Err(
            ErrorShape::invalid(format!("unauthorized role: {}", role.as_str())),
        ),
        (Access::Operator(scope), Role::Operator) => {
            if scopes::satisfied(&conn.scopes, scope) {
                Ok(())
            } else {
                Err(ErrorShape::missing_scope(scope))
            }
        }
    }
}

/// Handle one request after the handshake; returns the serialized response.
pub async fn handle(shared: &Arc<Shared>, conn: &Arc<Conn>, req: RequestFrame) -> String {
    let result = match authorize(conn, &req.method) {
        Err(e) => Err(e),
        Ok(()) => match find(&req.method) {
            Some(method) => {
                let call = Call {
                    shared: shared.clone(),
                    conn: conn.clone(),
                    request_id: req.id.clone(),
                    method: method.name,
                };
                let audited = AUDITED.contains(&method.name).then(|| req.params.clone());
                let result = (method.handler)(&call, req.params).await;
                if let Some(params) = audited {
                    audit_decision(shared, conn, method.name, &params, &result);
                }
                result
            }
            None if req.method == "connect" => Err(ErrorShape::invalid(
                "connect is only valid as the first request",
            )),
            None => Err(ErrorShape::invalid(format!(
                "unknown method: {}",
                req.method
            ))),
        },
    };
    match result {
        Ok(payload) => frames::response_payload(&req.id, &payload),
        Err(error) => frames::response_err(&req.id, &error),
    }
}

/// Trust decisions and changes an operator makes (a session's model, a
/// reset) written to the audit log with who made them and how they went
/// (their params carry ids, decisions and labels, never secrets).
const AUDITED: &[&str] = &[
    "exec.approval.resolve",
    "device.pair.approve",
    "device.pair.reject",
    "device.pair.remove",
    "device.token.rotate",
    "device.token.revoke",
    "node.pair.approve",
    "node.pair.reject",
    "node.pair.remove",
    "channels.pairing.approve",
    "channels.pairing.dismiss",
    "sessions.patch",
    "sessions.reset",
    "sessions.delete",
];

fn audit_decision(shared: &Shared, conn: &Conn, method: &str, params: &Value, result: &Answer) {
    let what = match params.as_object() {
        Some(fields) => fields
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(text) => format!("{k}={text}"),
                None => format!("{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => String::new(),
    };
    let outcome = match result {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("refused: {}", e.message),
    };
    shared.store.audit(crate::store::AuditEntry::new(
        &conn.who, method, &what, &outcome,
    ));
}

/// Deserialize method params (`null` counts as `{}`), or the protocol's
/// `invalid <method> params` error.
pub(super) fn parse<T: for<'de> Deserialize<'de>>(
    method: &str,
    params: Value,
) -> Result<T, ErrorShape> {
    let params = if params.is_null() { json!({}) } else { params };
    serde_json::from_value(params).map_err(|e| ErrorShape::invalid_params(method, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_entry_per_name() {
        let mut names = served_methods();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a method is listed twice");
        assert_eq!(access_of("health"), Access::Open);
        assert_eq!(access_of("no.such.method"), Access::Operator(scopes::ADMIN));
        assert_eq!(access_of("node.pending.pull"), Access::Node);
    }
}
