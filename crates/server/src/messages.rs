//! `POST /v1/messages`: the Anthropic Messages API at the front door.
//!
//! Same phases as [`crate::chat`] (authenticate → read → decode → resolve →
//! admit → attempt loop → respond → settle), in the Anthropic dialect: the
//! virtual key may come as `x-api-key`, errors use Anthropic's envelope, and
//! streams are Messages events. A deployment that speaks Messages (Anthropic,
//! Claude on Vertex AI) gets the client's body as written (only `model`
//! replaced, or for Vertex moved to the URL) and its reply passes through
//! unchanged (thinking blocks and signatures, `cache_control`, server tools
//! survive).
//! Any other deployment gets the request translated with
//! [`modelgate_codec::messages::to_chat`] (every provider path takes the chat
//! dialect), and its reply is translated back.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;
use modelgate_api::anthropic::{Content, ContentBlock, MessagesRequest, System};
use modelgate_api::openai::{ChatChunk, ChatCompletion};
use modelgate_codec::messages::{EventEncoder, ToChatOptions, encode_event, from_chat, to_chat};
use modelgate_config::Alias;
use modelgate_core::ErrorClass;
use modelgate_providers::{CallContext, ChatReply, ChatStream, StreamItem, Target};
use tokio::time::Instant;

use crate::chat::{client_deadline, commit_stream, header_tags, sse_response, unix_now};
use crate::dispatch::{self, Plan};
use crate::edge::{RequestId, parse_json, read_body};
use crate::error::ApiError;
use crate::settle::Settle;
use crate::state::AppState;

/// Handler for `POST /v1/messages`.
pub async fn messages(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut settle = state.settle(&rid.0, "messages", &headers);
    let (req, raw, alias) = match admit(&state, &headers, body, &mut settle).await {
        Ok(x) => x,
        Err(e) => {
            settle.fail(&e);
            return e.into_anthropic_response();
        }
    };
    let ctx = CallContext {
        request_id: rid.0.clone(),
        created: unix_now(),
        output_cap: None,
        trace: Some(settle.trace_parent()),
        anthropic_beta: headers
            .get("anthropic-beta")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let tags = header_tags(&headers);
    let plan = Plan {
        alias,
        tags: &tags,
        input_tokens: settle.input_estimate,
        client_deadline: client_deadline(&headers),
    };
    let live = state.live();
    let stream = req.stream == Some(true);
    let call = |target: Target| {
        let (req, raw, ctx, live) = (&req, &raw, &ctx, &live);
        async move {
            let d = &target.deployment;
            if d.speaks_messages(&target.upstream_model) {
                let t0 = Instant::now();
                let reply = live
                    .upstreams
                    .anthropic_native(&target, raw, stream, ctx)
                    .await
                    .map_err(ApiError::from)?;
                return match reply {
                    ChatReply::Complete { .. } => Ok((Reply::Native(reply), t0.elapsed())),
                    ChatReply::Stream(s) => {
                        let (s, ttft) = commit_stream(s, d.timeouts.first_token, t0).await?;
                        Ok((Reply::Native(ChatReply::Stream(s)), ttft))
                    }
                };
            }
            let opts = ToChatOptions {
                drop_unsupported: d.drop_unsupported_params,
                max_completion_tokens: d.takes_max_completion_tokens(),
            };
            let mut chat = to_chat(req, &opts).map_err(ApiError::from)?;
            if !d.stream_usage {
                // The server rejects `stream_options` (usage comes in its last chunk).
                chat.stream_options = None;
            }
            let raw = Bytes::from(
                serde_json::to_vec(&chat)
                    .map_err(|e| ApiError::new(ErrorClass::Internal, e.to_string()))?,
            );
            let t0 = Instant::now();
            let reply = live
                .upstreams
                .chat(&target, &chat, &raw, ctx)
                .await
                .map_err(ApiError::from)?;
            match reply {
                ChatReply::Complete { .. } => Ok((Reply::Translated(reply), t0.elapsed())),
                ChatReply::Stream(s) => {
                    let (s, ttft) = commit_stream(s, d.timeouts.first_token, t0).await?;
                    Ok((Reply::Translated(ChatReply::Stream(s)), ttft))
                }
            }
        }
    };
    let served = match dispatch::run_and_settle(
        &state,
        plan,
        call,
        &mut settle,
        ApiError::into_anthropic_response,
    )
    .await
    {
        Ok(served) => served,
        Err(resp) => return resp,
    };
    let rate_info = settle.rate_info();
    let mut resp = match served.value {
        Reply::Native(ChatReply::Complete { body, usage }) => {
            settle.ok(200, usage);
            settle.response_facts(&body);
            settle.capture_response(&body);
            let mut resp = (StatusCode::OK, body).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            crate::chat::cost_header(&mut resp, &settle);
            crate::chat::server_timing(&mut resp, &settle);
            resp
        }
        Reply::Native(ChatReply::Stream(stream)) => {
            settle.ok(200, None);
            sse_response(MessagesSse {
                inner: stream,
                settle,
                encoder: None,
                done: false,
                shutdown: Box::pin(state.inner.shutdown.clone().cancelled_owned()),
            })
        }
        Reply::Translated(ChatReply::Complete { body, usage }) => {
            settle.response_facts(&body);
            let completion: ChatCompletion = match serde_json::from_slice(&body) {
                Ok(c) => c,
                Err(_) => {
                    let e = ApiError::new(
                        ErrorClass::UpstreamError,
                        "The upstream returned a chat completion the gateway could not read.",
                    );
                    settle.fail(&e);
                    return e.into_anthropic_response();
                }
            };
            settle.ok(200, usage);
            let out = serde_json::to_vec(&from_chat(&completion)).unwrap_or_default();
            settle.capture_response(&out);
            let mut resp = (StatusCode::OK, out).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            crate::chat::cost_header(&mut resp, &settle);
            crate::chat::server_timing(&mut resp, &settle);
            resp
        }
        Reply::Translated(ChatReply::Stream(stream)) => {
            settle.ok(200, None);
            let encoder = EventEncoder::new(&rid.0, &req.model, settle.input_estimate);
            sse_response(MessagesSse {
                inner: stream,
                settle,
                encoder: Some(encoder),
                done: false,
                shutdown: Box::pin(state.inner.shutdown.clone().cancelled_owned()),
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

/// What an attempt produced.
enum Reply {
    /// An Anthropic reply, passed through.
    Native(ChatReply),
    /// A chat reply, to translate.
    Translated(ChatReply),
}

/// Authenticate, read, decode, validate, resolve and admit.
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    settle: &mut Settle,
) -> Result<(MessagesRequest, Bytes, Arc<Alias>), ApiError> {
    let caller = state
        .authenticate(headers)
        .await
        .map_err(ApiError::closing)?;
    settle.caller(&caller);
    let raw = read_body(body, state.config().server.max_body_bytes)
        .await
        .map_err(ApiError::closing)?;
    let req: MessagesRequest = parse_json(&raw)?;
    let user = req.metadata.as_ref().and_then(|m| m.user_id.clone());
    settle.request(&req.model, req.stream == Some(true), user.as_deref(), None);
    if req.messages.is_empty() {
        return Err(ApiError::bad_param(
            "messages",
            "'messages' must contain at least one message.",
        ));
    }
    if req.max_tokens == 0 {
        return Err(ApiError::bad_param(
            "max_tokens",
            "'max_tokens' must be at least 1.",
        ));
    }
    let alias = state.resolve(&req.model)?;
    settle.alias(&alias);
    state.authorize_model(&caller, &req.model)?;
    settle.input_estimate = input_estimate(&req);
    if state.should_capture(&caller) {
        settle.capture_request(&raw);
    }
    state
        .admit(
            settle,
            &caller,
            user.as_deref(),
            &alias,
            Some(req.max_tokens),
            1,
        )
        .await?;
    Ok((req, raw, alias))
}

/// About four characters per token over all text in the request.
fn input_estimate(req: &MessagesRequest) -> u64 {
    let blocks_len = |blocks: &[ContentBlock]| -> usize {
        blocks
            .iter()
            .map(|b| match b {
                ContentBlock::Text { text, .. } => text.len(),
                ContentBlock::ToolUse { input, .. } => input.to_string().len(),
                ContentBlock::ToolResult {
                    content: Some(Content::Text(t)),
                    ..
                } => t.len(),
                _ => 0,
            })
            .sum()
    };
    let system = match &req.system {
        Some(System::Text(s)) => s.len(),
        Some(System::Blocks(b)) => blocks_len(b),
        None => 0,
    };
    let messages: usize = req
        .messages
        .iter()
        .map(|m| match &m.content {
            Content::Text(s) => s.len(),
            Content::Blocks(b) => blocks_len(b),
        })
        .sum();
    modelgate_core::estimate_tokens(system + messages)
}

/// The client-facing Messages event stream over a chat stream.
struct MessagesSse {
    inner: ChatStream,
    settle: Settle,
    /// Translating chat chunks; `None`: Anthropic events passed through.
    encoder: Option<EventEncoder>,
    done: bool,
    shutdown: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl MessagesSse {
    /// Ends the stream with an Anthropic `error` event of type `kind`, or
    /// the type of `class` when `None`.
    fn fail(&mut self, class: ErrorClass, message: &str, kind: Option<&str>) -> Bytes {
        self.done = true;
        self.settle.stream_failed(class, message);
        let kind = match kind {
            Some(k) => k.to_owned(),
            None => ApiError::new(class, message).anthropic_type().to_owned(),
        };
        let ev = modelgate_api::anthropic::StreamEvent::Error {
            error: modelgate_api::anthropic::ErrorBody {
                kind,
                message: message.to_owned(),
            },
        };
        let mut buf = Vec::new();
        encode_event(&mut buf, &ev);
        Bytes::from(buf)
    }
}

impl Stream for MessagesSse {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if this.shutdown.as_mut().poll(cx).is_ready() {
            let b = this.fail(
                ErrorClass::ShuttingDown,
                "the gateway is shutting down and its drain deadline passed",
                None,
            );
            return Poll::Ready(Some(Ok(b)));
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
                    ..
                }) => {
                    if !this.settle.chunk(has_content, content_chars, usage) {
                        let b = this.fail(
                            ErrorClass::BudgetExceeded,
                            "the stream was stopped: continuing would exceed a hard budget",
                            None,
                        );
                        return Poll::Ready(Some(Ok(b)));
                    }
                    this.settle.response_facts(&data);
                    let Some(encoder) = this.encoder.as_mut() else {
                        // Passed through: framed under its own `type`.
                        let mut buf = Vec::with_capacity(data.len() + 40);
                        buf.extend_from_slice(b"event: ");
                        buf.extend_from_slice(event_type(&data).as_bytes());
                        buf.push(b'\n');
                        modelgate_codec::sse::encode_data(&mut buf, &data);
                        this.settle.capture_event(&data);
                        return Poll::Ready(Some(Ok(Bytes::from(buf))));
                    };
                    let Ok(chunk) = serde_json::from_slice::<ChatChunk>(&data) else {
                        continue;
                    };
                    let events = encoder.on_chunk(&chunk);
                    if events.is_empty() {
                        continue;
                    }
                    let mut buf = Vec::new();
                    for ev in &events {
                        encode_event(&mut buf, ev);
                    }
                    this.settle.capture_event(&buf);
                    return Poll::Ready(Some(Ok(Bytes::from(buf))));
                }
                Some(StreamItem::Done) => {
                    this.done = true;
                    this.settle.completed();
                    let Some(encoder) = this.encoder.as_mut() else {
                        // `message_stop` has already gone through.
                        return Poll::Ready(None);
                    };
                    let mut buf = Vec::new();
                    for ev in &encoder.finish() {
                        encode_event(&mut buf, ev);
                    }
                    this.settle.capture_event(&buf);
                    return Poll::Ready(Some(Ok(Bytes::from(buf))));
                }
                Some(StreamItem::Failed(failure)) => {
                    tracing::warn!(class = failure.class.as_str(), message = %failure.message, "stream failed after it started");
                    // Passed through, an Anthropic upstream's own `error`
                    // event keeps its type (`overloaded_error`, ...), as the
                    // client would have seen it without the gateway.
                    let kind = failure
                        .upstream_code
                        .as_deref()
                        .filter(|_| this.encoder.is_none())
                        .filter(|k| anthropic_error_type(k));
                    let b = this.fail(failure.class, &failure.message, kind);
                    return Poll::Ready(Some(Ok(b)));
                }
                None => {
                    let b = this.fail(
                        ErrorClass::UpstreamError,
                        "upstream stream ended unexpectedly",
                        None,
                    );
                    return Poll::Ready(Some(Ok(b)));
                }
            }
        }
    }
}

/// Whether `kind` looks like an Anthropic error type (`overloaded_error`,
/// `request_too_large`, ...): lower-case words joined by `_`.
fn anthropic_error_type(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= 64
        && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// The `type` of an event's JSON (Anthropic and the Responses API name each
/// event after it).
pub(crate) fn event_type(data: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Typed<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<Typed<'_>>(data)
        .map(|t| t.kind.into_owned())
        .ok()
        .filter(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        })
        .unwrap_or_else(|| "message".to_owned())
}

impl Drop for MessagesSse {
    fn drop(&mut self) {
        if !self.done {
            self.settle.client_gone();
        }
    }
}

/// `POST /v1/messages/count_tokens`: an Anthropic (or Claude on Vertex) deployment counts exactly
/// (the request is passed through); for any other provider the gateway
/// estimates (about four characters per token) and says so with
/// `x-modelgate-estimated: true`. Counting is not billed or logged.
pub async fn count_tokens(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r: Result<(Bytes, bool), ApiError> = async {
        let caller = state
            .authenticate(&headers)
            .await
            .map_err(ApiError::closing)?;
        let raw = read_body(body, state.config().server.max_body_bytes)
            .await
            .map_err(ApiError::closing)?;
        let req: CountRequest = parse_json(&raw)?;
        let alias = state.resolve(&req.model)?;
        state.authorize_model(&caller, &req.model)?;
        let live = state.live();
        let order = live.router.order(
            &alias,
            &header_tags(&headers),
            0,
            tokio::time::Instant::now(),
        );
        let anthropic = order
            .iter()
            .find(|c| c.deployment.speaks_messages(&c.deployment.upstream_model));
        if let Some(c) = anthropic {
            let target = Target {
                deployment: c.deployment.clone(),
                upstream_model: c.deployment.upstream_model.clone(),
                span_id: fastrand::u64(1..),
            };
            let ctx = CallContext {
                request_id: rid.0.clone(),
                created: unix_now(),
                output_cap: None,
                trace: None,
                anthropic_beta: headers
                    .get("anthropic-beta")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            };
            let out = live
                .upstreams
                .anthropic_count_tokens(&target, &raw, &ctx)
                .await
                .map_err(ApiError::from)?;
            return Ok((out, false));
        }
        let as_messages = MessagesRequest {
            model: req.model.clone(),
            max_tokens: 1,
            messages: req.messages,
            system: req.system,
            ..MessagesRequest::default()
        };
        let mut n = input_estimate(&as_messages);
        if let Some(tools) = &req.tools {
            n += modelgate_core::estimate_tokens(tools.to_string().len());
        }
        Ok((
            Bytes::from(
                serde_json::to_vec(&serde_json::json!({ "input_tokens": n })).unwrap_or_default(),
            ),
            true,
        ))
    }
    .await;
    match r {
        Err(e) => e.into_anthropic_response(),
        Ok((body, estimated)) => {
            let mut resp = (StatusCode::OK, body).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if estimated {
                h.insert("x-modelgate-estimated", HeaderValue::from_static("true"));
            }
            resp
        }
    }
}

/// The fields of a count_tokens request the gateway reads (the rest passes
/// through to Anthropic as written).
#[derive(serde::Deserialize)]
struct CountRequest {
    model: String,
    messages: Vec<modelgate_api::anthropic::Message>,
    #[serde(default)]
    system: Option<System>,
    #[serde(default)]
    tools: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_anthropic_shaped_error_types_pass_through() {
        for kind in ["overloaded_error", "api_error", "request_too_large"] {
            assert!(anthropic_error_type(kind), "{kind}");
        }
        for kind in ["", "ThrottlingException", "server error", "a\"b"] {
            assert!(!anthropic_error_type(kind), "{kind}");
        }
    }
}
