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
use modelgate_providers::{CallContext, CallError, ChatReply, ChatStream, StreamItem};
use std::future::Future;

use crate::edge::{RequestId, parse_json, read_body};
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
    let mut settle = state.settle(&rid.0, "chat");
    let (req, raw, target) = match admit(&state, &headers, body, &mut settle).await {
        Ok(x) => x,
        Err(e) => {
            settle.fail(&e);
            return e.into_response();
        }
    };
    let ctx = CallContext {
        request_id: rid.0.clone(),
        created: unix_now(),
    };
    let call = async {
        inner
            .upstreams
            .chat(&target, &req, &raw, &ctx)
            .await
            .map_err(|e| {
                if let CallError::Upstream { failure, .. } = &e {
                    tracing::warn!(request_id = %rid.0, class = failure.class.as_str(), message = %failure.message, "upstream call failed");
                }
                ApiError::from(e)
            })
    };
    match state.unless_shutdown(call).await {
        Err(e) => {
            settle.fail(&e);
            e.into_response()
        }
        Ok(ChatReply::Complete { body, usage }) => {
            settle.ok(200, usage);
            json_response(body)
        }
        Ok(ChatReply::Stream(stream)) => {
            settle.ok(200, None);
            sse_response(SseBody {
                inner: stream,
                settle,
                done: false,
                shutdown: Box::pin(inner.shutdown.clone().cancelled_owned()),
            })
        }
    }
}

/// Authenticate, read, decode, validate and resolve.
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    settle: &mut Settle,
) -> Result<(ChatRequest, Bytes, modelgate_providers::Target), ApiError> {
    let inner = &state.inner;
    // Errors before the body is read leave it unread: `closing()` tells the client.
    let caller = state.authenticate(headers).map_err(ApiError::closing)?;
    settle.caller(caller.label());
    let raw = read_body(body, inner.config.server.max_body_bytes)
        .await
        .map_err(ApiError::closing)?;
    let req: ChatRequest = parse_json(&raw)?;
    settle.request(
        &req.model,
        req.is_stream(),
        req.user.as_deref(),
        req.metadata
            .as_ref()
            .map(|m| serde_json::Value::Object(m.clone()).to_string()),
    );
    validate(&req)?;
    let target = state.resolve(&req.model)?;
    settle.target(&target);
    settle.input_estimate = input_estimate(&req);
    Ok((req, raw, target))
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

fn sse_response(body: SseBody) -> Response {
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
struct SseBody {
    inner: ChatStream,
    settle: Settle,
    done: bool,
    /// Resolves when the drain deadline passes.
    shutdown: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
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
                    this.settle.chunk(has_content, content_chars, usage);
                    if !forward {
                        continue;
                    }
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
