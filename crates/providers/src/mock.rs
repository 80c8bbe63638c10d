//! The built-in mock provider: no network, behaviour chosen by model name.
//!
//! A mock model is named `mock/<behaviour>[?param=value&...]` (or configured
//! with `provider: mock, model: <behaviour>[?...]`). Behaviours:
//!
//! | behaviour | what it does |
//! |---|---|
//! | `echo` | answers with the last user message |
//! | `text` (alias `hello`) | answers with a fixed sentence, or `words=N` generated words |
//! | `tool` | calls the first tool of the request (or `get_weather`) with sample arguments |
//! | `error-<status>` | fails with that HTTP status (`error-429` sends `Retry-After`, `retry_after=N` seconds, default 1) |
//! | `stall` | never answers (the deployment's request timeout fires) |
//! | `stream-error` | streams some content, then fails mid-stream |
//!
//! Parameters: `chunks=N` (content chunks in a stream), `delay_ms=N` (gap
//! between chunks), `ttft_ms=N` (wait before the first byte), `words=N`,
//! `retry_after=N`. Any non-error mock also serves `/v1/embeddings` with
//! deterministic unit vectors (`dimensions` honoured, default 16).

use std::time::Duration;

use bytes::Bytes;
use modelgate_api::openai::{
    ChatChunk, ChatCompletion, ChatRequest, Choice, ChunkChoice, Delta, EmbeddingsRequest,
    FunctionCall, FunctionCallDelta, MessageContent, ResponseMessage, Role, ToolCall,
    ToolCallDelta, Usage as WireUsage,
};
use modelgate_codec::{UpstreamFailure, class_for_status};
use modelgate_core::{ErrorClass, Usage, estimate_tokens};

use crate::{CallContext, CallError, ChatReply, ChatStream, EmbeddingsReply, StreamItem};

/// The behaviours, for listings and error messages.
pub const BEHAVIOURS: [&str; 7] = [
    "echo",
    "text",
    "hello",
    "tool",
    "error-<status>",
    "stall",
    "stream-error",
];

/// What a mock model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Echo,
    Text,
    Tool,
    Error(u16),
    Stall,
    StreamError,
}

/// A parsed mock model name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockSpec {
    pub behaviour: Behaviour,
    pub chunks: Option<u32>,
    pub delay: Duration,
    pub ttft: Duration,
    pub words: Option<u32>,
    pub retry_after: u64,
}

/// Parses `behaviour[?k=v&...]`.
pub fn parse(name: &str) -> Result<MockSpec, String> {
    let (base, query) = name.split_once('?').unwrap_or((name, ""));
    let behaviour = match base {
        "echo" => Behaviour::Echo,
        "text" | "hello" => Behaviour::Text,
        "tool" => Behaviour::Tool,
        "stall" => Behaviour::Stall,
        "stream-error" => Behaviour::StreamError,
        other => match other
            .strip_prefix("error-")
            .and_then(|s| s.parse::<u16>().ok())
        {
            Some(s) if (400..=599).contains(&s) => Behaviour::Error(s),
            _ => {
                return Err(format!(
                    "unknown mock behaviour {base:?}; use one of {}",
                    BEHAVIOURS.join(", ")
                ));
            }
        },
    };
    let mut spec = MockSpec {
        behaviour,
        chunks: None,
        delay: Duration::ZERO,
        ttft: Duration::ZERO,
        words: None,
        retry_after: 1,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("mock parameter {pair:?} must be key=value"))?;
        let n: u64 = v
            .parse()
            .map_err(|_| format!("mock parameter {k} must be a whole number, got {v:?}"))?;
        let small = || u32::try_from(n.min(100_000)).unwrap_or(100_000);
        match k {
            "chunks" => spec.chunks = Some(small().max(1)),
            "words" => spec.words = Some(small()),
            "delay_ms" => spec.delay = Duration::from_millis(n.min(600_000)),
            "ttft_ms" => spec.ttft = Duration::from_millis(n.min(600_000)),
            "retry_after" => spec.retry_after = n.min(86_400),
            _ => {
                return Err(format!(
                    "unknown mock parameter {k:?}; use chunks, words, delay_ms, ttft_ms, retry_after"
                ));
            }
        }
    }
    Ok(spec)
}

const FIXED: &str = "Hello from the Modelgate mock provider. This answer cost nothing.";
const LOREM: [&str; 12] = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
];

fn words(n: u32) -> String {
    (0..n as usize)
        .map(|i| LOREM[i % LOREM.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn prompt_tokens(req: &ChatRequest) -> u64 {
    let chars: usize = req
        .messages
        .iter()
        .map(|m| m.content.as_ref().map(|c| c.text().len()).unwrap_or(0))
        .sum();
    estimate_tokens(chars).max(1)
}

fn answer_text(spec: &MockSpec, req: &ChatRequest) -> String {
    match spec.behaviour {
        Behaviour::Echo => req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .and_then(|m| m.content.as_ref())
            .map(MessageContent::text)
            .unwrap_or_default(),
        _ => match (spec.words, spec.chunks) {
            (Some(n), _) => words(n),
            (None, Some(c)) if c > 12 => words(c),
            _ => FIXED.to_owned(),
        },
    }
}

fn tool_call(req: &ChatRequest) -> (String, String) {
    let tool = req
        .tools
        .as_ref()
        .and_then(|t| t.iter().find_map(|t| t.function.as_ref()));
    let Some(f) = tool else {
        return ("get_weather".into(), r#"{"location":"Paris"}"#.into());
    };
    let mut args = serde_json::Map::new();
    if let Some(props) = f
        .parameters
        .as_ref()
        .and_then(|p| p.get("properties"))
        .and_then(|p| p.as_object())
    {
        for (k, schema) in props {
            let v = match schema.get("type").and_then(|t| t.as_str()) {
                Some("integer") | Some("number") => serde_json::json!(1),
                Some("boolean") => serde_json::json!(true),
                Some("array") => serde_json::json!([]),
                Some("object") => serde_json::json!({}),
                _ => match schema.get("enum").and_then(|e| e.get(0)) {
                    Some(first) => first.clone(),
                    None => serde_json::json!("mock"),
                },
            };
            args.insert(k.clone(), v);
        }
    }
    (f.name.clone(), serde_json::Value::Object(args).to_string())
}

/// Splits `text` into `n` pieces (default: one per word), at word boundaries
/// when there are enough words; concatenating the pieces gives `text`.
fn split_pieces(text: &str, n: Option<u32>) -> Vec<String> {
    if text.is_empty() {
        return vec![];
    }
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    let n = n.map_or(words.len(), |n| n as usize).max(1);
    let even = |len: usize, i: usize| i * len / n;
    if words.len() >= n {
        (0..n)
            .map(|i| words[even(words.len(), i)..even(words.len(), i + 1)].concat())
            .collect()
    } else {
        let chars: Vec<char> = text.chars().collect();
        (0..n)
            .map(|i| {
                chars[even(chars.len(), i)..even(chars.len(), i + 1)]
                    .iter()
                    .collect()
            })
            .collect()
    }
}

fn wire_usage(u: &Usage) -> WireUsage {
    WireUsage {
        prompt_tokens: u.input_tokens,
        completion_tokens: u.output_tokens,
        total_tokens: u.input_tokens + u.output_tokens,
        ..WireUsage::default()
    }
}

fn injected_error(spec: &MockSpec, status: u16) -> CallError {
    CallError::Upstream {
        failure: UpstreamFailure {
            class: class_for_status(status),
            status: Some(status),
            message: format!("mock: injected HTTP {status}"),
            upstream_code: Some("mock_error".into()),
        },
        retry_after: (status == 429).then(|| spec.retry_after.to_string()),
    }
}

/// Parses the name, plays the failure behaviours, and waits out `ttft_ms`.
async fn begin(model: &str) -> Result<MockSpec, CallError> {
    let spec =
        parse(model).map_err(|m| CallError::Codec(modelgate_codec::CodecError::new("model", m)))?;
    match spec.behaviour {
        Behaviour::Error(status) => return Err(injected_error(&spec, status)),
        Behaviour::Stall => std::future::pending::<()>().await,
        _ => {}
    }
    if !spec.ttft.is_zero() {
        tokio::time::sleep(spec.ttft).await;
    }
    Ok(spec)
}

/// Serves a chat request.
pub async fn chat(
    model: &str,
    req: &ChatRequest,
    ctx: &CallContext,
) -> Result<ChatReply, CallError> {
    let spec = begin(model).await?;
    let id = format!("chatcmpl-mock-{}", ctx.request_id);
    let model_name = format!("mock/{model}");
    let input = prompt_tokens(req);
    let tool = (spec.behaviour == Behaviour::Tool).then(|| tool_call(req));
    let text = if tool.is_some() {
        String::new()
    } else {
        answer_text(&spec, req)
    };
    let output = match &tool {
        Some((_, args)) => estimate_tokens(args.len()).max(1),
        None => text.split_whitespace().count() as u64,
    };
    let n = req.n.unwrap_or(1).max(1);
    let usage = Usage {
        input_tokens: input,
        // Like OpenAI: completion tokens count every choice.
        output_tokens: output * u64::from(n),
        ..Usage::default()
    };
    let finish = if tool.is_some() { "tool_calls" } else { "stop" };
    if !req.is_stream() {
        let completion = ChatCompletion {
            id,
            object: "chat.completion".into(),
            created: ctx.created,
            model: model_name,
            choices: (0..n)
                .map(|i| Choice {
                    index: i,
                    message: ResponseMessage {
                        role: "assistant".into(),
                        content: tool.is_none().then(|| text.clone()),
                        tool_calls: tool.as_ref().map(|(name, args)| {
                            vec![ToolCall {
                                id: format!("call_mock_{i}"),
                                kind: "function".into(),
                                function: FunctionCall {
                                    name: name.clone(),
                                    arguments: args.clone(),
                                },
                                extra: Default::default(),
                            }]
                        }),
                        ..ResponseMessage::default()
                    },
                    finish_reason: Some(finish.into()),
                    logprobs: None,
                    extra: Default::default(),
                })
                .collect(),
            usage: Some(wire_usage(&usage)),
            system_fingerprint: None,
            extra: Default::default(),
        };
        let body = serde_json::to_vec(&completion)
            .map(Bytes::from)
            .unwrap_or_default();
        return Ok(ChatReply::Complete {
            body,
            usage: Some(usage),
        });
    }

    let chunk = |delta: Delta, finish: Option<&str>| ChatChunk {
        id: id.clone(),
        object: "chat.completion.chunk".into(),
        created: ctx.created,
        model: model_name.clone(),
        // Every choice gets the same answer; `n` choices per chunk.
        choices: (0..n)
            .map(|index| ChunkChoice {
                index,
                delta: delta.clone(),
                finish_reason: finish.map(str::to_owned),
                logprobs: None,
                extra: Default::default(),
            })
            .collect(),
        usage: None,
        system_fingerprint: None,
        extra: Default::default(),
    };
    let mut items = vec![StreamItem::from_chunk(
        &chunk(
            Delta {
                role: Some("assistant".into()),
                content: Some(String::new()),
                ..Delta::default()
            },
            None,
        ),
        None,
    )];
    match &tool {
        Some((name, args)) => {
            items.push(StreamItem::from_chunk(
                &chunk(
                    Delta {
                        tool_calls: Some(vec![ToolCallDelta {
                            index: 0,
                            id: Some("call_mock_0".into()),
                            kind: Some("function".into()),
                            function: Some(FunctionCallDelta {
                                name: Some(name.clone()),
                                arguments: Some(String::new()),
                            }),
                            ..ToolCallDelta::default()
                        }]),
                        ..Delta::default()
                    },
                    None,
                ),
                None,
            ));
            for piece in split_pieces(args, spec.chunks.or(Some(3))) {
                items.push(StreamItem::from_chunk(
                    &chunk(
                        Delta {
                            tool_calls: Some(vec![ToolCallDelta {
                                index: 0,
                                function: Some(FunctionCallDelta {
                                    name: None,
                                    arguments: Some(piece),
                                }),
                                ..ToolCallDelta::default()
                            }]),
                            ..Delta::default()
                        },
                        None,
                    ),
                    None,
                ));
            }
        }
        None => {
            let pieces = split_pieces(
                &text,
                spec.chunks.or(if spec.behaviour == Behaviour::StreamError {
                    Some(3)
                } else {
                    None
                }),
            );
            for piece in pieces {
                items.push(StreamItem::from_chunk(
                    &chunk(
                        Delta {
                            content: Some(piece),
                            ..Delta::default()
                        },
                        None,
                    ),
                    None,
                ));
            }
        }
    }
    if spec.behaviour == Behaviour::StreamError {
        items.push(StreamItem::Failed(UpstreamFailure {
            class: ErrorClass::UpstreamError,
            status: None,
            message: "mock: injected mid-stream failure".into(),
            upstream_code: Some("mock_error".into()),
        }));
    } else {
        items.push(StreamItem::from_chunk(
            &chunk(Delta::default(), Some(finish)),
            Some(usage),
        ));
        if req.wants_stream_usage() {
            let mut last = chunk(Delta::default(), None);
            last.choices.clear();
            last.usage = Some(wire_usage(&usage));
            items.push(StreamItem::from_chunk(&last, Some(usage)));
        }
        items.push(StreamItem::Done);
    }
    let delay = spec.delay;
    let stream = futures_util::stream::unfold(
        (items.into_iter(), false),
        move |(mut it, started)| async move {
            let item = it.next()?;
            if started && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((item, (it, true)))
        },
    );
    Ok(ChatReply::Stream(ChatStream::new(stream)))
}

/// Serves an embeddings request with deterministic unit vectors.
pub async fn embeddings(
    model: &str,
    req: &EmbeddingsRequest,
) -> Result<EmbeddingsReply, CallError> {
    begin(model).await?;
    let dims = req.dimensions.unwrap_or(16).clamp(1, 4096) as usize;
    let items = req.input.items();
    let base64 = req.encoding_format.as_deref() == Some("base64");
    let mut total_chars = 0;
    let data: Vec<serde_json::Value> = items
        .iter()
        .enumerate()
        .map(|(i, text)| {
            total_chars += text.len();
            let v = unit_vector(text, dims);
            let embedding = if base64 {
                serde_json::Value::String(modelgate_codec::embeddings::base64_f32(&v))
            } else {
                serde_json::json!(v)
            };
            serde_json::json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens = estimate_tokens(total_chars).max(1);
    let body = serde_json::json!({
        "object": "list",
        "data": data,
        "model": format!("mock/{model}"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    Ok(EmbeddingsReply {
        body: serde_json::to_vec(&body)
            .map(Bytes::from)
            .unwrap_or_default(),
        usage: Some(Usage {
            input_tokens: tokens,
            ..Usage::default()
        }),
    })
}

/// A deterministic unit vector from a 64-bit FNV-1a seeded xorshift.
fn unit_vector(text: &str, dims: usize) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            h ^= h << 13;
            h ^= h >> 7;
            h ^= h << 17;
            ((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn req(json: serde_json::Value) -> ChatRequest {
        serde_json::from_value(json).unwrap()
    }

    fn ctx() -> CallContext {
        CallContext {
            request_id: "r1".into(),
            created: 1,
            output_cap: None,
            trace: None,
            anthropic_beta: None,
        }
    }

    #[test]
    fn parses_names() {
        let s = parse("text?chunks=5&delay_ms=20&ttft_ms=3").unwrap();
        assert_eq!(s.behaviour, Behaviour::Text);
        assert_eq!(s.chunks, Some(5));
        assert_eq!(s.delay, Duration::from_millis(20));
        assert_eq!(parse("error-429").unwrap().behaviour, Behaviour::Error(429));
        assert!(parse("error-200").is_err());
        assert!(parse("nope").unwrap_err().contains("echo"));
        assert!(parse("echo?bogus=1").is_err());
    }

    #[test]
    fn split_keeps_text_and_count() {
        let t = "one two three four five";
        for n in 1..=8 {
            let p = split_pieces(t, Some(n));
            assert_eq!(p.concat(), t);
            assert_eq!(p.len(), n as usize, "n={n}");
        }
    }

    #[tokio::test]
    async fn echo_streams_configured_chunks_with_usage() {
        let r = req(
            serde_json::json!({"model":"mock/echo","stream":true,"stream_options":{"include_usage":true},
            "messages":[{"role":"user","content":"alpha beta gamma delta"}]}),
        );
        let Ok(ChatReply::Stream(mut s)) = chat("echo?chunks=2", &r, &ctx()).await else {
            panic!("expected stream")
        };
        let mut content = String::new();
        let mut n = 0;
        let mut last = None;
        while let Some(item) = s.next().await {
            if let StreamItem::Chunk { data, usage, .. } = &item {
                let c: ChatChunk = serde_json::from_slice(data).unwrap();
                if let Some(t) = c.choices.first().and_then(|c| c.delta.content.clone()) {
                    if !t.is_empty() {
                        n += 1;
                    }
                    content.push_str(&t);
                }
                if usage.is_some() {
                    last = *usage;
                }
            }
            if item == StreamItem::Done {
                break;
            }
        }
        assert_eq!(content, "alpha beta gamma delta");
        assert_eq!(n, 2);
        assert_eq!(last.unwrap().output_tokens, 4);
    }

    #[tokio::test]
    async fn tool_call_uses_request_schema() {
        let r = req(
            serde_json::json!({"model":"m","messages":[{"role":"user","content":"x"}],
            "tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}}}}}]}),
        );
        let Ok(ChatReply::Complete { body, .. }) = chat("tool", &r, &ctx()).await else {
            panic!()
        };
        let c: ChatCompletion = serde_json::from_slice(&body).unwrap();
        let call = &c.choices[0].message.tool_calls.as_ref().unwrap()[0];
        assert_eq!(call.function.name, "lookup");
        assert_eq!(call.function.arguments, r#"{"city":"mock","days":1}"#);
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    }

    #[tokio::test]
    async fn errors_carry_retry_after() {
        let r = req(serde_json::json!({"model":"m","messages":[]}));
        let Err(CallError::Upstream {
            failure,
            retry_after,
        }) = chat("error-429?retry_after=7", &r, &ctx()).await
        else {
            panic!()
        };
        assert_eq!(failure.class, ErrorClass::UpstreamRateLimited);
        assert_eq!(retry_after.as_deref(), Some("7"));
    }

    #[tokio::test]
    async fn embeddings_are_deterministic_unit_vectors() {
        let r: EmbeddingsRequest = serde_json::from_value(
            serde_json::json!({"model":"m","input":["a","b"],"dimensions":4}),
        )
        .unwrap();
        let a = embeddings("echo", &r).await.unwrap();
        let b = embeddings("echo", &r).await.unwrap();
        assert_eq!(a.body, b.body);
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        let e: Vec<f64> = serde_json::from_value(v["data"][0]["embedding"].clone()).unwrap();
        assert_eq!(e.len(), 4);
        assert!((e.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-4);
    }
}
