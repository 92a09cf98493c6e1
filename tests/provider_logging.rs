//! No API key in any log line, error, Debug output or serialized config, even
//! when a provider echoes the key back in its error body.

#[path = "support/fake_provider.rs"]
mod fake_provider;
#[path = "provider_support/harness.rs"]
mod harness;
#[path = "support/log_capture.rs"]
mod log_capture;

use fake_provider::{FakeProvider, Reply};
use harness::*;
use log_capture::Capture;
use pinclaw::provider::{ApiKind, TurnError};

const OPENAI_KEY: &str = "sk-SECRET-openai-0123456789";
const ANTHROPIC_KEY: &str = "sk-ant-SECRET-9876543210";

#[tokio::test]
async fn api_keys_never_reach_logs_errors_or_dumps() {
    let cap = Capture::install();

    let fa = FakeProvider::start();
    let fbk = FakeProvider::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.key"), OPENAI_KEY).unwrap();
    std::fs::write(dir.path().join("b.key"), format!("{ANTHROPIC_KEY}\n")).unwrap();
    let mut a = provider("a", ApiKind::OpenAiChat, &format!("{}/v1", fa.base_url()));
    a.api_key_file = Some(dir.path().join("a.key"));
    let mut b = provider("b", ApiKind::AnthropicMessages, &fbk.base_url());
    b.api_key_file = Some(dir.path().join("b.key"));
    let p = providers(vec![a, b]);

    // a echoes the key (as some APIs do); b echoes its key in a 529 body
    fa.set_default(Reply::http_error(
        401,
        &format!(r#"{{"error":{{"message":"Incorrect API key provided: {OPENAI_KEY}","type":"invalid_request_error","code":"invalid_api_key"}}}}"#),
        None,
    ));
    fbk.set_default(Reply::http_error(
        529,
        &format!(r#"{{"type":"error","error":{{"type":"overloaded_error","message":"Overloaded for key {ANTHROPIC_KEY}"}}}}"#),
        None,
    ));
    let (_, r) = collect(&p, "a/m", &["b/c".to_string()], &hello()).await;
    let err = match r {
        Err(e @ TurnError::Exhausted(_)) => e,
        other => panic!("{other:?}"),
    };
    // the keys were really sent
    assert_eq!(
        fa.requests()[0].header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    assert_eq!(fbk.requests()[0].header("x-api-key"), Some(ANTHROPIC_KEY));

    tracing::info!(providers = ?p, error = %err, "dump for the test");
    tracing::info!(configs = ?p.configs().collect::<Vec<_>>(), "configs");
    let dumps = [
        err.to_string(),
        format!("{err:?}"),
        format!("{p:?}"),
        serde_json::to_string(&p.configs().collect::<Vec<_>>()).unwrap(),
        serde_json::to_string(&p.models_snapshot()).unwrap(),
        serde_json::to_string(&p.health()).unwrap(),
    ];
    let log = cap.text();
    assert!(
        log.contains("provider attempt failed"),
        "the capture works:\n{log}"
    );
    assert!(
        log.contains("[redacted]"),
        "echoed keys are redacted:\n{log}"
    );
    for line in log.lines().chain(dumps.iter().map(String::as_str)) {
        for key in [OPENAI_KEY, ANTHROPIC_KEY, "SECRET"] {
            assert!(!line.contains(key), "key leaked: {line}");
        }
    }
    println!("{} log lines checked", log.lines().count());
}
