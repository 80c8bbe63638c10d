//! Reports behind the dashboard: `GET /admin/stats` (time series and
//! breakdowns) and `GET /admin/budgets` (every key's, team's and user's spend
//! in its current budget period).
//!
//! Both read the hourly rollups (`modelgate_store::stats`), never the raw
//! request log, so they answer in the same time at any log size. Latency
//! percentiles are estimates from a log-scale histogram of successful
//! requests (within about ±8%).

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use modelgate_core::Nanos;
use modelgate_policy::budget::Period;
use modelgate_store::governance::{Entity, Scope};
use modelgate_store::now_ms;
use modelgate_store::stats::{Bucket, Dimension, Histogram, Totals};
use serde_json::{Value, json};

use crate::admin::{admin_reading_log, parse_time, query, respond, store_err};
use crate::error::ApiError;
use crate::state::AppState;

/// Most time buckets one report may have.
pub const MAX_BUCKETS: i64 = 2000;
/// Default and largest number of rows per breakdown.
const DEFAULT_TOP: i64 = 10;
const MAX_TOP: i64 = 1000;
const DAY_MS: i64 = 86_400_000;

/// The validated query of `GET /admin/stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsParams {
    /// Start of the first bucket (inclusive, aligned to the bucket).
    pub from_ms: i64,
    /// End of the last bucket (exclusive, aligned to the bucket).
    pub to_ms: i64,
    pub bucket: Bucket,
    /// Rows per breakdown.
    pub top: i64,
}

impl StatsParams {
    /// Parses and checks `from`, `to` (RFC 3339 or Unix seconds; default: the
    /// last 24 hours), `bucket` (`hour`, default, or `day`) and `top`.
    pub fn parse(pairs: &[(String, String)], now_ms: i64) -> Result<StatsParams, ApiError> {
        let (mut from, mut to, mut bucket, mut top) = (None, None, None, None);
        for (k, v) in pairs {
            match k.as_str() {
                "from" => from = Some(parse_time(&Value::String(v.clone()), "from")?),
                "to" => to = Some(parse_time(&Value::String(v.clone()), "to")?),
                "bucket" => {
                    bucket = Some(Bucket::parse(v).ok_or_else(|| {
                        ApiError::bad_param("bucket", "'bucket' must be hour or day.")
                    })?)
                }
                "top" => {
                    let n = v
                        .parse::<i64>()
                        .ok()
                        .filter(|n| (1..=MAX_TOP).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_param(
                                "top",
                                format!("'top' must be an integer between 1 and {MAX_TOP}."),
                            )
                        })?;
                    top = Some(n);
                }
                other => {
                    return Err(ApiError::bad_param(
                        other,
                        format!("Unknown query parameter '{other}': use from, to, bucket or top."),
                    ));
                }
            }
        }
        let to = to.unwrap_or(now_ms);
        let from = from.unwrap_or(to - DAY_MS);
        if from >= to {
            return Err(ApiError::bad_param(
                "from",
                "'from' must be earlier than 'to'.",
            ));
        }
        let bucket = bucket.unwrap_or(Bucket::Hour);
        let b = bucket.ms();
        let from_ms = from.div_euclid(b) * b;
        let to_ms = (to.div_euclid(b) + i64::from(to.rem_euclid(b) != 0)) * b;
        if (to_ms - from_ms) / b > MAX_BUCKETS {
            return Err(ApiError::bad_param(
                "bucket",
                format!(
                    "The range holds more than {MAX_BUCKETS} {}s: shorten it or use bucket=day.",
                    bucket.as_str()
                ),
            ));
        }
        Ok(StatsParams {
            from_ms,
            to_ms,
            bucket,
            top: top.unwrap_or(DEFAULT_TOP),
        })
    }
}

fn ms(us: Option<f64>) -> Value {
    match us {
        // Milliseconds with microsecond precision.
        Some(us) => json!(us.round() / 1000.0),
        None => Value::Null,
    }
}

fn totals_json(t: &Totals, latency: Option<&Histogram>) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("requests".into(), json!(t.requests));
    m.insert("errors".into(), json!(t.errors));
    m.insert(
        "error_rate".into(),
        if t.requests > 0 {
            json!(t.errors as f64 / t.requests as f64)
        } else {
            Value::Null
        },
    );
    m.insert("input_tokens".into(), json!(t.input_tokens));
    m.insert("output_tokens".into(), json!(t.output_tokens));
    m.insert("cost_nanos".into(), json!(t.cost_nanos));
    m.insert(
        "spend_usd".into(),
        json!(Nanos(t.cost_nanos).to_usd_string()),
    );
    if let Some(h) = latency {
        m.insert("latency_p50_ms".into(), ms(h.quantile_us(0.5)));
        m.insert("latency_p95_ms".into(), ms(h.quantile_us(0.95)));
    }
    m
}

/// `GET /admin/stats?from=&to=&bucket=hour|day&top=`: totals, a dense time
/// series (every bucket of the range, zero when idle) and breakdowns by model,
/// provider, team, key and user, plus what is in flight right now.
pub async fn stats(
    State(state): State<AppState>,
    headers: HeaderMap,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let r = async {
        admin_reading_log(&state, &headers).await?;
        let p = StatsParams::parse(&query(pairs)?, now_ms())?;
        report(&state, &p).await
    }
    .await;
    respond(StatusCode::OK, r)
}

async fn report(state: &AppState, p: &StatsParams) -> Result<Value, ApiError> {
    let store = &state.inner.store;
    let (from, to) = (p.from_ms, p.to_ms);
    let series = store
        .totals_series(from, to, p.bucket)
        .await
        .map_err(store_err)?;
    let latency = store
        .latency_series(from, to, p.bucket)
        .await
        .map_err(store_err)?;
    let mut by_time: HashMap<i64, Totals> = series.into_iter().collect();
    let mut total = Totals::default();
    let mut total_latency = Histogram::default();
    let mut points = Vec::new();
    let b = p.bucket.ms();
    let mut t = from;
    while t < to {
        let x = by_time.remove(&t).unwrap_or_default();
        total.add(&x);
        let empty = Histogram::default();
        let h = latency.get(&t).unwrap_or(&empty);
        total_latency.merge(h);
        let mut point = serde_json::Map::new();
        point.insert("start_ms".into(), json!(t));
        point.extend(totals_json(&x, Some(h)));
        points.push(Value::Object(point));
        t += b;
    }

    let names = Names::load(state).await?;
    let mut breakdowns = serde_json::Map::new();
    for (label, dim) in [
        ("model", Dimension::Model),
        ("provider", Dimension::Provider),
        ("team", Dimension::Team),
        ("key", Dimension::Key),
        ("user", Dimension::User),
    ] {
        let rows = store
            .totals_by(dim, from, to, p.top)
            .await
            .map_err(store_err)?;
        let lat = store.latency_by(dim, from, to).await.map_err(store_err)?;
        let data: Vec<Value> = rows
            .iter()
            .map(|(g, x)| {
                let mut row = serde_json::Map::new();
                let group = (!g.is_empty()).then(|| g.clone());
                row.insert("group".into(), json!(group));
                if let Some(name) = names.of(dim, g) {
                    row.insert("name".into(), json!(name));
                }
                let empty = Histogram::default();
                let h = dim.has_latency().then(|| lat.get(g).unwrap_or(&empty));
                row.extend(totals_json(x, h));
                Value::Object(row)
            })
            .collect();
        breakdowns.insert(label.into(), Value::Array(data));
    }

    let mut totals = totals_json(&total, Some(&total_latency));
    totals.insert("latency_samples".into(), json!(total_latency.count()));
    Ok(json!({
        "object": "stats",
        "from_ms": from,
        "to_ms": to,
        "bucket": p.bucket.as_str(),
        "bucket_ms": b,
        "totals": totals,
        "series": points,
        "breakdowns": breakdowns,
        "live": live(state),
    }))
}

/// Requests in flight and each configured deployment's breaker, now.
fn live(state: &AppState) -> Value {
    let inner = &state.inner;
    let now = tokio::time::Instant::now();
    let snapshot = state.live();
    let deployments: Vec<Value> = snapshot
        .config
        .deployments
        .iter()
        .map(|d| {
            let health = snapshot.router.health(d);
            let breaker = match health.breaker(now) {
                modelgate_router::BreakerState::Closed => "closed",
                modelgate_router::BreakerState::HalfOpen { .. } => "half_open",
                modelgate_router::BreakerState::Open { .. } => "open",
            };
            json!({
                "name": d.name,
                "provider": d.provider_name(),
                "breaker": breaker,
                "in_flight": health.in_flight(),
            })
        })
        .collect();
    json!({ "in_flight": inner.in_flight.count(), "deployments": deployments })
}

/// Display names of keys, teams and users, for breakdown rows.
struct Names {
    keys: HashMap<String, String>,
    teams: HashMap<String, String>,
    users: HashMap<String, String>,
}

impl Names {
    async fn load(state: &AppState) -> Result<Names, ApiError> {
        let store = &state.inner.store;
        let keys = store
            .list_keys()
            .await
            .map_err(store_err)?
            .into_iter()
            .map(|k| (k.id, k.name.unwrap_or(k.prefix)))
            .collect();
        let member_names = |v: Vec<modelgate_store::governance::Member>| {
            v.into_iter().map(|m| (m.id, m.name)).collect()
        };
        Ok(Names {
            keys,
            teams: member_names(store.list_members(Entity::Team).await.map_err(store_err)?),
            users: member_names(store.list_members(Entity::User).await.map_err(store_err)?),
        })
    }

    fn of(&self, dim: Dimension, id: &str) -> Option<&String> {
        match dim {
            Dimension::Key => self.keys.get(id),
            Dimension::Team => self.teams.get(id),
            Dimension::User => self.users.get(id),
            Dimension::Model | Dimension::Provider => None,
        }
    }
}

/// `GET /admin/budgets`: every key, team and user with its budget (if any)
/// and what it has spent in its current budget period (all time without one),
/// from the hourly rollup, the same figure budget enforcement starts from.
pub async fn budgets(
    State(state): State<AppState>,
    headers: HeaderMap,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let r = async {
        admin_reading_log(&state, &headers).await?;
        if let Some((k, _)) = query(pairs)?.first() {
            return Err(ApiError::bad_param(
                k.as_str(),
                format!("Unknown query parameter '{k}': this endpoint takes none."),
            ));
        }
        budget_rows(&state).await
    }
    .await;
    respond(StatusCode::OK, r)
}

struct Row {
    scope: Scope,
    period: Period,
    value: serde_json::Map<String, Value>,
    id: String,
    max: Option<i64>,
}

async fn budget_rows(state: &AppState) -> Result<Value, ApiError> {
    let store = &state.inner.store;
    let now = now_ms();
    let mut rows: Vec<Row> = Vec::new();
    let limits = |m: &mut serde_json::Map<String, Value>,
                  l: &modelgate_store::governance::LimitFields| {
        let usd = |n: Option<i64>| n.map(|n| Nanos(n).to_usd_string());
        m.insert("max_budget_usd".into(), json!(usd(l.max_budget_nanos)));
        m.insert("soft_budget_usd".into(), json!(usd(l.soft_budget_nanos)));
        m.insert("max_budget_nanos".into(), json!(l.max_budget_nanos));
        m.insert("soft_budget_nanos".into(), json!(l.soft_budget_nanos));
    };
    for k in store.list_keys().await.map_err(store_err)? {
        let period = Period::parse(k.limits.budget_period.as_deref()).unwrap_or(Period::Total);
        let status = if k.revoked_at_ms.is_some() {
            "revoked"
        } else if k.expires_at_ms.is_some_and(|e| e <= now) {
            "expired"
        } else if !k.enabled {
            "disabled"
        } else {
            "active"
        };
        let mut m = serde_json::Map::new();
        m.insert("scope".into(), json!("key"));
        m.insert("id".into(), json!(k.id));
        m.insert(
            "name".into(),
            json!(k.name.clone().unwrap_or(k.prefix.clone())),
        );
        m.insert("key_prefix".into(), json!(k.prefix));
        m.insert("team_id".into(), json!(k.team_id));
        m.insert("user_id".into(), json!(k.user_id));
        m.insert("status".into(), json!(status));
        limits(&mut m, &k.limits);
        rows.push(Row {
            scope: Scope::Key,
            period,
            id: k.id,
            max: k.limits.max_budget_nanos,
            value: m,
        });
    }
    for (entity, scope, label) in [
        (Entity::Team, Scope::Team, "team"),
        (Entity::User, Scope::User, "user"),
    ] {
        for x in store.list_members(entity).await.map_err(store_err)? {
            let period = Period::parse(x.limits.budget_period.as_deref()).unwrap_or(Period::Total);
            let mut m = serde_json::Map::new();
            m.insert("scope".into(), json!(label));
            m.insert("id".into(), json!(x.id));
            m.insert("name".into(), json!(x.name));
            if entity == Entity::User {
                m.insert("team_id".into(), json!(x.team_id));
            }
            limits(&mut m, &x.limits);
            rows.push(Row {
                scope,
                period,
                id: x.id,
                max: x.limits.max_budget_nanos,
                value: m,
            });
        }
    }
    // One grouped query per (scope, period) in use, not one per row.
    let mut spent: HashMap<(u8, i64), HashMap<String, (i64, i64)>> = HashMap::new();
    let scope_no = |s: Scope| match s {
        Scope::Key => 0u8,
        Scope::Team => 1,
        Scope::User => 2,
    };
    let mut data = Vec::with_capacity(rows.len());
    for mut row in rows {
        let start = row.period.start(now);
        let slot = (scope_no(row.scope), start);
        let per = match spent.entry(slot) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                store
                    .spend_per_scope(row.scope, start)
                    .await
                    .map_err(store_err)?,
            ),
        };
        let (requests, cost) = per.get(&row.id).copied().unwrap_or((0, 0));
        let period_name = match row.period {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Total => "total",
        };
        let m = &mut row.value;
        m.insert("budget_period".into(), json!(period_name));
        m.insert("period_start_ms".into(), json!(start));
        m.insert("requests".into(), json!(requests));
        m.insert("spend_nanos".into(), json!(cost));
        m.insert("spend_usd".into(), json!(Nanos(cost).to_usd_string()));
        m.insert(
            "used".into(),
            match row.max {
                Some(max) if max > 0 => json!(cost as f64 / max as f64),
                Some(_) => json!(if cost > 0 { 1.0 } else { 0.0 }),
                None => Value::Null,
            },
        );
        data.push(Value::Object(row.value));
    }
    Ok(json!({ "object": "list", "data": data }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const NOW: i64 = 1_795_368_840_000; // 2026-11-22T17:34:00Z

    #[test]
    fn defaults_to_the_last_24_hours_in_whole_hours() {
        let p = StatsParams::parse(&[], NOW).unwrap();
        assert_eq!(p.bucket, Bucket::Hour);
        assert_eq!(p.to_ms, 1_795_370_400_000); // 18:00, the current hour included
        assert_eq!(p.from_ms, 1_795_280_400_000); // 17:00 the day before
        assert_eq!((p.to_ms - p.from_ms) / 3_600_000, 25);
        assert_eq!(p.top, DEFAULT_TOP);
    }

    #[test]
    fn days_align_to_utc_midnight() {
        let p = StatsParams::parse(
            &q(&[("from", "2026-11-01T12:00:00Z"), ("bucket", "day")]),
            NOW,
        )
        .unwrap();
        assert_eq!(p.from_ms % DAY_MS, 0);
        assert_eq!(p.to_ms % DAY_MS, 0);
        assert_eq!((p.to_ms - p.from_ms) / DAY_MS, 22);
    }

    #[test]
    fn bad_parameters_name_the_field() {
        for (pairs, param) in [
            (q(&[("bucket", "week")]), "bucket"),
            (q(&[("from", "yesterday")]), "from"),
            (q(&[("to", "2026-13-01T00:00:00Z")]), "to"),
            (q(&[("top", "0")]), "top"),
            (q(&[("top", "many")]), "top"),
            (q(&[("colour", "red")]), "colour"),
            (q(&[("from", "1795368840"), ("to", "1795368840")]), "from"),
            (q(&[("from", "2024-01-01T00:00:00Z")]), "bucket"),
        ] {
            let e = StatsParams::parse(&pairs, NOW).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            assert_eq!(e.param.as_deref(), Some(param), "{pairs:?}");
        }
        // The same long range is fine by day.
        assert!(
            StatsParams::parse(
                &q(&[("from", "2024-01-01T00:00:00Z"), ("bucket", "day")]),
                NOW
            )
            .is_ok()
        );
    }
}
