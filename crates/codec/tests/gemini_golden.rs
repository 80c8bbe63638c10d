//! Golden tests for the OpenAI <-> Gemini codec.
//!
//! Each translation is snapshotted with insta (`tests/snapshots/`). The Gemini
//! fixtures follow the documented wire format
//! (<https://ai.google.dev/api/generate-content>, function calling, thinking,
//! safety); stream fixtures are raw `alt=sse` text (CRLF line endings, as
//! Google sends them) run through our own SSE parser first.
// Helpers outside `#[test]` functions are not covered by clippy's
// `allow-unwrap-in-tests`; here a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use insta::assert_json_snapshot;
use modelgate_api::gemini::GenerateContentResponse;
use modelgate_api::openai::{ChatChunk, ChatRequest};
use modelgate_codec::gemini::{
    EncodeOptions, Encoded, ResponseContext, SKIP_THOUGHT_SIGNATURE, StreamDecoder, chat_url,
    classify_error, decode_response, encode_request, retry_after_seconds,
};
use modelgate_codec::sse::SseParser;
use modelgate_codec::{CodecError, UpstreamFailure};
use modelgate_core::ErrorClass;
use proptest::prelude::*;
use serde_json::{Value, json};

/// A Gemini 3 model: `thinkingLevel`, strict thought signatures.
const MODEL: &str = "gemini-3-pro-preview";
/// A Gemini 2.5 model: `thinkingBudget`, signatures optional.
const MODEL_25: &str = "gemini-2.5-flash";

fn opts() -> EncodeOptions {
    EncodeOptions::default()
}

fn req(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn encode_for(v: Value, model: &str) -> Encoded {
    encode_request(&req(v), model, &opts()).unwrap()
}

fn encode(v: Value) -> Encoded {
    encode_for(v, MODEL)
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
        "model": "gemini",
        "messages": [{"role": "user", "content": "Hello"}]
    }));
    assert!(!enc.stream);
    assert_json_snapshot!("encode_plain", serde_json::to_value(enc.request).unwrap());
}

#[test]
fn encode_system_and_multi_turn() {
    assert_json_snapshot!(
        "encode_system_multi_turn",
        encode_json(json!({
            "model": "gemini",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "user", "content": "What is 2+2?", "name": "alice"},
                {"role": "assistant", "content": "4"},
                {"role": "user", "content": "And times 3?"},
                {"role": "user", "content": [{"type": "text", "text": "Show your work."}]},
                {"role": "system", "content": ""}
            ],
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 40,
            "stop": ["END", "###"],
            "max_tokens": 100,
            "max_completion_tokens": 250,
            "n": 2,
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.0,
            "user": "user-123",
            "metadata": {"team": "a"},
            "stream": true,
            "stream_options": {"include_usage": true},
            "store": false,
            "service_tier": "auto"
        }))
    );
}

#[test]
fn encode_stream_flag_and_defaults() {
    let one = |extra: Value| {
        let mut r = json!({"model": "g", "messages": [{"role": "user", "content": "x"}]});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    };
    assert!(encode(one(json!({"stream": true}))).stream);
    assert!(!encode(one(json!({"stream": false}))).stream);
    // Nothing set: no generationConfig at all.
    assert!(
        encode_json(one(json!({})))
            .get("generationConfig")
            .is_none()
    );
    // A deployment default applies only without a client cap.
    let with_default = EncodeOptions {
        default_max_tokens: Some(4096),
        ..opts()
    };
    let out = encode_request(&req(one(json!({}))), MODEL, &with_default).unwrap();
    assert_eq!(
        out.request.generation_config.unwrap().max_output_tokens,
        Some(4096)
    );
    let out = encode_request(&req(one(json!({"max_tokens": 9}))), MODEL, &with_default).unwrap();
    assert_eq!(
        out.request.generation_config.unwrap().max_output_tokens,
        Some(9)
    );
    // `stop` as one string; `n: 1` is the default and is not sent.
    let out = encode_json(one(json!({"stop": "END", "n": 1})));
    assert_eq!(out["generationConfig"], json!({"stopSequences": ["END"]}));
}

#[test]
fn encode_images_audio_and_files() {
    assert_json_snapshot!(
        "encode_images",
        encode_json(json!({
            "model": "gemini",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Compare these"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.JPG?size=large", "detail": "high"}},
                {"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZF", "format": "wav"}},
                {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQ="}}
            ]}]
        }))
    );
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
                },
                "required": ["city"],
                "additionalProperties": false
            },
            "strict": true
        }},
        {"type": "function", "function": {"name": "get_time"}}
    ])
}

fn with_tools(extra: Value) -> Value {
    let mut r = json!({
        "model": "gemini",
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

    let choice = |extra: Value| encode_json(with_tools(extra))["toolConfig"].clone();
    assert_eq!(choice(json!({})), Value::Null);
    assert_eq!(
        choice(json!({"tool_choice": "auto"})),
        json!({"functionCallingConfig": {"mode": "AUTO"}})
    );
    assert_eq!(
        choice(json!({"tool_choice": "none"})),
        json!({"functionCallingConfig": {"mode": "NONE"}})
    );
    assert_eq!(
        choice(json!({"tool_choice": "required"})),
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
    assert_eq!(
        choice(json!({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}})),
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    // Parallel calls are Gemini's default; asking for them is fine.
    assert_eq!(choice(json!({"parallel_tool_calls": true})), Value::Null);
}

#[test]
fn tool_choice_without_tools_is_dropped() {
    let out = encode_json(json!({
        "model": "gemini",
        "messages": [{"role": "user", "content": "Hi"}],
        "tool_choice": "none",
        "parallel_tool_calls": false
    }));
    assert!(out.get("toolConfig").is_none());
    assert!(out.get("tools").is_none());
}

fn tool_conversation() -> Value {
    json!({
        "model": "gemini",
        "messages": [
            {"role": "user", "content": "Weather and time in Paris?"},
            {"role": "assistant", "content": "Let me check both.", "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"},
                 "extra_content": {"google": {"thought_signature": "CiQBcsjafE3kEXAMPLE"}}},
                {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_0", "content": "{\"temp_c\": 18, \"sky\": \"cloudy\"}"},
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "14:05"}]},
            {"role": "user", "content": "Thanks! And in Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
                {"id": "fc_7e1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_0", "content": "14:06"},
            {"role": "tool", "tool_call_id": "fc_7e1", "content": "22C, sunny"}
        ],
        "tools": weather_tools()
    })
}

#[test]
fn encode_tool_round_trip_with_parallel_results() {
    let out = encode_json(tool_conversation());
    assert_json_snapshot!("encode_tool_results", out);
    let roles: Vec<&str> = out["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    // Function responses keep a turn of their own, before the user's next words.
    assert_eq!(roles, ["user", "model", "user", "user", "model", "user"]);
    // The second turn reused `call_0` for another function: the result is
    // matched to the latest call with that id.
    let last = &out["contents"][5]["parts"][0]["functionResponse"];
    assert_eq!(last["name"], json!("get_time"));
    // Unsigned history gets the placeholder on its first call only.
    let calls = &out["contents"][4]["parts"];
    assert_eq!(calls[0]["thoughtSignature"], json!(SKIP_THOUGHT_SIGNATURE));
    assert!(calls[1].get("thoughtSignature").is_none());

    // Gemini 2.5 does not validate signatures: no placeholder there.
    let out = serde_json::to_value(encode_for(tool_conversation(), MODEL_25).request).unwrap();
    let calls = &out["contents"][4]["parts"];
    assert!(calls[0].get("thoughtSignature").is_none());
    assert_eq!(
        out["contents"][1]["parts"][1]["thoughtSignature"],
        json!("CiQBcsjafE3kEXAMPLE")
    );
}

#[test]
fn encode_json_schema() {
    assert_json_snapshot!(
        "encode_json_schema",
        encode_json(json!({
            "model": "gemini",
            "messages": [{"role": "user", "content": "Extract the person"}],
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "person",
                "description": "A person",
                "schema": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "age": {"type": ["integer", "null"]},
                        "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}}
                    },
                    "required": ["name"],
                    "$defs": {"tag": {"type": "string"}}
                },
                "strict": true
            }}
        }))
    );
    let out = encode_json(json!({
        "model": "gemini",
        "messages": [{"role": "user", "content": "Give me JSON"}],
        "response_format": {"type": "json_object"}
    }));
    assert_eq!(
        out["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
    let out = encode_json(json!({
        "model": "gemini",
        "messages": [{"role": "user", "content": "Hi"}],
        "response_format": {"type": "text"}
    }));
    assert!(out.get("generationConfig").is_none());
}

#[test]
fn reasoning_effort_becomes_thinking_config() {
    let thinking = |effort: &str, model: &str| {
        let enc = encode_for(
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": effort}),
            model,
        );
        serde_json::to_value(enc.request).unwrap()["generationConfig"]["thinkingConfig"].clone()
    };
    assert_eq!(
        thinking("low", MODEL),
        json!({"includeThoughts": true, "thinkingLevel": "low"})
    );
    assert_eq!(
        thinking("high", MODEL),
        json!({"includeThoughts": true, "thinkingLevel": "high"})
    );
    assert_eq!(thinking("none", MODEL), json!({"thinkingLevel": "minimal"}));
    assert_eq!(
        thinking("medium", MODEL_25),
        json!({"includeThoughts": true, "thinkingBudget": 8192})
    );
    assert_eq!(thinking("none", MODEL_25), json!({"thinkingBudget": 0}));
    assert_eq!(
        thinking("high", "models/gemini-2.5-pro"),
        json!({"includeThoughts": true, "thinkingBudget": 24576})
    );
    let err = encode_err(json!({
        "model": "g", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "extreme"
    }));
    assert_eq!(err.param, "reasoning_effort");
}

// ---------------------------------------------------------------------------
// encode errors
// ---------------------------------------------------------------------------

fn with(field: &str, value: Value) -> Value {
    let mut r = json!({"model": "gemini", "messages": [{"role": "user", "content": "Hi"}]});
    r[field] = value;
    r
}

#[test]
fn unsupported_fields_are_named() {
    let cases = [
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("logit_bias", json!({"50256": -100})),
        ("store", json!(true)),
        ("prediction", json!({"type": "content", "content": "x"})),
        ("thinking", json!({"type": "enabled"})),
    ];
    for (field, value) in cases {
        let err = encode_err(with(field, value.clone()));
        assert_eq!(err.param, field, "{field}");
        assert_eq!(
            err.message,
            format!("`{field}` is not supported by provider gemini")
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
        assert_eq!(
            serde_json::to_value(&dropped.request).unwrap(),
            json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}),
            "{field}"
        );
    }

    // `parallel_tool_calls: false` only matters with tools.
    let err = encode_err(with_tools(json!({"parallel_tool_calls": false})));
    assert_eq!(err.param, "parallel_tool_calls");
    assert_json_snapshot!(
        "unsupported_field_error",
        json!({"param": err.param, "message": err.message})
    );
    let lenient = EncodeOptions {
        drop_unsupported: true,
        ..opts()
    };
    encode_request(
        &req(with_tools(json!({"parallel_tool_calls": false}))),
        MODEL,
        &lenient,
    )
    .unwrap();

    // A seed Gemini cannot hold (int32).
    let err = encode_err(with("seed", json!(1_i64 << 40)));
    assert_eq!(err.param, "seed");
    let out = encode_request(&req(with("seed", json!(1_i64 << 40))), MODEL, &lenient).unwrap();
    assert!(out.request.generation_config.is_none());
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
        ("reasoning_effort", Value::Null),
        ("top_k", Value::Null),
        ("stream_options", json!({"include_usage": true})),
        ("parallel_tool_calls", json!(false)),
    ] {
        let out = encode_json(with(field, value));
        assert_eq!(
            out,
            json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}),
            "{field}"
        );
    }
}

fn err_param(messages: Value) -> String {
    encode_err(json!({"model": "gemini", "messages": messages})).param
}

#[test]
fn message_errors_are_named() {
    let user = |part: Value| json!([{"role": "user", "content": [part]}]);
    assert_eq!(
        err_param(user(
            json!({"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}})
        )),
        "messages[0].content[0].image_url.url"
    );
    assert_eq!(
        err_param(user(
            json!({"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}})
        )),
        "messages[0].content[0].image_url.url"
    );
    // A URL whose type we cannot tell: a clear 400, not a guess.
    let err = encode_err(json!({"model": "g", "messages": user(
        json!({"type": "image_url", "image_url": {"url": "https://example.com/render?id=7"}})
    )}));
    assert_eq!(err.param, "messages[0].content[0].image_url.url");
    assert!(err.message.contains("data URL"), "{}", err.message);
    assert_eq!(
        err_param(user(
            json!({"type": "file", "file": {"file_id": "file-abc"}})
        )),
        "messages[0].content[0].file.file_id"
    );
    assert_eq!(
        err_param(user(
            json!({"type": "input_audio", "input_audio": {"data": "AAAA"}})
        )),
        "messages[0].content[0].input_audio.format"
    );
    assert_eq!(
        err_param(user(
            json!({"type": "video_url", "video_url": {"url": "x"}})
        )),
        "messages[0].content[0].type"
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
            {"role": "tool", "tool_call_id": "nobody", "content": "42"}
        ])),
        "messages[1].tool_call_id"
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
        err_param(json!([
            {"role": "system", "content": [
                {"type": "text", "text": "rules"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
            ]},
            {"role": "user", "content": "Hi"}
        ])),
        "messages[0].content[1]"
    );
    // Only a system prompt: nothing for Gemini to answer.
    assert_eq!(
        err_param(json!([{"role": "system", "content": "rules"}])),
        "messages"
    );
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
    assert_eq!(
        encode_err(with_tools(json!({"tool_choice": "sometimes"}))).param,
        "tool_choice"
    );
}

#[test]
fn tool_result_name_fallback() {
    // A client that names the function on the tool message needs no prior call.
    let out = encode_json(json!({
        "model": "g",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "tool", "tool_call_id": "x1", "name": "lookup", "content": "ok"}
        ]
    }));
    assert_eq!(
        out["contents"][1],
        json!({"role": "user", "parts": [
            {"functionResponse": {"id": "x1", "name": "lookup", "response": {"output": "ok"}}}
        ]})
    );
}

#[test]
fn url_helper() {
    assert_eq!(
        chat_url("https://generativelanguage.googleapis.com", MODEL_25, true),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
}

// ---------------------------------------------------------------------------
// decode_response
// ---------------------------------------------------------------------------

fn ctx() -> ResponseContext {
    ResponseContext {
        created: 1_700_000_000,
        model: MODEL_25.into(),
        include_usage: false,
    }
}

fn parse(v: Value) -> GenerateContentResponse {
    serde_json::from_value(v).unwrap()
}

fn decode(resp: Value) -> Value {
    let (completion, usage) = decode_response(parse(resp), &ctx()).unwrap();
    json!({"completion": completion, "usage": usage})
}

fn failure_json(f: &UpstreamFailure) -> Value {
    json!({
        "class": f.class.as_str(),
        "status": f.status,
        "message": f.message,
        "upstream_code": f.upstream_code,
    })
}

#[test]
fn decode_text() {
    assert_json_snapshot!(
        "decode_text",
        decode(json!({
            "candidates": [{
                "content": {"parts": [{"text": "Hello! "}, {"text": "How can I help?"}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
                "avgLogprobs": -0.0712
            }],
            "usageMetadata": {
                "promptTokenCount": 8,
                "candidatesTokenCount": 9,
                "totalTokenCount": 17,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}]
            },
            "modelVersion": "gemini-2.5-flash",
            "responseId": "mS9aaOWmB-CgxN8P9rSVsQk"
        }))
    );
}

#[test]
fn decode_parallel_function_calls() {
    let out = decode(json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris", "unit": "celsius"}},
                 "thoughtSignature": "CiQBcsjafE3kEXAMPLE"},
                {"functionCall": {"name": "get_time", "args": {}}},
                {"functionCall": {"id": "fc_7e1", "name": "get_weather", "args": {"city": "Rome"}}}
            ]},
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 30, "thoughtsTokenCount": 51, "totalTokenCount": 201},
        "modelVersion": "gemini-3-pro-preview",
        "responseId": "resp-fc-1"
    }));
    let msg = &out["completion"]["choices"][0]["message"];
    assert_eq!(msg["content"], Value::Null);
    let ids: Vec<&str> = msg["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["call_0", "call_1", "fc_7e1"]);
    assert_eq!(
        out["completion"]["choices"][0]["finish_reason"],
        json!("tool_calls")
    );
    assert_json_snapshot!("decode_function_calls", out);
}

#[test]
fn decode_thoughts_and_cache() {
    assert_json_snapshot!(
        "decode_thoughts",
        decode(json!({
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"text": "**Weighing the options**\nThe user wants a prime...", "thought": true},
                    {"text": "The answer is 17.", "thoughtSignature": "Cs0BAVSoXO4EXAMPLE"}
                ]},
                "finishReason": "STOP",
                "index": 0
            }],
            "usageMetadata": {
                "promptTokenCount": 2100,
                "cachedContentTokenCount": 2048,
                "candidatesTokenCount": 7,
                "thoughtsTokenCount": 312,
                "totalTokenCount": 2419
            },
            "modelVersion": "gemini-2.5-pro",
            "responseId": "resp-think-1"
        }))
    );
}

#[test]
fn decode_safety_finish() {
    let out = decode(json!({
        "candidates": [{
            "finishReason": "SAFETY",
            "index": 0,
            "safetyRatings": [
                {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
                {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}
            ]
        }],
        "usageMetadata": {"promptTokenCount": 11, "totalTokenCount": 11},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-safety-1"
    }));
    assert_eq!(
        out["completion"]["choices"][0]["finish_reason"],
        json!("content_filter")
    );
    assert_json_snapshot!("decode_safety_finish", out);
}

#[test]
fn decode_blocked_prompt() {
    let resp = parse(json!({
        "promptFeedback": {
            "blockReason": "SAFETY",
            "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}
            ]
        },
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
        "modelVersion": "gemini-2.5-flash"
    }));
    let f = decode_response(resp, &ctx()).unwrap_err();
    assert_eq!(f.class, ErrorClass::UpstreamBadRequest);
    assert!(!f.class.is_retryable());
    assert_eq!(f.upstream_code.as_deref(), Some("content_policy_violation"));
    assert_json_snapshot!("decode_blocked_prompt", failure_json(&f));

    // No candidates and no reason: the upstream misbehaved.
    let f = decode_response(parse(json!({"modelVersion": "x"})), &ctx()).unwrap_err();
    assert_eq!(f.class, ErrorClass::UpstreamError);
}

#[test]
fn decode_max_tokens_and_candidates() {
    let out = decode(json!({
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "Once upon"}]}, "finishReason": "MAX_TOKENS", "index": 0},
            {"content": {"role": "model"}, "finishReason": "MAX_TOKENS", "index": 1}
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "thoughtsTokenCount": 98, "totalTokenCount": 105}
    }));
    let c = &out["completion"];
    assert_eq!(c["choices"][0]["finish_reason"], json!("length"));
    assert_eq!(c["choices"][1]["index"], json!(1));
    // All the budget went to thinking: empty content, not null.
    assert_eq!(c["choices"][1]["message"]["content"], json!(""));
    // No modelVersion / responseId: the context fills in.
    assert_eq!(c["model"], json!(MODEL_25));
    assert_eq!(c["id"], json!("chatcmpl-gemini-1700000000"));
    assert_eq!(
        c["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 100, "total_tokens": 105,
               "completion_tokens_details": {"reasoning_tokens": 98}})
    );
    assert_eq!(out["usage"]["output_tokens"], json!(100));
}

// ---------------------------------------------------------------------------
// streams
// ---------------------------------------------------------------------------

/// Parses raw SSE text into event data.
fn events(sse: &str) -> Vec<String> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    parser.push(sse.as_bytes(), &mut out);
    parser.finish(&mut out);
    out.into_iter().map(|e| e.data).collect()
}

fn run(sse: &str, ctx: ResponseContext) -> (Vec<ChatChunk>, StreamDecoder) {
    let mut dec = StreamDecoder::new(ctx);
    let mut chunks = Vec::new();
    for data in events(sse) {
        chunks.extend(dec.on_data(&data).unwrap());
    }
    chunks.extend(dec.finish().unwrap());
    (chunks, dec)
}

/// Gemini separates events with CRLF.
fn crlf(s: &str) -> String {
    s.replace('\n', "\r\n")
}

const TEXT_STREAM: &str = r#"data: {"candidates": [{"content": {"parts": [{"text": "The"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 8,"totalTokenCount": 8},"modelVersion": "gemini-2.5-flash","responseId": "Bd1aaKqMLv6vxN8Pq8qbqQ0"}

data: {"candidates": [{"content": {"parts": [{"text": " quick brown fox"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 8,"totalTokenCount": 8},"modelVersion": "gemini-2.5-flash","responseId": "Bd1aaKqMLv6vxN8Pq8qbqQ0"}

data: {"candidates": [{"content": {"parts": [{"text": " jumps."}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 8,"candidatesTokenCount": 6,"totalTokenCount": 14,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 8}]},"modelVersion": "gemini-2.5-flash","responseId": "Bd1aaKqMLv6vxN8Pq8qbqQ0"}

"#;

fn content_of(chunks: &[ChatChunk]) -> String {
    chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|ch| ch.delta.content.clone())
        .collect()
}

fn reasoning_of(chunks: &[ChatChunk]) -> String {
    chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|ch| {
            ch.delta
                .extra
                .get("reasoning_content")?
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn stream_text_with_usage() {
    let (chunks, dec) = run(
        &crlf(TEXT_STREAM),
        ResponseContext {
            include_usage: true,
            ..ctx()
        },
    );
    assert!(dec.is_done());
    assert_eq!(content_of(&chunks), "The quick brown fox jumps.");
    let u = dec.usage();
    assert_eq!((u.input_tokens, u.output_tokens), (8, 6));
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
}

const FUNCTION_STREAM: &str = r#"data: {"candidates": [{"content": {"parts": [{"text": "Checking both cities."}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 97,"totalTokenCount": 97},"modelVersion": "gemini-3-pro-preview","responseId": "fcStream1"}

data: {"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather","args": {"city": "Paris"}},"thoughtSignature": "CiQBcsjafE3kEXAMPLE"},{"functionCall": {"name": "get_weather","args": {"city": "Rome"}}}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 97,"candidatesTokenCount": 36,"thoughtsTokenCount": 120,"totalTokenCount": 253},"modelVersion": "gemini-3-pro-preview","responseId": "fcStream1"}

"#;

#[test]
fn stream_function_calls() {
    let (chunks, dec) = run(
        FUNCTION_STREAM,
        ResponseContext {
            include_usage: true,
            ..ctx()
        },
    );
    let calls: Vec<(u32, String, String)> = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .flat_map(|ch| ch.delta.tool_calls.iter().flatten())
        .map(|t| {
            let f = t.function.as_ref().unwrap();
            (t.index, t.id.clone().unwrap(), f.arguments.clone().unwrap())
        })
        .collect();
    assert_eq!(
        calls,
        [
            (0, "call_0".into(), r#"{"city":"Paris"}"#.into()),
            (1, "call_1".into(), r#"{"city":"Rome"}"#.into()),
        ]
    );
    let finish = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .find_map(|ch| ch.finish_reason.clone());
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(dec.usage().reasoning_tokens, 120);
    assert_eq!(dec.usage().output_tokens, 156);
    assert_json_snapshot!("stream_function_calls", chunks);
}

/// The finish event carries no usage; a last event carries only usage.
const USAGE_LAST_STREAM: &str = r#"data: {"candidates": [{"content": {"parts": [{"text": "Hi there"}],"role": "model"},"index": 0}],"modelVersion": "gemini-2.5-flash-lite","responseId": "usageLast1"}

data: {"candidates": [{"content": {"parts": [{"text": "!"}],"role": "model"},"finishReason": "STOP","index": 0}],"modelVersion": "gemini-2.5-flash-lite","responseId": "usageLast1"}

data: {"usageMetadata": {"promptTokenCount": 4,"candidatesTokenCount": 3,"totalTokenCount": 7},"modelVersion": "gemini-2.5-flash-lite","responseId": "usageLast1"}

"#;

#[test]
fn stream_usage_only_final_event() {
    let (chunks, dec) = run(
        USAGE_LAST_STREAM,
        ResponseContext {
            include_usage: true,
            ..ctx()
        },
    );
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty());
    assert_eq!(last.usage.as_ref().unwrap().total_tokens, 7);
    assert_eq!(dec.usage().input_tokens, 4);
    assert_json_snapshot!("stream_usage_only_final_event", chunks);
}

const THOUGHT_STREAM: &str = r#"data: {"candidates": [{"content": {"parts": [{"text": "**Planning the answer**\nI need the product of ","thought": true}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 12,"totalTokenCount": 12},"modelVersion": "gemini-2.5-pro","responseId": "think1"}

data: {"candidates": [{"content": {"parts": [{"text": "6 and 7.","thought": true}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 12,"totalTokenCount": 12},"modelVersion": "gemini-2.5-pro","responseId": "think1"}

data: {"candidates": [{"content": {"parts": [{"text": "6 × 7 = 42"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 12,"totalTokenCount": 12},"modelVersion": "gemini-2.5-pro","responseId": "think1"}

data: {"candidates": [{"content": {"parts": [{"text": "","thoughtSignature": "Cs0BAVSoXO4EXAMPLE"}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 12,"candidatesTokenCount": 8,"thoughtsTokenCount": 140,"totalTokenCount": 160},"modelVersion": "gemini-2.5-pro","responseId": "think1"}

"#;

#[test]
fn stream_thoughts() {
    let (chunks, dec) = run(THOUGHT_STREAM, ctx());
    assert_eq!(
        reasoning_of(&chunks),
        "**Planning the answer**\nI need the product of 6 and 7."
    );
    assert_eq!(content_of(&chunks), "6 × 7 = 42");
    assert_eq!(dec.usage().reasoning_tokens, 140);
    assert_json_snapshot!("stream_thoughts", chunks);
}

/// The stream and the non-stream decoders agree on the same answer.
#[test]
fn stream_matches_non_stream() {
    let (chunks, dec) = run(THOUGHT_STREAM, ctx());
    let whole = decode(json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"text": "**Planning the answer**\nI need the product of 6 and 7.", "thought": true},
                {"text": "6 × 7 = 42", "thoughtSignature": "Cs0BAVSoXO4EXAMPLE"}
            ]},
            "finishReason": "STOP", "index": 0
        }],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 8, "thoughtsTokenCount": 140, "totalTokenCount": 160},
        "modelVersion": "gemini-2.5-pro", "responseId": "think1"
    }));
    let msg = &whole["completion"]["choices"][0]["message"];
    assert_eq!(msg["content"], json!(content_of(&chunks)));
    assert_eq!(msg["reasoning_content"], json!(reasoning_of(&chunks)));
    assert_eq!(serde_json::to_value(dec.usage()).unwrap(), whole["usage"]);
}

#[test]
fn stream_blocked_prompt_and_errors() {
    let mut dec = StreamDecoder::new(ctx());
    let f = dec
        .on_data(r#"{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},"usageMetadata": {"promptTokenCount": 9,"totalTokenCount": 9},"modelVersion": "gemini-2.5-flash"}"#)
        .unwrap_err();
    assert_eq!(f.upstream_code.as_deref(), Some("content_policy_violation"));
    assert!(f.message.contains("PROHIBITED_CONTENT"), "{}", f.message);

    // An error object in the stream.
    let mut dec = StreamDecoder::new(ctx());
    dec.on_data(
        r#"{"candidates": [{"content": {"parts": [{"text": "Par"}],"role": "model"},"index": 0}]}"#,
    )
    .unwrap();
    let f = dec
        .on_data(r#"{"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}"#)
        .unwrap_err();
    assert_eq!(
        f,
        UpstreamFailure {
            class: ErrorClass::UpstreamError,
            status: None,
            message: "gemini: The model is overloaded. Please try again later.".into(),
            upstream_code: Some("UNAVAILABLE".into()),
        }
    );
    // Cut short: no finish reason before the end.
    let f = dec.finish().unwrap_err();
    assert_eq!(f.class, ErrorClass::UpstreamError);
    assert!(!dec.is_done());
    // An empty stream is cut short too.
    assert!(StreamDecoder::new(ctx()).finish().is_err());
    // Garbage is not echoed.
    let f = StreamDecoder::new(ctx())
        .on_data("<html>secret</html>")
        .unwrap_err();
    assert_eq!(f.message, "gemini: malformed stream event");
}

#[test]
fn stream_multiple_candidates() {
    let mut dec = StreamDecoder::new(ResponseContext {
        include_usage: true,
        ..ctx()
    });
    let mut chunks = Vec::new();
    for data in [
        r#"{"candidates": [{"content": {"parts": [{"text": "A"}],"role": "model"},"index": 0},{"content": {"parts": [{"text": "B"}],"role": "model"},"index": 1}]}"#,
        r#"{"candidates": [{"content": {"parts": [{"text": "a"}],"role": "model"},"finishReason": "STOP","index": 0}]}"#,
    ] {
        chunks.extend(dec.on_data(data).unwrap());
    }
    // Candidate 1 has not finished yet.
    assert!(dec.finish().is_err());
    chunks.extend(
        dec.on_data(r#"{"candidates": [{"content": {"parts": [{"text": "b"}],"role": "model"},"finishReason": "MAX_TOKENS","index": 1}],"usageMetadata": {"promptTokenCount": 3,"candidatesTokenCount": 4,"totalTokenCount": 7}}"#)
            .unwrap(),
    );
    chunks.extend(dec.finish().unwrap());
    let text = |i: u32| -> String {
        chunks
            .iter()
            .flat_map(|c| c.choices.iter())
            .filter(|ch| ch.index == i)
            .filter_map(|ch| ch.delta.content.clone())
            .collect()
    };
    assert_eq!((text(0), text(1)), ("Aa".to_owned(), "Bb".to_owned()));
    let roles = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter(|ch| ch.delta.role.is_some())
        .count();
    assert_eq!(roles, 2);
    assert!(dec.is_done());
}

fn text_event(text: &str, thought: bool, finish: bool) -> String {
    let mut part = json!({"text": text});
    if thought {
        part["thought"] = json!(true);
    }
    let mut cand = json!({"content": {"parts": [part], "role": "model"}, "index": 0});
    if finish {
        cand["finishReason"] = json!("STOP");
    }
    json!({"candidates": [cand], "modelVersion": "gemini-2.5-flash", "responseId": "p1"})
        .to_string()
}

/// Cuts `s` at the given positions (moved to char boundaries).
fn split_at(s: &str, cuts: &[usize]) -> Vec<String> {
    let mut bounds: Vec<usize> = cuts
        .iter()
        .map(|c| (*c).min(s.len()))
        .filter(|c| s.is_char_boundary(*c))
        .collect();
    bounds.push(0);
    bounds.push(s.len());
    bounds.sort_unstable();
    bounds.dedup();
    bounds
        .windows(2)
        .map(|w| s[w[0]..w[1]].to_owned())
        .collect()
}

proptest! {
    /// However Gemini splits the thoughts and the answer into events (and
    /// whether usage comes on the last event or after it), the client
    /// reassembles the same reasoning and content, and the same usage.
    #[test]
    fn text_survives_any_split(
        thought_cuts in proptest::collection::vec(0usize..40, 0..6),
        text_cuts in proptest::collection::vec(0usize..60, 0..8),
        usage_apart in any::<bool>(),
    ) {
        let thoughts = "Let me think: Zürich is ünïcode-heavy.";
        let text = "The answer — in Zürich — is 42. Ça va? 日本語も。";
        let mut evs: Vec<String> = split_at(thoughts, &thought_cuts)
            .iter()
            .map(|t| text_event(t, true, false))
            .collect();
        evs.extend(split_at(text, &text_cuts).iter().map(|t| text_event(t, false, false)));
        // The finish event carries the last piece of nothing (Gemini does both).
        evs.push(text_event("", false, true));
        let usage = json!({"promptTokenCount": 5, "candidatesTokenCount": 20, "thoughtsTokenCount": 11, "totalTokenCount": 36});
        if usage_apart {
            evs.push(json!({"usageMetadata": usage}).to_string());
        } else {
            let mut last: Value = serde_json::from_str(evs.last().unwrap()).unwrap();
            last["usageMetadata"] = usage;
            *evs.last_mut().unwrap() = last.to_string();
        }

        let mut dec = StreamDecoder::new(ResponseContext { include_usage: true, ..ctx() });
        let mut chunks = Vec::new();
        for e in &evs {
            chunks.extend(dec.on_data(e).unwrap());
        }
        chunks.extend(dec.finish().unwrap());
        prop_assert_eq!(reasoning_of(&chunks), thoughts);
        prop_assert_eq!(content_of(&chunks), text);
        let finishes: Vec<String> = chunks
            .iter()
            .flat_map(|c| c.choices.iter())
            .filter_map(|ch| ch.finish_reason.clone())
            .collect();
        prop_assert_eq!(finishes, vec!["stop".to_owned()]);
        let u = chunks.last().unwrap().usage.clone().unwrap();
        prop_assert_eq!((u.prompt_tokens, u.completion_tokens), (5, 31));
        prop_assert!(dec.is_done());
    }
}

// ---------------------------------------------------------------------------
// classify_error
// ---------------------------------------------------------------------------

fn envelope(code: u16, status: &str, message: &str, details: Value) -> Vec<u8> {
    let mut err = json!({"code": code, "message": message, "status": status});
    if !details.is_null() {
        err["details"] = details;
    }
    serde_json::to_vec(&json!({ "error": err })).unwrap()
}

#[test]
fn classify_error_table() {
    let quota_details = json!([
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
            "quotaValue": "10"
        }]},
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}
    ]);
    let key_details = json!([
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
         "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": "API key not valid. Please pass a valid API key."}
    ]);
    let cases: Vec<(&str, u16, Vec<u8>)> = vec![
        ("invalid_argument", 400, envelope(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Unknown name \"foo\": Cannot find field.", Value::Null)),
        ("context_window", 400, envelope(400, "INVALID_ARGUMENT", "The input token count (1200293) exceeds the maximum number of tokens allowed (1048576).", Value::Null)),
        ("api_key_invalid", 400, envelope(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", key_details)),
        ("failed_precondition", 400, envelope(400, "FAILED_PRECONDITION", "User location is not supported for the API use.", Value::Null)),
        ("permission_denied", 403, envelope(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", Value::Null)),
        ("unauthenticated", 401, envelope(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", Value::Null)),
        ("not_found", 404, envelope(404, "NOT_FOUND", "models/gemini-9-ultra is not found for API version v1beta, or is not supported for generateContent.", Value::Null)),
        ("resource_exhausted", 429, envelope(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.", quota_details)),
        ("resource_exhausted_bare", 429, envelope(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", Value::Null)),
        ("internal", 500, envelope(500, "INTERNAL", "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting", Value::Null)),
        ("unavailable", 503, envelope(503, "UNAVAILABLE", "The model is overloaded. Please try again later.", Value::Null)),
        ("deadline_exceeded", 504, envelope(504, "DEADLINE_EXCEEDED", "The request timed out. Please try again.", Value::Null)),
        ("array_wrapped", 400, format!("[{}]", String::from_utf8(envelope(400, "INVALID_ARGUMENT", "The input token count (3475108) exceeds the maximum number of tokens allowed (1048576).", Value::Null)).unwrap()).into_bytes()),
        ("html_body", 502, b"<html><body>502 Bad Gateway secret-internal-host.corp</body></html>".to_vec()),
        ("json_not_envelope", 503, br#"{"detail":"secret-internal-host.corp down"}"#.to_vec()),
    ];
    let table: Vec<Value> = cases
        .iter()
        .map(|(name, status, body)| {
            let f = classify_error(*status, body);
            json!({"case": name, "failure": failure_json(&f)})
        })
        .collect();
    assert_json_snapshot!("classify_error_table", table);

    let by = |name: &str| {
        let (_, s, b) = cases.iter().find(|(n, _, _)| *n == name).unwrap();
        classify_error(*s, b)
    };
    assert_eq!(
        by("context_window").upstream_code.as_deref(),
        Some("context_length_exceeded")
    );
    assert_eq!(
        by("array_wrapped").upstream_code.as_deref(),
        Some("context_length_exceeded")
    );
    assert_eq!(by("api_key_invalid").class, ErrorClass::UpstreamAuth);
    assert_eq!(by("permission_denied").class, ErrorClass::UpstreamAuth);
    assert_eq!(
        by("resource_exhausted").class,
        ErrorClass::UpstreamRateLimited
    );
    assert!(by("resource_exhausted").class.is_retryable());
    // Google's wording would read as "out of credit" to the gateway; it is not passed on.
    assert!(
        !by("resource_exhausted")
            .message
            .contains("exceeded your current quota")
    );
    assert_eq!(by("unavailable").class, ErrorClass::UpstreamError);
    assert_eq!(by("deadline_exceeded").class, ErrorClass::UpstreamTimeout);
    assert!(!by("html_body").message.contains("secret"));
    assert!(!by("json_not_envelope").message.contains("secret"));
}

#[test]
fn retry_after_from_body() {
    let body = envelope(
        429,
        "RESOURCE_EXHAUSTED",
        "quota",
        json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12.250s"}]),
    );
    assert_eq!(retry_after_seconds(&body), Some(13));
    assert_eq!(retry_after_seconds(b"not json"), None);
    assert_eq!(
        retry_after_seconds(&envelope(429, "RESOURCE_EXHAUSTED", "quota", Value::Null)),
        None
    );
}

#[test]
fn classify_never_echoes_api_keys_and_cuts_long_messages() {
    let key = "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe";
    let f = classify_error(
        400,
        &envelope(
            400,
            "INVALID_ARGUMENT",
            &format!("API key {key} is not valid for project 12345"),
            Value::Null,
        ),
    );
    assert!(!f.message.contains(key), "{}", f.message);
    assert!(f.message.contains("[redacted]"));

    let f = classify_error(
        400,
        &envelope(400, "INVALID_ARGUMENT", &"é".repeat(1000), Value::Null),
    );
    assert!(f.message.len() < 400, "{}", f.message.len());
    assert!(f.message.ends_with('…'));
}
