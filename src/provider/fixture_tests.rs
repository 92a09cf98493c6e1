//! Every fixture through its decoder: whole, byte by byte and in seeded random
//! splits; the assembled turns must agree and match the expected result.

use serde_json::json;

use super::accumulate::TurnDecoder;
use super::anthropic::AnthropicDecoder;
use super::error::{FailureKind, StreamFailure};
use super::ollama::OllamaDecoder;
use super::openai::OpenAiDecoder;
use super::types::{StopReason, StreamEvent, ToolCall, Usage};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../tests/fixtures/providers/", $name)).as_slice()
    };
}

type Outcome = (Vec<StreamEvent>, Result<(), StreamFailure>);

fn run(mk: &dyn Fn() -> Box<dyn TurnDecoder>, pieces: &[&[u8]]) -> Outcome {
    let mut d = mk();
    let mut out = Vec::new();
    for p in pieces {
        if let Err(e) = d.push(p, &mut out) {
            return (merge(out), Err(e));
        }
    }
    let r = d.finish(&mut out);
    (merge(out), r)
}

/// Join adjacent text deltas so differently split runs compare equal.
fn merge(events: Vec<StreamEvent>) -> Vec<StreamEvent> {
    let mut out: Vec<StreamEvent> = Vec::new();
    for e in events {
        match (out.last_mut(), e) {
            (Some(StreamEvent::TextDelta { text: a }), StreamEvent::TextDelta { text: b }) => {
                a.push_str(&b)
            }
            (
                Some(StreamEvent::ReasoningDelta { text: a }),
                StreamEvent::ReasoningDelta { text: b },
            ) => a.push_str(&b),
            (_, e) => out.push(e),
        }
    }
    out
}

/// Whole, bytewise and 20 seeded random splittings must all agree.
fn decode_all_ways(mk: &dyn Fn() -> Box<dyn TurnDecoder>, body: &[u8]) -> Outcome {
    let whole = run(mk, &[body]);
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(run(mk, &bytes), whole, "bytewise differs");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..20 {
        let mut pieces = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = 1 + (seed % 97) as usize;
            let (a, b) = rest.split_at(n.min(rest.len()));
            pieces.push(a);
            rest = b;
        }
        assert_eq!(
            run(mk, &pieces),
            whole,
            "random split round {round} differs"
        );
    }
    whole
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

fn text(t: &str) -> StreamEvent {
    StreamEvent::TextDelta { text: t.into() }
}
fn call(id: &str, name: &str, args: serde_json::Value) -> StreamEvent {
    StreamEvent::ToolCall(ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: args,
    })
}
fn usage(i: u64, o: u64, c: Option<u64>) -> StreamEvent {
    StreamEvent::Usage(Usage {
        input_tokens: i,
        output_tokens: o,
        cached_input_tokens: c,
    })
}
fn finish(r: StopReason) -> StreamEvent {
    StreamEvent::Finish { reason: r }
}

#[test]
fn f1_openai_text() {
    let (ev, r) = decode_all_ways(&openai, fixture!("openai_text.sse"));
    r.unwrap();
    assert_eq!(
        ev,
        vec![
            text("Pi is online."),
            usage(21, 4, Some(0)),
            finish(StopReason::EndTurn)
        ]
    );
}

#[test]
fn f1_keepalive_crlf() {
    let (ev, r) = decode_all_ways(&openai, fixture!("openai_keepalive_crlf.sse"));
    r.unwrap();
    assert_eq!(
        ev,
        vec![
            text("Pi is online."),
            usage(21, 4, Some(0)),
            finish(StopReason::EndTurn)
        ]
    );
}

#[test]
fn f2_openai_one_tool() {
    let (ev, r) = decode_all_ways(&openai, fixture!("openai_one_tool.sse"));
    r.unwrap();
    assert_eq!(
        ev,
        vec![
            call("call_fx2a", "read_file", json!({"path": "/etc/hostname"})),
            finish(StopReason::ToolUse)
        ]
    );
}

#[test]
fn f2_repeat_id_is_one_call() {
    let (ev, r) = decode_all_ways(&openai, fixture!("openai_repeat_id.sse"));
    r.unwrap();
    assert_eq!(
        ev,
        vec![
            call("call_rep", "read_file", json!({"path": "/etc/hostname"})),
            finish(StopReason::ToolUse)
        ]
    );
}

#[test]
fn f2_cut_args_is_invalid_tool_call() {
    let (ev, r) = decode_all_ways(&openai, fixture!("openai_cut_args.sse"));
    r.unwrap();
    assert!(
        matches!(&ev[0], StreamEvent::InvalidToolCall { id, name, error, .. }
            if id == "call_cut" && name == "get_temp" && error.contains("not valid JSON")),
        "{ev:?}"
    );
    assert_eq!(ev[1], finish(StopReason::ToolUse));
}

#[test]
fn f3_parallel_tools_both_styles() {
    let want = [
        call("call_fx3a", "get_temp", json!({"sensor": "cpu"})),
        call("call_fx3b", "get_uptime", json!({})),
    ];
    let (ev, r) = decode_all_ways(&openai, fixture!("openai_parallel_tools.sse"));
    r.unwrap();
    assert_eq!(ev[..2], want[..]);
    assert_eq!(ev[2..], [usage(88, 31, None), finish(StopReason::ToolUse)]);
    let (ev, r) = decode_all_ways(&openai, fixture!("openai_ollama_style.sse"));
    r.unwrap();
    assert_eq!(ev[..2], want[..]);
    // finish_reason said "stop", but calls make it a tool turn
    assert_eq!(ev[2..], [finish(StopReason::ToolUse)]);
}

#[test]
fn openai_reasoning_kept_apart() {
    let (ev, r) = decode_all_ways(&openai, fixture!("openai_reasoning.sse"));
    r.unwrap();
    assert_eq!(
        ev,
        vec![
            StreamEvent::ReasoningDelta {
                text: "The user wants a greeting.".into()
            },
            text("Hello!"),
            finish(StopReason::EndTurn)
        ]
    );
}

#[test]
fn openai_midstream_error_and_invalid_json() {
    let (ev, r) = decode_all_ways(&openai, fixture!("openai_midstream_error.sse"));
    assert!(ev.is_empty(), "no tool call from a failed stream: {ev:?}");
    match r {
        Err(StreamFailure::ErrorEvent { kind, message }) => {
            assert_eq!(kind, FailureKind::Server);
            assert!(message.contains("upstream overloaded"));
        }
        other => panic!("{other:?}"),
    }
    let (_, r) = decode_all_ways(&openai, fixture!("openai_invalid_json.sse"));
    assert!(matches!(r, Err(StreamFailure::InvalidJson { .. })), "{r:?}");
}

#[test]
fn truncation_and_empty_body() {
    let body = fixture!("openai_text.sse");
    let cut = &body[..body.len() / 2];
    let (_, r) = decode_all_ways(&openai, cut);
    assert!(matches!(r, Err(StreamFailure::Truncated { .. })), "{r:?}");
    let (ev, r) = decode_all_ways(&openai, b"");
    assert!(ev.is_empty());
    assert_eq!(r, Err(StreamFailure::EmptyBody));
    let (_, r) = decode_all_ways(&anthropic, b"");
    assert_eq!(r, Err(StreamFailure::EmptyBody));
    let (_, r) = decode_all_ways(&ollama, b"");
    assert_eq!(r, Err(StreamFailure::EmptyBody));
    // a cut tool-call stream yields no tool call
    let body = fixture!("openai_one_tool.sse");
    let (ev, r) = decode_all_ways(&openai, &body[..body.len() - 40]);
    assert!(matches!(r, Err(StreamFailure::Truncated { .. })));
    assert!(ev.iter().all(|e| !matches!(e, StreamEvent::ToolCall(_))));
}

#[test]
fn a1_anthropic_text() {
    let (ev, r) = decode_all_ways(&anthropic, fixture!("anthropic_text.sse"));
    r.unwrap();
    assert_eq!(
        ev,
        vec![
            text("Pi is online."),
            usage(25, 6, Some(0)),
            finish(StopReason::EndTurn)
        ]
    );
}

#[test]
fn a2_anthropic_tool_use() {
    let (ev, r) = decode_all_ways(&anthropic, fixture!("anthropic_tool_use.sse"));
    r.unwrap();
    assert_eq!(
        ev,
        vec![
            text("Reading both sensors."),
            call("toolu_fx2a", "get_temp", json!({"sensor": "cpu"})),
            call("toolu_fx2b", "get_uptime", json!({})),
            usage(410, 74, None),
            finish(StopReason::ToolUse)
        ]
    );
}

#[test]
fn a3_anthropic_overloaded_midstream() {
    let (ev, r) = decode_all_ways(&anthropic, fixture!("anthropic_overloaded_midstream.sse"));
    assert_eq!(ev, vec![text("Pi")]);
    assert!(
        matches!(
            r,
            Err(StreamFailure::ErrorEvent {
                kind: FailureKind::Overloaded,
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn anthropic_thinking_and_unknown_events() {
    let (ev, r) = decode_all_ways(&anthropic, fixture!("anthropic_thinking_unknown_event.sse"));
    r.unwrap();
    assert_eq!(
        ev,
        vec![
            StreamEvent::ReasoningDelta {
                text: "Check the sensor.".into()
            },
            text("All good."),
            usage(30, 9, Some(12)),
            finish(StopReason::EndTurn)
        ]
    );
}

#[test]
fn ollama_fixtures() {
    let (ev, r) = decode_all_ways(&ollama, fixture!("ollama_tool.ndjson"));
    r.unwrap();
    assert_eq!(
        ev,
        vec![
            call("ollama_call_0", "get_temp", json!({"sensor": "cpu"})),
            usage(143, 19, None),
            finish(StopReason::ToolUse)
        ]
    );
    let (ev, r) = decode_all_ways(&ollama, fixture!("ollama_parallel_tools.ndjson"));
    r.unwrap();
    assert_eq!(
        ev[..2],
        [
            call("ollama_call_0", "get_temp", json!({"sensor": "cpu"})),
            call("call_x", "get_uptime", json!({}))
        ]
    );
    let (ev, r) = decode_all_ways(&ollama, fixture!("ollama_text.ndjson"));
    r.unwrap();
    assert_eq!(
        ev,
        vec![
            StreamEvent::ReasoningDelta {
                text: "Greet them.".into()
            },
            text("Pi is online."),
            usage(12, 4, None),
            finish(StopReason::EndTurn)
        ]
    );
    let (ev, r) = decode_all_ways(&ollama, fixture!("ollama_midstream_error.ndjson"));
    assert_eq!(ev, vec![text("Pi is")]);
    assert!(matches!(r, Err(StreamFailure::ErrorEvent { .. })), "{r:?}");
    // a cut last line is a truncation
    let body = fixture!("ollama_text.ndjson");
    let (_, r) = decode_all_ways(&ollama, &body[..body.len() - 20]);
    assert!(matches!(r, Err(StreamFailure::Truncated { .. })), "{r:?}");
}

/// A framing error (an over-long line) in the same push as complete events:
/// those events are still handled first, as they are when the body arrives in
/// smaller pieces, and a framing error after the terminal marker is ignored.
#[test]
fn framing_error_after_events_gives_the_same_turn_whatever_the_split() {
    let long = "x".repeat(super::limits::MAX_STREAM_LINE_BYTES + 1);
    // (decoder, SSE framing?, an event with text, the terminal marker)
    type Case = (
        fn() -> Box<dyn TurnDecoder>,
        bool,
        &'static str,
        &'static str,
    );
    let cases: [Case; 3] = [
        (
            openai,
            true,
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
            "data: [DONE]\n\n",
        ),
        (
            anthropic,
            true,
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        ),
        (
            ollama,
            false,
            "{\"message\":{\"content\":\"hi\"}}\n",
            "{\"done\":true}\n",
        ),
    ];
    for (mk, sse, event, terminal) in cases {
        let head = if sse {
            format!("data: {long}")
        } else {
            long.clone()
        };
        // Text, then a line over the cap: the text is forwarded, then the error.
        let body = format!("{event}{head}\n");
        let whole = run(&mk, &[body.as_bytes()]);
        let split = run(&mk, &[event.as_bytes(), head.as_bytes(), b"\n"]);
        assert_eq!(whole, split);
        assert_eq!(whole.0, vec![text("hi")]);
        assert!(
            matches!(whole.1, Err(StreamFailure::LineTooLong(_))),
            "{:?}",
            whole.1
        );
        // The terminal marker, then a line over the cap: the turn is complete.
        let body = format!("{event}{terminal}{head}\n");
        let whole = run(&mk, &[body.as_bytes()]);
        let split = run(
            &mk,
            &[format!("{event}{terminal}").as_bytes(), head.as_bytes()],
        );
        assert_eq!(whole, split);
        assert!(whole.1.is_ok(), "{:?}", whole.1);
    }
}
