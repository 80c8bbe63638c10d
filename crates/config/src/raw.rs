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
    /// Public model names and the deployments behind them.
    #[serde(default)]
    pub models: Vec<RawModel>,
    /// Serve `openai/<model>` and `anthropic/<model>` from `OPENAI_API_KEY` / `ANTHROPIC_API_KEY`
    /// (and `mock/<behaviour>` always). Default true.
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
}

/// One entry of `models:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// The public model name clients send.
    pub name: String,
    /// `openai`, `openai_compatible`, `anthropic` or `mock`.
    pub provider: String,
    /// The upstream model id (for `mock`: the behaviour, e.g. `echo`).
    pub model: String,
    /// API base URL. OpenAI dialect: including `/v1`; Anthropic: without it.
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
    /// Price in USD per one million tokens.
    pub price: Option<RawPrice>,
    /// Drop request fields the provider cannot take instead of answering 400.
    #[serde(default, deserialize_with = "opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub drop_unsupported_params: Option<bool>,
    /// `max_tokens` sent when the client sets none (Anthropic). Default 4096.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub default_max_tokens: Option<u64>,
    /// Ask OpenAI-dialect upstreams for stream usage. Default true; turn off for
    /// servers that reject `stream_options`.
    #[serde(default, deserialize_with = "opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub stream_usage: Option<bool>,
}

/// `timeouts:` (milliseconds).
#[derive(Debug, Default, Deserialize, JsonSchema)]
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
    /// Longest gap between stream chunks. Default 120000.
    #[serde(default, deserialize_with = "opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub idle_ms: Option<u64>,
}

/// `price:` in USD per one million tokens.
#[derive(Debug, Default, Deserialize, JsonSchema)]
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
