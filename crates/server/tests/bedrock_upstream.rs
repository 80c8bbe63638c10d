//! The gateway in front of a Bedrock Converse upstream: translation both
//! ways, SigV4 (verified by the mock) or Bedrock API keys, binary event
//! streams split anywhere, errors, failover and zero-config.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Gateway, sse_data, stream_text};
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
