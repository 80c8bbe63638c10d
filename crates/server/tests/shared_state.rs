//! Limits and budgets shared by several gateway replicas through Redis (and
//! one store). Needs `REDIS_URL`; without it these tests say so and pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Gateway;
use serde_json::{Value, json};

const MASTER: &str = "mg-master-shared";
const CHAT: &str = "/v1/chat/completions";

fn redis_url() -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "SKIPPED: REDIS_URL is not set; shared-state tests need a Redis (CI sets it)"
            );
            None
        }
    }
}

fn yaml(redis: &str, prefix: &str, extra: &str) -> String {
    // A generous Redis timeout: these tests are about correctness across
    // replicas, and a loaded CI machine must not turn them into 503s.
    let timeout = if extra.contains("redis_timeout_ms") {
        ""
    } else {
        "  redis_timeout_ms: 5000\n"
    };
    format!(
        r#"
models:
  - name: priced
    provider: mock
    model: "text?words=10"
    price: {{ input: 1000, output: 1000 }}
governance:
  redis_url: "{redis}"
  redis_prefix: "{prefix}"
{timeout}{extra}"#
    )
}

/// Three replicas on one store file and one Redis.
async fn replicas(redis: &str, extra: &str) -> (Vec<Gateway>, std::path::PathBuf) {
    let unique = format!("mgtest-{}-{}", std::process::id(), fastrand_suffix());
    let dir = std::env::temp_dir().join(&unique);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.db");
    let mut out = vec![];
    for _ in 0..3 {
        let store = modelgate_store::Store::open_sqlite(&path).await.unwrap();
        out.push(
            Gateway::start_full(
                &yaml(redis, &unique, extra),
                &[("MODELGATE_MASTER_KEY", MASTER)],
                Duration::from_secs(5),
                store,
            )
            .await,
        );
    }
    (out, dir)
}

fn fastrand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007
}

async fn key(gw: &Gateway, body: Value) -> (String, String) {
    let r = gw
        .post("/admin/keys")
        .bearer_auth(MASTER)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["key"].as_str().unwrap().to_owned(),
    )
}

fn chat() -> Value {
    json!({"model": "priced", "max_tokens": 40, "messages": [{"role": "user", "content": "hi there"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_holds_across_three_replicas() {
    let Some(redis) = redis_url() else { return };
    let (gws, dir) = replicas(&redis, "").await;
    let (id, k) = key(&gws[0], json!({"max_budget_usd": 1.0})).await;
    let client = Gateway::client();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(500));
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let url = format!("{}{CHAT}", gws[i % 3].url);
            let (client, k, barrier) = (client.clone(), k.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let r = client
                    .post(url)
                    .bearer_auth(k)
                    .json(&chat())
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    let mut spent = 0i64;
    for g in &gws {
        g.records().await;
    }
    let report: Value = gws[1]
        .get("/admin/spend?group_by=key")
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = report["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == id.as_str())
        .unwrap();
    let usd: f64 = row["spend_usd"].as_str().unwrap().parse().unwrap();
    spent += (usd * 1e9).round() as i64;
    println!("{ok} served across 3 replicas, spent {spent} nano-dollars");
    assert!(spent <= 1_000_000_000, "overshot: {spent}");
    assert!(ok > 20);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_holds_across_three_replicas_at_twice_the_rate() {
    let Some(redis) = redis_url() else { return };
    let (gws, dir) = replicas(&redis, "").await;
    let (_, k) = key(&gws[0], json!({"rpm": 600})).await;
    let client = Gateway::client();
    let started = std::time::Instant::now();
    let results: Vec<u16> =
        futures_util::StreamExt::collect(futures_util::StreamExt::buffer_unordered(
            futures_util::stream::iter((0..1200).map(|i| {
                let url = format!("{}{CHAT}", gws[i % 3].url);
                let (client, k) = (client.clone(), k.clone());
                async move {
                    client
                        .post(url)
                        .bearer_auth(k)
                        .json(&chat())
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .as_u16()
                }
            })),
            48,
        ))
        .await;
    let elapsed = started.elapsed();
    let accepted = results.iter().filter(|s| **s == 200).count();
    println!("accepted {accepted} of 1200 in {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(60),
        "the whole run must sit inside one minute window"
    );
    assert_eq!(accepted, 600, "exactly the RPM across replicas");
    assert!(results.iter().all(|s| *s == 200 || *s == 429));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn revocation_reaches_every_replica_within_a_second() {
    let Some(redis) = redis_url() else { return };
    let (gws, dir) = replicas(&redis, "").await;
    let (id, k) = key(&gws[0], json!({})).await;
    for g in &gws {
        assert_eq!(
            g.post(CHAT)
                .bearer_auth(&k)
                .json(&chat())
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let r = Gateway::client()
        .delete(format!("{}/admin/keys/{id}", gws[0].url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let revoked_at = std::time::Instant::now();
    for g in &gws {
        loop {
            let s = g
                .post(CHAT)
                .bearer_auth(&k)
                .json(&chat())
                .send()
                .await
                .unwrap()
                .status();
            if s == 401 {
                break;
            }
            assert!(
                revoked_at.elapsed() < Duration::from_millis(1500),
                "replica still accepts a revoked key"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(revoked_at.elapsed() <= Duration::from_millis(1500));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn unreachable_redis_fails_open_for_limits_and_closed_for_budgets() {
    // Nothing listens on this port: connection refused at once.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("redis://127.0.0.1:{port}");
    let gw = Gateway::start(
        &yaml(&url, "mg-down", "  redis_timeout_ms: 100\n"),
        &[("MODELGATE_MASTER_KEY", MASTER)],
    )
    .await;
    let (_, limited) = key(&gw, json!({"rpm": 1})).await;
    let (_, budgeted) = key(&gw, json!({"max_budget_usd": 1})).await;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let r = gw
            .post(CHAT)
            .bearer_auth(&limited)
            .json(&chat())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "limits fail open by default");
    }
    let r = gw
        .post(CHAT)
        .bearer_auth(&budgeted)
        .json(&chat())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "budgets fail closed by default");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "budget_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "never blocks long: {:?}",
        started.elapsed()
    );
}
