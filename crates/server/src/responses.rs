//! `POST /v1/responses`: the OpenAI Responses API at the front door.
//!
//! Same phases as [`crate::chat`]. An OpenAI deployment gets the client's body
//! as written (only `model` replaced) and its reply, or each stream event,
//! passes through unchanged and metered.

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
use modelgate_config::{Alias, ProviderKind};
use modelgate_core::ErrorClass;
use modelgate_providers::{CallContext, ChatReply, ChatStream, StreamItem, Target};
use serde::Deserialize;
use tokio::time::Instant;

use crate::chat::{client_deadline, commit_stream, decision_headers, sse_response, unix_now};
use crate::dispatch::{self, Plan};
use crate::edge::{RequestId, parse_json, read_body};
use crate::error::ApiError;
use crate::messages::{event_type, header_tags};
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
    let call = |target: Target| {
        let (raw, ctx, live) = (&raw, &ctx, &live);
        async move {
            let d = &target.deployment;
            if d.provider != ProviderKind::OpenAi {
                return Err(ApiError::bad_param(
                    "model",
                    format!(
                        "The Responses API is passed through to OpenAI deployments only; deployment `{}` is {}. Use /v1/chat/completions for this model.",
                        d.name,
                        d.provider.as_str()
                    ),
                )
                .with_code("unsupported_model"));
            }
            let t0 = Instant::now();
            let reply = live
                .upstreams
                .openai_responses(&target, raw, stream, ctx)
                .await
                .map_err(ApiError::from)?;
            match reply {
                ChatReply::Complete { .. } => Ok((reply, t0.elapsed())),
                ChatReply::Stream(s) => {
                    let (s, ttft) = commit_stream(s, d.timeouts.first_token, t0).await?;
                    Ok((ChatReply::Stream(s), ttft))
                }
            }
        }
    };
    let outcome = state
        .unless_shutdown(async { Ok(dispatch::run(&state, plan, call).await) })
        .await;
    let served = match outcome {
        Err(e) => {
            settle.fail(&e);
            return e.into_response();
        }
        Ok(Err(failed)) => {
            settle.attempts(&failed.attempts);
            if let Some(d) = &failed.last_deployment {
                settle.deployment(d);
            }
            settle.fail(&failed.error);
            let mut resp = failed.error.into_response();
            decision_headers(&mut resp, None, failed.attempts.len());
            return resp;
        }
        Ok(Ok(served)) => served,
    };
    settle.deployment(&served.deployment);
    settle.attempts(&served.attempts);
    let rate_info = settle.rate_info();
    let mut resp = match served.value {
        ChatReply::Complete { body, usage } => {
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
        ChatReply::Stream(stream) => {
            settle.ok(200, None);
            sse_response(ResponsesSse {
                inner: stream,
                settle,
                done: false,
                sequence: 0,
                shutdown: Box::pin(state.inner.shutdown.clone().cancelled_owned()),
            })
        }
    };
    decision_headers(
        &mut resp,
        Some(&served.deployment.name),
        served.attempts.len(),
    );
    if let Some(info) = rate_info {
        crate::error::rate_headers(resp.headers_mut(), &info);
    }
    resp
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

/// The client-facing Responses event stream, passed through.
struct ResponsesSse {
    inner: ChatStream,
    settle: Settle,
    done: bool,
    /// Last `sequence_number` seen, for the gateway's own terminal `error` event.
    sequence: u64,
    shutdown: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl ResponsesSse {
    /// A terminal `error` event (the Responses stream's error shape).
    fn fail(&mut self, class: ErrorClass, message: &str, code: Option<&str>) -> Bytes {
        self.done = true;
        self.settle.stream_failed(class, message);
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
                Poll::Ready(Some(Ok(Bytes::from(buf))))
            }
            Some(StreamItem::Done) => {
                this.done = true;
                this.settle.completed();
                Poll::Ready(None)
            }
            Some(StreamItem::Failed(failure)) => {
                tracing::warn!(class = failure.class.as_str(), message = %failure.message, "stream failed after it started");
                let code = failure.upstream_code.clone();
                let b = this.fail(failure.class, &failure.message, code.as_deref());
                Poll::Ready(Some(Ok(b)))
            }
            None => {
                let b = this.fail(
                    ErrorClass::UpstreamError,
                    "upstream stream ended unexpectedly",
                    None,
                );
                Poll::Ready(Some(Ok(b)))
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
