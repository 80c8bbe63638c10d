//! The checked-in price catalog (`catalog/prices.json`), versioned in the
//! repository. A deployment's own `price:` overrides it.
//!
//! Lookup is by provider and upstream model: an exact match first, then the
//! longest catalog name that the model starts with followed by `-` (so dated
//! snapshots such as `gpt-4o-2024-08-06` or `claude-sonnet-4-5-20250929`
//! find `gpt-4o` / `claude-sonnet-4-5`). `openai_compatible` deployments have no
//! catalog prices: their prices depend on the host.
//!
//! One row holds one price per token kind. Providers that price long prompts
//! higher (Google charges more for Gemini prompts over 200k tokens on some
//! models) cannot be expressed: such a row would carry the ≤200k price, so
//! long prompts would be under-costed (the Gemini 2.5 Pro rows hold the
//! ≤200k-token price). Bedrock rows are us-east-1 on-demand prices.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use modelgate_core::Price;
use serde::Deserialize;

const RAW: &str = include_str!("../catalog/prices.json");

#[derive(Deserialize)]
struct File {
    version: String,
    providers: BTreeMap<String, BTreeMap<String, Entry>>,
}

#[derive(Deserialize)]
struct Entry {
    input: f64,
    output: f64,
    #[serde(default)]
    cached_input: Option<f64>,
    #[serde(default)]
    cache_write: Option<f64>,
}

fn micros(usd: f64) -> u64 {
    (usd * 1_000_000.0).round() as u64
}

struct Catalog {
    version: String,
    prices: BTreeMap<String, BTreeMap<String, Price>>,
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        // The file is compiled in and covered by a test, so it parses.
        let file: File = serde_json::from_str(RAW).unwrap_or(File {
            version: "invalid".into(),
            providers: BTreeMap::new(),
        });
        Catalog {
            version: file.version,
            prices: file
                .providers
                .into_iter()
                .map(|(p, models)| {
                    let models = models
                        .into_iter()
                        .map(|(m, e)| {
                            (
                                m,
                                Price {
                                    input_per_mtok: micros(e.input),
                                    output_per_mtok: micros(e.output),
                                    cached_input_per_mtok: e.cached_input.map(micros),
                                    cache_write_per_mtok: e.cache_write.map(micros),
                                },
                            )
                        })
                        .collect();
                    (p, models)
                })
                .collect(),
        }
    })
}

/// The catalog's version string.
pub fn version() -> &'static str {
    &catalog().version
}

/// The catalog price of `model` at `provider`, if listed.
pub fn lookup(provider: &str, model: &str) -> Option<Price> {
    let models = catalog().prices.get(provider)?;
    if let Some(p) = models.get(model).or_else(|| models.get("*")) {
        return Some(*p);
    }
    models
        .iter()
        .filter(|(name, _)| {
            model.len() > name.len()
                && model.starts_with(name.as_str())
                && model.as_bytes()[name.len()] == b'-'
        })
        .max_by_key(|(name, _)| name.len())
        .map(|(_, p)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate_core::{Nanos, Usage};

    #[test]
    fn catalog_parses_and_has_a_version() {
        let file: File = serde_json::from_str(RAW).unwrap();
        assert!(!file.providers.is_empty());
        assert_eq!(version(), file.version);
    }

    #[test]
    fn snapshots_resolve_to_their_family() {
        assert_eq!(
            lookup("openai", "gpt-4o-2024-08-06"),
            lookup("openai", "gpt-4o")
        );
        assert_eq!(
            lookup("openai", "gpt-4o-mini-2024-07-18"),
            lookup("openai", "gpt-4o-mini")
        );
        assert_eq!(
            lookup("anthropic", "claude-sonnet-4-5-20250929"),
            lookup("anthropic", "claude-sonnet-4-5")
        );
        assert!(lookup("openai", "gpt-4oops").is_none());
        assert!(lookup("openai_compatible", "llama3").is_none());
        assert_eq!(
            lookup("gemini", "gemini-2.5-flash-preview-05-20"),
            lookup("gemini", "gemini-2.5-flash")
        );
        assert_ne!(
            lookup("gemini", "gemini-2.5-flash-lite"),
            lookup("gemini", "gemini-2.5-flash")
        );
        assert!(lookup("bedrock", "amazon.nova-pro-v1:0").is_some());
        assert!(lookup("gemini", "gemini-1.0-ultra").is_none());
        assert_eq!(lookup("mock", "echo").unwrap().input_per_mtok, 0);
    }

    fn usage(input: u64, output: u64, read: u64, write: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: read,
            cache_write_tokens: write,
            ..Usage::default()
        }
    }

    #[test]
    fn cost_per_provider_and_model_with_cache() {
        // gpt-4o-mini: 1M uncached in $0.15 + 1M cached $0.075 + 1M out $0.60
        let p = lookup("openai", "gpt-4o-mini").unwrap();
        assert_eq!(
            p.cost(&usage(2_000_000, 1_000_000, 1_000_000, 0)),
            Nanos(825_000_000)
        );
        // claude-sonnet-4-5: 1000 in (of which 200 read, 300 written) + 500 out:
        // 500 x $3 + 200 x $0.30 + 300 x $3.75 + 500 x $15, per 1M
        let p = lookup("anthropic", "claude-sonnet-4-5").unwrap();
        assert_eq!(p.cost(&usage(1_000, 500, 200, 300)), Nanos(10_185_000));
        // claude-haiku-4-5: 10 in, 10 out = 10 x $1 + 10 x $5 per 1M = $0.00006
        let p = lookup("anthropic", "claude-haiku-4-5-20251001").unwrap();
        assert_eq!(p.cost(&usage(10, 10, 0, 0)), Nanos(60_000));
        // o3 reasoning tokens are billed as output (they are inside output_tokens)
        let p = lookup("openai", "o3").unwrap();
        assert_eq!(p.cost(&usage(0, 1_000, 0, 0)), Nanos(8_000_000));
    }
}
