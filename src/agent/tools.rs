//! The tools the model may call: a registry with JSON-schema parameters.
//! Built-ins: `nodes` (OpenClaw-compatible: status | describe | invoke on
//! the local board node and remote nodes) and `time`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::provider::ToolSpec;

/// A boxed future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Who a tool call acts for.
#[derive(Debug, Clone, Default)]
pub struct ToolContext {
    /// Scopes of the client whose message started the run: a tool may do
    /// only what that client could do itself.
    pub scopes: Vec<String>,
    /// Who acts, for the audit log: `agent run R in session S`.
    pub who: String,
}

/// Access to nodes for the `nodes` tool (implemented by the gateway).
pub trait NodeAccess: Send + Sync + 'static {
    /// `node.list`.
    fn list(&self) -> BoxFuture<Result<Value, String>>;
    /// `node.describe` of a node reference (id, name, prefix or `local`).
    fn describe(&self, node: String) -> BoxFuture<Result<Value, String>>;
    /// `node.invoke` with every gate `node.invoke` applies, checked against
    /// `scopes`; returns the command's payload.
    fn invoke(
        &self,
        caller: ToolContext,
        node: String,
        command: String,
        params: Value,
        timeout: Duration,
    ) -> BoxFuture<Result<Value, String>>;
    /// One line per node and its commands, for the system prompt.
    fn summary(&self) -> String;
}

/// A callable tool.
pub trait Tool: Send + Sync {
    /// Name, description and parameter schema.
    fn spec(&self) -> ToolSpec;
    /// Run with parsed arguments, on behalf of `ctx`.
    fn call(&self, ctx: &ToolContext, args: Value) -> BoxFuture<Result<Value, String>>;
}

/// The tools of an agent.
#[derive(Default, Clone)]
pub struct ToolRegistry {
    tools: Vec<Arc<dyn Tool>>,
}

impl ToolRegistry {
    /// The built-in tools.
    pub fn builtin(nodes: Option<Arc<dyn NodeAccess>>) -> Self {
        // Read the time zone now, at start, not during a run.
        let _ = local_zone();
        let mut tools: Vec<Arc<dyn Tool>> = vec![Arc::new(TimeTool)];
        if let Some(nodes) = nodes {
            tools.push(Arc::new(NodesTool { nodes }));
        }
        Self { tools }
    }

    /// Add a tool (tests, future channels).
    pub fn add(&mut self, tool: Arc<dyn Tool>) {
        self.tools.push(tool);
    }

    /// Specs for the model.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|t| t.spec()).collect()
    }

    /// Call a tool by name, on behalf of `ctx`.
    pub fn call(
        &self,
        ctx: &ToolContext,
        name: &str,
        args: Value,
    ) -> BoxFuture<Result<Value, String>> {
        match self.tools.iter().find(|t| t.spec().name == name) {
            Some(tool) => tool.call(ctx, args),
            None => {
                let message = format!("unknown tool: {name}");
                Box::pin(async move { Err(message) })
            }
        }
    }
}

/// `time`: the current time and zone.
pub struct TimeTool;

/// `2026-12-07T19:02:03` for a Unix time in seconds.
fn civil_text(secs: i64) -> String {
    let (y, mo, d) = crate::automation::schedule::civil::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// ISO 8601 UTC text of a Unix time in milliseconds.
pub fn iso8601(ms: i64) -> String {
    format!("{}Z", civil_text(ms.div_euclid(1000)))
}

/// The board's time zone (`$TZ`, else `/etc/localtime`, else UTC), read
/// once (the first `time` call), so later calls never touch the disk.
fn local_zone() -> &'static crate::automation::schedule::TimeZone {
    static ZONE: std::sync::OnceLock<crate::automation::schedule::TimeZone> =
        std::sync::OnceLock::new();
    ZONE.get_or_init(crate::automation::schedule::TimeZone::local)
}

impl Tool for TimeTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "time".into(),
            description: "Current date and time: UTC, and the local wall-clock time in the board's time zone.".into(),
            parameters: json!({"type": "object", "properties": {}, "additionalProperties": false}),
        }
    }
    fn call(&self, _ctx: &ToolContext, _args: Value) -> BoxFuture<Result<Value, String>> {
        let now = crate::ids::now_ms();
        let zone = local_zone();
        let secs = now.div_euclid(1000);
        let offset = zone.offset_at(secs);
        let local = civil_text(secs + i64::from(offset));
        Box::pin(async move {
            Ok(json!({
                "utc": iso8601(now), "unixMs": now, "local": local,
                "zone": zone.name(), "utcOffsetMinutes": offset / 60,
            }))
        })
    }
}

/// `nodes`: reach the board and remote nodes.
pub struct NodesTool {
    nodes: Arc<dyn NodeAccess>,
}

impl Tool for NodesTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "nodes".into(),
            description: "Devices (nodes) this gateway can reach, including its own board (node \"local\"). \
                action=status lists nodes and their commands; action=describe shows one node; \
                action=invoke runs a command, e.g. invokeCommand \"sensors.read\" with invokeParamsJson \"{\\\"name\\\":\\\"room\\\"}\" \
                or \"gpio.write\" with \"{\\\"name\\\":\\\"relay1\\\",\\\"value\\\":true}\"."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["status", "describe", "invoke"]},
                    "node": {"type": "string", "description": "node id, display name, id prefix (6+ chars) or \"local\""},
                    "invokeCommand": {"type": "string"},
                    "invokeParamsJson": {"type": "string", "description": "the command's parameters as a JSON object string"},
                    "invokeTimeoutMs": {"type": "integer", "minimum": 1, "maximum": 600000}
                },
                "required": ["action"],
                "additionalProperties": false
            }),
        }
    }

    fn call(&self, ctx: &ToolContext, args: Value) -> BoxFuture<Result<Value, String>> {
        let nodes = self.nodes.clone();
        let caller = ctx.clone();
        Box::pin(async move {
            let node = args["node"].as_str().map(str::to_owned);
            match args["action"].as_str() {
                Some("status") => nodes.list().await,
                Some("describe") => nodes.describe(node.ok_or("describe needs \"node\"")?).await,
                Some("invoke") => {
                    let node = node.ok_or("invoke needs \"node\"")?;
                    let command = args["invokeCommand"]
                        .as_str()
                        .ok_or("invoke needs \"invokeCommand\"")?
                        .to_owned();
                    let params = match args["invokeParamsJson"].as_str() {
                        None | Some("") => json!({}),
                        Some(text) => serde_json::from_str(text)
                            .map_err(|e| format!("invokeParamsJson is not valid JSON: {e}"))?,
                    };
                    let timeout = Duration::from_millis(
                        args["invokeTimeoutMs"]
                            .as_u64()
                            .unwrap_or(30_000)
                            .clamp(1, 600_000),
                    );
                    nodes.invoke(caller, node, command, params, timeout).await
                }
                Some(other) => Err(format!(
                    "unknown action {other:?} (status, describe or invoke)"
                )),
                None => Err("missing \"action\" (status, describe or invoke)".into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_795_500_000_000), "2026-11-24T06:00:00Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
