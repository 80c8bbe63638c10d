//! The smaller routes: embeddings, models, capabilities, health.

use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use modelgate_api::openai::{EmbeddingsRequest, ModelCard, ModelList};
use modelgate_providers::{CallContext, Target};

use crate::chat::{client_deadline, cost_header, json_response, unix_now};
use crate::dispatch::{self, Plan};
use crate::edge::{RequestId, parse_json, read_body};
use crate::error::ApiError;
use crate::state::AppState;

/// Handler for `POST /v1/embeddings`.
pub async fn embeddings(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut settle = state.settle(&rid.0, "embeddings", &headers);
    let admitted = async {
        let caller = state
            .authenticate(&headers)
            .await
            .map_err(ApiError::closing)?;
        settle.caller(&caller);
        let raw = read_body(body, state.config().server.max_body_bytes)
            .await
            .map_err(ApiError::closing)?;
        let req: EmbeddingsRequest = parse_json(&raw)?;
        settle.request(&req.model, false, req.user.as_deref(), None);
        validate_embeddings(&req)?;
        let alias = state.resolve(&req.model)?;
        settle.alias(&alias);
        state.authorize_model(&caller, &req.model)?;
        settle.input_estimate =
            modelgate_core::estimate_tokens(req.input.items().iter().map(String::len).sum());
        // Embeddings produce no output tokens: the hold covers the input only.
        state
            .admit(
                &mut settle,
                &caller,
                req.user.as_deref(),
                &alias,
                Some(0),
                1,
            )
            .await?;
        Ok((req, raw, alias))
    }
    .await;
    let (req, raw, alias) = match admitted {
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
    let tags = crate::chat::header_tags(&headers);
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
            let t0 = tokio::time::Instant::now();
            let reply = live.upstreams.embeddings(&target, req, raw, ctx).await?;
            Ok((reply, t0.elapsed()))
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
    settle.ok(200, served.value.usage);
    let mut resp = json_response(served.value.body);
    cost_header(&mut resp, &settle);
    dispatch::served_headers(
        &mut resp,
        &served.deployment,
        served.attempts.len(),
        rate_info,
    );
    resp
}

fn validate_embeddings(req: &EmbeddingsRequest) -> Result<(), ApiError> {
    if req.input.items().is_empty() {
        return Err(ApiError::bad_param("input", "'input' must not be empty."));
    }
    if req.dimensions == Some(0) {
        return Err(ApiError::bad_param(
            "dimensions",
            "'dimensions' must be at least 1.",
        ));
    }
    match req.encoding_format.as_deref() {
        None | Some("float" | "base64") => Ok(()),
        Some(other) => Err(ApiError::bad_param(
            "encoding_format",
            format!("'encoding_format' must be \"float\" or \"base64\", got {other:?}."),
        )),
    }
}

fn card(id: String, owned_by: &str) -> ModelCard {
    ModelCard {
        id,
        object: "model".into(),
        created: 0,
        owned_by: owned_by.to_owned(),
    }
}

/// The models a caller may use: configured names plus the built-in mock behaviours.
fn model_cards(state: &AppState) -> Vec<ModelCard> {
    let config = state.config();
    let mut data: Vec<ModelCard> = config
        .models
        .iter()
        .map(|(name, a)| {
            let owner = match a.deployments.as_slice() {
                [only] => only.provider_name(),
                _ => "modelgate",
            };
            card(name.clone(), owner)
        })
        .collect();
    if config.prefixes.contains_key("mock") {
        for b in [
            "echo",
            "text",
            "tool",
            "error-429",
            "error-500",
            "stall",
            "stream-error",
        ] {
            data.push(card(format!("mock/{b}"), "mock"));
        }
    }
    data
}

/// Handler for `GET /v1/models`.
pub async fn list_models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = state.authenticate(&headers).await {
        return e.into_response();
    }
    Json(ModelList {
        object: "list".into(),
        data: model_cards(&state),
    })
    .into_response()
}

/// Handler for `GET /v1/models/{model}` (the model id may contain `/`).
pub async fn get_model(
    State(state): State<AppState>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = state.authenticate(&headers).await {
        return e.into_response();
    }
    match state.resolve(&model) {
        Ok(alias) => {
            let owner = match alias.deployments.as_slice() {
                [only] => only.provider_name(),
                _ => "modelgate",
            };
            Json(card(model, owner)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Handler for `GET /v1/modelgate/capabilities`: the conformance matrix
/// (`crates/server/src/capabilities.rs`), authenticated like `/v1/models`.
pub async fn capabilities(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = state.authenticate(&headers).await {
        return e.into_response();
    }
    Json(crate::capabilities::document()).into_response()
}

/// `GET /metrics`: Prometheus text format (no secrets, low-cardinality labels).
pub async fn metrics(State(state): State<AppState>) -> Response {
    let inner = &state.inner;
    let now = tokio::time::Instant::now();
    let live = state.live();
    for d in &live.config.deployments {
        let v = match live.router.health(d).breaker(now) {
            modelgate_router::BreakerState::Closed => 0,
            modelgate_router::BreakerState::HalfOpen { .. } => 1,
            modelgate_router::BreakerState::Open { .. } => 2,
        };
        inner
            .metrics
            .circuit_state
            .get_or_create(&modelgate_telemetry::DeploymentLabels {
                deployment: d.name.clone(),
            })
            .set(v);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        inner.metrics.encode(),
    )
        .into_response()
}

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: config loaded and the store answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), state.inner.store.ping()).await {
        Ok(Ok(())) => Json(serde_json::json!({"status": "ready"})).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: store unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "unavailable", "reason": "store unreachable"})),
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unavailable", "reason": "store timed out"})),
        )
            .into_response(),
    }
}
