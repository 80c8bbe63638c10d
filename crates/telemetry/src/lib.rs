//! Metric definitions, and trace export over OTLP.
//!
//! Role: every Prometheus metric the gateway exports, in one registry, with
//! labels kept low-cardinality by construction: alias and deployment names
//! come from configuration (client-chosen `provider/<model>` names are folded
//! to `provider/*`), status as a class (`2xx`), errors as fixed class labels.
//! Never key ids, users or raw model strings from clients.

pub mod otlp;
pub mod tracer;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub alias: String,
    pub provider: String,
    pub deployment: String,
    pub status_class: &'static str,
    pub error_class: &'static str,
}

/// Labels of latency histograms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub route: &'static str,
    pub alias: String,
}

/// Labels by alias and provider.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub alias: String,
    pub provider: String,
}

/// Labels of token counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub alias: String,
    pub provider: String,
    /// `input`, `output`, `cached`.
    pub kind: &'static str,
}

/// Labels of upstream attempts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub deployment: String,
    /// `ok`, `error`, `cancelled`.
    pub outcome: &'static str,
    pub error_class: &'static str,
}

/// Labels by alias.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AliasLabels {
    pub alias: String,
}

/// Labels of fallbacks.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabels {
    pub alias: String,
    /// `general`, `context_window`, `content_policy`.
    pub kind: &'static str,
}

/// Labels of governance rejections.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    /// `key`, `team`, `user`, `end_user`.
    pub scope: &'static str,
}

/// Labels by deployment.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    pub deployment: String,
}

/// Labels by failure kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

/// Every metric, registered once.
pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<LatencyLabels, Histogram>,
    pub ttft: Family<ModelLabels, Histogram>,
    pub upstream_duration: Family<DeploymentLabels, Histogram>,
    pub overhead: Family<LatencyLabels, Histogram>,
    pub tokens: Family<TokenLabels, Counter>,
    pub cost_usd: Family<ModelLabels, Counter<f64, AtomicU64>>,
    pub attempts: Family<AttemptLabels, Counter>,
    pub retries: Family<AliasLabels, Counter>,
    pub fallbacks: Family<FallbackLabels, Counter>,
    pub hedges: Family<AliasLabels, Counter>,
    pub cache_hits: Family<AliasLabels, Counter>,
    pub rate_limited: Family<ScopeLabels, Counter>,
    pub budget_rejected: Family<ScopeLabels, Counter>,
    pub budget_alerts: Family<ScopeLabels, Counter>,
    pub shared_state_failures: Family<KindLabels, Counter>,
    pub circuit_state: Family<DeploymentLabels, Gauge>,
    pub in_flight: Gauge,
    /// Trace spans sent, dropped, and failed export requests.
    pub trace: tracer::TracerCounters,
    handles: HandleCache,
}

/// The series every finished request records for one route, alias and
/// provider, resolved once ([`Metrics::model_handles`]): recording a request
/// then hashes no label set and copies no label string. Each handle is the
/// family's own series (they share their counts), so the exposition is
/// unchanged; the series a request may not touch (time to first token,
/// tokens of a kind, cost) are created on first use, as before.
#[derive(Debug)]
pub struct ModelHandles {
    pub request_duration: Histogram,
    pub overhead: Histogram,
    alias: Box<str>,
    provider: Box<str>,
    ttft: OnceLock<Histogram>,
    tokens: [OnceLock<Counter>; 3],
    cost_usd: OnceLock<Counter<f64, AtomicU64>>,
}

/// Token kinds, in the order of [`ModelHandles::tokens`].
pub const TOKEN_KINDS: [&str; 3] = ["input", "output", "cached"];

impl ModelHandles {
    fn labels(&self) -> ModelLabels {
        model_labels(&self.alias, &self.provider)
    }

    /// Time to first token (streams).
    pub fn ttft(&self, m: &Metrics) -> &Histogram {
        self.ttft
            .get_or_init(|| m.ttft.get_or_create(&self.labels()).clone())
    }

    /// Tokens of `TOKEN_KINDS[kind]`.
    pub fn tokens(&self, m: &Metrics, kind: usize) -> &Counter {
        self.tokens[kind].get_or_init(|| {
            m.tokens
                .get_or_create(&TokenLabels {
                    alias: self.alias.to_string(),
                    provider: self.provider.to_string(),
                    kind: TOKEN_KINDS[kind],
                })
                .clone()
        })
    }

    /// Cost in USD.
    pub fn cost_usd(&self, m: &Metrics) -> &Counter<f64, AtomicU64> {
        self.cost_usd
            .get_or_init(|| m.cost_usd.get_or_create(&self.labels()).clone())
    }
}

/// A route, a provider and their handles.
type ModelEntry = (&'static str, Box<str>, Arc<ModelHandles>);

/// Resolved handles. Families never forget a series, so neither does this;
/// its keys are the families' own (alias and deployment names from the
/// configuration), so it is exactly as bounded as they are. The locks are
/// never held across an await.
#[derive(Debug, Default)]
struct HandleCache {
    /// alias -> (route, provider, handles); a handful of entries per alias.
    models: RwLock<HashMap<Box<str>, Vec<ModelEntry>>>,
    /// deployment -> its upstream attempt latency series.
    upstream: RwLock<HashMap<Box<str>, Histogram>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency() -> Histogram {
    // 1 ms to ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn fine() -> Histogram {
    // 10 µs to ~40 ms, for the gateway's own overhead.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 13))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("modelgate");
        let requests = Family::default();
        registry.register("requests", "Client requests, by outcome", requests.clone());
        let request_duration =
            Family::<LatencyLabels, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        registry.register(
            "request_duration_seconds",
            "Total request latency",
            request_duration.clone(),
        );
        let ttft =
            Family::<ModelLabels, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        registry.register(
            "time_to_first_token_seconds",
            "Time to first content (streams)",
            ttft.clone(),
        );
        let upstream_duration = Family::<DeploymentLabels, Histogram>::new_with_constructor(
            latency as fn() -> Histogram,
        );
        registry.register(
            "upstream_duration_seconds",
            "Latency of each upstream attempt",
            upstream_duration.clone(),
        );
        let overhead =
            Family::<LatencyLabels, Histogram>::new_with_constructor(fine as fn() -> Histogram);
        registry.register(
            "overhead_seconds",
            "Gateway time outside upstream calls",
            overhead.clone(),
        );
        let tokens = Family::default();
        registry.register("tokens", "Tokens, by kind", tokens.clone());
        let cost_usd = Family::default();
        registry.register("cost_usd", "Cost in USD", cost_usd.clone());
        let attempts = Family::default();
        registry.register(
            "upstream_attempts",
            "Upstream attempts, by outcome",
            attempts.clone(),
        );
        let retries = Family::default();
        registry.register("retries", "Attempts after the first", retries.clone());
        let fallbacks = Family::default();
        registry.register(
            "fallbacks",
            "Switches to a fallback alias",
            fallbacks.clone(),
        );
        let hedges = Family::default();
        registry.register("hedges", "Hedged second attempts", hedges.clone());
        let cache_hits = Family::default();
        registry.register(
            "cache_hits",
            "Responses served from the cache",
            cache_hits.clone(),
        );
        let rate_limited = Family::default();
        registry.register(
            "rate_limited",
            "Requests refused by a gateway rate limit",
            rate_limited.clone(),
        );
        let budget_rejected = Family::default();
        registry.register(
            "budget_rejected",
            "Requests refused by a budget",
            budget_rejected.clone(),
        );
        let budget_alerts = Family::default();
        registry.register(
            "budget_alerts",
            "Soft budget thresholds crossed",
            budget_alerts.clone(),
        );
        let shared_state_failures = Family::default();
        registry.register(
            "shared_state_failures",
            "Redis calls that failed",
            shared_state_failures.clone(),
        );
        let circuit_state = Family::default();
        registry.register(
            "circuit_state",
            "Deployment breaker: 0 closed, 1 half-open, 2 open",
            circuit_state.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight_requests",
            "Requests being served",
            in_flight.clone(),
        );
        let trace = tracer::TracerCounters::default();
        registry.register(
            "trace_spans_exported",
            "Spans accepted by the OTLP collector",
            trace.exported.clone(),
        );
        registry.register(
            "trace_spans_dropped",
            "Spans dropped (export queue full or the collector failed)",
            trace.dropped.clone(),
        );
        registry.register(
            "trace_export_failures",
            "OTLP export requests that failed",
            trace.failed_exports.clone(),
        );
        Metrics {
            registry,
            trace,
            handles: HandleCache::default(),
            requests,
            request_duration,
            ttft,
            upstream_duration,
            overhead,
            tokens,
            cost_usd,
            attempts,
            retries,
            fallbacks,
            hedges,
            cache_hits,
            rate_limited,
            budget_rejected,
            budget_alerts,
            shared_state_failures,
            circuit_state,
            in_flight,
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Redacts what must not be stored from captured payloads: secrets (API
/// keys, bearer tokens, AWS access key ids), e-mail addresses, and long digit
/// runs (card or account numbers).
pub fn redact(text: &str) -> String {
    use std::sync::OnceLock;
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    let patterns = redaction_patterns(&PATTERNS);
    let mut out = text.to_owned();
    for (re, with) in patterns {
        if re.is_match(&out) {
            out = re.replace_all(&out, *with).into_owned();
        }
    }
    out
}

type Patterns = Vec<(regex::Regex, &'static str)>;

fn redaction_patterns(cell: &'static std::sync::OnceLock<Patterns>) -> &'static Patterns {
    cell.get_or_init(|| {
        [
            (r"sk-[A-Za-z0-9_\-]{16,}", "[secret]"),
            (
                r"[Bb][Ee][Aa][Rr][Ee][Rr][ \t]+[A-Za-z0-9._\-]{16,}",
                "[secret]",
            ),
            (r"AKIA[0-9A-Z]{16}", "[secret]"),
            (
                r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}",
                "[email]",
            ),
            (r"[0-9](?:[ \-]?[0-9]){12,18}", "[number]"),
        ]
        .into_iter()
        .filter_map(|(p, r)| regex::Regex::new(p).ok().map(|re| (re, r)))
        .collect()
    })
}

/// `2xx`, `4xx`, `5xx`, or `499`-style codes as their class.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl Metrics {
    /// The series a request on `route` for `alias`, served by `provider`,
    /// records (created on first use).
    pub fn model_handles(
        &self,
        route: &'static str,
        alias: &str,
        provider: &str,
    ) -> Arc<ModelHandles> {
        let find = |v: &[ModelEntry]| {
            v.iter()
                .find(|(r, p, _)| *r == route && &**p == provider)
                .map(|(_, _, h)| h.clone())
        };
        if let Ok(map) = self.handles.models.read()
            && let Some(h) = map.get(alias).and_then(|v| find(v))
        {
            return h;
        }
        let made = Arc::new(ModelHandles {
            request_duration: self
                .request_duration
                .get_or_create(&LatencyLabels {
                    route,
                    alias: alias.to_owned(),
                })
                .clone(),
            overhead: self
                .overhead
                .get_or_create(&LatencyLabels {
                    route,
                    alias: alias.to_owned(),
                })
                .clone(),
            alias: alias.into(),
            provider: provider.into(),
            ttft: OnceLock::new(),
            tokens: Default::default(),
            cost_usd: OnceLock::new(),
        });
        let Ok(mut map) = self.handles.models.write() else {
            return made;
        };
        let entries = map.entry(alias.into()).or_default();
        if let Some(h) = find(entries) {
            return h;
        }
        entries.push((route, provider.into(), made.clone()));
        made
    }

    /// The upstream attempt latency series of `deployment`.
    pub fn upstream_duration_of(&self, deployment: &str) -> Histogram {
        if let Ok(map) = self.handles.upstream.read()
            && let Some(h) = map.get(deployment)
        {
            return h.clone();
        }
        let h = self
            .upstream_duration
            .get_or_create(&DeploymentLabels {
                deployment: deployment.to_owned(),
            })
            .clone();
        if let Ok(mut map) = self.handles.upstream.write() {
            map.entry(deployment.into()).or_insert_with(|| h.clone());
        }
        h
    }
}

fn model_labels(alias: &str, provider: &str) -> ModelLabels {
    ModelLabels {
        alias: alias.to_owned(),
        provider: provider.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_redaction_pattern_compiles() {
        static CELL: std::sync::OnceLock<Patterns> = std::sync::OnceLock::new();
        assert_eq!(redaction_patterns(&CELL).len(), 5);
    }

    #[test]
    fn redaction() {
        let t = redact(
            "mail ana@example.com, key sk-proj-abcdefghijklmnop1234 card 4111 1111 1111 1111 and AKIAABCDEFGHIJKLMNOP; Bearer abcdefghijklmnopqrstu ok 42",
        );
        assert_eq!(
            t,
            "mail [email], key [secret] card [number] and [secret]; [secret] ok 42"
        );
    }

    #[test]
    fn encodes_with_prefix_and_labels() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                route: "chat",
                alias: "gpt".into(),
                provider: "openai".into(),
                deployment: "a".into(),
                status_class: status_class(200),
                error_class: "",
            })
            .inc();
        let text = m.encode();
        assert!(
            text.contains("modelgate_requests_total{route=\"chat\",alias=\"gpt\""),
            "{text}"
        );
        assert!(text.contains("# EOF"));
    }

    #[test]
    fn resolved_handles_are_the_families_series() {
        let m = Metrics::new();
        let h = m.model_handles("chat", "gpt", "openai");
        assert!(Arc::ptr_eq(&h, &m.model_handles("chat", "gpt", "openai")));
        assert!(!Arc::ptr_eq(
            &h,
            &m.model_handles("chat", "gpt", "anthropic")
        ));
        assert!(!Arc::ptr_eq(
            &h,
            &m.model_handles("messages", "gpt", "openai")
        ));
        h.tokens(&m, 1).inc_by(7);
        m.model_handles("chat", "gpt", "openai")
            .tokens(&m, 1)
            .inc_by(5);
        h.cost_usd(&m).inc_by(0.25);
        h.request_duration.observe(0.002);
        m.upstream_duration_of("dep-a").observe(0.001);
        m.upstream_duration_of("dep-a").observe(0.001);
        let text = m.encode();
        assert!(
            text.contains(
                "modelgate_tokens_total{alias=\"gpt\",provider=\"openai\",kind=\"output\"} 12"
            ),
            "{text}"
        );
        assert!(
            text.contains("modelgate_cost_usd_total{alias=\"gpt\",provider=\"openai\"} 0.25"),
            "{text}"
        );
        assert!(
            text.contains(
                "modelgate_request_duration_seconds_count{route=\"chat\",alias=\"gpt\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("modelgate_upstream_duration_seconds_count{deployment=\"dep-a\"} 2"),
            "{text}"
        );
        // Series nothing recorded into are not exported.
        assert!(!text.contains("kind=\"cached\""), "{text}");
        assert!(!text.contains("time_to_first_token"), "{text}");
    }
}
