//! After known traffic, the scraped metrics show exactly those counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Gateway;
use serde_json::{Value, json};

const MASTER: &str = "mg-master-metrics";
const CHAT: &str = "/v1/chat/completions";

fn line<'a>(text: &'a str, name: &str, labels: &[&str]) -> Option<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .find(|l| labels.iter().all(|want| l.contains(want)))
}

fn value(text: &str, name: &str, labels: &[&str]) -> f64 {
    line(text, name, labels)
        .unwrap_or_else(|| panic!("no {name} with {labels:?} in\n{text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn known_traffic_gives_exact_counts() {
    let yaml = r#"
deployments:
  - { name: a, provider: mock, model: error-500 }
  - { name: b, provider: mock, model: echo, priority: 1, price: { input: 1000, output: 1000 } }
models:
  - name: chat
    deployments: [a, b]
    retry: { backoff_ms: 1 }
"#;
    let gw = Gateway::start(yaml, &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let r = gw
        .post("/admin/keys")
        .bearer_auth(MASTER)
        .json(&json!({"rpm": 3}))
        .send()
        .await
        .unwrap();
    let key = r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let ask = |model: &str| {
        gw.post(CHAT)
            .bearer_auth(&key)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "one two three"}]}))
            .send()
    };
    // Two successes after a failed first attempt each (a retry onto b).
    for _ in 0..2 {
        let r = ask("chat").await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-modelgate-cache"], "off");
        // `gateway;dur=<ms>.<3 digits>, upstream;dur=<ms>.<3 digits>`.
        let timing = r.headers()["server-timing"].to_str().unwrap().to_owned();
        let parts: Vec<&str> = timing.split(", ").collect();
        assert_eq!(parts.len(), 2, "{timing}");
        for (part, label) in parts.iter().zip(["gateway;dur=", "upstream;dur="]) {
            let ms = part.strip_prefix(label).expect(&timing);
            let (whole, frac) = ms.split_once('.').expect(&timing);
            assert!(whole.parse::<u64>().is_ok() && frac.len() == 3, "{timing}");
            assert!(frac.bytes().all(|b| b.is_ascii_digit()), "{timing}");
        }
    }
    // One zero-config model.
    assert_eq!(ask("mock/echo").await.unwrap().status(), 200);
    // One rate-limit rejection (rpm 3).
    assert_eq!(ask("chat").await.unwrap().status(), 429);
    // One unknown model (master key: no rate limit).
    let r = gw
        .post(CHAT)
        .bearer_auth(MASTER)
        .json(&json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    gw.records().await;

    let text = gw
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ok = [
        "route=\"chat\"",
        "alias=\"chat\"",
        "deployment=\"b\"",
        "status_class=\"2xx\"",
    ];
    assert_eq!(value(&text, "modelgate_requests_total", &ok), 2.0);
    assert_eq!(
        value(
            &text,
            "modelgate_requests_total",
            &["alias=\"mock/*\"", "status_class=\"2xx\""]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "modelgate_requests_total",
            &["error_class=\"rate_limited\""]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "modelgate_requests_total",
            &["error_class=\"not_found\"", "status_class=\"4xx\""]
        ),
        1.0
    );
    assert_eq!(
        value(&text, "modelgate_retries_total", &["alias=\"chat\""]),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "modelgate_upstream_attempts_total",
            &[
                "deployment=\"a\"",
                "outcome=\"error\"",
                "error_class=\"upstream_error\""
            ]
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "modelgate_upstream_attempts_total",
            &["deployment=\"b\"", "outcome=\"ok\""]
        ),
        2.0
    );
    assert_eq!(
        value(&text, "modelgate_rate_limited_total", &["scope=\"key\""]),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "modelgate_tokens_total",
            &["alias=\"chat\"", "kind=\"output\""]
        ),
        6.0
    );
    assert!(value(&text, "modelgate_cost_usd_total", &["alias=\"chat\""]) > 0.0);
    assert_eq!(
        value(
            &text,
            "modelgate_request_duration_seconds_count",
            &["alias=\"chat\""]
        ),
        3.0
    );
    assert_eq!(
        value(&text, "modelgate_circuit_state", &["deployment=\"a\""]),
        0.0
    );
    assert_eq!(value(&text, "modelgate_in_flight_requests", &[]), 0.0);
    // Low cardinality: no key ids, no raw client model strings.
    assert!(
        !text.contains("sk-mg-") && !text.contains("\"nope\""),
        "{text}"
    );
}

#[tokio::test]
async fn request_log_search_filters_pages_and_details() {
    let yaml = r#"
deployments:
  - { name: a, provider: mock, model: error-500 }
  - { name: b, provider: mock, model: "echo?ttft_ms=30", priority: 1 }
models:
  - name: chat
    deployments: [a, b]
    retry: { backoff_ms: 1 }
"#;
    let gw = Gateway::start(yaml, &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let r = gw
        .post("/admin/keys")
        .bearer_auth(MASTER)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let (key_id, key) = (
        v["id"].as_str().unwrap().to_owned(),
        v["key"].as_str().unwrap().to_owned(),
    );
    let mut ids = vec![];
    for (auth, model) in [
        (&key, "chat"),
        (&key, "mock/echo"),
        (&MASTER.to_owned(), "mock/echo"),
        (&key, "chat"),
    ] {
        let r = gw
            .post(CHAT)
            .bearer_auth(auth)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    gw.records().await;
    let get = |q: String| {
        let url = format!("{}/admin/requests{q}", gw.url);
        async move {
            let r = Gateway::client()
                .get(url)
                .bearer_auth(MASTER)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let all = get(String::new()).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 4);
    assert_eq!(all["data"][0]["id"], ids[3].as_str(), "newest first");
    let by_key = get(format!("?key={key_id}")).await;
    assert_eq!(by_key["data"].as_array().unwrap().len(), 3);
    let by_model = get("?model=chat&min_latency_ms=20".into()).await;
    assert_eq!(by_model["data"].as_array().unwrap().len(), 2);
    // Pages of one.
    let p1 = get("?limit=1".into()).await;
    let cursor = p1["next_cursor"].as_i64().unwrap();
    let p2 = get(format!("?limit=1&cursor={cursor}")).await;
    assert_eq!(p2["data"][0]["id"], ids[2].as_str());
    // The detail view has every attempt and the routing decision.
    let detail = get(format!("/{}", ids[0])).await;
    assert_eq!(detail["deployment"], "b");
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["deployment"], "a");
    assert_eq!(attempts[0]["error_class"], "upstream_error");
    assert_eq!(attempts[1]["outcome"], "ok");
    let r = Gateway::client()
        .get(format!("{}/admin/requests/nope", gw.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = Gateway::client()
        .get(format!("{}/admin/requests", gw.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn admin_actions_are_audited_with_before_and_after() {
    let gw = Gateway::start("", &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let r = gw
        .post("/admin/keys")
        .bearer_auth(MASTER)
        .json(&json!({"rpm": 5}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let (id, key) = (
        v["id"].as_str().unwrap().to_owned(),
        v["key"].as_str().unwrap().to_owned(),
    );
    Gateway::client()
        .patch(format!("{}/admin/keys/{id}", gw.url))
        .bearer_auth(MASTER)
        .json(&json!({"rpm": 9}))
        .send()
        .await
        .unwrap();
    Gateway::client()
        .delete(format!("{}/admin/keys/{id}", gw.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    let log: Value = gw
        .get("/admin/audit")
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = log["data"].as_array().unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["key.create", "key.update", "key.revoke"]);
    assert!(
        rows.iter()
            .all(|r| r["actor"] == "master" && r["target"] == id.as_str())
    );
    let update = &rows[1];
    assert!(
        update["before_json"]
            .as_str()
            .unwrap()
            .contains("\"rpm\":5")
    );
    assert!(update["after_json"].as_str().unwrap().contains("\"rpm\":9"));
    assert_eq!(rows[1]["prev_hash"], rows[0]["hash"]);
    assert!(
        !log.to_string().contains(&key),
        "no plaintext key in the audit trail"
    );
    assert_eq!(gw.store.verify_audit().await.unwrap(), (3, None));
}

#[tokio::test]
async fn payload_capture_honours_off_sampled_always_and_redacts() {
    let gw = Gateway::start(
        "observability:\n  capture: off\n",
        &[("MODELGATE_MASTER_KEY", MASTER)],
    )
    .await;
    let key = |meta: Value| {
        let url = format!("{}/admin/keys", gw.url);
        async move {
            let r = Gateway::client()
                .post(url)
                .bearer_auth(MASTER)
                .json(&json!({"metadata": meta}))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let always = key(json!({"capture": "always"})).await;
    let never = key(json!({"capture": "sampled:0"})).await;
    let default = key(json!({})).await;
    let secret_prompt = "my mail is ana@example.com and my key sk-proj-abcdefghijklmnopqrstu";
    let send = |k: String, stream: bool| {
        let url = format!("{}{CHAT}", gw.url);
        async move {
            let r = Gateway::client()
                .post(url)
                .bearer_auth(k)
                .json(&json!({"model": "mock/echo", "stream": stream, "messages": [{"role": "user", "content": secret_prompt}]}))
                .send()
                .await
                .unwrap();
            let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
            let _ = r.text().await;
            id
        }
    };
    let a = send(always.clone(), false).await;
    let s = send(always, true).await;
    let n = send(never, false).await;
    let d = send(default, false).await;
    let rec = gw.record(&a).await;
    let req = rec.request_body.unwrap();
    assert!(req.contains("[email]") && req.contains("[secret]"), "{req}");
    assert!(
        !req.contains("ana@example.com") && !req.contains("sk-proj-"),
        "{req}"
    );
    let resp = rec.response_body.unwrap();
    assert!(
        resp.contains("chat.completion")
            && resp.contains("[email]")
            && !resp.contains("ana@example.com")
    );
    let streamed = gw.record(&s).await.response_body.unwrap();
    assert!(streamed.contains("chat.completion.chunk") && !streamed.contains("ana@example.com"));
    assert!(gw.record(&n).await.request_body.is_none(), "sampled at 0%");
    assert!(gw.record(&d).await.request_body.is_none(), "default off");
    let detail: Value = gw
        .get(&format!("/admin/requests/{a}"))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(detail["request_body"].as_str().unwrap().contains("[email]"));
}

#[test]
fn grafana_dashboard_queries_exported_metrics() {
    let dash: Value =
        serde_json::from_str(include_str!("../../../docs/grafana/modelgate.json")).unwrap();
    // Every family the gateway registers, by its exposition name.
    let exposition = include_str!("../../telemetry/src/lib.rs");
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let name = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .find(|w| w.starts_with("modelgate_"))
                .unwrap();
            let family = name
                .trim_start_matches("modelgate_")
                .trim_end_matches("_bucket")
                .trim_end_matches("_total");
            assert!(
                exposition.contains(&format!("register(\n            \"{family}\""))
                    || exposition.contains(&format!("register(\"{family}\"")),
                "{name} is not registered"
            );
        }
    }
}
