//! `POST /v1/chat/completions`: the LLM pipeline for the OpenAI dialect.
//!
//! Phases, in order (each a plain function call, so the order is visible here):
//! authenticate → read body (size-limited) → decode → validate → resolve model
//! → call upstream → respond (JSON, or SSE re-framed chunk by chunk) → settle
//! (on drop, see [`crate::settle`]).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;
use modelgate_api::openai::{ChatRequest, MessageContent};
use modelgate_codec::sse;
use modelgate_config::Alias;
use modelgate_core::ErrorClass;
use modelgate_providers::{CallContext, CallError, ChatReply, ChatStream, StreamItem, Target};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::dispatch::{self, Plan};
use crate::edge::{RequestId, hdr, parse_json, read_body};
use crate::error::ApiError;
use crate::settle::Settle;
use crate::state::AppState;

/// Handler for `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let inner = &state.inner;
    let mut settle = state.settle(&rid.0, "chat", &headers);
    let (req, raw, alias) = match admit(&state, &headers, body, &mut settle).await {
        Ok(x) => x,
        Err(e) => {
            settle.fail(&e);
            return e.into_response();
        }
    };
    let ctx = CallContext {
        request_id: rid.0.clone(),
        created: unix_now(),
        output_cap: settle.budget_cap(),
        trace: Some(settle.trace_parent()),
        anthropic_beta: None,
    };
    let tags = request_tags(&headers, &req);
    let plan = Plan {
        alias,
        tags: &tags,
        input_tokens: settle.input_estimate,
        client_deadline: client_deadline(&headers),
    };
    let live = state.live();
    let call = |target: Target| {
        let (req, raw, ctx, live) = (&req, &raw, &ctx, &live);
        async move {
            let t0 = Instant::now();
            let reply = live
                .upstreams
                .chat(&target, req, raw, ctx)
                .await
                .map_err(ApiError::from)?;
            match reply {
                ChatReply::Complete { .. } => Ok((reply, t0.elapsed())),
                ChatReply::Stream(s) => {
                    let (s, ttft) =
                        commit_stream(s, target.deployment.timeouts.first_token, t0).await?;
                    Ok((ChatReply::Stream(s), ttft))
                }
            }
        }
    };
    let served =
        match dispatch::run_and_settle(&state, plan, call, &mut settle, ApiError::into_response)
            .await
        {
            Ok(served) => served,
            Err(resp) => return resp,
        };
    let rate_info = settle.rate_info();
    let mut resp = match served.value {
        ChatReply::Complete { body, usage } => {
            settle.ok(200, usage);
            settle.capture_response(&body);
            settle.response_facts(&body);
            let mut resp = json_response(body);
            cost_header(&mut resp, &settle);
            server_timing(&mut resp, &settle);
            resp
        }
        ChatReply::Stream(stream) => {
            settle.ok(200, None);
            sse_response(SseBody {
                inner: stream,
                settle,
                done: false,
                shutdown: Box::pin(inner.shutdown.clone().cancelled_owned()),
            })
        }
    };
    dispatch::served_headers(
        &mut resp,
        &served.deployment,
        served.attempts.len(),
        rate_info,
    );
    resp
}

/// `x-modelgate-deployment` and `x-modelgate-attempts`: which deployment
/// served, after how many upstream attempts; `x-modelgate-cache`: the
/// response cache's verdict (`off`: no cache applies to this request).
pub(crate) fn decision_headers(resp: &mut Response, deployment: Option<&str>, attempts: usize) {
    let h = resp.headers_mut();
    h.insert(hdr::CACHE.clone(), HeaderValue::from_static("off"));
    if let Some(d) = deployment
        && let Ok(v) = HeaderValue::from_str(d)
    {
        h.insert(hdr::DEPLOYMENT.clone(), v);
    }
    h.insert(hdr::ATTEMPTS.clone(), HeaderValue::from(attempts));
}

/// `x-modelgate-cost`: the request's cost in USD (non-streaming responses;
/// a stream's cost is only known at its end and is in the request log).
pub(crate) fn cost_header(resp: &mut Response, settle: &Settle) {
    if let Some(c) = settle.cost()
        && let Ok(v) = HeaderValue::from_str(&c.to_usd_string())
    {
        resp.headers_mut().insert(hdr::COST.clone(), v);
    }
}

/// `server-timing: gateway;dur=…, upstream;dur=…` (milliseconds): the
/// gateway's own overhead next to the time spent waiting on upstreams.
pub(crate) fn server_timing(resp: &mut Response, settle: &Settle) {
    // Integer microseconds printed as milliseconds with three decimals,
    // without the formatting machinery (this runs on every response).
    let upstream = settle.upstream_time().as_micros();
    let gateway = settle.elapsed().as_micros().saturating_sub(upstream);
    let mut value = String::with_capacity(64);
    let mut num = itoa::Buffer::new();
    let mut millis = |label: &str, us: u128| {
        value.push_str(label);
        value.push_str(num.format(us / 1000));
        value.push('.');
        let frac = num.format(us % 1000);
        for _ in frac.len()..3 {
            value.push('0');
        }
        value.push_str(frac);
    };
    millis("gateway;dur=", gateway);
    millis(", upstream;dur=", upstream);
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(hdr::SERVER_TIMING.clone(), v);
    }
}

/// Tags the request restricts routing to: `x-modelgate-tags: eu,gpu`, or
/// `metadata.modelgate_tags` in the body.
pub(crate) fn request_tags(headers: &HeaderMap, req: &ChatRequest) -> Vec<String> {
    let from_header = headers
        .get("x-modelgate-tags")
        .and_then(|v| v.to_str().ok());
    let from_meta = || {
        req.metadata
            .as_ref()
            .and_then(|m| m.get("modelgate_tags"))
            .and_then(|v| v.as_str())
    };
    from_header
        .or_else(from_meta)
        .map(split_tags)
        .unwrap_or_default()
}

/// Tags from `x-modelgate-tags: eu,gpu` alone (surfaces without metadata).
pub(crate) fn header_tags(headers: &HeaderMap) -> Vec<String> {
    headers
        .get("x-modelgate-tags")
        .and_then(|v| v.to_str().ok())
        .map(split_tags)
        .unwrap_or_default()
}

/// `"eu, gpu,"` → `["eu", "gpu"]`.
fn split_tags(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `x-modelgate-timeout-ms`: the client's deadline for the whole attempt loop.
pub(crate) fn client_deadline(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("x-modelgate-timeout-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
}

/// Waits for a stream's first content event (within `first_token` of `t0`),
/// buffering what comes before it. A failure, stall or empty stream before
/// that is an attempt failure the caller may retry; nothing has reached the
/// client yet. Returns the stream with the buffered events put back in front.
pub(crate) async fn commit_stream(
    mut s: ChatStream,
    first_token: Duration,
    t0: Instant,
) -> Result<(ChatStream, Duration), ApiError> {
    use futures_util::StreamExt;
    let deadline = t0 + first_token;
    let mut buffered = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, s.next()).await {
            Err(_) => {
                return Err(ApiError::new(
                    ErrorClass::UpstreamTimeout,
                    format!(
                        "no content within {} ms (first-token timeout)",
                        first_token.as_millis()
                    ),
                ));
            }
            Ok(None | Some(StreamItem::Done)) => {
                return Err(ApiError::new(
                    ErrorClass::UpstreamError,
                    "the upstream stream ended before any content",
                ));
            }
            Ok(Some(StreamItem::Failed(failure))) => {
                return Err(ApiError::from(CallError::Upstream {
                    failure,
                    retry_after: None,
                }));
            }
            Ok(Some(item)) => {
                let content = matches!(
                    item,
                    StreamItem::Chunk {
                        has_content: true,
                        ..
                    }
                );
                buffered.push(item);
                if content {
                    break;
                }
            }
        }
    }
    let ttft = t0.elapsed();
    let replay = futures_util::stream::iter(buffered).chain(s);
    Ok((ChatStream::new(replay), ttft))
}

/// Authenticate, read, decode, validate and resolve.
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    settle: &mut Settle,
) -> Result<(ChatRequest, Bytes, Arc<Alias>), ApiError> {
    // Errors before the body is read leave it unread: `closing()` tells the client.
    let caller = state
        .authenticate(headers)
        .await
        .map_err(ApiError::closing)?;
    settle.caller(&caller);
    let raw = read_body(body, state.config().server.max_body_bytes)
        .await
        .map_err(ApiError::closing)?;
    let req: ChatRequest = parse_json(&raw)?;
    settle.request(
        &req.model,
        req.is_stream(),
        req.user.as_deref(),
        req.metadata
            .as_ref()
            .and_then(|m| serde_json::to_string(m).ok()),
    );
    validate(&req)?;
    let alias = state.resolve(&req.model)?;
    settle.alias(&alias);
    state.authorize_model(&caller, &req.model)?;
    settle.input_estimate = input_estimate(&req);
    if state.should_capture(&caller) {
        settle.capture_request(&raw);
    }
    let (user, cap, n) = (req.user.as_deref(), req.output_cap(), req.n.unwrap_or(1));
    state.admit(settle, &caller, user, &alias, cap, n).await?;
    Ok((req, raw, alias))
}

fn validate(req: &ChatRequest) -> Result<(), ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::bad_param(
            "messages",
            "'messages' must contain at least one message.",
        ));
    }
    if req.n == Some(0) {
        return Err(ApiError::bad_param("n", "'n' must be at least 1."));
    }
    if req.stream_options.is_some() && !req.is_stream() {
        return Err(ApiError::bad_param(
            "stream_options",
            "'stream_options' is only allowed when 'stream' is true.",
        ));
    }
    Ok(())
}

/// About four characters per token over all message text.
fn input_estimate(req: &ChatRequest) -> u64 {
    let chars: usize = req
        .messages
        .iter()
        .map(|m| match &m.content {
            Some(MessageContent::Text(s)) => s.len(),
            Some(MessageContent::Parts(p)) => p
                .iter()
                .filter_map(|p| p.text.as_ref())
                .map(String::len)
                .sum(),
            None => 0,
        })
        .sum();
    modelgate_core::estimate_tokens(chars)
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn json_response(body: Bytes) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub(crate) fn sse_response(
    body: impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
) -> Response {
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// The client-facing SSE body. Owns the upstream stream and the settlement:
/// when hyper drops it (client gone), the upstream connection closes and the
/// record is written with what was seen.
pub(crate) struct SseBody {
    inner: ChatStream,
    settle: Settle,
    done: bool,
    /// Resolves when the drain deadline passes.
    shutdown: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl SseBody {
    /// The body of a chat-dialect stream (`data: <chunk>` ... `data: [DONE]`).
    pub(crate) fn new(inner: ChatStream, settle: Settle, state: &AppState) -> SseBody {
        SseBody {
            inner,
            settle,
            done: false,
            shutdown: Box::pin(state.inner.shutdown.clone().cancelled_owned()),
        }
    }
}

impl Stream for SseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if this.shutdown.as_mut().poll(cx).is_ready() {
            this.done = true;
            let failure = modelgate_codec::UpstreamFailure {
                class: modelgate_core::ErrorClass::ShuttingDown,
                status: None,
                message: "the gateway is shutting down and its drain deadline passed".into(),
                upstream_code: None,
            };
            this.settle.stream_failed(failure.class, &failure.message);
            return Poll::Ready(Some(Ok(error_event(failure))));
        }
        loop {
            let item = match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => item,
            };
            match item {
                Some(StreamItem::Chunk {
                    data,
                    has_content,
                    content_chars,
                    usage,
                    forward,
                }) => {
                    if !this.settle.chunk(has_content, content_chars, usage) {
                        this.done = true;
                        let failure = modelgate_codec::UpstreamFailure {
                            class: ErrorClass::BudgetExceeded,
                            status: None,
                            message:
                                "the stream was stopped: continuing would exceed a hard budget"
                                    .into(),
                            upstream_code: Some("budget_exceeded".into()),
                        };
                        this.settle.stream_failed(failure.class, &failure.message);
                        return Poll::Ready(Some(Ok(error_event(failure))));
                    }
                    this.settle.response_facts(&data);
                    if !forward {
                        continue;
                    }
                    this.settle.capture_event(&data);
                    let mut buf = Vec::with_capacity(data.len() + 8);
                    sse::encode_data(&mut buf, &data);
                    return Poll::Ready(Some(Ok(Bytes::from(buf))));
                }
                Some(StreamItem::Done) => {
                    this.done = true;
                    this.settle.completed();
                    return Poll::Ready(Some(Ok(Bytes::from_static(sse::DONE))));
                }
                Some(StreamItem::Failed(failure)) => {
                    this.done = true;
                    this.settle.stream_failed(failure.class, &failure.message);
                    tracing::warn!(class = failure.class.as_str(), message = %failure.message, "stream failed after it started");
                    return Poll::Ready(Some(Ok(error_event(failure))));
                }
                None => {
                    this.done = true;
                    let failure = modelgate_codec::UpstreamFailure {
                        class: modelgate_core::ErrorClass::UpstreamError,
                        status: None,
                        message: "upstream stream ended unexpectedly".into(),
                        upstream_code: None,
                    };
                    this.settle.stream_failed(failure.class, &failure.message);
                    return Poll::Ready(Some(Ok(error_event(failure))));
                }
            }
        }
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        if !self.done {
            self.settle.client_gone();
        }
    }
}

/// The terminal event for a stream that broke: an OpenAI error object (the
/// official SDKs raise `APIError` on it), and no `[DONE]` after it.
fn error_event(failure: modelgate_codec::UpstreamFailure) -> Bytes {
    let err = ApiError::from(CallError::Upstream {
        failure,
        retry_after: None,
    });
    let json = serde_json::to_vec(&err.envelope()).unwrap_or_default();
    let mut buf = Vec::with_capacity(json.len() + 8);
    sse::encode_data(&mut buf, &json);
    Bytes::from(buf)
}
