//! Limits and budgets shared by every replica through Redis.
//!
//! One Lua script admits a request atomically on every scope (rate limits,
//! parallel slots, budget holds); another settles it. Holds carry an expiry, so
//! a replica that dies mid-request cannot leak budget forever. Every call is
//! bounded by a short timeout; what happens when Redis is unreachable is the
//! caller's explicit choice (fail open or closed, per kind).

use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;

use crate::budget::BudgetCheck;
use crate::limiter::{Check, RateInfo, Rejection};

/// A failure to talk to Redis (timeout, connection, script error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable(pub String);

/// Why a shared admission was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    Limit(Box<Rejection>),
    Budget {
        scope: String,
        limit: i64,
        spent: i64,
        reserved: i64,
        needed: i64,
    },
    /// The scope's period spend is not in Redis yet: load it and retry.
    Load {
        scope: String,
        period_start: i64,
    },
    Unreachable(Unreachable),
}

/// What a shared admission holds until settled.
#[derive(Debug, Clone)]
pub struct Grant {
    pub limit_scopes: Vec<String>,
    pub budgets: Vec<(String, i64, Option<i64>)>,
    pub reservation_id: String,
    pub tokens: u64,
    pub amount: i64,
    pub info: RateInfo,
    /// The second the request was counted in (token reconciliation goes there).
    pub admit_s: i64,
}

/// A budget scope whose spend crossed its soft threshold at settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossed {
    pub scope: String,
    pub spent: i64,
    pub soft: i64,
}

/// The Redis connection and scripts.
#[derive(Clone)]
pub struct Shared {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    admit: Script,
    settle: Script,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shared({})", self.prefix)
    }
}

/// How long a budget hold lives without being settled.
const HOLD_TTL_MS: i64 = 15 * 60 * 1000;

impl Shared {
    /// Connects (bounded by `timeout`).
    pub async fn connect(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Shared, Unreachable> {
        let client = redis::Client::open(url).map_err(|e| Unreachable(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(
            timeout * 4,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| Unreachable("connect timed out".into()))?
        .map_err(|e| Unreachable(e.to_string()))?;
        Ok(Shared {
            conn,
            prefix: prefix.to_owned(),
            timeout,
            admit: Script::new(include_str!("admit.lua")),
            settle: Script::new(include_str!("settle.lua")),
        })
    }

    /// Admits atomically on every scope, or says why not.
    pub async fn admit(
        &self,
        checks: &[Check],
        tokens: u64,
        budgets: &[BudgetCheck],
        amount: i64,
        reservation_id: &str,
        now_ms: i64,
    ) -> Result<Grant, Denied> {
        let mut inv = self.admit.prepare_invoke();
        inv.arg(&self.prefix)
            .arg(now_ms / 1000)
            .arg(now_ms)
            .arg(tokens);
        let limited: Vec<&Check> = checks
            .iter()
            .filter(|c| c.rpm.is_some() || c.tpm.is_some() || c.max_parallel.is_some())
            .collect();
        inv.arg(limited.len());
        let num = |v: Option<u64>| v.map_or(-1i64, |n| i64::try_from(n).unwrap_or(i64::MAX));
        for c in &limited {
            inv.arg(&c.scope)
                .arg(num(c.rpm))
                .arg(num(c.tpm))
                .arg(num(c.max_parallel));
        }
        inv.arg(budgets.len());
        for b in budgets {
            inv.arg(&b.scope)
                .arg(b.period.start(now_ms))
                .arg(b.limit.unwrap_or(-1));
        }
        inv.arg(amount)
            .arg(reservation_id)
            .arg(now_ms + HOLD_TTL_MS);
        let mut conn = self.conn.clone();
        let reply: Vec<redis::Value> =
            tokio::time::timeout(self.timeout, inv.invoke_async(&mut conn))
                .await
                .map_err(|_| Denied::Unreachable(Unreachable("redis timed out".into())))?
                .map_err(|e| Denied::Unreachable(Unreachable(e.to_string())))?;
        let s = |i: usize| match reply.get(i) {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            _ => String::new(),
        };
        let n = |i: usize| match reply.get(i) {
            Some(redis::Value::Int(v)) => *v,
            _ => s(i).parse().unwrap_or(0),
        };
        let opt = |i: usize| u64::try_from(n(i)).ok();
        let info_at = |i: usize| RateInfo {
            limit_requests: opt(i),
            remaining_requests: opt(i + 1).filter(|_| n(i) >= 0),
            reset_requests_s: opt(i + 2).unwrap_or(0),
            limit_tokens: opt(i + 3),
            remaining_tokens: opt(i + 4).filter(|_| n(i + 3) >= 0),
            reset_tokens_s: opt(i + 5).unwrap_or(0),
        };
        match s(0).as_str() {
            "ok" => Ok(Grant {
                limit_scopes: limited.iter().map(|c| c.scope.clone()).collect(),
                budgets: budgets
                    .iter()
                    .map(|b| (b.scope.clone(), b.period.start(now_ms), b.soft))
                    .collect(),
                reservation_id: reservation_id.to_owned(),
                tokens,
                amount,
                info: info_at(1),
                admit_s: now_ms / 1000,
            }),
            "limit" => {
                let what = match s(2).as_str() {
                    "requests per minute" => "requests per minute",
                    "tokens per minute" => "tokens per minute",
                    _ => "parallel requests",
                };
                Err(Denied::Limit(Box::new(Rejection {
                    scope: s(1),
                    what,
                    limit: opt(3).unwrap_or(0),
                    retry_after_s: opt(4).unwrap_or(1).max(1),
                    info: info_at(5),
                })))
            }
            "budget" => Err(Denied::Budget {
                scope: s(1),
                limit: n(2),
                spent: n(3),
                reserved: n(4),
                needed: n(5),
            }),
            "load" => Err(Denied::Load {
                scope: s(1),
                period_start: n(2),
            }),
            other => Err(Denied::Unreachable(Unreachable(format!(
                "unexpected script reply {other:?}"
            )))),
        }
    }

    /// Seeds a scope's period spend (from the request log) if Redis has none.
    pub async fn load_spend(
        &self,
        scope: &str,
        period_start: i64,
        spent: i64,
        ttl_s: Option<u64>,
    ) -> Result<(), Unreachable> {
        let key = format!("{}:b:{scope}:{period_start}", self.prefix);
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic().hset_nx(&key, "spent", spent).ignore();
        if let Some(ttl) = ttl_s {
            pipe.expire(&key, i64::try_from(ttl).unwrap_or(i64::MAX))
                .ignore();
        }
        tokio::time::timeout(self.timeout, pipe.query_async::<()>(&mut conn))
            .await
            .map_err(|_| Unreachable("redis timed out".into()))?
            .map_err(|e| Unreachable(e.to_string()))
    }

    /// Settles a grant: actual tokens and cost. Returns soft thresholds crossed.
    pub async fn settle(
        &self,
        grant: &Grant,
        actual_tokens: u64,
        actual_cost: i64,
        now_ms: i64,
    ) -> Result<Vec<Crossed>, Unreachable> {
        let mut inv = self.settle.prepare_invoke();
        let delta = i64::try_from(actual_tokens).unwrap_or(i64::MAX)
            - i64::try_from(grant.tokens).unwrap_or(i64::MAX);
        inv.arg(&self.prefix)
            .arg(now_ms / 1000)
            .arg(delta)
            .arg(grant.limit_scopes.len());
        for s in &grant.limit_scopes {
            inv.arg(s);
        }
        inv.arg(grant.budgets.len());
        for (scope, start, _) in &grant.budgets {
            inv.arg(scope).arg(*start);
        }
        inv.arg(&grant.reservation_id).arg(actual_cost.max(0));
        let mut conn = self.conn.clone();
        let result: Result<Vec<i64>, Unreachable> =
            match tokio::time::timeout(self.timeout, inv.invoke_async(&mut conn)).await {
                Err(_) => Err(Unreachable("redis timed out".into())),
                Ok(r) => r.map_err(|e| Unreachable(e.to_string())),
            };
        let spent = match result {
            Ok(s) => s,
            Err(e) => {
                // The spend is in the request log: drop the period keys so the
                // next admission reloads them instead of missing this cost.
                let mut pipe = redis::pipe();
                for (scope, start, _) in &grant.budgets {
                    pipe.del(format!("{}:b:{scope}:{start}", self.prefix))
                        .ignore();
                }
                let _ = tokio::time::timeout(self.timeout, pipe.query_async::<()>(&mut conn)).await;
                return Err(e);
            }
        };
        Ok(grant
            .budgets
            .iter()
            .zip(spent.chunks(2))
            .filter_map(|((scope, _, soft), pair)| {
                let soft = (*soft)?;
                let (before, after) = (*pair.first()?, *pair.get(1)?);
                (before < soft && after >= soft).then(|| Crossed {
                    scope: scope.clone(),
                    spent: after,
                    soft,
                })
            })
            .collect())
    }
}
