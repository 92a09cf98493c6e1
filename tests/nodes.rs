//! Nodes over real sockets: command-surface approval, node.invoke routing,
//! the three gates, timeouts, disconnects, and node listing.

mod support;

use std::time::Duration;

use pinclaw::client::{Client, ClientError, ClientOptions};
use serde_json::{Value, json};
use support::*;

fn node_options(gw: &TestGateway, name: &str, commands: &[&str]) -> ClientOptions {
    ClientOptions {
        token: Some(TOKEN.into()),
        role: "node".into(),
        client_id: "node-host".into(),
        mode: "node".into(),
        scopes: vec![],
        caps: vec!["system".into()],
        commands: commands.iter().map(|c| c.to_string()).collect(),
        device: Some(new_key()),
        display_name: Some(name.into()),
        ..gw.cli(&[])
    }
}

async fn approve_pending(admin: &mut Client, node_id: &str) {
    let list = admin
        .call("node.pair.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pending = list["pending"].as_array().cloned().unwrap_or_default();
    let request = pending
        .iter()
        .find(|p| p["nodeId"] == node_id)
        .unwrap_or_else(|| panic!("no pending request for {node_id}: {list}"));
    let approved = admin
        .call(
            "node.pair.approve",
            json!({"requestId": request["requestId"]}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(approved["node"]["nodeId"], node_id);
}

/// Answer one invoke request on `node` with `reply(command, params)`.
async fn serve_one(node: &mut Client, reply: impl FnOnce(&str, Value) -> Value) -> Value {
    let request = node
        .wait_event("node.invoke.request", Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("no invoke request: {e}"));
    let p = &request["payload"];
    let params: Value = p["paramsJSON"]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let result = reply(p["command"].as_str().unwrap_or(""), params);
    let ack = node
        .call(
            "node.invoke.result",
            json!({"id": p["id"], "nodeId": p["nodeId"], "ok": true, "payloadJSON": result.to_string()}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ack["ok"], true);
    request
}

#[tokio::test]
async fn invoke_round_trip_after_approval() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut admin = gw.client(&["operator.admin"]).await;
    let mut node = Client::connect(
        &gw.url,
        &node_options(&gw, "garage-pi", &["sensors.read", "gpio.write"]),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let requested = admin
        .wait_event("node.pair.requested", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let node_id = requested["payload"]["nodeId"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert_eq!(
        requested["payload"]["commands"],
        json!(["sensors.read", "gpio.write"])
    );
    assert_eq!(
        requested["payload"]["requiredApproveScopes"],
        json!(["operator.pairing", "operator.write"])
    );

    // Before approval the command does not run.
    let refused = admin
        .call("node.invoke", json!({"nodeId": node_id, "command": "sensors.read", "params": {}, "idempotencyKey": "k0"}))
        .await;
    assert!(
        matches!(&refused, Err(ClientError::Rpc { message, .. }) if message.contains("not approved")),
        "{refused:?}"
    );
    // The node host's inventory call waits for approval too.
    let waiting = node.call("node.runnerInventory.update", json!({})).await;
    assert!(
        matches!(&waiting, Err(ClientError::Rpc { code, .. }) if code == "UNAVAILABLE"),
        "{waiting:?}"
    );

    approve_pending(&mut admin, &node_id).await;
    let resolved = node
        .wait_event("node.pair.resolved", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resolved["payload"]["decision"], "approved");
    assert!(
        resolved.get("seq").is_none(),
        "targeted events carry no seq"
    );

    let listed = admin
        .call("node.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let entry = listed["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|e| e["nodeId"] == node_id.as_str()).cloned());
    let entry = entry.unwrap_or_else(|| panic!("node not listed: {listed}"));
    assert_eq!(entry["displayName"], "garage-pi");
    assert_eq!(entry["connected"], true);
    assert_eq!(entry["approvalState"], "approved");

    // Invoke by display name; the node answers.
    let url = gw.url.clone();
    let caller = tokio::spawn(async move {
        let mut op = Client::connect(
            &url,
            &ClientOptions {
                token: Some(TOKEN.into()),
                scopes: vec!["operator.write".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        op.call(
            "node.invoke",
            json!({"nodeId": "garage-pi", "command": "sensors.read", "params": {"name": "room"}, "idempotencyKey": "k1", "timeoutMs": 5000}),
        )
        .await
    });
    let request = serve_one(&mut node, |command, params| {
        assert_eq!(command, "sensors.read");
        json!({"name": params["name"], "value": 21.5, "unit": "°C"})
    })
    .await;
    assert!(
        request["payload"]["timeoutMs"]
            .as_u64()
            .is_some_and(|t| t <= 5000)
    );
    assert_eq!(request["payload"]["idempotencyKey"], "k1");
    let result = caller
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result["ok"], true);
    assert_eq!(result["nodeId"], node_id.as_str());
    assert_eq!(result["payload"]["value"], 21.5);
    assert_eq!(
        result["payloadJSON"],
        json!({"name": "room", "value": 21.5, "unit": "°C"}).to_string()
    );

    // A retry with the same idempotency key returns the cached result without a second request.
    let again = admin
        .call("node.invoke", json!({"nodeId": node_id, "command": "sensors.read", "params": {"name": "room"}, "idempotencyKey": "k1"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again["payload"]["value"], 21.5);
    assert!(
        node.take_events()
            .iter()
            .all(|e| e["event"] != "node.invoke.request")
    );
    gw.stop().await;
}

#[tokio::test]
async fn gates_timeout_and_disconnect() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut s = settings(dir.path());
    s.config.nodes.deny_commands = vec!["gpio.write".into()];
    let gw = TestGateway::start_with(s).await;
    let mut admin = gw.client(&["operator.admin"]).await;
    let mut node = Client::connect(
        &gw.url,
        &node_options(&gw, "shed", &["sensors.read", "gpio.write", "camera.snap"]),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let requested = admin
        .wait_event("node.pair.requested", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let node_id = requested["payload"]["nodeId"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    approve_pending(&mut admin, &node_id).await;

    let invoke = |command: &'static str, key: &'static str, timeout: u64| json!({"nodeId": node_id, "command": command, "params": {}, "idempotencyKey": key, "timeoutMs": timeout});
    let denied = admin
        .call("node.invoke", invoke("gpio.write", "d1", 1000))
        .await;
    assert!(
        matches!(&denied, Err(ClientError::Rpc { message, .. }) if message.contains("denied")),
        "{denied:?}"
    );
    let dangerous = admin
        .call("node.invoke", invoke("camera.snap", "d2", 1000))
        .await;
    assert!(
        matches!(&dangerous, Err(ClientError::Rpc { message, .. }) if message.contains("allow_commands")),
        "{dangerous:?}"
    );
    let undeclared = admin
        .call("node.invoke", invoke("system.run", "d3", 1000))
        .await;
    assert!(
        matches!(&undeclared, Err(ClientError::Rpc { message, .. }) if message.contains("not declared")),
        "{undeclared:?}"
    );

    // The node never answers: TIMEOUT, and the node is told to cancel.
    let timed_out = admin
        .call("node.invoke", invoke("sensors.read", "t1", 200))
        .await;
    match &timed_out {
        Err(ClientError::Rpc { code, error, .. }) => {
            assert_eq!(code, "UNAVAILABLE");
            assert_eq!(error["details"]["code"], "TIMEOUT");
        }
        other => panic!("{other:?}"),
    }
    let cancel = node
        .wait_event("node.invoke.cancel", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cancel["payload"]["nodeId"], node_id.as_str());
    // A late result is acknowledged and ignored.
    let request = node
        .take_events()
        .into_iter()
        .find(|e| e["event"] == "node.invoke.request")
        .unwrap_or_default();
    let late = node
        .call("node.invoke.result", json!({"id": request["payload"]["id"], "nodeId": node_id, "ok": true, "payloadJSON": "1"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(late["ok"], true);

    // Disconnect mid-invoke: the caller gets NOT_CONNECTED promptly.
    let url = gw.url.clone();
    let nid = node_id.clone();
    let caller = tokio::spawn(async move {
        let mut op = Client::connect(
            &url,
            &ClientOptions {
                token: Some(TOKEN.into()),
                scopes: vec!["operator.write".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        op.call("node.invoke", json!({"nodeId": nid, "command": "sensors.read", "idempotencyKey": "x1", "timeoutMs": 20000})).await
    });
    let _ = node
        .wait_event("node.invoke.request", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    node.close().await;
    let result = tokio::time::timeout(Duration::from_secs(5), caller).await;
    match result {
        Ok(Ok(Err(ClientError::Rpc { error, .. }))) => {
            assert_eq!(error["details"]["code"], "NOT_CONNECTED")
        }
        other => panic!("{other:?}"),
    }
    let after = admin
        .call("node.invoke", invoke("sensors.read", "x2", 1000))
        .await;
    assert!(
        matches!(&after, Err(ClientError::Rpc { error, .. }) if error["details"]["code"] == "NOT_CONNECTED"),
        "{after:?}"
    );
    let listed = admin
        .call("node.describe", json!({"nodeId": node_id}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed["connected"], false);
    assert_eq!(listed["paired"], true);
    gw.stop().await;
}

#[tokio::test]
async fn caller_going_away_cancels_the_invoke_on_the_node() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut admin = gw.client(&["operator.admin"]).await;
    let mut node = Client::connect(&gw.url, &node_options(&gw, "n", &["sensors.read"]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let requested = admin
        .wait_event("node.pair.requested", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let node_id = requested["payload"]["nodeId"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    approve_pending(&mut admin, &node_id).await;

    let mut raw = raw_connect(&gw.url, &[]).await;
    assert_eq!(
        raw_handshake(&mut raw, cli_params(&["operator.write"])).await["ok"],
        true
    );
    send(&mut raw, &json!({"type":"req","id":"i1","method":"node.invoke","params":{"nodeId": node_id, "command":"sensors.read","idempotencyKey":"g1","timeoutMs":20000}})).await;
    let request = node
        .wait_event("node.invoke.request", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    drop(raw);
    let cancel = node
        .wait_event("node.invoke.cancel", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cancel["payload"]["invokeId"], request["payload"]["id"]);
    gw.stop().await;
}

#[tokio::test]
async fn rename_reject_remove_and_node_cap() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut s = settings(dir.path());
    s.config.nodes.max_nodes = 1;
    let gw = TestGateway::start_with(s).await;
    let mut admin = gw.client(&["operator.admin"]).await;
    let node = Client::connect(&gw.url, &node_options(&gw, "first", &["a.b"]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let requested = admin
        .wait_event("node.pair.requested", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let node_id = requested["payload"]["nodeId"]
        .as_str()
        .unwrap_or("")
        .to_owned();

    let second = Client::connect(&gw.url, &node_options(&gw, "second", &[])).await;
    assert!(
        matches!(&second, Err(ClientError::Rpc { code, .. }) if code == "UNAVAILABLE"),
        "node cap: {:?}",
        second.err()
    );

    let rejected = admin
        .call(
            "node.pair.reject",
            json!({"requestId": requested["payload"]["requestId"]}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rejected["nodeId"], node_id.as_str());
    let renamed = admin
        .call(
            "node.rename",
            json!({"nodeId": &node_id[..8], "displayName": "porch"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(renamed["displayName"], "porch");
    let described = admin
        .call("node.describe", json!({"nodeId": "porch"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(described["nodeId"], node_id.as_str());
    assert_eq!(described["approvedCommands"], json!([]));

    admin
        .call("node.pair.remove", json!({"nodeId": node_id}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut node = node;
    let gone = node.call("health", json!({})).await;
    assert!(
        matches!(
            gone,
            Err(ClientError::Closed(_)) | Err(ClientError::Transport(_))
        ),
        "{gone:?}"
    );
    let unknown = admin.call("node.describe", json!({"nodeId": "nope"})).await;
    assert!(
        matches!(&unknown, Err(ClientError::Rpc { message, .. }) if message == "unknown node: nope")
    );
    gw.stop().await;
}
