//! The gateway in front of a Gemini-format upstream (the test kit's strict
//! mock of `generateContent` / `streamGenerateContent?alt=sse`): translation
//! both ways, usage and cost, errors, zero-config, and the Anthropic front door.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Gateway, event_data, named_events, sse_data, stream_text};
use modelgate_testkit::{
    End, MockUpstream, Reply, Split, gemini_error, gemini_rate_limit_error, gemini_stream,
    gemini_stream_events,
};
use serde_json::{Value, json};

const KEY: &str = "AIzaSyTestKey0123456789abcdefghijklmnopq";
const GENERATE: &str = "/v1beta/models/gemini-2.5-flash:generateContent";
const STREAM: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";

fn config(up: &MockUpstream, extra: &str) -> String {
    format!(
        r#"
models:
  - name: flash
    provider: gemini
    model: gemini-2.5-flash
    base_url: {}
    api_key: {KEY}
    price: {{ input: 0.3, output: 2.5, cached_input: 0.03 }}
    retry: {{ max_attempts: 1 }}
{extra}"#,
        up.url()
    )
}

/// Two Gemini deployments behind one alias, tried in order.
fn two(a: &MockUpstream, b: &MockUpstream) -> String {
    format!(
        r#"
deployments:
  - {{ name: a, provider: gemini, model: gemini-2.5-flash, base_url: "{}", api_key: ka, priority: 0 }}
  - {{ name: b, provider: gemini, model: gemini-2.5-flash, base_url: "{}", api_key: kb, priority: 1 }}
models:
  - name: flash
    deployments: [a, b]
    retry: {{ max_attempts: 3, backoff_ms: 1 }}
"#,
        a.url(),
        b.url()
    )
}

const WEATHER: &str = r#"{"type":"function","function":{"name":"get_weather","description":"Current weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"]}}}"#;

fn weather_tool() -> Value {
    serde_json::from_str(WEATHER).unwrap()
}

fn hi(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn request_is_translated_and_the_reply_is_openai_shaped_and_costed() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({
            "model": "flash",
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
    assert_eq!(r.headers()["x-modelgate-deployment"], "flash");
    // 6 uncached x $0.30 + 4 cached x $0.03 + (5 + 3 thoughts) x $2.50, per 1M
    assert_eq!(r.headers()["x-modelgate-cost"], "0.00002192");
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gemini-2.5-flash");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from Gemini.");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 10);
    assert_eq!(v["usage"]["completion_tokens"], 8);
    assert_eq!(v["usage"]["total_tokens"], 18);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
    assert_eq!(
        v["usage"]["completion_tokens_details"]["reasoning_tokens"],
        3
    );

    let rec = up.last();
    assert_eq!(rec.path, GENERATE);
    assert_eq!(rec.query, "", "no key (or anything else) in the URL");
    assert_eq!(rec.header("x-goog-api-key").as_deref(), Some(KEY));
    assert!(rec.header("authorization").is_none());
    let sent = rec.json();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert_eq!(sent["contents"][0]["role"], "user");
    assert_eq!(sent["contents"][0]["parts"][0]["text"], "What is this?");
    assert_eq!(
        sent["contents"][0]["parts"][1]["inlineData"]["mimeType"],
        "image/png"
    );
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 300);
    assert_eq!(sent["generationConfig"]["stopSequences"], json!(["END"]));
    assert_eq!(sent["generationConfig"]["temperature"], 0.5);

    let rec = gw.record(&rid).await;
    assert_eq!(rec.provider.as_deref(), Some("gemini"));
    assert_eq!(rec.upstream_model.as_deref(), Some("gemini-2.5-flash"));
    assert_eq!(
        (
            rec.input_tokens,
            rec.output_tokens,
            rec.cached_tokens,
            rec.reasoning_tokens
        ),
        (10, 8, 4, 3)
    );
    assert!(!rec.usage_estimated);
    assert_eq!(rec.cost_nanos, Some(21_920));
}

#[tokio::test]
async fn default_max_tokens_is_sent_only_when_configured() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(
        &config(
            &up,
            &format!(
                "  - {{ name: capped, provider: gemini, model: gemini-2.5-flash, base_url: \"{}\", api_key: k, default_max_tokens: 77 }}\n",
                up.url()
            ),
        ),
        &[],
    )
    .await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&hi("flash"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(up.last().json().get("generationConfig").is_none());
    gw.post("/v1/chat/completions")
        .json(&hi("capped"))
        .send()
        .await
        .unwrap();
    assert_eq!(up.last().json()["generationConfig"]["maxOutputTokens"], 77);
}

#[tokio::test]
async fn stream_split_anywhere_is_translated_chunk_by_chunk() {
    let up = MockUpstream::start().await;
    up.push(
        STREAM,
        Reply::sse(
            gemini_stream("gemini-2.5-flash", &["Hel", "lo ✓", " there"]),
            Split::Awkward,
        ),
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(
            &json!({"model": "flash", "stream": true, "stream_options": {"include_usage": true},
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
    let finishes: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|v| v["choices"][0]["finish_reason"].as_str().map(Value::from))
        .collect();
    assert_eq!(finishes, vec![json!("stop")]);
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 10);
    assert_eq!(usage["usage"]["completion_tokens"], 3);

    let rec = up.last();
    assert_eq!(rec.path, STREAM);
    assert_eq!(rec.query, "alt=sse");
    assert_eq!(rec.header("x-goog-api-key").as_deref(), Some(KEY));
    let rec = gw.record(&rid).await;
    assert!(rec.stream);
    assert_eq!((rec.input_tokens, rec.output_tokens), (10, 3));
    assert!(!rec.usage_estimated);
    assert!(!rec.truncated);
    // 10 x $0.30 + 3 x $2.50, per 1M
    assert_eq!(rec.cost_nanos, Some(10_500));
}

#[tokio::test]
async fn usage_on_a_final_event_of_its_own_is_recorded_without_being_forwarded() {
    let up = MockUpstream::start().await;
    let mut events: Vec<String> = gemini_stream_events("gemini-2.5-flash", &["Hi", " there"])
        .into_iter()
        .map(|mut e| {
            e.as_object_mut().unwrap().remove("usageMetadata");
            format!("data: {e}\r\n\r\n")
        })
        .collect();
    events.push(format!(
        "data: {}\r\n\r\n",
        json!({"usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 2, "totalTokenCount": 9},
               "modelVersion": "gemini-2.5-flash", "responseId": "u1"})
    ));
    up.push(STREAM, Reply::sse(events, Split::Bytes(5)));
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "flash", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(stream_text(&data), "Hi there");
    assert_eq!(data.last().unwrap(), "[DONE]");
    for d in &data[..data.len() - 1] {
        let v: Value = serde_json::from_str(d).unwrap();
        assert!(v.get("usage").is_none_or(Value::is_null), "not asked: {d}");
        assert!(!v["choices"].as_array().unwrap().is_empty());
    }
    let rec = gw.record(&rid).await;
    assert_eq!((rec.input_tokens, rec.output_tokens), (7, 2));
    assert!(!rec.usage_estimated);
}

#[tokio::test]
async fn a_stream_that_closes_before_its_finish_reason_ends_with_an_error_event() {
    let up = MockUpstream::start().await;
    // Content, then a clean close without any finishReason: Gemini has no end
    // event, so only the missing finish reason says the answer was cut.
    let mut events = gemini_stream("gemini-2.5-flash", &["partial", " answer", " ..."]);
    events.pop();
    up.push(STREAM, Reply::sse(events, Split::Events));
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "flash", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(stream_text(&data), "partial answer");
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended before completion"),
        "{last}"
    );
    let rec = gw.record(&rid).await;
    assert!(rec.truncated);
}

#[tokio::test]
async fn an_error_event_or_a_reset_mid_stream_fails_the_stream() {
    let up = MockUpstream::start().await;
    let mut events = gemini_stream("gemini-2.5-flash", &["one", " two", " three"]);
    events.truncate(1);
    events.push(format!(
        "data: {}\r\n\r\n",
        gemini_error(
            503,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later."
        )
    ));
    up.push(STREAM, Reply::sse(events, Split::Events));
    // A gap lets the content reach the gateway before the reset.
    up.push(
        STREAM,
        Reply::Sse {
            events: gemini_stream("gemini-2.5-flash", &["one", " two", " three"])[..2].to_vec(),
            split: Split::Events,
            gap: std::time::Duration::from_millis(30),
            end: End::Reset,
        },
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    for expected in ["overloaded", "connection lost"] {
        let r = gw
            .post("/v1/chat/completions")
            .json(&json!({"model": "flash", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        let data = sse_data(&r.text().await.unwrap());
        assert!(stream_text(&data).starts_with("one"), "{data:?}");
        assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
        let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
        assert!(
            last["error"]["message"]
                .as_str()
                .unwrap()
                .contains(expected),
            "{expected}: {last}"
        );
    }
}

#[tokio::test]
async fn tools_round_trip_with_thought_signatures() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({
            "model": "flash",
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [weather_tool()],
            "tool_choice": "required"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = v["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(call["id"], "call_0");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "mock", "days": 1})
    );
    assert_eq!(
        call["extra_content"]["google"]["thought_signature"],
        "c2lnLW1vY2stMQ=="
    );
    let sent = up.last().json();
    let decl = &sent["tools"][0]["functionDeclarations"][0];
    assert_eq!(decl["name"], "get_weather");
    assert_eq!(
        decl["parametersJsonSchema"]["properties"]["city"]["type"],
        "string"
    );
    assert_eq!(
        sent["toolConfig"]["functionCallingConfig"]["mode"],
        json!("ANY")
    );

    // The call and its result go back; the mock checks the turns the way
    // Gemini does (call after a user turn, one response per call).
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({
            "model": "flash",
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_0", "content": "18C and sunny"},
                {"role": "user", "content": "Thanks. And tomorrow?"}
            ],
            "tools": [weather_tool()],
            "tool_choice": "none"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from Gemini.");
    let sent = up.last().json();
    let contents = sent["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 4, "{sent}");
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(
        contents[1]["parts"][0]["functionCall"],
        json!({"name": "get_weather", "args": {"city": "mock", "days": 1}})
    );
    assert_eq!(
        contents[1]["parts"][0]["thoughtSignature"],
        "c2lnLW1vY2stMQ=="
    );
    assert_eq!(
        contents[2]["parts"][0]["functionResponse"],
        json!({"name": "get_weather", "response": {"output": "18C and sunny"}})
    );
    assert_eq!(contents[3]["parts"][0]["text"], "Thanks. And tomorrow?");
    assert_eq!(sent["toolConfig"]["functionCallingConfig"]["mode"], "NONE");
}

#[tokio::test]
async fn streamed_tool_calls_arrive_whole() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({
            "model": "flash", "stream": true,
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [weather_tool()]
        }))
        .send()
        .await
        .unwrap();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let (mut names, mut args, mut finish) = (vec![], String::new(), None);
    for d in &data[..data.len() - 1] {
        let v: Value = serde_json::from_str(d).unwrap();
        for c in v["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(n) = c["function"]["name"].as_str() {
                names.push(n.to_owned());
            }
            args.push_str(c["function"]["arguments"].as_str().unwrap_or(""));
        }
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            finish = Some(f.to_owned());
        }
    }
    assert_eq!(stream_text(&data), "Let me check.");
    assert_eq!(names, ["get_weather"]);
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "mock", "days": 1})
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(up.last().query, "alt=sse");
}

#[tokio::test]
async fn fields_gemini_cannot_take_are_rejected_by_name_unless_dropped() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(
        &config(
            &up,
            &format!(
                "  - {{ name: lenient, provider: gemini, model: gemini-2.5-flash, base_url: \"{}\", api_key: k, drop_unsupported_params: true }}\n",
                up.url()
            ),
        ),
        &[],
    )
    .await;
    for (field, value) in [
        ("logit_bias", json!({"50256": -100})),
        ("frobnicate", json!(1)),
    ] {
        let mut body = hi("flash");
        body[field] = value;
        let r = gw
            .post("/v1/chat/completions")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{field}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["param"], field);
        body["model"] = json!("lenient");
        let r = gw
            .post("/v1/chat/completions")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{field} should be dropped");
    }
    assert_eq!(up.requests().len(), 2, "rejected requests never left");
}

#[tokio::test]
async fn client_and_credential_errors_are_final() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let gw = Gateway::start(&two(&a, &b), &[]).await;
    let ask = || gw.post("/v1/chat/completions").json(&hi("flash")).send();

    a.push(
        GENERATE,
        Reply::error(
            400,
            gemini_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid JSON payload received. Unknown name \"foo\": Cannot find field.",
            ),
        ),
    );
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-modelgate-attempts"], "1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["code"], "INVALID_ARGUMENT");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("gemini: Invalid JSON payload")
    );

    // A rejected key: 400 API_KEY_INVALID from Google, a credentials failure
    // (502) for the client, and nothing of the key in the answer.
    a.push(
        GENERATE,
        Reply::error(
            400,
            json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                "message": "API key not valid. Please pass a valid API key. (ka)",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]}}),
        ),
    );
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["x-modelgate-attempts"], "1");
    let text = r.text().await.unwrap();
    assert!(text.contains("credentials were rejected"), "{text}");
    assert!(text.contains("API_KEY_INVALID"), "{text}");
    assert!(!text.contains("(ka)"), "{text}");

    a.push(
        GENERATE,
        Reply::error(
            401,
            gemini_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
            ),
        ),
    );
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 502);

    a.push(
        GENERATE,
        Reply::error(
            400,
            gemini_error(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1200293) exceeds the maximum number of tokens allowed (1048576).",
            ),
        ),
    );
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert_eq!(b.count(GENERATE), 0, "none of these is retried elsewhere");
}

#[tokio::test]
async fn a_blocked_prompt_is_a_content_policy_error() {
    let up = MockUpstream::start().await;
    up.push(
        GENERATE,
        Reply::json(json!({
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
            "modelVersion": "gemini-2.5-flash", "responseId": "blocked1"
        })),
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&hi("flash"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "content_policy_violation");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("PROHIBITED_CONTENT")
    );
}

#[tokio::test]
async fn a_429_with_a_retry_delay_moves_to_the_next_deployment_and_keeps_away() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    // Google's 429 says "You exceeded your current quota" even for per-minute
    // limits; it must stay retryable.
    a.push(GENERATE, Reply::error(429, gemini_rate_limit_error(30)));
    let gw = Gateway::start(&two(&a, &b), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&hi("flash"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-modelgate-deployment"], "b");
    assert_eq!(r.headers()["x-modelgate-attempts"], "2");
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    for _ in 0..5 {
        let r = gw
            .post("/v1/chat/completions")
            .json(&hi("flash"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-modelgate-deployment"], "b");
    }
    assert_eq!(
        a.count(GENERATE),
        1,
        "no request to A within its 30 s retry delay"
    );
    assert_eq!(b.last().header("x-goog-api-key").as_deref(), Some("kb"));
    let rec = gw.record(&rid).await;
    let attempts: Value = serde_json::from_str(rec.attempts.as_deref().unwrap()).unwrap();
    assert_eq!(attempts[0]["deployment"], "a");
    assert_eq!(attempts[0]["error_class"], "upstream_rate_limited");
    assert_eq!(attempts[1]["outcome"], "ok");
}

#[tokio::test]
async fn a_429_from_the_only_deployment_reaches_the_client_with_retry_after() {
    let up = MockUpstream::start().await;
    up.push(GENERATE, Reply::error(429, gemini_rate_limit_error(37)));
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&hi("flash"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "37");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("retry in 37s"), "{msg}");
    assert!(!msg.contains("exceeded your current quota"), "{msg}");
}

#[tokio::test]
async fn zero_config_gemini_prefix_uses_the_environment() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(
        "",
        &[("GEMINI_API_KEY", "gk-env"), ("GEMINI_BASE_URL", &up.url())],
    )
    .await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&hi("gemini/gemini-2.5-flash"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-modelgate-deployment"],
        "gemini/gemini-2.5-flash"
    );
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let rec = up.last();
    assert_eq!(rec.path, GENERATE);
    assert_eq!(rec.header("x-goog-api-key").as_deref(), Some("gk-env"));
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "gemini/gemini-2.5-flash", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(stream_text(&data), "Hello from Gemini.");
    let rec = gw.record(&rid).await;
    assert_eq!(rec.provider.as_deref(), Some("gemini"));
    assert_eq!(rec.upstream_model.as_deref(), Some("gemini-2.5-flash"));

    // GOOGLE_API_KEY is the fallback.
    let gw = Gateway::start(
        "",
        &[
            ("GOOGLE_API_KEY", "google-env"),
            ("GEMINI_BASE_URL", &up.url()),
        ],
    )
    .await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&hi("gemini/gemini-2.5-flash"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        up.last().header("x-goog-api-key").as_deref(),
        Some("google-env")
    );

    // Without a key the prefix is not served, and the 404 says why.
    let gw = Gateway::start("", &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&hi("gemini/gemini-2.5-flash"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("GEMINI_API_KEY"));
}

#[tokio::test]
async fn a_chat_model_cannot_embed_and_the_upstream_says_so() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let r = gw
        .post("/v1/embeddings")
        .json(&json!({"model": "flash", "input": "x"}))
        .send()
        .await
        .unwrap();
    // Gemini answers 404 for a model without the embedding method; the
    // status and its reason reach the client.
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("batchEmbedContents"), "{message}");
    assert_eq!(
        up.last().path,
        "/v1beta/models/gemini-2.5-flash:batchEmbedContents"
    );
}

#[tokio::test]
async fn anthropic_messages_front_door_over_gemini() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let tool = json!({"name": "get_weather", "input_schema": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}});
    let r = gw
        .post("/v1/messages")
        .header("anthropic-version", "2023-06-01")
        .json(&json!({
            "model": "flash", "max_tokens": 200, "system": "Be terse.",
            "tools": [tool],
            "messages": [{"role": "user", "content": "Weather in Paris?"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["type"], "message");
    assert_eq!(m["stop_reason"], "tool_use");
    let call = m["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap()
        .clone();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["input"], json!({"city": "mock"}));
    let sent = up.last().json();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be terse.");
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 200);

    // The result goes back through the same door.
    let r = gw
        .post("/v1/messages")
        .json(&json!({
            "model": "flash", "max_tokens": 200, "tools": [tool],
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [call]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "18C"}]}
            ]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let sent = up.last().json();
    assert_eq!(
        sent["contents"][2]["parts"][0]["functionResponse"]["name"],
        "get_weather"
    );

    // Streaming: well-formed Anthropic events from a Gemini stream.
    up.push(
        STREAM,
        Reply::sse(
            gemini_stream("gemini-2.5-flash", &["Hel", "lo"]),
            Split::Awkward,
        ),
    );
    let r = gw
        .post("/v1/messages")
        .json(&json!({"model": "flash", "max_tokens": 50, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events = named_events(&r.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .filter_map(|(_, d)| d["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "Hello");
    let delta = events
        .iter()
        .find(|(n, _)| n == "message_delta")
        .map(|(_, d)| d.clone())
        .unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn json_schema_and_reasoning_effort_are_translated_and_thoughts_come_back() {
    let up = MockUpstream::start().await;
    up.push(
        GENERATE,
        Reply::json(json!({
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"text": "The user wants a forecast.", "thought": true},
                    {"text": "{\"summary\":\"sunny\"}"}
                ]},
                "finishReason": "STOP", "index": 0
            }],
            "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 5, "thoughtsTokenCount": 7, "totalTokenCount": 21},
            "modelVersion": "gemini-2.5-flash", "responseId": "think-1"
        })),
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let schema = json!({"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]});
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({
            "model": "flash",
            "messages": [{"role": "user", "content": "Forecast?"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "forecast", "schema": schema}},
            "reasoning_effort": "low"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let message = &v["choices"][0]["message"];
    assert_eq!(message["content"], "{\"summary\":\"sunny\"}");
    assert_eq!(message["reasoning_content"], "The user wants a forecast.");
    assert_eq!(
        v["usage"]["completion_tokens_details"]["reasoning_tokens"],
        7
    );
    let sent = up.last().json();
    let generation = &sent["generationConfig"];
    assert_eq!(generation["responseMimeType"], "application/json");
    assert_eq!(generation["responseJsonSchema"], schema);
    // Gemini 2.5 takes a token budget (low = 1024) and shows its thoughts.
    assert_eq!(
        generation["thinkingConfig"],
        json!({"includeThoughts": true, "thinkingBudget": 1024})
    );
}

#[tokio::test]
async fn parallel_calls_and_their_results_round_trip() {
    let up = MockUpstream::start().await;
    up.push(
        GENERATE,
        Reply::json(json!({
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
                ]},
                "finishReason": "STOP", "index": 0
            }],
            "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 10, "totalTokenCount": 40},
            "modelVersion": "gemini-2.5-flash", "responseId": "par-1"
        })),
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let ask = json!({"role": "user", "content": "Weather in Paris and Rome?"});
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "flash", "messages": [ask], "tools": [weather_tool()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let calls = v["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    assert_eq!(calls[1]["function"]["arguments"], "{\"city\":\"Rome\"}");

    // Both calls and both results go back in one turn each; the mock checks
    // that the response count matches the call count, as Gemini does.
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({
            "model": "flash", "tools": [weather_tool()],
            "messages": [
                ask,
                {"role": "assistant", "content": null, "tool_calls": calls},
                {"role": "tool", "tool_call_id": calls[0]["id"], "content": "18C"},
                {"role": "tool", "tool_call_id": calls[1]["id"], "content": "24C"}
            ]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let sent = up.last().json();
    let contents = sent["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 3, "{sent}");
    let args = |i: usize, key: &str| -> Vec<Value> {
        contents[i]["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[key]["args"].clone())
            .collect()
    };
    assert_eq!(
        args(1, "functionCall"),
        [json!({"city": "Paris"}), json!({"city": "Rome"})]
    );
    let responses: Vec<Value> = contents[2]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["functionResponse"]["response"]["output"].clone())
        .collect();
    assert_eq!(responses, [json!("18C"), json!("24C")]);
}

#[tokio::test]
async fn responses_front_door_over_gemini() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let tool = json!({"type": "function", "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}});
    let r = gw
        .post("/v1/responses")
        .json(
            &json!({"model": "flash", "instructions": "Be terse.", "input": "Weather in Paris?",
            "tools": [tool], "max_output_tokens": 200}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let resp: Value = r.json().await.unwrap();
    assert_eq!(resp["object"], "response");
    assert_eq!(resp["status"], "completed");
    let call = resp["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "function_call")
        .unwrap()
        .clone();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "mock"})
    );
    let sent = up.last().json();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be terse.");
    assert_eq!(
        sent["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 200);

    // The call and its output go back as input items.
    let r = gw
        .post("/v1/responses")
        .json(&json!({"model": "flash", "tools": [tool], "input": [
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call["call_id"], "name": "get_weather", "arguments": call["arguments"]},
            {"type": "function_call_output", "call_id": call["call_id"], "output": "18C"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let sent = up.last().json();
    assert_eq!(
        sent["contents"][2]["parts"][0]["functionResponse"]["response"]["output"],
        "18C"
    );

    // Streamed: the documented event sequence, text deltas, usage at the end.
    let r = gw
        .post("/v1/responses")
        .json(&json!({"model": "flash", "input": "hi", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events = event_data(&r.text().await.unwrap());
    assert_eq!(events[0]["type"], "response.created");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64, "{e}");
    }
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello from Gemini.");
    let done = events.last().unwrap();
    assert_eq!(done["type"], "response.completed");
    assert_eq!(done["response"]["usage"]["input_tokens"], 10);
    assert_eq!(done["response"]["usage"]["output_tokens"], 3);

    // A streamed function call arrives whole in the final response.
    let r = gw
        .post("/v1/responses")
        .json(&json!({"model": "flash", "input": "Weather in Paris?", "tools": [tool], "stream": true}))
        .send()
        .await
        .unwrap();
    let events = event_data(&r.text().await.unwrap());
    let args: String = events
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "mock"})
    );
    let done = events.last().unwrap();
    assert_eq!(done["response"]["output"][1]["type"], "function_call");

    // Upstream errors arrive in the OpenAI envelope with their status.
    up.push(GENERATE, Reply::error(429, gemini_rate_limit_error(12)));
    let r = gw
        .post("/v1/responses")
        .json(&json!({"model": "flash", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "12");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "rate_limit_error"
    );
}

#[tokio::test]
async fn anthropic_messages_with_images_and_parallel_tool_turns_over_gemini() {
    let up = MockUpstream::start().await;
    up.push(
        GENERATE,
        Reply::json(json!({
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
                ]},
                "finishReason": "STOP", "index": 0
            }],
            "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 10, "totalTokenCount": 40},
            "modelVersion": "gemini-2.5-flash", "responseId": "par-m"
        })),
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let tool = json!({"name": "get_weather", "input_schema": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}});
    let r = gw
        .post("/v1/messages")
        .json(&json!({
            "model": "flash", "max_tokens": 200, "tools": [tool],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather here and in Rome?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
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
    let inputs: Vec<Value> = m["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| b["input"].clone())
        .collect();
    assert_eq!(inputs, [json!({"city": "Paris"}), json!({"city": "Rome"})]);
    let sent = up.last().json();
    let contents = sent["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 3, "{sent}");
    assert_eq!(
        contents[0]["parts"][1]["inlineData"],
        json!({"mimeType": "image/png", "data": "iVBORw0KGgo="})
    );
    assert_eq!(contents[1]["parts"].as_array().unwrap().len(), 2);
    let outputs: Vec<Value> = contents[2]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["functionResponse"]["response"]["output"].clone())
        .collect();
    assert_eq!(outputs, [json!("18C"), json!("24C")]);
}

#[tokio::test]
async fn responses_over_gemini_carry_images_parallel_calls_json_schema_and_reasoning() {
    let up = MockUpstream::start().await;
    up.push(
        GENERATE,
        Reply::json(json!({
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"text": "Two cities, one answer.", "thought": true},
                    {"text": "{\"summary\":\"mild\"}"}
                ]},
                "finishReason": "STOP", "index": 0
            }],
            "usageMetadata": {"promptTokenCount": 50, "candidatesTokenCount": 6, "thoughtsTokenCount": 9, "totalTokenCount": 65},
            "modelVersion": "gemini-2.5-flash", "responseId": "resp-g"
        })),
    );
    let gw = Gateway::start(&config(&up, ""), &[]).await;
    let schema = json!({"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]});
    let r = gw
        .post("/v1/responses")
        .json(&json!({
            "model": "flash",
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "text": {"format": {"type": "json_schema", "name": "forecast", "schema": schema}},
            "reasoning": {"effort": "low"},
            "input": [
                {"role": "user", "content": [
                    {"type": "input_text", "text": "Weather here and in Rome?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
                ]},
                {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": "{\"city\":\"Rome\"}"},
                {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
                {"type": "function_call_output", "call_id": "call_b", "output": "24C"}
            ]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let resp: Value = r.json().await.unwrap();
    let output = resp["output"].as_array().unwrap();
    let reasoning = output.iter().find(|o| o["type"] == "reasoning").unwrap();
    assert_eq!(reasoning["summary"][0]["text"], "Two cities, one answer.");
    let message = output.iter().find(|o| o["type"] == "message").unwrap();
    assert_eq!(message["content"][0]["text"], "{\"summary\":\"mild\"}");
    assert_eq!(
        resp["usage"]["output_tokens_details"]["reasoning_tokens"],
        9
    );
    let sent = up.last().json();
    let contents = sent["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 3, "{sent}");
    assert_eq!(
        contents[0]["parts"][1]["inlineData"]["mimeType"],
        "image/png"
    );
    assert_eq!(contents[1]["parts"].as_array().unwrap().len(), 2);
    assert_eq!(contents[2]["parts"].as_array().unwrap().len(), 2);
    let generation = &sent["generationConfig"];
    assert_eq!(generation["responseMimeType"], "application/json");
    assert_eq!(generation["responseJsonSchema"], schema);
    assert_eq!(
        generation["thinkingConfig"],
        json!({"includeThoughts": true, "thinkingBudget": 1024})
    );
}
