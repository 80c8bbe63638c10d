//! OpenAI Chat Completions <-> Amazon Bedrock Converse translation.
//!
//! Pure functions: [`encode_request`] turns a chat request into a Converse
//! request body (and [`converse_url`] gives the URL), [`decode_response`] and
//! [`StreamDecoder`] turn Converse replies and ConverseStream events (framed
//! by [`crate::eventstream`]) back into the OpenAI dialect, and
//! [`classify_error`] reads an error reply. Signing is [`crate::sigv4`].
//!
//! References:
//! - Converse: <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>
//! - ConverseStream: <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html>
//! - Tool use: <https://docs.aws.amazon.com/bedrock/latest/userguide/tool-use.html>
//! - Structured output: <https://docs.aws.amazon.com/bedrock/latest/userguide/structured-output.html>
//! - Errors: the `httpError` codes of the Bedrock Runtime Smithy model.
//!
//! Invariants:
//! - A request field Converse cannot honour is rejected with a [`CodecError`]
//!   naming it, unless the deployment asked to drop such fields. Nothing is
//!   silently changed in meaning. Some things cannot be dropped either: image
//!   URLs (Bedrock cannot fetch them) and tool history without tool
//!   definitions (Bedrock requires `toolConfig` then).
//! - Usage follows the OpenAI convention: prompt tokens include cache reads
//!   and writes (Converse reports them beside `inputTokens`).
//! - Upstream bodies are never echoed whole: only an excerpt of the
//!   `message` of a well-formed error body.
//!
//! Mapping decisions, where Converse differs from OpenAI:
//! - `tool_choice: "none"`: Converse's `toolChoice` has no `none` member, so
//!   the tools are withheld (no `toolConfig`), which is exactly "no tool
//!   calls". When the conversation already holds tool calls or results,
//!   Converse requires `toolConfig`; `none` then cannot be expressed and is
//!   rejected (or, when dropping unsupported fields, becomes `auto`).
//! - `required` → `{"any": {}}`, a named function → `{"tool": {"name"}}`.
//! - `response_format: json_schema` → `outputConfig.textFormat` (native
//!   structured output; the schema travels as a JSON string). `json_object`
//!   has no schema to give it, so it is emulated with a forced tool, as in
//!   the Anthropic codec, whose input becomes the message content.
//! - `cache_control` on a content part → a `cachePoint` block after it.
//! - Model-specific parameters (reasoning budgets, `top_k`) are not guessed
//!   from OpenAI fields: a deployment sets them with
//!   [`EncodeOptions::additional_model_request_fields`]; the client's
//!   `reasoning_effort` / `top_k` are rejected by name (or dropped).
//! - Dropped as carrying no meaning upstream: `user`, `metadata`,
//!   `service_tier`, `store: false`, and the `strict` flags of tools and
//!   schemas (Converse enforces output schemas itself; tool `strict` is
//!   model-specific).
//! - Tool calls the provider runs itself (`"type": "server_tool_use"`) are
//!   not returned as client tool calls.

use std::collections::{HashMap, HashSet};

use modelgate_api::Extra;
use modelgate_api::bedrock::{
    CachePointBlock, ContentBlock, ContentBlockDelta, ContentBlockDeltaEvent, ContentBlockStart,
    ContentBlockStartEvent, ContentBlockStopEvent, ConverseRequest, ConverseResponse, ErrorBody,
    ImageBlock, ImageSource, InferenceConfiguration, JsonSchemaDefinition, Message,
    MessageStartEvent, MessageStopEvent, MetadataEvent, OutputConfig, OutputFormat,
    OutputFormatStructure, ReasoningContentBlock, ReasoningContentBlockDelta, SpecificToolChoice,
    SystemContentBlock, Tool as BTool, ToolChoice as BToolChoice, ToolConfiguration,
    ToolInputSchema, ToolResultBlock, ToolResultContentBlock, ToolSpecification, ToolUseBlock,
};
use modelgate_api::openai::{
    ChatChunk, ChatCompletion, ChatMessage, ChatRequest, Choice, ChunkChoice, ContentPart, Delta,
    FunctionCall, FunctionCallDelta, MessageContent, ResponseMessage, Role, Tool, ToolCall,
    ToolCallDelta, ToolChoice,
};
use modelgate_core::{ErrorClass, Usage};
use serde_json::Value;

use crate::counts::Counts;
use crate::eventstream;
use crate::{CodecError, UnixSeconds, UpstreamFailure, excerpt};

/// Provider name used in error messages.
const PROVIDER: &str = "bedrock";

/// Tool name used to emulate `response_format: json_object`.
pub const DEFAULT_JSON_TOOL: &str = "json_response";

/// Description of the forced tool that emulates `json_object`.
const JSON_TOOL_DESCRIPTION: &str = "Respond with a JSON object.";

/// `upstream_code` given to a prompt that does not fit the model, so the
/// router's context-window fallbacks recognise it (as with OpenAI).
pub const CONTEXT_LENGTH_CODE: &str = "context_length_exceeded";

/// Per-deployment knobs for encoding.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    /// `inferenceConfig.maxTokens` when the client set neither `max_tokens`
    /// nor `max_completion_tokens`. `None` leaves the model's default (its
    /// maximum).
    pub default_max_tokens: Option<u32>,
    /// Drop fields Converse cannot take instead of rejecting the request.
    pub drop_unsupported: bool,
    /// Sent as `additionalModelRequestFields`: model-specific parameters the
    /// deployment wants on every request, e.g. for Claude
    /// `{"thinking": {"type": "enabled", "budget_tokens": 4096}}` or
    /// `{"top_k": 50}`. Passed through unchanged.
    pub additional_model_request_fields: Option<serde_json::Map<String, Value>>,
}

/// What the decoders need to know about the request that was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseContext {
    /// `created` for the OpenAI objects we emit.
    pub created: UnixSeconds,
    /// `id` for the OpenAI objects we emit (Converse replies carry none).
    pub id: String,
    /// `model` for the OpenAI objects we emit.
    pub model: String,
    /// Set when `json_object` was emulated with a forced tool of this name:
    /// its input becomes the message content.
    pub json_tool: Option<String>,
    /// The client asked for `stream_options.include_usage`.
    pub include_usage: bool,
}

/// The encoded request plus what the caller needs to send it and decode the
/// answer.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The Converse request body.
    pub request: ConverseRequest,
    /// The model id (or ARN) for the URL path.
    pub model_id: String,
    /// Whether to call ConverseStream rather than Converse.
    pub stream: bool,
    /// Name of the forced tool emulating `json_object`; goes into
    /// [`ResponseContext::json_tool`].
    pub context_json_tool: Option<String>,
}

impl Encoded {
    /// The URL to POST [`Encoded::request`] to (see [`converse_url`]).
    pub fn url(&self, region_or_endpoint: &str) -> Result<String, CodecError> {
        converse_url(region_or_endpoint, &self.model_id, self.stream)
    }
}

/// The Converse (or, with `stream`, ConverseStream) URL for a model.
///
/// `region_or_endpoint` is either a region (`us-east-1`, giving
/// `https://bedrock-runtime.us-east-1.amazonaws.com`) or a full endpoint URL
/// (`https://...`, for VPC endpoints, other partitions or a mock). The model
/// id is a path label, so it is percent-encoded: ids carry `:` (`...-v1:0`)
/// and ARNs carry `/` too.
pub fn converse_url(
    region_or_endpoint: &str,
    model_id: &str,
    stream: bool,
) -> Result<String, CodecError> {
    let base = if region_or_endpoint.starts_with("https://")
        || region_or_endpoint.starts_with("http://")
    {
        region_or_endpoint.trim_end_matches('/').to_owned()
    } else if !region_or_endpoint.is_empty()
        && region_or_endpoint
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        format!("https://bedrock-runtime.{region_or_endpoint}.amazonaws.com")
    } else {
        return Err(CodecError::new(
            "region",
            format!("`{region_or_endpoint}` is neither an AWS region nor an http(s) endpoint"),
        ));
    };
    if model_id.is_empty() {
        return Err(CodecError::new("model", "the Bedrock model id is empty"));
    }
    let op = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    model_url(&base, model_id, op)
}

/// `{base}/model/{model id}/{op}` for a Bedrock Runtime endpoint `base`
/// (`converse`, `converse-stream`, `invoke`), the id encoded as one path
/// segment.
pub fn model_url(base: &str, model_id: &str, op: &str) -> Result<String, CodecError> {
    if model_id.is_empty() {
        return Err(CodecError::new("model", "the Bedrock model id is empty"));
    }
    Ok(format!(
        "{}/model/{}/{op}",
        base.trim_end_matches('/'),
        crate::sigv4::uri_encode(model_id, false)
    ))
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// The OpenAI `tool_choice`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pick {
    Unset,
    Auto,
    Required,
    None,
    Named(String),
}

/// Encodes an OpenAI chat request as a Converse request body for
/// `upstream_model` (a Bedrock model id, inference profile id or ARN).
///
/// Fails with a [`CodecError`] naming the offending field when the request
/// uses something Converse cannot express (see the module docs).
pub fn encode_request(
    req: &ChatRequest,
    upstream_model: &str,
    opts: &EncodeOptions,
) -> Result<Encoded, CodecError> {
    check_unsupported(req, opts)?;
    let conv = encode_messages(&req.messages)?;

    let mut tools = encode_tools(req.tools.as_deref())?;
    let mut choice = encode_tool_choice(req.tool_choice.as_ref())?;
    let (output_config, json_tool) = encode_response_format(req, &mut tools, &mut choice)?;

    if let Pick::Named(name) = &choice {
        let known = tools
            .iter()
            .any(|t| matches!(t, BTool::ToolSpec(s) if &s.name == name));
        if !known {
            return Err(CodecError::new(
                "tool_choice.function.name",
                format!("tool_choice names `{name}`, which is not among `tools`"),
            ));
        }
    }
    let tool_config = if tools.is_empty() {
        if conv.has_tool_blocks {
            return Err(CodecError::new(
                "tools",
                format!(
                    "provider {PROVIDER} requires `tools` when the conversation contains tool calls or tool results"
                ),
            ));
        }
        // `tool_choice` without tools chooses from nothing; OpenAI clients
        // often send it (or `none`) unconditionally.
        None
    } else {
        let tool_choice = match choice {
            Pick::Unset => None,
            Pick::Auto => Some(BToolChoice::Auto(Extra::new())),
            Pick::Required => Some(BToolChoice::Any(Extra::new())),
            Pick::Named(name) => Some(BToolChoice::Tool(SpecificToolChoice { name })),
            Pick::None if !conv.has_tool_blocks => {
                // No `none` in Converse: withholding the tools is the same.
                tools.clear();
                None
            }
            Pick::None if opts.drop_unsupported => None,
            Pick::None => {
                return Err(CodecError::new(
                    "tool_choice",
                    format!(
                        "`tool_choice: \"none\"` cannot be expressed by provider {PROVIDER} once the conversation contains tool calls (Converse then requires the tool definitions and has no `none` choice)"
                    ),
                ));
            }
        };
        if tools.is_empty() {
            None
        } else {
            Some(ToolConfiguration { tools, tool_choice })
        }
    };

    // Only meaningful when the client's own tools are offered (the forced
    // JSON tool is a single call anyway).
    if req.parallel_tool_calls == Some(false)
        && tool_config.is_some()
        && json_tool.is_none()
        && !opts.drop_unsupported
    {
        return Err(CodecError::new(
            "parallel_tool_calls",
            format!(
                "`parallel_tool_calls: false` is not supported by provider {PROVIDER} (Converse cannot limit a turn to one tool call)"
            ),
        ));
    }

    let stop_sequences: Vec<String> = req
        .stop
        .as_ref()
        .map(|s| s.to_vec())
        .unwrap_or_default()
        .into_iter()
        // Converse takes non-empty strings only; an empty one stops nothing.
        .filter(|s| !s.is_empty())
        .collect();
    let inference = InferenceConfiguration {
        max_tokens: req.output_cap().or(opts.default_max_tokens),
        // OpenAI allows 0..=2, Converse 0..=1: out of range is a 400 naming
        // the field (see `check_unsupported`), or clamped when dropping.
        temperature: req.temperature.map(|t| t.min(1.0)),
        top_p: req.top_p,
        stop_sequences: (!stop_sequences.is_empty()).then_some(stop_sequences),
    };

    let request = ConverseRequest {
        messages: conv.messages,
        system: (!conv.system.is_empty()).then_some(conv.system),
        inference_config: (!inference.is_empty()).then_some(inference),
        tool_config,
        additional_model_request_fields: opts
            .additional_model_request_fields
            .as_ref()
            .filter(|m| !m.is_empty())
            .map(|m| Value::Object(m.clone())),
        output_config,
        extra: Extra::new(),
    };
    Ok(Encoded {
        request,
        model_id: upstream_model.to_owned(),
        stream: req.is_stream(),
        context_json_tool: json_tool,
    })
}

fn unsupported(param: &str) -> CodecError {
    CodecError::new(
        param,
        format!("`{param}` is not supported by provider {PROVIDER}"),
    )
}

/// Rejects (or, with `drop_unsupported`, ignores) request fields Converse has
/// no equivalent for.
fn check_unsupported(req: &ChatRequest, opts: &EncodeOptions) -> Result<(), CodecError> {
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
    // `inferenceConfig` has no seed; where a model takes one it is a
    // model-specific field.
    if req.seed.is_some() {
        reject("seed")?;
    }
    if req.temperature.is_some_and(|t| t > 1.0) && !opts.drop_unsupported {
        return Err(CodecError::new(
            "temperature",
            format!(
                "`temperature` above 1 is not supported by provider {PROVIDER} (its range is 0 to 1)"
            ),
        ));
    }
    // `Extra` is a sorted map, so the first error reported is deterministic.
    for (key, value) in &req.extra {
        match key.as_str() {
            // Storing completions is an OpenAI platform feature; `false` asks for nothing.
            "store" if matches!(value, Value::Null | Value::Bool(false)) => {}
            // A scheduling hint for OpenAI's own capacity; harmless to drop.
            "service_tier" => {}
            // `top_k`, `reasoning_effort`, ...: model-specific on Bedrock, so
            // set per deployment (`additional_model_request_fields`).
            _ => reject(key)?,
        }
    }
    Ok(())
}

/// The conversation, translated.
struct Conversation {
    system: Vec<SystemContentBlock>,
    messages: Vec<Message>,
    /// Some turn holds a `toolUse` or `toolResult` block.
    has_tool_blocks: bool,
}

/// Translates the conversation: system/developer messages become the
/// top-level `system`, the rest alternating user/assistant turns.
fn encode_messages(msgs: &[ChatMessage]) -> Result<Conversation, CodecError> {
    let mut system = Vec::new();
    let mut turns: Vec<Message> = Vec::new();
    let mut has_tool_blocks = false;

    for (i, msg) in msgs.iter().enumerate() {
        let (role, blocks) = match &msg.role {
            Role::System | Role::Developer => {
                system.extend(encode_system(i, msg)?);
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
        has_tool_blocks |= blocks
            .iter()
            .any(|b| matches!(b, ContentBlock::ToolUse(_) | ContentBlock::ToolResult(_)));
        // Converse wants alternating roles; OpenAI sends one `tool` message
        // per parallel call, so consecutive same-role messages merge.
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => turns.push(Message {
                role: role.to_owned(),
                content: blocks,
            }),
        }
    }
    for turn in &mut turns {
        if turn.role == "user" {
            // The results answering a tool call come first in the user turn
            // (Claude requires it); stable, so they keep their call order.
            turn.content
                .sort_by_key(|b| !matches!(b, ContentBlock::ToolResult(_)));
        }
    }
    Ok(Conversation {
        system,
        messages: turns,
        has_tool_blocks,
    })
}

/// Whether a content part asks for a prompt-cache checkpoint after it
/// (`cache_control`, which OpenAI-compatible clients targeting Claude send).
fn wants_cache_point(part: &ContentPart) -> bool {
    part.extra
        .get("cache_control")
        .is_some_and(|v| !v.is_null())
}

fn part_text(i: usize, j: usize, part: &ContentPart) -> Result<String, CodecError> {
    part.text.clone().ok_or_else(|| {
        CodecError::new(
            format!("messages[{i}].content[{j}].text"),
            "text part has no `text`",
        )
    })
}

fn unsupported_part(i: usize, j: usize, kind: &str, place: &str) -> CodecError {
    CodecError::new(
        format!("messages[{i}].content[{j}].type"),
        format!("`{kind}` parts are not supported in {place} by provider {PROVIDER}"),
    )
}

fn encode_system(i: usize, msg: &ChatMessage) -> Result<Vec<SystemContentBlock>, CodecError> {
    let mut out = Vec::new();
    match &msg.content {
        None => {}
        // Converse system text must not be empty.
        Some(MessageContent::Text(s)) if s.is_empty() => {}
        Some(MessageContent::Text(s)) => out.push(SystemContentBlock::Text(s.clone())),
        Some(MessageContent::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                if part.kind != "text" {
                    return Err(unsupported_part(
                        i,
                        j,
                        &part.kind,
                        &format!("{} messages", msg.role.as_str()),
                    ));
                }
                let text = part_text(i, j, part)?;
                if !text.is_empty() {
                    out.push(SystemContentBlock::Text(text));
                }
                if wants_cache_point(part) {
                    out.push(SystemContentBlock::CachePoint(
                        CachePointBlock::default_point(),
                    ));
                }
            }
        }
    }
    Ok(out)
}

fn encode_user(i: usize, msg: &ChatMessage) -> Result<Vec<ContentBlock>, CodecError> {
    match &msg.content {
        None => Err(CodecError::new(
            format!("messages[{i}].content"),
            "user message has no content",
        )),
        Some(MessageContent::Text(s)) => Ok(vec![ContentBlock::Text(s.clone())]),
        Some(MessageContent::Parts(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                match part.kind.as_str() {
                    "text" => out.push(ContentBlock::Text(part_text(i, j, part)?)),
                    "image_url" => out.push(ContentBlock::Image(encode_image(i, j, part)?)),
                    other => return Err(unsupported_part(i, j, other, "user messages")),
                }
                if wants_cache_point(part) {
                    out.push(ContentBlock::CachePoint(CachePointBlock::default_point()));
                }
            }
            Ok(out)
        }
    }
}

/// `data:image/<type>;base64,<data>` becomes an image block with the bytes
/// inline. Bedrock cannot fetch URLs, so `http(s)` images are refused.
fn encode_image(i: usize, j: usize, part: &ContentPart) -> Result<ImageBlock, CodecError> {
    let param = format!("messages[{i}].content[{j}].image_url");
    let url = &part
        .image_url
        .as_ref()
        .ok_or_else(|| CodecError::new(param.clone(), "image_url part has no `image_url`"))?
        .url;
    let url_param = format!("{param}.url");
    if url.starts_with("https://") || url.starts_with("http://") {
        return Err(CodecError::new(
            url_param,
            format!(
                "provider {PROVIDER} cannot fetch image URLs; send the image inline as a base64 data URL (data:image/png;base64,...)"
            ),
        ));
    }
    let parsed = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .and_then(|(meta, data)| Some((meta.strip_suffix(";base64")?, data)));
    let Some((media_type, data)) = parsed else {
        return Err(CodecError::new(
            url_param,
            "image URL must be a base64 data URL of the form `data:<media type>;base64,<data>`",
        ));
    };
    // ImageFormat: png | jpeg | gif | webp.
    let format = match media_type.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(CodecError::new(
                url_param,
                format!(
                    "image type `{other}` is not supported by provider {PROVIDER} (png, jpeg, gif, webp)"
                ),
            ));
        }
    };
    if data.is_empty() {
        return Err(CodecError::new(url_param, "image data is empty"));
    }
    Ok(ImageBlock {
        format: format.to_owned(),
        source: ImageSource::Bytes(data.to_owned()),
    })
}

/// Tool names and tool-use ids: `^[a-zA-Z0-9_-]+$`, at most 64 characters.
fn valid_tool_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_tool_use_id(param: String, id: &str) -> Result<(), CodecError> {
    if valid_tool_ident(id) {
        Ok(())
    } else {
        Err(CodecError::new(
            param,
            format!(
                "tool call id `{id}` is not accepted by provider {PROVIDER} (letters, digits, `_` and `-`, at most 64)"
            ),
        ))
    }
}

fn encode_assistant(i: usize, msg: &ChatMessage) -> Result<Vec<ContentBlock>, CodecError> {
    let mut out = Vec::new();
    match &msg.content {
        // Empty text blocks are refused; an assistant turn with only tool
        // calls usually carries `""` or null here.
        None => {}
        Some(MessageContent::Text(s)) if s.is_empty() => {}
        Some(MessageContent::Text(s)) => out.push(ContentBlock::Text(s.clone())),
        Some(MessageContent::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                match part.kind.as_str() {
                    "text" => {
                        let text = part_text(i, j, part)?;
                        if !text.is_empty() {
                            out.push(ContentBlock::Text(text));
                        }
                        if wants_cache_point(part) {
                            out.push(ContentBlock::CachePoint(CachePointBlock::default_point()));
                        }
                    }
                    // The model's own earlier refusal: no block for it, and
                    // nothing the model needs.
                    "refusal" => {}
                    other => return Err(unsupported_part(i, j, other, "assistant messages")),
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
        check_tool_use_id(format!("messages[{i}].tool_calls[{j}].id"), &call.id)?;
        let input = parse_arguments(&call.function.arguments).ok_or_else(|| {
            CodecError::new(
                format!("messages[{i}].tool_calls[{j}].function.arguments"),
                "function arguments must be a JSON object",
            )
        })?;
        out.push(ContentBlock::ToolUse(ToolUseBlock {
            tool_use_id: call.id.clone(),
            name: call.function.name.clone(),
            input,
            extra: Extra::new(),
        }));
    }
    Ok(out)
}

/// Parses OpenAI's JSON-encoded arguments into the object `toolUse.input`
/// must be. Empty arguments mean no arguments.
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
    check_tool_use_id(format!("messages[{i}].tool_call_id"), &tool_use_id)?;
    let content = match &msg.content {
        None => vec![ToolResultContentBlock::Text(String::new())],
        Some(MessageContent::Text(s)) => vec![ToolResultContentBlock::Text(s.clone())],
        Some(MessageContent::Parts(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                if part.kind != "text" {
                    return Err(unsupported_part(i, j, &part.kind, "tool messages"));
                }
                out.push(ToolResultContentBlock::Text(part_text(i, j, part)?));
            }
            out
        }
    };
    Ok(ContentBlock::ToolResult(ToolResultBlock {
        tool_use_id,
        content,
        // OpenAI tool messages carry no success/error flag.
        status: None,
        extra: Extra::new(),
    }))
}

fn encode_tools(tools: Option<&[Tool]>) -> Result<Vec<BTool>, CodecError> {
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
        if !valid_tool_ident(&f.name) {
            return Err(CodecError::new(
                format!("tools[{i}].function.name"),
                format!(
                    "tool name `{}` is not accepted by provider {PROVIDER} (letters, digits, `_` and `-`, at most 64)",
                    f.name
                ),
            ));
        }
        out.push(BTool::ToolSpec(ToolSpecification {
            name: f.name.clone(),
            // Converse descriptions must not be empty.
            description: f.description.clone().filter(|d| !d.is_empty()),
            input_schema: ToolInputSchema::Json(
                f.parameters.clone().unwrap_or_else(empty_object_schema),
            ),
            extra: Extra::new(),
        }));
    }
    Ok(out)
}

/// `{"type":"object","properties":{}}`: a function that takes no arguments.
fn empty_object_schema() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

fn encode_tool_choice(choice: Option<&ToolChoice>) -> Result<Pick, CodecError> {
    Ok(match choice {
        None => Pick::Unset,
        Some(ToolChoice::Mode(m)) => match m.as_str() {
            "auto" => Pick::Auto,
            "required" => Pick::Required,
            "none" => Pick::None,
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
            Pick::Named(f.name.clone())
        }
    })
}

/// `json_schema` → `outputConfig.textFormat`; `json_object` → a forced
/// tool (returned by name for the decoders).
fn encode_response_format(
    req: &ChatRequest,
    tools: &mut Vec<BTool>,
    choice: &mut Pick,
) -> Result<(Option<OutputConfig>, Option<String>), CodecError> {
    let Some(rf) = &req.response_format else {
        return Ok((None, None));
    };
    match rf.kind.as_str() {
        "text" => Ok((None, None)),
        "json_schema" => {
            let js = rf.json_schema.as_ref().ok_or_else(|| {
                CodecError::new(
                    "response_format.json_schema",
                    "`json_schema` is required when type is `json_schema`",
                )
            })?;
            let schema = js
                .schema
                .clone()
                .unwrap_or_else(|| serde_json::json!({"type": "object"}));
            let config = OutputConfig {
                text_format: Some(OutputFormat {
                    kind: "json_schema".into(),
                    structure: OutputFormatStructure::JsonSchema(JsonSchemaDefinition {
                        // The Converse field is a string holding the schema.
                        schema: compact_json(&schema),
                        name: (!js.name.is_empty()).then(|| js.name.clone()),
                        description: js.description.clone().filter(|d| !d.is_empty()),
                    }),
                }),
            };
            Ok((Some(config), None))
        }
        "json_object" => {
            if !tools.is_empty() {
                return Err(CodecError::new(
                    "response_format",
                    format!(
                        "`response_format: json_object` cannot be combined with `tools` on provider {PROVIDER} (it is emulated with a forced tool); use `json_schema`"
                    ),
                ));
            }
            tools.push(BTool::ToolSpec(ToolSpecification {
                name: DEFAULT_JSON_TOOL.into(),
                description: Some(JSON_TOOL_DESCRIPTION.into()),
                input_schema: ToolInputSchema::Json(serde_json::json!({"type": "object"})),
                extra: Extra::new(),
            }));
            // With a single tool, `any` forces it, and `any` is supported by
            // more models than a named `tool` choice.
            *choice = Pick::Required;
            Ok((None, Some(DEFAULT_JSON_TOOL.to_owned())))
        }
        other => Err(CodecError::new(
            "response_format.type",
            format!("response_format type `{other}` is not supported by provider {PROVIDER}"),
        )),
    }
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Maps a Converse `stopReason` to an OpenAI `finish_reason`.
fn finish_reason(stop_reason: Option<&str>, json_tool_only: bool) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") if json_tool_only => "stop",
        Some("tool_use") => "tool_calls",
        Some("guardrail_intervened" | "content_filtered") => "content_filter",
        // end_turn, stop_sequence, absent, and reasons added later.
        _ => "stop",
    }
}

/// Whether a tool-use block is marked `"type": "server_tool_use"` (a
/// system tool Bedrock runs itself, not a call for the client).
fn is_server_tool(extra: &Extra) -> bool {
    extra.get("type").and_then(Value::as_str) == Some("server_tool_use")
}

/// Compact JSON of a value (tool inputs as OpenAI `arguments`, schemas).
fn compact_json(v: &Value) -> String {
    // Serializing a `Value` cannot fail (its map keys are strings).
    serde_json::to_string(v).unwrap_or_default()
}

/// Decodes a Converse response into a `chat.completion`.
pub fn decode_response(resp: ConverseResponse, ctx: &ResponseContext) -> (ChatCompletion, Usage) {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    let mut json_content = None;

    let blocks = resp.output.message.map(|m| m.content).unwrap_or_default();
    for block in &blocks {
        match block {
            ContentBlock::Text(t) => text.push_str(t),
            ContentBlock::ReasoningContent(ReasoningContentBlock::ReasoningText(r)) => {
                reasoning.push_str(&r.text);
            }
            // A tool the provider ran itself: not the client's to call.
            ContentBlock::ToolUse(t) if is_server_tool(&t.extra) => {}
            ContentBlock::ToolUse(t) => {
                if json_content.is_none() && ctx.json_tool.as_deref() == Some(t.name.as_str()) {
                    json_content = Some(compact_json(&t.input));
                } else {
                    tool_calls.push(ToolCall {
                        id: t.tool_use_id.clone(),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: t.name.clone(),
                            arguments: compact_json(&t.input),
                        },
                        extra: Extra::new(),
                    });
                }
            }
            // Redacted reasoning, cache points, citations and future block
            // types carry nothing an OpenAI client can use.
            _ => {}
        }
    }

    let json_used = json_content.is_some();
    let content = match json_content {
        // The emulated JSON output is the answer; any preamble text is not.
        Some(json) => Some(json),
        None if text.is_empty() && !tool_calls.is_empty() => None,
        None => Some(text),
    };
    let mut extra = Extra::new();
    if !reasoning.is_empty() {
        extra.insert("reasoning_content".into(), Value::String(reasoning));
    }
    let finish = finish_reason(Some(&resp.stop_reason), json_used && tool_calls.is_empty());
    let mut counts = Counts::default();
    counts.update(&resp.usage);

    let completion = ChatCompletion {
        id: ctx.id.clone(),
        object: "chat.completion".into(),
        created: ctx.created,
        model: ctx.model.clone(),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: "assistant".into(),
                content,
                refusal: None,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
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

/// One ConverseStream event, decoded from an event-stream message.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// `messageStart`.
    MessageStart(MessageStartEvent),
    /// `contentBlockStart` (tool-use blocks only).
    ContentBlockStart(ContentBlockStartEvent),
    /// `contentBlockDelta`.
    ContentBlockDelta(ContentBlockDeltaEvent),
    /// `contentBlockStop`.
    ContentBlockStop(ContentBlockStopEvent),
    /// `messageStop`.
    MessageStop(MessageStopEvent),
    /// `metadata` (usage).
    Metadata(MetadataEvent),
    /// An event type added after this was written (its name); ignored.
    Other(String),
}

fn parse_payload<T: serde::de::DeserializeOwned>(
    event_type: &str,
    payload: &[u8],
) -> Result<T, UpstreamFailure> {
    serde_json::from_slice(payload).map_err(|_| UpstreamFailure {
        class: ErrorClass::UpstreamError,
        status: None,
        message: format!("{PROVIDER} sent a malformed `{event_type}` event"),
        upstream_code: None,
    })
}

/// Reads one event-stream message of a ConverseStream response: an event,
/// or the failure an `exception` / `error` message reports.
pub fn parse_stream_message(msg: &eventstream::Message) -> Result<StreamEvent, UpstreamFailure> {
    match msg.message_type() {
        Some("exception") => {
            let kind = msg.exception_type().unwrap_or("exception");
            let body: ErrorBody = serde_json::from_slice(&msg.payload).unwrap_or_default();
            Err(failure(None, Some(kind), body.message.as_deref()))
        }
        // Unmodelled errors name themselves in headers.
        Some("error") => Err(failure(
            None,
            Some(msg.error_code().unwrap_or("error")),
            msg.error_message(),
        )),
        Some("event") | None => {
            let Some(event_type) = msg.event_type() else {
                return Ok(StreamEvent::Other(String::new()));
            };
            let p = &msg.payload;
            Ok(match event_type {
                "messageStart" => StreamEvent::MessageStart(parse_payload(event_type, p)?),
                "contentBlockStart" => {
                    StreamEvent::ContentBlockStart(parse_payload(event_type, p)?)
                }
                "contentBlockDelta" => {
                    StreamEvent::ContentBlockDelta(parse_payload(event_type, p)?)
                }
                "contentBlockStop" => StreamEvent::ContentBlockStop(parse_payload(event_type, p)?),
                "messageStop" => StreamEvent::MessageStop(parse_payload(event_type, p)?),
                "metadata" => StreamEvent::Metadata(parse_payload(event_type, p)?),
                other => StreamEvent::Other(other.to_owned()),
            })
        }
        Some(other) => Ok(StreamEvent::Other(other.to_owned())),
    }
}

/// What a content block (by its stream index) turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    /// A client tool call, with its OpenAI `tool_calls[].index`.
    Tool(u32),
    /// The forced tool emulating `json_object`: its input is the content.
    JsonTool,
    Reasoning,
    Ignored,
}

/// Stateful translator of ConverseStream events into OpenAI chunks.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    ctx: ResponseContext,
    counts: Counts,
    blocks: HashMap<u32, BlockKind>,
    /// Block indexes of tool blocks whose input has had a non-empty fragment.
    has_input: HashSet<u32>,
    tool_calls: u32,
    json_tool_used: bool,
    /// `messageStop` seen.
    stopped: bool,
    /// `metadata` seen.
    metadata: bool,
    usage_sent: bool,
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
            id: self.ctx.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.ctx.created,
            model: self.ctx.model.clone(),
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

    /// The usage chunk, once the answer and its usage are both complete.
    fn usage_chunk(&mut self) -> Vec<ChatChunk> {
        if !self.ctx.include_usage || !self.stopped || !self.metadata || self.usage_sent {
            return vec![];
        }
        self.usage_sent = true;
        let mut chunk = self.chunk(Delta::default(), None);
        chunk.choices.clear();
        chunk.usage = Some(self.counts.openai());
        vec![chunk]
    }

    /// Feeds one event-stream message; returns the chunks to send, or the
    /// failure an exception reports.
    pub fn on_message(
        &mut self,
        msg: &eventstream::Message,
    ) -> Result<Vec<ChatChunk>, UpstreamFailure> {
        let event = parse_stream_message(msg)?;
        Ok(self.on_event(event))
    }

    /// Feeds one decoded event; returns the chunks to send.
    pub fn on_event(&mut self, ev: StreamEvent) -> Vec<ChatChunk> {
        match ev {
            StreamEvent::MessageStart(_) => vec![self.chunk(
                Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..Delta::default()
                },
                None,
            )],
            StreamEvent::ContentBlockStart(e) => self.on_block_start(e),
            StreamEvent::ContentBlockDelta(e) => self.on_block_delta(e),
            StreamEvent::ContentBlockStop(e) => self.on_block_stop(e.content_block_index),
            StreamEvent::MessageStop(e) => {
                if self.stopped {
                    return vec![];
                }
                self.stopped = true;
                let json_only = self.json_tool_used && self.tool_calls == 0;
                let finish = finish_reason(Some(&e.stop_reason), json_only);
                let mut out = vec![self.chunk(Delta::default(), Some(finish))];
                out.extend(self.usage_chunk());
                out
            }
            StreamEvent::Metadata(e) => {
                self.counts.update(&e.usage);
                self.metadata = true;
                self.usage_chunk()
            }
            StreamEvent::Other(_) => vec![],
        }
    }

    fn on_block_start(&mut self, e: ContentBlockStartEvent) -> Vec<ChatChunk> {
        let index = e.content_block_index;
        let ContentBlockStart::ToolUse(start) = e.start else {
            self.blocks.insert(index, BlockKind::Ignored);
            return vec![];
        };
        if is_server_tool(&start.extra) {
            self.blocks.insert(index, BlockKind::Ignored);
            return vec![];
        }
        if !self.json_tool_used && self.ctx.json_tool.as_deref() == Some(start.name.as_str()) {
            self.json_tool_used = true;
            self.blocks.insert(index, BlockKind::JsonTool);
            return vec![];
        }
        let k = self.tool_calls;
        self.tool_calls += 1;
        self.blocks.insert(index, BlockKind::Tool(k));
        self.tool_chunk(ToolCallDelta {
            index: k,
            id: Some(start.tool_use_id),
            kind: Some("function".into()),
            function: Some(FunctionCallDelta {
                name: Some(start.name),
                arguments: Some(String::new()),
            }),
            ..ToolCallDelta::default()
        })
    }

    fn on_block_delta(&mut self, e: ContentBlockDeltaEvent) -> Vec<ChatChunk> {
        let index = e.content_block_index;
        // Text and reasoning blocks have no start event: their first delta
        // says what they are.
        let kind = *self.blocks.entry(index).or_insert(match &e.delta {
            // With `json_object` emulated by a forced tool, the content is
            // that tool's input; preamble text is dropped, as in
            // `decode_response`, so the streamed content stays valid JSON.
            ContentBlockDelta::Text(_) if self.ctx.json_tool.is_some() => BlockKind::Ignored,
            ContentBlockDelta::Text(_) => BlockKind::Text,
            ContentBlockDelta::ReasoningContent(_) => BlockKind::Reasoning,
            // Tool input without a start (no id or name), or a future delta.
            _ => BlockKind::Ignored,
        });
        match (kind, e.delta) {
            (BlockKind::Text, ContentBlockDelta::Text(t)) => self.content_chunk(&t),
            (
                BlockKind::Reasoning,
                ContentBlockDelta::ReasoningContent(ReasoningContentBlockDelta::Text(t)),
            ) => self.reasoning_chunk(&t),
            (BlockKind::Tool(k), ContentBlockDelta::ToolUse(t)) if !t.input.is_empty() => {
                self.has_input.insert(index);
                self.tool_chunk(ToolCallDelta {
                    index: k,
                    function: Some(FunctionCallDelta {
                        name: None,
                        arguments: Some(t.input),
                    }),
                    ..ToolCallDelta::default()
                })
            }
            (BlockKind::JsonTool, ContentBlockDelta::ToolUse(t)) if !t.input.is_empty() => {
                self.has_input.insert(index);
                self.content_chunk(&t.input)
            }
            // Signatures, redacted reasoning, citations, ignored blocks.
            _ => vec![],
        }
    }

    /// A tool without arguments streams no (or only empty) input fragments,
    /// which would leave the client with `arguments: ""`, not valid JSON.
    fn on_block_stop(&mut self, index: u32) -> Vec<ChatChunk> {
        if self.has_input.contains(&index) {
            return vec![];
        }
        match self.blocks.get(&index).copied() {
            Some(BlockKind::Tool(k)) => {
                self.has_input.insert(index);
                self.tool_chunk(ToolCallDelta {
                    index: k,
                    function: Some(FunctionCallDelta {
                        name: None,
                        arguments: Some("{}".into()),
                    }),
                    ..ToolCallDelta::default()
                })
            }
            Some(BlockKind::JsonTool) => {
                self.has_input.insert(index);
                self.content_chunk("{}")
            }
            _ => vec![],
        }
    }

    /// Usage seen so far.
    pub fn usage(&self) -> Usage {
        self.counts.core()
    }

    /// Whether `messageStop` was seen: the answer is complete (the
    /// `metadata` event with usage normally follows it).
    pub fn is_done(&self) -> bool {
        self.stopped
    }

    /// Whether the `metadata` event (usage) was seen.
    pub fn has_usage(&self) -> bool {
        self.metadata
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// The bare exception name of an `x-amzn-ErrorType` header, a `__type` /
/// `code` member or an `:exception-type` header, first letter upper case:
/// `ValidationException:http://internal.amazon.com/...` and
/// `com.amazon.coral.validate#ValidationException` give
/// `ValidationException`, `throttlingException` gives `ThrottlingException`.
fn exception_name(raw: &str) -> String {
    let name = raw.split(':').next().unwrap_or(raw);
    let name = name.rsplit('#').next().unwrap_or(name).trim();
    let mut chars = name.chars();
    match chars.next() {
        Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Error class for a Bedrock exception name (see [`exception_name`]), from
/// the `httpError` codes of the Bedrock Runtime model and what each means.
fn class_for_exception(name: &str) -> Option<ErrorClass> {
    Some(match name {
        // 429: over the account's quota.
        "ThrottlingException" | "ServiceQuotaExceededException" => ErrorClass::UpstreamRateLimited,
        // 400 / 404: the request (or the deployment's model id) is wrong.
        "ValidationException" | "ResourceNotFoundException" | "ConflictException" => {
            ErrorClass::UpstreamBadRequest
        }
        // 403: our credentials, or their access to the model.
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignatureException"
        | "MissingAuthenticationTokenException"
        | "ExpiredTokenException" => ErrorClass::UpstreamAuth,
        // 408: the model took too long.
        "ModelTimeoutException" => ErrorClass::UpstreamTimeout,
        // 429 "not ready, retry" (the SDKs retry it), 500, 503, and the 424s
        // where the model itself failed: transient, try again or elsewhere.
        "ModelNotReadyException"
        | "InternalServerException"
        | "ServiceUnavailableException"
        | "ModelErrorException"
        | "ModelStreamErrorException" => ErrorClass::UpstreamError,
        _ => return None,
    })
}

/// Whether a validation message says the prompt does not fit the model
/// ("Input is too long for requested model.", ...).
fn is_context_overflow(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("too long")
        || m.contains("context window")
        || m.contains("context length")
        || m.contains("too many input tokens")
}

/// Builds the failure for an exception name and message.
fn failure(status: Option<u16>, kind: Option<&str>, message: Option<&str>) -> UpstreamFailure {
    let name = kind.map(exception_name).filter(|n| !n.is_empty());
    let class = name
        .as_deref()
        .and_then(class_for_exception)
        .or_else(|| {
            status.map(|s| match s {
                // A gateway gave up waiting (the shared mapping calls it a
                // plain 5xx); the model may just be slow.
                504 => ErrorClass::UpstreamTimeout,
                s => crate::class_for_status(s),
            })
        })
        .unwrap_or(ErrorClass::UpstreamError);
    let overflow = class == ErrorClass::UpstreamBadRequest
        && name.as_deref() != Some("ResourceNotFoundException")
        && message.is_some_and(is_context_overflow);
    let upstream_code = if overflow {
        Some(CONTEXT_LENGTH_CODE.to_owned())
    } else {
        name.clone()
    };
    let text = match (message.filter(|m| !m.is_empty()), status, &name) {
        (Some(m), _, _) => excerpt(&format!("{PROVIDER}: {m}")),
        (None, Some(s), _) => format!("{PROVIDER} returned HTTP {s}"),
        (None, None, Some(n)) => format!("{PROVIDER} stream failed: {n}"),
        (None, None, None) => format!("{PROVIDER} stream failed"),
    };
    UpstreamFailure {
        class,
        status,
        message: text,
        upstream_code,
    }
}

/// Classifies a Bedrock error response: its status, the `x-amzn-ErrorType`
/// header (when present) and the body (`{"message": "..."}`).
///
/// The exception name decides the class where it is known (a 429 can be
/// `ThrottlingException` or `ModelNotReadyException`); otherwise the status
/// does. A validation error saying the input is too long gets the upstream
/// code `context_length_exceeded`. Only the `message` of a JSON body is
/// passed on, as an excerpt; any other body is reduced to the status.
pub fn classify_error(status: u16, error_type: Option<&str>, body: &[u8]) -> UpstreamFailure {
    let parsed: Option<ErrorBody> = match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => serde_json::from_value(v).ok(),
        _ => None,
    };
    let body_type = parsed.as_ref().and_then(|b| {
        ["__type", "code", "Code"]
            .iter()
            .find_map(|k| b.extra.get(*k).and_then(Value::as_str))
    });
    let kind = error_type.filter(|t| !t.trim().is_empty()).or(body_type);
    let message = parsed.as_ref().and_then(|b| b.message.as_deref());
    failure(Some(status), kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason(Some("end_turn"), false), "stop");
        assert_eq!(finish_reason(Some("stop_sequence"), false), "stop");
        assert_eq!(finish_reason(Some("max_tokens"), false), "length");
        assert_eq!(
            finish_reason(Some("model_context_window_exceeded"), false),
            "length"
        );
        assert_eq!(finish_reason(Some("tool_use"), false), "tool_calls");
        assert_eq!(finish_reason(Some("tool_use"), true), "stop");
        assert_eq!(
            finish_reason(Some("guardrail_intervened"), false),
            "content_filter"
        );
        assert_eq!(
            finish_reason(Some("content_filtered"), false),
            "content_filter"
        );
        assert_eq!(finish_reason(Some("brand_new"), false), "stop");
        assert_eq!(finish_reason(None, false), "stop");
    }

    #[test]
    fn exception_names_are_normalised() {
        assert_eq!(
            exception_name(
                "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"
            ),
            "ValidationException"
        );
        assert_eq!(
            exception_name("com.amazon.coral.validate#ValidationException"),
            "ValidationException"
        );
        assert_eq!(exception_name("throttlingException"), "ThrottlingException");
        assert_eq!(exception_name(""), "");
    }

    #[test]
    fn model_urls() {
        assert_eq!(
            converse_url(
                "us-east-1",
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
                false
            )
            .unwrap(),
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
        );
        assert_eq!(
            converse_url(
                "https://vpce-1.bedrock-runtime.eu-west-1.vpce.amazonaws.com/",
                "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.meta.llama3-2-1b-instruct-v1:0",
                true
            )
            .unwrap(),
            "https://vpce-1.bedrock-runtime.eu-west-1.vpce.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A123456789012%3Ainference-profile%2Feu.meta.llama3-2-1b-instruct-v1%3A0/converse-stream"
        );
        assert_eq!(
            converse_url("evil.com/x?", "m", false).unwrap_err().param,
            "region"
        );
        assert_eq!(
            converse_url("us-east-1", "", false).unwrap_err().param,
            "model"
        );
    }

    #[test]
    fn arguments_parse() {
        assert_eq!(parse_arguments(""), Some(serde_json::json!({})));
        assert_eq!(parse_arguments("[1]"), None);
        assert_eq!(parse_arguments("{"), None);
    }
}
