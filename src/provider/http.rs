//! One HTTP attempt: ureq on tokio's blocking pool, abortable through
//! `Agent::shutdown()`.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use crate::abort::Abort;

use super::accumulate::TurnDecoder;
use super::anthropic::{self, ANTHROPIC_VERSION, AnthropicDecoder};
use super::config::{ApiKey, ApiKind, Timeouts};
use super::error::{
    AttemptError, FailureKind, StreamFailure, classify_http, classify_stream_error, excerpt,
    parse_error_value, parse_retry_after,
};
use super::limits::{
    ABORT_JOIN_GRACE, HTTP_INPUT_BUFFER_BYTES, HTTP_OUTPUT_BUFFER_BYTES, MAX_ERROR_BODY_BYTES,
    MAX_RESPONSE_HEADER_BYTES, READ_BUFFER_BYTES,
};
use super::ollama::{self, OllamaDecoder};
use super::openai::{self, OpenAiDecoder, OpenAiOptions};
use super::types::{StopReason, StreamEvent, TurnRequest, Usage};

/// Everything one attempt needs, owned so it can move to a blocking thread.
pub(crate) struct AttemptSpec {
    pub api: ApiKind,
    pub url: String,
    pub key: Option<ApiKey>,
    pub body: Vec<u8>,
    pub timeouts: Timeouts,
    pub proxy: Option<ureq::Proxy>,
}

/// What a successful attempt reports besides the forwarded events.
#[derive(Debug, Clone, Default)]
pub(crate) struct AttemptOk {
    pub stop_reason: Option<StopReason>,
    pub usage: Option<Usage>,
}

/// Build the URL and JSON body for one (provider, model).
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_spec(
    api: ApiKind,
    base_url: &str,
    key: Option<ApiKey>,
    model: &str,
    req: &TurnRequest,
    max_tokens: u32,
    context_window: Option<u32>,
    openai_opts: &OpenAiOptions,
    timeouts: Timeouts,
    proxy: Option<ureq::Proxy>,
) -> AttemptSpec {
    let base = base_url.trim_end_matches('/');
    let (url, body) = match api {
        ApiKind::OpenAiChat => (
            format!("{base}/chat/completions"),
            openai::request_body(req, model, max_tokens, openai_opts),
        ),
        ApiKind::AnthropicMessages => (
            format!("{base}/v1/messages"),
            anthropic::request_body(req, model, max_tokens),
        ),
        ApiKind::Ollama => (
            format!("{base}/api/chat"),
            ollama::request_body(req, model, max_tokens, context_window),
        ),
    };
    AttemptSpec {
        api,
        url,
        key,
        body: body.to_string().into_bytes(),
        timeouts,
        proxy,
    }
}

fn agent_for(spec: &AttemptSpec) -> ureq::Agent {
    let t = spec.timeouts;
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(spec.proxy.clone())
        .timeout_resolve(Some(t.connect))
        .timeout_connect(Some(t.connect))
        .timeout_recv_response(Some(t.first_byte))
        .timeout_per_read(Some(t.idle))
        .max_redirects(0)
        .accept_encoding("identity")
        .input_buffer_size(HTTP_INPUT_BUFFER_BYTES)
        .output_buffer_size(HTTP_OUTPUT_BUFFER_BYTES)
        .max_response_header_size(MAX_RESPONSE_HEADER_BYTES)
        .build()
        .into()
}

/// Shuts an attempt's agent down when the attempt's future is dropped
/// before it finished (the turn was cancelled from above without its
/// `Abort` firing): the blocking read fails at once instead of holding a
/// thread and a connection until the provider's idle timeout.
struct ShutdownOnDrop(Option<ureq::Agent>);

impl ShutdownOnDrop {
    /// The attempt ended on its own: nothing to shut down.
    fn disarm(&mut self) {
        self.0 = None;
    }

    /// Shut the agent down now.
    fn fire(&mut self) {
        if let Some(agent) = self.0.take() {
            agent.shutdown();
        }
    }
}

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.fire();
    }
}

/// Run one attempt on the blocking pool, forwarding events to `tx`. An abort
/// (or dropping the returned future) shuts the attempt's own agent down,
/// which fails its blocking read at once; the call then returns once the
/// blocking task ended, or after [`ABORT_JOIN_GRACE`] if it is stuck in DNS
/// or connect.
pub(crate) async fn attempt(
    spec: AttemptSpec,
    tx: mpsc::Sender<StreamEvent>,
    abort: &Abort,
) -> Result<AttemptOk, AttemptError> {
    let agent = agent_for(&spec);
    let mut killer = ShutdownOnDrop(Some(agent.clone()));
    let sent = Arc::new(AtomicBool::new(false));
    let sent2 = sent.clone();
    let rt = tokio::runtime::Handle::current();
    let abort2 = abort.clone();
    let mut task = tokio::task::spawn_blocking(move || {
        let out = Outlet {
            tx,
            rt,
            abort: abort2,
        };
        run_blocking(agent, spec, &out, &sent2)
    });
    tokio::select! {
        r = &mut task => {
            killer.disarm();
            r.unwrap_or_else(|e| Err(AttemptError::new(
                FailureKind::BadResponse, format!("provider reader task failed: {e}"))))
        }
        _ = abort.aborted() => {
            killer.fire();
            // shutdown() fails reads and TLS at once; DNS and TCP connect are
            // not interruptible (bounded by the connect timeout), so do not
            // wait for those: the detached thread ends on its own and can send
            // nothing more (the outlet checks the abort).
            if tokio::time::timeout(ABORT_JOIN_GRACE, task).await.is_err() {
                tracing::debug!("aborted attempt still connecting; detached");
            }
            let mut e = AttemptError::new(FailureKind::Aborted, "aborted by caller");
            e.after_output = sent.load(Ordering::SeqCst);
            Err(e)
        }
    }
}

pub(super) fn map_ureq(e: &ureq::Error) -> AttemptError {
    match e {
        ureq::Error::Timeout(t) => AttemptError::new(FailureKind::Timeout, format!("{t} timeout")),
        ureq::Error::Io(io) => AttemptError::new(FailureKind::Connect, io_reason(io)),
        ureq::Error::HostNotFound => AttemptError::new(FailureKind::Connect, "host not found"),
        other => AttemptError::new(FailureKind::Connect, other.to_string()),
    }
}

/// "connection refused" rather than "io: Connection refused (os error 111)".
fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".to_owned(),
        K::ConnectionReset => "connection reset".to_owned(),
        K::ConnectionAborted => "connection aborted".to_owned(),
        K::HostUnreachable | K::NetworkUnreachable => "no route to the host".to_owned(),
        _ => e.to_string(),
    }
}

fn map_read(e: &std::io::Error) -> AttemptError {
    if let Some(u) = e.get_ref().and_then(|x| x.downcast_ref::<ureq::Error>()) {
        return map_ureq(u);
    }
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => AttemptError::new(
            FailureKind::Truncated,
            format!("connection closed mid-body: {e}"),
        ),
        std::io::ErrorKind::TimedOut => AttemptError::new(FailureKind::Timeout, e.to_string()),
        _ => AttemptError::new(FailureKind::Connect, format!("read failed: {e}")),
    }
}

/// Strip the key from anything a provider echoes back.
pub(super) fn redact(mut e: AttemptError, key: Option<&ApiKey>) -> AttemptError {
    if let Some(k) = key.map(ApiKey::expose).filter(|k| k.len() >= 4) {
        e.message = e.message.replace(k, "[redacted]");
    }
    e
}

/// The sending side as seen from the blocking thread: a full channel blocks
/// only until the consumer reads or the turn is aborted.
struct Outlet {
    tx: mpsc::Sender<StreamEvent>,
    rt: tokio::runtime::Handle,
    abort: Abort,
}

impl Outlet {
    fn send(&self, ev: StreamEvent) -> bool {
        if self.abort.is_aborted() {
            return false;
        }
        match self.tx.try_send(ev) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            Err(mpsc::error::TrySendError::Full(ev)) => self.rt.block_on(async {
                tokio::select! {
                    r = self.tx.send(ev) => r.is_ok(),
                    _ = self.abort.aborted() => false,
                }
            }),
        }
    }
}

fn run_blocking(
    agent: ureq::Agent,
    spec: AttemptSpec,
    tx: &Outlet,
    sent: &AtomicBool,
) -> Result<AttemptOk, AttemptError> {
    let key = spec.key.clone();
    run_inner(agent, spec, tx, sent).map_err(|mut e| {
        e.after_output |= sent.load(Ordering::SeqCst);
        redact(e, key.as_ref())
    })
}

fn run_inner(
    agent: ureq::Agent,
    spec: AttemptSpec,
    tx: &Outlet,
    sent: &AtomicBool,
) -> Result<AttemptOk, AttemptError> {
    let mut req = agent
        .post(&spec.url)
        .header("content-type", "application/json");
    req = match (spec.api, &spec.key) {
        (ApiKind::AnthropicMessages, Some(k)) => req.header("x-api-key", k.expose()),
        (_, Some(k)) => req.header("authorization", format!("Bearer {}", k.expose())),
        (_, None) => req,
    };
    req = match spec.api {
        ApiKind::AnthropicMessages => req
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header("accept", "text/event-stream"),
        ApiKind::OpenAiChat => req.header("accept", "text/event-stream"),
        ApiKind::Ollama => req.header("accept", "application/x-ndjson"),
    };
    let resp = req.send(spec.body.as_slice()).map_err(|e| map_ureq(&e))?;
    let status = resp.status().as_u16();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").unwrap_or_default();
    if !(200..300).contains(&status) {
        let retry_after = parse_retry_after(
            header("retry-after-ms").as_deref(),
            header("retry-after").as_deref(),
        );
        let should_retry = header("x-should-retry").map(|v| v.trim() == "true");
        let mut raw = Vec::new();
        let _ = resp
            .into_body()
            .into_reader()
            .take(MAX_ERROR_BODY_BYTES)
            .read_to_end(&mut raw);
        let body = String::from_utf8_lossy(&raw);
        tracing::debug!(status, "provider returned an error status");
        return Err(classify_http(
            status,
            &content_type,
            &body,
            retry_after,
            should_retry,
        ));
    }
    let mut reader = resp.into_body().into_reader();
    // An HTML page (captive portal, proxy) or, for the SSE APIs, a plain JSON
    // document (a server that ignored `stream: true`, or an error with 200)
    // is not a stream: say so instead of reporting an empty stream.
    let sse_api = spec.api != ApiKind::Ollama;
    if content_type.contains("html") || (sse_api && content_type.contains("json")) {
        let mut raw = Vec::new();
        let _ = (&mut reader)
            .take(MAX_ERROR_BODY_BYTES)
            .read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw);
        let err = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| parse_error_value(&v));
        let failure = match err {
            Some(e) => StreamFailure::ErrorEvent {
                kind: classify_stream_error(&e),
                message: format!("{} {}", e.kind_hint, e.message).trim().to_owned(),
            },
            None => StreamFailure::NotAStream {
                content_type,
                excerpt: excerpt(&text),
            },
        };
        return Err(failure.into_attempt(false));
    }
    let mut decoder: Box<dyn TurnDecoder> = match spec.api {
        ApiKind::OpenAiChat => Box::new(OpenAiDecoder::new()),
        ApiKind::AnthropicMessages => Box::new(AnthropicDecoder::new()),
        ApiKind::Ollama => Box::new(OllamaDecoder::new()),
    };
    let mut ok = AttemptOk::default();
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    let mut out = Vec::new();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) => return Err(map_read(&e)),
        };
        let r = if n == 0 {
            decoder.finish(&mut out)
        } else {
            decoder.push(&buf[..n], &mut out)
        };
        forward(&mut out, tx, sent, &mut ok)?;
        r.map_err(|f| f.into_attempt(false))?;
        if n == 0 || decoder.is_done() {
            break;
        }
    }
    Ok(ok)
}

fn forward(
    out: &mut Vec<StreamEvent>,
    tx: &Outlet,
    sent: &AtomicBool,
    ok: &mut AttemptOk,
) -> Result<(), AttemptError> {
    for ev in out.drain(..) {
        match &ev {
            StreamEvent::TextDelta { .. } | StreamEvent::ReasoningDelta { .. } => {
                sent.store(true, Ordering::SeqCst);
            }
            StreamEvent::Usage(u) => ok.usage = Some(*u),
            StreamEvent::Finish { reason } => ok.stop_reason = Some(reason.clone()),
            _ => {}
        }
        if !tx.send(ev) {
            return Err(AttemptError::new(
                FailureKind::Aborted,
                "event receiver dropped",
            ));
        }
    }
    Ok(())
}
