//! OpenAI Chat Completions <-> Google Gemini API translation.
//!
//! Pure functions: [`encode_request`] turns a chat request into a
//! `GenerateContentRequest`, [`decode_response`] and [`StreamDecoder`] turn
//! Gemini replies back into the OpenAI dialect, [`classify_error`] reads an
//! error reply, [`chat_url`] builds the endpoint URL. No I/O: the transport
//! sends the body to [`chat_url`] with the API key in the [`API_KEY_HEADER`]
//! header (never in the `?key=` query parameter, so it stays out of URLs that
//! get logged).
//!
//! References:
//! - generateContent / streamGenerateContent: <https://ai.google.dev/api/generate-content>
//! - Function calling: <https://ai.google.dev/gemini-api/docs/function-calling>
//! - Structured output: <https://ai.google.dev/gemini-api/docs/structured-output>
//! - Thinking and thought signatures: <https://ai.google.dev/gemini-api/docs/thinking>,
//!   <https://ai.google.dev/gemini-api/docs/thought-signatures>
//! - Safety: <https://ai.google.dev/gemini-api/docs/safety-settings>
//! - Errors: <https://ai.google.dev/gemini-api/docs/troubleshooting>
//!
//! Invariants:
//! - A request field Gemini cannot honour is rejected with a [`CodecError`]
//!   naming it, unless the deployment asked to drop such fields. Nothing is
//!   silently changed in meaning. `user` and `metadata` are not sent (Gemini
//!   has no such fields; they do not change the answer).
//! - Usage follows the OpenAI convention: prompt tokens include cached tokens,
//!   completion tokens include reasoning. Google bills thoughts at the output
//!   rate, so `output_tokens = candidatesTokenCount + thoughtsTokenCount`, and
//!   the thoughts are also reported as reasoning tokens. Tool-use prompt tokens
//!   (built-in tools) are billed as input and counted there.
//! - Gemini has no tool call ids on most models: a call without one gets the
//!   stable id `call_<n>` (`n` counts the calls of that choice). Tool results
//!   are matched back to their function by the id of the earlier call. Ids that
//!   Gemini did give are sent back on the call and its response.
//! - Thought signatures ride on tool calls as
//!   `extra_content.google.thought_signature` (the field Google's own
//!   OpenAI-compatible endpoint uses) and are sent back on the `functionCall`
//!   part they came with. Gemini 3 rejects a function call of the current turn
//!   without one; history the model did not sign (another provider's turns, a
//!   client that dropped the field) gets Google's documented placeholder
//!   [`SKIP_THOUGHT_SIGNATURE`] on the first call of each assistant turn.
//! - Upstream bodies are never echoed whole: only an excerpt of the message
//!   inside a well-formed error envelope, with anything shaped like a Google API
//!   key removed.

use std::collections::{BTreeMap, HashMap};

use modelgate_api::Extra;
use modelgate_api::gemini::{
    Blob, Candidate, Content, ErrorBody, FileData, FunctionCall as GFunctionCall,
    FunctionCallingConfig, FunctionDeclaration, FunctionResponse, GenerateContentRequest,
    GenerateContentResponse, GenerationConfig, Part, ThinkingConfig, Tool as GTool, ToolConfig,
    UsageMetadata,
};
use modelgate_api::openai::{
    ChatChunk, ChatCompletion, ChatMessage, ChatRequest, Choice, ChunkChoice,
    CompletionTokensDetails, ContentPart, Delta, FunctionCall, FunctionCallDelta, MessageContent,
    PromptTokensDetails, ResponseMessage, Role, Tool, ToolCall, ToolCallDelta, ToolChoice,
    Usage as OUsage,
};
use modelgate_core::{ErrorClass, Usage};
use serde_json::{Value, json};

use crate::{CodecError, UnixSeconds, UpstreamFailure, excerpt};

/// Provider name used in error messages.
const PROVIDER: &str = "gemini";

/// The Gemini API host.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// The header that carries the API key
/// (<https://ai.google.dev/gemini-api/docs/api-key>).
pub const API_KEY_HEADER: &str = "x-goog-api-key";

/// Google's documented placeholder signature for function calls the model did
/// not sign itself; it turns off signature validation for that call.
pub const SKIP_THOUGHT_SIGNATURE: &str = "skip_thought_signature_validator";

/// The `upstream_code` the gateway's fallback logic reads as "prompt too long".
const CONTEXT_LENGTH_CODE: &str = "context_length_exceeded";

/// The `upstream_code` the gateway's fallback logic reads as a content-policy refusal.
const CONTENT_POLICY_CODE: &str = "content_policy_violation";

/// Per-deployment knobs for encoding.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    /// `maxOutputTokens` sent when the client set neither `max_tokens` nor
    /// `max_completion_tokens`. `None` leaves Gemini's per-model default.
    pub default_max_tokens: Option<u32>,
    /// Drop fields Gemini cannot take instead of rejecting the request.
    pub drop_unsupported: bool,
}

/// What the decoders need to know about the request that was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseContext {
    /// `created` for the OpenAI objects we emit.
    pub created: UnixSeconds,
    /// The upstream model, reported when the reply has no `modelVersion`.
    pub model: String,
    /// The client asked for `stream_options.include_usage`.
    pub include_usage: bool,
}

/// The encoded request.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The `generateContent` body.
    pub request: GenerateContentRequest,
    /// Whether to call `streamGenerateContent` (Gemini has no `stream` field:
    /// the method decides; see [`chat_url`]).
    pub stream: bool,
}

// ---------------------------------------------------------------------------
// URLs
// ---------------------------------------------------------------------------

/// The endpoint for `model` under `base` (scheme and host, optionally ending in
/// an API version such as `/v1beta`; `/v1beta` is added otherwise):
/// `{base}/v1beta/models/{model}:generateContent`, or for streams
/// `{base}/v1beta/models/{model}:streamGenerateContent?alt=sse` (without
/// `alt=sse` Gemini streams one JSON array instead of server-sent events).
///
/// `model` may be a bare id (`gemini-2.5-flash`) or a resource name
/// (`models/...`, `tunedModels/...`); each path segment is percent-encoded.
pub fn chat_url(base: &str, model: &str, stream: bool) -> String {
    let method = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    method_url(base, model, method)
}

/// `{base}/v1beta/models/{model}:{method}` (the version added unless `base`
/// ends in one; `tunedModels/...` ids keep their collection).
pub fn method_url(base: &str, model: &str, method: &str) -> String {
    let base = base.trim_end_matches('/');
    let versioned = ["/v1", "/v1beta", "/v1alpha"]
        .iter()
        .any(|v| base.ends_with(v));
    let (collection, id) = ["models/", "tunedModels/"]
        .iter()
        .find_map(|c| Some((&c[..c.len() - 1], model.strip_prefix(c)?)))
        .unwrap_or(("models", model));
    format!(
        "{base}{}/{collection}/{}:{method}",
        if versioned { "" } else { "/v1beta" },
        encode_segment(id)
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so the id
/// stays one path segment; a segment of dots only (`..`) is encoded whole.
fn encode_segment(s: &str) -> String {
    let dots_only = s.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let plain = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'~')
            || (b == b'.' && !dots_only);
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// Encodes an OpenAI chat request as a Gemini `GenerateContentRequest`.
///
/// Fails with a [`CodecError`] naming the offending field when the request
/// uses something Gemini cannot express (see the module docs).
pub fn encode_request(
    req: &ChatRequest,
    upstream_model: &str,
    opts: &EncodeOptions,
) -> Result<Encoded, CodecError> {
    let ext = check_unsupported(req, opts)?;
    let legacy = uses_thinking_budget(upstream_model);
    let (system_instruction, contents) = encode_messages(&req.messages, legacy)?;

    let declarations = encode_tools(req.tools.as_deref())?;
    // Without tools there is nothing to choose from; OpenAI clients often send
    // `tool_choice` unconditionally.
    let tool_config = if declarations.is_empty() {
        None
    } else {
        encode_tool_choice(req.tool_choice.as_ref())?
    };
    let tools = (!declarations.is_empty()).then(|| {
        vec![GTool {
            function_declarations: Some(declarations),
            extra: Extra::new(),
        }]
    });

    let (response_mime_type, response_json_schema) = encode_response_format(req)?;
    let seed = match req.seed {
        None => None,
        Some(s) => match i32::try_from(s) {
            Ok(s) => Some(s),
            Err(_) if opts.drop_unsupported => None,
            Err(_) => {
                return Err(CodecError::new(
                    "seed",
                    format!("`seed` must fit in a signed 32-bit integer for provider {PROVIDER}"),
                ));
            }
        },
    };
    let thinking_config = ext
        .reasoning_effort
        .as_deref()
        .map(|e| encode_reasoning_effort(e, legacy))
        .transpose()?;

    let generation_config = GenerationConfig {
        stop_sequences: req
            .stop
            .as_ref()
            .map(|s| s.to_vec())
            .filter(|v| !v.is_empty()),
        response_mime_type,
        response_schema: None,
        response_json_schema,
        candidate_count: req.n.filter(|n| *n != 1),
        max_output_tokens: req.output_cap().or(opts.default_max_tokens),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: ext.top_k,
        seed,
        // Some Gemini models answer 400 to any penalty field ("Penalty is not
        // enabled"), and OpenAI clients often send an explicit 0: leave the
        // neutral value out.
        presence_penalty: req.presence_penalty.filter(|p| *p != 0.0),
        frequency_penalty: req.frequency_penalty.filter(|p| *p != 0.0),
        response_logprobs: None,
        logprobs: None,
        thinking_config,
        extra: Extra::new(),
    };

    let request = GenerateContentRequest {
        contents,
        system_instruction,
        tools,
        tool_config,
        generation_config: (!generation_config.is_empty()).then_some(generation_config),
        safety_settings: None,
        cached_content: None,
        extra: Extra::new(),
    };
    Ok(Encoded {
        request,
        stream: req.is_stream(),
    })
}

fn unsupported(param: &str) -> CodecError {
    CodecError::new(
        param,
        format!("`{param}` is not supported by provider {PROVIDER}"),
    )
}

/// Extension fields (not in the OpenAI spec, or newer than our types) that we map.
#[derive(Debug, Default)]
struct Extensions {
    top_k: Option<u32>,
    reasoning_effort: Option<String>,
}

/// Rejects (or, with `drop_unsupported`, ignores) request fields Gemini has no
/// equivalent for, and reads the extension fields we map.
fn check_unsupported(req: &ChatRequest, opts: &EncodeOptions) -> Result<Extensions, CodecError> {
    let reject = |err: CodecError| -> Result<(), CodecError> {
        if opts.drop_unsupported {
            Ok(())
        } else {
            Err(err)
        }
    };

    if req.logit_bias.as_ref().is_some_and(|m| !m.is_empty()) {
        reject(unsupported("logit_bias"))?;
    }
    // Gemini can return log probabilities, but in a shape (`logprobsResult`)
    // this codec does not translate yet.
    if req.logprobs == Some(true) {
        reject(unsupported("logprobs"))?;
    }
    if req.top_logprobs.is_some() {
        reject(unsupported("top_logprobs"))?;
    }
    let has_tools = req.tools.as_ref().is_some_and(|t| !t.is_empty());
    if has_tools && req.parallel_tool_calls == Some(false) {
        reject(CodecError::new(
            "parallel_tool_calls",
            format!(
                "`parallel_tool_calls: false` is not supported by provider {PROVIDER} (it cannot be limited to one call per turn)"
            ),
        ))?;
    }

    let mut ext = Extensions::default();
    // `Extra` keeps the client's order, so the first error reported is deterministic.
    for (key, value) in &req.extra {
        match key.as_str() {
            // Not in the OpenAI spec but common in clients; Gemini takes it natively.
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
                ext.top_k = Some(k);
            }
            "reasoning_effort" => match value {
                Value::Null => {}
                Value::String(s) => ext.reasoning_effort = Some(s.clone()),
                _ => {
                    return Err(CodecError::new(
                        "reasoning_effort",
                        "`reasoning_effort` must be a string",
                    ));
                }
            },
            // Storing completions is an OpenAI platform feature; `false` asks for nothing.
            "store" if matches!(value, Value::Null | Value::Bool(false)) => {}
            // A scheduling hint for OpenAI's own capacity; meaningless elsewhere, harmless to drop.
            "service_tier" => {}
            _ => reject(unsupported(key))?,
        }
    }
    Ok(ext)
}

/// Whether `model` controls thinking with `thinkingBudget` (Gemini 1.x and
/// 2.x) rather than `thinkingLevel` (Gemini 3 and later, which also validate
/// thought signatures strictly). Unknown names (aliases such as
/// `gemini-flash-latest`) are taken as current models.
fn uses_thinking_budget(model: &str) -> bool {
    let m = model
        .strip_prefix("models/")
        .unwrap_or(model)
        .to_ascii_lowercase();
    m.starts_with("gemini-1") || m.starts_with("gemini-2")
}

/// `reasoning_effort` as a `thinkingConfig`
/// (<https://ai.google.dev/gemini-api/docs/thinking>). Gemini 3 takes the
/// level by name (`none` asks for `minimal`, the least the scale has; a model
/// that does not offer it answers with its own 400). Gemini 2.5 takes a token
/// budget, for which we use the budgets Google's OpenAI-compatible endpoint
/// documents (low 1024, medium 8192, high 24576; none is 0, thinking off);
/// `minimal` gets the low budget. Thought summaries are asked for unless
/// thinking is off, and come back as `reasoning_content`.
fn encode_reasoning_effort(effort: &str, budget: bool) -> Result<ThinkingConfig, CodecError> {
    let (level, tokens) = match effort {
        "none" => ("minimal", 0),
        "minimal" => ("minimal", 1024),
        "low" => ("low", 1024),
        "medium" => ("medium", 8192),
        "high" | "xhigh" => ("high", 24576),
        other => {
            return Err(CodecError::new(
                "reasoning_effort",
                format!(
                    "unknown `reasoning_effort` `{other}` (expected none, minimal, low, medium or high)"
                ),
            ));
        }
    };
    let off = effort == "none";
    Ok(ThinkingConfig {
        include_thoughts: (!off).then_some(true),
        thinking_budget: budget.then_some(tokens),
        thinking_level: (!budget).then(|| level.to_owned()),
        extra: Extra::new(),
    })
}

/// What a Gemini turn holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TurnKind {
    /// The user's own messages.
    User,
    /// The model's answers and function calls.
    Model,
    /// Function responses (role `user`).
    Results,
}

impl TurnKind {
    fn role(self) -> &'static str {
        match self {
            TurnKind::User | TurnKind::Results => "user",
            TurnKind::Model => "model",
        }
    }
}

/// One Gemini turn under construction.
struct Turn {
    kind: TurnKind,
    parts: Vec<Part>,
}

/// Translates the conversation: system/developer messages become
/// `systemInstruction`, the rest become `user`/`model` turns. Consecutive
/// messages of the same kind merge: OpenAI sends one `tool` message per
/// parallel call, and Gemini wants all their responses in one turn. Function
/// responses stay in a turn of their own, apart from the user's next words,
/// as in Google's function-calling examples.
fn encode_messages(
    msgs: &[ChatMessage],
    legacy: bool,
) -> Result<(Option<Content>, Vec<Content>), CodecError> {
    let mut system_parts: Vec<Part> = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    // Tool call id -> function name, from the assistant messages seen so far.
    // A later call with the same id wins, as it is the one a result answers.
    let mut call_names: HashMap<String, String> = HashMap::new();

    for (i, msg) in msgs.iter().enumerate() {
        let (kind, parts) = match &msg.role {
            Role::System | Role::Developer => {
                system_parts.extend(encode_system(i, msg)?);
                continue;
            }
            Role::User => (TurnKind::User, encode_user(i, msg)?),
            Role::Assistant => (
                TurnKind::Model,
                encode_assistant(i, msg, legacy, &mut call_names)?,
            ),
            Role::Tool => (
                TurnKind::Results,
                vec![encode_tool_result(i, msg, &call_names)?],
            ),
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
        // Gemini rejects empty parts and empty turns.
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.kind == kind => last.parts.extend(parts),
            _ => turns.push(Turn { kind, parts }),
        }
    }

    if turns.is_empty() {
        return Err(CodecError::new(
            "messages",
            "at least one user or assistant message with content is required",
        ));
    }
    let contents = turns
        .into_iter()
        .map(|t| Content {
            role: Some(t.kind.role().to_owned()),
            parts: t.parts,
            extra: Extra::new(),
        })
        .collect();
    let system = (!system_parts.is_empty()).then(|| Content {
        role: None,
        parts: system_parts,
        extra: Extra::new(),
    });
    Ok((system, contents))
}

fn part_text(i: usize, j: usize, part: &ContentPart) -> Result<String, CodecError> {
    part.text.clone().ok_or_else(|| {
        CodecError::new(
            format!("messages[{i}].content[{j}].text"),
            "text part has no `text`",
        )
    })
}

/// A text part, or nothing for empty text (Gemini rejects empty text parts).
fn text_part(text: String) -> Option<Part> {
    (!text.is_empty()).then(|| Part::text(text))
}

fn encode_system(i: usize, msg: &ChatMessage) -> Result<Vec<Part>, CodecError> {
    match &msg.content {
        None => Ok(vec![]),
        Some(MessageContent::Text(s)) => Ok(text_part(s.clone()).into_iter().collect()),
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
                out.extend(text_part(part_text(i, j, part)?));
            }
            Ok(out)
        }
    }
}

fn encode_user(i: usize, msg: &ChatMessage) -> Result<Vec<Part>, CodecError> {
    match &msg.content {
        None => Err(CodecError::new(
            format!("messages[{i}].content"),
            "user message has no content",
        )),
        Some(MessageContent::Text(s)) => Ok(text_part(s.clone()).into_iter().collect()),
        Some(MessageContent::Parts(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                match part.kind.as_str() {
                    "text" => out.extend(text_part(part_text(i, j, part)?)),
                    "image_url" => out.push(encode_image(i, j, part)?),
                    "input_audio" => out.push(encode_audio(i, j, part)?),
                    "file" => out.push(encode_file(i, j, part)?),
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

/// Splits `data:<media type>;base64,<data>`.
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    (!media_type.is_empty()).then_some((media_type, data))
}

fn inline(mime_type: &str, data: &str) -> Part {
    Part {
        inline_data: Some(Blob {
            mime_type: mime_type.to_owned(),
            data: data.to_owned(),
        }),
        ..Part::default()
    }
}

/// The media type of an image URL, from its file extension. Gemini needs one
/// for `fileData`; these are the image types it documents
/// (<https://ai.google.dev/gemini-api/docs/image-understanding>).
fn image_type_from_url(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or(path);
    let (_, ext) = name.rsplit_once('.')?;
    match ext.to_ascii_lowercase().as_str() {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "webp" => Some("image/webp"),
        "heic" => Some("image/heic"),
        "heif" => Some("image/heif"),
        _ => None,
    }
}

/// `data:` URLs become `inlineData`; `http(s)` URLs become `fileData` with the
/// media type read from the file extension (Gemini fetches the URL itself).
fn encode_image(i: usize, j: usize, part: &ContentPart) -> Result<Part, CodecError> {
    let param = format!("messages[{i}].content[{j}].image_url");
    let url = &part
        .image_url
        .as_ref()
        .ok_or_else(|| CodecError::new(param.clone(), "image_url part has no `image_url`"))?
        .url;
    if url.starts_with("data:") {
        return match parse_data_url(url) {
            Some((media_type, data)) => Ok(inline(media_type, data)),
            None => Err(CodecError::new(
                format!("{param}.url"),
                "data URLs must have the form `data:<media type>;base64,<data>`",
            )),
        };
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        let Some(mime_type) = image_type_from_url(url) else {
            return Err(CodecError::new(
                format!("{param}.url"),
                format!(
                    "provider {PROVIDER} needs the image type of a URL; use a URL ending in .png, .jpg, .jpeg, .webp, .heic or .heif, or a base64 data URL"
                ),
            ));
        };
        return Ok(Part {
            file_data: Some(FileData {
                mime_type: Some(mime_type.to_owned()),
                file_uri: url.clone(),
            }),
            ..Part::default()
        });
    }
    Err(CodecError::new(
        format!("{param}.url"),
        "image URL must be an http(s) URL or a base64 data URL",
    ))
}

/// `input_audio` (`{"data": base64, "format": "wav"|"mp3"}`) becomes `inlineData`.
fn encode_audio(i: usize, j: usize, part: &ContentPart) -> Result<Part, CodecError> {
    let param = format!("messages[{i}].content[{j}].input_audio");
    let audio = part
        .extra
        .get("input_audio")
        .ok_or_else(|| CodecError::new(param.clone(), "input_audio part has no `input_audio`"))?;
    let data = audio
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| CodecError::new(format!("{param}.data"), "`data` must be a string"))?;
    let format = audio
        .get("format")
        .and_then(Value::as_str)
        .filter(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_alphanumeric()))
        .ok_or_else(|| {
            CodecError::new(format!("{param}.format"), "`format` must be `wav` or `mp3`")
        })?;
    Ok(inline(&format!("audio/{format}"), data))
}

/// A `file` part with `file_data` as a base64 data URL becomes `inlineData`
/// (PDFs and other documents). Uploaded OpenAI file ids mean nothing to Gemini.
fn encode_file(i: usize, j: usize, part: &ContentPart) -> Result<Part, CodecError> {
    let param = format!("messages[{i}].content[{j}].file");
    let file = part
        .extra
        .get("file")
        .ok_or_else(|| CodecError::new(param.clone(), "file part has no `file`"))?;
    if file.get("file_id").is_some() {
        return Err(CodecError::new(
            format!("{param}.file_id"),
            format!("uploaded file ids are not supported by provider {PROVIDER}; send `file_data`"),
        ));
    }
    let data = file
        .get("file_data")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            CodecError::new(format!("{param}.file_data"), "`file_data` must be a string")
        })?;
    match parse_data_url(data) {
        Some((media_type, data)) => Ok(inline(media_type, data)),
        None => Err(CodecError::new(
            format!("{param}.file_data"),
            "`file_data` must have the form `data:<media type>;base64,<data>`",
        )),
    }
}

/// Whether `id` is one we made up for a Gemini call that had none
/// (`call_<n>`); those are not sent back.
fn is_generated_id(id: &str) -> bool {
    id.strip_prefix("call_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The id to send on a `functionCall` / `functionResponse`.
fn wire_id(id: &str) -> Option<String> {
    (!id.is_empty() && !is_generated_id(id)).then(|| id.to_owned())
}

/// The thought signature carried on an OpenAI tool call.
fn signature_of(extra: &Extra) -> Option<&str> {
    extra
        .get("extra_content")?
        .get("google")?
        .get("thought_signature")?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// `extra` carrying a thought signature on an OpenAI tool call.
fn signature_extra(signature: Option<&str>) -> Extra {
    let mut extra = Extra::new();
    if let Some(sig) = signature {
        extra.insert(
            "extra_content".into(),
            json!({"google": {"thought_signature": sig}}),
        );
    }
    extra
}

fn encode_assistant(
    i: usize,
    msg: &ChatMessage,
    legacy: bool,
    call_names: &mut HashMap<String, String>,
) -> Result<Vec<Part>, CodecError> {
    let mut out = Vec::new();
    match &msg.content {
        None => {}
        Some(MessageContent::Text(s)) => out.extend(text_part(s.clone())),
        Some(MessageContent::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                match part.kind.as_str() {
                    "text" => out.extend(text_part(part_text(i, j, part)?)),
                    // The model's own earlier refusal: Gemini has no part for
                    // it, and it carries no information the model needs.
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
        let args = parse_arguments(&call.function.arguments).ok_or_else(|| {
            CodecError::new(
                format!("messages[{i}].tool_calls[{j}].function.arguments"),
                "function arguments must be a JSON object",
            )
        })?;
        // Parallel calls: Gemini signs only the first one of the turn.
        let signature = match signature_of(&call.extra) {
            Some(sig) => Some(sig.to_owned()),
            None if j == 0 && !legacy => Some(SKIP_THOUGHT_SIGNATURE.to_owned()),
            None => None,
        };
        call_names.insert(call.id.clone(), call.function.name.clone());
        out.push(Part {
            function_call: Some(GFunctionCall {
                id: wire_id(&call.id),
                name: call.function.name.clone(),
                args: Some(args),
                extra: Extra::new(),
            }),
            thought_signature: signature,
            ..Part::default()
        });
    }
    Ok(out)
}

/// Parses OpenAI's JSON-encoded arguments into the object Gemini's
/// `functionCall.args` must be. Empty arguments mean no arguments.
fn parse_arguments(args: &str) -> Option<Value> {
    if args.trim().is_empty() {
        return Some(Value::Object(Extra::new()));
    }
    match serde_json::from_str::<Value>(args) {
        Ok(v @ Value::Object(_)) => Some(v),
        _ => None,
    }
}

/// A `tool` message becomes a `functionResponse`. Gemini matches responses to
/// calls by function name, which we find through the earlier call's id. The
/// result text goes in as `{"output": text}`, Gemini's documented convention,
/// unless it is itself a JSON object, which is passed as the response object.
fn encode_tool_result(
    i: usize,
    msg: &ChatMessage,
    call_names: &HashMap<String, String>,
) -> Result<Part, CodecError> {
    let id = msg.tool_call_id.as_deref().ok_or_else(|| {
        CodecError::new(
            format!("messages[{i}].tool_call_id"),
            "tool message has no `tool_call_id`",
        )
    })?;
    let name = call_names
        .get(id)
        .cloned()
        .or_else(|| msg.name.clone())
        .ok_or_else(|| {
            CodecError::new(
                format!("messages[{i}].tool_call_id"),
                format!(
                    "no earlier assistant tool call has id `{id}`; provider {PROVIDER} needs the function name of each result"
                ),
            )
        })?;
    let text = match &msg.content {
        None => String::new(),
        Some(MessageContent::Text(s)) => s.clone(),
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
            text
        }
    };
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "output": text }),
    };
    Ok(Part {
        function_response: Some(FunctionResponse {
            id: wire_id(id),
            name,
            response,
            extra: Extra::new(),
        }),
        ..Part::default()
    })
}

/// Function tools become `functionDeclarations`. The parameters go in
/// `parametersJsonSchema`, which takes JSON Schema as OpenAI clients write it
/// (`parameters` only takes Gemini's OpenAPI subset). `strict` has no Gemini
/// equivalent and is not sent.
fn encode_tools(tools: Option<&[Tool]>) -> Result<Vec<FunctionDeclaration>, CodecError> {
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
        out.push(FunctionDeclaration {
            name: f.name.clone(),
            description: f.description.clone(),
            parameters: None,
            parameters_json_schema: f.parameters.clone(),
            extra: Extra::new(),
        });
    }
    Ok(out)
}

/// `tool_choice` as `toolConfig.functionCallingConfig`: `auto` → `AUTO`,
/// `none` → `NONE`, `required` → `ANY`, a named function → `ANY` limited to it.
fn encode_tool_choice(choice: Option<&ToolChoice>) -> Result<Option<ToolConfig>, CodecError> {
    let config = |mode: &str, names: Option<Vec<String>>| ToolConfig {
        function_calling_config: Some(FunctionCallingConfig {
            mode: Some(mode.to_owned()),
            allowed_function_names: names,
        }),
        extra: Extra::new(),
    };
    let out = match choice {
        None => None,
        Some(ToolChoice::Mode(m)) => match m.as_str() {
            "auto" => Some(config("AUTO", None)),
            "none" => Some(config("NONE", None)),
            "required" => Some(config("ANY", None)),
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
            Some(config("ANY", Some(vec![f.name.clone()])))
        }
    };
    Ok(out)
}

/// `response_format` as `responseMimeType` (+ `responseJsonSchema`, which
/// takes JSON Schema; `responseSchema` only takes Gemini's OpenAPI subset).
fn encode_response_format(
    req: &ChatRequest,
) -> Result<(Option<String>, Option<Value>), CodecError> {
    let Some(rf) = &req.response_format else {
        return Ok((None, None));
    };
    let json = Some("application/json".to_owned());
    match rf.kind.as_str() {
        "text" => Ok((None, None)),
        "json_object" => Ok((json, None)),
        "json_schema" => {
            let js = rf.json_schema.as_ref().ok_or_else(|| {
                CodecError::new(
                    "response_format.json_schema",
                    "`json_schema` is required when type is `json_schema`",
                )
            })?;
            Ok((json, js.schema.clone()))
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

/// Maps a Gemini `finishReason` to an OpenAI `finish_reason`.
/// <https://ai.google.dev/api/generate-content#FinishReason>
fn finish_reason(reason: Option<&str>, has_tool_calls: bool) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION",
        ) => "content_filter",
        _ if has_tool_calls => "tool_calls",
        // STOP, absent, OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL and reasons
        // added later: the answer ended, with whatever it holds.
        _ => "stop",
    }
}

/// Token counts as Gemini reports them, accumulated over a response.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    prompt: u64,
    candidates: u64,
    thoughts: Option<u64>,
    cached: Option<u64>,
    tool_prompt: u64,
}

impl Counts {
    /// Takes every count present in `u`. Stream events carry the counts so
    /// far, so the latest value wins.
    fn update(&mut self, u: &UsageMetadata) {
        if let Some(v) = u.prompt_token_count {
            self.prompt = v;
        }
        if let Some(v) = u.candidates_token_count {
            self.candidates = v;
        }
        if u.thoughts_token_count.is_some() {
            self.thoughts = u.thoughts_token_count;
        }
        if u.cached_content_token_count.is_some() {
            self.cached = u.cached_content_token_count;
        }
        if let Some(v) = u.tool_use_prompt_token_count {
            self.tool_prompt = v;
        }
    }

    fn core(&self) -> Usage {
        let thoughts = self.thoughts.unwrap_or(0);
        Usage {
            // `promptTokenCount` already includes the cached tokens.
            input_tokens: self.prompt.saturating_add(self.tool_prompt),
            output_tokens: self.candidates.saturating_add(thoughts),
            cache_read_tokens: self.cached.unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: thoughts,
            estimated: false,
        }
    }

    fn openai(&self) -> OUsage {
        let core = self.core();
        OUsage {
            prompt_tokens: core.input_tokens,
            completion_tokens: core.output_tokens,
            total_tokens: core.input_tokens.saturating_add(core.output_tokens),
            prompt_tokens_details: self.cached.map(|c| PromptTokensDetails {
                cached_tokens: Some(c),
                extra: Extra::new(),
            }),
            completion_tokens_details: self.thoughts.map(|t| CompletionTokensDetails {
                reasoning_tokens: Some(t),
                extra: Extra::new(),
            }),
            extra: Extra::new(),
        }
    }
}

/// Compact JSON of function arguments, as OpenAI's `arguments` string.
fn compact_json(v: &Value) -> String {
    // Serializing a `Value` cannot fail (its map keys are strings).
    serde_json::to_string(v).unwrap_or_default()
}

/// The arguments of a Gemini call as OpenAI's JSON string (`{}` when absent).
fn arguments_of(call: &GFunctionCall) -> String {
    match &call.args {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(v) => compact_json(v),
    }
}

/// The OpenAI id of the `k`-th call of a choice.
fn call_id(call: &GFunctionCall, k: u32) -> String {
    match call.id.as_deref() {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => format!("call_{k}"),
    }
}

/// The `promptFeedback.blockReason` of a reply without candidates.
fn block_reason(resp: &GenerateContentResponse) -> Option<&str> {
    resp.prompt_feedback.as_ref()?.block_reason.as_deref()
}

/// The prompt itself was refused: a content-policy failure (not retryable on
/// the same model; the gateway's `content_policy` fallbacks may take it).
fn blocked_prompt(reason: &str) -> UpstreamFailure {
    UpstreamFailure {
        class: ErrorClass::UpstreamBadRequest,
        status: None,
        message: excerpt(&format!(
            "{PROVIDER}: the prompt was blocked by the provider's content policy ({reason})"
        )),
        upstream_code: Some(CONTENT_POLICY_CODE.into()),
    }
}

fn no_candidates() -> UpstreamFailure {
    UpstreamFailure {
        class: ErrorClass::UpstreamError,
        status: None,
        message: format!("{PROVIDER}: response has no candidates"),
        upstream_code: None,
    }
}

/// What one candidate says, in OpenAI terms.
#[derive(Debug, Default)]
struct Decoded {
    text: String,
    reasoning: String,
    tool_calls: Vec<ToolCall>,
}

fn decode_candidate(c: &Candidate) -> Decoded {
    let mut out = Decoded::default();
    for part in c.content.iter().flat_map(|c| c.parts.iter()) {
        if let Some(call) = &part.function_call {
            let k = u32::try_from(out.tool_calls.len()).unwrap_or(u32::MAX);
            out.tool_calls.push(ToolCall {
                id: call_id(call, k),
                kind: "function".into(),
                function: FunctionCall {
                    name: call.name.clone(),
                    arguments: arguments_of(call),
                },
                extra: signature_extra(part.thought_signature.as_deref()),
            });
        } else if let Some(text) = &part.text {
            if part.thought == Some(true) {
                out.reasoning.push_str(text);
            } else {
                out.text.push_str(text);
            }
        }
        // Inline data (generated images), executable code and other part
        // kinds have no place in a chat completion message.
    }
    out
}

/// Decodes a non-streaming Gemini response into a `chat.completion`.
///
/// A prompt Gemini blocked (no candidates, `promptFeedback.blockReason` set)
/// is a content-policy [`UpstreamFailure`].
pub fn decode_response(
    resp: GenerateContentResponse,
    ctx: &ResponseContext,
) -> Result<(ChatCompletion, Usage), UpstreamFailure> {
    if resp.candidates.is_empty() {
        return Err(block_reason(&resp).map_or_else(no_candidates, blocked_prompt));
    }
    let mut counts = Counts::default();
    if let Some(u) = &resp.usage_metadata {
        counts.update(u);
    }
    let choices = resp
        .candidates
        .iter()
        .enumerate()
        .map(|(pos, c)| {
            let d = decode_candidate(c);
            let finish = finish_reason(c.finish_reason.as_deref(), !d.tool_calls.is_empty());
            let content = if d.text.is_empty() && !d.tool_calls.is_empty() {
                None
            } else {
                Some(d.text)
            };
            let mut extra = Extra::new();
            if !d.reasoning.is_empty() {
                extra.insert("reasoning_content".into(), Value::String(d.reasoning));
            }
            Choice {
                index: c
                    .index
                    .unwrap_or_else(|| u32::try_from(pos).unwrap_or(u32::MAX)),
                message: ResponseMessage {
                    role: "assistant".into(),
                    content,
                    refusal: None,
                    tool_calls: (!d.tool_calls.is_empty()).then_some(d.tool_calls),
                    extra,
                },
                finish_reason: Some(finish.into()),
                logprobs: None,
                extra: Extra::new(),
            }
        })
        .collect();
    let completion = ChatCompletion {
        id: response_id(resp.response_id.as_deref(), ctx),
        object: "chat.completion".into(),
        created: ctx.created,
        model: resp.model_version.unwrap_or_else(|| ctx.model.clone()),
        choices,
        usage: Some(counts.openai()),
        system_fingerprint: None,
        extra: Extra::new(),
    };
    Ok((completion, counts.core()))
}

/// The completion id: Gemini's `responseId`, or one made from `created`.
fn response_id(id: Option<&str>, ctx: &ResponseContext) -> String {
    match id {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => format!("chatcmpl-gemini-{}", ctx.created),
    }
}

/// Per-candidate state of a stream.
#[derive(Debug, Default)]
struct CandidateState {
    /// Tool calls emitted so far (their OpenAI `index`).
    tool_calls: u32,
    finished: bool,
}

/// Stateful translator of a `streamGenerateContent?alt=sse` stream into
/// OpenAI chunks. Each event is a `GenerateContentResponse` holding the next
/// piece of each candidate; function calls arrive whole, usage may come on any
/// event (the last one holds the totals), possibly on one without candidates.
///
/// Feed each event's data to [`StreamDecoder::on_data`] (or a parsed event to
/// [`StreamDecoder::on_event`]); when the upstream stream ends, call
/// [`StreamDecoder::finish`], which emits the usage chunk when the client
/// asked for one, or fails if no candidate finished.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    ctx: ResponseContext,
    id: Option<String>,
    model: Option<String>,
    counts: Counts,
    candidates: BTreeMap<u32, CandidateState>,
    done: bool,
}

/// Builds chunks with the stream's fixed fields.
struct Chunks {
    id: String,
    model: String,
    created: UnixSeconds,
}

impl Chunks {
    fn chunk(&self, index: u32, delta: Delta, finish_reason: Option<&str>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index,
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
}

impl StreamDecoder {
    /// A decoder for one stream.
    pub fn new(ctx: ResponseContext) -> Self {
        StreamDecoder {
            ctx,
            ..StreamDecoder::default()
        }
    }

    fn chunks(&self) -> Chunks {
        Chunks {
            id: response_id(self.id.as_deref(), &self.ctx),
            model: self.model.clone().unwrap_or_else(|| self.ctx.model.clone()),
            created: self.ctx.created,
        }
    }

    /// Feeds the data of one server-sent event. An `{"error": ...}` object in
    /// the stream, or data that is not a response, is a failure.
    pub fn on_data(&mut self, data: &str) -> Result<Vec<ChatChunk>, UpstreamFailure> {
        let malformed = || UpstreamFailure {
            class: ErrorClass::UpstreamError,
            status: None,
            message: format!("{PROVIDER}: malformed stream event"),
            upstream_code: None,
        };
        let v: Value = serde_json::from_str(data).map_err(|_| malformed())?;
        if let Some(err) = v.get("error") {
            return Err(match serde_json::from_value::<ErrorBody>(err.clone()) {
                Ok(body) => failure_from_body(None, &body),
                Err(_) => malformed(),
            });
        }
        let ev: GenerateContentResponse = serde_json::from_value(v).map_err(|_| malformed())?;
        self.on_event(ev)
    }

    /// Feeds one parsed event; returns the chunks to send, or the failure a
    /// blocked prompt means.
    pub fn on_event(
        &mut self,
        ev: GenerateContentResponse,
    ) -> Result<Vec<ChatChunk>, UpstreamFailure> {
        if self.done {
            return Ok(vec![]);
        }
        if let Some(u) = &ev.usage_metadata {
            self.counts.update(u);
        }
        if self.id.is_none() {
            self.id = ev.response_id.clone().filter(|s| !s.is_empty());
        }
        if self.model.is_none() {
            self.model = ev.model_version.clone().filter(|s| !s.is_empty());
        }
        if ev.candidates.is_empty() {
            return match block_reason(&ev) {
                Some(reason) => Err(blocked_prompt(reason)),
                // Usage-only (or empty) events.
                None => Ok(vec![]),
            };
        }

        let chunks = self.chunks();
        let mut out = Vec::new();
        for (pos, cand) in ev.candidates.iter().enumerate() {
            let index = cand
                .index
                .unwrap_or_else(|| u32::try_from(pos).unwrap_or(u32::MAX));
            let state = match self.candidates.entry(index) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    out.push(chunks.chunk(
                        index,
                        Delta {
                            role: Some("assistant".into()),
                            content: Some(String::new()),
                            ..Delta::default()
                        },
                        None,
                    ));
                    e.insert(CandidateState::default())
                }
            };
            if state.finished {
                continue;
            }
            for part in cand.content.iter().flat_map(|c| c.parts.iter()) {
                if let Some(call) = &part.function_call {
                    let k = state.tool_calls;
                    state.tool_calls += 1;
                    out.push(chunks.chunk(
                        index,
                        Delta {
                            tool_calls: Some(vec![ToolCallDelta {
                                index: k,
                                id: Some(call_id(call, k)),
                                kind: Some("function".into()),
                                function: Some(FunctionCallDelta {
                                    name: Some(call.name.clone()),
                                    arguments: Some(arguments_of(call)),
                                }),
                                extra: signature_extra(part.thought_signature.as_deref()),
                            }]),
                            ..Delta::default()
                        },
                        None,
                    ));
                } else if let Some(text) = part.text.as_deref().filter(|t| !t.is_empty()) {
                    let delta = if part.thought == Some(true) {
                        let mut extra = Extra::new();
                        extra.insert("reasoning_content".into(), Value::String(text.to_owned()));
                        Delta {
                            extra,
                            ..Delta::default()
                        }
                    } else {
                        Delta {
                            content: Some(text.to_owned()),
                            ..Delta::default()
                        }
                    };
                    out.push(chunks.chunk(index, delta, None));
                }
            }
            if let Some(reason) = cand.finish_reason.as_deref() {
                state.finished = true;
                let finish = finish_reason(Some(reason), state.tool_calls > 0);
                out.push(chunks.chunk(index, Delta::default(), Some(finish)));
            }
        }
        Ok(out)
    }

    /// Ends the stream (the upstream closed it). Returns the final usage
    /// chunk when the client asked for one; fails when no candidate reached a
    /// finish reason (the stream was cut short).
    pub fn finish(&mut self) -> Result<Vec<ChatChunk>, UpstreamFailure> {
        if self.done {
            return Ok(vec![]);
        }
        if self.candidates.is_empty() || self.candidates.values().any(|c| !c.finished) {
            return Err(UpstreamFailure {
                class: ErrorClass::UpstreamError,
                status: None,
                message: format!("{PROVIDER}: stream ended before completion"),
                upstream_code: None,
            });
        }
        self.done = true;
        if !self.ctx.include_usage {
            return Ok(vec![]);
        }
        let mut chunk = self.chunks().chunk(0, Delta::default(), None);
        chunk.choices.clear();
        chunk.usage = Some(self.counts.openai());
        Ok(vec![chunk])
    }

    /// Usage seen so far.
    pub fn usage(&self) -> Usage {
        self.counts.core()
    }

    /// Whether [`StreamDecoder::finish`] completed the stream.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// The HTTP status of a canonical Google error status, for errors that come
/// without one (inside a stream).
/// <https://cloud.google.com/apis/design/errors#handling_errors>
fn http_for_status(status: &str) -> u16 {
    match status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "ABORTED" | "ALREADY_EXISTS" => 409,
        "RESOURCE_EXHAUSTED" => 429,
        "CANCELLED" => 499,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        // INTERNAL, UNKNOWN, DATA_LOSS, UNIMPLEMENTED and anything new.
        _ => 500,
    }
}

/// The typed entries of `details` whose `@type` ends with `kind`.
fn details_of<'a>(body: &'a ErrorBody, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    body.details.iter().flatten().filter(move |d| {
        d.get("@type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.ends_with(kind))
    })
}

/// Gemini rejects a bad API key with 400 `INVALID_ARGUMENT` and an
/// `ErrorInfo` reason such as `API_KEY_INVALID`; that is a credential problem.
fn is_api_key_error(body: &ErrorBody) -> bool {
    details_of(body, "google.rpc.ErrorInfo").any(|d| {
        d.get("reason")
            .and_then(Value::as_str)
            .is_some_and(|r| r.starts_with("API_KEY_"))
    }) || body.message.contains("API key not valid")
        || body.message.contains("API key expired")
}

/// Gemini's "prompt too long" error: `The input token count (N) exceeds the
/// maximum number of tokens allowed (M).`
fn is_context_length_error(body: &ErrorBody) -> bool {
    let m = body.message.to_ascii_lowercase();
    m.contains("exceeds the maximum number of tokens")
        || (m.contains("token count") && m.contains("exceeds"))
}

/// Removes anything shaped like a Google API key (`AIza` + 35 characters).
fn redact_api_keys(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("AIza") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 4..];
        let len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            .count();
        if len >= 30 {
            out.push_str("[redacted]");
        } else {
            out.push_str("AIza");
            out.push_str(&after[..len]);
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// `RetryInfo.retryDelay` (a protobuf duration such as `"37s"` or `"1.5s"`),
/// rounded up to whole seconds.
fn retry_delay(body: &ErrorBody) -> Option<u64> {
    let d = details_of(body, "google.rpc.RetryInfo")
        .find_map(|d| d.get("retryDelay")?.as_str())?
        .strip_suffix('s')?;
    let (whole, frac) = d.split_once('.').unwrap_or((d, ""));
    let secs: u64 = whole.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Saturating: the delay comes from the upstream, and rounding `u64::MAX`
    // seconds up must not overflow (regression seed in fuzz/corpus/gemini_stream).
    Some(secs.saturating_add(u64::from(frac.bytes().any(|b| b != b'0'))))
}

/// The message for a 429. Google words every quota error "You exceeded your
/// current quota, please check your plan and billing details", per-minute
/// limits included; the gateway reads that phrase as "out of credit, do not
/// retry", so we say what the details say instead: which quota, and when to
/// retry.
fn quota_message(body: &ErrorBody) -> String {
    let quotas: Vec<&str> = details_of(body, "google.rpc.QuotaFailure")
        .filter_map(|d| d.get("violations")?.as_array())
        .flatten()
        .filter_map(|v| {
            v.get("quotaId")
                .or_else(|| v.get("quotaMetric"))
                .and_then(Value::as_str)
        })
        .collect();
    let mut msg = format!("{PROVIDER}: rate limit or quota exceeded");
    if !quotas.is_empty() {
        msg.push_str(&format!(" ({})", quotas.join(", ")));
    }
    if let Some(s) = retry_delay(body) {
        msg.push_str(&format!("; retry in {s}s"));
    }
    msg
}

/// Classifies a parsed error body; `http` is the HTTP status when there was one.
fn failure_from_body(http: Option<u16>, body: &ErrorBody) -> UpstreamFailure {
    let code = http
        .or(body.code)
        .unwrap_or_else(|| body.status.as_deref().map_or(500, http_for_status));
    let class = if is_api_key_error(body) {
        ErrorClass::UpstreamAuth
    } else {
        match code {
            // DEADLINE_EXCEEDED: Gemini gave up on the request in time.
            504 => ErrorClass::UpstreamTimeout,
            c => crate::class_for_status(c),
        }
    };
    // The specific `ErrorInfo` reason (`API_KEY_INVALID`) when there is one,
    // else the canonical status (`INVALID_ARGUMENT`).
    let upstream_code = if is_context_length_error(body) {
        Some(CONTEXT_LENGTH_CODE.to_owned())
    } else {
        details_of(body, "google.rpc.ErrorInfo")
            .find_map(|d| d.get("reason")?.as_str())
            .map(str::to_owned)
            .or_else(|| body.status.clone())
    };
    let message = if class == ErrorClass::UpstreamRateLimited {
        quota_message(body)
    } else {
        excerpt(&format!("{PROVIDER}: {}", redact_api_keys(&body.message)))
    };
    UpstreamFailure {
        class,
        status: http,
        message,
        upstream_code,
    }
}

/// Parses the Google error envelope; errors of `streamGenerateContent` without
/// `alt=sse` come wrapped in a JSON array.
fn parse_error_body(body: &[u8]) -> Option<ErrorBody> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let env = match v {
        Value::Array(mut items) if items.len() == 1 => items.pop()?,
        v => v,
    };
    let err = env.get("error")?;
    serde_json::from_value(err.clone()).ok()
}

/// Classifies a Gemini error response (status + body).
///
/// - 400 `INVALID_ARGUMENT` → upstream bad request; a prompt over the context
///   window gets `upstream_code` `context_length_exceeded` (what the gateway's
///   context-window fallbacks look for); a rejected API key (400 with reason
///   `API_KEY_INVALID`) is an auth failure, as are 401 and 403.
/// - 404 → upstream bad request; 429 `RESOURCE_EXHAUSTED` → rate limited.
/// - 500, 503 → upstream error; 504 `DEADLINE_EXCEEDED` → upstream timeout.
///
/// Only the message inside a well-formed envelope is passed on (as an excerpt,
/// API keys removed); any other body is reduced to the status.
pub fn classify_error(status: u16, body: &[u8]) -> UpstreamFailure {
    match parse_error_body(body) {
        Some(b) => failure_from_body(Some(status), &b),
        None => UpstreamFailure {
            class: match status {
                504 => ErrorClass::UpstreamTimeout,
                s => crate::class_for_status(s),
            },
            status: Some(status),
            message: format!("{PROVIDER} returned HTTP {status}"),
            upstream_code: None,
        },
    }
}

/// How long Gemini asks us to wait before retrying (`RetryInfo` in a 429
/// body), in whole seconds. Gemini sends no `Retry-After` header; the
/// transport can use this instead.
pub fn retry_after_seconds(body: &[u8]) -> Option<u64> {
    parse_error_body(body).as_ref().and_then(retry_delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason(Some("STOP"), false), "stop");
        assert_eq!(finish_reason(Some("STOP"), true), "tool_calls");
        assert_eq!(finish_reason(None, false), "stop");
        assert_eq!(finish_reason(Some("MAX_TOKENS"), true), "length");
        for r in [
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "IMAGE_SAFETY",
        ] {
            assert_eq!(finish_reason(Some(r), false), "content_filter", "{r}");
        }
        assert_eq!(
            finish_reason(Some("MALFORMED_FUNCTION_CALL"), false),
            "stop"
        );
        assert_eq!(finish_reason(Some("BRAND_NEW"), false), "stop");
    }

    #[test]
    fn generated_ids() {
        assert!(is_generated_id("call_0"));
        assert!(is_generated_id("call_12"));
        assert!(!is_generated_id("call_"));
        assert!(!is_generated_id("call_abc123"));
        assert!(!is_generated_id("toolu_01"));
        assert_eq!(wire_id("call_3"), None);
        assert_eq!(wire_id("fc_9x").as_deref(), Some("fc_9x"));
    }

    #[test]
    fn thinking_generation_by_name() {
        assert!(uses_thinking_budget("gemini-2.5-flash"));
        assert!(uses_thinking_budget("models/gemini-2.0-flash"));
        assert!(uses_thinking_budget("gemini-1.5-pro-002"));
        assert!(!uses_thinking_budget("gemini-3-pro-preview"));
        assert!(!uses_thinking_budget("gemini-flash-latest"));
    }

    #[test]
    fn api_keys_are_redacted() {
        let key = "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q";
        assert_eq!(
            redact_api_keys(&format!("key {key} is bad")),
            "key [redacted] is bad"
        );
        assert_eq!(redact_api_keys("AIza short"), "AIza short");
        assert_eq!(redact_api_keys("héllo AIza"), "héllo AIza");
    }

    #[test]
    fn retry_delays() {
        let body = |d: &str| ErrorBody {
            details: Some(vec![
                json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": d}),
            ]),
            ..ErrorBody::default()
        };
        assert_eq!(retry_delay(&body("37s")), Some(37));
        assert_eq!(retry_delay(&body("1.5s")), Some(2));
        assert_eq!(retry_delay(&body("3.000s")), Some(3));
        assert_eq!(retry_delay(&body("soon")), None);
        assert_eq!(retry_delay(&ErrorBody::default()), None);
        // Rounding the largest whole number up saturates instead of overflowing.
        assert_eq!(
            retry_delay(&body("18446744073709551615.5s")),
            Some(u64::MAX)
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            chat_url(DEFAULT_BASE_URL, "gemini-2.5-flash", false),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            chat_url("https://example.test/", "models/gemini-3-pro-preview", true),
            "https://example.test/v1beta/models/gemini-3-pro-preview:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            chat_url("http://127.0.0.1:9/v1", "tunedModels/my-model", false),
            "http://127.0.0.1:9/v1/tunedModels/my-model:generateContent"
        );
        // Path and query characters in a model name cannot escape the segment.
        assert_eq!(
            chat_url("https://h", "../x?key=1", false),
            "https://h/v1beta/models/..%2Fx%3Fkey%3D1:generateContent"
        );
        assert_eq!(
            chat_url("https://h", "models/..", false),
            "https://h/v1beta/models/%2E%2E:generateContent"
        );
    }
}
