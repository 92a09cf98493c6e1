//! The gateway's own (simulated) board over the wire: node.invoke reaches
//! the sim pins, reads show the change, bad input gets specific errors,
//! confirm-gated outputs wait for an operator, edges become node events.

mod support;

use std::time::Duration;

use pinclaw::board::profile::DeviceKindName;
use pinclaw::board::{DeviceSpec, Level};
use pinclaw::client::{Client, ClientError};
use serde_json::{Value, json};
use support::*;

async fn local_invoke(
    client: &mut Client,
    command: &str,
    params: Value,
    key: &str,
) -> Result<Value, ClientError> {
    client
        .call(
            "node.invoke",
            json!({"nodeId": "local", "command": command, "params": params, "idempotencyKey": key}),
        )
        .await
}

#[tokio::test]
async fn sim_board_end_to_end_over_the_wire() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let board = gw.handle.board().unwrap_or_else(|| panic!("no board"));
    let sim = board
        .sim()
        .cloned()
        .unwrap_or_else(|| panic!("not the simulator"));
    let mut op = gw.client(&["operator.write", "operator.read"]).await;

    let list = op
        .call("node.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let local = list["nodes"][0].clone();
    assert_eq!(local["gatewayLocal"], true);
    assert_eq!(local["connected"], true);
    assert!(
        local["commands"]
            .as_array()
            .is_some_and(|c| c.contains(&json!("gpio.write")))
    );

    // relay1 is pin 17, active-low: "on" drives the pin low.
    assert_eq!(sim.level(17), Some(Level::High), "starts off");
    let wrote = local_invoke(
        &mut op,
        "gpio.write",
        json!({"name": "relay1", "value": true}),
        "w1",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wrote["ok"], true);
    assert_eq!(sim.level(17), Some(Level::Low), "the sim pin changed");
    let read = local_invoke(&mut op, "gpio.read", json!({"name": "relay1"}), "r1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read["payload"]["value"], true);
    assert_eq!(read["nodeId"], local["nodeId"]);

    let room = local_invoke(&mut op, "sensors.read", json!({"name": "room"}), "s1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(room["payload"]["name"], "room");
    assert!(room["payload"]["value"].is_number());
    assert!(room["payload"]["readings"].is_object());

    for (command, params, code) in [
        (
            "gpio.write",
            json!({"name": "nope", "value": true}),
            "UNKNOWN_DEVICE",
        ),
        (
            "gpio.write",
            json!({"name": "button1", "value": true}),
            "NOT_AN_OUTPUT",
        ),
        (
            "pwm.set",
            json!({"name": "fan", "duty": 1.5, "hz": 1000}),
            "OUT_OF_RANGE",
        ),
    ] {
        match local_invoke(&mut op, command, params, code).await {
            Err(ClientError::Rpc { error, .. }) => {
                assert_eq!(error["details"]["code"], code, "{error}")
            }
            other => panic!("{command}: {other:?}"),
        }
    }
    assert_eq!(sim.level(17), Some(Level::Low), "bad calls touched nothing");
    gw.stop().await;
    assert_eq!(
        sim.level(17),
        Some(Level::High),
        "shutdown puts outputs in their safe state"
    );
}

#[tokio::test]
async fn confirm_outputs_wait_for_an_operator() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut s = settings(dir.path());
    s.config.board.devices.push(DeviceSpec {
        name: "heater".into(),
        kind: Some(DeviceKindName::Output),
        pin: Some(23),
        confirm: Some(true),
        ..DeviceSpec::default()
    });
    let gw = TestGateway::start_with(s).await;
    let sim = gw
        .handle
        .board()
        .and_then(|b| b.sim().cloned())
        .unwrap_or_else(|| panic!("sim"));
    let mut op = gw.client(&["operator.write"]).await;
    let mut approver = gw.client(&["operator.approvals"]).await;

    // Nobody approves: refused, and the pin never moved.
    let refused = op
        .call("node.invoke", json!({"nodeId": "local", "command": "gpio.write", "params": {"name": "heater", "value": true}, "idempotencyKey": "h1", "timeoutMs": 300}))
        .await;
    match refused {
        Err(ClientError::Rpc { error, .. }) => {
            assert_eq!(error["details"]["code"], "APPROVAL_TIMEOUT")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.level(23), Some(Level::Low));
    assert_eq!(sim.writes(23), 0, "no write without approval");
    let requested = approver
        .wait_event("exec.approval.requested", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(requested["payload"]["summary"], "gpio.write heater = on");

    // Denied.
    let url = gw.url.clone();
    let attempt = |key: &'static str| {
        let url = url.clone();
        tokio::spawn(async move {
            let mut op = Client::connect(
                &url,
                &pinclaw::client::ClientOptions {
                    token: Some(TOKEN.into()),
                    scopes: vec!["operator.write".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            op.call("node.invoke", json!({"nodeId": "local", "command": "gpio.write", "params": {"name": "heater", "value": true}, "idempotencyKey": key, "timeoutMs": 10000}))
                .await
        })
    };
    let denied = attempt("h2");
    let request = approver
        .wait_event("exec.approval.requested", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    approver
        .call(
            "exec.approval.resolve",
            json!({"id": request["payload"]["id"], "decision": "deny"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    match denied.await.unwrap_or_else(|e| panic!("{e}")) {
        Err(ClientError::Rpc { error, .. }) => {
            assert_eq!(error["details"]["code"], "APPROVAL_DENIED")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.writes(23), 0);

    // Approved: the write happens.
    let allowed = attempt("h3");
    let request = approver
        .wait_event("exec.approval.requested", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let listed = approver
        .call("exec.approval.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed["approvals"][0]["id"], request["payload"]["id"]);
    approver
        .call(
            "exec.approval.resolve",
            json!({"id": request["payload"]["id"], "decision": "allow"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let done = allowed
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done["ok"], true);
    assert_eq!(sim.level(23), Some(Level::High));
    // Operators without the approvals scope cannot approve.
    let forbidden = op
        .call(
            "exec.approval.resolve",
            json!({"id": "x", "decision": "allow"}),
        )
        .await;
    assert!(matches!(forbidden, Err(ClientError::Rpc { code, .. }) if code == "FORBIDDEN"));
    gw.stop().await;
}

#[tokio::test]
async fn edges_become_node_events() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let sim = gw
        .handle
        .board()
        .and_then(|b| b.sim().cloned())
        .unwrap_or_else(|| panic!("sim"));
    let mut op = gw.client(&["operator.read"]).await;
    // pir1 is pin 22 (pull-down): motion drives it high.
    sim.inject(22, Level::High, Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("{e}"));
    let event = op
        .wait_event("node.event", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(event["payload"]["event"], "board.edge");
    assert_eq!(event["payload"]["payload"]["device"], "pir1");
    assert_eq!(event["payload"]["payload"]["active"], true);
    gw.stop().await;
}
