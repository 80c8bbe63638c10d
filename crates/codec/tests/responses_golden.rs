//! Golden tests: OpenAI Responses at the front door over chat providers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use modelgate_api::openai::{ChatChunk, ChatCompletion};
use modelgate_api::responses::{ResponseStreamEvent, ResponsesRequest};
use modelgate_codec::responses::{
    Echo, EventEncoder, ToChatOptions, encode_event, from_chat, to_chat,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn req(v: Value) -> ResponsesRequest {
    serde_json::from_value(v).unwrap()
}

fn chat(v: Value) -> Value {
    serde_json::to_value(to_chat(&req(v), &ToChatOptions::default()).unwrap()).unwrap()
}

fn dropping() -> ToChatOptions {
    ToChatOptions {
        drop_unsupported: true,
        ..ToChatOptions::default()
    }
}

#[test]
fn instructions_and_a_tool_conversation_become_chat_messages() {
    let schema = json!({"type": "object", "properties": {"temp": {"type": "number"}}, "required": ["temp"], "additionalProperties": false});
    let params =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let out = chat(json!({
        "model": "gpt-x", "instructions": "Be brief.", "stream": true,
        "max_output_tokens": 300, "temperature": 0.2, "top_p": 0.9,
        "user": "u-1", "metadata": {"trace": "t1"}, "store": true,
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k",
        "truncation": "disabled", "service_tier": "auto",
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": true}},
        "tools": [{"type": "function", "name": "get_weather", "description": "Weather", "parameters": params, "strict": true}],
        "tool_choice": "required", "parallel_tool_calls": false,
        "input": [
            {"role": "developer", "content": "Answer in JSON."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Here is a map"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBOR", "detail": "low"}
            ]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "two cities"}], "encrypted_content": "gAAA"},
            {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Checking both.", "annotations": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
            {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": "{\"city\":\"Rome\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "21C"}]},
            {"role": "user", "content": [{"type": "input_text", "text": "Thanks"}]}
        ]
    }));
    assert_eq!(
        out,
        json!({
            "model": "gpt-x",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": "Answer in JSON."},
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "user", "content": [
                    {"type": "text", "text": "Here is a map"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR", "detail": "low"}}
                ]},
                {"role": "assistant", "content": "Checking both.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
                ]},
                {"role": "tool", "content": "18C", "tool_call_id": "call_1"},
                {"role": "tool", "content": "21C", "tool_call_id": "call_2"},
                {"role": "user", "content": "Thanks"}
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": 300,
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "u-1",
            "metadata": {"trace": "t1"},
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": params, "strict": true}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": true}},
            "reasoning_effort": "low"
        })
    );
}

#[test]
fn a_function_call_opening_a_turn_is_its_own_assistant_message() {
    let out = chat(json!({"model": "m", "input": [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"}
    ]}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "content": "ok", "tool_call_id": "c1"},
            {"role": "assistant", "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
        ])
    );
}

#[test]
fn tool_choice_format_and_output_limit_variants() {
    let base = |tc: Value| {
        json!({"model": "m", "input": "hi",
               "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}], "tool_choice": tc})
    };
    assert_eq!(chat(base(json!("auto")))["tool_choice"], "auto");
    assert_eq!(chat(base(json!("none")))["tool_choice"], "none");
    assert_eq!(chat(base(json!("required")))["tool_choice"], "required");
    assert_eq!(
        chat(base(json!({"type": "function", "name": "f"})))["tool_choice"],
        json!({"type": "function", "function": {"name": "f"}})
    );
    let e = to_chat(
        &req(base(json!({"type": "function"}))),
        &ToChatOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.param, "tool_choice.name");
    let e = to_chat(&req(base(json!("sometimes"))), &ToChatOptions::default()).unwrap_err();
    assert_eq!(e.param, "tool_choice");
    for tc in [
        json!({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f"}]}),
        json!({"type": "web_search_preview"}),
    ] {
        let e = to_chat(&req(base(tc.clone())), &ToChatOptions::default()).unwrap_err();
        assert_eq!(e.param, "tool_choice");
        let out = to_chat(&req(base(tc)), &dropping()).unwrap();
        assert_eq!(out.tool_choice, None);
    }

    // A string input is one user message; no tools means no tool settings.
    let out = chat(
        json!({"model": "m", "input": "hi", "tool_choice": "auto", "parallel_tool_calls": true,
                          "safety_identifier": "hash-1", "text": {"format": {"type": "text"}, "verbosity": "medium"}}),
    );
    assert_eq!(
        out,
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "user": "hash-1"})
    );

    assert_eq!(
        chat(json!({"model": "m", "input": "hi", "text": {"format": {"type": "json_object"}}}))["response_format"],
        json!({"type": "json_object"})
    );
    let e = to_chat(
        &req(json!({"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}})),
        &ToChatOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.param, "text.format.schema");
    let e = to_chat(
        &req(json!({"model": "m", "input": "hi", "text": {"format": {"type": "grammar"}}})),
        &ToChatOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.param, "text.format.type");

    let out = to_chat(
        &req(json!({"model": "m", "input": "hi", "max_output_tokens": 7})),
        &ToChatOptions {
            max_completion_tokens: true,
            ..ToChatOptions::default()
        },
    )
    .unwrap();
    assert_eq!((out.max_tokens, out.max_completion_tokens), (None, Some(7)));

    let e = to_chat(
        &req(json!({"model": "m", "input": [{"role": "critic", "content": "x"}]})),
        &ToChatOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.param, "input[0].role");
    let e = to_chat(&req(json!({"model": "m"})), &ToChatOptions::default()).unwrap_err();
    assert_eq!(e.param, "input");
}

#[test]
fn what_chat_cannot_carry_is_named_or_dropped_on_request() {
    let cases = [
        (
            json!({"previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (json!({"conversation": "conv_1"}), "conversation"),
        (json!({"prompt": {"id": "pmpt_1"}}), "prompt"),
        (json!({"background": true}), "background"),
        (
            json!({"tools": [{"type": "function", "name": "f", "parameters": {}}, {"type": "web_search"}]}),
            "tools[1]",
        ),
        (
            json!({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}),
            "tools[0]",
        ),
        (
            json!({"include": ["reasoning.encrypted_content", "message.output_text.logprobs"]}),
            "include[1]",
        ),
        (json!({"truncation": "auto"}), "truncation"),
        (json!({"service_tier": "flex"}), "service_tier"),
        (json!({"top_logprobs": 3}), "top_logprobs"),
        (json!({"text": {"verbosity": "low"}}), "text.verbosity"),
        (
            json!({"reasoning": {"effort": "low", "mode": "pro"}}),
            "reasoning.mode",
        ),
        (json!({"brand_new_field": 1}), "brand_new_field"),
    ];
    for (extra, param) in cases {
        let mut v = json!({"model": "m", "input": "hi"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let e = to_chat(&req(v.clone()), &ToChatOptions::default()).unwrap_err();
        assert_eq!(e.param, param, "{e}");
        assert!(e.message.contains("drop_unsupported_params"), "{e}");
        let dropped = to_chat(&req(v), &dropping()).unwrap();
        assert!(dropped.extra.keys().all(|k| k == "reasoning_effort"));
        assert!(dropped.tools.iter().flatten().all(|t| t.kind == "function"));
    }
    // A request whose only tool was dropped sends no tool settings at all.
    let out = to_chat(
        &req(json!({"model": "m", "input": "hi", "tools": [{"type": "web_search"}], "tool_choice": "required"})),
        &dropping(),
    )
    .unwrap();
    assert_eq!((out.tools, out.tool_choice), (None, None));

    // Parts and items.
    let cases = [
        (
            json!([{"role": "user", "content": [{"type": "input_text", "text": "see"}, {"type": "input_image", "file_id": "file-1", "detail": "auto"}]}]),
            "input[0].content[1].file_id",
        ),
        (
            json!([{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]),
            "input[0].content[0]",
        ),
        (
            json!([{"role": "user", "content": "hi"}, {"type": "item_reference", "id": "msg_1"}]),
            "input[1]",
        ),
        (
            json!([{"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "q"}}]),
            "input[0]",
        ),
        (
            json!([{"type": "function_call_output", "call_id": "c", "output": [{"type": "input_image", "image_url": "https://x/y.png"}]}]),
            "input[0].output[0]",
        ),
    ];
    for (input, param) in cases {
        let v = json!({"model": "m", "input": input});
        let e = to_chat(&req(v.clone()), &ToChatOptions::default()).unwrap_err();
        assert_eq!(e.param, param, "{e}");
        to_chat(&req(v), &dropping()).unwrap();
    }
    let e = to_chat(
        &req(json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]})),
        &ToChatOptions::default(),
    )
    .unwrap_err();
    assert!(e.message.contains("\"input_file\""), "{e}");
    // A part with neither a URL nor a file id is malformed, not unsupported.
    let e = to_chat(
        &req(json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "detail": "auto"}]}]})),
        &dropping(),
    )
    .unwrap_err();
    assert_eq!(e.param, "input[0].content[0].image_url");

    // Defaults and no-op hints are accepted as they are.
    for ok in [
        json!({"store": true}),
        json!({"store": false}),
        json!({"background": false}),
        json!({"previous_response_id": null}),
        json!({"truncation": "disabled"}),
        json!({"service_tier": "default"}),
        json!({"top_logprobs": 0}),
        json!({"max_tool_calls": 3}),
        json!({"prompt_cache_key": "k"}),
        json!({"stream_options": {"include_obfuscation": false}}),
        json!({"reasoning": {"summary": "detailed", "generate_summary": "auto"}}),
        json!({"include": ["reasoning.encrypted_content", "file_search_call.results"]}),
    ] {
        let mut v = json!({"model": "m", "input": "hi"});
        v.as_object_mut()
            .unwrap()
            .extend(ok.as_object().unwrap().clone());
        let out = to_chat(&req(v), &ToChatOptions::default()).unwrap();
        assert!(out.extra.is_empty(), "{ok}");
    }
}

/// A full `response` object with the echo of a request that set nothing.
fn response(id: &str, created_at: u64, status: &str, output: Value, usage: Value) -> Value {
    json!({
        "id": id, "object": "response", "created_at": created_at, "status": status,
        "background": false, "error": null, "incomplete_details": null,
        "instructions": null, "max_output_tokens": null, "max_tool_calls": null,
        "model": "gpt-4o-2024", "output": output, "parallel_tool_calls": true,
        "previous_response_id": null, "prompt_cache_key": null,
        "reasoning": {"effort": null, "summary": null}, "safety_identifier": null,
        "service_tier": null, "store": false, "temperature": null,
        "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
        "top_logprobs": null, "top_p": null, "truncation": "disabled",
        "usage": usage, "user": null, "metadata": {}
    })
}

fn completion(v: Value) -> ChatCompletion {
    serde_json::from_value(v).unwrap()
}

#[test]
fn a_completion_becomes_a_response_echoing_the_request() {
    let request = req(json!({
        "model": "alias", "input": "hi", "instructions": "Be brief.", "store": true,
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": true}],
        "tool_choice": {"type": "function", "name": "f"}, "parallel_tool_calls": false,
        "temperature": 0.5, "top_p": 0.8, "max_output_tokens": 100, "user": "u-1",
        "metadata": {"trace": "t1"}, "reasoning": {"effort": "high"},
        "text": {"verbosity": "medium"}, "prompt_cache_key": "k", "safety_identifier": "s",
        "service_tier": "auto"
    }));
    let c = completion(json!({
        "id": "chatcmpl-9", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-2024",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me check.", "reasoning_content": "hmm",
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}},
                {"id": "call_b", "type": "function", "function": {"name": "f", "arguments": "not json"}}
            ]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                  "prompt_tokens_details": {"cached_tokens": 40},
                  "completion_tokens_details": {"reasoning_tokens": 5}}
    }));
    assert_eq!(
        serde_json::to_value(from_chat(&c, &Echo::from_request(&request))).unwrap(),
        json!({
            "id": "resp_chatcmpl-9", "object": "response", "created_at": 1700000000, "status": "completed",
            "background": false, "error": null, "incomplete_details": null,
            "instructions": "Be brief.", "max_output_tokens": 100, "max_tool_calls": null,
            "model": "gpt-4o-2024",
            "output": [
                {"type": "reasoning", "id": "rs_chatcmpl-9", "summary": [{"type": "summary_text", "text": "hmm"}]},
                {"type": "message", "id": "msg_chatcmpl-9", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}]},
                {"type": "function_call", "id": "fc_call_a", "call_id": "call_a", "name": "f", "arguments": "{\"x\":1}", "status": "completed"},
                {"type": "function_call", "id": "fc_call_b", "call_id": "call_b", "name": "f", "arguments": "not json", "status": "completed"}
            ],
            "parallel_tool_calls": false, "previous_response_id": null, "prompt_cache_key": "k",
            "reasoning": {"effort": "high", "summary": null}, "safety_identifier": "s",
            "service_tier": "auto", "store": false, "temperature": 0.5,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": {"type": "function", "name": "f"},
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": true}],
            "top_logprobs": null, "top_p": 0.8, "truncation": "disabled",
            "usage": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 40},
                      "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 5},
                      "total_tokens": 120},
            "user": "u-1", "metadata": {"trace": "t1"}
        })
    );
}

#[test]
fn a_cut_off_or_refused_completion_is_incomplete_or_a_refusal() {
    let text = |finish: &str| {
        completion(json!({
            "id": "chatcmpl-2", "object": "chat.completion", "created": 5, "model": "gpt-4o-2024",
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": "Once upon"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        }))
    };
    let mut expected = response(
        "resp_chatcmpl-2",
        5,
        "incomplete",
        json!([{"type": "message", "id": "msg_chatcmpl-2", "status": "incomplete", "role": "assistant",
                "content": [{"type": "output_text", "text": "Once upon", "annotations": []}]}]),
        json!({"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0},
               "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 5}),
    );
    expected["incomplete_details"] = json!({"reason": "max_output_tokens"});
    assert_eq!(
        serde_json::to_value(from_chat(&text("length"), &Echo::default())).unwrap(),
        expected
    );
    let r = from_chat(&text("content_filter"), &Echo::default());
    assert_eq!(
        (
            r.status.as_str(),
            r.incomplete_details.unwrap().reason.as_str()
        ),
        ("incomplete", "content_filter")
    );
    let r = from_chat(&text("stop"), &Echo::default());
    assert_eq!(
        (r.status.as_str(), r.incomplete_details),
        ("completed", None)
    );

    let refused = completion(json!({
        "id": "chatcmpl-3", "object": "chat.completion", "created": 5, "model": "gpt-4o-2024",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}}]
    }));
    assert_eq!(
        serde_json::to_value(from_chat(&refused, &Echo::default())).unwrap(),
        response(
            "resp_chatcmpl-3",
            5,
            "completed",
            json!([{"type": "message", "id": "msg_chatcmpl-3", "status": "completed", "role": "assistant",
                    "content": [{"type": "refusal", "refusal": "I can't help with that."}]}]),
            Value::Null
        )
    );
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

fn run(enc: &mut EventEncoder, chunks: &[ChatChunk]) -> Vec<Value> {
    let mut events: Vec<ResponseStreamEvent> = Vec::new();
    for c in chunks {
        events.extend(enc.on_chunk(c));
    }
    events.extend(enc.finish());
    events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

/// Replays events the way the official SDKs' stream accumulators do
/// (`output[output_index].content[content_index]`, ...), checking every
/// index and id on the way, and returns the accumulated `output`.
fn accumulate(events: &[Value]) -> Vec<Value> {
    let mut output: Vec<Value> = Vec::new();
    assert_eq!(events[0]["type"], "response.created");
    for (n, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], json!(n), "{e}");
        let kind = e["type"].as_str().unwrap();
        if !kind.starts_with("response.output_item.added") && e.get("output_index").is_some() {
            let i = e["output_index"].as_u64().unwrap() as usize;
            let item_id = e.get("item_id").or_else(|| e["item"].get("id"));
            assert_eq!(item_id, output[i].get("id"), "{e}");
        }
        let index = || e["output_index"].as_u64().unwrap() as usize;
        match kind {
            "response.output_item.added" => {
                assert_eq!(e["output_index"], json!(output.len()), "{e}");
                output.push(e["item"].clone());
            }
            "response.content_part.added" => {
                let i = index();
                let content = output[i]["content"].as_array_mut().unwrap();
                assert_eq!(e["content_index"], json!(content.len()), "{e}");
                content.push(e["part"].clone());
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                let i = index();
                let c = e["content_index"].as_u64().unwrap() as usize;
                let part = &mut output[i]["content"][c];
                let field = if kind == "response.output_text.delta" {
                    assert_eq!(part["type"], "output_text");
                    "text"
                } else {
                    assert_eq!(part["type"], "refusal");
                    "refusal"
                };
                let text = format!(
                    "{}{}",
                    part[field].as_str().unwrap(),
                    e["delta"].as_str().unwrap()
                );
                part[field] = json!(text);
            }
            "response.output_text.done" => {
                let i = index();
                let c = e["content_index"].as_u64().unwrap() as usize;
                assert_eq!(output[i]["content"][c]["text"], e["text"]);
            }
            "response.content_part.done" => {
                let i = index();
                let c = e["content_index"].as_u64().unwrap() as usize;
                assert_eq!(output[i]["content"][c], e["part"]);
            }
            "response.function_call_arguments.delta" => {
                let i = index();
                assert_eq!(output[i]["type"], "function_call");
                let args = format!(
                    "{}{}",
                    output[i]["arguments"].as_str().unwrap(),
                    e["delta"].as_str().unwrap()
                );
                output[i]["arguments"] = json!(args);
            }
            "response.function_call_arguments.done" => {
                let i = index();
                assert_eq!(output[i]["arguments"], e["arguments"]);
                assert_eq!(output[i]["name"], e["name"]);
            }
            "response.reasoning_summary_part.added" => {
                let i = index();
                let summary = output[i]["summary"].as_array_mut().unwrap();
                assert_eq!(e["summary_index"], json!(summary.len()));
                summary.push(e["part"].clone());
            }
            "response.reasoning_summary_text.delta" => {
                let i = index();
                let s = e["summary_index"].as_u64().unwrap() as usize;
                let part = &mut output[i]["summary"][s];
                let text = format!(
                    "{}{}",
                    part["text"].as_str().unwrap(),
                    e["delta"].as_str().unwrap()
                );
                part["text"] = json!(text);
            }
            "response.output_item.done" => {
                let i = index();
                let mut got = output[i].clone();
                got["status"] = e["item"]["status"].clone();
                if e["item"].get("status").is_none() {
                    got.as_object_mut().unwrap().remove("status");
                }
                assert_eq!(
                    got, e["item"],
                    "accumulated item differs from its done event"
                );
                output[i] = e["item"].clone();
            }
            "response.completed" | "response.incomplete" => {
                assert_eq!(n, events.len() - 1, "the terminal event comes last");
                assert_eq!(e["response"]["output"], json!(output));
            }
            _ => {}
        }
    }
    output
}

#[test]
fn a_chat_stream_becomes_responses_events() {
    let mut enc = EventEncoder::new("req-1", "alias", 1700000000, Echo::default());
    let events = run(
        &mut enc,
        &[
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
            chunk(
                json!({"usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39,
                                   "prompt_tokens_details": {"cached_tokens": 10},
                                   "completion_tokens_details": {"reasoning_tokens": 2}}}),
            ),
        ],
    );
    let in_progress = response("resp_chatcmpl-s", 1, "in_progress", json!([]), Value::Null);
    let reasoning = json!({"type": "reasoning", "id": "rs_chatcmpl-s", "summary": [{"type": "summary_text", "text": "think"}]});
    let message = json!({"type": "message", "id": "msg_chatcmpl-s_1", "status": "completed", "role": "assistant",
                         "content": [{"type": "output_text", "text": "Hello", "annotations": []}]});
    let call_1 = json!({"type": "function_call", "id": "fc_call_1", "call_id": "call_1", "name": "f", "arguments": "{\"a\":1}", "status": "completed"});
    let call_2 = json!({"type": "function_call", "id": "fc_call_2", "call_id": "call_2", "name": "g", "arguments": "{}", "status": "completed"});
    let expected = vec![
        json!({"type": "response.created", "response": in_progress, "sequence_number": 0}),
        json!({"type": "response.in_progress", "response": in_progress, "sequence_number": 1}),
        json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs_chatcmpl-s", "summary": []}, "sequence_number": 2}),
        json!({"type": "response.reasoning_summary_part.added", "item_id": "rs_chatcmpl-s", "output_index": 0, "summary_index": 0, "part": {"type": "summary_text", "text": ""}, "sequence_number": 3}),
        json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_chatcmpl-s", "output_index": 0, "summary_index": 0, "delta": "think", "sequence_number": 4}),
        json!({"type": "response.reasoning_summary_text.done", "item_id": "rs_chatcmpl-s", "output_index": 0, "summary_index": 0, "text": "think", "sequence_number": 5}),
        json!({"type": "response.reasoning_summary_part.done", "item_id": "rs_chatcmpl-s", "output_index": 0, "summary_index": 0, "part": {"type": "summary_text", "text": "think"}, "sequence_number": 6}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": reasoning, "sequence_number": 7}),
        json!({"type": "response.output_item.added", "output_index": 1, "item": {"type": "message", "id": "msg_chatcmpl-s_1", "status": "in_progress", "role": "assistant", "content": []}, "sequence_number": 8}),
        json!({"type": "response.content_part.added", "item_id": "msg_chatcmpl-s_1", "output_index": 1, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}, "sequence_number": 9}),
        json!({"type": "response.output_text.delta", "item_id": "msg_chatcmpl-s_1", "output_index": 1, "content_index": 0, "delta": "Hel", "logprobs": [], "sequence_number": 10}),
        json!({"type": "response.output_text.delta", "item_id": "msg_chatcmpl-s_1", "output_index": 1, "content_index": 0, "delta": "lo", "logprobs": [], "sequence_number": 11}),
        json!({"type": "response.output_text.done", "item_id": "msg_chatcmpl-s_1", "output_index": 1, "content_index": 0, "text": "Hello", "logprobs": [], "sequence_number": 12}),
        json!({"type": "response.content_part.done", "item_id": "msg_chatcmpl-s_1", "output_index": 1, "content_index": 0, "part": {"type": "output_text", "text": "Hello", "annotations": []}, "sequence_number": 13}),
        json!({"type": "response.output_item.done", "output_index": 1, "item": message, "sequence_number": 14}),
        json!({"type": "response.output_item.added", "output_index": 2, "item": {"type": "function_call", "id": "fc_call_1", "call_id": "call_1", "name": "f", "arguments": "", "status": "in_progress"}, "sequence_number": 15}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_call_1", "output_index": 2, "delta": "{\"a\":", "sequence_number": 16}),
        json!({"type": "response.output_item.added", "output_index": 3, "item": {"type": "function_call", "id": "fc_call_2", "call_id": "call_2", "name": "g", "arguments": "", "status": "in_progress"}, "sequence_number": 17}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_call_2", "output_index": 3, "delta": "{}", "sequence_number": 18}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_call_1", "output_index": 2, "delta": "1}", "sequence_number": 19}),
        json!({"type": "response.function_call_arguments.done", "item_id": "fc_call_1", "output_index": 2, "name": "f", "arguments": "{\"a\":1}", "sequence_number": 20}),
        json!({"type": "response.output_item.done", "output_index": 2, "item": call_1, "sequence_number": 21}),
        json!({"type": "response.function_call_arguments.done", "item_id": "fc_call_2", "output_index": 3, "name": "g", "arguments": "{}", "sequence_number": 22}),
        json!({"type": "response.output_item.done", "output_index": 3, "item": call_2, "sequence_number": 23}),
        json!({"type": "response.completed", "sequence_number": 24, "response": response(
            "resp_chatcmpl-s", 1, "completed",
            json!([reasoning, message, call_1, call_2]),
            json!({"input_tokens": 30, "input_tokens_details": {"cached_tokens": 10},
                   "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 39})
        )}),
    ];
    assert_eq!(events.len(), expected.len());
    for (got, want) in events.iter().zip(&expected) {
        assert_eq!(got, want);
    }
    accumulate(&events);
    // Nothing after the end.
    assert!(enc.finish().is_empty());
    assert!(
        enc.on_chunk(&delta(json!({"content": "late"}), Value::Null))
            .is_empty()
    );
}

#[test]
fn a_stream_cut_at_the_limit_ends_incomplete() {
    let mut enc = EventEncoder::new("req-2", "alias", 9, Echo::default());
    let events = run(
        &mut enc,
        &[
            delta(json!({"content": "Once"}), Value::Null),
            delta(json!({"refusal": "No."}), Value::Null),
            delta(json!({"content": " upon"}), json!("length")),
        ],
    );
    let output = accumulate(&events);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.content_part.added",
            "response.refusal.delta",
            "response.refusal.done",
            "response.content_part.done",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.incomplete",
        ]
    );
    let message = json!({"type": "message", "id": "msg_chatcmpl-s", "status": "incomplete", "role": "assistant", "content": [
        {"type": "output_text", "text": "Once", "annotations": []},
        {"type": "refusal", "refusal": "No."},
        {"type": "output_text", "text": " upon", "annotations": []}
    ]});
    assert_eq!(output, vec![message.clone()]);
    let mut expected = response(
        "resp_chatcmpl-s",
        1,
        "incomplete",
        json!([message]),
        Value::Null,
    );
    expected["incomplete_details"] = json!({"reason": "max_output_tokens"});
    assert_eq!(events[16]["response"], expected);
}

#[test]
fn events_are_framed_with_their_names_and_even_empty_streams_are_well_formed() {
    // An empty stream: created, in_progress, completed, with the fallback id.
    let mut enc = EventEncoder::new("req-9", "alias", 42, Echo::default());
    let events: Vec<ResponseStreamEvent> = enc.finish();
    let mut buf = Vec::new();
    for e in &events {
        encode_event(&mut buf, e);
    }
    let text = String::from_utf8(buf).unwrap();
    let frames: Vec<&str> = text.split_terminator("\n\n").collect();
    assert_eq!(frames.len(), 3);
    for (frame, (name, n)) in frames.iter().zip([
        ("response.created", 0),
        ("response.in_progress", 1),
        ("response.completed", 2),
    ]) {
        let (head, data) = frame.split_once('\n').unwrap();
        assert_eq!(head, format!("event: {name}"));
        let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["sequence_number"].as_u64()),
            (Some(name), Some(n))
        );
    }
    let mut expected = response("resp_req-9", 42, "completed", json!([]), Value::Null);
    expected["model"] = json!("alias");
    assert_eq!(
        serde_json::to_value(&events[2]).unwrap()["response"],
        expected
    );

    // A delta frame, byte for byte.
    let mut buf = Vec::new();
    encode_event(
        &mut buf,
        &ResponseStreamEvent::OutputTextDelta {
            item_id: "msg_1".into(),
            output_index: 0,
            content_index: 0,
            delta: "Hi".into(),
            logprobs: vec![],
            sequence_number: 4,
        },
    );
    assert_eq!(
        String::from_utf8(buf).unwrap(),
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\",\"logprobs\":[],\"sequence_number\":4}\n\n"
    );

    // A failure mid-stream ends with response.failed, numbered on.
    let mut enc = EventEncoder::new("req-3", "alias", 7, Echo::default());
    let first = enc.on_chunk(&delta(json!({"content": "Hi"}), Value::Null));
    assert_eq!(first.len(), 5);
    let failed = enc.fail("server_error", "upstream stream ended unexpectedly");
    let v = serde_json::to_value(&failed[0]).unwrap();
    assert_eq!(v["type"], "response.failed");
    assert_eq!(v["sequence_number"], 5);
    assert_eq!(v["response"]["status"], "failed");
    assert_eq!(
        v["response"]["error"],
        json!({"code": "server_error", "message": "upstream stream ended unexpectedly"})
    );
    assert!(enc.finish().is_empty());
    // A failure before anything was sent still opens with response.created.
    let mut enc = EventEncoder::new("req-4", "alias", 7, Echo::default());
    let failed = enc.fail("rate_limit_exceeded", "slow down");
    let types: Vec<&str> = failed.iter().map(|e| e.event_type()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.failed"
        ]
    );

    // The stream-level error event: documented flat fields and the live nested object.
    let mut enc = EventEncoder::new("req-5", "alias", 7, Echo::default());
    let _ = enc.on_chunk(&delta(json!({"content": "Hi"}), Value::Null));
    let mut buf = Vec::new();
    encode_event(
        &mut buf,
        &enc.error("rate_limit_error", "rate_limit_exceeded", "slow down"),
    );
    assert_eq!(
        String::from_utf8(buf).unwrap(),
        "event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"slow down\",\"param\":null,\"error\":{\"type\":\"rate_limit_error\",\"code\":\"rate_limit_exceeded\",\"message\":\"slow down\",\"param\":null},\"sequence_number\":5}\n\n"
    );
    assert!(enc.finish().is_empty());
}

/// The text of all `output_text` parts of a response, as the SDKs'
/// `output_text` property computes it.
fn output_text(response: &Value) -> String {
    let mut out = String::new();
    for item in response["output"].as_array().unwrap() {
        for part in item["content"].as_array().into_iter().flatten() {
            if part["type"] == "output_text" {
                out.push_str(part["text"].as_str().unwrap());
            }
        }
    }
    out
}

proptest! {
    #[test]
    fn concatenated_text_deltas_equal_the_final_text(
        pieces in proptest::collection::vec("\\PC{0,6}", 0..10),
        args in proptest::collection::vec("[a-z{}\":,0-9]{0,5}", 0..4),
        finish in prop_oneof![Just("stop"), Just("length"), Just("tool_calls")],
    ) {
        let mut enc = EventEncoder::new("req-p", "alias", 1, Echo::default());
        let mut chunks: Vec<ChatChunk> = pieces
            .iter()
            .map(|p| delta(json!({"content": p}), Value::Null))
            .collect();
        if !args.is_empty() {
            chunks.push(delta(json!({"tool_calls": [{"index": 0, "id": "call_p", "function": {"name": "f", "arguments": ""}}]}), Value::Null));
            for a in &args {
                chunks.push(delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}), Value::Null));
            }
        }
        chunks.push(delta(json!({}), json!(finish)));
        let events = run(&mut enc, &chunks);
        accumulate(&events);
        let deltas: String = events
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .map(|e| e["delta"].as_str().unwrap().to_owned())
            .collect();
        let last = events.last().unwrap();
        prop_assert_eq!(&deltas, &pieces.concat());
        prop_assert_eq!(deltas, output_text(&last["response"]));
        let arg_deltas: String = events
            .iter()
            .filter(|e| e["type"] == "response.function_call_arguments.delta")
            .map(|e| e["delta"].as_str().unwrap().to_owned())
            .collect();
        prop_assert_eq!(arg_deltas, args.concat());
        let terminal = if finish == "length" { "response.incomplete" } else { "response.completed" };
        prop_assert_eq!(last["type"].as_str(), Some(terminal));
    }
}
