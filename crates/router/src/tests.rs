use std::sync::Arc;
use std::time::Duration;

use modelgate_config::{Alias, Config, MapEnv, RouterConfig, Strategy};
use tokio::time::Instant;

use crate::{BreakerState, Outcome, Router, backoff};

fn config(yaml: &str) -> Config {
    Config::load(Some(yaml), &MapEnv::default()).unwrap()
}

const TWO: &str = r#"
deployments:
  - { name: a, provider: mock, model: echo, weight: 3, priority: 1, tags: [eu], price: { input: 5, output: 5 } }
  - { name: b, provider: mock, model: echo, weight: 1, priority: 0, tags: [us], price: { input: 1, output: 1 } }
  - { name: c, provider: mock, model: echo, weight: 1, priority: 2, tags: [eu, gpu], price: { input: 0.1, output: 0.1 } }
models:
  - { name: m, deployments: [a, b, c] }
"#;

fn alias(cfg: &Config, strategy: Strategy) -> Alias {
    let mut a = (*cfg.models["m"]).clone();
    a.strategy = strategy;
    a
}

fn router(cfg: &Config) -> Router {
    Router::new(cfg.router, &cfg.deployments, Some(7))
}

fn names(r: &Router, a: &Alias, tags: &[&str]) -> Vec<String> {
    let tags: Vec<String> = tags.iter().map(|s| (*s).to_owned()).collect();
    r.order(a, &tags, 0, Instant::now())
        .into_iter()
        .map(|c| c.deployment.name.clone())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn priority_cost_and_tags() {
    let cfg = config(TWO);
    let r = router(&cfg);
    assert_eq!(
        names(&r, &alias(&cfg, Strategy::Priority), &[]),
        ["b", "a", "c"]
    );
    assert_eq!(
        names(&r, &alias(&cfg, Strategy::LowestCost), &[]),
        ["c", "b", "a"]
    );
    assert_eq!(
        names(&r, &alias(&cfg, Strategy::Priority), &["eu"]),
        ["a", "c"]
    );
    assert_eq!(
        names(&r, &alias(&cfg, Strategy::Priority), &["eu", "gpu"]),
        ["c"]
    );
    assert!(names(&r, &alias(&cfg, Strategy::Priority), &["apac"]).is_empty());
}

#[tokio::test(start_paused = true)]
async fn weighted_converges_to_weights() {
    let cfg = config(TWO);
    let r = router(&cfg);
    let a = alias(&cfg, Strategy::Weighted);
    let mut first = std::collections::HashMap::new();
    let n = 20_000;
    for _ in 0..n {
        *first.entry(names(&r, &a, &[])[0].clone()).or_insert(0u32) += 1;
    }
    // weights 3:1:1 -> 60% / 20% / 20%
    let share = |k: &str| f64::from(first[k]) / f64::from(n);
    assert!((share("a") - 0.6).abs() < 0.02, "{first:?}");
    assert!((share("b") - 0.2).abs() < 0.02, "{first:?}");
    assert!((share("c") - 0.2).abs() < 0.02, "{first:?}");
}

#[tokio::test(start_paused = true)]
async fn least_busy_prefers_idle() {
    let cfg = config(TWO);
    let r = router(&cfg);
    let now = Instant::now();
    let ha = r.health(&cfg.deployments[0]);
    let hb = r.health(&cfg.deployments[1]);
    let _a1 = ha.begin(now, None, false).unwrap();
    let _a2 = ha.begin(now, None, false).unwrap();
    let _b1 = hb.begin(now, None, false).unwrap();
    assert_eq!(
        names(&r, &alias(&cfg, Strategy::LeastBusy), &[]),
        ["c", "b", "a"]
    );
}

#[tokio::test(start_paused = true)]
async fn lowest_latency_prefers_fast_but_explores() {
    let cfg = config(TWO);
    let r = router(&cfg);
    let now = Instant::now();
    for (d, ms) in [(0, 400), (1, 50), (2, 900)] {
        let h = r.health(&cfg.deployments[d]);
        for _ in 0..5 {
            h.begin(now, None, false).unwrap().finish(
                Outcome::Success {
                    ttft: Duration::from_millis(ms),
                },
                now,
            );
        }
    }
    let a = alias(&cfg, Strategy::LowestLatency);
    let n = 10_000;
    let fast = (0..n).filter(|_| names(&r, &a, &[])[0] == "b").count();
    let explored = n - fast;
    assert!(fast > 8_500, "fast first {fast}/{n}");
    assert!(
        explored > 500,
        "slower deployments still probed: {explored}/{n}"
    );
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_probes_once_per_cooldown_and_recovers() {
    let cfg = config(TWO);
    let r = router(&cfg);
    let d = &cfg.deployments[0];
    let h = r.health(d);
    let rc = RouterConfig::default();
    for _ in 0..rc.breaker_consecutive_failures {
        h.begin(Instant::now(), None, false)
            .unwrap()
            .finish(Outcome::Failure, Instant::now());
    }
    assert!(matches!(
        h.breaker(Instant::now()),
        BreakerState::Open { .. }
    ));
    assert!(
        h.begin(Instant::now(), None, false).is_none(),
        "open: no traffic"
    );
    // Still listed, but last and marked unhealthy: the alias is never empty.
    let order = r.order(&alias(&cfg, Strategy::Priority), &[], 0, Instant::now());
    assert_eq!(order.len(), 3);
    assert_eq!(order.last().unwrap().deployment.name, "a");
    assert!(!order.last().unwrap().healthy);

    tokio::time::advance(rc.breaker_cooldown).await;
    let probe = h
        .begin(Instant::now(), None, false)
        .expect("one probe after cooldown");
    assert!(probe.is_probe());
    assert!(
        h.begin(Instant::now(), None, false).is_none(),
        "only one probe at a time"
    );
    probe.finish(Outcome::Failure, Instant::now());
    assert!(
        matches!(h.breaker(Instant::now()), BreakerState::Open { .. }),
        "failed probe re-opens"
    );
    assert!(h.begin(Instant::now(), None, false).is_none());

    tokio::time::advance(rc.breaker_cooldown).await;
    let probe = h.begin(Instant::now(), None, false).unwrap();
    probe.finish(
        Outcome::Success {
            ttft: Duration::from_millis(5),
        },
        Instant::now(),
    );
    assert_eq!(h.breaker(Instant::now()), BreakerState::Closed);
    assert_eq!(h.times_opened(), 2);
}

#[tokio::test(start_paused = true)]
async fn cancelled_probe_frees_the_slot() {
    let cfg = config(TWO);
    let r = router(&cfg);
    let h = r.health(&cfg.deployments[0]);
    for _ in 0..5 {
        h.begin(Instant::now(), None, false)
            .unwrap()
            .finish(Outcome::Failure, Instant::now());
    }
    tokio::time::advance(Duration::from_secs(30)).await;
    drop(h.begin(Instant::now(), None, false).unwrap());
    assert!(h.begin(Instant::now(), None, false).is_some());
}

#[tokio::test(start_paused = true)]
async fn error_rate_opens_the_breaker() {
    let cfg = config(TWO);
    let r = router(&cfg);
    let h = r.health(&cfg.deployments[0]);
    // Alternate: never 5 in a row, but 50% of the last 20 once the window is full.
    for i in 0..21 {
        let a = h.begin(Instant::now(), None, false).unwrap();
        if i % 2 == 0 {
            a.finish(Outcome::Failure, Instant::now());
        } else {
            a.finish(
                Outcome::Success {
                    ttft: Duration::from_millis(1),
                },
                Instant::now(),
            );
        }
    }
    assert!(matches!(
        h.breaker(Instant::now()),
        BreakerState::Open { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_always_honoured() {
    let cfg = config(TWO);
    let r = router(&cfg);
    let h = r.health(&cfg.deployments[1]);
    h.begin(Instant::now(), None, false).unwrap().finish(
        Outcome::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
        },
        Instant::now(),
    );
    assert!(
        h.begin(Instant::now(), None, true).is_none(),
        "not even forced"
    );
    assert_eq!(
        names(&r, &alias(&cfg, Strategy::Priority), &[]),
        ["a", "c", "b"]
    );
    tokio::time::advance(Duration::from_millis(6_999)).await;
    assert!(h.begin(Instant::now(), None, true).is_none());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(h.begin(Instant::now(), None, false).is_some());
}

#[tokio::test(start_paused = true)]
async fn max_concurrency_routes_elsewhere() {
    let cfg = config(
        "deployments:\n  - { name: a, provider: mock, model: echo, max_concurrency: 1 }\n  - { name: b, provider: mock, model: echo, priority: 1 }\nmodels:\n  - { name: m, deployments: [a, b] }\n",
    );
    let r = router(&cfg);
    let a = alias(&cfg, Strategy::Priority);
    let h = r.health(&cfg.deployments[0]);
    let _busy = h.begin(Instant::now(), Some(1), false).unwrap();
    assert!(h.begin(Instant::now(), Some(1), false).is_none());
    assert_eq!(names(&r, &a, &[]), ["b", "a"]);
}

#[tokio::test(start_paused = true)]
async fn retry_budget_bounds_amplification() {
    let cfg = config(TWO);
    let mut rc = cfg.router;
    rc.retry_budget_ratio = 0.2;
    rc.retry_budget_min_per_second = 1;
    let r = Router::new(rc, &cfg.deployments, Some(1));
    let now = Instant::now();
    for _ in 0..100 {
        r.note_request(now);
    }
    let allowed = (0..1000).filter(|_| r.try_retry(now)).count();
    // 20% of 100 requests plus 1/s over the 10 s window
    assert_eq!(allowed, 30);
    // The window slides: ten seconds later the budget is fresh.
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(
        (0..1000).filter(|_| r.try_retry(Instant::now())).count(),
        10
    );
}

#[tokio::test(start_paused = true)]
async fn hedge_share_is_capped() {
    let cfg = config(TWO);
    let r = router(&cfg);
    let now = Instant::now();
    for _ in 0..100 {
        r.note_request(now);
    }
    assert_eq!((0..100).filter(|_| r.try_hedge(now, 0.1)).count(), 10);
}

#[test]
fn backoff_grows_and_caps() {
    let b = Duration::from_millis(100);
    let cap = Duration::from_secs(1);
    assert_eq!(backoff(1, b, cap, 1.0), Duration::from_millis(100));
    assert_eq!(backoff(3, b, cap, 1.0), Duration::from_millis(400));
    assert_eq!(backoff(10, b, cap, 1.0), cap);
    assert_eq!(backoff(3, b, cap, 0.5), Duration::from_millis(200));
}

#[test]
fn zero_config_deployments_get_health_on_demand() {
    let cfg = config(TWO);
    let r = router(&cfg);
    let d = cfg.prefixes["mock"].clone();
    let h1 = r.health(&d);
    let h2 = r.health(&d);
    assert!(Arc::ptr_eq(&h1, &h2));
}

#[tokio::test(start_paused = true)]
async fn per_deployment_rpm_and_tpm_are_quotas() {
    let cfg = config(
        "deployments:\n  - { name: a, provider: mock, model: echo, rpm: 3, tpm: 1000 }\n  - { name: b, provider: mock, model: echo, priority: 1 }\nmodels:\n  - { name: m, deployments: [a, b] }\n",
    );
    let r = router(&cfg);
    let d = &cfg.deployments[0];
    let h = r.health(d);
    let lim = |t| crate::Limits::of(d, t);
    for _ in 0..3 {
        h.begin(Instant::now(), lim(10), false).unwrap();
    }
    assert!(
        h.begin(Instant::now(), lim(10), true).is_none(),
        "rpm is a hard quota"
    );
    assert_eq!(names(&r, &alias(&cfg, Strategy::Priority), &[])[0], "b");
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(h.begin(Instant::now(), lim(900), false).is_some());
    assert!(
        h.begin(Instant::now(), lim(200), false).is_none(),
        "900 + 200 > tpm 1000"
    );
    assert!(h.begin(Instant::now(), lim(100), false).is_some());
}
