//! Anthropic Messages at the front door, served by any chat provider.
//!
//! [`to_chat`] turns a Messages request into an OpenAI-dialect chat request
//! (which every provider path accepts); [`from_chat`] turns a chat completion
//! back into a Messages response, and [`EventEncoder`] turns a stream of chat
//! chunks into Messages stream events.
//!
//! References: <https://docs.anthropic.com/en/api/messages>,
//! <https://docs.anthropic.com/en/docs/build-with-claude/streaming>.
//!
//! Rules:
//! - A field the chat dialect cannot carry is rejected with a [`CodecError`]
//!   naming it (`top_k`, `thinking`, documents, server tools, ...) unless the
//!   deployment drops unsupported parameters.
//! - Thinking blocks of earlier assistant turns are dropped: they are signed
//!   by Anthropic and only an Anthropic upstream can take them back.
//! - `cache_control` hints are dropped (other providers cache on their own).
//! - Usage follows Anthropic's convention on the way out: `input_tokens`
//!   excludes cache reads, which are reported in `cache_read_input_tokens`.

use std::collections::BTreeMap;

use modelgate_api::anthropic::{
    BlockDelta, Content, ContentBlock, ErrorBody, ImageSource, MessageDeltaBody, MessagesRequest,
    MessagesResponse, StreamEvent, System, Usage as AUsage,
};
use modelgate_api::openai::{
    ChatChunk, ChatCompletion, ChatMessage, ChatRequest, ContentPart, FunctionCall, FunctionDef,
    ImageUrl, MessageContent, NamedFunction, NamedToolChoice, Role, Stop, StreamOptions, Tool,
    ToolCall, ToolChoice, Usage as OUsage,
};
use serde_json::Value;

use crate::CodecError;

/// How [`to_chat`] treats what the chat dialect cannot carry.
#[derive(Debug, Clone, Copy, Default)]
pub struct ToChatOptions {
    /// Drop such fields instead of rejecting the request.
    pub drop_unsupported: bool,
    /// Send the output limit as `max_completion_tokens` (OpenAI's current
    /// field; its reasoning models reject `max_tokens`).
    pub max_completion_tokens: bool,
}

fn unsupported(
    opts: &ToChatOptions,
    param: impl Into<String>,
    what: &str,
) -> Result<(), CodecError> {
    if opts.drop_unsupported {
        return Ok(());
    }
    let param = param.into();
    Err(CodecError::new(
        param.clone(),
        format!(
            "'{param}': {what} cannot be sent to this model's provider (it takes the OpenAI chat format); use an Anthropic model, or set drop_unsupported_params on the model to drop it."
        ),
    ))
}

/// Text of a `tool_result` or system block list; non-text blocks are unsupported.
fn blocks_text(
    blocks: &[ContentBlock],
    param: &str,
    opts: &ToChatOptions,
) -> Result<String, CodecError> {
    let mut out = String::new();
    for (i, b) in blocks.iter().enumerate() {
        match b {
            ContentBlock::Text { text, .. } => {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(text);
            }
            _ => unsupported(opts, format!("{param}[{i}]"), "a non-text block here")?,
        }
    }
    Ok(out)
}

fn image_part(source: &ImageSource) -> ContentPart {
    let url = match source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url { url } => url.clone(),
    };
    ContentPart {
        kind: "image_url".into(),
        text: None,
        image_url: Some(ImageUrl {
            url,
            detail: None,
            extra: Default::default(),
        }),
        extra: Default::default(),
    }
}

fn text_part(text: &str) -> ContentPart {
    ContentPart {
        kind: "text".into(),
        text: Some(text.to_owned()),
        image_url: None,
        extra: Default::default(),
    }
}

fn message(role: Role, content: Option<MessageContent>) -> ChatMessage {
    ChatMessage {
        role,
        content,
        name: None,
        tool_calls: None,
        tool_call_id: None,
        refusal: None,
        extra: Default::default(),
    }
}

/// Top-level Messages fields with no chat equivalent.
const UNSUPPORTED_TOP: &[(&str, &str)] = &[
    ("thinking", "extended thinking"),
    ("service_tier", "Anthropic's service tier"),
    ("container", "a code-execution container"),
    ("mcp_servers", "remote MCP servers"),
    ("context_management", "context management"),
    (
        "output_format",
        "structured output (a JSON schema for the answer)",
    ),
    (
        "output_config",
        "output settings (structured output, effort)",
    ),
];

/// A Messages request as an OpenAI-dialect chat request.
pub fn to_chat(req: &MessagesRequest, opts: &ToChatOptions) -> Result<ChatRequest, CodecError> {
    for key in req.extra.keys() {
        let what = UNSUPPORTED_TOP
            .iter()
            .find(|(k, _)| k == key)
            .map_or("this field", |(_, w)| w);
        unsupported(opts, key.clone(), what)?;
    }
    if req.top_k.is_some() {
        unsupported(opts, "top_k", "top_k sampling")?;
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    match &req.system {
        None => {}
        Some(System::Text(s)) => {
            messages.push(message(Role::System, Some(MessageContent::Text(s.clone()))))
        }
        Some(System::Blocks(blocks)) => {
            let text = blocks_text(blocks, "system", opts)?;
            messages.push(message(Role::System, Some(MessageContent::Text(text))));
        }
    }
    for (i, m) in req.messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        match m.role.as_str() {
            "user" => user_turn(m, &path, opts, &mut messages)?,
            "assistant" => messages.push(assistant_turn(m, &path, opts)?),
            other => {
                return Err(CodecError::new(
                    format!("{path}.role"),
                    format!("'{path}.role' must be 'user' or 'assistant', not {other:?}."),
                ));
            }
        }
    }
    let tools = req.tools.as_ref().map(|defs| {
        defs.iter()
            .map(|t| Tool {
                kind: "function".into(),
                function: Some(FunctionDef {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters: Some(t.input_schema.clone()),
                    strict: None,
                    extra: Default::default(),
                }),
                extra: Default::default(),
            })
            .collect()
    });
    let mut parallel_tool_calls = None;
    let tool_choice = match &req.tool_choice {
        None => None,
        Some(tc) => {
            if tc.disable_parallel_tool_use == Some(true) {
                parallel_tool_calls = Some(false);
            }
            Some(match tc.kind.as_str() {
                "auto" => ToolChoice::Mode("auto".into()),
                "any" => ToolChoice::Mode("required".into()),
                "none" => ToolChoice::Mode("none".into()),
                "tool" => {
                    let name = tc.name.clone().ok_or_else(|| {
                        CodecError::new(
                            "tool_choice.name",
                            "'tool_choice.name' is required when 'tool_choice.type' is 'tool'.",
                        )
                    })?;
                    ToolChoice::Named(NamedToolChoice {
                        kind: "function".into(),
                        function: Some(NamedFunction { name }),
                        extra: Default::default(),
                    })
                }
                other => {
                    return Err(CodecError::new(
                        "tool_choice.type",
                        format!(
                            "'tool_choice.type' must be auto, any, tool or none, not {other:?}."
                        ),
                    ));
                }
            })
        }
    };
    let stream = req.stream == Some(true);
    let (max_tokens, max_completion_tokens) = if opts.max_completion_tokens {
        (None, Some(req.max_tokens))
    } else {
        (Some(req.max_tokens), None)
    };
    Ok(ChatRequest {
        model: req.model.clone(),
        messages,
        stream: stream.then_some(true),
        stream_options: stream.then(|| StreamOptions {
            include_usage: Some(true),
            extra: Default::default(),
        }),
        max_tokens,
        max_completion_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        stop: req.stop_sequences.clone().map(Stop::Many),
        user: req.metadata.as_ref().and_then(|m| m.user_id.clone()),
        tools,
        tool_choice,
        parallel_tool_calls,
        ..ChatRequest::default()
    })
}

/// A user turn: its `tool_result` blocks become `tool` messages (they answer
/// the previous assistant turn, so they come first), the rest one user message.
fn user_turn(
    m: &modelgate_api::anthropic::Message,
    path: &str,
    opts: &ToChatOptions,
    out: &mut Vec<ChatMessage>,
) -> Result<(), CodecError> {
    let blocks = match &m.content {
        Content::Text(s) => {
            out.push(message(Role::User, Some(MessageContent::Text(s.clone()))));
            return Ok(());
        }
        Content::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let at = format!("{path}.content[{j}]");
        match b {
            ContentBlock::Text { text, .. } => parts.push(text_part(text)),
            ContentBlock::Image { source, .. } => parts.push(image_part(source)),
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
                ..
            } => {
                let mut text = match content {
                    None => String::new(),
                    Some(Content::Text(s)) => s.clone(),
                    Some(Content::Blocks(b)) => blocks_text(b, &format!("{at}.content"), opts)?,
                };
                if *is_error == Some(true) {
                    text = format!("Error: {text}");
                }
                let mut tm = message(Role::Tool, Some(MessageContent::Text(text)));
                tm.tool_call_id = Some(tool_use_id.clone());
                out.push(tm);
            }
            ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. } => {}
            ContentBlock::ToolUse { .. } => {
                return Err(CodecError::new(
                    at.clone(),
                    format!("'{at}': tool_use blocks belong in assistant turns."),
                ));
            }
            ContentBlock::Other(v) => {
                let kind = v.get("type").and_then(Value::as_str).unwrap_or("unknown");
                unsupported(opts, at, &format!("a {kind:?} block"))?;
            }
        }
    }
    if !parts.is_empty() {
        let content = if parts.iter().all(|p| p.kind == "text") && parts.len() == 1 {
            MessageContent::Text(parts.remove(0).text.unwrap_or_default())
        } else {
            MessageContent::Parts(parts)
        };
        out.push(message(Role::User, Some(content)));
    }
    Ok(())
}

fn assistant_turn(
    m: &modelgate_api::anthropic::Message,
    path: &str,
    opts: &ToChatOptions,
) -> Result<ChatMessage, CodecError> {
    let blocks = match &m.content {
        Content::Text(s) => {
            return Ok(message(
                Role::Assistant,
                Some(MessageContent::Text(s.clone())),
            ));
        }
        Content::Blocks(b) => b,
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let at = format!("{path}.content[{j}]");
        match b {
            ContentBlock::Text { text: t, .. } => text.push_str(t),
            ContentBlock::ToolUse {
                id, name, input, ..
            } => calls.push(ToolCall {
                id: id.clone(),
                kind: "function".into(),
                function: FunctionCall {
                    name: name.clone(),
                    arguments: input.to_string(),
                },
                extra: Default::default(),
            }),
            ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. } => {}
            ContentBlock::Image { .. } => unsupported(opts, at, "an image in an assistant turn")?,
            ContentBlock::ToolResult { .. } => {
                return Err(CodecError::new(
                    at.clone(),
                    format!("'{at}': tool_result blocks belong in user turns."),
                ));
            }
            ContentBlock::Other(v) => {
                let kind = v.get("type").and_then(Value::as_str).unwrap_or("unknown");
                unsupported(opts, at, &format!("a {kind:?} block"))?;
            }
        }
    }
    let mut msg = message(
        Role::Assistant,
        (!text.is_empty() || calls.is_empty()).then_some(MessageContent::Text(text)),
    );
    if !calls.is_empty() {
        msg.tool_calls = Some(calls);
    }
    Ok(msg)
}

/// The Messages `stop_reason` of a chat `finish_reason`.
pub fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Messages usage from chat usage (cache reads split out of the input).
pub fn usage(u: &OUsage) -> AUsage {
    let cached = u
        .prompt_tokens_details
        .as_ref()
        .and_then(|d| d.cached_tokens)
        .unwrap_or(0);
    AUsage {
        input_tokens: Some(u.prompt_tokens.saturating_sub(cached)),
        output_tokens: Some(u.completion_tokens),
        cache_creation_input_tokens: None,
        cache_read_input_tokens: (cached > 0).then_some(cached),
        extra: Default::default(),
    }
}

/// A message id in Anthropic's style for an upstream id.
fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{id}")
    }
}

/// Tool-call arguments as a Messages `input` object (arguments that are not a
/// JSON object are kept as a string under `_raw_arguments`, never lost).
fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ if arguments.trim().is_empty() => Value::Object(Default::default()),
        _ => serde_json::json!({ "_raw_arguments": arguments }),
    }
}

/// A chat completion as a Messages response (its first choice: Messages has
/// no `n`).
pub fn from_chat(c: &ChatCompletion) -> MessagesResponse {
    let mut content = Vec::new();
    let choice = c.choices.first();
    if let Some(ch) = choice {
        let m = &ch.message;
        if let Some(r) = m
            .extra
            .get("reasoning_content")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            content.push(ContentBlock::Thinking {
                thinking: r.to_owned(),
                signature: Some(String::new()),
                extra: Default::default(),
            });
        }
        for t in [m.content.as_deref(), m.refusal.as_deref()]
            .into_iter()
            .flatten()
            .filter(|t| !t.is_empty())
        {
            content.push(ContentBlock::Text {
                text: t.to_owned(),
                extra: Default::default(),
            });
        }
        for call in m.tool_calls.iter().flatten() {
            content.push(ContentBlock::ToolUse {
                id: call.id.clone(),
                name: call.function.name.clone(),
                input: tool_input(&call.function.arguments),
                extra: Default::default(),
            });
        }
    }
    MessagesResponse {
        id: message_id(&c.id),
        kind: "message".into(),
        role: "assistant".into(),
        model: c.model.clone(),
        content,
        stop_reason: Some(stop_reason(choice.and_then(|c| c.finish_reason.as_deref())).into()),
        stop_sequence: None,
        usage: c.usage.as_ref().map(usage).unwrap_or_default(),
        extra: Default::default(),
    }
}

/// Which kind of block is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u32),
    Thinking(u32),
}

/// Turns a stream of chat chunks into Messages stream events.
#[derive(Debug)]
pub struct EventEncoder {
    id: String,
    model: String,
    input_estimate: u64,
    started: bool,
    /// The open text or thinking block.
    open: Option<Open>,
    /// Block index of each chat tool-call index (open until the end).
    tools: BTreeMap<u32, u32>,
    next_block: u32,
    finish: Option<String>,
    usage: Option<OUsage>,
    finished: bool,
}

impl EventEncoder {
    /// `input_estimate` goes into `message_start` (the exact count follows in
    /// `message_delta` once the upstream reports it).
    pub fn new(fallback_id: &str, model: &str, input_estimate: u64) -> EventEncoder {
        EventEncoder {
            id: message_id(fallback_id),
            model: model.to_owned(),
            input_estimate,
            started: false,
            open: None,
            tools: BTreeMap::new(),
            next_block: 0,
            finish: None,
            usage: None,
            finished: false,
        }
    }

    fn start(&mut self, out: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(StreamEvent::MessageStart {
            message: MessagesResponse {
                id: self.id.clone(),
                kind: "message".into(),
                role: "assistant".into(),
                model: self.model.clone(),
                content: vec![],
                stop_reason: None,
                stop_sequence: None,
                usage: AUsage {
                    input_tokens: Some(self.input_estimate),
                    output_tokens: Some(0),
                    ..AUsage::default()
                },
                extra: Default::default(),
            },
        });
    }

    fn close_open(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(Open::Text(i) | Open::Thinking(i)) = self.open.take() {
            out.push(StreamEvent::ContentBlockStop { index: i });
        }
    }

    fn open_block(&mut self, want: Open, out: &mut Vec<StreamEvent>) -> u32 {
        match (self.open, want) {
            (Some(Open::Text(i)), Open::Text(_)) | (Some(Open::Thinking(i)), Open::Thinking(_)) => {
                return i;
            }
            _ => {}
        }
        self.close_open(out);
        let index = self.next_block;
        self.next_block += 1;
        let (open, block) = match want {
            Open::Text(_) => (
                Open::Text(index),
                ContentBlock::Text {
                    text: String::new(),
                    extra: Default::default(),
                },
            ),
            Open::Thinking(_) => (
                Open::Thinking(index),
                ContentBlock::Thinking {
                    thinking: String::new(),
                    signature: Some(String::new()),
                    extra: Default::default(),
                },
            ),
        };
        self.open = Some(open);
        out.push(StreamEvent::ContentBlockStart {
            index,
            content_block: block,
        });
        index
    }

    /// Events for one chat chunk.
    pub fn on_chunk(&mut self, chunk: &ChatChunk) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        if !self.started && !chunk.id.is_empty() {
            self.id = message_id(&chunk.id);
        }
        if !chunk.model.is_empty() && !self.started {
            self.model = chunk.model.clone();
        }
        self.start(&mut out);
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        // Messages carries one choice: the first.
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return out;
        };
        let d = &choice.delta;
        if let Some(r) = d
            .extra
            .get("reasoning_content")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            let index = self.open_block(Open::Thinking(0), &mut out);
            out.push(StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::ThinkingDelta {
                    thinking: r.to_owned(),
                },
            });
        }
        for t in [d.content.as_deref(), d.refusal.as_deref()]
            .into_iter()
            .flatten()
            .filter(|t| !t.is_empty())
        {
            let index = self.open_block(Open::Text(0), &mut out);
            out.push(StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::TextDelta { text: t.to_owned() },
            });
        }
        for tc in d.tool_calls.iter().flatten() {
            let index = match self.tools.get(&tc.index) {
                Some(i) => *i,
                None => {
                    self.close_open(&mut out);
                    let index = self.next_block;
                    self.next_block += 1;
                    self.tools.insert(tc.index, index);
                    let f = tc.function.as_ref();
                    out.push(StreamEvent::ContentBlockStart {
                        index,
                        content_block: ContentBlock::ToolUse {
                            id: tc
                                .id
                                .clone()
                                .unwrap_or_else(|| format!("toolu_{}_{}", self.id, tc.index)),
                            name: f.and_then(|f| f.name.clone()).unwrap_or_default(),
                            input: Value::Object(Default::default()),
                            extra: Default::default(),
                        },
                    });
                    index
                }
            };
            if let Some(args) = tc
                .function
                .as_ref()
                .and_then(|f| f.arguments.as_deref())
                .filter(|a| !a.is_empty())
            {
                out.push(StreamEvent::ContentBlockDelta {
                    index,
                    delta: BlockDelta::InputJsonDelta {
                        partial_json: args.to_owned(),
                    },
                });
            }
        }
        if let Some(f) = &choice.finish_reason {
            self.finish = Some(f.clone());
        }
        out
    }

    /// The closing events, once the chat stream ended cleanly.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.start(&mut out);
        self.close_open(&mut out);
        for index in std::mem::take(&mut self.tools).into_values() {
            out.push(StreamEvent::ContentBlockStop { index });
        }
        self.finished = true;
        out.push(StreamEvent::MessageDelta {
            delta: MessageDeltaBody {
                stop_reason: Some(stop_reason(self.finish.as_deref()).into()),
                stop_sequence: None,
            },
            usage: Some(self.usage.as_ref().map(usage).unwrap_or(AUsage {
                output_tokens: Some(0),
                ..AUsage::default()
            })),
        });
        out.push(StreamEvent::MessageStop);
        out
    }

    /// The terminal `error` event of a stream that broke.
    pub fn error(&mut self, kind: &str, message: &str) -> StreamEvent {
        self.finished = true;
        StreamEvent::Error {
            error: ErrorBody {
                kind: kind.to_owned(),
                message: message.to_owned(),
            },
        }
    }
}

/// Appends one Messages SSE event (`event: <type>` and `data: <json>`).
pub fn encode_event(buf: &mut Vec<u8>, ev: &StreamEvent) {
    let name = match ev {
        StreamEvent::MessageStart { .. } => "message_start",
        StreamEvent::ContentBlockStart { .. } => "content_block_start",
        StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
        StreamEvent::ContentBlockStop { .. } => "content_block_stop",
        StreamEvent::MessageDelta { .. } => "message_delta",
        StreamEvent::MessageStop => "message_stop",
        StreamEvent::Ping => "ping",
        StreamEvent::Error { .. } => "error",
        StreamEvent::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or("unknown"),
    };
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    let json = serde_json::to_vec(ev).unwrap_or_default();
    crate::sse::encode_data(buf, &json);
}
