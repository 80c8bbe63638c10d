//! Golden tests for the OpenAI <-> Bedrock Converse codec.
//!
//! Each translation is snapshotted with insta (`tests/snapshots/`). The
//! Converse fixtures follow the documented wire format
//! (<https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>,
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html>);
//! stream fixtures are real event-stream frames (built with
//! `eventstream::encode`, CRCs and all) fed through our own decoder in
//! awkward pieces first.
// Helpers outside `#[test]` functions are not covered by clippy's
// `allow-unwrap-in-tests`; here a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use insta::assert_json_snapshot;
use modelgate_api::bedrock::ConverseResponse;
use modelgate_api::openai::{ChatChunk, ChatRequest};
use modelgate_codec::bedrock::{
    CONTEXT_LENGTH_CODE, EncodeOptions, Encoded, ResponseContext, StreamDecoder, classify_error,
    decode_response, encode_request,
};
use modelgate_codec::eventstream::{EventStreamDecoder, Header, HeaderValue, Message, encode};
use modelgate_codec::{CodecError, UpstreamFailure};
use modelgate_core::ErrorClass;
use proptest::prelude::*;
use serde_json::{Value, json};

const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

fn opts() -> EncodeOptions {
    EncodeOptions::default()
}

fn req(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn encode_with(v: Value, o: &EncodeOptions) -> Encoded {
    encode_request(&req(v), MODEL, o).unwrap()
}

fn encode_json(v: Value) -> Value {
    serde_json::to_value(encode_with(v, &opts()).request).unwrap()
}

fn encode_err(v: Value) -> CodecError {
    encode_request(&req(v), MODEL, &opts()).unwrap_err()
}

fn dropping() -> EncodeOptions {
    EncodeOptions {
        drop_unsupported: true,
        ..opts()
    }
}

// ---------------------------------------------------------------------------
// encode_request
// ---------------------------------------------------------------------------

#[test]
fn encode_plain() {
    let enc = encode_with(
        json!({"model": "claude", "messages": [{"role": "user", "content": "Hello"}]}),
        &opts(),
    );
    assert_eq!(enc.model_id, MODEL);
    assert!(!enc.stream);
    assert_eq!(enc.context_json_tool, None);
    assert_eq!(
        enc.url("us-east-1").unwrap(),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    assert_json_snapshot!("encode_plain", serde_json::to_value(enc.request).unwrap());
}

#[test]
fn encode_system_and_multi_turn() {
    let enc = encode_with(
        json!({
            "model": "claude",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [
                    {"type": "text", "text": "Long shared rules", "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": ""}
                ]},
                {"role": "user", "content": "What is 2+2?", "name": "alice"},
                {"role": "assistant", "content": "4"},
                {"role": "user", "content": "And times 3?"},
                {"role": "user", "content": [{"type": "text", "text": "Show your work."}]},
                {"role": "system", "content": "Answer in French."}
            ],
            "temperature": 0.2,
            "top_p": 0.9,
            "max_completion_tokens": 300,
            "max_tokens": 100,
            "stop": ["END", ""],
            "stream": true,
            "stream_options": {"include_usage": true},
            "user": "user-123",
            "metadata": {"team": "a"},
            "store": false,
            "service_tier": "auto"
        }),
        &opts(),
    );
    assert!(enc.stream);
    assert!(enc.url("us-west-2").unwrap().ends_with("/converse-stream"));
    assert_json_snapshot!(
        "encode_system_multi_turn",
        serde_json::to_value(enc.request).unwrap()
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
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg==", "detail": "high"},
                 "cache_control": {"type": "ephemeral"}},
                {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGRg=="}}
            ]}]
        }))
    );
}

#[test]
fn image_urls_bedrock_cannot_take_are_named() {
    let image = |url: &str| {
        json!({"model": "claude", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": url}}
        ]}]})
    };
    for url in [
        "https://example.com/cat.jpg",
        "http://example.com/cat.jpg",
        "data:image/bmp;base64,Qk0=",
        "data:image/png,rawbytes",
        "data:image/png;base64,",
        "ftp://example.com/cat.png",
    ] {
        let err = encode_err(image(url));
        assert_eq!(err.param, "messages[0].content[1].image_url.url", "{url}");
        // Not droppable: the image is content, not a tuning parameter.
        let err = encode_request(&req(image(url)), MODEL, &dropping()).unwrap_err();
        assert_eq!(err.param, "messages[0].content[1].image_url.url", "{url}");
    }
    let err = encode_err(image("https://example.com/cat.jpg"));
    assert!(
        err.message.contains("cannot fetch image URLs"),
        "{}",
        err.message
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
        {"type": "function", "function": {"name": "get_time", "description": ""}}
    ])
}

fn with_tools(extra: Value) -> Value {
    let mut r = json!({
        "model": "claude",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": weather_tools()
    });
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

#[test]
fn encode_tools_and_choices() {
    assert_json_snapshot!("encode_tools", encode_json(with_tools(json!({}))));

    let choice = |extra: Value| encode_json(with_tools(extra))["toolConfig"]["toolChoice"].clone();
    assert_eq!(choice(json!({})), Value::Null);
    assert_eq!(choice(json!({"tool_choice": "auto"})), json!({"auto": {}}));
    assert_eq!(
        choice(json!({"tool_choice": "required"})),
        json!({"any": {}})
    );
    assert_eq!(
        choice(json!({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}})),
        json!({"tool": {"name": "get_weather"}})
    );
    assert_eq!(
        choice(json!({"parallel_tool_calls": true})),
        Value::Null,
        "parallel calls are the default"
    );

    // `none` with no tool history: the tools are withheld.
    let out = encode_json(with_tools(json!({"tool_choice": "none"})));
    assert!(out.get("toolConfig").is_none(), "{out}");
}

#[test]
fn tool_choice_errors_are_named() {
    let err = encode_err(with_tools(
        json!({"tool_choice": {"type": "function", "function": {"name": "get_stock"}}}),
    ));
    assert_eq!(err.param, "tool_choice.function.name");
    assert_eq!(
        encode_err(with_tools(json!({"tool_choice": "sometimes"}))).param,
        "tool_choice"
    );
    assert_eq!(
        encode_err(with_tools(
            json!({"tool_choice": {"type": "custom", "custom": {}}})
        ))
        .param,
        "tool_choice.type"
    );
    let err = encode_err(with_tools(json!({"parallel_tool_calls": false})));
    assert_eq!(err.param, "parallel_tool_calls");
    // ... dropped on request.
    let out = encode_with(
        with_tools(json!({"parallel_tool_calls": false})),
        &dropping(),
    );
    assert!(out.request.tool_config.is_some());
}

#[test]
fn tool_choice_without_tools_is_dropped() {
    let out = encode_json(json!({
        "model": "claude",
        "messages": [{"role": "user", "content": "Hi"}],
        "tool_choice": "none",
        "parallel_tool_calls": false
    }));
    assert!(out.get("toolConfig").is_none());
}

fn tool_history() -> Value {
    json!([
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
        {"role": "tool", "tool_call_id": "call_3", "content": "14:06"},
        {"role": "user", "content": "And now?"}
    ])
}

#[test]
fn encode_tool_round_trip_with_parallel_results() {
    assert_json_snapshot!(
        "encode_tool_results",
        encode_json(json!({
            "model": "claude",
            "messages": tool_history(),
            "tools": weather_tools()
        }))
    );
}

#[test]
fn tool_history_needs_tools() {
    // Converse requires `toolConfig` once the conversation has tool blocks.
    let r = json!({"model": "claude", "messages": tool_history()});
    let err = encode_err(r.clone());
    assert_eq!(err.param, "tools");
    assert_eq!(
        encode_request(&req(r), MODEL, &dropping())
            .unwrap_err()
            .param,
        "tools"
    );

    // `none` cannot be expressed then: rejected, or `auto` when dropping.
    let r = json!({"model": "claude", "messages": tool_history(), "tools": weather_tools(), "tool_choice": "none"});
    assert_eq!(encode_err(r.clone()).param, "tool_choice");
    let out = encode_with(r, &dropping());
    let cfg = out.request.tool_config.unwrap();
    assert_eq!(cfg.tools.len(), 2);
    assert_eq!(cfg.tool_choice, None);
}

#[test]
fn encode_json_schema_natively() {
    let enc = encode_with(
        json!({
            "model": "claude",
            "messages": [{"role": "user", "content": "Extract the person"}],
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "person",
                "description": "A person",
                "schema": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name"], "additionalProperties": false},
                "strict": true
            }}
        }),
        &opts(),
    );
    assert_eq!(enc.context_json_tool, None);
    let wire = serde_json::to_value(&enc.request).unwrap();
    // The schema travels as a JSON string.
    let schema: Value = serde_json::from_str(
        wire["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(schema["required"], json!(["name"]));
    assert_json_snapshot!("encode_json_schema", wire);
}

#[test]
fn encode_json_object_with_forced_tool() {
    let enc = encode_with(
        json!({
            "model": "claude",
            "messages": [{"role": "user", "content": "Give me JSON"}],
            "response_format": {"type": "json_object"},
            "parallel_tool_calls": false
        }),
        &opts(),
    );
    assert_eq!(enc.context_json_tool.as_deref(), Some("json_response"));
    assert_json_snapshot!(
        "encode_json_object",
        serde_json::to_value(enc.request).unwrap()
    );

    let err = encode_err(with_tools(
        json!({"response_format": {"type": "json_object"}}),
    ));
    assert_eq!(err.param, "response_format");
    assert_eq!(
        encode_err(with_tools(json!({"response_format": {"type": "xml"}}))).param,
        "response_format.type"
    );
    // `text` asks for nothing.
    let enc = encode_with(
        json!({"model": "claude", "messages": [{"role": "user", "content": "Hi"}], "response_format": {"type": "text"}}),
        &opts(),
    );
    assert!(enc.request.output_config.is_none() && enc.request.tool_config.is_none());
}

#[test]
fn deployment_options_apply() {
    let mut fields = serde_json::Map::new();
    fields.insert(
        "thinking".into(),
        json!({"type": "enabled", "budget_tokens": 2048}),
    );
    let o = EncodeOptions {
        default_max_tokens: Some(4096),
        drop_unsupported: false,
        additional_model_request_fields: Some(fields),
    };
    let out = serde_json::to_value(
        encode_with(
            json!({"model": "claude", "messages": [{"role": "user", "content": "x"}]}),
            &o,
        )
        .request,
    )
    .unwrap();
    assert_eq!(out["inferenceConfig"], json!({"maxTokens": 4096}));
    assert_eq!(
        out["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 2048}})
    );
    // The client's cap wins over the default.
    let out = serde_json::to_value(
        encode_with(
            json!({"model": "claude", "messages": [{"role": "user", "content": "x"}], "max_tokens": 7}),
            &o,
        )
        .request,
    )
    .unwrap();
    assert_eq!(out["inferenceConfig"]["maxTokens"], json!(7));
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
        ("top_k", json!(40)),
        ("store", json!(true)),
    ];
    let mut table = Vec::new();
    for (field, value) in cases {
        let err = encode_err(with(field, value.clone()));
        assert_eq!(err.param, field, "{field}");
        table.push(json!({"field": field, "param": err.param, "message": err.message}));
        // ... and dropped on request.
        let dropped = encode_with(with(field, value), &dropping());
        assert_eq!(
            serde_json::to_value(&dropped.request).unwrap(),
            json!({"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}),
            "{field}"
        );
    }
    assert_json_snapshot!("unsupported_fields", table);
}

#[test]
fn temperature_above_one_is_rejected_or_clamped() {
    let r = with("temperature", json!(1.5));
    assert_eq!(encode_err(r.clone()).param, "temperature");
    let out = encode_with(r, &dropping());
    assert_eq!(out.request.inference_config.unwrap().temperature, Some(1.0));
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
        ("user", json!("u-1")),
        ("stream_options", json!({"include_usage": true})),
    ] {
        encode_with(with(field, value), &opts());
    }
}

fn err_param(messages: Value) -> String {
    let mut r = json!({"model": "claude", "messages": messages});
    r["tools"] = weather_tools();
    encode_err(r).param
}

#[test]
fn message_errors_are_named() {
    let cases = [
        (
            json!([{"role": "user", "content": [
                {"type": "text", "text": "listen"},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
            ]}]),
            "messages[0].content[1].type",
        ),
        (
            json!([{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]),
            "messages[0].content[0].type",
        ),
        (
            json!([{"role": "user", "content": [{"type": "text"}]}]),
            "messages[0].content[0].text",
        ),
        (json!([{"role": "user"}]), "messages[0].content"),
        (
            json!([
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
                    {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": "{not json"}}
                ]}
            ]),
            "messages[1].tool_calls[1].function.arguments",
        ),
        (
            json!([
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "[1,2]"}}
                ]}
            ]),
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            json!([
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "tool_calls": [
                    {"id": "call.with:odd/chars", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                ]}
            ]),
            "messages[1].tool_calls[0].id",
        ),
        (
            json!([{"role": "user", "content": "Hi"}, {"role": "tool", "content": "42"}]),
            "messages[1].tool_call_id",
        ),
        (
            json!([{"role": "user", "content": "Hi"}, {"role": "tool", "tool_call_id": "", "content": "42"}]),
            "messages[1].tool_call_id",
        ),
        (
            json!([{"role": "user", "content": "Hi"}, {"role": "function", "name": "f", "content": "42"}]),
            "messages[1].role",
        ),
        (
            json!([{"role": "critic", "content": "Hi"}]),
            "messages[0].role",
        ),
        (
            json!([
                {"role": "system", "content": [
                    {"type": "text", "text": "rules"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                ]},
                {"role": "user", "content": "Hi"}
            ]),
            "messages[0].content[1].type",
        ),
        (
            json!([
                {"role": "user", "content": "Hi"},
                {"role": "tool", "tool_call_id": "c1", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
            ]),
            "messages[1].content[0].type",
        ),
    ];
    for (messages, param) in cases {
        assert_eq!(err_param(messages.clone()), param, "{messages}");
    }
    assert_eq!(
        encode_err(with(
            "tools",
            json!([{"type": "custom", "custom": {"name": "x"}}])
        ))
        .param,
        "tools[0].type"
    );
    assert_eq!(
        encode_err(with(
            "tools",
            json!([{"type": "function", "function": {"name": "has space"}}])
        ))
        .param,
        "tools[0].function.name"
    );
}

// ---------------------------------------------------------------------------
// decode_response
// ---------------------------------------------------------------------------

fn ctx() -> ResponseContext {
    ResponseContext {
        created: 1_700_000_000,
        id: "chatcmpl-bedrock-1".into(),
        model: "claude-on-bedrock".into(),
        json_tool: None,
        include_usage: false,
    }
}

fn decode(resp: Value, ctx: &ResponseContext) -> Value {
    let resp: ConverseResponse = serde_json::from_value(resp).unwrap();
    let (completion, usage) = decode_response(resp, ctx);
    json!({"completion": completion, "usage": usage})
}

#[test]
fn decode_text() {
    assert_json_snapshot!(
        "decode_text",
        decode(
            json!({
                "output": {"message": {"role": "assistant", "content": [{"text": "Hi! I'm Claude, on Bedrock."}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 12, "outputTokens": 9, "totalTokens": 21},
                "metrics": {"latencyMs": 512}
            }),
            &ctx()
        )
    );
}

#[test]
fn decode_tool_use_with_reasoning() {
    assert_json_snapshot!(
        "decode_tool_use",
        decode(
            json!({
                "output": {"message": {"role": "assistant", "content": [
                    {"reasoningContent": {"reasoningText": {"text": "The user wants the weather.", "signature": "EqQBCgIYAhIM"}}},
                    {"text": "I'll check the weather in Paris."},
                    {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "get_weather", "input": {"city": "Paris", "unit": "celsius"}}},
                    {"toolUse": {"toolUseId": "tooluse_2", "name": "get_time", "input": {}}}
                ]}},
                "stopReason": "tool_use",
                "usage": {"inputTokens": 472, "outputTokens": 89, "totalTokens": 561},
                "metrics": {"latencyMs": 1200}
            }),
            &ctx()
        )
    );
}

#[test]
fn decode_reasoning_only_and_redacted() {
    let out = decode(
        json!({
            "output": {"message": {"role": "assistant", "content": [
                {"reasoningContent": {"redactedContent": "c2VjcmV0"}},
                {"reasoningContent": {"reasoningText": {"text": "Step 1. "}}},
                {"reasoningContent": {"reasoningText": {"text": "Step 2."}}},
                {"text": "42"}
            ]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 5, "outputTokens": 50, "totalTokens": 55}
        }),
        &ctx(),
    );
    let msg = &out["completion"]["choices"][0]["message"];
    assert_eq!(msg["reasoning_content"], json!("Step 1. Step 2."));
    assert_eq!(msg["content"], json!("42"));
}

#[test]
fn decode_max_tokens() {
    assert_json_snapshot!(
        "decode_max_tokens",
        decode(
            json!({
                "output": {"message": {"role": "assistant", "content": [{"text": "Once upon a time, there"}]}},
                "stopReason": "max_tokens",
                "usage": {"inputTokens": 12, "outputTokens": 8, "totalTokens": 20}
            }),
            &ctx()
        )
    );
}

#[test]
fn decode_guardrail() {
    assert_json_snapshot!(
        "decode_guardrail",
        decode(
            json!({
                "output": {"message": {"role": "assistant", "content": [{"text": "Sorry, the model cannot answer this question."}]}},
                "stopReason": "guardrail_intervened",
                "usage": {"inputTokens": 30, "outputTokens": 0, "totalTokens": 30},
                "trace": {"guardrail": {"inputAssessment": {}}}
            }),
            &ctx()
        )
    );
    let out = decode(
        json!({
            "output": {"message": {"role": "assistant", "content": []}},
            "stopReason": "content_filtered",
            "usage": {"inputTokens": 3, "outputTokens": 0, "totalTokens": 3}
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

#[test]
fn decode_cache_usage() {
    assert_json_snapshot!(
        "decode_cache_usage",
        decode(
            json!({
                "output": {"message": {"role": "assistant", "content": [{"text": "Per the document, yes."}]}},
                "stopReason": "stop_sequence",
                "usage": {"inputTokens": 21, "outputTokens": 393, "totalTokens": 2102, "cacheReadInputTokens": 1500, "cacheWriteInputTokens": 188}
            }),
            &ctx()
        )
    );
}

#[test]
fn server_tool_use_is_not_a_client_call() {
    let out = decode(
        json!({
            "output": {"message": {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "srv_1", "name": "nova_grounding", "input": {"query": "x"}, "type": "server_tool_use"}},
                {"text": "Grounded answer."}
            ]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}
        }),
        &ctx(),
    );
    let msg = &out["completion"]["choices"][0]["message"];
    assert!(msg.get("tool_calls").is_none(), "{msg}");
    assert_eq!(msg["content"], json!("Grounded answer."));

    let r = run(
        &[
            event("messageStart", json!({"role": "assistant"})),
            event(
                "contentBlockStart",
                json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "srv_1", "name": "nova_grounding", "type": "server_tool_use"}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"query\":\"x\"}"}}}),
            ),
            event("contentBlockStop", json!({"contentBlockIndex": 0})),
            event("messageStop", json!({"stopReason": "end_turn"})),
        ],
        ctx(),
        17,
    );
    assert!(
        r.chunks
            .iter()
            .all(|c| c.choices.iter().all(|ch| ch.delta.tool_calls.is_none()))
    );
}

#[test]
fn decode_json_tool() {
    let ctx = ResponseContext {
        json_tool: Some("json_response".into()),
        ..ctx()
    };
    let out = decode(
        json!({
            "output": {"message": {"role": "assistant", "content": [
                {"text": "Here it is:"},
                {"toolUse": {"toolUseId": "tooluse_1", "name": "json_response", "input": {"name": "Ada", "age": 36}}}
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 120, "outputTokens": 30, "totalTokens": 150}
        }),
        &ctx,
    );
    let choice = &out["completion"]["choices"][0];
    assert_eq!(
        choice["message"]["content"],
        json!(r#"{"name":"Ada","age":36}"#)
    );
    assert!(choice["message"].get("tool_calls").is_none());
    assert_eq!(choice["finish_reason"], json!("stop"));
}

// ---------------------------------------------------------------------------
// streams
// ---------------------------------------------------------------------------

fn string_header(name: &str, value: &str) -> Header {
    Header {
        name: name.into(),
        value: HeaderValue::String(value.into()),
    }
}

/// One ConverseStream event frame, as Bedrock sends it (with the `p`
/// padding member its payloads carry).
fn event(kind: &str, mut payload: Value) -> Vec<u8> {
    payload["p"] = json!("abcdefghijklmnopqrstuvwxyzABCDEF");
    encode(&Message {
        headers: vec![
            string_header(":event-type", kind),
            string_header(":content-type", "application/json"),
            string_header(":message-type", "event"),
        ],
        payload: serde_json::to_vec(&payload).unwrap(),
    })
}

fn exception(kind: &str, message: &str) -> Vec<u8> {
    encode(&Message {
        headers: vec![
            string_header(":exception-type", kind),
            string_header(":content-type", "application/json"),
            string_header(":message-type", "exception"),
        ],
        payload: serde_json::to_vec(&json!({"message": message})).unwrap(),
    })
}

/// What a stream produced: chunks, the failure that ended it, the decoder.
struct Run {
    chunks: Vec<ChatChunk>,
    failure: Option<UpstreamFailure>,
    decoder: StreamDecoder,
}

/// Feeds the frames, concatenated and cut into `piece`-byte pieces, through
/// the event-stream decoder and the stream decoder.
fn run(frames: &[Vec<u8>], ctx: ResponseContext, piece: usize) -> Run {
    let bytes: Vec<u8> = frames.concat();
    let mut framing = EventStreamDecoder::new();
    let mut decoder = StreamDecoder::new(ctx);
    let mut chunks = Vec::new();
    for part in bytes.chunks(piece) {
        for msg in framing.push(part).unwrap() {
            match decoder.on_message(&msg) {
                Ok(c) => chunks.extend(c),
                Err(f) => {
                    return Run {
                        chunks,
                        failure: Some(f),
                        decoder,
                    };
                }
            }
        }
    }
    framing.finish().unwrap();
    Run {
        chunks,
        failure: None,
        decoder,
    }
}

fn text_stream() -> Vec<Vec<u8>> {
    vec![
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Hello"}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": ""}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": ", world!"}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event("messageStop", json!({"stopReason": "end_turn"})),
        event(
            "metadata",
            json!({
                "usage": {"inputTokens": 25, "outputTokens": 15, "totalTokens": 40, "cacheReadInputTokens": 10},
                "metrics": {"latencyMs": 311}
            }),
        ),
    ]
}

#[test]
fn stream_text_with_usage() {
    let r = run(
        &text_stream(),
        ResponseContext {
            include_usage: true,
            ..ctx()
        },
        7,
    );
    assert_eq!(r.failure, None);
    assert!(r.decoder.is_done() && r.decoder.has_usage());
    let u = r.decoder.usage();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cache_read_tokens),
        (35, 15, 10)
    );
    assert_json_snapshot!("stream_text_with_usage", r.chunks);
}

#[test]
fn stream_text_without_usage() {
    let r = run(&text_stream(), ctx(), 1);
    assert!(r.decoder.is_done());
    assert!(
        r.chunks
            .iter()
            .all(|c| c.usage.is_none() && c.choices.len() == 1)
    );
    assert_eq!(
        r.chunks.last().unwrap().choices[0].finish_reason.as_deref(),
        Some("stop")
    );
    let content: String = r
        .chunks
        .iter()
        .filter_map(|c| c.choices[0].delta.content.clone())
        .collect();
    assert_eq!(content, "Hello, world!");
}

#[test]
fn stream_usage_chunk_is_last_even_if_metadata_comes_first() {
    let mut frames = text_stream();
    let metadata = frames.pop().unwrap();
    let stop = frames.pop().unwrap();
    frames.push(metadata);
    frames.push(stop);
    let r = run(
        &frames,
        ResponseContext {
            include_usage: true,
            ..ctx()
        },
        64,
    );
    let last = r.chunks.last().unwrap();
    assert!(last.choices.is_empty() && last.usage.is_some());
    assert_eq!(
        r.chunks[r.chunks.len() - 2].choices[0]
            .finish_reason
            .as_deref(),
        Some("stop")
    );
}

fn tool_stream() -> Vec<Vec<u8>> {
    vec![
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "The user wants weather; "}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "call get_weather."}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "EqQBCgIYAhIM1gbcDa9GJwZA"}}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"text": "Okay, let's check the weather for Paris:"}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 1})),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "get_weather"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": ""}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{\"city\":"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": " \"Par"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "is\", \"unit\": \"celsius\"}"}}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 2})),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 3, "start": {"toolUse": {"toolUseId": "tooluse_2", "name": "get_time"}}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 3})),
        event("messageStop", json!({"stopReason": "tool_use"})),
        event(
            "metadata",
            json!({"usage": {"inputTokens": 472, "outputTokens": 89, "totalTokens": 561}, "metrics": {"latencyMs": 900}}),
        ),
    ]
}

#[test]
fn stream_reasoning_and_tool_calls() {
    let r = run(
        &tool_stream(),
        ResponseContext {
            include_usage: true,
            ..ctx()
        },
        13,
    );
    assert_eq!(r.failure, None);
    // Tool call indexes count tool calls, not content blocks.
    let calls: Vec<_> = r
        .chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .flat_map(|ch| ch.delta.tool_calls.iter().flatten())
        .collect();
    let indexes: Vec<u32> = calls.iter().map(|t| t.index).collect();
    assert_eq!(indexes, vec![0, 0, 0, 0, 1, 1]);
    let args = |k: u32| -> String {
        calls
            .iter()
            .filter(|t| t.index == k)
            .filter_map(|t| t.function.as_ref()?.arguments.clone())
            .collect()
    };
    assert_eq!(
        serde_json::from_str::<Value>(&args(0)).unwrap(),
        json!({"city": "Paris", "unit": "celsius"})
    );
    // A tool without input fragments gets `{}`.
    assert_eq!(args(1), "{}");
    assert_eq!(
        r.chunks
            .iter()
            .rev()
            .find_map(|c| c.choices.first()?.finish_reason.clone())
            .as_deref(),
        Some("tool_calls")
    );
    assert_json_snapshot!("stream_reasoning_and_tool_calls", r.chunks);
}

#[test]
fn stream_matches_non_stream() {
    let r = run(&tool_stream(), ctx(), 5);
    let content: String = r
        .chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|ch| ch.delta.content.clone())
        .collect();
    let reasoning: String = r
        .chunks
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
            "output": {"message": {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "The user wants weather; call get_weather.", "signature": "x"}}},
                {"text": "Okay, let's check the weather for Paris:"},
                {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "get_weather", "input": {"city": "Paris", "unit": "celsius"}}},
                {"toolUse": {"toolUseId": "tooluse_2", "name": "get_time", "input": {}}}
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 472, "outputTokens": 89, "totalTokens": 561}
        }),
        &ctx(),
    );
    let msg = &whole["completion"]["choices"][0]["message"];
    assert_eq!(msg["content"], json!(content));
    assert_eq!(msg["reasoning_content"], json!(reasoning));
    assert_eq!(
        serde_json::to_value(r.decoder.usage()).unwrap(),
        whole["usage"]
    );
}

#[test]
fn stream_json_tool_becomes_content() {
    let frames = vec![
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Sure, here:"}}),
        ),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "json_response"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"name\": "}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Ada\"}"}}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 1})),
        event("messageStop", json!({"stopReason": "tool_use"})),
    ];
    let r = run(
        &frames,
        ResponseContext {
            json_tool: Some("json_response".into()),
            ..ctx()
        },
        9,
    );
    assert!(
        r.chunks
            .iter()
            .all(|c| c.choices.iter().all(|ch| ch.delta.tool_calls.is_none()))
    );
    let content: String = r
        .chunks
        .iter()
        .filter_map(|c| c.choices[0].delta.content.clone())
        .collect();
    assert_eq!(content, r#"{"name": "Ada"}"#);
    assert_eq!(
        r.chunks.last().unwrap().choices[0].finish_reason.as_deref(),
        Some("stop")
    );
    // The stream ended without `metadata`: done, but no usage reported.
    assert!(r.decoder.is_done() && !r.decoder.has_usage());
}

#[test]
fn stream_throttling_mid_stream() {
    let frames = vec![
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Partial"}}),
        ),
        exception(
            "throttlingException",
            "Too many tokens, please wait before trying again.",
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "never seen"}}),
        ),
    ];
    let r = run(&frames, ctx(), 11);
    assert_eq!(
        r.failure,
        Some(UpstreamFailure {
            class: ErrorClass::UpstreamRateLimited,
            status: None,
            message: "bedrock: Too many tokens, please wait before trying again.".into(),
            upstream_code: Some("ThrottlingException".into()),
        })
    );
    assert!(!r.decoder.is_done());
    assert_json_snapshot!("stream_throttling_prefix", r.chunks);
}

#[test]
fn stream_exception_classes() {
    let mut table = Vec::new();
    for (kind, message) in [
        ("throttlingException", "Too many requests"),
        ("modelStreamErrorException", "The model stream failed"),
        ("validationException", "Malformed input request"),
        (
            "validationException",
            "Input is too long for requested model.",
        ),
        ("serviceUnavailableException", "Service unavailable"),
        ("internalServerException", "Internal error"),
        ("modelTimeoutException", "Model timed out"),
        ("someFutureException", "new"),
    ] {
        let r = run(
            &[
                event("messageStart", json!({"role": "assistant"})),
                exception(kind, message),
            ],
            ctx(),
            100,
        );
        let f = r.failure.unwrap();
        table.push(json!({
            "exception": kind,
            "class": f.class.as_str(),
            "retryable": f.class.is_retryable(),
            "upstream_code": f.upstream_code,
            "message": f.message,
        }));
    }
    // An unmodelled `error` message names itself in headers.
    let err = encode(&Message {
        headers: vec![
            string_header(":message-type", "error"),
            string_header(":error-code", "InternalFailure"),
            string_header(":error-message", "boom"),
        ],
        payload: vec![],
    });
    let f = run(&[err], ctx(), 3).failure.unwrap();
    table.push(json!({
        "error": "InternalFailure",
        "class": f.class.as_str(),
        "retryable": f.class.is_retryable(),
        "upstream_code": f.upstream_code,
        "message": f.message,
    }));
    assert_json_snapshot!("stream_exception_classes", table);
}

#[test]
fn stream_malformed_event_is_a_failure() {
    let bad = encode(&Message {
        headers: vec![
            string_header(":event-type", "contentBlockDelta"),
            string_header(":message-type", "event"),
        ],
        payload: b"{\"contentBlockIndex\": \"zero\"}".to_vec(),
    });
    let f = run(&[bad], ctx(), 4).failure.unwrap();
    assert_eq!(f.class, ErrorClass::UpstreamError);
    assert_eq!(
        f.message,
        "bedrock sent a malformed `contentBlockDelta` event"
    );
    // Unknown event types are skipped.
    let r = run(
        &[
            event("brandNewEvent", json!({"x": 1})),
            event("messageStop", json!({"stopReason": "end_turn"})),
        ],
        ctx(),
        4,
    );
    assert_eq!(r.failure, None);
    assert!(r.decoder.is_done());
}

proptest! {
    /// However Bedrock splits a tool input into `toolUse.input` fragments,
    /// and however the network splits the frames, the client reassembles
    /// the same arguments.
    #[test]
    fn tool_arguments_survive_any_split(
        cuts in proptest::collection::vec(0usize..60, 0..8),
        piece in 1usize..40,
    ) {
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

        let mut frames = vec![
            event("messageStart", json!({"role": "assistant"})),
            event("contentBlockStart", json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t", "name": "f"}}})),
        ];
        for w in bounds.windows(2) {
            frames.push(event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": &args[w[0]..w[1]]}}})));
        }
        frames.push(event("contentBlockStop", json!({"contentBlockIndex": 0})));
        frames.push(event("messageStop", json!({"stopReason": "tool_use"})));

        let r = run(&frames, ResponseContext::default(), piece);
        prop_assert_eq!(r.failure, None);
        let mut got = String::new();
        for c in &r.chunks {
            for ch in &c.choices {
                for t in ch.delta.tool_calls.iter().flatten() {
                    prop_assert_eq!(t.index, 0);
                    if let Some(a) = t.function.as_ref().and_then(|f| f.arguments.as_ref()) {
                        got.push_str(a);
                    }
                }
            }
        }
        prop_assert_eq!(got, args);
        prop_assert!(r.decoder.is_done());
    }
}

// ---------------------------------------------------------------------------
// classify_error
// ---------------------------------------------------------------------------

#[test]
fn error_classification_table() {
    let body = |m: &str| serde_json::to_vec(&json!({"message": m})).unwrap();
    let cases: Vec<(u16, Option<&str>, Vec<u8>)> = vec![
        (
            429,
            Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            body("Too many requests, please wait before trying again."),
        ),
        (
            400,
            Some("ValidationException"),
            body("Input is too long for requested model."),
        ),
        (
            400,
            Some("ValidationException"),
            body("A conversation must start with a user message."),
        ),
        (
            403,
            Some("AccessDeniedException"),
            body("You don't have access to the model with the specified model ID."),
        ),
        (
            403,
            Some("UnrecognizedClientException"),
            body("The security token included in the request is invalid."),
        ),
        (
            404,
            Some("ResourceNotFoundException"),
            body("Could not resolve the foundation model from the provided model identifier."),
        ),
        (
            429,
            Some("ModelNotReadyException"),
            body("Model is not ready for inference."),
        ),
        (
            503,
            Some("ServiceUnavailableException"),
            body("Bedrock is unable to process your request."),
        ),
        (408, Some("ModelTimeoutException"), body("Model has timed out.")),
        (
            424,
            Some("ModelErrorException"),
            body("The model failed to process the request."),
        ),
        (500, Some("InternalServerException"), body("Internal server error")),
        // No header: the body's `__type`, then the status decide.
        (
            429,
            None,
            serde_json::to_vec(&json!({"__type": "com.amazon.coral.service#ThrottlingException", "message": "Rate exceeded"})).unwrap(),
        ),
        (504, None, body("Gateway timeout")),
        (502, None, b"<html>502 Bad Gateway secret-internal-host.corp</html>".to_vec()),
        (400, None, br#"{"detail":"secret-internal-host.corp"}"#.to_vec()),
    ];
    let table: Vec<Value> = cases
        .into_iter()
        .map(|(status, header, body)| {
            let f = classify_error(status, header, &body);
            json!({
                "status": status,
                "x-amzn-ErrorType": header,
                "class": f.class.as_str(),
                "retryable": f.class.is_retryable(),
                "upstream_code": f.upstream_code,
                "message": f.message,
            })
        })
        .collect();
    assert_json_snapshot!("error_classification", table);
}

#[test]
fn classify_context_window_for_the_router() {
    let f = classify_error(
        400,
        Some("ValidationException"),
        br#"{"message":"Input is too long for requested model."}"#,
    );
    assert_eq!(
        f,
        UpstreamFailure {
            class: ErrorClass::UpstreamBadRequest,
            status: Some(400),
            message: "bedrock: Input is too long for requested model.".into(),
            upstream_code: Some(CONTEXT_LENGTH_CODE.into()),
        }
    );
}

#[test]
fn classify_never_echoes_bodies() {
    let f = classify_error(
        500,
        None,
        b"<html><body>secret-internal-host.corp</body></html>",
    );
    assert_eq!(
        f,
        UpstreamFailure {
            class: ErrorClass::UpstreamError,
            status: Some(500),
            message: "bedrock returned HTTP 500".into(),
            upstream_code: None,
        }
    );
    let f = classify_error(
        400,
        Some("ValidationException"),
        serde_json::to_vec(&json!({"message": "é".repeat(1000)}))
            .unwrap()
            .as_slice(),
    );
    assert!(f.message.len() < 400, "{}", f.message.len());
    assert!(f.message.ends_with('…'));
}
