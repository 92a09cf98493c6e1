//! Helpers for agent-loop tests: a gateway wired to the fake provider and
//! OpenAI-format streaming replies.
#![allow(dead_code)]

use std::time::Duration;

use pinclaw::provider::{ApiKind, ModelConfig, ProviderConfig};
use serde_json::{Value, json};

use crate::fake_provider::{FakeProvider, Reply, Step};
use crate::support::{TestGateway, settings};

/// An OpenAI SSE chunk line.
fn chunk(delta: Value, finish: Option<&str>) -> String {
    let v = json!({"id": "c", "object": "chat.completion.chunk", "model": "m",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {v}\n\n")
}

/// A streamed text reply, one chunk per word, `gap` between chunks.
pub fn text_reply(text: &str, gap: Duration) -> Reply {
    let mut steps = vec![Step::Chunk(
        chunk(json!({"role": "assistant", "content": ""}), None).into_bytes(),
    )];
    for (i, word) in text.split(' ').enumerate() {
        if !gap.is_zero() {
            steps.push(Step::Sleep(gap));
        }
        let piece = if i == 0 {
            word.to_owned()
        } else {
            format!(" {word}")
        };
        steps.push(Step::Chunk(
            chunk(json!({"content": piece}), None).into_bytes(),
        ));
    }
    steps.push(Step::Chunk(chunk(json!({}), Some("stop")).into_bytes()));
    let usage = json!({"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [],
                       "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}});
    steps.push(Step::Chunk(format!("data: {usage}\n\n").into_bytes()));
    steps.push(Step::Chunk(b"data: [DONE]\n\n".to_vec()));
    let mut r = Reply::status(200).header("content-type", "text/event-stream");
    r.steps = steps;
    r
}

/// A reply that calls one tool.
pub fn tool_reply(call_id: &str, name: &str, args: Value) -> Reply {
    let steps = vec![
        Step::Chunk(chunk(json!({"role": "assistant", "content": null}), None).into_bytes()),
        Step::Chunk(
            chunk(
                json!({"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                                       "function": {"name": name, "arguments": args.to_string()}}]}),
                None,
            )
            .into_bytes(),
        ),
        Step::Chunk(chunk(json!({}), Some("tool_calls")).into_bytes()),
        Step::Chunk(b"data: [DONE]\n\n".to_vec()),
    ];
    let mut r = Reply::status(200).header("content-type", "text/event-stream");
    r.steps = steps;
    r
}

/// Settings with the fake as provider `fake`, model `fake/m`.
pub fn agent_settings(
    dir: &std::path::Path,
    fake: &FakeProvider,
    context_window: u32,
) -> pinclaw::gateway::GatewaySettings {
    let mut s = settings(dir);
    let mut p = ProviderConfig::new(
        "fake",
        ApiKind::OpenAiChat,
        &format!("{}/v1", fake.base_url()),
    );
    p.connect_timeout_ms = Some(2_000);
    p.first_byte_timeout_ms = Some(10_000);
    p.idle_timeout_ms = Some(10_000);
    p.models = vec![ModelConfig {
        id: "m".into(),
        context_window: Some(context_window),
        max_output_tokens: Some(256),
    }];
    s.config.providers = vec![p];
    s.config.agent.model = Some("fake/m".into());
    s.config.agent.debounce_ms = 50;
    s
}

/// Start a gateway on the fake.
pub async fn start(dir: &std::path::Path, fake: &FakeProvider) -> TestGateway {
    TestGateway::start_with(agent_settings(dir, fake, 16_384)).await
}

/// The last user message text in a recorded OpenAI request body.
pub fn last_user(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_owned()
}
