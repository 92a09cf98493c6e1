//! The automation engine's hands: what an automation does goes through the
//! gateway's own paths, with the same gates as any other caller. Node
//! commands take the invoke path with `operator.write` (declared, approved,
//! allow/deny; a `confirm = true` output waits for an operator), agent turns
//! go into the session lanes, notifications into the outbound ledger, and
//! `cron` events to operators.

use std::sync::{Arc, Weak};

use serde_json::Value;

use super::Shared;
use super::invoke::{InvokeRequest, invoke};
use crate::automation::engine::{BoxFuture, Hands};
use crate::protocol::scopes;
use crate::session::{Submission, SubmitError, Submitted};
use crate::store::ReplyRoute;

/// [`Hands`] over the gateway's shared state.
pub struct GatewayHands(pub Weak<Shared>);

impl GatewayHands {
    fn shared(&self) -> Result<Arc<Shared>, String> {
        self.0
            .upgrade()
            .ok_or_else(|| "the gateway is stopping".to_owned())
    }
}

/// An automation may read and switch, never administer.
const AUTOMATION_SCOPES: &[&str] = &[scopes::READ, scopes::WRITE];

impl Hands for GatewayHands {
    fn needs_approval(&self, node: &str, command: &str, params: &Value) -> Option<String> {
        let shared = self.0.upgrade()?;
        let local = node == "local"
            || shared
                .local_node
                .as_ref()
                .is_some_and(|l| l.node_id() == node);
        if !local {
            return None;
        }
        shared
            .board
            .as_ref()?
            .confirmation(command, params)
            .ok()
            .flatten()
            .map(|c| c.summary)
    }

    fn invoke(
        &self,
        who: String,
        node: String,
        command: String,
        params: Value,
    ) -> BoxFuture<'_, Result<Value, String>> {
        Box::pin(async move {
            let shared = self.shared()?;
            let scopes: Vec<String> = AUTOMATION_SCOPES.iter().map(|s| (*s).to_owned()).collect();
            let request = InvokeRequest {
                node,
                command,
                params,
                timeout: crate::limits::AUTOMATION_APPROVAL_TIMEOUT,
                idempotency_key: crate::ids::uuid_v4(),
                who,
            };
            invoke(&shared, &scopes, request)
                .await
                .map_err(|e| e.message)
        })
    }

    fn route(&self, channel: &str, to: &str) -> Result<ReplyRoute, String> {
        let shared = self.shared()?;
        let account = crate::channel::telegram::ACCOUNT;
        let target = shared
            .channels
            .channel(channel, account)
            .ok_or_else(|| format!("channel {channel} is not configured"))?
            .target(to, None)?;
        Ok(ReplyRoute {
            channel: channel.to_owned(),
            account: account.to_owned(),
            to: target.chat,
            thread: target.thread,
        })
    }

    fn agent(
        &self,
        run_id: String,
        session: String,
        message: String,
        deliver: Option<ReplyRoute>,
    ) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let shared = self.shared()?;
            let submission = Submission {
                session_key: session,
                run_id,
                message,
                mode: None,
                scopes: AUTOMATION_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
                route: deliver,
            };
            match shared.sessions.submit(submission).await {
                Ok(Submitted::New(_)) | Ok(Submitted::Retry(_)) => Ok(()),
                Err(SubmitError::KeyReused(_)) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn mqtt(
        &self,
        topic: String,
        payload: String,
        retain: bool,
    ) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let shared = self.shared()?;
            match shared.mqtt.get() {
                Some(bridge) => bridge.publish(topic, payload, retain),
                None => Err(format!(
                    "cannot publish to {topic}: the MQTT bridge is not running"
                )),
            }
        })
    }

    fn event(&self, payload: Value) {
        if let Some(shared) = self.0.upgrade() {
            shared.bus.broadcast("cron", &payload);
        }
    }
}
