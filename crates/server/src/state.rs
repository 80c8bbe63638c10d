//! Application state, built once at start and shared by every request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use modelgate_config::Alias;
use modelgate_policy::Principal;
use modelgate_router::Router;

use crate::governance::Governance;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use axum::http::HeaderMap;
use modelgate_config::{Config, ProviderKind};
use modelgate_core::ErrorClass;
use modelgate_providers::{Upstreams, mock};
use modelgate_store::{LogSink, Store};

use crate::error::ApiError;

/// Everything a request needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub inner: Arc<Inner>,
}

/// What a config reload replaces, in one atomic swap: requests load it once
/// and see one consistent configuration.
pub struct Live {
    pub config: Arc<Config>,
    pub upstreams: Upstreams,
    /// Deployment health, strategies, retry budget (kept across reloads
    /// unless the `router` section changed).
    pub router: Arc<Router>,
    /// Aliases made on demand for `provider/<model>` names (bounded).
    prefix_aliases: RwLock<HashMap<String, Arc<Alias>>>,
}

/// Re-reads the configuration (the same file and command-line overrides the
/// gateway started with): the config and its source text.
pub type Reloader = Arc<dyn Fn() -> Result<(Config, String), String> + Send + Sync>;

/// The shared parts.
pub struct Inner {
    /// The current configuration and what is built from it.
    pub live: arc_swap::ArcSwap<Live>,
    /// How to re-read the configuration (`None`: reload is unavailable).
    pub reloader: Option<Reloader>,
    /// One reload at a time.
    pub reload_lock: tokio::sync::Mutex<()>,
    /// SHA-256 (hex) of the configuration text now in force.
    source_sha256: std::sync::Mutex<String>,
    pub store: Store,
    pub log: LogSink,
    /// Cancelled when the drain deadline passes: in-flight requests end and settle.
    pub shutdown: CancellationToken,
    /// Requests not yet settled.
    pub in_flight: Arc<InFlight>,
    /// Virtual keys, rate limits, budgets.
    pub governance: Governance,
    /// Prometheus metrics.
    pub metrics: std::sync::Arc<modelgate_telemetry::Metrics>,
    /// OTLP trace export, when configured.
    pub tracer: Option<modelgate_telemetry::tracer::Tracer>,
}

/// Most on-demand `provider/<model>` aliases kept; past it they are rebuilt per request.
const PREFIX_ALIAS_CACHE: usize = 1024;

/// Counts requests whose record has not been written yet.
#[derive(Debug, Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    /// Registers a request; the guard unregisters it when dropped.
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    /// Requests not yet settled.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until no request is in flight.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Held by a request until its record is written.
#[derive(Debug)]
pub struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The master key.
    Master,
    /// No key configured (loopback-only mode).
    Anonymous,
    /// A virtual key.
    Key(Arc<Principal>),
    /// The operator at the command line (master rights).
    Cli,
}

impl Caller {
    /// The label stored in the request log.
    pub fn label(&self) -> &str {
        match self {
            Caller::Master => "master",
            Caller::Cli => "cli",
            Caller::Anonymous => "anonymous",
            Caller::Key(p) => &p.key.id,
        }
    }

    /// The principal, for virtual keys.
    pub fn principal(&self) -> Option<&Arc<Principal>> {
        match self {
            Caller::Key(p) => Some(p),
            _ => None,
        }
    }

    /// Whether the caller may use the admin API.
    pub fn is_admin(&self) -> bool {
        match self {
            Caller::Master | Caller::Cli => true,
            Caller::Anonymous => false,
            Caller::Key(p) => p.is_admin(),
        }
    }
}

/// Problems that stop the state from being built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A configured mock model names an unknown behaviour.
    #[error("models: {name}: {message}")]
    BadMockModel { name: String, message: String },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    /// The store could not be read at start.
    #[error("cannot initialise governance from the store: {0}")]
    Store(String),
}

impl AppState {
    /// Builds the state; checks what config validation could not (mock behaviours).
    pub async fn new(
        config: Arc<Config>,
        store: Store,
        log: LogSink,
    ) -> Result<AppState, StateError> {
        check_mock_models(&config)?;
        let upstreams = Upstreams::new(&config).map_err(|e| StateError::Http(e.to_string()))?;
        let metrics = std::sync::Arc::new(modelgate_telemetry::Metrics::new());
        let governance = Governance::init(&config, &store, metrics.clone())
            .await
            .map_err(|e| StateError::Store(e.to_string()))?;
        let tracer = match &config.observability.tracing {
            None => None,
            Some(t) => Some(
                modelgate_telemetry::tracer::Tracer::start(
                    modelgate_telemetry::tracer::TracerConfig {
                        endpoint: t.endpoint.clone(),
                        headers: t
                            .headers
                            .iter()
                            .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                            .collect(),
                        sample_ratio: t.sample_ratio,
                        parent_based: t.parent_based,
                        service_name: t.service_name.clone(),
                        timeout: t.timeout,
                        batch_size: 512,
                        interval: std::time::Duration::from_secs(1),
                        queue: 4096,
                    },
                    metrics.trace.clone(),
                )
                .map_err(|e| StateError::Http(e.to_string()))?,
            ),
        };
        let live = Live {
            upstreams,
            router: Arc::new(Router::new(config.router, &config.deployments, None)),
            prefix_aliases: RwLock::new(HashMap::new()),
            config,
        };
        Ok(AppState {
            inner: Arc::new(Inner {
                live: arc_swap::ArcSwap::from_pointee(live),
                reloader: None,
                reload_lock: tokio::sync::Mutex::new(()),
                source_sha256: std::sync::Mutex::new(String::new()),
                governance,
                metrics,
                tracer,
                store,
                log,
                shutdown: CancellationToken::new(),
                in_flight: Arc::new(InFlight::default()),
            }),
        })
    }

    /// Enables `POST /admin/config/reload` (and SIGHUP): `reloader` re-reads
    /// the configuration; `source` is the text the gateway started from.
    /// Call before serving.
    pub fn with_reloader(self, reloader: Reloader, source: &str) -> AppState {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.source_sha256 = std::sync::Mutex::new(sha256_hex(source));
                inner.reloader = Some(reloader);
                AppState {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => {
                tracing::warn!("config reload not enabled: the state is already shared");
                AppState { inner }
            }
        }
    }

    /// The current configuration and what is built from it.
    pub fn live(&self) -> Arc<Live> {
        self.inner.live.load_full()
    }

    /// The current configuration.
    pub fn config(&self) -> Arc<Config> {
        self.inner.live.load().config.clone()
    }

    /// Starts settling a request (see [`crate::settle`]).
    pub fn settle(
        &self,
        request_id: &str,
        route: &str,
        headers: &axum::http::HeaderMap,
    ) -> crate::settle::Settle {
        crate::settle::Settle::new(
            self,
            self.inner.in_flight.enter(),
            request_id,
            route,
            headers,
        )
    }

    /// Runs `call` unless the drain deadline passes first.
    pub async fn unless_shutdown<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        tokio::select! {
            r = call => r,
            () = self.inner.shutdown.cancelled() => Err(ApiError::new(
                ErrorClass::ShuttingDown,
                "The gateway is shutting down; retry on another instance.",
            )),
        }
    }

    /// Checks the gateway key (`Authorization: Bearer` or `x-api-key`): the
    /// master key, or a virtual key (`sk-mg-...`).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        // The config snapshot is read (not cloned) before anything awaits.
        let live = self.inner.live.load();
        let master = live.config.server.master_key.as_ref();
        let authorization = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let bearer = authorization.and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
        let presented = bearer
            .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim)
            .filter(|k| !k.is_empty());
        let has_master = master.is_some();
        let is_master = matches!((presented, master), (Some(k), Some(m)) if constant_time_eq(k.as_bytes(), m.expose().as_bytes()));
        drop(live);
        match (presented, has_master) {
            _ if is_master => Ok(Caller::Master),
            (Some(k), _) if k.starts_with(modelgate_policy::keys::PREFIX) => self
                .inner
                .governance
                .principal(&self.inner.store, k)
                .await
                .map(Caller::Key),
            // Keyless mode (loopback only): any or no key is accepted.
            (_, false) => Ok(Caller::Anonymous),
            (Some(_), true) => Err(ApiError::new(ErrorClass::Unauthorized, "Invalid API key.")
                .with_code("invalid_api_key")),
            (None, true) if authorization.is_some() => Err(ApiError::new(
                ErrorClass::Unauthorized,
                "Invalid Authorization header: use `Authorization: Bearer <key>` (or `x-api-key: <key>`).",
            )
            .with_code("invalid_api_key")),
            (None, true) => Err(ApiError::new(
                ErrorClass::Unauthorized,
                "Missing API key. Send the gateway key as `Authorization: Bearer <key>` or `x-api-key: <key>`.",
            )
            .with_code("missing_api_key")),
        }
    }

    /// Governance admission for one request (rate limits and budget hold), when
    /// any applies to this caller; what is granted is settled with the request.
    pub async fn admit(
        &self,
        settle: &mut crate::settle::Settle,
        caller: &Caller,
        end_user: Option<&str>,
        alias: &Arc<Alias>,
        output_cap: Option<u32>,
        choices: u32,
    ) -> Result<(), ApiError> {
        let principal = caller.principal().map(|p| &**p);
        let gov = &self.inner.governance;
        if gov.applies(principal, end_user) {
            let admitted = gov
                .admit(
                    &self.inner.store,
                    principal,
                    end_user,
                    &self.reachable(alias),
                    settle.input_estimate,
                    output_cap,
                    choices,
                )
                .await?;
            settle.admitted(admitted);
        }
        Ok(())
    }

    /// `alias` with every deployment its fallback chains can reach (for the
    /// worst-case budget reservation: a fallback may be dearer).
    pub fn reachable(&self, alias: &Arc<Alias>) -> Alias {
        let mut out = (**alias).clone();
        let mut seen = std::collections::HashSet::from([alias.name.clone()]);
        let mut queue: Vec<Arc<Alias>> = vec![alias.clone()];
        while let Some(a) = queue.pop() {
            let chains = a
                .fallbacks
                .general
                .iter()
                .chain(&a.fallbacks.context_window)
                .chain(&a.fallbacks.content_policy);
            for name in chains {
                if seen.insert(name.clone())
                    && let Ok(next) = self.resolve(name)
                {
                    for d in &next.deployments {
                        if !out.deployments.iter().any(|x| x.name == d.name) {
                            out.deployments.push(d.clone());
                        }
                    }
                    queue.push(next);
                }
            }
        }
        out
    }

    /// Whether to capture this request's payloads: the key's, then the team's
    /// `metadata.capture`, else `observability.capture` (sampling decided here).
    pub fn should_capture(&self, caller: &Caller) -> bool {
        use modelgate_config::Capture;
        let default = self.inner.live.load().config.observability.capture;
        let pct = match default {
            Capture::Sampled(p) => p,
            _ => 10.0,
        };
        let from_meta = |m: Option<&serde_json::Value>| {
            m.and_then(|v| v.get("capture"))
                .and_then(|v| v.as_str())
                .and_then(|s| Capture::parse(s, pct))
        };
        let mode = caller
            .principal()
            .and_then(|p| {
                from_meta(p.key.metadata.as_ref())
                    .or_else(|| from_meta(p.team.as_ref().and_then(|t| t.metadata.as_ref())))
            })
            .unwrap_or(default);
        match mode {
            Capture::Off => false,
            Capture::Always => true,
            Capture::Sampled(p) => fastrand::f64() * 100.0 < p,
        }
    }

    /// The model allow-list of the caller's key, user and team.
    pub fn authorize_model(&self, caller: &Caller, model: &str) -> Result<(), ApiError> {
        match caller.principal() {
            Some(p) if !p.allows_model(model) => Err(ApiError::new(
                ErrorClass::Forbidden,
                format!("This API key may not use the model `{model}`."),
            )
            .with_code("model_not_allowed")),
            _ => Ok(()),
        }
    }

    /// Resolves a public model name to its alias (a configured one, or a
    /// single-deployment alias for `provider/<model>`).
    pub fn resolve(&self, model: &str) -> Result<Arc<Alias>, ApiError> {
        let live = self.inner.live.load();
        let config = &live.config;
        if model.is_empty() {
            return Err(ApiError::bad_param(
                "model",
                "You must provide a model parameter.",
            ));
        }
        if let Some(alias) = config.models.get(model) {
            return Ok(alias.clone());
        }
        if let Some((prefix, rest)) = model.split_once('/')
            && !rest.is_empty()
            && let Some(template) = config.prefixes.get(prefix)
        {
            if let Ok(cache) = live.prefix_aliases.read()
                && let Some(a) = cache.get(model)
            {
                return Ok(a.clone());
            }
            if template.provider == ProviderKind::Mock
                && let Err(m) = mock::parse(rest)
            {
                return Err(not_found(model, &m));
            }
            let mut d = (**template).clone();
            d.name = model.to_owned();
            d.upstream_model = rest.to_owned();
            d.price = modelgate_config::catalog::lookup_at(
                template.provider_name(),
                rest,
                template.vertex.as_ref().is_some_and(|v| v.is_regional()),
            );
            let alias = Arc::new(Alias::single(model.to_owned(), Arc::new(d)));
            if let Ok(mut cache) = live.prefix_aliases.write()
                && cache.len() < PREFIX_ALIAS_CACHE
            {
                cache.insert(model.to_owned(), alias.clone());
            }
            return Ok(alias);
        }
        let hint = match model.split_once('/') {
            Some(("openai", _)) => "set OPENAI_API_KEY to serve openai/<model>".to_owned(),
            Some(("anthropic", _)) => "set ANTHROPIC_API_KEY to serve anthropic/<model>".to_owned(),
            Some(("gemini", _)) => {
                "set GEMINI_API_KEY (or GOOGLE_API_KEY) to serve gemini/<model>".to_owned()
            }
            Some(("bedrock", _)) => {
                "set AWS_REGION and AWS credentials (or AWS_BEARER_TOKEN_BEDROCK) to serve bedrock/<model>"
                    .to_owned()
            }
            _ => "see GET /v1/models for the models this gateway serves".to_owned(),
        };
        Err(not_found(model, &hint))
    }
}

/// Mock deployments must name a known behaviour (checked at start and reload).
fn check_mock_models(config: &Config) -> Result<(), StateError> {
    for d in &config.deployments {
        if d.provider == ProviderKind::Mock
            && let Err(message) = mock::parse(&d.upstream_model)
        {
            return Err(StateError::BadMockModel {
                name: d.name.clone(),
                message,
            });
        }
    }
    Ok(())
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a reload changed.
#[derive(Debug, Clone, Default, serde::Serialize, PartialEq, Eq)]
pub struct ReloadChanges {
    pub deployments_added: Vec<String>,
    pub deployments_removed: Vec<String>,
    pub deployments_changed: Vec<String>,
    pub models_added: Vec<String>,
    pub models_removed: Vec<String>,
    pub models_changed: Vec<String>,
    /// Other reloadable sections that changed (`router`, `observability`, ...).
    pub sections_changed: Vec<String>,
}

impl ReloadChanges {
    fn is_empty(&self) -> bool {
        *self == ReloadChanges::default()
    }
}

/// A reload's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reloaded {
    /// False when the new configuration equals the running one.
    pub changed: bool,
    pub sha256_before: String,
    pub sha256_after: String,
    pub changes: ReloadChanges,
}

/// A snapshot of the reloadable configuration, for the audit trail (names
/// only: no secrets, no URLs with credentials).
#[derive(serde::Serialize)]
struct ConfigSummary<'a> {
    sha256: &'a str,
    deployments: Vec<&'a str>,
    models: Vec<&'a str>,
}

fn summary<'a>(c: &'a Config, sha: &'a str) -> ConfigSummary<'a> {
    ConfigSummary {
        sha256: sha,
        deployments: c.deployments.iter().map(|d| d.name.as_str()).collect(),
        models: c.models.keys().map(String::as_str).collect(),
    }
}

fn diff(old: &Config, new: &Config) -> ReloadChanges {
    let mut ch = ReloadChanges::default();
    let old_d: HashMap<&str, &modelgate_config::Deployment> = old
        .deployments
        .iter()
        .map(|d| (d.name.as_str(), &**d))
        .collect();
    let new_d: HashMap<&str, &modelgate_config::Deployment> = new
        .deployments
        .iter()
        .map(|d| (d.name.as_str(), &**d))
        .collect();
    for d in &new.deployments {
        match old_d.get(d.name.as_str()) {
            None => ch.deployments_added.push(d.name.clone()),
            Some(o) if **o != **d => ch.deployments_changed.push(d.name.clone()),
            Some(_) => {}
        }
    }
    for d in &old.deployments {
        if !new_d.contains_key(d.name.as_str()) {
            ch.deployments_removed.push(d.name.clone());
        }
    }
    for (name, a) in &new.models {
        match old.models.get(name) {
            None => ch.models_added.push(name.clone()),
            Some(o) if **o != **a => ch.models_changed.push(name.clone()),
            Some(_) => {}
        }
    }
    for name in old.models.keys() {
        if !new.models.contains_key(name) {
            ch.models_removed.push(name.clone());
        }
    }
    if old.router != new.router {
        ch.sections_changed.push("router".into());
    }
    if old.observability != new.observability {
        ch.sections_changed.push("observability".into());
    }
    if old.prefixes != new.prefixes {
        ch.sections_changed.push("env_providers".into());
    }
    ch
}

/// Sections a running gateway cannot take over: they need a restart.
fn restart_only(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.server != new.server {
        out.push("server");
    }
    if old.store != new.store {
        out.push("store");
    }
    if old.governance != new.governance {
        out.push("governance");
    }
    if old.observability.tracing != new.observability.tracing {
        out.push("observability.tracing");
    }
    out
}

impl AppState {
    /// Re-reads the configuration and swaps it in atomically, or changes
    /// nothing: an invalid file (every error listed), or a change to a section
    /// that needs a restart, leaves the running configuration as it was.
    /// Every attempt is written to the audit trail as `config.reload`.
    pub async fn reload(&self, actor: &str) -> Result<Reloaded, ApiError> {
        let Some(reloader) = self.inner.reloader.clone() else {
            return Err(ApiError::new(
                ErrorClass::Conflict,
                "This gateway was not started from a configuration it can re-read.",
            )
            .with_code("reload_unavailable"));
        };
        let _one = self.inner.reload_lock.lock().await;
        let old = self.live();
        let old_sha = self
            .inner
            .source_sha256
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        let loaded = tokio::task::spawn_blocking(move || reloader())
            .await
            .map_err(|e| ApiError::new(ErrorClass::Internal, format!("reload failed: {e}")))?;
        let rejected = |message: String, code: &'static str| {
            ApiError::new(ErrorClass::BadRequest, message).with_code(code)
        };
        let outcome: Result<(Live, ReloadChanges, String), ApiError> = match loaded {
            Err(msg) => Err(rejected(
                format!("The configuration was not reloaded: {msg}"),
                "config_invalid",
            )),
            Ok((new, text)) => {
                let blocked = restart_only(&old.config, &new);
                if !blocked.is_empty() {
                    Err(ApiError::new(
                        ErrorClass::Conflict,
                        format!(
                            "The configuration was not reloaded: changes to {} need a restart.",
                            blocked.join(", ")
                        ),
                    )
                    .with_code("restart_required"))
                } else if let Err(e) = check_mock_models(&new) {
                    Err(rejected(
                        format!("The configuration was not reloaded: {e}"),
                        "config_invalid",
                    ))
                } else {
                    match Upstreams::new(&new) {
                        Err(e) => Err(rejected(
                            format!("The configuration was not reloaded: {e}"),
                            "config_invalid",
                        )),
                        Ok(upstreams) => {
                            let changes = diff(&old.config, &new);
                            let router = if old.config.router == new.router {
                                old.router.clone()
                            } else {
                                Arc::new(Router::new(new.router, &new.deployments, None))
                            };
                            Ok((
                                Live {
                                    upstreams,
                                    router,
                                    prefix_aliases: RwLock::new(HashMap::new()),
                                    config: Arc::new(new),
                                },
                                changes,
                                sha256_hex(&text),
                            ))
                        }
                    }
                }
            }
        };
        let store = &self.inner.store;
        let before = summary(&old.config, &old_sha);
        match outcome {
            Err(e) => {
                crate::admin::audit::<_, serde_json::Value>(
                    store,
                    actor,
                    "config.reload_rejected",
                    "config",
                    Some(&before),
                    Some(&serde_json::json!({"error": e.message})),
                )
                .await;
                tracing::warn!(error = %e.message, "configuration reload rejected; nothing changed");
                Err(e)
            }
            Ok((live, changes, sha)) => {
                let changed = !changes.is_empty() || sha != old_sha;
                let after = serde_json::json!({
                    "config": summary(&live.config, &sha),
                    "changes": &changes,
                });
                let result = Reloaded {
                    changed,
                    sha256_before: old_sha.clone(),
                    sha256_after: sha.clone(),
                    changes,
                };
                self.inner.live.store(Arc::new(live));
                if let Ok(mut s) = self.inner.source_sha256.lock() {
                    *s = sha;
                }
                crate::admin::audit(
                    store,
                    actor,
                    "config.reload",
                    "config",
                    Some(&before),
                    Some(&after),
                )
                .await;
                tracing::info!(changes = ?result.changes, "configuration reloaded");
                Ok(result)
            }
        }
    }
}

fn not_found(model: &str, hint: &str) -> ApiError {
    let mut e = ApiError::new(
        ErrorClass::NotFound,
        format!("The model `{model}` does not exist or you do not have access to it ({hint})."),
    )
    .with_code("model_not_found");
    e.param = Some("model".into());
    e
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
