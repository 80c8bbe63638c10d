//! The attempt loop: retries, typed fallbacks, hedging, deadlines.
//!
//! Given an alias, [`run`] asks the router for the order of its deployments
//! and calls them one attempt at a time until one succeeds:
//! - a retryable failure (429, 5xx, Anthropic 529, timeouts, connection
//!   errors) moves to the next deployment (or the same one again when it is the
//!   only one), after a jittered backoff, while the retry budget, the alias's
//!   `max_attempts` and the deadline allow; once the alias is exhausted, its
//!   `general` fallbacks are tried in order;
//! - a context-window failure (estimated before sending, or reported by the
//!   provider) goes to the `context_window` fallbacks, a content-policy refusal
//!   to the `content_policy` fallbacks;
//! - anything else (400, 401, 403, 404) is returned at once, never retried.
//!
//! For streams, an attempt only "succeeds" once its first content event has
//! arrived (within the deployment's `first_token` timeout): a stream that fails,
//! stalls or ends empty before that is retried invisibly to the client. After
//! that, the stream is the client's and a failure ends it with an error event.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use modelgate_config::{Alias, Deployment};
use modelgate_core::ErrorClass;
use modelgate_providers::Target;
use modelgate_router::{Candidate, Limits, Outcome, backoff};
use serde::Serialize;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::state::AppState;

/// One upstream attempt, as recorded in the request log.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptLog {
    pub deployment: String,
    /// `ok`, `error`, or `cancelled` (a hedge that lost).
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<&'static str>,
    pub latency_us: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hedge: bool,
    /// The attempt's trace span (the upstream's `traceparent` parent).
    #[serde(skip)]
    pub span_id: u64,
    /// When the attempt started.
    #[serde(skip)]
    pub started: Option<std::time::Instant>,
    /// The deployment called.
    #[serde(skip)]
    pub target: Option<Arc<Deployment>>,
}

/// When an attempt started, and its span id.
#[derive(Debug, Clone, Copy)]
struct Began {
    at: Instant,
    span_id: u64,
}

impl Began {
    fn now() -> Began {
        Began {
            at: Instant::now(),
            span_id: fastrand::u64(1..),
        }
    }

    fn log(
        self,
        c: &Candidate,
        outcome: &'static str,
        error_class: Option<&'static str>,
        hedge: bool,
    ) -> AttemptLog {
        AttemptLog {
            deployment: c.deployment.name.clone(),
            outcome,
            error_class,
            latency_us: micros(Instant::now().saturating_duration_since(self.at)),
            hedge,
            span_id: self.span_id,
            started: Some(self.at.into_std()),
            target: Some(c.deployment.clone()),
        }
    }
}

/// A successful dispatch.
pub struct Served<T> {
    pub value: T,
    pub deployment: Arc<Deployment>,
    pub attempts: Vec<AttemptLog>,
}

/// A failed dispatch: the error for the client and what was tried.
pub struct Failed {
    pub error: ApiError,
    pub attempts: Vec<AttemptLog>,
    /// The deployment of the last attempt, if any was made.
    pub last_deployment: Option<Arc<Deployment>>,
}

/// What a request brings to the loop besides the call itself.
pub struct Plan<'a> {
    pub alias: Arc<Alias>,
    /// `x-modelgate-tags`: every tag must be carried by the deployment.
    pub tags: &'a [String],
    /// Estimated prompt tokens (for the context-window check).
    pub input_tokens: u64,
    /// The client's own deadline (`x-modelgate-timeout-ms`).
    pub client_deadline: Option<Duration>,
}

/// The kind of a failure, for choosing what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Retryable,
    ContextWindow,
    ContentPolicy,
    Final,
}

fn kind_of(e: &ApiError) -> Kind {
    let code = e.code.as_deref().unwrap_or("");
    let msg = e.message.to_ascii_lowercase();
    // Out of credit or quota: another attempt cannot help (and would bill again).
    if matches!(
        code,
        "insufficient_quota" | "billing_hard_limit_reached" | "billing_not_active"
    ) || msg.contains("exceeded your current quota")
        || msg.contains("credit balance is too low")
    {
        return Kind::Final;
    }
    if matches!(code, "context_length_exceeded" | "string_above_max_length")
        || msg.contains("maximum context length")
        || msg.contains("prompt is too long")
        || msg.contains("context window")
    {
        return Kind::ContextWindow;
    }
    if matches!(code, "content_filter" | "content_policy_violation")
        || msg.contains("content management policy")
        || msg.contains("content policy")
    {
        return Kind::ContentPolicy;
    }
    if e.class.is_retryable() {
        Kind::Retryable
    } else {
        Kind::Final
    }
}

fn outcome_for(e: &ApiError) -> Outcome {
    match e.class {
        ErrorClass::UpstreamRateLimited => Outcome::RateLimited {
            retry_after: e
                .retry_after
                .as_deref()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(86_400.0))),
        },
        ErrorClass::UpstreamError
        | ErrorClass::UpstreamTimeout
        | ErrorClass::UpstreamUnavailable
        | ErrorClass::UpstreamAuth => Outcome::Failure,
        _ => Outcome::Neutral,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Picks the next candidate of an alias pass: a healthy untried one, else (a
/// single-deployment alias, or all tried) a healthy one again, else an untried
/// unhealthy one (so breakers alone never leave the alias with nothing).
fn pick(order: &[Candidate], tried: &HashSet<String>, allow_repeat: bool) -> Option<Candidate> {
    order
        .iter()
        .find(|c| c.healthy && !tried.contains(&c.deployment.name))
        .or_else(|| {
            allow_repeat
                .then(|| order.iter().find(|c| c.healthy))
                .flatten()
        })
        .or_else(|| {
            order
                .iter()
                .find(|c| !c.healthy && !tried.contains(&c.deployment.name))
        })
        .cloned()
}

/// Runs attempts until one succeeds. `call` performs one attempt and returns
/// the value with its time to first content.
pub async fn run<T, F, Fut>(state: &AppState, plan: Plan<'_>, call: F) -> Result<Served<T>, Failed>
where
    F: Fn(Target) -> Fut,
    Fut: Future<Output = Result<(T, Duration), ApiError>>,
{
    let live = state.live();
    let router = &*live.router;
    let start = Instant::now();
    router.note_request(start);
    let primary = plan.alias.clone();
    let mut budget = primary.retry.deadline;
    if let Some(d) = plan.client_deadline {
        budget = budget.min(d);
    }
    let deadline = start + budget;
    let mut attempts: Vec<AttemptLog> = Vec::new();
    let mut last_error: Option<ApiError> = None;
    let mut visited: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<Arc<Alias>> = VecDeque::new();
    let mut total = 0u32;
    let mut last_deployment: Option<Arc<Deployment>> = None;

    // Too long for the model? Skip straight to the context-window chain.
    if primary
        .context_window
        .is_some_and(|cw| plan.input_tokens > cw)
    {
        let e = ApiError::bad_param(
            "messages",
            format!(
                "The request is about {} tokens, more than the {} the model `{}` accepts.",
                plan.input_tokens,
                primary.context_window.unwrap_or(0),
                primary.name
            ),
        )
        .with_code("context_length_exceeded");
        if primary.fallbacks.context_window.is_empty() {
            return Err(Failed {
                error: e,
                attempts,
                last_deployment,
            });
        }
        visited.insert(primary.name.clone());
        enqueue(
            state,
            &mut queue,
            &visited,
            &primary.fallbacks.context_window,
        );
        last_error = Some(e);
    } else {
        queue.push_back(primary.clone());
    }

    'aliases: while let Some(alias) = queue.pop_front() {
        if !visited.insert(alias.name.clone()) && alias.name != primary.name {
            continue;
        }
        let mut tried: HashSet<String> = HashSet::new();
        let mut in_alias = 0u32;
        let single = alias.deployments.len() == 1;
        loop {
            let now = Instant::now();
            if now >= deadline {
                last_error = Some(last_error.unwrap_or_else(|| {
                    ApiError::new(
                        ErrorClass::UpstreamTimeout,
                        "The request deadline passed before any upstream answered.",
                    )
                }));
                break 'aliases;
            }
            if in_alias >= alias.retry.max_attempts {
                break;
            }
            let order = router.order(&alias, plan.tags, plan.input_tokens, now);
            if order.is_empty() {
                last_error = Some(ApiError::bad_param(
                    "x-modelgate-tags",
                    format!(
                        "No deployment of `{}` carries the tags {:?}.",
                        alias.name, plan.tags
                    ),
                ));
                break;
            }
            let Some(cand) = pick(&order, &tried, single || tried.len() >= order.len()) else {
                break;
            };
            let Some(guard) = cand.health.begin(
                now,
                Limits::of(&cand.deployment, plan.input_tokens),
                !cand.healthy,
            ) else {
                // Not tried at all: a pending Retry-After, or the deployment's
                // own rpm/tpm quota (both are hard limits), or a busy probe.
                tried.insert(cand.deployment.name.clone());
                if last_error.is_none() {
                    let (message, secs) = match cand.health.cooldown_until(now) {
                        Some(until) => (
                            "is rate limited by its provider",
                            until
                                .saturating_duration_since(now)
                                .as_secs_f64()
                                .ceil()
                                .max(1.0),
                        ),
                        None => ("is at its configured rpm/tpm or concurrency limit", 1.0),
                    };
                    let mut e = ApiError::new(
                        ErrorClass::UpstreamRateLimited,
                        format!("Every deployment of `{}` {message}.", alias.name),
                    );
                    e.retry_after = Some(format!("{secs:.0}"));
                    last_error = Some(e);
                }
                if tried.len() >= order.len() {
                    break;
                }
                continue;
            };
            if total > 0 {
                if !router.try_retry(now) {
                    tracing::warn!(alias = %alias.name, "retry budget exhausted; not retrying");
                    drop(guard);
                    break 'aliases;
                }
                let unit = fastrand::f64();
                let wait = backoff(total, alias.retry.backoff, alias.retry.max_backoff, unit);
                if now + wait >= deadline {
                    drop(guard);
                    break 'aliases;
                }
                tokio::time::sleep(wait).await;
            }
            total += 1;
            in_alias += 1;
            last_deployment = Some(cand.deployment.clone());
            tried.insert(cand.deployment.name.clone());
            let t0 = Began::now();
            let target = Target {
                deployment: cand.deployment.clone(),
                upstream_model: cand.deployment.upstream_model.clone(),
                span_id: t0.span_id,
            };
            let hedge = alias
                .hedge
                .filter(|_| total == 1 && alias.name == primary.name)
                .and_then(|h| {
                    let threshold = if h.p95 {
                        cand.health.p95_ttft().or(h.after)
                    } else {
                        h.after
                    }?;
                    let second = order
                        .iter()
                        .find(|c| c.healthy && c.deployment.name != cand.deployment.name)?
                        .clone();
                    Some((threshold, h.max_share, second))
                });
            let result = match hedge {
                None => {
                    let r = tokio::time::timeout_at(deadline, call(target)).await;
                    finish_attempt(r, guard, &cand, t0, false, &mut attempts)
                }
                Some((threshold, share, second)) => {
                    let first = call(target);
                    tokio::pin!(first);
                    tokio::select! {
                        r = &mut first => finish_attempt(Ok(r), guard, &cand, t0, false, &mut attempts),
                        () = tokio::time::sleep(threshold) => {
                            let now = Instant::now();
                            let second_guard = if router.try_hedge(now, share) {
                                second.health.begin(now, Limits::of(&second.deployment, plan.input_tokens), false)
                            } else {
                                None
                            };
                            match second_guard {
                                None => {
                                    let r = tokio::time::timeout_at(deadline, &mut first).await;
                                    finish_attempt(r, guard, &cand, t0, false, &mut attempts)
                                }
                                Some(g2) => {
                                    tracing::info!(alias = %alias.name, slow = %cand.deployment.name, hedge = %second.deployment.name, "hedging");
                                    let t2 = Began::now();
                                    let other = call(Target {
                                        deployment: second.deployment.clone(),
                                        upstream_model: second.deployment.upstream_model.clone(),
                                        span_id: t2.span_id,
                                    });
                                    tokio::pin!(other);
                                    race(&mut first, &mut other, (guard, &cand, t0), (g2, &second, t2), deadline, &mut attempts).await
                                }
                            }
                        }
                    }
                }
            };
            match result {
                Ok((value, deployment)) => {
                    return Ok(Served {
                        value,
                        deployment,
                        attempts,
                    });
                }
                Err(e) => {
                    let kind = kind_of(&e);
                    tracing::warn!(alias = %alias.name, deployment = %cand.deployment.name, class = e.class.as_str(), kind = ?kind, "attempt failed");
                    match kind {
                        Kind::Final => {
                            return Err(Failed {
                                error: e,
                                attempts,
                                last_deployment,
                            });
                        }
                        Kind::ContextWindow if !alias.fallbacks.context_window.is_empty() => {
                            queue.clear();
                            enqueue(state, &mut queue, &visited, &alias.fallbacks.context_window);
                            last_error = Some(e);
                            continue 'aliases;
                        }
                        Kind::ContentPolicy if !alias.fallbacks.content_policy.is_empty() => {
                            queue.clear();
                            enqueue(state, &mut queue, &visited, &alias.fallbacks.content_policy);
                            last_error = Some(e);
                            continue 'aliases;
                        }
                        Kind::ContextWindow | Kind::ContentPolicy => {
                            return Err(Failed {
                                error: e,
                                attempts,
                                last_deployment,
                            });
                        }
                        Kind::Retryable => last_error = Some(e),
                    }
                }
            }
        }
        // Alias exhausted by transient failures: its general fallbacks next.
        enqueue(state, &mut queue, &visited, &alias.fallbacks.general);
    }
    let error = last_error.unwrap_or_else(|| {
        ApiError::new(
            ErrorClass::UpstreamUnavailable,
            format!("No deployment of `{}` could be tried.", primary.name),
        )
    });
    Err(Failed {
        error,
        attempts,
        last_deployment,
    })
}

/// Runs the attempt loop unless the drain deadline passes, and settles its
/// outcome: on failure the error response (rendered by `render`, for the
/// surface's dialect) with the decision headers; on success the served value,
/// its deployment and attempts recorded on `settle`.
pub async fn run_and_settle<T, F, Fut>(
    state: &AppState,
    plan: Plan<'_>,
    call: F,
    settle: &mut crate::settle::Settle,
    render: fn(ApiError) -> axum::response::Response,
) -> Result<Served<T>, axum::response::Response>
where
    F: Fn(Target) -> Fut,
    Fut: Future<Output = Result<(T, Duration), ApiError>>,
{
    // Boxed: the attempt loop's state (upstream futures included) is large,
    // and the futures around it are moved as they are polled.
    let outcome = state
        .unless_shutdown(async { Ok(Box::pin(run(state, plan, call)).await) })
        .await;
    match outcome {
        Err(e) => {
            settle.fail(&e);
            Err(render(e))
        }
        Ok(Err(failed)) => {
            settle.attempts(&failed.attempts);
            if let Some(d) = &failed.last_deployment {
                settle.deployment(d);
            }
            settle.fail(&failed.error);
            let mut resp = render(failed.error);
            crate::chat::decision_headers(&mut resp, None, failed.attempts.len());
            Err(resp)
        }
        Ok(Ok(served)) => {
            settle.deployment(&served.deployment);
            settle.attempts(&served.attempts);
            Ok(served)
        }
    }
}

/// The decision and rate-limit headers of a served response.
pub fn served_headers(
    resp: &mut axum::response::Response,
    deployment: &Deployment,
    attempts: usize,
    rate_info: Option<modelgate_policy::limiter::RateInfo>,
) {
    crate::chat::decision_headers(resp, Some(&deployment.name), attempts);
    if let Some(info) = rate_info {
        crate::error::rate_headers(resp.headers_mut(), &info);
    }
}

fn enqueue(
    state: &AppState,
    queue: &mut VecDeque<Arc<Alias>>,
    visited: &HashSet<String>,
    names: &[String],
) {
    for n in names {
        if visited.contains(n) {
            continue;
        }
        match state.resolve(n) {
            Ok(a) => queue.push_back(a),
            Err(_) => tracing::warn!(fallback = %n, "fallback model cannot be resolved; skipped"),
        }
    }
}

type AttemptResult<T> = Result<(T, Arc<Deployment>), ApiError>;

fn finish_attempt<T>(
    r: Result<Result<(T, Duration), ApiError>, tokio::time::error::Elapsed>,
    guard: modelgate_router::Attempt,
    cand: &Candidate,
    t0: Began,
    hedge: bool,
    log: &mut Vec<AttemptLog>,
) -> AttemptResult<T> {
    let now = Instant::now();
    let r = r.unwrap_or_else(|_| {
        Err(ApiError::new(
            ErrorClass::UpstreamTimeout,
            "The request deadline passed while waiting for the upstream.",
        ))
    });
    match r {
        Ok((value, ttft)) => {
            guard.finish(Outcome::Success { ttft }, now);
            log.push(t0.log(cand, "ok", None, hedge));
            Ok((value, cand.deployment.clone()))
        }
        Err(e) => {
            guard.finish(outcome_for(&e), now);
            log.push(t0.log(cand, "error", Some(e.class.as_str()), hedge));
            Err(e)
        }
    }
}

/// Runs the first attempt and its hedge side by side; the first to succeed
/// wins and the other is dropped (cancelling its upstream request).
async fn race<T, A, B>(
    first: &mut std::pin::Pin<&mut A>,
    second: &mut std::pin::Pin<&mut B>,
    (g1, c1, t1): (modelgate_router::Attempt, &Candidate, Began),
    (g2, c2, t2): (modelgate_router::Attempt, &Candidate, Began),
    deadline: Instant,
    log: &mut Vec<AttemptLog>,
) -> AttemptResult<T>
where
    A: Future<Output = Result<(T, Duration), ApiError>>,
    B: Future<Output = Result<(T, Duration), ApiError>>,
{
    let cancelled = |c: &Candidate, t: Began, hedge: bool| t.log(c, "cancelled", None, hedge);
    tokio::select! {
        r = tokio::time::timeout_at(deadline, first.as_mut()) => {
            match finish_attempt(r, g1, c1, t1, false, log) {
                Ok(v) => {
                    log.push(cancelled(c2, t2, true));
                    g2.finish(Outcome::Neutral, Instant::now());
                    Ok(v)
                }
                Err(_) => {
                    let r = tokio::time::timeout_at(deadline, second.as_mut()).await;
                    finish_attempt(r, g2, c2, t2, true, log)
                }
            }
        }
        r = tokio::time::timeout_at(deadline, second.as_mut()) => {
            match finish_attempt(r, g2, c2, t2, true, log) {
                Ok(v) => {
                    log.push(cancelled(c1, t1, false));
                    g1.finish(Outcome::Neutral, Instant::now());
                    Ok(v)
                }
                Err(_) => {
                    let r = tokio::time::timeout_at(deadline, first.as_mut()).await;
                    finish_attempt(r, g1, c1, t1, false, log)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate_codec::gemini;
    use modelgate_providers::CallError;

    fn from_gemini(status: u16, body: &serde_json::Value) -> ApiError {
        let bytes = body.to_string().into_bytes();
        ApiError::from(CallError::Upstream {
            failure: gemini::classify_error(status, &bytes),
            retry_after: gemini::retry_after_seconds(&bytes).map(|s| s.to_string()),
        })
    }

    /// Google words every 429 "You exceeded your current quota", per-minute
    /// limits included; that phrase means "out of credit, final" for OpenAI.
    /// The Gemini codec writes its own message, so Gemini 429s stay retryable.
    #[test]
    fn gemini_rate_limits_stay_retryable() {
        let body = serde_json::json!({"error": {
            "code": 429,
            "message": "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                    {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                     "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}
            ]
        }});
        let e = from_gemini(429, &body);
        assert_eq!(e.class, ErrorClass::UpstreamRateLimited);
        assert!(!e.message.contains("exceeded your current quota"), "{e:?}");
        assert_eq!(kind_of(&e), Kind::Retryable);
        assert_eq!(e.retry_after.as_deref(), Some("37"));
        assert_eq!(
            outcome_for(&e),
            Outcome::RateLimited {
                retry_after: Some(Duration::from_secs(37))
            }
        );
    }

    #[test]
    fn gemini_context_and_auth_failures_are_typed() {
        let long = serde_json::json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "The input token count (1200293) exceeds the maximum number of tokens allowed (1048576)."}});
        assert_eq!(kind_of(&from_gemini(400, &long)), Kind::ContextWindow);
        let key = serde_json::json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "API key not valid. Please pass a valid API key.",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}});
        let e = from_gemini(400, &key);
        assert_eq!(e.class, ErrorClass::UpstreamAuth);
        assert_eq!(kind_of(&e), Kind::Final);
        // OpenAI's own quota error is still final.
        let mut openai = ApiError::new(ErrorClass::UpstreamRateLimited, "m");
        openai.code = Some("insufficient_quota".into());
        assert_eq!(kind_of(&openai), Kind::Final);
    }
}
