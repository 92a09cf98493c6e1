//! The agent loop: assemble the context (system prompt + bounded transcript
//! window + tool schemas), stream a model turn from the provider chain, run
//! the tool calls it asks for, and loop until the model answers, streaming
//! lifecycle, assistant and tool events as it goes. Transcripts are written
//! as the run progresses; the final reply is durable before the run ends.

pub mod context;
mod emit;
pub mod sanitize;
pub mod tools;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ids;
use crate::limits;
use crate::provider::{Message, Providers, StreamEvent, ToolCall, TurnError, TurnRequest};
use crate::session::{BoxFuture, EventSink, Job, RunResult, RunStatus, Runner};
use crate::store::{Store, TranscriptEntry};

use self::emit::{Emitter, TextStream};
use self::tools::{ToolContext, ToolRegistry};

/// How older turns leave the context when it overflows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompactionMode {
    /// Ask the model for a summary; fall back to dropping if that fails.
    #[default]
    Summarize,
    /// Drop them behind an explicit marker.
    Drop,
}

/// `[agent]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Primary model, `provider/model` (see `[[providers]]`).
    pub model: Option<String>,
    /// Models tried in order when the primary fails.
    pub fallbacks: Vec<String>,
    /// System prompt text.
    pub system_prompt: Option<String>,
    /// System prompt from a file (wins over `system_prompt`).
    pub system_prompt_file: Option<PathBuf>,
    /// Runs across all sessions at once.
    pub max_concurrent: usize,
    /// Model ↔ tool round trips per run before it ends with an error.
    pub max_tool_iterations: u32,
    /// Whole-run time limit in seconds.
    pub run_timeout_secs: u64,
    /// Default queue mode: steer | followup | collect | interrupt.
    pub queue_mode: crate::session::QueueMode,
    /// Messages queued per busy session.
    pub queue_cap: usize,
    /// When the queue is full: old | new | summarize.
    pub queue_drop: crate::session::DropPolicy,
    /// Quiet time before queued messages start, in milliseconds.
    pub debounce_ms: u64,
    /// summarize | drop.
    pub compaction: CompactionMode,
    /// Context window when the model config does not say (tokens).
    pub default_context_window: u32,
    /// Output tokens reserved when the model config does not say.
    pub default_max_output_tokens: u32,
}

impl AgentConfig {
    /// The system prompt: the file when set, else the inline text, else a
    /// short default.
    pub fn load_system_prompt(&self) -> Result<String, String> {
        match &self.system_prompt_file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("agent.system_prompt_file {}: {e}", path.display())),
            None => Ok(self.system_prompt.clone().unwrap_or_else(|| {
                "You are pinclaw, the assistant of a home hub running on a small single-board computer. \
                 Use the nodes tool to read sensors and switch outputs; never guess a reading. Be brief."
                    .into()
            })),
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            model: None,
            fallbacks: Vec::new(),
            system_prompt: None,
            system_prompt_file: None,
            max_concurrent: 2,
            max_tool_iterations: 8,
            run_timeout_secs: 600,
            queue_mode: crate::session::QueueMode::Steer,
            queue_cap: limits::SESSION_QUEUE_CAP,
            queue_drop: crate::session::DropPolicy::Summarize,
            debounce_ms: 500,
            compaction: CompactionMode::Summarize,
            default_context_window: 16_384,
            default_max_output_tokens: 1024,
        }
    }
}

/// The agent loop as the lanes' runner.
pub struct AgentRunner {
    config: AgentConfig,
    system_prompt: String,
    providers: Option<Arc<Providers>>,
    store: Store,
    tools: ToolRegistry,
    events: Arc<dyn EventSink>,
    board_summary: Box<dyn Fn() -> String + Send + Sync>,
}

/// Why a run stopped early.
enum Stop {
    Aborted,
    Failed(String),
}

impl AgentRunner {
    /// A runner. `system_prompt` comes from [`AgentConfig::load_system_prompt`];
    /// `board_summary` describes the board and reachable node commands.
    pub fn new(
        config: AgentConfig,
        system_prompt: String,
        providers: Option<Arc<Providers>>,
        store: Store,
        tools: ToolRegistry,
        events: Arc<dyn EventSink>,
        board_summary: Box<dyn Fn() -> String + Send + Sync>,
    ) -> Self {
        Self {
            config,
            system_prompt,
            providers,
            store,
            tools,
            events,
            board_summary,
        }
    }

    fn system(&self) -> String {
        format!(
            "{}\n\n{}",
            self.system_prompt.trim(),
            (self.board_summary)()
        )
    }

    /// Most tokens a reply may have: the model entry's `max_output_tokens`,
    /// else `agent.default_max_output_tokens` (what is sent and what the
    /// context budget keeps free).
    fn output_tokens(&self, model: &str) -> u32 {
        self.providers
            .as_ref()
            .and_then(|p| p.model_config(model))
            .and_then(|c| c.max_output_tokens)
            .unwrap_or(self.config.default_max_output_tokens)
    }

    /// Token budget for the transcript part of the context.
    fn budget(&self, model: &str, system: &str, tools_json: &str) -> u64 {
        let cfg = self.providers.as_ref().and_then(|p| p.model_config(model));
        let window = cfg
            .as_ref()
            .and_then(|c| c.context_window)
            .unwrap_or(self.config.default_context_window);
        let output = self.output_tokens(model);
        u64::from(window)
            .saturating_sub(u64::from(output))
            .saturating_sub(context::estimate_tokens(system))
            .saturating_sub(context::estimate_tokens(tools_json))
            .max(256)
    }

    /// The session's model and the rows the model sees: from the newest
    /// compaction marker on, messages only, without those dropped before
    /// they ran. One read of the store.
    async fn context(&self, key: &str) -> Result<(Option<String>, Vec<TranscriptEntry>), String> {
        let window = self
            .store
            .session_window(key, limits::MAX_CONTEXT_ROWS)
            .await
            .map_err(|e| e.to_string())?;
        let model = window
            .meta
            .and_then(|m| m.model)
            .or_else(|| self.config.model.clone());
        let mut rows: Vec<TranscriptEntry> = window
            .marker
            .into_iter()
            .filter(|m| m.kind == "compaction")
            .collect();
        rows.extend(
            window
                .rows
                .into_iter()
                .filter(|r| r.kind == "message" && r.dropped.is_none()),
        );
        Ok((model, rows))
    }

    /// Compact older rows so the rest fits `keep_budget`. Returns the rows
    /// left (marker first) or `None` when there was nothing to compact.
    async fn compact(
        &self,
        key: &str,
        run_id: &str,
        model: &str,
        rows: &[TranscriptEntry],
        keep_budget: u64,
        emit: &Emitter<'_>,
    ) -> Result<Option<Vec<TranscriptEntry>>, String> {
        let Some(cut) = context::compaction_cut(rows, keep_budget) else {
            return Ok(None);
        };
        let (old, kept) = rows.split_at(cut);
        let Some(kept_from) = kept.first().map(|r| r.seq) else {
            return Ok(None);
        };
        let tokens_before: u64 = rows
            .iter()
            .map(|r| context::estimate_tokens(&r.content))
            .sum();
        let mut method = "drop";
        let mut content = format!(
            "[{} earlier message(s) were removed to fit the context window; ask the user if you need them]",
            old.len()
        );
        if self.config.compaction == CompactionMode::Summarize
            && let Some(providers) = &self.providers
        {
            let mut messages = context::build_messages(old);
            messages.push(Message::User {
                content: "Summarize the conversation above in a few sentences for your own later reference: \
                          facts, device names and readings, decisions, open requests. Reply with the summary only."
                    .into(),
            });
            let req = TurnRequest {
                system: None,
                messages,
                tools: Vec::new(),
                max_tokens: Some(512),
            };
            let (tx, mut rx) = tokio::sync::mpsc::channel(limits::AGENT_STREAM_BUFFER);
            let abort = crate::abort::Abort::new();
            let turn = providers.run_turn(model, &self.config.fallbacks, &req, tx, &abort);
            let collect = async {
                let mut text = String::new();
                while let Some(ev) = rx.recv().await {
                    if let StreamEvent::TextDelta { text: t } = ev {
                        text.push_str(&t);
                    }
                }
                text
            };
            let (result, summary) = tokio::join!(turn, collect);
            match result {
                Ok(_) if !summary.trim().is_empty() => {
                    method = "summarize";
                    content = format!(
                        "[Summary of {} earlier message(s)] {}",
                        old.len(),
                        summary.trim()
                    );
                }
                Ok(_) => tracing::warn!(session = key, "summary came back empty; dropping instead"),
                Err(e) => tracing::warn!(session = key, "summary failed ({e}); dropping instead"),
            }
        }
        let mut marker = TranscriptEntry::message("user", content, Some(run_id));
        marker.kind = "compaction".into();
        marker.role = None;
        marker.kept_from_seq = Some(kept_from);
        let (_, stored) = self
            .store
            .append(key, vec![marker], true)
            .await
            .map_err(|e| e.to_string())?;
        let tokens_after: u64 = stored
            .iter()
            .chain(kept.iter())
            .map(|r| context::estimate_tokens(&r.content))
            .sum();
        // Only now, with the marker durable, is the compaction real.
        emit.agent(
            "compaction",
            json!({"phase": "end", "method": method, "compactedMessages": old.len(), "keptMessages": kept.len(),
                   "tokensBefore": tokens_before, "tokensAfter": tokens_after}),
        );
        tracing::info!(
            session = key,
            method,
            compacted = old.len(),
            kept = kept.len(),
            "context compacted"
        );
        let mut left = stored;
        left.extend_from_slice(kept);
        Ok(Some(left))
    }

    async fn run_inner(
        &self,
        job: &Job,
        emit: &Emitter<'_>,
        text_out: &mut String,
    ) -> Result<String, Stop> {
        let key = job.session_key.as_str();
        let run_id = job.run_id.as_str();
        let (model, mut rows) = self.context(key).await.map_err(Stop::Failed)?;
        let (providers, model) = match (self.providers.clone(), model) {
            (Some(providers), Some(model)) => (providers, model),
            (_, None) => {
                return Err(Stop::Failed(
                    "no model configured: add a [[providers]] entry and set [agent] model = \"provider/model\"".into(),
                ));
            }
            (None, Some(model)) => {
                return Err(Stop::Failed(format!(
                    "model {model} cannot be used: no [[providers]] entry is configured"
                )));
            }
        };
        if let Some(note) = &job.dropped_note {
            let entry = TranscriptEntry::message("user", note.clone(), Some(run_id));
            let (_, stored) = self
                .store
                .append(key, vec![entry], true)
                .await
                .map_err(|e| Stop::Failed(e.to_string()))?;
            rows.extend(stored);
        }
        let system = self.system();
        let specs = self.tools.specs();
        let tools_json = serde_json::to_string(&specs).unwrap_or_default();
        let budget = self.budget(&model, &system, &tools_json);
        let tool_ctx = ToolContext {
            scopes: job.scopes.clone(),
            who: format!("agent run {run_id} in session {key}"),
        };
        let mut overflow_retried = false;
        let mut iteration = 0;
        while iteration < self.config.max_tool_iterations {
            // Boundary: messages steered into this run join the context.
            let steered = job
                .sessions
                .take_steered(key, run_id)
                .await
                .map_err(|e| Stop::Failed(e.to_string()))?;
            if !steered.is_empty() {
                self.events.session_changed(key);
            }
            rows.extend(steered);
            let estimate: u64 = context::estimate_messages(&context::build_messages(&rows));
            if estimate > budget
                && let Some(left) = self
                    .compact(key, run_id, &model, &rows, budget / 2, emit)
                    .await
                    .map_err(Stop::Failed)?
            {
                rows = left;
            }
            emit.agent(
                "lifecycle",
                json!({"phase": "model", "model": model, "iteration": iteration + 1}),
            );
            let req = TurnRequest {
                system: Some(system.clone()),
                messages: context::build_messages(&rows),
                tools: specs.clone(),
                max_tokens: Some(self.output_tokens(&model)),
            };
            let (mut rx, handle) = providers.spawn_turn(
                model.clone(),
                self.config.fallbacks.clone(),
                req,
                job.abort.clone(),
            );
            let mut stream = TextStream::new();
            let mut calls: Vec<ToolCall> = Vec::new();
            let mut invalid: Vec<(String, String, String)> = Vec::new();
            let mut usage = None;
            loop {
                let due = stream.due();
                let event = tokio::select! {
                    event = rx.recv() => event,
                    _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                        stream.flush(emit);
                        continue;
                    }
                };
                let Some(event) = event else { break };
                match event {
                    StreamEvent::TextDelta { text: delta } => stream.push(&delta, emit),
                    StreamEvent::ToolCall(call) => calls.push(call),
                    StreamEvent::InvalidToolCall {
                        id, name, error, ..
                    } => invalid.push((id, name, error)),
                    StreamEvent::Usage(u) => usage = Some(u),
                    StreamEvent::ReasoningDelta { .. } | StreamEvent::Finish { .. } => {}
                }
            }
            stream.flush(emit);
            let text = stream.into_text();
            let turn = handle
                .await
                .map_err(|e| Stop::Failed(format!("model turn task failed: {e}")))?;
            if let Some(u) = usage {
                self.store.add_usage(key, u.input_tokens, u.output_tokens);
                emit.agent(
                    "usage",
                    json!({"inputTokens": u.input_tokens, "outputTokens": u.output_tokens}),
                );
            }
            match turn {
                Ok(_) => {}
                Err(TurnError::Aborted) => {
                    text_out.push_str(&text);
                    return Err(Stop::Aborted);
                }
                Err(TurnError::ContextOverflow { .. }) if !overflow_retried => {
                    overflow_retried = true;
                    match self
                        .compact(key, run_id, &model, &rows, budget / 4, emit)
                        .await
                        .map_err(Stop::Failed)?
                    {
                        Some(left) => {
                            rows = left;
                            continue;
                        }
                        None => {
                            return Err(Stop::Failed(
                                "the message alone exceeds the model's context window".into(),
                            ));
                        }
                    }
                }
                Err(e) => {
                    if !text.is_empty() {
                        let entry =
                            TranscriptEntry::message("assistant", text.clone(), Some(run_id));
                        let _ = self.store.append(key, vec![entry], true).await;
                    }
                    return Err(Stop::Failed(e.to_string()));
                }
            }
            let mut all_calls: Vec<Value> = calls
                .iter()
                .map(|c| json!({"id": c.id, "name": c.name, "arguments": c.arguments}))
                .collect();
            all_calls.extend(
                invalid
                    .iter()
                    .map(|(id, name, _)| json!({"id": id, "name": name, "arguments": {}})),
            );
            let mut assistant = TranscriptEntry::message("assistant", text.clone(), Some(run_id));
            if !all_calls.is_empty() {
                assistant.tool_calls = Some(Value::Array(all_calls));
            }
            let done = calls.is_empty() && invalid.is_empty();
            let (_, stored) = self
                .store
                .append(key, vec![assistant], done)
                .await
                .map_err(|e| Stop::Failed(e.to_string()))?;
            rows.extend(stored);
            if done {
                return Ok(text);
            }
            let mut results = Vec::new();
            for call in calls {
                let mut args = call.arguments.clone();
                sanitize::sanitize_value(&mut args);
                emit.agent("tool", json!({"phase": "start", "name": call.name, "toolCallId": call.id, "args": args}));
                let outcome = self
                    .tools
                    .call(&tool_ctx, &call.name, call.arguments.clone())
                    .await;
                let (content, is_error) = match &outcome {
                    Ok(v) => (sanitize::result_text(v), false),
                    Err(e) => (sanitize::error_text(e), true),
                };
                if is_error {
                    tracing::debug!(tool = %call.name, error = %content, "tool call failed");
                } else {
                    tracing::debug!(tool = %call.name, "tool call");
                }
                emit.agent(
                    "tool",
                    json!({"phase": "result", "name": call.name, "toolCallId": call.id, "isError": is_error, "result": content}),
                );
                let mut entry = TranscriptEntry::message("tool", content, Some(run_id));
                entry.tool_call_id = Some(call.id.clone());
                entry.name = Some(call.name.clone());
                entry.is_error = Some(is_error);
                results.push(entry);
            }
            for (id, name, error) in invalid {
                let content = sanitize::error_text(&format!(
                    "the tool call's arguments were not valid JSON ({error}); call it again with valid JSON"
                ));
                let mut entry = TranscriptEntry::message("tool", content, Some(run_id));
                entry.tool_call_id = Some(id);
                entry.name = Some(name);
                entry.is_error = Some(true);
                results.push(entry);
            }
            let (_, stored) = self
                .store
                .append(key, results, false)
                .await
                .map_err(|e| Stop::Failed(e.to_string()))?;
            rows.extend(stored);
            iteration += 1;
        }
        Err(Stop::Failed(format!(
            "stopped after {} model/tool round trips (agent.max_tool_iterations); the task may be incomplete",
            self.config.max_tool_iterations
        )))
    }
}

impl Runner for Arc<AgentRunner> {
    fn run(&self, job: Job) -> BoxFuture<RunResult> {
        let this = self.clone();
        Box::pin(async move {
            let emit = Emitter::new(this.events.as_ref(), &job.run_id, &job.session_key);
            let started = ids::now_ms();
            emit.agent("lifecycle", json!({"phase": "start", "startedAt": started}));
            this.events.session_changed(&job.session_key);
            let mut partial = String::new();
            let timeout = Duration::from_secs(this.config.run_timeout_secs.max(1));
            let outcome = tokio::select! {
                r = this.run_inner(&job, &emit, &mut partial) => Some(r),
                _ = tokio::time::sleep(timeout) => None,
                _ = job.abort.aborted() => Some(Err(Stop::Aborted)),
            };
            let ended = ids::now_ms();
            let (status, error, kind) = match outcome {
                Some(Ok(reply)) => {
                    emit.agent("lifecycle", json!({"phase": "end", "endedAt": ended}));
                    emit.chat("final", json!({"message": {"role": "assistant", "content": [{"type": "text", "text": reply}]}}));
                    this.events.session_changed(&job.session_key);
                    return RunResult {
                        status: RunStatus::Ok,
                        reply: Some(reply),
                        error: None,
                        error_noted: false,
                    };
                }
                Some(Err(Stop::Aborted)) => {
                    job.abort.abort();
                    (
                        RunStatus::Aborted,
                        "the run was aborted".to_owned(),
                        "aborted",
                    )
                }
                Some(Err(Stop::Failed(error))) => {
                    tracing::warn!(run = %job.run_id, session = %job.session_key, "run failed: {error}");
                    (RunStatus::Error, error, "unknown")
                }
                None => {
                    job.abort.abort();
                    let error = format!(
                        "run timed out after {} s (agent.run_timeout_secs)",
                        timeout.as_secs()
                    );
                    (RunStatus::Timeout, error, "timeout")
                }
            };
            // The error row is in the history before anyone hears of the
            // failure, so a client that reloads on the event finds it.
            // A run the shutdown cut off gets none: the next start decides.
            let cut_off = status == RunStatus::Aborted && job.sessions.is_stopping();
            let row = TranscriptEntry::run_error(&error, &job.run_id, status.as_str());
            let error_noted = cut_off
                || match this.store.append(&job.session_key, vec![row], false).await {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::warn!(run = %job.run_id, "the run's error row not written: {e}");
                        false
                    }
                };
            let mut lifecycle = json!({"phase": "error", "error": error, "endedAt": ended});
            if status == RunStatus::Aborted {
                lifecycle["aborted"] = json!(true);
                emit.agent("lifecycle", lifecycle);
                emit.chat("aborted", json!({"errorMessage": error}));
            } else {
                if status == RunStatus::Timeout {
                    lifecycle["timeoutPhase"] = json!("run");
                }
                emit.agent("lifecycle", lifecycle);
                emit.chat("error", json!({"errorMessage": error, "errorKind": kind}));
            }
            let result = RunResult {
                status,
                reply: None,
                error: Some(error),
                error_noted,
            };
            this.events.session_changed(&job.session_key);
            result
        })
    }
}
