//! `POST /v1/embeddings` over providers with their own embedding formats:
//! the Gemini API (`batchEmbedContents`), Vertex AI (`:predict`) and
//! Bedrock (`InvokeModel`, Titan and Cohere), against the test kit's mocks
//! of those endpoints; floats and base64, usage, cost, and the inputs each
//! cannot take.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Gateway;
use modelgate_codec::embeddings::base64_f32;
use modelgate_testkit::MockUpstream;
use modelgate_testkit::bedrock::{MOCK_AWS_ACCESS_KEY_ID, MOCK_AWS_SECRET_ACCESS_KEY};
use modelgate_testkit::embeddings::vector;
use serde_json::{Value, json};

fn config(up: &MockUpstream) -> String {
    format!(
        r#"
models:
  - {{ name: gem, provider: gemini, model: gemini-embedding-001, base_url: "{u}", api_key: gk }}
  - name: vx
    provider: vertex
    model: text-embedding-005
    project: p
    location: us-central1
    base_url: "{u}"
    access_token: vertex-token
  - name: vxg
    provider: vertex
    model: gemini-embedding-001
    project: p
    location: us-central1
    base_url: "{u}"
    access_token: vertex-token
  - name: titan
    provider: bedrock
    model: amazon.titan-embed-text-v2:0
    base_url: "{u}"
    region: us-east-1
    aws_access_key_id: {MOCK_AWS_ACCESS_KEY_ID}
    aws_secret_access_key: "{MOCK_AWS_SECRET_ACCESS_KEY}"
  - name: cohere
    provider: bedrock
    model: cohere.embed-english-v3
    base_url: "{u}"
    region: us-east-1
    aws_access_key_id: {MOCK_AWS_ACCESS_KEY_ID}
    aws_secret_access_key: "{MOCK_AWS_SECRET_ACCESS_KEY}"
  - name: nova
    provider: bedrock
    model: amazon.nova-pro-v1:0
    base_url: "{u}"
    region: us-east-1
    aws_access_key_id: {MOCK_AWS_ACCESS_KEY_ID}
    aws_secret_access_key: "{MOCK_AWS_SECRET_ACCESS_KEY}"
"#,
        u = up.url()
    )
}

async fn embed(gw: &Gateway, body: Value) -> (u16, Value, String) {
    let r = gw.post("/v1/embeddings").json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    (status, r.json().await.unwrap(), rid)
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[tokio::test]
async fn gemini_batch_embeds_floats_and_base64() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up), &[]).await;
    let (status, v, rid) = embed(
        &gw,
        json!({"model": "gem", "input": ["alpha", "beta"], "dimensions": 16}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(floats(&v["data"][0]["embedding"]), vector("alpha", 16));
    assert_eq!(floats(&v["data"][1]["embedding"]), vector("beta", 16));
    let sent = up.last();
    assert_eq!(
        sent.path,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(sent.header("x-goog-api-key").as_deref(), Some("gk"));
    assert_eq!(sent.json()["requests"][1]["outputDimensionality"], 16);
    let rec = gw.record(&rid).await;
    assert!(rec.usage_estimated, "Gemini reports no token count");
    assert_eq!(rec.provider.as_deref(), Some("gemini"));
    assert!(
        rec.cost_nanos.unwrap() > 0,
        "gemini-embedding-001 is priced"
    );

    // The OpenAI SDKs ask for base64 by default.
    let (status, v, _) = embed(
        &gw,
        json!({"model": "gem", "input": "alpha", "dimensions": 4, "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["data"][0]["embedding"], base64_f32(&vector("alpha", 4)));

    // Token ids cannot be embedded by Google's models.
    let (status, v, _) = embed(&gw, json!({"model": "gem", "input": [[1, 2, 3]]})).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "input");
}

#[tokio::test]
async fn vertex_predicts_batches_and_one_instance_per_gemini_request() {
    let up = MockUpstream::start().await;
    up.accept_vertex_token("vertex-token");
    let gw = Gateway::start(&config(&up), &[]).await;
    let (status, v, rid) = embed(
        &gw,
        json!({"model": "vx", "input": ["one two three", "four"], "dimensions": 8}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(floats(&v["data"][1]["embedding"]), vector("four", 8));
    assert_eq!(v["usage"]["prompt_tokens"], 4 + 1, "Vertex's token counts");
    let sent = up.last();
    assert_eq!(
        sent.path,
        "/v1/projects/p/locations/us-central1/publishers/google/models/text-embedding-005:predict"
    );
    assert_eq!(sent.json()["instances"].as_array().unwrap().len(), 2);
    assert_eq!(sent.json()["parameters"]["outputDimensionality"], 8);
    assert_eq!(
        sent.header("authorization").as_deref(),
        Some("Bearer vertex-token")
    );
    assert!(!gw.record(&rid).await.usage_estimated);

    // gemini-embedding-001 takes one instance per request on Vertex.
    let before = up.requests().len();
    let (status, v, _) = embed(&gw, json!({"model": "vxg", "input": ["a", "b", "c"]})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    assert_eq!(up.requests().len() - before, 3);
}

#[tokio::test]
async fn bedrock_invokes_titan_per_input_and_cohere_once() {
    let up = MockUpstream::start().await;
    let gw = Gateway::start(&config(&up), &[]).await;
    let before = up.requests().len();
    let (status, v, rid) = embed(
        &gw,
        json!({"model": "titan", "input": ["first text", "second"], "dimensions": 256}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        up.requests().len() - before,
        2,
        "Titan embeds one text a call"
    );
    assert_eq!(
        floats(&v["data"][0]["embedding"]),
        vector("first text", 256)
    );
    assert_eq!(v["usage"]["prompt_tokens"], 3 + 2);
    let sent = up.last();
    assert_eq!(sent.path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
    assert_eq!(
        sent.json(),
        json!({"inputText": "second", "dimensions": 256})
    );
    assert!(
        sent.header("authorization")
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 Credential=")
    );
    let rec = gw.record(&rid).await;
    assert!(rec.cost_nanos.unwrap() > 0, "Titan embeddings are priced");

    let (status, v, _) = embed(&gw, json!({"model": "cohere", "input": ["x", "y"]})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(up.last().json()["input_type"], "search_document");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    for (body, param) in [
        (
            json!({"model": "cohere", "input": "x", "dimensions": 256}),
            "dimensions",
        ),
        (json!({"model": "nova", "input": "x"}), "model"),
    ] {
        let (status, v, _) = embed(&gw, body).await;
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["error"]["param"], param, "{v}");
    }
}
