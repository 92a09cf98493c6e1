//! A scope matrix over every served method: role split, scope implication,
//! admin default for unknown methods, and `health` open to all.

mod support;

use pinclaw::client::{Client, ClientError};
use pinclaw::gateway::methods::{Access, METHODS, served_methods};
use serde_json::{Value, json};
use support::*;

async fn outcome(client: &mut Client, method: &str) -> Result<Value, (String, Value)> {
    match client.call(method, json!({})).await {
        Ok(v) => Ok(v),
        Err(ClientError::Rpc { code, error, .. }) => Err((code, error)),
        Err(e) => panic!("{method}: transport {e}"),
    }
}

#[tokio::test]
async fn scope_matrix_over_every_served_method() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let scope_sets: [&[&str]; 6] = [
        &[],
        &["operator.read"],
        &["operator.write"],
        &["operator.pairing"],
        &["operator.approvals"],
        &["operator.admin"],
    ];
    for scopes in scope_sets {
        let mut client = gw.client(scopes).await;
        for m in METHODS {
            let (method, access) = (m.name, &m.access);
            let result = outcome(&mut client, method).await;
            let allowed = match access {
                Access::Open => true,
                Access::Operator(required) => {
                    pinclaw::protocol::scopes::satisfied(scopes, required)
                }
                Access::Node => false,
            };
            if *access == Access::Node {
                assert!(
                    matches!(&result, Err((code, e)) if code == "INVALID_REQUEST" && e["message"] == "unauthorized role: operator"),
                    "{method}: {result:?}"
                );
                continue;
            }
            match (&result, allowed) {
                (Err((code, error)), false) => {
                    assert_eq!(code, "FORBIDDEN", "{method} with {scopes:?}");
                    if let Access::Operator(required) = access {
                        assert_eq!(error["message"], format!("missing scope: {required}"));
                        assert_eq!(error["details"]["code"], "MISSING_SCOPE");
                        assert_eq!(error["details"]["missingScope"], *required);
                    }
                }
                (Err((code, _)), true) => {
                    // Allowed, but `{}` may be invalid params for some methods.
                    assert_ne!(code, "FORBIDDEN", "{method} with {scopes:?}: {result:?}");
                    let message = result
                        .as_ref()
                        .err()
                        .map(|(_, e)| e["message"].to_string())
                        .unwrap_or_default();
                    assert!(
                        message.contains("params"),
                        "{method} with {scopes:?}: {message}"
                    );
                }
                (Ok(_), true) => {}
                (Ok(v), false) => panic!("{method} with {scopes:?} should be refused, got {v}"),
            }
        }
        // Unknown methods need admin; with admin they are unknown.
        let unknown = outcome(&mut client, "no.such.method").await;
        match unknown {
            Err((code, error)) if scopes.contains(&"operator.admin") => {
                assert_eq!(code, "INVALID_REQUEST");
                assert_eq!(error["message"], "unknown method: no.such.method");
            }
            Err((code, error)) => {
                assert_eq!(code, "FORBIDDEN");
                assert_eq!(error["details"]["missingScope"], "operator.admin");
            }
            Ok(v) => panic!("unknown method answered {v}"),
        }
        // Node-only methods are refused to operators whatever their scopes.
        let node_only = outcome(&mut client, "node.invoke.result").await;
        assert!(
            matches!(&node_only, Err((code, e)) if code == "INVALID_REQUEST" && e["message"] == "unauthorized role: operator"),
            "{node_only:?}"
        );
        client.close().await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn nodes_may_call_health_only_among_operator_methods() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut options = gw.cli(&[]);
    options.role = "node".into();
    options.client_id = "node-host".into();
    options.mode = "node".into();
    options.device = Some(new_key());
    let mut node = Client::connect(&gw.url, &options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for m in METHODS {
        let (method, access) = (m.name, &m.access);
        let result = outcome(&mut node, method).await;
        if method == "health" {
            assert!(result.is_ok(), "health is open to nodes");
        } else if *access == Access::Node {
            let refused_for_role = matches!(&result, Err((_, e)) if e["message"].as_str().is_some_and(|m| m.starts_with("unauthorized role")));
            assert!(!refused_for_role, "{method} is a node method: {result:?}");
        } else {
            assert!(
                matches!(&result, Err((_, e)) if e["message"] == "unauthorized role: node"),
                "{method}: {result:?}"
            );
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn served_methods_all_dispatch() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut admin = gw.client(&["operator.admin"]).await;
    for method in served_methods() {
        if let Err((_, error)) = outcome(&mut admin, method).await {
            let message = error["message"].as_str().unwrap_or("");
            assert!(
                !message.starts_with("unknown method"),
                "{method} is advertised but not served"
            );
        }
    }
    let identity = admin
        .call("gateway.identity.get", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(identity["deviceId"].as_str().map(str::len), Some(64));
    let config = admin
        .call("config.get", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config["config"]["gateway"]["auth"]["token"], "<redacted>");
    assert!(!config.to_string().contains(TOKEN));
    let presence = admin
        .call("system-presence", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        presence
            .as_array()
            .is_some_and(|p| p.iter().any(|e| e["mode"] == "gateway"))
    );
    let status = admin
        .call("status", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status["gateway"]["authMode"], "token");
    assert!(status["processMemory"]["rssBytes"].as_u64().unwrap_or(0) > 0);
    gw.stop().await;
}
