//! `/passthrough/{name}/{*path}`: provider-native endpoints the gateway does
//! not model (files, batches, fine-tuning, model-specific APIs), sent to the
//! deployment or zero-config provider `name` with its credentials.
//!
//! Still governed like any request: the caller authenticates with its gateway
//! key (which never reaches the provider), the key must be allowed the model
//! `passthrough/<name>`, rate limits and budgets apply, and one request-log row
//! is written with the upstream's status — and its usage and cost when a JSON
//! answer reports them (OpenAI, Responses or Anthropic shape).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use modelgate_config::{Alias, ProviderKind};
use modelgate_core::{ErrorClass, Usage};
use modelgate_providers::{CallContext, NativeRequest, Target};

use crate::chat::unix_now;
use crate::edge::{RequestId, read_body};
use crate::error::ApiError;
use crate::settle::Settle;
use crate::state::AppState;

/// Largest JSON answer read for usage (bigger ones pass through unmetered).
const USAGE_PEEK_MAX: usize = 1024 * 1024;

/// Handler for any method on `/passthrough/{name}/{*path}`.
pub async fn passthrough(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path((name, path)): Path<(String, String)>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut settle = state.settle(&rid.0, "passthrough", &headers);
    let r = async {
        let caller = state
            .authenticate(&headers)
            .await
            .map_err(ApiError::closing)?;
        settle.caller(&caller);
        if path.split('/').any(|s| s == ".." || s == ".") || path.contains('\\') {
            return Err(ApiError::bad_param(
                "path",
                "The passthrough path may not contain '.' or '..' segments.",
            ));
        }
        let model = format!("passthrough/{name}");
        settle.request(&model, false, None, None);
        let alias = target_alias(&state, &name)?;
        settle.alias(&alias);
        state.authorize_model(&caller, &model)?;
        let raw = read_body(body, state.config().server.max_body_bytes).await?;
        settle.input_estimate = modelgate_core::estimate_tokens(raw.len());
        state
            .admit(&mut settle, &caller, None, &alias, None, 1)
            .await?;
        let Some(d) = alias.deployments.first().cloned() else {
            return Err(ApiError::new(
                ErrorClass::NotFound,
                format!("`{name}` has no deployment to pass through to."),
            ));
        };
        settle.deployment(&d);
        let target = Target {
            upstream_model: d.upstream_model.clone(),
            deployment: d.clone(),
            span_id: fastrand::u64(1..),
        };
        let ctx = CallContext {
            request_id: rid.0.clone(),
            created: unix_now(),
            output_cap: None,
            trace: Some(settle.trace_parent()),
            anthropic_beta: None,
        };
        let resp = state
            .live()
            .upstreams
            .passthrough(
                &target,
                NativeRequest {
                    method,
                    path: &path,
                    query: uri.query(),
                    headers: &headers,
                    body: raw,
                },
                &ctx,
            )
            .await
            .map_err(ApiError::from)?;
        Ok((resp, d.provider))
    }
    .await;
    let (resp, provider) = match r {
        Ok(x) => x,
        Err(e) => {
            settle.fail(&e);
            return e.into_response();
        }
    };
    let status = resp.status().as_u16();
    settle.upstream_status(status);
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let mut out =
        Response::builder().status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_DISPOSITION,
        header::CACHE_CONTROL,
        header::RETRY_AFTER,
    ] {
        if let Some(v) = resp.headers().get(&name) {
            out = out.header(name, v.clone());
        }
    }
    let body = PassBody {
        inner: resp.bytes_stream(),
        settle,
        peek: json.then(Vec::new),
        provider,
        done: false,
    };
    match out.body(Body::from_stream(body)) {
        Ok(mut r) => {
            if let Ok(v) = HeaderValue::from_str(&name) {
                r.headers_mut().insert("x-modelgate-deployment", v);
            }
            r
        }
        Err(_) => {
            ApiError::new(ErrorClass::Internal, "could not build the response").into_response()
        }
    }
}

/// The alias for `name`: a configured deployment, or a zero-config provider
/// prefix (`openai`, `anthropic`, `gemini`, `azure`, presets).
fn target_alias(state: &AppState, name: &str) -> Result<Arc<Alias>, ApiError> {
    let config = state.config();
    if let Some(d) = config.deployments.iter().find(|d| d.name == name) {
        return Ok(Arc::new(Alias::single(
            format!("passthrough/{name}"),
            d.clone(),
        )));
    }
    if let Some(t) = config
        .prefixes
        .get(name)
        .filter(|t| t.provider != ProviderKind::Mock)
    {
        return Ok(Arc::new(Alias::single(
            format!("passthrough/{name}"),
            t.clone(),
        )));
    }
    Err(ApiError::new(
        ErrorClass::NotFound,
        format!("No deployment or provider named `{name}` to pass through to."),
    )
    .with_code("not_found"))
}

/// Usage in a JSON answer: OpenAI (`prompt_tokens`), the Responses API or
/// Anthropic (`input_tokens`).
fn usage_of(provider: ProviderKind, body: &[u8]) -> Option<Usage> {
    if let Some(u) = modelgate_codec::openai::peek_response(body).and_then(|p| p.usage) {
        return Some(u);
    }
    if provider == ProviderKind::Anthropic {
        #[derive(serde::Deserialize)]
        struct WithUsage {
            usage: modelgate_api::anthropic::Usage,
        }
        return serde_json::from_slice::<WithUsage>(body)
            .ok()
            .map(|w| modelgate_codec::anthropic::native_usage(&w.usage));
    }
    modelgate_codec::openai::responses_usage(body)
}

/// The upstream's body, passed through; settles when it ends or is dropped.
struct PassBody {
    inner: modelgate_providers::http::BodyStream,
    settle: Settle,
    /// A JSON answer's bytes (up to [`USAGE_PEEK_MAX`]), for its usage.
    peek: Option<Vec<u8>>,
    provider: ProviderKind,
    done: bool,
}

impl Stream for PassBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match this.inner.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(bytes))) => {
                if let Some(buf) = &mut this.peek {
                    if buf.len() + bytes.len() <= USAGE_PEEK_MAX {
                        buf.extend_from_slice(&bytes);
                    } else {
                        this.peek = None;
                    }
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(_))) => {
                this.done = true;
                this.settle.stream_failed(
                    ErrorClass::UpstreamError,
                    "the upstream connection broke while passing its answer through",
                );
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                this.done = true;
                if let Some(buf) = this.peek.take()
                    && let Some(u) = usage_of(this.provider, &buf)
                {
                    this.settle.usage(u);
                }
                this.settle.completed();
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for PassBody {
    fn drop(&mut self) {
        if !self.done {
            self.settle.client_gone();
        }
    }
}
