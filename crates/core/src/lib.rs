//! Provider-neutral core types.
//!
//! Role: the vocabulary every other crate shares: token [`Usage`], money as
//! integer nano-dollars ([`Nanos`]), [`Price`]s, and the low-cardinality
//! [`ErrorClass`] used in logs, metrics and status mapping.
//!
//! Must not depend on: tokio, HTTP stacks, databases. Money is never a float.

use serde::{Deserialize, Serialize};

pub mod time;

/// Money in nano-dollars (1 USD = 1_000_000_000). Integer so sums are exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Nanos(pub i64);

impl Nanos {
    /// Renders as a decimal USD amount with nine fractional digits trimmed of trailing zeros.
    pub fn to_usd_string(self) -> String {
        let mut s = String::with_capacity(24);
        self.write_usd(&mut s);
        s
    }

    /// Appends [`Nanos::to_usd_string`]'s rendering to `out` (no formatting
    /// machinery: this runs on every response and every log record).
    pub fn write_usd(self, out: &mut String) {
        let abs = self.0.unsigned_abs();
        if self.0 < 0 {
            out.push('-');
        }
        let mut buf = itoa::Buffer::new();
        out.push_str(buf.format(abs / 1_000_000_000));
        let frac = abs % 1_000_000_000;
        if frac != 0 {
            // Nine digits, zero-padded, then trailing zeros trimmed.
            let digits = buf.format(frac);
            out.push('.');
            for _ in digits.len()..9 {
                out.push('0');
            }
            out.push_str(digits.trim_end_matches('0'));
        }
    }
}

/// Prices per one million tokens, in micro-dollars (so $2.50/1M = 2_500_000).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    /// Uncached input tokens.
    pub input_per_mtok: u64,
    /// Output tokens (reasoning included).
    pub output_per_mtok: u64,
    /// Input tokens read from the provider's prompt cache; defaults to the input price.
    pub cached_input_per_mtok: Option<u64>,
    /// Input tokens written to the provider's prompt cache; defaults to the input price.
    pub cache_write_per_mtok: Option<u64>,
    /// The dearer tier for long prompts: Google charges more for Gemini 2.5
    /// Pro prompts over 200k tokens, Anthropic for Claude Sonnet 4/4.5
    /// prompts over 200k (1M context), xAI for Grok 4 over 128k. The whole
    /// request — every input and output token — is charged at the tier
    /// when the prompt (`input_tokens`, cached parts included) exceeds
    /// `above`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long: Option<LongTier>,
}

/// [`Price::long`]: the rates that apply above a prompt size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LongTier {
    /// Prompts of more than this many input tokens use this tier.
    pub above: u64,
    pub input_per_mtok: u64,
    pub output_per_mtok: u64,
    /// Defaults to this tier's input price.
    pub cached_input_per_mtok: Option<u64>,
    /// Defaults to this tier's input price.
    pub cache_write_per_mtok: Option<u64>,
}

impl Price {
    /// Cost of `usage` at this price. Micro-dollars per 1M tokens equals
    /// pico-dollars per token, so the exact cost in nano-dollars is
    /// `tokens * price / 1000`, rounded up once at the end.
    pub fn cost(&self, usage: &Usage) -> Nanos {
        let b = self.breakdown(usage);
        let pico = b.input_pico + b.cache_read_pico + b.cache_write_pico + b.output_pico;
        Nanos(i64::try_from(pico.div_ceil(1000)).unwrap_or(i64::MAX))
    }

    /// The rates `(input, output, cache read, cache write)` for a prompt of
    /// `input_tokens`.
    fn rates(&self, input_tokens: u64) -> (u64, u64, u64, u64) {
        match self.long {
            Some(t) if input_tokens > t.above => (
                t.input_per_mtok,
                t.output_per_mtok,
                t.cached_input_per_mtok.unwrap_or(t.input_per_mtok),
                t.cache_write_per_mtok.unwrap_or(t.input_per_mtok),
            ),
            _ => (
                self.input_per_mtok,
                self.output_per_mtok,
                self.cached_input_per_mtok.unwrap_or(self.input_per_mtok),
                self.cache_write_per_mtok.unwrap_or(self.input_per_mtok),
            ),
        }
    }

    /// The dearest input and output rates at any prompt size (for worst-case
    /// estimates and cost ordering).
    pub fn max_rates(&self) -> (u64, u64) {
        let (i, o) = (self.input_per_mtok, self.output_per_mtok);
        match self.long {
            Some(t) => (i.max(t.input_per_mtok), o.max(t.output_per_mtok)),
            None => (i, o),
        }
    }

    /// The cost split by kind of token, in pico-dollars (exact).
    pub fn breakdown(&self, usage: &Usage) -> CostBreakdown {
        let (input, output, cache_read, cache_write) = self.rates(usage.input_tokens);
        let uncached = usage
            .input_tokens
            .saturating_sub(usage.cache_read_tokens)
            .saturating_sub(usage.cache_write_tokens);
        CostBreakdown {
            input_pico: u128::from(uncached) * u128::from(input),
            cache_read_pico: u128::from(usage.cache_read_tokens) * u128::from(cache_read),
            cache_write_pico: u128::from(usage.cache_write_tokens) * u128::from(cache_write),
            output_pico: u128::from(usage.output_tokens) * u128::from(output),
        }
    }
}

/// A request's cost by kind of token, in pico-dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostBreakdown {
    pub input_pico: u128,
    pub cache_read_pico: u128,
    pub cache_write_pico: u128,
    pub output_pico: u128,
}

impl CostBreakdown {
    /// `{"input":..,"cache_read":..,"cache_write":..,"output":..}` in USD.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(112);
        let fields = [
            ("{\"input_usd\":\"", self.input_pico),
            ("\",\"cache_read_usd\":\"", self.cache_read_pico),
            ("\",\"cache_write_usd\":\"", self.cache_write_pico),
            ("\",\"output_usd\":\"", self.output_pico),
        ];
        for (label, pico) in fields {
            s.push_str(label);
            Nanos(i64::try_from(pico.div_ceil(1000)).unwrap_or(i64::MAX)).write_usd(&mut s);
        }
        s.push_str("\"}");
        s
    }
}

/// Token counts of one request, provider-neutral.
///
/// `input_tokens` is the whole prompt, including cache reads and writes (the
/// OpenAI convention); the cache fields say how much of it was cached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    /// True when some counts are our estimate rather than the provider's report.
    pub estimated: bool,
}

/// Why a request failed, as a short fixed label (used in logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The client sent something malformed or unsupported.
    BadRequest,
    /// Missing or invalid gateway key.
    Unauthorized,
    /// The key may not use this model or route.
    Forbidden,
    /// Unknown model or route.
    NotFound,
    /// The change conflicts with what exists (a duplicate name).
    Conflict,
    /// A gateway rate limit (RPM, TPM, parallel requests) refused the request.
    RateLimited,
    /// A budget could not cover the request's worst-case cost.
    BudgetExceeded,
    /// Body over the configured limit.
    PayloadTooLarge,
    /// The upstream rejected the request as invalid (4xx other than auth/limits).
    UpstreamBadRequest,
    /// The upstream rejected the gateway's provider credentials.
    UpstreamAuth,
    /// The upstream rate-limited us (429).
    UpstreamRateLimited,
    /// The upstream failed (5xx, overloaded, malformed reply).
    UpstreamError,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// Connection to the upstream failed or was reset.
    UpstreamUnavailable,
    /// The stream broke after content reached the client.
    StreamInterrupted,
    /// The client went away before the response finished.
    ClientDisconnected,
    /// The gateway was shutting down and the drain deadline passed.
    ShuttingDown,
    /// A store the gateway needs for this request (shared limits) is unreachable.
    DependencyUnavailable,
    /// A bug or unexpected state inside the gateway.
    Internal,
}

impl ErrorClass {
    /// Every class (for mapping stored labels back).
    pub const ALL: [ErrorClass; 19] = [
        ErrorClass::BadRequest,
        ErrorClass::Unauthorized,
        ErrorClass::Forbidden,
        ErrorClass::NotFound,
        ErrorClass::Conflict,
        ErrorClass::RateLimited,
        ErrorClass::BudgetExceeded,
        ErrorClass::PayloadTooLarge,
        ErrorClass::UpstreamBadRequest,
        ErrorClass::UpstreamAuth,
        ErrorClass::UpstreamRateLimited,
        ErrorClass::UpstreamError,
        ErrorClass::UpstreamTimeout,
        ErrorClass::UpstreamUnavailable,
        ErrorClass::StreamInterrupted,
        ErrorClass::ClientDisconnected,
        ErrorClass::ShuttingDown,
        ErrorClass::DependencyUnavailable,
        ErrorClass::Internal,
    ];

    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::Unauthorized => "unauthorized",
            ErrorClass::Forbidden => "forbidden",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Conflict => "conflict",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::BudgetExceeded => "budget_exceeded",
            ErrorClass::PayloadTooLarge => "payload_too_large",
            ErrorClass::UpstreamBadRequest => "upstream_bad_request",
            ErrorClass::UpstreamAuth => "upstream_auth",
            ErrorClass::UpstreamRateLimited => "upstream_rate_limited",
            ErrorClass::UpstreamError => "upstream_error",
            ErrorClass::UpstreamTimeout => "upstream_timeout",
            ErrorClass::UpstreamUnavailable => "upstream_unavailable",
            ErrorClass::StreamInterrupted => "stream_interrupted",
            ErrorClass::ClientDisconnected => "client_disconnected",
            ErrorClass::ShuttingDown => "shutting_down",
            ErrorClass::DependencyUnavailable => "dependency_unavailable",
            ErrorClass::Internal => "internal",
        }
    }

    /// Whether another attempt (same or other deployment) may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::UpstreamRateLimited
                | ErrorClass::UpstreamError
                | ErrorClass::UpstreamTimeout
                | ErrorClass::UpstreamUnavailable
        )
    }
}

/// Rough token estimate for text we have not had counted by a provider:
/// about four characters per token, never zero for non-empty text.
pub fn estimate_tokens(text_len: usize) -> u64 {
    (text_len as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_exact_integer_math() {
        let p = Price {
            input_per_mtok: 2_500_000,
            output_per_mtok: 10_000_000,
            cached_input_per_mtok: Some(1_250_000),
            cache_write_per_mtok: None,
            long: None,
        };
        let u = Usage {
            input_tokens: 1_000,
            output_tokens: 500,
            cache_read_tokens: 400,
            ..Usage::default()
        };
        // 600 * 2.5e-6 + 400 * 1.25e-6 + 500 * 1e-5 = 0.0015 + 0.0005 + 0.005 = 0.007 USD
        assert_eq!(p.cost(&u), Nanos(7_000_000));
        assert_eq!(p.cost(&u).to_usd_string(), "0.007");
    }

    #[test]
    fn long_prompts_are_charged_at_the_long_tier() {
        // Gemini 2.5 Pro: $1.25/$10 up to 200k prompt tokens, $2.50/$15 above.
        let p = Price {
            input_per_mtok: 1_250_000,
            output_per_mtok: 10_000_000,
            cached_input_per_mtok: Some(125_000),
            cache_write_per_mtok: None,
            long: Some(LongTier {
                above: 200_000,
                input_per_mtok: 2_500_000,
                output_per_mtok: 15_000_000,
                cached_input_per_mtok: Some(250_000),
                cache_write_per_mtok: None,
            }),
        };
        let at = |input_tokens, cache_read_tokens| Usage {
            input_tokens,
            output_tokens: 1_000,
            cache_read_tokens,
            ..Usage::default()
        };
        // Exactly 200k is still the base tier: 0.25 + 0.01.
        assert_eq!(p.cost(&at(200_000, 0)), Nanos(260_000_000));
        // One more token and every token moves: 200_001 * 2.5e-6 + 1000 * 1.5e-5.
        assert_eq!(p.cost(&at(200_001, 0)), Nanos(500_002_500 + 15_000_000));
        // Cached tokens count toward the threshold and get the tier's cache rate.
        assert_eq!(
            p.cost(&at(300_000, 100_000)),
            Nanos(500_000_000 + 25_000_000 + 15_000_000)
        );
        assert_eq!(p.max_rates(), (2_500_000, 15_000_000));
    }

    #[test]
    fn usd_string() {
        assert_eq!(Nanos(0).to_usd_string(), "0");
        assert_eq!(Nanos(1).to_usd_string(), "0.000000001");
        assert_eq!(Nanos(1_500_000_000).to_usd_string(), "1.5");
        assert_eq!(Nanos(-20).to_usd_string(), "-0.00000002");
        assert_eq!(Nanos(i64::MIN).to_usd_string(), "-9223372036.854775808");
        assert_eq!(Nanos(120_000_000_000).to_usd_string(), "120");
        assert_eq!(Nanos(100_000_000).to_usd_string(), "0.1");
    }

    #[test]
    fn breakdown_json() {
        let b = CostBreakdown {
            input_pico: 1_050_000,
            cache_read_pico: 0,
            cache_write_pico: 1,
            output_pico: 2_000_000_000_000,
        };
        let j: serde_json::Value = serde_json::from_str(&b.to_json()).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"input_usd": "0.00000105", "cache_read_usd": "0",
                "cache_write_usd": "0.000000001", "output_usd": "2"})
        );
    }
}
