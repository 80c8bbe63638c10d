//! Sliding-minute rate limits (requests, tokens) and parallel-request caps,
//! checked on every applicable scope at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

/// The limits of one scope for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `key:abc`, `team:xyz`, ...
    pub scope: String,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_parallel: Option<u64>,
}

/// OpenAI-style rate-limit state of the tightest scope, for response headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateInfo {
    pub limit_requests: Option<u64>,
    pub remaining_requests: Option<u64>,
    pub reset_requests_s: u64,
    pub limit_tokens: Option<u64>,
    pub remaining_tokens: Option<u64>,
    pub reset_tokens_s: u64,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub scope: String,
    /// `requests per minute`, `tokens per minute` or `parallel requests`.
    pub what: &'static str,
    pub limit: u64,
    pub retry_after_s: u64,
    pub info: RateInfo,
}

#[derive(Debug)]
struct Window {
    origin: Instant,
    /// (second, requests, tokens) for each of the last 60 seconds.
    slots: [(u64, u64, i64); 60],
    in_flight: u64,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window {
            origin: now,
            slots: [(u64::MAX, 0, 0); 60],
            in_flight: 0,
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs()
    }

    fn live(&self, now: Instant) -> impl Iterator<Item = &(u64, u64, i64)> {
        let sec = self.second(now);
        self.slots
            .iter()
            .filter(move |(s, _, _)| *s != u64::MAX && *s <= sec && sec - *s < 60)
    }

    fn usage(&self, now: Instant) -> (u64, u64) {
        let (r, t) = self
            .live(now)
            .fold((0u64, 0i64), |(r, t), (_, sr, st)| (r + sr, t + st));
        (r, u64::try_from(t.max(0)).unwrap_or(0))
    }

    /// Seconds until the oldest live slot leaves the window.
    fn reset_s(&self, now: Instant) -> u64 {
        let sec = self.second(now);
        self.live(now)
            .map(|(s, _, _)| 60 - (sec - s))
            .min()
            .unwrap_or(0)
    }

    fn add(&mut self, now: Instant, requests: u64, tokens: i64) {
        let sec = self.second(now);
        self.add_at(sec, requests, tokens);
    }

    /// Adds to the slot of second `sec` (ignored once it left the window).
    fn add_at(&mut self, sec: u64, requests: u64, tokens: i64) {
        let slot = &mut self.slots[(sec % 60) as usize];
        if slot.0 != sec {
            if requests == 0 && slot.0 != u64::MAX && slot.0 > sec {
                return; // that second is gone; so is what it counted
            }
            *slot = (sec, 0, 0);
        }
        slot.1 += requests;
        slot.2 += tokens;
    }
}

/// Windows kept before idle ones are evicted (end-user scopes are client-named).
const MAX_WINDOWS: usize = 100_000;

/// All scopes' windows, in process.
#[derive(Debug, Default)]
pub struct Limiter {
    windows: Mutex<HashMap<String, Window>>,
}

/// An admitted request: holds its parallel-request slots until dropped, and
/// can reconcile its token estimate with the actual count.
#[derive(Debug)]
pub struct Admission {
    limiter: Arc<Limiter>,
    scopes: Vec<String>,
    estimated_tokens: u64,
    /// Each scope's window second the request was counted in.
    seconds: Vec<u64>,
    /// Headers for the response.
    pub info: RateInfo,
}

impl Limiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Window>> {
        match self.windows.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Admits a request of `tokens` estimated tokens if every scope allows it;
    /// otherwise changes nothing and says which limit refused it.
    pub fn admit(
        self: &Arc<Self>,
        checks: &[Check],
        tokens: u64,
        now: Instant,
    ) -> Result<Admission, Box<Rejection>> {
        let mut map = self.lock();
        if map.len() > MAX_WINDOWS {
            map.retain(|_, w| w.in_flight > 0 || w.usage(now).0 > 0);
        }
        let mut info = RateInfo::default();
        let mut tightest_req = u64::MAX;
        let mut tightest_tok = u64::MAX;
        for c in checks {
            if c.rpm.is_none() && c.tpm.is_none() && c.max_parallel.is_none() {
                continue;
            }
            let w = map
                .entry(c.scope.clone())
                .or_insert_with(|| Window::new(now));
            let (used_r, used_t) = w.usage(now);
            let reset = w.reset_s(now).max(1);
            let reject = |what, limit, info| {
                Box::new(Rejection {
                    scope: c.scope.clone(),
                    what,
                    limit,
                    retry_after_s: reset,
                    info,
                })
            };
            if let Some(rpm) = c.rpm {
                let remaining = rpm.saturating_sub(used_r);
                if remaining < tightest_req {
                    tightest_req = remaining;
                    info.limit_requests = Some(rpm);
                    info.remaining_requests = Some(remaining.saturating_sub(1));
                    info.reset_requests_s = reset;
                }
                if used_r >= rpm {
                    info.remaining_requests = Some(0);
                    return Err(reject("requests per minute", rpm, info));
                }
            }
            if let Some(tpm) = c.tpm {
                let remaining = tpm.saturating_sub(used_t);
                if remaining < tightest_tok {
                    tightest_tok = remaining;
                    info.limit_tokens = Some(tpm);
                    info.remaining_tokens = Some(remaining.saturating_sub(tokens));
                    info.reset_tokens_s = reset;
                }
                // A request larger than the whole budget may still run alone.
                if used_r > 0 && used_t + tokens > tpm {
                    info.remaining_tokens = Some(remaining);
                    return Err(reject("tokens per minute", tpm, info));
                }
            }
            if let Some(p) = c.max_parallel
                && w.in_flight >= p
            {
                return Err(Box::new(Rejection {
                    scope: c.scope.clone(),
                    what: "parallel requests",
                    limit: p,
                    retry_after_s: 1,
                    info,
                }));
            }
        }
        let mut scopes = Vec::new();
        let mut seconds = Vec::new();
        for c in checks {
            if c.rpm.is_none() && c.tpm.is_none() && c.max_parallel.is_none() {
                continue;
            }
            if let Some(w) = map.get_mut(&c.scope) {
                w.add(now, 1, i64::try_from(tokens).unwrap_or(i64::MAX));
                w.in_flight += 1;
                scopes.push(c.scope.clone());
                seconds.push(w.second(now));
            }
        }
        Ok(Admission {
            limiter: self.clone(),
            scopes,
            seconds,
            estimated_tokens: tokens,
            info,
        })
    }

    /// Requests counted in `scope`'s current minute (for tests and reports).
    pub fn requests_in_window(&self, scope: &str, now: Instant) -> u64 {
        self.lock().get(scope).map_or(0, |w| w.usage(now).0)
    }
}

impl Admission {
    /// Replaces the token estimate with the actual count.
    pub fn reconcile(&mut self, actual_tokens: u64, now: Instant) {
        let delta = i64::try_from(actual_tokens).unwrap_or(i64::MAX)
            - i64::try_from(self.estimated_tokens).unwrap_or(i64::MAX);
        if delta == 0 {
            return;
        }
        let mut map = self.limiter.lock();
        for (s, sec) in self.scopes.iter().zip(&self.seconds) {
            if let Some(w) = map.get_mut(s) {
                // Into the second the estimate was counted in, so both leave
                // the window together; nothing if it already left.
                if w.second(now).saturating_sub(*sec) < 60 {
                    w.add_at(*sec, 0, delta);
                }
            }
        }
        self.estimated_tokens = actual_tokens;
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut map = self.limiter.lock();
        for s in &self.scopes {
            if let Some(w) = map.get_mut(s) {
                w.in_flight = w.in_flight.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn check(scope: &str, rpm: Option<u64>, tpm: Option<u64>, par: Option<u64>) -> Check {
        Check {
            scope: scope.into(),
            rpm,
            tpm,
            max_parallel: par,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rpm_is_a_sliding_minute() {
        let l = Arc::new(Limiter::default());
        let c = [check("key:a", Some(3), None, None)];
        let mut held = vec![];
        for _ in 0..3 {
            held.push(l.admit(&c, 0, Instant::now()).unwrap());
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        let r = l.admit(&c, 0, Instant::now()).unwrap_err();
        assert_eq!(
            (r.what, r.limit, r.scope.as_str()),
            ("requests per minute", 3, "key:a")
        );
        assert_eq!(
            r.retry_after_s, 30,
            "the oldest request leaves the window in 30 s"
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(l.admit(&c, 0, Instant::now()).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn every_scope_must_pass_and_a_refusal_changes_nothing() {
        let l = Arc::new(Limiter::default());
        let both = [
            check("key:a", Some(10), None, None),
            check("team:t", Some(2), None, None),
        ];
        let _a = l.admit(&both, 0, Instant::now()).unwrap();
        let _b = l.admit(&both, 0, Instant::now()).unwrap();
        let r = l.admit(&both, 0, Instant::now()).unwrap_err();
        assert_eq!(r.scope, "team:t");
        assert_eq!(
            l.requests_in_window("key:a", Instant::now()),
            2,
            "refused request not counted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tpm_reconciles_with_actual_usage() {
        let l = Arc::new(Limiter::default());
        let c = [check("key:a", None, Some(1000), None)];
        let mut a = l.admit(&c, 600, Instant::now()).unwrap();
        assert!(l.admit(&c, 600, Instant::now()).is_err());
        a.reconcile(100, Instant::now());
        let b = l.admit(&c, 600, Instant::now()).unwrap();
        assert_eq!(b.info.remaining_tokens, Some(300));
    }

    #[tokio::test(start_paused = true)]
    async fn parallel_slots_are_released_on_drop() {
        let l = Arc::new(Limiter::default());
        let c = [check("key:a", None, None, Some(1))];
        let a = l.admit(&c, 0, Instant::now()).unwrap();
        assert_eq!(
            l.admit(&c, 0, Instant::now()).unwrap_err().what,
            "parallel requests"
        );
        drop(a);
        assert!(l.admit(&c, 0, Instant::now()).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn never_admits_over_quota(steps in proptest::collection::vec((0u64..5, 1u64..4), 1..200), rpm in 1u64..20) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            rt.block_on(async {
                let l = Arc::new(Limiter::default());
                let c = [check("key:p", Some(rpm), None, None)];
                let mut admitted: Vec<Instant> = vec![];
                for (advance, tries) in steps {
                    tokio::time::advance(Duration::from_secs(advance)).await;
                    for _ in 0..tries {
                        if l.admit(&c, 0, Instant::now()).is_ok() {
                            admitted.push(Instant::now());
                        }
                    }
                    let now = Instant::now();
                    let in_window = admitted.iter().filter(|t| now.duration_since(**t) < Duration::from_secs(60)).count() as u64;
                    assert!(in_window <= rpm, "{in_window} > {rpm}");
                }
            });
        }
    }
}
