//! The OpenAI dialect towards OpenAI and OpenAI-compatible upstreams.
//!
//! Requests pass through as the client's bytes with only the model (and, for
//! streams, `stream_options.include_usage`) changed. Responses pass through
//! verbatim; we only peek at them for usage, content and in-band errors.

use modelgate_api::openai::{ChatRequest, ErrorEnvelope, Usage as WireUsage};
use modelgate_core::{ErrorClass, Usage};
use serde::Deserialize;

use crate::json::{NotAnObject, set_members};
use crate::{UpstreamFailure, class_for_status, excerpt};

/// Builds the upstream body from the client's raw bytes: the model becomes
/// `upstream_model`; for streams, `include_usage` is turned on when
/// `force_stream_usage` so the gateway can account the tokens. Returns whether
/// the usage chunk was added by us (and so must not reach the client).
pub fn prepare_body(
    raw: &[u8],
    parsed_stream_options: Option<&serde_json::Map<String, serde_json::Value>>,
    upstream_model: &str,
    force_stream_usage: bool,
    output_cap: Option<(&str, u32)>,
) -> Result<(Vec<u8>, bool), NotAnObject> {
    let model = serde_json::Value::String(upstream_model.to_owned()).to_string();
    let mut set: Vec<(&str, &[u8])> = vec![("model", model.as_bytes())];
    let cap_text;
    if let Some((field, cap)) = output_cap {
        cap_text = cap.to_string();
        set.push((field, cap_text.as_bytes()));
    }
    let already = parsed_stream_options
        .and_then(|o| o.get("include_usage"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let options;
    let injected = force_stream_usage && !already;
    if injected {
        let mut o = parsed_stream_options.cloned().unwrap_or_default();
        o.insert("include_usage".into(), serde_json::Value::Bool(true));
        options = serde_json::Value::Object(o).to_string();
        set.push(("stream_options", options.as_bytes()));
    }
    Ok((set_members(raw, &set)?, injected))
}

/// The `stream_options` of a parsed request as a JSON map (for [`prepare_body`]).
pub fn stream_options_map(req: &ChatRequest) -> Option<serde_json::Map<String, serde_json::Value>> {
    let o = req.stream_options.as_ref()?;
    match serde_json::to_value(o) {
        Ok(serde_json::Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// Converts OpenAI usage into the neutral form.
pub fn usage_from_wire(u: &WireUsage) -> Usage {
    Usage {
        input_tokens: u.prompt_tokens,
        output_tokens: u.completion_tokens,
        cache_read_tokens: u
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0),
        cache_write_tokens: 0,
        reasoning_tokens: u
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0),
        estimated: false,
    }
}

#[derive(Deserialize)]
struct UsagePeek {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    model: Option<String>,
}

/// What the gateway reads from a non-streaming response it passes through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponsePeek {
    pub usage: Option<Usage>,
    pub model: Option<String>,
}

/// Peeks at a non-streaming chat or embeddings response.
pub fn peek_response(body: &[u8]) -> Option<ResponsePeek> {
    let p: UsagePeek = serde_json::from_slice(body).ok()?;
    Some(ResponsePeek {
        usage: p.usage.as_ref().map(usage_from_wire),
        model: p.model,
    })
}

/// Response facts a trace records: `id`, `model` and each choice's
/// `finish_reason`, from a `chat.completion` or a `chat.completion.chunk`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseFacts {
    pub id: Option<String>,
    pub model: Option<String>,
    pub finish_reasons: Vec<String>,
}

#[derive(Deserialize)]
struct FactsWire<'a> {
    #[serde(default, borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Option<Vec<FactsChoiceWire<'a>>>,
}

#[derive(Deserialize)]
struct FactsChoiceWire<'a> {
    #[serde(default, borrow)]
    finish_reason: Option<std::borrow::Cow<'a, str>>,
}

/// Reads [`ResponseFacts`] from one JSON body or chunk (`None` if it is not JSON).
pub fn response_facts(data: &[u8]) -> Option<ResponseFacts> {
    let w: FactsWire<'_> = serde_json::from_slice(data).ok()?;
    Some(ResponseFacts {
        id: w.id.map(|s| s.into_owned()),
        model: w.model.map(|s| s.into_owned()),
        finish_reasons: w
            .choices
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.finish_reason.map(|s| s.into_owned()))
            .collect(),
    })
}

#[derive(Deserialize)]
struct ChunkPeekWire<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<ChoicePeekWire<'a>>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ChoicePeekWire<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaPeekWire<'a>>,
    /// Legacy completions chunks carry `text` instead of a delta.
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    finish_reason: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct DeltaPeekWire<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<serde_json::Value>,
    #[serde(default, borrow)]
    refusal: Option<std::borrow::Cow<'a, str>>,
    /// Reasoning text of compatible servers (DeepSeek, vLLM reasoning parsers).
    #[serde(default, borrow)]
    reasoning_content: Option<std::borrow::Cow<'a, str>>,
}

/// What the gateway reads from one streamed chunk it passes through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkPeek {
    /// Characters of generated text or tool arguments in this chunk.
    pub content_chars: usize,
    /// The chunk carries content (text, refusal, tool call) or a finish reason.
    pub has_content: bool,
    /// Usage reported in this chunk.
    pub usage: Option<Usage>,
    /// The chunk has no choices and only exists to carry usage.
    pub usage_only: bool,
    /// A choice in this chunk carries a `finish_reason`.
    pub finished: bool,
}

/// Peeks at one `data:` payload of an OpenAI stream. An in-band error object
/// (some compatible servers send `{"error":{...}}` mid-stream) becomes `Err`.
pub fn peek_chunk(data: &str, provider: &str) -> Result<ChunkPeek, UpstreamFailure> {
    let p: ChunkPeekWire<'_> = serde_json::from_str(data).map_err(|_| UpstreamFailure {
        class: ErrorClass::UpstreamError,
        status: None,
        message: format!("{provider}: malformed stream chunk"),
        upstream_code: None,
    })?;
    if let Some(err) = p.error {
        return Err(failure_from_error_value(&err, None, provider));
    }
    let mut peek = ChunkPeek {
        usage: p.usage.as_ref().map(usage_from_wire),
        ..ChunkPeek::default()
    };
    let choices = p.choices.unwrap_or_default();
    peek.usage_only = choices.is_empty() && peek.usage.is_some();
    for c in &choices {
        if c.finish_reason.as_ref().is_some_and(|f| !f.is_null()) {
            peek.has_content = true;
            peek.finished = true;
        }
        if let Some(t) = &c.text {
            peek.content_chars += t.chars().count();
            peek.has_content |= !t.is_empty();
        }
        if let Some(d) = &c.delta {
            if let Some(t) = &d.content {
                peek.content_chars += t.chars().count();
                peek.has_content |= !t.is_empty();
            }
            if let Some(t) = &d.reasoning_content {
                peek.content_chars += t.chars().count();
                peek.has_content |= !t.is_empty();
            }
            if let Some(t) = &d.refusal {
                peek.content_chars += t.chars().count();
                peek.has_content = true;
            }
            if let Some(tc) = &d.tool_calls {
                peek.has_content = true;
                if let Some(arr) = tc.as_array() {
                    for call in arr {
                        if let Some(a) =
                            call.pointer("/function/arguments").and_then(|a| a.as_str())
                        {
                            peek.content_chars += a.chars().count();
                        }
                    }
                }
            }
        }
    }
    Ok(peek)
}

/// Classifies an error response from an OpenAI-dialect upstream.
pub fn classify_error(status: u16, body: &[u8], provider: &str) -> UpstreamFailure {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v.get("error").is_some() => {
            let err = v.get("error").cloned().unwrap_or_default();
            failure_from_error_value(&err, Some(status), provider)
        }
        _ => UpstreamFailure {
            class: class_for_status(status),
            status: Some(status),
            message: format!("{provider} returned HTTP {status}"),
            upstream_code: None,
        },
    }
}

fn failure_from_error_value(
    err: &serde_json::Value,
    status: Option<u16>,
    provider: &str,
) -> UpstreamFailure {
    let parsed: Option<ErrorEnvelope> =
        serde_json::from_value(serde_json::json!({ "error": err })).ok();
    let message = err
        .get("message")
        .and_then(|m| m.as_str())
        .or_else(|| err.as_str())
        .unwrap_or("error");
    let code = parsed
        .as_ref()
        .and_then(|p| p.error.code.clone())
        .or_else(|| err.get("code").and_then(|c| c.as_str()).map(str::to_owned))
        .or_else(|| err.get("type").and_then(|c| c.as_str()).map(str::to_owned));
    let class = match status {
        Some(s) => class_for_status(s),
        None => match code.as_deref() {
            Some("rate_limit_exceeded") => ErrorClass::UpstreamRateLimited,
            Some("invalid_request_error" | "context_length_exceeded") => {
                ErrorClass::UpstreamBadRequest
            }
            _ => ErrorClass::UpstreamError,
        },
    };
    UpstreamFailure {
        class,
        status,
        message: excerpt(&format!("{provider}: {message}")),
        upstream_code: code,
    }
}

/// Usage as the Responses API reports it (`input_tokens`, `output_tokens`,
/// with cached and reasoning details).
#[derive(Debug, Deserialize)]
struct ResponsesUsageWire {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<CachedWire>,
    #[serde(default)]
    output_tokens_details: Option<ReasoningWire>,
}

#[derive(Debug, Deserialize)]
struct CachedWire {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ReasoningWire {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl ResponsesUsageWire {
    fn core(&self) -> Usage {
        Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_tokens: self
                .input_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: self
                .output_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            estimated: false,
        }
    }
}

#[derive(Deserialize)]
struct ResponseUsagePeek {
    #[serde(default)]
    usage: Option<ResponsesUsageWire>,
}

/// Usage of a Responses API `response` object, if it reports any.
pub fn responses_usage(body: &[u8]) -> Option<Usage> {
    let p: ResponseUsagePeek = serde_json::from_slice(body).ok()?;
    p.usage.map(|u| u.core())
}

/// What the gateway needs from one Responses stream event it passes through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponsesPeek {
    /// Generated text, reasoning or tool arguments.
    pub has_content: bool,
    pub content_chars: usize,
    /// The terminal `response.completed` / `response.incomplete` event, with
    /// the response's usage.
    pub done: bool,
    pub usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ResponsesEventWire<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    delta: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    response: Option<ResponseUsagePeek>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default, borrow)]
    message: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    code: Option<std::borrow::Cow<'a, str>>,
}

/// Reads one event of a Responses API stream
/// (<https://platform.openai.com/docs/api-reference/responses-streaming>).
/// `error` and `response.failed` events are the upstream's failure.
pub fn peek_responses_event(data: &str, provider: &str) -> Result<ResponsesPeek, UpstreamFailure> {
    let ev: ResponsesEventWire<'_> = serde_json::from_str(data).map_err(|_| UpstreamFailure {
        class: ErrorClass::UpstreamError,
        status: None,
        message: format!("{provider}: malformed stream event"),
        upstream_code: None,
    })?;
    let mut peek = ResponsesPeek::default();
    match ev.kind.as_ref() {
        "response.output_text.delta"
        | "response.refusal.delta"
        | "response.function_call_arguments.delta"
        | "response.reasoning_summary_text.delta"
        | "response.reasoning_text.delta" => {
            peek.has_content = true;
            peek.content_chars = ev.delta.as_deref().map_or(0, |d| d.chars().count());
        }
        "response.output_item.added" => peek.has_content = true,
        "response.completed" | "response.incomplete" => {
            peek.done = true;
            peek.usage = ev.response.and_then(|r| r.usage).map(|u| u.core());
        }
        "response.failed" | "error" => {
            let message = ev
                .message
                .map(|m| m.into_owned())
                .or_else(|| {
                    ev.error
                        .as_ref()
                        .and_then(|e| e.get("message"))
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "the response failed".to_owned());
            return Err(UpstreamFailure {
                class: ErrorClass::UpstreamError,
                status: None,
                message: format!("{provider}: {}", excerpt(&message)),
                upstream_code: ev.code.map(|c| c.into_owned()),
            });
        }
        _ => {}
    }
    Ok(peek)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_events_are_metered() {
        let p = peek_responses_event(
            r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hé","sequence_number":4}"#,
            "openai",
        )
        .unwrap();
        assert!(p.has_content && !p.done);
        assert_eq!(p.content_chars, 2);
        let p = peek_responses_event(
            r#"{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":6,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":16}}}"#,
            "openai",
        )
        .unwrap();
        assert!(p.done);
        let u = p.usage.unwrap();
        assert_eq!(
            (
                u.input_tokens,
                u.output_tokens,
                u.cache_read_tokens,
                u.reasoning_tokens
            ),
            (10, 6, 4, 2)
        );
        let e = peek_responses_event(
            r#"{"type":"error","code":"server_error","message":"boom","sequence_number":3}"#,
            "openai",
        )
        .unwrap_err();
        assert_eq!(e.message, "openai: boom");
        let e = peek_responses_event(
            r#"{"type":"response.failed","sequence_number":3,"response":{"status":"failed","error":{"code":"server_error","message":"x"}}}"#,
            "openai",
        );
        assert!(e.is_err());
        assert_eq!(
            responses_usage(br#"{"id":"r","usage":{"input_tokens":3,"output_tokens":1}}"#)
                .map(|u| u.input_tokens),
            Some(3)
        );
    }

    #[test]
    fn response_facts_read_completions_and_chunks() {
        let f = response_facts(
            br#"{"id":"chatcmpl-1","model":"gpt-4o-2024","choices":[{"index":0,"message":{"content":"hi"},"finish_reason":"stop"},{"finish_reason":"length"}]}"#,
        )
        .unwrap();
        assert_eq!(f.id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(f.model.as_deref(), Some("gpt-4o-2024"));
        assert_eq!(f.finish_reasons, ["stop", "length"]);
        let c = response_facts(
            br#"{"id":"c","object":"chat.completion.chunk","choices":[{"delta":{"content":"x\"y"},"finish_reason":null}]}"#,
        )
        .unwrap();
        assert!(c.finish_reasons.is_empty());
        assert!(response_facts(b"not json").is_none());
    }

    #[test]
    fn prepare_body_changes_model_and_injects_usage() {
        let raw = br#"{"model":"alias","stream":true,"messages":[],"x_ext":{"k":1}}"#;
        let (out, injected) = prepare_body(raw, None, "gpt-4o-mini", true, None).unwrap();
        assert!(injected);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"gpt-4o-mini","stream":true,"messages":[],"x_ext":{"k":1},"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn prepare_body_keeps_client_usage_request() {
        let raw = br#"{"model":"a","stream_options":{"include_usage":true}}"#;
        let req: ChatRequest = serde_json::from_str(
            r#"{"model":"a","messages":[],"stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        let opts = stream_options_map(&req);
        let (out, injected) = prepare_body(raw, opts.as_ref(), "b", true, None).unwrap();
        assert!(!injected);
        assert_eq!(
            out,
            br#"{"model":"b","stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn chunk_peeks() {
        let p = peek_chunk(
            r#"{"id":"x","choices":[{"index":0,"delta":{"content":"héllo"},"finish_reason":null}]}"#,
            "openai",
        )
        .unwrap();
        assert_eq!(p.content_chars, 5);
        assert!(p.has_content && !p.usage_only);
        let p = peek_chunk(
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_tokens_details":{"cached_tokens":1}}}"#,
            "openai",
        )
        .unwrap();
        assert!(p.usage_only);
        assert_eq!(p.usage.unwrap().cache_read_tokens, 1);
        let p = peek_chunk(
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            "openai",
        )
        .unwrap();
        assert!(!p.has_content);
        let e = peek_chunk(
            r#"{"error":{"message":"boom","type":"server_error"}}"#,
            "vllm",
        )
        .unwrap_err();
        assert_eq!(e.class, ErrorClass::UpstreamError);
        assert_eq!(e.message, "vllm: boom");
    }

    #[test]
    fn classify() {
        let f = classify_error(
            429,
            br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
            "openai",
        );
        assert_eq!(f.class, ErrorClass::UpstreamRateLimited);
        assert_eq!(f.upstream_code.as_deref(), Some("rate_limit_exceeded"));
        let f = classify_error(502, b"<html>bad gateway secret-stuff</html>", "openai");
        assert_eq!(f.class, ErrorClass::UpstreamError);
        assert!(!f.message.contains("secret"));
        let f = classify_error(
            401,
            br#"{"error":{"message":"Incorrect API key provided: sk-abc"}}"#,
            "openai",
        );
        assert_eq!(f.class, ErrorClass::UpstreamAuth);
    }
}
