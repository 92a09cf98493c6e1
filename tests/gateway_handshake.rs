//! The connect handshake over real loopback sockets.

mod support;

use serde_json::json;
use support::*;

#[tokio::test]
async fn challenge_then_hello_ok_with_every_required_key() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut ws = raw_connect(&gw.url, &[]).await;
    let challenge = next_json(&mut ws).await;
    assert_eq!(challenge["type"], "event");
    assert_eq!(challenge["event"], "connect.challenge");
    assert_eq!(
        challenge["payload"]["nonce"].as_str().map(str::len),
        Some(36)
    );
    assert!(challenge["payload"]["ts"].as_i64().unwrap_or(0) > 1_700_000_000_000);
    assert!(
        challenge.get("seq").is_none(),
        "the challenge carries no seq"
    );

    send(&mut ws, &connect_frame(cli_params(&["operator.read"]))).await;
    let res = next_json(&mut ws).await;
    assert_eq!(res["type"], "res");
    assert_eq!(res["id"], "c1");
    assert_eq!(res["ok"], true);
    let hello = &res["payload"];
    assert_eq!(hello["type"], "hello-ok");
    assert_eq!(hello["protocol"], 4);
    assert!(hello["server"]["version"].is_string());
    assert_eq!(hello["server"]["connId"].as_str().map(str::len), Some(36));
    let methods: Vec<&str> = hello["features"]["methods"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(methods, pinclaw::gateway::methods::served_methods());
    assert!(
        hello["features"]["events"]
            .as_array()
            .is_some_and(|e| e.contains(&json!("tick")))
    );
    for key in [
        "presence",
        "health",
        "stateVersion",
        "uptimeMs",
        "sessionDefaults",
    ] {
        assert!(hello["snapshot"].get(key).is_some(), "snapshot.{key}");
    }
    assert_eq!(
        hello["snapshot"]["sessionDefaults"]["mainSessionKey"],
        "agent:main:main"
    );
    assert_eq!(hello["auth"]["role"], "operator");
    assert_eq!(hello["auth"]["scopes"], json!(["operator.read"]));
    assert!(hello["auth"].get("deviceToken").is_none());
    assert_eq!(
        hello["policy"]["maxPayload"],
        pinclaw::limits::MAX_PAYLOAD_BYTES
    );
    assert_eq!(
        hello["policy"]["maxBufferedBytes"],
        pinclaw::limits::MAX_BUFFERED_BYTES
    );
    assert_eq!(hello["policy"]["tickIntervalMs"], 30_000);

    // A later connect is refused; the socket stays usable.
    send(
        &mut ws,
        &json!({"type":"req","id":"2","method":"connect","params":{}}),
    )
    .await;
    let res = next_res(&mut ws).await;
    // Non-admin: the scope check comes first.
    assert_eq!(res["error"]["code"], "FORBIDDEN");
    send(&mut ws, &json!({"type":"req","id":"3","method":"health"})).await;
    let res = next_res(&mut ws).await;
    assert_eq!(res["id"], "3");
    assert_eq!(res["payload"]["ok"], true);
    gw.stop().await;
}

#[tokio::test]
async fn protocol_mismatch_gets_details_and_1002() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut ws = raw_connect(&gw.url, &[]).await;
    let mut params = cli_params(&[]);
    params["minProtocol"] = json!(5);
    params["maxProtocol"] = json!(6);
    let res = raw_handshake(&mut ws, params).await;
    assert_eq!(res["ok"], false);
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert_eq!(res["error"]["message"], "protocol mismatch");
    let d = &res["error"]["details"];
    assert_eq!(d["code"], "PROTOCOL_MISMATCH");
    assert_eq!(d["clientMinProtocol"], 5);
    assert_eq!(d["clientMaxProtocol"], 6);
    assert_eq!(d["expectedProtocol"], 4);
    assert_eq!(d["minimumProbeProtocol"], 3);
    assert_eq!(expect_close(&mut ws).await.0, 1002);

    // A probe offering [3,4] is accepted (with its scopes cleared).
    let mut ws = raw_connect(&gw.url, &[]).await;
    let mut params = cli_params(&["operator.read"]);
    params["minProtocol"] = json!(3);
    params["client"]["mode"] = json!("probe");
    let res = raw_handshake(&mut ws, params).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["scopes"], json!([]));
    gw.stop().await;
}

#[tokio::test]
async fn first_frame_must_be_connect() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;

    let mut ws = raw_connect(&gw.url, &[]).await;
    let _ = next_json(&mut ws).await;
    send(
        &mut ws,
        &json!({"type":"req","id":"x1","method":"health","params":{}}),
    )
    .await;
    let res = next_json(&mut ws).await;
    assert_eq!(res["id"], "x1");
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert_eq!(
        res["error"]["message"],
        "invalid handshake: first request must be connect"
    );
    assert_eq!(expect_close(&mut ws).await.0, 1008);

    let mut ws = raw_connect(&gw.url, &[]).await;
    let _ = next_json(&mut ws).await;
    use futures_util::SinkExt;
    let _ = ws
        .send(tokio_tungstenite::tungstenite::Message::text("not json"))
        .await;
    let res = next_json(&mut ws).await;
    assert_eq!(res["error"]["message"], "invalid request frame");
    assert_eq!(expect_close(&mut ws).await.0, 1008);

    let mut ws = raw_connect(&gw.url, &[]).await;
    let res = raw_handshake(&mut ws, json!({"minProtocol": 4})).await;
    let message = res["error"]["message"].as_str().unwrap_or("");
    assert!(message.starts_with("invalid connect params: "), "{message}");
    assert_eq!(expect_close(&mut ws).await.0, 1008);

    let mut ws = raw_connect(&gw.url, &[]).await;
    let mut params = cli_params(&[]);
    params["role"] = json!("admin");
    let res = raw_handshake(&mut ws, params).await;
    assert_eq!(res["error"]["message"], "invalid role");
    assert_eq!(expect_close(&mut ws).await.0, 1008);
    gw.stop().await;
}

#[tokio::test]
async fn oversized_preauth_frame_closes_1009() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut ws = raw_connect(&gw.url, &[]).await;
    let _ = next_json(&mut ws).await;
    let mut params = cli_params(&[]);
    params["client"]["displayName"] = json!("x".repeat(70 * 1024));
    use futures_util::SinkExt;
    // The server may close mid-send; either way the close code must be 1009.
    let _ = ws
        .send(tokio_tungstenite::tungstenite::Message::text(
            connect_frame(params).to_string(),
        ))
        .await;
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(code, 1009, "reason {reason:?}");

    // A connect just under the cap still works.
    let mut ws = raw_connect(&gw.url, &[]).await;
    let mut params = cli_params(&[]);
    params["client"]["displayName"] = json!("x".repeat(60 * 1024));
    let res = raw_handshake(&mut ws, params).await;
    assert_eq!(res["ok"], true);
    gw.stop().await;
}

#[tokio::test(start_paused = true)]
async fn handshake_times_out_after_15_seconds() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut ws = raw_connect(&gw.url, &[]).await;
    let _ = next_json(&mut ws).await;
    let started = tokio::time::Instant::now();
    let (code, _) = expect_close(&mut ws).await;
    assert_eq!(code, 1008);
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(15),
        "closed after {waited:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn http_probes_on_the_same_port() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let get = |path: &'static str| {
        let addr = gw.addr;
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
            s.write_all(req.as_bytes())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let mut out = String::new();
            s.read_to_string(&mut out)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            out
        }
    };
    let health = get("/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        health.ends_with(r#"{"ok":true,"status":"live"}"#),
        "{health}"
    );
    let ready = get("/readyz").await;
    assert!(
        ready.starts_with("HTTP/1.1 200") && ready.contains(r#""ready":true"#),
        "{ready}"
    );
    assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
    gw.stop().await;
}
