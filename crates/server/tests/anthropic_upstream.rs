//! The gateway in front of an Anthropic-format upstream: translation both ways.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Gateway, sse_data, stream_text};
use modelgate_testkit::{MockUpstream, Reply, Split, anthropic_stream, anthropic_tool_stream};
use serde_json::{Value, json};

fn config(up: &MockUpstream, extra: &str) -> String {
    format!(
        r#"
models:
  - name: claude
    provider: anthropic
    model: claude-sonnet-4-5
    base_url: {}
    api_key: sk-ant-secret
    price: {{ input: 3, output: 15, cached_input: 0.3, cache_write: 3.75 }}
    retry: {{ max_attempts: 1 }}
{extra}"#,
        up.url()
    )
}

#[tokio::test]
async fn request_is_translated_and_response_is_openai_shaped() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({
            "model": "claude",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
                ]}
            ],
            "max_completion_tokens": 300,
            "stop": ["END"],
            "temperature": 0.5,
            "user": "u-1"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from Claude.");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 16);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 4);

    let rec = up.last();
    assert_eq!(rec.path, "/v1/messages");
    assert_eq!(rec.header("x-api-key").as_deref(), Some("sk-ant-secret"));
    assert_eq!(
        rec.header("anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    assert!(rec.header("authorization").is_none());
    let sent = rec.json();
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["max_tokens"], 300);
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(sent["metadata"]["user_id"], "u-1");
    assert_eq!(
        sent["messages"][0]["content"][1]["source"]["media_type"],
        "image/png"
    );

    let logged = gw.records().await;
    assert_eq!(
        (
            logged[0].input_tokens,
            logged[0].output_tokens,
            logged[0].cached_tokens
        ),
        (16, 5, 4)
    );
    // 12 uncached * $3 + 4 cached * $0.30 + 5 * $15 per 1M = 0.0000372 + 0.0000012 + 0.000075
    assert_eq!(logged[0].cost_nanos, Some(112_200));
}

#[tokio::test]
async fn default_max_tokens_is_sent() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, "    default_max_tokens: 777\n"), &[]).await;
    gw.post("/v1/chat/completions")
        .json(&json!({"model":"claude","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(up.last().json()["max_tokens"], 777);
}

#[tokio::test]
async fn stream_is_translated_chunk_by_chunk() {
    let up = MockUpstream::start().await;
    up.push(
        "/v1/messages",
        Reply::sse(anthropic_stream(&["Hel", "lo ✓", " there"]), Split::Awkward),
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(
            &json!({"model":"claude","stream":true,"stream_options":{"include_usage":true},
            "messages":[{"role":"user","content":"hi"}]}),
        )
        .send()
        .await
        .unwrap();
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(stream_text(&data), "Hello ✓ there");
    assert_eq!(data.last().unwrap(), "[DONE]");
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 3);
    assert_eq!(up.last().json()["stream"], true);
    let rec = gw.record(&rid).await;
    assert_eq!((rec.input_tokens, rec.output_tokens), (12, 3));
}

#[tokio::test]
async fn streamed_tool_call_arguments_arrive_whole() {
    let up = MockUpstream::start().await;
    up.push(
        "/v1/messages",
        Reply::sse(
            anthropic_tool_stream("get_weather", &["{\"loc", "ation\": \"Par", "is\"}"]),
            Split::Bytes(3),
        ),
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let body = json!({
        "model": "claude", "stream": true,
        "messages": [{"role":"user","content":"weather?"}],
        "tools": [{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"location":{"type":"string"}}}}}],
        "tool_choice": "required"
    });
    let r = gw
        .post("/v1/chat/completions")
        .json(&body)
        .send()
        .await
        .unwrap();
    let data = sse_data(&r.text().await.unwrap());
    let mut args = String::new();
    let mut name = None;
    let mut finish = None;
    for d in data.iter().filter(|d| *d != "[DONE]") {
        let v: Value = serde_json::from_str(d).unwrap();
        if let Some(calls) = v["choices"][0]["delta"]["tool_calls"].as_array() {
            for c in calls {
                if let Some(n) = c["function"]["name"].as_str() {
                    name = Some(n.to_owned());
                }
                args.push_str(c["function"]["arguments"].as_str().unwrap_or(""));
            }
        }
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            finish = Some(f.to_owned());
        }
    }
    assert_eq!(name.as_deref(), Some("get_weather"));
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"location": "Paris"})
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let sent = up.last().json();
    assert_eq!(sent["tool_choice"], json!({"type": "any"}));
    assert_eq!(
        sent["tools"][0]["input_schema"]["properties"]["location"]["type"],
        "string"
    );
}

#[tokio::test]
async fn anthropic_errors_become_openai_envelopes() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let ask = || {
        gw.post("/v1/chat/completions")
            .json(&json!({"model":"claude","messages":[{"role":"user","content":"hi"}]}))
            .send()
    };
    up.push(
        "/v1/messages",
        Reply::error(400, json!({"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}})),
    );
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prompt is too long")
    );

    up.push(
        "/v1/messages",
        Reply::error(
            529,
            json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        ),
    );
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "overloaded_error");

    up.push(
        "/v1/messages",
        Reply::Json {
            status: 429,
            body: json!({"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}),
            headers: vec![("retry-after".into(), "30".into())],
        },
    );
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "30");
}

#[tokio::test]
async fn fields_anthropic_cannot_take_are_rejected_by_name_unless_dropped() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(
        &config(
            &up,
            &format!(
                "  - name: claude-lenient\n    provider: anthropic\n    model: claude-haiku-4-5\n    base_url: {}\n    api_key: k\n    drop_unsupported_params: true\n",
                up.url()
            ),
        ),
        &[],
    )
    .await;
    for (field, value) in [
        ("n", json!(2)),
        ("seed", json!(1)),
        ("logprobs", json!(true)),
        ("reasoning_effort", json!("high")),
        ("frobnicate", json!(1)),
    ] {
        let mut body = json!({"model":"claude","messages":[{"role":"user","content":"hi"}]});
        body[field] = value.clone();
        let r = gw
            .post("/v1/chat/completions")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{field}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["param"], field);
        body["model"] = json!("claude-lenient");
        let r = gw
            .post("/v1/chat/completions")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{field} should be dropped");
        assert!(up.last().json().get(field).is_none());
    }
    // Nothing was sent upstream for the rejected requests.
    assert_eq!(up.requests().len(), 5);
}

#[tokio::test]
async fn zero_config_anthropic_prefix_uses_sdk_environment_and_catalog_prices() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(
        "",
        &[
            ("ANTHROPIC_API_KEY", "ak-env"),
            ("ANTHROPIC_BASE_URL", &up.url()),
        ],
    )
    .await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model":"anthropic/claude-haiku-4-5","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rec = up.last();
    assert_eq!(rec.path, "/v1/messages");
    assert_eq!(rec.json()["model"], "claude-haiku-4-5");
    assert_eq!(rec.header("x-api-key").as_deref(), Some("ak-env"));
}

#[tokio::test]
async fn catalog_prices_cost_the_zero_config_models() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(
        "",
        &[
            ("ANTHROPIC_API_KEY", "ak"),
            ("ANTHROPIC_BASE_URL", &up.url()),
        ],
    )
    .await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model":"anthropic/claude-haiku-4-5","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    // 12 uncached x $1 + 4 cache reads x $0.10 + 5 out x $5, per 1M (catalog)
    assert_eq!(r.headers()["x-modelgate-cost"], "0.0000374");
    let logged = gw.records().await;
    assert_eq!(logged[0].cost_nanos, Some(37_400));
}

#[tokio::test]
async fn anthropic_has_no_embeddings() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/embeddings")
        .json(&json!({"model":"claude","input":"x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn interrupted_stream_counts_the_tokens_the_client_received() {
    let up = MockUpstream::start().await;
    let pieces: Vec<String> = (0..100).map(|i| format!("word{i:03} ")).collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    up.push(
        "/v1/messages",
        Reply::Sse {
            events: anthropic_stream(&refs),
            split: Split::Events,
            gap: std::time::Duration::from_millis(20),
            end: modelgate_testkit::End::Clean,
        },
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let mut r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model":"claude","stream":true,"messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let mut seen = String::new();
    while seen.matches("word").count() < 20 {
        seen.push_str(std::str::from_utf8(&r.chunk().await.unwrap().unwrap()).unwrap());
    }
    drop(r);
    assert_eq!(
        up.wait_cancelled(1, std::time::Duration::from_secs(5))
            .await,
        1
    );
    let rec = gw.record(&rid).await;
    assert_eq!(rec.status, 499);
    assert_eq!(rec.input_tokens, 12, "input comes from message_start");
    // message_start said output_tokens: 1; the client received ~20 words of 8 chars.
    assert!(rec.output_tokens >= 40, "{rec:?}");
    assert!(rec.usage_estimated);
}

#[tokio::test]
async fn multi_turn_tool_conversation_is_valid_for_anthropic() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let body = json!({
        "model": "claude",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "24C"},
            {"role": "user", "content": "And tomorrow?"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "auto",
        "parallel_tool_calls": true
    });
    let r = gw
        .post("/v1/chat/completions")
        .json(&body)
        .send()
        .await
        .unwrap();
    // The mock upstream validates like the real API (tool_result after tool_use, roles, ...).
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "mock"})
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let sent = up.last().json();
    let msgs = sent["messages"].as_array().unwrap();
    assert_eq!(
        msgs.len(),
        3,
        "user, assistant(tool_use x2), user(tool_result x2 + text): {sent}"
    );
    assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
    assert_eq!(msgs[2]["content"][1]["type"], "tool_result");
    assert_eq!(msgs[2]["content"][2]["text"], "And tomorrow?");
}
