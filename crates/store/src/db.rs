//! The database pool (SQLite, the embedded default, or PostgreSQL) and
//! per-dialect migrations.
//!
//! Queries are written once with `?` placeholders; [`pg`] rewrites them to
//! `$1, $2, ...` for PostgreSQL, and [`with_pool!`] runs the same code against
//! whichever pool is configured.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow, Postgres};
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use crate::stats::Totals;
use crate::{RequestRecord, StoreError};

/// The latency bucket of `latency_us` in SQL (both dialects), the same as
/// [`crate::stats::latency_bucket`]: digit count and the two leading digits,
/// so no `log()` is needed (SQLite may lack it). Used by a shipped migration:
/// never change it — a new bucket scheme needs a new table.
macro_rules! latency_bucket_sql {
    () => {
        "CASE WHEN latency_us < 10 THEN 0 ELSE 1 + 20 * (LENGTH(CAST(latency_us AS TEXT)) - 2) + CASE WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 90 THEN 19 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 80 THEN 18 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 71 THEN 17 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 63 THEN 16 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 56 THEN 15 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 50 THEN 14 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 45 THEN 13 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 40 THEN 12 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 35 THEN 11 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 32 THEN 10 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 28 THEN 9 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 25 THEN 8 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 22 THEN 7 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 20 THEN 6 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 18 THEN 5 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 16 THEN 4 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 14 THEN 3 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 12 THEN 2 WHEN CAST(SUBSTR(CAST(latency_us AS TEXT), 1, 2) AS INTEGER) >= 11 THEN 1 ELSE 0 END END"
    };
}
#[cfg(test)]
pub(crate) use latency_bucket_sql;

/// Errors per hour and rollup dimension in the raw log (the backfill of
/// `spend_hourly.errors`). An error is what [`crate::stats::is_error`] says.
/// Used by a shipped migration: never change it.
macro_rules! errors_backfill {
    () => {
        "SELECT (started_at_ms / 3600000) * 3600000 AS h, COALESCE(key_id, '') AS k, COALESCE(team_id, '') AS t, COALESCE(user_id, '') AS u, requested_model AS m, COALESCE(provider, '') AS p, COUNT(*) AS n FROM request_log WHERE status >= 400 OR error_class IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6"
    };
}

/// The request log's key, team and user indexes as partial indexes (the same
/// SQL for both databases). Most rows have no team or user (and the master
/// key's have no key), and a NULL entry is never looked up, so those rows
/// skip the B-tree insert; `col = ?` implies `col IS NOT NULL`, which lets
/// both databases use them for the filters they serve. Used by a shipped
/// migration: never change it.
macro_rules! partial_owner_indexes {
    () => {
        "DROP INDEX request_log_key;
    DROP INDEX request_log_team;
    DROP INDEX request_log_user;
    CREATE INDEX request_log_key ON request_log (key_id, started_at_ms) WHERE key_id IS NOT NULL;
    CREATE INDEX request_log_team ON request_log (team_id, started_at_ms) WHERE team_id IS NOT NULL;
    CREATE INDEX request_log_user ON request_log (user_id, started_at_ms) WHERE user_id IS NOT NULL;"
    };
}

/// Schema changes, applied in order, each once. Never edit a shipped entry: add one.
const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE request_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL,
        started_at_ms INTEGER NOT NULL,
        caller TEXT NOT NULL,
        route TEXT NOT NULL,
        requested_model TEXT NOT NULL,
        provider TEXT,
        deployment TEXT,
        upstream_model TEXT,
        stream INTEGER NOT NULL,
        status INTEGER NOT NULL,
        error_class TEXT,
        error_message TEXT,
        latency_us INTEGER NOT NULL,
        ttft_us INTEGER,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL,
        reasoning_tokens INTEGER NOT NULL,
        usage_estimated INTEGER NOT NULL,
        cost_nanos INTEGER,
        end_user TEXT,
        metadata TEXT
    );
    CREATE INDEX request_log_started ON request_log (started_at_ms);
    CREATE INDEX request_log_id ON request_log (id);",
    ),
    (
        2,
        "ALTER TABLE request_log ADD COLUMN attempts TEXT;
    ALTER TABLE request_log ADD COLUMN attempt_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE request_log ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;",
    ),
    (
        3,
        "CREATE TABLE teams (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        models TEXT,
        rpm INTEGER, tpm INTEGER, max_parallel INTEGER,
        max_budget_nanos INTEGER, budget_period TEXT, soft_budget_nanos INTEGER,
        metadata TEXT,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX teams_name ON teams (name) WHERE deleted = 0;
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        team_id TEXT,
        models TEXT,
        rpm INTEGER, tpm INTEGER, max_parallel INTEGER,
        max_budget_nanos INTEGER, budget_period TEXT, soft_budget_nanos INTEGER,
        metadata TEXT,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX users_name ON users (name) WHERE deleted = 0;
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT,
        hash TEXT NOT NULL,
        prefix TEXT NOT NULL,
        team_id TEXT,
        user_id TEXT,
        role TEXT NOT NULL,
        models TEXT,
        rpm INTEGER, tpm INTEGER, max_parallel INTEGER,
        max_budget_nanos INTEGER, budget_period TEXT, soft_budget_nanos INTEGER,
        expires_at_ms INTEGER,
        metadata TEXT,
        enabled INTEGER NOT NULL,
        revoked_at_ms INTEGER,
        created_by TEXT,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    ALTER TABLE request_log ADD COLUMN key_id TEXT;
    ALTER TABLE request_log ADD COLUMN team_id TEXT;
    ALTER TABLE request_log ADD COLUMN user_id TEXT;
    CREATE INDEX request_log_key ON request_log (key_id, started_at_ms);
    CREATE INDEX request_log_team ON request_log (team_id, started_at_ms);
    CREATE INDEX request_log_user ON request_log (user_id, started_at_ms);",
    ),
    (4, "ALTER TABLE request_log ADD COLUMN cost_breakdown TEXT;"),
    (
        5,
        "CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        before_json TEXT,
        after_json TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );",
    ),
    (
        6,
        "CREATE TABLE spend_hourly (
        hour_ms INTEGER NOT NULL,
        key_id TEXT NOT NULL,
        team_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        model TEXT NOT NULL,
        provider TEXT NOT NULL,
        requests INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cost_nanos INTEGER NOT NULL,
        PRIMARY KEY (hour_ms, key_id, team_id, user_id, model, provider)
    );
    INSERT INTO spend_hourly SELECT (started_at_ms / 3600000) * 3600000, COALESCE(key_id, ''), COALESCE(team_id, ''), COALESCE(user_id, ''), requested_model, COALESCE(provider, ''), COUNT(*), SUM(input_tokens), SUM(output_tokens), COALESCE(SUM(cost_nanos), 0) FROM request_log GROUP BY 1, 2, 3, 4, 5, 6;",
    ),
    (
        7,
        "ALTER TABLE request_log ADD COLUMN request_body TEXT;
    ALTER TABLE request_log ADD COLUMN response_body TEXT;",
    ),
    (
        8,
        "CREATE INDEX spend_hourly_key ON spend_hourly (key_id, hour_ms);
    CREATE INDEX spend_hourly_team ON spend_hourly (team_id, hour_ms);
    CREATE INDEX spend_hourly_user ON spend_hourly (user_id, hour_ms);",
    ),
    (
        9,
        concat!(
            "ALTER TABLE spend_hourly ADD COLUMN errors INTEGER NOT NULL DEFAULT 0;
    UPDATE spend_hourly SET errors = e.n FROM (",
            errors_backfill!(),
            ") AS e WHERE spend_hourly.hour_ms = e.h AND spend_hourly.key_id = e.k AND spend_hourly.team_id = e.t AND spend_hourly.user_id = e.u AND spend_hourly.model = e.m AND spend_hourly.provider = e.p;
    CREATE TABLE latency_hourly (
        hour_ms INTEGER NOT NULL,
        model TEXT NOT NULL,
        provider TEXT NOT NULL,
        bucket INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        PRIMARY KEY (hour_ms, model, provider, bucket)
    );
    INSERT INTO latency_hourly SELECT (started_at_ms / 3600000) * 3600000, requested_model, COALESCE(provider, ''), ",
            latency_bucket_sql!(),
            ", COUNT(*) FROM request_log WHERE status < 400 AND error_class IS NULL GROUP BY 1, 2, 3, 4;"
        ),
    ),
    (
        10,
        partial_owner_indexes!(),
    ),
];

/// The same schema for PostgreSQL.
const PG_MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE request_log (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL,
        started_at_ms BIGINT NOT NULL,
        caller TEXT NOT NULL,
        route TEXT NOT NULL,
        requested_model TEXT NOT NULL,
        provider TEXT,
        deployment TEXT,
        upstream_model TEXT,
        stream BOOLEAN NOT NULL,
        status BIGINT NOT NULL,
        error_class TEXT,
        error_message TEXT,
        latency_us BIGINT NOT NULL,
        ttft_us BIGINT,
        input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL,
        cache_write_tokens BIGINT NOT NULL,
        reasoning_tokens BIGINT NOT NULL,
        usage_estimated BOOLEAN NOT NULL,
        cost_nanos BIGINT,
        end_user TEXT,
        metadata TEXT,
        attempts TEXT,
        attempt_count BIGINT NOT NULL DEFAULT 0,
        truncated BOOLEAN NOT NULL DEFAULT FALSE,
        key_id TEXT,
        team_id TEXT,
        user_id TEXT
    );
    CREATE INDEX request_log_started ON request_log (started_at_ms);
    CREATE INDEX request_log_id ON request_log (id);
    CREATE INDEX request_log_key ON request_log (key_id, started_at_ms);
    CREATE INDEX request_log_team ON request_log (team_id, started_at_ms);
    CREATE INDEX request_log_user ON request_log (user_id, started_at_ms);
    CREATE TABLE teams (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        models TEXT,
        rpm BIGINT, tpm BIGINT, max_parallel BIGINT,
        max_budget_nanos BIGINT, budget_period TEXT, soft_budget_nanos BIGINT,
        metadata TEXT,
        created_at_ms BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL,
        deleted BIGINT NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX teams_name ON teams (name) WHERE deleted = 0;
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        team_id TEXT,
        models TEXT,
        rpm BIGINT, tpm BIGINT, max_parallel BIGINT,
        max_budget_nanos BIGINT, budget_period TEXT, soft_budget_nanos BIGINT,
        metadata TEXT,
        created_at_ms BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL,
        deleted BIGINT NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX users_name ON users (name) WHERE deleted = 0;
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT,
        hash TEXT NOT NULL,
        prefix TEXT NOT NULL,
        team_id TEXT,
        user_id TEXT,
        role TEXT NOT NULL,
        models TEXT,
        rpm BIGINT, tpm BIGINT, max_parallel BIGINT,
        max_budget_nanos BIGINT, budget_period TEXT, soft_budget_nanos BIGINT,
        expires_at_ms BIGINT,
        metadata TEXT,
        enabled BOOLEAN NOT NULL,
        revoked_at_ms BIGINT,
        created_by TEXT,
        created_at_ms BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    ),
    (2, "ALTER TABLE request_log ADD COLUMN cost_breakdown TEXT;"),
    (
        3,
        "CREATE TABLE audit_log (
        seq BIGINT PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        before_json TEXT,
        after_json TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );",
    ),
    (
        4,
        "CREATE TABLE spend_hourly (
        hour_ms BIGINT NOT NULL,
        key_id TEXT NOT NULL,
        team_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        model TEXT NOT NULL,
        provider TEXT NOT NULL,
        requests BIGINT NOT NULL,
        input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL,
        cost_nanos BIGINT NOT NULL,
        PRIMARY KEY (hour_ms, key_id, team_id, user_id, model, provider)
    );
    INSERT INTO spend_hourly SELECT (started_at_ms / 3600000) * 3600000, COALESCE(key_id, ''), COALESCE(team_id, ''), COALESCE(user_id, ''), requested_model, COALESCE(provider, ''), COUNT(*), CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) FROM request_log GROUP BY 1, 2, 3, 4, 5, 6;",
    ),
    (
        5,
        "ALTER TABLE request_log ADD COLUMN request_body TEXT;
    ALTER TABLE request_log ADD COLUMN response_body TEXT;",
    ),
    (
        6,
        "CREATE INDEX spend_hourly_key ON spend_hourly (key_id, hour_ms);
    CREATE INDEX spend_hourly_team ON spend_hourly (team_id, hour_ms);
    CREATE INDEX spend_hourly_user ON spend_hourly (user_id, hour_ms);",
    ),
    (
        7,
        concat!(
            "ALTER TABLE spend_hourly ADD COLUMN errors BIGINT NOT NULL DEFAULT 0;
    UPDATE spend_hourly SET errors = e.n FROM (",
            errors_backfill!(),
            ") AS e WHERE spend_hourly.hour_ms = e.h AND spend_hourly.key_id = e.k AND spend_hourly.team_id = e.t AND spend_hourly.user_id = e.u AND spend_hourly.model = e.m AND spend_hourly.provider = e.p;
    CREATE TABLE latency_hourly (
        hour_ms BIGINT NOT NULL,
        model TEXT NOT NULL,
        provider TEXT NOT NULL,
        bucket BIGINT NOT NULL,
        requests BIGINT NOT NULL,
        PRIMARY KEY (hour_ms, model, provider, bucket)
    );
    INSERT INTO latency_hourly SELECT (started_at_ms / 3600000) * 3600000, requested_model, COALESCE(provider, ''), ",
            latency_bucket_sql!(),
            ", COUNT(*) FROM request_log WHERE status < 400 AND error_class IS NULL GROUP BY 1, 2, 3, 4;"
        ),
    ),
    (
        8,
        partial_owner_indexes!(),
    ),
];

/// The connection pool of the configured database.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

/// Rewrites `?` placeholders (outside string literals) to PostgreSQL's `$n`.
pub(crate) fn pg(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut in_str = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                in_str = !in_str;
                out.push(c);
            }
            '?' if !in_str => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// Runs `$body` with `$p` bound to the pool and `$sql` to the query text in
/// its dialect. The body is written once and compiled for both databases.
macro_rules! with_pool {
    ($pool:expr, $p:ident, $sql:ident = $raw:expr => $body:expr) => {
        match $pool {
            $crate::db::Pool::Sqlite($p) => {
                let $sql = sqlx::AssertSqlSafe(String::from($raw));
                $body
            }
            $crate::db::Pool::Pg($p) => {
                let $sql = sqlx::AssertSqlSafe($crate::db::pg(&$raw));
                $body
            }
        }
    };
}
pub(crate) use with_pool;

/// Typed column access shared by both row types.
pub(crate) trait Get {
    /// The column's value.
    fn get<T>(&self, col: &str) -> Result<T, sqlx::Error>
    where
        T: for<'r> sqlx::Decode<'r, Sqlite>
            + sqlx::Type<Sqlite>
            + for<'r> sqlx::Decode<'r, Postgres>
            + sqlx::Type<Postgres>;
}

impl Get for SqliteRow {
    fn get<T>(&self, col: &str) -> Result<T, sqlx::Error>
    where
        T: for<'r> sqlx::Decode<'r, Sqlite>
            + sqlx::Type<Sqlite>
            + for<'r> sqlx::Decode<'r, Postgres>
            + sqlx::Type<Postgres>,
    {
        self.try_get(col)
    }
}

impl Get for PgRow {
    fn get<T>(&self, col: &str) -> Result<T, sqlx::Error>
    where
        T: for<'r> sqlx::Decode<'r, Sqlite>
            + sqlx::Type<Sqlite>
            + for<'r> sqlx::Decode<'r, Postgres>
            + sqlx::Type<Postgres>,
    {
        self.try_get(col)
    }
}

/// The store: request log, governance entities, settings.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    /// Serialises audit appends within this process (PostgreSQL also takes a
    /// transaction lock, for other replicas).
    pub(crate) audit_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Rows per multi-row `INSERT` of the request log, largest first: a batch
/// takes as many of the first as fit, then one of each smaller size its
/// remainder needs (its binary digits).
const INSERT_SIZES: [usize; 8] = [128, 64, 32, 16, 8, 4, 2, 1];

/// The request-log columns, in bind order.
const INSERT_COLUMNS: &str = "id, started_at_ms, caller, route, requested_model, provider, deployment, upstream_model, stream, status, error_class, error_message, latency_us, ttft_us, input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, usage_estimated, cost_nanos, end_user, metadata, attempts, attempt_count, truncated, key_id, team_id, user_id, cost_breakdown, request_body, response_body";

/// The largest request-log `INSERT` for at most `rows` rows (`rows` > 0):
/// its SQL in the dialect, built once per process, and its row count.
fn insert_statement(postgres: bool, rows: usize) -> (&'static str, usize) {
    static SQL: std::sync::OnceLock<[Vec<String>; 2]> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        let columns = INSERT_COLUMNS.split(", ").count();
        let row = format!("({})", vec!["?"; columns].join(", "));
        let sqlite: Vec<String> = INSERT_SIZES
            .iter()
            .map(|&n| {
                format!(
                    "INSERT INTO request_log ({INSERT_COLUMNS}) VALUES {}",
                    vec![row.as_str(); n].join(", ")
                )
            })
            .collect();
        let dollar = sqlite.iter().map(|s| pg(s)).collect();
        [sqlite, dollar]
    });
    let i = INSERT_SIZES
        .iter()
        .position(|&n| n <= rows)
        .unwrap_or(INSERT_SIZES.len() - 1);
    (&sql[usize::from(postgres)][i], INSERT_SIZES[i])
}

impl Store {
    /// Opens `target`: a `postgres://` URL, or a SQLite file path.
    pub async fn open(target: &str) -> Result<Store, StoreError> {
        if target.starts_with("postgres://") || target.starts_with("postgresql://") {
            Self::open_postgres(target, None).await
        } else {
            Self::open_sqlite(Path::new(target)).await
        }
    }

    /// Opens (creating if needed) the SQLite file at `path` and applies migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await?;
        Self::ready(Pool::Sqlite(pool)).await
    }

    /// An in-memory SQLite store (tests).
    pub async fn open_memory() -> Result<Store, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await?;
        Self::ready(Pool::Sqlite(pool)).await
    }

    /// Opens PostgreSQL at `url`; with `schema`, everything lives in that
    /// schema (created if needed), so test runs cannot collide.
    pub async fn open_postgres(url: &str, schema: Option<&str>) -> Result<Store, StoreError> {
        Self::open_postgres_until(url, schema, i64::MAX).await
    }

    async fn open_postgres_until(
        url: &str,
        schema: Option<&str>,
        version: i64,
    ) -> Result<Store, StoreError> {
        let mut opts = PgConnectOptions::from_str(url)?;
        if let Some(s) = schema {
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(opts.clone())
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{s}\""
            )))
            .execute(&admin)
            .await?;
            admin.close().await;
            opts = opts.options([("search_path", s)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await?;
        Self::ready_until(Pool::Pg(pool), version).await
    }

    async fn ready(pool: Pool) -> Result<Store, StoreError> {
        Self::ready_until(pool, i64::MAX).await
    }

    /// The store with the migrations up to `version` applied.
    async fn ready_until(pool: Pool, version: i64) -> Result<Store, StoreError> {
        let store = Store {
            pool,
            audit_lock: std::sync::Arc::new(tokio::sync::Mutex::new(())),
        };
        store.migrate(version).await?;
        Ok(store)
    }

    /// Applies the migrations not applied yet (migration tests).
    #[cfg(test)]
    pub(crate) async fn migrate_all(&self) -> Result<(), StoreError> {
        self.migrate(i64::MAX).await
    }

    /// Which database this is: `sqlite` or `postgres`.
    pub fn dialect(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Pg(_) => "postgres",
        }
    }

    pub(crate) async fn migrate(&self, until: i64) -> Result<(), StoreError> {
        // Replicas starting together on an empty PostgreSQL database would race
        // to create the schema: one at a time (a session-level advisory lock).
        let lock = match &self.pool {
            Pool::Pg(p) => {
                let mut conn = p.acquire().await?;
                sqlx::query("SELECT pg_advisory_lock(7270091)")
                    .execute(&mut *conn)
                    .await?;
                Some(conn)
            }
            Pool::Sqlite(_) => None,
        };
        let result = self.migrate_locked(until).await;
        if let Some(mut conn) = lock {
            sqlx::query("SELECT pg_advisory_unlock(7270091)")
                .execute(&mut *conn)
                .await?;
        }
        result
    }

    async fn migrate_locked(&self, until: i64) -> Result<(), StoreError> {
        let migrations = match self.pool {
            Pool::Sqlite(_) => SQLITE_MIGRATIONS,
            Pool::Pg(_) => PG_MIGRATIONS,
        };
        with_pool!(&self.pool, p, sql = "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)" => {
            sqlx::query(sql).execute(p).await?;
        });
        for (version, body) in migrations.iter().filter(|(v, _)| *v <= until) {
            with_pool!(&self.pool, p, sql = "SELECT version FROM schema_migrations WHERE version = ?" => {
                let mut tx = p.begin().await?;
                let done: Option<i64> = sqlx::query_scalar(sql).bind(version).fetch_optional(&mut *tx).await?;
                if done.is_none() {
                    sqlx::raw_sql(*body).execute(&mut *tx).await?;
                    let insert = "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?, ?)";
                    let insert = match self.pool {
                        Pool::Sqlite(_) => insert.to_owned(),
                        Pool::Pg(_) => pg(insert),
                    };
                    sqlx::query(sqlx::AssertSqlSafe(insert))
                        .bind(version)
                        .bind(now_ms())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            });
        }
        Ok(())
    }

    /// Cheap liveness check for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(&self.pool, p, sql = "SELECT 1" => {
            sqlx::query(sql).execute(p).await?;
        });
        Ok(())
    }

    /// Inserts records in one transaction.
    pub async fn insert_requests(&self, records: &[RequestRecord]) -> Result<(), StoreError> {
        // Rows go in statements of 128 rows, and the remainder in statements
        // of 64, 32, ... 1 rows: eight fixed statements, each prepared once
        // per connection and reused, so no batch size makes SQL be parsed
        // again (it was most of the writer's work at moderate load) and the
        // statement cache stays bounded. 32 columns x 128 rows is far below
        // SQLite's 32766 and PostgreSQL's 65535 bound parameters.
        let postgres = matches!(self.pool, Pool::Pg(_));
        with_pool!(&self.pool, p, _sql = "" => {
            let mut tx = p.begin().await?;
            let mut rest = records;
            while !rest.is_empty() {
                let (sql, rows) = insert_statement(postgres, rest.len());
                let (chunk, tail) = rest.split_at(rows);
                rest = tail;
                let mut q = sqlx::query(sql);
                for r in chunk {
                    q = q
                        .bind(&r.id)
                        .bind(r.started_at_ms)
                        .bind(&r.caller)
                        .bind(&r.route)
                        .bind(&r.requested_model)
                        .bind(&r.provider)
                        .bind(&r.deployment)
                        .bind(&r.upstream_model)
                        .bind(r.stream)
                        .bind(i64::from(r.status))
                        .bind(&r.error_class)
                        .bind(&r.error_message)
                        .bind(to_i64(r.latency_us))
                        .bind(r.ttft_us.map(to_i64))
                        .bind(to_i64(r.input_tokens))
                        .bind(to_i64(r.output_tokens))
                        .bind(to_i64(r.cached_tokens))
                        .bind(to_i64(r.cache_write_tokens))
                        .bind(to_i64(r.reasoning_tokens))
                        .bind(r.usage_estimated)
                        .bind(r.cost_nanos)
                        .bind(&r.end_user)
                        .bind(&r.metadata)
                        .bind(&r.attempts)
                        .bind(i64::from(r.attempt_count))
                        .bind(r.truncated)
                        .bind(&r.key_id)
                        .bind(&r.team_id)
                        .bind(&r.user_id)
                        .bind(&r.cost_breakdown)
                        .bind(&r.request_body)
                        .bind(&r.response_body);
                }
                q.execute(&mut *tx).await?;
            }
            // Keep the hourly rollups current in the same transaction, so
            // reports never scan the raw log.
            let (spend, latency) = rollup(records);
            for ((hour, key, team, user, model, provider), t) in spend {
                let sql = "INSERT INTO spend_hourly (hour_ms, key_id, team_id, user_id, model, provider, requests, errors, input_tokens, output_tokens, cost_nanos) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hour_ms, key_id, team_id, user_id, model, provider) DO UPDATE SET requests = spend_hourly.requests + excluded.requests, errors = spend_hourly.errors + excluded.errors, input_tokens = spend_hourly.input_tokens + excluded.input_tokens, output_tokens = spend_hourly.output_tokens + excluded.output_tokens, cost_nanos = spend_hourly.cost_nanos + excluded.cost_nanos";
                let sql = match self.pool {
                    Pool::Sqlite(_) => sql.to_owned(),
                    Pool::Pg(_) => pg(sql),
                };
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(hour)
                    .bind(key)
                    .bind(team)
                    .bind(user)
                    .bind(model)
                    .bind(provider)
                    .bind(t.requests)
                    .bind(t.errors)
                    .bind(t.input_tokens)
                    .bind(t.output_tokens)
                    .bind(t.cost_nanos)
                    .execute(&mut *tx)
                    .await?;
            }
            for ((hour, model, provider, bucket), n) in latency {
                let sql = "INSERT INTO latency_hourly (hour_ms, model, provider, bucket, requests) VALUES (?, ?, ?, ?, ?) ON CONFLICT (hour_ms, model, provider, bucket) DO UPDATE SET requests = latency_hourly.requests + excluded.requests";
                let sql = match self.pool {
                    Pool::Sqlite(_) => sql.to_owned(),
                    Pool::Pg(_) => pg(sql),
                };
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(hour)
                    .bind(model)
                    .bind(provider)
                    .bind(bucket)
                    .bind(n)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The newest `limit` records, newest first.
    pub async fn recent_requests(&self, limit: u32) -> Result<Vec<RequestRecord>, StoreError> {
        with_pool!(&self.pool, p, sql = "SELECT * FROM request_log ORDER BY started_at_ms DESC, seq DESC LIMIT ?" => {
            let rows = sqlx::query(sql).bind(i64::from(limit)).fetch_all(p).await?;
            rows.iter().map(row_to_record).collect()
        })
    }

    /// The newest record with this request id. Ids come from clients'
    /// `x-request-id` when well-formed, so several records may share one.
    pub async fn get_request(&self, id: &str) -> Result<Option<RequestRecord>, StoreError> {
        with_pool!(&self.pool, p, sql = "SELECT * FROM request_log WHERE id = ? ORDER BY seq DESC LIMIT 1" => {
            let row = sqlx::query(sql).bind(id).fetch_optional(p).await?;
            row.as_ref().map(row_to_record).transpose()
        })
    }

    /// Records matching `f`, newest first, at most `f.limit`, before `f.before_seq`.
    pub async fn search_requests(
        &self,
        f: &RequestFilter,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        enum B<'a> {
            S(&'a str),
            I(i64),
        }
        let mut sql = String::from(
            "SELECT * FROM request_log WHERE started_at_ms >= ? AND started_at_ms < ?",
        );
        let mut binds = vec![B::I(f.from_ms), B::I(f.to_ms)];
        for (col, v) in [
            ("key_id", &f.key_id),
            ("team_id", &f.team_id),
            ("user_id", &f.user_id),
            ("requested_model", &f.model),
            ("provider", &f.provider),
        ] {
            if let Some(v) = v {
                sql.push_str(&format!(" AND {col} = ?"));
                binds.push(B::S(v));
            }
        }
        if let Some(s) = f.status {
            sql.push_str(" AND status = ?");
            binds.push(B::I(s));
        }
        if let Some(us) = f.min_latency_us {
            sql.push_str(" AND latency_us >= ?");
            binds.push(B::I(us));
        }
        if let Some(c) = f.before_seq {
            sql.push_str(" AND seq < ?");
            binds.push(B::I(c));
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?");
        binds.push(B::I(f.limit));
        with_pool!(&self.pool, p, sql = sql => {
            let mut q = sqlx::query(sql);
            for b in &binds {
                q = match b {
                    B::S(s) => q.bind(*s),
                    B::I(i) => q.bind(*i),
                };
            }
            let rows = q.fetch_all(p).await?;
            rows.iter().map(row_to_record).collect()
        })
    }

    /// Retention: clears captured payloads older than `captures_before_ms` and
    /// deletes log rows older than `log_before_ms` (spend rollups stay).
    /// Returns (payloads cleared, rows deleted).
    pub async fn purge(
        &self,
        captures_before_ms: i64,
        log_before_ms: Option<i64>,
    ) -> Result<(u64, u64), StoreError> {
        let cleared = with_pool!(&self.pool, p, sql = "UPDATE request_log SET request_body = NULL, response_body = NULL WHERE started_at_ms < ? AND (request_body IS NOT NULL OR response_body IS NOT NULL)" => {
            sqlx::query(sql).bind(captures_before_ms).execute(p).await?.rows_affected()
        });
        let deleted = match log_before_ms {
            None => 0,
            Some(before) => {
                with_pool!(&self.pool, p, sql = "DELETE FROM request_log WHERE started_at_ms < ?" => {
                    sqlx::query(sql).bind(before).execute(p).await?.rows_affected()
                })
            }
        };
        Ok((cleared, deleted))
    }

    /// Closes the pool (checkpointing SQLite's WAL).
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Pg(p) => p.close().await,
        }
    }
}

fn row_to_record(r: &impl Get) -> Result<RequestRecord, StoreError> {
    let u = |name: &str| -> Result<u64, StoreError> {
        Ok(u64::try_from(r.get::<i64>(name)?).unwrap_or(0))
    };
    Ok(RequestRecord {
        seq: r.get("seq")?,
        id: r.get("id")?,
        started_at_ms: r.get("started_at_ms")?,
        caller: r.get("caller")?,
        route: r.get("route")?,
        requested_model: r.get("requested_model")?,
        provider: r.get("provider")?,
        deployment: r.get("deployment")?,
        upstream_model: r.get("upstream_model")?,
        stream: r.get("stream")?,
        status: u16::try_from(r.get::<i64>("status")?).unwrap_or(0),
        error_class: r.get("error_class")?,
        error_message: r.get("error_message")?,
        latency_us: u("latency_us")?,
        ttft_us: r
            .get::<Option<i64>>("ttft_us")?
            .map(|v| u64::try_from(v).unwrap_or(0)),
        input_tokens: u("input_tokens")?,
        output_tokens: u("output_tokens")?,
        cached_tokens: u("cached_tokens")?,
        cache_write_tokens: u("cache_write_tokens")?,
        reasoning_tokens: u("reasoning_tokens")?,
        usage_estimated: r.get("usage_estimated")?,
        cost_nanos: r.get("cost_nanos")?,
        end_user: r.get("end_user")?,
        metadata: r.get("metadata")?,
        attempts: r.get("attempts")?,
        attempt_count: u32::try_from(r.get::<i64>("attempt_count")?).unwrap_or(0),
        truncated: r.get("truncated")?,
        key_id: r.get("key_id")?,
        team_id: r.get("team_id")?,
        user_id: r.get("user_id")?,
        cost_breakdown: r.get("cost_breakdown")?,
        request_body: r.get("request_body")?,
        response_body: r.get("response_body")?,
    })
}

type RollupKey = (i64, String, String, String, String, String);
type LatencyKey = (i64, String, String, i64);

/// A batch's rollup rows: totals per hour and dimension, and the latency
/// histogram of successful requests per hour, model and provider.
fn rollup(
    records: &[RequestRecord],
) -> (
    std::collections::BTreeMap<RollupKey, Totals>,
    std::collections::BTreeMap<LatencyKey, i64>,
) {
    let mut spend: std::collections::BTreeMap<RollupKey, Totals> = Default::default();
    let mut latency: std::collections::BTreeMap<LatencyKey, i64> = Default::default();
    for r in records {
        let hour = r.started_at_ms.div_euclid(3_600_000) * 3_600_000;
        let key = (
            hour,
            r.key_id.clone().unwrap_or_default(),
            r.team_id.clone().unwrap_or_default(),
            r.user_id.clone().unwrap_or_default(),
            r.requested_model.clone(),
            r.provider.clone().unwrap_or_default(),
        );
        let t = spend.entry(key).or_default();
        t.requests += 1;
        t.errors += i64::from(crate::stats::is_error(r));
        t.input_tokens += to_i64(r.input_tokens);
        t.output_tokens += to_i64(r.output_tokens);
        t.cost_nanos += r.cost_nanos.unwrap_or(0);
        if !crate::stats::is_error(r) {
            *latency
                .entry((
                    hour,
                    r.requested_model.clone(),
                    r.provider.clone().unwrap_or_default(),
                    crate::stats::latency_bucket(r.latency_us),
                ))
                .or_default() += 1;
        }
    }
    (spend, latency)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Filters of [`Store::search_requests`].
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub from_ms: i64,
    pub to_ms: i64,
    pub key_id: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub status: Option<i64>,
    pub min_latency_us: Option<i64>,
    /// Pagination: only records older than this sequence number.
    pub before_seq: Option<i64>,
    pub limit: i64,
}

#[cfg(test)]
impl Store {
    /// SQLite's query plan for `sql` (`EXPLAIN QUERY PLAN`, details joined);
    /// `None` on PostgreSQL.
    pub(crate) async fn sqlite_plan(&self, sql: &str) -> Option<String> {
        match &self.pool {
            Pool::Sqlite(p) => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .fetch_all(p)
                    .await
                    .expect("explain");
                Some(
                    rows.iter()
                        .map(|r| Row::get::<String, _>(r, "detail"))
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            }
            Pool::Pg(_) => None,
        }
    }

    /// The definition of index `name` as the database reports it.
    pub(crate) async fn index_definition(&self, name: &str) -> String {
        let row = match &self.pool {
            Pool::Sqlite(p) => sqlx::query("SELECT sql FROM sqlite_master WHERE name = ?")
                .bind(name)
                .fetch_one(p)
                .await
                .map(|r| Row::get::<String, _>(&r, 0)),
            Pool::Pg(p) => sqlx::query(
                "SELECT indexdef FROM pg_indexes WHERE indexname = $1 AND schemaname = current_schema()",
            )
            .bind(name)
            .fetch_one(p)
            .await
            .map(|r| Row::get::<String, _>(&r, 0)),
        };
        row.expect("index definition")
    }
}

/// Stores for the shared test suite: in-memory SQLite, and PostgreSQL when
/// `DATABASE_URL` is set (each in a fresh schema); says so when it is skipped.
#[cfg(test)]
pub(crate) async fn test_stores() -> Vec<Store> {
    test_stores_until(i64::MAX, i64::MAX).await
}

/// [`test_stores`] with the SQLite and PostgreSQL migrations applied only up
/// to the given versions: a store as an older release left it.
#[cfg(test)]
pub(crate) async fn test_stores_until(sqlite: i64, postgres: i64) -> Vec<Store> {
    let opts = SqliteConnectOptions::from_str("sqlite::memory:").expect("sqlite options");
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .connect_with(opts)
        .await
        .expect("sqlite");
    let mut out = vec![
        Store::ready_until(Pool::Sqlite(pool), sqlite)
            .await
            .expect("sqlite"),
    ];
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => {
            let schema = format!(
                "mg_test_{}_{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() % 1_000_000_007)
                    .unwrap_or(0)
            );
            out.push(
                Store::open_postgres_until(&url, Some(&schema), postgres)
                    .await
                    .expect("postgres"),
            );
        }
        _ => eprintln!("SKIPPED (postgres half): DATABASE_URL is not set"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{INSERT_COLUMNS, insert_statement, pg};

    #[test]
    fn placeholders_become_numbered() {
        assert_eq!(pg("SELECT ? , '?' , ?"), "SELECT $1 , '?' , $2");
    }

    #[test]
    fn batches_split_into_the_fixed_statement_sizes() {
        let split = |mut n: usize| {
            let mut sizes = Vec::new();
            while n > 0 {
                let (_, rows) = insert_statement(false, n);
                sizes.push(rows);
                n -= rows;
            }
            sizes
        };
        assert_eq!(split(1), [1]);
        assert_eq!(split(128), [128]);
        assert_eq!(split(300), [128, 128, 32, 8, 4]);
        assert_eq!(split(127), [64, 32, 16, 8, 4, 2, 1]);
        let columns = INSERT_COLUMNS.split(", ").count();
        for n in 1..=300 {
            let (sql, rows) = insert_statement(false, n);
            assert!(rows <= n);
            assert_eq!(sql.matches('?').count(), rows * columns);
            let (sql, _) = insert_statement(true, n);
            assert!(sql.ends_with(&format!("${})", rows * columns)));
        }
    }
}
