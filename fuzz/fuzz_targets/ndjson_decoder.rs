//! `provider::ndjson::NdjsonDecoder`: any bytes, whole, byte by byte and in
//! fuzzer-chosen pieces, with the default cap and a small one. Every way must
//! give the same lines (and last line) and the same error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinclaw::provider::ndjson::NdjsonDecoder;
use pinclaw::provider::sse::DecodeError;
use pinclaw_fuzz::{bytewise, pieces, split_input};

type Outcome = (Vec<String>, Result<Option<String>, DecodeError>);

fn run(max_line: usize, pieces: &[&[u8]]) -> Outcome {
    let mut d = NdjsonDecoder::with_limit(max_line);
    let mut out = Vec::new();
    for p in pieces {
        if let Err(e) = d.push(p, &mut out) {
            return (out, Err(e));
        }
    }
    let last = d.finish();
    for line in out.iter().chain(last.iter()) {
        assert!(!line.contains('\n'), "a line with a newline: {line:?}");
        assert!(!line.trim().is_empty(), "a blank line was returned");
    }
    (out, Ok(last))
}

fuzz_target!(|data: &[u8]| {
    let (body, cuts) = split_input(data);
    for max_line in [pinclaw::provider::limits::MAX_STREAM_LINE_BYTES, 8] {
        let whole = run(max_line, &[body]);
        assert_eq!(run(max_line, &pieces(body, &cuts)), whole, "split {cuts:?}");
        assert_eq!(run(max_line, &bytewise(body)), whole, "bytewise");
        // Without a cap error, no bytes but line breaks are lost.
        if let (lines, Ok(last)) = &whole {
            let kept: usize = lines.iter().chain(last.iter()).map(|l| l.len()).sum();
            assert!(kept <= String::from_utf8_lossy(body).len());
        }
    }
});
