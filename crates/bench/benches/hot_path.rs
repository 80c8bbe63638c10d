//! Criterion micro-benchmarks of the pieces every request goes through:
//! decoding the client's body, encoding it per provider (OpenAI's byte
//! splice; Anthropic, Gemini and Bedrock translation), SSE parsing and
//! re-framing of a streamed answer, the virtual key's HMAC check, the rate
//! limiter, the budget hold, the token estimate and the cost.
//!
//! `cargo bench -p modelgate-bench --bench hot_path` (results in
//! `bench/RESULTS.md`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use modelgate_api::anthropic::StreamEvent;
use modelgate_api::openai::ChatRequest;
use modelgate_codec::{anthropic, bedrock, gemini, json, openai, sse};
use modelgate_core::{Price, Usage};
use modelgate_policy::budget::{BudgetCheck, Ledger, Period};
use modelgate_policy::keys;
use modelgate_policy::limiter::{Check, Limiter};

/// A small chat request, as the load tests send it.
const SMALL: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Write one short sentence about benchmarks."}],"max_tokens":64,"temperature":0.2}"#;

/// A request with a tool, a tool turn and an image.
const RICH: &str = r#"{"model":"gpt-4o","messages":[{"role":"system","content":"Use tools."},{"role":"user","content":[{"type":"text","text":"Weather here?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"Snow, -3C"},{"role":"user","content":"And tomorrow?"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"max_tokens":256}"#;

fn codecs(c: &mut Criterion) {
    let small: ChatRequest = serde_json::from_str(SMALL).unwrap();
    let rich: ChatRequest = serde_json::from_str(RICH).unwrap();
    let mut g = c.benchmark_group("request");
    g.bench_function("decode_small", |b| {
        b.iter(|| serde_json::from_slice::<ChatRequest>(black_box(SMALL.as_bytes())).unwrap())
    });
    g.bench_function("decode_rich", |b| {
        b.iter(|| serde_json::from_slice::<ChatRequest>(black_box(RICH.as_bytes())).unwrap())
    });
    g.bench_function("openai_splice_small", |b| {
        b.iter(|| {
            openai::prepare_body(
                black_box(SMALL.as_bytes()),
                None,
                "gpt-4o-mini-2024-07-18",
                false,
                None,
            )
            .unwrap()
        })
    });
    g.bench_function("openai_splice_stream_usage", |b| {
        b.iter(|| {
            openai::prepare_body(
                black_box(SMALL.as_bytes()),
                None,
                "gpt-4o-mini",
                true,
                Some(("max_completion_tokens", 64)),
            )
            .unwrap()
        })
    });
    let a_opts = anthropic::EncodeOptions {
        default_max_tokens: 4096,
        drop_unsupported: false,
    };
    for (name, req) in [("small", &small), ("rich", &rich)] {
        g.bench_function(format!("anthropic_encode_{name}"), |b| {
            b.iter(|| {
                let e = anthropic::encode_request(black_box(req), "claude-sonnet-4-5", &a_opts)
                    .unwrap();
                serde_json::to_vec(&e.request).unwrap()
            })
        });
        g.bench_function(format!("gemini_encode_{name}"), |b| {
            b.iter(|| {
                let e = gemini::encode_request(
                    black_box(req),
                    "gemini-2.5-flash",
                    &gemini::EncodeOptions::default(),
                )
                .unwrap();
                serde_json::to_vec(&e.request).unwrap()
            })
        });
        g.bench_function(format!("bedrock_encode_{name}"), |b| {
            let opts = bedrock::EncodeOptions {
                default_max_tokens: None,
                drop_unsupported: false,
                additional_model_request_fields: None,
            };
            b.iter(|| {
                let e =
                    bedrock::encode_request(black_box(req), "amazon.nova-pro-v1:0", &opts).unwrap();
                serde_json::to_vec(&e.request).unwrap()
            })
        });
    }
    g.bench_function("json_set_members", |b| {
        b.iter(|| json::set_members(black_box(SMALL.as_bytes()), &[("model", br#""x""#)]).unwrap())
    });
    g.finish();
}

/// An OpenAI stream of `n` content chunks, as bytes.
fn openai_stream(n: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..n {
        out.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" word{i}\"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

fn streams(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream");
    let body = openai_stream(64);
    // Upstream bytes arrive in network-sized pieces, not event by event.
    let pieces: Vec<&[u8]> = body.chunks(1400).collect();
    g.bench_function("sse_parse_and_reframe_64_chunks", |b| {
        b.iter(|| {
            let mut p = sse::SseParser::new();
            let mut events = Vec::new();
            let mut out = Vec::with_capacity(body.len());
            for piece in &pieces {
                p.push(black_box(piece), &mut events);
                for e in events.drain(..) {
                    if e.data != "[DONE]" {
                        let _ = openai::peek_chunk(&e.data, "openai");
                    }
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(e.data.as_bytes());
                    out.extend_from_slice(b"\n\n");
                }
            }
            out
        })
    });
    let events: Vec<StreamEvent> = {
        let mut v = vec![
            serde_json::json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"usage":{"input_tokens":12,"output_tokens":1}}}),
            serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ];
        for i in 0..64 {
            v.push(serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":format!(" word{i}")}}));
        }
        v.push(serde_json::json!({"type":"content_block_stop","index":0}));
        v.push(serde_json::json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":64}}));
        v.push(serde_json::json!({"type":"message_stop"}));
        v.into_iter()
            .map(|e| serde_json::from_value(e).unwrap())
            .collect()
    };
    g.bench_function("anthropic_decode_64_chunks_to_openai", |b| {
        b.iter(|| {
            let mut d = anthropic::StreamDecoder::new(anthropic::ResponseContext::default());
            let mut n = 0usize;
            for e in &events {
                for chunk in d.on_event(black_box(e.clone())).unwrap() {
                    n += serde_json::to_vec(&chunk).unwrap().len();
                }
            }
            n
        })
    });
    g.finish();
}

fn governance(c: &mut Criterion) {
    let mut g = c.benchmark_group("governance");
    let secret = b"a-server-side-key-secret-of-32-bytes!";
    let (_, key) = keys::generate().unwrap();
    let stored = keys::hash(secret, &key);
    g.bench_function("key_parse_hash_compare", |b| {
        b.iter(|| {
            let id = keys::parse_id(black_box(&key)).unwrap();
            let h = keys::hash(secret, black_box(&key));
            (
                id.len(),
                keys::constant_time_eq(h.as_bytes(), stored.as_bytes()),
            )
        })
    });
    let limiter = Arc::new(Limiter::default());
    let checks = vec![
        Check {
            scope: "key:abc".into(),
            rpm: Some(1_000_000_000),
            tpm: Some(1_000_000_000_000),
            max_parallel: Some(1_000_000),
        },
        Check {
            scope: "team:t".into(),
            rpm: Some(1_000_000_000),
            tpm: None,
            max_parallel: None,
        },
    ];
    g.bench_function("limiter_admit_and_reconcile_two_scopes", |b| {
        b.iter(|| {
            let now = tokio::time::Instant::now();
            let mut a = limiter.admit(black_box(&checks), 30, now).unwrap();
            a.reconcile(80, now);
        })
    });
    let ledger = Arc::new(Ledger::default());
    let budget = vec![BudgetCheck {
        scope: "key:abc".into(),
        limit: Some(i64::MAX / 4),
        soft: None,
        period: Period::Monthly,
    }];
    g.bench_function("budget_reserve_and_settle", |b| {
        b.iter(|| {
            let r = ledger
                .reserve(black_box(budget.clone()), 1_000_000)
                .unwrap();
            r.settle(400_000)
        })
    });
    let price = Price {
        input_per_mtok: 150_000,
        output_per_mtok: 600_000,
        cached_input_per_mtok: Some(75_000),
        cache_write_per_mtok: None,
        long: None,
    };
    let usage = Usage {
        input_tokens: 1_234,
        output_tokens: 567,
        cache_read_tokens: 200,
        ..Usage::default()
    };
    g.bench_function("cost", |b| b.iter(|| price.cost(black_box(&usage))));
    g.bench_function("token_estimate_small_request", |b| {
        b.iter(|| modelgate_core::estimate_tokens(black_box(SMALL.len())))
    });
    g.finish();
}

criterion_group!(benches, codecs, streams, governance);
criterion_main!(benches);
