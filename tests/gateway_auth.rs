//! Shared-secret auth modes, the failed-auth rate limit, the refusal to bind
//! a non-loopback address without a secret, and secrets kept out of logs.

mod support;

use pinclaw::config::{AuthMode, Secret};
use pinclaw::gateway::GatewayError;
use serde_json::json;
use support::*;

fn params_with_auth(auth: serde_json::Value) -> serde_json::Value {
    let mut p = cli_params(&["operator.read"]);
    p["auth"] = auth;
    p
}

async fn try_auth(
    url: &str,
    auth: serde_json::Value,
    headers: &[(&'static str, &str)],
) -> serde_json::Value {
    let mut ws = raw_connect(url, headers).await;
    let res = raw_handshake(&mut ws, params_with_auth(auth)).await;
    if res["ok"] == false {
        assert_eq!(
            expect_close(&mut ws).await.0,
            1008,
            "auth failures close 1008"
        );
    }
    res
}

#[tokio::test]
async fn token_mode_accepts_the_token_and_names_each_failure() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    assert_eq!(
        try_auth(&gw.url, json!({"token": TOKEN}), &[]).await["ok"],
        true
    );
    // The secret may also arrive in auth.password.
    assert_eq!(
        try_auth(&gw.url, json!({"password": TOKEN}), &[]).await["ok"],
        true
    );

    let res = try_auth(&gw.url, json!({"token": "wrong"}), &[]).await;
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert_eq!(
        res["error"]["message"],
        "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)"
    );
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    assert_eq!(
        res["error"]["details"]["recommendedNextStep"],
        "update_auth_credentials"
    );

    let res = try_auth(&gw.url, json!({}), &[]).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISSING");
    gw.stop().await;
}

#[tokio::test]
async fn password_mode() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut s = settings(dir.path());
    s.auth_mode = AuthMode::Password;
    s.password = Some(Secret::new("hunter2-but-longer"));
    let gw = TestGateway::start_with(s).await;
    assert_eq!(
        try_auth(&gw.url, json!({"password": "hunter2-but-longer"}), &[]).await["ok"],
        true
    );
    let res = try_auth(&gw.url, json!({"password": "nope"}), &[]).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_PASSWORD_MISMATCH");
    let res = try_auth(&gw.url, json!({"token": TOKEN}), &[]).await;
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_PASSWORD_MISMATCH",
        "the token is not the password"
    );
    let res = try_auth(&gw.url, json!({}), &[]).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_PASSWORD_MISSING");
    gw.stop().await;
}

#[tokio::test]
async fn none_mode_on_loopback() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut s = settings(dir.path());
    s.auth_mode = AuthMode::None;
    s.token = None;
    let gw = TestGateway::start_with(s).await;
    let res = try_auth(&gw.url, json!({}), &[]).await;
    assert_eq!(res["ok"], true);
    assert_eq!(res["payload"]["auth"]["method"], "none");
    gw.stop().await;
}

#[tokio::test]
async fn non_loopback_bind_without_a_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut s = settings(dir.path());
    s.auth_mode = AuthMode::None;
    s.bind = "0.0.0.0".parse().unwrap_or_else(|e| panic!("{e}"));
    match pinclaw::app::bind(s).await {
        Err(GatewayError::Refused(msg)) => assert!(msg.contains("without auth"), "{msg}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a non-loopback bind without auth must be refused"),
    }
    let mut s = settings(dir.path());
    s.auth_mode = AuthMode::Password;
    s.password = None;
    assert!(matches!(
        pinclaw::app::bind(s).await,
        Err(GatewayError::Refused(_))
    ));
}

#[tokio::test]
async fn failed_auth_is_rate_limited_per_ip_but_direct_loopback_is_exempt() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    // Through a (simulated) reverse proxy the connection is not direct loopback.
    let proxied = [("x-forwarded-for", "203.0.113.9")];
    for i in 0..10 {
        let res = try_auth(&gw.url, json!({"token": format!("bad-{i}")}), &proxied).await;
        assert_eq!(
            res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH",
            "attempt {i}"
        );
    }
    let res = try_auth(&gw.url, json!({"token": TOKEN}), &proxied).await;
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_RATE_LIMITED",
        "locked out even with the right token"
    );
    assert_eq!(res["error"]["retryable"], true);
    let wait = res["error"]["retryAfterMs"].as_u64().unwrap_or(0);
    assert!(wait > 290_000 && wait <= 300_000, "retryAfterMs {wait}");

    // Direct loopback clients are never locked out.
    for i in 0..12 {
        let res = try_auth(&gw.url, json!({"token": format!("bad-{i}")}), &[]).await;
        assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    }
    assert_eq!(
        try_auth(&gw.url, json!({"token": TOKEN}), &[]).await["ok"],
        true
    );
    gw.stop().await;
}

#[tokio::test]
async fn operators_without_identity_lose_scopes_unless_local_cli() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let scopes = json!(["operator.read", "operator.write"]);
    let connect = |client_id: &'static str,
                   mode: &'static str,
                   headers: Vec<(&'static str, &'static str)>| {
        let url = gw.url.clone();
        let scopes = scopes.clone();
        async move {
            let mut ws = raw_connect(&url, &headers).await;
            let mut p = cli_params(&[]);
            p["scopes"] = scopes;
            p["client"]["id"] = json!(client_id);
            p["client"]["mode"] = json!(mode);
            raw_handshake(&mut ws, p).await["payload"]["auth"]["scopes"].clone()
        }
    };
    assert_eq!(connect("cli", "cli", vec![]).await, scopes);
    assert_eq!(connect("gateway-client", "backend", vec![]).await, scopes);
    assert_eq!(connect("test", "test", vec![]).await, json!([]));
    assert_eq!(connect("cli", "probe", vec![]).await, json!([]));
    assert_eq!(
        connect("cli", "cli", vec![("x-forwarded-for", "198.51.100.7")]).await,
        json!([])
    );
    gw.stop().await;
}

#[tokio::test]
async fn no_secret_reaches_the_logs() {
    pinclaw::logging::init("debug").unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let wrong = "wrong-secret-that-must-not-be-logged";
    let _ = try_auth(&gw.url, json!({"token": wrong}), &[]).await;
    let _ = try_auth(&gw.url, json!({"token": TOKEN}), &[]).await;
    // A device pairs silently and receives a device token.
    let mut options = gw.cli(&["operator.read"]);
    options.device = Some(new_key());
    let mut client = pinclaw::client::Client::connect(&gw.url, &options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let device_token = client.hello["auth"]["deviceToken"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert_eq!(device_token.len(), 43);
    let page = client
        .call("logs.tail", json!({"limit": 1000}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = page["lines"].to_string();
    assert!(
        text.contains("connect refused"),
        "the refusal is logged: {text}"
    );
    for secret in [TOKEN, wrong, device_token.as_str()] {
        assert!(!text.contains(secret), "secret leaked into logs");
    }
    gw.stop().await;
}
