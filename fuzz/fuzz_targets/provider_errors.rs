//! What a provider's error response controls: `retry-after-ms` /
//! `retry-after` headers (numbers and HTTP dates) and the classification of
//! a non-2xx status, content type and body.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use pinclaw::provider::error::{classify_http, parse_retry_after};
use pinclaw::provider::limits::{MAX_ERROR_MESSAGE_CHARS, MAX_RETRY_AFTER};

/// The parts of an IMF-fixdate, so that the fuzzer reaches the date
/// arithmetic without having to spell a month first.
#[derive(Arbitrary, Debug)]
struct Date {
    day: u64,
    month: u8,
    year: i64,
    hour: u64,
    minute: u64,
    second: u64,
}

#[derive(Arbitrary, Debug)]
struct Input {
    retry_after_ms: Option<String>,
    retry_after: Option<String>,
    date: Option<Date>,
    status: u16,
    content_type: String,
    body: String,
    should_retry: Option<bool>,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fuzz_target!(|input: Input| {
    let retry_after = input.date.as_ref().map_or(input.retry_after.clone(), |d| {
        Some(format!(
            "Wed, {} {} {} {}:{}:{} GMT",
            d.day,
            MONTHS[usize::from(d.month % 12)],
            d.year,
            d.hour,
            d.minute,
            d.second
        ))
    });
    let parsed = parse_retry_after(input.retry_after_ms.as_deref(), retry_after.as_deref());
    // No header can ask for more than the cap (failover adds it to an Instant).
    assert!(parsed.is_none_or(|d| d <= MAX_RETRY_AFTER));
    // A usable millisecond value always wins.
    if let Some(ms) = input
        .retry_after_ms
        .as_deref()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    {
        let got = parsed.expect("a finite, non-negative retry-after-ms is used");
        let want = (ms / 1000.0).min(MAX_RETRY_AFTER.as_secs_f64());
        assert!((got.as_secs_f64() - want).abs() <= 1e-6 * want.max(1.0));
    }

    let e = classify_http(
        input.status,
        &input.content_type,
        &input.body,
        parsed,
        input.should_retry,
    );
    assert_eq!(e.status, Some(input.status));
    assert_eq!(e.retry_after, parsed);
    assert_eq!(e.should_retry, input.should_retry);
    assert!(!e.after_output);
    // The message is an excerpt: one line, bounded.
    assert!(e.message.chars().count() <= MAX_ERROR_MESSAGE_CHARS + 1);
    assert!(!e.message.contains(['\n', '\r']));
});
