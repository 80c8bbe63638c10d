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
use modelgate_policy::shared::{Denied, Grant, Shared};
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
    /// HMAC of presented keys under the server's key secret.
    hasher: keys::KeyHasher,
    cache: RwLock<HashMap<String, (Arc<Principal>, Instant)>>,
    pub limiter: Arc<Limiter>,
    pub ledger: Arc<Ledger>,
    default_max_output: u64,
    webhook: Option<String>,
    redis: Option<RedisState>,
    end_user_rpm: Option<u64>,
    end_user_tpm: Option<u64>,
    metrics: Arc<modelgate_telemetry::Metrics>,
}

/// The shared backend and its failure policy.
struct RedisState {
    cfg: modelgate_config::RedisConfig,
    conn: tokio::sync::RwLock<Option<Shared>>,
    last_attempt: std::sync::Mutex<Option<Instant>>,
}

impl RedisState {
    /// The connection, reconnecting at most once a second while it is down.
    async fn get(&self) -> Option<Shared> {
        if let Some(s) = self.conn.read().await.as_ref() {
            return Some(s.clone());
        }
        {
            let mut last = match self.last_attempt.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return None;
            }
            *last = Some(Instant::now());
        }
        match Shared::connect(self.cfg.url.expose(), &self.cfg.prefix, self.cfg.timeout).await {
            Ok(s) => {
                *self.conn.write().await = Some(s.clone());
                tracing::info!("connected to Redis for shared limits and budgets");
                Some(s)
            }
            Err(e) => {
                tracing::error!(error = %e.0, "Redis unreachable");
                None
            }
        }
    }
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
    /// Held in Redis (shared by replicas) instead of in process.
    pub shared: Option<(Shared, Grant)>,
    pub info: RateInfo,
}

impl Governance {
    /// Loads or creates the key-hashing secret.
    pub async fn init(
        config: &Config,
        store: &Store,
        metrics: Arc<modelgate_telemetry::Metrics>,
    ) -> Result<Governance, StoreError> {
        let secret = match &config.governance.key_secret {
            Some(s) => s.expose().as_bytes().to_vec(),
            None => {
                let fresh = keys::random_token(48).unwrap_or_else(|_| format!("{:x}", now_ms()));
                store.init_setting("key_secret", &fresh).await?.into_bytes()
            }
        };
        Ok(Governance {
            hasher: keys::KeyHasher::new(&secret),
            cache: RwLock::new(HashMap::new()),
            limiter: Arc::new(Limiter::default()),
            ledger: Arc::new(Ledger::default()),
            default_max_output: config.governance.default_max_output_tokens,
            metrics,
            end_user_rpm: config.governance.end_user_rpm,
            end_user_tpm: config.governance.end_user_tpm,
            webhook: config.governance.alert_webhook.clone(),
            redis: match &config.governance.redis {
                None => None,
                Some(cfg) => {
                    let state = RedisState {
                        cfg: cfg.clone(),
                        conn: tokio::sync::RwLock::new(None),
                        last_attempt: std::sync::Mutex::new(None),
                    };
                    // Connect now so the first request does not pay for it;
                    // if Redis is down the failure policy applies until it is back.
                    let _ = state.get().await;
                    Some(state)
                }
            },
        })
    }

    /// Output tokens assumed (and enforced) for requests that set no cap.
    pub fn default_max_output(&self) -> u64 {
        self.default_max_output
    }

    /// The stored hash of `key`.
    pub fn hash(&self, key: &str) -> String {
        self.hasher.hash(key)
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

    /// Whether a request of this caller needs admission at all.
    pub fn applies(&self, principal: Option<&Principal>, end_user: Option<&str>) -> bool {
        principal.is_some()
            || (end_user.is_some() && (self.end_user_rpm.is_some() || self.end_user_tpm.is_some()))
    }

    /// Rate limits, then the budget reservation, for one request (key, user,
    /// team and end-user scopes). All or nothing. Refusals are counted.
    #[allow(clippy::too_many_arguments)]
    pub async fn admit(
        &self,
        store: &Store,
        principal: Option<&Principal>,
        end_user: Option<&str>,
        alias: &Alias,
        input_tokens: u64,
        output_cap: Option<u32>,
        choices: u32,
    ) -> Result<Admitted, ApiError> {
        let r = self
            .admit_inner(
                store,
                principal,
                end_user,
                alias,
                input_tokens,
                output_cap,
                choices,
            )
            .await;
        if let Err(e) = &r {
            let scope = scope_kind(&e.message);
            let labels = modelgate_telemetry::ScopeLabels { scope };
            match e.class {
                ErrorClass::RateLimited => self.metrics.rate_limited.get_or_create(&labels).inc(),
                ErrorClass::BudgetExceeded => {
                    self.metrics.budget_rejected.get_or_create(&labels).inc()
                }
                ErrorClass::DependencyUnavailable => self
                    .metrics
                    .shared_state_failures
                    .get_or_create(&modelgate_telemetry::KindLabels { kind: "admission" })
                    .inc(),
                _ => 0,
            };
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    async fn admit_inner(
        &self,
        store: &Store,
        principal: Option<&Principal>,
        end_user: Option<&str>,
        alias: &Alias,
        input_tokens: u64,
        output_cap: Option<u32>,
        choices: u32,
    ) -> Result<Admitted, ApiError> {
        let mut checks = Vec::new();
        let mut budgets = Vec::new();
        let now_ms = now_ms();
        if let Some(u) = end_user
            && (self.end_user_rpm.is_some() || self.end_user_tpm.is_some())
        {
            // End users are counted per key: two tenants' "alice" are two people.
            let owner = principal.map_or("master", |p| p.key.id.as_str());
            checks.push(Check {
                scope: ScopeId::EndUser(format!("{owner}:{u}")).label(),
                rpm: self.end_user_rpm,
                tpm: self.end_user_tpm,
                max_parallel: None,
            });
        }
        let scopes = principal.map(Principal::scopes).unwrap_or_default();
        for (scope, l) in scopes {
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
        let max_output = output_cap.map_or(self.default_max_output, u64::from);
        let worst = if budgets.is_empty() {
            0
        } else {
            worst_case_cost(alias, input_tokens, max_output.saturating_mul(u64::from(choices.max(1))))
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorClass::Forbidden,
                        format!(
                            "`{}` has a deployment (or fallback) without a price, so a budget cannot bound it; set `price:` on the deployment.",
                            alias.name
                        ),
                    )
                    .with_code("unpriced_model")
                })?
        };
        if let Some(redis) = &self.redis {
            return self
                .admit_shared(redis, store, &checks, input_tokens, &budgets, worst)
                .await;
        }
        // Budget first, then rate limits: a refusal by either leaves nothing behind
        // (a dropped reservation is released).
        let budget = if budgets.is_empty() {
            None
        } else {
            Some(
                self.ledger
                    .reserve(budgets, worst)
                    .map_err(|b| budget_error(&b.scope, b.limit, b.spent + b.reserved, b.needed))?,
            )
        };
        let limits = self
            .limiter
            .admit(&checks, input_tokens, Instant::now())
            .map_err(|r| limit_error(&r))?;
        let info = limits.info;
        Ok(Admitted {
            limits: Some(limits),
            budget,
            shared: None,
            info,
        })
    }

    /// Admission through Redis (atomic on every scope across replicas).
    async fn admit_shared(
        &self,
        redis: &RedisState,
        store: &Store,
        checks: &[Check],
        tokens: u64,
        budgets: &[BudgetCheck],
        worst: i64,
    ) -> Result<Admitted, ApiError> {
        let rid = keys::random_token(16).unwrap_or_else(|_| format!("{}", now_ms()));
        let unreachable = |why: &str| -> Result<Admitted, ApiError> {
            let has_limits = checks
                .iter()
                .any(|c| c.rpm.is_some() || c.tpm.is_some() || c.max_parallel.is_some());
            tracing::warn!(reason = %why, "shared limits unavailable; applying the configured failure policy");
            if !budgets.is_empty() && !redis.cfg.budgets_fail_open {
                return Err(ApiError::new(
                    ErrorClass::DependencyUnavailable,
                    "Budgets cannot be checked right now (shared state unreachable); the request was not sent.",
                )
                .with_code("budget_unavailable"));
            }
            if has_limits && !redis.cfg.limits_fail_open {
                return Err(ApiError::new(
                    ErrorClass::DependencyUnavailable,
                    "Rate limits cannot be checked right now (shared state unreachable); the request was not sent.",
                )
                .with_code("rate_limit_unavailable"));
            }
            Ok(Admitted::default())
        };
        let Some(shared) = redis.get().await else {
            return unreachable("not connected");
        };
        for _ in 0..4 {
            match shared
                .admit(checks, tokens, budgets, worst, &rid, now_ms())
                .await
            {
                Ok(grant) => {
                    let info = grant.info;
                    return Ok(Admitted {
                        limits: None,
                        budget: None,
                        shared: Some((shared, grant)),
                        info,
                    });
                }
                Err(Denied::Limit(r)) => return Err(limit_error(&r)),
                Err(Denied::Budget {
                    scope,
                    limit,
                    spent,
                    reserved,
                    needed,
                }) => {
                    return Err(budget_error(&scope, limit, spent + reserved, needed));
                }
                Err(Denied::Load {
                    scope,
                    period_start,
                }) => {
                    let Some(b) = budgets.iter().find(|b| b.scope == scope) else {
                        return unreachable("unknown scope to load");
                    };
                    let (kind, id) = scope_parts(&scope);
                    let spent = store
                        .spend_since(kind, id, period_start)
                        .await
                        .map_err(internal)?;
                    let ttl = match b.period {
                        Period::Total => None,
                        Period::Daily => Some(2 * 86_400),
                        Period::Weekly => Some(8 * 86_400),
                        Period::Monthly => Some(32 * 86_400),
                    };
                    if let Err(e) = shared.load_spend(&scope, period_start, spent, ttl).await {
                        return unreachable(&e.0);
                    }
                }
                Err(Denied::Unreachable(e)) => return unreachable(&e.0),
            }
        }
        unreachable("budget spend could not be loaded")
    }

    /// Reports soft-budget crossings: a warning, and the webhook if configured.
    pub fn alert(&self, alerts: Vec<SoftAlert>) {
        for a in alerts {
            self.metrics
                .budget_alerts
                .get_or_create(&modelgate_telemetry::ScopeLabels {
                    scope: scope_kind(&format!("for {}:", a.scope)),
                })
                .inc();
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

/// Settles a shared grant off the request path; `guard` keeps the request
/// counted as in flight (so shutdown waits) until Redis has it.
pub fn settle_shared(
    state: crate::state::AppState,
    shared: Shared,
    grant: Grant,
    tokens: u64,
    cost: i64,
    guard: crate::state::InFlightGuard,
) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let _guard = guard;
        match shared.settle(&grant, tokens, cost, now_ms()).await {
            Ok(crossed) => state.inner.governance.alert(
                crossed
                    .into_iter()
                    .map(|c| SoftAlert {
                        scope: c.scope,
                        spent: c.spent,
                        soft: c.soft,
                        limit: None,
                    })
                    .collect(),
            ),
            // The hold expires on its own; the spend is in the request log.
            Err(e) => tracing::error!(error = %e.0, "could not settle a shared budget hold"),
        }
    });
}

fn limit_error(r: &modelgate_policy::limiter::Rejection) -> ApiError {
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
}

fn budget_error(scope: &str, limit: i64, used: i64, needed: i64) -> ApiError {
    let usd = |n: i64| modelgate_core::Nanos(n).to_usd_string();
    ApiError::new(
        ErrorClass::BudgetExceeded,
        format!(
            "Budget exceeded for {scope}: spent ${} of ${}, this request may cost up to ${}.",
            usd(used),
            usd(limit),
            usd(needed)
        ),
    )
    .with_code("budget_exceeded")
}

/// The kind of scope a refusal message names (`... for team:abc ...`).
fn scope_kind(message: &str) -> &'static str {
    for kind in ["end_user", "team", "user", "key"] {
        if message.contains(&format!("for {kind}:")) {
            return kind;
        }
    }
    "other"
}

fn scope_parts(label: &str) -> (Scope, &str) {
    match label.split_once(':') {
        Some(("team", id)) => (Scope::Team, id),
        Some(("user", id)) => (Scope::User, id),
        Some((_, id)) => (Scope::Key, id),
        None => (Scope::Key, label),
    }
}

/// The most this request can cost on any deployment of `alias` (`None` when
/// one of them has no price, so nothing would bound it).
fn worst_case_cost(alias: &Alias, input_tokens: u64, max_output: u64) -> Option<i64> {
    let usage = Usage {
        input_tokens,
        output_tokens: max_output,
        // Priced as cache writes when those cost more than plain input.
        cache_write_tokens: input_tokens,
        ..Usage::default()
    };
    let plain = Usage {
        cache_write_tokens: 0,
        ..usage
    };
    let mut worst = 0i64;
    for d in &alias.deployments {
        let mut p = d.price?;
        // The prompt estimate is approximate: near a long-context threshold,
        // hold the long tier's rates.
        if let Some(t) = p.long.as_mut()
            && input_tokens.saturating_add(input_tokens / 4) > t.above
        {
            t.above = 0;
        }
        worst = worst.max(p.cost(&usage).0).max(p.cost(&plain).0);
    }
    Some(worst)
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
    // A key bound to a user (and no team of its own) answers to the user's team.
    let team_id = key
        .team_id
        .clone()
        .or_else(|| user.as_ref().and_then(|u| u.team_id.clone()));
    let team = match &team_id {
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
