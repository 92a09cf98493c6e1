//! A caller that goes away mid-request leaves nothing behind: its
//! idempotency key is free for a retry, its pending approval is withdrawn,
//! and a thousand such callers do not block anyone.

mod support;

use std::time::Duration;

use pinclaw::board::profile::DeviceKindName;
use pinclaw::board::{DeviceSpec, Level};
use pinclaw::client::{Client, ClientError};
use serde_json::json;
use support::*;

fn with_heater(dir: &std::path::Path) -> pinclaw::gateway::GatewaySettings {
    let mut s = settings(dir);
    s.config.board.devices.push(DeviceSpec {
        name: "heater".into(),
        kind: Some(DeviceKindName::Output),
        pin: Some(23),
        confirm: Some(true),
        ..DeviceSpec::default()
    });
    s
}

async fn writer(url: &str) -> Client {
    operator_at(url, TOKEN, &["operator.write"]).await
}

#[tokio::test]
async fn a_retry_after_the_caller_left_mid_pulse_runs_instead_of_being_refused_forever() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let sim = gw
        .handle
        .board()
        .and_then(|b| b.sim().cloned())
        .unwrap_or_else(|| panic!("sim"));
    let pulse = json!({"nodeId": "local", "command": "gpio.pulse", "params": {"name": "relay1", "ms": 400}, "idempotencyKey": "p1"});
    let url = gw.url.clone();
    let params = pulse.clone();
    let caller = tokio::spawn(async move { writer(&url).await.call("node.invoke", params).await });
    // relay1 is active-low: the pulse is on while the pin is low.
    while sim.level(17) != Some(Level::Low) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    caller.abort();
    let _ = caller.await;
    // The pulse still ends (its off-edge does not depend on the caller).
    while sim.level(17) != Some(Level::High) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut retry = writer(&gw.url).await;
    let again = retry.call("node.invoke", pulse).await;
    assert!(
        again.is_ok(),
        "the retry was refused long after the pulse ended: {again:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn callers_that_leave_while_waiting_for_approval_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start_with(with_heater(dir.path())).await;
    let mut approver = gw.client(&["operator.approvals"]).await;
    // More abandoned callers than the idempotency cache and the approval
    // queue have room for.
    let callers = pinclaw::limits::IDEMPOTENCY_MAX_ENTRIES + 50;
    for i in 0..callers {
        let url = gw.url.clone();
        let caller = tokio::spawn(async move {
            writer(&url).await
                .call("node.invoke", json!({"nodeId": "local", "command": "gpio.write", "params": {"name": "heater", "value": true}, "idempotencyKey": format!("h{i}"), "timeoutMs": 600000}))
                .await
        });
        approver
            .wait_event("exec.approval.requested", Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("caller {i}: {e}"));
        caller.abort();
        let _ = caller.await;
        let _ = approver.take_events();
    }
    // Wait until the gateway saw the last caller go.
    let mut pending = usize::MAX;
    for _ in 0..500 {
        let list = approver
            .call("exec.approval.list", json!({}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        pending = list.as_array().map_or(0, Vec::len);
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pending, 0, "abandoned approvals are still pending");
    // Nothing stuck: a new invoke runs, and a retry of an abandoned key too.
    let mut op = writer(&gw.url).await;
    let fresh = op
        .call("node.invoke", json!({"nodeId": "local", "command": "gpio.write", "params": {"name": "relay1", "value": true}, "idempotencyKey": "fresh"}))
        .await;
    assert!(fresh.is_ok(), "{fresh:?}");
    let retried = op
        .call("node.invoke", json!({"nodeId": "local", "command": "gpio.write", "params": {"name": "heater", "value": true}, "idempotencyKey": "h0", "timeoutMs": 200}))
        .await;
    assert!(
        matches!(&retried, Err(ClientError::Rpc { error, .. }) if error["details"]["code"] == "APPROVAL_TIMEOUT"),
        "the retry ran its own approval: {retried:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_key_reused_for_a_different_request_is_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut op = gw.client(&["operator.write"]).await;
    let on = json!({"nodeId": "local", "command": "gpio.write", "params": {"name": "relay1", "value": true}, "idempotencyKey": "same"});
    op.call("node.invoke", on.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let replay = op
        .call("node.invoke", on)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        replay["payload"]["value"], true,
        "a retry replays the result"
    );
    let off = op
        .call("node.invoke", json!({"nodeId": "local", "command": "gpio.write", "params": {"name": "relay1", "value": false}, "idempotencyKey": "same"}))
        .await;
    assert!(
        matches!(&off, Err(ClientError::Rpc { error, .. }) if error["details"]["code"] == "IDEMPOTENCY_KEY_REUSED"),
        "{off:?}"
    );
    gw.stop().await;
}
