//! The config file as written: every object rejects unknown fields.
//!
//! Numbers and booleans also accept strings, so `${ENV}` interpolation can
//! supply them (`max_body_bytes: ${MAX_BODY:-1048576}`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

/// The whole file.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// HTTP server settings.
    #[serde(default)]
    pub server: RawServer,
    /// The embedded store.
    #[serde(default)]
    pub store: RawStore,
    /// Upstream deployments that aliases in `models` refer to by name.
    #[serde(default)]
    pub deployments: Vec<RawDeployment>,
    /// Public model names (aliases) and the deployments behind them.
    #[serde(default)]
    pub models: Vec<RawModel>,
    /// Health and retry-budget settings shared by every alias.
    #[serde(default)]
    pub router: RawRouter,
    /// Virtual keys, limits and budgets.
    #[serde(default)]
    pub governance: RawGovernance,
    /// Payload capture and retention.
    #[serde(default)]
    pub observability: RawObservability,
    /// Serve `openai/<model>`, `anthropic/<model>` and `gemini/<model>` from
    /// `OPENAI_API_KEY`, `ANTHROPIC_API_KEY` and `GEMINI_API_KEY` (or
    /// `GOOGLE_API_KEY`), and `mock/<behaviour>` always. Default true.
    #[serde(default, deserialize_with = "opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub env_providers: Option<bool>,
}

/// `server:`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Listen address, `host:port`. Default `127.0.0.1:8600`.
    pub listen: Option<String>,
    /// The gateway master key (clients send it as `Authorization: Bearer` or `x-api-key`).
    /// `MODELGATE_MASTER_KEY` overrides it.
    pub master_key: Option<String>,
    /// Largest accepted request body in bytes. Default 20 MiB.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub max_body_bytes: Option<u64>,
    /// How long shutdown waits for in-flight requests and streams. Default 30.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub shutdown_grace_seconds: Option<u64>,
}

/// `store:`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// SQLite database file. Default `modelgate.db` in the working directory.
    pub sqlite_path: Option<String>,
    /// PostgreSQL URL (`postgres://user@host/db`); when set, used instead of
    /// SQLite. `MODELGATE_DATABASE_URL` overrides it.
    pub url: Option<String>,
}

/// One entry of `deployments:`: where requests can really go.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    /// Unique name, referred to from `models[].deployments`.
    pub name: String,
    /// `openai`, `openai_compatible`, `anthropic`, `gemini`, `azure`, `bedrock`,
    /// `vertex`, `mock`, or an OpenAI-compatible preset (`groq`, `mistral`, ...).
    pub provider: Option<String>,
    /// The upstream model id (for `mock`: the behaviour, e.g. `echo`).
    pub model: Option<String>,
    /// API base URL. OpenAI dialect: including `/v1`; Anthropic: without it;
    /// Gemini: scheme and host (`/v1beta` is added unless it ends in an API
    /// version).
    /// Bedrock: the runtime endpoint (default `https://bedrock-runtime.{region}.amazonaws.com`).
    pub base_url: Option<String>,
    /// Provider API key (usually `${SOME_ENV}`).
    pub api_key: Option<String>,
    /// Name of the environment variable that holds the provider API key.
    pub api_key_env: Option<String>,
    /// Extra headers sent upstream.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Upstream timeouts.
    #[serde(default)]
    pub timeouts: RawTimeouts,
    /// Price in USD per one million tokens. Default: the catalog's price of
    /// `catalog_model` (or `model`) at this provider.
    pub price: Option<RawPrice>,
    /// The model whose catalog price applies when it is not `model`: an
    /// Azure deployment named `prod-4o` serving `gpt-4o`, a fine-tune, a
    /// custom inference-profile ARN.
    pub catalog_model: Option<String>,
    /// Drop request fields the provider cannot take instead of answering 400.
    #[serde(default, deserialize_with = "opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub drop_unsupported_params: Option<bool>,
    /// Output cap sent when the client sets none: Anthropic's `max_tokens`
    /// (default 4096), Gemini's `maxOutputTokens` and Bedrock's `maxTokens`
    /// (default: the model's own).
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub default_max_tokens: Option<u64>,
    /// Ask OpenAI-dialect upstreams for stream usage. Default true; turn off for
    /// servers that reject `stream_options`.
    #[serde(default, deserialize_with = "opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub stream_usage: Option<bool>,
    /// Azure OpenAI `api-version` (default `2024-10-21`).
    pub api_version: Option<String>,
    /// Share of traffic under the `weighted` strategy (relative). Default 1.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub weight: Option<u64>,
    /// Order under the `priority` strategy: lower goes first. Default 0.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub priority: Option<u64>,
    /// Labels for tag routing (`x-modelgate-tags: eu`), e.g. region or tier.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Most requests in flight at once on this deployment; more are routed elsewhere.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub max_concurrency: Option<u64>,
    /// Requests per minute this deployment's provider key allows; past it the
    /// deployment is skipped until the minute window frees up.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub rpm: Option<u64>,
    /// Tokens per minute (estimated prompt tokens) the provider key allows.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub tpm: Option<u64>,
    /// Bedrock: the AWS region (`us-east-1`), used for the default endpoint
    /// and for SigV4 signing. Default: `AWS_REGION`, then `AWS_DEFAULT_REGION`.
    /// Vertex: the same as `location`.
    pub region: Option<String>,
    /// Bedrock: AWS access key id (usually `${AWS_ACCESS_KEY_ID}`); with
    /// `aws_secret_access_key`, requests are signed with SigV4.
    pub aws_access_key_id: Option<String>,
    /// Bedrock: AWS secret access key.
    pub aws_secret_access_key: Option<String>,
    /// Bedrock: session token of temporary AWS credentials.
    pub aws_session_token: Option<String>,
    /// Bedrock: the profile of the shared AWS files (`~/.aws/config`,
    /// `~/.aws/credentials`) to take credentials from. Default:
    /// `AWS_PROFILE`, then `default`.
    pub aws_profile: Option<String>,
    /// Bedrock: an IAM role to assume (STS `AssumeRole`) with the
    /// deployment's AWS credentials; requests are signed as that role.
    pub aws_role_arn: Option<String>,
    /// Bedrock: the session name for `aws_role_arn` (default `modelgate`).
    pub aws_role_session_name: Option<String>,
    /// Bedrock: the external id the role's trust policy asks for.
    pub aws_external_id: Option<String>,
    /// Bedrock: model-specific parameters sent as `additionalModelRequestFields`
    /// on every request (e.g. `{thinking: {type: enabled, budget_tokens: 4096}}`).
    pub additional_model_request_fields: Option<serde_json::Map<String, serde_json::Value>>,
    /// Vertex: the Google Cloud project id. Default: `GOOGLE_CLOUD_PROJECT`.
    pub project: Option<String>,
    /// Vertex: the location (`us-central1`, `global`). Default:
    /// `GOOGLE_CLOUD_LOCATION`, then `us-central1`. `region` is accepted too.
    pub location: Option<String>,
    /// Vertex: `google` or `anthropic`. Default: `anthropic` for `claude-*`
    /// model ids, else `google`.
    pub publisher: Option<String>,
    /// Vertex: a service-account key or `authorized_user` JSON file. Default:
    /// `GOOGLE_APPLICATION_CREDENTIALS`.
    pub credentials_file: Option<String>,
    /// Vertex: a fixed OAuth access token (e.g. `${VERTEX_ACCESS_TOKEN}`),
    /// never refreshed; same as `api_key`.
    pub access_token: Option<String>,
}

/// One entry of `models:`: a public name (alias). Either lists `deployments`
/// by name, or describes a single deployment inline (`provider`, `model`, ...).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// The public model name clients send.
    pub name: String,
    /// Names of entries in `deployments:` that serve this alias.
    pub deployments: Option<Vec<String>>,
    /// `openai`, `openai_compatible`, `anthropic`, `gemini`, `azure`, `bedrock`,
    /// `vertex`, `mock`, or an OpenAI-compatible preset (`groq`, `mistral`, ...).
    pub provider: Option<String>,
    /// The upstream model id (for `mock`: the behaviour, e.g. `echo`).
    pub model: Option<String>,
    /// API base URL. OpenAI dialect: including `/v1`; Anthropic: without it;
    /// Gemini: scheme and host (`/v1beta` is added unless it ends in an API
    /// version).
    /// Bedrock: the runtime endpoint (default `https://bedrock-runtime.{region}.amazonaws.com`).
    pub base_url: Option<String>,
    /// Provider API key (usually `${SOME_ENV}`).
    pub api_key: Option<String>,
    /// Name of the environment variable that holds the provider API key.
    pub api_key_env: Option<String>,
    /// Extra headers sent upstream.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Upstream timeouts.
    #[serde(default)]
    pub timeouts: RawTimeouts,
    /// Price in USD per one million tokens. Default: the catalog's price of
    /// `catalog_model` (or `model`) at this provider.
    pub price: Option<RawPrice>,
    /// The model whose catalog price applies when it is not `model`: an
    /// Azure deployment named `prod-4o` serving `gpt-4o`, a fine-tune, a
    /// custom inference-profile ARN.
    pub catalog_model: Option<String>,
    /// Drop request fields the provider cannot take instead of answering 400.
    #[serde(default, deserialize_with = "opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub drop_unsupported_params: Option<bool>,
    /// Output cap sent when the client sets none: Anthropic's `max_tokens`
    /// (default 4096), Gemini's `maxOutputTokens` and Bedrock's `maxTokens`
    /// (default: the model's own).
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub default_max_tokens: Option<u64>,
    /// Ask OpenAI-dialect upstreams for stream usage. Default true; turn off for
    /// servers that reject `stream_options`.
    #[serde(default, deserialize_with = "opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub stream_usage: Option<bool>,
    /// Azure OpenAI `api-version` (default `2024-10-21`).
    pub api_version: Option<String>,
    /// Share of traffic under the `weighted` strategy (relative). Default 1.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub weight: Option<u64>,
    /// Order under the `priority` strategy: lower goes first. Default 0.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub priority: Option<u64>,
    /// Labels for tag routing (`x-modelgate-tags: eu`), e.g. region or tier.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Most requests in flight at once on this deployment; more are routed elsewhere.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub max_concurrency: Option<u64>,
    /// Requests per minute this deployment's provider key allows; past it the
    /// deployment is skipped until the minute window frees up.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub rpm: Option<u64>,
    /// Tokens per minute (estimated prompt tokens) the provider key allows.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub tpm: Option<u64>,
    /// Bedrock: the AWS region (`us-east-1`), used for the default endpoint
    /// and for SigV4 signing. Default: `AWS_REGION`, then `AWS_DEFAULT_REGION`.
    /// Vertex: the same as `location`.
    pub region: Option<String>,
    /// Bedrock: AWS access key id (usually `${AWS_ACCESS_KEY_ID}`); with
    /// `aws_secret_access_key`, requests are signed with SigV4.
    pub aws_access_key_id: Option<String>,
    /// Bedrock: AWS secret access key.
    pub aws_secret_access_key: Option<String>,
    /// Bedrock: session token of temporary AWS credentials.
    pub aws_session_token: Option<String>,
    /// Bedrock: the profile of the shared AWS files (`~/.aws/config`,
    /// `~/.aws/credentials`) to take credentials from. Default:
    /// `AWS_PROFILE`, then `default`.
    pub aws_profile: Option<String>,
    /// Bedrock: an IAM role to assume (STS `AssumeRole`) with the
    /// deployment's AWS credentials; requests are signed as that role.
    pub aws_role_arn: Option<String>,
    /// Bedrock: the session name for `aws_role_arn` (default `modelgate`).
    pub aws_role_session_name: Option<String>,
    /// Bedrock: the external id the role's trust policy asks for.
    pub aws_external_id: Option<String>,
    /// Bedrock: model-specific parameters sent as `additionalModelRequestFields`
    /// on every request (e.g. `{thinking: {type: enabled, budget_tokens: 4096}}`).
    pub additional_model_request_fields: Option<serde_json::Map<String, serde_json::Value>>,
    /// Vertex: the Google Cloud project id. Default: `GOOGLE_CLOUD_PROJECT`.
    pub project: Option<String>,
    /// Vertex: the location (`us-central1`, `global`). Default:
    /// `GOOGLE_CLOUD_LOCATION`, then `us-central1`. `region` is accepted too.
    pub location: Option<String>,
    /// Vertex: `google` or `anthropic`. Default: `anthropic` for `claude-*`
    /// model ids, else `google`.
    pub publisher: Option<String>,
    /// Vertex: a service-account key or `authorized_user` JSON file. Default:
    /// `GOOGLE_APPLICATION_CREDENTIALS`.
    pub credentials_file: Option<String>,
    /// Vertex: a fixed OAuth access token (e.g. `${VERTEX_ACCESS_TOKEN}`),
    /// never refreshed; same as `api_key`.
    pub access_token: Option<String>,
    /// How a deployment is chosen: `priority` (default), `weighted`, `least_busy`,
    /// `lowest_latency` or `lowest_cost`.
    pub strategy: Option<String>,
    /// Retry policy.
    #[serde(default)]
    pub retry: RawRetry,
    /// Aliases to try when this one fails, by kind of failure.
    #[serde(default)]
    pub fallbacks: RawFallbacks,
    /// The model's context window in tokens: longer requests go straight to the
    /// `context_window` fallback.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub context_window: Option<u64>,
    /// Hedged requests (opt-in).
    pub hedge: Option<RawHedge>,
}

/// `retry:`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Most upstream attempts per client request, across deployments. Default 3.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub max_attempts: Option<u64>,
    /// First backoff between attempts (doubles, with jitter). Default 50.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub backoff_ms: Option<u64>,
    /// Largest backoff. Default 2000.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub max_backoff_ms: Option<u64>,
    /// No attempt starts after this much time since the request arrived. Default 120000.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub deadline_ms: Option<u64>,
}

/// `fallbacks:` (alias names, tried in order).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFallbacks {
    /// After transient failures (5xx, 429, timeouts, connection errors) exhaust this alias.
    #[serde(default)]
    pub general: Vec<String>,
    /// When the request is too long for the model (estimated, or the provider says so).
    #[serde(default)]
    pub context_window: Vec<String>,
    /// When the provider refuses or filters the content.
    #[serde(default)]
    pub content_policy: Vec<String>,
}

/// `hedge:`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHedge {
    /// Start a second attempt when the first has no content after this long.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub after_ms: Option<u64>,
    /// Use the deployment's observed p95 time to first token instead (falls back to `after_ms`).
    #[serde(default, deserialize_with = "opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub p95: Option<bool>,
    /// Largest share of requests that may be hedged (0 to 1). Default 0.1.
    #[serde(default, deserialize_with = "opt_f64")]
    #[schemars(with = "Option<f64>")]
    pub max_share: Option<f64>,
}

/// `observability:`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawObservability {
    /// Store prompts and responses (redacted): `off` (default), `sampled` or
    /// `always`. A key's or team's `metadata.capture` (`off`, `always`,
    /// `sampled:<percent>`) overrides it.
    pub capture: Option<String>,
    /// Share of requests captured when `capture: sampled`, in percent. Default 10.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub capture_sample_percent: Option<u64>,
    /// Captured payloads are deleted after this many days. Default 30.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub capture_retention_days: Option<u64>,
    /// Request-log rows are deleted after this many days (spend rollups stay).
    /// Default: kept.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub log_retention_days: Option<u64>,
    /// OpenTelemetry trace export over OTLP/HTTP (protobuf). Off unless set.
    pub tracing: Option<RawTracing>,
}

/// `observability.tracing:`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    /// Off when false. Default true (when the section is present).
    #[serde(default, deserialize_with = "opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub enabled: Option<bool>,
    /// The collector's OTLP/HTTP traces URL, e.g.
    /// `http://127.0.0.1:4318/v1/traces`. A URL without a path gets `/v1/traces`.
    pub endpoint: Option<String>,
    /// Extra headers on export requests (e.g. an API key for a hosted backend).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Share of new traces recorded, 0 to 1. Default 1.
    #[serde(default, deserialize_with = "opt_f64")]
    #[schemars(with = "Option<f64>")]
    pub sample_ratio: Option<f64>,
    /// Follow the sampled flag of the client's `traceparent`. Default true.
    #[serde(default, deserialize_with = "opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub parent_based: Option<bool>,
    /// `service.name` of the exported resource. Default `modelgate`.
    pub service_name: Option<String>,
    /// Timeout of one export request in milliseconds. Default 10000.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub timeout_ms: Option<u64>,
}

/// `governance:`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGovernance {
    /// Secret that virtual keys are hashed with (HMAC-SHA256). `MODELGATE_KEY_SECRET`
    /// overrides it. Default: generated once and kept in the store.
    pub key_secret: Option<String>,
    /// Output tokens assumed for a request that sets no `max_tokens` when
    /// reserving budget. Default 4096.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub default_max_output_tokens: Option<u64>,
    /// URL that receives a JSON POST when a budget crosses its soft threshold.
    pub alert_webhook: Option<String>,
    /// Hosts `alert_webhook` may point at (it must be listed here).
    #[serde(default)]
    pub alert_webhook_allowlist: Vec<String>,
    /// Requests per minute allowed to each end user (the request's `user`
    /// field), per key. None: unlimited.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub end_user_rpm: Option<u64>,
    /// Prompt tokens per minute allowed to each end user, per key.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub end_user_tpm: Option<u64>,
    /// Share rate limits and budgets between replicas through this Redis
    /// (`redis://127.0.0.1:6379`). `MODELGATE_REDIS_URL` overrides it.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key. Default `mg`.
    pub redis_prefix: Option<String>,
    /// Longest wait for Redis on the request path. Default 250.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub redis_timeout_ms: Option<u64>,
    /// When Redis is unreachable, rate limits `open` (requests pass, default) or `closed`.
    pub limits_on_redis_failure: Option<String>,
    /// When Redis is unreachable, budgets `closed` (requests with a budget are refused, default) or `open`.
    pub budgets_on_redis_failure: Option<String>,
}

/// `router:`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRouter {
    /// Consecutive failures that open a deployment's breaker. Default 5.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub breaker_consecutive_failures: Option<u64>,
    /// Error rate (0 to 1) over the last `breaker_window` outcomes that opens the breaker. Default 0.5.
    #[serde(default, deserialize_with = "opt_f64")]
    #[schemars(with = "Option<f64>")]
    pub breaker_error_rate: Option<f64>,
    /// Outcomes the error rate is computed over (at least this many). Default 20.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub breaker_window: Option<u64>,
    /// How long an open breaker keeps a deployment out before one probe. Default 30000.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub breaker_cooldown_ms: Option<u64>,
    /// Retries allowed as a share of requests (over 10 s). Default 0.2.
    #[serde(default, deserialize_with = "opt_f64")]
    #[schemars(with = "Option<f64>")]
    pub retry_budget_ratio: Option<f64>,
    /// Retries always allowed per second on top of the ratio. Default 5.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub retry_budget_min_per_second: Option<u64>,
}

/// `timeouts:` (milliseconds).
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    /// Connect timeout. Default 10000.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub connect_ms: Option<u64>,
    /// Whole non-streaming request; for streams, until response headers. Default 600000.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub request_ms: Option<u64>,
    /// Streams: longest wait for the first content after the request is sent;
    /// past it the attempt fails over. Default: `request_ms`.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub first_token_ms: Option<u64>,
    /// Longest gap between stream chunks. Default 120000.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub idle_ms: Option<u64>,
}

/// `price:` in USD per one million tokens.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    /// Input (prompt) tokens.
    #[serde(deserialize_with = "f64_lenient")]
    #[schemars(with = "f64")]
    pub input: f64,
    /// Output (completion) tokens.
    #[serde(deserialize_with = "f64_lenient")]
    #[schemars(with = "f64")]
    pub output: f64,
    /// Cached input tokens (reads). Default: the input price.
    #[serde(default, deserialize_with = "opt_f64")]
    #[schemars(with = "Option<f64>")]
    pub cached_input: Option<f64>,
    /// Cache writes. Default: the input price.
    #[serde(default, deserialize_with = "opt_f64")]
    #[schemars(with = "Option<f64>")]
    pub cache_write: Option<f64>,
    /// The dearer tier for long prompts (e.g. Gemini 2.5 Pro over 200k
    /// tokens): when the prompt has more than `above` input tokens, the
    /// whole request is charged at these prices.
    pub long: Option<RawLongPrice>,
}

/// [`RawPrice::long`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLongPrice {
    /// Prompts of more than this many input tokens use this tier.
    #[serde(deserialize_with = "u64_lenient")]
    #[schemars(with = "u64")]
    pub above: u64,
    /// Input tokens, USD per 1M.
    #[serde(deserialize_with = "f64_lenient")]
    #[schemars(with = "f64")]
    pub input: f64,
    /// Output tokens, USD per 1M.
    #[serde(deserialize_with = "f64_lenient")]
    #[schemars(with = "f64")]
    pub output: f64,
    /// Cache reads. Default: this tier's input price.
    #[serde(default, deserialize_with = "opt_f64")]
    #[schemars(with = "Option<f64>")]
    pub cached_input: Option<f64>,
    /// Cache writes. Default: this tier's input price.
    #[serde(default, deserialize_with = "opt_f64")]
    #[schemars(with = "Option<f64>")]
    pub cache_write: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient {
    U(u64),
    F(f64),
    B(bool),
    S(String),
}

fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Option::<Lenient>::deserialize(d)? {
        None => Ok(None),
        Some(Lenient::U(n)) => Ok(Some(n)),
        Some(Lenient::S(s)) => {
            s.trim().parse().map(Some).map_err(|_| {
                D::Error::custom(format!("expected a non-negative integer, got {s:?}"))
            })
        }
        Some(_) => Err(D::Error::custom("expected a non-negative integer")),
    }
}

fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    use serde::de::Error;
    match Option::<Lenient>::deserialize(d)? {
        None => Ok(None),
        Some(Lenient::U(n)) => Ok(Some(n as f64)),
        Some(Lenient::F(f)) => Ok(Some(f)),
        Some(Lenient::S(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("expected a number, got {s:?}"))),
        Some(Lenient::B(_)) => Err(D::Error::custom("expected a number")),
    }
}

fn u64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use serde::de::Error;
    opt_u64(d)?.ok_or_else(|| D::Error::custom("expected a non-negative integer"))
}

fn f64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::de::Error;
    opt_f64(d)?.ok_or_else(|| D::Error::custom("expected a number"))
}

fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    use serde::de::Error;
    match Option::<Lenient>::deserialize(d)? {
        None => Ok(None),
        Some(Lenient::B(b)) => Ok(Some(b)),
        Some(Lenient::S(s)) => match s.trim() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(D::Error::custom(format!(
                "expected true or false, got {s:?}"
            ))),
        },
        Some(_) => Err(D::Error::custom("expected true or false")),
    }
}
