//! `modelgate-bench`: the measuring tools `bench/run.py` drives.
//!
//! - `streams`: streaming requests one after another (or a few at a time);
//!   reports time to the first content chunk and the gaps between chunks.
//! - `hold`: opens many concurrent streams over HTTP/2 (cleartext, prior
//!   knowledge — a handful of connections carry thousands of streams, so the
//!   test is not bounded by file descriptors), prints `{"open": N}` once every
//!   stream has its first chunk, keeps them open while they trickle, and
//!   reports how they ended.
//! - `load`: an open-loop load generator at a fixed rate with latency
//!   correction (each request is timed from when it was due, not from when it
//!   was sent). The full benchmark uses `oha`; this one keeps the smoke run
//!   free of installs.
//!
//! Every command prints one JSON object on its last stdout line.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

struct Args(Vec<String>);

impl Args {
    fn get(&self, name: &str) -> Option<&str> {
        let flag = format!("--{name}");
        self.0
            .iter()
            .position(|a| *a == flag)
            .and_then(|i| self.0.get(i + 1))
            .map(String::as_str)
    }
    fn num(&self, name: &str, default: u64) -> Result<u64, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name} needs a number, got {v:?}")),
        }
    }
    /// Every `--header 'name: value'`.
    fn headers(&self) -> Vec<(String, String)> {
        self.0
            .windows(2)
            .filter(|w| w[0] == "--header")
            .filter_map(|w| w[1].split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect()
    }

    fn text(&self, name: &str) -> Result<String, String> {
        self.get(name)
            .map(str::to_owned)
            .ok_or_else(|| format!("--{name} is required"))
    }
}

const USAGE: &str = "\
usage:
  modelgate-bench streams --url URL --model M [--key K] [--requests 200] [--concurrency 1]
  modelgate-bench hold    --url URL --model M [--key K] [--streams 10000] [--connections 64] [--hold-secs 10]
  modelgate-bench load    --url URL --model M [--key K] [--rate 1000] [--secs 10] [--connections 64]
URL is the chat completions URL, e.g. http://127.0.0.1:8600/v1/chat/completions;
--header 'name: value' (repeatable) adds a request header.";

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first().cloned() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let args = Args(argv[1..].to_vec());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(async {
        match cmd.as_str() {
            "streams" => streams(&args).await,
            "hold" => hold(&args).await,
            "load" => load(&args).await,
            _ => Err(USAGE.to_owned()),
        }
    });
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("modelgate-bench: {e}");
            std::process::exit(2);
        }
    }
}

/// Percentiles of `xs` (milliseconds), sorted in place.
fn summary(xs: &mut [f64]) -> Value {
    if xs.is_empty() {
        return json!(null);
    }
    xs.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((xs.len() as f64 - 1.0) * q).round() as usize;
        (xs[i.min(xs.len() - 1)] * 1000.0).round() / 1000.0
    };
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    json!({
        "n": xs.len(), "mean": (mean * 1000.0).round() / 1000.0,
        "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "p999": at(0.999), "max": at(1.0),
    })
}

fn body(model: &str, stream: bool) -> Vec<u8> {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Write one short sentence about benchmarks."}],
        "max_tokens": 64,
        "stream": stream,
    })
    .to_string()
    .into_bytes()
}

/// Where and how requests go.
#[derive(Clone)]
struct Endpoint {
    url: String,
    key: Option<String>,
    headers: Arc<Vec<(String, String)>>,
}

impl Endpoint {
    fn from(a: &Args) -> Result<Endpoint, String> {
        Ok(Endpoint {
            url: a.text("url")?,
            key: a.get("key").map(str::to_owned),
            headers: Arc::new(a.headers()),
        })
    }

    fn request(&self, client: &reqwest::Client, body: Vec<u8>) -> reqwest::RequestBuilder {
        let mut r = client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(k) = &self.key {
            r = r.bearer_auth(k);
        }
        for (k, v) in self.headers.iter() {
            r = r.header(k.as_str(), v.as_str());
        }
        r
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Whether an SSE `data:` payload carries answer text (a non-empty
/// `content`).
fn has_content(event: &[u8]) -> bool {
    (contains(event, b"\"content\":\"") || contains(event, b"\"content\": \""))
        && !contains(event, b"\"content\":\"\"")
        && !contains(event, b"\"content\": \"\"")
}

/// Reads a stream; returns (time to the first content event, gaps between
/// content events), both from `start`.
async fn read_stream(
    resp: reqwest::Response,
    start: Instant,
) -> Result<(Option<f64>, Vec<f64>), String> {
    let mut body = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut first = None;
    let mut last: Option<Instant> = None;
    let mut gaps = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("stream broke: {e}"))?;
        let now = Instant::now();
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buf.drain(..end + 2).collect();
            if has_content(&event) {
                match last {
                    None => first = Some(now.duration_since(start).as_secs_f64() * 1000.0),
                    Some(prev) => gaps.push(now.duration_since(prev).as_secs_f64() * 1000.0),
                }
                last = Some(now);
            }
        }
    }
    Ok((first, gaps))
}

async fn streams(a: &Args) -> Result<Value, String> {
    let ep = Endpoint::from(a)?;
    let model = a.text("model")?;
    let requests = a.num("requests", 200)?;
    let concurrency = a.num("concurrency", 1)?.max(1);
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())?;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, ep, model, next) = (client.clone(), ep.clone(), model.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ttft, mut gaps, mut errors) = (Vec::new(), Vec::new(), 0u64);
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let start = Instant::now();
                let sent = ep.request(&client, body(&model, true)).send().await;
                match sent {
                    Ok(r) if r.status().is_success() => match read_stream(r, start).await {
                        Ok((Some(f), g)) => {
                            ttft.push(f);
                            gaps.extend(g);
                        }
                        _ => errors += 1,
                    },
                    _ => errors += 1,
                }
            }
            (ttft, gaps, errors)
        }));
    }
    let (mut ttft, mut gaps, mut errors) = (Vec::new(), Vec::new(), 0);
    for t in tasks {
        let (a, b, c) = t.await.map_err(|e| e.to_string())?;
        ttft.extend(a);
        gaps.extend(b);
        errors += c;
    }
    Ok(json!({"ttft_ms": summary(&mut ttft), "gap_ms": summary(&mut gaps), "errors": errors}))
}

async fn hold(a: &Args) -> Result<Value, String> {
    let ep = Endpoint::from(a)?;
    let model = a.text("model")?;
    let n = a.num("streams", 10_000)?;
    let connections = a.num("connections", 64)?.max(1);
    let hold_secs = a.num("hold-secs", 10)?;
    // One client per connection: each keeps one HTTP/2 connection.
    let clients: Vec<reqwest::Client> = (0..connections)
        .map(|_| {
            reqwest::Client::builder()
                .no_proxy()
                .http2_prior_knowledge()
                .pool_max_idle_per_host(1)
                .build()
        })
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let opened = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let completed = Arc::new(AtomicU64::new(0));
    let notify = Arc::new(tokio::sync::Notify::new());
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(n as usize);
    for i in 0..n {
        let client = clients[(i % connections) as usize].clone();
        let (ep, model) = (ep.clone(), model.clone());
        let (opened, failed, completed, notify) = (
            opened.clone(),
            failed.clone(),
            completed.clone(),
            notify.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let resp = ep.request(&client, body(&model, true)).send().await;
            let Ok(resp) = resp.map_err(|_| ()).and_then(|r| {
                if r.status().is_success() {
                    Ok(r)
                } else {
                    Err(())
                }
            }) else {
                failed.fetch_add(1, Ordering::Relaxed);
                notify.notify_one();
                return;
            };
            let mut body = resp.bytes_stream();
            let mut counted = false;
            while let Some(chunk) = body.next().await {
                if chunk.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                    notify.notify_one();
                    return;
                }
                if !counted {
                    counted = true;
                    opened.fetch_add(1, Ordering::Relaxed);
                    notify.notify_one();
                }
            }
            completed.fetch_add(1, Ordering::Relaxed);
        }));
    }
    // Wait until every stream is open (or failed), then report it.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = opened.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed);
        if done >= n || Instant::now() > deadline {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), notify.notified()).await;
    }
    println!(
        "{}",
        json!({"open": opened.load(Ordering::Relaxed), "failed": failed.load(Ordering::Relaxed),
               "open_after_ms": t0.elapsed().as_millis() as u64})
    );
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    let open_at_end = opened.load(Ordering::Relaxed) - completed.load(Ordering::Relaxed);
    for t in &tasks {
        t.abort();
    }
    Ok(json!({
        "streams": n, "opened": opened.load(Ordering::Relaxed),
        "failed": failed.load(Ordering::Relaxed), "completed": completed.load(Ordering::Relaxed),
        "still_open_after_hold": open_at_end,
    }))
}

async fn load(a: &Args) -> Result<Value, String> {
    let ep = Endpoint::from(a)?;
    let model = a.text("model")?;
    let rate = a.num("rate", 1000)?.max(1);
    let secs = a.num("secs", 10)?.max(1);
    let connections = a.num("connections", 64)?.max(1);
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(connections as usize)
        .build()
        .map_err(|e| e.to_string())?;
    let total = rate * secs;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let permits = Arc::new(tokio::sync::Semaphore::new(connections as usize));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    let payload = bytes::Bytes::from(body(&model, false));
    for i in 0..total {
        let due = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due.into()).await;
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let (client, ep, payload) = (client.clone(), ep.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let r = ep.request(&client, payload.to_vec()).send().await;
            let ok = match r {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            drop(permit);
            // Latency from when the request was due (coordinated omission corrected).
            (ok, due.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut lat = Vec::with_capacity(total as usize);
    let mut errors = 0u64;
    for t in tasks {
        let (ok, ms) = t.await.map_err(|e| e.to_string())?;
        if ok {
            lat.push(ms);
        } else {
            errors += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(json!({
        "requests": total, "errors": errors,
        "rps": ((lat.len() as f64 / elapsed) * 10.0).round() / 10.0,
        "latency_ms": summary(&mut lat),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_events_and_percentiles() {
        assert!(has_content(
            br#"data: {"choices":[{"delta":{"content":" tok"}}]}"#
        ));
        assert!(!has_content(
            br#"data: {"choices":[{"delta":{"role":"assistant","content":""}}]}"#
        ));
        assert!(!has_content(b"data: [DONE]"));
        let mut xs: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summary(&mut xs);
        assert_eq!(
            (s["p50"].as_f64(), s["p99"].as_f64(), s["max"].as_f64()),
            (Some(51.0), Some(99.0), Some(100.0))
        );
    }
}
