//! Shared pieces of the per-format stream decoders: the decoder trait and the
//! bounded tool-call accumulator.

use serde_json::Value;

use super::error::{StreamFailure, excerpt};
use super::limits::{MAX_TOOL_ARGS_BYTES, MAX_TOOL_CALLS_PER_TURN, MAX_TURN_TOOL_ARGS_BYTES};
use super::sse::{SseDecoder, SseEvent};
use super::types::{StopReason, StreamEvent, ToolCall, Usage};

/// The SSE framing shared by the SSE-based adapters (OpenAI, Anthropic):
/// they supply the per-event logic, [`sse_push`] and [`sse_finish`] the loop.
pub(crate) trait SseTurn {
    /// The framing decoder and its reusable event buffer.
    fn sse(&mut self) -> (&mut SseDecoder, &mut Vec<SseEvent>);
    /// Handle one event's data.
    fn on_sse_event(&mut self, data: &str, out: &mut Vec<StreamEvent>)
    -> Result<(), StreamFailure>;
    /// Whether the terminal marker was seen.
    fn done(&self) -> bool;
    /// Events seen so far.
    fn seen(&self) -> u64;
}

/// [`TurnDecoder::push`] for an [`SseTurn`].
pub(crate) fn sse_push<T: SseTurn>(
    t: &mut T,
    bytes: &[u8],
    out: &mut Vec<StreamEvent>,
) -> Result<(), StreamFailure> {
    if t.done() {
        return Ok(());
    }
    // A framing error still leaves the events completed before it in the
    // buffer: handle them first, so the turn does not depend on how the body
    // was split into pushes.
    let (framed, mut events) = {
        let (sse, buf) = t.sse();
        let framed = sse.push(bytes, buf);
        (framed, std::mem::take(buf))
    };
    let mut handled = Ok(());
    for ev in &events {
        if t.done() {
            break;
        }
        handled = t.on_sse_event(&ev.data, out);
        if handled.is_err() {
            break;
        }
    }
    // Keep the buffer's capacity for the next push.
    events.clear();
    *t.sse().1 = events;
    handled?;
    if t.done() {
        // Bytes after the terminal marker are ignored, a framing error too.
        return Ok(());
    }
    Ok(framed?)
}

/// [`TurnDecoder::finish`] for an [`SseTurn`]: a body that ends before the
/// terminal marker is truncated (or empty).
pub(crate) fn sse_finish<T: SseTurn>(
    t: &mut T,
    out: &mut Vec<StreamEvent>,
) -> Result<(), StreamFailure> {
    if !t.done() {
        let events = {
            let (sse, buf) = t.sse();
            sse.finish(buf);
            std::mem::take(buf)
        };
        for ev in &events {
            if !t.done() {
                t.on_sse_event(&ev.data, out)?;
            }
        }
    }
    match (t.done(), t.seen()) {
        (true, _) => Ok(()),
        (false, 0) => Err(StreamFailure::EmptyBody),
        (false, events) => Err(StreamFailure::Truncated { events }),
    }
}

/// A pure, incremental decoder of one wire format's streaming body.
pub trait TurnDecoder: Send {
    /// Feed body bytes (any split). Appends events ready to forward to `out`.
    /// Once the terminal marker arrived, the final events (tool calls, usage,
    /// finish) are appended and [`TurnDecoder::is_done`] turns true; later bytes
    /// are ignored.
    fn push(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), StreamFailure>;

    /// End of body. Fails with [`StreamFailure::Truncated`] or
    /// [`StreamFailure::EmptyBody`] unless the terminal marker was seen.
    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), StreamFailure>;

    /// Whether the terminal marker was seen.
    fn is_done(&self) -> bool;
}

#[derive(Debug, Default)]
struct Slot {
    key: Option<i64>,
    id: String,
    name: String,
    args: String,
}

/// Reassembles tool calls from fragments, bounded by the caps in
/// [`super::limits`].
#[derive(Debug)]
pub struct ToolSlots {
    slots: Vec<Slot>,
    total_args: usize,
    max_args: usize,
    max_total: usize,
    max_calls: usize,
}

impl Default for ToolSlots {
    fn default() -> Self {
        Self::new()
    }
}

impl ToolSlots {
    /// An accumulator with the default caps.
    pub fn new() -> Self {
        Self::with_limits(
            MAX_TOOL_ARGS_BYTES,
            MAX_TURN_TOOL_ARGS_BYTES,
            MAX_TOOL_CALLS_PER_TURN,
        )
    }

    /// An accumulator with explicit caps.
    pub fn with_limits(max_args: usize, max_total: usize, max_calls: usize) -> Self {
        ToolSlots {
            slots: Vec::new(),
            total_args: 0,
            max_args,
            max_total,
            max_calls,
        }
    }

    /// Whether any call was seen.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn open(&mut self, key: Option<i64>, id: &str) -> Result<usize, StreamFailure> {
        if self.slots.len() >= self.max_calls {
            return Err(StreamFailure::TooManyToolCalls {
                limit: self.max_calls,
            });
        }
        // a new slot takes the key over from an older one with the same key
        for s in self.slots.iter_mut() {
            if s.key == key {
                s.key = None;
            }
        }
        self.slots.push(Slot {
            key,
            id: id.to_owned(),
            ..Slot::default()
        });
        Ok(self.slots.len() - 1)
    }

    /// Add an OpenAI-style fragment. Calls are keyed by `index`, else by `id`,
    /// else the last call continues; a new non-empty `id` at a known index
    /// opens a new call (servers that reuse index 0 for every parallel call);
    /// a repeated `id` or `name` just continues the call.
    pub fn fragment(
        &mut self,
        index: Option<i64>,
        id: Option<&str>,
        name: Option<&str>,
        args: Option<&str>,
    ) -> Result<(), StreamFailure> {
        let id = id.filter(|s| !s.is_empty());
        let by_key = index.and_then(|k| self.slots.iter().rposition(|s| s.key == Some(k)));
        let pos = match (by_key, index, id) {
            (Some(p), _, Some(id)) if !self.slots[p].id.is_empty() && self.slots[p].id != id => {
                self.open(index, id)?
            }
            (Some(p), _, _) => p,
            (None, Some(_), _) => self.open(index, id.unwrap_or(""))?,
            (None, None, Some(id)) => match self.slots.iter().rposition(|s| s.id == id) {
                Some(p) => p,
                None => self.open(None, id)?,
            },
            (None, None, None) => match self.slots.len() {
                0 => self.open(None, "")?,
                n => n - 1,
            },
        };
        let slot = &mut self.slots[pos];
        if slot.id.is_empty()
            && let Some(id) = id
        {
            slot.id = id.to_owned();
        }
        if slot.name.is_empty()
            && let Some(n) = name
        {
            slot.name = n.to_owned();
        }
        if let Some(a) = args {
            self.append(pos, a)?;
        }
        Ok(())
    }

    /// Start a call explicitly (Anthropic `content_block_start`, or a complete
    /// Ollama call).
    pub fn start(&mut self, key: i64, id: &str, name: &str) -> Result<(), StreamFailure> {
        let pos = self.open(Some(key), id)?;
        self.slots[pos].name = name.to_owned();
        Ok(())
    }

    /// Append argument text to the call with `key`. Unknown keys are ignored.
    pub fn append_to(&mut self, key: i64, args: &str) -> Result<(), StreamFailure> {
        match self.slots.iter().rposition(|s| s.key == Some(key)) {
            Some(p) => self.append(p, args),
            None => Ok(()),
        }
    }

    fn append(&mut self, pos: usize, a: &str) -> Result<(), StreamFailure> {
        let slot = &mut self.slots[pos];
        if slot.args.len() + a.len() > self.max_args {
            return Err(StreamFailure::ToolArgsTooLarge {
                limit: self.max_args,
            });
        }
        if self.total_args + a.len() > self.max_total {
            return Err(StreamFailure::ToolArgsTooLarge {
                limit: self.max_total,
            });
        }
        slot.args.push_str(a);
        self.total_args += a.len();
        Ok(())
    }

    /// Parse every call. Empty arguments mean `{}`; invalid JSON or a missing
    /// name gives an [`StreamEvent::InvalidToolCall`].
    pub fn drain(&mut self, id_prefix: &str, out: &mut Vec<StreamEvent>) {
        for (n, s) in self.slots.drain(..).enumerate() {
            let id = if s.id.is_empty() {
                format!("{id_prefix}{n}")
            } else {
                s.id
            };
            let raw = s.args.trim();
            let parsed = if raw.is_empty() {
                Ok(Value::Object(Default::default()))
            } else {
                serde_json::from_str::<Value>(raw)
            };
            match parsed {
                _ if s.name.is_empty() => out.push(StreamEvent::InvalidToolCall {
                    id,
                    name: s.name,
                    raw_arguments: excerpt(raw),
                    error: "tool call without a name".into(),
                }),
                Ok(arguments) => out.push(StreamEvent::ToolCall(ToolCall {
                    id,
                    name: s.name,
                    arguments,
                })),
                Err(e) => out.push(StreamEvent::InvalidToolCall {
                    id,
                    name: s.name,
                    raw_arguments: excerpt(raw),
                    error: format!("arguments were not valid JSON: {e}"),
                }),
            }
        }
        self.total_args = 0;
    }
}

/// Emit the events that close a successful turn: tool calls, usage, finish.
/// A turn with tool calls is a tool turn whatever the provider said.
pub fn finish_turn(
    tools: &mut ToolSlots,
    id_prefix: &str,
    usage: Option<Usage>,
    reason: Option<StopReason>,
    out: &mut Vec<StreamEvent>,
) {
    let had_tools = !tools.is_empty();
    tools.drain(id_prefix, out);
    if let Some(u) = usage {
        out.push(StreamEvent::Usage(u));
    }
    let reason = if had_tools {
        StopReason::ToolUse
    } else {
        reason.unwrap_or(StopReason::EndTurn)
    };
    out.push(StreamEvent::Finish { reason });
}

/// Parse one chunk of JSON, or say why not.
pub fn parse_json(data: &str) -> Result<Value, StreamFailure> {
    serde_json::from_str(data).map_err(|e| StreamFailure::InvalidJson {
        error: e.to_string(),
        excerpt: excerpt(data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn calls(out: &[StreamEvent]) -> Vec<(String, String, Value)> {
        out.iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCall(c) => {
                    Some((c.id.clone(), c.name.clone(), c.arguments.clone()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn index_reuse_with_new_ids_opens_new_calls() {
        let mut t = ToolSlots::new();
        t.fragment(Some(0), Some("a"), Some("x"), Some("{\"k\":1}"))
            .unwrap();
        t.fragment(Some(0), Some("b"), Some("y"), Some("{}"))
            .unwrap();
        let mut out = Vec::new();
        t.drain("c", &mut out);
        assert_eq!(
            calls(&out),
            vec![
                ("a".into(), "x".into(), json!({"k":1})),
                ("b".into(), "y".into(), json!({}))
            ]
        );
    }

    #[test]
    fn repeated_id_and_name_continue_the_call() {
        let mut t = ToolSlots::new();
        for frag in ["{\"s\"", ": \"cpu", "\"}"] {
            t.fragment(Some(0), Some("a"), Some("get"), Some(frag))
                .unwrap();
        }
        let mut out = Vec::new();
        t.drain("c", &mut out);
        assert_eq!(
            calls(&out),
            vec![("a".into(), "get".into(), json!({"s":"cpu"}))]
        );
    }

    #[test]
    fn interleaved_indices_and_missing_index() {
        let mut t = ToolSlots::new();
        t.fragment(Some(1), Some("b"), Some("y"), Some("")).unwrap();
        t.fragment(Some(0), Some("a"), Some("x"), Some("[1,"))
            .unwrap();
        t.fragment(Some(1), None, None, Some("\"z\"")).unwrap();
        t.fragment(Some(0), None, None, Some("2]")).unwrap();
        t.fragment(None, Some("c"), Some("w"), None).unwrap();
        t.fragment(None, None, None, Some("null")).unwrap();
        let mut out = Vec::new();
        t.drain("c", &mut out);
        assert_eq!(
            calls(&out),
            vec![
                ("b".into(), "y".into(), json!("z")),
                ("a".into(), "x".into(), json!([1, 2])),
                ("c".into(), "w".into(), json!(null)),
            ]
        );
    }

    #[test]
    fn invalid_args_and_caps() {
        let mut t = ToolSlots::new();
        t.fragment(Some(0), Some("a"), Some("x"), Some("{\"s\": \"cpu-tem"))
            .unwrap();
        let mut out = Vec::new();
        t.drain("c", &mut out);
        assert!(
            matches!(&out[0], StreamEvent::InvalidToolCall { id, error, .. }
            if id == "a" && error.contains("not valid JSON"))
        );

        let mut t = ToolSlots::with_limits(4, 6, 2);
        assert!(
            t.fragment(Some(0), Some("a"), Some("x"), Some("12345"))
                .is_err()
        );
        let mut t = ToolSlots::with_limits(4, 6, 2);
        t.fragment(Some(0), Some("a"), Some("x"), Some("1234"))
            .unwrap();
        assert_eq!(
            t.fragment(Some(1), Some("b"), Some("x"), Some("123")),
            Err(StreamFailure::ToolArgsTooLarge { limit: 6 })
        );
        let mut t = ToolSlots::with_limits(4, 6, 1);
        t.fragment(Some(0), Some("a"), Some("x"), None).unwrap();
        assert_eq!(
            t.fragment(Some(1), Some("b"), Some("x"), None),
            Err(StreamFailure::TooManyToolCalls { limit: 1 })
        );
    }
}
