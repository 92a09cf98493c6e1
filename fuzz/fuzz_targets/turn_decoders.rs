//! The OpenAI, Anthropic and Ollama `TurnDecoder`s on any body, whole, byte
//! by byte (short bodies) and in fuzzer-chosen pieces (see the split header
//! in `src/lib.rs`).
//!
//! Invariants: the events and the result do not depend on the split; a turn
//! succeeds exactly when it ends with one `Finish`, which is the last event;
//! a turn with tool calls finishes as a tool turn.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinclaw::provider::accumulate::TurnDecoder;
use pinclaw::provider::anthropic::AnthropicDecoder;
use pinclaw::provider::ollama::OllamaDecoder;
use pinclaw::provider::openai::OpenAiDecoder;
use pinclaw::provider::{StopReason, StreamEvent, StreamFailure};
use pinclaw_fuzz::{bytewise, pieces, split_input};

type Outcome = (Vec<StreamEvent>, Result<(), StreamFailure>);

/// Longest body also fed byte by byte.
const BYTEWISE_MAX: usize = 512;

fn run(mk: fn() -> Box<dyn TurnDecoder>, pieces: &[&[u8]]) -> Outcome {
    let mut d = mk();
    let mut out = Vec::new();
    for p in pieces {
        if let Err(e) = d.push(p, &mut out) {
            assert!(!d.is_done(), "an error after the terminal marker");
            return (out, Err(e));
        }
    }
    let r = d.finish(&mut out);
    assert_eq!(r.is_ok(), d.is_done(), "finish agrees with is_done");
    (out, r)
}

fn check_turn((events, result): &Outcome) {
    let finishes = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::Finish { .. }))
        .count();
    assert!(finishes <= 1, "{finishes} Finish events");
    assert_eq!(
        result.is_ok(),
        finishes == 1,
        "Ok exactly with a Finish: {result:?}"
    );
    if let Some(StreamEvent::Finish { reason }) = events.last() {
        let tools = events.iter().any(|e| {
            matches!(
                e,
                StreamEvent::ToolCall(_) | StreamEvent::InvalidToolCall { .. }
            )
        });
        if tools {
            assert_eq!(reason, &StopReason::ToolUse);
        }
    } else {
        assert_eq!(finishes, 0, "Finish is the last event");
    }
    for e in events {
        match e {
            StreamEvent::TextDelta { text } | StreamEvent::ReasoningDelta { text } => {
                assert!(!text.is_empty(), "an empty delta")
            }
            StreamEvent::ToolCall(call) => assert!(!call.name.is_empty()),
            _ => {}
        }
    }
}

fn openai() -> Box<dyn TurnDecoder> {
    Box::new(OpenAiDecoder::new())
}
fn anthropic() -> Box<dyn TurnDecoder> {
    Box::new(AnthropicDecoder::new())
}
fn ollama() -> Box<dyn TurnDecoder> {
    Box::new(OllamaDecoder::new())
}

fuzz_target!(|data: &[u8]| {
    let (body, cuts) = split_input(data);
    for mk in [openai, anthropic, ollama] {
        let whole = run(mk, &[body]);
        check_turn(&whole);
        assert_eq!(run(mk, &pieces(body, &cuts)), whole, "split {cuts:?}");
        // Byte by byte costs a push per byte: only for short bodies (the
        // fuzzer-chosen pieces cover the long ones).
        if body.len() <= BYTEWISE_MAX {
            assert_eq!(run(mk, &bytewise(body)), whole, "bytewise");
        }
    }
});
