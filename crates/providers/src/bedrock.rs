//! Amazon Bedrock Converse / ConverseStream calls.
//!
//! The pure half is `modelgate_codec::bedrock` (translation),
//! `modelgate_codec::eventstream` (binary framing) and
//! `modelgate_codec::sigv4` (signing); this module only sends and reads.
//!
//! Authentication, per deployment: a Bedrock API key goes out as
//! `Authorization: Bearer` (set by the shared header builder); AWS
//! credentials sign every request with SigV4 just before it is sent: the
//! `x-amz-date` comes from the clock at that moment (a retry is a new
//! request with a new signature), the payload hash is that of the exact body
//! bytes sent, and the signed `host` is the URL's, which is what the HTTP
//! client sends.
//!
//! Streams are `application/vnd.amazon.eventstream`: body bytes go through
//! an [`EventStreamDecoder`] (frames may be split anywhere), each message
//! through [`bedrock::StreamDecoder`]. The answer is complete at
//! `messageStop`; the `metadata` event with usage follows it. An exception
//! message, a corrupt frame, an idle gap longer than the deployment's `idle`
//! timeout or an end of body before `messageStop` fails the stream.

use std::collections::VecDeque;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use modelgate_api::openai::ChatRequest;
use modelgate_codec::eventstream::EventStreamDecoder;
use modelgate_codec::{CodecError, UpstreamFailure, bedrock, sigv4};
use modelgate_config::{AwsCredentials, BedrockConfig, Deployment};
use modelgate_core::ErrorClass;

use crate::aws_auth::AwsCredentialSource;
use crate::credentials::AuthError;
use crate::stream::ended_early;
use crate::transport::redact_secrets;
use crate::{CallContext, CallError, ChatReply, ChatStream, Settle, StreamItem, Target, Upstreams};

const PROVIDER: &str = "bedrock";
/// Longest wait for credentials resolved at run time (STS, IMDS, ...).
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(30);

/// A failure of ours (configuration), not the upstream's.
fn internal(message: String) -> CallError {
    CallError::upstream(UpstreamFailure {
        class: ErrorClass::Internal,
        status: None,
        message,
        upstream_code: None,
    })
}

/// Adds the SigV4 headers for `body` sent with `method` to `url` with `headers`.
fn sign(
    b: &BedrockConfig,
    creds: &AwsCredentials,
    method: &str,
    url: &str,
    body: &[u8],
    headers: &mut HeaderMap,
) -> Result<(), CallError> {
    // Only headers we send unchanged are signed: the content type (whatever
    // the deployment's extra headers made it) besides host and x-amz-*.
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let signed_headers: &[(&str, &str)] = match &content_type {
        Some(ct) => &[("content-type", ct)],
        None => &[],
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let amz_date = sigv4::amz_date(now);
    let hash = sigv4::sha256_hex(body);
    let signed = sigv4::sign(
        &sigv4::SignableRequest {
            method,
            url,
            headers: signed_headers,
            body_sha256_hex: &hash,
        },
        &sigv4::Credentials {
            access_key_id: creds.access_key_id.expose(),
            secret_access_key: creds.secret_access_key.expose(),
            session_token: creds.session_token.as_ref().map(|t| t.expose()),
        },
        &sigv4::SigningParams {
            region: &b.region,
            service: sigv4::BEDROCK_SERVICE,
            amz_date: &amz_date,
            content_sha256_header: false,
        },
    )
    .map_err(|e| internal(format!("{PROVIDER}: {e}")))?;
    for (name, value) in signed {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| internal(format!("{PROVIDER}: invalid signed header")))?;
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| internal(format!("{PROVIDER}: invalid signed header value")))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(())
}

/// Credentials resolved at run time for one call: redacted from its
/// failure, and forgotten when Bedrock refuses them.
pub(crate) struct FetchedAws {
    source: Arc<AwsCredentialSource>,
    creds: Arc<AwsCredentials>,
}

impl crate::Settle for FetchedAws {
    fn settle<T>(self, result: Result<T, CallError>) -> Result<T, CallError> {
        let c = &*self.creds;
        let mut secrets = vec![c.access_key_id.expose(), c.secret_access_key.expose()];
        secrets.extend(c.session_token.as_ref().map(|t| t.expose()));
        crate::settle_fetched(result, &secrets, || self.source.invalidate(&self.creds))
    }
}

/// A credential failure as a call failure: unusable or refused credentials
/// are an auth failure (the router moves on), an unreachable credential
/// endpoint a transient one.
fn aws_auth_failure(e: AuthError) -> CallError {
    let (class, status) = match &e {
        AuthError::Credentials(_) => (ErrorClass::UpstreamAuth, None),
        AuthError::Refused { status, .. } => (
            match status {
                Some(s) if *s >= 500 => ErrorClass::UpstreamUnavailable,
                _ => ErrorClass::UpstreamAuth,
            },
            *status,
        ),
        AuthError::Unavailable(_) => (ErrorClass::UpstreamUnavailable, None),
    };
    CallError::upstream(UpstreamFailure {
        class,
        status,
        message: format!("{PROVIDER}: {e}"),
        upstream_code: None,
    })
}

impl Upstreams {
    /// Signs a request to deployment `d` when it uses AWS credentials:
    /// fixed ones at once, others resolved (and cached) first. Returns the
    /// resolved credentials, to [`FetchedAws::settle`] the call with.
    pub(crate) async fn bedrock_sign(
        &self,
        d: &Deployment,
        method: &str,
        url: &str,
        body: &[u8],
        headers: &mut HeaderMap,
    ) -> Result<Option<FetchedAws>, CallError> {
        let Some(b) = d.bedrock.as_ref().filter(|b| b.aws.is_some()) else {
            return Ok(None);
        };
        if let Some(creds) = b.static_credentials() {
            sign(b, creds, method, url, body, headers)?;
            return Ok(None);
        }
        let Some(source) = self.aws.get(b) else {
            return Ok(None);
        };
        let creds = source
            .credentials(self.client(d), d.timeouts.request.min(CREDENTIALS_TIMEOUT))
            .await
            .map_err(aws_auth_failure)?;
        sign(b, &creds, method, url, body, headers)?;
        Ok(Some(FetchedAws { source, creds }))
    }

    pub(crate) async fn bedrock_chat(
        &self,
        target: &Target,
        req: &ChatRequest,
        ctx: &CallContext,
    ) -> Result<ChatReply, CallError> {
        let d = &*target.deployment;
        let Some(b) = d.bedrock.as_ref() else {
            return Err(internal(format!(
                "{PROVIDER}: deployment {} has no Bedrock settings",
                d.name
            )));
        };
        let opts = bedrock::EncodeOptions {
            // The budget's cap when the client set none, within the
            // deployment's own default.
            default_max_tokens: match (ctx.output_cap, b.default_max_tokens) {
                (Some(cap), Some(dflt)) => Some(cap.min(dflt)),
                (cap, dflt) => cap.or(dflt),
            },
            drop_unsupported: d.drop_unsupported_params,
            additional_model_request_fields: b.additional_model_request_fields.clone(),
        };
        let encoded = bedrock::encode_request(req, &target.upstream_model, &opts)?;
        let body = serde_json::to_vec(&encoded.request)
            .map_err(|e| CodecError::new("", format!("cannot encode request: {e}")))?;
        let url = encoded.url(&d.base_url)?;
        let mut headers = Self::headers(d, ctx, target.span_id);
        let fetched = self
            .bedrock_sign(d, "POST", &url, &body, &mut headers)
            .await?;
        let deadline = tokio::time::Instant::now() + d.timeouts.request;
        let sent = self.send_with_headers(target, url, body, headers).await;
        let resp = fetched.settle(sent)?;
        let mut rctx = bedrock::ResponseContext {
            created: ctx.created,
            // Converse replies carry no id; AWS's request id is the closest.
            id: format!(
                "chatcmpl-{}",
                resp.headers()
                    .get("x-amzn-requestid")
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty() && v.len() <= 128)
                    .unwrap_or(&ctx.request_id)
            ),
            model: target.upstream_model.clone(),
            json_tool: encoded.context_json_tool.clone(),
            include_usage: req.wants_stream_usage(),
        };
        if !encoded.stream {
            let body = Self::read_body(d, resp, deadline).await?;
            let parsed: modelgate_api::bedrock::ConverseResponse = serde_json::from_slice(&body)
                .map_err(|_| {
                    CallError::upstream(UpstreamFailure {
                        class: ErrorClass::UpstreamError,
                        status: None,
                        message: format!("{PROVIDER}: response is not a valid Converse reply"),
                        upstream_code: None,
                    })
                })?;
            let (completion, usage) = bedrock::decode_response(parsed, &rctx);
            let body = serde_json::to_vec(&completion)
                .map(Bytes::from)
                .unwrap_or_default();
            return Ok(ChatReply::Complete {
                body,
                usage: Some(usage),
            });
        }
        // The gateway always needs the usage; the client only sees the
        // usage chunk when it asked for one.
        let client_usage = rctx.include_usage;
        rctx.include_usage = true;
        let state = BedrockStream {
            deployment: target.deployment.clone(),
            body: resp.bytes_stream(),
            idle: d.timeouts.idle,
            frames: EventStreamDecoder::new(),
            decoder: bedrock::StreamDecoder::new(rctx),
            queue: VecDeque::new(),
            finished: false,
            client_usage,
        };
        Ok(ChatReply::Stream(ChatStream::new(
            futures_util::stream::unfold(state, |mut s| async move {
                let item = s.next().await?;
                Some((item, s))
            }),
        )))
    }
}

/// A ConverseStream response being translated into OpenAI chunks.
struct BedrockStream {
    deployment: Arc<Deployment>,
    body: crate::http::BodyStream,
    idle: Duration,
    frames: EventStreamDecoder,
    decoder: bedrock::StreamDecoder,
    queue: VecDeque<StreamItem>,
    finished: bool,
    /// The client asked for `stream_options.include_usage`.
    client_usage: bool,
}

impl BedrockStream {
    async fn next(&mut self) -> Option<StreamItem> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if self.finished {
                return None;
            }
            match tokio::time::timeout(self.idle, self.body.next()).await {
                Err(_) => self.fail(UpstreamFailure {
                    class: ErrorClass::UpstreamTimeout,
                    status: None,
                    message: format!(
                        "{PROVIDER}: no stream data for {} ms (idle timeout)",
                        self.idle.as_millis()
                    ),
                    upstream_code: None,
                }),
                // The answer is whole at `messageStop`; a connection closed
                // before the usage arrived loses only the usage (estimated).
                Ok(None) if self.decoder.is_done() => self.done(),
                Ok(None) => self.fail(ended_early(PROVIDER)),
                Ok(Some(Err(_))) => self.fail(UpstreamFailure {
                    class: ErrorClass::UpstreamUnavailable,
                    status: None,
                    message: format!("{PROVIDER}: connection lost mid-stream"),
                    upstream_code: None,
                }),
                Ok(Some(Ok(bytes))) => self.on_bytes(&bytes),
            }
        }
    }

    fn on_bytes(&mut self, bytes: &[u8]) {
        let messages = match self.frames.push(bytes) {
            Ok(m) => m,
            Err(e) => {
                return self.fail(UpstreamFailure {
                    class: ErrorClass::UpstreamError,
                    status: None,
                    message: format!("{PROVIDER}: malformed event stream ({e})"),
                    upstream_code: None,
                });
            }
        };
        for msg in &messages {
            match self.decoder.on_message(msg) {
                Err(f) => return self.fail(f),
                Ok(chunks) => {
                    let usage = self.decoder.has_usage().then(|| self.decoder.usage());
                    for c in &chunks {
                        let mut item = StreamItem::from_chunk(c, usage);
                        if let StreamItem::Chunk { forward, .. } = &mut item {
                            // The usage-only chunk we asked for ourselves.
                            *forward = self.client_usage || !c.choices.is_empty();
                        }
                        self.queue.push_back(item);
                    }
                }
            }
            if self.decoder.is_done() && self.decoder.has_usage() {
                return self.done();
            }
        }
    }

    fn done(&mut self) {
        self.queue.push_back(StreamItem::Done);
        self.finished = true;
    }

    fn fail(&mut self, mut f: UpstreamFailure) {
        redact_secrets(&mut f.message, &self.deployment);
        self.queue.push_back(StreamItem::Failed(f));
        self.finished = true;
    }
}
