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

/// The status recorded for a request the client abandoned (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

/// Accumulates one request's outcome; writes it on drop.
pub struct Settle {
    state: AppState,
    /// Dropped after the record is pushed (fields drop after `Drop::drop`).
    _in_flight: InFlightGuard,
    /// Rate-limit slots and the budget hold, settled on drop.
    admitted: Option<Admitted>,
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
}

impl Settle {
    /// Starts settling a request of `route` (`chat`, `embeddings`).
    pub fn new(
        state: &AppState,
        in_flight: InFlightGuard,
        request_id: &str,
        route: &str,
    ) -> Settle {
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
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
        }
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
        self.rec.provider = Some(d.provider.as_str().to_owned());
        self.rec.deployment = Some(d.name.clone());
        self.rec.upstream_model = Some(d.upstream_model.clone());
        self.price = d.price;
    }

    /// Records every upstream attempt.
    pub fn attempts(&mut self, attempts: &[AttemptLog]) {
        self.rec.attempt_count = u32::try_from(attempts.len()).unwrap_or(u32::MAX);
        self.rec.attempts = serde_json::to_string(attempts).ok();
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
