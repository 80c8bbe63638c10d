//! Embeddings from providers that do not speak OpenAI's format: the Gemini
//! API (`batchEmbedContents`), Vertex AI (`:predict`) and Bedrock
//! (`InvokeModel` for Titan Text Embeddings and Cohere Embed). The bodies
//! and replies are `modelgate_codec::embeddings`'; this module sends them
//! with each provider's authentication and returns an OpenAI `list`.

use bytes::Bytes;
use modelgate_api::openai::EmbeddingsRequest;
use modelgate_codec::embeddings::{self, BedrockFamily};
use modelgate_codec::{CodecError, UpstreamFailure, bedrock, gemini};
use modelgate_config::VertexPublisher;
use modelgate_core::ErrorClass;
use serde_json::Value;

use crate::{CallContext, CallError, EmbeddingsReply, Settle, Target, Upstreams};

fn encode(v: &Value) -> Result<Vec<u8>, CallError> {
    serde_json::to_vec(v)
        .map_err(|e| CallError::Codec(CodecError::new("", format!("cannot encode request: {e}"))))
}

fn bad_reply(provider: &str, message: String) -> CallError {
    CallError::upstream(UpstreamFailure {
        class: ErrorClass::UpstreamError,
        status: None,
        message: format!("{provider}: {message}"),
        upstream_code: None,
    })
}

/// The OpenAI reply for `vectors`.
fn reply(
    provider: &str,
    req: &EmbeddingsRequest,
    vectors: Vec<Vec<f32>>,
    model: &str,
    tokens: Option<u64>,
) -> Result<EmbeddingsReply, CallError> {
    let (body, usage) =
        embeddings::openai_list(req, vectors, model, tokens).map_err(|m| bad_reply(provider, m))?;
    Ok(EmbeddingsReply {
        body: Bytes::from(body),
        usage: Some(usage),
    })
}

impl Upstreams {
    pub(crate) async fn gemini_embeddings(
        &self,
        target: &Target,
        req: &EmbeddingsRequest,
        ctx: &CallContext,
    ) -> Result<EmbeddingsReply, CallError> {
        let d = &*target.deployment;
        let body = encode(&embeddings::gemini_request(req, &target.upstream_model)?)?;
        let url = gemini::method_url(&d.base_url, &target.upstream_model, "batchEmbedContents");
        let deadline = tokio::time::Instant::now() + d.timeouts.request;
        let resp = self.send(target, url, body, ctx).await?;
        let body = Self::read_body(d, resp, deadline).await?;
        let vectors = embeddings::gemini_response(&body).map_err(|m| bad_reply("gemini", m))?;
        reply("gemini", req, vectors, &target.upstream_model, None)
    }

    pub(crate) async fn vertex_embeddings(
        &self,
        target: &Target,
        req: &EmbeddingsRequest,
        ctx: &CallContext,
    ) -> Result<EmbeddingsReply, CallError> {
        let d = &*target.deployment;
        let v = crate::vertex::settings(d)?;
        if v.publisher_for(&target.upstream_model) != VertexPublisher::Google {
            return Err(CallError::Codec(CodecError::new(
                "model",
                format!(
                    "{:?} is not a Vertex AI embedding model (text-embedding-*, gemini-embedding-*, text-multilingual-embedding-*)",
                    target.upstream_model
                ),
            )));
        }
        let url = format!(
            "{}:predict",
            crate::vertex::model_url(
                &d.base_url,
                &v.project,
                &v.location,
                VertexPublisher::Google,
                &target.upstream_model
            )
        );
        // Gemini embedding models take one instance per request on Vertex.
        let one_each = target.upstream_model.starts_with("gemini-embedding");
        let bodies: Vec<Value> = if one_each {
            embeddings::texts(req)?
                .into_iter()
                .map(|t| {
                    let single = EmbeddingsRequest {
                        input: modelgate_api::openai::EmbeddingInput::One(t.to_owned()),
                        ..req.clone()
                    };
                    embeddings::vertex_request(&single)
                })
                .collect::<Result<_, _>>()?
        } else {
            vec![embeddings::vertex_request(req)?]
        };
        let bodies = bodies.iter().map(encode).collect::<Result<_, _>>()?;
        let (vectors, tokens) = self
            .embed_each(target, ctx, &url, bodies, |b| {
                embeddings::vertex_response(b).map_err(|m| bad_reply("vertex", m))
            })
            .await?;
        reply("vertex", req, vectors, &target.upstream_model, tokens)
    }

    pub(crate) async fn bedrock_embeddings(
        &self,
        target: &Target,
        req: &EmbeddingsRequest,
        ctx: &CallContext,
    ) -> Result<EmbeddingsReply, CallError> {
        let d = &*target.deployment;
        let Some(family) = BedrockFamily::of(&target.upstream_model) else {
            return Err(CallError::Codec(CodecError::new(
                "model",
                format!(
                    "{:?} is not a Bedrock embedding model the gateway can call (Amazon Titan Text Embeddings, Cohere Embed)",
                    target.upstream_model
                ),
            )));
        };
        let url = bedrock::model_url(&d.base_url, &target.upstream_model, "invoke")?;
        let bodies = embeddings::bedrock_requests(req, family)?
            .iter()
            .map(encode)
            .collect::<Result<_, _>>()?;
        let (vectors, tokens) = self
            .embed_each(target, ctx, &url, bodies, |b| {
                embeddings::bedrock_response(b, family).map_err(|m| bad_reply("bedrock", m))
            })
            .await?;
        reply("bedrock", req, vectors, &target.upstream_model, tokens)
    }

    /// Posts each of `bodies` to `url` with the deployment's fetched
    /// credentials, all within one request deadline, and gathers the
    /// vectors `decode` reads from the replies, in order; the token count
    /// only when every reply had one.
    async fn embed_each(
        &self,
        target: &Target,
        ctx: &CallContext,
        url: &str,
        bodies: Vec<Vec<u8>>,
        decode: impl Fn(&[u8]) -> Result<(Vec<Vec<f32>>, Option<u64>), CallError>,
    ) -> Result<(Vec<Vec<f32>>, Option<u64>), CallError> {
        let d = &*target.deployment;
        let deadline = tokio::time::Instant::now() + d.timeouts.request;
        let mut vectors = Vec::new();
        let mut tokens = Some(0u64);
        for body in bodies {
            let mut headers = Self::headers(d, ctx, target.span_id);
            headers.insert(
                http::header::ACCEPT,
                http::header::HeaderValue::from_static("application/json"),
            );
            let fetched = self.authorize(d, "POST", url, &body, &mut headers).await?;
            let sent = self
                .send_with_headers(target, url.to_owned(), body, headers)
                .await;
            let resp = fetched.settle(sent)?;
            let body = Self::read_body(d, resp, deadline).await?;
            let (v, t) = decode(&body)?;
            vectors.extend(v);
            tokens = tokens.zip(t).map(|(a, b)| a + b);
        }
        Ok((vectors, tokens))
    }
}
