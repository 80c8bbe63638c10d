//! The gateway in front of a Bedrock Converse upstream: translation both
//! ways, SigV4 (verified by the mock) or Bedrock API keys, binary event
//! streams split anywhere, errors, failover and zero-config.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Gateway, named_events, sse_data, stream_text};
use modelgate_testkit::bedrock::{
    self, Auth, MOCK_AWS_ACCESS_KEY_ID, MOCK_AWS_SECRET_ACCESS_KEY, MOCK_BEDROCK_API_KEY,
    converse_path, converse_stream, converse_tool_stream, event, exception,
};
use modelgate_testkit::{End, MockUpstream, Reply, Split};
use serde_json::{Value, json};

const NOVA: &str = "amazon.nova-pro-v1:0";

/// One signed deployment `nova` (plus `extra` YAML lines).
fn config(up: &MockUpstream, extra: &str) -> String {
    format!(
        r#"
models:
  - name: nova
    provider: bedrock
    model: {NOVA}
    base_url: {url}
    region: us-east-1
    aws_access_key_id: {MOCK_AWS_ACCESS_KEY_ID}
    aws_secret_access_key: "{MOCK_AWS_SECRET_ACCESS_KEY}"
    price: {{ input: 0.8, output: 3.2 }}
    retry: {{ max_attempts: 1 }}
{extra}"#,
        url = up.url()
    )
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

/// The terminal error event of an SSE body, if it ended with one.
fn error_event(data: &[String]) -> Option<Value> {
    let last: Value = serde_json::from_str(data.last()?).ok()?;
    last.get("error").cloned()
}

#[tokio::test]
async fn request_is_translated_signed_and_costed() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({
            "model": "nova",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is this?"}
            ],
            "max_tokens": 300,
            "stop": ["END"],
            "temperature": 0.5
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-modelgate-cost"], "0.0000216");
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], NOVA);
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from Bedrock.");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        (
            v["usage"]["prompt_tokens"].as_u64(),
            v["usage"]["completion_tokens"].as_u64()
        ),
        (Some(11), Some(4))
    );

    let rec = up.last();
    assert_eq!(rec.path, "/model/amazon.nova-pro-v1%3A0/converse");
    assert_eq!(rec.path, converse_path(NOVA, false));
    // SigV4, in the documented format, and verified by the mock.
    let date = rec.header("x-amz-date").unwrap();
    assert_eq!(date.len(), 16);
    let authz = rec.header("authorization").unwrap();
    let prefix = format!(
        "AWS4-HMAC-SHA256 Credential={MOCK_AWS_ACCESS_KEY_ID}/{}/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=",
        &date[..8]
    );
    assert!(authz.starts_with(&prefix), "{authz}");
    assert_eq!(authz.len(), prefix.len() + 64);
    assert_eq!(
        up.bedrock_auths(),
        vec![Auth::SigV4 {
            region: "us-east-1".into()
        }]
    );
    let sent = rec.json();
    assert_eq!(sent["system"], json!([{"text": "Be brief."}]));
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [{"text": "What is this?"}]}])
    );
    assert_eq!(
        sent["inferenceConfig"],
        json!({"maxTokens": 300, "temperature": 0.5, "stopSequences": ["END"]})
    );
    assert!(sent.get("modelId").is_none() && sent.get("model").is_none());

    let logged = gw.record(&rid).await;
    assert_eq!(logged.provider.as_deref(), Some("bedrock"));
    assert_eq!(logged.upstream_model.as_deref(), Some(NOVA));
    assert_eq!((logged.input_tokens, logged.output_tokens), (11, 4));
    assert!(!logged.usage_estimated);
    // 11 x $0.80 + 4 x $3.20 per 1M
    assert_eq!(logged.cost_nanos, Some(21_600));
}

#[tokio::test]
async fn temporary_credentials_sign_the_session_token_and_model_fields_pass_through() {
    let up = MockUpstream::start().await;
    let extra = format!(
        "  - name: claude\n    provider: bedrock\n    model: anthropic.claude-3-5-haiku-20241022-v1:0\n    base_url: {}\n    region: eu-west-1\n    aws_access_key_id: {MOCK_AWS_ACCESS_KEY_ID}\n    aws_secret_access_key: \"{MOCK_AWS_SECRET_ACCESS_KEY}\"\n    aws_session_token: ${{SESSION}}\n    default_max_tokens: 256\n    additional_model_request_fields: {{ top_k: 40 }}\n",
        up.url()
    );
    let gw = Gateway::start(
        &config(&up, &extra),
        &[("SESSION", "IQoJb3JpZ2luX2VjEMockSessionToken==")],
    )
    .await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat("claude"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let rec = up.last();
    assert_eq!(
        rec.header("x-amz-security-token").as_deref(),
        Some("IQoJb3JpZ2luX2VjEMockSessionToken==")
    );
    assert!(
        rec.header("authorization")
            .unwrap()
            .contains("/eu-west-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,")
    );
    assert_eq!(
        up.bedrock_auths(),
        vec![Auth::SigV4 {
            region: "eu-west-1".into()
        }]
    );
    let sent = rec.json();
    assert_eq!(sent["inferenceConfig"]["maxTokens"], 256);
    assert_eq!(sent["additionalModelRequestFields"], json!({"top_k": 40}));
}

#[tokio::test]
async fn a_wrong_secret_is_rejected_by_the_signature_check() {
    let up = MockUpstream::start().await;
    let yaml = config(&up, "").replace(MOCK_AWS_SECRET_ACCESS_KEY, "not-the-secret");
    let gw = Gateway::start(&yaml, &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat("nova"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    assert!(text.contains("authentication failed"), "{text}");
    assert!(!text.contains("not-the-secret"), "{text}");
    assert!(up.bedrock_auths().is_empty());
}

#[tokio::test]
async fn stream_split_anywhere_is_translated_chunk_by_chunk() {
    let up = MockUpstream::start().await;
    for _ in 0..2 {
        up.push(
            &converse_path(NOVA, true),
            Reply::event_stream(
                converse_stream(&["Hel", "lo ✓", " there"], true),
                Split::Awkward,
            ),
        );
    }
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(
            &json!({"model": "nova", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(stream_text(&data), "Hello ✓ there");
    assert_eq!(data.last().unwrap(), "[DONE]");
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let finish: Value = serde_json::from_str(&data[data.len() - 3]).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["prompt_tokens"], 11);
    assert_eq!(usage["usage"]["completion_tokens"], 3);
    assert_eq!(
        up.last().path,
        "/model/amazon.nova-pro-v1%3A0/converse-stream"
    );
    assert!(matches!(up.bedrock_auths()[0], Auth::SigV4 { .. }));
    let rec = gw.record(&rid).await;
    assert_eq!((rec.input_tokens, rec.output_tokens), (11, 3));
    assert!(!rec.usage_estimated && !rec.truncated);
    assert_eq!(rec.status, 200);

    // Without include_usage the usage chunk is withheld, but still counted.
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "nova", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(stream_text(&data), "Hello ✓ there");
    assert!(!data.iter().any(|d| d.contains("\"usage\":{")), "{data:?}");
    let rec = gw.record(&rid).await;
    assert_eq!((rec.input_tokens, rec.output_tokens), (11, 3));
    assert!(!rec.usage_estimated);
    // 11 x $0.80 + 3 x $3.20 per 1M
    assert_eq!(rec.cost_nanos, Some(18_400));
}

#[tokio::test]
async fn tool_calls_round_trip() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let r = gw
        .post("/v1/chat/completions")
        .json(
            &json!({"model": "nova", "tools": tools, "tool_choice": "required",
            "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], "tooluse_mock01");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "mock"})
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let sent = up.last().json();
    let spec = &sent["toolConfig"]["tools"][0]["toolSpec"];
    assert_eq!(spec["name"], "get_weather");
    assert_eq!(spec["description"], "Weather for a city");
    assert_eq!(spec["inputSchema"]["json"]["required"], json!(["city"]));
    assert_eq!(sent["toolConfig"]["toolChoice"], json!({"any": {}}));

    // The results go back: the mock checks each toolResult answers a toolUse.
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "nova", "tools": tools, "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "tooluse_mock01", "content": "18C and sunny"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let sent = up.last().json();
    let msgs = sent["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(
        msgs[1]["content"][0]["toolUse"],
        json!({"toolUseId": "tooluse_mock01", "name": "get_weather", "input": {"city": "mock"}})
    );
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(
        msgs[2]["content"][0]["toolResult"]["toolUseId"],
        "tooluse_mock01"
    );
    assert_eq!(
        msgs[2]["content"][0]["toolResult"]["content"],
        json!([{"text": "18C and sunny"}])
    );
}

#[tokio::test]
async fn streamed_tool_call_arguments_arrive_whole() {
    let up = MockUpstream::start().await;
    up.push(
        &converse_path(NOVA, true),
        Reply::event_stream(
            converse_tool_stream("get_weather", &["{\"loc", "ation\": \"Par", "is\"}"]),
            Split::Bytes(5),
        ),
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "nova", "stream": true,
            "messages": [{"role": "user", "content": "weather?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]}))
        .send()
        .await
        .unwrap();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let (mut args, mut name, mut finish) = (String::new(), None, None);
    for d in data.iter().filter(|d| *d != "[DONE]") {
        let v: Value = serde_json::from_str(d).unwrap();
        for c in v["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(n) = c["function"]["name"].as_str() {
                name = Some(n.to_owned());
            }
            args.push_str(c["function"]["arguments"].as_str().unwrap_or(""));
        }
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            finish = Some(f.to_owned());
        }
    }
    assert_eq!(stream_text(&data), "Let me check.");
    assert_eq!(name.as_deref(), Some("get_weather"));
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"location": "Paris"})
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn bedrock_api_keys_are_sent_as_bearer_tokens() {
    let up = MockUpstream::start().await;
    let yaml = format!(
        "models:\n  - name: keyed\n    provider: bedrock\n    model: {NOVA}\n    base_url: {}\n    api_key: ${{BR_KEY}}\n    retry: {{ max_attempts: 1 }}\n",
        up.url()
    );
    let gw = Gateway::start(&yaml, &[("BR_KEY", MOCK_BEDROCK_API_KEY)]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat("keyed"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rec = up.last();
    assert_eq!(
        rec.header("authorization"),
        Some(format!("Bearer {MOCK_BEDROCK_API_KEY}"))
    );
    assert!(rec.header("x-amz-date").is_none());
    assert_eq!(up.bedrock_auths(), vec![Auth::Bearer]);

    // A key Bedrock does not know: rejected credentials, never echoed.
    let gw = Gateway::start(&yaml, &[("BR_KEY", "ABSK-wrong-key-value")]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat("keyed"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "UnrecognizedClientException");
    assert!(!v.to_string().contains("ABSK-wrong-key-value"));
}

#[tokio::test]
async fn throttling_fails_over_then_reaches_the_client_as_429() {
    let up = MockUpstream::start().await;
    let lite = "amazon.nova-lite-v1:0";
    let llama = "meta.llama3-8b-instruct-v1:0";
    let creds = format!(
        "base_url: {}, region: us-east-1, aws_access_key_id: {MOCK_AWS_ACCESS_KEY_ID}, aws_secret_access_key: \"{MOCK_AWS_SECRET_ACCESS_KEY}\"",
        up.url()
    );
    let yaml = format!(
        r#"
deployments:
  - {{ name: east, provider: bedrock, model: "{NOVA}", priority: 0, {creds} }}
  - {{ name: west, provider: bedrock, model: "{lite}", priority: 1, {creds} }}
  - {{ name: lone, provider: bedrock, model: "{llama}", {creds} }}
models:
  - {{ name: chat, deployments: [east, west], retry: {{ max_attempts: 2, backoff_ms: 1 }} }}
  - {{ name: solo, deployments: [lone], retry: {{ max_attempts: 1 }} }}
"#
    );
    let gw = Gateway::start(&yaml, &[]).await;
    let throttled = || {
        bedrock::error(
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        )
    };
    up.push(&converse_path(NOVA, false), throttled());
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat("chat"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-modelgate-deployment"], "west");
    assert_eq!(r.headers()["x-modelgate-attempts"], "2");
    assert_eq!(up.count(&converse_path(lite, false)), 1);

    // Alone, the throttled deployment's 429 (and its Retry-After) reaches the client.
    up.push(
        &converse_path(llama, false),
        Reply::Json {
            status: 429,
            body: json!({"message": "Too many requests, please wait before trying again."}),
            headers: vec![
                (
                    "x-amzn-errortype".into(),
                    "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"
                        .into(),
                ),
                ("retry-after".into(), "7".into()),
            ],
        },
    );
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat("solo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "ThrottlingException");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Too many requests")
    );
}

#[tokio::test]
async fn validation_errors_are_400s_and_long_prompts_say_so() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    up.push(
        &converse_path(NOVA, false),
        bedrock::error(
            400,
            "ValidationException",
            "Input is too long for requested model.",
        ),
    );
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat("nova"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    // A field Converse cannot take never leaves the gateway.
    let mut body = chat("nova");
    body["n"] = json!(2);
    let r = gw
        .post("/v1/chat/completions")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "n");
    assert_eq!(up.requests().len(), 1);
    // No embeddings through Bedrock.
    let r = gw
        .post("/v1/embeddings")
        .json(&json!({"model": "nova", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn an_exception_mid_stream_ends_with_an_error_event() {
    let up = MockUpstream::start().await;
    up.push(
        &converse_path(NOVA, true),
        Reply::event_stream(
            vec![
                event("messageStart", json!({"role": "assistant"})),
                event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": "partial"}}),
                ),
                exception(
                    "modelStreamErrorException",
                    "The model stopped unexpectedly.",
                ),
            ],
            Split::Awkward,
        ),
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "nova", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(stream_text(&data), "partial");
    assert!(!data.iter().any(|d| d == "[DONE]"));
    let err = error_event(&data).expect("an error event ends the stream");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("The model stopped unexpectedly."),
        "{err}"
    );
    let rec = gw.record(&rid).await;
    assert!(rec.truncated);
    assert_eq!(rec.error_class.as_deref(), Some("stream_interrupted"));
}

#[tokio::test]
async fn a_throttled_stream_before_content_fails_over_invisibly() {
    let up = MockUpstream::start().await;
    let yaml = format!(
        r#"
deployments:
  - {{ name: primary, provider: bedrock, model: "{NOVA}", base_url: "{url}", region: us-east-1, aws_access_key_id: {MOCK_AWS_ACCESS_KEY_ID}, aws_secret_access_key: "{MOCK_AWS_SECRET_ACCESS_KEY}" }}
  - {{ name: backup, provider: bedrock, model: amazon.nova-lite-v1:0, base_url: "{url}", api_key: "{MOCK_BEDROCK_API_KEY}", priority: 1 }}
models:
  - {{ name: pair, deployments: [primary, backup], retry: {{ max_attempts: 2, backoff_ms: 1 }} }}
"#,
        url = up.url()
    );
    let gw = Gateway::start(&yaml, &[]).await;
    up.push(
        &converse_path(NOVA, true),
        Reply::event_stream(
            vec![
                event("messageStart", json!({"role": "assistant"})),
                exception(
                    "throttlingException",
                    "Too many tokens, please wait before trying again.",
                ),
            ],
            Split::Events,
        ),
    );
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "pair", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-modelgate-deployment"], "backup");
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(stream_text(&data), "Hello from Bedrock.");
    assert_eq!(data.last().unwrap(), "[DONE]");
    assert_eq!(up.bedrock_auths().len(), 2);
    assert_eq!(up.bedrock_auths()[1], Auth::Bearer);
}

#[tokio::test]
async fn a_stream_that_ends_before_message_stop_is_a_failure() {
    let up = MockUpstream::start().await;
    let mut frames = converse_stream(&["cut ", "short"], true);
    frames.truncate(3); // messageStart and the two deltas
    up.push(
        &converse_path(NOVA, true),
        Reply::event_stream(frames, Split::Awkward),
    );
    // The same, but the connection is cut inside a frame.
    let mut frames = converse_stream(&["cut ", "short"], true);
    let half = frames[3].len() / 2;
    frames[3].truncate(half);
    frames.truncate(4);
    up.push(
        &converse_path(NOVA, true),
        Reply::event_stream(frames, Split::Bytes(7)),
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    for _ in 0..2 {
        let r = gw
            .post("/v1/chat/completions")
            .json(&json!({"model": "nova", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        let data = sse_data(&r.text().await.unwrap());
        assert_eq!(stream_text(&data), "cut short");
        let err = error_event(&data).expect("an error event, not [DONE]");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("ended before completion"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_stream_cut_after_message_stop_is_complete_with_estimated_usage() {
    let up = MockUpstream::start().await;
    up.push(
        &converse_path(NOVA, true),
        Reply::event_stream(
            converse_stream(&["whole ", "answer"], false),
            Split::Awkward,
        ),
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "nova", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(stream_text(&data), "whole answer");
    assert_eq!(data.last().unwrap(), "[DONE]");
    let rec = gw.record(&rid).await;
    assert_eq!(rec.status, 200);
    assert!(rec.error_class.is_none());
    assert!(rec.usage_estimated, "no metadata event: usage is estimated");
    assert!(rec.output_tokens > 0);
}

#[tokio::test]
async fn a_silent_stream_hits_the_idle_timeout() {
    let up = MockUpstream::start().await;
    up.push(
        &converse_path(NOVA, true),
        Reply::EventStream {
            frames: converse_stream(&["tick"], true)[..2].to_vec(),
            split: Split::Events,
            gap: Duration::ZERO,
            end: End::Stall,
        },
    );
    let gw = Gateway::start(&config(&up, "    timeouts: { idle_ms: 200 }\n"), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "nova", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(stream_text(&data), "tick");
    let err = error_event(&data).unwrap();
    assert!(
        err["message"].as_str().unwrap().contains("idle timeout"),
        "{err}"
    );
    assert_eq!(up.wait_cancelled(1, Duration::from_secs(5)).await, 1);
}

#[tokio::test]
async fn zero_config_prefix_uses_the_aws_sdk_environment() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(
        "",
        &[
            ("AWS_REGION", "us-west-2"),
            ("AWS_ACCESS_KEY_ID", MOCK_AWS_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", MOCK_AWS_SECRET_ACCESS_KEY),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", &up.url()),
        ],
    )
    .await;
    let model = "bedrock/anthropic.claude-3-5-haiku-20241022-v1:0";
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat(model))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from Bedrock.");
    assert_eq!(
        up.last().path,
        "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    );
    assert_eq!(
        up.bedrock_auths(),
        vec![Auth::SigV4 {
            region: "us-west-2".into()
        }]
    );
    let r = gw.get(&format!("/v1/models/{model}")).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["owned_by"], "bedrock");
    let logged = gw.records().await;
    assert_eq!(logged[0].provider.as_deref(), Some("bedrock"));

    // A Bedrock API key in the environment is used as a bearer token.
    let up = MockUpstream::start().await;
    let gw = Gateway::start(
        "",
        &[
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_BEARER_TOKEN_BEDROCK", MOCK_BEDROCK_API_KEY),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", &up.url()),
        ],
    )
    .await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat("bedrock/amazon.nova-micro-v1:0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.bedrock_auths(), vec![Auth::Bearer]);

    // Without AWS settings the prefix is not served, and the 404 says why.
    let gw = Gateway::start("", &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat("bedrock/amazon.nova-micro-v1:0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("AWS_REGION"));
}

#[tokio::test]
async fn the_anthropic_front_door_works_over_bedrock() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/messages")
        .json(
            &json!({"model": "nova", "max_tokens": 100, "system": "Be brief.",
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "Hello from Bedrock.");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 11);
    assert_eq!(v["usage"]["output_tokens"], 4);
    let sent = up.last().json();
    assert_eq!(sent["system"], json!([{"text": "Be brief."}]));
    assert_eq!(sent["inferenceConfig"]["maxTokens"], 100);

    // Tools, both ways, in the Anthropic dialect.
    let r = gw
        .post("/v1/messages")
        .json(&json!({"model": "nova", "max_tokens": 100,
            "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "messages": [{"role": "user", "content": "Weather in Paris?"}]}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
    let tool_use = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap()
        .clone();
    assert_eq!(tool_use["input"], json!({"city": "mock"}));

    // Streaming: Anthropic events out of a Bedrock event stream.
    up.push(
        &converse_path(NOVA, true),
        Reply::event_stream(converse_stream(&["Hi", " there"], true), Split::Awkward),
    );
    let r = gw
        .post("/v1/messages")
        .json(&json!({"model": "nova", "max_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let events: Vec<Value> = sse_data(&body)
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"message_start"));
    assert_eq!(types.last(), Some(&"message_stop"));
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "content_block_delta")
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "Hi there");
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 2);
}

const SCHEMA: &str = r#"{"type":"object","properties":{"summary":{"type":"string"}},"required":["summary"],"additionalProperties":false}"#;

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

/// A Converse reply calling `get_weather` for Paris and Rome in one turn.
fn two_calls() -> Value {
    json!({
        "output": {"message": {"role": "assistant", "content": [
            {"toolUse": {"toolUseId": "tooluse_paris", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": "tooluse_rome", "name": "get_weather", "input": {"city": "Rome"}}}
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 30, "outputTokens": 12, "totalTokens": 42}
    })
}

/// `(name, arguments)` of each tool call a chat stream assembles, in order.
fn streamed_calls(data: &[String]) -> Vec<(String, String)> {
    let mut calls: Vec<(String, String)> = Vec::new();
    for d in data.iter().filter(|d| *d != "[DONE]") {
        let v: Value = serde_json::from_str(d).unwrap();
        for c in v["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = c["index"].as_u64().unwrap() as usize;
            if calls.len() <= i {
                calls.resize(i + 1, Default::default());
            }
            if let Some(n) = c["function"]["name"].as_str() {
                calls[i].0 = n.to_owned();
            }
            calls[i]
                .1
                .push_str(c["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    calls
}

#[tokio::test]
async fn images_parallel_calls_json_schema_and_configured_reasoning_are_translated_and_reasoning_effort_is_refused()
 {
    let up = MockUpstream::start().await;
    let claude = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
    let extra = format!(
        "  - name: thinker\n    provider: bedrock\n    model: {claude}\n    base_url: {}\n    region: us-east-1\n    api_key: {MOCK_BEDROCK_API_KEY}\n    retry: {{ max_attempts: 1 }}\n    additional_model_request_fields: {{ thinking: {{ type: enabled, budget_tokens: 1024 }} }}\n",
        up.url()
    );
    let gw = Gateway::start(&config(&up, &extra), &[]).await;
    let post = |body: Value| gw.post("/v1/chat/completions").json(&body).send();

    // An image, an earlier turn of two parallel calls with both results, and
    // a JSON schema for the answer.
    up.push(
        &converse_path(NOVA, false),
        Reply::json(bedrock::converse_response(r#"{"summary":"mild"}"#)),
    );
    let r = post(json!({
        "model": "nova", "tools": weather_tools(),
        "response_format": {"type": "json_schema", "json_schema": {"name": "forecast", "strict": true,
            "schema": serde_json::from_str::<Value>(SCHEMA).unwrap()}},
        "messages": [
            {"role": "system", "content": "Answer in JSON."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather here and in Rome?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_b", "content": "24C"},
            {"role": "user", "content": "And tomorrow?"}
        ]
    }))
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        r#"{"summary":"mild"}"#
    );
    let sent = up.last().json();
    assert_eq!(sent["system"], json!([{"text": "Answer in JSON."}]));
    let msgs = sent["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{sent}");
    assert_eq!(
        msgs[0]["content"][1],
        json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}})
    );
    let uses: Vec<&Value> = msgs[1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["toolUse"]["toolUseId"])
        .collect();
    assert_eq!(uses, [&json!("call_a"), &json!("call_b")]);
    // Both results in one user turn, in call order, before the new question.
    let results: Vec<(&Value, &Value)> = msgs[2]["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b.get("toolResult"))
        .map(|r| (&r["toolUseId"], &r["content"][0]["text"]))
        .collect();
    assert_eq!(
        results,
        [
            (&json!("call_a"), &json!("18C")),
            (&json!("call_b"), &json!("24C"))
        ]
    );
    assert_eq!(msgs[2]["content"][2], json!({"text": "And tomorrow?"}));
    // Native structured output: the schema travels as a JSON string.
    let format = &sent["outputConfig"]["textFormat"];
    assert_eq!(format["type"], "json_schema");
    let def = &format["structure"]["jsonSchema"];
    assert_eq!(def["name"], "forecast");
    assert_eq!(
        serde_json::from_str::<Value>(def["schema"].as_str().unwrap()).unwrap(),
        serde_json::from_str::<Value>(SCHEMA).unwrap()
    );

    // A reply of two calls keeps their ids and order.
    up.push(&converse_path(NOVA, false), Reply::json(two_calls()));
    let r = post(json!({"model": "nova", "tools": weather_tools(),
        "messages": [{"role": "user", "content": "Weather in Paris and Rome?"}]}))
    .await
    .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let calls: Vec<(&Value, &Value)> = v["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (&c["id"], &c["function"]["arguments"]))
        .collect();
    assert_eq!(
        calls,
        [
            (&json!("tooluse_paris"), &json!("{\"city\":\"Paris\"}")),
            (&json!("tooluse_rome"), &json!("{\"city\":\"Rome\"}"))
        ]
    );
    // Streamed, each call gets its own index and its arguments add up.
    let call = |i: u32, id: &str, city: &str| {
        let input = format!("{{\"city\":\"{city}\"}}");
        let (a, b) = input.split_at(5);
        vec![
            event(
                "contentBlockStart",
                json!({"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": id, "name": "get_weather"}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": i, "delta": {"toolUse": {"input": a}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": i, "delta": {"toolUse": {"input": b}}}),
            ),
            event("contentBlockStop", json!({"contentBlockIndex": i})),
        ]
    };
    let mut frames = vec![event("messageStart", json!({"role": "assistant"}))];
    frames.extend(call(0, "tooluse_paris", "Paris"));
    frames.extend(call(1, "tooluse_rome", "Rome"));
    frames.push(event("messageStop", json!({"stopReason": "tool_use"})));
    up.push(
        &converse_path(NOVA, true),
        Reply::event_stream(frames, Split::Awkward),
    );
    let r = post(
        json!({"model": "nova", "stream": true, "tools": weather_tools(),
        "messages": [{"role": "user", "content": "Weather in Paris and Rome?"}]}),
    )
    .await
    .unwrap();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(
        streamed_calls(&data),
        [
            ("get_weather".to_owned(), "{\"city\":\"Paris\"}".to_owned()),
            ("get_weather".to_owned(), "{\"city\":\"Rome\"}".to_owned())
        ]
    );

    // Bedrock cannot fetch image URLs: a 400 naming the part.
    let r = post(
        json!({"model": "nova", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "messages[0].content[0].image_url.url");

    // `reasoning_effort` is model-specific on Bedrock: refused by name...
    let calls_before = up.requests().len();
    let r = post(json!({"model": "nova", "reasoning_effort": "low",
        "messages": [{"role": "user", "content": "Think."}]}))
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "reasoning_effort");
    assert_eq!(up.requests().len(), calls_before);
    // ...a deployment turns reasoning on, and the model's reasoning comes
    // back as `reasoning_content`, whole and streamed.
    up.push(
        &converse_path(claude, false),
        Reply::json(json!({
            "output": {"message": {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "Paris in spring: mild.", "signature": "sig-1"}}},
                {"text": "Mild."}
            ]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 9, "outputTokens": 20, "totalTokens": 29}
        })),
    );
    let r =
        post(json!({"model": "thinker", "messages": [{"role": "user", "content": "Weather?"}]}))
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Mild.");
    assert_eq!(
        v["choices"][0]["message"]["reasoning_content"],
        "Paris in spring: mild."
    );
    assert_eq!(
        up.last().json()["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})
    );
    up.push(
        &converse_path(claude, true),
        Reply::event_stream(
            vec![
                event("messageStart", json!({"role": "assistant"})),
                event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Paris in "}}}),
                ),
                event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "spring."}}}),
                ),
                event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "sig-1"}}}),
                ),
                event("contentBlockStop", json!({"contentBlockIndex": 0})),
                event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 1, "delta": {"text": "Mild."}}),
                ),
                event("contentBlockStop", json!({"contentBlockIndex": 1})),
                event("messageStop", json!({"stopReason": "end_turn"})),
            ],
            Split::Awkward,
        ),
    );
    let r = post(json!({"model": "thinker", "stream": true,
        "messages": [{"role": "user", "content": "Weather?"}]}))
    .await
    .unwrap();
    let data = sse_data(&r.text().await.unwrap());
    let reasoning: String = data
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["choices"][0]["delta"]["reasoning_content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(reasoning, "Paris in spring.");
    assert_eq!(stream_text(&data), "Mild.");
}

#[tokio::test]
async fn the_anthropic_front_door_over_bedrock_carries_images_parallel_tool_turns_streamed_input_and_errors()
 {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let tool = json!({"name": "get_weather", "input_schema": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}});
    up.push(&converse_path(NOVA, false), Reply::json(two_calls()));
    let r = gw
        .post("/v1/messages")
        .json(&json!({
            "model": "nova", "max_tokens": 200, "tools": [tool],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather here and in Rome?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "Rome"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_a", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "toolu_b", "content": "24C"}
                ]}
            ]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["stop_reason"], "tool_use");
    let uses: Vec<(&Value, &Value)> = m["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| (&b["id"], &b["input"]))
        .collect();
    assert_eq!(
        uses,
        [
            (&json!("tooluse_paris"), &json!({"city": "Paris"})),
            (&json!("tooluse_rome"), &json!({"city": "Rome"}))
        ]
    );
    let sent = up.last().json();
    let msgs = sent["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{sent}");
    assert_eq!(
        msgs[0]["content"][1],
        json!({"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQSkZJRg=="}}})
    );
    assert_eq!(
        msgs[1]["content"][1]["toolUse"],
        json!({"toolUseId": "toolu_b", "name": "get_weather", "input": {"city": "Rome"}})
    );
    let results: Vec<&Value> = msgs[2]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["toolResult"]["toolUseId"])
        .collect();
    assert_eq!(results, [&json!("toolu_a"), &json!("toolu_b")]);

    // Streamed: the tool input arrives in pieces that add up, and the usage
    // in `message_delta` (the mock answers a tool offer with a streamed call).
    let r = gw
        .post("/v1/messages")
        .json(
            &json!({"model": "nova", "max_tokens": 200, "stream": true, "tools": [tool],
            "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
        )
        .send()
        .await
        .unwrap();
    let evs = named_events(&r.text().await.unwrap());
    let pieces: Vec<&str> = evs
        .iter()
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
        .filter(|p| !p.is_empty())
        .collect();
    assert!(pieces.len() > 1, "{evs:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&pieces.concat()).unwrap(),
        json!({"city": "mock"})
    );
    let delta = &evs.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 20);
    assert_eq!(evs.last().unwrap().0, "message_stop");

    // Failures, in Anthropic's envelope: a validation error, then an
    // exception after the stream started (an `error` event ends it).
    let ask = |stream: bool| {
        gw.post("/v1/messages")
            .json(&json!({"model": "nova", "max_tokens": 50, "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    up.push(
        &converse_path(NOVA, false),
        bedrock::error(
            400,
            "ValidationException",
            "The provided model identifier is invalid.",
        ),
    );
    let r = ask(false).await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    up.push(
        &converse_path(NOVA, true),
        Reply::event_stream(
            vec![
                event("messageStart", json!({"role": "assistant"})),
                event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": "partial"}}),
                ),
                exception(
                    "modelStreamErrorException",
                    "The model stopped unexpectedly.",
                ),
            ],
            Split::Awkward,
        ),
    );
    let r = ask(true).await.unwrap();
    assert_eq!(r.status(), 200);
    let evs = named_events(&r.text().await.unwrap());
    let (name, last) = evs.last().unwrap();
    assert_eq!(name, "error", "{evs:?}");
    assert_eq!(last["error"]["type"], "api_error");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("The model stopped unexpectedly."),
        "{last}"
    );
    assert!(!evs.iter().any(|(n, _)| n == "message_stop"));
    // Last (it cools the deployment down): throttling is a 429.
    up.push(
        &converse_path(NOVA, false),
        bedrock::error(
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ),
    );
    let r = ask(false).await.unwrap();
    assert_eq!(r.status(), 429);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "rate_limit_error");
}

/// `data` of each Responses API event in an SSE body.
fn responses_events(body: &str) -> Vec<Value> {
    named_events(body).into_iter().map(|(_, d)| d).collect()
}

#[tokio::test]
async fn responses_over_bedrock_carry_images_parallel_calls_json_schema_streams_and_errors() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let post = |body: Value| gw.post("/v1/responses").json(&body).send();
    let tools = json!([{"type": "function", "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let text = json!({"format": {"type": "json_schema", "name": "forecast", "strict": true,
        "schema": serde_json::from_str::<Value>(SCHEMA).unwrap()}});

    // Instructions, a developer message, an image and an earlier turn of two
    // parallel calls go over; a reply of two calls comes back as two items.
    up.push(&converse_path(NOVA, false), Reply::json(two_calls()));
    let r = post(json!({
        "model": "nova", "instructions": "Be brief.", "tools": tools, "max_output_tokens": 300,
        "input": [
            {"role": "developer", "content": "Use the tool."},
            {"role": "user", "content": [
                {"type": "input_text", "text": "Weather here and in Rome?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
            ]},
            {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": "{\"city\":\"Rome\"}"},
            {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
            {"type": "function_call_output", "call_id": "call_b", "output": "24C"},
            {"role": "user", "content": "And tomorrow?"}
        ]
    }))
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let resp: Value = r.json().await.unwrap();
    assert_eq!(resp["object"], "response");
    let calls: Vec<(&Value, &Value)> = resp["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == "function_call")
        .map(|o| (&o["call_id"], &o["arguments"]))
        .collect();
    assert_eq!(
        calls,
        [
            (&json!("tooluse_paris"), &json!("{\"city\":\"Paris\"}")),
            (&json!("tooluse_rome"), &json!("{\"city\":\"Rome\"}"))
        ]
    );
    assert_eq!(resp["usage"]["input_tokens"], 30);
    let sent = up.last().json();
    assert_eq!(
        sent["system"],
        json!([{"text": "Be brief."}, {"text": "Use the tool."}])
    );
    assert_eq!(sent["inferenceConfig"]["maxTokens"], 300);
    let msgs = sent["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{sent}");
    assert_eq!(msgs[0]["content"][1]["image"]["format"], "png");
    let uses: Vec<&Value> = msgs[1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["toolUse"]["toolUseId"])
        .collect();
    assert_eq!(uses, [&json!("call_a"), &json!("call_b")]);
    let results: Vec<&Value> = msgs[2]["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b.get("toolResult"))
        .map(|r| &r["toolUseId"])
        .collect();
    assert_eq!(results, [&json!("call_a"), &json!("call_b")]);
    assert_eq!(
        sent["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );

    // `text.format` becomes native structured output; the JSON is the text.
    up.push(
        &converse_path(NOVA, false),
        Reply::json(bedrock::converse_response(r#"{"summary":"mild"}"#)),
    );
    let r = post(json!({"model": "nova", "input": "Forecast?", "text": text}))
        .await
        .unwrap();
    let resp: Value = r.json().await.unwrap();
    assert_eq!(
        resp["output"][0]["content"][0]["text"],
        r#"{"summary":"mild"}"#
    );
    let def = &up.last().json()["outputConfig"]["textFormat"]["structure"]["jsonSchema"];
    assert_eq!(def["name"], "forecast");
    assert_eq!(
        serde_json::from_str::<Value>(def["schema"].as_str().unwrap()).unwrap(),
        serde_json::from_str::<Value>(SCHEMA).unwrap()
    );

    // Streamed: text deltas and usage in `response.completed`...
    up.push(
        &converse_path(NOVA, true),
        Reply::event_stream(converse_stream(&["Hel", "lo"], true), Split::Awkward),
    );
    let r = post(json!({"model": "nova", "input": "hi", "stream": true}))
        .await
        .unwrap();
    let events = responses_events(&r.text().await.unwrap());
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "Hello");
    let done = events.last().unwrap();
    assert_eq!(done["type"], "response.completed");
    assert_eq!(done["response"]["usage"]["input_tokens"], 11);
    assert_eq!(done["response"]["usage"]["output_tokens"], 2);
    // ...and a call whose arguments arrive in pieces that add up.
    up.push(
        &converse_path(NOVA, true),
        Reply::event_stream(
            converse_tool_stream("get_weather", &["{\"ci", "ty\": \"Pa", "ris\"}"]),
            Split::Awkward,
        ),
    );
    let r = post(
        json!({"model": "nova", "input": "Weather in Paris?", "stream": true, "tools": tools}),
    )
    .await
    .unwrap();
    let events = responses_events(&r.text().await.unwrap());
    let pieces: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert!(pieces.len() > 1, "{events:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&pieces.concat()).unwrap(),
        json!({"city": "Paris"})
    );

    // `reasoning.effort` is refused by the name the client sent.
    let r = post(json!({"model": "nova", "input": "Think.", "reasoning": {"effort": "high"}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["param"],
        "reasoning.effort"
    );

    // Failures: an exception after the stream started ends it with
    // `response.failed`; throttling (last: it cools the deployment down) is a 429.
    up.push(
        &converse_path(NOVA, true),
        Reply::event_stream(
            vec![
                event("messageStart", json!({"role": "assistant"})),
                event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": "partial"}}),
                ),
                exception(
                    "modelStreamErrorException",
                    "The model stopped unexpectedly.",
                ),
            ],
            Split::Awkward,
        ),
    );
    let r = post(json!({"model": "nova", "input": "hi", "stream": true}))
        .await
        .unwrap();
    let events = responses_events(&r.text().await.unwrap());
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed", "{events:?}");
    assert!(
        last["response"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("The model stopped unexpectedly."),
        "{last}"
    );
    up.push(
        &converse_path(NOVA, false),
        bedrock::error(
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ),
    );
    let r = post(json!({"model": "nova", "input": "hi"})).await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "rate_limit_error"
    );
}
