//! `POST /v1/responses` (OpenAI Responses API) passed through to OpenAI
//! deployments, metered and logged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Gateway;
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
    let events: Vec<Value> = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            serde_json::from_str(data).unwrap()
        })
        .collect();
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
