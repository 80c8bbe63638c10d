//! Google Cloud Vertex AI: Gemini models through `generateContent` and
//! Claude models through `rawPredict`, both on
//! `{base}/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}`
//! (<https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference>,
//! <https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude>).
//!
//! The bodies and replies are the Gemini and Anthropic codecs' (see
//! `transport.rs`); this module adds the URL and the OAuth access token:
//! a fixed one from the deployment (`access_token` / `api_key`), or one from
//! a credentials file through [`crate::google_auth`], fetched before the
//! upstream call (never while it runs) and cached.

use http::header::HeaderValue;
use modelgate_api::openai::ChatRequest;
use modelgate_codec::{UpstreamFailure, anthropic, gemini};
use modelgate_config::{VertexAuth, VertexConfig, VertexPublisher};
use modelgate_core::ErrorClass;

use crate::google_auth::AuthError;
use crate::{CallContext, CallError, ChatReply, Settle, Target, Upstreams};

const PROVIDER: &str = "vertex";
/// Longest wait for the token endpoint.
const TOKEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn failure(class: ErrorClass, status: Option<u16>, message: String) -> CallError {
    CallError::upstream(UpstreamFailure {
        class,
        status,
        message: format!("{PROVIDER}: {message}"),
        upstream_code: None,
    })
}

/// A token failure as a call failure: refused credentials are an auth
/// failure (the router moves on), an unreachable endpoint a transient one.
fn auth_failure(e: AuthError) -> CallError {
    match e {
        AuthError::Credentials(m) => failure(ErrorClass::UpstreamAuth, None, m),
        AuthError::Refused { status, message } => {
            let class = match status {
                Some(s) if s >= 500 => ErrorClass::UpstreamUnavailable,
                _ => ErrorClass::UpstreamAuth,
            };
            failure(class, status, message)
        }
        AuthError::Unavailable(m) => failure(ErrorClass::UpstreamUnavailable, None, m),
    }
}

/// Percent-encodes a path segment: RFC 3986 unreserved characters and `@`
/// (Claude versions, `claude-sonnet-4@20250514`) stay as they are.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if s.bytes().all(|b| b == b'.') {
        return s.bytes().map(|_| "%2E").collect();
    }
    out
}

/// The model's URL up to the `:method`.
pub(crate) fn model_url(
    base: &str,
    project: &str,
    location: &str,
    publisher: VertexPublisher,
    model: &str,
) -> String {
    format!(
        "{}/v1/projects/{}/locations/{}/publishers/{}/models/{}",
        base.trim_end_matches('/'),
        segment(project),
        segment(location),
        publisher.as_str(),
        segment(model)
    )
}

/// Classifies a Vertex error reply: Google's error envelope
/// (`{"error": {"code", "message", "status"}}`), or for Claude models
/// Anthropic's (`{"type": "error", ...}`) when the model itself refused.
pub(crate) fn classify_error(status: u16, body: &[u8]) -> UpstreamFailure {
    let anthropic_shaped = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("error"));
    let mut f = if anthropic_shaped {
        anthropic::classify_error(status, body)
    } else {
        gemini::classify_error(status, body)
    };
    for prefix in ["gemini", "anthropic"] {
        if let Some(rest) = f.message.strip_prefix(prefix) {
            f.message = format!("{PROVIDER}{rest}");
            break;
        }
    }
    f
}

/// The deployment's Vertex settings (validation guarantees them for
/// provider `vertex`).
pub(crate) fn settings(
    d: &modelgate_config::Deployment,
) -> Result<&modelgate_config::VertexConfig, CallError> {
    d.vertex.as_ref().ok_or_else(|| {
        failure(
            ErrorClass::Internal,
            None,
            format!("deployment {} has no Vertex settings", d.name),
        )
    })
}

/// A token fetched for one call, to redact and (when refused) forget.
pub(crate) struct FetchedToken {
    source: std::sync::Arc<crate::google_auth::TokenSource>,
    token: modelgate_config::Secret,
}

impl crate::Settle for FetchedToken {
    /// Redacts the token from a failure; a refused token is forgotten.
    fn settle<T>(self, result: Result<T, CallError>) -> Result<T, CallError> {
        crate::settle_fetched(result, &[self.token.expose()], || {
            self.source.invalidate(&self.token);
        })
    }
}

impl Upstreams {
    /// Adds the deployment's Vertex access token to `headers` when it comes
    /// from a credentials file (a fixed token is already there).
    pub(crate) async fn vertex_authorize(
        &self,
        d: &modelgate_config::Deployment,
        headers: &mut http::header::HeaderMap,
    ) -> Result<Option<FetchedToken>, CallError> {
        let source = match d.vertex.as_ref() {
            Some(
                v @ VertexConfig {
                    auth: VertexAuth::File(path),
                    ..
                },
            ) => self.google.get(path, &v.external),
            Some(VertexConfig {
                auth: VertexAuth::Metadata(base),
                ..
            }) => self.google.get_metadata(base),
            _ => return Ok(None),
        };
        // The token exchange gets its own short bound: waiting callers queue
        // behind it.
        let limit = d.timeouts.request.min(TOKEN_TIMEOUT);
        let token = source
            .token(self.client(d), limit)
            .await
            .map_err(auth_failure)?;
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                failure(
                    ErrorClass::UpstreamAuth,
                    None,
                    "the access token is not a valid header value".into(),
                )
            })?;
        value.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, value);
        Ok(Some(FetchedToken { source, token }))
    }

    /// Sends a Messages-dialect `body` to Claude on Vertex AI:
    /// `{model url}:{method}` for the model `model_segment`, with the access
    /// token and the client's `anthropic-beta` header.
    pub(crate) async fn vertex_anthropic_send(
        &self,
        target: &Target,
        ctx: &CallContext,
        model_segment: &str,
        method: &str,
        body: Vec<u8>,
    ) -> Result<crate::http::Response, CallError> {
        let d = &*target.deployment;
        let v = settings(d)?;
        let mut headers = Self::headers(d, ctx, target.span_id);
        // Vertex takes Anthropic's beta flags as the same header
        // (<https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude>).
        if let Some(beta) = &ctx.anthropic_beta
            && let Ok(value) = HeaderValue::from_str(beta)
        {
            headers.insert("anthropic-beta", value);
        }
        let fetched = self.vertex_authorize(d, &mut headers).await?;
        let url = format!(
            "{}:{method}",
            model_url(
                &d.base_url,
                &v.project,
                &v.location,
                VertexPublisher::Anthropic,
                model_segment
            )
        );
        let result = self.send_with_headers(target, url, body, headers).await;
        fetched.settle(result)
    }

    pub(crate) async fn vertex_chat(
        &self,
        target: &Target,
        req: &ChatRequest,
        ctx: &CallContext,
    ) -> Result<ChatReply, CallError> {
        let d = &*target.deployment;
        let v = settings(d)?;
        let mut headers = Self::headers(d, ctx, target.span_id);
        let fetched = self.vertex_authorize(d, &mut headers).await?;
        let publisher = v.publisher_for(&target.upstream_model);
        let url = model_url(
            &d.base_url,
            &v.project,
            &v.location,
            publisher,
            &target.upstream_model,
        );
        let result = match publisher {
            VertexPublisher::Google => {
                self.gemini_chat_at(target, req, ctx, Some((url, headers)))
                    .await
            }
            VertexPublisher::Anthropic => {
                self.anthropic_chat_at(target, req, ctx, Some((url, headers)))
                    .await
            }
        };
        // The fetched token is no deployment secret `redact_secrets` knows.
        fetched.settle(result)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_vertex_layout() {
        assert_eq!(
            model_url(
                "https://us-central1-aiplatform.googleapis.com",
                "my-proj",
                "us-central1",
                VertexPublisher::Google,
                "gemini-2.5-flash"
            ),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.5-flash"
        );
        assert_eq!(
            model_url(
                "http://127.0.0.1:9/",
                "p",
                "global",
                VertexPublisher::Anthropic,
                "claude-sonnet-4@20250514"
            ),
            "http://127.0.0.1:9/v1/projects/p/locations/global/publishers/anthropic/models/claude-sonnet-4@20250514"
        );
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
        assert_eq!(segment(".."), "%2E%2E");
    }

    #[test]
    fn errors_of_either_shape_are_classified_as_vertex() {
        let google =
            br#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#;
        let f = classify_error(429, google);
        assert_eq!(f.class, ErrorClass::UpstreamRateLimited);
        assert!(f.message.starts_with("vertex"), "{}", f.message);
        let claude =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let f = classify_error(529, claude);
        assert!(f.message.starts_with("vertex"), "{}", f.message);
        assert_ne!(f.class, ErrorClass::UpstreamBadRequest);
        let f = classify_error(403, b"<html>");
        assert_eq!(f.class, ErrorClass::UpstreamAuth);
    }
}
