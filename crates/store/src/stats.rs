//! Reports for the dashboard and `GET /admin/stats`, read from the hourly
//! rollups the log writer keeps (`spend_hourly`, `latency_hourly`), never from
//! the raw request log, so they cost the same at any log size.
//!
//! Latency is kept as a histogram per hour, model and provider over fixed
//! log-scale buckets (20 per decade, from 10 µs up); percentiles are estimated
//! from it by interpolating inside the bucket that holds the rank. Bucket
//! bounds are at most 17% apart, so an estimate is within about ±8% of the
//! exact value.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::db::{Get, with_pool};
use crate::governance::Scope;
use crate::{RequestRecord, Store, StoreError};

/// Whether a record counts as an error in reports: the client got an error
/// status, or the request failed after its status was sent (a broken stream,
/// a client that went away).
pub fn is_error(r: &RequestRecord) -> bool {
    r.status >= 400 || r.error_class.is_some()
}

/// Lower bounds of the buckets within one decade, as two leading digits: the
/// Renard R20 series (1.0, 1.12, 1.25, 1.4, ... 9.0) rounded to two digits.
const R20: [u64; 20] = [
    10, 11, 12, 14, 16, 18, 20, 22, 25, 28, 32, 35, 40, 45, 50, 56, 63, 71, 80, 90,
];

/// The latency histogram bucket of `us` microseconds: 0 holds `[0, 10 µs)`;
/// bucket `1 + 20·(d − 2) + i` holds values with `d` decimal digits whose two
/// leading digits are at least `R20[i]` (below `R20[i + 1]`). Integer-only, so
/// the SQL version in the migrations computes exactly the same buckets.
pub fn latency_bucket(us: u64) -> i64 {
    if us < 10 {
        return 0;
    }
    let digits = us.ilog10() + 1;
    let leading = us / 10u64.pow(digits - 2);
    let i = R20.iter().rposition(|&l| l <= leading).unwrap_or(0);
    1 + 20 * i64::from(digits - 2) + i as i64
}

/// The smallest latency (µs) in `bucket` (the largest is the next bucket's floor).
pub fn bucket_floor_us(bucket: i64) -> f64 {
    if bucket <= 0 {
        return 0.0;
    }
    let i = usize::try_from((bucket - 1) % 20).unwrap_or(0);
    let decade = i32::try_from((bucket - 1) / 20).unwrap_or(i32::MAX);
    R20[i] as f64 * 10f64.powi(decade)
}

/// Request counts, tokens and cost over some span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Nano-dollars.
    pub cost_nanos: i64,
}

impl Totals {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Totals) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost_nanos += other.cost_nanos;
    }
}

/// A latency histogram: request count per bucket (see [`latency_bucket`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram(pub BTreeMap<i64, i64>);

impl Histogram {
    /// Adds `n` requests to `bucket`.
    pub fn add(&mut self, bucket: i64, n: i64) {
        *self.0.entry(bucket).or_default() += n;
    }

    /// Adds every bucket of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (&b, &n) in &other.0 {
            self.add(b, n);
        }
    }

    /// Requests counted.
    pub fn count(&self) -> i64 {
        self.0.values().sum()
    }

    /// The estimated `q`-quantile (0..=1) in microseconds; `None` when empty.
    /// Inside the bucket holding the rank, values are assumed spread evenly on
    /// a log scale (linearly in bucket 0, which starts at zero).
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n <= 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * n as f64;
        let mut seen = 0i64;
        let mut last = 0;
        for (&b, &c) in &self.0 {
            if c <= 0 {
                continue;
            }
            last = b;
            if (seen + c) as f64 >= rank {
                let f = ((rank - seen as f64) / c as f64).clamp(0.0, 1.0);
                let (lo, hi) = (bucket_floor_us(b), bucket_floor_us(b + 1));
                return Some(if lo <= 0.0 {
                    hi * f
                } else {
                    lo * (hi / lo).powf(f)
                });
            }
            seen += c;
        }
        Some(bucket_floor_us(last + 1))
    }
}

/// Width of a report's time buckets (rollups are hourly; days are UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    /// Parses `hour` or `day`.
    pub fn parse(s: &str) -> Option<Bucket> {
        match s {
            "hour" => Some(Bucket::Hour),
            "day" => Some(Bucket::Day),
            _ => None,
        }
    }

    /// The bucket's width in milliseconds.
    pub fn ms(self) -> i64 {
        match self {
            Bucket::Hour => 3_600_000,
            Bucket::Day => 86_400_000,
        }
    }

    /// `hour` or `day`.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }
}

/// What a breakdown groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Model,
    Provider,
    Team,
    Key,
    User,
}

impl Dimension {
    fn column(self) -> &'static str {
        match self {
            Dimension::Model => "model",
            Dimension::Provider => "provider",
            Dimension::Team => "team_id",
            Dimension::Key => "key_id",
            Dimension::User => "user_id",
        }
    }

    /// Whether the latency rollup has this dimension (model and provider only).
    pub fn has_latency(self) -> bool {
        matches!(self, Dimension::Model | Dimension::Provider)
    }
}

const SUMS: &str = "CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS requests, CAST(COALESCE(SUM(errors), 0) AS BIGINT) AS errors, CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost_nanos";

fn totals_of(r: &impl Get) -> Result<Totals, StoreError> {
    Ok(Totals {
        requests: r.get("requests")?,
        errors: r.get("errors")?,
        input_tokens: r.get("input_tokens")?,
        output_tokens: r.get("output_tokens")?,
        cost_nanos: r.get("cost_nanos")?,
    })
}

impl Store {
    /// Totals per time bucket for hours in `[from_ms, to_ms)`, oldest first;
    /// buckets without traffic are absent.
    pub async fn totals_series(
        &self,
        from_ms: i64,
        to_ms: i64,
        bucket: Bucket,
    ) -> Result<Vec<(i64, Totals)>, StoreError> {
        let b = bucket.ms();
        let sql = format!(
            "SELECT (hour_ms / {b}) * {b} AS t, {SUMS} FROM spend_hourly WHERE hour_ms >= ? AND hour_ms < ? GROUP BY 1 ORDER BY 1"
        );
        with_pool!(&self.pool, p, sql = sql => {
            let rows = sqlx::query(sql).bind(from_ms).bind(to_ms).fetch_all(p).await?;
            rows.iter().map(|r| Ok((r.get::<i64>("t")?, totals_of(r)?))).collect()
        })
    }

    /// The latency histogram of successful requests per time bucket.
    pub async fn latency_series(
        &self,
        from_ms: i64,
        to_ms: i64,
        bucket: Bucket,
    ) -> Result<BTreeMap<i64, Histogram>, StoreError> {
        let b = bucket.ms();
        let sql = format!(
            "SELECT (hour_ms / {b}) * {b} AS t, bucket, CAST(SUM(requests) AS BIGINT) AS n FROM latency_hourly WHERE hour_ms >= ? AND hour_ms < ? GROUP BY 1, 2"
        );
        let mut out: BTreeMap<i64, Histogram> = BTreeMap::new();
        with_pool!(&self.pool, p, sql = sql => {
            for r in sqlx::query(sql).bind(from_ms).bind(to_ms).fetch_all(p).await? {
                out.entry(r.get("t")?).or_default().add(r.get("bucket")?, r.get("n")?);
            }
        });
        Ok(out)
    }

    /// Totals per value of `dim` (`""` = none, e.g. no team), dearest first
    /// (then busiest), at most `limit` rows.
    pub async fn totals_by(
        &self,
        dim: Dimension,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<(String, Totals)>, StoreError> {
        let col = dim.column();
        let sql = format!(
            "SELECT {col} AS g, {SUMS} FROM spend_hourly WHERE hour_ms >= ? AND hour_ms < ? GROUP BY 1 ORDER BY cost_nanos DESC, requests DESC, g LIMIT ?"
        );
        with_pool!(&self.pool, p, sql = sql => {
            let rows = sqlx::query(sql).bind(from_ms).bind(to_ms).bind(limit).fetch_all(p).await?;
            rows.iter().map(|r| Ok((r.get::<String>("g")?, totals_of(r)?))).collect()
        })
    }

    /// The latency histogram of successful requests per model or provider
    /// (empty for dimensions the latency rollup does not have).
    pub async fn latency_by(
        &self,
        dim: Dimension,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<HashMap<String, Histogram>, StoreError> {
        let mut out: HashMap<String, Histogram> = HashMap::new();
        if !dim.has_latency() {
            return Ok(out);
        }
        let col = dim.column();
        let sql = format!(
            "SELECT {col} AS g, bucket, CAST(SUM(requests) AS BIGINT) AS n FROM latency_hourly WHERE hour_ms >= ? AND hour_ms < ? GROUP BY 1, 2"
        );
        with_pool!(&self.pool, p, sql = sql => {
            for r in sqlx::query(sql).bind(from_ms).bind(to_ms).fetch_all(p).await? {
                out.entry(r.get("g")?).or_default().add(r.get("bucket")?, r.get("n")?);
            }
        });
        Ok(out)
    }

    /// Requests and cost (nano-dollars) of every key, team or user since
    /// `since_ms` (whole hours, as budgets count), by id.
    pub async fn spend_per_scope(
        &self,
        scope: Scope,
        since_ms: i64,
    ) -> Result<HashMap<String, (i64, i64)>, StoreError> {
        let col = match scope {
            Scope::Key => "key_id",
            Scope::Team => "team_id",
            Scope::User => "user_id",
        };
        let sql = format!(
            "SELECT {col} AS g, CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS requests, CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost_nanos FROM spend_hourly WHERE hour_ms >= ? AND {col} <> '' GROUP BY 1"
        );
        with_pool!(&self.pool, p, sql = sql => {
            let rows = sqlx::query(sql).bind(since_ms).fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok((r.get::<String>("g")?, (r.get("requests")?, r.get("cost_nanos")?))))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log_scale_and_ordered() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(9), 0);
        assert_eq!(latency_bucket(10), 1);
        assert_eq!(latency_bucket(11), 2);
        assert_eq!(latency_bucket(99), 20);
        assert_eq!(latency_bucket(100), 21);
        assert_eq!(latency_bucket(1_000_000), 101);
        assert_eq!(latency_bucket(u64::MAX), 1 + 20 * 18 + 5);
        let mut prev = 0;
        for us in (0..5_000_000u64).step_by(7) {
            let b = latency_bucket(us);
            assert!(b >= prev, "monotonic at {us}");
            assert!(bucket_floor_us(b) <= us as f64, "{us} below its floor");
            assert!(
                (us as f64) < bucket_floor_us(b + 1),
                "{us} above its bucket"
            );
            prev = b;
        }
        for b in 1..200 {
            let ratio = bucket_floor_us(b + 1) / bucket_floor_us(b);
            assert!(ratio > 1.0 && ratio <= 1.17, "bucket {b}: {ratio}");
        }
    }

    #[test]
    fn quantiles_are_close_to_exact() {
        // 1..=1000 ms, evenly: p50 ≈ 500 ms, p95 ≈ 950 ms.
        let mut h = Histogram::default();
        for ms in 1..=1000u64 {
            h.add(latency_bucket(ms * 1000), 1);
        }
        let p50 = h.quantile_us(0.5).unwrap() / 1000.0;
        let p95 = h.quantile_us(0.95).unwrap() / 1000.0;
        assert!((p50 - 500.0).abs() / 500.0 < 0.08, "p50 {p50}");
        assert!((p95 - 950.0).abs() / 950.0 < 0.08, "p95 {p95}");
        assert_eq!(Histogram::default().quantile_us(0.5), None);
        // One value: the estimate stays inside its bucket.
        let mut one = Histogram::default();
        one.add(latency_bucket(2_000), 1);
        let q = one.quantile_us(0.99).unwrap();
        assert!((2_000.0..2_240.0).contains(&q), "{q}");
    }

    fn rec(id: &str, at: i64, status: u16, latency_us: u64) -> RequestRecord {
        RequestRecord {
            id: id.into(),
            started_at_ms: at,
            caller: "k".into(),
            route: "chat".into(),
            requested_model: "m1".into(),
            provider: Some("mock".into()),
            status,
            error_class: (status >= 400).then(|| "upstream_error".to_owned()),
            latency_us,
            input_tokens: 2,
            output_tokens: 3,
            cost_nanos: Some(10),
            key_id: Some("k1".into()),
            team_id: Some("t1".into()),
            ..RequestRecord::default()
        }
    }

    #[tokio::test]
    async fn series_breakdowns_and_latency_from_the_rollups() {
        for s in crate::db::test_stores().await {
            series(s).await;
        }
    }

    async fn series(s: Store) {
        const H: i64 = 3_600_000;
        let mut recs = vec![
            rec("a", 10, 200, 1_000),
            rec("b", 20, 200, 3_000),
            rec("c", 30, 502, 9_000_000),
            rec("d", H + 5, 200, 100_000),
        ];
        let mut other = rec("e", 2 * H + 1, 200, 50_000);
        other.requested_model = "m2".into();
        other.provider = Some("openai".into());
        other.key_id = None;
        other.team_id = None;
        other.cost_nanos = Some(1_000);
        recs.push(other);
        // A stream that broke after its 200: an error, not in the latency.
        let mut broken = rec("f", H + 6, 200, 7_000_000);
        broken.error_class = Some("stream_interrupted".into());
        recs.push(broken);
        // Two batches, so the upserts add up.
        s.insert_requests(&recs[..3]).await.unwrap();
        s.insert_requests(&recs[3..]).await.unwrap();

        let series = s.totals_series(0, 3 * H, Bucket::Hour).await.unwrap();
        let hours: Vec<_> = series
            .iter()
            .map(|(t, x)| (*t, x.requests, x.errors))
            .collect();
        assert_eq!(hours, vec![(0, 3, 1), (H, 2, 1), (2 * H, 1, 0)]);
        assert_eq!(series[0].1.input_tokens, 6);
        assert_eq!(series[0].1.cost_nanos, 30);
        let day = s.totals_series(0, 3 * H, Bucket::Day).await.unwrap();
        assert_eq!(day.len(), 1);
        assert_eq!((day[0].0, day[0].1.requests, day[0].1.errors), (0, 6, 2));
        // The range counts whole hours.
        assert_eq!(
            s.totals_series(H, 2 * H, Bucket::Hour).await.unwrap().len(),
            1
        );

        let lat = s.latency_series(0, 3 * H, Bucket::Hour).await.unwrap();
        assert_eq!(lat[&0].count(), 2, "the 502 is not in the latency");
        assert_eq!(lat[&H].count(), 1, "the broken stream is not either");
        let p50 = lat[&0].quantile_us(0.5).unwrap();
        assert!((1_000.0..3_200.0).contains(&p50), "{p50}");

        let by_model = s.totals_by(Dimension::Model, 0, 3 * H, 10).await.unwrap();
        assert_eq!(by_model[0].0, "m2", "dearest first");
        assert_eq!(by_model[1].1.requests, 5);
        assert_eq!(by_model[1].1.errors, 2);
        let by_key = s.totals_by(Dimension::Key, 0, 3 * H, 10).await.unwrap();
        assert_eq!(
            by_key
                .iter()
                .map(|(g, t)| (g.as_str(), t.requests))
                .collect::<Vec<_>>(),
            vec![("", 1), ("k1", 5)]
        );
        assert_eq!(
            s.totals_by(Dimension::Team, 0, 3 * H, 1)
                .await
                .unwrap()
                .len(),
            1
        );
        let lat_by = s.latency_by(Dimension::Provider, 0, 3 * H).await.unwrap();
        assert_eq!(lat_by["mock"].count(), 3);
        assert_eq!(lat_by["openai"].count(), 1);
        assert!(
            s.latency_by(Dimension::Key, 0, 3 * H)
                .await
                .unwrap()
                .is_empty()
        );

        let per_key = s.spend_per_scope(Scope::Key, H).await.unwrap();
        assert_eq!(per_key["k1"], (2, 20));
        assert!(!per_key.contains_key(""));
        let per_team = s.spend_per_scope(Scope::Team, 0).await.unwrap();
        assert_eq!(per_team["t1"], (5, 50));
    }

    /// The SQL bucket expression (used to backfill old logs in the migration)
    /// agrees with [`latency_bucket`].
    #[tokio::test]
    async fn sql_buckets_match_rust() {
        for s in crate::db::test_stores().await {
            let mut values: Vec<u64> = vec![0, 1, 9, 10, 11, 12, 13, 14, 99, 100, 109, 110];
            let mut v = 1u64;
            while v < 10_000_000_000 {
                values.extend([v, v + 1, v * 11 / 10, v * 5 / 4, v * 7 / 4, v * 9 / 10]);
                v *= 3;
            }
            let sql = concat!(
                "SELECT CAST(",
                crate::db::latency_bucket_sql!(),
                " AS BIGINT) AS b FROM (SELECT CAST(? AS BIGINT) AS latency_us) AS x"
            );
            for us in values {
                let got: i64 = crate::db::with_pool!(&s.pool, p, q = sql => {
                    sqlx::query_scalar(q).bind(us as i64).fetch_one(p).await.unwrap()
                });
                assert_eq!(got, latency_bucket(us), "{us} µs on {}", s.dialect());
            }
        }
    }

    /// Migrating a log written before the rollups had errors and latency
    /// backfills both (SQLite migration 9, PostgreSQL migration 7).
    #[tokio::test]
    async fn migration_backfills_errors_and_latency() {
        for s in crate::db::test_stores_until(8, 6).await {
            crate::db::with_pool!(&s.pool, p, q = "INSERT INTO request_log (id, started_at_ms, caller, route, requested_model, provider, stream, status, error_class, latency_us, input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, usage_estimated, cost_nanos) VALUES ('x', 100, 'm', 'chat', 'm1', 'mock', FALSE, 200, NULL, 5000, 1, 1, 0, 0, 0, FALSE, 1), ('y', 200, 'm', 'chat', 'm1', 'mock', FALSE, 502, 'upstream_error', 9000, 1, 1, 0, 0, 0, FALSE, 1), ('z', 3600000, 'm', 'chat', 'm1', 'mock', TRUE, 200, 'stream_interrupted', 9000, 1, 1, 0, 0, 0, FALSE, 1); INSERT INTO spend_hourly VALUES (0, '', '', '', 'm1', 'mock', 2, 2, 2, 2), (3600000, '', '', '', 'm1', 'mock', 1, 1, 1, 1);" => {
                sqlx::raw_sql(q).execute(p).await.unwrap();
            });
            s.migrate_all().await.unwrap();
            let series = s.totals_series(0, 7_200_000, Bucket::Hour).await.unwrap();
            let got: Vec<_> = series
                .iter()
                .map(|(t, x)| (*t, x.requests, x.errors))
                .collect();
            assert_eq!(got, vec![(0, 2, 1), (3_600_000, 1, 1)], "{}", s.dialect());
            let lat = s.latency_series(0, 7_200_000, Bucket::Hour).await.unwrap();
            assert_eq!(lat.len(), 1);
            assert_eq!(lat[&0].0, BTreeMap::from([(latency_bucket(5000), 1)]));
            // And the writer keeps both current from here on.
            s.insert_requests(&[rec("n", 150, 500, 1)]).await.unwrap();
            let series = s.totals_series(0, 3_600_000, Bucket::Hour).await.unwrap();
            assert_eq!(series[0].1.errors, 2);
        }
    }
}
