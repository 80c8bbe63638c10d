//! Governance on the request path: resolving virtual keys to principals (with
//! an in-memory cache), the model allow-list, and admission: rate limits on
//! every scope and a budget reservation of the worst-case cost.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use modelgate_config::{Alias, Config};
use modelgate_core::{ErrorClass, Usage};
use modelgate_policy::budget::{BudgetCheck, Ledger, Period, Reservation, SoftAlert};
use modelgate_policy::limiter::{Admission, Check, Limiter, RateInfo};
use modelgate_policy::{Principal, ScopeId, keys};
use modelgate_store::governance::{Entity, Scope};
use modelgate_store::{Store, StoreError, now_ms};
use tokio::time::Instant;

use crate::error::ApiError;

/// How long a resolved key is trusted before it is read again. Bounds how long
/// a revocation made by another replica (sharing the database) takes to apply.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// Governance state shared by every request.
pub struct Governance {
    secret: Vec<u8>,
    cache: RwLock<HashMap<String, (Arc<Principal>, Instant)>>,
    pub limiter: Arc<Limiter>,
    pub ledger: Arc<Ledger>,
    default_max_output: u64,
    webhook: Option<String>,
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Governance")
    }
}

/// What admission granted; dropped (or settled) when the request ends.
#[derive(Debug, Default)]
pub struct Admitted {
    pub limits: Option<Admission>,
    pub budget: Option<Reservation>,
    pub info: RateInfo,
}

impl Governance {
    /// Loads or creates the key-hashing secret.
    pub async fn init(config: &Config, store: &Store) -> Result<Governance, StoreError> {
        let secret = match &config.governance.key_secret {
            Some(s) => s.expose().as_bytes().to_vec(),
            None => {
                let fresh = keys::random_token(48).unwrap_or_else(|_| format!("{:x}", now_ms()));
                store.init_setting("key_secret", &fresh).await?.into_bytes()
            }
        };
        Ok(Governance {
            secret,
            cache: RwLock::new(HashMap::new()),
            limiter: Arc::new(Limiter::default()),
            ledger: Arc::new(Ledger::default()),
            default_max_output: config.governance.default_max_output_tokens,
            webhook: config.governance.alert_webhook.clone(),
        })
    }

    /// The stored hash of `key`.
    pub fn hash(&self, key: &str) -> String {
        keys::hash(&self.secret, key)
    }

    /// Forgets cached principals (one key, or all after a team/user change).
    pub fn invalidate(&self, key_id: Option<&str>) {
        if let Ok(mut c) = self.cache.write() {
            match key_id {
                Some(id) => {
                    c.remove(id);
                }
                None => c.clear(),
            }
        }
    }

    /// Resolves a presented virtual key.
    pub async fn principal(
        &self,
        store: &Store,
        presented: &str,
    ) -> Result<Arc<Principal>, ApiError> {
        let invalid = || {
            ApiError::new(ErrorClass::Unauthorized, "Invalid API key.").with_code("invalid_api_key")
        };
        let Some(id) = keys::parse_id(presented) else {
            return Err(invalid());
        };
        let hash = self.hash(presented);
        let now = Instant::now();
        let cached = self.cache.read().ok().and_then(|c| {
            c.get(id)
                .filter(|(_, at)| now.duration_since(*at) < KEY_CACHE_TTL)
                .map(|(p, _)| p.clone())
        });
        let principal = match cached {
            Some(p) => p,
            None => {
                let p = Arc::new(load(store, id).await?.ok_or_else(invalid)?);
                if let Ok(mut c) = self.cache.write() {
                    c.insert(id.to_owned(), (p.clone(), now));
                }
                p
            }
        };
        if !keys::constant_time_eq(principal.key.hash.as_bytes(), hash.as_bytes()) {
            return Err(invalid());
        }
        check_usable(&principal)?;
        Ok(principal)
    }

    /// Rate limits, then the budget reservation, for one request. All or nothing.
    pub async fn admit(
        &self,
        store: &Store,
        principal: &Principal,
        alias: &Alias,
        input_tokens: u64,
        output_cap: Option<u32>,
    ) -> Result<Admitted, ApiError> {
        let mut checks = Vec::new();
        let mut budgets = Vec::new();
        let now_ms = now_ms();
        for (scope, l) in principal.scopes() {
            let label = scope.label();
            let pos = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok());
            checks.push(Check {
                scope: label.clone(),
                rpm: pos(l.rpm),
                tpm: pos(l.tpm),
                max_parallel: pos(l.max_parallel),
            });
            if l.max_budget_nanos.is_some() || l.soft_budget_nanos.is_some() {
                let period = Period::parse(l.budget_period.as_deref()).unwrap_or(Period::Total);
                let start = period.start(now_ms);
                if self.ledger.needs_load(&label, start) {
                    let (kind, id) = match &scope {
                        ScopeId::Key(id) => (Scope::Key, id),
                        ScopeId::Team(id) => (Scope::Team, id),
                        ScopeId::User(id) | ScopeId::EndUser(id) => (Scope::User, id),
                    };
                    let spent = store.spend_since(kind, id, start).await.map_err(internal)?;
                    self.ledger.load(&label, start, spent);
                }
                budgets.push(BudgetCheck {
                    scope: label,
                    limit: l.max_budget_nanos,
                    soft: l.soft_budget_nanos,
                    period,
                });
            }
        }
        let limits = self
            .limiter
            .admit(&checks, input_tokens, Instant::now())
            .map_err(|r| {
                let mut e = ApiError::new(
                    ErrorClass::RateLimited,
                    format!(
                        "Rate limit reached for {}: {} {} (limit {}). Retry after {} s.",
                        r.scope, r.limit, r.what, r.limit, r.retry_after_s
                    ),
                )
                .with_code("rate_limit_exceeded");
                e.retry_after = Some(r.retry_after_s.to_string());
                e.rate_info = Some(Box::new(r.info));
                e
            })?;
        let info = limits.info;
        let budget = if budgets.is_empty() {
            None
        } else {
            let max_output = output_cap.map_or(self.default_max_output, u64::from);
            let worst = worst_case_cost(alias, input_tokens, max_output);
            Some(self.ledger.reserve(budgets, worst).map_err(|b| {
                let usd = |n: i64| modelgate_core::Nanos(n).to_usd_string();
                let mut e = ApiError::new(
                    ErrorClass::BudgetExceeded,
                    format!(
                        "Budget exceeded for {}: spent ${} of ${}, this request may cost up to ${}.",
                        b.scope,
                        usd(b.spent + b.reserved),
                        usd(b.limit),
                        usd(b.needed)
                    ),
                )
                .with_code("budget_exceeded");
                e.retry_after = None;
                e
            })?)
        };
        Ok(Admitted {
            limits: Some(limits),
            budget,
            info,
        })
    }

    /// Reports soft-budget crossings: a warning, and the webhook if configured.
    pub fn alert(&self, alerts: Vec<SoftAlert>) {
        for a in alerts {
            tracing::warn!(
                scope = %a.scope,
                spent_usd = %modelgate_core::Nanos(a.spent).to_usd_string(),
                soft_usd = %modelgate_core::Nanos(a.soft).to_usd_string(),
                "budget soft threshold crossed"
            );
            if let (Some(url), Ok(rt)) =
                (self.webhook.clone(), tokio::runtime::Handle::try_current())
            {
                let body = serde_json::json!({
                    "event": "budget.soft_threshold_crossed",
                    "scope": a.scope,
                    "spent_usd": modelgate_core::Nanos(a.spent).to_usd_string(),
                    "soft_budget_usd": modelgate_core::Nanos(a.soft).to_usd_string(),
                    "max_budget_usd": a.limit.map(|l| modelgate_core::Nanos(l).to_usd_string()),
                });
                rt.spawn(async move {
                    let client = reqwest::Client::builder()
                        .timeout(Duration::from_secs(5))
                        .no_proxy()
                        .build();
                    if let Ok(c) = client
                        && let Err(e) = c
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body.to_string())
                            .send()
                            .await
                    {
                        tracing::warn!(error = %e.without_url(), "budget alert webhook failed");
                    }
                });
            }
        }
    }
}

/// The most this request can cost on any deployment of `alias`.
fn worst_case_cost(alias: &Alias, input_tokens: u64, max_output: u64) -> i64 {
    let usage = Usage {
        input_tokens,
        output_tokens: max_output,
        ..Usage::default()
    };
    alias
        .deployments
        .iter()
        .filter_map(|d| d.price)
        .map(|p| p.cost(&usage).0)
        .max()
        .unwrap_or(0)
}

fn internal(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "store error during admission");
    ApiError::new(
        ErrorClass::Internal,
        "The gateway could not read its store.",
    )
}

async fn load(store: &Store, id: &str) -> Result<Option<Principal>, ApiError> {
    let Some(key) = store.get_key(id).await.map_err(internal)? else {
        return Ok(None);
    };
    let team = match &key.team_id {
        Some(t) => Some(
            store
                .get_member(Entity::Team, t)
                .await
                .map_err(internal)?
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorClass::Unauthorized,
                        "This API key's team no longer exists.",
                    )
                    .with_code("invalid_api_key")
                })?,
        ),
        None => None,
    };
    let user = match &key.user_id {
        Some(u) => Some(
            store
                .get_member(Entity::User, u)
                .await
                .map_err(internal)?
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorClass::Unauthorized,
                        "This API key's user no longer exists.",
                    )
                    .with_code("invalid_api_key")
                })?,
        ),
        None => None,
    };
    Ok(Some(Principal { key, team, user }))
}

fn check_usable(p: &Principal) -> Result<(), ApiError> {
    if p.key.revoked_at_ms.is_some() {
        return Err(
            ApiError::new(ErrorClass::Unauthorized, "This API key has been revoked.")
                .with_code("key_revoked"),
        );
    }
    if !p.key.enabled {
        return Err(
            ApiError::new(ErrorClass::Unauthorized, "This API key is disabled.")
                .with_code("key_disabled"),
        );
    }
    if let Some(exp) = p.key.expires_at_ms
        && exp <= now_ms()
    {
        return Err(
            ApiError::new(ErrorClass::Unauthorized, "This API key has expired.")
                .with_code("key_expired"),
        );
    }
    Ok(())
}
