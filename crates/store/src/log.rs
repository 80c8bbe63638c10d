//! The request log: one record per request, written in batches by a background task.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::Store;

/// One request, as recorded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestRecord {
    /// Store sequence number (0 until stored); the pagination cursor.
    pub seq: i64,
    pub id: String,
    pub started_at_ms: i64,
    /// Who called: `master`, `anonymous`, or a key id.
    pub caller: String,
    /// `chat` or `embeddings`.
    pub route: String,
    pub requested_model: String,
    pub provider: Option<String>,
    pub deployment: Option<String>,
    pub upstream_model: Option<String>,
    pub stream: bool,
    /// The HTTP status the client got (a stream that broke keeps 200 and sets
    /// `error_class`); 499 when the client went away first.
    pub status: u16,
    pub error_class: Option<String>,
    /// Short, secret-free description of the failure.
    pub error_message: Option<String>,
    pub latency_us: u64,
    pub ttft_us: Option<u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    /// Some token counts are the gateway's estimate (e.g. the stream was cut).
    pub usage_estimated: bool,
    pub cost_nanos: Option<i64>,
    /// The request's `user` field.
    pub end_user: Option<String>,
    /// The request's `metadata` object, as JSON.
    pub metadata: Option<String>,
    /// Every upstream attempt (deployment, outcome, error class, latency), as JSON.
    pub attempts: Option<String>,
    /// Number of upstream attempts.
    pub attempt_count: u32,
    /// A stream that broke after content had reached the client.
    pub truncated: bool,
    /// The virtual key, its team and user (none for the master key).
    pub key_id: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    /// Cost by kind of token, JSON in USD (`input_usd`, `cache_read_usd`, ...).
    pub cost_breakdown: Option<String>,
    /// Captured (redacted) request, when capture applies.
    pub request_body: Option<String>,
    /// Captured (redacted) response: the JSON body, or a stream's text.
    pub response_body: Option<String>,
}

enum Msg {
    Record(Box<RequestRecord>),
    Flush(oneshot::Sender<()>),
    Stop(oneshot::Sender<()>),
}

/// The request path's handle: pushing never blocks and never touches the database.
#[derive(Debug, Clone)]
pub struct LogSink {
    tx: mpsc::UnboundedSender<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl LogSink {
    /// Queues a record for writing.
    pub fn record(&self, rec: RequestRecord) {
        if self.tx.send(Msg::Record(Box::new(rec))).is_err() {
            tracing::error!("request log writer has stopped; a record was not written");
        }
    }

    /// Waits until everything queued before this call is written.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).is_ok() {
            let _ = done.await;
        }
    }
}

/// Owner of the writer task.
#[derive(Debug)]
pub struct LogWriter {
    sink: LogSink,
    task: JoinHandle<()>,
}

impl LogWriter {
    /// Writes everything queued so far, then stops the task.
    pub async fn shutdown(self) {
        let (ack, done) = oneshot::channel();
        if self.sink.tx.send(Msg::Stop(ack)).is_ok() {
            let _ = done.await;
        }
        let _ = self.task.await;
    }
}

/// Largest batch written in one transaction.
const BATCH: usize = 2048;

/// How long the writer waits for a batch to fill once a record arrived.
/// Each transaction costs the writer a round trip per statement to the
/// database (for SQLite, to its worker thread) and a WAL commit, so under
/// load a few large batches cost far less CPU than many small ones; a
/// record is still written within this delay. A flush (and the admin
/// endpoints that read the log flush first) or a stop ends the wait.
const LINGER: Duration = Duration::from_millis(50);

/// Starts the writer task for `store`.
pub fn spawn_log_writer(store: Store) -> (LogSink, LogWriter) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let task = tokio::spawn(async move {
        let mut msgs = Vec::with_capacity(BATCH);
        let mut records = Vec::with_capacity(BATCH);
        loop {
            if rx.recv_many(&mut msgs, BATCH).await == 0 {
                return;
            }
            let deadline = tokio::time::Instant::now() + LINGER;
            while msgs.len() < BATCH
                && !msgs
                    .iter()
                    .any(|m| matches!(m, Msg::Flush(_) | Msg::Stop(_)))
            {
                let room = BATCH - msgs.len();
                match tokio::time::timeout_at(deadline, rx.recv_many(&mut msgs, room)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let mut acks = Vec::new();
            let mut stop = None;
            for m in msgs.drain(..) {
                match m {
                    Msg::Record(r) => records.push(*r),
                    Msg::Flush(a) => acks.push(a),
                    Msg::Stop(a) => stop = Some(a),
                }
            }
            if !records.is_empty() {
                write_with_retry(&store, &records).await;
                records.clear();
            }
            for a in acks {
                let _ = a.send(());
            }
            if let Some(a) = stop {
                // Anything queued after Stop is still written and acknowledged.
                let mut late_acks = Vec::new();
                while let Ok(m) = rx.try_recv() {
                    match m {
                        Msg::Record(r) => records.push(*r),
                        Msg::Flush(f) | Msg::Stop(f) => late_acks.push(f),
                    }
                }
                if !records.is_empty() {
                    write_with_retry(&store, &records).await;
                }
                let _ = a.send(());
                for f in late_acks {
                    let _ = f.send(());
                }
                return;
            }
        }
    });
    let sink = LogSink { tx };
    (sink.clone(), LogWriter { sink, task })
}

async fn write_with_retry(store: &Store, records: &[RequestRecord]) {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=5 {
        match store.insert_requests(records).await {
            Ok(()) => return,
            Err(e) if attempt < 5 => {
                tracing::warn!(error = %e, attempt, "request log write failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, lost = records.len(), "request log write failed; records lost");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::RequestFilter;

    fn rec(id: &str) -> RequestRecord {
        RequestRecord {
            id: id.into(),
            started_at_ms: 1,
            caller: "master".into(),
            route: "chat".into(),
            requested_model: "mock/echo".into(),
            status: 200,
            input_tokens: 3,
            output_tokens: 4,
            ttft_us: Some(10),
            cost_nanos: Some(42),
            ..RequestRecord::default()
        }
    }

    #[tokio::test]
    async fn batches_are_written_and_shutdown_flushes() {
        for store in crate::db::test_stores().await {
            batches(store).await;
        }
    }

    async fn batches(store: Store) {
        let (sink, writer) = spawn_log_writer(store.clone());
        for i in 0..1000 {
            sink.record(rec(&format!("r{i}")));
        }
        sink.flush().await;
        assert_eq!(store.recent_requests(2000).await.unwrap().len(), 1000);
        sink.record(rec("last"));
        writer.shutdown().await;
        let mut got = store.get_request("last").await.unwrap().unwrap();
        assert!(got.seq > 0);
        got.seq = 0;
        assert_eq!(got, rec("last"));
    }

    /// The key/team/user indexes became partial (NULLs are not indexed):
    /// rows written before and after that migration are still found by the
    /// filters, NULLs are not matched, and SQLite plans the filter on the
    /// partial index.
    #[tokio::test]
    async fn owner_filters_use_the_partial_indexes_across_the_migration() {
        for store in crate::db::test_stores_until(9, 7).await {
            let owned = |id: &str, team: Option<&str>, user: Option<&str>| RequestRecord {
                key_id: Some("k1".into()),
                team_id: team.map(Into::into),
                user_id: user.map(Into::into),
                ..rec(id)
            };
            store
                .insert_requests(&[
                    owned("old-t", Some("t1"), None),
                    owned("old-none", None, None),
                ])
                .await
                .unwrap();
            store.migrate(i64::MAX).await.unwrap();
            for (index, column) in [
                ("request_log_key", "key_id"),
                ("request_log_team", "team_id"),
                ("request_log_user", "user_id"),
            ] {
                let def = store.index_definition(index).await.to_lowercase();
                assert!(
                    def.contains(&format!("where ({column} is not null)"))
                        || def.contains(&format!("where {column} is not null")),
                    "{def}"
                );
            }
            store
                .insert_requests(&[
                    owned("new-t", Some("t1"), Some("u1")),
                    owned("new-none", None, None),
                    RequestRecord { ..rec("master") },
                ])
                .await
                .unwrap();
            let ids = |f: RequestFilter| {
                let store = store.clone();
                async move {
                    let mut v: Vec<String> = store
                        .search_requests(&f)
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|r| r.id)
                        .collect();
                    v.sort();
                    v
                }
            };
            let all = RequestFilter {
                from_ms: 0,
                to_ms: i64::MAX,
                limit: 100,
                ..RequestFilter::default()
            };
            let team = RequestFilter {
                team_id: Some("t1".into()),
                ..all.clone()
            };
            assert_eq!(ids(team).await, ["new-t", "old-t"]);
            let user = RequestFilter {
                user_id: Some("u1".into()),
                ..all.clone()
            };
            assert_eq!(ids(user).await, ["new-t"]);
            let key = RequestFilter {
                key_id: Some("k1".into()),
                ..all.clone()
            };
            assert_eq!(ids(key).await, ["new-none", "new-t", "old-none", "old-t"]);
            assert_eq!(ids(all).await.len(), 5);
            if let Some(plan) = store.sqlite_plan(
                "SELECT * FROM request_log WHERE started_at_ms >= 0 AND started_at_ms < 9 AND team_id = 't1'",
            )
            .await
            {
                assert!(plan.contains("request_log_team"), "{plan}");
            }
        }
    }

    #[tokio::test]
    async fn every_batch_size_round_trips() {
        // Batches of every size up to and past the largest statement, so each
        // fixed statement size and each remainder is written and read back.
        for store in crate::db::test_stores().await {
            let mut written = 0;
            for size in (1..=140).chain([255, 256, 300]) {
                let batch: Vec<RequestRecord> = (0..size)
                    .map(|i| {
                        let mut r = rec(&format!("b{size}-{i}"));
                        r.input_tokens = u64::try_from(i).unwrap();
                        r.key_id = Some(format!("k{size}"));
                        r
                    })
                    .collect();
                store.insert_requests(&batch).await.unwrap();
                written += size;
                let last = size - 1;
                let got = store
                    .get_request(&format!("b{size}-{last}"))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(got.input_tokens, u64::try_from(last).unwrap());
                assert_eq!(got.key_id.as_deref(), Some(format!("k{size}").as_str()));
            }
            let all = store.recent_requests(100_000).await.unwrap();
            assert_eq!(all.len(), written);
        }
    }

    #[tokio::test]
    async fn retention_clears_payloads_and_old_rows() {
        for store in crate::db::test_stores().await {
            let mut old = rec("old");
            old.started_at_ms = 1_000;
            old.request_body = Some("{}".into());
            let mut new = rec("new");
            new.started_at_ms = 9_000_000;
            new.request_body = Some("{}".into());
            store.insert_requests(&[old, new]).await.unwrap();
            assert_eq!(store.purge(5_000, None).await.unwrap(), (1, 0));
            assert!(
                store
                    .get_request("old")
                    .await
                    .unwrap()
                    .unwrap()
                    .request_body
                    .is_none()
            );
            assert!(
                store
                    .get_request("new")
                    .await
                    .unwrap()
                    .unwrap()
                    .request_body
                    .is_some()
            );
            assert_eq!(store.purge(0, Some(5_000)).await.unwrap(), (0, 1));
            assert!(store.get_request("old").await.unwrap().is_none());
            // Spend rollups survive log retention.
            assert_eq!(
                store
                    .spend_since(crate::governance::Scope::Key, "k", 0)
                    .await
                    .unwrap(),
                0
            );
        }
    }

    #[tokio::test]
    async fn repeated_request_ids_keep_every_record() {
        for store in crate::db::test_stores().await {
            repeated(store).await;
        }
    }

    async fn repeated(store: Store) {
        store
            .insert_requests(&[rec("same"), rec("same")])
            .await
            .unwrap();
        store.insert_requests(&[rec("same")]).await.unwrap();
        assert_eq!(store.recent_requests(10).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn file_store_migrates_once() {
        let dir = std::env::temp_dir().join(format!("mg-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let s = Store::open_sqlite(&path).await.unwrap();
        s.insert_requests(&[rec("a")]).await.unwrap();
        s.close().await;
        let s = Store::open_sqlite(&path).await.unwrap();
        assert!(s.get_request("a").await.unwrap().is_some());
        s.ping().await.unwrap();
        s.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
