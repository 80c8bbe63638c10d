//! Settlement: turning what happened to a request into one log record.
//!
//! A [`Settle`] is created when a request enters the pipeline and writes its
//! record when dropped — after the response completed, after an error, or when
//! the client went away and the response future or stream body was dropped.
//! That drop guard is what guarantees one record per request.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use modelgate_config::Deployment;
use modelgate_core::{ErrorClass, Price, Usage, estimate_tokens};

use crate::dispatch::AttemptLog;
use modelgate_store::RequestRecord;

use crate::error::ApiError;
use crate::governance::Admitted;
use crate::state::{AppState, Caller, InFlightGuard};

/// Largest captured payload kept (bytes); longer ones are cut.
const CAPTURE_MAX: usize = 1024 * 1024;

fn clip(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(CAPTURE_MAX)]);
    text.into_owned()
}

/// The status recorded for a request the client abandoned (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

/// Accumulates one request's outcome; writes it on drop.
pub struct Settle {
    state: AppState,
    /// Dropped after the record is pushed (fields drop after `Drop::drop`).
    _in_flight: InFlightGuard,
    /// Rate-limit slots and the budget hold, settled on drop.
    admitted: Option<Admitted>,
    /// The alias as a metric label.
    alias_label: String,
    /// Capturing payloads: the stream's events so far.
    capture: Option<String>,
    /// Every upstream attempt (for metrics).
    attempt_logs: Vec<AttemptLog>,
    started: Instant,
    rec: RequestRecord,
    price: Option<Price>,
    /// Tokens in the prompt by our estimate, used when the provider reports none.
    pub input_estimate: u64,
    usage: Option<Usage>,
    content_chars: usize,
    first_content: Option<Instant>,
    /// A stream reached its clean end (so the provider's usage is final).
    completed: bool,
    /// The request's trace (spans are exported on drop when recorded).
    trace: crate::trace::TraceContext,
    /// When the request arrived, Unix nanoseconds (span start).
    started_unix_ns: u64,
    /// Response id, model and finish reasons (read only for recorded traces).
    facts: Option<modelgate_codec::openai::ResponseFacts>,
}

impl Settle {
    /// Starts settling a request of `route` (`chat`, `embeddings`).
    pub fn new(
        state: &AppState,
        in_flight: InFlightGuard,
        request_id: &str,
        route: &str,
        headers: &axum::http::HeaderMap,
    ) -> Settle {
        let trace = crate::trace::TraceContext::from_headers(headers, state.inner.tracer.as_ref());
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        state.inner.metrics.in_flight.inc();
        Settle {
            state: state.clone(),
            admitted: None,
            _in_flight: in_flight,
            started: Instant::now(),
            rec: RequestRecord {
                id: request_id.to_owned(),
                started_at_ms,
                caller: "unknown".into(),
                route: route.to_owned(),
                status: CLIENT_CLOSED,
                error_class: Some(ErrorClass::ClientDisconnected.as_str().into()),
                ..RequestRecord::default()
            },
            price: None,
            input_estimate: 0,
            usage: None,
            content_chars: 0,
            first_content: None,
            completed: false,
            alias_label: String::new(),
            capture: None,
            attempt_logs: Vec::new(),
            trace,
            started_unix_ns: crate::trace::now_unix_ns(),
            facts: None,
        }
    }

    /// The trace upstream requests join.
    pub fn trace_parent(&self) -> modelgate_providers::TraceParent {
        self.trace.upstream()
    }

    /// Notes a response body or stream chunk's id, model and finish reasons
    /// (parsed only when the trace is recorded).
    pub fn response_facts(&mut self, data: &[u8]) {
        if self.trace.recorded {
            crate::trace::merge_facts(&mut self.facts, data);
        }
    }

    /// Records the alias the request resolved to (as a low-cardinality label:
    /// configured names as they are, `provider/<model>` folded to `provider/*`).
    pub fn alias(&mut self, alias: &modelgate_config::Alias) {
        let config = self.state.config();
        self.alias_label = if config.models.contains_key(&alias.name) {
            alias.name.clone()
        } else {
            match alias.name.split_once('/') {
                Some((prefix, _)) => format!("{prefix}/*"),
                None => "other".to_owned(),
            }
        };
    }

    /// Starts capturing: the (redacted) request now, the response later.
    pub fn capture_request(&mut self, raw: &[u8]) {
        self.rec.request_body = Some(modelgate_telemetry::redact(&clip(raw)));
        self.capture = Some(String::new());
    }

    /// Captures a complete response body.
    pub fn capture_response(&mut self, body: &[u8]) {
        if self.capture.is_some() {
            self.rec.response_body = Some(modelgate_telemetry::redact(&clip(body)));
        }
    }

    /// Captures one streamed event (kept until the stream ends, bounded).
    pub fn capture_event(&mut self, data: &[u8]) {
        if let Some(buf) = &mut self.capture
            && buf.len() < CAPTURE_MAX
        {
            buf.push_str(&String::from_utf8_lossy(data));
            buf.push('\n');
        }
    }

    /// Time spent in upstream attempts so far.
    pub fn upstream_time(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.attempt_logs.iter().map(|a| a.latency_us).sum())
    }

    /// Time since the request arrived.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Records who called.
    pub fn caller(&mut self, caller: &Caller) {
        self.rec.caller = caller.label().to_owned();
        if let Some(p) = caller.principal() {
            self.rec.key_id = Some(p.key.id.clone());
            self.rec.team_id = p.team.as_ref().map(|t| t.id.clone());
            self.rec.user_id = p.user.as_ref().map(|u| u.id.clone());
        }
    }

    /// Holds what admission granted until the request is settled.
    pub fn admitted(&mut self, a: Admitted) {
        self.admitted = Some(a);
    }

    /// The output cap the budget reservation assumed, when a budget applies
    /// (enforced upstream if the request sets no `max_tokens`).
    pub fn budget_cap(&self) -> Option<u32> {
        let a = self.admitted.as_ref()?;
        let budgeted = a.budget.is_some()
            || a.shared
                .as_ref()
                .is_some_and(|(_, g)| !g.budgets.is_empty());
        budgeted.then(|| {
            u32::try_from(self.state.inner.governance.default_max_output()).unwrap_or(u32::MAX)
        })
    }

    /// Rate-limit state for response headers.
    pub fn rate_info(&self) -> Option<modelgate_policy::limiter::RateInfo> {
        self.admitted.as_ref().map(|a| a.info)
    }

    /// Records the request's model, stream flag, end user and metadata.
    pub fn request(
        &mut self,
        model: &str,
        stream: bool,
        user: Option<&str>,
        metadata: Option<String>,
    ) {
        self.rec.requested_model = model.to_owned();
        self.rec.stream = stream;
        self.rec.end_user = user.map(str::to_owned);
        self.rec.metadata = metadata;
    }

    /// Records the deployment that served (or last failed) the request.
    pub fn deployment(&mut self, d: &Deployment) {
        self.rec.provider = Some(d.provider_name().to_owned());
        self.rec.deployment = Some(d.name.clone());
        self.rec.upstream_model = Some(d.upstream_model.clone());
        self.price = d.price;
    }

    /// Records every upstream attempt.
    pub fn attempts(&mut self, attempts: &[AttemptLog]) {
        self.rec.attempt_count = u32::try_from(attempts.len()).unwrap_or(u32::MAX);
        self.rec.attempts = serde_json::to_string(attempts).ok();
        self.attempt_logs = attempts.to_vec();
    }

    fn observe(&self, rec: &RequestRecord) {
        use modelgate_telemetry::*;
        let m = &self.state.inner.metrics;
        let route: &'static str = match rec.route.as_str() {
            "embeddings" => "embeddings",
            "messages" => "messages",
            "responses" => "responses",
            "completions" => "completions",
            _ => "chat",
        };
        let alias: &str = if self.alias_label.is_empty() {
            "none"
        } else {
            &self.alias_label
        };
        let provider = rec.provider.as_deref().unwrap_or("none");
        let config = self.state.config();
        let deployment = match &rec.deployment {
            Some(d) if config.deployments.iter().any(|x| &x.name == d) => d.clone(),
            Some(_) => format!("{provider}/*"),
            None => "none".to_owned(),
        };
        let error_class = rec
            .error_class
            .as_deref()
            .and_then(|c| ErrorClass::ALL.iter().find(|e| e.as_str() == c))
            .map_or("", |e| e.as_str());
        m.requests
            .get_or_create(&RequestLabels {
                route,
                alias: alias.to_owned(),
                provider: provider.to_owned(),
                deployment,
                status_class: status_class(rec.status),
                error_class,
            })
            .inc();
        // The rest by resolved handles: no label set hashed or copied.
        let h = m.model_handles(route, alias, provider);
        let total = rec.latency_us as f64 / 1e6;
        h.request_duration.observe(total);
        let upstream = self.upstream_time().as_secs_f64();
        h.overhead.observe((total - upstream).max(0.0));
        if let Some(t) = rec.ttft_us.filter(|_| rec.stream) {
            h.ttft(m).observe(t as f64 / 1e6);
        }
        for (kind, n) in [rec.input_tokens, rec.output_tokens, rec.cached_tokens]
            .into_iter()
            .enumerate()
        {
            if n > 0 {
                h.tokens(m, kind).inc_by(n);
            }
        }
        if let Some(c) = rec.cost_nanos.filter(|c| *c > 0) {
            h.cost_usd(m).inc_by(c as f64 / 1e9);
        }
        for a in &self.attempt_logs {
            let dep = if config.deployments.iter().any(|d| d.name == a.deployment) {
                a.deployment.clone()
            } else {
                match a.deployment.split_once('/') {
                    Some((p, _)) => format!("{p}/*"),
                    None => "other".to_owned(),
                }
            };
            m.upstream_duration_of(&dep)
                .observe(a.latency_us as f64 / 1e6);
            m.attempts
                .get_or_create(&AttemptLabels {
                    deployment: dep,
                    outcome: a.outcome,
                    error_class: a.error_class.unwrap_or(""),
                })
                .inc();
            if a.hedge {
                m.hedges
                    .get_or_create(&AliasLabels {
                        alias: alias.to_owned(),
                    })
                    .inc();
            }
        }
        let retries = self
            .attempt_logs
            .iter()
            .filter(|a| !a.hedge)
            .count()
            .saturating_sub(1);
        if retries > 0 {
            m.retries
                .get_or_create(&AliasLabels {
                    alias: alias.to_owned(),
                })
                .inc_by(retries as u64);
        }
        m.in_flight.dec();
    }

    /// The request failed with `e` (before or instead of a response body).
    pub fn fail(&mut self, e: &ApiError) {
        self.rec.status = e.status().as_u16();
        self.rec.error_class = Some(e.class.as_str().to_owned());
        self.rec.error_message = Some(e.message.clone());
    }

    /// The request succeeded with `status`; `usage` as reported by the provider.
    pub fn ok(&mut self, status: u16, usage: Option<Usage>) {
        self.rec.status = status;
        self.rec.error_class = None;
        self.rec.error_message = None;
        if usage.is_some() {
            self.usage = usage;
        }
    }

    /// A passed-through answer's status: recorded as is; 4xx/5xx with the
    /// matching upstream error class.
    pub fn upstream_status(&mut self, status: u16) {
        self.rec.status = status;
        if status >= 400 {
            let class = modelgate_codec::class_for_status(status);
            self.rec.error_class = Some(class.as_str().to_owned());
            self.rec.error_message = Some(format!("the upstream answered {status}"));
        } else {
            self.rec.error_class = None;
            self.rec.error_message = None;
        }
    }

    /// Usage read from a passed-through answer.
    pub fn usage(&mut self, usage: Usage) {
        self.usage = Some(usage);
    }

    /// The cost of the usage known so far, at the serving deployment's price.
    pub fn cost(&self) -> Option<modelgate_core::Nanos> {
        Some(self.price?.cost(&self.usage?))
    }

    /// A stream chunk went to the client. Returns false when the stream must
    /// be cut because its running cost would cross a hard budget.
    pub fn chunk(&mut self, has_content: bool, content_chars: usize, usage: Option<Usage>) -> bool {
        if has_content && self.first_content.is_none() {
            self.first_content = Some(Instant::now());
        }
        self.content_chars += content_chars;
        if usage.is_some() {
            self.usage = usage;
        }
        self.meter()
    }

    /// Streams are metered as they flow: when the cost so far outgrows the
    /// reservation, hold more; if a hard cap would be crossed, stop.
    fn meter(&mut self) -> bool {
        let Some(price) = self.price else {
            return true;
        };
        let shared_hold = self
            .admitted
            .as_ref()
            .and_then(|a| a.shared.as_ref())
            .filter(|(_, g)| !g.budgets.is_empty())
            .map(|(_, g)| g.amount);
        let so_far = self.cost_so_far(price);
        if let Some(held) = shared_hold {
            // Shared holds are not extended mid-stream: the stream stops at the hold.
            return so_far <= held;
        }
        let Some(res) = self.admitted.as_mut().and_then(|a| a.budget.as_mut()) else {
            return true;
        };
        let cost = so_far;
        if cost <= res.amount() {
            return true;
        }
        // Hold in steps so a long stream does not take the lock per chunk.
        let step = (cost - res.amount()).max(res.amount() / 4).max(1_000);
        res.extend(step)
    }

    fn cost_so_far(&self, price: modelgate_core::Price) -> i64 {
        let so_far = Usage {
            input_tokens: self.usage.map_or(self.input_estimate, |u| {
                u.input_tokens.max(self.input_estimate)
            }),
            output_tokens: self
                .usage
                .map_or(0, |u| u.output_tokens)
                .max(estimate_tokens(self.content_chars)),
            ..Usage::default()
        };
        price.cost(&so_far).0
    }

    /// The stream reached its clean end.
    pub fn completed(&mut self) {
        self.completed = true;
    }

    /// Whether any content reached the client.
    pub fn content_sent(&self) -> bool {
        self.first_content.is_some()
    }

    /// A stream broke after it had started; `class` of the upstream failure.
    pub fn stream_failed(&mut self, class: ErrorClass, message: &str) {
        self.rec.truncated = self.content_sent();
        self.rec.error_class = Some(
            if self.content_sent() && class != ErrorClass::ShuttingDown {
                ErrorClass::StreamInterrupted.as_str().to_owned()
            } else {
                class.as_str().to_owned()
            },
        );
        self.rec.error_message = Some(message.to_owned());
    }

    /// The client went away before the response finished.
    pub fn client_gone(&mut self) {
        self.rec.truncated = self.content_sent();
        self.rec.status = CLIENT_CLOSED;
        self.rec.error_class = Some(ErrorClass::ClientDisconnected.as_str().to_owned());
        self.rec.error_message = Some("client disconnected before the response finished".into());
    }

    fn finalize(&mut self) -> RequestRecord {
        if let Some(events) = self.capture.take()
            && self.rec.response_body.is_none()
            && !events.is_empty()
        {
            self.rec.response_body = Some(modelgate_telemetry::redact(&events));
        }
        let mut rec = std::mem::take(&mut self.rec);
        rec.latency_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        rec.ttft_us = self
            .first_content
            .map(|t| u64::try_from(t.duration_since(self.started).as_micros()).unwrap_or(u64::MAX));
        let mut usage = self.usage.unwrap_or_default();
        let attempted = rec.provider.is_some();
        // The prompt counts as spent once the upstream accepted it (success, a
        // started stream, or a client that left while waiting).
        let billed = rec.status == 200 || rec.status == CLIENT_CLOSED;
        if self.usage.is_none() && attempted && billed {
            usage.input_tokens = self.input_estimate;
            usage.estimated = true;
        }
        // A stream cut short has at best a partial report (Anthropic sends
        // output_tokens: 1 in message_start and the real count only at the end):
        // count at least what the client received.
        let partial = rec.stream && !self.completed;
        let seen = estimate_tokens(self.content_chars);
        if (partial || usage.output_tokens == 0) && seen > usage.output_tokens {
            usage.output_tokens = seen;
            usage.estimated = true;
        }
        rec.input_tokens = usage.input_tokens;
        rec.output_tokens = usage.output_tokens;
        rec.cached_tokens = usage.cache_read_tokens;
        rec.cache_write_tokens = usage.cache_write_tokens;
        rec.reasoning_tokens = usage.reasoning_tokens;
        rec.usage_estimated = usage.estimated;
        rec.cost_nanos = self.price.map(|p| p.cost(&usage).0);
        rec.cost_breakdown = self.price.map(|p| p.breakdown(&usage).to_json());
        if let Some(adm) = self.admitted.take() {
            if let Some(mut limits) = adm.limits {
                limits.reconcile(
                    usage.input_tokens + usage.output_tokens,
                    tokio::time::Instant::now(),
                );
            }
            if let Some(hold) = adm.budget {
                let alerts = hold.settle(rec.cost_nanos.unwrap_or(0));
                self.state.inner.governance.alert(alerts);
            }
            if let Some((shared, grant)) = adm.shared {
                crate::governance::settle_shared(
                    self.state.clone(),
                    shared,
                    grant,
                    usage.input_tokens + usage.output_tokens,
                    rec.cost_nanos.unwrap_or(0),
                    self.state.inner.in_flight.enter(),
                );
            }
        }
        rec
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.rec.status = 500;
            self.rec.error_class = Some(ErrorClass::Internal.as_str().to_owned());
            self.rec.error_message = Some("the request handler panicked".into());
        }
        let rec = self.finalize();
        self.observe(&rec);
        if self.trace.recorded
            && let Some(tracer) = &self.state.inner.tracer
        {
            tracer.export(crate::trace::spans(&crate::trace::Settled {
                ctx: self.trace,
                rec: &rec,
                attempts: &self.attempt_logs,
                started: (self.started, self.started_unix_ns),
                ended: Instant::now(),
                facts: self.facts.as_ref(),
            }));
        }
        tracing::info!(
            target: "modelgate::access",
            request_id = %rec.id,
            route = %rec.route,
            model = %rec.requested_model,
            deployment = rec.deployment.as_deref().unwrap_or("-"),
            status = rec.status,
            error = rec.error_class.as_deref().unwrap_or("-"),
            latency_ms = rec.latency_us as f64 / 1000.0,
            input_tokens = rec.input_tokens,
            output_tokens = rec.output_tokens,
            "request"
        );
        self.state.inner.log.record(rec);
    }
}
