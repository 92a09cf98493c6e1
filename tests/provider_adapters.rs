//! Every adapter over real HTTP against the fake provider: fixtures, request
//! shapes and faults.

#[path = "support/fake_provider.rs"]
mod fake_provider;
#[path = "provider_support/harness.rs"]
mod harness;

use std::time::Duration;

use fake_provider::{FakeProvider, Framing, Reply, Step};
use harness::*;
use pinclaw::provider::{
    ApiKind, FailureKind, ProviderConfig, StopReason, StreamEvent, ToolCall, TurnError, Usage,
};
use serde_json::json;

/// One adapter under test and the shape of its text fixture.
struct Case {
    api: ApiKind,
    suffix: &'static str,
    text_fixture: &'static str,
    /// Chunks of the text fixture before any output (text or reasoning).
    quiet_chunks: usize,
    /// Index of the chunk carrying the first text ("Pi is").
    text_at: usize,
}

const CASES: [Case; 3] = [
    Case {
        api: ApiKind::OpenAiChat,
        suffix: "/v1",
        text_fixture: "openai_text.sse",
        quiet_chunks: 1,
        text_at: 1,
    },
    Case {
        api: ApiKind::AnthropicMessages,
        suffix: "",
        text_fixture: "anthropic_text.sse",
        quiet_chunks: 3,
        text_at: 3,
    },
    Case {
        api: ApiKind::Ollama,
        suffix: "",
        text_fixture: "ollama_text.ndjson",
        quiet_chunks: 0,
        text_at: 1,
    },
];

fn setup(c: &Case, fake: &FakeProvider) -> pinclaw::provider::Providers {
    let mut p = provider("p", c.api, &format!("{}{}", fake.base_url(), c.suffix));
    p.idle_timeout_ms = Some(400);
    providers(vec![p])
}

fn with_key(mut p: ProviderConfig, dir: &tempfile::TempDir, key: &str) -> ProviderConfig {
    let path = dir.path().join(format!("{}.key", p.id));
    std::fs::write(&path, format!("{key}\n")).unwrap();
    p.api_key_file = Some(path);
    p
}

fn call(id: &str, name: &str, args: serde_json::Value) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: args,
    }
}

fn finish_of(ev: &[StreamEvent]) -> Option<StopReason> {
    ev.iter().find_map(|e| match e {
        StreamEvent::Finish { reason } => Some(reason.clone()),
        _ => None,
    })
}

#[tokio::test]
async fn openai_fixtures_and_request_shape() {
    let fake = FakeProvider::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_key(
        provider(
            "oai",
            ApiKind::OpenAiChat,
            &format!("{}/v1", fake.base_url()),
        ),
        &dir,
        "sk-test-openai",
    );
    let p = providers(vec![cfg]);

    fake.push(Reply::fixture("openai_text.sse"));
    let (ev, r) = collect(&p, "oai/gpt-fixture", &[], &hello()).await;
    let s = r.unwrap();
    assert_eq!(text_of(&ev), "Pi is online.");
    assert_eq!(s.stop_reason, StopReason::EndTurn);
    assert_eq!(s.model, "oai/gpt-fixture");
    assert_eq!(
        s.usage,
        Some(Usage {
            input_tokens: 21,
            output_tokens: 4,
            cached_input_tokens: Some(0)
        })
    );

    for (fixture, want) in [
        (
            "openai_one_tool.sse",
            vec![call(
                "call_fx2a",
                "read_file",
                json!({"path": "/etc/hostname"}),
            )],
        ),
        (
            "openai_parallel_tools.sse",
            vec![
                call("call_fx3a", "get_temp", json!({"sensor": "cpu"})),
                call("call_fx3b", "get_uptime", json!({})),
            ],
        ),
        (
            "openai_ollama_style.sse",
            vec![
                call("call_fx3a", "get_temp", json!({"sensor": "cpu"})),
                call("call_fx3b", "get_uptime", json!({})),
            ],
        ),
        (
            "openai_repeat_id.sse",
            vec![call(
                "call_rep",
                "read_file",
                json!({"path": "/etc/hostname"}),
            )],
        ),
    ] {
        fake.push(Reply::fixture(fixture).gap(Duration::from_millis(2)));
        let (ev, r) = collect(&p, "oai/gpt-fixture", &[], &tool_request()).await;
        let s = r.unwrap_or_else(|e| panic!("{fixture}: {e}"));
        assert_eq!(tool_calls(&ev), want, "{fixture}");
        assert_eq!(s.stop_reason, StopReason::ToolUse, "{fixture}");
    }

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 5);
    let r = &reqs[1];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), Some("Bearer sk-test-openai"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let b = r.json.as_ref().unwrap();
    assert_eq!(b["model"], "gpt-fixture");
    assert_eq!(b["stream"], true);
    assert_eq!(b["stream_options"]["include_usage"], true);
    assert_eq!(b["max_tokens"], 1024);
    assert_eq!(
        b["messages"][0],
        json!({"role": "system", "content": "You run on a Raspberry Pi gateway."})
    );
    let asst = &b["messages"][2];
    assert_eq!(asst["tool_calls"][0]["id"], "call_fx3a");
    assert_eq!(
        asst["tool_calls"][0]["function"]["arguments"],
        "{\"sensor\":\"cpu\"}"
    );
    assert_eq!(
        b["messages"][3],
        json!({"role": "tool", "tool_call_id": "call_fx3a", "content": "51.2 C"})
    );
    assert_eq!(b["messages"][4]["tool_call_id"], "call_fx3b");
    assert_eq!(b["tools"][0]["function"]["name"], "get_temp");
    assert_eq!(b["tools"][0]["type"], "function");
}

#[tokio::test]
async fn anthropic_fixtures_and_request_shape() {
    let fake = FakeProvider::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_key(
        provider("ant", ApiKind::AnthropicMessages, &fake.base_url()),
        &dir,
        "sk-ant-test",
    );
    let p = providers(vec![cfg]);

    fake.push(Reply::fixture("anthropic_text.sse"));
    let (ev, r) = collect(&p, "ant/claude-fixture", &[], &hello()).await;
    let s = r.unwrap();
    assert_eq!(text_of(&ev), "Pi is online.");
    assert_eq!(s.stop_reason, StopReason::EndTurn);
    assert_eq!(
        s.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((25, 6))
    );

    fake.push(Reply::fixture("anthropic_tool_use.sse").gap(Duration::from_millis(2)));
    let (ev, r) = collect(&p, "ant/claude-fixture", &[], &tool_request()).await;
    let s = r.unwrap();
    assert_eq!(text_of(&ev), "Reading both sensors.");
    assert_eq!(
        tool_calls(&ev),
        vec![
            call("toolu_fx2a", "get_temp", json!({"sensor": "cpu"})),
            call("toolu_fx2b", "get_uptime", json!({}))
        ]
    );
    assert_eq!(s.stop_reason, StopReason::ToolUse);
    assert_eq!(s.usage.map(|u| u.output_tokens), Some(74));

    fake.push(Reply::fixture("anthropic_thinking_unknown_event.sse"));
    let (ev, r) = collect(&p, "ant/claude-fixture", &[], &hello()).await;
    r.expect("unknown event types are ignored");
    assert_eq!(text_of(&ev), "All good.");
    assert!(ev.contains(&StreamEvent::ReasoningDelta {
        text: "Check the sensor.".into()
    }));

    let reqs = fake.requests();
    let r = &reqs[1];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert!(r.header("authorization").is_none());
    let b = r.json.as_ref().unwrap();
    assert_eq!(b["system"], "You run on a Raspberry Pi gateway.");
    assert_eq!(b["max_tokens"], 1024);
    assert_eq!(b["stream"], true);
    let msgs = b["messages"].as_array().unwrap();
    assert_eq!(
        msgs.len(),
        3,
        "user, assistant, user(tool results): {msgs:?}"
    );
    assert_eq!(msgs[1]["content"][1]["type"], "tool_use");
    assert_eq!(msgs[1]["content"][1]["input"], json!({"sensor": "cpu"}));
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(
        msgs[2]["content"][1],
        json!({"type": "tool_result", "tool_use_id": "call_fx3b", "content": "permission denied", "is_error": true})
    );
    assert_eq!(b["tools"][0]["input_schema"]["required"][0], "sensor");
}

#[tokio::test]
async fn ollama_fixtures_and_request_shape() {
    let fake = FakeProvider::start();
    let mut cfg = provider("ol", ApiKind::Ollama, &fake.base_url());
    cfg.local = true;
    cfg.models = vec![pinclaw::provider::ModelConfig {
        id: "qwen3:0.6b".into(),
        context_window: Some(8192),
        max_output_tokens: Some(512),
    }];
    let p = providers(vec![cfg]);

    fake.push(Reply::fixture("ollama_tool.ndjson"));
    let (ev, r) = collect(&p, "ol/qwen3:0.6b", &[], &tool_request()).await;
    let s = r.unwrap();
    assert_eq!(
        tool_calls(&ev),
        vec![call("ollama_call_0", "get_temp", json!({"sensor": "cpu"}))]
    );
    assert_eq!(
        s.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((143, 19))
    );

    fake.push(Reply::fixture("ollama_parallel_tools.ndjson"));
    let (ev, r) = collect(&p, "ol/qwen3:0.6b", &[], &tool_request()).await;
    r.unwrap();
    assert_eq!(tool_calls(&ev).len(), 2);

    fake.push(Reply::fixture("ollama_text.ndjson"));
    let (ev, r) = collect(&p, "ol/qwen3:0.6b", &[], &hello()).await;
    assert_eq!(r.unwrap().stop_reason, StopReason::EndTurn);
    assert_eq!(text_of(&ev), "Pi is online.");

    let reqs = fake.requests();
    let b = reqs[0].json.as_ref().unwrap();
    assert_eq!(reqs[0].path, "/api/chat");
    assert!(
        reqs[0].header("authorization").is_none(),
        "no key configured"
    );
    assert_eq!(b["options"]["num_ctx"], 8192);
    assert_eq!(
        b["options"]["num_predict"], 512,
        "model cap wins over the request's 1024"
    );
    assert_eq!(
        b["messages"][3],
        json!({"role": "tool", "tool_name": "get_temp", "content": "51.2 C"})
    );
    assert_eq!(
        b["messages"][2]["tool_calls"][0]["function"]["arguments"],
        json!({"sensor": "cpu"})
    );
}

#[tokio::test]
async fn byte_at_a_time_and_close_delimited_match_whole_delivery() {
    for c in &CASES {
        let fake = FakeProvider::start();
        let p = setup(c, &fake);
        fake.push(Reply::fixture(c.text_fixture));
        fake.push(Reply::fixture(c.text_fixture).drip(Duration::ZERO));
        fake.push(Reply::fixture(c.text_fixture).framing(Framing::CloseDelimited));
        fake.push(Reply::fixture(c.text_fixture).framing(Framing::ContentLength));
        let mut results = Vec::new();
        for _ in 0..4 {
            let (ev, r) = collect(&p, "p/m", &[], &hello()).await;
            r.unwrap_or_else(|e| panic!("{:?}: {e}", c.api));
            assert_eq!(text_of(&ev), "Pi is online.", "{:?}", c.api);
            results.push((text_of(&ev), finish_of(&ev)));
        }
        assert!(
            results.windows(2).all(|w| w[0] == w[1]),
            "{:?}: {results:?}",
            c.api
        );
        assert_eq!(fake.requests().len(), 4);
    }
}

fn interrupted_kind(r: &Result<pinclaw::provider::TurnSummary, TurnError>) -> FailureKind {
    match r {
        Err(TurnError::Interrupted { error, .. }) => error.kind,
        other => panic!("expected Interrupted, got {other:?}"),
    }
}

fn exhausted_reason(r: &Result<pinclaw::provider::TurnSummary, TurnError>) -> String {
    match r {
        Err(TurnError::Exhausted(f)) => {
            assert_eq!(f.attempts.len(), 1);
            f.attempts[0].reason.clone()
        }
        other => panic!("expected Exhausted, got {other:?}"),
    }
}

#[tokio::test]
async fn truncation_after_output_is_interrupted_without_retry() {
    for c in &CASES {
        for how in [Framing::Chunked, Framing::CloseDelimited] {
            let fake = FakeProvider::start();
            let p = setup(c, &fake);
            fake.set_default(
                Reply::fixture(c.text_fixture)
                    .framing(how)
                    .cut_after(c.text_at + 1, Step::CloseAbrupt),
            );
            let (ev, r) = collect(&p, "p/m", &[], &hello()).await;
            assert_eq!(
                interrupted_kind(&r),
                FailureKind::Truncated,
                "{:?} {how:?}",
                c.api
            );
            assert_eq!(text_of(&ev), "Pi is", "{:?}", c.api);
            assert!(finish_of(&ev).is_none());
            assert_eq!(
                fake.requests().len(),
                1,
                "{:?}: no retry after output",
                c.api
            );
        }
    }
}

#[tokio::test]
async fn truncation_and_empty_body_before_output_are_retried() {
    for c in &CASES {
        let fake = FakeProvider::start();
        let p = setup(c, &fake);
        // empty 200, then cut before output, then the real thing
        fake.push(
            Reply::fixture(c.text_fixture)
                .cut_after(0, Step::CloseAbrupt)
                .framing(Framing::CloseDelimited),
        );
        fake.push(Reply::fixture(c.text_fixture).cut_after(c.quiet_chunks, Step::CloseAbrupt));
        fake.push(Reply::fixture(c.text_fixture));
        let (ev, r) = collect(&p, "p/m", &[], &hello()).await;
        let s = r.unwrap_or_else(|e| panic!("{:?}: {e}", c.api));
        assert_eq!(s.requests, 3);
        assert_eq!(text_of(&ev), "Pi is online.");

        fake.set_default(Reply::stream_body(
            if c.api == ApiKind::Ollama {
                "application/x-ndjson"
            } else {
                "text/event-stream"
            },
            "",
        ));
        let (_, r) = collect(&p, "p/m", &[], &hello()).await;
        let reason = exhausted_reason(&r);
        assert!(reason.contains("empty 200 response body"), "{reason}");
        assert_eq!(
            fake.requests().len(),
            6,
            "3 more requests for the retried empty body"
        );
    }
}

#[tokio::test]
async fn midstream_error_event_after_text_is_interrupted() {
    let cases = [
        (
            &CASES[0],
            "openai_text_then_error.sse",
            FailureKind::Server,
            "Pi is",
        ),
        (
            &CASES[1],
            "anthropic_overloaded_midstream.sse",
            FailureKind::Overloaded,
            "Pi",
        ),
        (
            &CASES[2],
            "ollama_midstream_error.ndjson",
            FailureKind::Server,
            "Pi is",
        ),
    ];
    for (c, fixture, kind, text) in cases {
        let fake = FakeProvider::start();
        let p = setup(c, &fake);
        fake.set_default(Reply::fixture(fixture));
        let (ev, r) = collect(&p, "p/m", &[], &hello()).await;
        assert_eq!(interrupted_kind(&r), kind, "{fixture}");
        assert_eq!(text_of(&ev), text);
        assert_eq!(fake.requests().len(), 1);
    }
    // an error event before any output is retried, then fails over
    let fake = FakeProvider::start();
    let p = setup(&CASES[0], &fake);
    fake.set_default(Reply::fixture("openai_midstream_error.sse"));
    let (ev, r) = collect(&p, "p/m", &[], &hello()).await;
    assert!(ev.is_empty(), "no tool call from a failed stream: {ev:?}");
    assert!(exhausted_reason(&r).contains("upstream overloaded"));
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn stall_mid_stream_hits_the_idle_timeout() {
    for c in &CASES {
        let fake = FakeProvider::start();
        let p = setup(c, &fake); // idle timeout 400 ms
        fake.set_default(
            Reply::fixture(c.text_fixture)
                .cut_after(c.text_at + 1, Step::Sleep(Duration::from_secs(3))),
        );
        let t = std::time::Instant::now();
        let (ev, r) = collect(&p, "p/m", &[], &hello()).await;
        assert_eq!(interrupted_kind(&r), FailureKind::Timeout, "{:?}", c.api);
        assert!(
            t.elapsed() < Duration::from_millis(2500),
            "{:?}",
            t.elapsed()
        );
        assert!(text_of(&ev).starts_with("Pi"));
    }
}

#[tokio::test]
async fn stall_before_headers_is_a_retried_timeout() {
    let fake = FakeProvider::start();
    let mut cfg = provider("p", ApiKind::OpenAiChat, &format!("{}/v1", fake.base_url()));
    cfg.first_byte_timeout_ms = Some(300);
    let p = providers(vec![cfg]);
    fake.push(Reply::fixture("openai_text.sse").delay_headers(Duration::from_secs(3)));
    fake.push(Reply::fixture("openai_text.sse"));
    let (ev, r) = collect(&p, "p/m", &[], &hello()).await;
    let s = r.unwrap();
    assert_eq!(s.requests, 2);
    assert!(s.failed.is_empty());
    assert_eq!(text_of(&ev), "Pi is online.");
}

#[tokio::test]
async fn html_pages_and_invalid_json_give_specific_errors() {
    for c in &CASES {
        let fake = FakeProvider::start();
        let p = setup(c, &fake);
        // a captive-portal page with status 200: bad response, not retried
        fake.push(Reply::stream_body(
            "text/html; charset=utf-8",
            "<html><body>Sign in to Wi-Fi</body></html>",
        ));
        let (_, r) = collect(&p, "p/m", &[], &hello()).await;
        let reason = exhausted_reason(&r);
        assert!(
            reason.contains("bad response") && reason.contains("text/html"),
            "{reason}"
        );
        assert_eq!(fake.requests().len(), 1);

        // a proxy's 502 page: a server error, retried (fresh state: the
        // model above is cooling down now)
        let p = setup(c, &fake);
        fake.set_default(Reply::http_error(
            502,
            "<html><h1>502 Bad Gateway</h1></html>",
            None,
        ));
        let (_, r) = collect(&p, "p/m", &[], &hello()).await;
        let reason = exhausted_reason(&r);
        assert!(
            reason.contains("HTTP 502") && reason.contains("HTML error page"),
            "{reason}"
        );
        assert_eq!(fake.requests().len(), 4);
    }
    let fake = FakeProvider::start();
    let p = setup(&CASES[0], &fake);
    fake.set_default(Reply::fixture("openai_invalid_json.sse"));
    let (_, r) = collect(&p, "p/m", &[], &hello()).await;
    let reason = exhausted_reason(&r);
    assert!(reason.contains("invalid JSON in stream chunk"), "{reason}");
    assert_eq!(
        fake.requests().len(),
        1,
        "a malformed stream is not retried"
    );
}

#[tokio::test]
async fn non_json_tool_arguments_become_an_invalid_tool_call() {
    let fake = FakeProvider::start();
    let p = setup(&CASES[0], &fake);
    fake.push(Reply::fixture("openai_cut_args.sse"));
    let (ev, r) = collect(&p, "p/m", &[], &tool_request()).await;
    assert_eq!(r.unwrap().stop_reason, StopReason::ToolUse);
    assert!(tool_calls(&ev).is_empty(), "nothing runnable");
    assert!(
        ev.iter().any(
            |e| matches!(e, StreamEvent::InvalidToolCall { id, error, .. }
            if id == "call_cut" && error.contains("not valid JSON"))
        ),
        "{ev:?}"
    );
}

#[tokio::test]
async fn oversized_line_is_refused() {
    let fake = FakeProvider::start();
    let p = setup(&CASES[0], &fake);
    let huge = format!("data: {{\"x\":\"{}\"}}\n\n", "a".repeat(1024 * 1024 + 10));
    fake.push(Reply::stream_body("text/event-stream", &huge));
    let (_, r) = collect(&p, "p/m", &[], &hello()).await;
    let reason = exhausted_reason(&r);
    assert!(reason.contains("longer than"), "{reason}");
}

#[tokio::test]
async fn unscripted_request_fails_loudly() {
    let fake = FakeProvider::start();
    let p = setup(&CASES[0], &fake);
    let (_, r) = collect(&p, "p/m", &[], &hello()).await;
    let reason = exhausted_reason(&r);
    assert!(
        reason.contains("599") && reason.contains("no scripted reply"),
        "{reason}"
    );
}

#[tokio::test]
async fn json_document_instead_of_a_stream_is_named() {
    let fake = FakeProvider::start();
    let p = setup(&CASES[0], &fake);
    // a server that ignored stream:true
    fake.push(Reply::stream_body(
        "application/json",
        r#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}]}"#,
    ));
    let (_, r) = collect(&p, "p/m", &[], &hello()).await;
    let reason = exhausted_reason(&r);
    assert!(
        reason.contains("wanted a stream") && reason.contains("application/json"),
        "{reason}"
    );
    // an error document with status 200 is classified like an error event
    let p = setup(&CASES[1], &fake);
    fake.set_default(Reply::stream_body(
        "application/json",
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ));
    let (_, r) = collect(&p, "p/m", &[], &hello()).await;
    let reason = exhausted_reason(&r);
    assert!(reason.starts_with("overloaded"), "{reason}");
    assert_eq!(fake.requests().len(), 4, "1 + 3 (overload is retried)");
}

#[tokio::test]
async fn fake_provider_stops_when_dropped() {
    let fake = FakeProvider::start();
    fake.set_default(
        Reply::fixture("openai_text.sse").cut_after(1, Step::Sleep(Duration::from_secs(30))),
    );
    let addr = fake.addr();
    let p = setup(&CASES[0], &fake);
    let req = hello();
    let turn = collect(&p, "p/m", &[], &req);
    let dropper = async {
        for _ in 0..500 {
            if !fake.requests().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let t = std::time::Instant::now();
        drop(fake);
        t.elapsed()
    };
    let ((_, r), drop_took) = tokio::join!(turn, dropper);
    assert!(drop_took < Duration::from_secs(2), "{drop_took:?}");
    assert!(r.is_err());
    assert!(std::net::TcpStream::connect(addr).is_err(), "port closed");
}
