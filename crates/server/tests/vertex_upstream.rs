//! The gateway in front of Vertex AI (the test kit's mock of the Vertex
//! Gemini and Claude routes plus a mock Google token endpoint): URLs and
//! bodies, service-account tokens fetched once, reused and refreshed, fixed
//! access tokens, streams, and errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Gateway, named_events, sse_data, stream_text};
use modelgate_testkit::vertex::{TOKEN_PATH, VERTEX_ANTHROPIC_VERSION, service_account_json};
use modelgate_testkit::{MockUpstream, Reply, gemini_error};
use serde_json::{Value, json};

const GEM: &str =
    "/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-2.5-flash";
const CLAUDE: &str = "/v1/projects/test-project/locations/us-central1/publishers/anthropic/models/claude-sonnet-4@20250514";

/// A service-account file whose token endpoint is the mock's; removed on drop.
struct KeyFile(std::path::PathBuf);

impl KeyFile {
    fn new(up: &MockUpstream) -> KeyFile {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "modelgate-vertex-test-{}-{}.json",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(
            &p,
            service_account_json(&format!("{}{TOKEN_PATH}", up.url())),
        )
        .unwrap();
        KeyFile(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn config(up: &MockUpstream, key: &KeyFile) -> String {
    format!(
        r#"
models:
  - name: flash
    provider: vertex
    model: gemini-2.5-flash
    project: test-project
    base_url: {url}
    credentials_file: {key}
    retry: {{ max_attempts: 1 }}
  - name: sonnet
    provider: vertex
    model: claude-sonnet-4@20250514
    project: test-project
    location: us-central1
    base_url: {url}
    credentials_file: {key}
    retry: {{ max_attempts: 1 }}
"#,
        url = up.url(),
        key = key.path()
    )
}

fn hi(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn bearer(up: &MockUpstream) -> String {
    up.last().header("authorization").unwrap()
}

#[tokio::test]
async fn gemini_on_vertex_with_a_service_account_token_fetched_once() {
    let up = MockUpstream::start().await;
    let key = KeyFile::new(&up);
    let gw = Gateway::start(&config(&up, &key), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "flash", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"}
        ], "max_tokens": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from Gemini.");
    assert_eq!(v["usage"]["prompt_tokens"], 10);
    let rec = up.last();
    assert_eq!(rec.path, format!("{GEM}:generateContent"));
    assert_eq!(rec.query, "");
    assert!(rec.header("x-goog-api-key").is_none());
    let first = bearer(&up);
    assert!(first.starts_with("Bearer ya29.mock-"), "{first}");
    let sent = rec.json();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 50);

    // Streamed, with the same (cached) token.
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "flash", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(stream_text(&data), "Hello from Gemini.");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let rec = up.last();
    assert_eq!(rec.path, format!("{GEM}:streamGenerateContent"));
    assert_eq!(rec.query, "alt=sse");
    assert_eq!(bearer(&up), first);
    assert_eq!(up.token_requests(), 1, "one token for both calls");
}

#[tokio::test]
async fn claude_on_vertex_uses_raw_predict_with_the_vertex_version() {
    let up = MockUpstream::start().await;
    let key = KeyFile::new(&up);
    let gw = Gateway::start(&config(&up, &key), &[]).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&hi("sonnet"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from Claude.");
    let rec = up.last();
    assert_eq!(rec.path, format!("{CLAUDE}:rawPredict"));
    let sent = rec.json();
    assert_eq!(sent["anthropic_version"], VERTEX_ANTHROPIC_VERSION);
    assert!(sent.get("model").is_none(), "{sent}");
    assert!(rec.header("anthropic-version").is_none());
    assert!(rec.header("x-api-key").is_none());
    assert!(bearer(&up).starts_with("Bearer ya29.mock-"));

    let r = gw
        .post("/v1/chat/completions")
        .json(
            &json!({"model": "sonnet", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(stream_text(&data), "Hello from Claude.");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let rec = up.last();
    assert_eq!(rec.path, format!("{CLAUDE}:streamRawPredict"));
    assert_eq!(rec.json()["stream"], true);
    assert_eq!(up.token_requests(), 1);
}

#[tokio::test]
async fn the_anthropic_front_door_passes_claude_on_vertex_through_natively() {
    let up = MockUpstream::start().await;
    let key = KeyFile::new(&up);
    let gw = Gateway::start(&config(&up, &key), &[]).await;
    let mut canned = modelgate_testkit::anthropic_message("Natively.");
    canned["content"].as_array_mut().unwrap().insert(
        0,
        json!({"type": "thinking", "thinking": "Hm.", "signature": "Sig0=="}),
    );
    canned["future_field"] = json!({"kept": true});
    up.push(&format!("{CLAUDE}:rawPredict"), Reply::json(canned.clone()));
    let request = json!({
        "model": "sonnet", "max_tokens": 2048,
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
        .header("anthropic-beta", "context-1m-2025-08-07")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, canned, "the reply passes through unchanged");
    let sent = up.last();
    assert_eq!(sent.path, format!("{CLAUDE}:rawPredict"));
    // The body as written, minus `model` (in the URL), plus Vertex's version.
    let mut expected = request.clone();
    expected.as_object_mut().unwrap().remove("model");
    expected["anthropic_version"] = json!(VERTEX_ANTHROPIC_VERSION);
    assert_eq!(sent.json(), expected);
    assert_eq!(
        sent.header("anthropic-beta").as_deref(),
        Some("context-1m-2025-08-07")
    );
    assert!(sent.header("x-api-key").is_none() && sent.header("anthropic-version").is_none());
    assert!(bearer(&up).starts_with("Bearer ya29.mock-"));
    let rec = gw.record(&rid).await;
    assert_eq!(rec.provider.as_deref(), Some("vertex"));
    assert_eq!((rec.input_tokens, rec.output_tokens), (16, 5)); // 12 + 4 read from the cache
    assert!(
        rec.cost_nanos.is_some(),
        "Claude on Vertex is in the catalog"
    );

    // Streams pass through event by event, split anywhere.
    let upstream_events = modelgate_testkit::anthropic_stream(&["Hel", "lo"]);
    up.push(
        &format!("{CLAUDE}:streamRawPredict"),
        Reply::sse(upstream_events.clone(), modelgate_testkit::Split::Awkward),
    );
    let r = gw
        .post("/v1/messages")
        .json(&json!({"model": "sonnet", "max_tokens": 50, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(
        named_events(&r.text().await.unwrap()),
        named_events(&upstream_events.concat())
    );
    let sent = up.last();
    assert_eq!(sent.path, format!("{CLAUDE}:streamRawPredict"));
    assert_eq!(sent.json()["stream"], true);
    let rec = gw.record(&rid).await;
    assert_eq!((rec.input_tokens, rec.output_tokens), (12, 2));

    // Vertex's errors reach the client in Anthropic's envelope.
    up.push(
        &format!("{CLAUDE}:rawPredict"),
        Reply::error(
            429,
            gemini_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for aiplatform.googleapis.com",
            ),
        ),
    );
    let r = gw
        .post("/v1/messages")
        .json(&json!({"model": "sonnet", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "rate_limit_error");

    // Token counting asks Vertex's count-tokens model, with the model in the body.
    let r = gw
        .post("/v1/messages/count_tokens")
        .json(&json!({"model": "sonnet", "messages": [{"role": "user", "content": "How many tokens is this?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-modelgate-estimated").is_none());
    let v: Value = r.json().await.unwrap();
    assert!(v["input_tokens"].as_u64().unwrap() > 0, "{v}");
    let sent = up.last();
    assert_eq!(
        sent.path,
        "/v1/projects/test-project/locations/us-central1/publishers/anthropic/models/count-tokens:rawPredict"
    );
    assert_eq!(sent.json()["model"], "claude-sonnet-4@20250514");
    assert_eq!(sent.json()["anthropic_version"], VERTEX_ANTHROPIC_VERSION);
    assert_eq!(up.token_requests(), 1);
}

#[tokio::test]
async fn claude_on_vertex_passthrough_carries_images_parallel_tools_streamed_input_and_structured_output()
 {
    let up = MockUpstream::start().await;
    let key = KeyFile::new(&up);
    let gw = Gateway::start(&config(&up, &key), &[]).await;
    let tool = json!({"name": "get_weather", "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}});
    let mut canned =
        modelgate_testkit::anthropic_tool_message("get_weather", json!({"city": "Paris"}));
    canned["content"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}}));
    up.push(&format!("{CLAUDE}:rawPredict"), Reply::json(canned.clone()));
    let request = json!({
        "model": "sonnet", "max_tokens": 512, "tools": [tool],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": false},
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "text", "text": "Weather where this was taken, and in Rome?"}
            ]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "Rome"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "Snow"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "Sun"}
            ]}
        ],
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"summary": {"type": "string"}}}}}
    });
    let r = gw.post("/v1/messages").json(&request).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        canned,
        "both calls come back as sent"
    );
    let mut expected = request.clone();
    expected.as_object_mut().unwrap().remove("model");
    expected["anthropic_version"] = json!(VERTEX_ANTHROPIC_VERSION);
    assert_eq!(
        up.last().json(),
        expected,
        "image, tools, tool turns and schema as written"
    );

    // A streamed call's input arrives as input_json_delta pieces, unchanged.
    let upstream_events =
        modelgate_testkit::anthropic_tool_stream("get_weather", &["{\"ci", "ty\": \"Paris\"}"]);
    up.push(
        &format!("{CLAUDE}:streamRawPredict"),
        Reply::sse(upstream_events.clone(), modelgate_testkit::Split::Awkward),
    );
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let r = gw
        .post("/v1/messages")
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = named_events(&r.text().await.unwrap());
    assert_eq!(got, named_events(&upstream_events.concat()));
    let input: String = got
        .iter()
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(input, "{\"city\": \"Paris\"}");
}

#[tokio::test]
async fn tokens_are_refreshed_once_they_expire() {
    let up = MockUpstream::start().await;
    // Within the 60 s refresh margin: every token is stale as soon as it is
    // issued, so each call needs a new one.
    up.set_token_expires_in(60);
    let key = KeyFile::new(&up);
    let gw = Gateway::start(&config(&up, &key), &[]).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let r = gw
            .post("/v1/chat/completions")
            .json(&hi("flash"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        seen.push(bearer(&up));
    }
    assert_eq!(up.token_requests(), 3);
    seen.dedup();
    assert_eq!(seen.len(), 3, "a new token each time: {seen:?}");

    // A token that lives 61 s goes stale one second after it was issued:
    // reused at once, replaced after (bounded polling, no fixed sleep).
    let up = MockUpstream::start().await;
    up.set_token_expires_in(61);
    let key = KeyFile::new(&up);
    let gw = Gateway::start(&config(&up, &key), &[]).await;
    let ask = || gw.post("/v1/chat/completions").json(&hi("flash")).send();
    assert_eq!(ask().await.unwrap().status(), 200);
    assert_eq!(ask().await.unwrap().status(), 200);
    assert_eq!(up.token_requests(), 1, "reused while fresh");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while up.token_requests() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(ask().await.unwrap().status(), 200);
    }
    assert_eq!(up.token_requests(), 2, "refreshed after expiry");
}

#[tokio::test]
async fn a_fixed_access_token_and_errors() {
    let up = MockUpstream::start().await;
    up.accept_vertex_token("ya29.fixed-token");
    let yaml = format!(
        r#"
models:
  - name: flash
    provider: vertex
    model: gemini-2.5-flash
    project: test-project
    base_url: {url}
    access_token: ${{VERTEX_TOKEN}}
    retry: {{ max_attempts: 1 }}
  - name: bad
    provider: vertex
    model: gemini-2.5-flash
    project: test-project
    base_url: {url}
    access_token: ya29.wrong-token
    retry: {{ max_attempts: 1 }}
"#,
        url = up.url()
    );
    let gw = Gateway::start(&yaml, &[("VERTEX_TOKEN", "ya29.fixed-token")]).await;
    let ask = |m: &'static str| gw.post("/v1/chat/completions").json(&hi(m)).send();
    let r = ask("flash").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(bearer(&up), "Bearer ya29.fixed-token");
    assert_eq!(up.token_requests(), 0);

    // A refused token: a credentials failure, nothing of the token shown.
    let r = ask("bad").await.unwrap();
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    assert!(!text.contains("wrong-token"), "{text}");

    // Bad requests and rate limits keep their meaning.
    up.push(
        &format!("{GEM}:generateContent"),
        Reply::error(
            400,
            gemini_error(400, "INVALID_ARGUMENT", "Unknown name \"foo\""),
        ),
    );
    let r = ask("flash").await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("vertex: "),
        "{v}"
    );

    up.push(
        &format!("{GEM}:generateContent"),
        Reply::error(
            429,
            gemini_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for aiplatform.googleapis.com/generate_content_requests_per_minute",
            ),
        ),
    );
    let r = ask("flash").await.unwrap();
    assert_eq!(r.status(), 429);
    // A token endpoint that refuses the key: a credentials failure (502).
    let up2 = MockUpstream::start().await;
    up2.push(
        TOKEN_PATH,
        Reply::error(
            400,
            json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
        ),
    );
    let key = KeyFile::new(&up2);
    let gw2 = Gateway::start(&config(&up2, &key), &[]).await;
    let r = gw2
        .post("/v1/chat/completions")
        .json(&hi("flash"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    assert!(text.contains("token endpoint refused"), "{text}");
    assert_eq!(up2.count(&format!("{GEM}:generateContent")), 0);
}

#[tokio::test]
async fn authorized_user_files_and_a_refused_token_is_replaced() {
    let up = MockUpstream::start().await;
    let p = std::env::temp_dir().join(format!("modelgate-vertex-user-{}.json", std::process::id()));
    std::fs::write(
        &p,
        json!({"type": "authorized_user", "client_id": "cid.apps.googleusercontent.com",
               "client_secret": "cs", "refresh_token": "1//rt",
               "token_uri": format!("{}{TOKEN_PATH}", up.url())})
        .to_string(),
    )
    .unwrap();
    let key = KeyFile(p);
    let gw = Gateway::start(&config(&up, &key), &[]).await;
    let ask = || gw.post("/v1/chat/completions").json(&hi("flash")).send();
    assert_eq!(ask().await.unwrap().status(), 200);
    let token_req = up
        .requests()
        .into_iter()
        .find(|r| r.path == TOKEN_PATH)
        .unwrap();
    let form = String::from_utf8_lossy(&token_req.body).into_owned();
    assert!(form.contains("grant_type=refresh_token"), "{form}");
    assert!(form.contains("refresh_token=1%2F%2Frt"), "{form}");
    let first = bearer(&up);

    // Vertex refuses the cached token (revoked): this call fails, the token
    // is forgotten, and the next call gets a new one.
    up.push(
        &format!("{GEM}:generateContent"),
        Reply::error(
            401,
            gemini_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
            ),
        ),
    );
    assert_eq!(ask().await.unwrap().status(), 502);
    assert_eq!(ask().await.unwrap().status(), 200);
    assert_eq!(up.token_requests(), 2);
    assert_ne!(bearer(&up), first);
}

#[tokio::test]
async fn passthrough_carries_the_service_account_token() {
    let up = MockUpstream::start().await;
    let key = KeyFile::new(&up);
    let count = format!("{GEM}:countTokens");
    up.push(&count, Reply::json(json!({"totalTokens": 3})));
    let gw = Gateway::start(
        &config(&up, &key),
        &[("MODELGATE_MASTER_KEY", "mg-master-vx")],
    )
    .await;
    let r = gw
        .post(&format!("/passthrough/flash{count}"))
        .bearer_auth("mg-master-vx")
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["totalTokens"], 3);
    let sent = up.last();
    assert_eq!(sent.path, count);
    let auth = sent.header("authorization").unwrap();
    assert!(auth.starts_with("Bearer ya29.mock-"), "{auth}");
    assert_eq!(up.token_requests(), 1);
}

#[tokio::test]
async fn the_metadata_server_supplies_tokens_when_no_file_is_configured() {
    let up = MockUpstream::start().await;
    let token_path = "/computeMetadata/v1/instance/service-accounts/default/token";
    up.push(
        token_path,
        Reply::json(json!({"access_token": "ya29.from-metadata", "expires_in": 3599, "token_type": "Bearer"})),
    );
    up.accept_vertex_token("ya29.from-metadata");
    let yaml = format!(
        r#"
models:
  - name: flash
    provider: vertex
    model: gemini-2.5-flash
    project: test-project
    base_url: {url}
    retry: {{ max_attempts: 1 }}
"#,
        url = up.url()
    );
    let host = up.url().trim_start_matches("http://").to_owned();
    let gw = Gateway::start(&yaml, &[("GCE_METADATA_HOST", host.as_str())]).await;
    for _ in 0..2 {
        let r = gw
            .post("/v1/chat/completions")
            .json(&json!({"model": "flash", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let asked: Vec<_> = up
        .requests()
        .into_iter()
        .filter(|r| r.path == token_path)
        .collect();
    assert_eq!(asked.len(), 1, "the token is cached");
    assert_eq!(asked[0].method, "GET");
    assert_eq!(
        asked[0].header("metadata-flavor").as_deref(),
        Some("Google")
    );
    assert_eq!(
        up.last().header("authorization").as_deref(),
        Some("Bearer ya29.from-metadata")
    );
}
