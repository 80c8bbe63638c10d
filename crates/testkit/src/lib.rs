//! Test kit (dev only): a scriptable mock upstream.
//!
//! One server answers `POST /v1/chat/completions`, `/v1/embeddings` (OpenAI
//! format), `/v1/messages` (Anthropic format),
//! `/v1beta/models/{model}:generateContent` / `:streamGenerateContent` (Gemini
//! format; server-sent events with `?alt=sse`, else one JSON array) and
//! `/model/{modelId}/converse` / `/converse-stream` (Bedrock, SigV4 or API key
//! checked: see [`bedrock`]), Azure OpenAI's deployment URLs (`api-version`
//! and `api-key` checked: see [`azure`]), Vertex AI's Gemini and Claude routes
//! behind a bearer token, and an OAuth token endpoint `POST /token` (see [`vertex`]).
//! Tests queue [`Reply`]s per path; with an empty
//! queue each path answers a canned success. Every request
//! is recorded (method, path, headers, body), and streams that the client
//! abandons before their end are counted, so tests can prove the gateway
//! cancels upstream work. Faults: any status and body, `Retry-After`, stalls,
//! connection resets mid-stream, and SSE or event-stream frames split at
//! awkward byte boundaries.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Notify;

pub mod aws;
pub mod azure;
pub mod bedrock;
pub mod embeddings;
pub mod fast;
pub mod gemini;
pub mod otlp;
pub mod validate;
pub mod vertex;

pub use gemini::{
    gemini_error, gemini_rate_limit_error, gemini_response, gemini_stream, gemini_stream_events,
    gemini_tool_events, gemini_tool_response, gemini_tool_stream,
};

/// How SSE bytes are cut into writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// One write per event.
    Events,
    /// Fixed-size pieces of this many bytes.
    Bytes(usize),
    /// Pseudo-random pieces of 1 to 7 bytes (deterministic), cutting through
    /// `data:` prefixes, CRLFs and UTF-8 sequences.
    Awkward,
}

/// How a scripted stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Body completes normally.
    Clean,
    /// The connection is reset (body errors) after the events.
    Reset,
    /// The server goes silent after the events and never finishes.
    Stall,
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A JSON response.
    Json {
        status: u16,
        body: Value,
        headers: Vec<(String, String)>,
    },
    /// A raw (non-JSON) body with a status.
    Raw { status: u16, body: String },
    /// An SSE stream of complete events (`"data: {...}\n\n"` strings).
    Sse {
        events: Vec<String>,
        split: Split,
        /// Pause before each write after the first.
        gap: Duration,
        end: End,
    },
    /// A binary AWS event stream (`application/vnd.amazon.eventstream`) of
    /// complete frames (see [`bedrock::event`]), cut like [`Reply::Sse`].
    EventStream {
        frames: Vec<Vec<u8>>,
        split: Split,
        /// Pause before each write after the first.
        gap: Duration,
        end: End,
    },
    /// Never answer.
    Stall,
    /// Wait, then answer with the inner reply (for SSE: headers at once, the
    /// first event after the delay — a slow time to first token).
    Delayed(Duration, Box<Reply>),
}

/// Random faults applied to requests that have no scripted reply.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Share of requests that fail (0 to 1).
    pub rate: f64,
    /// The failures to choose from, uniformly.
    pub kinds: Vec<Fault>,
    rng: fastrand::Rng,
}

impl Faults {
    /// Faults at `rate`, drawn from `kinds` with a fixed seed (reproducible).
    pub fn new(rate: f64, kinds: Vec<Fault>, seed: u64) -> Faults {
        Faults {
            rate,
            kinds,
            rng: fastrand::Rng::with_seed(seed),
        }
    }
}

/// One kind of injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500 with an OpenAI/Anthropic-style error body.
    Status500,
    /// HTTP 503.
    Status503,
    /// HTTP 429 with `Retry-After: N`.
    RateLimited(u64),
    /// The connection is reset before any byte of the response.
    Reset,
    /// The server never answers.
    Stall,
}

impl Reply {
    /// A 200 JSON reply.
    pub fn json(body: Value) -> Reply {
        Reply::Json {
            status: 200,
            body,
            headers: vec![],
        }
    }

    /// An error reply with a JSON body.
    pub fn error(status: u16, body: Value) -> Reply {
        Reply::Json {
            status,
            body,
            headers: vec![],
        }
    }

    /// A clean SSE stream.
    pub fn sse(events: Vec<String>, split: Split) -> Reply {
        Reply::Sse {
            events,
            split,
            gap: Duration::ZERO,
            end: End::Clean,
        }
    }

    /// A clean AWS event stream.
    pub fn event_stream(frames: Vec<Vec<u8>>, split: Split) -> Reply {
        Reply::EventStream {
            frames,
            split,
            gap: Duration::ZERO,
            end: End::Clean,
        }
    }
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The query string (without `?`), empty when there was none.
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("recorded body is JSON")
    }
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

#[derive(Default)]
struct Shared {
    queues: Mutex<HashMap<String, VecDeque<Reply>>>,
    faults: Mutex<Option<Faults>>,
    recorded: Mutex<Vec<Recorded>>,
    cancelled: AtomicUsize,
    completed: AtomicUsize,
    notify: Notify,
    bedrock_known: Mutex<bedrock::Known>,
    bedrock_auths: Mutex<Vec<bedrock::Auth>>,
    /// Bearer tokens Vertex routes accept (issued or accepted by the test).
    vertex_tokens: Mutex<Vec<String>>,
    /// `expires_in` of issued tokens; 0 means the default, 3600.
    token_expires_in: std::sync::atomic::AtomicU64,
    /// Lifetime of issued AWS credentials in seconds; 0 means 3600.
    aws_expires_in: std::sync::atomic::AtomicU64,
    /// Access key ids of the AWS credentials issued, in order.
    aws_issued: Mutex<Vec<String>>,
    /// Web identity tokens STS accepts.
    web_identity_tokens: Mutex<Vec<String>>,
    /// The access key ids that signed each `AssumeRole`, in order.
    sts_callers: Mutex<Vec<String>>,
    /// The `ExternalId` `AssumeRole` requires, if any.
    external_id: Mutex<Option<String>>,
    /// The `Authorization` the container endpoint requires, if any.
    container_token: Mutex<Option<String>>,
    /// IMDSv2 session tokens issued.
    imds_tokens: Mutex<Vec<String>>,
    /// Subject tokens Google's STS accepts (OIDC, SAML).
    wif_subject_tokens: Mutex<Vec<String>>,
    /// Federated tokens Google's STS issued (they may impersonate).
    sts_issued: Mutex<Vec<String>>,
}

/// A running mock upstream on 127.0.0.1 (stopped when dropped).
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockUpstream {
    /// Starts on an ephemeral loopback port.
    pub async fn start() -> MockUpstream {
        Self::start_on("127.0.0.1:0").await
    }

    /// Starts on `addr` (loopback addresses only, please).
    pub async fn start_on(addr: &str) -> MockUpstream {
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            // Each write leaves at once (real APIs stream without Nagle's
            // delay), so awkward splits reach the gateway as written.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        MockUpstream { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues `reply` for the next request to `path`.
    pub fn push(&self, path: &str, reply: Reply) {
        self.shared
            .queues
            .lock()
            .unwrap()
            .entry(path.to_owned())
            .or_default()
            .push_back(reply);
    }

    /// Applies random `faults` to every request without a scripted reply
    /// (`None` turns them off).
    pub fn set_faults(&self, faults: Option<Faults>) {
        *self.shared.faults.lock().unwrap() = faults;
    }

    /// Requests received on `path`.
    pub fn count(&self, path: &str) -> usize {
        self.shared
            .recorded
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().unwrap().clone()
    }

    /// The last request received.
    pub fn last(&self) -> Recorded {
        self.requests().pop().expect("no request recorded")
    }

    /// Replaces the credentials Bedrock requests are checked against
    /// (default: [`bedrock::Known::default`]).
    pub fn set_bedrock_credentials(&self, known: bedrock::Known) {
        *self.shared.bedrock_known.lock().unwrap() = known;
    }

    /// Lifetime of the AWS credentials STS, the container endpoint and the
    /// metadata service issue from now on (default one hour).
    pub fn set_aws_expires_in(&self, seconds: u64) {
        self.shared.aws_expires_in.store(seconds, Ordering::SeqCst);
    }

    /// Access key ids of the temporary AWS credentials issued so far.
    pub fn aws_issued(&self) -> Vec<String> {
        self.shared.aws_issued.lock().unwrap().clone()
    }

    /// Makes STS accept `token` in `AssumeRoleWithWebIdentity`.
    pub fn accept_web_identity_token(&self, token: &str) {
        self.shared
            .web_identity_tokens
            .lock()
            .unwrap()
            .push(token.to_owned());
    }

    /// The access key id that signed each `AssumeRole`, in order.
    pub fn sts_callers(&self) -> Vec<String> {
        self.shared.sts_callers.lock().unwrap().clone()
    }

    /// Makes `AssumeRole` require this `ExternalId`.
    pub fn require_external_id(&self, id: &str) {
        *self.shared.external_id.lock().unwrap() = Some(id.to_owned());
    }

    /// Makes the container endpoint require `Authorization: token`.
    pub fn require_container_token(&self, token: &str) {
        *self.shared.container_token.lock().unwrap() = Some(token.to_owned());
    }

    /// Forgets every issued AWS credential (as if they expired at AWS).
    pub fn revoke_aws_sessions(&self) {
        let mut known = self.shared.bedrock_known.lock().unwrap();
        let issued = self.shared.aws_issued.lock().unwrap();
        known.aws.retain(|(id, _)| !issued.contains(id));
        known.sessions.clear();
    }

    /// How each Bedrock request that passed authentication authenticated,
    /// in order (a SigV4 entry means its signature was recomputed and matched).
    pub fn bedrock_auths(&self) -> Vec<bedrock::Auth> {
        self.shared.bedrock_auths.lock().unwrap().clone()
    }

    /// Makes Vertex routes accept `token` (a fixed access token).
    pub fn accept_vertex_token(&self, token: &str) {
        self.shared
            .vertex_tokens
            .lock()
            .unwrap()
            .push(token.to_owned());
    }

    /// Makes Google's STS accept `token` as an OIDC/SAML subject token, and
    /// the subject token URL serve it.
    pub fn accept_subject_token(&self, token: &str) {
        self.shared
            .wif_subject_tokens
            .lock()
            .unwrap()
            .push(token.to_owned());
    }

    /// Sets the `expires_in` (seconds) of tokens the token endpoint issues.
    pub fn set_token_expires_in(&self, secs: u64) {
        self.shared
            .token_expires_in
            .store(secs.max(1), Ordering::SeqCst);
    }

    /// Token requests received on [`vertex::TOKEN_PATH`].
    pub fn token_requests(&self) -> usize {
        self.count(vertex::TOKEN_PATH)
    }

    /// Streams dropped by the client before they ended.
    pub fn cancelled(&self) -> usize {
        self.shared.cancelled.load(Ordering::SeqCst)
    }

    /// Streams sent to their end.
    pub fn completed(&self) -> usize {
        self.shared.completed.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until at least `n` streams were cancelled; returns the count.
    pub async fn wait_cancelled(&self, n: usize, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.shared.notify.notified();
            if self.cancelled() >= n {
                return self.cancelled();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.cancelled();
            }
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    shared.recorded.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: path.clone(),
        query: query.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let scripted = shared
        .queues
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front);
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if scripted.is_none() {
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or(path.as_str(), |p| p.as_str());
        if let Some(reply) = aws::handle(
            &shared,
            &parts.method,
            &path,
            path_and_query,
            &parts.headers,
            &body,
        ) {
            return render(reply, shared).await;
        }
    }
    if scripted.is_none()
        && let Some(reply) = federation(&shared, &parts, &path, &body, &parsed)
    {
        return render(reply, shared).await;
    }
    if scripted.is_none()
        && let Some(reply) = embedding_routes(&shared, &parts, &path, &body, &parsed)
    {
        return render(reply, shared).await;
    }
    if path == vertex::TOKEN_PATH {
        if let Some(r) = scripted {
            return render(r, shared).await;
        }
        let host = parts
            .headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let endpoint = format!("http://{host}{}", vertex::TOKEN_PATH);
        let reply = match vertex::check_token_request(&body, &endpoint) {
            Err(m) => Reply::error(
                400,
                json!({"error": "invalid_grant", "error_description": m}),
            ),
            Ok(()) => {
                let token = format!("ya29.mock-{}", fastrand::u64(..));
                shared.vertex_tokens.lock().unwrap().push(token.clone());
                let expires_in = match shared.token_expires_in.load(Ordering::SeqCst) {
                    0 => 3600,
                    n => n,
                };
                Reply::json(
                    json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}),
                )
            }
        };
        return render(reply, shared).await;
    }
    let vertex_route = vertex::route(&path, &query);
    let gemini_route = gemini::route(&path, &query);
    let bedrock_route = bedrock::route(&path);
    let azure_route = azure::route(&path);
    // Like the real APIs, reject what they would reject before any script runs.
    let invalid = match path.as_str() {
        _ if let Some(op) = azure_route => azure::invalid(op, &parts.headers, &query, &parsed),
        _ if let Some(route) = &vertex_route => {
            let tokens = shared.vertex_tokens.lock().unwrap().clone();
            vertex::invalid(route, &parts.headers, &parsed, &tokens)
        }
        _ if gemini_route.is_some() => gemini::invalid(&parts.headers, &query, &parsed),
        _ if bedrock_route.is_some() => match bedrock_authenticate(&shared, &parts, &path, &body) {
            Err(reply) => Some(reply),
            Ok(()) => bedrock::validate_request(&parsed)
                .err()
                .map(|m| bedrock::error(400, "ValidationException", &m)),
        },
        "/v1/messages" => validate::anthropic_request(&parsed).err().map(|m| {
            Reply::error(
                400,
                json!({"type": "error", "error": {"type": "invalid_request_error", "message": m}}),
            )
        }),
        "/v1/chat/completions" => validate::openai_chat_request(&parsed).err().map(|m| {
            Reply::error(
                400,
                json!({"error": {"message": m, "type": "invalid_request_error", "param": null, "code": null}}),
            )
        }),
        _ => None,
    };
    let fault = if invalid.is_none() && scripted.is_none() {
        let mut guard = shared.faults.lock().unwrap();
        guard.as_mut().and_then(|f| {
            (f.rng.f64() < f.rate && !f.kinds.is_empty())
                .then(|| f.kinds[f.rng.usize(..f.kinds.len())])
        })
    } else {
        None
    };
    let dialect = match (&gemini_route, path.as_str()) {
        (Some(_), _) => Dialect::Gemini,
        // Vertex AI's front door answers in Google's envelope.
        (None, _) if vertex_route.is_some() => Dialect::Gemini,
        (None, "/v1/messages") => Dialect::Anthropic,
        (None, _) => Dialect::OpenAi,
    };
    let reply = match (invalid, fault) {
        (Some(r), _) => r,
        (None, Some(f)) => fault_reply(f, dialect),
        (None, None) => scripted.unwrap_or_else(|| match (&vertex_route, &gemini_route) {
            (Some(route), _) => vertex::default_reply(route, &parsed),
            (None, Some(route)) => gemini::default_reply(route, &parsed),
            // Azure answers like OpenAI at its deployment URLs.
            (None, None) => default_reply(azure_route.unwrap_or(&path), &parsed),
        }),
    };
    render(reply, shared).await
}

/// The Gemini, Vertex AI and Bedrock embedding endpoints (see [`embeddings`]).
fn embedding_routes(
    shared: &Shared,
    parts: &axum::http::request::Parts,
    path: &str,
    body: &[u8],
    parsed: &Value,
) -> Option<Reply> {
    // Gemini API: /{version}/models/{m}:batchEmbedContents
    if let Some(model) = ["/v1beta/models/", "/v1/models/", "/v1alpha/models/"]
        .iter()
        .find_map(|p| path.strip_prefix(p))
        .and_then(|rest| rest.strip_suffix(":batchEmbedContents"))
    {
        return Some(embeddings::gemini(&parts.headers, model, parsed));
    }
    // Vertex AI: .../publishers/google/models/{m}:predict
    if path.starts_with("/v1/projects/")
        && let Some(model) = path
            .strip_suffix(":predict")
            .and_then(|p| p.rsplit_once("/publishers/google/models/"))
            .map(|(_, m)| m)
    {
        let tokens = shared.vertex_tokens.lock().unwrap().clone();
        return Some(
            vertex::unauthenticated(&parts.headers, &tokens)
                .unwrap_or_else(|| embeddings::vertex(model, parsed)),
        );
    }
    // Bedrock InvokeModel: /model/{id}/invoke
    let id = embeddings::invoke_route(path)?;
    Some(match bedrock_authenticate(shared, parts, path, body) {
        Err(reply) => reply,
        Ok(()) => embeddings::bedrock_invoke(&id, parsed),
    })
}

/// Checks a Bedrock request's SigV4 signature or API key against the known
/// credentials, and records how it was authenticated.
fn bedrock_authenticate(
    shared: &Shared,
    parts: &axum::http::request::Parts,
    path: &str,
    body: &[u8],
) -> Result<(), Reply> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let path_and_query = parts.uri.path_and_query().map_or(path, |p| p.as_str());
    let known = shared.bedrock_known.lock().unwrap().clone();
    let auth = bedrock::authenticate(&known, &parts.headers, path_and_query, body, now)?;
    shared.bedrock_auths.lock().unwrap().push(auth);
    Ok(())
}

/// Workload identity federation: Google's STS, impersonation and a subject
/// token URL (see [`vertex`]).
fn federation(
    shared: &Shared,
    parts: &axum::http::request::Parts,
    path: &str,
    body: &[u8],
    parsed: &Value,
) -> Option<Reply> {
    let issue = |prefix: &str| {
        let token = format!("ya29.{prefix}-{}", fastrand::u64(..));
        shared.vertex_tokens.lock().unwrap().push(token.clone());
        token
    };
    if path == vertex::GOOGLE_STS_PATH {
        let form = aws::parse_form(body);
        let accepted = shared.wif_subject_tokens.lock().unwrap().clone();
        let known = shared.bedrock_known.lock().unwrap().clone();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        return Some(match vertex::google_sts(&form, &accepted, &known, now) {
            Err(r) => r,
            Ok(()) => {
                let token = issue("sts");
                shared.sts_issued.lock().unwrap().push(token.clone());
                Reply::json(json!({
                    "access_token": token,
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                }))
            }
        });
    }
    if path.starts_with(vertex::IMPERSONATION_PREFIX) && path.ends_with(":generateAccessToken") {
        let sts = shared.sts_issued.lock().unwrap().clone();
        return Some(match vertex::impersonation(&parts.headers, parsed, &sts) {
            Err(r) => r,
            Ok(lifetime) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let (y, m, d, h, mi, s) = modelgate_core::time::civil_from_unix(
                    i64::try_from(now + lifetime).unwrap_or(0),
                );
                Reply::json(json!({
                    "accessToken": issue("impersonated"),
                    "expireTime": format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
                }))
            }
        });
    }
    if path == vertex::SUBJECT_TOKEN_PATH {
        let ok = parts.headers.get("metadata").and_then(|v| v.to_str().ok()) == Some("True");
        let token = shared.wif_subject_tokens.lock().unwrap().first().cloned();
        return Some(match (ok, token) {
            (true, Some(t)) => Reply::json(json!({"access_token": t, "token_type": "Bearer"})),
            _ => Reply::error(400, json!({"error": "invalid_request"})),
        });
    }
    None
}

/// Sample arguments for the first tool of a request, from its JSON schema.
fn sample_tool_call(tools: &Value, anthropic: bool) -> Option<(String, Value)> {
    let first = tools.as_array()?.first()?;
    let (name, schema) = if anthropic {
        (first["name"].as_str()?, &first["input_schema"])
    } else {
        (
            first["function"]["name"].as_str()?,
            &first["function"]["parameters"],
        )
    };
    let mut args = serde_json::Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for (k, p) in props {
            let v = match p["type"].as_str() {
                Some("integer" | "number") => json!(1),
                Some("boolean") => json!(true),
                _ => json!("mock"),
            };
            args.insert(k.clone(), v);
        }
    }
    Some((name.to_owned(), Value::Object(args)))
}

pub(crate) fn default_reply(path: &str, body: &Value) -> Reply {
    if let Some(stream) = bedrock::route(path) {
        return bedrock::default_reply(body, stream);
    }
    let stream = body["stream"].as_bool().unwrap_or(false);
    let wants_tool = body.get("tools").is_some()
        && body["tool_choice"] != "none"
        && body["tool_choice"]["type"] != "none";
    if wants_tool
        && path == "/v1/messages"
        && let Some((name, input)) = sample_tool_call(&body["tools"], true)
    {
        return if stream {
            let text = input.to_string();
            let (a, b) = text.split_at(text.len() / 2);
            Reply::sse(anthropic_tool_stream(&name, &[a, b]), Split::Events)
        } else {
            Reply::json(anthropic_tool_message(&name, input))
        };
    }
    if wants_tool
        && path == "/v1/chat/completions"
        && let Some((name, input)) = sample_tool_call(&body["tools"], false)
    {
        return if stream {
            Reply::sse(openai_tool_stream(&name, &input.to_string()), Split::Events)
        } else {
            Reply::json(openai_tool_completion(&name, &input.to_string()))
        };
    }
    match (path, stream) {
        ("/v1/chat/completions", false) => Reply::json(openai_completion("Hello from upstream.")),
        ("/v1/chat/completions", true) => Reply::sse(
            openai_stream(&["Hello", " from", " upstream."], true),
            Split::Events,
        ),
        ("/v1/messages", false) => Reply::json(anthropic_message("Hello from Claude.")),
        ("/v1/messages", true) => Reply::sse(
            anthropic_stream(&["Hello", " from", " Claude."]),
            Split::Events,
        ),
        ("/v1/responses", false) => Reply::json(openai_response("Hello from upstream.")),
        ("/v1/responses", true) => Reply::sse(
            openai_response_stream(&["Hello", " from", " upstream."]),
            Split::Events,
        ),
        ("/v1/embeddings", _) => Reply::json(json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 3, "total_tokens": 3}
        })),
        _ => Reply::error(
            404,
            json!({"error": {"message": format!("no route {path}"), "type": "invalid_request_error"}}),
        ),
    }
}

struct StreamGuard {
    shared: Arc<Shared>,
    finished: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counter = if self.finished {
            &self.shared.completed
        } else {
            &self.shared.cancelled
        };
        counter.fetch_add(1, Ordering::SeqCst);
        self.shared.notify.notify_waiters();
    }
}

/// Which wire format a path speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
}

fn fault_reply(f: Fault, dialect: Dialect) -> Reply {
    let err = |status: u16, kind: &str, msg: &str| {
        let body = match dialect {
            Dialect::Anthropic => {
                json!({"type": "error", "error": {"type": kind, "message": msg}})
            }
            Dialect::OpenAi => {
                json!({"error": {"message": msg, "type": kind, "param": null, "code": null}})
            }
            Dialect::Gemini => gemini_error(status, gemini::status_name(status), msg),
        };
        Reply::error(status, body)
    };
    match f {
        Fault::Status500 => err(500, "api_error", "injected internal error"),
        Fault::Status503 => err(503, "overloaded_error", "injected overload"),
        // Gemini sends its retry delay in the body, not as `Retry-After`.
        Fault::RateLimited(secs) if dialect == Dialect::Gemini => {
            Reply::error(429, gemini_rate_limit_error(secs))
        }
        Fault::RateLimited(secs) => {
            let Reply::Json { status, body, .. } =
                err(429, "rate_limit_error", "injected rate limit")
            else {
                unreachable!()
            };
            Reply::Json {
                status,
                body,
                headers: vec![("retry-after".into(), secs.to_string())],
            }
        }
        Fault::Reset => Reply::Sse {
            events: vec![],
            split: Split::Events,
            gap: Duration::ZERO,
            end: End::Reset,
        },
        Fault::Stall => Reply::Stall,
    }
}

fn render(
    reply: Reply,
    shared: Arc<Shared>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>> {
    Box::pin(render_inner(reply, shared))
}

async fn render_inner(reply: Reply, shared: Arc<Shared>) -> Response {
    match reply {
        Reply::Delayed(delay, inner) => match *inner {
            streamed @ (Reply::Sse { .. } | Reply::EventStream { .. }) => {
                // Headers now, the first event after `delay`.
                let mut resp = render(streamed, shared).await;
                let body = std::mem::take(resp.body_mut());
                let delayed = stream::once(async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, std::io::Error>(Bytes::new())
                })
                .chain(
                    body.into_data_stream()
                        .map(|r| r.map_err(std::io::Error::other)),
                );
                *resp.body_mut() = Body::from_stream(delayed);
                resp
            }
            other => {
                tokio::time::sleep(delay).await;
                render(other, shared).await
            }
        },
        Reply::Json {
            status,
            body,
            headers,
        } => {
            let mut r = (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                body.to_string(),
            )
                .into_response();
            for (k, v) in headers {
                r.headers_mut().insert(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(&v).unwrap(),
                );
            }
            r
        }
        Reply::Raw { status, body } => {
            (StatusCode::from_u16(status).unwrap(), body).into_response()
        }
        Reply::Stall => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        Reply::Sse {
            events,
            split,
            gap,
            end,
        } => {
            let events: Vec<Vec<u8>> = events.into_iter().map(String::into_bytes).collect();
            stream_response(cut(&events, split), gap, end, shared, "text/event-stream")
        }
        Reply::EventStream {
            frames,
            split,
            gap,
            end,
        } => stream_response(
            cut(&frames, split),
            gap,
            end,
            shared,
            "application/vnd.amazon.eventstream",
        ),
    }
}

/// A 200 whose body is `pieces`, one write each, then `end`.
fn stream_response(
    pieces: Vec<Vec<u8>>,
    gap: Duration,
    end: End,
    shared: Arc<Shared>,
    content_type: &'static str,
) -> Response {
    let mut guard = StreamGuard {
        shared,
        finished: false,
    };
    let n = pieces.len();
    let body = stream::iter(pieces.into_iter().enumerate()).then(move |(i, p)| async move {
        if i > 0 && !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        (i, p)
    });
    let body = body
        .map(move |(i, p)| {
            let last = i + 1 == n;
            (last, p)
        })
        .chain(stream::once(async { (true, Vec::new()) }))
        .then(move |(last, p)| async move {
            if last && p.is_empty() {
                match end {
                    End::Clean => None,
                    End::Reset => Some(Err(std::io::Error::other("reset"))),
                    End::Stall => {
                        std::future::pending::<()>().await;
                        None
                    }
                }
            } else {
                Some(Ok(Bytes::from(p)))
            }
        })
        .take_while(|x| std::future::ready(x.is_some()))
        .filter_map(std::future::ready)
        .chain(stream::once(async move {
            guard.finished = true;
            drop(guard);
            Ok(Bytes::new())
        }));
    Response::builder()
        .status(200)
        .header("content-type", content_type)
        .body(Body::from_stream(body))
        .unwrap()
}

/// Cuts the concatenated `events` into writes.
fn cut(events: &[Vec<u8>], split: Split) -> Vec<Vec<u8>> {
    let bytes = events.concat();
    let bytes = bytes.as_slice();
    match split {
        Split::Events => events.to_vec(),
        Split::Bytes(n) => bytes.chunks(n.max(1)).map(<[u8]>::to_vec).collect(),
        Split::Awkward => {
            let mut out = Vec::new();
            let mut i = 0;
            let mut seed: u32 = 0x9e37_79b9;
            while i < bytes.len() {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let len = 1 + (seed % 7) as usize;
                let end = (i + len).min(bytes.len());
                out.push(bytes[i..end].to_vec());
                i = end;
            }
            out
        }
    }
}

/// A canned OpenAI Responses API `response` object with one text message.
pub fn openai_response(text: &str) -> Value {
    json!({
        "id": "resp_upstream_1", "object": "response", "created_at": 1_741_476_542,
        "status": "completed", "error": null, "incomplete_details": null,
        "instructions": null, "max_output_tokens": null,
        "model": "gpt-4.1-mini-2025-04-14",
        "output": [{
            "type": "message", "id": "msg_upstream_1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]
        }],
        "parallel_tool_calls": true, "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null}, "store": true,
        "temperature": 1.0, "text": {"format": {"type": "text"}},
        "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
        "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": 17},
        "user": null, "metadata": {}
    })
}

/// Responses API stream events (`event:` + `data:`) for `pieces` of text,
/// in the documented order, ending with `response.completed`.
pub fn openai_response_stream(pieces: &[&str]) -> Vec<String> {
    let text: String = pieces.concat();
    let mut done = openai_response(&text);
    let mut created = done.clone();
    created["status"] = json!("in_progress");
    created["output"] = json!([]);
    created["usage"] = Value::Null;
    let item_id = "msg_upstream_1";
    let mut seq = 0u64;
    let mut out = Vec::new();
    let mut ev = |mut v: Value| {
        v["sequence_number"] = json!(seq);
        seq += 1;
        out.push(format!(
            "event: {}\ndata: {v}\n\n",
            v["type"].as_str().unwrap_or("")
        ));
    };
    ev(json!({"type": "response.created", "response": created.clone()}));
    ev(json!({"type": "response.in_progress", "response": created}));
    ev(
        json!({"type": "response.output_item.added", "output_index": 0,
              "item": {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []}}),
    );
    ev(
        json!({"type": "response.content_part.added", "item_id": item_id, "output_index": 0, "content_index": 0,
              "part": {"type": "output_text", "text": "", "annotations": []}}),
    );
    for p in pieces {
        ev(
            json!({"type": "response.output_text.delta", "item_id": item_id, "output_index": 0,
                  "content_index": 0, "delta": p, "logprobs": []}),
        );
    }
    ev(
        json!({"type": "response.output_text.done", "item_id": item_id, "output_index": 0,
              "content_index": 0, "text": text, "logprobs": []}),
    );
    ev(
        json!({"type": "response.content_part.done", "item_id": item_id, "output_index": 0, "content_index": 0,
              "part": {"type": "output_text", "text": text, "annotations": []}}),
    );
    ev(
        json!({"type": "response.output_item.done", "output_index": 0, "item": done["output"][0].clone()}),
    );
    done["id"] = json!("resp_upstream_1");
    ev(json!({"type": "response.completed", "response": done}));
    out
}

/// A canned OpenAI `chat.completion`.
pub fn openai_completion(text: &str) -> Value {
    json!({
        "id": "chatcmpl-upstream-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13,
                  "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 0}},
        "system_fingerprint": "fp_test",
        "service_tier": "default"
    })
}

/// OpenAI stream events (`data: ...\n\n`) for `pieces`, ending in a finish
/// chunk, an optional usage chunk, and `[DONE]`.
pub fn openai_stream(pieces: &[&str], with_usage: bool) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": "chatcmpl-upstream-s", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_test",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        if with_usage {
            c["usage"] = Value::Null;
        }
        format!("data: {c}\n\n")
    };
    let mut out = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    )];
    for p in pieces {
        out.push(chunk(json!({"content": p}), Value::Null));
    }
    out.push(chunk(json!({}), json!("stop")));
    if with_usage {
        let u = json!({
            "id": "chatcmpl-upstream-s", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "gpt-4o-mini-2024-07-18", "choices": [],
            "usage": {"prompt_tokens": 9, "completion_tokens": pieces.len(), "total_tokens": 9 + pieces.len()}
        });
        out.push(format!("data: {u}\n\n"));
    }
    out.push("data: [DONE]\n\n".into());
    out
}

/// A canned OpenAI completion that calls `name` with `arguments`.
pub fn openai_tool_completion(name: &str, arguments: &str) -> Value {
    let mut c = openai_completion("");
    c["choices"][0]["message"] = json!({
        "role": "assistant", "content": null, "refusal": null,
        "tool_calls": [{"id": "call_up_1", "type": "function", "function": {"name": name, "arguments": arguments}}]
    });
    c["choices"][0]["finish_reason"] = json!("tool_calls");
    c
}

/// OpenAI stream events for a tool call whose arguments arrive in two pieces.
pub fn openai_tool_stream(name: &str, arguments: &str) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        let c = json!({
            "id": "chatcmpl-upstream-t", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        format!("data: {c}\n\n")
    };
    let (a, b) = arguments.split_at(arguments.len() / 2);
    vec![
        chunk(
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "call_up_1", "type": "function", "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": b}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-upstream-t", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "gpt-4o-mini-2024-07-18", "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28}})
        ),
        "data: [DONE]\n\n".into(),
    ]
}

/// A canned Anthropic `message` calling tool `name` with `input`.
pub fn anthropic_tool_message(name: &str, input: Value) -> Value {
    let mut m = anthropic_message("I'll look that up.");
    m["content"] = json!([
        {"type": "text", "text": "I'll look that up."},
        {"type": "tool_use", "id": "toolu_01Up", "name": name, "input": input}
    ]);
    m["stop_reason"] = json!("tool_use");
    m
}

/// A canned Anthropic `message`.
pub fn anthropic_message(text: &str) -> Value {
    json!({
        "id": "msg_01Test",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 5,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 4}
    })
}

/// Anthropic stream events (with `event:` lines) for a text answer.
pub fn anthropic_stream(pieces: &[&str]) -> Vec<String> {
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut out = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_01Stream", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", json!({"type": "ping"})),
    ];
    for p in pieces {
        out.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})));
    }
    out.push(ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    out.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": pieces.len()}})));
    out.push(ev("message_stop", json!({"type": "message_stop"})));
    out
}

/// Anthropic stream events for a tool call whose input JSON arrives in `parts`.
pub fn anthropic_tool_stream(name: &str, parts: &[&str]) -> Vec<String> {
    let ev = |n: &str, data: Value| format!("event: {n}\ndata: {data}\n\n");
    let mut out = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_01Tool", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 30, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me check."}}),
        ),
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_01", "name": name, "input": {}}}),
        ),
    ];
    for p in parts {
        out.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": p}})));
    }
    out.push(ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 1}),
    ));
    out.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 20}})));
    out.push(ev("message_stop", json!({"type": "message_stop"})));
    out
}
