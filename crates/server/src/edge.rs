//! Protocol-level concerns of the HTTP edge: request ids, bounded body
//! reading, JSON decoding with field-naming errors, and the catch-all routes.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use modelgate_core::ErrorClass;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `x-request-id`.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Response header names the gateway sets on every request, validated once
/// (inserting by `&str` re-parses the name each time).
pub mod hdr {
    use axum::http::HeaderName;

    pub static RATELIMIT_LIMIT_REQUESTS: HeaderName =
        HeaderName::from_static("x-ratelimit-limit-requests");
    pub static RATELIMIT_REMAINING_REQUESTS: HeaderName =
        HeaderName::from_static("x-ratelimit-remaining-requests");
    pub static RATELIMIT_RESET_REQUESTS: HeaderName =
        HeaderName::from_static("x-ratelimit-reset-requests");
    pub static RATELIMIT_LIMIT_TOKENS: HeaderName =
        HeaderName::from_static("x-ratelimit-limit-tokens");
    pub static RATELIMIT_REMAINING_TOKENS: HeaderName =
        HeaderName::from_static("x-ratelimit-remaining-tokens");
    pub static RATELIMIT_RESET_TOKENS: HeaderName =
        HeaderName::from_static("x-ratelimit-reset-tokens");
    pub static CACHE: HeaderName = HeaderName::from_static("x-modelgate-cache");
    pub static DEPLOYMENT: HeaderName = HeaderName::from_static("x-modelgate-deployment");
    pub static ATTEMPTS: HeaderName = HeaderName::from_static("x-modelgate-attempts");
    pub static COST: HeaderName = HeaderName::from_static("x-modelgate-cost");
    pub static SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");
}

/// The request id of the current request (from the client, or generated).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Whether a client-sent id is safe to propagate: 1 to 128 visible ASCII
/// characters from a conservative set (so it cannot inject into logs or headers).
pub fn valid_request_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A fresh UUIDv7 (time-ordered). The random part comes from a fast
/// thread-local generator: ids need to be unique, not unpredictable, and the
/// OS generator would cost a system call on every request.
fn new_request_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let random = fastrand::u128(..).to_le_bytes();
    let mut bytes = [0u8; 10];
    bytes.copy_from_slice(&random[..10]);
    uuid::Builder::from_unix_timestamp_millis(ms, &bytes)
        .into_uuid()
        .to_string()
}

/// Middleware: attaches a [`RequestId`] and echoes it on every response.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| valid_request_id(s))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID.clone(), v);
    }
    resp
}

/// Reads the whole body, failing with 413 as soon as it exceeds `limit`
/// (the limit is enforced while reading, not after).
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorClass::PayloadTooLarge,
            format!("Request body exceeds the limit of {limit} bytes."),
        )
        .with_code("request_too_large")
    };
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => {
            // axum wraps the limit error from the inner body too.
            if std::error::Error::source(&*e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                Err(too_large())
            } else {
                Err(ApiError::new(
                    ErrorClass::BadRequest,
                    "Could not read the request body.",
                ))
            }
        }
    }
}

/// Decodes JSON, naming the offending field on failure.
pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorClass::BadRequest,
            "The request body is empty; expected a JSON object.",
        )
        .with_code("invalid_json"));
    }
    // The common case pays for no path tracking; a body that fails is
    // decoded again to name the field at fault.
    if let Ok(v) = serde_json::from_slice::<T>(raw) {
        return Ok(v);
    }
    let mut de = serde_json::Deserializer::from_slice(raw);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = match result {
        Ok(v) => v,
        Err(e) => return Err(json_error(e)),
    };
    de.end().map_err(|e| {
        ApiError::new(ErrorClass::BadRequest, format!("Invalid JSON body: {e}"))
            .with_code("invalid_json")
    })?;
    Ok(value)
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return ApiError::new(
            ErrorClass::BadRequest,
            format!("Invalid JSON body: {inner}"),
        )
        .with_code("invalid_json");
    }
    let text = inner.to_string();
    // `missing field `x`` is reported at the parent's path.
    let missing = text
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
        .map(str::to_owned);
    let param = match (path.as_str(), missing) {
        (".", Some(m)) => m,
        (p, Some(m)) => format!("{p}.{m}"),
        (p, None) => p.to_owned(),
    };
    let detail = text.split(" at line ").next().unwrap_or(&text).to_owned();
    let detail = if detail.starts_with("data did not match any variant") {
        "has an invalid type or shape".to_owned()
    } else {
        detail
    };
    ApiError::bad_param(
        param.clone(),
        format!("Invalid value for '{param}': {detail}."),
    )
    .with_code("invalid_type")
}

/// Fallback for unknown `/v1` routes: 404 in the OpenAI envelope.
pub async fn unknown_route(req: Request) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/v1/") || path == "/v1" || path.starts_with("/admin") {
        ApiError::new(
            ErrorClass::NotFound,
            format!("Unknown route {} {path}.", req.method()),
        )
        .with_code("unknown_route")
        .closing()
        .into_response()
    } else {
        (StatusCode::NOT_FOUND, "not found\n").into_response()
    }
}

/// 405 for a known path with the wrong method.
pub async fn method_not_allowed(req: Request) -> Response {
    let mut e = ApiError::new(
        ErrorClass::BadRequest,
        format!(
            "Method {} is not allowed on {}.",
            req.method(),
            req.uri().path()
        ),
    )
    .with_code("method_not_allowed")
    .closing()
    .into_response();
    *e.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate_api::openai::ChatRequest;

    #[test]
    fn field_errors_name_the_path() {
        let e = parse_json::<ChatRequest>(
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"));
        let e = parse_json::<ChatRequest>(br#"{"model":"m"}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e =
            parse_json::<ChatRequest>(br#"{"model":"m","messages":[{"role":"user","content":5}]}"#)
                .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
        let e = parse_json::<ChatRequest>(br#"{"model":"m","messages":[{"content":"x"}]}"#)
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = parse_json::<ChatRequest>(br#"{"model": "#).unwrap_err();
        assert_eq!(e.code.as_deref(), Some("invalid_json"));
        let e = parse_json::<ChatRequest>(br#"{"model":"m","messages":[]} x"#).unwrap_err();
        assert_eq!(e.code.as_deref(), Some("invalid_json"));
    }

    #[test]
    fn request_ids_are_checked() {
        assert!(valid_request_id("abc-123_x.y:z"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("a b"));
        assert!(!valid_request_id("x\r\ny"));
        assert!(!valid_request_id(&"a".repeat(129)));
    }

    #[test]
    fn generated_ids_are_unique_uuid_v7() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(10) {
            let u = uuid::Uuid::parse_str(id).unwrap_or_default();
            assert_eq!(u.get_version_num(), 7, "{id}");
            assert!(valid_request_id(id));
        }
    }
}
