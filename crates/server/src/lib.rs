//! Modelgate's HTTP front door.
//!
//! Role: routes, the per-request pipeline, streaming to clients, settlement,
//! and graceful shutdown. Built on axum; knows nothing of provider wire formats
//! (that is `modelgate-providers` / `modelgate-codec`).
//!
//! # Middleware order (outermost first)
//! 1. [`edge::request_id`] — takes a well-formed `x-request-id` or makes a UUIDv7,
//!    and echoes it on every response (panics and 404s included).
//! 2. `CatchPanicLayer` — a panic in one request becomes a 500 in the OpenAI
//!    envelope; the process and other requests are unaffected.
//! 3. The route handler, which runs the LLM pipeline as explicit phases (see
//!    [`chat`]): authenticate → read body (limit enforced while reading) →
//!    decode (400 names the field) → validate → resolve model (404) → call
//!    upstream → respond → settle (a drop guard, so it also runs when the
//!    client disconnects).

pub mod admin;
pub mod capabilities;
pub mod chat;
pub mod completions;
pub mod dispatch;
pub mod edge;
pub mod error;
pub mod governance;
pub mod messages;
pub mod passthrough;
pub mod responses;
pub mod routes;
pub mod settle;
pub mod state;
pub mod stats;
pub mod trace;
pub mod ui;

use std::future::{Future, IntoFuture};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

pub use state::{AppState, Caller, StateError};

/// Builds the router over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/v1/chat/completions",
            post(chat::chat_completions).fallback(edge::method_not_allowed),
        )
        .route(
            "/v1/messages",
            post(messages::messages).fallback(edge::method_not_allowed),
        )
        .route(
            "/v1/messages/count_tokens",
            post(messages::count_tokens).fallback(edge::method_not_allowed),
        )
        .route(
            "/v1/responses",
            post(responses::responses).fallback(edge::method_not_allowed),
        )
        .route(
            "/v1/completions",
            post(completions::completions).fallback(edge::method_not_allowed),
        )
        .route(
            "/v1/embeddings",
            post(routes::embeddings).fallback(edge::method_not_allowed),
        )
        .route("/v1/models", get(routes::list_models))
        .route("/v1/models/{*model}", get(routes::get_model))
        .route("/v1/modelgate/capabilities", get(routes::capabilities))
        .route("/admin/keys", post(admin::post_key).get(admin::list_keys))
        .route(
            "/admin/keys/{id}",
            get(admin::get_key)
                .patch(admin::patch_key)
                .delete(admin::delete_key),
        )
        .route("/admin/keys/{id}/rotate", post(admin::rotate_key))
        .route("/admin/spend", get(admin::spend))
        .route("/admin/config/reload", post(admin::reload_config))
        .route("/admin/stats", get(stats::stats))
        .route("/admin/budgets", get(stats::budgets))
        .route("/admin/requests", get(admin::requests))
        .route("/admin/audit", get(admin::audit_log))
        .route("/admin/requests/{id}", get(admin::request))
        .route("/admin/openapi.json", get(admin::openapi))
        .route(
            "/admin/{kind}",
            post(admin::post_member).get(admin::list_members),
        )
        .route(
            "/admin/{kind}/{id}",
            get(admin::member)
                .patch(admin::member)
                .delete(admin::member),
        )
        .route("/ui", get(ui::index))
        .route("/ui/", get(ui::index))
        .route("/ui/{file}", get(ui::file))
        .route(
            "/passthrough/{name}/{*path}",
            axum::routing::any(passthrough::passthrough),
        )
        .route("/metrics", get(routes::metrics))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .fallback(edge::unknown_route)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn(edge::request_id))
        .with_state(state)
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    let body = br#"{"error":{"message":"Internal error in the gateway.","type":"server_error","param":null,"code":"internal"}}"#;
    let mut r = Response::new(axum::body::Body::from(&body[..]));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Serves until `shutdown` resolves, then stops accepting and drains in-flight
/// requests and streams for at most `grace`. Past the deadline, whatever is
/// still running is ended (streams get a terminal error event, waiting calls a
/// 503) so that every request is still settled and logged before this returns.
/// Returns whether the drain finished in time.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<bool> {
    let token = state.inner.shutdown.clone();
    let in_flight = state.inner.in_flight.clone();
    let state_tracer = state.inner.tracer.clone();
    let retention = tokio::spawn(retention_loop(state.clone()));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown.await;
        let _ = tx.send(true);
    };
    // TCP_NODELAY: responses and stream events go out as soon as they are
    // written. With Nagle's algorithm a small write waits for the ACK of the
    // previous one, which the client may delay by up to 40 ms: every token
    // of a stream, and responses on kept-alive connections, would stall.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
    });
    let server = axum::serve(listener, router(state))
        .with_graceful_shutdown(signal)
        .into_future();
    let deadline = async move {
        let mut rx = rx;
        let _ = rx.wait_for(|v| *v).await;
        tracing::info!(
            grace_seconds = grace.as_secs_f64(),
            "shutting down: draining in-flight requests"
        );
        tokio::time::sleep(grace).await;
    };
    let drained = tokio::select! {
        r = server => r.map(|()| true)?,
        () = deadline => false,
    };
    if !drained {
        tracing::warn!(
            in_flight = in_flight.count(),
            "drain deadline passed; ending the remaining requests"
        );
        token.cancel();
    }
    retention.abort();
    // Every request settles (and queues its log record) before we return.
    if tokio::time::timeout(SETTLE_WAIT, in_flight.wait_idle())
        .await
        .is_err()
    {
        tracing::error!(
            in_flight = in_flight.count(),
            "requests did not settle after shutdown; their records may be lost"
        );
    }
    if let Some(tracer) = &state_tracer {
        tracer.flush(SETTLE_WAIT).await;
    }
    Ok(drained)
}

/// Applies `observability` retention now and then every hour.
async fn retention_loop(state: AppState) {
    loop {
        let now = modelgate_store::now_ms();
        let obs = state.config().observability.clone();
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        match state
            .inner
            .store
            .purge(
                now - ms(obs.capture_retention),
                obs.log_retention.map(|d| now - ms(d)),
            )
            .await
        {
            Ok((0, 0)) => {}
            Ok((cleared, deleted)) => {
                tracing::info!(
                    cleared,
                    deleted,
                    "retention: cleared old payloads and log rows"
                )
            }
            Err(e) => tracing::warn!(error = %e, "retention job failed"),
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// How long shutdown waits for cancelled requests to settle.
const SETTLE_WAIT: Duration = Duration::from_secs(5);
