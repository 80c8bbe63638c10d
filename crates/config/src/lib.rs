//! Modelgate configuration.
//!
//! Role: turn one YAML file (or none) plus the environment into a validated,
//! immutable runtime [`Config`]. Parsing happens in three steps:
//! 1. YAML -> `serde_json::Value` (serde-saphyr);
//! 2. `${ENV}` / `${ENV:-default}` interpolation inside string values only
//!    (an environment value can never change the document's structure);
//! 3. the `raw` types (every object `deny_unknown_fields`) are deserialised
//!    section by section and then validated, so *all* errors are reported, each
//!    with its path.
//!
//! Environment access goes through the [`Env`] trait so tests never mutate the
//! process environment. Must not depend on: HTTP, databases, async runtimes.

pub mod catalog;
mod env;
pub mod presets;
pub mod raw;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use env::{Env, MapEnv, ProcessEnv};
use modelgate_core::Price;
pub use validate::{ConfigError, ConfigErrors};

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8600";
/// Default request body limit: 20 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 20 * 1024 * 1024;
/// Default drain deadline on shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Default `max_tokens` sent to Anthropic when the client sets none.
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u32 = 4096;
/// Default SQLite file, relative to the working directory.
pub const DEFAULT_SQLITE_PATH: &str = "modelgate.db";
/// OpenAI's API base (the SDK's default `base_url`).
pub const OPENAI_DEFAULT_BASE: &str = "https://api.openai.com/v1";
/// Anthropic's API base (the SDK's default `base_url`, without `/v1`).
pub const ANTHROPIC_DEFAULT_BASE: &str = "https://api.anthropic.com";
/// The Gemini API (Google AI Studio) host, without an API version: requests go
/// to `{base}/v1beta/models/{model}:generateContent`.
pub const GEMINI_DEFAULT_BASE: &str = "https://generativelanguage.googleapis.com";

/// Azure OpenAI `api-version` used when a deployment sets none (the GA
/// version with `stream_options` support).
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

/// The Bedrock Runtime endpoint of a region (the AWS SDKs' default).
pub fn bedrock_default_base(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

/// The validated runtime configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    /// Every deployment from the file (`deployments:` and inline models).
    pub deployments: Vec<Arc<Deployment>>,
    /// Public model names (aliases) from the file.
    pub models: BTreeMap<String, Arc<Alias>>,
    /// Provider templates for the `provider/<model>` names served without a file.
    pub prefixes: BTreeMap<String, Arc<Deployment>>,
    /// Health and retry-budget settings.
    pub router: RouterConfig,
    /// Virtual keys, limits and budgets.
    pub governance: GovernanceConfig,
    /// Payload capture and retention.
    pub observability: ObservabilityConfig,
}

/// What share of requests to capture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Capture {
    Off,
    /// This percentage of requests (0 to 100).
    Sampled(f64),
    Always,
}

impl Capture {
    /// Parses `off`, `always`, `sampled` (with `default_percent`) or `sampled:<percent>`.
    pub fn parse(s: &str, default_percent: f64) -> Option<Capture> {
        match s {
            "off" => Some(Capture::Off),
            "always" => Some(Capture::Always),
            "sampled" => Some(Capture::Sampled(default_percent)),
            other => {
                let pct: f64 = other.strip_prefix("sampled:")?.trim().parse().ok()?;
                (0.0..=100.0)
                    .contains(&pct)
                    .then_some(Capture::Sampled(pct))
            }
        }
    }
}

/// Payload capture and retention.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservabilityConfig {
    pub capture: Capture,
    pub capture_retention: Duration,
    pub log_retention: Option<Duration>,
    /// OTLP trace export; `None` when off.
    pub tracing: Option<TracingConfig>,
}

/// OpenTelemetry trace export (OTLP/HTTP, protobuf).
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// The collector's traces URL.
    pub endpoint: String,
    /// Extra export headers (values are secrets).
    pub headers: Vec<(String, Secret)>,
    pub sample_ratio: f64,
    pub parent_based: bool,
    pub service_name: String,
    pub timeout: Duration,
}

/// Governance settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GovernanceConfig {
    /// Key-hashing secret; `None`: generated and kept in the store.
    pub key_secret: Option<Secret>,
    /// Output tokens assumed when a request sets no cap (budget reservation).
    pub default_max_output_tokens: u64,
    /// Soft-budget alert webhook (its host is on the allow-list).
    pub alert_webhook: Option<String>,
    /// Redis shared by replicas, when configured.
    pub redis: Option<RedisConfig>,
    /// Per end user (request `user`), per key: requests per minute.
    pub end_user_rpm: Option<u64>,
    /// Per end user, per key: prompt tokens per minute.
    pub end_user_tpm: Option<u64>,
}

/// Shared limits and budgets.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    pub url: Secret,
    pub prefix: String,
    pub timeout: Duration,
    /// Rate limits pass when Redis is unreachable.
    pub limits_fail_open: bool,
    /// Budgets pass when Redis is unreachable (default: refuse).
    pub budgets_fail_open: bool,
}

/// A public model name and how requests for it are routed.
#[derive(Debug, Clone, PartialEq)]
pub struct Alias {
    pub name: String,
    /// The deployment group (never empty).
    pub deployments: Vec<Arc<Deployment>>,
    pub strategy: Strategy,
    pub retry: RetryPolicy,
    pub fallbacks: Fallbacks,
    /// Context window in tokens, when known.
    pub context_window: Option<u64>,
    pub hedge: Option<Hedge>,
}

impl Alias {
    /// A single-deployment alias with default routing (zero-config names).
    pub fn single(name: String, deployment: Arc<Deployment>) -> Alias {
        Alias {
            name,
            deployments: vec![deployment],
            strategy: Strategy::default(),
            retry: RetryPolicy::default(),
            fallbacks: Fallbacks::default(),
            context_window: None,
            hedge: None,
        }
    }
}

/// How an alias orders its deployments for an attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Lowest `priority` first; ties broken by weight. The default: predictable.
    #[default]
    Priority,
    /// Random in proportion to `weight`.
    Weighted,
    /// Fewest requests in flight.
    LeastBusy,
    /// Lowest moving average time to first token, with some exploration.
    LowestLatency,
    /// Cheapest price first.
    LowestCost,
}

impl Strategy {
    /// Parses a config name.
    pub fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "priority" => Strategy::Priority,
            "weighted" => Strategy::Weighted,
            "least_busy" => Strategy::LeastBusy,
            "lowest_latency" => Strategy::LowestLatency,
            "lowest_cost" => Strategy::LowestCost,
            _ => return None,
        })
    }
}

/// Retries within an alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts per client request (first attempt included), over all aliases tried.
    pub max_attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// No attempt starts later than this after the request arrived.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            deadline: Duration::from_secs(120),
        }
    }
}

/// Fallback alias chains by failure kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fallbacks {
    pub general: Vec<String>,
    pub context_window: Vec<String>,
    pub content_policy: Vec<String>,
}

/// Hedging settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hedge {
    /// Fixed threshold for time to first token.
    pub after: Option<Duration>,
    /// Use the deployment's observed p95 time to first token.
    pub p95: bool,
    /// Largest share of requests hedged.
    pub max_share: f64,
}

/// Router-wide settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouterConfig {
    pub breaker_consecutive_failures: u32,
    pub breaker_error_rate: f64,
    pub breaker_window: u32,
    pub breaker_cooldown: Duration,
    pub retry_budget_ratio: f64,
    pub retry_budget_min_per_second: u32,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            breaker_consecutive_failures: 5,
            breaker_error_rate: 0.5,
            breaker_window: 20,
            breaker_cooldown: Duration::from_secs(30),
            retry_budget_ratio: 0.2,
            retry_budget_min_per_second: 5,
        }
    }
}

/// HTTP server settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The gateway master key. `None` means unauthenticated, loopback only.
    pub master_key: Option<Secret>,
    pub max_body_bytes: usize,
    pub shutdown_grace: Duration,
}

/// Where the embedded store lives.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    pub sqlite_path: PathBuf,
    /// PostgreSQL instead of SQLite, when set.
    pub postgres_url: Option<Secret>,
}

/// A secret string whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where it is sent or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Which wire protocol a deployment speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// api.openai.com
    OpenAi,
    /// Any server speaking the OpenAI dialect (vLLM, Ollama, Groq, ...).
    OpenAiCompatible,
    /// Anthropic Messages API.
    Anthropic,
    /// Google Gemini API (AI Studio keys): `generateContent` /
    /// `streamGenerateContent`.
    Gemini,
    /// Azure OpenAI: the OpenAI dialect at
    /// `{base}/openai/deployments/{deployment}/...?api-version=...`, key in `api-key`.
    Azure,
    /// The built-in mock: no network.
    Mock,
    /// Amazon Bedrock Converse / ConverseStream.
    Bedrock,
    /// Google Cloud Vertex AI: Gemini (`generateContent`) and Anthropic
    /// (`rawPredict`) models, authenticated with OAuth access tokens.
    Vertex,
}

impl ProviderKind {
    /// The name used in config and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::OpenAiCompatible => "openai_compatible",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Azure => "azure",
            ProviderKind::Mock => "mock",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::Vertex => "vertex",
        }
    }

    /// Parses a config name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "openai" => ProviderKind::OpenAi,
            "openai_compatible" => ProviderKind::OpenAiCompatible,
            "anthropic" => ProviderKind::Anthropic,
            "gemini" => ProviderKind::Gemini,
            "azure" => ProviderKind::Azure,
            "mock" => ProviderKind::Mock,
            "bedrock" => ProviderKind::Bedrock,
            "vertex" => ProviderKind::Vertex,
            _ => return None,
        })
    }

    /// All kinds, for error messages and schemas.
    pub const ALL: [&'static str; 8] = [
        "openai",
        "openai_compatible",
        "anthropic",
        "gemini",
        "azure",
        "bedrock",
        "vertex",
        "mock",
    ];
}

/// Upstream timeouts of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// Whole non-streaming request; for streams, until the response headers.
    pub request: Duration,
    /// Longest silence between two stream chunks.
    pub idle: Duration,
    /// Streams: longest wait for the first content; past it the attempt fails over.
    pub first_token: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(600),
            idle: Duration::from_secs(120),
            first_token: Duration::from_secs(600),
        }
    }
}

/// One upstream deployment: where a public model name really goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// Public name (`gpt-4o`, or the prefix `openai` for `openai/<model>` templates).
    pub name: String,
    pub provider: ProviderKind,
    /// Upstream model id; empty for prefix templates (the suffix is used).
    pub upstream_model: String,
    /// API base, e.g. `https://api.openai.com/v1`, `https://api.anthropic.com`
    /// or `https://generativelanguage.googleapis.com`.
    pub base_url: String,
    pub api_key: Option<Secret>,
    /// Extra headers sent upstream (may hold secrets: never logged).
    pub headers: Vec<(String, Secret)>,
    pub timeouts: Timeouts,
    pub price: Option<Price>,
    /// Drop request fields this provider cannot take instead of rejecting them.
    pub drop_unsupported_params: bool,
    /// The output cap sent when the client sets none, as configured
    /// (`default_max_tokens`). Anthropic requires one and uses
    /// [`DEFAULT_ANTHROPIC_MAX_TOKENS`] when this is `None`; Gemini sends
    /// `maxOutputTokens` only when it is set (else the model's own default).
    pub default_max_tokens: Option<u32>,
    /// Ask OpenAI-dialect upstreams for usage on streams (`stream_options.include_usage`).
    pub stream_usage: bool,
    /// Azure OpenAI's `api-version` query parameter (Azure only).
    pub api_version: Option<String>,
    /// Relative share under the `weighted` strategy.
    pub weight: u32,
    /// Order under the `priority` strategy (lower first).
    pub priority: u32,
    /// Labels for tag routing.
    pub tags: Vec<String>,
    /// Most requests in flight at once.
    pub max_concurrency: Option<u32>,
    /// Requests per minute allowed (the provider key's quota).
    pub rpm: Option<u32>,
    /// Estimated tokens per minute allowed.
    pub tpm: Option<u64>,
    /// Bedrock settings; `Some` exactly when `provider` is `Bedrock`.
    pub bedrock: Option<BedrockConfig>,
    /// Vertex AI settings; `Some` exactly when `provider` is `Vertex`.
    pub vertex: Option<VertexConfig>,
    /// The OpenAI-compatible preset (`groq`, `mistral`, ...) this deployment
    /// was configured with, if any.
    pub preset: Option<&'static str>,
    /// The model whose catalog price applies, when it is not the upstream
    /// model (`catalog_model`).
    pub catalog_model: Option<String>,
}

impl Deployment {
    /// The provider's name in logs, metrics, traces and the catalog: the
    /// preset's (`groq`) for a preset, else the kind's (`openai_compatible`).
    pub fn provider_name(&self) -> &'static str {
        self.preset.unwrap_or(self.provider.as_str())
    }

    /// Whether an output cap goes upstream as `max_completion_tokens` rather
    /// than `max_tokens`: OpenAI's reasoning models (o-series, gpt-5) only
    /// take the newer field, on OpenAI and on Azure from `api-version`
    /// 2024-09-01 on; other OpenAI-compatible servers know only `max_tokens`.
    pub fn takes_max_completion_tokens(&self) -> bool {
        match self.provider {
            ProviderKind::OpenAi => true,
            ProviderKind::Azure => self
                .api_version
                .as_deref()
                .is_some_and(|v| v >= "2024-09-01"),
            _ => false,
        }
    }

    /// Whether `upstream_model` here speaks the Anthropic Messages API
    /// natively: Anthropic, and Claude models on Vertex AI. `/v1/messages`
    /// passes bodies through to those.
    pub fn speaks_messages(&self, upstream_model: &str) -> bool {
        match self.provider {
            ProviderKind::Anthropic => true,
            ProviderKind::Vertex => self
                .vertex
                .as_ref()
                .is_some_and(|v| v.publisher_for(upstream_model) == VertexPublisher::Anthropic),
            _ => false,
        }
    }
}

/// Which publisher's API a Vertex AI model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VertexPublisher {
    /// Gemini models: `generateContent` / `streamGenerateContent`.
    Google,
    /// Claude models: the Messages API through `rawPredict` / `streamRawPredict`.
    Anthropic,
}

impl VertexPublisher {
    /// The publisher's path segment (`publishers/{id}/models/...`).
    pub fn as_str(self) -> &'static str {
        match self {
            VertexPublisher::Google => "google",
            VertexPublisher::Anthropic => "anthropic",
        }
    }

    /// Parses a config name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "google" => Some(VertexPublisher::Google),
            "anthropic" => Some(VertexPublisher::Anthropic),
            _ => None,
        }
    }

    /// The publisher a model id implies: `claude-*` is Anthropic's, anything
    /// else Google's.
    pub fn infer(model: &str) -> Self {
        if model.starts_with("claude") {
            VertexPublisher::Anthropic
        } else {
            VertexPublisher::Google
        }
    }
}

/// How a Vertex deployment gets its OAuth access token.
#[derive(Debug, Clone, PartialEq)]
pub enum VertexAuth {
    /// A fixed token in the deployment's `api_key` (`access_token` in the
    /// file), e.g. from `gcloud auth print-access-token`: sent as is, never
    /// refreshed.
    Static,
    /// A credentials file (service account, `authorized_user` or
    /// `external_account`), read when a token is needed; tokens are cached
    /// until shortly before they expire.
    File(PathBuf),
    /// The GCE/GKE metadata server at this base URL
    /// (`http://metadata.google.internal`): the workload's own service account.
    Metadata(String),
}

/// What a Vertex AI deployment needs beyond the common fields.
#[derive(Debug, Clone, PartialEq)]
pub struct VertexConfig {
    /// The Google Cloud project id.
    pub project: String,
    /// The location (`us-central1`, `europe-west4`, `global`).
    pub location: String,
    /// Set explicitly; `None` infers it from the model id per request
    /// ([`VertexPublisher::infer`]).
    pub publisher: Option<VertexPublisher>,
    pub auth: VertexAuth,
    /// What `external_account` credential files may take from the
    /// environment (captured when the configuration is loaded).
    pub external: ExternalAccountEnv,
}

/// The environment an `external_account` (workload identity federation)
/// credentials file may use, as Google's auth libraries read it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExternalAccountEnv {
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION` (AWS-sourced files; else the
    /// file's `region_url` is asked).
    pub aws_region: Option<String>,
    /// `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`)
    /// (AWS-sourced files; else the file's metadata `url` is asked).
    pub aws_credentials: Option<AwsCredentials>,
    /// `GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1`: executable-sourced
    /// files may run their command.
    pub allow_executables: bool,
}

impl VertexConfig {
    /// A regional endpoint (any location but `global`): Anthropic's models
    /// from the 4.5 generation on cost more there.
    pub fn is_regional(&self) -> bool {
        self.location != "global"
    }

    /// The publisher serving `model`.
    pub fn publisher_for(&self, model: &str) -> VertexPublisher {
        self.publisher
            .unwrap_or_else(|| VertexPublisher::infer(model))
    }
}

/// Vertex AI's default location.
pub const VERTEX_DEFAULT_LOCATION: &str = "us-central1";

/// The Vertex AI endpoint of a location: `https://{location}-aiplatform.googleapis.com`,
/// or `https://aiplatform.googleapis.com` for `global`.
pub fn vertex_default_base(location: &str) -> String {
    if location == "global" {
        "https://aiplatform.googleapis.com".to_owned()
    } else {
        format!("https://{location}-aiplatform.googleapis.com")
    }
}

/// What a Bedrock deployment needs beyond the common fields. The credential
/// is either the deployment's `api_key` (a Bedrock API key, sent as
/// `Authorization: Bearer`) or [`BedrockConfig::aws`] (every request signed
/// with SigV4); validation guarantees exactly one of them.
#[derive(Debug, Clone, PartialEq)]
pub struct BedrockConfig {
    /// The region requests are signed for (`us-east-1`). Empty only when a
    /// Bedrock API key is used with an explicit `base_url` and no region is
    /// known: bearer requests are not signed.
    pub region: String,
    /// Where AWS credentials for SigV4 come from; `None` when the
    /// deployment's `api_key` is used.
    pub aws: Option<AwsAuth>,
    /// A role to assume (STS `AssumeRole`) with those credentials; requests
    /// are signed with the role's temporary credentials.
    pub assume_role: Option<AssumeRole>,
    /// `inferenceConfig.maxTokens` when the client sets no limit; `None`
    /// leaves the model's own default (only `default_max_tokens` in the file
    /// sets it).
    pub default_max_tokens: Option<u32>,
    /// Sent as `additionalModelRequestFields` on every request.
    pub additional_model_request_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

impl BedrockConfig {
    /// The fixed credentials requests are signed with, when nothing has to
    /// be fetched at run time (no chain, no role to assume).
    pub fn static_credentials(&self) -> Option<&AwsCredentials> {
        match (&self.aws, &self.assume_role) {
            (Some(AwsAuth::Static(c)), None) => Some(c),
            _ => None,
        }
    }
}

/// Where a deployment's AWS credentials come from.
#[derive(Debug, Clone, PartialEq)]
pub enum AwsAuth {
    /// Fixed keys: from the file (`aws_access_key_id`, ...) or the
    /// environment (`AWS_ACCESS_KEY_ID`, ...).
    Static(AwsCredentials),
    /// The AWS SDKs' default credential chain, resolved (and refreshed
    /// before the credentials expire) at run time.
    Chain(AwsChain),
}

/// The AWS default credential chain as the environment configures it
/// (<https://docs.aws.amazon.com/sdkref/latest/guide/standardized-credentials.html>).
/// Tried in order: the profile in the shared config files, web identity,
/// the container credentials endpoint, the EC2 instance metadata service.
/// Keys in the environment never get here: they are [`AwsAuth::Static`].
#[derive(Debug, Clone, PartialEq)]
pub struct AwsChain {
    /// `aws_profile`, else `AWS_PROFILE`, else `default`.
    pub profile: String,
    /// The profile was named: when the files do not have it, that is an
    /// error rather than a reason to try the next source.
    pub profile_named: bool,
    /// `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
    pub credentials_file: Option<PathBuf>,
    /// `AWS_CONFIG_FILE`, else `~/.aws/config`.
    pub config_file: Option<PathBuf>,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (EKS IRSA and other
    /// OIDC federations).
    pub web_identity: Option<WebIdentity>,
    /// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` / `_FULL_URI` (ECS tasks,
    /// EKS Pod Identity).
    pub container: Option<ContainerEndpoint>,
    /// The instance metadata service's base URL (IMDSv2);
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else `http://169.254.169.254`;
    /// `None` when `AWS_EC2_METADATA_DISABLED=true`.
    pub imds: Option<String>,
    /// STS for web identity and roles in profiles:
    /// `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else the region's.
    pub sts_endpoint: String,
}

/// Credentials from `AssumeRoleWithWebIdentity` with a token file.
#[derive(Debug, Clone, PartialEq)]
pub struct WebIdentity {
    /// Re-read at every refresh (the token rotates).
    pub token_file: PathBuf,
    pub role_arn: String,
    pub session_name: String,
}

/// The container credentials endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerEndpoint {
    pub url: String,
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN`, sent as `Authorization`.
    pub auth_token: Option<Secret>,
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`, read at every refresh.
    pub auth_token_file: Option<PathBuf>,
}

/// An IAM role to assume with STS `AssumeRole`.
#[derive(Debug, Clone, PartialEq)]
pub struct AssumeRole {
    pub role_arn: String,
    pub session_name: String,
    pub external_id: Option<String>,
    /// Where `AssumeRole` is called.
    pub sts_endpoint: String,
}

/// Long-term or temporary AWS credentials. All parts are secrets: the key id
/// identifies the account's user, and is redacted like the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsCredentials {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    /// STS session token of temporary credentials.
    pub session_token: Option<Secret>,
}

impl Deployment {
    /// `max_tokens` for Anthropic when the client sets none.
    pub fn anthropic_max_tokens(&self) -> u32 {
        self.default_max_tokens
            .unwrap_or(DEFAULT_ANTHROPIC_MAX_TOKENS)
    }
}

impl Config {
    /// Loads from an optional YAML text and the environment, reporting every error.
    pub fn load(yaml: Option<&str>, env: &dyn Env) -> Result<Config, ConfigErrors> {
        validate::load(yaml, env)
    }

    /// The JSON Schema of the config file.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(raw::RawConfig)).unwrap_or_default()
    }
}
