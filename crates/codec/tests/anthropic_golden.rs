//! Golden tests for the OpenAI <-> Anthropic codec.
//!
//! Each translation is snapshotted with insta (`tests/snapshots/`). The
//! Anthropic fixtures follow the documented wire format
//! (<https://docs.anthropic.com/en/api/messages>,
//! <https://docs.anthropic.com/en/docs/build-with-claude/streaming>); stream
//! fixtures are raw SSE text run through our own SSE parser first.
// Helpers outside `#[test]` functions are not covered by clippy's
// `allow-unwrap-in-tests`; here a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use insta::assert_json_snapshot;
use modelgate_api::anthropic::{MessagesResponse, StreamEvent};
use modelgate_api::openai::{ChatChunk, ChatRequest};
use modelgate_codec::anthropic::{
    EncodeOptions, Encoded, ResponseContext, StreamDecoder, classify_error, decode_response,
    encode_request,
};
use modelgate_codec::sse::SseParser;
use modelgate_codec::{CodecError, UpstreamFailure};
use modelgate_core::ErrorClass;
use proptest::prelude::*;
use serde_json::{Value, json};

const MODEL: &str = "claude-sonnet-4-5-20250929";

fn opts() -> EncodeOptions {
    EncodeOptions {
        default_max_tokens: 4096,
        drop_unsupported: false,
    }
}

fn req(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn encode(v: Value) -> Encoded {
    encode_request(&req(v), MODEL, &opts()).unwrap()
}

/// The encoded request as it goes on the wire.
fn encode_json(v: Value) -> Value {
    serde_json::to_value(encode(v).request).unwrap()
}

fn encode_err(v: Value) -> CodecError {
    encode_request(&req(v), MODEL, &opts()).unwrap_err()
}

// ---------------------------------------------------------------------------
// encode_request
// ---------------------------------------------------------------------------

#[test]
fn encode_plain() {
    let enc = encode(json!({
        "model": "claude",
        "messages": [{"role": "user", "content": "Hello"}]
    }));
    assert_eq!(enc.context_json_tool, None);
    assert_json_snapshot!("encode_plain", serde_json::to_value(enc.request).unwrap());
}

#[test]
fn encode_system() {
    assert_json_snapshot!(
        "encode_system",
        encode_json(json!({
            "model": "claude",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hi"},
                {"role": "system", "content": "Answer in French."}
            ],
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "user-123"
        }))
    );
}

#[test]
fn encode_developer_and_system_parts() {
    // Parts in any system/developer message switch `system` to blocks.
    assert_json_snapshot!(
        "encode_developer_parts",
        encode_json(json!({
            "model": "claude",
            "messages": [
                {"role": "developer", "content": "Be precise."},
                {"role": "system", "content": [
                    {"type": "text", "text": "Long shared context", "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": "More rules"}
                ]},
                {"role": "user", "content": "Hi"}
            ]
        }))
    );
    assert_json_snapshot!(
        "encode_developer_text",
        encode_json(json!({
            "model": "claude",
            "messages": [
                {"role": "developer", "content": "Be precise."},
                {"role": "user", "content": "Hi"}
            ]
        }))
    );
}

#[test]
fn encode_multi_turn() {
    assert_json_snapshot!(
        "encode_multi_turn",
        encode_json(json!({
            "model": "claude",
            "messages": [
                {"role": "user", "content": "What is 2+2?", "name": "alice"},
                {"role": "assistant", "content": "4"},
                {"role": "user", "content": "And times 3?"},
                {"role": "user", "content": [{"type": "text", "text": "Show your work."}]}
            ]
        }))
    );
}

#[test]
fn encode_images() {
    assert_json_snapshot!(
        "encode_images",
        encode_json(json!({
            "model": "claude",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Compare these"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}}
            ]}]
        }))
    );
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "strict": true
        }},
        {"type": "function", "function": {"name": "get_time"}}
    ])
}

#[test]
fn encode_tools_and_choices() {
    let base = |extra: Value| {
        let mut r = json!({
            "model": "claude",
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": weather_tools()
        });
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        encode_json(r)
    };
    assert_json_snapshot!("encode_tools", base(json!({})));

    let choice = |extra: Value| base(extra)["tool_choice"].clone();
    assert_eq!(
        choice(json!({"tool_choice": "auto"})),
        json!({"type": "auto"})
    );
    assert_eq!(
        choice(json!({"tool_choice": "required"})),
        json!({"type": "any"})
    );
    assert_eq!(
        choice(json!({"tool_choice": "none"})),
        json!({"type": "none"})
    );
    assert_eq!(
        choice(json!({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}})),
        json!({"type": "tool", "name": "get_weather"})
    );
    // parallel_tool_calls: false
    assert_eq!(
        choice(json!({"parallel_tool_calls": false})),
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        choice(json!({"parallel_tool_calls": false, "tool_choice": "required"})),
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        choice(
            json!({"parallel_tool_calls": false, "tool_choice": {"type": "function", "function": {"name": "get_time"}}})
        ),
        json!({"type": "tool", "name": "get_time", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        choice(json!({"parallel_tool_calls": false, "tool_choice": "none"})),
        json!({"type": "none"})
    );
    assert_eq!(choice(json!({"parallel_tool_calls": true})), Value::Null);
}

#[test]
fn tool_choice_without_tools_is_dropped() {
    let out = encode_json(json!({
        "model": "claude",
        "messages": [{"role": "user", "content": "Hi"}],
        "tool_choice": "none",
        "parallel_tool_calls": false
    }));
    assert!(out.get("tool_choice").is_none());
    assert!(out.get("tools").is_none());
}

#[test]
fn encode_tool_round_trip_with_parallel_results() {
    assert_json_snapshot!(
        "encode_tool_results",
        encode_json(json!({
            "model": "claude",
            "messages": [
                {"role": "user", "content": "Weather and time in Paris?"},
                {"role": "assistant", "content": "Let me check both.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C, cloudy"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "14:05"}]},
                {"role": "user", "content": "Thanks! Summarise."},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_3", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_3", "content": "14:06"}
            ],
            "tools": weather_tools()
        }))
    );
}

#[test]
fn encode_json_schema() {
    let enc = encode(json!({
        "model": "claude",
        "messages": [{"role": "user", "content": "Extract the person"}],
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "person",
            "description": "A person",
            "schema": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name"]},
            "strict": true
        }}
    }));
    assert_eq!(enc.context_json_tool.as_deref(), Some("person"));
    assert_json_snapshot!(
        "encode_json_schema",
        serde_json::to_value(enc.request).unwrap()
    );
}

#[test]
fn encode_json_object() {
    let enc = encode(json!({
        "model": "claude",
        "messages": [{"role": "user", "content": "Give me JSON"}],
        "response_format": {"type": "json_object"},
        "parallel_tool_calls": false
    }));
    assert_eq!(enc.context_json_tool.as_deref(), Some("json_response"));
    assert_json_snapshot!(
        "encode_json_object",
        serde_json::to_value(enc.request).unwrap()
    );

    // `text` is the default and asks for nothing.
    let enc = encode(json!({
        "model": "claude",
        "messages": [{"role": "user", "content": "Hi"}],
        "response_format": {"type": "text"}
    }));
    assert_eq!(enc.context_json_tool, None);
    assert!(enc.request.tools.is_none());
}

#[test]
fn encode_stream_stop_and_limits() {
    assert_json_snapshot!(
        "encode_stream_stop_string",
        encode_json(json!({
            "model": "claude",
            "messages": [{"role": "user", "content": "Count"}],
            "stream": true,
            "stream_options": {"include_usage": true},
            "stop": "END",
            "max_tokens": 100,
            "metadata": {"team": "a"},
            "top_k": 40,
            "store": false,
            "service_tier": "auto"
        }))
    );
    let out = encode_json(json!({
        "model": "claude",
        "messages": [{"role": "user", "content": "Count"}],
        "stream": false,
        "stop": ["a", "b"],
        "max_tokens": 100,
        "max_completion_tokens": 250
    }));
    assert_eq!(out["stop_sequences"], json!(["a", "b"]));
    assert_eq!(out["max_tokens"], json!(250));
    assert!(out.get("stream").is_none());

    let out =
        encode_json(json!({"model": "claude", "messages": [{"role": "user", "content": "x"}]}));
    assert_eq!(out["max_tokens"], json!(4096));
    let out = encode_json(
        json!({"model": "claude", "messages": [{"role": "user", "content": "x"}], "max_tokens": 7}),
    );
    assert_eq!(out["max_tokens"], json!(7));
}

// ---------------------------------------------------------------------------
// encode errors
// ---------------------------------------------------------------------------

fn with(field: &str, value: Value) -> Value {
    let mut r = json!({"model": "claude", "messages": [{"role": "user", "content": "Hi"}]});
    r[field] = value;
    r
}

#[test]
fn unsupported_fields_are_named() {
    let cases = [
        ("n", json!(2)),
        ("seed", json!(7)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("presence_penalty", json!(0.5)),
        ("frequency_penalty", json!(-0.5)),
        ("logit_bias", json!({"50256": -100})),
        ("reasoning_effort", json!("high")),
        ("store", json!(true)),
    ];
    for (field, value) in cases {
        let err = encode_err(with(field, value.clone()));
        assert_eq!(err.param, field, "{field}");
        assert_eq!(
            err.message,
            format!("`{field}` is not supported by provider anthropic")
        );
        // ... and dropped on request.
        let dropped = encode_request(
            &req(with(field, value)),
            MODEL,
            &EncodeOptions {
                drop_unsupported: true,
                ..opts()
            },
        )
        .unwrap();
        let wire = serde_json::to_value(&dropped.request).unwrap();
        assert_eq!(
            wire,
            json!({"model": MODEL, "max_tokens": 4096, "messages": [{"role": "user", "content": "Hi"}]}),
            "{field}"
        );
    }
}

#[test]
fn harmless_defaults_pass() {
    for (field, value) in [
        ("n", json!(1)),
        ("presence_penalty", json!(0.0)),
        ("frequency_penalty", json!(0)),
        ("logit_bias", json!({})),
        ("logprobs", json!(false)),
        ("store", json!(false)),
        ("service_tier", json!("default")),
        ("metadata", json!({"k": "v"})),
        ("stream_options", json!({"include_usage": true})),
    ] {
        encode(with(field, value));
    }
}

#[test]
fn bad_top_k_is_named() {
    let err = encode_err(with("top_k", json!("many")));
    assert_eq!(err.param, "top_k");
}

fn err_param(messages: Value) -> String {
    encode_err(json!({"model": "claude", "messages": messages})).param
}

#[test]
fn message_errors_are_named() {
    assert_eq!(
        err_param(json!([{"role": "user", "content": [
            {"type": "text", "text": "listen"},
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
        ]}])),
        "messages[0].content[1].type"
    );
    assert_eq!(
        err_param(
            json!([{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}])
        ),
        "messages[0].content[0].type"
    );
    assert_eq!(
        err_param(json!([
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
            ]}
        ])),
        "messages[1].tool_calls[1].function.arguments"
    );
    assert_eq!(
        err_param(json!([
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "[1,2]"}}
            ]}
        ])),
        "messages[1].tool_calls[0].function.arguments"
    );
    assert_eq!(
        err_param(json!([
            {"role": "user", "content": "Hi"},
            {"role": "tool", "content": "42"}
        ])),
        "messages[1].tool_call_id"
    );
    assert_eq!(
        err_param(json!([
            {"role": "user", "content": "Hi"},
            {"role": "function", "name": "f", "content": "42"}
        ])),
        "messages[1].role"
    );
    assert_eq!(
        err_param(json!([{"role": "critic", "content": "Hi"}])),
        "messages[0].role"
    );
    assert_eq!(
        err_param(json!([
            {"role": "system", "content": [
                {"type": "text", "text": "rules"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
            ]},
            {"role": "user", "content": "Hi"}
        ])),
        "messages[0].content[1]"
    );
    assert_eq!(
        err_param(json!([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}
        ]}])),
        "messages[0].content[0].image_url.url"
    );
    assert_eq!(
        err_param(json!([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}
        ]}])),
        "messages[0].content[0].image_url.url"
    );
}

#[test]
fn request_level_errors_are_named() {
    let mut r = with("tools", weather_tools());
    r["response_format"] = json!({"type": "json_object"});
    let err = encode_err(r);
    assert_eq!(err.param, "response_format");
    assert!(err.message.contains("tools"), "{}", err.message);

    assert_eq!(
        encode_err(with("response_format", json!({"type": "xml"}))).param,
        "response_format.type"
    );
    assert_eq!(
        encode_err(with(
            "tools",
            json!([{"type": "custom", "custom": {"name": "x"}}])
        ))
        .param,
        "tools[0].type"
    );
    let mut r = with("tools", weather_tools());
    r["tool_choice"] = json!("sometimes");
    assert_eq!(encode_err(r).param, "tool_choice");
}

// ---------------------------------------------------------------------------
// decode_response
// ---------------------------------------------------------------------------

fn ctx() -> ResponseContext {
    ResponseContext {
        created: 1_700_000_000,
        json_tool: None,
        include_usage: false,
    }
}

fn decode(resp: Value, ctx: &ResponseContext) -> Value {
    let resp: MessagesResponse = serde_json::from_value(resp).unwrap();
    let (completion, usage) = decode_response(resp, ctx);
    json!({"completion": completion, "usage": usage})
}

#[test]
fn decode_text() {
    assert_json_snapshot!(
        "decode_text",
        decode(
            json!({
                "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [{"type": "text", "text": "Hi! My name is Claude."}],
                "stop_reason": "end_turn",
                "stop_sequence": null,
                "usage": {"input_tokens": 2095, "output_tokens": 503}
            }),
            &ctx()
        )
    );
}

#[test]
fn decode_tool_use() {
    assert_json_snapshot!(
        "decode_tool_use",
        decode(
            json!({
                "id": "msg_01Aq9w938a90dw8q",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [
                    {"type": "thinking", "thinking": "The user wants the weather.", "signature": "EqQBCgIYAhIM"},
                    {"type": "text", "text": "I'll check the current weather in San Francisco for you."},
                    {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "San Francisco, CA", "unit": "celsius"}}
                ],
                "stop_reason": "tool_use",
                "stop_sequence": null,
                "usage": {"input_tokens": 472, "output_tokens": 89}
            }),
            &ctx()
        )
    );
}

#[test]
fn decode_tool_use_only() {
    let out = decode(
        json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": MODEL,
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Paris"}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 20}
        }),
        &ctx(),
    );
    let msg = &out["completion"]["choices"][0]["message"];
    assert_eq!(msg["content"], Value::Null);
    assert_eq!(msg["tool_calls"][0]["function"]["arguments"], json!("{}"));
    assert_eq!(
        msg["tool_calls"][1]["function"]["arguments"],
        json!("{\"city\":\"Paris\"}")
    );
    assert_eq!(
        out["completion"]["choices"][0]["finish_reason"],
        json!("tool_calls")
    );
}

#[test]
fn decode_json_tool() {
    let ctx = ResponseContext {
        json_tool: Some("person".into()),
        ..ctx()
    };
    assert_json_snapshot!(
        "decode_json_tool",
        decode(
            json!({
                "id": "msg_01JsonTool",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [
                    {"type": "tool_use", "id": "toolu_01", "name": "person", "input": {"name": "Ada", "age": 36}}
                ],
                "stop_reason": "tool_use",
                "stop_sequence": null,
                "usage": {"input_tokens": 120, "output_tokens": 30}
            }),
            &ctx
        )
    );
}

#[test]
fn decode_max_tokens() {
    assert_json_snapshot!(
        "decode_max_tokens",
        decode(
            json!({
                "id": "msg_01MaxTok",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [{"type": "text", "text": "Once upon a time, there"}],
                "stop_reason": "max_tokens",
                "stop_sequence": null,
                "usage": {"input_tokens": 12, "output_tokens": 8}
            }),
            &ctx()
        )
    );
}

#[test]
fn decode_cache_usage() {
    assert_json_snapshot!(
        "decode_cache_usage",
        decode(
            json!({
                "id": "msg_01Cache",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [{"type": "text", "text": "Per the document, yes."}],
                "stop_reason": "stop_sequence",
                "stop_sequence": "###",
                "usage": {
                    "input_tokens": 21,
                    "cache_creation_input_tokens": 188,
                    "cache_read_input_tokens": 1500,
                    "output_tokens": 393,
                    "service_tier": "standard"
                }
            }),
            &ctx()
        )
    );
}

#[test]
fn decode_refusal_and_empty() {
    let out = decode(
        json!({
            "id": "msg_r", "type": "message", "role": "assistant", "model": MODEL,
            "content": [],
            "stop_reason": "refusal",
            "usage": {"input_tokens": 5, "output_tokens": 0}
        }),
        &ctx(),
    );
    assert_eq!(
        out["completion"]["choices"][0]["finish_reason"],
        json!("content_filter")
    );
    assert_eq!(
        out["completion"]["choices"][0]["message"]["content"],
        json!("")
    );
}

// ---------------------------------------------------------------------------
// streams
// ---------------------------------------------------------------------------

/// Parses raw SSE text into Anthropic stream events.
fn events(sse: &str) -> Vec<StreamEvent> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    parser.push(sse.as_bytes(), &mut out);
    parser.finish(&mut out);
    out.into_iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

fn run(sse: &str, ctx: ResponseContext) -> (Vec<ChatChunk>, StreamDecoder) {
    let mut dec = StreamDecoder::new(ctx);
    let mut chunks = Vec::new();
    for ev in events(sse) {
        chunks.extend(dec.on_event(ev).unwrap());
    }
    (chunks, dec)
}

const TEXT_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":10,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", world!"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}

event: message_stop
data: {"type":"message_stop"}

"#;

#[test]
fn stream_text_with_usage() {
    let (chunks, dec) = run(
        TEXT_STREAM,
        ResponseContext {
            include_usage: true,
            ..ctx()
        },
    );
    assert!(dec.is_done());
    let u = dec.usage();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cache_read_tokens),
        (35, 15, 10)
    );
    assert_json_snapshot!("stream_text_with_usage", chunks);
}

#[test]
fn stream_text_without_usage() {
    let (chunks, dec) = run(TEXT_STREAM, ctx());
    assert!(dec.is_done());
    assert!(
        chunks
            .iter()
            .all(|c| c.usage.is_none() && c.choices.len() == 1)
    );
    assert_eq!(
        chunks.last().unwrap().choices[0].finish_reason.as_deref(),
        Some("stop")
    );
    assert_json_snapshot!("stream_text_without_usage", chunks);
}

const TOOL_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants weather; "}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"call get_weather."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Okay, let's check the weather for San Francisco, CA:"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":" \"San Fra"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"ncisco, CA\""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":", \"unit\": \"fahrenheit\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: content_block_start
data: {"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_02Ab","name":"get_time","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":3}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

#[test]
fn stream_thinking_and_tool_calls() {
    let (chunks, dec) = run(
        TOOL_STREAM,
        ResponseContext {
            include_usage: true,
            ..ctx()
        },
    );
    assert!(dec.is_done());
    // Tool call indexes count tool calls, not Anthropic content blocks.
    let indexes: Vec<u32> = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .flat_map(|ch| ch.delta.tool_calls.iter().flatten())
        .map(|t| t.index)
        .collect();
    assert_eq!(indexes, vec![0, 0, 0, 0, 0, 1, 1]);
    let args: String = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .flat_map(|ch| ch.delta.tool_calls.iter().flatten())
        .filter(|t| t.index == 0)
        .filter_map(|t| t.function.as_ref()?.arguments.clone())
        .collect();
    let parsed: Value = serde_json::from_str(&args).unwrap();
    assert_eq!(
        parsed,
        json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
    );
    assert_json_snapshot!("stream_thinking_and_tool_calls", chunks);
}

const JSON_TOOL_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01JsonStream","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":120,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_01","name":"json_response","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"name\": "}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"\"Ada\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":30}}

event: message_stop
data: {"type":"message_stop"}

"#;

#[test]
fn stream_json_tool_becomes_content() {
    let (chunks, _) = run(
        JSON_TOOL_STREAM,
        ResponseContext {
            json_tool: Some("json_response".into()),
            ..ctx()
        },
    );
    assert!(
        chunks
            .iter()
            .all(|c| c.choices.iter().all(|ch| ch.delta.tool_calls.is_none()))
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c.choices[0].delta.content.clone())
        .collect();
    assert_eq!(content, r#"{"name": "Ada"}"#);
    assert_json_snapshot!("stream_json_tool", chunks);
}

#[test]
fn stream_error_mid_stream() {
    let sse = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_err","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Partial"}}

event: error
data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}

"#;
    let mut dec = StreamDecoder::new(ctx());
    let mut chunks = Vec::new();
    let mut failure = None;
    for ev in events(sse) {
        match dec.on_event(ev) {
            Ok(c) => chunks.extend(c),
            Err(f) => failure = Some(f),
        }
    }
    assert_eq!(
        failure,
        Some(UpstreamFailure {
            class: ErrorClass::UpstreamError,
            status: None,
            message: "anthropic: Overloaded".into(),
            upstream_code: Some("overloaded_error".into()),
        })
    );
    assert!(!dec.is_done());
    assert_eq!(dec.usage().input_tokens, 9);
    assert_json_snapshot!("stream_error_prefix", chunks);
}

#[test]
fn stream_error_classes() {
    for (kind, class) in [
        ("rate_limit_error", ErrorClass::UpstreamRateLimited),
        ("invalid_request_error", ErrorClass::UpstreamBadRequest),
        ("api_error", ErrorClass::UpstreamError),
        ("overloaded_error", ErrorClass::UpstreamError),
        ("new_kind_of_error", ErrorClass::UpstreamError),
    ] {
        let ev: StreamEvent = serde_json::from_value(
            json!({"type": "error", "error": {"type": kind, "message": "boom"}}),
        )
        .unwrap();
        let f = StreamDecoder::new(ctx()).on_event(ev).unwrap_err();
        assert_eq!(f.class, class, "{kind}");
        assert_eq!(f.upstream_code.as_deref(), Some(kind));
    }
}

/// The stream and the non-stream decoders agree on the same answer.
#[test]
fn stream_matches_non_stream() {
    let (chunks, dec) = run(TOOL_STREAM, ctx());
    let content: String = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|ch| ch.delta.content.clone())
        .collect();
    let reasoning: String = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|ch| {
            ch.delta
                .extra
                .get("reasoning_content")?
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    let whole = decode(
        json!({
            "id": "msg_014p7gG3wDgGV9EUtLvnow3U", "type": "message", "role": "assistant", "model": MODEL,
            "content": [
                {"type": "thinking", "thinking": "The user wants weather; call get_weather.", "signature": "x"},
                {"type": "text", "text": "Okay, let's check the weather for San Francisco, CA:"},
                {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {"location": "San Francisco, CA", "unit": "fahrenheit"}},
                {"type": "tool_use", "id": "toolu_02Ab", "name": "get_time", "input": {}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 472, "output_tokens": 89}
        }),
        &ctx(),
    );
    let msg = &whole["completion"]["choices"][0]["message"];
    assert_eq!(msg["content"], json!(content));
    assert_eq!(msg["reasoning_content"], json!(reasoning));
    assert_eq!(serde_json::to_value(dec.usage()).unwrap(), whole["usage"]);
}

#[test]
fn stream_tool_without_arguments_gets_empty_object() {
    let evs = [
        json!({"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"c","content":[],"usage":{"input_tokens":1,"output_tokens":1}}}),
        json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"get_time","input":{}}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}),
        json!({"type":"content_block_stop","index":0}),
        json!({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}),
        json!({"type":"message_stop"}),
    ];
    let mut dec = StreamDecoder::new(ctx());
    let mut args = String::new();
    for ev in evs {
        for c in dec.on_event(serde_json::from_value(ev).unwrap()).unwrap() {
            for t in c
                .choices
                .iter()
                .flat_map(|ch| ch.delta.tool_calls.iter().flatten())
            {
                if let Some(a) = t.function.as_ref().and_then(|f| f.arguments.as_ref()) {
                    args.push_str(a);
                }
            }
        }
    }
    assert_eq!(args, "{}");
}

proptest! {
    /// However Anthropic splits a tool input into `input_json_delta`
    /// fragments, the client reassembles the same arguments.
    #[test]
    fn tool_arguments_survive_any_split(cuts in proptest::collection::vec(0usize..60, 0..8)) {
        let args = r#"{"location": "Zürich", "days": [1, 2, 3], "note": "ünïcode"}"#;
        let mut bounds: Vec<usize> = cuts
            .into_iter()
            .map(|c| c.min(args.len()))
            .filter(|c| args.is_char_boundary(*c))
            .collect();
        bounds.push(0);
        bounds.push(args.len());
        bounds.sort_unstable();
        bounds.dedup();

        let mut evs = vec![
            json!({"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"c","content":[],"usage":{"input_tokens":1,"output_tokens":1}}}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}),
        ];
        for w in bounds.windows(2) {
            evs.push(json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json": &args[w[0]..w[1]]}}));
        }
        evs.push(json!({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}));
        evs.push(json!({"type":"message_stop"}));

        let mut dec = StreamDecoder::new(ResponseContext::default());
        let mut got = String::new();
        for ev in evs {
            let ev: StreamEvent = serde_json::from_value(ev).unwrap();
            for c in dec.on_event(ev).unwrap() {
                for ch in &c.choices {
                    for t in ch.delta.tool_calls.iter().flatten() {
                        prop_assert_eq!(t.index, 0);
                        if let Some(a) = t.function.as_ref().and_then(|f| f.arguments.as_ref()) {
                            got.push_str(a);
                        }
                    }
                }
            }
        }
        prop_assert_eq!(got, args);
        prop_assert!(dec.is_done());
    }
}

// ---------------------------------------------------------------------------
// classify_error
// ---------------------------------------------------------------------------

fn envelope(kind: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"type": "error", "error": {"type": kind, "message": message}}))
        .unwrap()
}

#[test]
fn classify_invalid_request() {
    let f = classify_error(
        400,
        &envelope("invalid_request_error", "messages: roles must alternate"),
    );
    assert_eq!(
        f,
        UpstreamFailure {
            class: ErrorClass::UpstreamBadRequest,
            status: Some(400),
            message: "anthropic: messages: roles must alternate".into(),
            upstream_code: Some("invalid_request_error".into()),
        }
    );
}

#[test]
fn classify_auth() {
    let f = classify_error(401, &envelope("authentication_error", "invalid x-api-key"));
    assert_eq!(f.class, ErrorClass::UpstreamAuth);
    assert_eq!(f.status, Some(401));
    assert_eq!(f.message, "anthropic: invalid x-api-key");
    assert_eq!(f.upstream_code.as_deref(), Some("authentication_error"));
}

#[test]
fn classify_rate_limit() {
    let f = classify_error(
        429,
        &envelope(
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        ),
    );
    assert_eq!(f.class, ErrorClass::UpstreamRateLimited);
    assert_eq!(f.upstream_code.as_deref(), Some("rate_limit_error"));
    assert!(f.class.is_retryable());
}

#[test]
fn classify_overloaded() {
    let f = classify_error(529, &envelope("overloaded_error", "Overloaded"));
    assert_eq!(
        f,
        UpstreamFailure {
            class: ErrorClass::UpstreamError,
            status: Some(529),
            message: "anthropic: Overloaded".into(),
            upstream_code: Some("overloaded_error".into()),
        }
    );
    assert!(f.class.is_retryable());
}

#[test]
fn classify_non_json_body_is_not_echoed() {
    let body = b"<html><body>502 Bad Gateway secret-internal-host.corp</body></html>";
    let f = classify_error(500, body);
    assert_eq!(
        f,
        UpstreamFailure {
            class: ErrorClass::UpstreamError,
            status: Some(500),
            message: "anthropic returned HTTP 500".into(),
            upstream_code: None,
        }
    );
    // JSON that is not the envelope is not echoed either.
    let f = classify_error(503, br#"{"detail":"secret-internal-host.corp down"}"#);
    assert_eq!(f.message, "anthropic returned HTTP 503");
}

#[test]
fn classify_long_message_is_cut() {
    let f = classify_error(400, &envelope("invalid_request_error", &"é".repeat(1000)));
    assert!(f.message.len() < 400, "{}", f.message.len());
    assert!(f.message.ends_with('…'));
}

#[test]
fn temperature_above_one_is_rejected_or_clamped() {
    let req: modelgate_api::openai::ChatRequest = serde_json::from_value(serde_json::json!({
        "model": "m", "temperature": 1.5, "messages": [{"role": "user", "content": "hi"}]
    }))
    .unwrap();
    let strict = modelgate_codec::anthropic::EncodeOptions {
        default_max_tokens: 10,
        drop_unsupported: false,
    };
    let err = modelgate_codec::anthropic::encode_request(&req, "claude", &strict).unwrap_err();
    assert_eq!(err.param, "temperature");
    let lenient = modelgate_codec::anthropic::EncodeOptions {
        default_max_tokens: 10,
        drop_unsupported: true,
    };
    let ok = modelgate_codec::anthropic::encode_request(&req, "claude", &lenient).unwrap();
    assert_eq!(ok.request.temperature, Some(1.0));
}

#[test]
fn json_mode_stream_drops_preamble_text() {
    use modelgate_api::anthropic::StreamEvent;
    use modelgate_codec::anthropic::{ResponseContext, StreamDecoder};
    let events = [
        r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"usage":{"input_tokens":5,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":"Sure, here:"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" the JSON"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"json_response","input":{}}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"1}"}}"#,
        r#"{"type":"content_block_stop","index":1}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":7}}"#,
        r#"{"type":"message_stop"}"#,
    ];
    let mut d = StreamDecoder::new(ResponseContext {
        created: 1,
        json_tool: Some("json_response".into()),
        include_usage: false,
    });
    let mut content = String::new();
    let mut finish = None;
    for e in events {
        let ev: StreamEvent = serde_json::from_str(e).unwrap();
        for c in d.on_event(ev).unwrap() {
            for ch in &c.choices {
                content.push_str(ch.delta.content.as_deref().unwrap_or(""));
                assert!(ch.delta.tool_calls.is_none());
                if ch.finish_reason.is_some() {
                    finish = ch.finish_reason.clone();
                }
            }
        }
    }
    assert_eq!(content, r#"{"a":1}"#);
    assert_eq!(finish.as_deref(), Some("stop"));
}
