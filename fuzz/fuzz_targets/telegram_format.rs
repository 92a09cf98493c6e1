//! A model's reply (any text) through `format::render`: every chunk is
//! within Telegram's limits (plain ≤ 4,000 UTF-16 units, the HTML's visible
//! text ≤ 4,096), its HTML uses only tags Telegram accepts, balanced, with
//! only the entities it knows, and nothing of the reply is lost.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinclaw::channel::telegram::format::render;
use pinclaw::limits;

const TAGS: [&str; 7] = ["b", "i", "s", "code", "pre", "a", "blockquote"];

/// The text Telegram shows for `html`, or why Telegram would refuse it.
fn visible(html: &str) -> Result<String, String> {
    let mut open: Vec<&str> = Vec::new();
    let mut shown = String::new();
    let mut rest = html;
    while let Some(at) = rest.find(['<', '&']) {
        shown.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail
            .find(if tail.starts_with('<') { '>' } else { ';' })
            .ok_or_else(|| format!("unterminated markup at {tail:.20?}"))?;
        let inner = &tail[1..end];
        if tail.starts_with('&') {
            shown.push(match inner {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                other => return Err(format!("unknown entity &{other};")),
            });
        } else if let Some(name) = inner.strip_prefix('/') {
            if open.pop() != Some(name) {
                return Err(format!("</{name}> closes nothing open"));
            }
        } else {
            let name = inner.split(' ').next().unwrap_or_default();
            if !TAGS.contains(&name) {
                return Err(format!("tag <{name}> is not one Telegram accepts"));
            }
            open.push(name);
        }
        rest = &tail[end + 1..];
    }
    shown.push_str(rest);
    match open.pop() {
        Some(tag) => Err(format!("<{tag}> never closed")),
        None => Ok(shown),
    }
}

fuzz_target!(|data: &[u8]| {
    let reply = String::from_utf8_lossy(data);
    let chunks = render(&reply);
    if reply.trim().is_empty() {
        assert!(chunks.is_empty(), "nothing to send for a blank reply");
        return;
    }
    assert!(!chunks.is_empty(), "a reply with text is sent");
    for chunk in &chunks {
        let units = chunk.plain.encode_utf16().count();
        assert!(units <= limits::TELEGRAM_CHUNK_CHARS, "plain chunk of {units}");
        assert!(!chunk.plain.trim().is_empty(), "no blank chunk");
        let shown = visible(&chunk.html).unwrap_or_else(|e| panic!("{e} in {:?}", chunk.html));
        let units = shown.encode_utf16().count();
        assert!(units <= 4096, "Telegram would refuse {units} units");
    }
    // Every non-blank character of the reply reaches the plain chunks, in
    // order (chunking only adds code-fence lines).
    let mut sent = chunks.iter().flat_map(|c| c.plain.chars());
    for c in reply.chars().filter(|c| !c.is_whitespace()) {
        assert!(sent.any(|s| s == c), "{c:?} was lost");
    }
});
