//! A sliding-window budget: spends allowed as a share of recent deposits plus
//! a floor per second (the retry budget, and the hedge share).

use std::sync::Mutex;

use tokio::time::Instant;

/// Window length in one-second buckets.
const BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    second: u64,
    deposits: u64,
    spends: u64,
}

/// Deposits (requests) and spends (retries or hedges) over the last ten seconds.
#[derive(Debug)]
pub struct WindowBudget {
    ratio: f64,
    floor_per_second: u32,
    origin: Instant,
    buckets: Mutex<[Bucket; BUCKETS]>,
}

impl WindowBudget {
    /// Spends may reach `ratio` x deposits + `floor_per_second` x 10 per window.
    pub fn new(ratio: f64, floor_per_second: u32) -> WindowBudget {
        WindowBudget {
            ratio,
            floor_per_second,
            origin: Instant::now(),
            buckets: Mutex::new([Bucket::default(); BUCKETS]),
        }
    }

    fn with<T>(&self, now: Instant, f: impl FnOnce(&mut [Bucket; BUCKETS], usize, u64) -> T) -> T {
        let second = now.saturating_duration_since(self.origin).as_secs();
        let idx = (second % BUCKETS as u64) as usize;
        let mut b = match self.buckets.lock() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        };
        if b[idx].second != second {
            b[idx] = Bucket {
                second,
                ..Bucket::default()
            };
        }
        f(&mut b, idx, second)
    }

    fn totals(b: &[Bucket; BUCKETS], second: u64) -> (u64, u64) {
        b.iter()
            .filter(|x| second.saturating_sub(x.second) < BUCKETS as u64 && x.second <= second)
            .fold((0, 0), |(d, s), x| (d + x.deposits, s + x.spends))
    }

    /// Records one deposit.
    pub fn deposit(&self, now: Instant) {
        self.with(now, |b, i, _| b[i].deposits += 1);
    }

    /// Spends one unit if within `ratio` of deposits plus the floor.
    pub fn try_spend(&self, now: Instant) -> bool {
        let ratio = self.ratio;
        let floor = u64::from(self.floor_per_second) * BUCKETS as u64;
        self.with(now, |b, i, second| {
            let (deposits, spends) = Self::totals(b, second);
            let allowed = (deposits as f64 * ratio) as u64 + floor;
            if spends < allowed {
                b[i].spends += 1;
                true
            } else {
                false
            }
        })
    }

    /// Spends one unit if spends stay within `share` of deposits.
    pub fn try_spend_share(&self, now: Instant, share: f64) -> bool {
        self.with(now, |b, i, second| {
            let (deposits, spends) = Self::totals(b, second);
            if ((spends + 1) as f64) <= deposits as f64 * share {
                b[i].spends += 1;
                true
            } else {
                false
            }
        })
    }
}
