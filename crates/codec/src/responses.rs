//! OpenAI Responses at the front door, served by any chat provider.
//!
//! [`to_chat`] turns a Responses request into an OpenAI-dialect chat request
//! (which every provider path accepts); [`from_chat`] turns a chat completion
//! back into a `response` object, and [`EventEncoder`] turns a stream of chat
//! chunks into Responses stream events.
//!
//! References: <https://platform.openai.com/docs/api-reference/responses/create>,
//! <https://platform.openai.com/docs/api-reference/responses/object>,
//! <https://platform.openai.com/docs/api-reference/responses-streaming>.
//!
//! Rules:
//! - The bridge keeps no state. What needs OpenAI's server-side state is
//!   rejected with a [`CodecError`] naming it: `previous_response_id`,
//!   `conversation`, stored `prompt`s, `item_reference` items,
//!   `background: true`. So are built-in tools (`web_search`, `file_search`,
//!   `computer_use_preview`, `mcp`, ...: they run on OpenAI's servers), file
//!   ids, file inputs, log probabilities, `truncation: "auto"`, non-default
//!   `service_tier` and `text.verbosity`, and every field we do not know.
//!   The deployment may drop all of these instead (`drop_unsupported`).
//! - `store` is accepted whatever its value (it defaults to `true` in the
//!   API, so rejecting it would reject nearly every client), but nothing is
//!   stored: the echoed response says `store: false`, so a client does not
//!   expect to fetch or chain it later.
//! - Hints with no meaning off OpenAI are ignored: `prompt_cache_key`,
//!   `max_tool_calls` (it counts built-in tool calls only),
//!   `stream_options.include_obfuscation`, `reasoning.summary`, and the
//!   `include` entries that only concern built-in tools, stored inputs or
//!   encrypted reasoning (`reasoning.encrypted_content` is asked for by
//!   stateless clients such as Codex; reasoning items we return simply carry
//!   none).
//! - Reasoning items of earlier turns are dropped: their `encrypted_content`
//!   is readable by OpenAI only, and their summary is not the model's input.
//! - A chat `reasoning_content` comes back as a reasoning item's summary
//!   (`summary_text`), the part of a reasoning item clients display.

use std::collections::BTreeMap;

use modelgate_api::openai::{
    ChatChunk, ChatCompletion, ChatMessage, ChatRequest, ContentPart, FunctionCall, FunctionDef,
    ImageUrl, JsonSchemaFormat, MessageContent, NamedFunction, NamedToolChoice, ResponseFormat,
    Role, StreamOptions, Tool, ToolCall, ToolChoice, Usage as OUsage,
};
use modelgate_api::responses::{
    FunctionCallItem, FunctionOutput, ImagePart, IncompleteDetails, Input, InputContent, InputItem,
    InputMessage, InputPart, InputTokensDetails, OutputContent, OutputItem, OutputMessage,
    OutputTokensDetails, ReasoningConfig, ReasoningItem, Response, ResponseError,
    ResponseStreamEvent, ResponseUsage, ResponsesRequest, ResponsesTool, ResponsesToolChoice,
    StreamErrorBody, SummaryPart, TextConfig, TextFormat,
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
            "'{param}': {what} cannot be sent to this model's provider (it takes the OpenAI chat format); use an OpenAI model, or set drop_unsupported_params on the model to drop it."
        ),
    ))
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

/// Parts as chat content: one text part collapses to a string.
fn collapse(mut parts: Vec<ContentPart>) -> MessageContent {
    if parts.len() == 1 && parts[0].kind == "text" {
        MessageContent::Text(parts.remove(0).text.unwrap_or_default())
    } else {
        MessageContent::Parts(parts)
    }
}

/// Top-level fields with no chat equivalent, and what to call them.
const UNSUPPORTED_TOP: &[(&str, &str)] = &[
    ("context_management", "server-side context management"),
    ("prompt_cache_retention", "OpenAI's prompt-cache retention"),
];

/// `include` entries that ask for nothing the bridge could ever return (they
/// concern built-in tools, stored inputs or encrypted reasoning): accepted,
/// and there is simply nothing to include.
const HARMLESS_INCLUDES: &[&str] = &[
    "reasoning.encrypted_content",
    "message.input_image.image_url",
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "code_interpreter_call.outputs",
    "computer_call_output.output.image_url",
];

/// Rejects (or drops) the top-level fields the chat dialect cannot carry.
fn check_top_level(req: &ResponsesRequest, opts: &ToChatOptions) -> Result<(), CodecError> {
    for key in req.extra.keys() {
        let what = UNSUPPORTED_TOP
            .iter()
            .find(|(k, _)| k == key)
            .map_or("this field", |(_, w)| w);
        unsupported(opts, key.clone(), what)?;
    }
    if req.previous_response_id.is_some() {
        unsupported(
            opts,
            "previous_response_id",
            "a previous response (the gateway stores no responses: send the whole conversation in 'input')",
        )?;
    }
    if req.conversation.is_some() {
        unsupported(
            opts,
            "conversation",
            "a stored conversation (the gateway stores none: send the whole conversation in 'input')",
        )?;
    }
    if req.prompt.is_some() {
        unsupported(opts, "prompt", "a stored prompt template")?;
    }
    if req.background == Some(true) {
        unsupported(
            opts,
            "background",
            "background mode (the gateway stores no responses to poll)",
        )?;
    }
    for (i, entry) in req.include.iter().flatten().enumerate() {
        if HARMLESS_INCLUDES.contains(&entry.as_str()) {
            continue;
        }
        let what = if entry == "message.output_text.logprobs" {
            "token log probabilities".to_owned()
        } else {
            format!("the include entry {entry:?}")
        };
        unsupported(opts, format!("include[{i}]"), &what)?;
    }
    if req.truncation.as_deref().is_some_and(|t| t != "disabled") {
        unsupported(
            opts,
            "truncation",
            "automatic truncation of the conversation",
        )?;
    }
    if req
        .service_tier
        .as_deref()
        .is_some_and(|t| t != "auto" && t != "default")
    {
        unsupported(opts, "service_tier", "OpenAI's service tier")?;
    }
    if req.top_logprobs.is_some_and(|n| n > 0) {
        unsupported(opts, "top_logprobs", "token log probabilities")?;
    }
    if let Some(text) = &req.text {
        for key in text.extra.keys() {
            unsupported(opts, format!("text.{key}"), "this field")?;
        }
        if text.verbosity.as_deref().is_some_and(|v| v != "medium") {
            unsupported(opts, "text.verbosity", "output verbosity")?;
        }
    }
    if let Some(r) = &req.reasoning {
        for key in r.extra.keys() {
            // The deprecated spelling of `summary`, ignored like it.
            if key != "generate_summary" {
                unsupported(opts, format!("reasoning.{key}"), "this reasoning setting")?;
            }
        }
    }
    Ok(())
}

/// A Responses request as an OpenAI-dialect chat request.
pub fn to_chat(req: &ResponsesRequest, opts: &ToChatOptions) -> Result<ChatRequest, CodecError> {
    check_top_level(req, opts)?;
    let mut messages = Vec::new();
    if let Some(i) = &req.instructions {
        messages.push(message(Role::System, Some(MessageContent::Text(i.clone()))));
    }
    match &req.input {
        None => {
            return Err(CodecError::new(
                "input",
                "'input' is required (stored prompts are not available through this gateway).",
            ));
        }
        Some(Input::Text(s)) => {
            messages.push(message(Role::User, Some(MessageContent::Text(s.clone()))))
        }
        Some(Input::Items(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(item, &format!("input[{i}]"), opts, &mut messages)?;
            }
        }
    }
    let tools = tools(req, opts)?;
    let tool_choice = if tools.is_empty() {
        None
    } else {
        tool_choice(req.tool_choice.as_ref(), opts)?
    };
    let response_format = response_format(req.text.as_ref())?;
    let stream = req.stream == Some(true);
    let (max_tokens, max_completion_tokens) = if opts.max_completion_tokens {
        (None, req.max_output_tokens)
    } else {
        (req.max_output_tokens, None)
    };
    let mut extra = serde_json::Map::new();
    if let Some(effort) = req.reasoning.as_ref().and_then(|r| r.effort.as_ref()) {
        extra.insert("reasoning_effort".into(), Value::String(effort.clone()));
    }
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
        // `user` is deprecated in favour of `safety_identifier`, which means
        // the same to a chat provider.
        user: req.user.clone().or_else(|| req.safety_identifier.clone()),
        metadata: req.metadata.clone(),
        parallel_tool_calls: if tools.is_empty() {
            None
        } else {
            req.parallel_tool_calls
        },
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice,
        response_format,
        extra,
        ..ChatRequest::default()
    })
}

/// Appends the chat messages of one input item.
fn input_item(
    item: &InputItem,
    path: &str,
    opts: &ToChatOptions,
    out: &mut Vec<ChatMessage>,
) -> Result<(), CodecError> {
    match item {
        InputItem::Message(m) => message_item(m, path, opts, out),
        InputItem::FunctionCall(c) => {
            let call = ToolCall {
                id: c.call_id.clone(),
                kind: "function".into(),
                function: FunctionCall {
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                },
                extra: Default::default(),
            };
            // Chat carries one assistant turn's text and calls in one
            // message; Responses lists them as separate items.
            match out.last_mut() {
                Some(last) if last.role == Role::Assistant => {
                    last.tool_calls.get_or_insert_with(Vec::new).push(call)
                }
                _ => {
                    let mut m = message(Role::Assistant, None);
                    m.tool_calls = Some(vec![call]);
                    out.push(m);
                }
            }
            Ok(())
        }
        InputItem::FunctionCallOutput(o) => {
            let content = match &o.output {
                FunctionOutput::Text(s) => MessageContent::Text(s.clone()),
                FunctionOutput::Parts(parts) => {
                    let mut texts = Vec::new();
                    for (j, p) in parts.iter().enumerate() {
                        let at = format!("{path}.output[{j}]");
                        match p {
                            InputPart::InputText(t) | InputPart::OutputText(t) => {
                                texts.push(text_part(&t.text))
                            }
                            _ => unsupported(
                                opts,
                                at,
                                &format!(
                                    "a {:?} part in a function_call_output (chat tool results carry text only)",
                                    part_kind(p)
                                ),
                            )?,
                        }
                    }
                    collapse(texts)
                }
            };
            let mut m = message(Role::Tool, Some(content));
            m.tool_call_id = Some(o.call_id.clone());
            out.push(m);
            Ok(())
        }
        // Only OpenAI can take its (encrypted) reasoning back.
        InputItem::Reasoning(_) => Ok(()),
        InputItem::Other(_) if item.kind() == "item_reference" => unsupported(
            opts,
            path,
            "an item_reference (the gateway stores no items: send the item itself)",
        ),
        InputItem::Other(_) => unsupported(opts, path, &format!("a {:?} item", item.kind())),
    }
}

fn part_kind(p: &InputPart) -> &str {
    match p {
        InputPart::InputText(_) => "input_text",
        InputPart::InputImage(_) => "input_image",
        InputPart::OutputText(_) => "output_text",
        InputPart::Refusal(_) => "refusal",
        InputPart::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or("unknown"),
    }
}

fn image_part(
    img: &ImagePart,
    at: &str,
    opts: &ToChatOptions,
) -> Result<Option<ContentPart>, CodecError> {
    if let Some(url) = &img.image_url {
        return Ok(Some(ContentPart {
            kind: "image_url".into(),
            text: None,
            image_url: Some(ImageUrl {
                url: url.clone(),
                detail: img.detail.clone(),
                extra: Default::default(),
            }),
            extra: Default::default(),
        }));
    }
    if img.file_id.is_some() {
        unsupported(
            opts,
            format!("{at}.file_id"),
            "an uploaded file (file_id; send the image as an https: or data: URL in 'image_url')",
        )?;
        return Ok(None);
    }
    Err(CodecError::new(
        format!("{at}.image_url"),
        format!("'{at}' needs an 'image_url' (an https: or data: URL)."),
    ))
}

fn message_item(
    m: &InputMessage,
    path: &str,
    opts: &ToChatOptions,
    out: &mut Vec<ChatMessage>,
) -> Result<(), CodecError> {
    let role = match m.role.as_str() {
        "user" => Role::User,
        "system" => Role::System,
        "developer" => Role::Developer,
        "assistant" => Role::Assistant,
        other => {
            return Err(CodecError::new(
                format!("{path}.role"),
                format!(
                    "'{path}.role' must be 'user', 'assistant', 'system' or 'developer', not {other:?}."
                ),
            ));
        }
    };
    let parts = match &m.content {
        InputContent::Text(s) => {
            out.push(message(role, Some(MessageContent::Text(s.clone()))));
            return Ok(());
        }
        InputContent::Parts(p) => p,
    };
    let mut content = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        let at = format!("{path}.content[{j}]");
        match p {
            InputPart::InputText(t) | InputPart::OutputText(t) => content.push(text_part(&t.text)),
            InputPart::Refusal(r) => content.push(text_part(&r.refusal)),
            InputPart::InputImage(img) if role == Role::User => {
                if let Some(part) = image_part(img, &at, opts)? {
                    content.push(part);
                }
            }
            InputPart::InputImage(_) => {
                unsupported(opts, at, &format!("an image in a {} message", m.role))?
            }
            InputPart::Other(_) => unsupported(opts, at, &format!("a {:?} part", part_kind(p)))?,
        }
    }
    if content.is_empty() && !parts.is_empty() {
        // Everything was dropped.
        return Ok(());
    }
    let content = if role == Role::Assistant {
        // Chat assistant content is plain text.
        MessageContent::Text(
            content
                .iter()
                .filter_map(|p| p.text.as_deref())
                .collect::<String>(),
        )
    } else {
        collapse(content)
    };
    out.push(message(role, Some(content)));
    Ok(())
}

/// Flat Responses function tools as nested chat tools.
fn tools(req: &ResponsesRequest, opts: &ToChatOptions) -> Result<Vec<Tool>, CodecError> {
    let mut out = Vec::new();
    for (i, t) in req.tools.iter().flatten().enumerate() {
        match t {
            ResponsesTool::Function(f) => {
                for key in f.extra.keys() {
                    unsupported(opts, format!("tools[{i}].{key}"), "this tool field")?;
                }
                out.push(Tool {
                    kind: "function".into(),
                    function: Some(FunctionDef {
                        name: f.name.clone(),
                        description: f.description.clone(),
                        parameters: f.parameters.clone(),
                        strict: f.strict,
                        extra: Default::default(),
                    }),
                    extra: Default::default(),
                });
            }
            ResponsesTool::Other(_) => {
                let what = match t.kind() {
                    "custom" => "a custom (free-form input) tool".to_owned(),
                    "mcp" => "a remote MCP server tool".to_owned(),
                    kind => format!("the built-in {kind:?} tool (it runs on OpenAI's servers)"),
                };
                unsupported(opts, format!("tools[{i}]"), &what)?;
            }
        }
    }
    Ok(out)
}

fn tool_choice(
    tc: Option<&ResponsesToolChoice>,
    opts: &ToChatOptions,
) -> Result<Option<ToolChoice>, CodecError> {
    let Some(tc) = tc else {
        return Ok(None);
    };
    match tc {
        ResponsesToolChoice::Mode(m) => match m.as_str() {
            "auto" | "none" | "required" => Ok(Some(ToolChoice::Mode(m.clone()))),
            other => Err(CodecError::new(
                "tool_choice",
                format!("'tool_choice' must be auto, none, required or an object, not {other:?}."),
            )),
        },
        ResponsesToolChoice::Object(o) => match o.kind.as_str() {
            "function" => {
                let name = o.name.clone().ok_or_else(|| {
                    CodecError::new(
                        "tool_choice.name",
                        "'tool_choice.name' is required when 'tool_choice.type' is 'function'.",
                    )
                })?;
                Ok(Some(ToolChoice::Named(NamedToolChoice {
                    kind: "function".into(),
                    function: Some(NamedFunction { name }),
                    extra: Default::default(),
                })))
            }
            "allowed_tools" => {
                unsupported(opts, "tool_choice", "an allowed_tools list")?;
                Ok(None)
            }
            other => {
                unsupported(
                    opts,
                    "tool_choice",
                    &format!("a {other:?} tool choice (built-in tools run on OpenAI's servers)"),
                )?;
                Ok(None)
            }
        },
    }
}

fn response_format(text: Option<&TextConfig>) -> Result<Option<ResponseFormat>, CodecError> {
    let Some(f) = text.and_then(|t| t.format.as_ref()) else {
        return Ok(None);
    };
    match f.kind.as_str() {
        "text" => Ok(None),
        "json_object" => Ok(Some(ResponseFormat {
            kind: "json_object".into(),
            json_schema: None,
            extra: Default::default(),
        })),
        "json_schema" => {
            let schema = f.schema.clone().ok_or_else(|| {
                CodecError::new(
                    "text.format.schema",
                    "'text.format.schema' is required when 'text.format.type' is 'json_schema'.",
                )
            })?;
            Ok(Some(ResponseFormat {
                kind: "json_schema".into(),
                json_schema: Some(JsonSchemaFormat {
                    // Chat requires a name; Responses clients sometimes omit it.
                    name: f.name.clone().unwrap_or_else(|| "response".into()),
                    description: f.description.clone(),
                    schema: Some(schema),
                    strict: f.strict,
                    extra: Default::default(),
                }),
                extra: Default::default(),
            }))
        }
        other => Err(CodecError::new(
            "text.format.type",
            format!("'text.format.type' must be text, json_object or json_schema, not {other:?}."),
        )),
    }
}

/// What the request said, echoed on the `response` object the way the API
/// does. Unset fields get the API's documented defaults where the response
/// field is required (`tool_choice: "auto"`, `tools: []`,
/// `parallel_tool_calls: true`, `text.format: text`, `truncation:
/// "disabled"`) and `null` otherwise (the provider's own defaults are not
/// known here).
#[derive(Debug, Clone, PartialEq)]
pub struct Echo {
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u32>,
    pub max_tool_calls: Option<u32>,
    pub parallel_tool_calls: bool,
    pub prompt_cache_key: Option<String>,
    pub reasoning: ReasoningConfig,
    pub safety_identifier: Option<String>,
    pub service_tier: Option<String>,
    pub temperature: Option<f64>,
    pub text: TextConfig,
    pub tool_choice: ResponsesToolChoice,
    /// The tools as the request listed them (flat Responses form).
    pub tools: Vec<ResponsesTool>,
    pub top_logprobs: Option<u32>,
    pub top_p: Option<f64>,
    pub truncation: String,
    pub user: Option<String>,
    pub metadata: serde_json::Map<String, Value>,
}

fn default_text() -> TextConfig {
    TextConfig {
        format: Some(TextFormat {
            kind: "text".into(),
            name: None,
            description: None,
            schema: None,
            strict: None,
            extra: Default::default(),
        }),
        verbosity: None,
        extra: Default::default(),
    }
}

impl Default for Echo {
    /// The echo of a request that set nothing.
    fn default() -> Echo {
        Echo {
            instructions: None,
            max_output_tokens: None,
            max_tool_calls: None,
            parallel_tool_calls: true,
            prompt_cache_key: None,
            reasoning: ReasoningConfig::default(),
            safety_identifier: None,
            service_tier: None,
            temperature: None,
            text: default_text(),
            tool_choice: ResponsesToolChoice::Mode("auto".into()),
            tools: vec![],
            top_logprobs: None,
            top_p: None,
            truncation: "disabled".into(),
            user: None,
            metadata: Default::default(),
        }
    }
}

impl Echo {
    /// The echo of `req`.
    pub fn from_request(req: &ResponsesRequest) -> Echo {
        let d = Echo::default();
        let mut text = req.text.clone().unwrap_or_else(default_text);
        if text.format.is_none() {
            text.format = default_text().format;
        }
        Echo {
            instructions: req.instructions.clone(),
            max_output_tokens: req.max_output_tokens,
            max_tool_calls: req.max_tool_calls,
            parallel_tool_calls: req.parallel_tool_calls.unwrap_or(d.parallel_tool_calls),
            prompt_cache_key: req.prompt_cache_key.clone(),
            reasoning: req.reasoning.clone().unwrap_or_default(),
            safety_identifier: req.safety_identifier.clone(),
            service_tier: req.service_tier.clone(),
            temperature: req.temperature,
            text,
            tool_choice: req.tool_choice.clone().unwrap_or(d.tool_choice),
            tools: req.tools.clone().unwrap_or_default(),
            top_logprobs: req.top_logprobs,
            top_p: req.top_p,
            truncation: req.truncation.clone().unwrap_or(d.truncation),
            user: req.user.clone(),
            metadata: req.metadata.clone().unwrap_or_default(),
        }
    }

    /// A `response` object around `output` with these settings.
    fn response(
        &self,
        id: &str,
        created_at: u64,
        model: &str,
        status: &str,
        output: Vec<OutputItem>,
    ) -> Response {
        Response {
            id: id.to_owned(),
            object: "response".into(),
            created_at,
            status: status.into(),
            background: Some(false),
            error: None,
            incomplete_details: None,
            instructions: self.instructions.clone().map(Value::String),
            max_output_tokens: self.max_output_tokens,
            max_tool_calls: self.max_tool_calls,
            model: model.to_owned(),
            output,
            parallel_tool_calls: self.parallel_tool_calls,
            previous_response_id: None,
            prompt_cache_key: self.prompt_cache_key.clone(),
            reasoning: Some(self.reasoning.clone()),
            safety_identifier: self.safety_identifier.clone(),
            service_tier: self.service_tier.clone(),
            // Nothing is stored, whatever the request asked.
            store: Some(false),
            temperature: self.temperature,
            text: Some(self.text.clone()),
            tool_choice: self.tool_choice.clone(),
            tools: self.tools.clone(),
            top_logprobs: self.top_logprobs,
            top_p: self.top_p,
            truncation: Some(self.truncation.clone()),
            usage: None,
            user: self.user.clone(),
            metadata: self.metadata.clone(),
            extra: Default::default(),
        }
    }
}

/// A response id (`resp_…`) for an upstream chat id.
pub fn response_id(chat_id: &str) -> String {
    if chat_id.starts_with("resp_") {
        chat_id.to_owned()
    } else {
        format!("resp_{chat_id}")
    }
}

/// Responses usage from chat usage. Both count cached tokens inside the
/// input and reasoning tokens inside the output.
pub fn usage(u: &OUsage) -> ResponseUsage {
    let cached = u
        .prompt_tokens_details
        .as_ref()
        .and_then(|d| d.cached_tokens)
        .unwrap_or(0);
    let reasoning = u
        .completion_tokens_details
        .as_ref()
        .and_then(|d| d.reasoning_tokens)
        .unwrap_or(0);
    ResponseUsage {
        input_tokens: u.prompt_tokens,
        input_tokens_details: InputTokensDetails {
            cached_tokens: cached,
        },
        output_tokens: u.completion_tokens,
        output_tokens_details: OutputTokensDetails {
            reasoning_tokens: reasoning,
        },
        total_tokens: if u.total_tokens > 0 {
            u.total_tokens
        } else {
            // Saturating: the counts may come straight from an upstream's
            // body (regression seed in fuzz/corpus/openai_peek).
            u.prompt_tokens.saturating_add(u.completion_tokens)
        },
        extra: Default::default(),
    }
}

/// Why a chat `finish_reason` leaves a response incomplete, if it does.
pub fn incomplete_reason(finish: Option<&str>) -> Option<&'static str> {
    match finish {
        Some("length") => Some("max_output_tokens"),
        Some("content_filter") => Some("content_filter"),
        _ => None,
    }
}

/// The reasoning text of a chat message or delta (`reasoning_content`).
fn reasoning_text(extra: &serde_json::Map<String, Value>) -> Option<&str> {
    extra
        .get("reasoning_content")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
}

/// Sets the status of the item, where items have one.
fn set_status(item: &mut OutputItem, status: &str) {
    match item {
        OutputItem::Message(m) => m.status = status.into(),
        OutputItem::FunctionCall(c) => c.status = Some(status.into()),
        OutputItem::Reasoning(_) | OutputItem::Other(_) => {}
    }
}

/// Status, `incomplete_details` and the last item's status for a finish reason.
fn conclude(resp: &mut Response, finish: Option<&str>) {
    if let Some(reason) = incomplete_reason(finish) {
        resp.status = "incomplete".into();
        resp.incomplete_details = Some(IncompleteDetails {
            reason: reason.into(),
        });
        // The item the model was writing when it was cut off.
        if let Some(last) = resp.output.last_mut() {
            set_status(last, "incomplete");
        }
    } else {
        resp.status = "completed".into();
    }
}

/// A chat completion as a `response` object (its first choice: Responses
/// has no `n`). `echo` supplies the request settings the API repeats.
pub fn from_chat(c: &ChatCompletion, echo: &Echo) -> Response {
    let mut output = Vec::new();
    let choice = c.choices.iter().find(|ch| ch.index == 0);
    if let Some(ch) = choice {
        let m = &ch.message;
        if let Some(r) = reasoning_text(&m.extra) {
            output.push(OutputItem::Reasoning(ReasoningItem {
                id: format!("rs_{}", c.id),
                summary: vec![SummaryPart::text(r)],
                ..ReasoningItem::default()
            }));
        }
        let mut content = Vec::new();
        if let Some(t) = m.content.as_deref().filter(|t| !t.is_empty()) {
            content.push(OutputContent::text(t));
        }
        if let Some(r) = m.refusal.as_deref().filter(|r| !r.is_empty()) {
            content.push(OutputContent::Refusal {
                refusal: r.to_owned(),
            });
        }
        if !content.is_empty() {
            output.push(OutputItem::Message(OutputMessage {
                id: format!("msg_{}", c.id),
                status: "completed".into(),
                role: "assistant".into(),
                content,
                extra: Default::default(),
            }));
        }
        for call in m.tool_calls.iter().flatten() {
            output.push(OutputItem::FunctionCall(FunctionCallItem {
                id: Some(format!("fc_{}", call.id)),
                call_id: call.id.clone(),
                name: call.function.name.clone(),
                arguments: call.function.arguments.clone(),
                status: Some("completed".into()),
                extra: Default::default(),
            }));
        }
    }
    let mut resp = echo.response(
        &response_id(&c.id),
        c.created,
        &c.model,
        "completed",
        output,
    );
    conclude(&mut resp, choice.and_then(|ch| ch.finish_reason.as_deref()));
    resp.usage = c.usage.as_ref().map(usage);
    resp
}

/// The content part of a message being streamed.
#[derive(Debug)]
struct OpenPart {
    refusal: bool,
    text: String,
}

/// The text-like item being streamed (tool calls are tracked apart: their
/// argument fragments may interleave).
#[derive(Debug)]
enum Open {
    Reasoning {
        output_index: u32,
        id: String,
        text: String,
    },
    Message {
        output_index: u32,
        id: String,
        /// Finished parts; the open part's `content_index` is their count.
        content: Vec<OutputContent>,
        part: Option<OpenPart>,
    },
}

/// A function call being streamed.
#[derive(Debug)]
struct ToolState {
    output_index: u32,
    item_id: String,
    call_id: String,
    name: String,
    arguments: String,
}

/// Turns a stream of chat chunks into Responses stream events.
///
/// Events come out in the order the official SDKs' accumulators expect:
/// `response.created` and `response.in_progress` first; every item announced
/// by `output_item.added` before its parts and deltas; `output_index` is the
/// item's position in the final `output`, `content_index` the part's
/// position in the item's `content`; `sequence_number` counts from 0 with no
/// gaps. Text and reasoning items close as soon as another item starts;
/// function calls stay open until [`EventEncoder::finish`], because chat
/// providers may interleave the argument fragments of parallel calls.
#[derive(Debug)]
pub struct EventEncoder {
    id: String,
    /// The upstream chat id, for item ids.
    base: String,
    model: String,
    created_at: u64,
    echo: Echo,
    seq: u64,
    started: bool,
    open: Option<Open>,
    /// By chat tool-call index.
    tools: BTreeMap<u32, ToolState>,
    /// Finished items by `output_index`.
    done: BTreeMap<u32, OutputItem>,
    next_output: u32,
    finish: Option<String>,
    usage: Option<OUsage>,
    finished: bool,
}

impl EventEncoder {
    /// `fallback_id` and `created_at` stand in until the first chunk brings
    /// the upstream's own id and time; `echo` is what the request said.
    pub fn new(fallback_id: &str, model: &str, created_at: u64, echo: Echo) -> EventEncoder {
        EventEncoder {
            id: response_id(fallback_id),
            base: fallback_id.to_owned(),
            model: model.to_owned(),
            created_at,
            echo,
            seq: 0,
            started: false,
            open: None,
            tools: BTreeMap::new(),
            done: BTreeMap::new(),
            next_output: 0,
            finish: None,
            usage: None,
            finished: false,
        }
    }

    fn seq(&mut self) -> u64 {
        let n = self.seq;
        self.seq += 1;
        n
    }

    fn snapshot(&self, status: &str, output: Vec<OutputItem>) -> Box<Response> {
        Box::new(
            self.echo
                .response(&self.id, self.created_at, &self.model, status, output),
        )
    }

    fn start(&mut self, out: &mut Vec<ResponseStreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.snapshot("in_progress", vec![]);
        out.push(ResponseStreamEvent::Created {
            response: response.clone(),
            sequence_number: self.seq(),
        });
        out.push(ResponseStreamEvent::InProgress {
            response,
            sequence_number: self.seq(),
        });
    }

    fn take_output_index(&mut self) -> u32 {
        let i = self.next_output;
        self.next_output += 1;
        i
    }

    /// An item id: `<prefix>_<chat id>`, suffixed with the output index for
    /// all but the first item of the stream.
    fn item_id(&self, prefix: &str, output_index: u32) -> String {
        if output_index == 0 {
            format!("{prefix}_{}", self.base)
        } else {
            format!("{prefix}_{}_{output_index}", self.base)
        }
    }

    /// Closes the open part of a message (`*.done` + `content_part.done`).
    fn close_part(
        &mut self,
        item_id: &str,
        output_index: u32,
        content: &mut Vec<OutputContent>,
        part: OpenPart,
        out: &mut Vec<ResponseStreamEvent>,
    ) {
        let content_index = content.len() as u32;
        let done = if part.refusal {
            ResponseStreamEvent::RefusalDone {
                item_id: item_id.to_owned(),
                output_index,
                content_index,
                refusal: part.text.clone(),
                sequence_number: self.seq(),
            }
        } else {
            ResponseStreamEvent::OutputTextDone {
                item_id: item_id.to_owned(),
                output_index,
                content_index,
                text: part.text.clone(),
                logprobs: vec![],
                sequence_number: self.seq(),
            }
        };
        out.push(done);
        let full = if part.refusal {
            OutputContent::Refusal { refusal: part.text }
        } else {
            OutputContent::text(part.text)
        };
        out.push(ResponseStreamEvent::ContentPartDone {
            item_id: item_id.to_owned(),
            output_index,
            content_index,
            part: full.clone(),
            sequence_number: self.seq(),
        });
        content.push(full);
    }

    /// Closes the open text or reasoning item with `status`.
    fn close_open(&mut self, status: &str, out: &mut Vec<ResponseStreamEvent>) {
        let Some(open) = self.open.take() else {
            return;
        };
        let (output_index, item) = match open {
            Open::Reasoning {
                output_index,
                id,
                text,
            } => {
                out.push(ResponseStreamEvent::ReasoningSummaryTextDone {
                    item_id: id.clone(),
                    output_index,
                    summary_index: 0,
                    text: text.clone(),
                    sequence_number: self.seq(),
                });
                out.push(ResponseStreamEvent::ReasoningSummaryPartDone {
                    item_id: id.clone(),
                    output_index,
                    summary_index: 0,
                    part: SummaryPart::text(text.clone()),
                    sequence_number: self.seq(),
                });
                let item = OutputItem::Reasoning(ReasoningItem {
                    id,
                    summary: vec![SummaryPart::text(text)],
                    ..ReasoningItem::default()
                });
                (output_index, item)
            }
            Open::Message {
                output_index,
                id,
                mut content,
                part,
            } => {
                if let Some(part) = part {
                    self.close_part(&id, output_index, &mut content, part, out);
                }
                let item = OutputItem::Message(OutputMessage {
                    id,
                    status: status.into(),
                    role: "assistant".into(),
                    content,
                    extra: Default::default(),
                });
                (output_index, item)
            }
        };
        out.push(ResponseStreamEvent::OutputItemDone {
            output_index,
            item: item.clone(),
            sequence_number: self.seq(),
        });
        self.done.insert(output_index, item);
    }

    /// Appends reasoning text, opening a reasoning item if needed.
    fn reasoning_delta(&mut self, delta: &str, out: &mut Vec<ResponseStreamEvent>) {
        if !matches!(self.open, Some(Open::Reasoning { .. })) {
            self.close_open("completed", out);
            let output_index = self.take_output_index();
            let id = self.item_id("rs", output_index);
            out.push(ResponseStreamEvent::OutputItemAdded {
                output_index,
                item: OutputItem::Reasoning(ReasoningItem {
                    id: id.clone(),
                    ..ReasoningItem::default()
                }),
                sequence_number: self.seq(),
            });
            out.push(ResponseStreamEvent::ReasoningSummaryPartAdded {
                item_id: id.clone(),
                output_index,
                summary_index: 0,
                part: SummaryPart::text(""),
                sequence_number: self.seq(),
            });
            self.open = Some(Open::Reasoning {
                output_index,
                id,
                text: String::new(),
            });
        }
        let n = self.seq();
        if let Some(Open::Reasoning {
            output_index,
            id,
            text,
        }) = &mut self.open
        {
            text.push_str(delta);
            out.push(ResponseStreamEvent::ReasoningSummaryTextDelta {
                item_id: id.clone(),
                output_index: *output_index,
                summary_index: 0,
                delta: delta.to_owned(),
                sequence_number: n,
            });
        }
    }

    /// Appends text (or refusal text), opening a message item and the right
    /// content part if needed.
    fn message_delta(&mut self, delta: &str, refusal: bool, out: &mut Vec<ResponseStreamEvent>) {
        if !matches!(self.open, Some(Open::Message { .. })) {
            self.close_open("completed", out);
            let output_index = self.take_output_index();
            let id = self.item_id("msg", output_index);
            out.push(ResponseStreamEvent::OutputItemAdded {
                output_index,
                item: OutputItem::Message(OutputMessage {
                    id: id.clone(),
                    status: "in_progress".into(),
                    role: "assistant".into(),
                    content: vec![],
                    extra: Default::default(),
                }),
                sequence_number: self.seq(),
            });
            self.open = Some(Open::Message {
                output_index,
                id,
                content: vec![],
                part: None,
            });
        }
        let Some(Open::Message {
            output_index,
            id,
            mut content,
            part,
        }) = self.open.take()
        else {
            return;
        };
        let part = match part {
            Some(p) if p.refusal == refusal => p,
            other => {
                if let Some(p) = other {
                    self.close_part(&id, output_index, &mut content, p, out);
                }
                let empty = if refusal {
                    OutputContent::Refusal {
                        refusal: String::new(),
                    }
                } else {
                    OutputContent::text("")
                };
                out.push(ResponseStreamEvent::ContentPartAdded {
                    item_id: id.clone(),
                    output_index,
                    content_index: content.len() as u32,
                    part: empty,
                    sequence_number: self.seq(),
                });
                OpenPart {
                    refusal,
                    text: String::new(),
                }
            }
        };
        let content_index = content.len() as u32;
        let sequence_number = self.seq();
        out.push(if refusal {
            ResponseStreamEvent::RefusalDelta {
                item_id: id.clone(),
                output_index,
                content_index,
                delta: delta.to_owned(),
                sequence_number,
            }
        } else {
            ResponseStreamEvent::OutputTextDelta {
                item_id: id.clone(),
                output_index,
                content_index,
                delta: delta.to_owned(),
                logprobs: vec![],
                sequence_number,
            }
        });
        let mut part = part;
        part.text.push_str(delta);
        self.open = Some(Open::Message {
            output_index,
            id,
            content,
            part: Some(part),
        });
    }

    /// Events for one chat chunk.
    pub fn on_chunk(&mut self, chunk: &ChatChunk) -> Vec<ResponseStreamEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        if !self.started {
            if !chunk.id.is_empty() {
                self.id = response_id(&chunk.id);
                self.base = chunk.id.clone();
            }
            if !chunk.model.is_empty() {
                self.model = chunk.model.clone();
            }
            if chunk.created > 0 {
                self.created_at = chunk.created;
            }
        }
        self.start(&mut out);
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        // Responses carries one choice: the first.
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return out;
        };
        let d = &choice.delta;
        if let Some(r) = reasoning_text(&d.extra) {
            self.reasoning_delta(r, &mut out);
        }
        if let Some(t) = d.content.as_deref().filter(|t| !t.is_empty()) {
            self.message_delta(t, false, &mut out);
        }
        if let Some(t) = d.refusal.as_deref().filter(|t| !t.is_empty()) {
            self.message_delta(t, true, &mut out);
        }
        for tc in d.tool_calls.iter().flatten() {
            let f = tc.function.as_ref();
            if !self.tools.contains_key(&tc.index) {
                self.close_open("completed", &mut out);
                let output_index = self.take_output_index();
                let call_id = tc
                    .id
                    .clone()
                    .unwrap_or_else(|| format!("call_{}_{}", self.base, tc.index));
                let state = ToolState {
                    output_index,
                    item_id: format!("fc_{call_id}"),
                    call_id,
                    name: f.and_then(|f| f.name.clone()).unwrap_or_default(),
                    arguments: String::new(),
                };
                out.push(ResponseStreamEvent::OutputItemAdded {
                    output_index,
                    item: OutputItem::FunctionCall(FunctionCallItem {
                        id: Some(state.item_id.clone()),
                        call_id: state.call_id.clone(),
                        name: state.name.clone(),
                        arguments: String::new(),
                        status: Some("in_progress".into()),
                        extra: Default::default(),
                    }),
                    sequence_number: self.seq(),
                });
                self.tools.insert(tc.index, state);
            }
            let Some(args) = f
                .and_then(|f| f.arguments.as_deref())
                .filter(|a| !a.is_empty())
            else {
                continue;
            };
            let sequence_number = self.seq();
            if let Some(state) = self.tools.get_mut(&tc.index) {
                state.arguments.push_str(args);
                out.push(ResponseStreamEvent::FunctionCallArgumentsDelta {
                    item_id: state.item_id.clone(),
                    output_index: state.output_index,
                    delta: args.to_owned(),
                    sequence_number,
                });
            }
        }
        if let Some(f) = &choice.finish_reason {
            self.finish = Some(f.clone());
        }
        out
    }

    /// Closes a function call item with `status`.
    fn close_tool(&mut self, t: ToolState, status: &str, out: &mut Vec<ResponseStreamEvent>) {
        out.push(ResponseStreamEvent::FunctionCallArgumentsDone {
            item_id: t.item_id.clone(),
            output_index: t.output_index,
            name: Some(t.name.clone()),
            arguments: t.arguments.clone(),
            sequence_number: self.seq(),
        });
        let item = OutputItem::FunctionCall(FunctionCallItem {
            id: Some(t.item_id),
            call_id: t.call_id,
            name: t.name,
            arguments: t.arguments,
            status: Some(status.into()),
            extra: Default::default(),
        });
        out.push(ResponseStreamEvent::OutputItemDone {
            output_index: t.output_index,
            item: item.clone(),
            sequence_number: self.seq(),
        });
        self.done.insert(t.output_index, item);
    }

    /// The closing events and `response.completed` (or `response.incomplete`
    /// when the model hit the output limit or a content filter), once the
    /// chat stream ended cleanly. The final response carries the usage of
    /// the chat usage chunk, which arrives after the finish chunk.
    pub fn finish(&mut self) -> Vec<ResponseStreamEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.start(&mut out);
        let incomplete = incomplete_reason(self.finish.as_deref()).is_some();
        // The newest item is the one cut off by an incomplete finish.
        let last = self.next_output.checked_sub(1);
        let status_of = |i: u32| {
            if incomplete && Some(i) == last {
                "incomplete"
            } else {
                "completed"
            }
        };
        // Close what is still open in output order.
        let open_index = match &self.open {
            Some(Open::Reasoning { output_index, .. } | Open::Message { output_index, .. }) => {
                Some(*output_index)
            }
            None => None,
        };
        let mut tools: Vec<ToolState> = std::mem::take(&mut self.tools).into_values().collect();
        tools.sort_by_key(|t| t.output_index);
        let mut open_closed = false;
        for t in tools {
            if !open_closed && open_index.is_some_and(|i| i < t.output_index) {
                let status = open_index.map_or("completed", status_of);
                self.close_open(status, &mut out);
                open_closed = true;
            }
            let status = status_of(t.output_index);
            self.close_tool(t, status, &mut out);
        }
        if !open_closed {
            let status = open_index.map_or("completed", status_of);
            self.close_open(status, &mut out);
        }
        self.finished = true;
        let output: Vec<OutputItem> = std::mem::take(&mut self.done).into_values().collect();
        let mut response = self.snapshot("completed", output);
        conclude(&mut response, self.finish.as_deref());
        // `conclude` marks the last item; the events above already did.
        response.usage = self.usage.as_ref().map(usage);
        let sequence_number = self.seq();
        out.push(if incomplete {
            ResponseStreamEvent::Incomplete {
                response,
                sequence_number,
            }
        } else {
            ResponseStreamEvent::Completed {
                response,
                sequence_number,
            }
        });
        out
    }

    /// The terminal `response.failed` event of a stream that broke (preceded
    /// by `response.created` and `response.in_progress` if nothing was sent
    /// yet, since SDKs need those first). `code` is one of the API's
    /// `response.error.code` values (`server_error`, `rate_limit_exceeded`,
    /// ...). The failed response lists the items that were finished.
    pub fn fail(&mut self, code: &str, message: &str) -> Vec<ResponseStreamEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.start(&mut out);
        self.finished = true;
        let output: Vec<OutputItem> = std::mem::take(&mut self.done).into_values().collect();
        let mut response = self.snapshot("failed", output);
        response.error = Some(ResponseError {
            code: code.to_owned(),
            message: message.to_owned(),
        });
        response.usage = self.usage.as_ref().map(usage);
        out.push(ResponseStreamEvent::Failed {
            response,
            sequence_number: self.seq(),
        });
        out
    }

    /// A terminal `error` event (a stream-level error rather than a failed
    /// response). It carries the documented top-level `code`/`message`/`param`
    /// and the nested `error` object the live API sends, which the official
    /// Python SDK needs to raise.
    pub fn error(&mut self, kind: &str, code: &str, message: &str) -> ResponseStreamEvent {
        self.finished = true;
        ResponseStreamEvent::Error {
            code: Some(code.to_owned()),
            message: message.to_owned(),
            param: None,
            error: Some(StreamErrorBody {
                kind: kind.to_owned(),
                code: Some(code.to_owned()),
                message: message.to_owned(),
                param: None,
            }),
            sequence_number: self.seq(),
        }
    }
}

/// Appends one Responses SSE event (`event: <type>` and `data: <json>`).
pub fn encode_event(buf: &mut Vec<u8>, ev: &ResponseStreamEvent) {
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(ev.event_type().as_bytes());
    buf.push(b'\n');
    let json = serde_json::to_vec(ev).unwrap_or_default();
    crate::sse::encode_data(buf, &json);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_total_saturates() {
        let u = OUsage {
            prompt_tokens: u64::MAX,
            completion_tokens: 1,
            total_tokens: 0,
            prompt_tokens_details: None,
            completion_tokens_details: None,
            extra: Default::default(),
        };
        let r = usage(&u);
        assert_eq!(r.total_tokens, u64::MAX);
        assert_eq!((r.input_tokens, r.output_tokens), (u64::MAX, 1));
    }
}
