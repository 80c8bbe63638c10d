//! One error type for the front door and its single mapping to HTTP.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use modelgate_api::openai::{ErrorBody, ErrorEnvelope};
use modelgate_codec::CodecError;
use modelgate_core::ErrorClass;
use modelgate_providers::CallError;

/// An error answered to the client in the OpenAI envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub class: ErrorClass,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<String>,
    /// Passed on as `Retry-After` (429 only).
    pub retry_after: Option<String>,
    /// For upstream 4xx that mean the same to the client (404 model not found,
    /// 409, 413 too large, 422), the upstream's status instead of 400.
    pub upstream_status: Option<u16>,
    /// Rate-limit state for `x-ratelimit-*` headers.
    pub rate_info: Option<Box<modelgate_policy::limiter::RateInfo>>,
    /// The request body was left unread: answer with `Connection: close` so a
    /// keep-alive client does not reuse a connection the server will drop.
    pub close_connection: bool,
}

impl ApiError {
    /// An error of `class` with a client-facing message.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        ApiError {
            class,
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
            upstream_status: None,
            rate_info: None,
            close_connection: false,
        }
    }

    /// Marks the error as answered before the body was read (see `close_connection`).
    pub fn closing(mut self) -> Self {
        self.close_connection = true;
        self
    }

    /// A 400 naming `param`.
    pub fn bad_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = ApiError::new(ErrorClass::BadRequest, message);
        e.param = Some(param.into());
        e
    }

    /// Sets the `code`.
    pub fn with_code(mut self, code: &str) -> Self {
        self.code = Some(code.to_owned());
        self
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self.class {
            ErrorClass::UpstreamBadRequest => match self.upstream_status {
                Some(s @ (404 | 409 | 413 | 422)) => {
                    StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_REQUEST)
                }
                _ => StatusCode::BAD_REQUEST,
            },
            ErrorClass::BadRequest => StatusCode::BAD_REQUEST,
            ErrorClass::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorClass::Forbidden => StatusCode::FORBIDDEN,
            ErrorClass::NotFound => StatusCode::NOT_FOUND,
            ErrorClass::Conflict => StatusCode::CONFLICT,
            ErrorClass::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorClass::UpstreamRateLimited
            | ErrorClass::RateLimited
            | ErrorClass::BudgetExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorClass::UpstreamAuth
            | ErrorClass::UpstreamError
            | ErrorClass::UpstreamUnavailable
            | ErrorClass::StreamInterrupted => StatusCode::BAD_GATEWAY,
            ErrorClass::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorClass::ShuttingDown | ErrorClass::DependencyUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorClass::ClientDisconnected | ErrorClass::Internal => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The OpenAI `type` for this error.
    pub fn openai_type(&self) -> &'static str {
        match self.class {
            ErrorClass::BadRequest
            | ErrorClass::UpstreamBadRequest
            | ErrorClass::PayloadTooLarge
            | ErrorClass::Conflict
            | ErrorClass::NotFound => "invalid_request_error",
            ErrorClass::Unauthorized => "authentication_error",
            ErrorClass::Forbidden => "permission_error",
            ErrorClass::UpstreamRateLimited | ErrorClass::RateLimited => "rate_limit_error",
            ErrorClass::BudgetExceeded => "budget_exceeded",
            ErrorClass::UpstreamAuth
            | ErrorClass::UpstreamError
            | ErrorClass::UpstreamUnavailable
            | ErrorClass::UpstreamTimeout
            | ErrorClass::StreamInterrupted => "api_error",
            ErrorClass::ClientDisconnected
            | ErrorClass::Internal
            | ErrorClass::ShuttingDown
            | ErrorClass::DependencyUnavailable => "server_error",
        }
    }

    /// The envelope body.
    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorBody {
                message: self.message.clone(),
                kind: self.openai_type().to_owned(),
                param: self.param.clone(),
                code: Some(
                    self.code
                        .clone()
                        .unwrap_or_else(|| self.class.as_str().to_owned()),
                ),
            },
        }
    }
}

impl ApiError {
    /// The Anthropic error `type` for this error's status
    /// (<https://docs.anthropic.com/en/api/errors>).
    pub fn anthropic_type(&self) -> &'static str {
        match self.status().as_u16() {
            400 | 409 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 => "overloaded_error",
            _ => "api_error",
        }
    }

    /// The Anthropic envelope `{"type":"error","error":{"type","message"}}`.
    pub fn anthropic_envelope(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "error",
            "error": {"type": self.anthropic_type(), "message": self.message},
        })
    }

    /// The response for the Anthropic-dialect front door (`/v1/messages`).
    pub fn into_anthropic_response(self) -> Response {
        let body = serde_json::to_vec(&self.anthropic_envelope()).unwrap_or_default();
        self.respond_with(body)
    }

    fn respond_with(self, body: Vec<u8>) -> Response {
        let mut resp = (self.status(), body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.close_connection {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(info) = &self.rate_info {
            rate_headers(h, info);
        }
        if matches!(
            self.class,
            ErrorClass::UpstreamRateLimited | ErrorClass::RateLimited
        ) {
            let ra = self.retry_after.as_deref().unwrap_or("1");
            if let Ok(v) = HeaderValue::from_str(ra) {
                h.insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.envelope()).unwrap_or_default();
        self.respond_with(body)
    }
}

/// OpenAI's `x-ratelimit-*` headers from the tightest scope's state.
pub fn rate_headers(h: &mut axum::http::HeaderMap, info: &modelgate_policy::limiter::RateInfo) {
    use crate::edge::hdr;
    // Names are pre-validated constants and numbers go through itoa: this
    // runs on every governed response.
    fn seconds(s: u64) -> HeaderValue {
        let mut b = itoa::Buffer::new();
        let mut v = String::with_capacity(21);
        v.push_str(b.format(s));
        v.push('s');
        HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("0s"))
    }
    let scopes = [
        (
            [
                &hdr::RATELIMIT_LIMIT_REQUESTS,
                &hdr::RATELIMIT_REMAINING_REQUESTS,
                &hdr::RATELIMIT_RESET_REQUESTS,
            ],
            info.limit_requests.zip(info.remaining_requests),
            info.reset_requests_s,
        ),
        (
            [
                &hdr::RATELIMIT_LIMIT_TOKENS,
                &hdr::RATELIMIT_REMAINING_TOKENS,
                &hdr::RATELIMIT_RESET_TOKENS,
            ],
            info.limit_tokens.zip(info.remaining_tokens),
            info.reset_tokens_s,
        ),
    ];
    for ([limit, remaining, reset], state, reset_s) in scopes {
        if let Some((l, r)) = state {
            h.insert(limit.clone(), HeaderValue::from(l));
            h.insert(remaining.clone(), HeaderValue::from(r));
            h.insert(reset.clone(), seconds(reset_s));
        }
    }
}

impl From<CodecError> for ApiError {
    fn from(e: CodecError) -> Self {
        let mut err = ApiError::new(ErrorClass::BadRequest, e.message);
        if !e.param.is_empty() {
            err.param = Some(e.param);
        }
        err.code = Some("unsupported_parameter".into());
        err
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Codec(c) => c.into(),
            CallError::Upstream {
                failure,
                retry_after,
            } => {
                let message = match failure.class {
                    ErrorClass::UpstreamAuth => format!(
                        "{} (the gateway's provider credentials were rejected; check the deployment's API key)",
                        failure.message
                    ),
                    _ => failure.message,
                };
                ApiError {
                    class: failure.class,
                    message,
                    param: None,
                    code: failure
                        .upstream_code
                        .or_else(|| Some(failure.class.as_str().to_owned())),
                    retry_after,
                    upstream_status: failure.status,
                    rate_info: None,
                    close_connection: false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_cover_the_contract() {
        let s = |c| ApiError::new(c, "m").status().as_u16();
        assert_eq!(s(ErrorClass::BadRequest), 400);
        assert_eq!(s(ErrorClass::Unauthorized), 401);
        assert_eq!(s(ErrorClass::NotFound), 404);
        assert_eq!(s(ErrorClass::PayloadTooLarge), 413);
        assert_eq!(s(ErrorClass::UpstreamRateLimited), 429);
        assert_eq!(s(ErrorClass::UpstreamError), 502);
        assert_eq!(s(ErrorClass::UpstreamTimeout), 504);
    }

    #[test]
    fn rate_limit_carries_retry_after() {
        let mut e = ApiError::new(ErrorClass::UpstreamRateLimited, "slow down");
        e.retry_after = Some("7".into());
        let r = e.into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
    }
}
