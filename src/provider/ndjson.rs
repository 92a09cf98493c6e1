//! Incremental, bounded newline-delimited JSON line splitter (pure).

use super::limits::MAX_STREAM_LINE_BYTES;
use super::sse::DecodeError;

/// Splits a byte stream into non-empty lines (without `\n` / `\r\n`).
#[derive(Debug)]
pub struct NdjsonDecoder {
    line: Vec<u8>,
    max_line: usize,
}

impl Default for NdjsonDecoder {
    fn default() -> Self {
        Self::with_limit(MAX_STREAM_LINE_BYTES)
    }
}

impl NdjsonDecoder {
    /// A decoder with the default cap.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder with an explicit line cap.
    pub fn with_limit(max_line: usize) -> Self {
        NdjsonDecoder {
            line: Vec::new(),
            max_line,
        }
    }

    /// Decode `bytes`, appending every completed non-blank line to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) -> Result<(), DecodeError> {
        for &b in bytes {
            if b == b'\n' {
                self.end_line(out);
            } else {
                if self.line.len() >= self.max_line {
                    return Err(DecodeError::LineTooLong {
                        limit: self.max_line,
                    });
                }
                self.line.push(b);
            }
        }
        Ok(())
    }

    /// End of stream: returns a last line that lacked its `\n`, if any. The
    /// caller decides whether it is a complete object or a cut one.
    pub fn finish(&mut self) -> Option<String> {
        let mut out = Vec::new();
        self.end_line(&mut out);
        out.pop()
    }

    fn end_line(&mut self, out: &mut Vec<String>) {
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        let s = String::from_utf8_lossy(&self.line);
        if !s.trim().is_empty() {
            out.push(s.into_owned());
        }
        self.line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_in_any_split() {
        let input = b"{\"a\":1}\r\n\n{\"b\":2}\n{\"c\":3}";
        let want = vec!["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"];
        for cut in 0..input.len() {
            let mut d = NdjsonDecoder::new();
            let mut out = Vec::new();
            d.push(&input[..cut], &mut out).unwrap();
            d.push(&input[cut..], &mut out).unwrap();
            out.extend(d.finish());
            assert_eq!(out, want, "cut at {cut}");
        }
    }

    #[test]
    fn cap() {
        let mut d = NdjsonDecoder::with_limit(4);
        let mut out = Vec::new();
        assert_eq!(
            d.push(b"12345\n", &mut out),
            Err(DecodeError::LineTooLong { limit: 4 })
        );
    }
}
