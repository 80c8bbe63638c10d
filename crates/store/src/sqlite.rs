//! SQLite connection pool and migrations.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, SqlitePool};

use crate::{RequestRecord, StoreError};

/// Schema changes, applied in order, each once. Never edit a shipped entry: add one.
const MIGRATIONS: &[(i64, &str)] = &[
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
];

/// The embedded store.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the SQLite file at `path` and applies migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        Self::connect(opts).await
    }

    /// An in-memory store (tests).
    pub async fn open_memory() -> Result<Store, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?;
        Self::connect_with(
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1),
            opts,
        )
        .await
    }

    async fn connect(opts: SqliteConnectOptions) -> Result<Store, StoreError> {
        Self::connect_with(SqlitePoolOptions::new().max_connections(4), opts).await
    }

    async fn connect_with(
        pool_opts: SqlitePoolOptions,
        opts: SqliteConnectOptions,
    ) -> Result<Store, StoreError> {
        let pool = pool_opts
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for (version, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_none() {
                sqlx::raw_sql(*sql).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?, ?)")
                    .bind(version)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// Cheap liveness check for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Inserts records in one transaction.
    pub async fn insert_requests(&self, records: &[RequestRecord]) -> Result<(), StoreError> {
        // SQLite allows 32766 bound parameters; 29 columns x 500 rows stays well below.
        let mut tx = self.pool.begin().await?;
        for chunk in records.chunks(500) {
            let mut qb = QueryBuilder::new(
                "INSERT INTO request_log (id, started_at_ms, caller, route, requested_model, provider, deployment, upstream_model, stream, status, error_class, error_message, latency_us, ttft_us, input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, usage_estimated, cost_nanos, end_user, metadata, attempts, attempt_count, truncated, key_id, team_id, user_id) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(&r.id)
                    .push_bind(r.started_at_ms)
                    .push_bind(&r.caller)
                    .push_bind(&r.route)
                    .push_bind(&r.requested_model)
                    .push_bind(&r.provider)
                    .push_bind(&r.deployment)
                    .push_bind(&r.upstream_model)
                    .push_bind(r.stream)
                    .push_bind(i64::from(r.status))
                    .push_bind(&r.error_class)
                    .push_bind(&r.error_message)
                    .push_bind(to_i64(r.latency_us))
                    .push_bind(r.ttft_us.map(to_i64))
                    .push_bind(to_i64(r.input_tokens))
                    .push_bind(to_i64(r.output_tokens))
                    .push_bind(to_i64(r.cached_tokens))
                    .push_bind(to_i64(r.cache_write_tokens))
                    .push_bind(to_i64(r.reasoning_tokens))
                    .push_bind(r.usage_estimated)
                    .push_bind(r.cost_nanos)
                    .push_bind(&r.end_user)
                    .push_bind(&r.metadata)
                    .push_bind(&r.attempts)
                    .push_bind(i64::from(r.attempt_count))
                    .push_bind(r.truncated)
                    .push_bind(&r.key_id)
                    .push_bind(&r.team_id)
                    .push_bind(&r.user_id);
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest `limit` records, newest first.
    pub async fn recent_requests(&self, limit: u32) -> Result<Vec<RequestRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM request_log ORDER BY started_at_ms DESC, seq DESC LIMIT ?")
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(row_to_record).collect()
    }

    /// The newest record with this request id. Ids come from clients'
    /// `x-request-id` when well-formed, so several records may share one.
    pub async fn get_request(&self, id: &str) -> Result<Option<RequestRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM request_log WHERE id = ? ORDER BY seq DESC LIMIT 1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(row_to_record).transpose()
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn row_to_record(r: &sqlx::sqlite::SqliteRow) -> Result<RequestRecord, StoreError> {
    let u = |name: &str| -> Result<u64, StoreError> {
        Ok(u64::try_from(r.try_get::<i64, _>(name)?).unwrap_or(0))
    };
    Ok(RequestRecord {
        id: r.try_get("id")?,
        started_at_ms: r.try_get("started_at_ms")?,
        caller: r.try_get("caller")?,
        route: r.try_get("route")?,
        requested_model: r.try_get("requested_model")?,
        provider: r.try_get("provider")?,
        deployment: r.try_get("deployment")?,
        upstream_model: r.try_get("upstream_model")?,
        stream: r.try_get("stream")?,
        status: u16::try_from(r.try_get::<i64, _>("status")?).unwrap_or(0),
        error_class: r.try_get("error_class")?,
        error_message: r.try_get("error_message")?,
        latency_us: u("latency_us")?,
        ttft_us: r
            .try_get::<Option<i64>, _>("ttft_us")?
            .map(|v| u64::try_from(v).unwrap_or(0)),
        input_tokens: u("input_tokens")?,
        output_tokens: u("output_tokens")?,
        cached_tokens: u("cached_tokens")?,
        cache_write_tokens: u("cache_write_tokens")?,
        reasoning_tokens: u("reasoning_tokens")?,
        usage_estimated: r.try_get("usage_estimated")?,
        cost_nanos: r.try_get("cost_nanos")?,
        end_user: r.try_get("end_user")?,
        metadata: r.try_get("metadata")?,
        attempts: r.try_get("attempts")?,
        attempt_count: u32::try_from(r.try_get::<i64, _>("attempt_count")?).unwrap_or(0),
        truncated: r.try_get("truncated")?,
        key_id: r.try_get("key_id")?,
        team_id: r.try_get("team_id")?,
        user_id: r.try_get("user_id")?,
    })
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
