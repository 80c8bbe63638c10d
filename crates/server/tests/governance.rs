//! Virtual keys, teams, users, limits and budgets through the real server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Gateway;
use futures_util::StreamExt;
use modelgate_testkit::MockUpstream;
use serde_json::{Value, json};

const MASTER: &str = "mg-master-governance";
const CHAT: &str = "/v1/chat/completions";

/// A mock model priced at $1000 per 1M tokens ($0.001 a token) so costs are visible.
fn yaml(extra: &str) -> String {
    format!(
        r#"
models:
  - name: priced
    provider: mock
    model: "text?words=10"
    price: {{ input: 1000, output: 1000 }}
  - name: slow-priced
    provider: mock
    model: "text?words=200&chunks=200&delay_ms=20"
    price: {{ input: 1000, output: 1000 }}
{extra}"#
    )
}

async fn gw() -> Gateway {
    Gateway::start(&yaml(""), &[("MODELGATE_MASTER_KEY", MASTER)]).await
}

async fn admin(gw: &Gateway, path: &str, body: Value) -> (u16, Value) {
    let r = gw
        .post(path)
        .bearer_auth(MASTER)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

async fn new_key(gw: &Gateway, body: Value) -> (String, String) {
    let (s, v) = admin(gw, "/admin/keys", body).await;
    assert_eq!(s, 201, "{v}");
    (
        v["id"].as_str().unwrap().to_owned(),
        v["key"].as_str().unwrap().to_owned(),
    )
}

fn chat(model: &str) -> Value {
    json!({"model": model, "max_tokens": 40, "messages": [{"role": "user", "content": "hi there"}]})
}

#[tokio::test]
async fn key_lifecycle_through_the_admin_api() {
    let gw = gw().await;
    let (s, team) = admin(
        &gw,
        "/admin/teams",
        json!({"name": "research", "max_budget_usd": 10, "budget_period": "monthly"}),
    )
    .await;
    assert_eq!(s, 201, "{team}");
    let (s, dup) = admin(&gw, "/admin/teams", json!({"name": "research"})).await;
    assert_eq!(s, 409, "{dup}");
    let (s, user) = admin(
        &gw,
        "/admin/users",
        json!({"name": "ana", "team": "research", "rpm": 100}),
    )
    .await;
    assert_eq!(s, 201, "{user}");
    assert_eq!(user["team_id"], team["id"]);
    let (id, key) = new_key(&gw, json!({"name": "ci", "team": "research", "user": "ana", "models": ["priced", "mock/*"], "rpm": 50, "metadata": {"env": "ci"}})).await;
    assert!(key.starts_with("sk-mg-"));

    // The key works, and requests are attributed to it.
    let r = gw
        .post(CHAT)
        .bearer_auth(&key)
        .json(&chat("priced"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-limit-requests"], "50");
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "49");
    assert!(r.headers().contains_key("x-modelgate-cost"));
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let rec = gw.record(&rid).await;
    assert_eq!(rec.caller, id);
    assert_eq!(rec.key_id.as_deref(), Some(id.as_str()));
    assert_eq!(rec.team_id, team["id"].as_str().map(str::to_owned));
    // x-api-key works too.
    let r = gw
        .post(CHAT)
        .header("x-api-key", &key)
        .json(&chat("mock/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Listings show the prefix, never the key.
    let list: Value = gw
        .get("/admin/keys")
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = list.to_string();
    assert!(!text.contains(&key));
    assert!(text.contains(&format!("sk-mg-{id}-")));
    assert!(list["data"][0].get("key").is_none());

    // PATCH, then rotate: the old key stops working at once.
    let r = Gateway::client()
        .patch(format!("{}/admin/keys/{id}", gw.url))
        .bearer_auth(MASTER)
        .json(&json!({"rpm": 7, "metadata": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["rpm"], 7);
    assert_eq!(v["metadata"], Value::Null);
    let (s, rotated) = admin(&gw, &format!("/admin/keys/{id}/rotate"), json!({})).await;
    assert_eq!(s, 200);
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    let r = gw
        .post(CHAT)
        .bearer_auth(&key)
        .json(&chat("priced"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = gw
        .post(CHAT)
        .bearer_auth(&new_key)
        .json(&chat("priced"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Revoke.
    let r = Gateway::client()
        .delete(format!("{}/admin/keys/{id}", gw.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = gw
        .post(CHAT)
        .bearer_auth(&new_key)
        .json(&chat("priced"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "key_revoked");
    assert!(v["error"]["message"].as_str().unwrap().contains("revoked"));

    // The OpenAPI document is served.
    let doc: Value = gw
        .get("/admin/openapi.json")
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/admin/keys"]["post"].is_object());
}

#[tokio::test]
async fn wrong_model_expired_and_garbage_keys_are_refused_clearly() {
    let gw = gw().await;
    let (_, key) = new_key(&gw, json!({"models": ["mock/*"]})).await;
    let r = gw
        .post(CHAT)
        .bearer_auth(&key)
        .json(&chat("priced"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_allowed");
    assert!(v["error"]["message"].as_str().unwrap().contains("priced"));

    let (_, expired) = new_key(&gw, json!({"expires_at": "2020-01-01T00:00:00Z"})).await;
    let r = gw
        .post(CHAT)
        .bearer_auth(&expired)
        .json(&chat("priced"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "key_expired");

    for garbage in [
        "' OR '1'='1",
        "sk-mg-aaaaaaaaaaaa-' OR 1=1; DROP TABLE api_keys; --",
        "sk-mg-AAAAAAAAAAAA-0000000000000000000000000000000000000000",
        "Robert'); DROP TABLE teams;--",
    ] {
        let r = gw
            .post(CHAT)
            .bearer_auth(garbage)
            .json(&chat("priced"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{garbage}");
    }
    // Tables still there.
    let r = gw
        .get("/admin/teams")
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn admin_api_needs_admin_rights_and_keys_cannot_escalate() {
    let gw = gw().await;
    let (_, plain) = new_key(&gw, json!({})).await;
    let r = gw
        .get("/admin/keys")
        .bearer_auth(&plain)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = gw.get("/admin/keys").send().await.unwrap();
    assert_eq!(r.status(), 401);

    let (_, boss) = new_key(
        &gw,
        json!({"role": "admin", "rpm": 10, "models": ["mock/*"], "max_budget_usd": 5}),
    )
    .await;
    let mint = |body: Value| {
        let boss = boss.clone();
        let url = format!("{}/admin/keys", gw.url);
        async move {
            let r = Gateway::client()
                .post(url)
                .bearer_auth(&boss)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(mint(json!({"rpm": 100})).await.0, 403);
    assert_eq!(mint(json!({"models": ["priced"]})).await.0, 403);
    assert_eq!(mint(json!({"max_budget_usd": 50})).await.0, 403);
    assert_eq!(
        mint(json!({"role": "admin", "max_budget_usd": 1, "budget_period": "daily"}))
            .await
            .0,
        403,
        "total budget cannot become daily"
    );
    let (s, v) = mint(json!({"rpm": 5})).await;
    assert_eq!(s, 201, "{v}");
    // Unset limits inherit the creator's.
    assert_eq!(v["models"], json!(["mock/*"]));
    assert_eq!(v["max_budget_usd"], "5");

    // It cannot take over, revoke or widen a key with more rights than its own...
    let (wide_id, _) = new_key(&gw, json!({"role": "admin"})).await;
    let client = Gateway::client();
    let r = client
        .post(format!("{}/admin/keys/{wide_id}/rotate", gw.url))
        .bearer_auth(&boss)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client
        .delete(format!("{}/admin/keys/{wide_id}", gw.url))
        .bearer_auth(&boss)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let own_child = v["id"].as_str().unwrap();
    let r = client
        .patch(format!("{}/admin/keys/{own_child}", gw.url))
        .bearer_auth(&boss)
        .json(&json!({"rpm": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "cannot widen past its own rpm");
    // ...nor change the teams and users that bound keys.
    let r = client
        .post(format!("{}/admin/teams", gw.url))
        .bearer_auth(&boss)
        .json(&json!({"name": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client
        .get(format!("{}/admin/teams", gw.url))
        .bearer_auth(&boss)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "reading is fine");
}

#[tokio::test]
async fn rpm_limit_answers_429_with_openai_headers() {
    let gw = gw().await;
    let (id, key) = new_key(&gw, json!({"rpm": 3, "tpm": 100000})).await;
    for i in 0..3 {
        let r = gw
            .post(CHAT)
            .bearer_auth(&key)
            .json(&chat("priced"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i}");
    }
    let r = gw
        .post(CHAT)
        .bearer_auth(&key)
        .json(&chat("priced"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let h = r.headers().clone();
    assert_eq!(h["x-ratelimit-limit-requests"], "3");
    assert_eq!(h["x-ratelimit-remaining-requests"], "0");
    let reset = h["x-ratelimit-reset-requests"].to_str().unwrap();
    let secs: u64 = reset.strip_suffix('s').unwrap().parse().unwrap();
    assert!((1..=60).contains(&secs), "{reset}");
    assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("key:{id}")) && msg.contains("requests per minute"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_cannot_overshoot_a_budget() {
    let gw = gw().await;
    let (id, key) = new_key(&gw, json!({"max_budget_usd": 1.0})).await;
    let url = format!("{}{CHAT}", gw.url);
    let client = Gateway::client();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(500));
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let (client, url, key, barrier) =
                (client.clone(), url.clone(), key.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let r = client
                    .post(url)
                    .bearer_auth(key)
                    .json(&chat("priced"))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                (status, body["error"]["code"].as_str().map(str::to_owned))
            })
        })
        .collect();
    let mut ok = 0;
    let mut budget = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => ok += 1,
            (429, Some(c)) if c == "budget_exceeded" => budget += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // Each request may cost up to $0.043 (3 in + 40 out tokens at $0.001) and costs $0.013.
    let records = gw.records().await;
    let spent: i64 = records
        .iter()
        .filter(|r| r.key_id.as_deref() == Some(id.as_str()))
        .filter_map(|r| r.cost_nanos)
        .sum();
    println!("{ok} served, {budget} refused, spent {spent} nano-dollars");
    assert!(spent <= 1_000_000_000, "spent {spent}");
    assert!(ok > 20 && budget > 0);
    let report: Value = gw
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
    assert_eq!(
        row["requests"].as_i64().unwrap(),
        i64::from(ok) + i64::from(budget)
    );
}

#[tokio::test]
async fn disconnect_mid_stream_settles_the_reservation() {
    let gw = gw().await;
    // Worst case of one request: 3 in + 200 out tokens = $0.203; the budget fits one at a time.
    let (id, key) = new_key(&gw, json!({"max_budget_usd": 0.3})).await;
    let body = json!({"model": "slow-priced", "stream": true, "max_tokens": 200, "messages": [{"role": "user", "content": "hi there"}]});
    let mut r = gw
        .post(CHAT)
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    // While it streams, a second one does not fit.
    let r2 = gw
        .post(CHAT)
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r2.status(), 429);
    let mut seen = String::new();
    while seen.matches("\"content\":\"").count() < 12 {
        seen.push_str(std::str::from_utf8(&r.chunk().await.unwrap().unwrap()).unwrap());
    }
    drop(r);
    let rec = gw.record(&rid).await;
    assert_eq!(rec.status, 499);
    let cost = rec.cost_nanos.unwrap();
    assert!(
        cost > 0 && cost < 203_000_000,
        "charged for the tokens streamed: {cost}"
    );
    // Nothing leaked: the hold is gone, so the next request fits again.
    let r3 = gw
        .post(CHAT)
        .bearer_auth(&key)
        .json(&chat("priced"))
        .send()
        .await
        .unwrap();
    assert_eq!(r3.status(), 200, "{}", r3.text().await.unwrap());
    let report: Value = gw
        .get("/admin/spend?group_by=key")
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        report["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["group"] == id.as_str())
    );
}

#[tokio::test]
async fn a_stream_is_cut_when_it_would_cross_a_hard_cap() {
    let gw = gw().await;
    // No max_tokens: the reservation assumes 4096 output tokens ($4.10) — too much for $1,
    // so use a smaller default through a request cap, then let the stream run past it.
    let (_, key) = new_key(&gw, json!({"max_budget_usd": 0.05})).await;
    let body = json!({"model": "slow-priced", "stream": true, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]});
    let text = gw
        .post(CHAT)
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data = common::sse_data(&text);
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "budget_exceeded", "{data:?}");
    assert!(!data.iter().any(|d| d == "[DONE]"));
    assert!(data.len() > 10, "some content flowed before the cut");
}

#[tokio::test]
async fn soft_budget_alert_calls_the_allow_listed_webhook() {
    let hook = MockUpstream::start().await;
    let extra = format!(
        "governance:\n  alert_webhook: \"{}/hook\"\n  alert_webhook_allowlist: [\"127.0.0.1\"]\n",
        hook.url()
    );
    let gw = Gateway::start(&yaml(&extra), &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let (_, key) = new_key(&gw, json!({"max_budget_usd": 10, "soft_budget_usd": 0.02})).await;
    for _ in 0..3 {
        let r = gw
            .post(CHAT)
            .bearer_auth(&key)
            .json(&chat("priced"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for _ in 0..200 {
        if hook.count("/hook") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(hook.count("/hook"), 1, "one alert per crossing");
    let sent = hook.last().json();
    assert_eq!(sent["event"], "budget.soft_threshold_crossed");
}

#[tokio::test]
async fn the_plaintext_key_is_stored_nowhere() {
    let dir = std::env::temp_dir().join(format!("mg-gov-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.db");
    let store = modelgate_store::Store::open_sqlite(&path).await.unwrap();
    let mut gw = Gateway::start_full(
        &yaml(""),
        &[("MODELGATE_MASTER_KEY", MASTER)],
        Duration::from_secs(5),
        store.clone(),
    )
    .await;
    let (_, key) = new_key(&gw, json!({"name": "secret-check"})).await;
    let r = gw
        .post(CHAT)
        .bearer_auth(&key)
        .json(&chat("priced"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.text().await;
    gw.records().await;
    gw.begin_shutdown();
    gw.join().await;
    store.close().await;
    let secret_part = key.rsplit('-').next().unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let hay = String::from_utf8_lossy(&bytes);
        assert!(
            !hay.contains(&key) && !hay.contains(secret_part),
            "plaintext key found in the store files"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn spend_report_groups() {
    let gw = gw().await;
    let (_, key) = new_key(&gw, json!({})).await;
    for m in ["priced", "priced", "mock/echo"] {
        let r = gw
            .post(CHAT)
            .bearer_auth(&key)
            .json(&chat(m))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    gw.records().await;
    for group in ["key", "team", "user", "model", "provider", "day"] {
        let r = gw
            .get(&format!(
                "/admin/spend?group_by={group}&from=2020-01-01T00:00:00Z"
            ))
            .bearer_auth(MASTER)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{group}");
    }
    let v: Value = gw
        .get("/admin/spend?group_by=model")
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let priced = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == "priced")
        .unwrap();
    assert_eq!(priced["requests"], 2);
    let r = gw
        .get("/admin/spend?group_by=colour")
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let _ = futures_util::stream::iter(0..0).collect::<Vec<i32>>().await;
}

#[tokio::test]
async fn the_same_flow_on_postgres() {
    let url = match std::env::var("DATABASE_URL") {
        Ok(u) if u.starts_with("postgres") => u,
        _ => {
            eprintln!(
                "SKIPPED: DATABASE_URL is not set; the PostgreSQL store test needs it (CI sets it)"
            );
            return;
        }
    };
    let schema = format!(
        "mg_gw_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_007
    );
    let store = modelgate_store::Store::open_postgres(&url, Some(&schema))
        .await
        .unwrap();
    assert_eq!(store.dialect(), "postgres");
    let gw = Gateway::start_full(
        &yaml(""),
        &[("MODELGATE_MASTER_KEY", MASTER)],
        Duration::from_secs(5),
        store,
    )
    .await;
    let (s, _) = admin(
        &gw,
        "/admin/teams",
        json!({"name": "pg-team", "max_budget_usd": 1}),
    )
    .await;
    assert_eq!(s, 201);
    let (id, key) = new_key(&gw, json!({"team": "pg-team", "rpm": 100})).await;
    for _ in 0..3 {
        let r = gw
            .post(CHAT)
            .bearer_auth(&key)
            .json(&chat("priced"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    gw.records().await;
    let v: Value = gw
        .get("/admin/spend?group_by=day")
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["requests"], 3, "{v}");
    let v: Value = gw
        .get("/admin/spend?group_by=key")
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["group"], id.as_str());
    let r = Gateway::client()
        .delete(format!("{}/admin/keys/{id}", gw.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        gw.post(CHAT)
            .bearer_auth(&key)
            .json(&chat("priced"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn end_users_are_limited_per_key() {
    let gw = Gateway::start(
        &yaml("governance:\n  end_user_rpm: 2\n"),
        &[("MODELGATE_MASTER_KEY", MASTER)],
    )
    .await;
    let (_, k1) = new_key(&gw, json!({})).await;
    let (_, k2) = new_key(&gw, json!({})).await;
    let mut body = chat("priced");
    body["user"] = json!("alice");
    for _ in 0..2 {
        assert_eq!(
            gw.post(CHAT)
                .bearer_auth(&k1)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let r = gw
        .post(CHAT)
        .bearer_auth(&k1)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("end_user:"),
        "{v}"
    );
    // Another end user, and the same name under another key, are separate.
    body["user"] = json!("bob");
    assert_eq!(
        gw.post(CHAT)
            .bearer_auth(&k1)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    body["user"] = json!("alice");
    assert_eq!(
        gw.post(CHAT)
            .bearer_auth(&k2)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The master key's end users are limited too.
    body["user"] = json!("carol");
    for _ in 0..2 {
        assert_eq!(
            gw.post(CHAT)
                .bearer_auth(MASTER)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(
        gw.post(CHAT)
            .bearer_auth(MASTER)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        429
    );
}

#[tokio::test]
async fn budgets_enforce_their_output_cap_upstream_and_refuse_unpriced_models() {
    let up = MockUpstream::start().await;
    let yaml = format!(
        "models:\n  - name: gpt\n    provider: openai\n    model: gpt-4o-mini\n    base_url: \"{}/v1\"\n    api_key: k\n  - name: local\n    provider: openai_compatible\n    model: llama\n    base_url: \"{}/v1\"\ngovernance:\n  default_max_output_tokens: 256\n",
        up.url(),
        up.url()
    );
    let gw = Gateway::start(&yaml, &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let (_, budgeted) = new_key(&gw, json!({"max_budget_usd": 5})).await;
    let body = json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        gw.post(CHAT)
            .bearer_auth(&budgeted)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        up.last().json()["max_completion_tokens"],
        256,
        "the reserved cap is enforced upstream"
    );
    // A client cap is left alone.
    let mut capped = body.clone();
    capped["max_tokens"] = json!(10);
    gw.post(CHAT)
        .bearer_auth(&budgeted)
        .json(&capped)
        .send()
        .await
        .unwrap();
    assert!(up.last().json().get("max_completion_tokens").is_none());
    // Without a budget nothing is injected.
    let (_, free) = new_key(&gw, json!({})).await;
    gw.post(CHAT)
        .bearer_auth(&free)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(up.last().json().get("max_completion_tokens").is_none());
    // A budget cannot bound a model without a price.
    let r = gw
        .post(CHAT)
        .bearer_auth(&budgeted)
        .json(&json!({"model": "local", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unpriced_model");
}

#[tokio::test]
async fn passthrough_needs_a_key_allowed_the_passthrough_model() {
    let gw = gw().await;
    let (_, narrow) = new_key(&gw, json!({"models": ["mock/*"]})).await;
    let r = gw
        .get("/passthrough/priced/files")
        .bearer_auth(&narrow)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_allowed");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("passthrough/priced")
    );
    let (_, allowed) = new_key(&gw, json!({"models": ["passthrough/*"]})).await;
    let r = gw
        .get("/passthrough/priced/files")
        .bearer_auth(&allowed)
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 403, "the allow-list admits passthrough/<name>");
}
