//! Harness: the real gateway on 127.0.0.1:0 with an in-memory store.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use modelgate_config::{Config, MapEnv};
use modelgate_store::{LogSink, LogWriter, RequestRecord, Store};
use tokio::sync::oneshot;

pub struct Gateway {
    pub url: String,
    pub store: Store,
    pub sink: LogSink,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<std::io::Result<bool>>>,
    writer: Option<LogWriter>,
}

impl Gateway {
    /// Starts with `yaml` (may be empty) and environment pairs.
    pub async fn start(yaml: &str, env: &[(&str, &str)]) -> Gateway {
        Self::start_with_grace(yaml, env, Duration::from_secs(30)).await
    }

    pub async fn start_with_grace(yaml: &str, env: &[(&str, &str)], grace: Duration) -> Gateway {
        let store = Store::open_memory().await.unwrap();
        Self::start_full(yaml, env, grace, store).await
    }

    /// Starts on a given store (e.g. a file, to inspect what is written).
    pub async fn start_full(
        yaml: &str,
        env: &[(&str, &str)],
        grace: Duration,
        store: Store,
    ) -> Gateway {
        Self::start_inner(yaml, env, grace, store, None).await
    }

    /// Starts from the config file at `path`, re-read on
    /// `POST /admin/config/reload` (as `modelgate serve --config` does).
    pub async fn start_from_file(path: &std::path::Path, env: &[(&str, &str)]) -> Gateway {
        let yaml = std::fs::read_to_string(path).unwrap();
        let store = Store::open_memory().await.unwrap();
        let env_map = map_env(env);
        let path = path.to_owned();
        let reloader: modelgate_server::state::Reloader = Arc::new(move || {
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let cfg = Config::load(Some(&text), &env_map).map_err(|e| e.to_string())?;
            Ok((cfg, text))
        });
        Self::start_inner(&yaml, env, Duration::from_secs(30), store, Some(reloader)).await
    }

    async fn start_inner(
        yaml: &str,
        env: &[(&str, &str)],
        grace: Duration,
        store: Store,
        reloader: Option<modelgate_server::state::Reloader>,
    ) -> Gateway {
        let env = map_env(env);
        let cfg = Config::load(if yaml.is_empty() { None } else { Some(yaml) }, &env)
            .unwrap_or_else(|e| panic!("config: {e}"));
        let (sink, writer) = modelgate_store::spawn_log_writer(store.clone());
        let mut state = modelgate_server::AppState::new(Arc::new(cfg), store.clone(), sink.clone())
            .await
            .unwrap();
        if let Some(r) = reloader {
            state = state.with_reloader(r, yaml);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(modelgate_server::serve(
            listener,
            state,
            async move {
                let _ = rx.await;
            },
            grace,
        ));
        Gateway {
            url,
            store,
            sink,
            shutdown: Some(tx),
            task: Some(task),
            writer: Some(writer),
        }
    }

    pub fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        Self::client().post(format!("{}{path}", self.url))
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        Self::client().get(format!("{}{path}", self.url))
    }

    /// Signals shutdown (the server stops accepting and drains).
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for the server to finish draining; returns whether it drained in time.
    pub async fn join(&mut self) -> bool {
        let task = self.task.take().unwrap();
        let drained = task.await.unwrap().unwrap();
        if let Some(w) = self.writer.take() {
            w.shutdown().await;
        }
        drained
    }

    /// All log records, after flushing the writer.
    pub async fn records(&self) -> Vec<RequestRecord> {
        self.sink.flush().await;
        self.store.recent_requests(10_000).await.unwrap()
    }

    /// Waits (bounded) until a record with `id` exists.
    pub async fn record(&self, id: &str) -> RequestRecord {
        for _ in 0..200 {
            self.sink.flush().await;
            if let Some(r) = self.store.get_request(id).await.unwrap() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no record for {id}");
    }
}

/// A directory of files for one test (credential files, tokens); removed
/// on drop.
pub struct Dir(std::path::PathBuf);

impl Dir {
    pub fn new() -> Dir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "modelgate-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    /// Writes `text` to `name` in the directory; returns its path.
    pub fn file(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    }

    /// The path `name` would have in the directory.
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Parses an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    let mut p = modelgate_codec::sse::SseParser::new();
    let mut out = vec![];
    p.push(body.as_bytes(), &mut out);
    p.finish(&mut out);
    out.into_iter().map(|e| e.data).collect()
}

/// `(event name, data)` pairs of an SSE body with named events (Anthropic
/// Messages, OpenAI Responses).
pub fn named_events(body: &str) -> Vec<(String, serde_json::Value)> {
    let mut p = modelgate_codec::sse::SseParser::new();
    let mut out = vec![];
    p.push(body.as_bytes(), &mut out);
    p.finish(&mut out);
    out.into_iter()
        .map(|e| {
            let data = serde_json::from_str(&e.data)
                .unwrap_or_else(|err| panic!("event data is not JSON ({err}): {}", e.data));
            (e.event.unwrap_or_default(), data)
        })
        .collect()
}

/// The `data` of each event of an SSE body, as JSON.
pub fn event_data(body: &str) -> Vec<serde_json::Value> {
    named_events(body).into_iter().map(|(_, d)| d).collect()
}

/// Concatenated `delta.content` of OpenAI chunks.
pub fn stream_text(data: &[String]) -> String {
    data.iter()
        .filter(|d| d.as_str() != "[DONE]")
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

fn map_env(env: &[(&str, &str)]) -> MapEnv {
    MapEnv(
        env.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}
