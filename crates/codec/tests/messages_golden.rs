//! Golden tests: Anthropic Messages at the front door over chat providers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use modelgate_api::anthropic::{MessagesRequest, StreamEvent};
use modelgate_api::openai::{ChatChunk, ChatCompletion};
use modelgate_codec::messages::{EventEncoder, ToChatOptions, encode_event, from_chat, to_chat};
use serde_json::{Value, json};

fn req(v: Value) -> MessagesRequest {
    serde_json::from_value(v).unwrap()
}

fn chat(v: Value) -> Value {
    serde_json::to_value(to_chat(&req(v), &ToChatOptions::default()).unwrap()).unwrap()
}

#[test]
fn a_tool_conversation_becomes_chat_messages() {
    let out = chat(json!({
        "model": "claude-x", "max_tokens": 256, "stream": true,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "metadata": {"user_id": "u-1"},
        "stop_sequences": ["END"], "temperature": 0.3,
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "they want weather", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]},
                {"type": "text", "text": "Thanks"}
            ]}
        ]
    }));
    assert_eq!(
        out,
        json!({
            "model": "claude-x",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather in Paris?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}
                ]},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "content": "18C", "tool_call_id": "toolu_1"},
                {"role": "user", "content": "Thanks"}
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": 256,
            "temperature": 0.3,
            "stop": ["END"],
            "user": "u-1",
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false
        })
    );
}

#[test]
fn tool_choice_and_output_limit_variants() {
    let base = |tc: Value| {
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
               "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": tc})
    };
    assert_eq!(chat(base(json!({"type": "auto"})))["tool_choice"], "auto");
    assert_eq!(chat(base(json!({"type": "none"})))["tool_choice"], "none");
    assert_eq!(
        chat(base(json!({"type": "tool", "name": "f"})))["tool_choice"],
        json!({"type": "function", "function": {"name": "f"}})
    );
    let e = to_chat(
        &req(base(json!({"type": "tool"}))),
        &ToChatOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.param, "tool_choice.name");
    let out = to_chat(
        &req(
            json!({"model": "m", "max_tokens": 7, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        &ToChatOptions {
            max_completion_tokens: true,
            ..ToChatOptions::default()
        },
    )
    .unwrap();
    assert_eq!((out.max_tokens, out.max_completion_tokens), (None, Some(7)));
    let e = to_chat(
        &req(json!({"model": "m", "max_tokens": 7, "messages": [{"role": "system", "content": "x"}]})),
        &ToChatOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.param, "messages[0].role");
}

#[test]
fn what_chat_cannot_carry_is_named_or_dropped_on_request() {
    let cases = [
        (
            json!({"thinking": {"type": "enabled", "budget_tokens": 2048}}),
            "thinking",
        ),
        (json!({"top_k": 5}), "top_k"),
        (json!({"service_tier": "auto"}), "service_tier"),
        (
            json!({"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}}),
            "output_config",
        ),
        (
            json!({"output_format": {"type": "json_schema", "schema": {"type": "object"}}}),
            "output_format",
        ),
        (json!({"brand_new_field": 1}), "brand_new_field"),
    ];
    for (extra, param) in cases {
        let mut v = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let e = to_chat(&req(v.clone()), &ToChatOptions::default()).unwrap_err();
        assert_eq!(e.param, param, "{e}");
        assert!(e.message.contains("drop_unsupported_params"), "{e}");
        if param.starts_with("output_") {
            assert!(e.message.contains("structured output"), "{e}");
        }
        let dropped = to_chat(
            &req(v),
            &ToChatOptions {
                drop_unsupported: true,
                ..ToChatOptions::default()
            },
        )
        .unwrap();
        assert!(dropped.extra.is_empty());
    }
    let doc = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}
    ]}]});
    let e = to_chat(&req(doc), &ToChatOptions::default()).unwrap_err();
    assert_eq!(e.param, "messages[0].content[0]");
    assert!(e.message.contains("\"document\""), "{e}");
}

#[test]
fn a_completion_becomes_a_message() {
    let c: ChatCompletion = serde_json::from_value(json!({
        "id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me check.", "reasoning_content": "hmm",
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}},
                {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "not json"}}
            ]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                  "prompt_tokens_details": {"cached_tokens": 40}}
    }))
    .unwrap();
    assert_eq!(
        serde_json::to_value(from_chat(&c)).unwrap(),
        json!({
            "id": "msg_chatcmpl-9", "type": "message", "role": "assistant", "model": "gpt-4o-2024",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": ""},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_a", "name": "f", "input": {"x": 1}},
                {"type": "tool_use", "id": "call_b", "name": "g", "input": {"_raw_arguments": "not json"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 60, "output_tokens": 20, "cache_read_input_tokens": 40}
        })
    );
    for (finish, stop) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
    ] {
        let mut c = c.clone();
        c.choices[0].finish_reason = Some(finish.into());
        assert_eq!(from_chat(&c).stop_reason.as_deref(), Some(stop));
    }
}

fn chunk(v: Value) -> ChatChunk {
    let mut base = json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-2024", "choices": []});
    base.as_object_mut()
        .unwrap()
        .extend(v.as_object().unwrap().clone());
    serde_json::from_value(base).unwrap()
}

fn delta(d: Value, finish: Value) -> ChatChunk {
    chunk(json!({"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}))
}

#[test]
fn a_chat_stream_becomes_messages_events() {
    let mut enc = EventEncoder::new("req-1", "alias", 12);
    let mut events: Vec<StreamEvent> = Vec::new();
    for c in [
        delta(json!({"role": "assistant", "content": ""}), Value::Null),
        delta(json!({"reasoning_content": "think"}), Value::Null),
        delta(json!({"content": "Hel"}), Value::Null),
        delta(json!({"content": "lo"}), Value::Null),
        delta(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
            Value::Null,
        ),
        delta(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
            Value::Null,
        ),
        delta(
            json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}),
            Value::Null,
        ),
        delta(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            Value::Null,
        ),
        delta(json!({}), json!("tool_calls")),
        chunk(json!({"usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39}})),
    ] {
        events.extend(enc.on_chunk(&c));
    }
    events.extend(enc.finish());
    let got: Vec<Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let expected = vec![
        json!({"type": "message_start", "message": {"id": "msg_chatcmpl-s", "type": "message", "role": "assistant", "model": "gpt-4o-2024", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 12, "output_tokens": 0}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "think"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hel"}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "lo"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
        json!({"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "call_2", "name": "g", "input": {}}}),
        json!({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "content_block_stop", "index": 3}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"input_tokens": 30, "output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ];
    assert_eq!(got, expected);
    // Nothing after the end.
    assert!(enc.finish().is_empty());
}

#[test]
fn events_are_framed_with_their_names() {
    let mut buf = Vec::new();
    encode_event(&mut buf, &StreamEvent::MessageStop);
    assert_eq!(
        String::from_utf8(buf).unwrap(),
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
    );
    let mut enc = EventEncoder::new("x", "m", 0);
    let e = enc.error("overloaded_error", "busy");
    let mut buf = Vec::new();
    encode_event(&mut buf, &e);
    assert_eq!(
        String::from_utf8(buf).unwrap(),
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n"
    );
    // An empty stream still produces a well-formed message.
    let mut enc = EventEncoder::new("req-9", "m", 3);
    let names: Vec<String> = enc
        .finish()
        .iter()
        .map(|e| {
            serde_json::to_value(e).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["message_start", "message_delta", "message_stop"]);
}
