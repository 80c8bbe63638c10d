//! `POST /v1/responses` (OpenAI Responses API) passed through to OpenAI
//! deployments, metered and logged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Gateway, event_data};
use modelgate_testkit::{MockUpstream, Reply, Split};
use serde_json::{Value, json};

const MASTER: &str = "mg-master-responses";

fn config(up: &MockUpstream) -> String {
    format!(
        r#"
deployments:
  - {{ name: oai, provider: openai, model: gpt-4.1-mini, base_url: "{}/v1", api_key: sk-up-r, price: {{ input: 1, output: 4 }} }}
models:
  - name: agent
    deployments: [oai]
"#,
        up.url()
    )
}

fn response_object(text: &str) -> Value {
    json!({
        "id": "resp_abc", "object": "response", "created_at": 1_741_476_542, "status": "completed",
        "model": "gpt-4.1-mini-2025-04-14",
        "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}],
        "usage": {"input_tokens": 36, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 87, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 123},
        "parallel_tool_calls": true, "tool_choice": "auto", "tools": [], "store": true
    })
}

fn events(text_pieces: &[&str]) -> Vec<String> {
    let mut seq = 0u64;
    let mut ev = |v: Value| {
        let mut v = v;
        v["sequence_number"] = json!(seq);
        seq += 1;
        format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap())
    };
    let mut out = vec![
        ev(
            json!({"type": "response.created", "response": {"id": "resp_s", "object": "response", "status": "in_progress", "output": []}}),
        ),
        ev(
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "id": "msg_s", "status": "in_progress", "role": "assistant", "content": []}}),
        ),
    ];
    for p in text_pieces {
        out.push(ev(json!({"type": "response.output_text.delta", "item_id": "msg_s", "output_index": 0, "content_index": 0, "delta": p})));
    }
    out.push(ev(json!({"type": "response.completed", "response": {"id": "resp_s", "object": "response", "status": "completed",
        "usage": {"input_tokens": 20, "output_tokens": 7, "total_tokens": 27}}})));
    out
}

#[tokio::test]
async fn a_response_passes_through_and_is_metered() {
    let up = MockUpstream::start().await;
    up.push("/v1/responses", Reply::json(response_object("Hi there")));
    let gw = Gateway::start(&config(&up), &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let request = json!({"model": "agent", "instructions": "Be brief.", "input": "Say hi",
                         "store": false, "reasoning": {"effort": "low"}});
    let r = gw
        .post("/v1/responses")
        .bearer_auth(MASTER)
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-modelgate-deployment"], "oai");
    assert!(r.headers().contains_key("x-modelgate-cost"));
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        response_object("Hi there")
    );
    let sent = up.last();
    assert_eq!(sent.path, "/v1/responses");
    let mut expected = request.clone();
    expected["model"] = json!("gpt-4.1-mini");
    assert_eq!(sent.json(), expected);
    let rec = gw.record(&rid).await;
    assert_eq!(rec.route, "responses");
    assert_eq!((rec.input_tokens, rec.output_tokens), (36, 87));
    assert_eq!(rec.cost_nanos, Some(36 * 1_000 + 87 * 4_000));
}

#[tokio::test]
async fn a_stream_passes_through_event_by_event() {
    let up = MockUpstream::start().await;
    let upstream = events(&["Hel", "lo"]);
    up.push(
        "/v1/responses",
        Reply::sse(upstream.clone(), Split::Awkward),
    );
    let gw = Gateway::start(&config(&up), &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let r = gw
        .post("/v1/responses")
        .bearer_auth(MASTER)
        .json(&json!({"model": "agent", "input": [{"role": "user", "content": "hi"}], "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = r.text().await.unwrap();
    assert_eq!(body, upstream.concat(), "events go through byte for byte");
    let rec = gw.record(&rid).await;
    assert_eq!((rec.input_tokens, rec.output_tokens), (20, 7));
    assert!(!rec.usage_estimated);
    assert!(rec.error_class.is_none());
}

#[tokio::test]
async fn failures_and_unbridgeable_fields_are_explained() {
    let up = MockUpstream::start().await;
    let mut broken = events(&["Hel"]);
    broken.pop();
    broken.push("event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"The model crashed\",\"param\":null,\"sequence_number\":3}\n\n".into());
    up.push("/v1/responses", Reply::sse(broken, Split::Events));
    let yaml = format!(
        "{}  - name: local\n    provider: mock\n    model: echo\n",
        config(&up)
    );
    let gw = Gateway::start(&yaml, &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let body = gw
        .post("/v1/responses")
        .bearer_auth(MASTER)
        .json(&json!({"model": "agent", "input": "hi", "stream": true}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let last = body.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: error\n"), "{body}");
    assert!(last.contains("The model crashed"), "{last}");
    // Numbered on from the last event the client saw.
    assert!(last.contains("\"sequence_number\":3"), "{last}");

    // Other providers are bridged; what needs OpenAI's stored state is refused by name.
    let r = gw
        .post("/v1/responses")
        .bearer_auth(MASTER)
        .json(&json!({"model": "local", "input": "hi", "previous_response_id": "resp_1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "previous_response_id", "{e}");

    let r = gw
        .post("/v1/responses")
        .bearer_auth(MASTER)
        .json(&json!({"model": "agent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["param"], "input");
}

#[tokio::test]
async fn other_providers_are_bridged_both_ways() {
    let up = MockUpstream::start().await;
    let yaml = format!(
        r#"
deployments:
  - {{ name: claude, provider: anthropic, model: claude-sonnet-4-5, base_url: "{}", api_key: sk-ant }}
models:
  - name: agent
    deployments: [claude]
"#,
        up.url()
    );
    let gw = Gateway::start(&yaml, &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let r = gw
        .post("/v1/responses")
        .bearer_auth(MASTER)
        .json(&json!({"model": "agent", "instructions": "Be brief.", "input": "Say hi", "max_output_tokens": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["output"][0]["type"], "message");
    assert_eq!(body["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(
        body["output"][0]["content"][0]["text"],
        "Hello from Claude."
    );
    assert!(body["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let sent = up.last().json();
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["max_tokens"], 50);

    let r = gw
        .post("/v1/responses")
        .bearer_auth(MASTER)
        .json(&json!({"model": "agent", "input": [{"role": "user", "content": "Say hi"}], "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let events: Vec<Value> = event_data(&text);
    assert_eq!(events[0]["type"], "response.created");
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64, "{e}");
    }
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "Hello from Claude.");
    let last = events.last().unwrap();
    assert_eq!(
        last["response"]["output"][0]["content"][0]["text"],
        "Hello from Claude."
    );
    assert!(last["response"]["usage"]["input_tokens"].as_u64().unwrap() > 0);
}

/// A Responses request with a developer message, an image, an earlier turn of
/// two parallel function calls with both outputs, function tools and a JSON
/// schema for the answer.
fn rich_responses_request(model: &str) -> Value {
    json!({
        "model": model, "instructions": "Be brief.",
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
        "parallel_tool_calls": true,
        "text": {"format": {"type": "json_schema", "name": "forecast", "strict": true, "schema": {
            "type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"], "additionalProperties": false}}},
        "input": [
            {"role": "developer", "content": "Answer in JSON."},
            {"role": "user", "content": [
                {"type": "input_text", "text": "Weather here and in Rome?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}
            ]},
            {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": "{\"city\":\"Rome\"}"},
            {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
            {"type": "function_call_output", "call_id": "call_b", "output": "24C"},
            {"role": "user", "content": "And tomorrow?"}
        ]
    })
}

#[tokio::test]
async fn a_rich_request_and_a_streamed_function_call_pass_through_untouched() {
    let up = MockUpstream::start().await;
    let mut reply = response_object("");
    reply["output"] = json!([
        {"type": "function_call", "id": "fc_1", "call_id": "call_c", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
        {"type": "function_call", "id": "fc_2", "call_id": "call_d", "name": "get_weather", "arguments": "{\"city\":\"Rome\"}", "status": "completed"}
    ]);
    up.push("/v1/responses", Reply::json(reply.clone()));
    let gw = Gateway::start(&config(&up), &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let r = gw
        .post("/v1/responses")
        .bearer_auth(MASTER)
        .json(&rich_responses_request("agent"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), reply);
    assert_eq!(up.last().json(), rich_responses_request("gpt-4.1-mini"));

    // Function-call arguments streamed in pieces pass through event by event.
    let mut seq = 0u64;
    let mut ev = |v: Value| {
        let mut v = v;
        v["sequence_number"] = json!(seq);
        seq += 1;
        format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap())
    };
    let item = json!({"type": "function_call", "id": "fc_s", "call_id": "call_s", "name": "get_weather", "arguments": "", "status": "in_progress"});
    let upstream = vec![
        ev(
            json!({"type": "response.created", "response": {"id": "resp_t", "object": "response", "status": "in_progress", "output": []}}),
        ),
        ev(json!({"type": "response.output_item.added", "output_index": 0, "item": item})),
        ev(
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_s", "output_index": 0, "delta": "{\"city\":"}),
        ),
        ev(
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_s", "output_index": 0, "delta": "\"Paris\"}"}),
        ),
        ev(
            json!({"type": "response.function_call_arguments.done", "item_id": "fc_s", "output_index": 0, "arguments": "{\"city\":\"Paris\"}"}),
        ),
        ev(
            json!({"type": "response.completed", "response": {"id": "resp_t", "object": "response", "status": "completed",
            "usage": {"input_tokens": 30, "output_tokens": 9, "total_tokens": 39}}}),
        ),
    ];
    up.push(
        "/v1/responses",
        Reply::sse(upstream.clone(), Split::Awkward),
    );
    let r = gw
        .post("/v1/responses")
        .bearer_auth(MASTER)
        .json(
            &json!({"model": "agent", "input": "Weather in Paris?", "stream": true,
            "tools": rich_responses_request("agent")["tools"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), upstream.concat());
}

#[tokio::test]
async fn openai_compatible_deployments_are_bridged_through_chat() {
    let up = MockUpstream::start().await;
    let yaml = format!(
        "models:\n  - {{ name: local, provider: openai_compatible, model: llama3.1:8b, base_url: \"{}/v1\", retry: {{ max_attempts: 1 }} }}\n",
        up.url()
    );
    let gw = Gateway::start(&yaml, &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let post = |body: Value| {
        gw.post("/v1/responses")
            .bearer_auth(MASTER)
            .json(&body)
            .send()
    };
    let r = post(json!({"model": "local", "instructions": "Be brief.", "input": "Say hi", "max_output_tokens": 40}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "response");
    assert_eq!(
        body["output"][0]["content"][0]["text"],
        "Hello from upstream."
    );
    let sent = up.last();
    assert_eq!(sent.path, "/v1/chat/completions", "not the Responses API");
    let sent = sent.json();
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(sent["max_tokens"], 40);

    // A tool call and its output go back as input items.
    let tools = json!([{"type": "function", "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let r = post(json!({"model": "local", "input": "Weather in Paris?", "tools": tools}))
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let call = body["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "function_call")
        .unwrap()
        .clone();
    assert_eq!(call["name"], "get_weather");
    let r = post(json!({"model": "local", "tools": tools, "input": [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call["call_id"], "name": "get_weather", "arguments": call["arguments"]},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "18C"}
    ]}))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let sent = up.last().json();
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "content": "18C", "tool_call_id": call["call_id"]})
    );

    // Streamed: text deltas, then usage in response.completed.
    let r = post(json!({"model": "local", "input": "hi", "stream": true}))
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    let events: Vec<Value> = event_data(&text);
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "Hello from upstream.");
    let done = events.last().unwrap();
    assert_eq!(done["type"], "response.completed");
    assert_eq!(done["response"]["usage"]["output_tokens"], 3);

    // Upstream errors arrive in the OpenAI envelope.
    up.push(
        "/v1/chat/completions",
        Reply::error(
            500,
            json!({"error": {"message": "boom", "type": "server_error"}}),
        ),
    );
    let r = post(json!({"model": "local", "input": "hi"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "api_error"
    );
}

#[tokio::test]
async fn bridged_errors_use_the_openai_envelope() {
    let up = MockUpstream::start().await;
    up.push(
        "/v1/messages",
        Reply::Json {
            status: 429,
            body: json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}),
            headers: vec![("retry-after".into(), "15".into())],
        },
    );
    let yaml = format!(
        "models:\n  - {{ name: claude, provider: anthropic, model: claude-sonnet-4-5, base_url: \"{}\", api_key: k, retry: {{ max_attempts: 1 }} }}\n",
        up.url()
    );
    let gw = Gateway::start(&yaml, &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    for (model, status, kind) in [
        ("claude", 429, "rate_limit_error"),
        ("mock/error-429", 429, "rate_limit_error"),
        ("mock/error-500", 502, "api_error"),
    ] {
        let r = gw
            .post("/v1/responses")
            .bearer_auth(MASTER)
            .json(&json!({"model": model, "input": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{model}");
        if status == 429 {
            assert!(r.headers().contains_key("retry-after"), "{model}");
        }
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["type"], kind, "{model}: {e}");
    }
    // A bridged stream that fails after it started ends with `response.failed`.
    let r = gw
        .post("/v1/responses")
        .bearer_auth(MASTER)
        .json(&json!({"model": "mock/stream-error", "input": "hi", "stream": true}))
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    let last = body.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: response.failed\n"), "{body}");
    let data: Value =
        serde_json::from_str(last.lines().nth(1).unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(data["response"]["status"], "failed");
    assert!(
        data["response"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mid-stream failure"),
        "{data}"
    );
}

#[tokio::test]
async fn anthropic_deployments_get_images_parallel_calls_and_json_schema_bridged_and_reasoning_refused()
 {
    let up = MockUpstream::start().await;
    let yaml = format!(
        "models:\n  - {{ name: claude, provider: anthropic, model: claude-sonnet-4-5, base_url: \"{}\", api_key: k }}\n",
        up.url()
    );
    let gw = Gateway::start(&yaml, &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let post = |body: Value| {
        gw.post("/v1/responses")
            .bearer_auth(MASTER)
            .json(&body)
            .send()
    };
    let mut history = rich_responses_request("claude");
    history.as_object_mut().unwrap().remove("text");
    let r = post(history).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let sent = up.last().json();
    let msgs = sent["messages"].as_array().unwrap();
    // user (text + image), assistant (two tool_use), user (two tool_result + text)
    assert_eq!(msgs.len(), 3, "{sent}");
    assert_eq!(msgs[0]["content"][1]["type"], "image");
    assert_eq!(msgs[0]["content"][1]["source"]["media_type"], "image/png");
    let ids = |i: usize, key: &str| -> Vec<Value> {
        msgs[i]["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b.get(key).cloned())
            .collect()
    };
    assert_eq!(ids(1, "id"), [json!("call_a"), json!("call_b")]);
    assert_eq!(ids(2, "tool_use_id"), [json!("call_a"), json!("call_b")]);

    // A JSON schema becomes a forced tool; its input is the answer's text.
    let r = post(json!({"model": "claude", "input": "Forecast?",
        "text": rich_responses_request("claude")["text"]}))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let text = body["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "message")
        .unwrap()["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"summary": "mock"})
    );
    let sent = up.last().json();
    assert_eq!(sent["tool_choice"]["type"], "tool");

    // Anthropic takes no reasoning effort through chat: refused by the name
    // the client sent (`reasoning.effort`), before anything is sent.
    let calls = up.requests().len();
    let r = post(json!({"model": "claude", "input": "Think.", "reasoning": {"effort": "high"}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "reasoning.effort", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reasoning.effort"),
        "{e}"
    );
    assert_eq!(up.requests().len(), calls);
}

/// `/v1/responses` over a `provider` deployment that takes the chat dialect
/// from an OpenAI-format upstream: `rich_responses_request` with a reasoning
/// effort is bridged to chat (the image as an image part, both calls in one
/// assistant turn and both outputs as tool messages, the schema as
/// `response_format`, the effort as `reasoning_effort`); a reply with
/// reasoning and two parallel calls comes back as a reasoning item and two
/// function calls; a JSON answer comes back as the output text; a streamed
/// call's arguments add up; usage ends the stream; failures keep their
/// status, before and after a stream started.
async fn bridged_responses_round_trip(provider: &str) {
    let up = MockUpstream::start().await;
    // Azure serves the chat dialect at its deployment URLs.
    let (base, version, chat_path) = match provider {
        "azure" => (
            up.url(),
            ", api_version: 2024-10-21",
            modelgate_testkit::azure::path("upstream-model", "chat/completions"),
        ),
        _ => (
            format!("{}/v1", up.url()),
            "",
            "/v1/chat/completions".to_owned(),
        ),
    };
    let yaml = format!(
        "models:\n  - {{ name: m, provider: {provider}, model: upstream-model, base_url: \"{base}\", api_key: k{version}, retry: {{ max_attempts: 1 }} }}\n"
    );
    let gw = Gateway::start(&yaml, &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let post = |body: Value| {
        gw.post("/v1/responses")
            .bearer_auth(MASTER)
            .json(&body)
            .send()
    };

    let mut reply = modelgate_testkit::openai_tool_completion("get_weather", "{}");
    reply["choices"][0]["message"] = json!({
        "role": "assistant", "content": null, "reasoning_content": "Two cities, two calls.",
        "tool_calls": [
            {"id": "call_c", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_d", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
        ]
    });
    reply["usage"]["completion_tokens_details"] = json!({"reasoning_tokens": 64});
    up.push(&chat_path, Reply::json(reply));
    let mut request = rich_responses_request("m");
    request["reasoning"] = json!({"effort": "low"});
    let r = post(request.clone()).await.unwrap();
    assert_eq!(r.status(), 200, "{provider}");
    let body: Value = r.json().await.unwrap();
    let output = body["output"].as_array().unwrap();
    let reasoning = output.iter().find(|o| o["type"] == "reasoning").unwrap();
    assert_eq!(reasoning["summary"][0]["text"], "Two cities, two calls.");
    let calls: Vec<(&Value, &Value)> = output
        .iter()
        .filter(|o| o["type"] == "function_call")
        .map(|o| (&o["call_id"], &o["arguments"]))
        .collect();
    assert_eq!(
        calls,
        [
            (&json!("call_c"), &json!("{\"city\":\"Paris\"}")),
            (&json!("call_d"), &json!("{\"city\":\"Rome\"}"))
        ]
    );
    assert_eq!(
        body["usage"]["output_tokens_details"]["reasoning_tokens"],
        64
    );
    let sent = up.last();
    assert_eq!(sent.path, chat_path, "not the Responses API");
    let sent = sent.json();
    let msgs = sent["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 7, "{sent}");
    assert_eq!(msgs[0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(msgs[1]["content"], "Answer in JSON.");
    assert_eq!(msgs[2]["content"][0]["text"], "Weather here and in Rome?");
    assert_eq!(
        msgs[2]["content"][1]["image_url"]["url"],
        "data:image/png;base64,iVBORw0KGgo="
    );
    let ids: Vec<&Value> = msgs[3]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(ids, [&json!("call_a"), &json!("call_b")]);
    assert_eq!(
        msgs[4],
        json!({"role": "tool", "content": "18C", "tool_call_id": "call_a"})
    );
    assert_eq!(
        msgs[5],
        json!({"role": "tool", "content": "24C", "tool_call_id": "call_b"})
    );
    assert_eq!(msgs[6], json!({"role": "user", "content": "And tomorrow?"}));
    let format = &request["text"]["format"];
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": format["name"], "strict": true, "schema": format["schema"]}})
    );
    assert_eq!(sent["reasoning_effort"], "low");
    assert_eq!(sent["parallel_tool_calls"], true);
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");

    // The JSON answer is the output text.
    up.push(
        &chat_path,
        Reply::json(modelgate_testkit::openai_completion(
            "{\"summary\":\"mild\"}",
        )),
    );
    let r = post(json!({"model": "m", "input": "Forecast?", "text": request["text"]}))
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["output"][0]["content"][0]["text"],
        "{\"summary\":\"mild\"}"
    );
    assert_eq!(body["text"]["format"]["type"], "json_schema");

    // A text stream: its deltas, then usage in `response.completed`.
    let r = post(json!({"model": "m", "instructions": "Be brief.", "input": "hi", "stream": true}))
        .await
        .unwrap();
    let events = event_data(&r.text().await.unwrap());
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello from upstream.");
    let done = events.last().unwrap();
    assert_eq!(done["type"], "response.completed");
    assert_eq!(done["response"]["usage"]["output_tokens"], 3);

    // A streamed call (the mock answers a tool offer with one): its argument
    // deltas add up, and usage arrives in `response.completed`.
    let r = post(
        json!({"model": "m", "input": "Weather in Paris?", "stream": true,
        "tools": request["tools"]}),
    )
    .await
    .unwrap();
    let events = event_data(&r.text().await.unwrap());
    let deltas: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert!(deltas.len() > 1, "{events:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&deltas.concat()).unwrap(),
        json!({"city": "mock"})
    );
    let done = events.last().unwrap();
    assert_eq!(done["type"], "response.completed");
    let call = done["response"]["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "function_call")
        .unwrap();
    assert_eq!(call["arguments"], "{\"city\":\"mock\"}");
    assert_eq!(done["response"]["usage"]["input_tokens"], 20);
    assert_eq!(done["response"]["usage"]["output_tokens"], 8);
    assert_eq!(up.last().json()["stream_options"]["include_usage"], true);

    // A stream cut after it started ends with `response.failed`.
    let mut cut =
        modelgate_testkit::openai_stream(&["partial", " answer", " never", " done"], false);
    cut.truncate(3);
    up.push(
        &chat_path,
        Reply::Sse {
            events: cut,
            split: Split::Awkward,
            gap: std::time::Duration::ZERO,
            end: modelgate_testkit::End::Reset,
        },
    );
    let r = post(json!({"model": "m", "input": "hi", "stream": true}))
        .await
        .unwrap();
    let events = event_data(&r.text().await.unwrap());
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed", "{events:?}");
    assert_eq!(last["response"]["status"], "failed");

    // Last (it cools the deployment down): a 429 with its Retry-After.
    up.push(
        &chat_path,
        Reply::Json {
            status: 429,
            body: json!({"error": {"code": "429", "message": "Rate limit is exceeded. Try again in 7 seconds."}}),
            headers: vec![("retry-after".into(), "7".into())],
        },
    );
    let r = post(json!({"model": "m", "input": "hi"})).await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "rate_limit_error"
    );
}

#[tokio::test]
async fn openai_compatible_deployments_get_images_parallel_calls_json_schema_and_reasoning_bridged()
{
    bridged_responses_round_trip("openai_compatible").await;
}

#[tokio::test]
async fn azure_deployments_get_images_parallel_calls_json_schema_and_reasoning_bridged() {
    bridged_responses_round_trip("azure").await;
}
