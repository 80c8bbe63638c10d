//! YAML -> interpolated JSON value -> raw types -> validated [`Config`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use modelgate_core::{LongTier, Price};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::raw::{
    RawDeployment, RawGovernance, RawModel, RawObservability, RawPrice, RawRouter, RawServer,
    RawStore, RawTracing,
};
use crate::{
    ANTHROPIC_DEFAULT_BASE, AZURE_DEFAULT_API_VERSION, Alias, AssumeRole, AwsAuth, AwsChain,
    AwsCredentials, BedrockConfig, Config, ContainerEndpoint, DEFAULT_LISTEN,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_SHUTDOWN_GRACE, DEFAULT_SQLITE_PATH, Deployment, Env,
    ExternalAccountEnv, Fallbacks, GEMINI_DEFAULT_BASE, Hedge, OPENAI_DEFAULT_BASE, ProviderKind,
    RetryPolicy, RouterConfig, Secret, ServerConfig, StoreConfig, Strategy, Timeouts, VertexAuth,
    VertexConfig, VertexPublisher, WebIdentity,
};
use crate::{Capture, GovernanceConfig, ObservabilityConfig, RedisConfig, TracingConfig};

/// One problem in the configuration, with the path of the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path, e.g. `models[1].timeouts.connect_ms`; empty for the whole file.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }
}

const TOP_LEVEL: [&str; 8] = [
    "server",
    "store",
    "deployments",
    "models",
    "router",
    "governance",
    "observability",
    "env_providers",
];

pub(crate) fn load(yaml: Option<&str>, env: &dyn Env) -> Result<Config, ConfigErrors> {
    let mut errs = Errors(Vec::new());
    let mut doc = match yaml {
        None => Value::Object(Default::default()),
        Some(text) => match serde_saphyr::from_str_with_options::<Value>(
            text,
            // YAML 1.2 booleans only: `model: y` or `name: no` stay strings.
            serde_saphyr::options! { strict_booleans: true },
        ) {
            Ok(Value::Null) => Value::Object(Default::default()),
            Ok(v) => v,
            Err(e) => {
                errs.push("", format!("invalid YAML: {e}"));
                return Err(ConfigErrors(errs.0));
            }
        },
    };
    interpolate(&mut doc, env, "", &mut errs);
    let Value::Object(top) = doc else {
        errs.push(
            "",
            "the config file must be a mapping (server:, store:, models:)",
        );
        return Err(ConfigErrors(errs.0));
    };
    let mut server = RawServer::default();
    let mut store = RawStore::default();
    let mut models: Vec<(String, RawModel)> = Vec::new();
    let mut raw_deployments: Vec<(String, RawDeployment)> = Vec::new();
    let mut router = RawRouter::default();
    let mut governance = RawGovernance::default();
    let mut observability = RawObservability::default();
    let mut env_providers = None;
    for (key, value) in top {
        match key.as_str() {
            "server" => {
                if let Some(s) = section(value, "server", &mut errs) {
                    server = s;
                }
            }
            "store" => {
                if let Some(s) = section(value, "store", &mut errs) {
                    store = s;
                }
            }
            "router" => {
                if let Some(r) = section(value, "router", &mut errs) {
                    router = r;
                }
            }
            "governance" => {
                if let Some(g) = section(value, "governance", &mut errs) {
                    governance = g;
                }
            }
            "observability" => {
                if let Some(o) = section(value, "observability", &mut errs) {
                    observability = o;
                }
            }
            "deployments" => match value {
                Value::Array(items) => {
                    for (i, item) in items.into_iter().enumerate() {
                        let path = format!("deployments[{i}]");
                        if let Some(d) = section::<RawDeployment>(item, &path, &mut errs) {
                            raw_deployments.push((path, d));
                        }
                    }
                }
                Value::Null => {}
                _ => errs.push("deployments", "expected a list of deployments"),
            },
            "models" => match value {
                Value::Array(items) => {
                    for (i, item) in items.into_iter().enumerate() {
                        let path = format!("models[{i}]");
                        if let Some(m) = section::<RawModel>(item, &path, &mut errs) {
                            models.push((path, m));
                        }
                    }
                }
                Value::Null => {}
                _ => errs.push("models", "expected a list of models"),
            },
            "env_providers" => match value {
                Value::Bool(b) => env_providers = Some(b),
                Value::String(s) if s == "true" || s == "false" => {
                    env_providers = Some(s == "true")
                }
                _ => errs.push("env_providers", "expected true or false"),
            },
            other => errs.push(
                other,
                format!(
                    "unknown field `{other}`, expected one of {}",
                    TOP_LEVEL.join(", ")
                ),
            ),
        }
    }

    let server = validate_server(server, env, &mut errs);
    let postgres_url = env
        .var("MODELGATE_DATABASE_URL")
        .filter(|u| !u.is_empty())
        .or(store.url.clone());
    if postgres_url
        .as_ref()
        .is_some_and(|u| !(u.starts_with("postgres://") || u.starts_with("postgresql://")))
    {
        errs.push("store.url", "must be a postgres:// URL");
    }
    let store = StoreConfig {
        sqlite_path: PathBuf::from(
            store
                .sqlite_path
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| DEFAULT_SQLITE_PATH.to_owned()),
        ),
        postgres_url: postgres_url.map(Secret::new),
    };
    let mut deployments: Vec<Arc<Deployment>> = Vec::new();
    let mut by_deployment: BTreeMap<String, Arc<Deployment>> = BTreeMap::new();
    for (path, raw) in raw_deployments {
        let name = raw.name.clone();
        if let Some(d) = validate_deployment(raw, &path, env, &mut errs) {
            match by_deployment.entry(name) {
                std::collections::btree_map::Entry::Occupied(e) => errs.push(
                    format!("{path}.name"),
                    format!("duplicate deployment name {:?}", e.key()),
                ),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let d = Arc::new(d);
                    e.insert(d.clone());
                    deployments.push(d);
                }
            }
        }
    }
    let mut aliases: BTreeMap<String, Arc<Alias>> = BTreeMap::new();
    let mut alias_paths: BTreeMap<String, String> = BTreeMap::new();
    for (path, m) in models {
        let name = m.name.clone();
        if let Some(alias) =
            validate_alias(m, &path, env, &by_deployment, &mut deployments, &mut errs)
        {
            match aliases.entry(name) {
                std::collections::btree_map::Entry::Occupied(e) => errs.push(
                    format!("{path}.name"),
                    format!("duplicate model name {:?}", e.key()),
                ),
                std::collections::btree_map::Entry::Vacant(e) => {
                    alias_paths.insert(e.key().clone(), path);
                    e.insert(Arc::new(alias));
                }
            }
        }
    }
    let router = validate_router(&router, &mut errs);
    let governance = validate_governance(governance, env, &mut errs);
    let observability = {
        let pct = observability.capture_sample_percent.unwrap_or(10);
        if pct > 100 {
            errs.push(
                "observability.capture_sample_percent",
                "must be between 0 and 100",
            );
        }
        let capture = match observability.capture.as_deref() {
            None => Capture::Off,
            Some(c) => Capture::parse(c, pct.min(100) as f64).unwrap_or_else(|| {
                errs.push(
                    "observability.capture",
                    format!("{c:?} must be off, sampled or always"),
                );
                Capture::Off
            }),
        };
        let tracing = observability
            .tracing
            .as_ref()
            .and_then(|t| validate_tracing(t, &mut errs));
        ObservabilityConfig {
            tracing,
            capture,
            capture_retention: Duration::from_secs(
                86_400 * observability.capture_retention_days.unwrap_or(30).max(1),
            ),
            log_retention: observability
                .log_retention_days
                .map(|d| Duration::from_secs(86_400 * d.max(1))),
        }
    };
    let prefixes = if env_providers.unwrap_or(true) {
        env_prefixes(env, &mut errs)
    } else {
        let mut p = BTreeMap::new();
        p.insert(
            "mock".to_owned(),
            Arc::new(template("mock", ProviderKind::Mock, String::new(), None)),
        );
        p
    };
    check_fallbacks(&aliases, &alias_paths, &prefixes, &mut errs);
    if !errs.0.is_empty() {
        return Err(ConfigErrors(errs.0));
    }
    Ok(Config {
        server,
        store,
        deployments,
        models: aliases,
        prefixes,
        router,
        governance,
        observability,
    })
}

fn section<T: DeserializeOwned>(value: Value, path: &str, errs: &mut Errors) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let full = if inner == "." || inner.is_empty() {
                path.to_owned()
            } else if inner.starts_with('[') {
                format!("{path}{inner}")
            } else {
                format!("{path}.{inner}")
            };
            errs.push(full, e.into_inner().to_string());
            None
        }
    }
}

/// Replaces `${NAME}` and `${NAME:-default}` in every string value; `$${` is a literal `${`.
fn interpolate(v: &mut Value, env: &dyn Env, path: &str, errs: &mut Errors) {
    match v {
        Value::String(s) if s.contains('$') => match interpolate_str(s, env) {
            Ok(out) => *s = out,
            Err(msg) => errs.push(path, msg),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, env, &format!("{path}[{i}]"), errs);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                interpolate(item, env, &p, errs);
            }
        }
        _ => {}
    }
}

fn interpolate_str(s: &str, env: &dyn Env) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = t;
        } else if let Some(t) = tail.strip_prefix("${") {
            let end = t
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in {s:?}"))?;
            let expr = &t[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid variable name {name:?} in `${{{expr}}}`"));
            }
            match (env.var(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (use ${{{name}:-default}} for a default)"
                    ));
                }
            }
            rest = &t[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn validate_server(raw: RawServer, env: &dyn Env, errs: &mut Errors) -> ServerConfig {
    let listen_text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            errs.push(
                "server.listen",
                format!("{listen_text:?} is not a host:port address (e.g. 127.0.0.1:8600)"),
            );
            fallback_listen()
        }
    };
    let master_key = match env.var("MODELGATE_MASTER_KEY").filter(|k| !k.is_empty()) {
        Some(k) => Some(Secret::new(k)),
        None => match raw.master_key {
            Some(k) if k.trim().is_empty() => {
                errs.push(
                    "server.master_key",
                    "must not be empty (omit it to run without a key)",
                );
                None
            }
            Some(k) => Some(Secret::new(k)),
            None => None,
        },
    };
    let max_body_bytes = match raw.max_body_bytes {
        None => DEFAULT_MAX_BODY_BYTES,
        Some(0) => {
            errs.push("server.max_body_bytes", "must be greater than 0");
            DEFAULT_MAX_BODY_BYTES
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let shutdown_grace = raw
        .shutdown_grace_seconds
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_SHUTDOWN_GRACE);
    ServerConfig {
        listen,
        master_key,
        max_body_bytes,
        shutdown_grace,
    }
}

fn fallback_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8600))
}

fn validate_deployment(
    m: RawDeployment,
    path: &str,
    env: &dyn Env,
    errs: &mut Errors,
) -> Option<Deployment> {
    let before = errs.0.len();
    if m.name.trim().is_empty() || m.name.chars().any(char::is_whitespace) {
        errs.push(
            format!("{path}.name"),
            "must be non-empty and contain no whitespace",
        );
    }
    let provider_name = m.provider.clone().unwrap_or_default();
    // `groq`, `mistral`, ...: openai_compatible with the vendor's defaults.
    let preset = crate::presets::get(&provider_name);
    let provider = match preset {
        Some(_) => Some(ProviderKind::OpenAiCompatible),
        None => ProviderKind::parse(&provider_name),
    };
    if m.provider.is_none() {
        errs.push(format!("{path}.provider"), "is required");
    } else if provider.is_none() {
        let presets: Vec<&str> = crate::presets::PRESETS.iter().map(|p| p.name).collect();
        errs.push(
            format!("{path}.provider"),
            format!(
                "unknown provider {:?}, expected one of {}, or an OpenAI-compatible preset: {}",
                provider_name,
                ProviderKind::ALL.join(", "),
                presets.join(", ")
            ),
        );
    }
    let upstream_model = m.model.clone().unwrap_or_default();
    if m.model.is_none() {
        errs.push(format!("{path}.model"), "is required");
    } else if upstream_model.trim().is_empty() {
        errs.push(format!("{path}.model"), "must not be empty");
    }
    let api_key = match (&m.api_key, &m.api_key_env) {
        (Some(_), Some(_)) => {
            errs.push(
                format!("{path}.api_key_env"),
                "set either api_key or api_key_env, not both",
            );
            None
        }
        (Some(k), None) if k.is_empty() => {
            errs.push(format!("{path}.api_key"), "is empty");
            None
        }
        (Some(k), None) => Some(Secret::new(k.clone())),
        (None, Some(var)) => match env.var(var).filter(|v| !v.is_empty()) {
            Some(k) => Some(Secret::new(k)),
            None => {
                errs.push(
                    format!("{path}.api_key_env"),
                    format!("environment variable {var} is not set"),
                );
                None
            }
        },
        // A preset's key variable, when the deployment names no key.
        (None, None) => preset.and_then(|p| {
            env.var(p.key_env)
                .filter(|k| !k.is_empty())
                .map(Secret::new)
        }),
    };
    if let Some(p) = preset
        && p.key_required
        && api_key.is_none()
        && m.api_key.is_none()
        && m.api_key_env.is_none()
    {
        errs.push(
            format!("{path}.api_key"),
            format!(
                "provider {} needs an API key (api_key, api_key_env, or {} in the environment)",
                p.name, p.key_env
            ),
        );
    }
    let mut api_key = api_key;
    let vertex = match provider {
        Some(ProviderKind::Vertex) => validate_vertex(&m, path, env, &mut api_key, errs),
        Some(_) => {
            for (field, set) in [
                ("project", m.project.is_some()),
                ("location", m.location.is_some()),
                ("publisher", m.publisher.is_some()),
                ("credentials_file", m.credentials_file.is_some()),
                ("access_token", m.access_token.is_some()),
            ] {
                if set {
                    errs.push(
                        format!("{path}.{field}"),
                        format!("only applies to provider vertex, not {provider_name}"),
                    );
                }
            }
            None
        }
        None => None,
    };
    let bedrock = match provider {
        Some(ProviderKind::Bedrock) => validate_bedrock(&m, path, env, &mut api_key, errs),
        Some(_) => {
            for (field, set) in [
                (
                    "region",
                    m.region.is_some() && provider != Some(ProviderKind::Vertex),
                ),
                ("aws_access_key_id", m.aws_access_key_id.is_some()),
                ("aws_secret_access_key", m.aws_secret_access_key.is_some()),
                ("aws_session_token", m.aws_session_token.is_some()),
                ("aws_profile", m.aws_profile.is_some()),
                ("aws_role_arn", m.aws_role_arn.is_some()),
                ("aws_role_session_name", m.aws_role_session_name.is_some()),
                ("aws_external_id", m.aws_external_id.is_some()),
                (
                    "additional_model_request_fields",
                    m.additional_model_request_fields.is_some(),
                ),
            ] {
                if set {
                    errs.push(
                        format!("{path}.{field}"),
                        format!("only applies to provider bedrock, not {provider_name}"),
                    );
                }
            }
            None
        }
        None => None,
    };
    let base_url = match (provider, &m.base_url) {
        (_, Some(u)) => {
            if let Some(problem) = url_problem(u) {
                errs.push(format!("{path}.base_url"), problem);
            }
            u.trim_end_matches('/').to_owned()
        }
        (Some(ProviderKind::OpenAi), None) => OPENAI_DEFAULT_BASE.to_owned(),
        (Some(ProviderKind::Anthropic), None) => ANTHROPIC_DEFAULT_BASE.to_owned(),
        (Some(ProviderKind::Gemini), None) => GEMINI_DEFAULT_BASE.to_owned(),
        // Without a region `validate_bedrock` has reported the error.
        (Some(ProviderKind::Bedrock), None) => bedrock
            .as_ref()
            .filter(|b| !b.region.is_empty())
            .map(|b| crate::bedrock_default_base(&b.region))
            .unwrap_or_default(),
        (Some(ProviderKind::Vertex), None) => vertex
            .as_ref()
            .map(|v| crate::vertex_default_base(&v.location))
            .unwrap_or_default(),
        (Some(ProviderKind::Azure), None) => {
            errs.push(
                format!("{path}.base_url"),
                "is required for provider azure (https://<resource>.openai.azure.com)",
            );
            String::new()
        }
        (Some(ProviderKind::OpenAiCompatible), None) => match preset {
            Some(p) => match env.var(p.base_env).filter(|b| !b.is_empty()) {
                Some(b) => b.trim_end_matches('/').to_owned(),
                None => match p.base_url {
                    Some(b) => b.to_owned(),
                    None => {
                        errs.push(
                            format!("{path}.base_url"),
                            format!(
                                "is required for provider {} (or set {})",
                                p.name, p.base_env
                            ),
                        );
                        String::new()
                    }
                },
            },
            None => {
                errs.push(
                    format!("{path}.base_url"),
                    "is required for provider openai_compatible",
                );
                String::new()
            }
        },
        _ => String::new(),
    };
    if matches!(
        provider,
        Some(ProviderKind::OpenAi | ProviderKind::Anthropic | ProviderKind::Gemini)
    ) && api_key.is_none()
        && m.api_key.is_none()
        && m.api_key_env.is_none()
    {
        errs.push(
            format!("{path}.api_key"),
            format!("provider {provider_name} needs an API key (api_key or api_key_env)"),
        );
    }
    if provider == Some(ProviderKind::Azure)
        && api_key.is_none()
        && m.api_key.is_none()
        && m.api_key_env.is_none()
        && !m
            .headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("authorization"))
    {
        errs.push(
            format!("{path}.api_key"),
            "provider azure needs an API key (api_key or api_key_env), or an Entra ID token in headers.authorization",
        );
    }
    let mut timeouts = Timeouts::default();
    for (field, value, slot) in [
        ("connect_ms", m.timeouts.connect_ms, &mut timeouts.connect),
        ("request_ms", m.timeouts.request_ms, &mut timeouts.request),
        ("idle_ms", m.timeouts.idle_ms, &mut timeouts.idle),
        (
            "first_token_ms",
            m.timeouts.first_token_ms,
            &mut timeouts.first_token,
        ),
    ] {
        match value {
            Some(0) => errs.push(format!("{path}.timeouts.{field}"), "must be greater than 0"),
            Some(ms) => *slot = Duration::from_millis(ms),
            None => {}
        }
    }
    if m.timeouts.first_token_ms.is_none() {
        timeouts.first_token = timeouts.request;
    }
    let weight = match m.weight {
        Some(0) => {
            errs.push(format!("{path}.weight"), "must be greater than 0");
            1
        }
        Some(w) => u32::try_from(w).unwrap_or(u32::MAX),
        None => 1,
    };
    let max_concurrency = match m.max_concurrency {
        Some(0) => {
            errs.push(format!("{path}.max_concurrency"), "must be greater than 0");
            None
        }
        Some(c) => Some(u32::try_from(c).unwrap_or(u32::MAX)),
        None => None,
    };
    if m.catalog_model
        .as_deref()
        .is_some_and(|c| c.trim().is_empty())
    {
        errs.push(format!("{path}.catalog_model"), "must not be empty");
    }
    let price = match &m.price {
        Some(p) => validate_price(p, &format!("{path}.price"), errs),
        // Not configured: the checked-in catalog, when it lists the model.
        None => crate::catalog::lookup_at(
            &provider_name,
            m.catalog_model.as_deref().unwrap_or(&upstream_model),
            vertex.as_ref().is_some_and(VertexConfig::is_regional),
        ),
    };
    let default_max_tokens = match m.default_max_tokens {
        Some(0) => {
            errs.push(
                format!("{path}.default_max_tokens"),
                "must be greater than 0",
            );
            None
        }
        Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        None => None,
    };
    let headers = m
        .headers
        .into_iter()
        .map(|(k, v)| (k, Secret::new(v)))
        .collect();
    if errs.0.len() != before {
        return None;
    }
    Some(Deployment {
        name: m.name,
        provider: provider?,
        upstream_model,
        base_url,
        api_key,
        headers,
        timeouts,
        price,
        drop_unsupported_params: m.drop_unsupported_params.unwrap_or(false),
        default_max_tokens,
        stream_usage: m
            .stream_usage
            .unwrap_or_else(|| preset.is_none_or(|p| p.stream_usage)),
        api_version: match (provider, m.api_version) {
            (Some(ProviderKind::Azure), v) => {
                Some(v.unwrap_or_else(|| AZURE_DEFAULT_API_VERSION.to_owned()))
            }
            (_, Some(_)) => {
                errs.push(
                    format!("{path}.api_version"),
                    "only applies to provider azure",
                );
                None
            }
            (_, None) => None,
        },
        weight,
        priority: u32::try_from(m.priority.unwrap_or(0)).unwrap_or(u32::MAX),
        tags: m.tags,
        max_concurrency,
        rpm: match m.rpm {
            Some(0) => {
                errs.push(format!("{path}.rpm"), "must be greater than 0");
                None
            }
            r => r.map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
        },
        tpm: match m.tpm {
            Some(0) => {
                errs.push(format!("{path}.tpm"), "must be greater than 0");
                None
            }
            t => t,
        },
        bedrock,
        vertex,
        preset: preset.map(|p| p.name),
        catalog_model: m.catalog_model,
    })
}

/// A non-empty (after trimming) value.
fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// An AWS region name as endpoints and SigV4 scopes use it (`us-east-1`).
fn valid_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The region in a Bedrock endpoint's host: `bedrock-runtime.<region>.amazonaws.com`
/// and VPC endpoints `vpce-....bedrock-runtime.<region>.vpce.amazonaws.com`.
fn region_from_endpoint(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let host = rest.split(['/', ':', '?']).next()?;
    let labels: Vec<&str> = host.split('.').collect();
    let i = labels
        .iter()
        .position(|l| *l == "bedrock-runtime" || *l == "bedrock-runtime-fips")?;
    labels
        .get(i + 1)
        .filter(|r| valid_region(r))
        .map(|r| (*r).to_owned())
}

/// AWS credentials from the SDKs' standard variables, when both parts are set.
fn aws_credentials_from_env(env: &dyn Env) -> Option<AwsCredentials> {
    Some(AwsCredentials {
        access_key_id: Secret::new(non_empty(env.var("AWS_ACCESS_KEY_ID"))?),
        secret_access_key: Secret::new(non_empty(env.var("AWS_SECRET_ACCESS_KEY"))?),
        session_token: non_empty(env.var("AWS_SESSION_TOKEN")).map(Secret::new),
    })
}

/// The AWS default credential chain as the environment configures it, for
/// signing in `region`. A profile named in the file wins over `AWS_PROFILE`.
fn aws_chain_from_env(
    env: &dyn Env,
    region: &str,
    profile: Option<&str>,
    errs: &mut Errors,
) -> AwsChain {
    let named = profile
        .map(str::to_owned)
        .or_else(|| non_empty(env.var("AWS_PROFILE")))
        .or_else(|| non_empty(env.var("AWS_DEFAULT_PROFILE")));
    let home = non_empty(env.var("HOME")).map(PathBuf::from);
    let file = |var: &str, name: &str| {
        non_empty(env.var(var))
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    let web_identity = match (
        non_empty(env.var("AWS_WEB_IDENTITY_TOKEN_FILE")),
        non_empty(env.var("AWS_ROLE_ARN")),
    ) {
        (Some(token_file), Some(role_arn)) => Some(WebIdentity {
            token_file: PathBuf::from(token_file),
            role_arn,
            session_name: non_empty(env.var("AWS_ROLE_SESSION_NAME"))
                .unwrap_or_else(|| DEFAULT_AWS_SESSION_NAME.to_owned()),
        }),
        (Some(_), None) => {
            errs.push(
                "AWS_ROLE_ARN",
                "is required with AWS_WEB_IDENTITY_TOKEN_FILE",
            );
            None
        }
        _ => None,
    };
    let container_url = match (
        non_empty(env.var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")),
        non_empty(env.var("AWS_CONTAINER_CREDENTIALS_FULL_URI")),
    ) {
        (Some(rel), _) => Some(format!("http://169.254.170.2{rel}")),
        (None, Some(full)) => {
            if container_endpoint_allowed(&full) {
                Some(full)
            } else {
                errs.push(
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    format!(
                        "{full:?} must be https, or http to a loopback address or the ECS/EKS \
                         credential addresses (169.254.170.2, 169.254.170.23)"
                    ),
                );
                None
            }
        }
        (None, None) => None,
    };
    let container = container_url.map(|url| ContainerEndpoint {
        url,
        auth_token: non_empty(env.var("AWS_CONTAINER_AUTHORIZATION_TOKEN")).map(Secret::new),
        auth_token_file: non_empty(env.var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"))
            .map(PathBuf::from),
    });
    let imds_disabled = env
        .var("AWS_EC2_METADATA_DISABLED")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let imds = (!imds_disabled).then(|| {
        non_empty(env.var("AWS_EC2_METADATA_SERVICE_ENDPOINT")).map_or_else(
            || "http://169.254.169.254".to_owned(),
            |u| u.trim_end_matches('/').to_owned(),
        )
    });
    AwsChain {
        profile: named.clone().unwrap_or_else(|| "default".to_owned()),
        profile_named: named.is_some(),
        credentials_file: file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        config_file: file("AWS_CONFIG_FILE", "config"),
        web_identity,
        container,
        imds,
        sts_endpoint: sts_endpoint(env, region),
    }
}

/// The session name roles are assumed under unless one is configured.
const DEFAULT_AWS_SESSION_NAME: &str = "modelgate";

/// STS: `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else the region's
/// endpoint (regional STS, as the SDKs now default to).
fn sts_endpoint(env: &dyn Env, region: &str) -> String {
    non_empty(env.var("AWS_ENDPOINT_URL_STS"))
        .or_else(|| non_empty(env.var("AWS_ENDPOINT_URL")))
        .map_or_else(
            || format!("https://sts.{region}.amazonaws.com"),
            |u| u.trim_end_matches('/').to_owned(),
        )
}

/// The SDKs accept a full container credentials URI only over https, or to
/// a loopback address or the ECS/EKS agents' link-local addresses.
fn container_endpoint_allowed(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    matches!(
        host,
        "localhost" | "169.254.170.2" | "169.254.170.23" | "fd00:ec2::23"
    ) || host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// What is wrong with `u` as an upstream base URL, if anything: it must be
/// an absolute `http(s)://` URL the upstream client can send to as it
/// stands (a host, and only characters URLs allow).
fn url_problem(u: &str) -> Option<String> {
    if !(u.starts_with("http://") || u.starts_with("https://")) {
        return Some(format!("{u:?} must start with http:// or https://"));
    }
    let ok = u.is_ascii()
        && u.parse::<http::Uri>()
            .is_ok_and(|uri| uri.host().is_some_and(|h| !h.is_empty()));
    (!ok).then(|| {
        format!(
            "{u:?} is not a valid URL (it needs a host, and spaces and other characters URLs do not allow must be percent-encoded)"
        )
    })
}

/// The Bedrock part of a deployment. Credentials, first match wins:
/// `api_key` / `api_key_env` (a Bedrock API key); `aws_access_key_id` +
/// `aws_secret_access_key` (+ `aws_session_token`); `aws_profile` (the
/// default chain with that profile); `AWS_BEARER_TOKEN_BEDROCK`;
/// `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
/// the default chain (shared files, web identity, container, instance
/// metadata). `aws_role_arn` is then assumed with those AWS credentials.
/// A key found in the environment is put in `api_key`. Region: `region`, the
/// region in `base_url`'s host, `AWS_REGION`, `AWS_DEFAULT_REGION`.
fn validate_bedrock(
    m: &RawDeployment,
    path: &str,
    env: &dyn Env,
    api_key: &mut Option<Secret>,
    errs: &mut Errors,
) -> Option<BedrockConfig> {
    let region = non_empty(m.region.clone())
        .or_else(|| m.base_url.as_deref().and_then(region_from_endpoint))
        .or_else(|| non_empty(env.var("AWS_REGION")))
        .or_else(|| non_empty(env.var("AWS_DEFAULT_REGION")));
    if let Some(r) = &region
        && !valid_region(r)
    {
        errs.push(
            format!("{path}.region"),
            format!("{r:?} is not an AWS region (e.g. us-east-1)"),
        );
    }
    let signing_region = region.clone().unwrap_or_default();
    let key_in_file = m.api_key.is_some() || m.api_key_env.is_some();
    let keys_in_file = m.aws_access_key_id.is_some()
        || m.aws_secret_access_key.is_some()
        || m.aws_session_token.is_some();
    let profile = match m.aws_profile.as_deref().map(str::trim) {
        Some("") => {
            errs.push(format!("{path}.aws_profile"), "must not be empty");
            None
        }
        p => p,
    };
    let aws_in_file = keys_in_file || profile.is_some() || m.aws_role_arn.is_some();
    let aws = if key_in_file && aws_in_file {
        errs.push(
            format!("{path}.api_key"),
            "set either api_key / api_key_env (a Bedrock API key) or AWS credentials \
             (aws_access_key_id, aws_profile, aws_role_arn), not both",
        );
        None
    } else if keys_in_file {
        if profile.is_some() {
            errs.push(
                format!("{path}.aws_profile"),
                "set either aws_access_key_id / aws_secret_access_key or aws_profile, not both",
            );
        }
        let id = non_empty(m.aws_access_key_id.clone());
        let secret = non_empty(m.aws_secret_access_key.clone());
        if id.is_none() {
            errs.push(
                format!("{path}.aws_access_key_id"),
                "is required (and not empty) with aws_secret_access_key or aws_session_token",
            );
        }
        if secret.is_none() {
            errs.push(
                format!("{path}.aws_secret_access_key"),
                "is required (and not empty) with aws_access_key_id or aws_session_token",
            );
        }
        Some(AwsAuth::Static(AwsCredentials {
            access_key_id: Secret::new(id?),
            secret_access_key: Secret::new(secret?),
            session_token: non_empty(m.aws_session_token.clone()).map(Secret::new),
        }))
    } else if profile.is_some() {
        Some(AwsAuth::Chain(aws_chain_from_env(
            env,
            &signing_region,
            profile,
            errs,
        )))
    } else if key_in_file {
        None
    } else if m.aws_role_arn.is_none()
        && let Some(token) = non_empty(env.var("AWS_BEARER_TOKEN_BEDROCK"))
    {
        *api_key = Some(Secret::new(token));
        None
    } else if let Some(creds) = aws_credentials_from_env(env) {
        Some(AwsAuth::Static(creds))
    } else {
        Some(AwsAuth::Chain(aws_chain_from_env(
            env,
            &signing_region,
            None,
            errs,
        )))
    };
    let assume_role = match m.aws_role_arn.as_deref().map(str::trim) {
        None => {
            for (field, set) in [
                ("aws_role_session_name", m.aws_role_session_name.is_some()),
                ("aws_external_id", m.aws_external_id.is_some()),
            ] {
                if set {
                    errs.push(format!("{path}.{field}"), "only applies with aws_role_arn");
                }
            }
            None
        }
        Some(arn) if !arn.starts_with("arn:") || arn.split(':').count() < 6 => {
            errs.push(
                format!("{path}.aws_role_arn"),
                format!("{arn:?} is not a role ARN (arn:aws:iam::<account>:role/<name>)"),
            );
            None
        }
        Some(arn) => Some(AssumeRole {
            role_arn: arn.to_owned(),
            session_name: match m.aws_role_session_name.as_deref().map(str::trim) {
                None => DEFAULT_AWS_SESSION_NAME.to_owned(),
                Some(n) if valid_session_name(n) => n.to_owned(),
                Some(n) => {
                    errs.push(
                        format!("{path}.aws_role_session_name"),
                        format!("{n:?} must be 2 to 64 characters of A-Z a-z 0-9 =,.@-_"),
                    );
                    String::new()
                }
            },
            external_id: non_empty(m.aws_external_id.clone()),
            sts_endpoint: sts_endpoint(env, &signing_region),
        }),
    };
    // The default endpoint is built from the region, and SigV4 signs for one.
    let region = match region {
        Some(r) => r,
        None if m.base_url.is_none() => {
            errs.push(
                format!("{path}.region"),
                "is required for provider bedrock (or set AWS_REGION, or base_url)",
            );
            String::new()
        }
        None if aws.is_some() => {
            errs.push(
                format!("{path}.region"),
                "is required to sign requests with AWS credentials (or set AWS_REGION)",
            );
            String::new()
        }
        None => String::new(),
    };
    Some(BedrockConfig {
        region,
        aws,
        assume_role,
        default_max_tokens: m
            .default_max_tokens
            .filter(|n| *n > 0)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        additional_model_request_fields: m
            .additional_model_request_fields
            .clone()
            .filter(|f| !f.is_empty()),
    })
}

/// An STS `RoleSessionName`: 2-64 of `[\w+=,.@-]`.
fn valid_session_name(n: &str) -> bool {
    (2..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b))
}

/// A Vertex AI location as endpoints use it (`us-central1`, `global`).
fn valid_location(l: &str) -> bool {
    valid_region(l)
}

/// The file `gcloud auth application-default login` writes
/// (`$CLOUDSDK_CONFIG` or `$HOME/.config/gcloud`, then
/// `application_default_credentials.json`), when it exists.
fn gcloud_adc_file(env: &dyn Env) -> Option<PathBuf> {
    let dir = non_empty(env.var("CLOUDSDK_CONFIG"))
        .map(PathBuf::from)
        .or_else(|| non_empty(env.var("HOME")).map(|h| PathBuf::from(h).join(".config/gcloud")))?;
    let f = dir.join("application_default_credentials.json");
    f.is_file().then_some(f)
}

/// The metadata server, last step of application-default credentials:
/// `GCE_METADATA_HOST` when set, else Google's host when this machine is a
/// Google Compute Engine VM (the DMI product name says "Google", the check
/// Google's auth libraries make).
fn metadata_server(env: &dyn Env) -> Option<String> {
    if let Some(host) = non_empty(env.var("GCE_METADATA_HOST")) {
        return Some(
            if host.starts_with("http://") || host.starts_with("https://") {
                host.trim_end_matches('/').to_owned()
            } else {
                format!("http://{host}")
            },
        );
    }
    let product = std::fs::read_to_string("/sys/class/dmi/id/product_name").ok()?;
    product
        .contains("Google")
        .then(|| "http://metadata.google.internal".to_owned())
}

/// The Vertex AI part of a deployment. Credentials, first match wins:
/// `access_token`, `api_key` / `api_key_env` (a fixed OAuth access token, put
/// in `api_key`); `credentials_file`; `GOOGLE_APPLICATION_CREDENTIALS`; the
/// gcloud application-default file; the metadata server.
/// Project: `project`, `GOOGLE_CLOUD_PROJECT`. Location: `location` (or
/// `region`), `GOOGLE_CLOUD_LOCATION`, `us-central1`.
fn validate_vertex(
    m: &RawDeployment,
    path: &str,
    env: &dyn Env,
    api_key: &mut Option<Secret>,
    errs: &mut Errors,
) -> Option<VertexConfig> {
    let project =
        non_empty(m.project.clone()).or_else(|| non_empty(env.var("GOOGLE_CLOUD_PROJECT")));
    let project = match project {
        Some(p) => p,
        None => {
            errs.push(
                format!("{path}.project"),
                "is required for provider vertex (or set GOOGLE_CLOUD_PROJECT)",
            );
            String::new()
        }
    };
    if m.location.is_some() && m.region.is_some() {
        errs.push(
            format!("{path}.region"),
            "set either location or region (the same thing for vertex), not both",
        );
    }
    let location = non_empty(m.location.clone().or_else(|| m.region.clone()))
        .or_else(|| non_empty(env.var("GOOGLE_CLOUD_LOCATION")))
        .unwrap_or_else(|| crate::VERTEX_DEFAULT_LOCATION.to_owned());
    if !valid_location(&location) {
        errs.push(
            format!("{path}.location"),
            format!("{location:?} is not a Google Cloud location (e.g. us-central1, global)"),
        );
    }
    let publisher = match m.publisher.as_deref() {
        None => None,
        Some(p) => match VertexPublisher::parse(p) {
            Some(p) => Some(p),
            None => {
                errs.push(
                    format!("{path}.publisher"),
                    format!("unknown publisher {p:?}, expected google or anthropic"),
                );
                None
            }
        },
    };
    let key_in_file = m.api_key.is_some() || m.api_key_env.is_some();
    if let Some(t) = &m.access_token {
        if key_in_file {
            errs.push(
                format!("{path}.access_token"),
                "set either access_token or api_key / api_key_env, not both",
            );
        } else if t.trim().is_empty() {
            errs.push(format!("{path}.access_token"), "is empty");
        } else {
            *api_key = Some(Secret::new(t.clone()));
        }
    }
    let token_in_file = key_in_file || m.access_token.is_some();
    let auth = if token_in_file {
        if m.credentials_file.is_some() {
            errs.push(
                format!("{path}.credentials_file"),
                "set either credentials_file or a fixed access_token / api_key, not both",
            );
        }
        VertexAuth::Static
    } else if let Some(f) = &m.credentials_file {
        if f.trim().is_empty() {
            errs.push(format!("{path}.credentials_file"), "is empty");
        }
        VertexAuth::File(PathBuf::from(f))
    } else if let Some(f) = non_empty(env.var("GOOGLE_APPLICATION_CREDENTIALS")) {
        VertexAuth::File(PathBuf::from(f))
    } else if let Some(f) = gcloud_adc_file(env) {
        VertexAuth::File(f)
    } else if let Some(base) = metadata_server(env) {
        VertexAuth::Metadata(base)
    } else {
        errs.push(
            format!("{path}.credentials_file"),
            "provider vertex needs credentials: credentials_file (a service-account or \
             authorized_user JSON file), access_token, or GOOGLE_APPLICATION_CREDENTIALS \
             in the environment",
        );
        VertexAuth::Static
    };
    Some(VertexConfig {
        project,
        location,
        publisher,
        auth,
        external: external_account_env(env),
    })
}

/// What `external_account` credential files may read from the environment.
fn external_account_env(env: &dyn Env) -> ExternalAccountEnv {
    ExternalAccountEnv {
        aws_region: non_empty(env.var("AWS_REGION"))
            .or_else(|| non_empty(env.var("AWS_DEFAULT_REGION"))),
        aws_credentials: aws_credentials_from_env(env),
        allow_executables: env
            .var("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES")
            .is_some_and(|v| v.trim() == "1"),
    }
}

/// `vertex/<model id>` from Google's standard variables: a project
/// (`GOOGLE_CLOUD_PROJECT`) and application-default credentials (the file
/// `GOOGLE_APPLICATION_CREDENTIALS` names, the gcloud file, or the metadata
/// server on Google Cloud); the location is
/// `GOOGLE_CLOUD_LOCATION`, else `us-central1`. The publisher follows the
/// model id (`vertex/claude-...` is Anthropic's).
fn vertex_env_template(env: &dyn Env, errs: &mut Errors) -> Option<Deployment> {
    let project = non_empty(env.var("GOOGLE_CLOUD_PROJECT"))?;
    let auth = match non_empty(env.var("GOOGLE_APPLICATION_CREDENTIALS")) {
        Some(f) => VertexAuth::File(PathBuf::from(f)),
        None => match gcloud_adc_file(env) {
            Some(f) => VertexAuth::File(f),
            None => VertexAuth::Metadata(metadata_server(env)?),
        },
    };
    let location = non_empty(env.var("GOOGLE_CLOUD_LOCATION"))
        .unwrap_or_else(|| crate::VERTEX_DEFAULT_LOCATION.to_owned());
    if !valid_location(&location) {
        errs.push(
            "GOOGLE_CLOUD_LOCATION",
            format!("{location:?} is not a Google Cloud location (e.g. us-central1, global)"),
        );
        return None;
    }
    let mut d = template(
        "vertex",
        ProviderKind::Vertex,
        crate::vertex_default_base(&location),
        None,
    );
    d.vertex = Some(VertexConfig {
        project,
        location,
        publisher: None,
        auth,
        external: external_account_env(env),
    });
    Some(d)
}

/// Validates one `models[]` entry: either a group of named deployments or one
/// inline deployment (added to `deployments` under the alias's name).
fn validate_alias(
    m: RawModel,
    path: &str,
    env: &dyn Env,
    named: &BTreeMap<String, Arc<Deployment>>,
    deployments: &mut Vec<Arc<Deployment>>,
    errs: &mut Errors,
) -> Option<Alias> {
    let before = errs.0.len();
    if m.name.trim().is_empty() || m.name.chars().any(char::is_whitespace) {
        errs.push(
            format!("{path}.name"),
            "must be non-empty and contain no whitespace",
        );
    }
    let strategy = match m.strategy.as_deref() {
        None => Strategy::default(),
        Some(s) => Strategy::parse(s).unwrap_or_else(|| {
            errs.push(
                format!("{path}.strategy"),
                format!("unknown strategy {s:?}, expected one of priority, weighted, least_busy, lowest_latency, lowest_cost"),
            );
            Strategy::default()
        }),
    };
    let inline = m.provider.is_some() || m.model.is_some();
    let group: Vec<Arc<Deployment>> = match (&m.deployments, inline) {
        (Some(_), true) => {
            errs.push(
                format!("{path}.deployments"),
                "list deployments by name or describe one inline (provider, model), not both",
            );
            vec![]
        }
        (Some(names), false) => {
            if names.is_empty() {
                errs.push(
                    format!("{path}.deployments"),
                    "must name at least one deployment",
                );
            }
            names
                .iter()
                .enumerate()
                .filter_map(|(j, n)| match named.get(n) {
                    Some(d) => Some(d.clone()),
                    None => {
                        errs.push(
                            format!("{path}.deployments[{j}]"),
                            format!("unknown deployment {n:?} (define it under deployments:)"),
                        );
                        None
                    }
                })
                .collect()
        }
        (None, _) => {
            if named.contains_key(&m.name) {
                errs.push(
                    format!("{path}.name"),
                    format!(
                        "{:?} is also a deployment name; list it under `deployments:` instead",
                        m.name
                    ),
                );
            }
            let raw = RawDeployment {
                name: m.name.clone(),
                provider: m.provider.clone(),
                model: m.model.clone(),
                base_url: m.base_url.clone(),
                api_key: m.api_key.clone(),
                api_key_env: m.api_key_env.clone(),
                headers: m.headers.clone(),
                timeouts: m.timeouts.clone(),
                price: m.price.clone(),
                drop_unsupported_params: m.drop_unsupported_params,
                default_max_tokens: m.default_max_tokens,
                stream_usage: m.stream_usage,
                api_version: m.api_version.clone(),
                weight: m.weight,
                priority: m.priority,
                tags: m.tags.clone(),
                max_concurrency: m.max_concurrency,
                rpm: m.rpm,
                tpm: m.tpm,
                region: m.region.clone(),
                aws_access_key_id: m.aws_access_key_id.clone(),
                aws_secret_access_key: m.aws_secret_access_key.clone(),
                aws_session_token: m.aws_session_token.clone(),
                aws_profile: m.aws_profile.clone(),
                aws_role_arn: m.aws_role_arn.clone(),
                aws_role_session_name: m.aws_role_session_name.clone(),
                aws_external_id: m.aws_external_id.clone(),
                additional_model_request_fields: m.additional_model_request_fields.clone(),
                project: m.project.clone(),
                location: m.location.clone(),
                publisher: m.publisher.clone(),
                credentials_file: m.credentials_file.clone(),
                access_token: m.access_token.clone(),
                catalog_model: m.catalog_model.clone(),
            };
            match validate_deployment(raw, path, env, errs) {
                Some(d) => {
                    let d = Arc::new(d);
                    deployments.push(d.clone());
                    vec![d]
                }
                None => vec![],
            }
        }
    };
    let r = &m.retry;
    let defaults = RetryPolicy::default();
    let retry = RetryPolicy {
        max_attempts: match r.max_attempts {
            Some(0) => {
                errs.push(format!("{path}.retry.max_attempts"), "must be at least 1");
                1
            }
            Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
            None => defaults.max_attempts,
        },
        backoff: r.backoff_ms.map_or(defaults.backoff, Duration::from_millis),
        max_backoff: r
            .max_backoff_ms
            .map_or(defaults.max_backoff, Duration::from_millis),
        deadline: match r.deadline_ms {
            Some(0) => {
                errs.push(
                    format!("{path}.retry.deadline_ms"),
                    "must be greater than 0",
                );
                defaults.deadline
            }
            Some(ms) => Duration::from_millis(ms),
            None => defaults.deadline,
        },
    };
    if m.context_window == Some(0) {
        errs.push(format!("{path}.context_window"), "must be greater than 0");
    }
    let hedge = m.hedge.as_ref().map(|h| {
        let max_share = h.max_share.unwrap_or(0.1);
        if !(max_share > 0.0 && max_share <= 1.0) {
            errs.push(
                format!("{path}.hedge.max_share"),
                "must be above 0 and at most 1",
            );
        }
        if h.after_ms.is_none() && h.p95 != Some(true) {
            errs.push(
                format!("{path}.hedge"),
                "set after_ms, or p95: true (with after_ms as the cold-start threshold)",
            );
        }
        if h.after_ms == Some(0) {
            errs.push(format!("{path}.hedge.after_ms"), "must be greater than 0");
        }
        Hedge {
            after: h.after_ms.map(Duration::from_millis),
            p95: h.p95.unwrap_or(false),
            max_share,
        }
    });
    if errs.0.len() != before || group.is_empty() {
        return None;
    }
    Some(Alias {
        name: m.name,
        deployments: group,
        strategy,
        retry,
        fallbacks: Fallbacks {
            general: m.fallbacks.general,
            context_window: m.fallbacks.context_window,
            content_policy: m.fallbacks.content_policy,
        },
        context_window: m.context_window,
        hedge,
    })
}

fn validate_governance(g: RawGovernance, env: &dyn Env, errs: &mut Errors) -> GovernanceConfig {
    let key_secret = match env.var("MODELGATE_KEY_SECRET").filter(|k| !k.is_empty()) {
        Some(k) => Some(Secret::new(k)),
        None => g.key_secret.map(Secret::new),
    };
    if key_secret.as_ref().is_some_and(|k| k.expose().len() < 16) {
        errs.push("governance.key_secret", "must be at least 16 characters");
    }
    if let Some(url) = &g.alert_webhook {
        let host = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .map(|rest| rest.split(['/', ':', '?']).next().unwrap_or(""));
        match host {
            None => errs.push(
                "governance.alert_webhook",
                "must be an http:// or https:// URL",
            ),
            Some(h) if !g.alert_webhook_allowlist.iter().any(|a| a == h) => errs.push(
                "governance.alert_webhook",
                format!("host {h:?} is not in governance.alert_webhook_allowlist"),
            ),
            Some(_) => {}
        }
    }
    let redis_url = env
        .var("MODELGATE_REDIS_URL")
        .filter(|u| !u.is_empty())
        .or(g.redis_url.clone());
    let mode = |field: &str, v: &Option<String>, default_open: bool, errs: &mut Errors| match v
        .as_deref()
    {
        None => default_open,
        Some("open") => true,
        Some("closed") => false,
        Some(other) => {
            errs.push(
                format!("governance.{field}"),
                format!("{other:?} must be open or closed"),
            );
            default_open
        }
    };
    let limits_fail_open = mode(
        "limits_on_redis_failure",
        &g.limits_on_redis_failure,
        true,
        errs,
    );
    let budgets_fail_open = mode(
        "budgets_on_redis_failure",
        &g.budgets_on_redis_failure,
        false,
        errs,
    );
    let redis = match redis_url {
        Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
            Some(RedisConfig {
                url: Secret::new(url),
                prefix: g.redis_prefix.clone().unwrap_or_else(|| "mg".to_owned()),
                timeout: Duration::from_millis(g.redis_timeout_ms.unwrap_or(250).max(1)),
                limits_fail_open,
                budgets_fail_open,
            })
        }
        Some(_) => {
            errs.push(
                "governance.redis_url",
                "must start with redis:// or rediss://",
            );
            None
        }
        None => None,
    };
    for (field, v) in [
        ("end_user_rpm", g.end_user_rpm),
        ("end_user_tpm", g.end_user_tpm),
    ] {
        if v == Some(0) {
            errs.push(format!("governance.{field}"), "must be greater than 0");
        }
    }
    GovernanceConfig {
        end_user_rpm: g.end_user_rpm,
        end_user_tpm: g.end_user_tpm,
        redis,
        key_secret,
        default_max_output_tokens: match g.default_max_output_tokens {
            Some(0) => {
                errs.push(
                    "governance.default_max_output_tokens",
                    "must be greater than 0",
                );
                4096
            }
            Some(n) => n,
            None => 4096,
        },
        alert_webhook: g.alert_webhook,
    }
}

fn validate_router(r: &RawRouter, errs: &mut Errors) -> RouterConfig {
    let d = RouterConfig::default();
    let rate = |field: &str, v: Option<f64>, default: f64, errs: &mut Errors| match v {
        Some(x) if !(0.0..=1.0).contains(&x) => {
            errs.push(format!("router.{field}"), "must be between 0 and 1");
            default
        }
        Some(x) => x,
        None => default,
    };
    let positive = |field: &str, v: Option<u64>, default: u32, errs: &mut Errors| match v {
        Some(0) => {
            errs.push(format!("router.{field}"), "must be greater than 0");
            default
        }
        Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
        None => default,
    };
    RouterConfig {
        breaker_consecutive_failures: positive(
            "breaker_consecutive_failures",
            r.breaker_consecutive_failures,
            d.breaker_consecutive_failures,
            errs,
        ),
        breaker_error_rate: rate(
            "breaker_error_rate",
            r.breaker_error_rate,
            d.breaker_error_rate,
            errs,
        ),
        breaker_window: positive("breaker_window", r.breaker_window, d.breaker_window, errs),
        breaker_cooldown: r
            .breaker_cooldown_ms
            .map_or(d.breaker_cooldown, Duration::from_millis),
        retry_budget_ratio: match r.retry_budget_ratio {
            Some(x) if !(x >= 0.0 && x.is_finite()) => {
                errs.push("router.retry_budget_ratio", "must be 0 or more");
                d.retry_budget_ratio
            }
            Some(x) => x,
            None => d.retry_budget_ratio,
        },
        retry_budget_min_per_second: r
            .retry_budget_min_per_second
            .map_or(d.retry_budget_min_per_second, |n| {
                u32::try_from(n).unwrap_or(u32::MAX)
            }),
    }
}

/// Fallback chains must name known aliases (or served `provider/model` names)
/// and must not loop.
fn check_fallbacks(
    aliases: &BTreeMap<String, Arc<Alias>>,
    paths: &BTreeMap<String, String>,
    prefixes: &BTreeMap<String, Arc<Deployment>>,
    errs: &mut Errors,
) {
    let known = |name: &str| {
        aliases.contains_key(name)
            || name
                .split_once('/')
                .is_some_and(|(p, rest)| !rest.is_empty() && prefixes.contains_key(p))
    };
    for (name, alias) in aliases {
        let path = paths.get(name).cloned().unwrap_or_default();
        for (kind, chain) in [
            ("general", &alias.fallbacks.general),
            ("context_window", &alias.fallbacks.context_window),
            ("content_policy", &alias.fallbacks.content_policy),
        ] {
            for (j, target) in chain.iter().enumerate() {
                if target == name {
                    errs.push(
                        format!("{path}.fallbacks.{kind}[{j}]"),
                        "an alias cannot fall back to itself",
                    );
                } else if !known(target) {
                    errs.push(
                        format!("{path}.fallbacks.{kind}[{j}]"),
                        format!("unknown model {target:?}"),
                    );
                }
            }
        }
    }
    // Cycles over all fallback edges (a -> b -> a would ping-pong).
    let edges = |a: &Alias| -> Vec<String> {
        a.fallbacks
            .general
            .iter()
            .chain(&a.fallbacks.context_window)
            .chain(&a.fallbacks.content_policy)
            .filter(|t| aliases.contains_key(*t) && *t != &a.name)
            .cloned()
            .collect()
    };
    let mut reported = std::collections::BTreeSet::new();
    for start in aliases.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((node, trail)) = stack.pop() {
            let Some(alias) = aliases.get(&node) else {
                continue;
            };
            for next in edges(alias) {
                if next == *start {
                    let mut cycle = trail.clone();
                    cycle.push(next.clone());
                    let mut key: Vec<String> = trail.clone();
                    key.sort();
                    if reported.insert(key) {
                        let path = paths.get(start).cloned().unwrap_or_default();
                        errs.push(
                            format!("{path}.fallbacks"),
                            format!("fallback cycle: {}", cycle.join(" -> ")),
                        );
                    }
                } else if !trail.contains(&next) {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    stack.push((next, t));
                }
            }
        }
    }
}

fn validate_price(p: &RawPrice, path: &str, errs: &mut Errors) -> Option<Price> {
    let mut conv = |field: &str, usd: f64| -> Option<u64> {
        if !usd.is_finite() || !(0.0..=1_000_000.0).contains(&usd) {
            errs.push(
                format!("{path}.{field}"),
                format!("{usd} is not a price in USD per 1M tokens (0 to 1000000)"),
            );
            return None;
        }
        // USD per 1M tokens -> micro-dollars per 1M tokens.
        Some((usd * 1_000_000.0).round() as u64)
    };
    // Every field is converted (and reported) before any `?`.
    let input = conv("input", p.input);
    let output = conv("output", p.output);
    let cached = p.cached_input.map(|v| conv("cached_input", v));
    let write = p.cache_write.map(|v| conv("cache_write", v));
    let long = p.long.as_ref().map(|l| {
        (
            l.above,
            conv("long.input", l.input),
            conv("long.output", l.output),
            l.cached_input.map(|v| conv("long.cached_input", v)),
            l.cache_write.map(|v| conv("long.cache_write", v)),
        )
    });
    let long = match long {
        None => None,
        Some((0, ..)) => {
            errs.push(format!("{path}.long.above"), "must be greater than 0");
            return None;
        }
        Some((above, input, output, cached, write)) => Some(LongTier {
            above,
            input_per_mtok: input?,
            output_per_mtok: output?,
            cached_input_per_mtok: cached.map(|v| v.ok_or(())).transpose().ok()?,
            cache_write_per_mtok: write.map(|v| v.ok_or(())).transpose().ok()?,
        }),
    };
    Some(Price {
        input_per_mtok: input?,
        output_per_mtok: output?,
        cached_input_per_mtok: cached.map(|v| v.ok_or(())).transpose().ok()?,
        cache_write_per_mtok: write.map(|v| v.ok_or(())).transpose().ok()?,
        long,
    })
}

fn template(
    name: &str,
    provider: ProviderKind,
    base_url: String,
    api_key: Option<Secret>,
) -> Deployment {
    Deployment {
        name: name.to_owned(),
        provider,
        upstream_model: String::new(),
        base_url,
        api_key,
        headers: Vec::new(),
        timeouts: Timeouts::default(),
        price: None,
        drop_unsupported_params: false,
        default_max_tokens: None,
        stream_usage: true,
        api_version: None,
        weight: 1,
        priority: 0,
        tags: Vec::new(),
        max_concurrency: None,
        rpm: None,
        tpm: None,
        bedrock: None,
        vertex: None,
        preset: None,
        catalog_model: None,
    }
}

fn env_prefixes(env: &dyn Env, errs: &mut Errors) -> BTreeMap<String, Arc<Deployment>> {
    let mut out = BTreeMap::new();
    out.insert(
        "mock".to_owned(),
        Arc::new(template("mock", ProviderKind::Mock, String::new(), None)),
    );
    // `key_vars` in order of preference: the first one set wins.
    let mut add = |prefix: &str, kind, key_vars: &[&str], base_var: &str, default_base: &str| {
        let Some(key) = key_vars
            .iter()
            .find_map(|v| env.var(v).filter(|k| !k.is_empty()))
        else {
            return;
        };
        let base = env
            .var(base_var)
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| default_base.to_owned());
        if let Some(problem) = url_problem(&base) {
            errs.push(base_var, problem);
            return;
        }
        out.insert(
            prefix.to_owned(),
            Arc::new(template(
                prefix,
                kind,
                base.trim_end_matches('/').to_owned(),
                Some(Secret::new(key)),
            )),
        );
    };
    add(
        "openai",
        ProviderKind::OpenAi,
        &["OPENAI_API_KEY"],
        "OPENAI_BASE_URL",
        OPENAI_DEFAULT_BASE,
    );
    add(
        "anthropic",
        ProviderKind::Anthropic,
        &["ANTHROPIC_API_KEY"],
        "ANTHROPIC_BASE_URL",
        ANTHROPIC_DEFAULT_BASE,
    );
    // Google's Gen AI SDKs read both GOOGLE_API_KEY and GEMINI_API_KEY (and
    // prefer GOOGLE_API_KEY when both are set). We prefer the Gemini-specific
    // one, so a GOOGLE_API_KEY kept for another Google API cannot shadow it.
    add(
        "gemini",
        ProviderKind::Gemini,
        &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        "GEMINI_BASE_URL",
        GEMINI_DEFAULT_BASE,
    );
    // Azure OpenAI: `azure/<deployment>` with the variables Azure's SDKs read.
    if let (Some(key), Some(endpoint)) = (
        env.var("AZURE_OPENAI_API_KEY").filter(|k| !k.is_empty()),
        env.var("AZURE_OPENAI_ENDPOINT").filter(|e| !e.is_empty()),
    ) {
        if let Some(problem) = url_problem(&endpoint) {
            errs.push("AZURE_OPENAI_ENDPOINT", problem);
        } else {
            let mut d = template(
                "azure",
                ProviderKind::Azure,
                endpoint.trim_end_matches('/').to_owned(),
                Some(Secret::new(key)),
            );
            d.api_version = Some(
                env.var("OPENAI_API_VERSION")
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| AZURE_DEFAULT_API_VERSION.to_owned()),
            );
            out.insert("azure".to_owned(), Arc::new(d));
        }
    }
    // The OpenAI-compatible presets: hosted ones when their key is set, local
    // servers (no key needed) when their base URL is.
    for p in crate::presets::PRESETS {
        let key = env.var(p.key_env).filter(|k| !k.is_empty());
        let base = env.var(p.base_env).filter(|b| !b.is_empty());
        let enabled = if p.key_required {
            key.is_some()
        } else {
            base.is_some()
        };
        let Some(base) = base.or(p.base_url.map(str::to_owned)).filter(|_| enabled) else {
            continue;
        };
        if let Some(problem) = url_problem(&base) {
            errs.push(p.base_env, problem);
            continue;
        }
        let mut d = template(
            p.name,
            ProviderKind::OpenAiCompatible,
            base.trim_end_matches('/').to_owned(),
            key.map(Secret::new),
        );
        d.stream_usage = p.stream_usage;
        d.preset = Some(p.name);
        out.insert(p.name.to_owned(), Arc::new(d));
    }
    if let Some(d) = bedrock_env_template(env, errs) {
        out.insert("bedrock".to_owned(), Arc::new(d));
    }
    if let Some(d) = vertex_env_template(env, errs) {
        out.insert("vertex".to_owned(), Arc::new(d));
    }
    out
}

/// `bedrock/<model id>` from the AWS SDKs' variables: a region
/// (`AWS_REGION`, else `AWS_DEFAULT_REGION`) and credentials
/// (`AWS_BEARER_TOKEN_BEDROCK`, else `AWS_ACCESS_KEY_ID` +
/// `AWS_SECRET_ACCESS_KEY` [+ `AWS_SESSION_TOKEN`], else the default chain:
/// shared files, web identity, container, instance metadata — as the SDKs
/// do, a region is enough to serve the prefix; a request finds out whether
/// the chain has credentials). The endpoint is
/// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, else `AWS_ENDPOINT_URL`, else the
/// region's, as the SDKs resolve it
/// (<https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html>).
fn bedrock_env_template(env: &dyn Env, errs: &mut Errors) -> Option<Deployment> {
    let (region_var, region) = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .into_iter()
        .find_map(|v| non_empty(env.var(v)).map(|r| (v, r)))?;
    if !valid_region(&region) {
        errs.push(
            region_var,
            format!("{region:?} is not an AWS region (e.g. us-east-1)"),
        );
        return None;
    }
    let (api_key, aws) = match non_empty(env.var("AWS_BEARER_TOKEN_BEDROCK")) {
        Some(token) => (Some(Secret::new(token)), None),
        None => (
            None,
            Some(match aws_credentials_from_env(env) {
                Some(c) => AwsAuth::Static(c),
                None => AwsAuth::Chain(aws_chain_from_env(env, &region, None, errs)),
            }),
        ),
    };
    let endpoint = ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL"]
        .into_iter()
        .find_map(|v| non_empty(env.var(v)).map(|u| (v, u)));
    let base = match endpoint {
        Some((var, url)) => {
            if let Some(problem) = url_problem(&url) {
                errs.push(var, problem);
                return None;
            }
            url.trim_end_matches('/').to_owned()
        }
        None => crate::bedrock_default_base(&region),
    };
    let mut d = template("bedrock", ProviderKind::Bedrock, base, api_key);
    d.bedrock = Some(BedrockConfig {
        region,
        aws,
        assume_role: None,
        default_max_tokens: None,
        additional_model_request_fields: None,
    });
    Some(d)
}

fn validate_tracing(t: &RawTracing, errs: &mut Errors) -> Option<TracingConfig> {
    if t.enabled == Some(false) {
        return None;
    }
    let endpoint = match t.endpoint.as_deref().map(str::trim) {
        None => {
            errs.push(
                "observability.tracing.endpoint",
                "is required (e.g. http://127.0.0.1:4318/v1/traces) unless enabled: false",
            );
            None
        }
        Some(endpoint) => {
            let rest = endpoint
                .strip_prefix("http://")
                .or_else(|| endpoint.strip_prefix("https://"));
            match rest {
                Some(r) if !r.is_empty() && !r.starts_with('/') => Some(if r.contains('/') {
                    endpoint.to_owned()
                } else {
                    format!("{endpoint}/v1/traces")
                }),
                _ => {
                    errs.push(
                        "observability.tracing.endpoint",
                        format!("{endpoint:?} must be an http:// or https:// URL"),
                    );
                    None
                }
            }
        }
    };
    let ratio = t.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&ratio) {
        errs.push(
            "observability.tracing.sample_ratio",
            "must be between 0 and 1",
        );
    }
    let mut headers = Vec::new();
    for (k, v) in &t.headers {
        let valid_name = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        if !valid_name || v.bytes().any(|b| b < 0x20 && b != b'\t') {
            errs.push(
                format!("observability.tracing.headers.{k}"),
                "is not a valid HTTP header",
            );
        }
        headers.push((k.to_ascii_lowercase(), Secret::new(v.clone())));
    }
    Some(TracingConfig {
        endpoint: endpoint?,
        headers,
        sample_ratio: ratio.clamp(0.0, 1.0),
        parent_based: t.parent_based.unwrap_or(true),
        service_name: t
            .service_name
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "modelgate".to_owned()),
        timeout: Duration::from_millis(t.timeout_ms.unwrap_or(10_000).max(1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MapEnv;

    #[test]
    fn zero_config_defaults() {
        let c = Config::load(None, &MapEnv::default()).unwrap();
        assert_eq!(c.server.listen.to_string(), DEFAULT_LISTEN);
        assert!(c.server.master_key.is_none());
        assert_eq!(c.prefixes.keys().collect::<Vec<_>>(), vec!["mock"]);
    }

    #[test]
    fn env_providers_can_be_turned_off() {
        let env = MapEnv::from_pairs([("OPENAI_API_KEY", "sk-1")]);
        let c = Config::load(Some("env_providers: false\n"), &env).unwrap();
        assert_eq!(c.prefixes.keys().collect::<Vec<_>>(), vec!["mock"]);
    }

    #[test]
    fn env_providers_follow_sdk_variables() {
        let env = MapEnv::from_pairs([
            ("OPENAI_API_KEY", "sk-1"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/"),
            ("ANTHROPIC_API_KEY", "ak"),
            ("MODELGATE_MASTER_KEY", "mk"),
        ]);
        let c = Config::load(None, &env).unwrap();
        assert_eq!(c.prefixes["openai"].base_url, "http://127.0.0.1:9/v1");
        assert_eq!(c.prefixes["anthropic"].base_url, ANTHROPIC_DEFAULT_BASE);
        assert_eq!(c.server.master_key.as_ref().unwrap().expose(), "mk");
        assert!(!c.prefixes.contains_key("gemini"));
    }

    #[test]
    fn gemini_prefix_from_gemini_or_google_api_key() {
        let c = Config::load(
            None,
            &MapEnv::from_pairs([("GEMINI_API_KEY", "g1"), ("GOOGLE_API_KEY", "g2")]),
        )
        .unwrap();
        let g = &c.prefixes["gemini"];
        assert_eq!(g.provider, ProviderKind::Gemini);
        assert_eq!(g.provider.as_str(), "gemini");
        assert_eq!(g.base_url, GEMINI_DEFAULT_BASE);
        assert_eq!(g.api_key.as_ref().unwrap().expose(), "g1");
        let c = Config::load(
            None,
            &MapEnv::from_pairs([
                ("GEMINI_API_KEY", ""),
                ("GOOGLE_API_KEY", "g2"),
                ("GEMINI_BASE_URL", "http://127.0.0.1:9/"),
            ]),
        )
        .unwrap();
        let g = &c.prefixes["gemini"];
        assert_eq!(g.api_key.as_ref().unwrap().expose(), "g2");
        assert_eq!(g.base_url, "http://127.0.0.1:9");
        let errs = Config::load(
            None,
            &MapEnv::from_pairs([("GEMINI_API_KEY", "g"), ("GEMINI_BASE_URL", "ftp://x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(errs.contains("GEMINI_BASE_URL"), "{errs}");
    }

    #[test]
    fn base_urls_must_be_urls_the_client_can_send_to() {
        for bad in [
            "http://",
            "https://bad host/v1",
            "http://h/a b",
            "http://h/\u{e9}",
        ] {
            let yaml = format!(
                "models:\n  - {{ name: x, provider: openai_compatible, model: m, base_url: {bad:?} }}\n"
            );
            let errs = Config::load(Some(&yaml), &MapEnv::default())
                .unwrap_err()
                .to_string();
            assert!(
                errs.contains("models[0].base_url") && errs.contains("not a valid URL"),
                "{bad}: {errs}"
            );
        }
        for good in [
            "http://127.0.0.1:9",
            "https://h.example/v1/",
            "http://[::1]:8000/a%20b",
        ] {
            let yaml = format!(
                "models:\n  - {{ name: x, provider: openai_compatible, model: m, base_url: {good:?} }}\n"
            );
            assert!(
                Config::load(Some(&yaml), &MapEnv::default()).is_ok(),
                "{good}"
            );
        }
        let errs = Config::load(
            None,
            &MapEnv::from_pairs([("OPENAI_API_KEY", "k"), ("OPENAI_BASE_URL", "http://a b")]),
        )
        .unwrap_err()
        .to_string();
        assert!(errs.contains("OPENAI_BASE_URL"), "{errs}");
    }

    #[test]
    fn gemini_deployments_need_a_key_and_default_their_base() {
        let yaml = r#"
models:
  - { name: flash, provider: gemini, model: gemini-2.5-flash, api_key_env: GK }
  - { name: tuned, provider: gemini, model: tunedModels/x, api_key: k, base_url: "http://127.0.0.1:9/v1beta/", default_max_tokens: 256 }
"#;
        let c = Config::load(Some(yaml), &MapEnv::from_pairs([("GK", "gk")])).unwrap();
        let d = &c.models["flash"].deployments[0];
        assert_eq!(d.provider, ProviderKind::Gemini);
        assert_eq!(d.base_url, GEMINI_DEFAULT_BASE);
        assert_eq!(d.api_key.as_ref().unwrap().expose(), "gk");
        assert_eq!(d.default_max_tokens, None);
        let t = &c.models["tuned"].deployments[0];
        assert_eq!(t.base_url, "http://127.0.0.1:9/v1beta");
        assert_eq!(t.default_max_tokens, Some(256));
        let errs = Config::load(
            Some("models:\n  - { name: g, provider: gemini, model: gemini-2.5-flash }\n  - { name: h, provider: gemni, model: x }\n"),
            &MapEnv::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            errs.contains("models[0].api_key: provider gemini needs an API key"),
            "{errs}"
        );
        assert!(
            errs.contains("expected one of openai, openai_compatible, anthropic, gemini,"),
            "{errs}"
        );
    }

    #[test]
    fn full_file_with_interpolation() {
        let yaml = r#"
server:
  listen: 0.0.0.0:9000
  master_key: ${MK}
  max_body_bytes: ${MAX:-1024}
models:
  - name: gpt-4o
    provider: openai
    model: gpt-4o-2024-08-06
    api_key_env: OAI
    price: { input: 2.5, output: 10, cached_input: 1.25 }
    timeouts: { connect_ms: 500 }
  - name: local
    provider: openai_compatible
    model: llama3
    base_url: http://127.0.0.1:11434/v1
  - name: claude
    provider: anthropic
    model: claude-sonnet-4-5
    api_key: "${AK}"
    default_max_tokens: 1000
"#;
        let env = MapEnv::from_pairs([("MK", "master"), ("OAI", "sk"), ("AK", "ak")]);
        let c = Config::load(Some(yaml), &env).unwrap();
        assert_eq!(c.server.max_body_bytes, 1024);
        let g = &c.models["gpt-4o"].deployments[0];
        assert_eq!(g.price.unwrap().input_per_mtok, 2_500_000);
        assert_eq!(g.price.unwrap().cached_input_per_mtok, Some(1_250_000));
        assert_eq!(g.timeouts.connect, Duration::from_millis(500));
        assert_eq!(g.base_url, OPENAI_DEFAULT_BASE);
        assert_eq!(
            c.models["claude"].deployments[0].default_max_tokens,
            Some(1000)
        );
        assert_eq!(c.models["gpt-4o"].deployments[0].default_max_tokens, None);
        assert_eq!(c.models["local"].deployments[0].api_key, None);
        assert_eq!(c.deployments.len(), 3);
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let yaml = r#"
server:
  listen: nowhere
colour: blue
models:
  - name: a
    provider: nope
    model: x
  - name: b
    provider: openai_compatible
    model: y
    timeouts: { conect_ms: 5 }
  - name: c
    provider: anthropic
    model: z
    api_key: ${MISSING}
    price: { input: -1, output: 1 }
"#;
        let errs = Config::load(Some(yaml), &MapEnv::default()).unwrap_err();
        let text = errs.to_string();
        for needle in [
            "server.listen:",
            "colour: unknown field",
            "models[0].provider: unknown provider \"nope\"",
            "models[1].timeouts.conect_ms: unknown field `conect_ms`",
            "models[2].api_key: environment variable MISSING is not set",
            "models[2].price.input:",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn aliases_over_deployment_groups() {
        let yaml = r#"
deployments:
  - { name: a, provider: mock, model: echo, weight: 3, priority: 1, tags: [eu], max_concurrency: 10 }
  - { name: b, provider: mock, model: text, timeouts: { first_token_ms: 500 } }
models:
  - name: chat
    deployments: [a, b]
    strategy: weighted
    retry: { max_attempts: 4, backoff_ms: 10, deadline_ms: 5000 }
    fallbacks: { general: [backup], context_window: [long] }
    context_window: 8000
    hedge: { after_ms: 300, max_share: 0.05 }
  - { name: backup, deployments: [b] }
  - { name: long, provider: mock, model: echo }
router: { breaker_consecutive_failures: 3, breaker_cooldown_ms: 1000 }
"#;
        let c = Config::load(Some(yaml), &MapEnv::default()).unwrap();
        let chat = &c.models["chat"];
        assert_eq!(chat.deployments.len(), 2);
        assert_eq!(chat.strategy, Strategy::Weighted);
        assert_eq!(chat.retry.max_attempts, 4);
        assert_eq!(chat.deployments[0].weight, 3);
        assert_eq!(chat.deployments[0].tags, vec!["eu"]);
        assert_eq!(
            chat.deployments[1].timeouts.first_token,
            Duration::from_millis(500)
        );
        assert_eq!(
            chat.deployments[0].timeouts.first_token,
            chat.deployments[0].timeouts.request
        );
        assert_eq!(chat.hedge.unwrap().after, Some(Duration::from_millis(300)));
        assert_eq!(c.router.breaker_consecutive_failures, 3);
        // a deployment shared by two aliases is one deployment
        assert!(Arc::ptr_eq(
            &chat.deployments[1],
            &c.models["backup"].deployments[0]
        ));
        assert_eq!(c.deployments.len(), 3);
    }

    #[test]
    fn alias_errors_are_reported_with_paths() {
        let yaml = r#"
deployments:
  - { name: a, provider: mock, model: echo }
models:
  - { name: x, deployments: [a, nope], fallbacks: { general: [y, ghost] } }
  - { name: y, deployments: [a], fallbacks: { content_policy: [x] } }
  - { name: z, deployments: [] }
  - { name: w, deployments: [a], provider: mock, model: echo }
  - { name: v, deployments: [a], strategy: fastest }
"#;
        let text = Config::load(Some(yaml), &MapEnv::default())
            .unwrap_err()
            .to_string();
        for needle in [
            "models[0].deployments[1]: unknown deployment \"nope\"",
            "models[2].deployments: must name at least one deployment",
            "models[3].deployments: list deployments by name or describe one inline",
            "models[4].strategy: unknown strategy \"fastest\"",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        let yaml = r#"
deployments:
  - { name: a, provider: mock, model: echo }
models:
  - { name: x, deployments: [a], fallbacks: { general: [y, ghost] } }
  - { name: y, deployments: [a], fallbacks: { content_policy: [x] } }
  - { name: s, deployments: [a], fallbacks: { general: [s, mock/echo] } }
"#;
        let text = Config::load(Some(yaml), &MapEnv::default())
            .unwrap_err()
            .to_string();
        for needle in [
            "fallbacks.general[1]: unknown model \"ghost\"",
            "fallback cycle: x -> y -> x",
            "models[2].fallbacks.general[0]: an alias cannot fall back to itself",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert!(
            !text.contains("mock/echo"),
            "served provider/model names are valid targets: {text}"
        );
    }

    #[test]
    fn interpolation_escapes_and_defaults() {
        let env = MapEnv::from_pairs([("A", "x")]);
        assert_eq!(interpolate_str("a${A}b", &env).unwrap(), "axb");
        assert_eq!(interpolate_str("${B:-def}", &env).unwrap(), "def");
        assert_eq!(interpolate_str("$${A} $5", &env).unwrap(), "${A} $5");
        assert!(interpolate_str("${A", &env).is_err());
        assert!(interpolate_str("${B}", &env).is_err());
    }

    #[test]
    fn bedrock_deployments_take_file_or_environment_credentials() {
        let yaml = r#"
deployments:
  - name: signed
    provider: bedrock
    model: anthropic.claude-3-5-haiku-20241022-v1:0
    region: eu-west-1
    aws_access_key_id: ${AKID}
    aws_secret_access_key: ${SECRET}
    aws_session_token: tok
    default_max_tokens: 512
    additional_model_request_fields: { top_k: 50 }
  - name: keyed
    provider: bedrock
    model: amazon.nova-pro-v1:0
    api_key_env: BR_KEY
  - name: ambient
    provider: bedrock
    model: amazon.nova-lite-v1:0
  - name: vpce
    provider: bedrock
    model: amazon.nova-lite-v1:0
    base_url: https://vpce-0a1.bedrock-runtime.ap-south-1.vpce.amazonaws.com/
"#;
        let env = MapEnv::from_pairs([
            ("AKID", "AKIAFILE"),
            ("SECRET", "file-secret"),
            ("BR_KEY", "ABSK-file"),
            ("AWS_REGION", "us-west-2"),
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
        ]);
        let c = Config::load(Some(yaml), &env).unwrap();
        let by = |n: &str| c.deployments.iter().find(|d| d.name == n).unwrap().clone();
        let signed = by("signed");
        let b = signed.bedrock.as_ref().unwrap();
        assert_eq!(b.region, "eu-west-1");
        assert_eq!(
            signed.base_url,
            "https://bedrock-runtime.eu-west-1.amazonaws.com"
        );
        let aws = b.static_credentials().unwrap();
        assert_eq!(aws.access_key_id.expose(), "AKIAFILE");
        assert_eq!(aws.secret_access_key.expose(), "file-secret");
        assert_eq!(aws.session_token.as_ref().unwrap().expose(), "tok");
        assert!(signed.api_key.is_none());
        assert_eq!(b.default_max_tokens, Some(512));
        assert_eq!(
            b.additional_model_request_fields.as_ref().unwrap()["top_k"],
            50
        );
        let keyed = by("keyed");
        assert_eq!(keyed.api_key.as_ref().unwrap().expose(), "ABSK-file");
        let kb = keyed.bedrock.as_ref().unwrap();
        assert!(kb.aws.is_none());
        assert_eq!(kb.region, "us-west-2");
        assert_eq!(kb.default_max_tokens, None);
        let ambient = by("ambient");
        let ab = ambient.bedrock.as_ref().unwrap();
        assert_eq!(
            ab.static_credentials().unwrap().access_key_id.expose(),
            "AKIAENV"
        );
        assert!(ab.static_credentials().unwrap().session_token.is_none());
        // The endpoint's own region wins over AWS_REGION.
        let vpce = by("vpce");
        assert_eq!(vpce.bedrock.as_ref().unwrap().region, "ap-south-1");
        assert_eq!(
            vpce.base_url,
            "https://vpce-0a1.bedrock-runtime.ap-south-1.vpce.amazonaws.com"
        );
        // Secrets stay out of Debug output.
        let dbg = format!("{signed:?}");
        assert!(
            !dbg.contains("file-secret") && !dbg.contains("AKIAFILE"),
            "{dbg}"
        );

        // A Bedrock API key in the environment comes before AWS keys.
        let env = MapEnv::from_pairs([
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_BEARER_TOKEN_BEDROCK", "ABSK-env"),
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
        ]);
        let c = Config::load(
            Some("models:\n  - { name: n, provider: bedrock, model: amazon.nova-micro-v1:0 }\n"),
            &env,
        )
        .unwrap();
        let d = &c.models["n"].deployments[0];
        assert_eq!(d.api_key.as_ref().unwrap().expose(), "ABSK-env");
        assert!(d.bedrock.as_ref().unwrap().aws.is_none());
        assert_eq!(d.bedrock.as_ref().unwrap().region, "us-east-1");
    }

    #[test]
    fn bedrock_without_keys_uses_the_default_chain_and_roles() {
        let yaml = r#"
deployments:
  - { name: chain, provider: bedrock, model: m }
  - { name: prof, provider: bedrock, model: m, aws_profile: prod }
  - name: role
    provider: bedrock
    model: m
    aws_access_key_id: AKIAFILE
    aws_secret_access_key: s
    aws_role_arn: arn:aws:iam::123456789012:role/bedrock-invoke
    aws_role_session_name: gw-1
    aws_external_id: ext
  - { name: chainrole, provider: bedrock, model: m, aws_role_arn: "arn:aws:iam::1:role/r" }
"#;
        let env = MapEnv::from_pairs([
            ("AWS_REGION", "eu-west-3"),
            ("HOME", "/home/gw"),
            ("AWS_CONFIG_FILE", "/etc/aws/config"),
            ("AWS_PROFILE", "dev"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/irsa"),
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/abc",
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                "/var/run/pod-identity",
            ),
            ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9/sts/"),
            ("AWS_BEARER_TOKEN_BEDROCK", "ABSK-not-for-roles"),
        ]);
        let c = Config::load(Some(yaml), &env).unwrap();
        let by = |n: &str| {
            c.deployments
                .iter()
                .find(|d| d.name == n)
                .unwrap()
                .bedrock
                .clone()
                .unwrap()
        };
        let chain = |b: &BedrockConfig| match &b.aws {
            Some(AwsAuth::Chain(ch)) => ch.clone(),
            other => panic!("not a chain: {other:?}"),
        };
        // With no key in the file and none in the environment, a Bedrock API
        // key there is still used for a plain deployment...
        let ch = by("chain");
        assert!(ch.aws.is_none(), "AWS_BEARER_TOKEN_BEDROCK wins");
        // ...but a profile or a role needs AWS credentials: the chain.
        let p = chain(&by("prof"));
        assert_eq!((p.profile.as_str(), p.profile_named), ("prod", true));
        assert_eq!(p.config_file, Some(PathBuf::from("/etc/aws/config")));
        assert_eq!(
            p.credentials_file,
            Some(PathBuf::from("/home/gw/.aws/credentials"))
        );
        let wi = p.web_identity.unwrap();
        assert_eq!(wi.role_arn, "arn:aws:iam::1:role/irsa");
        assert_eq!(wi.session_name, "modelgate");
        let ct = p.container.unwrap();
        assert_eq!(ct.url, "http://169.254.170.2/v2/credentials/abc");
        assert_eq!(
            ct.auth_token_file,
            Some(PathBuf::from("/var/run/pod-identity"))
        );
        assert_eq!(p.imds.as_deref(), Some("http://169.254.169.254"));
        assert_eq!(p.sts_endpoint, "http://127.0.0.1:9/sts");
        let r = by("role");
        assert!(matches!(r.aws, Some(AwsAuth::Static(_))));
        assert!(r.static_credentials().is_none(), "a role is assumed first");
        let role = r.assume_role.unwrap();
        assert_eq!(
            role.role_arn,
            "arn:aws:iam::123456789012:role/bedrock-invoke"
        );
        assert_eq!(role.session_name, "gw-1");
        assert_eq!(role.external_id.as_deref(), Some("ext"));
        // AWS_PROFILE names the chain's profile for every deployment without one.
        let cr = by("chainrole");
        assert_eq!(
            (chain(&cr).profile.as_str(), chain(&cr).profile_named),
            ("dev", true)
        );
        assert!(cr.assume_role.is_some());

        // Nothing named anywhere: the `default` profile, skipped when absent.
        let c = Config::load(
            Some("models:\n  - { name: n, provider: bedrock, model: m }\n"),
            &MapEnv::from_pairs([
                ("AWS_REGION", "us-east-1"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ]),
        )
        .unwrap();
        let b = c.models["n"].deployments[0].bedrock.clone().unwrap();
        let ch = chain(&b);
        assert_eq!((ch.profile.as_str(), ch.profile_named), ("default", false));
        assert_eq!(ch.credentials_file, None, "no HOME, no files");
        assert_eq!(ch.imds, None);
        assert_eq!(ch.sts_endpoint, "https://sts.us-east-1.amazonaws.com");

        let bad = r#"
models:
  - { name: a, provider: bedrock, model: m, region: us-east-1, aws_profile: "" }
  - { name: b, provider: bedrock, model: m, region: us-east-1, aws_profile: p, aws_access_key_id: x, aws_secret_access_key: y }
  - { name: c, provider: bedrock, model: m, region: us-east-1, aws_role_arn: not-an-arn }
  - { name: d, provider: bedrock, model: m, region: us-east-1, aws_external_id: e }
  - { name: e, provider: bedrock, model: m, region: us-east-1, aws_role_arn: "arn:aws:iam::1:role/r", aws_role_session_name: "x" }
  - { name: f, provider: bedrock, model: m, region: us-east-1, api_key: k, aws_profile: p }
  - { name: g, provider: openai, model: m, api_key: k, aws_profile: p }
"#;
        let env = MapEnv::from_pairs([(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://evil.example/creds",
        )]);
        let text = Config::load(Some(bad), &env).unwrap_err().to_string();
        for needle in [
            "models[0].aws_profile: must not be empty",
            "models[1].aws_profile: set either",
            "models[2].aws_role_arn: \"not-an-arn\" is not a role ARN",
            "models[3].aws_external_id: only applies with aws_role_arn",
            "models[4].aws_role_session_name:",
            "models[5].api_key: set either",
            "models[6].aws_profile: only applies to provider bedrock",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI:",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert!(container_endpoint_allowed("http://127.0.0.1:8080/creds"));
        assert!(container_endpoint_allowed("http://[::1]:80/creds"));
        assert!(container_endpoint_allowed(
            "http://169.254.170.23/v1/credentials"
        ));
        assert!(container_endpoint_allowed("https://creds.internal/x"));
        assert!(!container_endpoint_allowed("http://10.0.0.1/creds"));
        assert!(!container_endpoint_allowed("ftp://127.0.0.1/creds"));
    }

    #[test]
    fn vertex_deployments_take_file_or_environment_settings() {
        let yaml = r#"
deployments:
  - name: gem
    provider: vertex
    model: gemini-2.5-flash
    project: my-proj
    location: europe-west4
    credentials_file: /etc/sa.json
  - name: claude
    provider: vertex
    model: claude-sonnet-4@20250514
    access_token: ${TOKEN}
  - name: glob
    provider: vertex
    model: gemini-2.5-pro
    region: global
    publisher: google
  - name: local
    provider: vertex
    model: claude-x
    base_url: http://127.0.0.1:9/
    api_key: tok
"#;
        let env = MapEnv::from_pairs([
            ("TOKEN", "ya29.file"),
            ("GOOGLE_CLOUD_PROJECT", "env-proj"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "/env/adc.json"),
        ]);
        let c = Config::load(Some(yaml), &env).unwrap();
        let by = |n: &str| c.deployments.iter().find(|d| d.name == n).unwrap().clone();
        let gem = by("gem");
        let v = gem.vertex.as_ref().unwrap();
        assert_eq!(gem.provider, ProviderKind::Vertex);
        assert_eq!(v.project, "my-proj");
        assert_eq!(v.location, "europe-west4");
        assert_eq!(v.auth, VertexAuth::File(PathBuf::from("/etc/sa.json")));
        assert_eq!(v.publisher_for("gemini-2.5-flash"), VertexPublisher::Google);
        assert_eq!(
            gem.base_url,
            "https://europe-west4-aiplatform.googleapis.com"
        );
        let claude = by("claude");
        let v = claude.vertex.as_ref().unwrap();
        assert_eq!(v.project, "env-proj");
        assert_eq!(v.location, "us-central1");
        assert_eq!(v.auth, VertexAuth::Static);
        assert_eq!(claude.api_key.as_ref().unwrap().expose(), "ya29.file");
        assert_eq!(
            v.publisher_for("claude-sonnet-4@20250514"),
            VertexPublisher::Anthropic
        );
        assert!(!format!("{claude:?}").contains("ya29.file"));
        let glob = by("glob");
        let v = glob.vertex.as_ref().unwrap();
        assert_eq!(glob.base_url, "https://aiplatform.googleapis.com");
        assert_eq!(v.auth, VertexAuth::File(PathBuf::from("/env/adc.json")));
        assert_eq!(v.publisher, Some(VertexPublisher::Google));
        let local = by("local");
        assert_eq!(local.base_url, "http://127.0.0.1:9");
        assert_eq!(local.vertex.as_ref().unwrap().auth, VertexAuth::Static);
    }

    #[test]
    fn vertex_errors_name_the_field() {
        let yaml = r#"
models:
  - { name: a, provider: vertex, model: m }
  - { name: b, provider: vertex, model: m, project: p, location: "Us Central", access_token: t }
  - { name: c, provider: vertex, model: m, project: p, publisher: meta, access_token: t }
  - { name: d, provider: vertex, model: m, project: p, access_token: t, credentials_file: /f }
  - { name: e, provider: vertex, model: m, project: p, access_token: t, api_key: k }
  - { name: f, provider: openai, model: m, api_key: k, project: p, credentials_file: /f }
  - { name: g, provider: vertex, model: m, project: p, location: us-east1, region: us-east1, access_token: t }
"#;
        let text = Config::load(Some(yaml), &MapEnv::default())
            .unwrap_err()
            .to_string();
        for needle in [
            "models[0].project: is required for provider vertex",
            "models[0].credentials_file: provider vertex needs credentials",
            "models[1].location: \"Us Central\" is not a Google Cloud location",
            "models[2].publisher: unknown publisher \"meta\"",
            "models[3].credentials_file: set either credentials_file",
            "models[4].access_token: set either access_token",
            "models[5].project: only applies to provider vertex",
            "models[5].credentials_file: only applies to provider vertex",
            "models[6].region: set either location or region",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn vertex_prefix_follows_google_variables() {
        let none =
            Config::load(None, &MapEnv::from_pairs([("GOOGLE_CLOUD_PROJECT", "p")])).unwrap();
        assert!(!none.prefixes.contains_key("vertex"), "no credentials");
        let env = MapEnv::from_pairs([
            ("GOOGLE_CLOUD_PROJECT", "p"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "/adc.json"),
            ("GOOGLE_CLOUD_LOCATION", "global"),
        ]);
        let c = Config::load(None, &env).unwrap();
        let d = &c.prefixes["vertex"];
        assert_eq!(d.provider, ProviderKind::Vertex);
        assert_eq!(d.base_url, "https://aiplatform.googleapis.com");
        let v = d.vertex.as_ref().unwrap();
        assert_eq!((v.project.as_str(), v.location.as_str()), ("p", "global"));
        assert_eq!(v.publisher, None);
        assert_eq!(v.external, ExternalAccountEnv::default());
        // On Google Cloud (the metadata server), a project is enough.
        let env = MapEnv::from_pairs([
            ("GOOGLE_CLOUD_PROJECT", "p"),
            ("GCE_METADATA_HOST", "127.0.0.1:9"),
            ("AWS_REGION", "us-west-2"),
            ("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1"),
        ]);
        let c = Config::load(None, &env).unwrap();
        let v = c.prefixes["vertex"].vertex.clone().unwrap();
        assert_eq!(v.auth, VertexAuth::Metadata("http://127.0.0.1:9".into()));
        assert_eq!(v.external.aws_region.as_deref(), Some("us-west-2"));
        assert!(v.external.allow_executables);
        let bad = Config::load(
            None,
            &MapEnv::from_pairs([
                ("GOOGLE_CLOUD_PROJECT", "p"),
                ("GOOGLE_APPLICATION_CREDENTIALS", "/adc.json"),
                ("GOOGLE_CLOUD_LOCATION", "x/y"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("GOOGLE_CLOUD_LOCATION"), "{bad}");
    }

    #[test]
    fn bedrock_errors_name_the_field() {
        let yaml = r#"
models:
  - { name: a, provider: bedrock, model: m }
  - { name: b, provider: bedrock, model: m, region: us-east-1, aws_role_arn: "arn:aws:iam::1:role/r", api_key: k }
  - { name: c, provider: bedrock, model: m, region: us-east-1, api_key: k, aws_access_key_id: x, aws_secret_access_key: y }
  - { name: d, provider: bedrock, model: m, region: us-east-1, aws_secret_access_key: y }
  - { name: e, provider: bedrock, model: m, region: "US East", api_key: k }
  - { name: f, provider: openai, model: m, api_key: k, region: us-east-1, additional_model_request_fields: { x: 1 } }
  - { name: g, provider: bedrock, model: m, base_url: "http://127.0.0.1:9", aws_access_key_id: x, aws_secret_access_key: y }
  - { name: h, provider: bedrock, model: m, region: us-east-1, api_key: k, additional_model_request_fields: [1] }
"#;
        let text = Config::load(Some(yaml), &MapEnv::default())
            .unwrap_err()
            .to_string();
        for needle in [
            "models[0].region: is required for provider bedrock",
            "models[1].api_key: set either api_key",
            "models[2].api_key: set either api_key",
            "models[3].aws_access_key_id: is required",
            "models[4].region: \"US East\" is not an AWS region",
            "models[5].region: only applies to provider bedrock",
            "models[5].additional_model_request_fields: only applies to provider bedrock",
            "models[6].region: is required to sign requests",
            "models[7].additional_model_request_fields:",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        // A Bedrock API key with an explicit endpoint needs no region.
        let c = Config::load(
            Some("models:\n  - { name: p, provider: bedrock, model: m, base_url: \"http://127.0.0.1:9\", api_key: k }\n"),
            &MapEnv::default(),
        )
        .unwrap();
        assert_eq!(
            c.models["p"].deployments[0]
                .bedrock
                .as_ref()
                .unwrap()
                .region,
            ""
        );
    }

    #[test]
    fn bedrock_prefix_follows_aws_sdk_variables() {
        let none = Config::load(
            None,
            &MapEnv::from_pairs([("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "s")]),
        )
        .unwrap();
        assert!(!none.prefixes.contains_key("bedrock"), "no region");
        // A region alone serves the prefix over the default chain, as the SDKs do.
        let chain = Config::load(None, &MapEnv::from_pairs([("AWS_REGION", "us-east-1")])).unwrap();
        assert!(matches!(
            chain.prefixes["bedrock"].bedrock.as_ref().unwrap().aws,
            Some(AwsAuth::Chain(_))
        ));

        let env = MapEnv::from_pairs([
            ("AWS_REGION", "eu-central-1"),
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", "t"),
        ]);
        let c = Config::load(None, &env).unwrap();
        let d = &c.prefixes["bedrock"];
        assert_eq!(d.provider, ProviderKind::Bedrock);
        assert_eq!(
            d.base_url,
            "https://bedrock-runtime.eu-central-1.amazonaws.com"
        );
        let b = d.bedrock.as_ref().unwrap();
        assert_eq!(b.region, "eu-central-1");
        assert_eq!(
            b.static_credentials()
                .unwrap()
                .session_token
                .as_ref()
                .unwrap()
                .expose(),
            "t"
        );

        let env = MapEnv::from_pairs([
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_BEARER_TOKEN_BEDROCK", "ABSK"),
            ("AWS_ENDPOINT_URL", "http://generic.invalid"),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "http://127.0.0.1:9/"),
        ]);
        let c = Config::load(None, &env).unwrap();
        let d = &c.prefixes["bedrock"];
        assert_eq!(d.base_url, "http://127.0.0.1:9");
        assert_eq!(d.api_key.as_ref().unwrap().expose(), "ABSK");

        let env = MapEnv::from_pairs([
            ("AWS_REGION", "us-east-1"),
            ("AWS_BEARER_TOKEN_BEDROCK", "ABSK"),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "localhost:9"),
        ]);
        let text = Config::load(None, &env).unwrap_err().to_string();
        assert!(text.contains("AWS_ENDPOINT_URL_BEDROCK_RUNTIME:"), "{text}");
    }

    #[test]
    fn schema_names_fields() {
        let s = Config::json_schema().to_string();
        assert!(s.contains("max_body_bytes") && s.contains("api_key_env"));
        assert!(s.contains("`gemini`"), "the provider kinds are listed: {s}");
        assert!(
            s.contains("aws_secret_access_key") && s.contains("additional_model_request_fields")
        );
    }

    #[test]
    fn tracing_is_off_by_default_and_checked_when_set() {
        let c = Config::load(None, &MapEnv::default()).unwrap();
        assert!(c.observability.tracing.is_none());
        let c = Config::load(
            Some("observability:\n  tracing:\n    endpoint: http://127.0.0.1:4318\n"),
            &MapEnv::default(),
        )
        .unwrap();
        let t = c.observability.tracing.unwrap();
        assert_eq!(t.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!((t.sample_ratio, t.parent_based), (1.0, true));
        assert_eq!(t.service_name, "modelgate");
        let c = Config::load(
            Some("observability:\n  tracing:\n    enabled: false\n"),
            &MapEnv::default(),
        )
        .unwrap();
        assert!(c.observability.tracing.is_none());
        let errs = Config::load(
            Some("observability:\n  tracing:\n    endpoint: ftp://x\n    sample_ratio: 2\n    headers: { \"bad name\": v }\n"),
            &MapEnv::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(errs.contains("observability.tracing.endpoint"), "{errs}");
        assert!(
            errs.contains("observability.tracing.sample_ratio"),
            "{errs}"
        );
        assert!(
            errs.contains("observability.tracing.headers.bad name"),
            "{errs}"
        );
        let errs = Config::load(
            Some("observability:\n  tracing:\n    sample_ratio: 0.5\n"),
            &MapEnv::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(errs.contains("observability.tracing.endpoint"), "{errs}");
    }

    #[test]
    fn openai_compatible_presets_fill_in_the_vendor_defaults() {
        let env = MapEnv(
            [
                ("GROQ_API_KEY", "gsk-1"),
                ("MISTRAL_API_KEY", "ms-1"),
                ("OLLAMA_BASE_URL", "http://127.0.0.1:9999/v1/"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
        let c = Config::load(
            Some(
                "deployments:\n  - { name: g, provider: groq, model: llama-3.3-70b-versatile }\n  - { name: m, provider: mistral, model: mistral-large-latest }\nmodels:\n  - { name: fast, deployments: [g, m] }\n",
            ),
            &env,
        )
        .unwrap();
        let g = c.deployments.iter().find(|d| d.name == "g").unwrap();
        assert_eq!(g.provider, ProviderKind::OpenAiCompatible);
        assert_eq!(g.base_url, "https://api.groq.com/openai/v1");
        assert_eq!(g.api_key.as_ref().map(Secret::expose), Some("gsk-1"));
        assert!(g.stream_usage);
        // Logs, metrics and the catalog know the vendor.
        assert_eq!(g.provider_name(), "groq");
        assert_eq!(g.price.unwrap().input_per_mtok, 590_000);
        let m = c.deployments.iter().find(|d| d.name == "m").unwrap();
        assert!(!m.stream_usage, "Mistral rejects stream_options");
        assert_eq!(m.provider_name(), "mistral");
        // Zero-config prefixes: hosted ones by key, local ones by base URL.
        assert!(c.prefixes.contains_key("groq") && c.prefixes.contains_key("mistral"));
        assert_eq!(c.prefixes["groq"].provider_name(), "groq");
        assert_eq!(c.prefixes["ollama"].provider_name(), "ollama");
        assert_eq!(c.prefixes["ollama"].base_url, "http://127.0.0.1:9999/v1");
        assert!(!c.prefixes.contains_key("together") && !c.prefixes.contains_key("vllm"));

        let errs = Config::load(
            Some("deployments:\n  - { name: t, provider: together, model: x }\n  - { name: v, provider: vllm, model: y }\n  - { name: z, provider: nope, model: y }\n"),
            &MapEnv::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            errs.contains("deployments[0].api_key") && errs.contains("TOGETHER_API_KEY"),
            "{errs}"
        );
        assert!(
            errs.contains("deployments[1].base_url") && errs.contains("VLLM_BASE_URL"),
            "{errs}"
        );
        assert!(
            errs.contains("deployments[2].provider") && errs.contains("groq"),
            "{errs}"
        );
    }

    #[test]
    fn catalog_model_and_long_prices() {
        let c = Config::load(
            Some(concat!(
                "deployments:\n",
                "  - { name: a, provider: azure, model: prod-4o, catalog_model: gpt-4o, base_url: https://r.openai.azure.com, api_key: k }\n",
                "  - { name: b, provider: azure, model: gpt-4o-mini, base_url: https://r.openai.azure.com, api_key: k }\n",
                "  - { name: c, provider: azure, model: prod-4o, base_url: https://r.openai.azure.com, api_key: k }\n",
                "  - name: d\n    provider: openai_compatible\n    model: m\n    base_url: http://127.0.0.1:1/v1\n",
                "    price: { input: 1, output: 2, long: { above: 1000, input: 3, output: 4, cached_input: 0.5 } }\n",
            )),
            &MapEnv::default(),
        )
        .unwrap();
        let by = |n: &str| c.deployments.iter().find(|d| d.name == n).unwrap();
        assert_eq!(by("a").price, crate::catalog::lookup("openai", "gpt-4o"));
        assert!(by("a").price.is_some());
        assert_eq!(
            by("b").price,
            crate::catalog::lookup("openai", "gpt-4o-mini")
        );
        assert_eq!(
            by("c").price,
            None,
            "an unknown deployment name has no price"
        );
        let long = by("d").price.unwrap().long.unwrap();
        assert_eq!(
            (long.above, long.input_per_mtok, long.output_per_mtok),
            (1000, 3_000_000, 4_000_000)
        );
        assert_eq!(long.cached_input_per_mtok, Some(500_000));

        let errs = Config::load(
            Some(concat!(
                "deployments:\n",
                "  - { name: a, provider: openai, model: x, api_key: k, catalog_model: '' }\n",
                "  - { name: b, provider: openai, model: x, api_key: k, price: { input: 1, output: 1, long: { above: 0, input: 1, output: 1 } } }\n",
                "  - { name: c, provider: openai, model: x, api_key: k, price: { input: 1, output: 1, long: { above: 10, input: -1, output: 1 } } }\n",
            )),
            &MapEnv::default(),
        )
        .unwrap_err()
        .to_string();
        for path in [
            "deployments[0].catalog_model",
            "deployments[1].price.long.above",
            "deployments[2].price.long.input",
        ] {
            assert!(errs.contains(path), "{path}: {errs}");
        }
    }

    #[test]
    fn output_caps_use_the_field_the_api_version_takes() {
        let c = Config::load(
            Some(concat!(
                "deployments:\n",
                "  - { name: new, provider: azure, model: o3, base_url: https://r.openai.azure.com, api_key: k }\n",
                "  - { name: preview, provider: azure, model: o3, base_url: https://r.openai.azure.com, api_key: k, api_version: 2025-04-01-preview }\n",
                "  - { name: old, provider: azure, model: gpt4, base_url: https://r.openai.azure.com, api_key: k, api_version: 2024-06-01 }\n",
                "  - { name: oai, provider: openai, model: o3, api_key: k }\n",
                "  - { name: groq, provider: groq, model: m, api_key: k }\n",
            )),
            &MapEnv::default(),
        )
        .unwrap();
        let takes = |n: &str| {
            c.deployments
                .iter()
                .find(|d| d.name == n)
                .unwrap()
                .takes_max_completion_tokens()
        };
        assert!(takes("new") && takes("preview") && takes("oai"));
        assert!(!takes("old") && !takes("groq"));
    }

    #[test]
    fn azure_needs_an_endpoint_and_a_credential() {
        let c = Config::load(
            Some("deployments:\n  - { name: a, provider: azure, model: gpt4o, base_url: https://r.openai.azure.com/, api_key: k }\n  - { name: b, provider: azure, model: gpt4o, base_url: https://r.openai.azure.com, api_version: 2025-01-01-preview, headers: { Authorization: Bearer tok } }\n"),
            &MapEnv::default(),
        )
        .unwrap();
        assert_eq!(c.deployments[0].base_url, "https://r.openai.azure.com");
        assert_eq!(c.deployments[0].api_version.as_deref(), Some("2024-10-21"));
        assert_eq!(
            c.deployments[1].api_version.as_deref(),
            Some("2025-01-01-preview")
        );
        let errs = Config::load(
            Some("deployments:\n  - { name: a, provider: azure, model: m }\n  - { name: b, provider: openai, model: m, api_key: k, api_version: x }\n"),
            &MapEnv::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(errs.contains("deployments[0].base_url"), "{errs}");
        assert!(errs.contains("deployments[0].api_key"), "{errs}");
        assert!(errs.contains("deployments[1].api_version"), "{errs}");
    }

    #[test]
    fn vertex_finds_the_gcloud_application_default_file() {
        let dir = std::env::temp_dir().join(format!("mg-gcloud-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("application_default_credentials.json");
        std::fs::write(&file, "{}").unwrap();
        let env = MapEnv(
            [
                ("CLOUDSDK_CONFIG", dir.to_str().unwrap()),
                ("GOOGLE_CLOUD_PROJECT", "p1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
        let c = Config::load(
            Some("deployments:\n  - { name: v, provider: vertex, model: gemini-2.5-flash }\n"),
            &env,
        )
        .unwrap();
        let v = c.deployments[0].vertex.as_ref().unwrap();
        assert_eq!(v.auth, VertexAuth::File(file.clone()));
        assert!(
            c.prefixes.contains_key("vertex"),
            "zero-config from the gcloud file"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
