//! `POST /v1/messages` (Anthropic dialect at the front door) over OpenAI-format
//! upstreams and the mock provider.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Gateway, named_events};
use modelgate_testkit::{MockUpstream, Reply, Split, openai_stream};
use serde_json::{Value, json};

const MASTER: &str = "mg-master-messages";

fn config(up: &MockUpstream) -> String {
    format!(
        r#"
deployments:
  - {{ name: oai, provider: openai, model: gpt-4o-mini, base_url: "{}/v1", api_key: sk-up-1, price: {{ input: 1, output: 2 }} }}
models:
  - name: claude-via-gpt
    deployments: [oai]
"#,
        up.url()
    )
}

#[tokio::test]
async fn a_tool_turn_is_translated_both_ways() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up), &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let r = gw
        .post("/v1/messages")
        .header("x-api-key", MASTER)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({
            "model": "claude-via-gpt", "max_tokens": 300,
            "system": "You are terse.",
            "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C and sunny"}]}
            ]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-modelgate-deployment"], "oai");
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    // The mock upstream answers tool offers with a call that fits the schema.
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(body["content"][0]["type"], "tool_use");
    assert_eq!(body["content"][0]["id"], "call_up_1");
    assert_eq!(body["content"][0]["name"], "get_weather");
    assert!(body["content"][0]["input"]["city"].is_string(), "{body}");
    assert!(body["usage"]["output_tokens"].as_u64().unwrap() > 0);
    // cached prompt tokens are split out of input_tokens, as Anthropic reports them.
    assert_eq!(body["usage"]["cache_read_input_tokens"], 2);
    assert_eq!(body["usage"]["input_tokens"], 7);

    let sent = up.last().json();
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["max_completion_tokens"], 300);
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "You are terse."})
    );
    assert_eq!(
        sent["messages"][2]["tool_calls"][0]["function"],
        json!({"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"})
    );
    assert_eq!(
        sent["messages"][3],
        json!({"role": "tool", "content": "18C and sunny", "tool_call_id": "toolu_01"})
    );
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert!(
        up.last()
            .header("authorization")
            .unwrap()
            .contains("sk-up-1")
    );

    let rec = gw.record(&rid).await;
    assert_eq!(rec.route, "messages");
    assert_eq!(rec.status, 200);
    assert_eq!((rec.input_tokens, rec.output_tokens), (9, 4));
    assert!(rec.cost_nanos.unwrap() > 0);
}

#[tokio::test]
async fn a_stream_becomes_messages_events_whatever_the_split() {
    let up = MockUpstream::start().await;
    up.push(
        "/v1/chat/completions",
        Reply::sse(
            openai_stream(&["Hel", "lo ", "there"], true),
            Split::Awkward,
        ),
    );
    let gw = Gateway::start(&config(&up), &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let r = gw
        .post("/v1/messages")
        .bearer_auth(MASTER)
        .json(
            &json!({"model": "claude-via-gpt", "max_tokens": 50, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let evs = named_events(&r.text().await.unwrap());
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    for (n, d) in &evs {
        assert_eq!(d["type"], n.as_str(), "event name matches its type");
    }
    let text: String = evs
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello there");
    let delta = &evs.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
    // The gateway asked the upstream for usage.
    assert_eq!(up.last().json()["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn errors_use_the_anthropic_envelope() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up), &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let post = |key: &str, body: Value| {
        gw.post("/v1/messages")
            .header("x-api-key", key)
            .json(&body)
            .send()
    };
    let ok_body = json!({"model": "claude-via-gpt", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let cases = [
        (post("wrong-key", ok_body.clone()).await.unwrap(), 401, "authentication_error"),
        (
            post(MASTER, json!({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
                .await
                .unwrap(),
            404,
            "not_found_error",
        ),
        (
            post(MASTER, json!({"model": "claude-via-gpt", "messages": [{"role": "user", "content": "hi"}]}))
                .await
                .unwrap(),
            400,
            "invalid_request_error",
        ),
        (
            post(MASTER, json!({"model": "claude-via-gpt", "max_tokens": 5, "top_k": 3, "messages": [{"role": "user", "content": "hi"}]}))
                .await
                .unwrap(),
            400,
            "invalid_request_error",
        ),
    ];
    let mut messages = Vec::new();
    for (r, status, kind) in cases {
        assert_eq!(r.status(), status);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], kind, "{body}");
        messages.push(body["error"]["message"].as_str().unwrap().to_owned());
    }
    assert!(messages[2].contains("max_tokens"), "{}", messages[2]);
    assert!(messages[3].contains("top_k"), "{}", messages[3]);

    // An upstream failure keeps its status class and is not retried on a 400.
    up.push(
        "/v1/chat/completions",
        Reply::error(
            429,
            json!({"error": {"message": "slow down", "type": "rate_limit_error"}}),
        ),
    );
    let r = post(MASTER, ok_body).await.unwrap();
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn the_mock_provider_serves_messages_too() {
    let gw = Gateway::start("", &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let r = gw
        .post("/v1/messages")
        .header("x-api-key", MASTER)
        .json(
            &json!({"model": "mock/echo", "max_tokens": 20, "stream": true,
                      "messages": [{"role": "user", "content": "ping pong"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let evs = named_events(&r.text().await.unwrap());
    let text: String = evs
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert!(text.contains("ping pong"), "{text}");
}

fn anthropic_config(up: &MockUpstream) -> String {
    format!(
        r#"
deployments:
  - {{ name: claude, provider: anthropic, model: claude-sonnet-4-5, base_url: "{}", api_key: sk-ant-up }}
models:
  - name: claude
    deployments: [claude]
"#,
        up.url()
    )
}

#[tokio::test]
async fn an_anthropic_upstream_gets_the_body_as_written_and_answers_verbatim() {
    let up = MockUpstream::start().await;
    let canned = modelgate_testkit::anthropic_message("Pass-through works.");
    up.push("/v1/messages", Reply::json(canned.clone()));
    let gw = Gateway::start(&anthropic_config(&up), &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let request = json!({
        "model": "claude", "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [{"type": "text", "text": "Long policy...", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Greeting.", "signature": "EqQBCkgIARABGAIiQL"},
                {"type": "text", "text": "Hello!"}
            ]},
            {"role": "user", "content": [{"type": "text", "text": "Again", "cache_control": {"type": "ephemeral"}}]}
        ]
    });
    let r = gw
        .post("/v1/messages")
        .header("x-api-key", MASTER)
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, canned, "the reply passes through unchanged");
    let sent = up.last();
    let mut expected = request.clone();
    expected["model"] = json!("claude-sonnet-4-5");
    assert_eq!(sent.json(), expected, "only the model changed");
    assert_eq!(
        sent.header("anthropic-beta").as_deref(),
        Some("interleaved-thinking-2025-05-14")
    );
    assert_eq!(sent.header("x-api-key").as_deref(), Some("sk-ant-up"));
    let rec = gw.record(&rid).await;
    assert_eq!(rec.provider.as_deref(), Some("anthropic"));
    assert!(rec.input_tokens > 0 && rec.output_tokens > 0, "{rec:?}");
}

#[tokio::test]
async fn an_anthropic_stream_passes_through_event_by_event() {
    let up = MockUpstream::start().await;
    let upstream_events = modelgate_testkit::anthropic_stream(&["Hel", "lo"]);
    up.push(
        "/v1/messages",
        Reply::sse(upstream_events.clone(), Split::Awkward),
    );
    let gw = Gateway::start(&anthropic_config(&up), &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let r = gw
        .post("/v1/messages")
        .bearer_auth(MASTER)
        .json(&json!({"model": "claude", "max_tokens": 50, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let got = named_events(&r.text().await.unwrap());
    let want = named_events(&upstream_events.concat());
    assert_eq!(got, want);
    let rec = gw.record(&rid).await;
    assert_eq!((rec.input_tokens, rec.output_tokens), (12, 2));
    assert!(!rec.usage_estimated);
}

#[tokio::test]
async fn count_tokens_asks_anthropic_or_estimates() {
    let up = MockUpstream::start().await;
    up.push(
        "/v1/messages/count_tokens",
        Reply::json(json!({"input_tokens": 42})),
    );
    let gw = Gateway::start(
        &format!("{}{}", anthropic_config(&up), "  - name: gpt\n    provider: openai\n    model: gpt-4o-mini\n    base_url: http://127.0.0.1:9/v1\n    api_key: k\n"),
        &[("MODELGATE_MASTER_KEY", MASTER)],
    )
    .await;
    let body = |model: &str| {
        json!({"model": model, "system": "Be brief.", "messages": [{"role": "user", "content": "Count these few words please"}],
               "thinking": {"type": "enabled", "budget_tokens": 1024}})
    };
    let r = gw
        .post("/v1/messages/count_tokens")
        .header("x-api-key", MASTER)
        .json(&body("claude"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-modelgate-estimated").is_none());
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"input_tokens": 42})
    );
    let sent = up.last();
    assert_eq!(sent.path, "/v1/messages/count_tokens");
    assert_eq!(sent.json()["model"], "claude-sonnet-4-5");
    assert_eq!(sent.json()["thinking"]["budget_tokens"], 1024);

    let r = gw
        .post("/v1/messages/count_tokens")
        .header("x-api-key", MASTER)
        .json(&body("gpt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-modelgate-estimated"], "true");
    let n = r.json::<Value>().await.unwrap()["input_tokens"]
        .as_u64()
        .unwrap();
    assert!((5..=20).contains(&n), "{n}");

    let r = gw
        .post("/v1/messages/count_tokens")
        .header("x-api-key", "nope")
        .json(&body("gpt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "authentication_error"
    );
}

/// A Messages request with a system prompt, an image, and an earlier turn of
/// two parallel tool calls answered by two tool results.
fn rich_messages_request(model: &str) -> Value {
    json!({
        "model": model, "max_tokens": 300, "system": "Be terse.",
        "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
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
    })
}

/// `/v1/messages` over a `provider` deployment (an OpenAI-format upstream):
/// `rich_messages_request` is translated to chat with the output limit in
/// `limit_field`; a reply with reasoning and two tool calls, a text stream, a
/// streamed tool call and an upstream failure come back in Anthropic's format.
async fn translated_messages_round_trip(provider: &str, limit_field: &str) {
    let up = MockUpstream::start().await;
    // Azure serves the chat dialect at its deployment URLs.
    let (base, version, chat_path) = match provider {
        "azure" => (
            up.url(),
            "    api_version: 2024-10-21\n",
            modelgate_testkit::azure::path("upstream-model", "chat/completions"),
        ),
        _ => (
            format!("{}/v1", up.url()),
            "",
            "/v1/chat/completions".to_owned(),
        ),
    };
    let yaml = format!(
        "models:\n  - name: m\n    provider: {provider}\n    model: upstream-model\n    base_url: {base}\n    api_key: k\n{version}    retry: {{ max_attempts: 1 }}\n"
    );
    let gw = Gateway::start(&yaml, &[]).await;
    let mut reply = modelgate_testkit::openai_tool_completion("get_weather", "{}");
    reply["choices"][0]["message"] = json!({
        "role": "assistant", "content": "Checking both.", "reasoning_content": "Two cities, two calls.",
        "tool_calls": [
            {"id": "call_c", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_d", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
        ]
    });
    up.push(&chat_path, Reply::json(reply));
    let r = gw
        .post("/v1/messages")
        .json(&rich_messages_request("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(
        body["content"],
        json!([
            {"type": "thinking", "thinking": "Two cities, two calls.", "signature": ""},
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "call_c", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_d", "name": "get_weather", "input": {"city": "Rome"}}
        ])
    );
    assert_eq!(up.last().path, chat_path);
    let sent = up.last().json();
    assert_eq!(sent["model"], "upstream-model");
    assert_eq!(sent[limit_field], 300, "{sent}");
    let other = if limit_field == "max_tokens" {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    assert!(sent.get(other).is_none(), "{sent}");
    let msgs = sent["messages"].as_array().unwrap();
    assert_eq!(msgs[0], json!({"role": "system", "content": "Be terse."}));
    assert_eq!(
        msgs[1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,iVBORw0KGgo="
    );
    let ids: Vec<&Value> = msgs[2]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(ids, [&json!("toolu_a"), &json!("toolu_b")]);
    assert_eq!(
        msgs[3],
        json!({"role": "tool", "content": "18C", "tool_call_id": "toolu_a"})
    );
    assert_eq!(
        msgs[4],
        json!({"role": "tool", "content": "24C", "tool_call_id": "toolu_b"})
    );

    // A text stream, with the usage the gateway asked for in message_delta.
    up.push(
        &chat_path,
        Reply::sse(openai_stream(&["Hel", "lo"], true), Split::Awkward),
    );
    let r = gw
        .post("/v1/messages")
        .json(&json!({"model": "m", "max_tokens": 50, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let evs = named_events(&r.text().await.unwrap());
    let text: String = evs
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "Hello");
    let delta = &evs.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(delta["usage"]["output_tokens"], 2);

    // A streamed tool call: its input arrives in pieces that add up.
    let mut tools_only = rich_messages_request("m");
    tools_only["stream"] = json!(true);
    tools_only["messages"] = json!([{"role": "user", "content": "Weather in Paris?"}]);
    let r = gw
        .post("/v1/messages")
        .json(&tools_only)
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

    // An upstream failure, in Anthropic's envelope.
    up.push(
        &chat_path,
        Reply::error(
            500,
            json!({"error": {"message": "boom", "type": "server_error"}}),
        ),
    );
    let r = gw
        .post("/v1/messages")
        .json(&json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "api_error");
}

#[tokio::test]
async fn openai_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking()
 {
    translated_messages_round_trip("openai", "max_completion_tokens").await;
}

#[tokio::test]
async fn openai_compatible_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking()
 {
    translated_messages_round_trip("openai_compatible", "max_tokens").await;
}

#[tokio::test]
async fn azure_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking()
{
    translated_messages_round_trip("azure", "max_completion_tokens").await;
}

#[tokio::test]
async fn thinking_is_refused_by_name_unless_the_upstream_is_anthropic() {
    let up = MockUpstream::start().await;
    let u = up.url();
    let yaml = format!(
        r#"
models:
  - {{ name: oai, provider: openai, model: gpt-4o-mini, base_url: "{u}/v1", api_key: k }}
  - {{ name: compat, provider: openai_compatible, model: llama, base_url: "{u}/v1" }}
  - {{ name: gem, provider: gemini, model: gemini-2.5-flash, base_url: "{u}", api_key: k }}
  - {{ name: fake, provider: mock, model: echo }}
  - {{ name: az, provider: azure, model: gpt4o, base_url: "{u}", api_key: k, api_version: 2024-10-21 }}
  - {{ name: br, provider: bedrock, model: "amazon.nova-pro-v1:0", base_url: "{u}", region: us-east-1, api_key: k }}
  - {{ name: lenient, provider: openai_compatible, model: llama, base_url: "{u}/v1", drop_unsupported_params: true }}
"#
    );
    let gw = Gateway::start(&yaml, &[]).await;
    let body = |model: &str| {
        json!({"model": model, "max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024},
               "messages": [{"role": "user", "content": "Think first."}]})
    };
    for model in ["oai", "compat", "gem", "fake", "az", "br"] {
        let r = gw
            .post("/v1/messages")
            .json(&body(model))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{model}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["type"], "error", "{model}");
        assert_eq!(e["error"]["type"], "invalid_request_error", "{model}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains("thinking"), "{model}: {message}");
    }
    assert!(up.requests().is_empty(), "refused before any upstream call");
    let r = gw
        .post("/v1/messages")
        .json(&body("lenient"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(up.last().json().get("thinking").is_none());
}

#[tokio::test]
async fn an_anthropic_upstream_gets_images_and_parallel_tool_turns_as_written_and_its_errors_keep_their_type()
 {
    let up = MockUpstream::start().await;
    let mut canned =
        modelgate_testkit::anthropic_tool_message("get_weather", json!({"city": "Paris"}));
    canned["content"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "tool_use", "id": "toolu_02Up", "name": "get_weather", "input": {"city": "Rome"}}));
    up.push("/v1/messages", Reply::json(canned.clone()));
    let gw = Gateway::start(&anthropic_config(&up), &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let r = gw
        .post("/v1/messages")
        .header("x-api-key", MASTER)
        .json(&rich_messages_request("claude"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), canned);
    assert_eq!(
        up.last().json(),
        rich_messages_request("claude-sonnet-4-5"),
        "only the model changed"
    );

    up.push(
        "/v1/messages",
        Reply::Json {
            status: 429,
            body: json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}}),
            headers: vec![("retry-after".into(), "20".into())],
        },
    );
    let r = gw
        .post("/v1/messages")
        .header("x-api-key", MASTER)
        .json(&json!({"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "20");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn errors_over_gemini_and_the_mock_use_the_anthropic_envelope() {
    let up = MockUpstream::start().await;
    let yaml = format!(
        "models:\n  - {{ name: gem, provider: gemini, model: gemini-2.5-flash, base_url: \"{}\", api_key: k, retry: {{ max_attempts: 1 }} }}\n",
        up.url()
    );
    let gw = Gateway::start(&yaml, &[]).await;
    up.push(
        "/v1beta/models/gemini-2.5-flash:generateContent",
        Reply::error(429, modelgate_testkit::gemini_rate_limit_error(9)),
    );
    let ask = |model: &str| {
        gw.post("/v1/messages")
            .json(&json!({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    for (model, status, kind) in [
        ("gem", 429, "rate_limit_error"),
        ("mock/error-429", 429, "rate_limit_error"),
        ("mock/error-500", 502, "api_error"),
    ] {
        let r = ask(model).await.unwrap();
        assert_eq!(r.status(), status, "{model}");
        if status == 429 {
            assert!(r.headers().contains_key("retry-after"), "{model}");
        }
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["type"], "error", "{model}");
        assert_eq!(e["error"]["type"], kind, "{model}");
    }
}

#[tokio::test]
async fn the_mock_provider_streams_tool_calls_and_usage_through_messages() {
    let gw = Gateway::start("", &[]).await;
    let r = gw
        .post("/v1/messages")
        .json(&json!({"model": "mock/tool", "max_tokens": 50, "stream": true,
            "system": "Use tools.",
            "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}],
            "messages": [{"role": "user", "content": "Weather in Oslo?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let evs = named_events(&r.text().await.unwrap());
    let start = evs
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .unwrap();
    assert_eq!(start.1["content_block"]["name"], "get_weather");
    let pieces: Vec<&str> = evs
        .iter()
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
        .filter(|p| !p.is_empty())
        .collect();
    assert!(pieces.len() > 1, "{evs:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&pieces.concat()).unwrap(),
        json!({"city": "mock", "days": 1})
    );
    let delta = &evs.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn structured_output_passes_through_to_anthropic_and_is_refused_by_name_elsewhere() {
    let up = MockUpstream::start().await;
    let u = up.url();
    let yaml = format!(
        r#"
models:
  - {{ name: claude, provider: anthropic, model: claude-sonnet-4-5, base_url: "{u}", api_key: k }}
  - {{ name: oai, provider: openai, model: gpt-4o-mini, base_url: "{u}/v1", api_key: k }}
  - {{ name: compat, provider: openai_compatible, model: llama, base_url: "{u}/v1" }}
  - {{ name: gem, provider: gemini, model: gemini-2.5-flash, base_url: "{u}", api_key: k }}
  - {{ name: az, provider: azure, model: gpt4o, base_url: "{u}", api_key: k, api_version: 2024-10-21 }}
  - {{ name: br, provider: bedrock, model: "amazon.nova-pro-v1:0", base_url: "{u}", region: us-east-1, api_key: k }}
  - {{ name: fake, provider: mock, model: echo }}
  - {{ name: lenient, provider: openai_compatible, model: llama, base_url: "{u}/v1", drop_unsupported_params: true }}
"#
    );
    let gw = Gateway::start(&yaml, &[]).await;
    let format = json!({"type": "json_schema", "schema": {"type": "object",
        "properties": {"summary": {"type": "string"}}, "required": ["summary"], "additionalProperties": false}});
    let with = |model: &str, field: &str| {
        let mut v = json!({"model": model, "max_tokens": 200,
            "messages": [{"role": "user", "content": "Forecast for Paris?"}]});
        v[field] = match field {
            "output_config" => json!({"format": format}),
            _ => format.clone(),
        };
        v
    };

    // Anthropic: `output_config.format` (and the older beta `output_format`
    // with its header) go upstream as sent; the JSON answer comes back as sent.
    let canned = modelgate_testkit::anthropic_message(r#"{"summary":"sunny"}"#);
    for (field, beta) in [
        ("output_config", None),
        ("output_format", Some("structured-outputs-2025-11-13")),
    ] {
        up.push("/v1/messages", Reply::json(canned.clone()));
        let mut req = gw.post("/v1/messages").json(&with("claude", field));
        if let Some(b) = beta {
            req = req.header("anthropic-beta", b);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "{field}");
        assert_eq!(r.json::<Value>().await.unwrap(), canned, "{field}");
        let sent = up.last();
        assert_eq!(sent.json(), with("claude-sonnet-4-5", field), "{field}");
        assert_eq!(sent.header("anthropic-beta").as_deref(), beta);
    }

    // Every other provider takes the chat dialect, which has no place for
    // it: a 400 naming the field, before any upstream call.
    let calls = up.requests().len();
    for model in ["oai", "compat", "gem", "az", "br", "fake"] {
        for field in ["output_config", "output_format"] {
            let r = gw
                .post("/v1/messages")
                .json(&with(model, field))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{model} {field}");
            let e: Value = r.json().await.unwrap();
            assert_eq!(e["type"], "error", "{model}");
            assert_eq!(e["error"]["type"], "invalid_request_error", "{model}");
            let message = e["error"]["message"].as_str().unwrap();
            assert!(message.contains(field), "{model}: {message}");
            assert!(message.contains("structured output"), "{model}: {message}");
        }
    }
    assert_eq!(
        up.requests().len(),
        calls,
        "refused before any upstream call"
    );
    // Unless the model drops what it cannot carry.
    let r = gw
        .post("/v1/messages")
        .json(&with("lenient", "output_config"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(up.last().json().get("output_config").is_none());
}

#[tokio::test]
async fn an_anthropic_stream_that_fails_midway_ends_with_its_error_event() {
    let up = MockUpstream::start().await;
    let mut upstream_events = modelgate_testkit::anthropic_stream(&["Hel", "lo"]);
    // Cut after the first text delta: Anthropic then sends an `error` event
    // (https://docs.anthropic.com/en/docs/build-with-claude/streaming#error-events).
    upstream_events.truncate(4);
    let error =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    upstream_events.push(format!("event: error\ndata: {error}\n\n"));
    up.push(
        "/v1/messages",
        Reply::sse(upstream_events.clone(), Split::Awkward),
    );
    let gw = Gateway::start(&anthropic_config(&up), &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let r = gw
        .post("/v1/messages")
        .header("x-api-key", MASTER)
        .json(&json!({"model": "claude", "max_tokens": 50, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let got = named_events(&r.text().await.unwrap());
    // What came before the failure passed through as sent...
    let want = named_events(&upstream_events[..4].concat());
    assert_eq!(got[..4], want[..]);
    // ...then one Anthropic error event that keeps the upstream's type, and nothing after it.
    assert_eq!(got.len(), 5, "{got:?}");
    let (name, data) = &got[4];
    assert_eq!(name, "error");
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "overloaded_error");
    assert!(
        data["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Overloaded"),
        "{data}"
    );
    let rec = gw.record(&rid).await;
    assert_eq!(rec.error_class.as_deref(), Some("stream_interrupted"));
    assert!(rec.truncated);
    assert!(
        rec.error_message.as_deref().unwrap().contains("Overloaded"),
        "{rec:?}"
    );
}
