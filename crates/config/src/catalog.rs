//! The checked-in price catalog (`catalog/prices.json`), versioned in the
//! repository. A deployment's own `price:` overrides it.
//!
//! Lookup is by provider and upstream model (or the deployment's
//! `catalog_model`): an exact match first, then the longest catalog name
//! that the model starts with followed by `-` or `@` (so dated snapshots such
//! as `gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929` or Vertex's
//! `claude-sonnet-4-5@20250929` find `gpt-4o` / `claude-sonnet-4-5`).
//! `openai_compatible` deployments have no catalog prices (they depend on
//! the host) unless they use a preset (`groq`, `mistral`, ...), which has its
//! own table. Azure OpenAI uses OpenAI's table: Azure's global deployments
//! are priced like OpenAI's API (data-zone and regional deployments cost
//! more: set `price:` there).
//!
//! A row may carry a long-context tier (`long`: the rates for prompts over
//! `above` tokens, e.g. Gemini 2.5 Pro over 200k) and a regional premium
//! (`regional_premium_pct`: Anthropic's models from the 4.5 generation on
//! cost 10% more on Vertex AI's regional endpoints than on `global`).
//! Bedrock rows are us-east-1 on-demand prices, keyed by the exact model or
//! inference-profile id (`global.` / `us.` profiles of the 4.5 generation
//! differ by that same 10%).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use modelgate_core::{LongTier, Price};
use serde::Deserialize;

const RAW: &str = include_str!("../catalog/prices.json");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: String,
    #[allow(dead_code)]
    unit: String,
    #[allow(dead_code)]
    note: String,
    providers: BTreeMap<String, BTreeMap<String, Entry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    input: f64,
    output: f64,
    #[serde(default)]
    cached_input: Option<f64>,
    #[serde(default)]
    cache_write: Option<f64>,
    #[serde(default)]
    long: Option<LongEntry>,
    #[serde(default)]
    regional_premium_pct: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LongEntry {
    above: u64,
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

/// A catalog row: the price, and the premium a regional endpoint adds.
#[derive(Clone, Copy)]
struct Row {
    price: Price,
    regional_premium_pct: u64,
}

struct Catalog {
    version: String,
    prices: BTreeMap<String, BTreeMap<String, Row>>,
}

fn row(e: Entry) -> Row {
    Row {
        price: Price {
            input_per_mtok: micros(e.input),
            output_per_mtok: micros(e.output),
            cached_input_per_mtok: e.cached_input.map(micros),
            cache_write_per_mtok: e.cache_write.map(micros),
            long: e.long.map(|l| LongTier {
                above: l.above,
                input_per_mtok: micros(l.input),
                output_per_mtok: micros(l.output),
                cached_input_per_mtok: l.cached_input.map(micros),
                cache_write_per_mtok: l.cache_write.map(micros),
            }),
        },
        regional_premium_pct: e.regional_premium_pct.unwrap_or(0),
    }
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        // The file is compiled in and covered by a test, so it parses.
        let file: File = serde_json::from_str(RAW).unwrap_or(File {
            version: "invalid".into(),
            unit: String::new(),
            note: String::new(),
            providers: BTreeMap::new(),
        });
        Catalog {
            version: file.version,
            prices: file
                .providers
                .into_iter()
                .map(|(p, models)| (p, models.into_iter().map(|(m, e)| (m, row(e))).collect()))
                .collect(),
        }
    })
}

/// The catalog's version string.
pub fn version() -> &'static str {
    &catalog().version
}

/// The catalog price of `model` at `provider`, if listed (a global or
/// unregioned endpoint).
pub fn lookup(provider: &str, model: &str) -> Option<Price> {
    lookup_at(provider, model, false)
}

/// [`lookup`], with the row's premium added when the model is served from a
/// regional endpoint (`regional`: a Vertex AI location other than `global`).
pub fn lookup_at(provider: &str, model: &str, regional: bool) -> Option<Price> {
    // Azure's global deployments are priced like OpenAI's API.
    let table = if provider == "azure" {
        "openai"
    } else {
        provider
    };
    let models = catalog().prices.get(table)?;
    let row = models.get(model).or_else(|| models.get("*")).or_else(|| {
        models
            .iter()
            .filter(|(name, _)| {
                model.len() > name.len()
                    && model.starts_with(name.as_str())
                    && matches!(model.as_bytes()[name.len()], b'-' | b'@')
            })
            .max_by_key(|(name, _)| name.len())
            .map(|(_, r)| r)
    })?;
    Some(if regional && row.regional_premium_pct > 0 {
        with_premium(row.price, row.regional_premium_pct)
    } else {
        row.price
    })
}

/// Every rate raised by `pct` percent (rounded to the micro-dollar).
fn with_premium(p: Price, pct: u64) -> Price {
    let up = |v: u64| (u128::from(v) * u128::from(100 + pct)).div_ceil(100) as u64;
    Price {
        input_per_mtok: up(p.input_per_mtok),
        output_per_mtok: up(p.output_per_mtok),
        cached_input_per_mtok: p.cached_input_per_mtok.map(up),
        cache_write_per_mtok: p.cache_write_per_mtok.map(up),
        long: p.long.map(|t| LongTier {
            above: t.above,
            input_per_mtok: up(t.input_per_mtok),
            output_per_mtok: up(t.output_per_mtok),
            cached_input_per_mtok: t.cached_input_per_mtok.map(up),
            cache_write_per_mtok: t.cache_write_per_mtok.map(up),
        }),
    }
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

    #[test]
    fn every_row_is_a_sane_price() {
        for (provider, models) in &catalog().prices {
            for (model, row) in models {
                let p = row.price;
                // Nothing dearer than $200 per 1M tokens is sold today; a
                // larger number is a typo (per-1K or per-token units).
                for rate in [p.input_per_mtok, p.output_per_mtok]
                    .into_iter()
                    .chain(p.cached_input_per_mtok)
                    .chain(p.cache_write_per_mtok)
                {
                    assert!(rate <= 200_000_000, "{provider}/{model}: {rate}");
                }
                if let Some(c) = p.cached_input_per_mtok {
                    assert!(
                        c <= p.input_per_mtok,
                        "{provider}/{model}: cache reads cost more"
                    );
                }
                if let Some(t) = p.long {
                    assert!(t.above >= 32_000, "{provider}/{model}");
                    assert!(t.input_per_mtok >= p.input_per_mtok, "{provider}/{model}");
                    assert!(t.output_per_mtok >= p.output_per_mtok, "{provider}/{model}");
                }
            }
        }
    }

    #[test]
    fn provider_specific_rules() {
        // Vertex: `@version` snapshots find their family; the 4.5 generation
        // costs 10% more on regional endpoints, older models do not.
        let global = lookup_at("vertex", "claude-sonnet-4-5@20250929", false).unwrap();
        let regional = lookup_at("vertex", "claude-sonnet-4-5@20250929", true).unwrap();
        assert_eq!(global.input_per_mtok, 3_000_000);
        assert_eq!(regional.input_per_mtok, 3_300_000);
        assert_eq!(regional.output_per_mtok, 16_500_000);
        assert_eq!(regional.cached_input_per_mtok, Some(330_000));
        assert_eq!(regional.long.unwrap().output_per_mtok, 24_750_000);
        assert_eq!(
            lookup_at("vertex", "claude-sonnet-4@20250514", true),
            lookup_at("vertex", "claude-sonnet-4@20250514", false)
        );
        // Bedrock: exact ids; the global profile is the list price.
        let b = lookup(
            "bedrock",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        )
        .unwrap();
        assert_eq!(b, lookup("anthropic", "claude-sonnet-4-5").unwrap());
        assert_eq!(
            lookup("bedrock", "us.anthropic.claude-haiku-4-5-20251001-v1:0")
                .unwrap()
                .input_per_mtok,
            1_100_000
        );
        assert!(lookup("bedrock", "eu.anthropic.claude-haiku-4-5-20251001-v1:0").is_none());
        // Azure deployments are priced from OpenAI's table.
        assert_eq!(lookup("azure", "gpt-4o"), lookup("openai", "gpt-4o"));
        // Presets have their own tables.
        assert_eq!(
            lookup("groq", "llama-3.3-70b-versatile")
                .unwrap()
                .input_per_mtok,
            590_000
        );
        assert!(lookup("deepseek", "deepseek-chat").is_some());
        // A dated OpenAI snapshot priced apart from its family wins over the prefix.
        assert_eq!(
            lookup("openai", "gpt-4o-2024-05-13")
                .unwrap()
                .input_per_mtok,
            5_000_000
        );
        assert_eq!(
            lookup("openai", "gpt-5-pro").unwrap().input_per_mtok,
            15_000_000
        );
        assert_eq!(
            lookup("openai", "gpt-5-2025-08-07").unwrap().input_per_mtok,
            1_250_000
        );
    }

    #[test]
    fn long_prompts_cost_the_long_tier() {
        let p = lookup("gemini", "gemini-2.5-pro").unwrap();
        // 250k prompt tokens + 1k output at $2.50 / $15.
        assert_eq!(
            p.cost(&usage(250_000, 1_000, 0, 0)),
            Nanos(625_000_000 + 15_000_000)
        );
        assert_eq!(
            p.cost(&usage(100_000, 1_000, 0, 0)),
            Nanos(125_000_000 + 10_000_000)
        );
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
