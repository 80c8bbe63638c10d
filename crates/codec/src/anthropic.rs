//! OpenAI Chat Completions <-> Anthropic Messages translation.
//!
//! Pure functions: [`encode_request`] turns a chat request into a Messages
//! request, [`decode_response`] and [`StreamDecoder`] turn Anthropic replies
//! back into the OpenAI dialect, [`classify_error`] reads an error reply.
//!
//! References:
//! - Messages API: <https://docs.anthropic.com/en/api/messages>
//! - Streaming: <https://docs.anthropic.com/en/docs/build-with-claude/streaming>
//! - Errors: <https://docs.anthropic.com/en/api/errors>
//!
//! Invariants:
//! - A request field Anthropic cannot honour is rejected with a [`CodecError`]
//!   naming it, unless the deployment asked to drop such fields. Nothing is
//!   silently changed in meaning.
//! - Usage follows the OpenAI convention: prompt tokens include cache reads
//!   and writes (Anthropic reports them separately).
//! - Upstream bodies are never echoed whole: only an excerpt of the message
//!   inside a well-formed error envelope.

use std::collections::{HashMap, HashSet};

use modelgate_api::Extra;
use modelgate_api::anthropic::{
    BlockDelta, Content, ContentBlock, ErrorBody, ErrorEnvelope, ImageSource, Message,
    MessagesRequest, MessagesResponse, Metadata, StreamEvent, System, ToolChoice as AToolChoice,
    ToolDef, Usage as AUsage,
};
use modelgate_api::openai::{
    ChatChunk, ChatCompletion, ChatMessage, ChatRequest, Choice, ChunkChoice, ContentPart, Delta,
    FunctionCall, FunctionCallDelta, MessageContent, ResponseMessage, Role, ToolCall,
    ToolCallDelta, ToolChoice,
};
use modelgate_core::{ErrorClass, Usage};
use serde_json::Value;

use crate::counts::Counts;
use crate::{CodecError, UnixSeconds, UpstreamFailure, excerpt};

/// Provider name used in error messages.
const PROVIDER: &str = "anthropic";

/// Tool name used to emulate `response_format` when the client gave none.
pub const DEFAULT_JSON_TOOL: &str = "json_response";

/// Description of the forced tool that emulates `response_format`, when the
/// client's schema has none. Claude follows tool descriptions closely, so say
/// what the tool is for.
const JSON_TOOL_DESCRIPTION: &str = "Respond with a JSON object that matches this schema.";

/// Per-deployment knobs for encoding.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// `max_tokens` sent when the client set neither `max_tokens` nor `max_completion_tokens`.
    pub default_max_tokens: u32,
    /// Drop fields Anthropic cannot take instead of rejecting the request.
    pub drop_unsupported: bool,
}

/// What the decoders need to know about the request that was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseContext {
    /// `created` for the OpenAI objects we emit.
    pub created: UnixSeconds,
    /// Set when `response_format` was emulated with a forced tool of this name:
    /// its input becomes the message content.
    pub json_tool: Option<String>,
    /// The client asked for `stream_options.include_usage`.
    pub include_usage: bool,
}

/// The encoded request plus the context its response decoder needs.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The Messages API request body.
    pub request: MessagesRequest,
    /// Name of the forced tool emulating `response_format`; goes into
    /// [`ResponseContext::json_tool`].
    pub context_json_tool: Option<String>,
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// Encodes an OpenAI chat request as an Anthropic Messages request.
///
/// Fails with a [`CodecError`] naming the offending field when the request
/// uses something Anthropic cannot express (see the module docs).
pub fn encode_request(
    req: &ChatRequest,
    upstream_model: &str,
    opts: &EncodeOptions,
) -> Result<Encoded, CodecError> {
    let top_k = check_unsupported(req, opts)?;
    let (system, messages) = encode_messages(&req.messages)?;

    let mut tools = encode_tools(req.tools.as_deref())?;
    let mut tool_choice = encode_tool_choice(req.tool_choice.as_ref())?;

    let json_tool = encode_response_format(req, &mut tools, &mut tool_choice)?;

    if tools.is_empty() {
        // Anthropic rejects `tool_choice` without tools, while OpenAI clients
        // often send `tool_choice: "none"`/`"auto"` (or `parallel_tool_calls`)
        // unconditionally. Without tools there is nothing to choose from.
        tool_choice = None;
    } else if req.parallel_tool_calls == Some(false) {
        // https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use#parallel-tool-use
        let mut choice = tool_choice.unwrap_or_else(|| AToolChoice {
            kind: "auto".into(),
            name: None,
            disable_parallel_tool_use: None,
        });
        // With `none` no tool runs at all, so there is nothing to disable.
        if choice.kind != "none" {
            choice.disable_parallel_tool_use = Some(true);
        }
        tool_choice = Some(choice);
    }

    let stop_sequences = req
        .stop
        .as_ref()
        .map(|s| s.to_vec())
        .filter(|v| !v.is_empty());

    let request = MessagesRequest {
        model: upstream_model.to_owned(),
        max_tokens: req.output_cap().unwrap_or(opts.default_max_tokens),
        messages,
        system,
        stop_sequences,
        stream: req.stream.filter(|s| *s),
        // OpenAI allows 0..=2, Anthropic 0..=1: out of range is a 400 naming
        // the field, or clamped when the deployment drops what it cannot take.
        temperature: req.temperature.map(|t| t.min(1.0)),
        top_p: req.top_p,
        top_k,
        tools: if tools.is_empty() { None } else { Some(tools) },
        tool_choice,
        metadata: req.user.as_ref().map(|u| Metadata {
            user_id: Some(u.clone()),
        }),
        extra: Extra::new(),
    };
    Ok(Encoded {
        request,
        context_json_tool: json_tool,
    })
}

fn unsupported(param: &str) -> CodecError {
    CodecError::new(
        param,
        format!("`{param}` is not supported by provider {PROVIDER}"),
    )
}

/// Rejects (or, with `drop_unsupported`, ignores) request fields Anthropic has
/// no equivalent for. Returns `top_k`, the one extension field we map.
fn check_unsupported(req: &ChatRequest, opts: &EncodeOptions) -> Result<Option<u32>, CodecError> {
    let reject = |param: &str| -> Result<(), CodecError> {
        if opts.drop_unsupported {
            Ok(())
        } else {
            Err(unsupported(param))
        }
    };

    if req.n.is_some_and(|n| n > 1) {
        reject("n")?;
    }
    if req.presence_penalty.is_some_and(|p| p != 0.0) {
        reject("presence_penalty")?;
    }
    if req.frequency_penalty.is_some_and(|p| p != 0.0) {
        reject("frequency_penalty")?;
    }
    if req.logit_bias.as_ref().is_some_and(|m| !m.is_empty()) {
        reject("logit_bias")?;
    }
    if req.logprobs == Some(true) {
        reject("logprobs")?;
    }
    if req.top_logprobs.is_some() {
        reject("top_logprobs")?;
    }
    if req.seed.is_some() {
        reject("seed")?;
    }
    if req.temperature.is_some_and(|t| t > 1.0) && !opts.drop_unsupported {
        return Err(CodecError::new(
            "temperature",
            "`temperature` above 1 is not supported by provider anthropic (its range is 0 to 1)",
        ));
    }

    let mut top_k = None;
    // `Extra` is a sorted map, so the first error reported is deterministic.
    for (key, value) in &req.extra {
        match key.as_str() {
            // Not in the OpenAI spec but common in clients; Anthropic takes it natively.
            "top_k" => {
                if value.is_null() {
                    continue;
                }
                let k = value
                    .as_u64()
                    .and_then(|k| u32::try_from(k).ok())
                    .ok_or_else(|| {
                        CodecError::new("top_k", "`top_k` must be a non-negative integer")
                    })?;
                top_k = Some(k);
            }
            // Storing completions is an OpenAI platform feature; `false` asks for nothing.
            "store" if matches!(value, Value::Null | Value::Bool(false)) => {}
            // A scheduling hint for OpenAI's own capacity; meaningless elsewhere, harmless to drop.
            "service_tier" => {}
            _ => reject(key)?,
        }
    }
    Ok(top_k)
}

/// One Anthropic turn under construction.
struct Turn {
    role: &'static str,
    blocks: Vec<ContentBlock>,
}

/// Translates the conversation: system/developer messages become the
/// top-level `system`, the rest become alternating user/assistant turns.
fn encode_messages(msgs: &[ChatMessage]) -> Result<(Option<System>, Vec<Message>), CodecError> {
    let mut system_blocks: Vec<ContentBlock> = Vec::new();
    let mut system_has_parts = false;
    let mut turns: Vec<Turn> = Vec::new();

    for (i, msg) in msgs.iter().enumerate() {
        let (role, blocks) = match &msg.role {
            Role::System | Role::Developer => {
                if matches!(msg.content, Some(MessageContent::Parts(_))) {
                    system_has_parts = true;
                }
                system_blocks.extend(encode_system(i, msg)?);
                continue;
            }
            Role::User => ("user", encode_user(i, msg)?),
            Role::Assistant => ("assistant", encode_assistant(i, msg)?),
            Role::Tool => ("user", vec![encode_tool_result(i, msg)?]),
            Role::Function | Role::Other(_) => {
                return Err(CodecError::new(
                    format!("messages[{i}].role"),
                    format!(
                        "role `{}` is not supported by provider {PROVIDER}",
                        msg.role.as_str()
                    ),
                ));
            }
        };
        if blocks.is_empty() {
            continue;
        }
        // Anthropic wants strictly alternating roles; OpenAI sends one `tool`
        // message per parallel call, so consecutive same-role messages merge.
        match turns.last_mut() {
            Some(last) if last.role == role => last.blocks.extend(blocks),
            _ => turns.push(Turn { role, blocks }),
        }
    }

    let messages = turns.into_iter().map(finish_turn).collect();
    let system = if system_blocks.is_empty() {
        None
    } else if system_has_parts {
        Some(System::Blocks(system_blocks))
    } else {
        let texts: Vec<String> = system_blocks
            .into_iter()
            .filter_map(|b| match b {
                ContentBlock::Text { text, .. } => Some(text),
                _ => None,
            })
            .collect();
        Some(System::Text(texts.join("\n\n")))
    };
    Ok((system, messages))
}

/// Orders a turn's blocks and picks the compact string form when possible.
fn finish_turn(turn: Turn) -> Message {
    let Turn { role, mut blocks } = turn;
    if role == "user" {
        // Tool results must come first in the user turn that answers a tool
        // call; text after them. Stable, so results keep their call order.
        // https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use#handling-tool-use-and-tool-result-content-blocks
        blocks.sort_by_key(|b| !matches!(b, ContentBlock::ToolResult { .. }));
    }
    let content = match blocks.as_slice() {
        [ContentBlock::Text { text, extra }] if extra.is_empty() => Content::Text(text.clone()),
        _ => Content::Blocks(blocks),
    };
    Message {
        role: role.to_owned(),
        content,
    }
}

fn text_block(text: String) -> ContentBlock {
    ContentBlock::Text {
        text,
        extra: Extra::new(),
    }
}

/// Copies the fields of an OpenAI content part that Anthropic understands on
/// its blocks. Only `cache_control` (prompt caching breakpoints), which
/// OpenAI-compatible clients targeting Claude put on parts.
fn part_extra(part: &ContentPart) -> Extra {
    let mut extra = Extra::new();
    if let Some(cc) = part.extra.get("cache_control") {
        extra.insert("cache_control".into(), cc.clone());
    }
    extra
}

fn part_text(i: usize, j: usize, part: &ContentPart) -> Result<String, CodecError> {
    part.text.clone().ok_or_else(|| {
        CodecError::new(
            format!("messages[{i}].content[{j}].text"),
            "text part has no `text`",
        )
    })
}

fn encode_system(i: usize, msg: &ChatMessage) -> Result<Vec<ContentBlock>, CodecError> {
    match &msg.content {
        None => Ok(vec![]),
        Some(MessageContent::Text(s)) if s.is_empty() => Ok(vec![]),
        Some(MessageContent::Text(s)) => Ok(vec![text_block(s.clone())]),
        Some(MessageContent::Parts(parts)) => {
            let mut out = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                if part.kind != "text" {
                    return Err(CodecError::new(
                        format!("messages[{i}].content[{j}]"),
                        format!(
                            "`{}` parts are not allowed in {} messages",
                            part.kind,
                            msg.role.as_str()
                        ),
                    ));
                }
                let text = part_text(i, j, part)?;
                // Anthropic rejects empty text blocks.
                if !text.is_empty() {
                    out.push(ContentBlock::Text {
                        text,
                        extra: part_extra(part),
                    });
                }
            }
            Ok(out)
        }
    }
}

fn encode_user(i: usize, msg: &ChatMessage) -> Result<Vec<ContentBlock>, CodecError> {
    match &msg.content {
        None => Err(CodecError::new(
            format!("messages[{i}].content"),
            "user message has no content",
        )),
        Some(MessageContent::Text(s)) => Ok(vec![text_block(s.clone())]),
        Some(MessageContent::Parts(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                match part.kind.as_str() {
                    "text" => out.push(ContentBlock::Text {
                        text: part_text(i, j, part)?,
                        extra: part_extra(part),
                    }),
                    "image_url" => out.push(ContentBlock::Image {
                        source: encode_image(i, j, part)?,
                        extra: part_extra(part),
                    }),
                    other => {
                        return Err(CodecError::new(
                            format!("messages[{i}].content[{j}].type"),
                            format!(
                                "`{other}` content parts are not supported by provider {PROVIDER}"
                            ),
                        ));
                    }
                }
            }
            Ok(out)
        }
    }
}

/// `data:<media>;base64,<data>` becomes a base64 source, `http(s)` a URL source.
/// <https://docs.anthropic.com/en/docs/build-with-claude/vision>
fn encode_image(i: usize, j: usize, part: &ContentPart) -> Result<ImageSource, CodecError> {
    let param = format!("messages[{i}].content[{j}].image_url");
    let url = &part
        .image_url
        .as_ref()
        .ok_or_else(|| CodecError::new(param.clone(), "image_url part has no `image_url`"))?
        .url;
    if let Some(rest) = url.strip_prefix("data:") {
        let parsed = rest
            .split_once(',')
            .and_then(|(meta, data)| Some((meta.strip_suffix(";base64")?, data)));
        return match parsed {
            Some((media_type, data)) if !media_type.is_empty() => Ok(ImageSource::Base64 {
                media_type: media_type.to_owned(),
                data: data.to_owned(),
            }),
            _ => Err(CodecError::new(
                format!("{param}.url"),
                "data URLs must have the form `data:<media type>;base64,<data>`",
            )),
        };
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(ImageSource::Url { url: url.clone() });
    }
    Err(CodecError::new(
        format!("{param}.url"),
        "image URL must be an http(s) URL or a base64 data URL",
    ))
}

fn encode_assistant(i: usize, msg: &ChatMessage) -> Result<Vec<ContentBlock>, CodecError> {
    let mut out = Vec::new();
    match &msg.content {
        // Anthropic rejects empty text blocks; an assistant turn with only
        // tool calls usually carries `""` or null here.
        None => {}
        Some(MessageContent::Text(s)) if s.is_empty() => {}
        Some(MessageContent::Text(s)) => out.push(text_block(s.clone())),
        Some(MessageContent::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                match part.kind.as_str() {
                    "text" => {
                        let text = part_text(i, j, part)?;
                        if !text.is_empty() {
                            out.push(ContentBlock::Text {
                                text,
                                extra: part_extra(part),
                            });
                        }
                    }
                    // The model's own earlier refusal: Anthropic has no block
                    // for it, and it carries no information the model needs.
                    "refusal" => {}
                    other => {
                        return Err(CodecError::new(
                            format!("messages[{i}].content[{j}].type"),
                            format!(
                                "`{other}` parts are not supported in assistant messages by provider {PROVIDER}"
                            ),
                        ));
                    }
                }
            }
        }
    }
    for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
        if call.kind != "function" {
            return Err(CodecError::new(
                format!("messages[{i}].tool_calls[{j}].type"),
                format!(
                    "tool call type `{}` is not supported by provider {PROVIDER}",
                    call.kind
                ),
            ));
        }
        let input = parse_arguments(&call.function.arguments).ok_or_else(|| {
            CodecError::new(
                format!("messages[{i}].tool_calls[{j}].function.arguments"),
                "function arguments must be a JSON object",
            )
        })?;
        out.push(ContentBlock::ToolUse {
            id: call.id.clone(),
            name: call.function.name.clone(),
            input,
            extra: Extra::new(),
        });
    }
    Ok(out)
}

/// Parses OpenAI's JSON-encoded arguments into the object Anthropic's
/// `tool_use.input` must be. Empty arguments mean no arguments.
fn parse_arguments(args: &str) -> Option<Value> {
    if args.trim().is_empty() {
        return Some(Value::Object(Extra::new()));
    }
    match serde_json::from_str::<Value>(args) {
        Ok(v @ Value::Object(_)) => Some(v),
        _ => None,
    }
}

fn encode_tool_result(i: usize, msg: &ChatMessage) -> Result<ContentBlock, CodecError> {
    let tool_use_id = msg.tool_call_id.clone().ok_or_else(|| {
        CodecError::new(
            format!("messages[{i}].tool_call_id"),
            "tool message has no `tool_call_id`",
        )
    })?;
    let content = match &msg.content {
        None => None,
        Some(MessageContent::Text(s)) => Some(Content::Text(s.clone())),
        Some(MessageContent::Parts(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                if part.kind != "text" {
                    return Err(CodecError::new(
                        format!("messages[{i}].content[{j}].type"),
                        format!(
                            "`{}` parts are not supported in tool messages by provider {PROVIDER}",
                            part.kind
                        ),
                    ));
                }
                text.push_str(&part_text(i, j, part)?);
            }
            Some(Content::Text(text))
        }
    };
    Ok(ContentBlock::ToolResult {
        tool_use_id,
        content,
        is_error: None,
        extra: Extra::new(),
    })
}

fn encode_tools(tools: Option<&[modelgate_api::openai::Tool]>) -> Result<Vec<ToolDef>, CodecError> {
    let mut out = Vec::new();
    for (i, tool) in tools.unwrap_or_default().iter().enumerate() {
        if tool.kind != "function" {
            return Err(CodecError::new(
                format!("tools[{i}].type"),
                format!(
                    "tool type `{}` is not supported by provider {PROVIDER}",
                    tool.kind
                ),
            ));
        }
        let f = tool.function.as_ref().ok_or_else(|| {
            CodecError::new(
                format!("tools[{i}].function"),
                "function tool has no `function`",
            )
        })?;
        let mut extra = Extra::new();
        if let Some(strict) = f.strict {
            extra.insert("strict".into(), Value::Bool(strict));
        }
        out.push(ToolDef {
            name: f.name.clone(),
            description: f.description.clone(),
            input_schema: f.parameters.clone().unwrap_or_else(empty_object_schema),
            extra,
        });
    }
    Ok(out)
}

/// `{"type":"object","properties":{}}`: a function that takes no arguments.
fn empty_object_schema() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

fn encode_tool_choice(choice: Option<&ToolChoice>) -> Result<Option<AToolChoice>, CodecError> {
    let simple = |kind: &str| AToolChoice {
        kind: kind.into(),
        name: None,
        disable_parallel_tool_use: None,
    };
    let out = match choice {
        None => None,
        Some(ToolChoice::Mode(m)) => match m.as_str() {
            "auto" => Some(simple("auto")),
            "required" => Some(simple("any")),
            "none" => Some(simple("none")),
            other => {
                return Err(CodecError::new(
                    "tool_choice",
                    format!("unknown tool_choice `{other}`"),
                ));
            }
        },
        Some(ToolChoice::Named(named)) => {
            if named.kind != "function" {
                return Err(CodecError::new(
                    "tool_choice.type",
                    format!(
                        "tool_choice type `{}` is not supported by provider {PROVIDER}",
                        named.kind
                    ),
                ));
            }
            let f = named.function.as_ref().ok_or_else(|| {
                CodecError::new(
                    "tool_choice.function",
                    "named tool_choice has no `function`",
                )
            })?;
            Some(AToolChoice {
                kind: "tool".into(),
                name: Some(f.name.clone()),
                disable_parallel_tool_use: None,
            })
        }
    };
    Ok(out)
}

/// Emulates `response_format` with a forced tool whose input schema is the
/// requested schema (Anthropic's documented way to get JSON output:
/// <https://docs.anthropic.com/en/docs/test-and-evaluate/strengthen-guardrails/increase-consistency>).
/// Returns the tool's name for the response decoder.
fn encode_response_format(
    req: &ChatRequest,
    tools: &mut Vec<ToolDef>,
    tool_choice: &mut Option<AToolChoice>,
) -> Result<Option<String>, CodecError> {
    let Some(rf) = &req.response_format else {
        return Ok(None);
    };
    let (name, description, schema) = match rf.kind.as_str() {
        "text" => return Ok(None),
        "json_schema" => {
            let js = rf.json_schema.as_ref().ok_or_else(|| {
                CodecError::new(
                    "response_format.json_schema",
                    "`json_schema` is required when type is `json_schema`",
                )
            })?;
            let name = if js.name.is_empty() {
                DEFAULT_JSON_TOOL.to_owned()
            } else {
                js.name.clone()
            };
            let schema = js
                .schema
                .clone()
                .unwrap_or_else(|| serde_json::json!({"type": "object"}));
            (name, js.description.clone(), schema)
        }
        "json_object" => (
            DEFAULT_JSON_TOOL.to_owned(),
            None,
            serde_json::json!({"type": "object"}),
        ),
        other => {
            return Err(CodecError::new(
                "response_format.type",
                format!("response_format type `{other}` is not supported by provider {PROVIDER}"),
            ));
        }
    };
    if !tools.is_empty() {
        return Err(CodecError::new(
            "response_format",
            format!(
                "`response_format` cannot be combined with `tools` on provider {PROVIDER} (it is emulated with a forced tool)"
            ),
        ));
    }
    tools.push(ToolDef {
        name: name.clone(),
        description: Some(description.unwrap_or_else(|| JSON_TOOL_DESCRIPTION.to_owned())),
        input_schema: schema,
        extra: Extra::new(),
    });
    *tool_choice = Some(AToolChoice {
        kind: "tool".into(),
        name: Some(name.clone()),
        disable_parallel_tool_use: None,
    });
    Ok(Some(name))
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Maps an Anthropic `stop_reason` to an OpenAI `finish_reason`.
/// <https://docs.anthropic.com/en/api/handling-stop-reasons>
fn finish_reason(stop_reason: Option<&str>, json_tool_used: bool) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") if json_tool_used => "stop",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, absent, and reasons added later.
        _ => "stop",
    }
}

/// Usage of a Messages response passed through unchanged (OpenAI convention:
/// input includes cache reads and writes).
pub fn native_usage(u: &AUsage) -> Usage {
    let mut c = Counts::default();
    c.update(u);
    c.core()
}

/// What the gateway needs from one event of a stream it passes through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NativePeek {
    /// The event carries generated content (text, thinking, tool input).
    pub has_content: bool,
    /// Characters of generated content (for estimates).
    pub content_chars: usize,
    /// `message_stop`: the stream is complete.
    pub done: bool,
}

/// Meters a Messages stream passed through unchanged: usage so far, and
/// the end or failure of the stream.
#[derive(Debug, Default)]
pub struct NativeMeter {
    counts: Counts,
}

impl NativeMeter {
    /// Reads one event. An `error` event is the upstream's failure.
    pub fn on_event(&mut self, ev: &StreamEvent) -> Result<NativePeek, UpstreamFailure> {
        let mut peek = NativePeek::default();
        match ev {
            StreamEvent::MessageStart { message } => self.counts.update(&message.usage),
            StreamEvent::MessageDelta { usage: Some(u), .. } => self.counts.update(u),
            StreamEvent::ContentBlockStart { content_block, .. } => {
                peek.has_content = matches!(content_block, ContentBlock::ToolUse { .. });
            }
            StreamEvent::ContentBlockDelta { delta, .. } => {
                peek.content_chars = match delta {
                    BlockDelta::TextDelta { text } => text.chars().count(),
                    BlockDelta::ThinkingDelta { thinking } => thinking.chars().count(),
                    BlockDelta::InputJsonDelta { partial_json } => partial_json.chars().count(),
                    BlockDelta::SignatureDelta { .. } | BlockDelta::Other(_) => 0,
                };
                peek.has_content = true;
            }
            StreamEvent::MessageStop => peek.done = true,
            StreamEvent::Error { error } => return Err(stream_failure(error)),
            _ => {}
        }
        Ok(peek)
    }

    /// Usage so far (cumulative).
    pub fn usage(&self) -> Usage {
        self.counts.core()
    }
}

/// Compact JSON of a tool input, as OpenAI's `arguments` string.
fn compact_json(v: &Value) -> String {
    // Serializing a `Value` cannot fail (its map keys are strings).
    serde_json::to_string(v).unwrap_or_default()
}

/// Decodes a non-streaming Anthropic response into a `chat.completion`.
pub fn decode_response(resp: MessagesResponse, ctx: &ResponseContext) -> (ChatCompletion, Usage) {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    let mut json_content = None;

    for block in &resp.content {
        match block {
            ContentBlock::Text { text: t, .. } => text.push_str(t),
            ContentBlock::Thinking { thinking, .. } => reasoning.push_str(thinking),
            ContentBlock::ToolUse {
                id, name, input, ..
            } => {
                if json_content.is_none() && ctx.json_tool.as_deref() == Some(name.as_str()) {
                    json_content = Some(compact_json(input));
                } else {
                    tool_calls.push(ToolCall {
                        id: id.clone(),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: name.clone(),
                            arguments: compact_json(input),
                        },
                        extra: Extra::new(),
                    });
                }
            }
            // Redacted thinking, server tool blocks and future types carry
            // nothing an OpenAI client can use.
            _ => {}
        }
    }

    let json_used = json_content.is_some();
    let content = match json_content {
        // The emulated structured output is the answer; any preamble text is not.
        Some(json) => Some(json),
        None if text.is_empty() && !tool_calls.is_empty() => None,
        None => Some(text),
    };
    let mut extra = Extra::new();
    if !reasoning.is_empty() {
        extra.insert("reasoning_content".into(), Value::String(reasoning));
    }
    let finish = finish_reason(
        resp.stop_reason.as_deref(),
        json_used && tool_calls.is_empty(),
    );

    let mut counts = Counts::default();
    counts.update(&resp.usage);

    let completion = ChatCompletion {
        id: resp.id,
        object: "chat.completion".into(),
        created: ctx.created,
        model: resp.model,
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: "assistant".into(),
                content,
                refusal: None,
                tool_calls: if tool_calls.is_empty() {
                    None
                } else {
                    Some(tool_calls)
                },
                extra,
            },
            finish_reason: Some(finish.into()),
            logprobs: None,
            extra: Extra::new(),
        }],
        usage: Some(counts.openai()),
        system_fingerprint: None,
        extra: Extra::new(),
    };
    (completion, counts.core())
}

/// What an Anthropic content block (by its stream index) turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    /// A client tool call, with its OpenAI `tool_calls[].index`.
    Tool(u32),
    /// The forced tool emulating `response_format`: its input is the content.
    JsonTool,
    Thinking,
    Ignored,
}

/// Stateful translator of an Anthropic event stream into OpenAI chunks.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    ctx: ResponseContext,
    id: String,
    model: String,
    counts: Counts,
    blocks: HashMap<u32, BlockKind>,
    /// Anthropic block indexes of tool blocks whose input has had a non-empty fragment.
    has_input: HashSet<u32>,
    tool_calls: u32,
    json_tool_used: bool,
    done: bool,
}

impl StreamDecoder {
    /// A decoder for one stream.
    pub fn new(ctx: ResponseContext) -> Self {
        StreamDecoder {
            ctx,
            ..StreamDecoder::default()
        }
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<&str>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.ctx.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish_reason.map(str::to_owned),
                logprobs: None,
                extra: Extra::new(),
            }],
            usage: None,
            system_fingerprint: None,
            extra: Extra::new(),
        }
    }

    fn content_chunk(&self, text: &str) -> Vec<ChatChunk> {
        if text.is_empty() {
            return vec![];
        }
        vec![self.chunk(
            Delta {
                content: Some(text.to_owned()),
                ..Delta::default()
            },
            None,
        )]
    }

    fn reasoning_chunk(&self, text: &str) -> Vec<ChatChunk> {
        if text.is_empty() {
            return vec![];
        }
        let mut extra = Extra::new();
        extra.insert("reasoning_content".into(), Value::String(text.to_owned()));
        vec![self.chunk(
            Delta {
                extra,
                ..Delta::default()
            },
            None,
        )]
    }

    fn tool_chunk(&self, call: ToolCallDelta) -> Vec<ChatChunk> {
        vec![self.chunk(
            Delta {
                tool_calls: Some(vec![call]),
                ..Delta::default()
            },
            None,
        )]
    }

    /// Feeds one event; returns the chunks to send, or the failure an `error` event reports.
    pub fn on_event(&mut self, ev: StreamEvent) -> Result<Vec<ChatChunk>, UpstreamFailure> {
        if self.done {
            return Ok(vec![]);
        }
        let out = match ev {
            StreamEvent::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model;
                self.counts.update(&message.usage);
                vec![self.chunk(
                    Delta {
                        role: Some("assistant".into()),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                )]
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => self.on_block_start(index, content_block),
            StreamEvent::ContentBlockDelta { index, delta } => self.on_block_delta(index, delta),
            StreamEvent::ContentBlockStop { index } => self.on_block_stop(index),
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(u) = &usage {
                    self.counts.update(u);
                }
                let json_only = self.json_tool_used && self.tool_calls == 0;
                let finish = finish_reason(delta.stop_reason.as_deref(), json_only);
                vec![self.chunk(Delta::default(), Some(finish))]
            }
            StreamEvent::MessageStop => {
                self.done = true;
                if self.ctx.include_usage {
                    let mut chunk = self.chunk(Delta::default(), None);
                    chunk.choices.clear();
                    chunk.usage = Some(self.counts.openai());
                    vec![chunk]
                } else {
                    vec![]
                }
            }
            StreamEvent::Error { error } => return Err(stream_failure(&error)),
            StreamEvent::Ping | StreamEvent::Other(_) => vec![],
        };
        Ok(out)
    }

    fn on_block_start(&mut self, index: u32, block: ContentBlock) -> Vec<ChatChunk> {
        match block {
            // With `response_format` emulated by a forced tool, the content is
            // that tool's input; any preamble text is dropped, as in
            // `decode_response`, so the streamed content stays valid JSON.
            ContentBlock::Text { .. } if self.ctx.json_tool.is_some() => {
                self.blocks.insert(index, BlockKind::Ignored);
                vec![]
            }
            ContentBlock::Text { text, .. } => {
                self.blocks.insert(index, BlockKind::Text);
                self.content_chunk(&text)
            }
            ContentBlock::Thinking { thinking, .. } => {
                self.blocks.insert(index, BlockKind::Thinking);
                self.reasoning_chunk(&thinking)
            }
            ContentBlock::ToolUse { id, name, .. } => {
                // The start event carries `input: {}`; the real input follows
                // as `input_json_delta` fragments.
                if !self.json_tool_used && self.ctx.json_tool.as_deref() == Some(name.as_str()) {
                    self.json_tool_used = true;
                    self.blocks.insert(index, BlockKind::JsonTool);
                    return vec![];
                }
                let k = self.tool_calls;
                self.tool_calls += 1;
                self.blocks.insert(index, BlockKind::Tool(k));
                self.tool_chunk(ToolCallDelta {
                    index: k,
                    id: Some(id),
                    kind: Some("function".into()),
                    function: Some(FunctionCallDelta {
                        name: Some(name),
                        arguments: Some(String::new()),
                    }),
                    extra: Extra::new(),
                })
            }
            _ => {
                self.blocks.insert(index, BlockKind::Ignored);
                vec![]
            }
        }
    }

    /// A tool without arguments streams no (or only empty) input fragments,
    /// which would leave the client with `arguments: ""`, not valid JSON.
    /// Anthropic's final input is then `{}`, so say that.
    fn on_block_stop(&mut self, index: u32) -> Vec<ChatChunk> {
        if self.has_input.contains(&index) {
            return vec![];
        }
        match self.blocks.get(&index).copied() {
            Some(BlockKind::Tool(k)) => self.tool_chunk(ToolCallDelta {
                index: k,
                function: Some(FunctionCallDelta {
                    name: None,
                    arguments: Some("{}".into()),
                }),
                ..ToolCallDelta::default()
            }),
            Some(BlockKind::JsonTool) => self.content_chunk("{}"),
            _ => vec![],
        }
    }

    fn on_block_delta(&mut self, index: u32, delta: BlockDelta) -> Vec<ChatChunk> {
        let kind = self.blocks.get(&index).copied();
        if matches!(&delta, BlockDelta::InputJsonDelta { partial_json } if !partial_json.is_empty())
        {
            self.has_input.insert(index);
        }
        match delta {
            BlockDelta::TextDelta { .. } if matches!(kind, Some(BlockKind::Ignored)) => vec![],
            BlockDelta::TextDelta { text } => self.content_chunk(&text),
            BlockDelta::ThinkingDelta { thinking } => self.reasoning_chunk(&thinking),
            BlockDelta::InputJsonDelta { partial_json } => match kind {
                Some(BlockKind::JsonTool) => self.content_chunk(&partial_json),
                Some(BlockKind::Tool(k)) if !partial_json.is_empty() => {
                    self.tool_chunk(ToolCallDelta {
                        index: k,
                        function: Some(FunctionCallDelta {
                            name: None,
                            arguments: Some(partial_json),
                        }),
                        ..ToolCallDelta::default()
                    })
                }
                // Server tool input and the like: not for the client.
                _ => vec![],
            },
            BlockDelta::SignatureDelta { .. } | BlockDelta::Other(_) => vec![],
        }
    }

    /// Usage seen so far.
    pub fn usage(&self) -> Usage {
        self.counts.core()
    }

    /// Whether `message_stop` was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// Error class for an Anthropic error `type`.
/// <https://docs.anthropic.com/en/api/errors>
fn class_for_error_type(kind: &str) -> ErrorClass {
    match kind {
        "rate_limit_error" => ErrorClass::UpstreamRateLimited,
        "invalid_request_error" => ErrorClass::UpstreamBadRequest,
        // overloaded_error, api_error, and anything new: the upstream failed.
        _ => ErrorClass::UpstreamError,
    }
}

/// An `error` event in the middle of a stream (after HTTP 200).
fn stream_failure(error: &ErrorBody) -> UpstreamFailure {
    UpstreamFailure {
        class: class_for_error_type(&error.kind),
        status: None,
        message: excerpt(&format!("{PROVIDER}: {}", error.message)),
        upstream_code: Some(error.kind.clone()),
    }
}

/// Classifies an Anthropic error response (status + body).
///
/// Only the message inside a well-formed Anthropic error envelope is passed
/// on (as an excerpt); any other body is reduced to the status.
pub fn classify_error(status: u16, body: &[u8]) -> UpstreamFailure {
    let class = match status {
        // 529 `overloaded_error`: Anthropic-specific, transient, retry elsewhere.
        529 => ErrorClass::UpstreamError,
        s => crate::class_for_status(s),
    };
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(env) => UpstreamFailure {
            class,
            status: Some(status),
            message: excerpt(&format!("{PROVIDER}: {}", env.error.message)),
            upstream_code: Some(env.error.kind),
        },
        Err(_) => UpstreamFailure {
            class,
            status: Some(status),
            message: format!("{PROVIDER} returned HTTP {status}"),
            upstream_code: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse() {
        assert_eq!(parse_arguments(""), Some(serde_json::json!({})));
        assert_eq!(parse_arguments("  "), Some(serde_json::json!({})));
        assert_eq!(
            parse_arguments(r#"{"a":1}"#),
            Some(serde_json::json!({"a":1}))
        );
        assert_eq!(parse_arguments("[1]"), None);
        assert_eq!(parse_arguments("{"), None);
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason(Some("end_turn"), false), "stop");
        assert_eq!(finish_reason(Some("stop_sequence"), false), "stop");
        assert_eq!(finish_reason(Some("pause_turn"), false), "stop");
        assert_eq!(finish_reason(Some("max_tokens"), false), "length");
        assert_eq!(finish_reason(Some("tool_use"), false), "tool_calls");
        assert_eq!(finish_reason(Some("tool_use"), true), "stop");
        assert_eq!(finish_reason(Some("refusal"), false), "content_filter");
        assert_eq!(finish_reason(None, false), "stop");
        assert_eq!(finish_reason(Some("brand_new"), false), "stop");
    }

    #[test]
    fn error_event_classes() {
        let f = |kind: &str| {
            stream_failure(&ErrorBody {
                kind: kind.into(),
                message: "m".into(),
            })
            .class
        };
        assert_eq!(f("overloaded_error"), ErrorClass::UpstreamError);
        assert_eq!(f("rate_limit_error"), ErrorClass::UpstreamRateLimited);
        assert_eq!(f("api_error"), ErrorClass::UpstreamError);
        assert_eq!(f("invalid_request_error"), ErrorClass::UpstreamBadRequest);
        assert_eq!(f("something_else"), ErrorClass::UpstreamError);
    }

    #[test]
    fn excerpt_caps_long_messages() {
        let long = "x".repeat(2000);
        let f = stream_failure(&ErrorBody {
            kind: "api_error".into(),
            message: long,
        });
        assert!(f.message.len() <= crate::EXCERPT_MAX + '…'.len_utf8());
        assert!(f.message.starts_with("anthropic: "));
    }
}
