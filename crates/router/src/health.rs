//! Per-deployment health: in-flight count, TTFT statistics, breaker, cooldowns.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use modelgate_config::RouterConfig;
use tokio::time::Instant;

/// Breaker state of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Taking traffic.
    Closed,
    /// Out of rotation until the instant; then one probe.
    Open { until: Instant },
    /// Cooldown over: one probe may run; its outcome closes or re-opens.
    HalfOpen { probing: bool },
}

/// How an attempt on a deployment ended, for its health record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Content arrived (or the response was complete) after `ttft`.
    Success { ttft: Duration },
    /// The deployment failed (5xx, timeout, connection, bad credentials).
    Failure,
    /// The deployment said "slow down" (429): kept out until `retry_after` passes.
    RateLimited { retry_after: Option<Duration> },
    /// Says nothing about the deployment (client error, cancelled, lost a hedge).
    Neutral,
}

/// What may limit a deployment besides its health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_concurrency: Option<u32>,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Estimated tokens per minute.
    pub tpm: Option<u64>,
    /// This request's estimated tokens (counted against `tpm`).
    pub tokens: u64,
}

impl Limits {
    /// The limits of `d` for a request of `tokens` estimated tokens.
    pub fn of(d: &modelgate_config::Deployment, tokens: u64) -> Limits {
        Limits {
            max_concurrency: d.max_concurrency,
            rpm: d.rpm,
            tpm: d.tpm,
            tokens,
        }
    }
}

impl From<Option<u32>> for Limits {
    fn from(max_concurrency: Option<u32>) -> Limits {
        Limits {
            max_concurrency,
            ..Limits::default()
        }
    }
}

/// Requests and tokens started in each of the last sixty seconds.
#[derive(Debug)]
struct Minute {
    origin: Option<Instant>,
    slots: [(u64, u32, u64); 60],
}

impl Default for Minute {
    fn default() -> Self {
        Minute {
            origin: None,
            slots: [(0, 0, 0); 60],
        }
    }
}

impl Minute {
    fn usage(&mut self, now: Instant) -> (u32, u64) {
        let second = self.second(now);
        self.slots
            .iter()
            .filter(|(s, _, _)| *s + 60 > second && *s <= second)
            .fold((0, 0), |(r, t), (_, sr, st)| (r + sr, t + st))
    }

    fn second(&mut self, now: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(now);
        // +1 so that slot 0 of a fresh window never counts as "current".
        now.saturating_duration_since(origin).as_secs() + 1
    }

    fn add(&mut self, now: Instant, tokens: u64) {
        let second = self.second(now);
        let slot = &mut self.slots[(second % 60) as usize];
        if slot.0 != second {
            *slot = (second, 0, 0);
        }
        slot.1 += 1;
        slot.2 += tokens;
    }

    fn fits(&mut self, now: Instant, limits: &Limits) -> bool {
        if limits.rpm.is_none() && limits.tpm.is_none() {
            return true;
        }
        let (requests, tokens) = self.usage(now);
        limits.rpm.is_none_or(|r| requests < r)
            && limits
                .tpm
                .is_none_or(|t| tokens == 0 || tokens + limits.tokens <= t)
    }
}

#[derive(Debug)]
struct Inner {
    minute: Minute,
    breaker: BreakerState,
    consecutive_failures: u32,
    /// Recent outcomes, true = failure.
    window: VecDeque<bool>,
    /// No request before this (upstream `Retry-After`).
    cooldown_until: Option<Instant>,
    ewma_ttft_us: Option<f64>,
    ttft_samples: VecDeque<u64>,
    /// Times the breaker opened (for metrics and tests).
    opened: u64,
}

/// Health of one deployment. Cheap to share; every method takes a short lock.
#[derive(Debug)]
pub struct Health {
    cfg: RouterConfig,
    in_flight: AtomicU32,
    inner: Mutex<Inner>,
}

/// Samples kept for the p95 of time to first token.
const TTFT_SAMPLES: usize = 128;
/// Weight of a new sample in the moving average.
const EWMA_ALPHA: f64 = 0.2;
/// Cooldown after a 429 without `Retry-After`.
const DEFAULT_429_COOLDOWN: Duration = Duration::from_secs(1);

impl Health {
    /// A healthy record.
    pub fn new(cfg: &RouterConfig) -> Health {
        Health {
            cfg: *cfg,
            in_flight: AtomicU32::new(0),
            inner: Mutex::new(Inner {
                minute: Minute::default(),
                breaker: BreakerState::Closed,
                consecutive_failures: 0,
                window: VecDeque::new(),
                cooldown_until: None,
                ewma_ttft_us: None,
                ttft_samples: VecDeque::new(),
                opened: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The breaker state as of `now` (an elapsed open breaker reads half-open).
    pub fn breaker(&self, now: Instant) -> BreakerState {
        let mut g = self.lock();
        refresh(&mut g, now);
        g.breaker
    }

    /// Times the breaker has opened.
    pub fn times_opened(&self) -> u64 {
        self.lock().opened
    }

    /// When the deployment's `Retry-After` cooldown ends, if one is pending.
    pub fn cooldown_until(&self, now: Instant) -> Option<Instant> {
        self.lock().cooldown_until.filter(|u| *u > now)
    }

    /// Whether a normal attempt may start now.
    pub fn is_available(&self, now: Instant, limits: impl Into<Limits>) -> bool {
        let limits = limits.into();
        if limits
            .max_concurrency
            .is_some_and(|m| self.in_flight() >= m)
        {
            return false;
        }
        let mut g = self.lock();
        refresh(&mut g, now);
        if g.cooldown_until.is_some_and(|u| u > now) || !g.minute.fits(now, &limits) {
            return false;
        }
        match g.breaker {
            BreakerState::Closed => true,
            BreakerState::HalfOpen { probing } => !probing,
            BreakerState::Open { .. } => false,
        }
    }

    /// When the deployment is next worth trying (for ordering unhealthy ones).
    pub fn available_at(&self, now: Instant) -> Instant {
        let mut g = self.lock();
        refresh(&mut g, now);
        let breaker = match g.breaker {
            BreakerState::Open { until } => until,
            _ => now,
        };
        breaker.max(g.cooldown_until.unwrap_or(now))
    }

    /// Moving average of time to first token, if any was observed.
    pub fn ewma_ttft(&self, _now: Instant) -> Option<Duration> {
        self.lock()
            .ewma_ttft_us
            .map(|us| Duration::from_micros(us as u64))
    }

    /// The 95th percentile of recent times to first token (needs 20 samples).
    pub fn p95_ttft(&self) -> Option<Duration> {
        let g = self.lock();
        if g.ttft_samples.len() < 20 {
            return None;
        }
        let mut v: Vec<u64> = g.ttft_samples.iter().copied().collect();
        v.sort_unstable();
        let idx = (v.len() * 95).div_ceil(100).saturating_sub(1);
        v.get(idx).map(|us| Duration::from_micros(*us))
    }

    /// Starts an attempt. `None` when the deployment must not be tried now: a
    /// pending `Retry-After` (always respected), or, unless `force`, an open
    /// breaker, a probe already running, or max concurrency reached.
    pub fn begin(
        self: &std::sync::Arc<Self>,
        now: Instant,
        limits: impl Into<Limits>,
        force: bool,
    ) -> Option<Attempt> {
        let limits = limits.into();
        let mut g = self.lock();
        refresh(&mut g, now);
        if g.cooldown_until.is_some_and(|u| u > now) {
            return None;
        }
        // The provider key's own quota: never exceeded, even when forced.
        if !g.minute.fits(now, &limits) {
            return None;
        }
        let mut probe = false;
        match g.breaker {
            BreakerState::Closed => {}
            BreakerState::HalfOpen { probing: false } => {
                g.breaker = BreakerState::HalfOpen { probing: true };
                probe = true;
            }
            BreakerState::HalfOpen { probing: true } | BreakerState::Open { .. } if !force => {
                return None;
            }
            _ => {}
        }
        if !force
            && limits
                .max_concurrency
                .is_some_and(|m| self.in_flight() >= m)
        {
            if probe {
                g.breaker = BreakerState::HalfOpen { probing: false };
            }
            return None;
        }
        g.minute.add(now, limits.tokens);
        drop(g);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(Attempt {
            health: self.clone(),
            probe,
            reported: false,
        })
    }

    fn record(&self, outcome: Outcome, probe: bool, now: Instant) {
        let mut g = self.lock();
        refresh(&mut g, now);
        match outcome {
            Outcome::Success { ttft } => {
                let us = u64::try_from(ttft.as_micros()).unwrap_or(u64::MAX);
                g.ewma_ttft_us = Some(match g.ewma_ttft_us {
                    None => us as f64,
                    Some(prev) => prev + EWMA_ALPHA * (us as f64 - prev),
                });
                if g.ttft_samples.len() == TTFT_SAMPLES {
                    g.ttft_samples.pop_front();
                }
                g.ttft_samples.push_back(us);
                g.consecutive_failures = 0;
                push_window(&mut g, false, self.cfg.breaker_window);
                if matches!(g.breaker, BreakerState::HalfOpen { .. }) {
                    g.breaker = BreakerState::Closed;
                    g.window.clear();
                }
            }
            Outcome::Failure => {
                g.consecutive_failures += 1;
                push_window(&mut g, true, self.cfg.breaker_window);
                let failures = g.window.iter().filter(|f| **f).count();
                let full = g.window.len() >= self.cfg.breaker_window as usize;
                let rate_tripped =
                    full && failures as f64 / g.window.len() as f64 >= self.cfg.breaker_error_rate;
                let tripped = probe
                    || matches!(g.breaker, BreakerState::HalfOpen { .. })
                    || g.consecutive_failures >= self.cfg.breaker_consecutive_failures
                    || rate_tripped;
                if tripped && !matches!(g.breaker, BreakerState::Open { .. }) {
                    g.breaker = BreakerState::Open {
                        until: now + self.cfg.breaker_cooldown,
                    };
                    g.opened += 1;
                    g.consecutive_failures = 0;
                    g.window.clear();
                }
            }
            Outcome::RateLimited { retry_after } => {
                let until = now + retry_after.unwrap_or(DEFAULT_429_COOLDOWN);
                g.cooldown_until = Some(g.cooldown_until.map_or(until, |u| u.max(until)));
                if probe {
                    g.breaker = BreakerState::HalfOpen { probing: false };
                }
            }
            Outcome::Neutral => {
                if probe {
                    g.breaker = BreakerState::HalfOpen { probing: false };
                }
            }
        }
    }
}

fn push_window(g: &mut Inner, failed: bool, size: u32) {
    if g.window.len() >= size as usize {
        g.window.pop_front();
    }
    g.window.push_back(failed);
}

fn refresh(g: &mut Inner, now: Instant) {
    if let BreakerState::Open { until } = g.breaker
        && now >= until
    {
        g.breaker = BreakerState::HalfOpen { probing: false };
    }
    if g.cooldown_until.is_some_and(|u| u <= now) {
        g.cooldown_until = None;
    }
}

/// An attempt in progress on a deployment: holds its in-flight slot (and the
/// half-open probe, if it is one) until it reports or is dropped.
#[derive(Debug)]
pub struct Attempt {
    health: std::sync::Arc<Health>,
    probe: bool,
    reported: bool,
}

impl Attempt {
    /// Records how the attempt ended.
    pub fn finish(mut self, outcome: Outcome, now: Instant) {
        self.health.record(outcome, self.probe, now);
        self.reported = true;
    }

    /// Whether this attempt is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.health.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.reported && self.probe {
            // A cancelled probe frees the slot for the next one.
            self.health.record(Outcome::Neutral, true, Instant::now());
        }
    }
}
