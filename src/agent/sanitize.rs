//! Tool results and arguments are sanitized before they reach events, logs
//! or the transcript: long text is truncated, secrets are redacted.

use serde_json::Value;

/// Longest text kept from one tool result.
pub const MAX_TOOL_TEXT: usize = 8000;
/// Longest tool error text.
pub const MAX_TOOL_ERROR: usize = 400;
/// Marker appended to truncated text.
pub const TRUNCATED: &str = "…(truncated)…";
/// What replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace(['-', '_'], "");
    matches!(
        k.as_str(),
        "authorization"
            | "apikey"
            | "xapikey"
            | "cookie"
            | "setcookie"
            | "password"
            | "token"
            | "accesstoken"
            | "refreshtoken"
            | "secret"
            | "clientsecret"
            | "bearer"
            | "proxyauthorization"
    )
}

/// Cut `text` to `max` bytes (on a char boundary) with a visible marker.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{TRUNCATED}", &text[..cut])
}

/// Redact `Bearer …`, `Basic …` and `key=value` secrets inside free text.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut words = text.split_inclusive(char::is_whitespace).peekable();
    while let Some(word) = words.next() {
        let bare = word.trim_end();
        let lower = bare.to_ascii_lowercase();
        if (lower == "bearer" || lower == "basic") && words.peek().is_some() {
            out.push_str(word);
            if let Some(next) = words.next() {
                out.push_str(REDACTED);
                out.push_str(&next[next.trim_end().len()..]);
            }
            continue;
        }
        if let Some((k, _)) = bare.split_once(['=', ':'])
            && is_secret_key(
                k.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_'),
            )
            && bare.len() > k.len() + 1
        {
            out.push_str(&bare[..=k.len()]);
            out.push_str(REDACTED);
            out.push_str(&word[bare.len()..]);
            continue;
        }
        out.push_str(word);
    }
    out
}

/// Sanitize a JSON value in place: secret-named fields redacted, strings
/// redacted and truncated.
pub fn sanitize_value(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret_key(k) && !v.is_null() {
                    *v = Value::String(REDACTED.into());
                } else {
                    sanitize_value(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(sanitize_value),
        Value::String(s) => *s = truncate(&redact_text(s), MAX_TOOL_TEXT),
        _ => {}
    }
}

/// A tool result as the text the model and the transcript get.
pub fn result_text(value: &Value) -> String {
    let mut v = value.clone();
    sanitize_value(&mut v);
    let text = match &v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    truncate(&text, MAX_TOOL_TEXT)
}

/// A tool error as the text the model gets.
pub fn error_text(message: &str) -> String {
    truncate(&redact_text(message), MAX_TOOL_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_and_text_truncated() {
        let mut v = json!({
            "headers": {"Authorization": "Bearer abc123", "X-Api-Key": "k-999", "accept": "json"},
            "cookie": "session=xyz",
            "log": "called with api_key=sk-live-42 and Bearer tok-77 done",
            "big": "x".repeat(9000),
        });
        sanitize_value(&mut v);
        let text = v.to_string();
        for secret in ["abc123", "k-999", "session=xyz", "sk-live-42", "tok-77"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(v["headers"]["accept"], "json");
        assert!(
            v["big"]
                .as_str()
                .is_some_and(|s| s.ends_with(TRUNCATED) && s.len() < 8100)
        );
        assert!(result_text(&json!("y".repeat(20_000))).len() <= MAX_TOOL_TEXT + TRUNCATED.len());
        assert_eq!(redact_text("plain words stay"), "plain words stay");
    }
}
