//! Calls to LLM providers.
//!
//! Role: given a resolved [`Target`] (deployment + upstream model) and the
//! parsed client request, produce either a complete OpenAI-dialect body or a
//! stream of OpenAI-dialect chunks. Encoding and decoding are delegated to the
//! pure `modelgate-codec`; this crate owns only I/O: the pooled HTTP client,
//! timeouts (connect, whole request / headers, idle gap between chunks), SSE
//! and AWS event-stream byte framing, SigV4 signing at send time (Bedrock),
//! Google OAuth access tokens (Vertex AI, cached per credentials file), and
//! the built-in `mock` provider.
//!
//! Must not depend on: axum, sqlx. Dropping a [`ChatStream`] drops the
//! upstream connection, which is how a client disconnect cancels upstream work.

pub mod aws_auth;
mod bedrock;
pub mod credentials;
mod embeddings;
pub mod google_auth;
pub mod google_external;
pub mod http;
pub mod mock;
mod stream;
mod transport;
mod vertex;

use std::sync::Arc;

use bytes::Bytes;
use modelgate_api::openai::{ChatRequest, EmbeddingsRequest};
use modelgate_codec::{CodecError, UpstreamFailure};
use modelgate_config::Deployment;
use modelgate_core::Usage;

pub use stream::{ChatStream, StreamItem};
pub use transport::{NativeRequest, Upstreams};

/// Where a request goes: a deployment and the model id to ask it for.
#[derive(Debug, Clone)]
pub struct Target {
    pub deployment: Arc<Deployment>,
    pub upstream_model: String,
    /// The attempt's span id: the parent the upstream sees in `traceparent`.
    pub span_id: u64,
}

/// The trace an upstream request joins (W3C Trace Context).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub sampled: bool,
}

impl TraceParent {
    /// The `traceparent` header naming `span_id` as the parent:
    /// <https://www.w3.org/TR/trace-context/#traceparent-header>.
    pub fn header(&self, span_id: u64) -> String {
        format!(
            "00-{:032x}-{:016x}-{}",
            self.trace_id,
            span_id,
            if self.sampled { "01" } else { "00" }
        )
    }
}

/// Per-request facts a call needs.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// Our request id, forwarded upstream as `x-request-id`.
    pub request_id: String,
    /// Unix seconds, for `created` in objects we synthesise.
    pub created: u64,
    /// An output-token cap to enforce upstream when the client set none (the
    /// budget reservation assumed it).
    pub output_cap: Option<u32>,
    /// The trace upstream requests join (sent as `traceparent` with the
    /// attempt's span id).
    pub trace: Option<TraceParent>,
    /// The client's `anthropic-beta` header, passed to Anthropic upstreams.
    pub anthropic_beta: Option<String>,
}

/// A successful chat call.
pub enum ChatReply {
    /// A complete `chat.completion` JSON body.
    Complete { body: Bytes, usage: Option<Usage> },
    /// An open stream of `chat.completion.chunk`s.
    Stream(ChatStream),
}

/// A successful embeddings call.
#[derive(Debug)]
pub struct EmbeddingsReply {
    pub body: Bytes,
    pub usage: Option<Usage>,
}

/// Why a call failed before any response reached the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The request cannot be expressed for this provider (400 naming the field).
    Codec(CodecError),
    /// The upstream failed or refused.
    Upstream {
        failure: UpstreamFailure,
        /// The upstream's `Retry-After`, passed on to the client with a 429.
        retry_after: Option<String>,
    },
}

impl From<CodecError> for CallError {
    fn from(e: CodecError) -> Self {
        CallError::Codec(e)
    }
}

impl CallError {
    pub(crate) fn upstream(failure: UpstreamFailure) -> Self {
        CallError::Upstream {
            failure,
            retry_after: None,
        }
    }
}

/// The end of a call made with credentials fetched for it (a Vertex token,
/// resolved AWS keys): `secrets` are removed from a failure's message (an
/// upstream may quote what it refused), and `refused` runs when the upstream
/// refused them, so that they are fetched anew next time.
pub(crate) fn settle_fetched<T>(
    result: Result<T, CallError>,
    secrets: &[&str],
    refused: impl FnOnce(),
) -> Result<T, CallError> {
    let Err(CallError::Upstream {
        mut failure,
        retry_after,
    }) = result
    else {
        return result;
    };
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        if failure.message.contains(s) {
            failure.message = failure.message.replace(s, "[redacted]");
        }
    }
    if failure.class == modelgate_core::ErrorClass::UpstreamAuth {
        refused();
    }
    Err(CallError::Upstream {
        failure,
        retry_after,
    })
}

/// Credentials fetched for one call: a Vertex access token from a
/// credentials file or the metadata server, or AWS keys resolved by the
/// default chain or an assumed role.
pub(crate) enum Fetched {
    Google(vertex::FetchedToken),
    Aws(bedrock::FetchedAws),
}

/// The end of a call made with credentials fetched for it
/// ([`settle_fetched`]); for an `Option`, nothing when none were fetched.
pub(crate) trait Settle {
    fn settle<T>(self, result: Result<T, CallError>) -> Result<T, CallError>;
}

impl Settle for Fetched {
    fn settle<T>(self, result: Result<T, CallError>) -> Result<T, CallError> {
        match self {
            Fetched::Google(f) => f.settle(result),
            Fetched::Aws(f) => f.settle(result),
        }
    }
}

impl<S: Settle> Settle for Option<S> {
    fn settle<T>(self, result: Result<T, CallError>) -> Result<T, CallError> {
        match self {
            Some(f) => f.settle(result),
            None => result,
        }
    }
}

impl transport::Upstreams {
    /// Adds the credentials the deployment fetches per call to a request
    /// whose other headers are final: a Vertex access token, or a SigV4
    /// signature over `method`, `url`, `headers` and `body` for Bedrock with
    /// AWS credentials. Other deployments carry their key in
    /// [`transport::Upstreams::headers`] already. Settle the call's result
    /// with [`Settle::settle`].
    pub(crate) async fn authorize(
        &self,
        d: &Deployment,
        method: &str,
        url: &str,
        body: &[u8],
        headers: &mut ::http::header::HeaderMap,
    ) -> Result<Option<Fetched>, CallError> {
        Ok(match d.provider {
            modelgate_config::ProviderKind::Vertex => self
                .vertex_authorize(d, headers)
                .await?
                .map(Fetched::Google),
            modelgate_config::ProviderKind::Bedrock => self
                .bedrock_sign(d, method, url, body, headers)
                .await?
                .map(Fetched::Aws),
            _ => None,
        })
    }
}

/// Applies the deployment's request timeout to an in-process mock call.
async fn mock_deadline<T>(
    target: &Target,
    call: impl std::future::Future<Output = Result<T, CallError>>,
) -> Result<T, CallError> {
    let limit = target.deployment.timeouts.request;
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r,
        Err(_) => Err(CallError::upstream(transport::timeout_failure(
            "mock", limit,
        ))),
    }
}

impl Upstreams {
    /// Sends a chat request. `raw` is the client's body, forwarded with minimal
    /// edits to OpenAI-dialect upstreams.
    pub async fn chat(
        &self,
        target: &Target,
        req: &ChatRequest,
        raw: &Bytes,
        ctx: &CallContext,
    ) -> Result<ChatReply, CallError> {
        use modelgate_config::ProviderKind::*;
        match target.deployment.provider {
            OpenAi | OpenAiCompatible | Azure => self.openai_chat(target, req, raw, ctx).await,
            Anthropic => self.anthropic_chat(target, req, ctx).await,
            Gemini => self.gemini_chat(target, req, ctx).await,
            Bedrock => self.bedrock_chat(target, req, ctx).await,
            Vertex => self.vertex_chat(target, req, ctx).await,
            Mock => mock_deadline(target, mock::chat(&target.upstream_model, req, ctx)).await,
        }
    }

    /// Sends an embeddings request.
    pub async fn embeddings(
        &self,
        target: &Target,
        req: &EmbeddingsRequest,
        raw: &Bytes,
        ctx: &CallContext,
    ) -> Result<EmbeddingsReply, CallError> {
        use modelgate_config::ProviderKind::*;
        match target.deployment.provider {
            OpenAi | OpenAiCompatible | Azure => self.openai_embeddings(target, raw, ctx).await,
            Anthropic => Err(CallError::Codec(CodecError::new(
                "model",
                format!(
                    "model {:?} is served by provider anthropic, which has no embeddings endpoint",
                    req.model
                ),
            ))),
            Gemini => self.gemini_embeddings(target, req, ctx).await,
            Mock => mock_deadline(target, mock::embeddings(&target.upstream_model, req)).await,
            Bedrock => self.bedrock_embeddings(target, req, ctx).await,
            Vertex => self.vertex_embeddings(target, req, ctx).await,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn gemini_default_base_matches_the_codec() {
        assert_eq!(
            modelgate_config::GEMINI_DEFAULT_BASE,
            modelgate_codec::gemini::DEFAULT_BASE_URL
        );
    }
}
