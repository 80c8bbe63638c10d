//! The audit trail: admin actions, append-only, each record chained to the
//! previous one by SHA-256, so editing or deleting any record breaks the chain
//! from there on ([`Store::verify_audit`] finds the first broken link).

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::{Get, Pool, with_pool};
use crate::{Store, StoreError, now_ms};

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at_ms: i64,
    /// `master`, or the key id that acted.
    pub actor: String,
    /// `key.create`, `key.update`, `key.revoke`, `key.rotate`, `team.create`, ...
    pub action: String,
    /// The id acted on.
    pub target: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of the chain's start.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chained hash of a record's content.
#[allow(clippy::too_many_arguments)] // one argument per hashed field
pub fn record_hash(
    prev: &str,
    seq: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    target: &str,
    before: Option<&str>,
    after: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    // Length-prefixed fields: no two different records hash the same input.
    for part in [
        prev,
        &seq.to_string(),
        &at_ms.to_string(),
        actor,
        action,
        target,
        before.unwrap_or("\u{0}"),
        after.unwrap_or("\u{0}"),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn record_of(r: &impl Get) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: r.get("seq")?,
        at_ms: r.get("at_ms")?,
        actor: r.get("actor")?,
        action: r.get("action")?,
        target: r.get("target")?,
        before_json: r.get("before_json")?,
        after_json: r.get("after_json")?,
        prev_hash: r.get("prev_hash")?,
        hash: r.get("hash")?,
    })
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub seq: i64,
    pub reason: String,
}

impl Store {
    /// Appends one record to the chain.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        before: Option<String>,
        after: Option<String>,
    ) -> Result<AuditRecord, StoreError> {
        let _guard = self.audit_lock.lock().await;
        let at_ms = now_ms();
        with_pool!(&self.pool, p, sql = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1" => {
            let mut tx = p.begin().await?;
            if matches!(self.pool, Pool::Pg(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock(7270092)").execute(&mut *tx).await?;
            }
            let last: Option<(i64, String)> = sqlx::query_as(sql).fetch_optional(&mut *tx).await?;
            let (seq, prev) = match last {
                Some((s, h)) => (s + 1, h),
                None => (1, GENESIS.to_owned()),
            };
            let hash = record_hash(&prev, seq, at_ms, actor, action, target, before.as_deref(), after.as_deref());
            let insert = "INSERT INTO audit_log (seq, at_ms, actor, action, target, before_json, after_json, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
            let insert = match self.pool {
                Pool::Sqlite(_) => insert.to_owned(),
                Pool::Pg(_) => crate::db::pg(insert),
            };
            sqlx::query(sqlx::AssertSqlSafe(insert))
                .bind(seq)
                .bind(at_ms)
                .bind(actor)
                .bind(action)
                .bind(target)
                .bind(&before)
                .bind(&after)
                .bind(&prev)
                .bind(&hash)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(AuditRecord {
                seq,
                at_ms,
                actor: actor.to_owned(),
                action: action.to_owned(),
                target: target.to_owned(),
                before_json: before,
                after_json: after,
                prev_hash: prev,
                hash,
            })
        })
    }

    /// Records after `after_seq`, oldest first, at most `limit`.
    pub async fn audit_records(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        with_pool!(&self.pool, p, sql = "SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?" => {
            let rows = sqlx::query(sql).bind(after_seq).bind(limit).fetch_all(p).await?;
            rows.iter().map(record_of).collect()
        })
    }

    /// Walks the whole chain; `Ok(None)` when intact, else the first broken link.
    pub async fn verify_audit(&self) -> Result<(u64, Option<BrokenLink>), StoreError> {
        let mut prev = GENESIS.to_owned();
        let mut expected_seq = 1;
        let mut checked = 0u64;
        loop {
            let page = self.audit_records(expected_seq - 1, 1000).await?;
            if page.is_empty() {
                return Ok((checked, None));
            }
            for r in &page {
                let broken = |reason: &str| {
                    Ok((
                        checked,
                        Some(BrokenLink {
                            seq: r.seq,
                            reason: reason.to_owned(),
                        }),
                    ))
                };
                if r.seq != expected_seq {
                    return broken("a record is missing before this one");
                }
                if r.prev_hash != prev {
                    return broken("it does not point at the previous record's hash");
                }
                let h = record_hash(
                    &prev,
                    r.seq,
                    r.at_ms,
                    &r.actor,
                    &r.action,
                    &r.target,
                    r.before_json.as_deref(),
                    r.after_json.as_deref(),
                );
                if h != r.hash {
                    return broken("its content does not match its hash");
                }
                prev = r.hash.clone();
                expected_seq += 1;
                checked += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chain_verifies_and_a_flipped_byte_is_found() {
        for s in crate::db::test_stores().await {
            for i in 0..5 {
                s.audit(
                    "master",
                    "key.create",
                    &format!("k{i}"),
                    None,
                    Some(format!("{{\"rpm\":{i}}}")),
                )
                .await
                .unwrap();
            }
            assert_eq!(s.verify_audit().await.unwrap(), (5, None));
            // Flip one byte of record 3.
            with_pool!(&s.pool, p, sql = "UPDATE audit_log SET after_json = '{\"rpm\":9}' WHERE seq = 3" => {
                sqlx::query(sql).execute(p).await.unwrap();
            });
            let (checked, broken) = s.verify_audit().await.unwrap();
            assert_eq!(checked, 2);
            assert_eq!(broken.unwrap().seq, 3);
        }
    }
}
