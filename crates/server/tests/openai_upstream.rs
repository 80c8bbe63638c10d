//! The gateway in front of an OpenAI-format upstream (mock server speaking the real wire format).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Gateway, sse_data, stream_text};
use modelgate_testkit::{End, MockUpstream, Reply, Split, openai_stream};
use serde_json::{Value, json};

fn config(upstream: &MockUpstream, extra: &str) -> String {
    format!(
        r#"
models:
  - name: gpt
    provider: openai
    model: gpt-4o-mini
    base_url: {}/v1
    api_key: sk-upstream-secret-123
    price: {{ input: 0.15, output: 0.60 }}
    timeouts: {{ request_ms: 2000, idle_ms: 1000 }}
    retry: {{ max_attempts: 1 }}
{extra}"#,
        upstream.url()
    )
}

#[tokio::test]
async fn raw_body_is_forwarded_byte_for_byte_except_model() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let body = r#"{ "model" : "gpt",
  "messages": [{"role":"user","content":"hi","x_vendor":{"a":1.50}}],
  "logit_bias": {"50256": -100}, "seed": 7, "top_k_custom": [1,2,3], "temperature": 0.70 }"#;
    let resp = gw
        .post("/v1/chat/completions")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = resp.text().await.unwrap();
    let rec = up.last();
    assert_eq!(rec.path, "/v1/chat/completions");
    assert_eq!(
        std::str::from_utf8(&rec.body).unwrap(),
        body.replace(r#""model" : "gpt""#, r#""model" : "gpt-4o-mini""#)
    );
    assert_eq!(
        rec.header("authorization").as_deref(),
        Some("Bearer sk-upstream-secret-123")
    );
    // The upstream's response is passed through verbatim (unknown fields included).
    let v: Value = serde_json::from_str(&got).unwrap();
    assert_eq!(
        v,
        modelgate_testkit::openai_completion("Hello from upstream.")
    );
    let r = gw.records().await;
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].input_tokens, r[0].output_tokens, r[0].cached_tokens),
        (9, 4, 2)
    );
    assert_eq!(r[0].provider.as_deref(), Some("openai"));
    assert_eq!(r[0].deployment.as_deref(), Some("gpt"));
    // 7 uncached * 0.15 + 2 cached * 0.15 + 4 * 0.60 per 1M tokens = 3.75e-6 USD
    assert_eq!(r[0].cost_nanos, Some(3_750));
    let breakdown: Value = serde_json::from_str(r[0].cost_breakdown.as_deref().unwrap()).unwrap();
    assert_eq!(breakdown["input_usd"], "0.00000105");
    assert_eq!(breakdown["cache_read_usd"], "0.0000003");
    assert_eq!(breakdown["output_usd"], "0.0000024");
}

#[tokio::test]
async fn stream_split_at_awkward_boundaries_is_reframed_intact() {
    let up = MockUpstream::start().await;
    up.push(
        "/v1/chat/completions",
        Reply::sse(
            openai_stream(&["Hél", "lo ✓", " wörld"], true),
            Split::Awkward,
        ),
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let resp = gw
        .post("/v1/chat/completions")
        .json(&json!({"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let data = sse_data(&resp.text().await.unwrap());
    assert_eq!(stream_text(&data), "Héllo ✓ wörld");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    // We asked upstream for usage; the client did not, so the usage chunk is withheld.
    assert!(data.iter().all(|d| !d.contains("\"choices\":[]")));
    let sent = up.last().json();
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    let rec = gw.record(&rid).await;
    assert_eq!((rec.input_tokens, rec.output_tokens), (9, 3));
    assert!(!rec.usage_estimated);
    assert!(rec.ttft_us.is_some());
}

#[tokio::test]
async fn client_requested_usage_chunk_is_forwarded() {
    let up = MockUpstream::start().await;
    up.push(
        "/v1/chat/completions",
        Reply::sse(openai_stream(&["a", "b"], true), Split::Bytes(5)),
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let body = gw
        .post("/v1/chat/completions")
        .json(
            &json!({"model":"gpt","stream":true,"stream_options":{"include_usage":true},
            "messages":[{"role":"user","content":"hi"}]}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data = sse_data(&body);
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 2);
    assert_eq!(usage["choices"], json!([]));
}

#[tokio::test]
async fn upstream_errors_map_to_the_contract() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let ask = || {
        gw.post("/v1/chat/completions")
            .json(&json!({"model":"gpt","messages":[{"role":"user","content":"hi"}]}))
            .send()
    };
    up.push(
        "/v1/chat/completions",
        Reply::Raw {
            status: 503,
            body: "<html>upstream internals</html>".into(),
        },
    );
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    assert!(!text.contains("internals"), "{text}");

    up.push(
        "/v1/chat/completions",
        Reply::error(400, json!({"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}})),
    );
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length")
    );

    up.push(
        "/v1/chat/completions",
        Reply::error(401, json!({"error":{"message":"Incorrect API key provided: sk-upstream-secret-123","type":"invalid_request_error","code":"invalid_api_key"}})),
    );
    let r = ask().await.unwrap();
    assert_eq!(
        r.status(),
        502,
        "a bad provider key is the gateway's problem, not the client's"
    );
    let text = r.text().await.unwrap();
    // Providers quote the rejected key in this message: none of it is passed on.
    assert!(text.contains("provider credentials"), "{text}");
    assert!(!text.contains("sk-upstream"), "{text}");

    up.push(
        "/v1/chat/completions",
        Reply::error(404, json!({"error":{"message":"The model `gpt-9` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}})),
    );
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 404, "an upstream model-not-found stays a 404");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");

    up.push("/v1/chat/completions", Reply::Stall);
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 504);

    // Last: a 429 puts the deployment in a Retry-After cooldown.
    up.push(
        "/v1/chat/completions",
        Reply::Json {
            status: 429,
            body: json!({"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}),
            headers: vec![("retry-after".into(), "17".into())],
        },
    );
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "17");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");

    // During the cooldown the gateway answers 429 itself, without calling upstream.
    let calls = up.requests().len();
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(
        r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 16
    );
    assert_eq!(up.requests().len(), calls);

    let records = gw.records().await;
    assert!(
        records
            .iter()
            .all(|r| !format!("{r:?}").contains("sk-upstream-secret-123"))
    );
    let classes: Vec<_> = records
        .iter()
        .filter_map(|r| r.error_class.clone())
        .collect();
    for c in [
        "upstream_rate_limited",
        "upstream_error",
        "upstream_bad_request",
        "upstream_auth",
        "upstream_timeout",
    ] {
        assert!(classes.iter().any(|x| x == c), "missing {c} in {classes:?}");
    }
}

#[tokio::test]
async fn connection_refused_is_502() {
    // Bind then drop a listener to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let yaml = format!(
        "models:\n  - name: dead\n    provider: openai_compatible\n    model: x\n    base_url: http://127.0.0.1:{port}/v1\n"
    );
    let gw = Gateway::start(&yaml, &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model":"dead","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_unavailable");
}

#[tokio::test]
async fn mid_stream_reset_ends_with_error_event_and_no_done() {
    let up = MockUpstream::start().await;
    let mut events = openai_stream(&["partial", " answer", " never", " finished"], false);
    events.truncate(3);
    up.push(
        "/v1/chat/completions",
        Reply::Sse {
            events,
            split: Split::Awkward,
            gap: Duration::ZERO,
            end: End::Reset,
        },
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let resp = gw
        .post("/v1/chat/completions")
        .json(&json!({"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let data = sse_data(&resp.text().await.unwrap());
    // The mock's reset may swallow its last buffered bytes; some content must have arrived.
    assert!(stream_text(&data).starts_with("partial"), "{data:?}");
    assert!(!data.iter().any(|d| d == "[DONE]"));
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "api_error");
    let rec = gw.record(&rid).await;
    assert_eq!(rec.error_class.as_deref(), Some("stream_interrupted"));
    assert!(rec.output_tokens > 0 && rec.usage_estimated);
}

#[tokio::test]
async fn stream_stalling_after_start_hits_idle_timeout() {
    let up = MockUpstream::start().await;
    let mut events = openai_stream(&["one"], false);
    events.truncate(2);
    up.push(
        "/v1/chat/completions",
        Reply::Sse {
            events,
            split: Split::Events,
            gap: Duration::ZERO,
            end: End::Stall,
        },
    );
    let gw = Gateway::start(
        &config(&up, "").replace("idle_ms: 1000", "idle_ms: 200"),
        &[],
    )
    .await;
    let resp = gw
        .post("/v1/chat/completions")
        .json(&json!({"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    let data = sse_data(&resp.text().await.unwrap());
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_timeout");
    assert_eq!(up.wait_cancelled(1, Duration::from_secs(5)).await, 1);
}

#[tokio::test]
async fn client_disconnect_cancels_upstream_and_is_logged() {
    let up = MockUpstream::start().await;
    let pieces: Vec<String> = (0..200).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    up.push(
        "/v1/chat/completions",
        Reply::Sse {
            events: openai_stream(&refs, false),
            split: Split::Events,
            gap: Duration::from_millis(20),
            end: End::Clean,
        },
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let mut resp = gw
        .post("/v1/chat/completions")
        .json(&json!({"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    // Read a few chunks, then hang up.
    let mut seen = String::new();
    while seen.matches("\"content\":\"w").count() < 3 {
        let c = resp.chunk().await.unwrap().unwrap();
        seen.push_str(std::str::from_utf8(&c).unwrap());
    }
    drop(resp);
    assert_eq!(
        up.wait_cancelled(1, Duration::from_secs(5)).await,
        1,
        "upstream stream not cancelled"
    );
    assert_eq!(up.completed(), 0);
    let rec = gw.record(&rid).await;
    assert_eq!(rec.status, 499);
    assert_eq!(rec.error_class.as_deref(), Some("client_disconnected"));
    assert!(
        rec.output_tokens >= 1,
        "tokens seen must be logged: {rec:?}"
    );
    assert!(rec.usage_estimated);
}

#[tokio::test]
async fn embeddings_pass_through() {
    let up = MockUpstream::start().await;
    let yaml = format!(
        "models:\n  - name: emb\n    provider: openai\n    model: text-embedding-3-small\n    base_url: {}/v1\n    api_key: k\n",
        up.url()
    );
    let gw = Gateway::start(&yaml, &[]).await;
    let r = gw
        .post("/v1/embeddings")
        .body(r#"{"model":"emb","input":"hello","encoding_format":"float","x":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"][0]["embedding"], json!([0.1, 0.2, 0.3]));
    let rec = up.last();
    assert_eq!(rec.path, "/v1/embeddings");
    assert_eq!(
        std::str::from_utf8(&rec.body).unwrap(),
        r#"{"model":"text-embedding-3-small","input":"hello","encoding_format":"float","x":1}"#
    );
    let logged = gw.records().await;
    assert_eq!(logged[0].route, "embeddings");
    assert_eq!(logged[0].input_tokens, 3);
}

#[tokio::test]
async fn zero_config_openai_prefix_uses_sdk_environment() {
    let up = MockUpstream::start().await;
    let base = format!("{}/v1", up.url());
    let gw = Gateway::start(
        "",
        &[("OPENAI_API_KEY", "sk-env"), ("OPENAI_BASE_URL", &base)],
    )
    .await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model":"openai/gpt-4.1-nano","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rec = up.last();
    assert_eq!(rec.json()["model"], "gpt-4.1-nano");
    assert_eq!(
        rec.header("authorization").as_deref(),
        Some("Bearer sk-env")
    );
}

#[tokio::test]
async fn in_band_stream_errors_end_the_stream_without_leaking_keys() {
    let up = MockUpstream::start().await;
    let mut events = openai_stream(&["start"], false);
    events.truncate(2);
    events.push(
        "data: {\"error\":{\"message\":\"backend lost; key sk-upstream-secret-123 throttled\",\"type\":\"server_error\"}}\n\n"
            .into(),
    );
    up.push("/v1/chat/completions", Reply::sse(events, Split::Awkward));
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let text = gw
        .post("/v1/chat/completions")
        .json(&json!({"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data = sse_data(&text);
    assert_eq!(stream_text(&data), "start");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("backend lost")
    );
    assert!(!text.contains("sk-upstream-secret-123"), "{text}");
    assert!(!data.iter().any(|d| d == "[DONE]"));
}

#[tokio::test]
async fn the_client_trace_reaches_the_upstream() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    gw.post("/v1/chat/completions")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(&json!({"model":"gpt","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    let tp = up.last().header("traceparent").unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    assert!(
        !tp.contains("00f067aa0ba902b7"),
        "the gateway's own span is the parent upstream"
    );
    // Without one, a new trace starts here.
    gw.post("/v1/chat/completions")
        .json(&json!({"model":"gpt","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(up.last().header("traceparent").unwrap().len(), 55);
}

#[tokio::test]
async fn presets_reach_their_vendor_and_respect_its_quirks() {
    let up = MockUpstream::start().await;
    let base = format!("{}/v1", up.url());
    let gw = Gateway::start(
        "",
        &[
            ("MISTRAL_API_KEY", "sk-mistral-test"),
            ("MISTRAL_BASE_URL", base.as_str()),
        ],
    )
    .await;
    // Zero-config `mistral/<model>`: Mistral rejects stream_options, so the
    // gateway does not add it (and the Anthropic front door does not either).
    let r = gw
        .post("/v1/chat/completions")
        .json(
            &json!({"model": "mistral/mistral-large-latest", "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.text().await.unwrap();
    let sent = up.last();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.json()["model"], "mistral-large-latest");
    assert!(
        sent.json().get("stream_options").is_none(),
        "{}",
        sent.json()
    );
    assert_eq!(
        sent.header("authorization").as_deref(),
        Some("Bearer sk-mistral-test")
    );
    let r = gw
        .post("/v1/messages")
        .json(
            &json!({"model": "mistral/mistral-large-latest", "max_tokens": 20, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.text().await.unwrap();
    assert!(up.last().json().get("stream_options").is_none());
}

#[tokio::test]
async fn azure_deployments_use_the_deployment_path_api_version_and_api_key() {
    let up = MockUpstream::start().await;
    let chat_path = "/openai/deployments/gpt4o-prod/chat/completions";
    up.push(
        chat_path,
        Reply::json(modelgate_testkit::openai_completion("Hi from Azure.")),
    );
    up.push(
        chat_path,
        Reply::sse(openai_stream(&["Hi", " there"], true), Split::Awkward),
    );
    let yaml = format!(
        r#"
deployments:
  - {{ name: az, provider: azure, model: gpt4o-prod, base_url: "{}", api_key: az-key-123, api_version: 2025-01-01-preview }}
models:
  - name: gpt
    deployments: [az]
"#,
        up.url()
    );
    let gw = Gateway::start(&yaml, &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hi from Azure.");
    let sent = up.last();
    assert_eq!(sent.path, chat_path);
    assert_eq!(sent.query, "api-version=2025-01-01-preview");
    assert_eq!(sent.header("api-key").as_deref(), Some("az-key-123"));
    assert!(sent.header("authorization").is_none());
    // Streams get usage like OpenAI's.
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "gpt", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let text = stream_text(&sse_data(&r.text().await.unwrap()));
    assert_eq!(text, "Hi there");
    assert_eq!(up.last().json()["stream_options"]["include_usage"], true);

    // Zero-config: azure/<deployment> from the variables Azure's SDKs read.
    let gw = Gateway::start(
        "",
        &[
            ("AZURE_OPENAI_API_KEY", "az-env-key"),
            ("AZURE_OPENAI_ENDPOINT", up.url().as_str()),
        ],
    )
    .await;
    up.push(
        "/openai/deployments/mini/chat/completions",
        Reply::json(modelgate_testkit::openai_completion("ok")),
    );
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "azure/mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.last().query, "api-version=2024-10-21");
    assert_eq!(up.last().header("api-key").as_deref(), Some("az-env-key"));
}

#[tokio::test]
async fn legacy_completions_pass_through_to_openai_dialect_deployments() {
    let up = MockUpstream::start().await;
    let completion = json!({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "gpt-3.5-turbo-instruct",
        "choices": [{"text": " there", "index": 0, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}});
    up.push("/v1/completions", Reply::json(completion.clone()));
    let chunk = |text: &str, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "cmpl-s", "object": "text_completion", "created": 1, "model": "m",
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}]})
        )
    };
    up.push(
        "/v1/completions",
        Reply::sse(
            vec![
                chunk("Hel", Value::Null),
                chunk("lo", json!("stop")),
                format!("data: {}\n\n", json!({"id": "cmpl-s", "object": "text_completion", "created": 1, "model": "m", "choices": [],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})),
                "data: [DONE]\n\n".into(),
            ],
            Split::Awkward,
        ),
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/completions")
        .json(&json!({"model": "gpt", "prompt": "Hi", "max_tokens": 5, "echo": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(r.json::<Value>().await.unwrap(), completion);
    let sent = up.last();
    assert_eq!(sent.path, "/v1/completions");
    assert_eq!(sent.json()["prompt"], "Hi");
    assert_eq!(sent.json()["echo"], false);
    let rec = gw.record(&rid).await;
    assert_eq!(
        (rec.route.as_str(), rec.input_tokens, rec.output_tokens),
        ("completions", 2, 1)
    );

    let r = gw
        .post("/v1/completions")
        .json(&json!({"model": "gpt", "prompt": "Hi", "stream": true}))
        .send()
        .await
        .unwrap();
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let text: String = data
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "Hello");
    // The gateway asked for usage and kept the usage chunk to itself.
    assert_eq!(up.last().json()["stream_options"]["include_usage"], true);
    assert!(!data.iter().any(|d| d.contains("\"usage\"")));
    let rec = gw.record(&rid).await;
    assert_eq!((rec.input_tokens, rec.output_tokens), (3, 2));

    let r = gw
        .post("/v1/completions")
        .json(&json!({"model": "mock/echo", "prompt": "Hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["param"], "model");
}

#[tokio::test]
async fn passthrough_reaches_native_endpoints_with_the_deployments_credentials() {
    let up = MockUpstream::start().await;
    up.push(
        "/v1/files",
        Reply::json(json!({"object": "list", "data": [{"id": "file-1", "object": "file"}]})),
    );
    up.push(
        "/v1/chat/completions",
        Reply::json(modelgate_testkit::openai_completion("native")),
    );
    up.push(
        "/v1/batches/b1",
        Reply::error(
            404,
            json!({"error": {"message": "No such batch", "type": "invalid_request_error"}}),
        ),
    );
    let gw = Gateway::start(
        &config(&up, ""),
        &[("MODELGATE_MASTER_KEY", "mg-master-pt")],
    )
    .await;
    let r = gw
        .get("/passthrough/gpt/files?purpose=batch")
        .bearer_auth("mg-master-pt")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(r.json::<Value>().await.unwrap()["data"][0]["id"], "file-1");
    let sent = up.last();
    assert_eq!(
        (
            sent.method.as_str(),
            sent.path.as_str(),
            sent.query.as_str()
        ),
        ("GET", "/v1/files", "purpose=batch")
    );
    let auth = sent.header("authorization").unwrap();
    assert!(
        auth.contains("sk-upstream") && !auth.contains("mg-master-pt"),
        "{auth}"
    );
    let rec = gw.record(&rid).await;
    assert_eq!((rec.route.as_str(), rec.status), ("passthrough", 200));
    assert_eq!(rec.requested_model, "passthrough/gpt");

    // A JSON answer with usage is metered and costed.
    let r = gw
        .post("/passthrough/gpt/chat/completions")
        .bearer_auth("mg-master-pt")
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await.unwrap();
    let rec = gw.record(&rid).await;
    assert_eq!((rec.input_tokens, rec.output_tokens), (9, 4));

    // Upstream errors keep their status; bad paths and names are refused.
    let r = gw
        .get("/passthrough/gpt/batches/b1")
        .bearer_auth("mg-master-pt")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let _ = r.bytes().await.unwrap();
    assert_eq!(gw.record(&rid).await.status, 404);
    let r = gw
        .get("/passthrough/nobody/files")
        .bearer_auth("mg-master-pt")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Dot segments (which HTTP clients normally resolve away) are refused
    // rather than resolved against the upstream's base URL.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = gw.url.trim_start_matches("http://").to_owned();
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(
            format!("GET /passthrough/gpt/v/../../admin HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer mg-master-pt\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    }
    let r = gw.get("/passthrough/gpt/files").send().await.unwrap();
    assert_eq!(r.status(), 401);
}

/// A chat request carrying most of what chat can: a system prompt, an image,
/// an earlier assistant turn with two parallel tool calls and both results,
/// tools, a JSON schema for the answer and a reasoning effort.
fn rich_chat_request(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "Answer in JSON."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris and Rome?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_b", "content": "24C"},
            {"role": "user", "content": "And tomorrow, in both?"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "parallel_tool_calls": true,
        "response_format": {"type": "json_schema", "json_schema": {"name": "forecast", "strict": true, "schema": {
            "type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"], "additionalProperties": false}}},
        "reasoning_effort": "low"
    })
}

/// `rich_chat_request` to a `provider` deployment (an OpenAI-format upstream):
/// the body arrives as sent (only `model` replaced) and the reply — two
/// parallel tool calls and reasoning tokens — comes back verbatim.
async fn rich_chat_request_passes_through(provider: &str) {
    let up = MockUpstream::start().await;
    let mut reply = modelgate_testkit::openai_tool_completion("get_weather", "{}");
    reply["choices"][0]["message"]["tool_calls"] = json!([
        {"id": "call_c", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": "call_d", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
    ]);
    reply["usage"]["completion_tokens_details"] = json!({"reasoning_tokens": 64});
    up.push("/v1/chat/completions", Reply::json(reply.clone()));
    let yaml = format!(
        "models:\n  - name: m\n    provider: {provider}\n    model: upstream-model\n    base_url: {}/v1\n    api_key: k\n",
        up.url()
    );
    let gw = Gateway::start(&yaml, &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&rich_chat_request("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), reply);
    let sent = up.last();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.json(), rich_chat_request("upstream-model"));
}

#[tokio::test]
async fn openai_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent() {
    rich_chat_request_passes_through("openai").await;
}

#[tokio::test]
async fn openai_compatible_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent() {
    rich_chat_request_passes_through("openai_compatible").await;
}

#[tokio::test]
async fn openai_compatible_streams_usage_and_tool_arguments_and_maps_errors() {
    let up = MockUpstream::start().await;
    let yaml = format!(
        r#"
models:
  - name: local
    provider: openai_compatible
    model: llama3.1:8b
    base_url: {url}/v1
    retry: {{ max_attempts: 1 }}
  - name: local-no-usage
    provider: openai_compatible
    model: llama3.1:8b
    base_url: {url}/v1
    stream_usage: false
    retry: {{ max_attempts: 1 }}
"#,
        url = up.url()
    );
    let gw = Gateway::start(&yaml, &[]).await;

    // Usage the client asked for arrives as the last chunk.
    let body = gw
        .post("/v1/chat/completions")
        .json(
            &json!({"model": "local", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data = sse_data(&body);
    assert_eq!(stream_text(&data), "Hello from upstream.");
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 3);
    // `stream_usage: false` (servers that reject `stream_options`): nothing added.
    gw.post("/v1/chat/completions")
        .json(&json!({"model": "local-no-usage", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(up.last().json().get("stream_options").is_none());

    // Tool-call arguments streamed in pieces add up to the whole call.
    let body = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "local", "stream": true,
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (mut args, mut pieces, mut finish) = (String::new(), 0, None);
    for d in sse_data(&body).iter().filter(|d| *d != "[DONE]") {
        let v: Value = serde_json::from_str(d).unwrap();
        for c in v["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(a) = c["function"]["arguments"]
                .as_str()
                .filter(|a| !a.is_empty())
            {
                args.push_str(a);
                pieces += 1;
            }
        }
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            finish = Some(f.to_owned());
        }
    }
    assert!(pieces > 1, "arguments arrive in several deltas");
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "mock", "days": 1})
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));

    // Upstream errors keep their meaning in the OpenAI envelope.
    let ask = || {
        gw.post("/v1/chat/completions")
            .json(&json!({"model": "local", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    up.push(
        "/v1/chat/completions",
        Reply::error(
            500,
            json!({"error": {"message": "CUDA out of memory", "type": "server_error"}}),
        ),
    );
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "api_error"
    );
    up.push(
        "/v1/chat/completions",
        Reply::Json {
            status: 429,
            body: json!({"error": {"message": "too many requests", "type": "rate_limit_error"}}),
            headers: vec![("retry-after".into(), "5".into())],
        },
    );
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "5");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "rate_limit_error"
    );
}

/// The tool-call argument deltas of an OpenAI chat stream: their
/// concatenation, how many non-empty pieces there were, and the finish reason.
fn streamed_tool_arguments(data: &[String]) -> (String, usize, Option<String>) {
    let (mut args, mut pieces, mut finish) = (String::new(), 0, None);
    for d in data.iter().filter(|d| *d != "[DONE]") {
        let v: Value = serde_json::from_str(d).unwrap();
        for c in v["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(a) = c["function"]["arguments"]
                .as_str()
                .filter(|a| !a.is_empty())
            {
                args.push_str(a);
                pieces += 1;
            }
        }
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            finish = Some(f.to_owned());
        }
    }
    (args, pieces, finish)
}

#[tokio::test]
async fn azure_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent_and_streams_usage_tool_arguments_and_errors()
 {
    let up = MockUpstream::start().await;
    let chat_path = modelgate_testkit::azure::path("gpt4o-prod", "chat/completions");
    let yaml = format!(
        r#"
models:
  - {{ name: m, provider: azure, model: gpt4o-prod, base_url: "{}", api_key: az-key-123, api_version: 2025-01-01-preview, retry: {{ max_attempts: 1 }} }}
"#,
        up.url()
    );
    let gw = Gateway::start(&yaml, &[]).await;

    // The rich request goes to the deployment URL as sent (only `model`
    // replaced); two parallel calls and reasoning tokens come back verbatim.
    let mut reply = modelgate_testkit::openai_tool_completion("get_weather", "{}");
    reply["choices"][0]["message"]["tool_calls"] = json!([
        {"id": "call_c", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": "call_d", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
    ]);
    reply["usage"]["completion_tokens_details"] = json!({"reasoning_tokens": 64});
    up.push(&chat_path, Reply::json(reply.clone()));
    let r = gw
        .post("/v1/chat/completions")
        .json(&rich_chat_request("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), reply);
    let sent = up.last();
    assert_eq!(sent.path, chat_path);
    assert_eq!(sent.query, "api-version=2025-01-01-preview");
    assert_eq!(sent.header("api-key").as_deref(), Some("az-key-123"));
    assert_eq!(sent.json(), rich_chat_request("gpt4o-prod"));

    // A stream with the usage chunk the client asked for.
    up.push(
        &chat_path,
        Reply::sse(openai_stream(&["Hel", "lo"], true), Split::Awkward),
    );
    let body = gw
        .post("/v1/chat/completions")
        .json(
            &json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data = sse_data(&body);
    assert_eq!(stream_text(&data), "Hello");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 2);

    // Tool-call arguments streamed in pieces add up to the whole call (the
    // mock's Azure route answers a tool offer with a call, like OpenAI).
    let body = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "m", "stream": true,
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": rich_chat_request("m")["tools"]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (args, pieces, finish) = streamed_tool_arguments(&sse_data(&body));
    assert!(pieces > 1, "arguments arrive in several deltas");
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "mock"})
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(up.last().path, chat_path);

    // Azure's content filter is the client's 400, with its code.
    let ask = || {
        gw.post("/v1/chat/completions")
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    up.push(
        &chat_path,
        Reply::error(
            400,
            json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
                "type": null, "param": "prompt", "code": "content_filter", "status": 400,
                "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {"hate": {"filtered": true, "severity": "high"}}}}}),
        ),
    );
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "content_filter");

    // A stream cut after it started ends with an error event and no [DONE].
    let mut events = openai_stream(&["partial", " answer", " never", " finished"], false);
    events.truncate(3);
    up.push(
        &chat_path,
        Reply::Sse {
            events,
            split: Split::Awkward,
            gap: Duration::ZERO,
            end: End::Reset,
        },
    );
    let body = gw
        .post("/v1/chat/completions")
        .json(
            &json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data = sse_data(&body);
    assert!(stream_text(&data).starts_with("partial"), "{body}");
    assert!(!data.iter().any(|d| d == "[DONE]"));
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "api_error");

    // Last (it cools the deployment down): Azure's 429, with its Retry-After.
    up.push(
        &chat_path,
        Reply::Json {
            status: 429,
            body: json!({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2025-01-01-preview have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds."}}),
            headers: vec![("retry-after".into(), "6".into())],
        },
    );
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "6");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Please retry after 6 seconds"),
        "{v}"
    );
}

#[tokio::test]
async fn a_budgeted_completion_without_max_tokens_gets_the_reserved_cap() {
    let up = MockUpstream::start().await;
    let completion = json!({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
        "choices": [{"text": "ok", "index": 0, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}});
    up.push("/v1/completions", Reply::json(completion.clone()));
    up.push("/v1/completions", Reply::json(completion));
    let gw = Gateway::start(
        &config(&up, ""),
        &[("MODELGATE_MASTER_KEY", "mg-master-cap")],
    )
    .await;
    let r = gw
        .post("/admin/keys")
        .bearer_auth("mg-master-cap")
        .json(&json!({"max_budget_usd": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let key = r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // A budgeted key: the reservation assumed a cap, so the upstream gets it.
    let r = gw
        .post("/v1/completions")
        .bearer_auth(&key)
        .json(&json!({"model": "gpt", "prompt": "Hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        up.last().json()["max_tokens"].as_u64().is_some(),
        "{}",
        up.last().json()
    );
    // The client's own max_tokens is left as sent.
    let r = gw
        .post("/v1/completions")
        .bearer_auth(&key)
        .json(&json!({"model": "gpt", "prompt": "Hi", "max_tokens": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.last().json()["max_tokens"], 7);
}
