//! Incremental, bounded Server-Sent Events decoder (pure: bytes in, events out).
//!
//! Follows the WHATWG framing rules that matter for LLM APIs: lines end in
//! `\n`, `\r\n` or `\r`; an empty line dispatches the pending event; lines
//! starting with `:` are comments; one space after `field:` is dropped;
//! several `data:` lines join with `\n`. `id:` and `retry:` are ignored.

use super::limits::{MAX_STREAM_EVENT_BYTES, MAX_STREAM_LINE_BYTES};

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The joined `data:` lines.
    pub data: String,
}

/// A cap was exceeded while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A line longer than the cap.
    #[error("stream line longer than {limit} bytes")]
    LineTooLong {
        /// The cap.
        limit: usize,
    },
    /// An event longer than the cap.
    #[error("stream event longer than {limit} bytes")]
    EventTooLong {
        /// The cap.
        limit: usize,
    },
}

/// Incremental SSE decoder. Feed it bytes in any split; it never buffers more
/// than one line plus one event.
#[derive(Debug)]
pub struct SseDecoder {
    line: Vec<u8>,
    data: String,
    has_data: bool,
    event: Option<String>,
    after_cr: bool,
    max_line: usize,
    max_event: usize,
    /// Comment lines seen (keepalives such as `: OPENROUTER PROCESSING`).
    pub comments: u64,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::with_limits(MAX_STREAM_LINE_BYTES, MAX_STREAM_EVENT_BYTES)
    }
}

impl SseDecoder {
    /// A decoder with the default caps.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder with explicit caps (tests use small ones).
    pub fn with_limits(max_line: usize, max_event: usize) -> Self {
        SseDecoder {
            line: Vec::new(),
            data: String::new(),
            has_data: false,
            event: None,
            after_cr: false,
            max_line,
            max_event,
            comments: 0,
        }
    }

    /// Decode `bytes`, appending every completed event to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), DecodeError> {
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(out)?,
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(out)?;
                }
                _ => {
                    if self.line.len() >= self.max_line {
                        return Err(DecodeError::LineTooLong {
                            limit: self.max_line,
                        });
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(())
    }

    /// End of stream: an event whose lines were complete but which lacked the
    /// closing blank line is dispatched; a partial last line is dropped.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        self.line.clear();
        self.dispatch(out);
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), DecodeError> {
        if self.line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        if line.starts_with(':') {
            self.comments += 1;
            return Ok(());
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line.as_str(), ""),
        };
        match field {
            "data" => {
                let extra = value.len() + usize::from(self.has_data);
                if self.data.len() + extra > self.max_event {
                    return Err(DecodeError::EventTooLong {
                        limit: self.max_event,
                    });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {} // id, retry, unknown fields: ignored
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data || self.event.is_some() {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.has_data = false;
        self.event = None;
        self.data.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        d.push(input, &mut out).unwrap();
        d.finish(&mut out);
        out
    }

    fn bytewise(input: &[u8]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for b in input {
            d.push(std::slice::from_ref(b), &mut out).unwrap();
        }
        d.finish(&mut out);
        out
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn basic_events_and_splits_agree() {
        let input = b"data: {\"a\":1}\n\nevent: ping\ndata: {}\n\ndata: [DONE]\n\n";
        let want = vec![
            ev(None, "{\"a\":1}"),
            ev(Some("ping"), "{}"),
            ev(None, "[DONE]"),
        ];
        assert_eq!(all(input), want);
        assert_eq!(bytewise(input), want);
        // every two-way split
        for cut in 0..input.len() {
            let mut d = SseDecoder::new();
            let mut out = Vec::new();
            d.push(&input[..cut], &mut out).unwrap();
            d.push(&input[cut..], &mut out).unwrap();
            assert_eq!(out, want, "cut at {cut}");
        }
    }

    #[test]
    fn crlf_cr_comments_and_no_space() {
        let input = b": OPENROUTER PROCESSING\r\n\r\ndata:x\r\n\r\ndata: y\r\rdata: z\n\n";
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for b in input.iter() {
            d.push(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert_eq!(out, vec![ev(None, "x"), ev(None, "y"), ev(None, "z")]);
        assert_eq!(d.comments, 1);
    }

    #[test]
    fn multiline_data_joins_with_newline() {
        assert_eq!(all(b"data: a\ndata:b\ndata\n\n"), vec![ev(None, "a\nb\n")]);
    }

    #[test]
    fn only_one_space_is_stripped() {
        assert_eq!(all(b"data:  two\n\n"), vec![ev(None, " two")]);
    }

    #[test]
    fn id_retry_and_empty_events_ignored() {
        assert_eq!(
            all(b"id: 7\nretry: 10\n\n\n\ndata: a\n\n"),
            vec![ev(None, "a")]
        );
    }

    #[test]
    fn eof_dispatches_complete_lines_but_drops_partial_line() {
        assert_eq!(all(b"data: [DONE]\n"), vec![ev(None, "[DONE]")]);
        assert_eq!(
            all(b"data: {\"a\":1}\n\ndata: {\"tru"),
            vec![ev(None, "{\"a\":1}")]
        );
    }

    #[test]
    fn utf8_split_across_pushes() {
        let input = "data: héllo ✓\n\n".as_bytes();
        assert_eq!(bytewise(input), vec![ev(None, "héllo ✓")]);
    }

    #[test]
    fn caps_are_enforced() {
        let mut d = SseDecoder::with_limits(8, 12);
        let mut out = Vec::new();
        assert_eq!(
            d.push(b"data: 123456789\n", &mut out),
            Err(DecodeError::LineTooLong { limit: 8 })
        );
        let mut d = SseDecoder::with_limits(8, 5);
        assert_eq!(
            d.push(b"data:abc\ndata:def\n\n", &mut out),
            Err(DecodeError::EventTooLong { limit: 5 })
        );
        assert!(out.is_empty());
    }
}
