//! The smaller routes: embeddings, models, health.

use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use modelgate_api::openai::{EmbeddingsRequest, ModelCard, ModelList};
use modelgate_core::ErrorClass;
use modelgate_providers::{CallContext, mock};

use crate::chat::{json_response, unix_now};
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
    let inner = &state.inner;
    let mut settle = state.settle(&rid.0, "embeddings");
    let result = async {
        let caller = state.authenticate(&headers).map_err(ApiError::closing)?;
        settle.caller(caller.label());
        let raw = read_body(body, inner.config.server.max_body_bytes)
            .await
            .map_err(ApiError::closing)?;
        let req: EmbeddingsRequest = parse_json(&raw)?;
        settle.request(&req.model, false, req.user.as_deref(), None);
        validate_embeddings(&req)?;
        let target = state.resolve(&req.model)?;
        settle.target(&target);
        settle.input_estimate =
            modelgate_core::estimate_tokens(req.input.items().iter().map(String::len).sum());
        let ctx = CallContext {
            request_id: rid.0.clone(),
            created: unix_now(),
        };
        Ok(inner
            .upstreams
            .embeddings(&target, &req, &raw, &ctx)
            .await?)
    }
    .await;
    match result {
        Ok(reply) => {
            settle.ok(200, reply.usage);
            json_response(reply.body)
        }
        Err(e) => {
            settle.fail(&e);
            e.into_response()
        }
    }
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
    let config = &state.inner.config;
    let mut data: Vec<ModelCard> = config
        .models
        .iter()
        .map(|(name, a)| {
            let owner = match a.deployments.as_slice() {
                [only] => only.provider.as_str(),
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
    if let Err(e) = state.authenticate(&headers) {
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
    if let Err(e) = state.authenticate(&headers) {
        return e.into_response();
    }
    match state.resolve(&model) {
        Ok(t) => {
            let owner = t.deployment.provider.as_str();
            if t.deployment.provider == modelgate_config::ProviderKind::Mock
                && mock::parse(&t.upstream_model).is_err()
            {
                return ApiError::new(
                    ErrorClass::NotFound,
                    format!("The model `{model}` does not exist."),
                )
                .into_response();
            }
            Json(card(model, owner)).into_response()
        }
        Err(e) => e.into_response(),
    }
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
