//! Routing decisions, no I/O.
//!
//! Role: per-deployment health (in-flight count, time-to-first-token
//! statistics, a circuit breaker, `Retry-After` cooldowns), the order in which
//! an alias's deployments are tried (its strategy, tag filter, health), the
//! retry budget that caps amplification, and the hedge share.
//!
//! The attempt loop that uses these lives in `modelgate-server`; this crate
//! only answers questions and records outcomes, so it is tested with tokio's
//! paused clock and a seeded random generator.
//!
//! Invariants: no lock is held across an `.await` (there are no awaits); a
//! deployment with a pending `Retry-After` is never tried before it elapses;
//! an open breaker lets one probe through per cooldown; an alias is never left
//! with nothing to try because of breakers alone.

mod budget;
mod health;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use modelgate_config::{Alias, Deployment, RouterConfig, Strategy};
use tokio::time::Instant;

pub use budget::WindowBudget;
pub use health::{Attempt, BreakerState, Health, Limits, Outcome};

/// One deployment to try, in order.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub deployment: Arc<Deployment>,
    pub health: Arc<Health>,
    /// False when only in the list because nothing healthy is left (breaker
    /// open or at max concurrency): tried last, least bad first.
    pub healthy: bool,
}

/// Routing state shared by every request.
#[derive(Debug)]
pub struct Router {
    cfg: RouterConfig,
    health: RwLock<HashMap<String, Arc<Health>>>,
    retries: WindowBudget,
    hedges: WindowBudget,
    rng: Mutex<fastrand::Rng>,
}

/// Exploration rate of the lowest-latency strategy: this share of requests
/// tries another deployment first, so a recovered one is noticed.
const EXPLORE: f64 = 0.1;

impl Router {
    /// Builds state for `deployments`; `seed` makes choices reproducible (tests).
    pub fn new(cfg: RouterConfig, deployments: &[Arc<Deployment>], seed: Option<u64>) -> Router {
        let health = deployments
            .iter()
            .map(|d| (d.name.clone(), Arc::new(Health::new(&cfg))))
            .collect();
        Router {
            cfg,
            health: RwLock::new(health),
            retries: WindowBudget::new(cfg.retry_budget_ratio, cfg.retry_budget_min_per_second),
            hedges: WindowBudget::new(0.0, 0),
            rng: Mutex::new(seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed)),
        }
    }

    /// The health record of `d` (created on first use for zero-config deployments).
    pub fn health(&self, d: &Deployment) -> Arc<Health> {
        if let Ok(map) = self.health.read()
            && let Some(h) = map.get(&d.name)
        {
            return h.clone();
        }
        let mut map = match self.health.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.entry(d.name.clone())
            .or_insert_with(|| Arc::new(Health::new(&self.cfg)))
            .clone()
    }

    /// Counts a client request (feeds the retry budget and hedge share).
    pub fn note_request(&self, now: Instant) {
        self.retries.deposit(now);
        self.hedges.deposit(now);
    }

    /// Takes one retry from the budget; false when retries would exceed
    /// `ratio` of recent requests plus the per-second floor.
    pub fn try_retry(&self, now: Instant) -> bool {
        self.retries.try_spend(now)
    }

    /// Takes one hedge if hedges stay within `max_share` of recent requests.
    pub fn try_hedge(&self, now: Instant, max_share: f64) -> bool {
        self.hedges.try_spend_share(now, max_share)
    }

    /// The order in which to try `alias`'s deployments. `tags` (all must match)
    /// restricts the group; an empty result means no deployment carries them.
    pub fn order(
        &self,
        alias: &Alias,
        tags: &[String],
        tokens: u64,
        now: Instant,
    ) -> Vec<Candidate> {
        let mut healthy = Vec::new();
        let mut unhealthy = Vec::new();
        for d in &alias.deployments {
            if !tags.iter().all(|t| d.tags.contains(t)) {
                continue;
            }
            let health = self.health(d);
            let ok = health.is_available(now, health::Limits::of(d, tokens));
            let c = Candidate {
                deployment: d.clone(),
                health,
                healthy: ok,
            };
            if ok {
                healthy.push(c);
            } else {
                unhealthy.push(c);
            }
        }
        {
            let mut rng = match self.rng.lock() {
                Ok(r) => r,
                Err(p) => p.into_inner(),
            };
            order_by_strategy(alias.strategy, &mut healthy, &mut rng, now);
        }
        // Least bad first: the one that becomes available soonest.
        unhealthy.sort_by_key(|c| c.health.available_at(now));
        healthy.extend(unhealthy);
        healthy
    }
}

fn order_by_strategy(
    strategy: Strategy,
    cands: &mut [Candidate],
    rng: &mut fastrand::Rng,
    now: Instant,
) {
    if cands.len() < 2 {
        return;
    }
    // A weighted random key per candidate (Efraimidis-Spirakis): sorting by it
    // descending samples a permutation in proportion to the weights.
    let mut keyed: Vec<(f64, usize)> = cands
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let w = f64::from(c.deployment.weight.max(1));
            (rng.f64().max(f64::MIN_POSITIVE).powf(1.0 / w), i)
        })
        .collect();
    let random_rank: Vec<f64> = {
        let mut r = vec![0.0; cands.len()];
        for (k, i) in &keyed {
            r[*i] = *k;
        }
        r
    };
    let rank = |c: &Candidate, i: usize| -> (u64, f64) {
        let primary = match strategy {
            Strategy::Priority => u64::from(c.deployment.priority),
            Strategy::Weighted => 0,
            Strategy::LeastBusy => u64::from(c.health.in_flight()),
            Strategy::LowestLatency => c.health.ewma_ttft(now).map_or(0, |d| {
                u64::try_from(d.as_micros())
                    .unwrap_or(u64::MAX)
                    .saturating_add(1)
            }),
            Strategy::LowestCost => c.deployment.price.map_or(u64::MAX, |p| {
                p.input_per_mtok.saturating_add(p.output_per_mtok)
            }),
        };
        (primary, -random_rank[i])
    };
    keyed.sort_by(|a, b| {
        rank(&cands[a.1], a.1)
            .partial_cmp(&rank(&cands[b.1], b.1))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let order: Vec<usize> = keyed.iter().map(|(_, i)| *i).collect();
    let mut sorted: Vec<Candidate> = order.iter().map(|&i| cands[i].clone()).collect();
    if strategy == Strategy::LowestLatency && rng.f64() < EXPLORE {
        let pick = rng.usize(1..sorted.len());
        let c = sorted.remove(pick);
        sorted.insert(0, c);
    }
    cands.clone_from_slice(&sorted);
}

/// Exponential backoff with full jitter for retry `n` (1-based), capped.
pub fn backoff(n: u32, base: Duration, cap: Duration, rng_unit: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << n.saturating_sub(1).min(16));
    let capped = exp.min(cap);
    capped.mul_f64(rng_unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests;
