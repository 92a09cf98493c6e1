//! The provider set: failover chain, retries with backoff, per-(provider,
//! model) cooldown with a circuit breaker, and the status snapshot.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::abort::Abort;

use super::config::{
    ApiKey, ApiKind, ConfigError, ModelConfig, ModelRef, ProviderConfig, load_key, load_proxy,
    resolve_chain, validate_providers,
};
use super::error::{
    AttemptError, AttemptRecord, ChainFailure, FailureKind, TurnError, human_duration,
};
use super::http::{attempt, build_spec};
use super::limits::{
    BACKOFF_BASE, BACKOFF_MAX, COOLDOWN_STEPS, EVENT_CHANNEL_CAPACITY, MAX_RETRIES_PER_CANDIDATE,
    MAX_RETRY_WAIT,
};
use super::openai::OpenAiOptions;
use super::types::{DEFAULT_MAX_TOKENS, StopReason, StreamEvent, TurnRequest, Usage};

/// Source of `Instant`s, injectable so cooldown tests need not sleep.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Releases a candidate's half-open trial slot if its attempt future is
/// dropped before the outcome was recorded.
struct ProbeGuard<'a> {
    providers: &'a Providers,
    model: &'a ModelRef,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.providers.release(self.model);
        }
    }
}

/// Retry, backoff and cooldown settings (defaults from [`super::limits`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverPolicy {
    /// Retries of one candidate after its first attempt.
    pub max_retries: u32,
    /// First backoff delay.
    pub backoff_base: Duration,
    /// Largest backoff delay.
    pub backoff_max: Duration,
    /// Longest `retry-after` slept inside a turn; a longer one fails over.
    pub max_retry_wait: Duration,
    /// Cooldown per consecutive failure; the last step repeats.
    pub cooldown_steps: Vec<Duration>,
    /// Multiply backoff delays by a random factor in [0.75, 1.0].
    pub jitter: bool,
    /// When every candidate of the chain is cooling down, send one request
    /// (no retry) to the one whose cooldown ends first instead of failing
    /// without trying. Keeps a single-model setup (one local Ollama) usable
    /// after a hiccup; with a healthy fallback it never triggers.
    pub probe_when_all_cooling: bool,
}

impl Default for FailoverPolicy {
    fn default() -> Self {
        FailoverPolicy {
            max_retries: MAX_RETRIES_PER_CANDIDATE,
            backoff_base: BACKOFF_BASE,
            backoff_max: BACKOFF_MAX,
            max_retry_wait: MAX_RETRY_WAIT,
            cooldown_steps: COOLDOWN_STEPS.to_vec(),
            jitter: true,
            probe_when_all_cooling: true,
        }
    }
}

impl FailoverPolicy {
    /// Backoff before retry number `retry` (0-based), before jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let f = 2u32.saturating_pow(retry.min(16));
        self.backoff_base.saturating_mul(f).min(self.backoff_max)
    }

    /// Cooldown after `failures` consecutive failures (1-based).
    pub fn cooldown(&self, failures: u32) -> Duration {
        let i = (failures.max(1) as usize - 1).min(self.cooldown_steps.len().saturating_sub(1));
        self.cooldown_steps
            .get(i)
            .copied()
            .unwrap_or(Duration::ZERO)
    }
}

/// Circuit state of one (provider, model).
#[derive(Debug, Default, Clone)]
struct Health {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
    last_error: Option<String>,
}

struct Resolved {
    cfg: ProviderConfig,
    key: Option<ApiKey>,
    proxy: Option<ureq::Proxy>,
}

/// The configured providers plus their runtime health. Share it (`Arc`)
/// between the agent loop and the gateway's status methods.
pub struct Providers {
    providers: Vec<Resolved>,
    health: Mutex<BTreeMap<ModelRef, Health>>,
    policy: FailoverPolicy,
    clock: Arc<dyn Clock>,
    rng: Mutex<u64>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field(
                "providers",
                &self.providers.iter().map(|p| &p.cfg.id).collect::<Vec<_>>(),
            )
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// How a successful turn went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnSummary {
    /// `provider/model` that answered.
    pub model: String,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Usage, when reported.
    pub usage: Option<Usage>,
    /// HTTP requests sent in this turn, all candidates together.
    pub requests: u32,
    /// Candidates given up before the one that answered.
    pub failed: Vec<AttemptRecord>,
}

/// `available`, `cooldown` or `probing` (cooldown over, one trial in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelState {
    /// Usable.
    Available,
    /// Circuit open: skipped until the cooldown ends.
    Cooldown,
    /// Cooldown over; one trial request decides.
    Probing,
}

/// One row of `models.list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelStatus {
    /// `provider/model`.
    pub id: String,
    /// Provider id.
    pub provider: String,
    /// Model id.
    pub model: String,
    /// Wire format.
    pub api: ApiKind,
    /// Whether the provider is marked local.
    pub local: bool,
    /// Context window, if configured.
    pub context_window: Option<u32>,
    /// Output cap, if configured.
    pub max_output_tokens: Option<u32>,
    /// Circuit state.
    pub status: ModelState,
    /// Milliseconds until the cooldown ends (0 when available).
    pub cooldown_remaining_ms: u64,
    /// Consecutive failures.
    pub failures: u32,
    /// The last failure, if any since the last success.
    pub last_error: Option<String>,
}

/// Short provider summary for `status` / `health`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderHealth {
    /// Configured providers.
    pub providers: usize,
    /// Known models (configured or used).
    pub models: usize,
    /// Models usable now.
    pub available: usize,
    /// Models cooling down.
    pub cooling_down: usize,
    /// Milliseconds until the first cooling model is usable again.
    pub next_available_ms: Option<u64>,
    /// One line for humans, e.g. `2/3 models available; openai/gpt-x cooling down 4m 10s`.
    pub summary: String,
}

enum Candidate {
    /// The turn is over (success or a turn-ending error).
    Done(Result<TurnSummary, TurnError>),
    /// This candidate failed before any output; try the next.
    Failed(AttemptRecord),
}

impl TurnSummary {
    fn with(mut self, requests: u32, failed: Vec<AttemptRecord>) -> Self {
        self.requests = requests;
        self.failed = failed;
        self
    }
}

enum Admission {
    Go { probe: bool },
    Skip(Duration),
}

impl Providers {
    /// Validate the providers and read their keys (env / file).
    pub fn new(configs: Vec<ProviderConfig>) -> Result<Self, ConfigError> {
        Self::with_policy(configs, FailoverPolicy::default(), Arc::new(SystemClock))
    }

    /// Like [`Providers::new`] with an explicit policy and clock.
    pub fn with_policy(
        configs: Vec<ProviderConfig>,
        policy: FailoverPolicy,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigError> {
        validate_providers(&configs)?;
        let mut providers = Vec::with_capacity(configs.len());
        for cfg in configs {
            let key = load_key(&cfg)?;
            let proxy = load_proxy(&cfg)?;
            providers.push(Resolved { cfg, key, proxy });
        }
        let seed = getrandom::u64().unwrap_or(0x2545_f491_4f6c_dd1d) | 1;
        Ok(Providers {
            providers,
            health: Mutex::new(BTreeMap::new()),
            policy,
            clock,
            rng: Mutex::new(seed),
        })
    }

    /// Check a chain (`[agent] model` + `fallbacks`) against the providers.
    pub fn resolve_chain(
        &self,
        primary: &str,
        fallbacks: &[String],
    ) -> Result<Vec<ModelRef>, ConfigError> {
        let ids: Vec<ProviderConfig> = self
            .providers
            .iter()
            .map(|p| ProviderConfig::new(&p.cfg.id, p.cfg.api, &p.cfg.base_url))
            .collect();
        resolve_chain(&ids, primary, fallbacks)
    }

    /// The provider configs (no keys in them).
    pub fn configs(&self) -> impl Iterator<Item = &ProviderConfig> {
        self.providers.iter().map(|p| &p.cfg)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<ModelRef, Health>> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn jitter(&self, d: Duration) -> Duration {
        if !self.policy.jitter {
            return d;
        }
        let mut s = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        let f = 0.75 + 0.25 * ((*s >> 11) as f64 / (1u64 << 53) as f64);
        d.mul_f64(f)
    }

    fn admit(&self, r: &ModelRef) -> Admission {
        let now = self.clock.now();
        let mut map = self.lock();
        let Some(h) = map.get_mut(r) else {
            return Admission::Go { probe: false };
        };
        match h.open_until {
            Some(until) if until > now => Admission::Skip(until - now),
            Some(_) if h.probing => Admission::Skip(Duration::ZERO),
            Some(_) => {
                h.probing = true;
                Admission::Go { probe: true }
            }
            None => Admission::Go { probe: false },
        }
    }

    fn release(&self, r: &ModelRef) {
        if let Some(h) = self.lock().get_mut(r) {
            h.probing = false;
        }
    }

    /// Close the circuit: a healthy model keeps no state.
    fn record_success(&self, r: &ModelRef) {
        self.lock().remove(r);
    }

    /// Open the circuit: the next cooldown step, or until `retry_after` if longer.
    fn record_failure(&self, r: &ModelRef, e: &AttemptError) {
        if !e.kind.cools_down() {
            self.release(r);
            return;
        }
        let now = self.clock.now();
        let mut map = self.lock();
        let h = map.entry(r.clone()).or_default();
        h.failures = h.failures.saturating_add(1);
        let mut cd = self.policy.cooldown(h.failures);
        if let Some(ra) = e.retry_after {
            cd = cd.max(ra);
        }
        h.open_until = Some(now + cd);
        h.probing = false;
        h.last_error = Some(e.to_string());
        tracing::warn!(model = %r, failures = h.failures, cooldown = %human_duration(cd), error = %e,
            "model put in cooldown");
    }

    fn max_tokens(&self, p: &ProviderConfig, model: &str, req: &TurnRequest) -> (u32, Option<u32>) {
        let m = p.model(model);
        let cap = m.and_then(|m| m.max_output_tokens);
        let n = match (req.max_tokens, cap) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => DEFAULT_MAX_TOKENS,
        };
        (n, m.and_then(|m| m.context_window))
    }

    /// Stream one turn through the chain `primary` + `fallbacks` (model refs
    /// `provider/model`), sending events to `tx` as they arrive.
    ///
    /// Candidates are tried in order, skipping those in cooldown. Before any
    /// output reached `tx`, retryable failures are retried with backoff and
    /// other failures move to the next candidate; after output, a failure ends
    /// the turn with [`TurnError::Interrupted`]. A context overflow returns
    /// [`TurnError::ContextOverflow`] at once. Dropping the receiver or firing
    /// `abort` ends the turn with [`TurnError::Aborted`]. When every candidate
    /// is cooling down and
    /// [`FailoverPolicy::probe_when_all_cooling`] is set, the one whose
    /// cooldown ends first gets a single request rather than none.
    pub async fn run_turn(
        &self,
        primary: &str,
        fallbacks: &[String],
        req: &TurnRequest,
        tx: mpsc::Sender<StreamEvent>,
        abort: &Abort,
    ) -> Result<TurnSummary, TurnError> {
        let chain = self
            .resolve_chain(primary, fallbacks)
            .map_err(|e| TurnError::InvalidChain(e.to_string()))?;
        let mut failed: Vec<AttemptRecord> = Vec::new();
        let mut total = 0u32;
        let mut soonest: Option<(Duration, &ModelRef)> = None;
        for r in &chain {
            if abort.is_aborted() || tx.is_closed() {
                return Err(TurnError::Aborted);
            }
            match self.admit(r) {
                Admission::Skip(left) => {
                    let reason = if left.is_zero() {
                        "skipped: circuit half-open, trial request in flight".to_owned()
                    } else {
                        if soonest.is_none_or(|(d, _)| left < d) {
                            soonest = Some((left, r));
                        }
                        format!("skipped: cooling down for {}", human_duration(left))
                    };
                    tracing::info!(model = %r, %reason, "skipping model");
                    failed.push(AttemptRecord {
                        model: r.to_string(),
                        requests: 0,
                        reason,
                    });
                    continue;
                }
                Admission::Go { probe } => {
                    if probe {
                        tracing::info!(model = %r, "cooldown over: trial request");
                    }
                }
            }
            let retries = self.policy.max_retries;
            match self
                .try_candidate(r, req, &tx, abort, retries, &mut total)
                .await
            {
                Candidate::Done(res) => return res.map(|s| s.with(total, failed)),
                Candidate::Failed(rec) => failed.push(rec),
            }
        }
        if total == 0
            && self.policy.probe_when_all_cooling
            && let Some((_, r)) = soonest
        {
            tracing::info!(model = %r, "every model is cooling down: one last-resort request");
            self.mark_probing(r);
            match self.try_candidate(r, req, &tx, abort, 0, &mut total).await {
                Candidate::Done(res) => return res.map(|s| s.with(total, failed)),
                Candidate::Failed(mut rec) => {
                    rec.reason = format!("{} (a last-resort try while cooling down)", rec.reason);
                    // One line per model: this replaces its "skipped" line.
                    match failed.iter_mut().find(|a| a.model == rec.model) {
                        Some(line) => *line = rec,
                        None => failed.push(rec),
                    }
                }
            }
        }
        let now = self.clock.now();
        let map = self.lock();
        let retry_in = chain
            .iter()
            .filter_map(|r| map.get(r).and_then(|h| h.open_until))
            .filter(|u| *u > now)
            .map(|u| u - now)
            .min();
        Err(TurnError::Exhausted(ChainFailure {
            attempts: failed,
            retry_in,
        }))
    }

    fn mark_probing(&self, r: &ModelRef) {
        if let Some(h) = self.lock().get_mut(r) {
            h.probing = true;
        }
    }

    /// Attempts against one candidate: the first request plus up to `retries`
    /// retries of retryable failures that happened before any output.
    async fn try_candidate(
        &self,
        r: &ModelRef,
        req: &TurnRequest,
        tx: &mpsc::Sender<StreamEvent>,
        abort: &Abort,
        retries: u32,
        total: &mut u32,
    ) -> Candidate {
        let Some(p) = self.providers.iter().find(|p| p.cfg.id == r.provider) else {
            let e = TurnError::InvalidChain(format!("unknown provider in {r}"));
            return Candidate::Done(Err(e));
        };
        let (max_tokens, ctx) = self.max_tokens(&p.cfg, &r.model, req);
        let opts = OpenAiOptions {
            max_tokens_field: p.cfg.openai_max_tokens_field().to_owned(),
            stream_usage: p.cfg.stream_usage,
        };
        // Until this candidate's outcome is recorded, a dropped turn must
        // not leave its circuit marked as probing (it would be skipped
        // forever as "trial request in flight").
        let mut probe = ProbeGuard {
            providers: self,
            model: r,
            armed: true,
        };
        let mut requests = 0u32;
        let err = loop {
            requests += 1;
            *total += 1;
            let spec = build_spec(
                p.cfg.api,
                &p.cfg.base_url,
                p.key.clone(),
                &r.model,
                req,
                max_tokens,
                ctx,
                &opts,
                p.cfg.timeouts(),
                p.proxy.clone(),
            );
            tracing::debug!(model = %r, attempt = requests, "provider request");
            let e = match attempt(spec, tx.clone(), abort).await {
                Ok(ok) => {
                    probe.armed = false;
                    self.record_success(r);
                    return Candidate::Done(Ok(TurnSummary {
                        model: r.to_string(),
                        stop_reason: ok.stop_reason.unwrap_or(StopReason::EndTurn),
                        usage: ok.usage,
                        requests: 0,
                        failed: Vec::new(),
                    }));
                }
                Err(e) => e,
            };
            tracing::warn!(model = %r, attempt = requests, after_output = e.after_output,
                error = %e, "provider attempt failed");
            if e.kind == FailureKind::Aborted || abort.is_aborted() {
                self.release(r);
                return Candidate::Done(Err(TurnError::Aborted));
            }
            if e.kind == FailureKind::ContextOverflow {
                self.release(r);
                return Candidate::Done(Err(TurnError::ContextOverflow {
                    model: r.to_string(),
                    message: e.message,
                }));
            }
            if e.after_output {
                self.record_failure(r, &e);
                return Candidate::Done(Err(TurnError::Interrupted {
                    model: r.to_string(),
                    error: e,
                }));
            }
            if !e.retryable() || requests > retries {
                break e;
            }
            let wait = match e.retry_after {
                Some(ra) if ra > self.policy.max_retry_wait => {
                    tracing::info!(model = %r, retry_after = %human_duration(ra),
                        "retry-after beyond the wait limit: failing over");
                    break e;
                }
                Some(ra) => ra,
                None => self.jitter(self.policy.backoff(requests - 1)),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = abort.aborted() => {
                    self.release(r);
                    return Candidate::Done(Err(TurnError::Aborted));
                }
            }
        };
        probe.armed = false;
        self.record_failure(r, &err);
        Candidate::Failed(AttemptRecord {
            model: r.to_string(),
            requests,
            reason: err.to_string(),
        })
    }

    /// Like [`Providers::run_turn`], spawned on the runtime: returns the event
    /// receiver (bounded by [`EVENT_CHANNEL_CAPACITY`]) and the turn's handle.
    /// Drop the receiver or fire `abort` to stop it.
    pub fn spawn_turn(
        self: &Arc<Self>,
        primary: String,
        fallbacks: Vec<String>,
        req: TurnRequest,
        abort: Abort,
    ) -> (
        mpsc::Receiver<StreamEvent>,
        tokio::task::JoinHandle<Result<TurnSummary, TurnError>>,
    ) {
        let (tx, rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
        let me = self.clone();
        let handle =
            tokio::spawn(async move { me.run_turn(&primary, &fallbacks, &req, tx, &abort).await });
        (rx, handle)
    }

    /// The configured entry of a `provider/model` ref (context window, output
    /// cap), if listed.
    pub fn model_config(&self, model_ref: &str) -> Option<ModelConfig> {
        let r = ModelRef::parse(model_ref).ok()?;
        self.providers
            .iter()
            .find(|p| p.cfg.id == r.provider)?
            .cfg
            .model(&r.model)
            .cloned()
    }

    /// Every configured model (then any other model that has health state),
    /// with its circuit state, for `models.list`.
    pub fn models_snapshot(&self) -> Vec<ModelStatus> {
        let now = self.clock.now();
        let map = self.lock();
        let mut rows = Vec::new();
        let row = |p: &ProviderConfig, model: &str, h: Option<&Health>| {
            let m = p.model(model);
            let remaining = h
                .and_then(|h| h.open_until)
                .filter(|u| *u > now)
                .map(|u| u - now);
            let status = match (h, remaining) {
                (_, Some(_)) => ModelState::Cooldown,
                (Some(h), None) if h.open_until.is_some() => ModelState::Probing,
                _ => ModelState::Available,
            };
            ModelStatus {
                id: format!("{}/{}", p.id, model),
                provider: p.id.clone(),
                model: model.to_owned(),
                api: p.api,
                local: p.local,
                context_window: m.and_then(|m| m.context_window),
                max_output_tokens: m.and_then(|m| m.max_output_tokens),
                status,
                cooldown_remaining_ms: remaining.map_or(0, |d| d.as_millis() as u64),
                failures: h.map_or(0, |h| h.failures),
                last_error: h.and_then(|h| h.last_error.clone()),
            }
        };
        for p in &self.providers {
            for m in &p.cfg.models {
                let r = ModelRef {
                    provider: p.cfg.id.clone(),
                    model: m.id.clone(),
                };
                rows.push(row(&p.cfg, &m.id, map.get(&r)));
            }
        }
        for (r, h) in map.iter() {
            if let Some(p) = self.providers.iter().find(|p| p.cfg.id == r.provider)
                && p.cfg.model(&r.model).is_none()
            {
                rows.push(row(&p.cfg, &r.model, Some(h)));
            }
        }
        rows
    }

    /// A short provider-state summary for `status` / `health`.
    pub fn health(&self) -> ProviderHealth {
        let rows = self.models_snapshot();
        let cooling: Vec<&ModelStatus> = rows
            .iter()
            .filter(|r| r.status == ModelState::Cooldown)
            .collect();
        let next = cooling.iter().map(|r| r.cooldown_remaining_ms).min();
        let available = rows.len() - cooling.len();
        let mut summary = format!("{available}/{} models available", rows.len());
        for r in cooling.iter().take(3) {
            summary.push_str(&format!(
                "; {} cooling down {}",
                r.id,
                human_duration(Duration::from_millis(r.cooldown_remaining_ms))
            ));
        }
        ProviderHealth {
            providers: self.providers.len(),
            models: rows.len(),
            available,
            cooling_down: cooling.len(),
            next_available_ms: next,
            summary,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap() {
        let p = FailoverPolicy::default();
        let got: Vec<u64> = (0..7).map(|i| p.backoff(i).as_millis() as u64).collect();
        assert_eq!(got, vec![500, 1000, 2000, 4000, 8000, 8000, 8000]);
        let mins: Vec<u64> = (1..7).map(|f| p.cooldown(f).as_secs() / 60).collect();
        assert_eq!(mins, vec![1, 5, 25, 60, 60, 60]);
    }

    #[test]
    fn jitter_stays_in_range() {
        let prov = Providers::new(Vec::new()).unwrap();
        for _ in 0..1000 {
            let d = prov.jitter(Duration::from_millis(1000)).as_millis();
            assert!((750..=1000).contains(&d), "{d}");
        }
    }
}
