//! `pinclaw node` mode against a pinclaw gateway: it waits out device
//! pairing, its commands are approved, invokes reach the handler, and it
//! reconnects after the gateway restarts.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pinclaw::client::{Client, ClientError};
use pinclaw::node::host::{self, CommandHandler, HandlerError, HandlerFuture, NodeHostOptions};
use serde_json::{Value, json};
use support::*;

#[derive(Default)]
struct Echo {
    calls: AtomicUsize,
}

impl CommandHandler for Echo {
    fn commands(&self) -> Vec<String> {
        vec!["echo.say".into(), "echo.fail".into()]
    }
    fn caps(&self) -> Vec<String> {
        vec!["echo".into()]
    }
    fn handle(&self, command: String, params: Value) -> HandlerFuture {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            match command.as_str() {
                "echo.say" => Ok(json!({"said": params["text"]})),
                _ => Err(HandlerError {
                    code: "BROKEN".into(),
                    message: "it failed on purpose".into(),
                }),
            }
        })
    }
}

async fn wait_for<F: Fn(&Value) -> bool>(admin: &mut Client, method: &str, check: F) -> Value {
    for _ in 0..200 {
        let v = admin
            .call(method, json!({}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if check(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition on {method} never held");
}

#[tokio::test]
async fn node_host_pairs_serves_and_reconnects() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let node_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut s = settings(dir.path());
    s.auto_approve_loopback = false;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().map(|a| a.port()).unwrap_or(0)
    };
    s.port = port;
    let gw = TestGateway::start_with(s.clone()).await;
    let mut admin = gw.client(&["operator.admin"]).await;

    let echo = Arc::new(Echo::default());
    let mut options = NodeHostOptions::new(gw.url.clone(), "echo-node", node_dir.path().to_owned());
    options.token = Some(TOKEN.into());
    options.pairing_retry = Duration::from_millis(200);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handler: Arc<dyn CommandHandler> = echo.clone();
    let node_task = tokio::spawn(host::run(options, handler, async {
        let _ = stop_rx.await;
    }));

    // Device pairing first (loopback auto-approval is off here).
    let devices = wait_for(&mut admin, "device.pair.list", |v| {
        v["pending"].as_array().is_some_and(|p| !p.is_empty())
    })
    .await;
    let request_id = devices["pending"][0]["requestId"].clone();
    assert_eq!(devices["pending"][0]["role"], "node");
    admin
        .call("device.pair.approve", json!({"requestId": request_id}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Then the command surface.
    let pending = wait_for(&mut admin, "node.pair.list", |v| {
        v["pending"].as_array().is_some_and(|p| !p.is_empty())
    })
    .await;
    let node_id = pending["pending"][0]["nodeId"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert_eq!(
        pending["pending"][0]["commands"],
        json!(["echo.say", "echo.fail"])
    );
    admin
        .call(
            "node.pair.approve",
            json!({"requestId": pending["pending"][0]["requestId"]}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let said = admin
        .call("node.invoke", json!({"nodeId": "echo-node", "command": "echo.say", "params": {"text": "hi"}, "idempotencyKey": "a"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(said["payload"]["said"], "hi");
    let failed = admin
        .call(
            "node.invoke",
            json!({"nodeId": node_id, "command": "echo.fail", "idempotencyKey": "b"}),
        )
        .await;
    match failed {
        Err(ClientError::Rpc { error, .. }) => {
            assert_eq!(error["details"]["nodeError"]["code"], "BROKEN");
            assert_eq!(error["message"], "it failed on purpose");
        }
        other => panic!("{other:?}"),
    }

    // Restart the gateway on the same port: the node comes back by itself.
    admin.close().await;
    gw.stop().await;
    let gw = TestGateway::start_with(s).await;
    let mut admin = gw.client(&["operator.admin"]).await;
    wait_for(&mut admin, "node.list", |v| {
        v["nodes"].as_array().is_some_and(|n| {
            n.iter()
                .any(|e| e["nodeId"] == node_id.as_str() && e["connected"] == true)
        })
    })
    .await;
    let said = admin
        .call("node.invoke", json!({"nodeId": node_id, "command": "echo.say", "params": {"text": "back"}, "idempotencyKey": "c"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(said["payload"]["said"], "back");
    assert_eq!(echo.calls.load(Ordering::Relaxed), 3);

    let _ = stop_tx.send(());
    let _ = node_task.await;
    gw.stop().await;
}
