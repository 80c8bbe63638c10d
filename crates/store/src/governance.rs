//! Teams, users, virtual keys and spend, as stored.
//!
//! Keys are stored as an HMAC of the whole key, never in plaintext; `prefix`
//! is what listings show. Limits are nullable columns: `None` means unlimited.

use serde::{Deserialize, Serialize};

use crate::db::{Get, with_pool};
use crate::now_ms;
use crate::{Store, StoreError};

/// Limits and budget shared by teams, users and keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitFields {
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub max_parallel: Option<i64>,
    pub max_budget_nanos: Option<i64>,
    /// `daily`, `weekly`, `monthly` or `total`.
    pub budget_period: Option<String>,
    pub soft_budget_nanos: Option<i64>,
}

/// What kind of principal an entity row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Team,
    User,
}

impl Entity {
    fn table(self) -> &'static str {
        match self {
            Entity::Team => "teams",
            Entity::User => "users",
        }
    }
}

/// A team or a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    pub name: String,
    /// Users only: the team they belong to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    pub models: Option<Vec<String>>,
    #[serde(flatten)]
    pub limits: LimitFields,
    pub metadata: Option<serde_json::Value>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A virtual key as stored (the hash, never the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRow {
    pub id: String,
    pub name: Option<String>,
    #[serde(skip)]
    pub hash: String,
    /// The first characters of the key, for listings.
    pub prefix: String,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    /// `admin` or `user`.
    pub role: String,
    pub models: Option<Vec<String>>,
    #[serde(flatten)]
    pub limits: LimitFields,
    pub expires_at_ms: Option<i64>,
    pub metadata: Option<serde_json::Value>,
    pub enabled: bool,
    pub revoked_at_ms: Option<i64>,
    pub created_by: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

fn json_list(v: &Option<Vec<String>>) -> Option<String> {
    v.as_ref().and_then(|l| serde_json::to_string(l).ok())
}

fn json_value(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|m| m.to_string())
}

fn parse_list(s: Option<String>) -> Option<Vec<String>> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

fn parse_value(s: Option<String>) -> Option<serde_json::Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

fn limits_of(r: &impl Get) -> Result<LimitFields, StoreError> {
    Ok(LimitFields {
        rpm: r.get("rpm")?,
        tpm: r.get("tpm")?,
        max_parallel: r.get("max_parallel")?,
        max_budget_nanos: r.get("max_budget_nanos")?,
        budget_period: r.get("budget_period")?,
        soft_budget_nanos: r.get("soft_budget_nanos")?,
    })
}

fn member_of(r: &impl Get, entity: Entity) -> Result<Member, StoreError> {
    Ok(Member {
        id: r.get("id")?,
        name: r.get("name")?,
        team_id: match entity {
            Entity::User => r.get("team_id")?,
            Entity::Team => None,
        },
        models: parse_list(r.get("models")?),
        limits: limits_of(r)?,
        metadata: parse_value(r.get("metadata")?),
        created_at_ms: r.get("created_at_ms")?,
        updated_at_ms: r.get("updated_at_ms")?,
    })
}

fn key_of(r: &impl Get) -> Result<KeyRow, StoreError> {
    Ok(KeyRow {
        id: r.get("id")?,
        name: r.get("name")?,
        hash: r.get("hash")?,
        prefix: r.get("prefix")?,
        team_id: r.get("team_id")?,
        user_id: r.get("user_id")?,
        role: r.get("role")?,
        models: parse_list(r.get("models")?),
        limits: limits_of(r)?,
        expires_at_ms: r.get("expires_at_ms")?,
        metadata: parse_value(r.get("metadata")?),
        enabled: r.get("enabled")?,
        revoked_at_ms: r.get("revoked_at_ms")?,
        created_by: r.get("created_by")?,
        created_at_ms: r.get("created_at_ms")?,
        updated_at_ms: r.get("updated_at_ms")?,
    })
}

/// One row of a spend report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpendRow {
    pub group: Option<String>,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_nanos: i64,
}

/// What a spend report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Key,
    Team,
    User,
    Model,
    Provider,
    Day,
}

impl GroupBy {
    /// Parses the `group_by` query value.
    pub fn parse(s: &str) -> Option<GroupBy> {
        Some(match s {
            "key" => GroupBy::Key,
            "team" => GroupBy::Team,
            "user" => GroupBy::User,
            "model" => GroupBy::Model,
            "provider" => GroupBy::Provider,
            "day" => GroupBy::Day,
            _ => return None,
        })
    }

    fn expr(self, postgres: bool) -> &'static str {
        match self {
            GroupBy::Key => "key_id",
            GroupBy::Team => "team_id",
            GroupBy::User => "user_id",
            GroupBy::Model => "model",
            GroupBy::Provider => "provider",
            GroupBy::Day if postgres => {
                "to_char(to_timestamp(hour_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            }
            GroupBy::Day => "strftime('%Y-%m-%d', hour_ms / 1000, 'unixepoch')",
        }
    }
}

/// Columns a spend query sums for one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Key,
    Team,
    User,
}

impl Store {
    /// Inserts a team or user.
    pub async fn create_member(&self, entity: Entity, m: &Member) -> Result<(), StoreError> {
        let user = entity == Entity::User;
        let sql = format!(
            "INSERT INTO {} (id, name, {} models, rpm, tpm, max_parallel, max_budget_nanos, budget_period, soft_budget_nanos, metadata, created_at_ms, updated_at_ms) VALUES (?, ?, {} ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            entity.table(),
            if user { "team_id," } else { "" },
            if user { "?," } else { "" },
        );
        with_pool!(&self.pool, p, sql = sql => {
            let mut q = sqlx::query(sql).bind(&m.id).bind(&m.name);
            if user {
                q = q.bind(&m.team_id);
            }
            q.bind(json_list(&m.models))
                .bind(m.limits.rpm)
                .bind(m.limits.tpm)
                .bind(m.limits.max_parallel)
                .bind(m.limits.max_budget_nanos)
                .bind(&m.limits.budget_period)
                .bind(m.limits.soft_budget_nanos)
                .bind(json_value(&m.metadata))
                .bind(m.created_at_ms)
                .bind(m.updated_at_ms)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Replaces a team's or user's editable fields.
    pub async fn update_member(&self, entity: Entity, m: &Member) -> Result<bool, StoreError> {
        let user = entity == Entity::User;
        let sql = format!(
            "UPDATE {} SET name = ?, {} models = ?, rpm = ?, tpm = ?, max_parallel = ?, max_budget_nanos = ?, budget_period = ?, soft_budget_nanos = ?, metadata = ?, updated_at_ms = ? WHERE id = ? AND deleted = 0",
            entity.table(),
            if user { "team_id = ?," } else { "" },
        );
        let done = with_pool!(&self.pool, p, sql = sql => {
            let mut q = sqlx::query(sql).bind(&m.name);
            if user {
                q = q.bind(&m.team_id);
            }
            q.bind(json_list(&m.models))
                .bind(m.limits.rpm)
                .bind(m.limits.tpm)
                .bind(m.limits.max_parallel)
                .bind(m.limits.max_budget_nanos)
                .bind(&m.limits.budget_period)
                .bind(m.limits.soft_budget_nanos)
                .bind(json_value(&m.metadata))
                .bind(now_ms())
                .bind(&m.id)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// A team or user by id or name.
    pub async fn get_member(
        &self,
        entity: Entity,
        id_or_name: &str,
    ) -> Result<Option<Member>, StoreError> {
        let sql = format!(
            "SELECT * FROM {} WHERE (id = ? OR name = ?) AND deleted = 0 LIMIT 1",
            entity.table()
        );
        with_pool!(&self.pool, p, sql = sql => {
            let row = sqlx::query(sql).bind(id_or_name).bind(id_or_name).fetch_optional(p).await?;
            row.map(|r| member_of(&r, entity)).transpose()
        })
    }

    /// Every live team or user.
    pub async fn list_members(&self, entity: Entity) -> Result<Vec<Member>, StoreError> {
        let sql = format!(
            "SELECT * FROM {} WHERE deleted = 0 ORDER BY created_at_ms, id",
            entity.table()
        );
        with_pool!(&self.pool, p, sql = sql => {
            let rows = sqlx::query(sql).fetch_all(p).await?;
            rows.iter().map(|r| member_of(r, entity)).collect()
        })
    }

    /// Marks a team or user deleted (its keys stop working).
    pub async fn delete_member(&self, entity: Entity, id: &str) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE {} SET deleted = 1, updated_at_ms = ? WHERE id = ? AND deleted = 0",
            entity.table()
        );
        let done = with_pool!(&self.pool, p, sql = sql => {
            sqlx::query(sql).bind(now_ms()).bind(id).execute(p).await?.rows_affected()
        });
        Ok(done == 1)
    }

    /// Inserts a key.
    pub async fn create_key(&self, k: &KeyRow) -> Result<(), StoreError> {
        with_pool!(&self.pool, p, sql = "INSERT INTO api_keys (id, name, hash, prefix, team_id, user_id, role, models, rpm, tpm, max_parallel, max_budget_nanos, budget_period, soft_budget_nanos, expires_at_ms, metadata, enabled, revoked_at_ms, created_by, created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" => {
            sqlx::query(sql)
                .bind(&k.id)
                .bind(&k.name)
                .bind(&k.hash)
                .bind(&k.prefix)
                .bind(&k.team_id)
                .bind(&k.user_id)
                .bind(&k.role)
                .bind(json_list(&k.models))
                .bind(k.limits.rpm)
                .bind(k.limits.tpm)
                .bind(k.limits.max_parallel)
                .bind(k.limits.max_budget_nanos)
                .bind(&k.limits.budget_period)
                .bind(k.limits.soft_budget_nanos)
                .bind(k.expires_at_ms)
                .bind(json_value(&k.metadata))
                .bind(k.enabled)
                .bind(k.revoked_at_ms)
                .bind(&k.created_by)
                .bind(k.created_at_ms)
                .bind(k.updated_at_ms)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Replaces a key's editable fields (and its hash, for rotation).
    pub async fn update_key(&self, k: &KeyRow) -> Result<bool, StoreError> {
        let done = with_pool!(&self.pool, p, sql = "UPDATE api_keys SET name = ?, hash = ?, prefix = ?, team_id = ?, user_id = ?, role = ?, models = ?, rpm = ?, tpm = ?, max_parallel = ?, max_budget_nanos = ?, budget_period = ?, soft_budget_nanos = ?, expires_at_ms = ?, metadata = ?, enabled = ?, revoked_at_ms = ?, updated_at_ms = ? WHERE id = ?" => {
            sqlx::query(sql)
                .bind(&k.name)
                .bind(&k.hash)
                .bind(&k.prefix)
                .bind(&k.team_id)
                .bind(&k.user_id)
                .bind(&k.role)
                .bind(json_list(&k.models))
                .bind(k.limits.rpm)
                .bind(k.limits.tpm)
                .bind(k.limits.max_parallel)
                .bind(k.limits.max_budget_nanos)
                .bind(&k.limits.budget_period)
                .bind(k.limits.soft_budget_nanos)
                .bind(k.expires_at_ms)
                .bind(json_value(&k.metadata))
                .bind(k.enabled)
                .bind(k.revoked_at_ms)
                .bind(now_ms())
                .bind(&k.id)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// A key by id (revoked ones included).
    pub async fn get_key(&self, id: &str) -> Result<Option<KeyRow>, StoreError> {
        with_pool!(&self.pool, p, sql = "SELECT * FROM api_keys WHERE id = ?" => {
            let row = sqlx::query(sql).bind(id).fetch_optional(p).await?;
            row.map(|r| key_of(&r)).transpose()
        })
    }

    /// Every key, newest first.
    pub async fn list_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        with_pool!(&self.pool, p, sql = "SELECT * FROM api_keys ORDER BY created_at_ms DESC, id" => {
            let rows = sqlx::query(sql).fetch_all(p).await?;
            rows.iter().map(key_of).collect()
        })
    }

    /// A setting (e.g. the generated key-hashing secret).
    pub async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            with_pool!(&self.pool, p, sql = "SELECT value FROM settings WHERE key = ?" => {
                sqlx::query_scalar(sql).bind(key).fetch_optional(p).await?
            }),
        )
    }

    /// Stores a setting unless one exists; returns the value in force.
    pub async fn init_setting(&self, key: &str, value: &str) -> Result<String, StoreError> {
        with_pool!(&self.pool, p, sql = "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING" => {
            sqlx::query(sql).bind(key).bind(value).execute(p).await?;
        });
        Ok(self
            .get_setting(key)
            .await?
            .unwrap_or_else(|| value.to_owned()))
    }

    /// Cost recorded for one scope since `since_ms`.
    pub async fn spend_since(
        &self,
        scope: Scope,
        id: &str,
        since_ms: i64,
    ) -> Result<i64, StoreError> {
        let col = match scope {
            Scope::Key => "key_id",
            Scope::Team => "team_id",
            Scope::User => "user_id",
        };
        // From the hourly rollup: budget periods start on whole hours.
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) FROM spend_hourly WHERE {col} = ? AND hour_ms >= ?"
        );
        Ok(with_pool!(&self.pool, p, sql = sql => {
            sqlx::query_scalar(sql).bind(id).bind(since_ms).fetch_one(p).await?
        }))
    }

    /// Totals grouped by `group`, for `[from_ms, to_ms)`.
    pub async fn spend_report(
        &self,
        group: GroupBy,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<SpendRow>, StoreError> {
        let expr = group.expr(matches!(self.pool, crate::db::Pool::Pg(_)));
        // From the hourly rollup kept by the log writer: fast at any log size;
        // `from`/`to` count whole hours (an hour is in if it starts in range).
        let sql = format!(
            "SELECT {expr} AS g, CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS requests, CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost_nanos FROM spend_hourly WHERE hour_ms >= ? AND hour_ms < ? GROUP BY 1 ORDER BY cost_nanos DESC, g"
        );
        with_pool!(&self.pool, p, sql = sql => {
            let rows = sqlx::query(sql).bind(from_ms).bind(to_ms).fetch_all(p).await?;
            rows.iter()
                .map(|r| {
                    Ok(SpendRow {
                        group: r.get::<Option<String>>("g")?.filter(|g| !g.is_empty()),
                        requests: r.get("requests")?,
                        input_tokens: r.get("input_tokens")?,
                        output_tokens: r.get("output_tokens")?,
                        cost_nanos: r.get("cost_nanos")?,
                    })
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RequestRecord;

    fn member(id: &str, name: &str) -> Member {
        Member {
            id: id.into(),
            name: name.into(),
            team_id: None,
            models: Some(vec!["gpt-*".into()]),
            limits: LimitFields {
                rpm: Some(10),
                max_budget_nanos: Some(1_000_000_000),
                budget_period: Some("monthly".into()),
                ..LimitFields::default()
            },
            metadata: Some(serde_json::json!({"cost_center": "42"})),
            created_at_ms: 1,
            updated_at_ms: 1,
        }
    }

    #[tokio::test]
    async fn teams_users_keys_round_trip() {
        for s in crate::db::test_stores().await {
            round_trip(s).await;
        }
    }

    async fn round_trip(s: Store) {
        let t = member("t1", "research");
        s.create_member(Entity::Team, &t).await.unwrap();
        assert_eq!(
            s.get_member(Entity::Team, "research")
                .await
                .unwrap()
                .unwrap(),
            t
        );
        assert!(
            s.create_member(Entity::Team, &member("t2", "research"))
                .await
                .is_err(),
            "names are unique"
        );
        let mut u = member("u1", "ana");
        u.team_id = Some("t1".into());
        s.create_member(Entity::User, &u).await.unwrap();
        u.limits.rpm = Some(99);
        assert!(s.update_member(Entity::User, &u).await.unwrap());
        assert_eq!(
            s.get_member(Entity::User, "u1")
                .await
                .unwrap()
                .unwrap()
                .limits
                .rpm,
            Some(99)
        );
        let k = KeyRow {
            id: "abc".into(),
            name: Some("ci".into()),
            hash: "h".into(),
            prefix: "sk-mg-abc".into(),
            team_id: Some("t1".into()),
            user_id: None,
            role: "user".into(),
            models: None,
            limits: LimitFields::default(),
            expires_at_ms: None,
            metadata: None,
            enabled: true,
            revoked_at_ms: None,
            created_by: Some("master".into()),
            created_at_ms: 5,
            updated_at_ms: 5,
        };
        s.create_key(&k).await.unwrap();
        let mut got = s.get_key("abc").await.unwrap().unwrap();
        assert_eq!(got, k);
        got.revoked_at_ms = Some(9);
        assert!(s.update_key(&got).await.unwrap());
        assert_eq!(s.list_keys().await.unwrap()[0].revoked_at_ms, Some(9));
        assert!(s.delete_member(Entity::Team, "t1").await.unwrap());
        assert!(s.get_member(Entity::Team, "t1").await.unwrap().is_none());
        s.create_member(Entity::Team, &member("t3", "research"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn spend_by_scope_and_report() {
        for s in crate::db::test_stores().await {
            spend(s).await;
        }
    }

    async fn spend(s: Store) {
        let rec = |id: &str, key: &str, team: &str, cost: i64, at: i64| RequestRecord {
            id: id.into(),
            started_at_ms: at,
            caller: key.into(),
            route: "chat".into(),
            requested_model: "m".into(),
            provider: Some("mock".into()),
            status: 200,
            input_tokens: 1,
            output_tokens: 2,
            cost_nanos: Some(cost),
            key_id: Some(key.into()),
            team_id: Some(team.into()),
            ..RequestRecord::default()
        };
        s.insert_requests(&[
            rec("1", "k1", "t", 100, 10),
            rec("2", "k1", "t", 50, 3_600_020),
            rec("3", "k2", "t", 7, 7_200_030),
        ])
        .await
        .unwrap();
        assert_eq!(s.spend_since(Scope::Key, "k1", 0).await.unwrap(), 150);
        // Budget periods start on whole hours; the rollup answers per hour.
        assert_eq!(
            s.spend_since(Scope::Key, "k1", 3_600_000).await.unwrap(),
            50
        );
        assert_eq!(s.spend_since(Scope::Team, "t", 0).await.unwrap(), 157);
        let r = s.spend_report(GroupBy::Key, 0, 10_000_000).await.unwrap();
        assert_eq!(r[0].group.as_deref(), Some("k1"));
        assert_eq!(
            (r[0].requests, r[0].cost_nanos, r[0].output_tokens),
            (2, 150, 4)
        );
        let d = s.spend_report(GroupBy::Day, 0, 10_000_000).await.unwrap();
        assert_eq!(d[0].group.as_deref(), Some("1970-01-01"));
    }
}
