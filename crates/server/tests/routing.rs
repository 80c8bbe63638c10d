//! Routing and resilience against fault-injecting mock upstreams.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Gateway, sse_data, stream_text};
use futures_util::StreamExt;
use modelgate_testkit::{End, Fault, Faults, MockUpstream, Reply, Split, openai_stream};
use serde_json::{Value, json};

const CHAT: &str = "/v1/chat/completions";

fn two(a: &MockUpstream, b: &MockUpstream, alias_extra: &str, router: &str) -> String {
    format!(
        r#"
deployments:
  - {{ name: a, provider: openai, model: gpt-a, base_url: "{}/v1", api_key: ka, tags: [eu], timeouts: {{ request_ms: 300, first_token_ms: 300, idle_ms: 1000 }} }}
  - {{ name: b, provider: openai, model: gpt-b, base_url: "{}/v1", api_key: kb, priority: 1, tags: [us], timeouts: {{ request_ms: 300, first_token_ms: 300, idle_ms: 1000 }} }}
models:
  - name: chat
    deployments: [a, b]
{alias_extra}
{router}
"#,
        a.url(),
        b.url()
    )
}

fn body(stream: bool) -> Value {
    json!({"model": "chat", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_faults_on_one_provider_barely_show() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    a.set_faults(Some(Faults::new(
        0.3,
        vec![
            Fault::Status500,
            Fault::Status503,
            Fault::RateLimited(1),
            Fault::Reset,
            Fault::Stall,
        ],
        42,
    )));
    let gw = Gateway::start(
        &two(
            &a,
            &b,
            "    strategy: weighted\n    retry: { max_attempts: 3, backoff_ms: 1 }",
            "",
        ),
        &[],
    )
    .await;
    let client = Gateway::client();
    let n = 10_000usize;
    let url = format!("{}{CHAT}", gw.url);
    let results: Vec<(u16, u32)> = futures_util::stream::iter(0..n)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let r = client.post(&url).json(&body(false)).send().await.unwrap();
                let attempts: u32 = r.headers()["x-modelgate-attempts"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                (r.status().as_u16(), attempts)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let attempts: u32 = results.iter().map(|(_, a)| a).sum();
    let upstream = a.count(CHAT) + b.count(CHAT);
    let success = ok as f64 / n as f64;
    let per_request = upstream as f64 / n as f64;
    println!(
        "success {success:.4}, upstream attempts per request {per_request:.3} (header sum {attempts})"
    );
    assert!(success >= 0.999, "success rate {success}");
    assert!(per_request <= 1.3, "attempts per request {per_request}");
}

#[tokio::test]
async fn breaker_opens_probes_once_per_cooldown_and_recovers() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    a.set_faults(Some(Faults::new(1.0, vec![Fault::Status500], 1)));
    let gw = Gateway::start(
        &two(
            &a,
            &b,
            "    retry: { max_attempts: 2, backoff_ms: 1 }",
            "router: { breaker_consecutive_failures: 3, breaker_cooldown_ms: 300 }",
        ),
        &[],
    )
    .await;
    let ask = || gw.post(CHAT).json(&body(false)).send();
    // Priority sends everything to A first; each failure is rescued by B.
    let first = std::time::Instant::now();
    for _ in 0..10 {
        assert_eq!(ask().await.unwrap().status(), 200);
    }
    // The breaker opens after 3 consecutive failures; on a slow machine a
    // cooldown may pass during these requests, allowing one probe per cooldown.
    let allowed_probes = (first.elapsed().as_millis() / 300) as usize;
    let seen = a.count(CHAT);
    assert!(
        (3..=3 + allowed_probes).contains(&seen),
        "breaker opens after 3 consecutive failures: A saw {seen} in {:?}",
        first.elapsed()
    );
    // While open, A sees nothing; after each cooldown exactly one probe.
    let started = std::time::Instant::now();
    let mut requests = 0;
    while a.count(CHAT) < seen + 2 && started.elapsed() < Duration::from_secs(5) {
        assert_eq!(ask().await.unwrap().status(), 200);
        requests += 1;
    }
    let elapsed = started.elapsed();
    let probes = a.count(CHAT) - seen;
    let cooldowns = (elapsed.as_millis() / 300) as usize;
    assert!(
        probes <= cooldowns + 1,
        "{probes} probes in {elapsed:?} over {requests} requests"
    );
    // A recovers: the next probe closes the breaker and A takes traffic again.
    a.set_faults(None);
    let before = a.count(CHAT);
    let started = std::time::Instant::now();
    let mut served_by_a = 0;
    while served_by_a < 3 && started.elapsed() < Duration::from_secs(5) {
        let r = ask().await.unwrap();
        if r.headers()["x-modelgate-deployment"] == "a" {
            served_by_a += 1;
        }
    }
    assert_eq!(
        served_by_a,
        3,
        "A rejoined ({} requests reached it)",
        a.count(CHAT) - before
    );
}

#[tokio::test]
async fn retry_after_keeps_requests_away_until_it_elapses() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    a.push(
        CHAT,
        Reply::Json {
            status: 429,
            body: json!({"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}),
            headers: vec![("retry-after".into(), "30".into())],
        },
    );
    let gw = Gateway::start(&two(&a, &b, "", ""), &[]).await;
    for _ in 0..20 {
        let r = gw.post(CHAT).json(&body(false)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-modelgate-deployment"], "b");
    }
    assert_eq!(a.count(CHAT), 1, "no request to A before its Retry-After");
}

#[tokio::test]
async fn non_retryable_errors_are_not_retried() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let gw = Gateway::start(&two(&a, &b, "", ""), &[]).await;
    for (status, body_json) in [
        (
            400,
            json!({"error": {"message": "bad", "type": "invalid_request_error", "code": "invalid_value"}}),
        ),
        (
            401,
            json!({"error": {"message": "bad key", "type": "invalid_request_error", "code": "invalid_api_key"}}),
        ),
        (
            403,
            json!({"error": {"message": "no", "type": "permission_error"}}),
        ),
        (
            404,
            json!({"error": {"message": "no model", "type": "invalid_request_error", "code": "model_not_found"}}),
        ),
    ] {
        a.push(CHAT, Reply::error(status, body_json));
        let r = gw.post(CHAT).json(&body(false)).send().await.unwrap();
        assert_ne!(r.status(), 200, "{status}");
        assert_eq!(r.headers()["x-modelgate-attempts"], "1", "{status}");
    }
    assert_eq!(b.count(CHAT), 0);
}

#[tokio::test]
async fn retry_budget_bounds_amplification_on_a_lone_failing_deployment() {
    let a = MockUpstream::start().await;
    a.set_faults(Some(Faults::new(1.0, vec![Fault::Status500], 3)));
    let yaml = format!(
        r#"
models:
  - name: lone
    provider: openai
    model: gpt
    base_url: "{}/v1"
    api_key: k
    retry: {{ max_attempts: 5, backoff_ms: 1, max_backoff_ms: 2 }}
router: {{ retry_budget_ratio: 0.2, retry_budget_min_per_second: 0, breaker_consecutive_failures: 1000, breaker_error_rate: 1.0, breaker_window: 1000 }}
"#,
        a.url()
    );
    let gw = Gateway::start(&yaml, &[]).await;
    for _ in 0..100 {
        let r = gw
            .post(CHAT)
            .json(&json!({"model": "lone", "messages": [{"role": "user", "content": "x"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502);
    }
    let total = a.count(CHAT);
    assert!(total <= 120, "100 requests made {total} upstream attempts");
    assert!(total > 100, "some retries are allowed: {total}");
}

async fn stream_via(gw: &Gateway) -> (Vec<String>, reqwest::header::HeaderMap) {
    let r = gw.post(CHAT).json(&body(true)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let headers = r.headers().clone();
    (sse_data(&r.text().await.unwrap()), headers)
}

fn role_chunks(data: &[String]) -> usize {
    data.iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|v| v["choices"][0]["delta"]["role"].is_string())
        .count()
}

#[tokio::test]
async fn streams_fail_over_transparently_before_first_content() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let gw = Gateway::start(&two(&a, &b, "    retry: { backoff_ms: 1 }", ""), &[]).await;
    let mut in_band_error = openai_stream(&[], false);
    in_band_error.truncate(1);
    in_band_error.push(
        "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n".into(),
    );
    let cases = vec![
        (
            "http error",
            Reply::error(
                500,
                json!({"error": {"message": "boom", "type": "server_error"}}),
            ),
        ),
        (
            "in-band error first",
            Reply::sse(in_band_error, Split::Awkward),
        ),
        (
            "empty stream",
            Reply::sse(vec!["data: [DONE]\n\n".into()], Split::Events),
        ),
        (
            "stall past first-token timeout",
            Reply::Delayed(
                Duration::from_secs(5),
                Box::new(Reply::sse(openai_stream(&["late"], false), Split::Events)),
            ),
        ),
    ];
    for (i, (name, fault)) in cases.into_iter().enumerate() {
        a.push(CHAT, fault);
        let (data, headers) = stream_via(&gw).await;
        assert_eq!(stream_text(&data), "Hello from upstream.", "{name}");
        assert_eq!(role_chunks(&data), 1, "{name}: one role chunk");
        assert_eq!(data.last().unwrap(), "[DONE]", "{name}");
        assert_eq!(headers["x-modelgate-deployment"], "b", "{name}");
        assert_eq!(headers["x-modelgate-attempts"], "2", "{name}");
        assert_eq!(a.count(CHAT), i + 1);
        assert_eq!(b.count(CHAT), i + 1);
    }
}

#[tokio::test]
async fn mid_stream_failure_is_a_terminal_error_and_marks_the_record() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let mut events = openai_stream(&["partial", " more", " never"], false);
    events.truncate(4);
    // Gaps let the content reach the gateway before the reset.
    a.push(
        CHAT,
        Reply::Sse {
            events,
            split: Split::Events,
            gap: Duration::from_millis(30),
            end: End::Reset,
        },
    );
    let gw = Gateway::start(&two(&a, &b, "", ""), &[]).await;
    let r = gw.post(CHAT).json(&body(true)).send().await.unwrap();
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let data = sse_data(&r.text().await.unwrap());
    assert!(stream_text(&data).starts_with("partial"));
    assert!(data.last().unwrap().contains("\"error\""));
    assert!(!data.iter().any(|d| d == "[DONE]"));
    assert_eq!(b.count(CHAT), 0, "no silent switch after content");
    let rec = gw.record(&rid).await;
    assert!(rec.truncated);
    assert_eq!(rec.error_class.as_deref(), Some("stream_interrupted"));
}

#[tokio::test]
async fn hedge_wins_over_a_slow_first_token_and_the_loser_is_aborted() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    a.push(
        CHAT,
        Reply::Delayed(
            Duration::from_millis(1500),
            Box::new(Reply::sse(openai_stream(&["slow"], false), Split::Events)),
        ),
    );
    let yaml = two(&a, &b, "    hedge: { after_ms: 100, max_share: 1.0 }", "")
        .replace("first_token_ms: 300", "first_token_ms: 5000");
    let gw = Gateway::start(&yaml, &[]).await;
    let r = gw.post(CHAT).json(&body(true)).send().await.unwrap();
    assert_eq!(r.headers()["x-modelgate-deployment"], "b");
    assert_eq!(r.headers()["x-modelgate-attempts"], "2");
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(stream_text(&data), "Hello from upstream.");
    assert_eq!(
        a.wait_cancelled(1, Duration::from_secs(5)).await,
        1,
        "the slow attempt was aborted"
    );
    let rec = gw.record(&rid).await;
    let attempts: Value = serde_json::from_str(rec.attempts.as_deref().unwrap()).unwrap();
    assert_eq!(attempts.as_array().unwrap().len(), 2);
    assert!(rec.attempts.unwrap().contains("\"hedge\":true"));
}

#[tokio::test]
async fn cross_provider_fallback_answers_in_openai_format() {
    let a = MockUpstream::start().await;
    let claude = MockUpstream::start().await;
    a.set_faults(Some(Faults::new(1.0, vec![Fault::Status503], 9)));
    let yaml = format!(
        r#"
models:
  - name: gpt
    provider: openai
    model: gpt-4o
    base_url: "{}/v1"
    api_key: k
    retry: {{ max_attempts: 2, backoff_ms: 1 }}
    fallbacks: {{ general: [claude] }}
  - name: claude
    provider: anthropic
    model: claude-sonnet-4-5
    base_url: "{}"
    api_key: k
"#,
        a.url(),
        claude.url()
    );
    let gw = Gateway::start(&yaml, &[]).await;
    let r = gw
        .post(CHAT)
        .json(&json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-modelgate-deployment"], "claude");
    assert_eq!(r.headers()["x-modelgate-attempts"], "3");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from Claude.");
    let r = gw
        .post(CHAT)
        .json(&json!({"model": "gpt", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(stream_text(&data), "Hello from Claude.");
    assert_eq!(role_chunks(&data), 1);
    assert_eq!(data.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn context_window_and_content_policy_fallbacks() {
    let a = MockUpstream::start().await;
    let yaml = format!(
        r#"
models:
  - name: small
    provider: openai
    model: gpt-small
    base_url: "{}/v1"
    api_key: k
    context_window: 50
    fallbacks: {{ context_window: [long], content_policy: [safe] }}
  - {{ name: long, provider: mock, model: "text?words=2" }}
  - {{ name: safe, provider: mock, model: echo }}
"#,
        a.url()
    );
    let gw = Gateway::start(&yaml, &[]).await;
    // Estimated too long: goes straight to `long`, the small model is never called.
    let big = "word ".repeat(400);
    let r = gw
        .post(CHAT)
        .json(&json!({"model": "small", "messages": [{"role": "user", "content": big}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-modelgate-deployment"], "long");
    assert_eq!(a.count(CHAT), 0);
    // The provider says it is too long: same chain.
    a.push(
        CHAT,
        Reply::error(400, json!({"error": {"message": "This model's maximum context length is 50 tokens.", "type": "invalid_request_error", "code": "context_length_exceeded"}})),
    );
    let r = gw
        .post(CHAT)
        .json(&json!({"model": "small", "messages": [{"role": "user", "content": "short"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-modelgate-deployment"], "long");
    // A content filter refusal: the content-policy chain.
    a.push(
        CHAT,
        Reply::error(400, json!({"error": {"message": "The response was filtered due to the prompt triggering content management policy.", "type": "invalid_request_error", "code": "content_filter"}})),
    );
    let r = gw
        .post(CHAT)
        .json(&json!({"model": "small", "messages": [{"role": "user", "content": "edgy"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-modelgate-deployment"], "safe");
}

#[tokio::test]
async fn client_deadline_bounds_the_attempt_loop() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    a.push(CHAT, Reply::Stall);
    b.push(CHAT, Reply::Stall);
    let yaml = two(&a, &b, "", "").replace("request_ms: 300", "request_ms: 10000");
    let gw = Gateway::start(&yaml, &[]).await;
    let started = std::time::Instant::now();
    let r = gw
        .post(CHAT)
        .header("x-modelgate-timeout-ms", "250")
        .json(&body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        b.count(CHAT),
        0,
        "no attempt starts after the client's deadline"
    );
}

#[tokio::test]
async fn tags_select_the_deployments() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let gw = Gateway::start(&two(&a, &b, "", ""), &[]).await;
    let r = gw
        .post(CHAT)
        .header("x-modelgate-tags", "us")
        .json(&body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-modelgate-deployment"], "b");
    let mut with_meta = body(false);
    with_meta["metadata"] = json!({"modelgate_tags": "eu"});
    let r = gw.post(CHAT).json(&with_meta).send().await.unwrap();
    assert_eq!(r.headers()["x-modelgate-deployment"], "a");
    let r = gw
        .post(CHAT)
        .header("x-modelgate-tags", "apac")
        .json(&body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "x-modelgate-tags");
}

#[tokio::test]
async fn deployment_rpm_quota_routes_elsewhere_then_429s() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let yaml = two(&a, &b, "", "")
        .replace("tags: [eu],", "tags: [eu], rpm: 2,")
        .replace("tags: [us],", "tags: [us], rpm: 1,");
    let gw = Gateway::start(&yaml, &[]).await;
    let served: Vec<String> = {
        let mut v = vec![];
        for _ in 0..3 {
            let r = gw.post(CHAT).json(&body(false)).send().await.unwrap();
            assert_eq!(r.status(), 200);
            v.push(
                r.headers()["x-modelgate-deployment"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        v
    };
    assert_eq!(served, ["a", "a", "b"]);
    let r = gw.post(CHAT).json(&body(false)).send().await.unwrap();
    assert_eq!(r.status(), 429, "both provider quotas used up this minute");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(a.count(CHAT) + b.count(CHAT), 3);
}

#[tokio::test]
async fn quota_exhausted_is_never_retried() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let gw = Gateway::start(&two(&a, &b, "", ""), &[]).await;
    a.push(
        CHAT,
        Reply::error(
            429,
            json!({"error": {"message": "You exceeded your current quota, please check your plan and billing details.", "type": "insufficient_quota", "code": "insufficient_quota"}}),
        ),
    );
    let r = gw.post(CHAT).json(&body(false)).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-modelgate-attempts"], "1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "insufficient_quota");
    assert_eq!(b.count(CHAT), 0);
}
