//! `provider::sse::SseDecoder`: any bytes, whole, byte by byte and in
//! fuzzer-chosen pieces (see the split header in `src/lib.rs`), with the
//! default caps and with small ones. Every way must give the same events,
//! comment count and error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinclaw::provider::sse::{DecodeError, SseDecoder, SseEvent};
use pinclaw_fuzz::{bytewise, pieces, split_input};

type Outcome = (Vec<SseEvent>, u64, Result<(), DecodeError>);

fn run(mk: &dyn Fn() -> SseDecoder, pieces: &[&[u8]], max_event: usize) -> Outcome {
    let mut d = mk();
    let mut out = Vec::new();
    let mut result = Ok(());
    for p in pieces {
        if let Err(e) = d.push(p, &mut out) {
            result = Err(e);
            break;
        }
    }
    if result.is_ok() {
        d.finish(&mut out);
    }
    for ev in &out {
        assert!(ev.data.len() <= max_event, "event over its cap");
        assert!(!ev.data.contains('\r'), "a line break inside data");
        let name = ev.event.as_deref().unwrap_or("");
        assert!(
            !name.contains(['\r', '\n']),
            "a line break inside the event name"
        );
    }
    (out, d.comments, result)
}

fuzz_target!(|data: &[u8]| {
    let (body, cuts) = split_input(data);
    let small =
        |max_line: usize, max_event: usize| move || SseDecoder::with_limits(max_line, max_event);
    let makers: [(&dyn Fn() -> SseDecoder, usize); 2] = [
        (
            &SseDecoder::new,
            pinclaw::provider::limits::MAX_STREAM_EVENT_BYTES,
        ),
        (&small(16, 24), 24),
    ];
    for (mk, max_event) in makers {
        let whole = run(mk, &[body], max_event);
        assert_eq!(
            run(mk, &pieces(body, &cuts), max_event),
            whole,
            "split {cuts:?}"
        );
        assert_eq!(run(mk, &bytewise(body), max_event), whole, "bytewise");
    }
});
