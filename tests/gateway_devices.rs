//! Device identity proofs and pairing end to end, across a restart.

mod support;

use std::time::Duration;

use pinclaw::client::{Client, ClientError, ClientOptions};
use serde_json::json;
use support::*;

/// Sign connect params with `key`, then let `tamper` break the proof.
async fn device_connect_with(
    gw: &TestGateway,
    tamper: impl FnOnce(&mut serde_json::Value, &str),
) -> serde_json::Value {
    let mut ws = raw_connect(&gw.url, &[]).await;
    let challenge = next_json(&mut ws).await;
    let nonce = challenge["payload"]["nonce"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let ts = challenge["payload"]["ts"].as_i64().unwrap_or(0);
    let options = ClientOptions {
        device: Some(new_key()),
        ..gw.cli(&["operator.read"])
    };
    let mut params = pinclaw::client::connect_params(&options, &nonce, ts);
    tamper(&mut params, &nonce);
    send(&mut ws, &connect_frame(params)).await;
    let res = next_json(&mut ws).await;
    if res["ok"] == false {
        assert_eq!(expect_close(&mut ws).await.0, 1008);
    }
    res
}

#[tokio::test]
async fn every_device_auth_failure_has_its_code_on_the_wire() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    assert_eq!(device_connect_with(&gw, |_, _| {}).await["ok"], true);

    type Tamper = Box<dyn FnOnce(&mut serde_json::Value, &str)>;
    let cases: Vec<(&str, &str, Tamper)> = vec![
        (
            "DEVICE_AUTH_DEVICE_ID_MISMATCH",
            "device-id-mismatch",
            Box::new(|p, _| p["device"]["id"] = json!("ab".repeat(32))),
        ),
        (
            "DEVICE_AUTH_SIGNATURE_EXPIRED",
            "device-signature-stale",
            Box::new(|p, _| {
                let at = p["device"]["signedAt"].as_i64().unwrap_or(0);
                p["device"]["signedAt"] = json!(at - 121_000);
            }),
        ),
        (
            "DEVICE_AUTH_NONCE_REQUIRED",
            "device-nonce-missing",
            Box::new(|p, _| p["device"]["nonce"] = json!("")),
        ),
        (
            "DEVICE_AUTH_NONCE_MISMATCH",
            "device-nonce-mismatch",
            Box::new(|p, _| p["device"]["nonce"] = json!("00000000-0000-4000-8000-000000000000")),
        ),
        (
            "DEVICE_AUTH_SIGNATURE_INVALID",
            "device-signature",
            Box::new(|p, _| p["scopes"] = json!(["operator.admin"])),
        ),
        (
            "DEVICE_AUTH_PUBLIC_KEY_INVALID",
            "device-public-key",
            Box::new(|p, _| p["device"]["publicKey"] = json!("AAAA")),
        ),
    ];
    for (code, reason, tamper) in cases {
        let res = device_connect_with(&gw, tamper).await;
        assert_eq!(res["error"]["code"], "INVALID_REQUEST", "{code}");
        assert_eq!(res["error"]["details"]["code"], code);
        assert_eq!(res["error"]["details"]["reason"], reason);
    }
    gw.stop().await;
}

fn proxied_device(gw: &TestGateway, key: &ed25519_dalek::SigningKey, role: &str) -> ClientOptions {
    let mut o = gw.cli(if role == "node" {
        &[]
    } else {
        &["operator.read"]
    });
    o.device = Some(key.clone());
    o.role = role.into();
    if role == "node" {
        o.client_id = "node-host".into();
        o.mode = "node".into();
    }
    o
}

/// Connect through a (simulated) proxy so silent loopback pairing does not apply.
async fn connect_proxied(
    url: &str,
    options: &ClientOptions,
) -> Result<serde_json::Value, serde_json::Value> {
    let mut ws = raw_connect(url, &[("x-forwarded-for", "192.0.2.50")]).await;
    let challenge = next_json(&mut ws).await;
    let params = pinclaw::client::connect_params(
        options,
        challenge["payload"]["nonce"].as_str().unwrap_or(""),
        challenge["payload"]["ts"].as_i64().unwrap_or(0),
    );
    send(&mut ws, &connect_frame(params)).await;
    let res = next_json(&mut ws).await;
    if res["ok"] == true {
        Ok(res["payload"].clone())
    } else {
        Err(res["error"].clone())
    }
}

#[tokio::test]
async fn pairing_end_to_end_and_across_a_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut admin = gw.client(&["operator.pairing", "operator.read"]).await;
    let key = new_key();
    let device_id = pinclaw::protocol::device_auth::device_id_for(&key.verifying_key().to_bytes());

    // Unknown device from the network: NOT_PAIRED with a request id.
    let err = connect_proxied(&gw.url, &proxied_device(&gw, &key, "operator"))
        .await
        .err()
        .unwrap_or_default();
    assert_eq!(err["code"], "NOT_PAIRED");
    assert_eq!(
        err["message"],
        "pairing required: device is not approved yet"
    );
    assert_eq!(err["details"]["code"], "PAIRING_REQUIRED");
    assert_eq!(err["details"]["reason"], "not-paired");
    assert_eq!(err["details"]["deviceId"], device_id.as_str());
    let request_id = err["details"]["requestId"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert_eq!(request_id.len(), 36);

    // Pairing-scoped operators hear about it.
    let event = admin
        .wait_event("device.pair.requested", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(event["payload"]["requestId"], request_id.as_str());
    assert!(event["seq"].as_u64().is_some());

    // The device retries while it waits: it keeps its request and id (the
    // one an operator may have copied), and nobody is told twice.
    for _ in 0..3 {
        let again = connect_proxied(&gw.url, &proxied_device(&gw, &key, "operator"))
            .await
            .err()
            .unwrap_or_default();
        assert_eq!(again["details"]["requestId"], request_id.as_str());
        assert_eq!(again["details"]["recommendedNextStep"], "wait_then_retry");
        assert_eq!(again["details"]["pauseReconnect"], false);
    }
    assert!(
        admin
            .wait_event("device.pair.requested", Duration::from_millis(200))
            .await
            .is_err(),
        "announced again"
    );

    let list = admin
        .call("device.pair.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list["pending"][0]["requestId"], request_id.as_str());
    assert_eq!(list["pending"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["paired"], json!([]));

    // Restart before approving: the pending request survives.
    admin.close().await;
    gw.stop().await;
    let gw = TestGateway::start(dir.path()).await;
    let mut admin = gw.client(&["operator.pairing"]).await;
    let approved = admin
        .call("device.pair.approve", json!({"requestId": request_id}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(approved["device"]["deviceId"], device_id.as_str());
    assert!(
        approved.to_string().find("token\":\"").is_none(),
        "approve never returns the secret"
    );
    let resolved = admin
        .wait_event("device.pair.resolved", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resolved["payload"]["decision"], "approved");
    // The request is consumed.
    let again = admin
        .call("device.pair.approve", json!({"requestId": request_id}))
        .await;
    assert!(matches!(again, Err(ClientError::Rpc { .. })));

    // Now the device connects and receives a device token.
    let hello = connect_proxied(&gw.url, &proxied_device(&gw, &key, "operator"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let device_token = hello["auth"]["deviceToken"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert_eq!(device_token.len(), 43);
    assert_eq!(hello["auth"]["scopes"], json!(["operator.read"]));

    // Restart: the device reconnects with only its device token.
    admin.close().await;
    gw.stop().await;
    let gw = TestGateway::start(dir.path()).await;
    let mut options = proxied_device(&gw, &key, "operator");
    options.token = None;
    options.device_token = Some(device_token.clone());
    let hello = connect_proxied(&gw.url, &options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hello["auth"]["method"], "device-token");
    assert_eq!(hello["auth"]["deviceToken"], device_token.as_str());

    // A wider scope request needs approval again.
    let mut wider = proxied_device(&gw, &key, "operator");
    wider.scopes = vec!["operator.read".into(), "operator.admin".into()];
    let err = connect_proxied(&gw.url, &wider)
        .await
        .err()
        .unwrap_or_default();
    assert_eq!(err["details"]["reason"], "scope-upgrade");

    // Rotating the token invalidates the old one.
    let mut admin = gw.client(&["operator.pairing"]).await;
    let rotated = admin
        .call(
            "device.token.rotate",
            json!({"deviceId": device_id, "role": "operator"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let new_token = rotated["token"].as_str().unwrap_or("").to_owned();
    assert_ne!(new_token, device_token);
    let err = connect_proxied(&gw.url, &options)
        .await
        .err()
        .unwrap_or_default();
    assert_eq!(err["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH");
    options.device_token = Some(new_token);
    assert!(connect_proxied(&gw.url, &options).await.is_ok());

    // Removing the device closes its live connection and forgets it.
    let mut live = Client::connect(&gw.url, &{
        let mut o = proxied_device(&gw, &key, "operator");
        o.token = None;
        o.device_token = options.device_token.clone();
        o
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    admin
        .call("device.pair.remove", json!({"deviceId": device_id}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let closed = live.call("health", json!({})).await;
    assert!(
        matches!(
            closed,
            Err(ClientError::Closed(Some((4001, _)))) | Err(ClientError::Transport(_))
        ),
        "{closed:?}"
    );
    let err = connect_proxied(&gw.url, &options)
        .await
        .err()
        .unwrap_or_default();
    assert_eq!(
        err["details"]["code"], "AUTH_TOKEN_MISSING",
        "its device token died with it"
    );
    let err = connect_proxied(&gw.url, &proxied_device(&gw, &key, "operator"))
        .await
        .err()
        .unwrap_or_default();
    assert_eq!(err["code"], "NOT_PAIRED");
    gw.stop().await;
}

#[tokio::test]
async fn reject_and_silent_loopback_pairing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut admin = gw.client(&["operator.pairing"]).await;
    let key = new_key();
    let err = connect_proxied(&gw.url, &proxied_device(&gw, &key, "node"))
        .await
        .err()
        .unwrap_or_default();
    let request_id = err["details"]["requestId"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert_eq!(err["details"]["requestedRole"], "node");
    let rejected = admin
        .call("device.pair.reject", json!({"requestId": request_id}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rejected["requestId"], request_id.as_str());
    let list = admin
        .call("device.pair.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list["pending"], json!([]));

    // The same device directly on loopback is approved silently as a node.
    let mut options = proxied_device(&gw, &key, "node");
    options.scopes = vec![];
    let node = Client::connect(&gw.url, &options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(node.hello["auth"]["role"], "node");
    assert_eq!(node.hello["auth"]["scopes"], json!([]));
    assert!(node.hello["auth"]["deviceToken"].is_string());
    let list = admin
        .call("device.pair.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list["paired"][0]["approvedVia"], "silent");
    assert_eq!(list["paired"][0]["connected"], true);
    assert!(
        !list
            .to_string()
            .contains(node.hello["auth"]["deviceToken"].as_str().unwrap_or("-"))
    );
    gw.stop().await;
}

#[tokio::test]
async fn nodes_need_a_device_identity() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut ws = raw_connect(&gw.url, &[]).await;
    let mut p = cli_params(&[]);
    p["role"] = json!("node");
    p["client"] = json!({"id": "node-host", "version": "1", "platform": "linux", "mode": "node"});
    let res = raw_handshake(&mut ws, p).await;
    assert_eq!(res["error"]["code"], "NOT_PAIRED");
    assert_eq!(res["error"]["message"], "device identity required");
    assert_eq!(res["error"]["details"]["code"], "DEVICE_IDENTITY_REQUIRED");
    assert_eq!(expect_close(&mut ws).await.0, 1008);
    gw.stop().await;
}
