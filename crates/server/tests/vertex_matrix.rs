//! The conformance matrix's chat and Responses cells over Vertex AI (the test
//! kit's mock of the Vertex Gemini and Claude routes, with a fixed access
//! token): multi-turn tool conversations, images, parallel calls, streamed
//! calls, structured output, reasoning and stream usage, through the same
//! codecs as Gemini and Anthropic but at Vertex's URLs. Authentication,
//! tokens and the Anthropic front door over Vertex are in `vertex_upstream.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Gateway, event_data, sse_data, stream_text};
use modelgate_testkit::{MockUpstream, Reply, Split, gemini_error, gemini_stream};
use serde_json::{Value, json};

const GEM: &str =
    "/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-2.5-flash";
const CLAUDE: &str = "/v1/projects/test-project/locations/us-central1/publishers/anthropic/models/claude-sonnet-4@20250514";
const TOKEN: &str = "ya29.matrix-token";

/// `flash` (Gemini on Vertex) and `sonnet` (Claude on Vertex), with a fixed
/// access token the mock accepts.
fn config(up: &MockUpstream) -> String {
    up.accept_vertex_token(TOKEN);
    format!(
        r#"
models:
  - {{ name: flash, provider: vertex, model: gemini-2.5-flash, project: test-project, location: us-central1, base_url: "{url}", access_token: {TOKEN}, retry: {{ max_attempts: 1 }} }}
  - {{ name: sonnet, provider: vertex, model: "claude-sonnet-4@20250514", project: test-project, location: us-central1, base_url: "{url}", access_token: {TOKEN}, retry: {{ max_attempts: 1 }} }}
"#,
        url = up.url()
    )
}

fn schema() -> Value {
    json!({"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]})
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

/// A chat request with a system prompt, an image, an earlier turn of two
/// parallel calls with both results, a follow-up, tools and a JSON schema.
fn rich_chat(model: &str) -> Value {
    json!({
        "model": model,
        "tools": [weather_tool()],
        "response_format": {"type": "json_schema", "json_schema": {"name": "forecast", "schema": schema()}},
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
    })
}

/// A Gemini answer calling `get_weather` for Paris and Rome in one turn.
fn two_gemini_calls() -> Value {
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLXBhcmlz"},
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
            ]},
            "finishReason": "STOP", "index": 0
        }],
        "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 10, "totalTokenCount": 40},
        "modelVersion": "gemini-2.5-flash", "responseId": "vx-par"
    })
}

/// `(name, arguments, pieces)` of each tool call a chat stream assembles.
fn streamed_calls(data: &[String]) -> Vec<(String, String, usize)> {
    let mut calls: Vec<(String, String, usize)> = Vec::new();
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
            if let Some(a) = c["function"]["arguments"]
                .as_str()
                .filter(|a| !a.is_empty())
            {
                calls[i].1.push_str(a);
                calls[i].2 += 1;
            }
        }
    }
    calls
}

#[tokio::test]
async fn gemini_on_vertex_carries_tool_turns_images_parallel_calls_json_schema_reasoning_and_stream_usage()
 {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up), &[]).await;
    let post = |body: Value| gw.post("/v1/chat/completions").json(&body).send();
    let generate = format!("{GEM}:generateContent");

    // The whole conversation, a schema and an effort go over; thoughts and
    // the JSON answer come back.
    up.push(
        &generate,
        Reply::json(json!({
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"text": "Both cities are mild.", "thought": true},
                    {"text": "{\"summary\":\"mild\"}"}
                ]},
                "finishReason": "STOP", "index": 0
            }],
            "usageMetadata": {"promptTokenCount": 50, "candidatesTokenCount": 6, "thoughtsTokenCount": 9, "totalTokenCount": 65},
            "modelVersion": "gemini-2.5-flash", "responseId": "vx-1"
        })),
    );
    let mut request = rich_chat("flash");
    request["reasoning_effort"] = json!("low");
    let r = post(request).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    let message = &v["choices"][0]["message"];
    assert_eq!(message["content"], "{\"summary\":\"mild\"}");
    assert_eq!(message["reasoning_content"], "Both cities are mild.");
    assert_eq!(
        v["usage"]["completion_tokens_details"]["reasoning_tokens"],
        9
    );
    let rec = up.last();
    assert_eq!(rec.path, generate);
    assert_eq!(
        rec.header("authorization").as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let sent = rec.json();
    assert_eq!(
        sent["systemInstruction"]["parts"][0]["text"],
        "Answer in JSON."
    );
    let contents = sent["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 4, "{sent}");
    assert_eq!(
        contents[0]["parts"][1]["inlineData"],
        json!({"mimeType": "image/png", "data": "iVBORw0KGgo="})
    );
    let args: Vec<&Value> = contents[1]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["functionCall"]["args"])
        .collect();
    assert_eq!(args, [&json!({"city": "Paris"}), &json!({"city": "Rome"})]);
    let outputs: Vec<&Value> = contents[2]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["functionResponse"]["response"]["output"])
        .collect();
    assert_eq!(outputs, [&json!("18C"), &json!("24C")]);
    assert_eq!(contents[3]["parts"][0]["text"], "And tomorrow?");
    assert_eq!(
        sent["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
    let generation = &sent["generationConfig"];
    assert_eq!(generation["responseMimeType"], "application/json");
    assert_eq!(generation["responseJsonSchema"], schema());
    assert_eq!(
        generation["thinkingConfig"],
        json!({"includeThoughts": true, "thinkingBudget": 1024})
    );

    // A reply of two calls: distinct ids, in order; the signature rides on
    // the call that had one.
    up.push(&generate, Reply::json(two_gemini_calls()));
    let r = post(json!({"model": "flash", "tools": [weather_tool()],
        "messages": [{"role": "user", "content": "Weather in Paris and Rome?"}]}))
    .await
    .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let calls = v["choices"][0]["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(calls[1]["function"]["arguments"], "{\"city\":\"Rome\"}");
    assert_eq!(
        calls[0]["extra_content"]["google"]["thought_signature"],
        "c2lnLXBhcmlz"
    );

    // Streamed: a tool offer is answered with a call (Gemini sends it whole),
    // and the usage chunk the client asked for comes last.
    let r = post(
        json!({"model": "flash", "stream": true, "stream_options": {"include_usage": true},
        "tools": [weather_tool()],
        "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
    )
    .await
    .unwrap();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let calls = streamed_calls(&data);
    assert_eq!(calls.len(), 1, "{data:?}");
    assert_eq!(calls[0].0, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].1).unwrap(),
        json!({"city": "mock"})
    );
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 40);
    assert_eq!(usage["usage"]["completion_tokens"], 18);
    let rec = up.last();
    assert_eq!(rec.path, format!("{GEM}:streamGenerateContent"));
    assert_eq!(rec.query, "alt=sse");

    // A text stream's usage, too.
    up.push(
        &format!("{GEM}:streamGenerateContent"),
        Reply::sse(
            gemini_stream("gemini-2.5-flash", &["Hel", "lo"]),
            Split::Awkward,
        ),
    );
    let r = post(
        json!({"model": "flash", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .unwrap();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(stream_text(&data), "Hello");
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["prompt_tokens"], 10);
    assert_eq!(usage["usage"]["completion_tokens"], 2);
}

#[tokio::test]
async fn claude_on_vertex_carries_tool_turns_images_json_schema_and_streamed_input_and_refuses_reasoning_effort()
 {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up), &[]).await;
    let post = |body: Value| gw.post("/v1/chat/completions").json(&body).send();

    // The tool conversation (Claude takes a schema only without tools: it is
    // emulated with a forced tool); the mock answers with a call.
    let mut history = rich_chat("sonnet");
    history.as_object_mut().unwrap().remove("response_format");
    let r = post(history).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let rec = up.last();
    assert_eq!(rec.path, format!("{CLAUDE}:rawPredict"));
    let sent = rec.json();
    assert_eq!(sent["system"], "Answer in JSON.");
    let msgs = sent["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{sent}");
    assert_eq!(
        msgs[0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
    );
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

    // A JSON schema becomes a forced tool; the mock answers it with input
    // that fits, which is the answer's content.
    let r = post(
        json!({"model": "sonnet", "response_format": rich_chat("sonnet")["response_format"],
        "messages": [{"role": "user", "content": "Forecast?"}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(v["choices"][0]["message"]["content"].as_str().unwrap())
            .unwrap(),
        json!({"summary": "mock"})
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let sent = up.last().json();
    assert_eq!(sent["tool_choice"]["type"], "tool");
    assert_eq!(sent["tools"][0]["input_schema"], schema());

    // Streamed, a call's input arrives in pieces that add up.
    let r = post(
        json!({"model": "sonnet", "stream": true, "tools": [weather_tool()],
        "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
    )
    .await
    .unwrap();
    let data = sse_data(&r.text().await.unwrap());
    let calls = streamed_calls(&data);
    assert_eq!(calls.len(), 1, "{data:?}");
    assert!(calls[0].2 > 1, "{data:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].1).unwrap(),
        json!({"city": "mock"})
    );
    assert_eq!(up.last().path, format!("{CLAUDE}:streamRawPredict"));

    // Claude takes no reasoning effort through chat, as on Anthropic.
    let calls_before = up.requests().len();
    let r = post(json!({"model": "sonnet", "reasoning_effort": "high",
        "messages": [{"role": "user", "content": "Think."}]}))
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "reasoning_effort");
    assert_eq!(up.requests().len(), calls_before);
}

#[tokio::test]
async fn responses_over_vertex_carry_images_parallel_calls_json_schema_reasoning_streams_and_errors()
 {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up), &[]).await;
    let post = |body: Value| gw.post("/v1/responses").json(&body).send();
    let generate = format!("{GEM}:generateContent");
    let stream = format!("{GEM}:streamGenerateContent");
    let tools = json!([{"type": "function", "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);

    // Instructions, an image, an earlier turn of two parallel calls, a
    // schema and an effort go over; reasoning and the JSON answer come back.
    up.push(
        &generate,
        Reply::json(json!({
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"text": "Two cities, one answer.", "thought": true},
                    {"text": "{\"summary\":\"mild\"}"}
                ]},
                "finishReason": "STOP", "index": 0
            }],
            "usageMetadata": {"promptTokenCount": 50, "candidatesTokenCount": 6, "thoughtsTokenCount": 9, "totalTokenCount": 65},
            "modelVersion": "gemini-2.5-flash", "responseId": "vx-r"
        })),
    );
    let r = post(json!({
        "model": "flash", "instructions": "Be brief.", "tools": tools, "max_output_tokens": 300,
        "text": {"format": {"type": "json_schema", "name": "forecast", "schema": schema()}},
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
    let rec = up.last();
    assert_eq!(rec.path, generate);
    let sent = rec.json();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be brief.");
    let contents = sent["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 3, "{sent}");
    assert_eq!(
        contents[0]["parts"][1]["inlineData"]["mimeType"],
        "image/png"
    );
    assert_eq!(contents[1]["parts"].as_array().unwrap().len(), 2);
    assert_eq!(contents[2]["parts"].as_array().unwrap().len(), 2);
    let generation = &sent["generationConfig"];
    assert_eq!(generation["maxOutputTokens"], 300);
    assert_eq!(generation["responseMimeType"], "application/json");
    assert_eq!(generation["responseJsonSchema"], schema());
    assert_eq!(
        generation["thinkingConfig"],
        json!({"includeThoughts": true, "thinkingBudget": 1024})
    );

    // A reply of two calls comes back as two function_call items, in order.
    up.push(&generate, Reply::json(two_gemini_calls()));
    let r = post(json!({"model": "flash", "input": "Weather in Paris and Rome?", "tools": tools}))
        .await
        .unwrap();
    let resp: Value = r.json().await.unwrap();
    let args: Vec<&Value> = resp["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == "function_call")
        .map(|o| &o["arguments"])
        .collect();
    assert_eq!(
        args,
        [
            &json!("{\"city\":\"Paris\"}"),
            &json!("{\"city\":\"Rome\"}")
        ]
    );

    // Streamed: text deltas, usage in `response.completed`...
    let r = post(json!({"model": "flash", "input": "hi", "stream": true}))
        .await
        .unwrap();
    let evs = event_data(&r.text().await.unwrap());
    let text: String = evs
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello from Gemini.");
    let done = evs.last().unwrap();
    assert_eq!(done["type"], "response.completed");
    assert_eq!(done["response"]["usage"]["input_tokens"], 10);
    assert_eq!(done["response"]["usage"]["output_tokens"], 3);
    // ...and a call, whose arguments Gemini sends whole.
    let r = post(
        json!({"model": "flash", "input": "Weather in Paris?", "tools": tools, "stream": true}),
    )
    .await
    .unwrap();
    let evs = event_data(&r.text().await.unwrap());
    let args: String = evs
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "mock"})
    );
    assert_eq!(up.last().path, stream);

    // Failures: an error event after the stream started ends it with
    // `response.failed`; a 429 keeps its status (last: it cools the
    // deployment down).
    let mut broken = gemini_stream("gemini-2.5-flash", &["one", " two"]);
    broken.truncate(1);
    broken.push(format!(
        "data: {}\r\n\r\n",
        gemini_error(503, "UNAVAILABLE", "The model is overloaded.")
    ));
    up.push(&stream, Reply::sse(broken, Split::Events));
    let r = post(json!({"model": "flash", "input": "hi", "stream": true}))
        .await
        .unwrap();
    let evs = event_data(&r.text().await.unwrap());
    let last = evs.last().unwrap();
    assert_eq!(last["type"], "response.failed", "{evs:?}");
    assert!(
        last["response"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("overloaded"),
        "{last}"
    );
    up.push(
        &generate,
        Reply::error(
            429,
            gemini_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for aiplatform.googleapis.com/generate_content_requests_per_minute",
            ),
        ),
    );
    let r = post(json!({"model": "flash", "input": "hi"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "rate_limit_error"
    );
}
