//! `POST /v1/responses`: the OpenAI Responses API at the front door.
//!
//! Same phases as [`crate::chat`]. An OpenAI deployment gets the client's body
//! as written (only `model` replaced) and its reply, or each stream event,
//! passes through unchanged and metered. Any other deployment gets the request
//! bridged to the chat dialect ([`modelgate_codec::responses::to_chat`]; what
//! needs OpenAI's server-side state or built-in tools is refused by name), and
//! its reply bridged back into a `response` object or Responses events.

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
use modelgate_api::openai::{ChatChunk, ChatCompletion};
use modelgate_api::responses::ResponsesRequest;
use modelgate_codec::responses::{
    Echo, EventEncoder, ToChatOptions, encode_event, from_chat, to_chat,
};
use modelgate_config::{Alias, ProviderKind};
use modelgate_core::ErrorClass;
use modelgate_providers::{CallContext, ChatReply, ChatStream, StreamItem, Target};
use serde::Deserialize;
use tokio::time::Instant;

use crate::chat::header_tags;
use crate::chat::{client_deadline, commit_stream, sse_response, unix_now};
use crate::dispatch::{self, Plan};
use crate::edge::{RequestId, parse_json, read_body};
use crate::error::ApiError;
use crate::messages::event_type;
use crate::settle::Settle;
use crate::state::AppState;

/// The fields of a Responses request the gateway reads; the body itself is
/// forwarded as written.
#[derive(Debug, Deserialize)]
struct Head {
    model: String,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_output_tokens: Option<u32>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    input: Option<serde_json::Value>,
    #[serde(default)]
    instructions: Option<serde_json::Value>,
}

/// Handler for `POST /v1/responses`.
pub async fn responses(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut settle = state.settle(&rid.0, "responses", &headers);
    let (head, raw, alias) = match admit(&state, &headers, body, &mut settle).await {
        Ok(x) => x,
        Err(e) => {
            settle.fail(&e);
            return e.into_response();
        }
    };
    let ctx = CallContext {
        request_id: rid.0.clone(),
        created: unix_now(),
        output_cap: None,
        trace: Some(settle.trace_parent()),
        anthropic_beta: None,
    };
    let tags = header_tags(&headers);
    let plan = Plan {
        alias,
        tags: &tags,
        input_tokens: settle.input_estimate,
        client_deadline: client_deadline(&headers),
    };
    let live = state.live();
    let stream = head.stream == Some(true);
    // The typed request, for bridged attempts (a passthrough never needs it,
    // so a field this parser does not know cannot break one).
    let typed: Result<ResponsesRequest, ApiError> = parse_json(&raw);
    let call = |target: Target| {
        let (raw, ctx, live, typed) = (&raw, &ctx, &live, &typed);
        async move {
            let d = &target.deployment;
            let t0 = Instant::now();
            if d.provider == ProviderKind::OpenAi {
                let reply = live
                    .upstreams
                    .openai_responses(&target, raw, stream, ctx)
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
            let req = typed.as_ref().map_err(Clone::clone)?;
            let opts = ToChatOptions {
                drop_unsupported: d.drop_unsupported_params,
                max_completion_tokens: d.takes_max_completion_tokens(),
            };
            let mut chat = to_chat(req, &opts).map_err(ApiError::from)?;
            if !d.stream_usage {
                // The server rejects `stream_options` (usage comes in its last chunk).
                chat.stream_options = None;
            }
            let body = Bytes::from(
                serde_json::to_vec(&chat)
                    .map_err(|e| ApiError::new(ErrorClass::Internal, e.to_string()))?,
            );
            let reply = live
                .upstreams
                .chat(&target, &chat, &body, ctx)
                .await
                .map_err(|e| responses_param(ApiError::from(e)))?;
            match reply {
                ChatReply::Complete { .. } => Ok((Reply::Bridged(reply), t0.elapsed())),
                ChatReply::Stream(s) => {
                    let (s, ttft) = commit_stream(s, d.timeouts.first_token, t0).await?;
                    Ok((Reply::Bridged(ChatReply::Stream(s)), ttft))
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
    let echo = || typed.as_ref().map(Echo::from_request).unwrap_or_default();
    let mut resp = match served.value {
        Reply::Bridged(ChatReply::Complete { body, usage }) => {
            let completion: ChatCompletion = match serde_json::from_slice(&body) {
                Ok(c) => c,
                Err(_) => {
                    let e = ApiError::new(
                        ErrorClass::UpstreamError,
                        "The upstream returned a chat completion the gateway could not read.",
                    );
                    settle.fail(&e);
                    return e.into_response();
                }
            };
            settle.ok(200, usage);
            settle.response_facts(&body);
            let out = serde_json::to_vec(&from_chat(&completion, &echo())).unwrap_or_default();
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
        Reply::Bridged(ChatReply::Stream(stream)) => {
            settle.ok(200, None);
            let encoder = EventEncoder::new(&rid.0, &head.model, unix_now(), echo());
            sse_response(ResponsesSse {
                inner: stream,
                settle,
                encoder: Some(encoder),
                done: false,
                sequence: 0,
                shutdown: Box::pin(state.inner.shutdown.clone().cancelled_owned()),
            })
        }
        Reply::Native(ChatReply::Complete { body, usage }) => {
            settle.ok(200, usage);
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
            sse_response(ResponsesSse {
                inner: stream,
                settle,
                encoder: None,
                done: false,
                sequence: 0,
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

/// Names a chat-dialect field a provider refused by the Responses field the
/// client actually sent (`reasoning_effort` → `reasoning.effort`, ...).
fn responses_param(mut e: ApiError) -> ApiError {
    let Some(p) = e.param.as_deref() else {
        return e;
    };
    let mapped = match p {
        "reasoning_effort" => "reasoning.effort",
        "max_tokens" | "max_completion_tokens" => "max_output_tokens",
        "response_format" => "text.format",
        "tool_choice" => "tool_choice",
        p if p.starts_with("messages") => "input",
        p if p.starts_with("tools") => "tools",
        _ => return e,
    };
    if mapped != p {
        e.message = e.message.replace(&format!("'{p}'"), &format!("'{mapped}'"));
        e.message = e.message.replace(p, mapped);
        e.param = Some(mapped.to_owned());
    }
    e
}

/// What an attempt produced.
enum Reply {
    /// An OpenAI Responses reply, passed through.
    Native(ChatReply),
    /// A chat reply, to bridge back.
    Bridged(ChatReply),
}

/// Authenticate, read, decode, resolve and admit.
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    settle: &mut Settle,
) -> Result<(Head, Bytes, Arc<Alias>), ApiError> {
    let caller = state
        .authenticate(headers)
        .await
        .map_err(ApiError::closing)?;
    settle.caller(&caller);
    let raw = read_body(body, state.config().server.max_body_bytes)
        .await
        .map_err(ApiError::closing)?;
    let head: Head = parse_json(&raw)?;
    settle.request(
        &head.model,
        head.stream == Some(true),
        head.user.as_deref(),
        None,
    );
    if head.input.is_none() {
        return Err(ApiError::bad_param("input", "'input' is required."));
    }
    let alias = state.resolve(&head.model)?;
    settle.alias(&alias);
    state.authorize_model(&caller, &head.model)?;
    // Roughly four characters per token over the input as sent.
    let chars = head.input.as_ref().map_or(0, |i| i.to_string().len())
        + head
            .instructions
            .as_ref()
            .map_or(0, |i| i.to_string().len());
    settle.input_estimate = modelgate_core::estimate_tokens(chars);
    if state.should_capture(&caller) {
        settle.capture_request(&raw);
    }
    state
        .admit(
            settle,
            &caller,
            head.user.as_deref(),
            &alias,
            head.max_output_tokens,
            1,
        )
        .await?;
    Ok((head, raw, alias))
}

/// The client-facing Responses event stream: passed through, or bridged from
/// a chat stream.
struct ResponsesSse {
    inner: ChatStream,
    settle: Settle,
    /// Bridging chat chunks; `None`: OpenAI's events passed through.
    encoder: Option<EventEncoder>,
    done: bool,
    /// Last `sequence_number` seen, for the gateway's own terminal `error` event.
    sequence: u64,
    shutdown: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl ResponsesSse {
    /// A terminal `error` event (the Responses stream's error shape), or for
    /// a bridged stream the encoder's `response.failed`.
    fn fail(&mut self, class: ErrorClass, message: &str, code: Option<&str>) -> Bytes {
        self.done = true;
        self.settle.stream_failed(class, message);
        if let Some(encoder) = self.encoder.as_mut() {
            let mut buf = Vec::new();
            for ev in encoder.fail(code.unwrap_or(class.as_str()), message) {
                encode_event(&mut buf, &ev);
            }
            return Bytes::from(buf);
        }
        let ev = serde_json::json!({
            "type": "error",
            "code": code.unwrap_or(class.as_str()),
            "message": message,
            "param": null,
            "sequence_number": self.sequence + 1,
        });
        let mut buf = b"event: error\n".to_vec();
        modelgate_codec::sse::encode_data(&mut buf, ev.to_string().as_bytes());
        Bytes::from(buf)
    }
}

#[derive(Deserialize)]
struct Sequenced {
    #[serde(default)]
    sequence_number: Option<u64>,
}

impl Stream for ResponsesSse {
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
                            Some("budget_exceeded"),
                        );
                        return Poll::Ready(Some(Ok(b)));
                    }
                    if let Some(encoder) = this.encoder.as_mut() {
                        this.settle.response_facts(&data);
                        let Ok(chunk) = serde_json::from_slice::<ChatChunk>(&data) else {
                            continue;
                        };
                        let mut buf = Vec::new();
                        for ev in encoder.on_chunk(&chunk) {
                            encode_event(&mut buf, &ev);
                        }
                        this.settle.capture_event(&buf);
                        if buf.is_empty() {
                            continue;
                        }
                        return Poll::Ready(Some(Ok(Bytes::from(buf))));
                    }
                    if let Ok(Sequenced {
                        sequence_number: Some(n),
                    }) = serde_json::from_slice(&data)
                    {
                        this.sequence = n;
                    }
                    this.settle.capture_event(&data);
                    let mut buf = Vec::with_capacity(data.len() + 48);
                    buf.extend_from_slice(b"event: ");
                    buf.extend_from_slice(event_type(&data).as_bytes());
                    buf.push(b'\n');
                    modelgate_codec::sse::encode_data(&mut buf, &data);
                    return Poll::Ready(Some(Ok(Bytes::from(buf))));
                }
                Some(StreamItem::Done) => {
                    this.done = true;
                    this.settle.completed();
                    return match this.encoder.as_mut() {
                        // OpenAI's terminal event has already gone through.
                        None => Poll::Ready(None),
                        Some(encoder) => {
                            let mut buf = Vec::new();
                            for ev in encoder.finish() {
                                encode_event(&mut buf, &ev);
                            }
                            this.settle.capture_event(&buf);
                            Poll::Ready(Some(Ok(Bytes::from(buf))))
                        }
                    };
                }
                Some(StreamItem::Failed(failure)) => {
                    tracing::warn!(class = failure.class.as_str(), message = %failure.message, "stream failed after it started");
                    let code = failure.upstream_code.clone();
                    let b = this.fail(failure.class, &failure.message, code.as_deref());
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

impl Drop for ResponsesSse {
    fn drop(&mut self) {
        if !self.done {
            self.settle.client_gone();
        }
    }
}
