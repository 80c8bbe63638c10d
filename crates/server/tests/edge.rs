//! The HTTP edge: auth, limits, ids, errors, the mock provider, and graceful drain.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Gateway, sse_data, stream_text};
use serde_json::{Value, json};

const KEY: &str = "mg-master-test";

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello gateway"}]})
}

#[tokio::test]
async fn master_key_is_required_on_v1_in_both_header_forms() {
    let gw = Gateway::start("", &[("MODELGATE_MASTER_KEY", KEY)]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat("mock/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Answered before the body was read: the client must not reuse the connection.
    assert_eq!(r.headers()["connection"], "close");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "missing_api_key");
    let r = gw
        .post("/v1/chat/completions")
        .bearer_auth("wrong")
        .json(&chat("mock/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = gw
        .post("/v1/chat/completions")
        .bearer_auth(KEY)
        .json(&chat("mock/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = gw
        .post("/v1/chat/completions")
        .header("x-api-key", KEY)
        .json(&chat("mock/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = Gateway::client()
        .get(format!("{}/v1/models", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Health endpoints stay open for orchestrators.
    let r = Gateway::client()
        .get(format!("{}/healthz", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let records = gw.records().await;
    assert_eq!(records.iter().filter(|r| r.status == 401).count(), 2);
    assert!(records.iter().any(|r| r.caller == "master"));
}

#[tokio::test]
async fn body_limit_is_enforced_while_reading() {
    let gw = Gateway::start("server:\n  max_body_bytes: 1024\n", &[]).await;
    let big = "x".repeat(4096);
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model":"mock/echo","messages":[{"role":"user","content":big}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "request_too_large");
    // A streamed body without content-length is cut off too.
    let chunks =
        futures_util::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 512])));
    let r = gw
        .post("/v1/chat/completions")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn bad_input_gets_400_naming_the_field() {
    let gw = Gateway::start("", &[]).await;
    let cases = [
        (
            r#"{"model":"mock/echo","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
            Some("temperature"),
        ),
        (r#"{"model":"mock/echo"}"#, Some("messages")),
        (r#"{"model":"mock/echo","messages":[]}"#, Some("messages")),
        (
            r#"{"model":"mock/echo","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#,
            Some("max_tokens"),
        ),
        (
            r#"{"model":"mock/echo","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"description":"no name"}}]}"#,
            Some("tools[0].function.name"),
        ),
        (
            r#"{"model":"mock/echo","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#,
            Some("stream_options"),
        ),
        (r#"{"model": "mock/echo", "messages": ["#, None),
        ("", None),
    ];
    for (body, param) in cases {
        let r = gw
            .post("/v1/chat/completions")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"].as_str(), param, "{body}: {v}");
    }
}

#[tokio::test]
async fn unknown_models_and_routes_are_404_envelopes() {
    let gw = Gateway::start("", &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat("gpt-nonexistent"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");
    assert_eq!(v["error"]["param"], "model");
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat("openai/gpt-4o"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "openai/* needs OPENAI_API_KEY");
    let r = gw.post("/v1/nope").json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unknown_route");
    let r = Gateway::client()
        .get(format!("{}/v1/chat/completions", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn request_ids_are_propagated_or_generated() {
    let gw = Gateway::start("", &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .header("x-request-id", "client-id-123")
        .json(&chat("mock/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "client-id-123");
    let _ = r.text().await;
    assert_eq!(
        gw.record("client-id-123").await.requested_model,
        "mock/echo"
    );
    let r = gw
        .post("/v1/chat/completions")
        .header("x-request-id", "bad id with spaces")
        .json(&chat("mock/nope"))
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, "bad id with spaces");
    assert_eq!(id.len(), 36);
    let r = Gateway::client()
        .get(format!("{}/healthz", gw.url))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn models_list_and_readiness() {
    let gw = Gateway::start(
        "models:\n  - name: my-echo\n    provider: mock\n    model: echo\n",
        &[],
    )
    .await;
    let v: Value = Gateway::client()
        .get(format!("{}/v1/models", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"my-echo") && ids.contains(&"mock/echo"),
        "{ids:?}"
    );
    let r = Gateway::client()
        .get(format!("{}/v1/models/mock/echo", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = Gateway::client()
        .get(format!("{}/v1/models/nope", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = Gateway::client()
        .get(format!("{}/readyz", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn mock_provider_behaviours() {
    let gw = Gateway::start(
        "models:\n  - name: slow\n    provider: mock\n    model: stall\n    timeouts: { request_ms: 150 }\n",
        &[],
    )
    .await;
    let v: Value = gw
        .post("/v1/chat/completions")
        .json(&chat("mock/echo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "hello gateway");
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat("mock/error-429?retry_after=9"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "9");
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat("mock/error-500"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat("slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    let mut body = chat("mock/text?chunks=4");
    body["stream"] = json!(true);
    let text = gw
        .post("/v1/chat/completions")
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data = sse_data(&text);
    let content_chunks = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .count();
    assert_eq!(content_chunks, 4);
    assert_eq!(data.last().unwrap(), "[DONE]");
    body["model"] = json!("mock/stream-error");
    let text = gw
        .post("/v1/chat/completions")
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data = sse_data(&text);
    assert!(!stream_text(&data).is_empty());
    assert!(data.last().unwrap().contains("\"error\""));
    assert!(!data.iter().any(|d| d == "[DONE]"));
}

#[tokio::test]
async fn shutdown_drains_in_flight_streams_and_flushes_the_log() {
    let mut gw = Gateway::start("", &[]).await;
    let mut body = chat("mock/text?chunks=10&delay_ms=30");
    body["stream"] = json!(true);
    let mut resp = gw
        .post("/v1/chat/completions")
        .json(&body)
        .send()
        .await
        .unwrap();
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    gw.begin_shutdown();
    // The in-flight stream still runs to its end.
    let mut rest = String::from_utf8(first.to_vec()).unwrap();
    while let Some(c) = resp.chunk().await.unwrap() {
        rest.push_str(std::str::from_utf8(&c).unwrap());
    }
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
    assert!(gw.join().await, "drain should finish before the deadline");
    // New connections are refused once the server has stopped.
    let err = Gateway::client()
        .get(format!("{}/healthz", gw.url))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(err.is_err());
    let rec = gw
        .store
        .get_request(&rid)
        .await
        .unwrap()
        .expect("record flushed at shutdown");
    assert_eq!(rec.status, 200);
    assert_eq!(rec.output_tokens, 10);
}

#[tokio::test]
async fn drain_deadline_bounds_shutdown_and_still_logs() {
    let mut gw = Gateway::start_with_grace("", &[], Duration::from_millis(200)).await;
    let mut body = chat("mock/text?chunks=100&delay_ms=100");
    body["stream"] = json!(true);
    let mut resp = gw
        .post("/v1/chat/completions")
        .json(&body)
        .send()
        .await
        .unwrap();
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let first = resp.chunk().await.unwrap().unwrap();
    gw.begin_shutdown();
    assert!(!gw.join().await, "a 10 s stream cannot drain in 200 ms");
    // The stream was ended with a terminal error event, not cut silently.
    let mut rest = String::from_utf8(first.to_vec()).unwrap();
    while let Ok(Some(c)) = resp.chunk().await {
        rest.push_str(std::str::from_utf8(&c).unwrap());
    }
    let data = sse_data(&rest);
    assert!(data.last().unwrap().contains("shutting_down"), "{data:?}");
    assert!(!data.iter().any(|d| d == "[DONE]"));
    // And its record was written before the log writer stopped.
    let rec = gw
        .store
        .get_request(&rid)
        .await
        .unwrap()
        .expect("record written at shutdown");
    assert_eq!(rec.error_class.as_deref(), Some("shutting_down"));
}

#[tokio::test]
async fn embeddings_validate_their_fields() {
    let gw = Gateway::start("", &[]).await;
    for (body, param) in [
        (
            json!({"model":"mock/echo","input":"x","encoding_format":"bogus"}),
            "encoding_format",
        ),
        (
            json!({"model":"mock/echo","input":"x","dimensions":0}),
            "dimensions",
        ),
        (json!({"model":"mock/echo","input":[]}), "input"),
        (json!({"model":"mock/echo"}), "input"),
    ] {
        let r = gw.post("/v1/embeddings").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["param"], param, "{body}");
    }
}

#[tokio::test]
async fn mock_streams_every_choice_when_n_is_set() {
    let gw = Gateway::start("", &[]).await;
    let mut body = chat("mock/echo");
    body["stream"] = json!(true);
    body["n"] = json!(2);
    let text = gw
        .post("/v1/chat/completions")
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut per_choice = [String::new(), String::new()];
    for d in sse_data(&text).iter().filter(|d| *d != "[DONE]") {
        let v: Value = serde_json::from_str(d).unwrap();
        for c in v["choices"].as_array().unwrap() {
            let i = c["index"].as_u64().unwrap() as usize;
            per_choice[i].push_str(c["delta"]["content"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(
        per_choice,
        ["hello gateway".to_owned(), "hello gateway".to_owned()]
    );
}
