//! A second pinclaw binary in `node` mode joins the gateway and is invoked
//! through it: the remote board's relay switches and reads back.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use support::*;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_second_pinclaw_in_node_mode_is_invoked_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(&dir.path().join("gw")).await;
    let mut admin = gw.client(&["operator.admin"]).await;
    let _node = Proc(
        Command::new(env!("CARGO_BIN_EXE_pinclaw"))
            .args([
                "node",
                "--url",
                &gw.url,
                "--token",
                TOKEN,
                "--name",
                "shed-pi",
                "--state-dir",
            ])
            .arg(dir.path().join("node"))
            .env_remove("PINCLAW_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let requested = admin
        .wait_event("node.pair.requested", Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(requested["payload"]["displayName"], "shed-pi");
    assert!(
        requested["payload"]["commands"]
            .as_array()
            .is_some_and(|c| c.contains(&json!("gpio.write")))
    );
    admin
        .call(
            "node.pair.approve",
            json!({"requestId": requested["payload"]["requestId"]}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let invoke = |command: &str, params: serde_json::Value, key: &str| json!({"nodeId": "shed-pi", "command": command, "params": params, "idempotencyKey": key});
    let wrote = admin
        .call(
            "node.invoke",
            invoke("gpio.write", json!({"name": "relay1", "value": true}), "w"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wrote["payload"]["value"], true);
    let read = admin
        .call(
            "node.invoke",
            invoke("gpio.read", json!({"name": "relay1"}), "r"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read["payload"]["value"], true, "the remote sim pin changed");
    let missing = admin
        .call(
            "node.invoke",
            invoke("sensors.read", json!({"name": "nope"}), "m"),
        )
        .await;
    assert!(
        matches!(&missing, Err(pinclaw::client::ClientError::Rpc { error, .. }) if error["details"]["nodeError"]["code"] == "UNKNOWN_DEVICE"),
        "{missing:?}"
    );
    gw.stop().await;
}
