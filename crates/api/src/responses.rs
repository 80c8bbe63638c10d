//! OpenAI Responses API wire types: the `POST /v1/responses` request, the
//! `response` object and the streaming events.
//!
//! References: <https://platform.openai.com/docs/api-reference/responses/create>,
//! <https://platform.openai.com/docs/api-reference/responses/object>,
//! <https://platform.openai.com/docs/api-reference/responses-streaming>.
//! Field names follow the OpenAPI spec as generated into the official SDKs
//! (`openai-python`, `src/openai/types/responses/`).
//!
//! Only the parts the Chat Completions bridge touches are typed; everything
//! else survives in `extra` maps or `Other(Value)` arms.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::Extra;

/// `POST /v1/responses` request body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponsesRequest {
    pub model: String,
    /// A plain string (one user message) or a list of items. Optional on the
    /// wire because a stored `prompt` may supply it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Input>,
    /// A system (or developer) message inserted first into the model's context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ResponsesTool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ResponsesToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Upper bound on generated tokens, reasoning tokens included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Upper bound on calls to built-in tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tool_calls: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<ResponsesStreamOptions>,
    /// Output format (`text.format`) and verbosity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningConfig>,
    /// Deprecated end-user id (replaced by `safety_identifier` and `prompt_cache_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<String>,
    /// Up to 16 string key-value pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, Value>>,
    /// Whether OpenAI stores the response for later retrieval (default `true` there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
    /// A stored conversation id or `{id}` object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Value>,
    /// A stored prompt template reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    /// `auto` or `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// Fields we do not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ResponsesRequest {
    /// Whether the client asked for an SSE stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }
}

/// `stream_options` of a Responses request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponsesStreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_obfuscation: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `input`: a string or a list of items. Decoded by hand so a malformed item
/// reports what is wrong with it (an untagged enum would only say that
/// nothing matched).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Input {
    Text(String),
    Items(Vec<InputItem>),
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Input::Text(s)),
            v @ Value::Array(_) => serde_json::from_value(v)
                .map(Input::Items)
                .map_err(D::Error::custom),
            _ => Err(D::Error::custom(
                "`input` must be a string or a list of items",
            )),
        }
    }
}

/// One item of `input`, by its `type`. A message may omit `type`
/// ("easy input message"), so this enum is decoded by hand.
#[derive(Debug, Clone, PartialEq)]
pub enum InputItem {
    /// `{role, content}` with or without `type: "message"`; also an earlier
    /// response's output message (`id`, `status` set).
    Message(InputMessage),
    /// `type: "function_call"`: a call the model made earlier.
    FunctionCall(FunctionCallItem),
    /// `type: "function_call_output"`: the client's result for a call.
    FunctionCallOutput(FunctionCallOutputItem),
    /// `type: "reasoning"`: an earlier response's reasoning item.
    Reasoning(ReasoningItem),
    /// Any other item (`item_reference`, built-in tool calls, ...), verbatim.
    Other(Value),
}

impl InputItem {
    /// The item's `type` (`message` for a message without one).
    pub fn kind(&self) -> &str {
        match self {
            InputItem::Message(_) => "message",
            InputItem::FunctionCall(_) => "function_call",
            InputItem::FunctionCallOutput(_) => "function_call_output",
            InputItem::Reasoning(_) => "reasoning",
            InputItem::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for InputItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let kind = v.get("type").and_then(Value::as_str);
        Ok(match kind {
            Some("message") => {
                InputItem::Message(serde_json::from_value(v).map_err(D::Error::custom)?)
            }
            None if v.get("role").is_some() => {
                InputItem::Message(serde_json::from_value(v).map_err(D::Error::custom)?)
            }
            Some("function_call") => {
                InputItem::FunctionCall(serde_json::from_value(v).map_err(D::Error::custom)?)
            }
            Some("function_call_output") => {
                InputItem::FunctionCallOutput(serde_json::from_value(v).map_err(D::Error::custom)?)
            }
            Some("reasoning") => {
                InputItem::Reasoning(serde_json::from_value(v).map_err(D::Error::custom)?)
            }
            _ => InputItem::Other(v),
        })
    }
}

/// Serializes `inner` with a leading `type` member.
#[derive(Serialize)]
struct Tagged<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(flatten)]
    inner: &'a T,
}

impl Serialize for InputItem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            InputItem::Message(m) => m.serialize(s),
            InputItem::FunctionCall(c) => Tagged {
                kind: "function_call",
                inner: c,
            }
            .serialize(s),
            InputItem::FunctionCallOutput(o) => Tagged {
                kind: "function_call_output",
                inner: o,
            }
            .serialize(s),
            InputItem::Reasoning(r) => Tagged {
                kind: "reasoning",
                inner: r,
            }
            .serialize(s),
            InputItem::Other(v) => v.serialize(s),
        }
    }
}

/// A message input item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputMessage {
    /// `"message"` when the client wrote it; kept so the item round-trips.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `user`, `assistant`, `system` or `developer`.
    pub role: String,
    pub content: InputContent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Message content: a string or a list of parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InputContent {
    Text(String),
    Parts(Vec<InputPart>),
}

/// One content part of an input message, by its `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputPart {
    /// `{type: input_text, text}`.
    InputText(TextPart),
    /// `{type: input_image, image_url | file_id, detail}`.
    InputImage(ImagePart),
    /// `{type: output_text, text, annotations}` in an earlier assistant message.
    OutputText(TextPart),
    /// `{type: refusal, refusal}` in an earlier assistant message.
    Refusal(RefusalPart),
    /// `input_file`, `input_audio`, ... verbatim.
    #[serde(untagged)]
    Other(Value),
}

/// A text part (`input_text` or `output_text`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextPart {
    pub text: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An `input_image` part: a URL (`https:` or `data:`) or an uploaded file id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagePart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// `high`, `low` or `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `refusal` part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusalPart {
    pub refusal: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `function_call` item (in `input`, and in `output`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallItem {
    /// The item id (`fc_…`); optional in input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The id the client answers with in `function_call_output.call_id`.
    pub call_id: String,
    pub name: String,
    /// JSON-encoded arguments.
    pub arguments: String,
    /// `in_progress`, `completed` or `incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `function_call_output` input item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallOutputItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub call_id: String,
    pub output: FunctionOutput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A function call's output: a string or a list of input parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FunctionOutput {
    Text(String),
    Parts(Vec<InputPart>),
}

/// A `reasoning` item (in `input`, and in `output`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReasoningItem {
    pub id: String,
    pub summary: Vec<SummaryPart>,
    /// Raw reasoning text parts (`reasoning_text`), when the model exposes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<Value>>,
    /// Opaque reasoning state only OpenAI can read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `{type: summary_text, text}`: one part of a reasoning summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

impl SummaryPart {
    /// A `summary_text` part.
    pub fn text(text: impl Into<String>) -> SummaryPart {
        SummaryPart {
            kind: "summary_text".into(),
            text: text.into(),
        }
    }
}

/// A tool the model may use. Function tools are flat (`{type: function,
/// name, parameters}`), unlike chat's nested `function` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponsesTool {
    Function(FunctionTool),
    /// Built-in tools (`web_search`, `file_search`, `computer_use_preview`,
    /// `mcp`, `custom`, ...), verbatim.
    #[serde(untagged)]
    Other(Value),
}

impl ResponsesTool {
    /// The tool's `type`.
    pub fn kind(&self) -> &str {
        match self {
            ResponsesTool::Function(_) => "function",
            ResponsesTool::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or("unknown"),
        }
    }
}

/// A function tool definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionTool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments (required on the wire, may be `null`).
    #[serde(default)]
    pub parameters: Option<Value>,
    /// Strict schema adherence; the Responses API defaults it to `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `tool_choice`: `none | auto | required` or an object
/// (`{type: function, name}`, `{type: allowed_tools, ...}`, `{type: web_search_preview}`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResponsesToolChoice {
    Mode(String),
    Object(ToolChoiceObject),
}

/// An object `tool_choice`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolChoiceObject {
    #[serde(rename = "type")]
    pub kind: String,
    /// The function's name, for `type: function`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `text`: output format and verbosity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<TextFormat>,
    /// `low`, `medium` (the default) or `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `text.format`: `{type: text}`, `{type: json_object}` or
/// `{type: json_schema, name, schema, description, strict}` (flat, unlike
/// chat's nested `json_schema`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextFormat {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `reasoning`: effort and summary settings. Both keys are always written
/// (as `null` when unset), the way the API echoes them in a response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReasoningConfig {
    /// `none`, `minimal`, `low`, `medium`, `high`, ...
    #[serde(default)]
    pub effort: Option<String>,
    /// `auto`, `concise` or `detailed`.
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `response` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// `resp_…`.
    pub id: String,
    /// Always `response`.
    pub object: String,
    /// Unix seconds.
    pub created_at: u64,
    /// `completed`, `failed`, `in_progress`, `cancelled`, `queued` or `incomplete`.
    pub status: String,
    #[serde(default)]
    pub background: Option<bool>,
    #[serde(default)]
    pub error: Option<ResponseError>,
    #[serde(default)]
    pub incomplete_details: Option<IncompleteDetails>,
    /// A string as requested (a list of items when it came from a stored prompt).
    #[serde(default)]
    pub instructions: Option<Value>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub max_tool_calls: Option<u32>,
    pub model: String,
    pub output: Vec<OutputItem>,
    pub parallel_tool_calls: bool,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub prompt_cache_key: Option<String>,
    #[serde(default)]
    pub reasoning: Option<ReasoningConfig>,
    #[serde(default)]
    pub safety_identifier: Option<String>,
    #[serde(default)]
    pub service_tier: Option<String>,
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub text: Option<TextConfig>,
    pub tool_choice: ResponsesToolChoice,
    pub tools: Vec<ResponsesTool>,
    #[serde(default)]
    pub top_logprobs: Option<u32>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub truncation: Option<String>,
    #[serde(default)]
    pub usage: Option<ResponseUsage>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.error`: why a response failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseError {
    /// `server_error`, `rate_limit_exceeded`, `invalid_prompt`, ...
    pub code: String,
    pub message: String,
}

/// `response.incomplete_details`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncompleteDetails {
    /// `max_output_tokens` or `content_filter`.
    pub reason: String,
}

/// Token usage of a response. `input_tokens` includes cached tokens, and
/// `output_tokens` includes reasoning tokens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseUsage {
    pub input_tokens: u64,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u64,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `usage.input_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputTokensDetails {
    pub cached_tokens: u64,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u64,
}

/// One item of `response.output`, by its `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    Message(OutputMessage),
    FunctionCall(FunctionCallItem),
    Reasoning(ReasoningItem),
    /// Built-in tool calls and later item types, verbatim.
    #[serde(untagged)]
    Other(Value),
}

/// An assistant `message` output item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputMessage {
    /// `msg_…`.
    pub id: String,
    /// `in_progress`, `completed` or `incomplete`.
    pub status: String,
    /// Always `assistant`.
    pub role: String,
    pub content: Vec<OutputContent>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One content part of an output message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputContent {
    /// Text; `annotations` is always present (empty when there are none).
    OutputText {
        text: String,
        annotations: Vec<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        logprobs: Option<Vec<Value>>,
    },
    /// The model declined.
    Refusal { refusal: String },
    #[serde(untagged)]
    Other(Value),
}

impl OutputContent {
    /// An `output_text` part with no annotations.
    pub fn text(text: impl Into<String>) -> OutputContent {
        OutputContent::OutputText {
            text: text.into(),
            annotations: vec![],
            logprobs: None,
        }
    }
}

/// The nested `error` object the live API puts on an `error` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamErrorBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub code: Option<String>,
    pub message: String,
    pub param: Option<String>,
}

/// One server-sent event of a streamed response, by its `type`. Every event
/// carries a `sequence_number`, increasing from 0 within a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ResponseStreamEvent {
    /// First event: the response, `in_progress`, with empty `output`.
    #[serde(rename = "response.created")]
    Created {
        response: Box<Response>,
        sequence_number: u64,
    },
    #[serde(rename = "response.in_progress")]
    InProgress {
        response: Box<Response>,
        sequence_number: u64,
    },
    /// Last event of a successful stream, with the full response.
    #[serde(rename = "response.completed")]
    Completed {
        response: Box<Response>,
        sequence_number: u64,
    },
    /// Last event of a stream cut short (`max_output_tokens`, `content_filter`).
    #[serde(rename = "response.incomplete")]
    Incomplete {
        response: Box<Response>,
        sequence_number: u64,
    },
    /// Last event of a stream that failed; `response.error` says why.
    #[serde(rename = "response.failed")]
    Failed {
        response: Box<Response>,
        sequence_number: u64,
    },
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded {
        output_index: u32,
        item: OutputItem,
        sequence_number: u64,
    },
    #[serde(rename = "response.output_item.done")]
    OutputItemDone {
        output_index: u32,
        item: OutputItem,
        sequence_number: u64,
    },
    #[serde(rename = "response.content_part.added")]
    ContentPartAdded {
        item_id: String,
        output_index: u32,
        content_index: u32,
        part: OutputContent,
        sequence_number: u64,
    },
    #[serde(rename = "response.content_part.done")]
    ContentPartDone {
        item_id: String,
        output_index: u32,
        content_index: u32,
        part: OutputContent,
        sequence_number: u64,
    },
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta {
        item_id: String,
        output_index: u32,
        content_index: u32,
        delta: String,
        #[serde(default)]
        logprobs: Vec<Value>,
        sequence_number: u64,
    },
    #[serde(rename = "response.output_text.done")]
    OutputTextDone {
        item_id: String,
        output_index: u32,
        content_index: u32,
        text: String,
        #[serde(default)]
        logprobs: Vec<Value>,
        sequence_number: u64,
    },
    #[serde(rename = "response.refusal.delta")]
    RefusalDelta {
        item_id: String,
        output_index: u32,
        content_index: u32,
        delta: String,
        sequence_number: u64,
    },
    #[serde(rename = "response.refusal.done")]
    RefusalDone {
        item_id: String,
        output_index: u32,
        content_index: u32,
        refusal: String,
        sequence_number: u64,
    },
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta {
        item_id: String,
        output_index: u32,
        delta: String,
        sequence_number: u64,
    },
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone {
        item_id: String,
        output_index: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        arguments: String,
        sequence_number: u64,
    },
    #[serde(rename = "response.reasoning_summary_part.added")]
    ReasoningSummaryPartAdded {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        part: SummaryPart,
        sequence_number: u64,
    },
    #[serde(rename = "response.reasoning_summary_part.done")]
    ReasoningSummaryPartDone {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        part: SummaryPart,
        sequence_number: u64,
    },
    #[serde(rename = "response.reasoning_summary_text.delta")]
    ReasoningSummaryTextDelta {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        delta: String,
        sequence_number: u64,
    },
    #[serde(rename = "response.reasoning_summary_text.done")]
    ReasoningSummaryTextDone {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        text: String,
        sequence_number: u64,
    },
    /// A stream-level error. The reference documents `code`, `message` and
    /// `param` at the top level; the live API nests them under `error`
    /// (openai/openai-dotnet#881), which is what the official Python SDK
    /// looks for to raise. Writers should fill both.
    #[serde(rename = "error")]
    Error {
        code: Option<String>,
        message: String,
        param: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<StreamErrorBody>,
        sequence_number: u64,
    },
    /// Event types not modelled here, verbatim.
    #[serde(untagged)]
    Other(Value),
}

impl ResponseStreamEvent {
    /// The event's `type`, which is also its SSE `event:` name.
    pub fn event_type(&self) -> &str {
        match self {
            ResponseStreamEvent::Created { .. } => "response.created",
            ResponseStreamEvent::InProgress { .. } => "response.in_progress",
            ResponseStreamEvent::Completed { .. } => "response.completed",
            ResponseStreamEvent::Incomplete { .. } => "response.incomplete",
            ResponseStreamEvent::Failed { .. } => "response.failed",
            ResponseStreamEvent::OutputItemAdded { .. } => "response.output_item.added",
            ResponseStreamEvent::OutputItemDone { .. } => "response.output_item.done",
            ResponseStreamEvent::ContentPartAdded { .. } => "response.content_part.added",
            ResponseStreamEvent::ContentPartDone { .. } => "response.content_part.done",
            ResponseStreamEvent::OutputTextDelta { .. } => "response.output_text.delta",
            ResponseStreamEvent::OutputTextDone { .. } => "response.output_text.done",
            ResponseStreamEvent::RefusalDelta { .. } => "response.refusal.delta",
            ResponseStreamEvent::RefusalDone { .. } => "response.refusal.done",
            ResponseStreamEvent::FunctionCallArgumentsDelta { .. } => {
                "response.function_call_arguments.delta"
            }
            ResponseStreamEvent::FunctionCallArgumentsDone { .. } => {
                "response.function_call_arguments.done"
            }
            ResponseStreamEvent::ReasoningSummaryPartAdded { .. } => {
                "response.reasoning_summary_part.added"
            }
            ResponseStreamEvent::ReasoningSummaryPartDone { .. } => {
                "response.reasoning_summary_part.done"
            }
            ResponseStreamEvent::ReasoningSummaryTextDelta { .. } => {
                "response.reasoning_summary_text.delta"
            }
            ResponseStreamEvent::ReasoningSummaryTextDone { .. } => {
                "response.reasoning_summary_text.done"
            }
            ResponseStreamEvent::Error { .. } => "error",
            ResponseStreamEvent::Other(v) => {
                v.get("type").and_then(Value::as_str).unwrap_or("unknown")
            }
        }
    }

    /// The event's `sequence_number` (`None` for an unmodelled event without one).
    pub fn sequence_number(&self) -> Option<u64> {
        match self {
            ResponseStreamEvent::Created {
                sequence_number, ..
            }
            | ResponseStreamEvent::InProgress {
                sequence_number, ..
            }
            | ResponseStreamEvent::Completed {
                sequence_number, ..
            }
            | ResponseStreamEvent::Incomplete {
                sequence_number, ..
            }
            | ResponseStreamEvent::Failed {
                sequence_number, ..
            }
            | ResponseStreamEvent::OutputItemAdded {
                sequence_number, ..
            }
            | ResponseStreamEvent::OutputItemDone {
                sequence_number, ..
            }
            | ResponseStreamEvent::ContentPartAdded {
                sequence_number, ..
            }
            | ResponseStreamEvent::ContentPartDone {
                sequence_number, ..
            }
            | ResponseStreamEvent::OutputTextDelta {
                sequence_number, ..
            }
            | ResponseStreamEvent::OutputTextDone {
                sequence_number, ..
            }
            | ResponseStreamEvent::RefusalDelta {
                sequence_number, ..
            }
            | ResponseStreamEvent::RefusalDone {
                sequence_number, ..
            }
            | ResponseStreamEvent::FunctionCallArgumentsDelta {
                sequence_number, ..
            }
            | ResponseStreamEvent::FunctionCallArgumentsDone {
                sequence_number, ..
            }
            | ResponseStreamEvent::ReasoningSummaryPartAdded {
                sequence_number, ..
            }
            | ResponseStreamEvent::ReasoningSummaryPartDone {
                sequence_number, ..
            }
            | ResponseStreamEvent::ReasoningSummaryTextDelta {
                sequence_number, ..
            }
            | ResponseStreamEvent::ReasoningSummaryTextDone {
                sequence_number, ..
            }
            | ResponseStreamEvent::Error {
                sequence_number, ..
            } => Some(*sequence_number),
            ResponseStreamEvent::Other(v) => v.get("sequence_number").and_then(Value::as_u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_items_parse_with_and_without_type() {
        let raw = r#"{"model":"m","input":[
            {"role":"user","content":"hi"},
            {"type":"message","role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_image","image_url":"https://x/y.png","detail":"low"},{"type":"input_file","file_id":"file-1"}]},
            {"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},
            {"type":"function_call_output","call_id":"c1","output":"42"},
            {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"hm"}],"encrypted_content":"xyz"},
            {"type":"item_reference","id":"msg_1"}],
            "tools":[{"type":"function","name":"f","parameters":{"type":"object"}},{"type":"web_search"}],
            "brand_new":true}"#;
        let req: ResponsesRequest = serde_json::from_str(raw).unwrap();
        let Some(Input::Items(items)) = &req.input else {
            panic!("items expected");
        };
        let kinds: Vec<&str> = items.iter().map(InputItem::kind).collect();
        assert_eq!(
            kinds,
            [
                "message",
                "message",
                "function_call",
                "function_call_output",
                "reasoning",
                "item_reference"
            ]
        );
        let InputItem::Message(m) = &items[1] else {
            panic!("message expected");
        };
        let InputContent::Parts(parts) = &m.content else {
            panic!("parts expected");
        };
        assert!(matches!(parts[1], InputPart::InputImage(_)));
        assert!(matches!(parts[2], InputPart::Other(_)));
        assert_eq!(req.tools.as_ref().unwrap()[1].kind(), "web_search");
        assert!(req.extra.contains_key("brand_new"));
        // Round trip: nothing lost, typeless messages stay typeless.
        let back = serde_json::to_value(&req).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(raw).unwrap());
    }

    #[test]
    fn malformed_items_say_what_is_wrong() {
        let e = serde_json::from_str::<ResponsesRequest>(
            r#"{"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("call_id"), "{e}");
        let e = serde_json::from_str::<ResponsesRequest>(
            r#"{"model":"m","input":[{"type":"message","content":"hi"}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("role"), "{e}");
        let e = serde_json::from_str::<ResponsesRequest>(r#"{"model":"m","input":7}"#).unwrap_err();
        assert!(e.to_string().contains("string or a list"), "{e}");
    }

    #[test]
    fn stream_events_carry_their_type_and_sequence_number() {
        let ev: ResponseStreamEvent = serde_json::from_str(
            r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi","logprobs":[],"sequence_number":4}"#,
        )
        .unwrap();
        assert_eq!(ev.event_type(), "response.output_text.delta");
        assert_eq!(ev.sequence_number(), Some(4));
        let ev: ResponseStreamEvent =
            serde_json::from_str(r#"{"type":"response.brand_new","sequence_number":9}"#).unwrap();
        assert_eq!(ev.event_type(), "response.brand_new");
        assert_eq!(ev.sequence_number(), Some(9));
    }
}
