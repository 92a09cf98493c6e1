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
    let asker = requested["payload"]["requestedBy"].as_str().unwrap_or("");
    assert!(asker.starts_with("operator "), "who asks: {asker:?}");

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
    assert_eq!(listed[0]["id"], request["payload"]["id"]);
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
    // The edge, past any board.change (the initial states, the readings).
    let event = loop {
        let event = op
            .wait_event("node.event", Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if event["payload"]["event"] == "board.edge" {
            break event;
        }
    };
    assert_eq!(event["payload"]["payload"]["device"], "pir1");
    assert_eq!(event["payload"]["payload"]["active"], true);
    gw.stop().await;
}

/// Waits for the next `board.change` of `name` (other node events skipped).
async fn next_change(client: &mut Client, name: &str) -> Value {
    loop {
        let event = client
            .wait_event("node.event", Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("no board.change for {name}: {e}"));
        if event["payload"]["event"] == "board.change"
            && event["payload"]["payload"]["name"] == name
        {
            return event["payload"]["payload"].clone();
        }
    }
}

#[tokio::test]
async fn sim_set_drives_inputs_and_sensors_and_every_change_is_published() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut admin = gw.client(&["operator.admin"]).await;
    let mut watcher = gw.client(&["operator.read"]).await;
    let mut writer = gw.client(&["operator.write"]).await;

    // Admin only: a writer may switch relays but not fake the world.
    let refused = local_invoke(
        &mut writer,
        "sim.set",
        json!({"name": "pir1", "value": true}),
        "s0",
    )
    .await
    .expect_err("sim.set needs operator.admin");
    assert!(refused.to_string().contains("operator.admin"), "{refused}");

    // An input, as if wired: an edge follows (both the OpenClaw-style
    // board.edge and the board.change every watcher gets).
    local_invoke(
        &mut admin,
        "sim.set",
        json!({"name": "pir1", "value": true}),
        "s1",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let change = next_change(&mut watcher, "pir1").await;
    assert_eq!(
        (change["kind"].as_str(), change["value"].as_bool()),
        (Some("input"), Some(true))
    );

    // A sensor field: the next read says so, and the change is pushed at once.
    let read = local_invoke(
        &mut admin,
        "sim.set",
        json!({"name": "room", "temperature_c": 30.5}),
        "s2",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        read["payload"]["readings"]["temperature"]["value"], 30.5,
        "{read}"
    );
    let change = next_change(&mut watcher, "room").await;
    assert_eq!(change["kind"], "reading");
    assert_eq!(change["values"]["temperature_c"], 30.5);
    assert!(change["values"]["humidity_pct"].is_number(), "{change}");

    // Another client's write reaches the watcher too.
    local_invoke(
        &mut writer,
        "gpio.write",
        json!({"name": "relay1", "value": true}),
        "w1",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let change = next_change(&mut watcher, "relay1").await;
    assert_eq!(
        (change["kind"].as_str(), change["value"].as_bool()),
        (Some("output"), Some(true))
    );

    // Specific errors for what cannot be.
    for (params, needle) in [
        (
            json!({"name": "room", "temperature": 1}),
            "has no field `temperature` (it has temperature_c, humidity_pct, pressure_hpa)",
        ),
        (
            json!({"name": "relay1", "value": true}),
            "`value` drives inputs",
        ),
        (json!({"name": "pir1"}), "give `value` for an input"),
        (json!({"name": "nope", "value": true}), "nope"),
        (
            json!({"name": "room", "temperature_c": "hot"}),
            "must be a number",
        ),
    ] {
        let e = local_invoke(
            &mut admin,
            "sim.set",
            params.clone(),
            &format!("bad{params}"),
        )
        .await
        .expect_err("refused");
        assert!(e.to_string().contains(needle), "{params}: {e}");
    }

    // The forced value is in the sensor's history, one slot per step.
    let history = admin
        .call(
            "sensors.history",
            json!({"name": "room", "field": "temperature_c"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(history["stepMs"], 60_000);
    let values = history["fields"]["temperature_c"]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(values.last(), Some(&json!(30.5)), "{history}");
    assert!(
        history["fields"].get("humidity_pct").is_none(),
        "one field asked for"
    );
    let e = admin
        .call("sensors.history", json!({"name": "relay1"}))
        .await
        .expect_err("not a sensor");
    assert!(e.to_string().contains("not a sensor"), "{e}");
    gw.stop().await;
}

#[tokio::test]
async fn the_sensor_history_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    // A reading ten minutes ago (the sampler fills the current minute).
    let ts = pinclaw::ids::now_ms() as u64 - 600_000;
    let history = gw
        .handle
        .shared()
        .history
        .clone()
        .unwrap_or_else(|| panic!("history on"));
    history.record(&pinclaw::board::BoardChange::Reading {
        name: "water".into(),
        values: vec![("temperature_c", 12.25)],
        ts,
    });
    gw.stop().await; // snapshots at shutdown

    let gw = TestGateway::start(dir.path()).await;
    let mut op = gw.client(&["operator.read"]).await;
    let history = op
        .call("sensors.history", json!({"name": "water", "sinceMs": ts}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let field = &history["fields"]["temperature_c"];
    assert_eq!(field["startMs"], ts / 60_000 * 60_000, "{history}");
    assert_eq!(field["values"][0], 12.25, "{history}");
    gw.stop().await;
}
