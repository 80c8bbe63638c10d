//! `POST /v1/completions`: the legacy text completions API, passed through to
//! OpenAI-dialect deployments (OpenAI, Azure, OpenAI-compatible servers such as
//! vLLM). The body goes as written (only `model` replaced); streams are framed
//! like chat streams (`data: <chunk>` ... `data: [DONE]`).

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use modelgate_config::{Alias, ProviderKind};
use modelgate_providers::{CallContext, ChatReply, Target};
use serde::Deserialize;
use tokio::time::Instant;

use crate::chat::header_tags;
use crate::chat::{
    SseBody, client_deadline, commit_stream, cost_header, json_response, server_timing,
    sse_response, unix_now,
};
use crate::dispatch::{self, Plan};
use crate::edge::{RequestId, parse_json, read_body};
use crate::error::ApiError;
use crate::settle::Settle;
use crate::state::AppState;

/// The fields the gateway reads; the rest passes through.
#[derive(Debug, Deserialize)]
struct Head {
    model: String,
    prompt: Option<serde_json::Value>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    user: Option<String>,
}

/// Handler for `POST /v1/completions`.
pub async fn completions(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut settle = state.settle(&rid.0, "completions", &headers);
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
        // With a budget, a request without `max_tokens` gets the cap the
        // reservation assumed (servers like vLLM default to the whole context).
        output_cap: settle.budget_cap().filter(|_| head.max_tokens.is_none()),
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
        let (raw, ctx, live, opts) = (&raw, &ctx, &live, head.stream_options.as_ref());
        async move {
            let d = &target.deployment;
            if !matches!(
                d.provider,
                ProviderKind::OpenAi | ProviderKind::OpenAiCompatible | ProviderKind::Azure
            ) {
                return Err(ApiError::bad_param(
                    "model",
                    format!(
                        "The legacy completions API needs an OpenAI-dialect deployment; `{}` is {}. Use /v1/chat/completions for this model.",
                        d.name,
                        d.provider_name()
                    ),
                )
                .with_code("unsupported_model"));
            }
            let t0 = Instant::now();
            let reply = live
                .upstreams
                .openai_completions(&target, raw, stream, opts, ctx)
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
            sse_response(SseBody::new(stream, settle, &state))
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
    let Some(prompt) = &head.prompt else {
        return Err(ApiError::bad_param("prompt", "'prompt' is required."));
    };
    if head.stream_options.is_some() && head.stream != Some(true) {
        return Err(ApiError::bad_param(
            "stream_options",
            "'stream_options' is only allowed when 'stream' is true.",
        ));
    }
    let alias = state.resolve(&head.model)?;
    settle.alias(&alias);
    state.authorize_model(&caller, &head.model)?;
    settle.input_estimate = modelgate_core::estimate_tokens(prompt.to_string().len());
    if state.should_capture(&caller) {
        settle.capture_request(&raw);
    }
    state
        .admit(
            settle,
            &caller,
            head.user.as_deref(),
            &alias,
            head.max_tokens,
            head.n.unwrap_or(1),
        )
        .await?;
    Ok((head, raw, alias))
}
