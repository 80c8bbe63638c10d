//! OpenTelemetry trace export: a local OTLP/HTTP receiver gets one request
//! span and one child span per upstream attempt, with GenAI attributes, and
//! the upstream sees the attempt's span as its parent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Gateway;
use modelgate_testkit::otlp::{Attr, OtlpReceiver};
use modelgate_testkit::{MockUpstream, Reply, Split, openai_stream};
use serde_json::json;

const CHAT: &str = "/v1/chat/completions";

fn config(a: &MockUpstream, b: &MockUpstream, otlp: &OtlpReceiver, tracing_extra: &str) -> String {
    format!(
        r#"
deployments:
  - {{ name: primary, provider: openai, model: gpt-a, base_url: "{}/v1", api_key: ka }}
  - {{ name: backup, provider: openai, model: gpt-b, base_url: "{}/v1", api_key: kb, priority: 1 }}
models:
  - name: chat
    deployments: [primary, backup]
    strategy: priority
    retry: {{ max_attempts: 3, backoff_ms: 1 }}
observability:
  tracing:
    endpoint: "{}"
    headers: {{ x-collector-token: tok-123 }}
    service_name: gw-under-test
{tracing_extra}
"#,
        a.url(),
        b.url(),
        otlp.url()
    )
}

#[tokio::test]
async fn a_retried_request_exports_a_server_span_and_one_client_span_per_attempt() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    let otlp = OtlpReceiver::start().await;
    a.push(
        CHAT,
        Reply::error(
            503,
            json!({"error": {"message": "overloaded", "type": "server_error"}}),
        ),
    );
    let gw = Gateway::start(&config(&a, &b, &otlp, ""), &[]).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let resp = gw
        .post(CHAT)
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let spans = otlp.wait_for_trace(trace, 3).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");

    let root = spans.iter().find(|s| s.kind == 2).expect("a server span");
    assert_eq!(root.name, "POST /v1/chat/completions");
    assert_eq!(root.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    assert_eq!(root.service_name.as_deref(), Some("gw-under-test"));
    assert_eq!(root.str("gen_ai.operation.name"), Some("chat"));
    assert_eq!(root.str("gen_ai.request.model"), Some("chat"));
    assert_eq!(root.str("gen_ai.provider.name"), Some("openai"));
    assert_eq!(
        root.str("gen_ai.response.model"),
        Some("gpt-4o-mini-2024-07-18")
    );
    assert_eq!(root.str("gen_ai.response.id"), Some("chatcmpl-upstream-1"));
    assert_eq!(
        root.attr("gen_ai.response.finish_reasons"),
        Some(&Attr::Array(vec![Attr::Str("stop".into())]))
    );
    assert_eq!(root.int("gen_ai.usage.input_tokens"), Some(9));
    assert_eq!(root.int("gen_ai.usage.output_tokens"), Some(4));
    assert_eq!(root.int("http.response.status_code"), Some(200));
    assert_eq!(root.int("modelgate.attempts"), Some(2));
    assert_eq!(root.str("modelgate.request_id"), Some(rid.as_str()));
    assert_eq!(root.str("modelgate.deployment"), Some("backup"));
    assert_eq!(root.status_code, 0);
    assert!(root.end_ns >= root.start_ns && root.start_ns > 1_600_000_000_000_000_000);

    let mut attempts: Vec<_> = spans.iter().filter(|s| s.kind == 3).collect();
    attempts.sort_by_key(|s| s.int("modelgate.attempt"));
    assert_eq!(attempts.len(), 2);
    for s in &attempts {
        assert_eq!(s.parent_span_id.as_deref(), Some(root.span_id.as_str()));
        assert!(s.start_ns >= root.start_ns && s.end_ns <= root.end_ns + 1_000_000);
        assert_eq!(s.str("server.address"), Some("127.0.0.1"));
        assert!(s.int("server.port").is_some());
    }
    let (failed, won) = (attempts[0], attempts[1]);
    assert_eq!(failed.name, "chat gpt-a");
    assert_eq!(failed.str("modelgate.deployment"), Some("primary"));
    assert_eq!(failed.str("error.type"), Some("upstream_error"));
    assert_eq!(failed.status_code, 2);
    assert_eq!(failed.str("gen_ai.request.model"), Some("gpt-a"));
    assert_eq!(won.name, "chat gpt-b");
    assert_eq!(won.status_code, 0);
    assert_eq!(won.int("gen_ai.usage.output_tokens"), Some(4));
    assert_eq!(
        won.str("gen_ai.response.model"),
        Some("gpt-4o-mini-2024-07-18")
    );

    // Each upstream saw its own attempt span as the parent, in the client's trace.
    let seen_a = a.last().header("traceparent").unwrap();
    let seen_b = b.last().header("traceparent").unwrap();
    assert_eq!(seen_a, format!("00-{trace}-{}-01", failed.span_id));
    assert_eq!(seen_b, format!("00-{trace}-{}-01", won.span_id));
    // The configured export header went to the collector.
    assert!(
        otlp.headers()
            .iter()
            .all(|h| h.get("x-collector-token").unwrap() == "tok-123")
    );
}

#[tokio::test]
async fn a_stream_records_finish_reasons_and_usage_from_its_chunks() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    let otlp = OtlpReceiver::start().await;
    a.push(
        CHAT,
        Reply::sse(openai_stream(&["Hel", "lo"], true), Split::Awkward),
    );
    let gw = Gateway::start(&config(&a, &b, &otlp, ""), &[]).await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let body = gw
        .post(CHAT)
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .json(&json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("[DONE]"));
    let spans = otlp.wait_for_trace(trace, 2).await;
    let root = spans.iter().find(|s| s.kind == 2).unwrap();
    let attempt = spans.iter().find(|s| s.kind == 3).unwrap();
    assert_eq!(root.attr("modelgate.stream"), Some(&Attr::Bool(true)));
    assert_eq!(
        root.attr("gen_ai.response.finish_reasons"),
        Some(&Attr::Array(vec![Attr::Str("stop".into())]))
    );
    assert!(root.int("gen_ai.usage.output_tokens").unwrap() > 0);
    // The streaming attempt lasts until the stream ended.
    assert!(attempt.end_ns + 1_000_000 >= root.end_ns);
}

#[tokio::test]
async fn unsampled_client_traces_and_failures_follow_the_sampling_rules() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    let otlp = OtlpReceiver::start().await;
    let gw = Gateway::start(&config(&a, &b, &otlp, "    sample_ratio: 0"), &[]).await;
    // The client decided not to sample: nothing is exported, and upstream
    // hears the same decision.
    let unsampled = "11111111111111111111111111111111";
    gw.post(CHAT)
        .header("traceparent", format!("00-{unsampled}-2222222222222222-00"))
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert!(a.last().header("traceparent").unwrap().ends_with("-00"));
    // A sampled client trace is followed even at ratio 0 (parent-based) and
    // a 4xx is recorded with its error type but not as a span error.
    let sampled = "33333333333333333333333333333333";
    let resp = gw
        .post(CHAT)
        .header("traceparent", format!("00-{sampled}-4444444444444444-01"))
        .json(&json!({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let spans = otlp.wait_for_trace(sampled, 1).await;
    assert_eq!(spans[0].int("http.response.status_code"), Some(404));
    assert_eq!(spans[0].str("error.type"), Some("not_found"));
    assert_eq!(spans[0].status_code, 0);
    // A trace that starts here at ratio 0 is not recorded.
    gw.post(CHAT)
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let fresh = a.last().header("traceparent").unwrap();
    assert!(fresh.ends_with("-00"), "{fresh}");
    // Flush by checking a later sampled request arrived; nothing of the others did.
    let later = "55555555555555555555555555555555";
    gw.post(CHAT)
        .header("traceparent", format!("00-{later}-6666666666666666-01"))
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    otlp.wait_for_trace(later, 2).await;
    let all = otlp.spans();
    assert!(all.iter().all(|s| s.trace_id != unsampled));
    assert!(
        all.iter()
            .all(|s| s.trace_id == sampled || s.trace_id == later)
    );
}

#[tokio::test]
async fn shutdown_flushes_spans_still_queued() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    let otlp = OtlpReceiver::start().await;
    let mut gw = Gateway::start(&config(&a, &b, &otlp, ""), &[]).await;
    let trace = "77777777777777777777777777777777";
    gw.post(CHAT)
        .header("traceparent", format!("00-{trace}-8888888888888888-01"))
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    gw.begin_shutdown();
    assert!(gw.join().await);
    // No waiting: the drain flushed the export queue before returning.
    let spans: Vec<_> = otlp
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == trace)
        .collect();
    assert_eq!(spans.len(), 2, "{spans:#?}");
}
