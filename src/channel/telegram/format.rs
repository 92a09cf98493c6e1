//! The assistant's Markdown as Telegram reads it: split into messages of at
//! most [`limits::TELEGRAM_CHUNK_CHARS`] (counted in UTF-16 units, as
//! Telegram counts) at paragraph, then line boundaries, code blocks closed
//! and reopened across a split; each chunk converted to Telegram's HTML
//! subset (bold, italic, strike, code, pre, links, quotes; everything else
//! escaped), with the chunk's Markdown as the plain-text fallback for when
//! Telegram rejects the entities.

use crate::limits;

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// For `parse_mode = "HTML"`.
    pub html: String,
    /// The same text without markup (sent when the HTML is refused).
    pub plain: String,
}

/// Split and convert a reply.
pub fn render(markdown: &str) -> Vec<Chunk> {
    split(markdown, limits::TELEGRAM_CHUNK_CHARS)
        .into_iter()
        .map(|md| Chunk {
            html: to_html(&md),
            plain: md,
        })
        .collect()
}

fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

fn is_fence(line: &str) -> bool {
    line.trim_start().starts_with("```")
}

/// Paragraphs (split at blank lines outside code blocks); a code block is
/// one paragraph however many blank lines it has.
fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if is_fence(line) {
            in_fence = !in_fence;
        }
        if !in_fence && line.trim().is_empty() && !is_fence(line) {
            if !current.is_empty() {
                out.push(current.join("\n"));
                current.clear();
            }
            continue;
        }
        current.push(line);
    }
    if !current.is_empty() {
        out.push(current.join("\n"));
    }
    out
}

/// Split `text` into pieces of at most `max` UTF-16 units.
pub fn split(text: &str, max: usize) -> Vec<String> {
    let text = text.trim();
    if text.is_empty() {
        return Vec::new();
    }
    if units(text) <= max {
        return vec![text.to_owned()];
    }
    let mut pieces = Vec::new();
    for paragraph in paragraphs(text) {
        if units(&paragraph) <= max {
            pieces.push(paragraph);
        } else {
            pieces.extend(split_paragraph(&paragraph, max));
        }
    }
    pack(pieces, "\n\n", max)
}

/// Join pieces with `sep` into chunks of at most `max` units.
fn pack(pieces: Vec<String>, sep: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for piece in pieces {
        if current.is_empty() {
            current = piece;
        } else if units(&current) + units(sep) + units(&piece) <= max {
            current.push_str(sep);
            current.push_str(&piece);
        } else {
            out.push(std::mem::replace(&mut current, piece));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A paragraph too long for one message: by lines; a code block keeps its
/// fences on every piece.
fn split_paragraph(paragraph: &str, max: usize) -> Vec<String> {
    let lines: Vec<&str> = paragraph.lines().collect();
    let fenced = lines.first().is_some_and(|l| is_fence(l));
    if !fenced {
        return pack(split_lines(&lines, max), "\n", max);
    }
    let open = lines[0];
    let body_end = if lines.len() > 1 && is_fence(lines[lines.len() - 1]) {
        lines.len() - 1
    } else {
        lines.len()
    };
    let overhead = units(open) + units("\n\n```");
    let room = max.saturating_sub(overhead).max(1);
    pack(split_lines(&lines[1..body_end], room), "\n", room)
        .into_iter()
        .map(|body| format!("{open}\n{body}\n```"))
        .collect()
}

/// Lines, each longer one cut at a space (or anywhere) to fit `max`.
fn split_lines(lines: &[&str], max: usize) -> Vec<String> {
    let mut out = Vec::new();
    for line in lines {
        let mut rest: &str = line;
        while units(rest) > max {
            let mut cut = 0;
            let mut used = 0;
            let mut last_space = None;
            for (i, c) in rest.char_indices() {
                used += c.len_utf16();
                if used > max {
                    break;
                }
                cut = i + c.len_utf8();
                if c == ' ' {
                    last_space = Some(i);
                }
            }
            let at = last_space.filter(|&s| s > 0).unwrap_or(cut.max(1));
            let at = if rest.is_char_boundary(at) {
                at
            } else {
                rest.char_indices().nth(1).map_or(rest.len(), |(i, _)| i)
            };
            out.push(rest[..at].to_owned());
            rest = rest[at..].trim_start();
        }
        out.push(rest.to_owned());
    }
    out
}

/// Escape text for Telegram HTML.
pub fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// Convert one chunk of Markdown to Telegram HTML.
pub fn to_html(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() + 32);
    let mut fence: Option<String> = None;
    let mut code = String::new();
    let mut quote: Vec<&str> = Vec::new();
    let mut first = true;
    let mut newline = |out: &mut String| {
        if !first {
            out.push('\n');
        }
        first = false;
    };
    for line in markdown.lines() {
        if let Some(lang) = &fence {
            if is_fence(line) {
                newline(&mut out);
                push_pre(&mut out, lang, &code);
                fence = None;
                code.clear();
            } else {
                if !code.is_empty() {
                    code.push('\n');
                }
                code.push_str(line);
            }
            continue;
        }
        if let Some(rest) = line.trim_start().strip_prefix('>') {
            quote.push(rest.strip_prefix(' ').unwrap_or(rest));
            continue;
        }
        if !quote.is_empty() {
            newline(&mut out);
            push_quote(&mut out, &quote);
            quote.clear();
        }
        if is_fence(line) {
            let lang = line.trim_start().trim_start_matches('`').trim();
            fence = Some(
                lang.chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '#'))
                    .take(20)
                    .collect(),
            );
            continue;
        }
        newline(&mut out);
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if let Some(title) = heading(trimmed) {
            out.push_str("<b>");
            inline(title, &mut out);
            out.push_str("</b>");
        } else if let Some(item) = ["- ", "* ", "+ "]
            .iter()
            .find_map(|m| trimmed.strip_prefix(m))
        {
            out.push_str(indent);
            out.push_str("• ");
            inline(item, &mut out);
        } else {
            inline(line, &mut out);
        }
    }
    if !quote.is_empty() {
        newline(&mut out);
        push_quote(&mut out, &quote);
    }
    if let Some(lang) = &fence {
        newline(&mut out);
        push_pre(&mut out, lang, &code);
    }
    out
}

fn heading(line: &str) -> Option<&str> {
    let hashes = line.chars().take_while(|&c| c == '#').count();
    if (1..=6).contains(&hashes) {
        line[hashes..].strip_prefix(' ').map(str::trim)
    } else {
        None
    }
}

fn push_pre(out: &mut String, lang: &str, code: &str) {
    if lang.is_empty() {
        out.push_str("<pre>");
    } else {
        out.push_str("<pre><code class=\"language-");
        out.push_str(lang);
        out.push_str("\">");
    }
    escape(code, out);
    out.push_str(if lang.is_empty() {
        "</pre>"
    } else {
        "</code></pre>"
    });
}

fn push_quote(out: &mut String, lines: &[&str]) {
    out.push_str("<blockquote>");
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        inline(line, out);
    }
    out.push_str("</blockquote>");
}

/// Inline Markdown: `code`, **bold**, __bold__, *italic*, _italic_,
/// ~~strike~~, [links](https://…); anything unmatched is literal text.
fn inline(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some((html, used)) = span(rest) {
            out.push_str(&html);
            rest = &rest[used..];
            continue;
        }
        let mut buf = [0u8; 4];
        escape(c.encode_utf8(&mut buf), out);
        rest = &rest[c.len_utf8()..];
    }
}

/// A marked-up span at the start of `text`: its HTML and the bytes used.
fn span(text: &str) -> Option<(String, usize)> {
    if let Some(body) = text.strip_prefix('`') {
        let end = body.find('`')?;
        if end == 0 {
            return None;
        }
        let mut html = String::from("<code>");
        escape(&body[..end], &mut html);
        html.push_str("</code>");
        return Some((html, end + 2));
    }
    for (marker, tag) in [("**", "b"), ("__", "b"), ("~~", "s")] {
        if let Some(body) = text.strip_prefix(marker) {
            let end = body.find(marker)?;
            if end == 0 || body[..end].starts_with(' ') || body[..end].ends_with(' ') {
                return None;
            }
            return Some((wrap(tag, &body[..end]), end + 2 * marker.len()));
        }
    }
    for marker in ['*', '_'] {
        if let Some(body) = text.strip_prefix(marker) {
            if body.starts_with([' ', marker]) {
                return None;
            }
            let end = body.find(marker)?;
            let after = body[end + 1..].chars().next();
            if end == 0 || body[..end].ends_with(' ') || after.is_some_and(|c| c.is_alphanumeric())
            {
                return None;
            }
            return Some((wrap("i", &body[..end]), end + 2));
        }
    }
    if let Some(body) = text.strip_prefix('[') {
        // Bounded windows: a line of unmatched `[` stays linear.
        let close = window(body, MAX_LINK_LABEL_BYTES).find("](")?;
        let label = &body[..close];
        let after = &body[close + 2..];
        let end = window(after, MAX_LINK_URL_BYTES).find(')')?;
        let url = &after[..end];
        let allowed = ["https://", "http://", "tg://", "mailto:"]
            .iter()
            .any(|p| url.starts_with(p));
        if label.is_empty() || !allowed || url.contains(char::is_whitespace) {
            return None;
        }
        let mut html = String::from("<a href=\"");
        escape(url, &mut html);
        html.push_str("\">");
        inline(label, &mut html);
        html.push_str("</a>");
        return Some((html, 1 + close + 2 + end + 1));
    }
    None
}

/// Longest link label and URL looked for (longer ones stay literal text).
const MAX_LINK_LABEL_BYTES: usize = 256;
const MAX_LINK_URL_BYTES: usize = 2048;

/// The first `max` bytes of `text` (cut back to a character boundary).
fn window(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn wrap(tag: &str, body: &str) -> String {
    let mut html = format!("<{tag}>");
    inline(body, &mut html);
    html.push_str(&format!("</{tag}>"));
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_telegram_html() {
        assert_eq!(
            to_html("**Hot** in _here_: 28 °C < 30 & `x<y`"),
            "<b>Hot</b> in <i>here</i>: 28 °C &lt; 30 &amp; <code>x&lt;y</code>"
        );
        assert_eq!(to_html("snake_case_name stays"), "snake_case_name stays");
        assert_eq!(to_html("2 * 3 * 4"), "2 * 3 * 4");
        assert_eq!(
            to_html("see [docs](https://x.org/a?b=1&c=\"2\")"),
            "see <a href=\"https://x.org/a?b=1&amp;c=&quot;2&quot;\">docs</a>"
        );
        assert_eq!(
            to_html("[bad](javascript:alert(1))"),
            "[bad](javascript:alert(1))"
        );
        // Labels past the search window stay text (a line of `[` is linear).
        let long = format!("[{}](https://x.org)", "a".repeat(300));
        assert_eq!(to_html(&long), long);
        let brackets = "[".repeat(3000);
        assert_eq!(to_html(&brackets), brackets);
        assert_eq!(
            to_html("# Title\n- one\n- **two**\n> quoted\n> more\nafter"),
            "<b>Title</b>\n• one\n• <b>two</b>\n<blockquote>quoted\nmore</blockquote>\nafter"
        );
        assert_eq!(
            to_html("```rust\nfn main() { a < b }\n```"),
            "<pre><code class=\"language-rust\">fn main() { a &lt; b }</code></pre>"
        );
        assert_eq!(
            to_html("```\nopen <fence>"),
            "<pre>open &lt;fence&gt;</pre>"
        );
        assert_eq!(
            to_html("~~gone~~ ** not bold **"),
            "<s>gone</s> ** not bold **"
        );
        assert_eq!(to_html("<script>"), "&lt;script&gt;");
    }

    #[test]
    fn long_replies_split_at_paragraphs_then_lines() {
        let para = "word ".repeat(300).trim().to_owned(); // 1499 chars
        let text = [para.as_str(); 5].join("\n\n");
        let chunks = split(&text, 4000);
        assert_eq!(
            chunks.len(),
            3,
            "{:?}",
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
        );
        assert!(chunks.iter().all(|c| units(c) <= 4000));
        assert_eq!(chunks.join("\n\n"), text, "nothing lost");
        let line = "x".repeat(9000);
        let cut = split(&line, 4000);
        assert_eq!(
            cut.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![4000, 4000, 1000]
        );
        let emoji = "🌡".repeat(3000); // 2 UTF-16 units each
        assert!(split(&emoji, 4000).iter().all(|c| units(c) <= 4000));
    }

    #[test]
    fn code_blocks_stay_fenced_across_a_split() {
        let body: Vec<String> = (0..600).map(|i| format!("line {i:04} of code")).collect();
        let text = format!("Here:\n\n```python\n{}\n```", body.join("\n"));
        let chunks = split(&text, 4000);
        assert!(chunks.len() >= 3);
        for chunk in &chunks[1..] {
            assert!(chunk.starts_with("```python\n"), "{}", &chunk[..20]);
            assert!(chunk.ends_with("\n```"));
            assert!(units(chunk) <= 4000);
            assert!(to_html(chunk).starts_with("<pre><code"));
        }
    }
}
