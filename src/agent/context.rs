//! The model context: the transcript since the last compaction turned into
//! provider messages, a token estimate, and the choice of what to compact
//! when the estimate exceeds the model's budget.

use serde_json::Value;

use crate::provider::{Message, ToolCall};
use crate::store::TranscriptEntry;

/// Rough token count of a text (about four bytes per token), used for
/// budgeting; providers' exact tokenizers are not available offline.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4) + 4
}

/// Estimated tokens of a message list.
pub fn estimate_messages(messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|m| match m {
            Message::User { content } => estimate_tokens(content),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                estimate_tokens(content)
                    + tool_calls
                        .iter()
                        .map(|c| {
                            estimate_tokens(&c.arguments.to_string()) + estimate_tokens(&c.name)
                        })
                        .sum::<u64>()
            }
            Message::Tool { content, .. } => estimate_tokens(content) + 8,
        })
        .sum()
}

/// A transcript row as a provider message (compaction rows become a user
/// note; other kinds are skipped).
fn to_message(entry: &TranscriptEntry) -> Option<Message> {
    match (entry.kind.as_str(), entry.role.as_deref()) {
        ("compaction", _) => Some(Message::User {
            content: entry.content.clone(),
        }),
        ("message", Some("user")) => Some(Message::User {
            content: entry.content.clone(),
        }),
        ("message", Some("assistant")) => {
            let tool_calls: Vec<ToolCall> = entry
                .tool_calls
                .as_ref()
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            Some(Message::Assistant {
                content: entry.content.clone(),
                tool_calls,
            })
        }
        ("message", Some("tool")) => Some(Message::Tool {
            call_id: entry.tool_call_id.clone().unwrap_or_default(),
            name: entry.name.clone().unwrap_or_default(),
            content: entry.content.clone(),
            is_error: entry.is_error.unwrap_or(false),
        }),
        _ => None,
    }
}

/// Provider messages from transcript rows, repaired so every assistant tool
/// call has a result (a run cut short by a crash leaves calls unanswered,
/// which providers reject) and results never dangle.
pub fn build_messages(rows: &[TranscriptEntry]) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::with_capacity(rows.len());
    let mut open: Vec<(String, String)> = Vec::new();
    for row in rows {
        let Some(message) = to_message(row) else {
            continue;
        };
        match &message {
            Message::Tool { call_id, .. } => {
                let Some(pos) = open.iter().position(|(id, _)| id == call_id) else {
                    continue; // a result without its call
                };
                open.remove(pos);
                out.push(message);
            }
            _ => {
                close_open(&mut out, &mut open);
                if let Message::Assistant { tool_calls, .. } = &message {
                    open = tool_calls
                        .iter()
                        .map(|c| (c.id.clone(), c.name.clone()))
                        .collect();
                }
                out.push(message);
            }
        }
    }
    close_open(&mut out, &mut open);
    out
}

fn close_open(out: &mut Vec<Message>, open: &mut Vec<(String, String)>) {
    for (call_id, name) in open.drain(..) {
        out.push(Message::Tool {
            call_id,
            name,
            content: "no result: the run was interrupted before this tool finished".into(),
            is_error: true,
        });
    }
}

/// Where to cut the context for a compaction: the index of the first row to
/// keep so the kept rows fit in `keep_budget`, never splitting a tool call
/// from its results and never keeping nothing of the newest turn.
/// Returns `None` when there is nothing older to compact.
pub fn compaction_cut(rows: &[TranscriptEntry], keep_budget: u64) -> Option<usize> {
    let mut used = 0;
    let mut cut = rows.len();
    for (i, row) in rows.iter().enumerate().rev() {
        let cost = estimate_tokens(&row.content)
            + row
                .tool_calls
                .as_ref()
                .map(|v: &Value| estimate_tokens(&v.to_string()))
                .unwrap_or(0);
        if used + cost > keep_budget && cut < rows.len() {
            break;
        }
        used += cost;
        cut = i;
    }
    // Do not start on a tool result: move the cut back to its assistant row,
    // or forward past the results.
    while cut < rows.len() && rows[cut].role.as_deref() == Some("tool") {
        cut += 1;
    }
    (cut > 0 && cut < rows.len()).then_some(cut).or_else(|| {
        // Even the newest row alone is over budget: compact all but it.
        (rows.len() > 1 && cut == rows.len()).then_some(rows.len() - 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(role: &str, content: &str) -> TranscriptEntry {
        TranscriptEntry::message(role, content, None)
    }

    #[test]
    fn dangling_tool_calls_get_an_error_result() {
        let mut assistant = row("assistant", "");
        assistant.tool_calls = Some(json!([{"id": "c1", "name": "time", "arguments": {}}]));
        let rows = vec![row("user", "hi"), assistant, row("user", "again")];
        let messages = build_messages(&rows);
        assert_eq!(messages.len(), 4);
        assert!(
            matches!(&messages[2], Message::Tool { call_id, is_error: true, .. } if call_id == "c1")
        );
        assert!(matches!(&messages[3], Message::User { .. }));
    }

    #[test]
    fn cut_keeps_the_newest_rows_and_whole_tool_exchanges() {
        let mut rows: Vec<TranscriptEntry> =
            (0..10).map(|i| row("user", &"x".repeat(400 + i))).collect();
        let mut tool = row("tool", "result");
        tool.tool_call_id = Some("c".into());
        rows.insert(8, tool);
        let cut = compaction_cut(&rows, 250).unwrap_or(0);
        assert!(cut > 0 && cut < rows.len());
        assert_ne!(rows[cut].role.as_deref(), Some("tool"));
        assert_eq!(compaction_cut(&rows[..1], 10), None);
    }
}
