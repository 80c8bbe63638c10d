//! Budgets that cannot be overshot: before dispatch the worst-case cost is
//! reserved on every scope; afterwards the reservation becomes the actual cost.
//! A scope admits a reservation only if `spent + reserved + amount <= limit`,
//! under one lock for all scopes, so concurrent requests can never together
//! exceed a budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A budget's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Daily,
    Weekly,
    Monthly,
    Total,
}

impl Period {
    /// Parses `daily`, `weekly`, `monthly`, `total` (default: total).
    pub fn parse(s: Option<&str>) -> Option<Period> {
        Some(match s {
            None | Some("total") => Period::Total,
            Some("daily") => Period::Daily,
            Some("weekly") => Period::Weekly,
            Some("monthly") => Period::Monthly,
            Some(_) => return None,
        })
    }

    /// Start (ms since the epoch, UTC) of the period containing `now_ms`.
    /// Weeks start on Monday; months on the 1st.
    pub fn start(self, now_ms: i64) -> i64 {
        const DAY: i64 = 86_400_000;
        let day = now_ms.div_euclid(DAY);
        match self {
            Period::Total => 0,
            Period::Daily => day * DAY,
            // 1970-01-01 was a Thursday: Monday-based weekday = (day + 3) % 7.
            Period::Weekly => (day - (day + 3).rem_euclid(7)) * DAY,
            Period::Monthly => {
                let (y, m, _) = civil_from_days(day);
                days_from_civil(y, m, 1) * DAY
            }
        }
    }
}

pub use modelgate_core::time::{civil_from_days, days_from_civil};

/// One scope's budget for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetCheck {
    pub scope: String,
    /// Hard cap in nano-dollars (`None`: only tracked).
    pub limit: Option<i64>,
    /// Soft threshold: crossing it raises an alert once per period.
    pub soft: Option<i64>,
    pub period: Period,
}

#[derive(Debug, Clone)]
struct Account {
    period_start: i64,
    spent: i64,
    reserved: i64,
    soft_alerted: bool,
}

/// A budget a reservation did not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRejection {
    pub scope: String,
    pub limit: i64,
    pub spent: i64,
    pub reserved: i64,
    pub needed: i64,
}

/// A scope whose spend crossed its soft threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftAlert {
    pub scope: String,
    pub spent: i64,
    pub soft: i64,
    pub limit: Option<i64>,
}

/// Spend and reservations of every scope, in process.
#[derive(Debug, Default)]
pub struct Ledger {
    accounts: Mutex<HashMap<String, Account>>,
}

/// Money held for one request on its scopes. Settle it with the actual cost;
/// dropping it unsettled releases the hold.
#[derive(Debug)]
pub struct Reservation {
    ledger: Arc<Ledger>,
    checks: Vec<BudgetCheck>,
    amount: i64,
    settled: bool,
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Account>> {
        match self.accounts.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Whether `scope` needs its spend for the period loaded from the store.
    pub fn needs_load(&self, scope: &str, period_start: i64) -> bool {
        self.lock()
            .get(scope)
            .is_none_or(|a| a.period_start != period_start)
    }

    /// Sets the recorded spend of `scope` for the period (first load or rollover).
    pub fn load(&self, scope: &str, period_start: i64, spent: i64) {
        let mut map = self.lock();
        let fresh = Account {
            period_start,
            spent,
            reserved: 0,
            soft_alerted: false,
        };
        match map.get_mut(scope) {
            Some(a) if a.period_start == period_start => {}
            Some(a) => {
                // A new period, or the budget's period changed: reload, and
                // carry over reservations still in flight.
                let reserved = a.reserved;
                *a = Account { reserved, ..fresh };
            }
            None => {
                map.insert(scope.to_owned(), fresh);
            }
        }
    }

    /// Spent so far in the current period.
    pub fn spent(&self, scope: &str) -> i64 {
        self.lock().get(scope).map_or(0, |a| a.spent)
    }

    /// Reserves `amount` on every scope, or nothing if one cannot take it.
    pub fn reserve(
        self: &Arc<Self>,
        checks: Vec<BudgetCheck>,
        amount: i64,
    ) -> Result<Reservation, BudgetRejection> {
        let amount = amount.max(0);
        let mut map = self.lock();
        for c in &checks {
            let a = map.entry(c.scope.clone()).or_insert(Account {
                period_start: 0,
                spent: 0,
                reserved: 0,
                soft_alerted: false,
            });
            if let Some(limit) = c.limit
                && a.spent + a.reserved + amount > limit
            {
                return Err(BudgetRejection {
                    scope: c.scope.clone(),
                    limit,
                    spent: a.spent,
                    reserved: a.reserved,
                    needed: amount,
                });
            }
        }
        for c in &checks {
            if let Some(a) = map.get_mut(&c.scope) {
                a.reserved += amount;
            }
        }
        Ok(Reservation {
            ledger: self.clone(),
            checks,
            amount,
            settled: false,
        })
    }
}

impl Reservation {
    /// The amount held.
    pub fn amount(&self) -> i64 {
        self.amount
    }

    /// Holds `extra` more (a stream running past its estimate); false, and
    /// nothing held, when a hard cap would be crossed.
    pub fn extend(&mut self, extra: i64) -> bool {
        let mut map = self.ledger.lock();
        for c in &self.checks {
            if let (Some(limit), Some(a)) = (c.limit, map.get(&c.scope))
                && a.spent + a.reserved + extra > limit
            {
                return false;
            }
        }
        for c in &self.checks {
            if let Some(a) = map.get_mut(&c.scope) {
                a.reserved += extra;
            }
        }
        self.amount += extra;
        true
    }

    /// Turns the hold into the actual cost; returns soft thresholds crossed.
    pub fn settle(mut self, actual: i64) -> Vec<SoftAlert> {
        self.settled = true;
        let mut alerts = Vec::new();
        let mut map = self.ledger.lock();
        for c in &self.checks {
            if let Some(a) = map.get_mut(&c.scope) {
                a.reserved = (a.reserved - self.amount).max(0);
                a.spent += actual.max(0);
                if let Some(soft) = c.soft
                    && !a.soft_alerted
                    && a.spent >= soft
                {
                    a.soft_alerted = true;
                    alerts.push(SoftAlert {
                        scope: c.scope.clone(),
                        spent: a.spent,
                        soft,
                        limit: c.limit,
                    });
                }
            }
        }
        alerts
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut map = self.ledger.lock();
        for c in &self.checks {
            if let Some(a) = map.get_mut(&c.scope) {
                a.reserved = (a.reserved - self.amount).max(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(scope: &str, limit: i64) -> BudgetCheck {
        BudgetCheck {
            scope: scope.into(),
            limit: Some(limit),
            soft: Some(limit / 2),
            period: Period::Total,
        }
    }

    #[test]
    fn reserve_settle_release() {
        let l = Arc::new(Ledger::default());
        let r1 = l.reserve(vec![check("key:a", 100)], 60).unwrap();
        let e = l.reserve(vec![check("key:a", 100)], 50).unwrap_err();
        assert_eq!((e.scope.as_str(), e.reserved, e.needed), ("key:a", 60, 50));
        let alerts = r1.settle(55);
        assert_eq!(alerts.len(), 1, "crossed the soft threshold of 50");
        assert_eq!(l.spent("key:a"), 55);
        let r2 = l.reserve(vec![check("key:a", 100)], 45).unwrap();
        drop(r2);
        assert!(
            l.reserve(vec![check("key:a", 100)], 45).is_ok(),
            "dropped holds are released"
        );
        assert!(l.reserve(vec![check("key:a", 100)], 46).is_err());
    }

    #[test]
    fn all_scopes_or_none() {
        let l = Arc::new(Ledger::default());
        let _hold = l.reserve(vec![check("team:t", 100)], 90).unwrap();
        assert!(
            l.reserve(vec![check("key:a", 1000), check("team:t", 100)], 20)
                .is_err()
        );
        assert!(
            l.reserve(vec![check("key:a", 20)], 20).is_ok(),
            "key:a was not charged by the refusal"
        );
    }

    #[test]
    fn concurrent_reservations_never_overshoot() {
        let l = Arc::new(Ledger::default());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    let mut settled = 0;
                    for _ in 0..100 {
                        if let Ok(r) = l.reserve(vec![check("key:a", 1_000)], 50) {
                            r.settle(37);
                            settled += 37;
                        }
                    }
                    settled
                })
            })
            .collect();
        let total: i64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, l.spent("key:a"));
        assert!(total <= 1_000, "{total}");
    }

    proptest::proptest! {
        #[test]
        fn reserve_plus_settle_equals_actual(ops in proptest::collection::vec((1i64..500, 0i64..500, proptest::bool::ANY), 1..100)) {
            let l = Arc::new(Ledger::default());
            let mut expected = 0;
            for (hold, actual, settle) in ops {
                if let Ok(r) = l.reserve(vec![check("k", 50_000)], hold)
                    && settle
                {
                    let actual = actual.min(hold);
                    r.settle(actual);
                    expected += actual;
                }
                proptest::prop_assert_eq!(l.spent("k"), expected);
                proptest::prop_assert!(l.spent("k") <= 50_000);
            }
            // Every hold was released or settled.
            proptest::prop_assert!(l.reserve(vec![check("k", 50_000)], 50_000 - expected).is_ok());
        }
    }

    #[test]
    fn periods() {
        // 2026-11-22T17:34:00Z is a Sunday.
        let now = 1_795_368_840_000;
        let day = 86_400_000;
        assert_eq!(Period::Daily.start(now), now - now % day);
        assert_eq!(
            Period::Weekly.start(now),
            Period::Daily.start(now) - 6 * day
        );
        assert_eq!(
            Period::Monthly.start(now),
            Period::Daily.start(now) - 21 * day
        );
        assert_eq!(Period::Total.start(now), 0);
        assert_eq!(Period::parse(Some("yearly")), None);
    }
}
