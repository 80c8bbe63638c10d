//! The shared HTTP client and the OpenAI / Anthropic / Gemini calls built on it.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use modelgate_api::anthropic::StreamEvent;
use modelgate_api::openai::ChatRequest;
use modelgate_codec::{UpstreamFailure, anthropic, bedrock, gemini, openai};
use modelgate_config::{Config, Deployment, ProviderKind};
use modelgate_core::{ErrorClass, Usage};

use crate::http::{HttpClient, HttpError, Response};
use crate::stream::{SseSource, ended_early};
use crate::{
    CallContext, CallError, ChatReply, ChatStream, EmbeddingsReply, Settle, StreamItem, Target,
};

/// The Anthropic API version we speak.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// The Anthropic API version of Claude on Vertex AI (in the body).
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";
/// [`VERTEX_ANTHROPIC_VERSION`] as a JSON string.
const VERTEX_ANTHROPIC_VERSION_JSON: &[u8] = b"\"vertex-2023-10-16\"";

/// Pooled HTTP clients, one per distinct connect timeout: the request
/// path's own client ([`HttpClient`]) for model calls, and reqwest for the
/// occasional credential exchange (Google and AWS token endpoints).
#[derive(Debug, Clone)]
pub struct Upstreams {
    clients: HashMap<Duration, Clients>,
    default: Clients,
    /// Google OAuth tokens (Vertex AI), cached per credentials file.
    pub(crate) google: Arc<crate::google_auth::TokenSources>,
    /// AWS credentials (Bedrock) that are resolved at run time.
    pub(crate) aws: Arc<crate::aws_auth::AwsCredentialSources>,
}

/// The two clients of one connect timeout.
#[derive(Debug, Clone)]
struct Clients {
    calls: HttpClient,
    auth: reqwest::Client,
}

/// Why the HTTP clients could not be built (TLS set-up).
#[derive(Debug, thiserror::Error)]
#[error("building the upstream HTTP client: {0}")]
pub struct ClientError(String);

fn build_clients(connect: Duration) -> Result<Clients, ClientError> {
    Ok(Clients {
        calls: HttpClient::new(connect).map_err(|e| ClientError(e.to_string()))?,
        auth: build_auth_client(connect).map_err(|e| ClientError(e.to_string()))?,
    })
}

fn build_auth_client(connect: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(connect)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .no_proxy()
        // The attempt loop owns retries and failover.
        .retry(reqwest::retry::never())
        // An upstream that redirects is answered as it is: following would
        // resend the prompt (and, same-host, the provider key) somewhere the
        // configuration never named.
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

impl Upstreams {
    /// Builds clients for every deployment in `config`.
    pub fn new(config: &Config) -> Result<Upstreams, ClientError> {
        // rustls needs a process-wide crypto provider; installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let default_connect = modelgate_config::Timeouts::default().connect;
        let mut clients = HashMap::new();
        for d in config.deployments.iter().chain(config.prefixes.values()) {
            if let std::collections::hash_map::Entry::Vacant(e) = clients.entry(d.timeouts.connect)
            {
                e.insert(build_clients(d.timeouts.connect)?);
            }
        }
        let default = match clients.get(&default_connect) {
            Some(c) => c.clone(),
            None => build_clients(default_connect)?,
        };
        Ok(Upstreams {
            clients,
            default,
            google: Arc::default(),
            aws: Arc::default(),
        })
    }

    fn clients(&self, d: &Deployment) -> &Clients {
        self.clients
            .get(&d.timeouts.connect)
            .unwrap_or(&self.default)
    }

    /// The client for credential exchanges on `d`'s behalf.
    pub(crate) fn client(&self, d: &Deployment) -> &reqwest::Client {
        &self.clients(d).auth
    }

    pub(crate) fn headers(d: &Deployment, ctx: &CallContext, span_id: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
            h.insert(HeaderName::from_static("x-request-id"), v);
        }
        if let Some(tp) = &ctx.trace
            && let Ok(v) = HeaderValue::from_str(&tp.header(span_id))
        {
            h.insert(HeaderName::from_static("traceparent"), v);
        }
        match d.provider {
            ProviderKind::Anthropic => {
                h.insert(
                    HeaderName::from_static("anthropic-version"),
                    HeaderValue::from_static(ANTHROPIC_VERSION),
                );
                if let Some(beta) = &ctx.anthropic_beta
                    && let Ok(v) = HeaderValue::from_str(beta)
                {
                    h.insert(HeaderName::from_static("anthropic-beta"), v);
                }
                if let Some(k) = &d.api_key
                    && let Ok(mut v) = HeaderValue::from_str(k.expose())
                {
                    v.set_sensitive(true);
                    h.insert(HeaderName::from_static("x-api-key"), v);
                }
            }
            // The key goes in a header, never in the `?key=` query parameter:
            // URLs end up in logs.
            ProviderKind::Gemini => {
                if let Some(k) = &d.api_key
                    && let Ok(mut v) = HeaderValue::from_str(k.expose())
                {
                    v.set_sensitive(true);
                    h.insert(HeaderName::from_static(gemini::API_KEY_HEADER), v);
                }
            }
            // Azure's key header; an Entra ID token goes in `headers.authorization`.
            ProviderKind::Azure => {
                if let Some(k) = &d.api_key
                    && let Ok(mut v) = HeaderValue::from_str(k.expose())
                {
                    v.set_sensitive(true);
                    h.insert(HeaderName::from_static("api-key"), v);
                }
            }
            // Vertex: a fixed access token here; a token from a credentials
            // file is added per request (`vertex.rs`).
            ProviderKind::OpenAi
            | ProviderKind::OpenAiCompatible
            | ProviderKind::Bedrock
            | ProviderKind::Vertex
            | ProviderKind::Mock => {
                if let Some(k) = &d.api_key
                    && let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", k.expose()))
                {
                    v.set_sensitive(true);
                    h.insert(http::header::AUTHORIZATION, v);
                }
            }
        }
        for (name, value) in &d.headers {
            if let (Ok(n), Ok(mut v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value.expose()),
            ) {
                v.set_sensitive(true);
                h.insert(n, v);
            }
        }
        h
    }

    /// Sends a request on `d`'s client and waits for the response head
    /// within the request timeout; a timeout or a transport failure becomes
    /// the call's error, any status is returned as it came.
    async fn send_raw(
        &self,
        d: &Deployment,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response, CallError> {
        let send = self.clients(d).calls.send(method, url, headers, body);
        in_time(d, tokio::time::timeout(d.timeouts.request, send).await)
    }

    /// Sends `body` and waits for the response head within the request timeout.
    /// Non-2xx responses are read (bounded) and classified.
    pub(crate) async fn send(
        &self,
        target: &Target,
        url: String,
        body: Vec<u8>,
        ctx: &CallContext,
    ) -> Result<Response, CallError> {
        let headers = Self::headers(&target.deployment, ctx, target.span_id);
        self.send_with_headers(target, url, body, headers).await
    }

    /// [`Upstreams::send`] with the request headers already built (and, for
    /// Bedrock, signed).
    pub(crate) async fn send_with_headers(
        &self,
        target: &Target,
        url: String,
        body: Vec<u8>,
        headers: HeaderMap,
    ) -> Result<Response, CallError> {
        let d = &*target.deployment;
        let provider = d.provider_name();
        let resp = self
            .send_raw(d, Method::POST, &url, headers, Bytes::from(body))
            .await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let error_type = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body =
            match tokio::time::timeout(d.timeouts.request, read_capped(resp, 64 * 1024)).await {
                Ok(b) => b,
                Err(_) => Bytes::new(),
            };
        let mut failure = match d.provider {
            ProviderKind::Anthropic => anthropic::classify_error(status, &body),
            ProviderKind::Gemini => gemini::classify_error(status, &body),
            ProviderKind::Bedrock => bedrock::classify_error(status, error_type.as_deref(), &body),
            ProviderKind::Vertex => crate::vertex::classify_error(status, &body),
            ProviderKind::OpenAi
            | ProviderKind::OpenAiCompatible
            | ProviderKind::Azure
            | ProviderKind::Mock => openai::classify_error(status, &body, provider),
        };
        // Gemini sends no `Retry-After` header: its delay is in the body
        // (`RetryInfo.retryDelay`).
        let retry_after = retry_after.or_else(|| match d.provider {
            ProviderKind::Gemini | ProviderKind::Vertex => {
                gemini::retry_after_seconds(&body).map(|s| s.to_string())
            }
            _ => None,
        });
        if failure.class == ErrorClass::UpstreamAuth {
            // Providers quote (masked) keys in these messages; pass on none of it.
            failure.message = format!("{provider}: authentication failed (HTTP {status})");
        }
        redact_secrets(&mut failure.message, d);
        Err(CallError::Upstream {
            failure,
            retry_after,
        })
    }

    /// Reads a whole non-streaming body by `deadline` (the same one the
    /// request head had: one budget for the whole exchange).
    pub(crate) async fn read_body(
        d: &Deployment,
        resp: Response,
        deadline: tokio::time::Instant,
    ) -> Result<Bytes, CallError> {
        in_time(d, tokio::time::timeout_at(deadline, resp.bytes()).await)
    }

    pub(crate) async fn openai_chat(
        &self,
        target: &Target,
        req: &ChatRequest,
        raw: &Bytes,
        ctx: &CallContext,
    ) -> Result<ChatReply, CallError> {
        let d = &*target.deployment;
        let stream = req.is_stream();
        let opts = openai::stream_options_map(req);
        let cap = ctx
            .output_cap
            .filter(|_| req.output_cap().is_none())
            .map(|c| {
                // OpenAI's reasoning models only take the newer field.
                let field = if d.takes_max_completion_tokens() {
                    "max_completion_tokens"
                } else {
                    "max_tokens"
                };
                (field, c)
            });
        self.openai_call(
            target,
            raw,
            stream,
            opts.as_ref(),
            cap,
            "chat/completions",
            ctx,
        )
        .await
    }

    /// `POST /completions` (the legacy text completions API) on an
    /// OpenAI-dialect deployment: the client's body with only `model`
    /// replaced (and stream usage asked for, like chat).
    pub async fn openai_completions(
        &self,
        target: &Target,
        raw: &Bytes,
        stream: bool,
        stream_options: Option<&serde_json::Map<String, serde_json::Value>>,
        ctx: &CallContext,
    ) -> Result<ChatReply, CallError> {
        let cap = ctx.output_cap.map(|c| ("max_tokens", c));
        self.openai_call(target, raw, stream, stream_options, cap, "completions", ctx)
            .await
    }

    /// One OpenAI-dialect call of `op` with the client's raw body.
    #[allow(clippy::too_many_arguments)]
    async fn openai_call(
        &self,
        target: &Target,
        raw: &Bytes,
        stream: bool,
        opts: Option<&serde_json::Map<String, serde_json::Value>>,
        cap: Option<(&str, u32)>,
        op: &str,
        ctx: &CallContext,
    ) -> Result<ChatReply, CallError> {
        let d = &*target.deployment;
        let provider = d.provider_name();
        let (body, injected) = openai::prepare_body(
            raw,
            opts,
            &target.upstream_model,
            stream && d.stream_usage,
            cap,
        )
        .map_err(|_| {
            CallError::Codec(modelgate_codec::CodecError::new(
                "",
                "request body must be a JSON object",
            ))
        })?;
        let url = openai_url(d, &target.upstream_model, op);
        // The whole non-streaming exchange shares one deadline.
        let deadline = tokio::time::Instant::now() + d.timeouts.request;
        let resp = self.send(target, url, body, ctx).await?;
        if !stream {
            let body = Self::read_body(d, resp, deadline).await?;
            let peek = openai::peek_response(&body).ok_or_else(|| {
                CallError::upstream(UpstreamFailure {
                    class: ErrorClass::UpstreamError,
                    status: None,
                    message: format!("{provider}: response is not valid JSON"),
                    upstream_code: None,
                })
            })?;
            return Ok(ChatReply::Complete {
                body,
                usage: peek.usage,
            });
        }
        let source = SseSource::new(resp, d.timeouts.idle, provider);
        let state = OpenAiStream {
            deployment: target.deployment.clone(),
            source,
            injected,
            saw_finish: false,
            finished: false,
            provider,
        };
        Ok(ChatReply::Stream(ChatStream::new(
            futures_util::stream::unfold(state, |mut s| async move {
                let item = s.next().await?;
                Some((item, s))
            }),
        )))
    }

    pub(crate) async fn anthropic_chat(
        &self,
        target: &Target,
        req: &ChatRequest,
        ctx: &CallContext,
    ) -> Result<ChatReply, CallError> {
        self.anthropic_chat_at(target, req, ctx, None).await
    }

    /// [`Upstreams::anthropic_chat`], or with `vertex` (the model's URL up to
    /// the method, and the authorised headers) the same Messages body sent
    /// to Vertex AI's `rawPredict` / `streamRawPredict`: without `model` (it
    /// is in the URL) and with `anthropic_version: vertex-2023-10-16`
    /// (<https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude>).
    pub(crate) async fn anthropic_chat_at(
        &self,
        target: &Target,
        req: &ChatRequest,
        ctx: &CallContext,
        vertex: Option<(String, HeaderMap)>,
    ) -> Result<ChatReply, CallError> {
        let d = &*target.deployment;
        let label = if vertex.is_some() {
            "vertex"
        } else {
            "anthropic"
        };
        let opts = anthropic::EncodeOptions {
            default_max_tokens: ctx.output_cap.map_or(d.anthropic_max_tokens(), |c| {
                c.min(d.anthropic_max_tokens())
            }),
            drop_unsupported: d.drop_unsupported_params,
        };
        let encoded = anthropic::encode_request(req, &target.upstream_model, &opts)?;
        let cannot = |e: serde_json::Error| {
            CallError::Codec(modelgate_codec::CodecError::new(
                "",
                format!("cannot encode request: {e}"),
            ))
        };
        let body = match &vertex {
            None => serde_json::to_vec(&encoded.request).map_err(cannot)?,
            Some(_) => {
                let mut v = serde_json::to_value(&encoded.request).map_err(cannot)?;
                if let Some(o) = v.as_object_mut() {
                    o.remove("model");
                    o.insert(
                        "anthropic_version".into(),
                        serde_json::Value::String(VERTEX_ANTHROPIC_VERSION.into()),
                    );
                }
                serde_json::to_vec(&v).map_err(cannot)?
            }
        };
        let rctx = anthropic::ResponseContext {
            created: ctx.created,
            json_tool: encoded.context_json_tool.clone(),
            include_usage: req.wants_stream_usage(),
        };
        let deadline = tokio::time::Instant::now() + d.timeouts.request;
        let resp = match vertex {
            None => {
                let url = format!("{}/v1/messages", d.base_url);
                self.send(target, url, body, ctx).await?
            }
            Some((model_url, headers)) => {
                let method = if req.is_stream() {
                    "streamRawPredict"
                } else {
                    "rawPredict"
                };
                let url = format!("{model_url}:{method}");
                self.send_with_headers(target, url, body, headers).await?
            }
        };
        if !req.is_stream() {
            let body = Self::read_body(d, resp, deadline).await?;
            let parsed: modelgate_api::anthropic::MessagesResponse = serde_json::from_slice(&body)
                .map_err(|_| {
                    CallError::upstream(UpstreamFailure {
                        class: ErrorClass::UpstreamError,
                        status: None,
                        message: format!("{label}: response is not a valid Messages object"),
                        upstream_code: None,
                    })
                })?;
            let (completion, usage) = anthropic::decode_response(parsed, &rctx);
            let body = serde_json::to_vec(&completion)
                .map(Bytes::from)
                .unwrap_or_default();
            return Ok(ChatReply::Complete {
                body,
                usage: Some(usage),
            });
        }
        let state = AnthropicStream {
            deployment: target.deployment.clone(),
            source: SseSource::new(resp, d.timeouts.idle, label),
            decoder: anthropic::StreamDecoder::new(rctx),
            queue: VecDeque::new(),
            finished: false,
            label,
        };
        Ok(ChatReply::Stream(ChatStream::new(
            futures_util::stream::unfold(state, |mut s| async move {
                let item = s.next().await?;
                Some((item, s))
            }),
        )))
    }

    /// A chat request translated to Gemini's `generateContent`, or for streams
    /// `streamGenerateContent?alt=sse`, and the reply translated back.
    pub(crate) async fn gemini_chat(
        &self,
        target: &Target,
        req: &ChatRequest,
        ctx: &CallContext,
    ) -> Result<ChatReply, CallError> {
        self.gemini_chat_at(target, req, ctx, None).await
    }

    /// [`Upstreams::gemini_chat`], or with `vertex` (the model's URL up to
    /// the method, and the authorised headers) the same body sent to Vertex
    /// AI's `generateContent` / `streamGenerateContent?alt=sse`.
    pub(crate) async fn gemini_chat_at(
        &self,
        target: &Target,
        req: &ChatRequest,
        ctx: &CallContext,
        vertex: Option<(String, HeaderMap)>,
    ) -> Result<ChatReply, CallError> {
        let d = &*target.deployment;
        let label = if vertex.is_some() { "vertex" } else { "gemini" };
        // The budget's cap applies when the client set none; with a
        // configured default too, the smaller one wins.
        let default_max_tokens = match (ctx.output_cap, d.default_max_tokens) {
            (Some(cap), Some(default)) => Some(cap.min(default)),
            (cap, default) => cap.or(default),
        };
        let opts = gemini::EncodeOptions {
            default_max_tokens,
            drop_unsupported: d.drop_unsupported_params,
        };
        let encoded = gemini::encode_request(req, &target.upstream_model, &opts)?;
        let body = serde_json::to_vec(&encoded.request).map_err(|e| {
            CallError::Codec(modelgate_codec::CodecError::new(
                "",
                format!("cannot encode request: {e}"),
            ))
        })?;
        let deadline = tokio::time::Instant::now() + d.timeouts.request;
        let resp = match vertex {
            None => {
                let url = gemini::chat_url(&d.base_url, &target.upstream_model, encoded.stream);
                self.send(target, url, body, ctx).await?
            }
            Some((model_url, headers)) => {
                let method = if encoded.stream {
                    "streamGenerateContent?alt=sse"
                } else {
                    "generateContent"
                };
                let url = format!("{model_url}:{method}");
                self.send_with_headers(target, url, body, headers).await?
            }
        };
        let mut rctx = gemini::ResponseContext {
            created: ctx.created,
            model: target.upstream_model.clone(),
            include_usage: false,
        };
        if !encoded.stream {
            let body = Self::read_body(d, resp, deadline).await?;
            let parsed: modelgate_api::gemini::GenerateContentResponse =
                serde_json::from_slice(&body).map_err(|_| {
                    CallError::upstream(UpstreamFailure {
                        class: ErrorClass::UpstreamError,
                        status: None,
                        message: format!(
                            "{label}: response is not a valid GenerateContentResponse"
                        ),
                        upstream_code: None,
                    })
                })?;
            // A prompt Gemini blocked is a content-policy failure.
            let (completion, usage) = gemini::decode_response(parsed, &rctx).map_err(|mut f| {
                redact_secrets(&mut f.message, d);
                CallError::upstream(f)
            })?;
            let body = serde_json::to_vec(&completion)
                .map(Bytes::from)
                .unwrap_or_default();
            return Ok(ChatReply::Complete {
                body,
                usage: Some(usage),
            });
        }
        // The decoder always makes the final usage chunk, so usage that comes
        // on an event of its own still reaches the settlement; it is only
        // forwarded when the client asked for it.
        rctx.include_usage = true;
        let state = GeminiStream {
            deployment: target.deployment.clone(),
            source: SseSource::new(resp, d.timeouts.idle, label),
            decoder: gemini::StreamDecoder::new(rctx),
            forward_usage: req.wants_stream_usage(),
            queue: VecDeque::new(),
            finished: false,
        };
        Ok(ChatReply::Stream(ChatStream::new(
            futures_util::stream::unfold(state, |mut s| async move {
                let item = s.next().await?;
                Some((item, s))
            }),
        )))
    }

    /// Sends a Messages request body as the client wrote it to a deployment
    /// that speaks Messages ([`Deployment::speaks_messages`]), and passes the
    /// reply through: thinking blocks and signatures, `cache_control`, server
    /// tools and fields added later all survive. The reply is metered, not
    /// rewritten. Anthropic gets the body with only `model` replaced; Claude
    /// on Vertex AI gets it without `model` (the URL names it) and with
    /// Vertex's `anthropic_version`, at `:rawPredict` / `:streamRawPredict`.
    pub async fn anthropic_native(
        &self,
        target: &Target,
        raw: &Bytes,
        stream: bool,
        ctx: &CallContext,
    ) -> Result<ChatReply, CallError> {
        let d = &*target.deployment;
        let not_an_object = |_| {
            CallError::Codec(modelgate_codec::CodecError::new(
                "",
                "request body must be a JSON object",
            ))
        };
        let deadline = tokio::time::Instant::now() + d.timeouts.request;
        let (resp, label) = if d.provider == ProviderKind::Vertex {
            let body = modelgate_codec::json::edit_members(
                raw,
                &["model"],
                &[("anthropic_version", VERTEX_ANTHROPIC_VERSION_JSON)],
            )
            .map_err(not_an_object)?;
            let method = if stream {
                "streamRawPredict"
            } else {
                "rawPredict"
            };
            let resp = self
                .vertex_anthropic_send(target, ctx, &target.upstream_model, method, body)
                .await?;
            (resp, "vertex")
        } else {
            let model = serde_json::to_vec(&target.upstream_model).unwrap_or_default();
            let body = modelgate_codec::json::set_members(raw, &[("model", &model)])
                .map_err(not_an_object)?;
            let url = format!("{}/v1/messages", d.base_url);
            (self.send(target, url, body, ctx).await?, "anthropic")
        };
        if !stream {
            let body = Self::read_body(d, resp, deadline).await?;
            let usage = serde_json::from_slice::<modelgate_api::anthropic::MessagesResponse>(&body)
                .map_err(|_| {
                    CallError::upstream(UpstreamFailure {
                        class: ErrorClass::UpstreamError,
                        status: None,
                        message: format!("{label}: response is not a valid Messages object"),
                        upstream_code: None,
                    })
                })
                .map(|m| anthropic::native_usage(&m.usage))?;
            return Ok(ChatReply::Complete {
                body,
                usage: Some(usage),
            });
        }
        let state = NativeStream {
            deployment: target.deployment.clone(),
            source: SseSource::new(resp, d.timeouts.idle, label),
            meter: anthropic::NativeMeter::default(),
            finished: false,
            pending_done: false,
        };
        Ok(ChatReply::Stream(ChatStream::new(
            futures_util::stream::unfold(state, |mut s| async move {
                let item = s.next().await?;
                Some((item, s))
            }),
        )))
    }

    /// `POST /responses` on an OpenAI deployment: the client's body with only
    /// `model` replaced; the reply (or each stream event) passes through
    /// unchanged and is metered.
    pub async fn openai_responses(
        &self,
        target: &Target,
        raw: &Bytes,
        stream: bool,
        ctx: &CallContext,
    ) -> Result<ChatReply, CallError> {
        let d = &*target.deployment;
        let model = serde_json::to_vec(&target.upstream_model).unwrap_or_default();
        let body = modelgate_codec::json::set_members(raw, &[("model", &model)]).map_err(|_| {
            CallError::Codec(modelgate_codec::CodecError::new(
                "",
                "request body must be a JSON object",
            ))
        })?;
        let url = format!("{}/responses", d.base_url);
        let deadline = tokio::time::Instant::now() + d.timeouts.request;
        let resp = self.send(target, url, body, ctx).await?;
        if !stream {
            let body = Self::read_body(d, resp, deadline).await?;
            let usage = openai::responses_usage(&body);
            return Ok(ChatReply::Complete { body, usage });
        }
        let provider = d.provider_name();
        let state = ResponsesStream {
            deployment: target.deployment.clone(),
            source: SseSource::new(resp, d.timeouts.idle, provider),
            provider,
            finished: false,
            pending_done: false,
        };
        Ok(ChatReply::Stream(ChatStream::new(
            futures_util::stream::unfold(state, |mut s| async move {
                let item = s.next().await?;
                Some((item, s))
            }),
        )))
    }

    /// A provider-native request the gateway does not model: `method` on
    /// `{base_url}/{path}` (with `query`), the deployment's credentials added,
    /// the client's `content-type` and `accept` kept. The response comes back
    /// unread (status, headers and a byte stream) once its head arrived.
    pub async fn passthrough(
        &self,
        target: &Target,
        native: NativeRequest<'_>,
        ctx: &CallContext,
    ) -> Result<Response, CallError> {
        let NativeRequest {
            method,
            path,
            query,
            headers: client_headers,
            body,
        } = native;
        let d = &*target.deployment;
        let mut url = format!("{}/{}", d.base_url, path.trim_start_matches('/'));
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(q);
        }
        let mut headers = Self::headers(d, ctx, target.span_id);
        headers.remove(http::header::CONTENT_TYPE);
        for name in [http::header::CONTENT_TYPE, http::header::ACCEPT] {
            if let Some(v) = client_headers.get(&name) {
                headers.insert(name, v.clone());
            }
        }
        if d.provider == ProviderKind::Anthropic
            && let Some(v) = client_headers.get("anthropic-beta")
        {
            headers.insert(HeaderName::from_static("anthropic-beta"), v.clone());
        }
        // Vertex's access token, or Bedrock's SigV4 signature.
        let fetched = self
            .authorize(d, method.as_str(), &url, &body, &mut headers)
            .await?;
        let result = self.send_raw(d, method, &url, headers, body).await;
        fetched.settle(result)
    }

    /// `POST /v1/messages/count_tokens` on an Anthropic deployment (the
    /// client's body, `model` replaced); the answer as it came.
    pub async fn anthropic_count_tokens(
        &self,
        target: &Target,
        raw: &Bytes,
        ctx: &CallContext,
    ) -> Result<Bytes, CallError> {
        let d = &*target.deployment;
        let model = serde_json::to_vec(&target.upstream_model).unwrap_or_default();
        let deadline = tokio::time::Instant::now() + d.timeouts.request;
        let vertex = d.provider == ProviderKind::Vertex;
        let mut set: Vec<(&str, &[u8])> = vec![("model", &model)];
        if vertex {
            set.push(("anthropic_version", VERTEX_ANTHROPIC_VERSION_JSON));
        }
        let body = modelgate_codec::json::set_members(raw, &set).map_err(|_| {
            CallError::Codec(modelgate_codec::CodecError::new(
                "",
                "request body must be a JSON object",
            ))
        })?;
        let resp = if vertex {
            // Vertex counts Claude tokens at a model of its own, the model
            // named in the body.
            self.vertex_anthropic_send(target, ctx, "count-tokens", "rawPredict", body)
                .await?
        } else {
            let url = format!("{}/v1/messages/count_tokens", d.base_url);
            self.send(target, url, body, ctx).await?
        };
        Self::read_body(d, resp, deadline).await
    }

    pub(crate) async fn openai_embeddings(
        &self,
        target: &Target,
        raw: &Bytes,
        ctx: &CallContext,
    ) -> Result<EmbeddingsReply, CallError> {
        let d = &*target.deployment;
        let (body, _) = openai::prepare_body(raw, None, &target.upstream_model, false, None)
            .map_err(|_| {
                CallError::Codec(modelgate_codec::CodecError::new(
                    "",
                    "request body must be a JSON object",
                ))
            })?;
        let url = openai_url(d, &target.upstream_model, "embeddings");
        let deadline = tokio::time::Instant::now() + d.timeouts.request;
        let resp = self.send(target, url, body, ctx).await?;
        let body = Self::read_body(d, resp, deadline).await?;
        let usage = openai::peek_response(&body).and_then(|p| p.usage);
        Ok(EmbeddingsReply { body, usage })
    }
}

struct OpenAiStream {
    deployment: Arc<Deployment>,
    source: SseSource,
    injected: bool,
    saw_finish: bool,
    finished: bool,
    provider: &'static str,
}

impl OpenAiStream {
    async fn next(&mut self) -> Option<StreamItem> {
        if self.finished {
            return None;
        }
        let item = match self.source.next_event().await {
            Err(f) => StreamItem::Failed(f),
            Ok(None) if self.saw_finish => StreamItem::Done,
            Ok(None) => StreamItem::Failed(ended_early(self.provider)),
            Ok(Some(ev)) if ev.data.trim() == "[DONE]" => StreamItem::Done,
            Ok(Some(ev)) => match openai::peek_chunk(&ev.data, self.provider) {
                Err(f) => StreamItem::Failed(f),
                Ok(p) => {
                    self.saw_finish |= p.finished;
                    StreamItem::Chunk {
                        forward: !(p.usage_only && self.injected),
                        has_content: p.has_content,
                        content_chars: p.content_chars,
                        usage: p.usage,
                        data: Bytes::from(ev.data),
                    }
                }
            },
        };
        let mut item = item;
        if let StreamItem::Failed(f) = &mut item {
            redact_secrets(&mut f.message, &self.deployment);
        }
        self.finished = matches!(item, StreamItem::Done | StreamItem::Failed(_));
        Some(item)
    }
}

struct AnthropicStream {
    deployment: Arc<Deployment>,
    source: SseSource,
    decoder: anthropic::StreamDecoder,
    queue: VecDeque<StreamItem>,
    finished: bool,
    /// `anthropic`, or `vertex` for Claude on Vertex AI.
    label: &'static str,
}

impl AnthropicStream {
    async fn next(&mut self) -> Option<StreamItem> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if self.finished {
                return None;
            }
            match self.source.next_event().await {
                Err(f) => self.fail(f),
                Ok(None) => self.fail(ended_early(self.label)),
                Ok(Some(ev)) => match serde_json::from_str::<StreamEvent>(&ev.data) {
                    Err(_) => self.fail(UpstreamFailure {
                        class: ErrorClass::UpstreamError,
                        status: None,
                        message: format!("{}: malformed stream event", self.label),
                        upstream_code: None,
                    }),
                    Ok(event) => match self.decoder.on_event(event) {
                        Err(f) => self.fail(f),
                        Ok(chunks) => {
                            let usage = Some(self.decoder.usage());
                            for c in &chunks {
                                self.queue.push_back(StreamItem::from_chunk(c, usage));
                            }
                            if self.decoder.is_done() {
                                self.queue.push_back(StreamItem::Done);
                                self.finished = true;
                            }
                        }
                    },
                },
            }
        }
    }

    fn fail(&mut self, mut f: UpstreamFailure) {
        redact_secrets(&mut f.message, &self.deployment);
        self.queue.push_back(StreamItem::Failed(f));
        self.finished = true;
    }
}

/// A Responses API stream passed through: each event's JSON as it came, metered.
struct ResponsesStream {
    deployment: Arc<Deployment>,
    source: SseSource,
    provider: &'static str,
    finished: bool,
    /// The terminal event went out; `Done` follows.
    pending_done: bool,
}

impl ResponsesStream {
    async fn next(&mut self) -> Option<StreamItem> {
        if self.pending_done {
            self.pending_done = false;
            self.finished = true;
            return Some(StreamItem::Done);
        }
        if self.finished {
            return None;
        }
        let failed = |s: &mut Self, mut f: UpstreamFailure| {
            redact_secrets(&mut f.message, &s.deployment);
            s.finished = true;
            Some(StreamItem::Failed(f))
        };
        match self.source.next_event().await {
            Err(f) => failed(self, f),
            Ok(None) => failed(self, ended_early(self.provider)),
            Ok(Some(ev)) if ev.data.trim() == "[DONE]" => {
                self.finished = true;
                Some(StreamItem::Done)
            }
            Ok(Some(ev)) => match openai::peek_responses_event(&ev.data, self.provider) {
                Err(f) => failed(self, f),
                Ok(peek) => {
                    self.pending_done = peek.done;
                    Some(StreamItem::Chunk {
                        data: Bytes::from(ev.data),
                        has_content: peek.has_content,
                        content_chars: peek.content_chars,
                        usage: peek.usage,
                        forward: true,
                    })
                }
            },
        }
    }
}

/// A Gemini stream translated to OpenAI chunks. Gemini sends no end event:
/// the stream is complete when the connection closes cleanly after every
/// candidate has finished ([`gemini::StreamDecoder::finish`]).
struct GeminiStream {
    deployment: Arc<Deployment>,
    source: SseSource,
    decoder: gemini::StreamDecoder,
    /// The client asked for the final usage chunk.
    forward_usage: bool,
    queue: VecDeque<StreamItem>,
    finished: bool,
}

impl GeminiStream {
    async fn next(&mut self) -> Option<StreamItem> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if self.finished {
                return None;
            }
            match self.source.next_event().await {
                Err(f) => self.fail(f),
                Ok(None) => match self.decoder.finish() {
                    Err(f) => self.fail(f),
                    Ok(chunks) => {
                        self.push(&chunks);
                        self.queue.push_back(StreamItem::Done);
                        self.finished = true;
                    }
                },
                Ok(Some(ev)) if ev.data.trim().is_empty() => {}
                Ok(Some(ev)) => match self.decoder.on_data(&ev.data) {
                    Err(f) => self.fail(f),
                    Ok(chunks) => self.push(&chunks),
                },
            }
        }
    }

    fn push(&mut self, chunks: &[modelgate_api::openai::ChatChunk]) {
        let usage = self.decoder.usage();
        // Before any `usageMetadata` the counts are zeros, not a report.
        let usage = (usage != Usage::default()).then_some(usage);
        for c in chunks {
            let mut item = StreamItem::from_chunk(c, usage);
            if c.choices.is_empty()
                && c.usage.is_some()
                && let StreamItem::Chunk { forward, .. } = &mut item
            {
                *forward = self.forward_usage;
            }
            self.queue.push_back(item);
        }
    }

    fn fail(&mut self, mut f: UpstreamFailure) {
        redact_secrets(&mut f.message, &self.deployment);
        self.queue.push_back(StreamItem::Failed(f));
        self.finished = true;
    }
}

/// A provider-native request for [`Upstreams::passthrough`].
#[derive(Debug)]
pub struct NativeRequest<'a> {
    pub method: Method,
    /// Appended to the deployment's base URL.
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The client's headers (only `content-type`, `accept` and
    /// `anthropic-beta` are forwarded).
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

/// An Anthropic stream passed through: each event's JSON as it came, metered.
struct NativeStream {
    deployment: Arc<Deployment>,
    source: SseSource,
    meter: anthropic::NativeMeter,
    finished: bool,
    /// `message_stop` went out; `Done` follows.
    pending_done: bool,
}

impl NativeStream {
    async fn next(&mut self) -> Option<StreamItem> {
        if self.pending_done {
            self.pending_done = false;
            self.finished = true;
            return Some(StreamItem::Done);
        }
        if self.finished {
            return None;
        }
        let failed = |s: &mut Self, mut f: UpstreamFailure| {
            redact_secrets(&mut f.message, &s.deployment);
            s.finished = true;
            Some(StreamItem::Failed(f))
        };
        match self.source.next_event().await {
            Err(f) => failed(self, f),
            Ok(None) => failed(self, ended_early("anthropic")),
            Ok(Some(ev)) => match serde_json::from_str::<StreamEvent>(&ev.data) {
                Err(_) => failed(
                    self,
                    UpstreamFailure {
                        class: ErrorClass::UpstreamError,
                        status: None,
                        message: "anthropic: malformed stream event".into(),
                        upstream_code: None,
                    },
                ),
                Ok(event) => match self.meter.on_event(&event) {
                    Err(f) => failed(self, f),
                    Ok(peek) => {
                        self.pending_done = peek.done;
                        Some(StreamItem::Chunk {
                            data: Bytes::from(ev.data),
                            has_content: peek.has_content,
                            content_chars: peek.content_chars,
                            usage: Some(self.meter.usage()),
                            forward: true,
                        })
                    }
                },
            },
        }
    }
}

/// The URL of an OpenAI-dialect operation: `{base}/{op}`, or for Azure
/// `{base}/openai/deployments/{deployment}/{op}?api-version={v}`.
fn openai_url(d: &Deployment, deployment: &str, op: &str) -> String {
    match (d.provider, &d.api_version) {
        (ProviderKind::Azure, Some(v)) => format!(
            "{}/openai/deployments/{}/{op}?api-version={}",
            d.base_url,
            percent_encode_segment(deployment),
            percent_encode_segment(v)
        ),
        _ => format!("{}/{op}", d.base_url),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so a
/// deployment name cannot escape its path segment.
fn percent_encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Upstreams sometimes quote the credential they rejected; never pass it on.
pub(crate) fn redact_secrets(message: &mut String, d: &Deployment) {
    let aws = d.bedrock.iter().filter_map(|b| match &b.aws {
        Some(modelgate_config::AwsAuth::Static(c)) => Some(c),
        _ => None,
    });
    let secrets = d
        .api_key
        .iter()
        .chain(d.headers.iter().map(|(_, v)| v))
        .chain(aws.flat_map(|c| {
            [&c.access_key_id, &c.secret_access_key]
                .into_iter()
                .chain(&c.session_token)
        }))
        .map(|s| s.expose())
        .filter(|s| s.len() >= 4);
    for s in secrets {
        if message.contains(s) {
            *message = message.replace(s, "[redacted]");
        }
    }
}

async fn read_capped(resp: Response, cap: usize) -> Bytes {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(Ok(chunk)) = body.next().await {
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= cap {
            break;
        }
    }
    Bytes::from(out)
}

pub(crate) fn timeout_failure(provider: &str, after: Duration) -> UpstreamFailure {
    UpstreamFailure {
        class: ErrorClass::UpstreamTimeout,
        status: None,
        message: format!("{provider}: no response within {} ms", after.as_millis()),
        upstream_code: None,
    }
}

/// Describes a transport error without echoing URLs or headers.
/// The outcome of an HTTP step bounded by `d`'s request timeout: the
/// timeout or a transport failure as the call's error.
fn in_time<T>(
    d: &Deployment,
    outcome: Result<Result<T, HttpError>, tokio::time::error::Elapsed>,
) -> Result<T, CallError> {
    match outcome {
        Err(_) => Err(CallError::upstream(timeout_failure(
            d.provider_name(),
            d.timeouts.request,
        ))),
        Ok(Err(e)) => Err(CallError::upstream(transport_failure(
            d.provider_name(),
            &e,
        ))),
        Ok(Ok(v)) => Ok(v),
    }
}

fn transport_failure(provider: &str, e: &HttpError) -> UpstreamFailure {
    let (class, what) = if e.is_timeout() {
        (ErrorClass::UpstreamTimeout, "timed out")
    } else if e.is_connect() {
        (ErrorClass::UpstreamUnavailable, "connection failed")
    } else if e.is_body() {
        (
            ErrorClass::UpstreamUnavailable,
            "connection lost while reading the response",
        )
    } else {
        (ErrorClass::UpstreamUnavailable, "request failed")
    };
    // The innermost cause says what actually happened ("Connection refused
    // (os error 111)", "invalid peer certificate: UnknownIssuer", a DNS
    // failure); the layers above it only repeat "client error (Connect)".
    let message = match root_cause(e) {
        Some(cause) => format!("{provider}: {what}: {cause}"),
        None => format!("{provider}: {what}"),
    };
    UpstreamFailure {
        class,
        status: None,
        message,
        upstream_code: None,
    }
}

/// The innermost error under `e`, when there is one below it.
fn root_cause(e: &HttpError) -> Option<String> {
    let mut source = std::error::Error::source(e)?;
    while let Some(next) = source.source() {
        source = next;
    }
    let text = source.to_string();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A port nothing listens on.
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    async fn failure_for(url: &str) -> UpstreamFailure {
        let client = HttpClient::new(Duration::from_secs(5)).unwrap();
        let e = client
            .send(Method::POST, url, HeaderMap::new(), Bytes::new())
            .await
            .unwrap_err();
        transport_failure("openai", &e)
    }

    #[tokio::test]
    async fn a_refused_connection_says_so() {
        let f = failure_for(&format!("http://127.0.0.1:{}/v1/x", closed_port())).await;
        assert_eq!(f.class, ErrorClass::UpstreamUnavailable);
        assert!(
            f.message.starts_with("openai: connection failed: ")
                && f.message.to_lowercase().contains("refused"),
            "{}",
            f.message
        );
    }

    #[tokio::test]
    async fn a_failed_tls_handshake_names_the_tls_error() {
        // Plain HTTP where the client expects TLS.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let f = failure_for(&format!("https://127.0.0.1:{port}/v1/x")).await;
        assert_eq!(f.class, ErrorClass::UpstreamUnavailable);
        assert!(
            f.message.starts_with("openai: connection failed: ") && f.message.len() > 30,
            "{}",
            f.message
        );
    }
}
