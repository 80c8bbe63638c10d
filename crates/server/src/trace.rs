//! Distributed tracing: the request's W3C trace context, and the spans a
//! settled request becomes.
//!
//! Each request joins the client's trace (from `traceparent`) or starts one.
//! When the trace is recorded (see [`modelgate_telemetry::tracer::Tracer::sample`]),
//! settlement exports one SERVER span for the request and one CLIENT span per
//! upstream attempt, its child, carrying OpenTelemetry GenAI attributes. Each
//! attempt's span id is the parent the upstream sees in its own `traceparent`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use modelgate_codec::openai::ResponseFacts;
use modelgate_providers::TraceParent;
use modelgate_store::RequestRecord;
use modelgate_telemetry::otlp::{Span, SpanKind, SpanStatus, Value};
use modelgate_telemetry::tracer::Tracer;

use crate::dispatch::AttemptLog;

/// The trace a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    /// The client's span, the parent of ours, when it sent `traceparent`.
    pub parent: Option<u64>,
    /// The request's own span.
    pub span_id: u64,
    /// Spans are recorded and exported.
    pub recorded: bool,
    /// The sampled flag passed upstream.
    pub sampled: bool,
}

impl TraceContext {
    /// Reads `traceparent` (<https://www.w3.org/TR/trace-context/#traceparent-header>);
    /// a missing or malformed header starts a new trace.
    pub fn from_headers(headers: &HeaderMap, tracer: Option<&Tracer>) -> TraceContext {
        let incoming = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent);
        let (trace_id, parent, parent_sampled) = match incoming {
            Some((t, p, s)) => (t, Some(p), Some(s)),
            None => (fastrand::u128(1..), None, None),
        };
        let recorded = tracer.is_some_and(|t| t.sample(trace_id, parent_sampled));
        TraceContext {
            trace_id,
            parent,
            span_id: fastrand::u64(1..),
            recorded,
            // With tracing on, upstreams learn our decision; otherwise the
            // client's flag passes through (new traces say "sampled").
            sampled: if tracer.is_some() {
                recorded
            } else {
                parent_sampled.unwrap_or(true)
            },
        }
    }

    /// What upstream requests carry.
    pub fn upstream(&self) -> TraceParent {
        TraceParent {
            trace_id: self.trace_id,
            sampled: self.sampled,
        }
    }
}

/// `(trace id, parent span id, sampled)` of a valid version-00-compatible header.
fn parse_traceparent(v: &str) -> Option<(u128, u64, bool)> {
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    let mut parts = v.trim().split('-');
    let (ver, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    // Version 00 has exactly four fields; later versions may append more.
    if !hex(ver, 2) || ver == "ff" || (ver == "00" && parts.next().is_some()) {
        return None;
    }
    if !hex(trace, 32) || !hex(parent, 16) || !hex(flags, 2) {
        return None;
    }
    let trace = u128::from_str_radix(trace, 16).ok().filter(|t| *t != 0)?;
    let parent = u64::from_str_radix(parent, 16).ok().filter(|p| *p != 0)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace, parent, flags & 1 == 1))
}

/// The `gen_ai.provider.name` of a provider kind (the GenAI semantic
/// conventions' well-known values where one exists).
fn provider_name(kind: &str) -> &str {
    match kind {
        "bedrock" => "aws.bedrock",
        "gemini" => "gcp.gemini",
        "vertex" => "gcp.vertex_ai",
        "azure" => "azure.ai.openai",
        "mistral" => "mistral_ai",
        other => other,
    }
}

/// Merges what one response body or chunk says into `into`.
pub fn merge_facts(into: &mut Option<ResponseFacts>, data: &[u8]) {
    let Some(f) = modelgate_codec::openai::response_facts(data) else {
        return;
    };
    let acc = into.get_or_insert_with(ResponseFacts::default);
    if acc.id.is_none() {
        acc.id = f.id;
    }
    if acc.model.is_none() {
        acc.model = f.model;
    }
    acc.finish_reasons.extend(f.finish_reasons);
}

/// Wall-clock nanoseconds of a monotonic instant, given one pair of both.
fn unix_ns(anchor: (Instant, u64), at: Instant) -> u64 {
    let (mono, wall) = anchor;
    match at.checked_duration_since(mono) {
        Some(d) => wall.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        None => wall.saturating_sub(
            u64::try_from(mono.saturating_duration_since(at).as_nanos()).unwrap_or(u64::MAX),
        ),
    }
}

/// Now, in Unix nanoseconds.
pub fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What a settled request knows, for its spans.
pub struct Settled<'a> {
    pub ctx: TraceContext,
    pub rec: &'a RequestRecord,
    pub attempts: &'a [AttemptLog],
    /// When the request arrived (monotonic, Unix ns).
    pub started: (Instant, u64),
    pub ended: Instant,
    pub facts: Option<&'a ResponseFacts>,
}

/// The request span and its attempt spans.
pub fn spans(s: &Settled<'_>) -> Vec<Span> {
    let rec = s.rec;
    let (operation, path) = match rec.route.as_str() {
        "embeddings" => ("embeddings", "/v1/embeddings"),
        "messages" => ("chat", "/v1/messages"),
        "responses" => ("chat", "/v1/responses"),
        "completions" => ("text_completion", "/v1/completions"),
        _ => ("chat", "/v1/chat/completions"),
    };
    let end = unix_ns(s.started, s.ended);
    let mut root = Span {
        trace_id: s.ctx.trace_id,
        span_id: s.ctx.span_id,
        parent_span_id: s.ctx.parent,
        name: format!("POST {path}"),
        kind: SpanKind::Server,
        start_unix_ns: s.started.1,
        end_unix_ns: end,
        attributes: Vec::with_capacity(24),
        status: SpanStatus::Unset,
    };
    root.attr("http.request.method", "POST");
    root.attr("http.route", path);
    root.attr("http.response.status_code", i64::from(rec.status));
    root.attr("gen_ai.operation.name", operation);
    root.attr("modelgate.request_id", rec.id.as_str());
    if !rec.requested_model.is_empty() {
        root.attr("gen_ai.request.model", rec.requested_model.as_str());
    }
    if let Some(p) = &rec.provider {
        root.attr("gen_ai.provider.name", provider_name(p));
    }
    if let Some(d) = &rec.deployment {
        root.attr("modelgate.deployment", d.as_str());
    }
    root.attr("modelgate.attempts", u64::from(rec.attempt_count));
    root.attr("modelgate.stream", rec.stream);
    if let Some(k) = &rec.key_id {
        root.attr("modelgate.key_id", k.as_str());
    }
    if let Some(t) = &rec.team_id {
        root.attr("modelgate.team_id", t.as_str());
    }
    if let Some(c) = rec.cost_nanos {
        root.attr("modelgate.cost_usd", c as f64 / 1e9);
    }
    let served = rec.status == 200 || rec.status == crate::settle::CLIENT_CLOSED;
    if served && rec.provider.is_some() {
        response_attrs(&mut root, rec, s.facts);
    }
    if let Some(class) = &rec.error_class {
        root.attr("error.type", class.as_str());
        // Server spans are errors for 5xx and for streams that broke.
        if rec.status >= 500 || rec.status == 200 {
            root.status = SpanStatus::Error(rec.error_message.clone().unwrap_or_default());
        }
    }
    let mut out = Vec::with_capacity(1 + s.attempts.len());
    let winner = s.attempts.iter().rposition(|a| a.outcome == "ok");
    for (i, a) in s.attempts.iter().enumerate() {
        let Some(d) = &a.target else { continue };
        let start = a.started.map_or(s.started.1, |t| unix_ns(s.started, t));
        let mut end = start.saturating_add(a.latency_us.saturating_mul(1000));
        // The winning stream's attempt lasts until the stream ended.
        if Some(i) == winner && rec.stream {
            end = end.max(root.end_unix_ns);
        }
        let mut span = Span {
            trace_id: s.ctx.trace_id,
            span_id: a.span_id,
            parent_span_id: Some(s.ctx.span_id),
            name: format!("{operation} {}", d.upstream_model),
            kind: SpanKind::Client,
            start_unix_ns: start,
            end_unix_ns: end,
            attributes: Vec::with_capacity(16),
            status: SpanStatus::Unset,
        };
        span.attr("gen_ai.operation.name", operation);
        span.attr("gen_ai.provider.name", provider_name(d.provider_name()));
        span.attr("gen_ai.request.model", d.upstream_model.as_str());
        if let Some((host, port)) = host_port(&d.base_url) {
            span.attr("server.address", host);
            if let Some(port) = port {
                span.attr("server.port", i64::from(port));
            }
        }
        span.attr("modelgate.deployment", d.name.as_str());
        span.attr("modelgate.attempt", (i + 1) as u64);
        span.attr("modelgate.outcome", a.outcome);
        if a.hedge {
            span.attr("modelgate.hedge", true);
        }
        if let Some(class) = a.error_class {
            span.attr("error.type", class);
            span.status = SpanStatus::Error(class.to_owned());
        }
        if Some(i) == winner && served {
            response_attrs(&mut span, rec, s.facts);
        }
        out.push(span);
    }
    out.insert(0, root);
    out
}

fn response_attrs(span: &mut Span, rec: &RequestRecord, facts: Option<&ResponseFacts>) {
    span.attr("gen_ai.usage.input_tokens", rec.input_tokens);
    span.attr("gen_ai.usage.output_tokens", rec.output_tokens);
    if rec.cached_tokens > 0 {
        span.attr("gen_ai.usage.cache_read.input_tokens", rec.cached_tokens);
    }
    if rec.cache_write_tokens > 0 {
        span.attr(
            "gen_ai.usage.cache_creation.input_tokens",
            rec.cache_write_tokens,
        );
    }
    if rec.usage_estimated {
        span.attr("modelgate.usage_estimated", true);
    }
    if let Some(f) = facts {
        if let Some(id) = &f.id {
            span.attr("gen_ai.response.id", id.as_str());
        }
        if let Some(m) = &f.model {
            span.attr("gen_ai.response.model", m.as_str());
        }
        if !f.finish_reasons.is_empty() {
            span.attr(
                "gen_ai.response.finish_reasons",
                Value::StrArray(f.finish_reasons.clone()),
            );
        }
    }
}

/// Host and explicit port of an `http(s)://host[:port]/...` URL.
fn host_port(url: &str) -> Option<(&str, Option<u16>)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit('@').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h, p.parse().ok())),
        None => Some((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemini_deployments_are_named_by_the_semantic_conventions() {
        assert_eq!(
            provider_name(modelgate_config::ProviderKind::Gemini.as_str()),
            "gcp.gemini"
        );
        assert_eq!(provider_name("anthropic"), "anthropic");
    }

    #[test]
    fn traceparent_parsing_follows_the_spec() {
        let ok = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(
            parse_traceparent(ok),
            Some((0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331, true))
        );
        let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        assert_eq!(parse_traceparent(unsampled).map(|t| t.2), Some(false));
        // A future version may carry more fields.
        assert!(parse_traceparent(&format!("01-{}-x", &ok[3..])).is_some());
        for bad in [
            "garbage",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn without_a_tracer_the_clients_flag_passes_through() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
                .parse()
                .unwrap(),
        );
        let ctx = TraceContext::from_headers(&h, None);
        assert_eq!(ctx.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(ctx.parent, Some(0xb7ad6b7169203331));
        assert!(!ctx.recorded && !ctx.sampled);
        let header = ctx.upstream().header(ctx.span_id);
        assert!(header.starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
        assert!(header.ends_with("-00"));
        assert_ne!(&header[36..52], "b7ad6b7169203331");
        let fresh = TraceContext::from_headers(&HeaderMap::new(), None);
        assert!(fresh.parent.is_none() && fresh.sampled);
    }

    #[test]
    fn hosts_and_ports_are_read_from_base_urls() {
        assert_eq!(
            host_port("https://api.openai.com/v1"),
            Some(("api.openai.com", None))
        );
        assert_eq!(
            host_port("http://127.0.0.1:8080/v1"),
            Some(("127.0.0.1", Some(8080)))
        );
        assert_eq!(host_port("http://[::1]:9/x"), Some(("::1", Some(9))));
        assert_eq!(host_port("mock://x"), None);
    }

    #[test]
    fn wall_clock_offsets_follow_the_monotonic_clock() {
        let t0 = Instant::now();
        let later = t0 + std::time::Duration::from_millis(5);
        assert_eq!(unix_ns((t0, 1_000_000_000), later), 1_005_000_000);
        assert_eq!(unix_ns((later, 1_000_000_000), t0), 995_000_000);
    }
}
