//! The dashboard's data (`/admin/stats`, `/admin/budgets`) and its static
//! files (`/ui`) through the real server. The browser test (`tests/ui`) drives
//! the page itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Gateway;
use serde_json::{Value, json};

const MASTER: &str = "mg-master-dashboard";
const CHAT: &str = "/v1/chat/completions";

/// A priced mock (so spend is visible) and an alias whose first deployment
/// always fails (so some requests take two attempts).
const YAML: &str = r#"
deployments:
  - { name: broken, provider: mock, model: error-500 }
  - { name: healthy, provider: mock, model: "echo", priority: 1 }
models:
  - name: priced
    provider: mock
    model: "text?words=10"
    price: { input: 1000, output: 1000 }
  - name: chat
    deployments: [broken, healthy]
    retry: { backoff_ms: 1 }
"#;

async fn gw() -> Gateway {
    Gateway::start(YAML, &[("MODELGATE_MASTER_KEY", MASTER)]).await
}

async fn post(gw: &Gateway, auth: &str, path: &str, body: Value) -> (u16, Value) {
    let r = gw
        .post(path)
        .bearer_auth(auth)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(gw: &Gateway, auth: Option<&str>, path: &str) -> (u16, Value) {
    let mut r = gw.get(path);
    if let Some(a) = auth {
        r = r.bearer_auth(a);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn chat(model: &str) -> Value {
    json!({"model": model, "max_tokens": 40, "messages": [{"role": "user", "content": "hello there"}]})
}

/// A team, an admin-free key in it, and traffic: 4 priced calls and 2 failing
/// calls with the key, 2 echo calls and a stream with the master key, and 2
/// calls to the alias that fails over. Returns (team id, key id, key).
async fn traffic(gw: &Gateway) -> (String, String, String) {
    let (s, team) = post(
        gw,
        MASTER,
        "/admin/teams",
        json!({"name": "research", "max_budget_usd": 10, "budget_period": "monthly"}),
    )
    .await;
    assert_eq!(s, 201, "{team}");
    let (s, key) = post(
        gw,
        MASTER,
        "/admin/keys",
        json!({"name": "notebook", "team": "research", "max_budget_usd": 1, "soft_budget_usd": 0.5, "budget_period": "daily"}),
    )
    .await;
    assert_eq!(s, 201, "{key}");
    let secret = key["key"].as_str().unwrap().to_owned();
    for (auth, model, want) in [
        (secret.as_str(), "priced", 200),
        (secret.as_str(), "priced", 200),
        (secret.as_str(), "priced", 200),
        (secret.as_str(), "priced", 200),
        (secret.as_str(), "mock/error-500", 502),
        (secret.as_str(), "mock/error-500", 502),
        (MASTER, "mock/echo", 200),
        (MASTER, "mock/echo", 200),
        (MASTER, "chat", 200),
        (MASTER, "chat", 200),
    ] {
        let (s, v) = post(gw, auth, CHAT, chat(model)).await;
        assert_eq!(s, want, "{model}: {v}");
    }
    let mut stream = chat("mock/text?chunks=3");
    stream["stream"] = json!(true);
    let r = gw
        .post(CHAT)
        .bearer_auth(MASTER)
        .json(&stream)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("[DONE]"));
    gw.records().await;
    (
        team["id"].as_str().unwrap().to_owned(),
        key["id"].as_str().unwrap().to_owned(),
        secret,
    )
}

fn row<'a>(rows: &'a Value, group: Option<&str>) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"].as_str() == group)
        .unwrap_or_else(|| panic!("no row {group:?} in {rows}"))
}

fn check_report(v: &Value, team: &str, key: &str) {
    assert_eq!(v["object"], "stats");
    assert_eq!(v["bucket"], "hour");
    let t = &v["totals"];
    assert_eq!(t["requests"], 11, "{t}");
    assert_eq!(t["errors"], 2, "{t}");
    assert!((t["error_rate"].as_f64().unwrap() - 2.0 / 11.0).abs() < 1e-9);
    assert_eq!(t["latency_samples"], 9, "only successful requests");
    let (p50, p95) = (
        t["latency_p50_ms"].as_f64().unwrap(),
        t["latency_p95_ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p95 >= p50, "{p50} {p95}");
    assert!(t["cost_nanos"].as_i64().unwrap() > 0);
    assert!(t["spend_usd"].as_str().unwrap().starts_with("0."));
    // Dense: every hour of the range, oldest first, adding up to the totals.
    let series = v["series"].as_array().unwrap();
    assert!(
        matches!(series.len(), 24 | 25),
        "24 hours and the current one"
    );
    let starts: Vec<i64> = series
        .iter()
        .map(|p| p["start_ms"].as_i64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[1] - w[0] == 3_600_000));
    assert_eq!(
        series
            .iter()
            .map(|p| p["requests"].as_i64().unwrap())
            .sum::<i64>(),
        11
    );
    let busy = series.iter().find(|p| p["requests"] != 0).unwrap();
    assert!(busy["latency_p95_ms"].is_number());
    let idle = series.iter().find(|p| p["requests"] == 0).unwrap();
    assert!(idle["latency_p50_ms"].is_null() && idle["error_rate"].is_null());

    let b = &v["breakdowns"];
    let priced = row(&b["model"], Some("priced"));
    assert_eq!(priced["requests"], 4);
    assert!(priced["latency_p50_ms"].is_number());
    assert_eq!(b["model"][0]["group"], "priced", "dearest first");
    let failing = row(&b["model"], Some("mock/error-500"));
    assert_eq!(
        (failing["requests"].as_i64(), failing["errors"].as_i64()),
        (Some(2), Some(2))
    );
    assert!(failing["latency_p50_ms"].is_null(), "no successful request");
    assert_eq!(row(&b["provider"], Some("mock"))["requests"], 11);
    let t = row(&b["team"], Some(team));
    assert_eq!(
        (t["name"].as_str(), t["requests"].as_i64()),
        (Some("research"), Some(6))
    );
    assert!(
        t.get("latency_p50_ms").is_none(),
        "latency is per model and provider"
    );
    assert_eq!(row(&b["team"], None)["requests"], 5);
    let k = row(&b["key"], Some(key));
    assert_eq!(
        (k["name"].as_str(), k["errors"].as_i64()),
        (Some("notebook"), Some(2))
    );
    assert_eq!(
        row(&b["key"], None)["requests"],
        5,
        "the master key's calls"
    );
    assert_eq!(row(&b["user"], None)["requests"], 11);
    // What is happening now.
    assert_eq!(v["live"]["in_flight"], 0);
    let deployments = v["live"]["deployments"].as_array().unwrap();
    assert!(
        deployments
            .iter()
            .any(|d| d["name"] == "broken" && d["provider"] == "mock")
    );
}

#[tokio::test]
async fn stats_report_series_breakdowns_latency_and_live_state() {
    let gw = gw().await;
    let (team, key, _) = traffic(&gw).await;
    let (s, v) = get(&gw, Some(MASTER), "/admin/stats").await;
    assert_eq!(s, 200, "{v}");
    check_report(&v, &team, &key);

    // Days: UTC midnights, the same totals.
    let (s, v) = get(&gw, Some(MASTER), "/admin/stats?bucket=day").await;
    assert_eq!(s, 200);
    assert_eq!(v["bucket_ms"], 86_400_000);
    assert_eq!(v["from_ms"].as_i64().unwrap() % 86_400_000, 0);
    assert_eq!(v["totals"]["requests"], 11);
    // `top` bounds the breakdowns; a range in the past is empty, not an error.
    let (_, v) = get(&gw, Some(MASTER), "/admin/stats?top=1").await;
    assert_eq!(v["breakdowns"]["model"].as_array().unwrap().len(), 1);
    let (s, v) = get(
        &gw,
        Some(MASTER),
        "/admin/stats?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["totals"]["requests"], 0);
    assert!(v["totals"]["latency_p50_ms"].is_null());
    assert_eq!(v["series"].as_array().unwrap().len(), 24);
}

#[tokio::test]
async fn stats_parameters_and_rights_are_checked() {
    let gw = gw().await;
    for (query, param) in [
        ("bucket=week", "bucket"),
        ("from=yesterday", "from"),
        ("from=1795368840&to=1795368000", "from"),
        ("from=2020-01-01T00:00:00Z", "bucket"),
        ("top=0", "top"),
        ("colour=red", "colour"),
    ] {
        let (s, v) = get(&gw, Some(MASTER), &format!("/admin/stats?{query}")).await;
        assert_eq!(s, 400, "{query}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], param, "{query}");
        assert!(v["error"]["message"].as_str().unwrap().contains(param));
    }
    let (s, v) = get(&gw, None, "/admin/stats").await;
    assert_eq!(s, 401, "{v}");
    let (s, v) = get(&gw, Some("wrong"), "/admin/budgets").await;
    assert_eq!(s, 401, "{v}");
    let (_, key) = post(&gw, MASTER, "/admin/keys", json!({})).await;
    let user_key = key["key"].as_str().unwrap();
    for path in ["/admin/stats", "/admin/budgets"] {
        let (s, v) = get(&gw, Some(user_key), path).await;
        assert_eq!(s, 403, "{path}: {v}");
        assert_eq!(v["error"]["code"], "insufficient_permissions");
    }
    // An admin-role key may read them.
    let (_, admin) = post(&gw, MASTER, "/admin/keys", json!({"role": "admin"})).await;
    let (s, _) = get(&gw, Some(admin["key"].as_str().unwrap()), "/admin/stats").await;
    assert_eq!(s, 200);
    let (s, v) = get(&gw, Some(MASTER), "/admin/budgets?x=1").await;
    assert_eq!((s, v["error"]["param"].as_str()), (400, Some("x")));
    // The other admin reports answer a bad query in the same envelope.
    for path in [
        "/admin/requests?status=abc",
        "/admin/requests?colour=red",
        "/admin/audit?limit=x",
    ] {
        let (s, v) = get(&gw, Some(MASTER), path).await;
        assert_eq!(s, 400, "{path}");
        assert_eq!(v["error"]["code"], "invalid_query", "{path}: {v}");
    }
    // Documented.
    let (_, doc) = get(&gw, None, "/admin/openapi.json").await;
    for path in ["/admin/stats", "/admin/budgets"] {
        assert!(
            doc["paths"][path]["get"].is_object(),
            "{path} in openapi.json"
        );
    }
}

#[tokio::test]
async fn budgets_show_spend_in_the_current_period() {
    let gw = gw().await;
    let (team, key, _) = traffic(&gw).await;
    let (_, spare) = post(&gw, MASTER, "/admin/keys", json!({"name": "spare"})).await;
    let spare = spare["id"].as_str().unwrap();
    let r = Gateway::client()
        .delete(format!("{}/admin/keys/{spare}", gw.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, v) = get(&gw, Some(MASTER), "/admin/budgets").await;
    assert_eq!(s, 200, "{v}");
    let find = |scope: &str, id: &str| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["scope"] == scope && r["id"] == id)
            .unwrap_or_else(|| panic!("no {scope} {id} in {v}"))
            .clone()
    };
    let k = find("key", &key);
    assert_eq!(k["name"], "notebook");
    assert_eq!(k["status"], "active");
    assert_eq!(k["budget_period"], "daily");
    assert_eq!(k["max_budget_usd"], "1");
    assert_eq!(k["soft_budget_usd"], "0.5");
    assert_eq!(k["requests"], 6);
    let spent = k["spend_nanos"].as_i64().unwrap();
    assert!(spent > 0);
    assert!((k["used"].as_f64().unwrap() - spent as f64 / 1e9).abs() < 1e-12);
    let day = 86_400_000;
    assert_eq!(k["period_start_ms"].as_i64().unwrap() % day, 0);
    let t = find("team", &team);
    assert_eq!(
        (t["name"].as_str(), t["budget_period"].as_str()),
        (Some("research"), Some("monthly"))
    );
    assert_eq!(
        t["spend_nanos"].as_i64(),
        Some(spent),
        "the team's only key"
    );
    let s = find("key", spare);
    assert_eq!(s["status"], "revoked");
    assert_eq!(
        (s["budget_period"].as_str(), s["used"].is_null()),
        (Some("total"), true)
    );
    assert_eq!(s["spend_usd"], "0");
}

#[tokio::test]
async fn the_dashboard_is_served_from_the_binary_with_security_headers() {
    let gw = gw().await;
    for path in ["/ui", "/ui/"] {
        let r = gw.get(path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        let csp = h["content-security-policy"].to_str().unwrap();
        for want in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(want), "{csp}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["cache-control"], "no-cache");
        assert!(h.contains_key("x-request-id"));
        let html = r.text().await.unwrap();
        assert!(html.contains(r#"<script src="/ui/app.js" defer></script>"#));
        assert!(html.contains("login-form"));
    }
    let r = gw.get("/ui/app.js").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert!(r.text().await.unwrap().contains("/admin/stats"));
    let r = gw
        .get("/ui/app.js")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    for (path, ty) in [
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ] {
        let r = gw.get(path).send().await.unwrap();
        assert_eq!(
            (
                r.status().as_u16(),
                r.headers()["content-type"].to_str().unwrap()
            ),
            (200, ty)
        );
    }
    let r = gw.get("/ui/secrets.json").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("content-security-policy"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
}

#[tokio::test]
async fn stats_on_postgres() {
    let url = match std::env::var("DATABASE_URL") {
        Ok(u) if u.starts_with("postgres") => u,
        _ => {
            eprintln!(
                "SKIPPED: DATABASE_URL is not set; the PostgreSQL stats test needs it (CI sets it)"
            );
            return;
        }
    };
    let schema = format!(
        "mg_dash_{}_{}",
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
    let gw = Gateway::start_full(
        YAML,
        &[("MODELGATE_MASTER_KEY", MASTER)],
        Duration::from_secs(5),
        store,
    )
    .await;
    let (team, key, _) = traffic(&gw).await;
    let (s, v) = get(&gw, Some(MASTER), "/admin/stats").await;
    assert_eq!(s, 200, "{v}");
    check_report(&v, &team, &key);
    let (s, v) = get(&gw, Some(MASTER), "/admin/budgets").await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == key.as_str() && r["spend_nanos"].as_i64().unwrap() > 0)
    );
}
