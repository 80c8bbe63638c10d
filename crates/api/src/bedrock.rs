//! Amazon Bedrock Converse / ConverseStream wire types.
//!
//! References:
//! - Converse: <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>
//! - ConverseStream: <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html>
//! - The Smithy model (`com.amazonaws.bedrockruntime`), which the field
//!   names below follow exactly (restJson1: members keep their names,
//!   unions are objects with exactly one member set).
//!
//! Unions (`ContentBlock`, `ToolChoice`, ...) are externally tagged enums
//! whose last arm, `Other(Value)`, keeps members added after this was
//! written, so they survive a decode/encode round trip. Structures keep an
//! `extra` map for the same reason. Blobs (`image.source.bytes`) are base64
//! strings in JSON.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Extra;

/// `POST /model/{modelId}/converse` (and `/converse-stream`) request body.
/// The model id travels in the path, not here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest {
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Vec<SystemContentBlock>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfiguration>,
    /// Model-specific parameters beyond `inferenceConfig` (a JSON document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<Value>,
    /// Structured output (`textFormat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfig>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One conversation turn (`role` is `user` or `assistant`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Vec<ContentBlock>,
}

/// `ContentBlock` union: one member per block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlock {
    Text(String),
    Image(ImageBlock),
    ToolUse(ToolUseBlock),
    ToolResult(ToolResultBlock),
    ReasoningContent(ReasoningContentBlock),
    CachePoint(CachePointBlock),
    /// Members we do not model (`document`, `video`, `guardContent`,
    /// `citationsContent`, ...), kept verbatim.
    #[serde(untagged)]
    Other(Value),
}

/// `SystemContentBlock` union.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SystemContentBlock {
    /// Must not be empty.
    Text(String),
    CachePoint(CachePointBlock),
    #[serde(untagged)]
    Other(Value),
}

/// `CachePointBlock`: a prompt-caching checkpoint after the preceding content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachePointBlock {
    /// `default` is the only documented value.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub extra: Extra,
}

impl CachePointBlock {
    /// `{"type": "default"}`.
    pub fn default_point() -> Self {
        CachePointBlock {
            kind: "default".into(),
            extra: Extra::new(),
        }
    }
}

/// `ImageBlock`: `format` is `png | jpeg | gif | webp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageBlock {
    pub format: String,
    pub source: ImageSource,
}

/// `ImageSource` union: base64 `bytes` or an `s3Location`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ImageSource {
    /// Base64 of the image bytes (a Smithy blob in JSON).
    Bytes(String),
    #[serde(untagged)]
    Other(Value),
}

/// `ToolUseBlock`: a tool call made by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlock {
    pub tool_use_id: String,
    pub name: String,
    /// A JSON document (an object for client tools).
    pub input: Value,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ToolResultBlock`: the result of a tool call, in a user turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultBlock {
    pub tool_use_id: String,
    pub content: Vec<ToolResultContentBlock>,
    /// `success | error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ToolResultContentBlock` union.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolResultContentBlock {
    Json(Value),
    Text(String),
    Image(ImageBlock),
    #[serde(untagged)]
    Other(Value),
}

/// `ReasoningContentBlock` union.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReasoningContentBlock {
    ReasoningText(ReasoningTextBlock),
    /// Encrypted reasoning (base64).
    RedactedContent(String),
    #[serde(untagged)]
    Other(Value),
}

/// `ReasoningTextBlock`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasoningTextBlock {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// `InferenceConfiguration`: the base parameters every model takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Non-empty strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
}

impl InferenceConfiguration {
    /// Whether no parameter is set (the object can be omitted).
    pub fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_none()
    }
}

/// `ToolConfiguration`: at least one tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfiguration {
    pub tools: Vec<Tool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

/// `Tool` union.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Tool {
    ToolSpec(ToolSpecification),
    CachePoint(CachePointBlock),
    #[serde(untagged)]
    Other(Value),
}

/// `ToolSpecification`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpecification {
    /// `^[a-zA-Z0-9_-]+$`, at most 64 characters.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: ToolInputSchema,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ToolInputSchema` union: a JSON schema whose top-level type is `object`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolInputSchema {
    Json(Value),
    #[serde(untagged)]
    Other(Value),
}

/// `ToolChoice` union. There is no `none` member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolChoice {
    /// `{"auto": {}}`: the model decides (the default).
    Auto(Extra),
    /// `{"any": {}}`: the model must call at least one tool.
    Any(Extra),
    /// `{"tool": {"name": ...}}`: the model must call this tool.
    Tool(SpecificToolChoice),
    #[serde(untagged)]
    Other(Value),
}

/// `SpecificToolChoice`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecificToolChoice {
    pub name: String,
}

/// `OutputConfig`: structured output for the text response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_format: Option<OutputFormat>,
}

/// `OutputFormat`: `type` is `json_schema`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFormat {
    #[serde(rename = "type")]
    pub kind: String,
    pub structure: OutputFormatStructure,
}

/// `OutputFormatStructure` union.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OutputFormatStructure {
    JsonSchema(JsonSchemaDefinition),
    #[serde(untagged)]
    Other(Value),
}

/// `JsonSchemaDefinition`: the schema is a JSON *string*, not an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaDefinition {
    pub schema: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The `Converse` response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    pub output: ConverseOutput,
    /// `end_turn | tool_use | max_tokens | stop_sequence |
    /// guardrail_intervened | content_filtered | model_context_window_exceeded`.
    pub stop_reason: String,
    #[serde(default)]
    pub usage: TokenUsage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_response_fields: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ConverseOutput` union: only `message` is defined.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConverseOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `TokenUsage`. `inputTokens` does not include the cache reads and writes,
/// which are reported separately.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input_tokens: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

// ---------------------------------------------------------------------------
// ConverseStream events: the payloads of event-stream messages, selected by
// their `:event-type` header (the member name of `ConverseStreamOutput`).
// ---------------------------------------------------------------------------

/// `messageStart`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageStartEvent {
    pub role: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `contentBlockStart`. Only tool-use blocks announce themselves; text and
/// reasoning blocks start with their first delta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStartEvent {
    pub start: ContentBlockStart,
    pub content_block_index: u32,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ContentBlockStart` union.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlockStart {
    ToolUse(ToolUseBlockStart),
    #[serde(untagged)]
    Other(Value),
}

/// `ToolUseBlockStart`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlockStart {
    pub tool_use_id: String,
    pub name: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `contentBlockDelta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDeltaEvent {
    pub delta: ContentBlockDelta,
    pub content_block_index: u32,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ContentBlockDelta` union.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlockDelta {
    Text(String),
    ToolUse(ToolUseBlockDelta),
    ReasoningContent(ReasoningContentBlockDelta),
    #[serde(untagged)]
    Other(Value),
}

/// `ToolUseBlockDelta`: a fragment of the tool input's JSON text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolUseBlockDelta {
    pub input: String,
}

/// `ReasoningContentBlockDelta` union.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReasoningContentBlockDelta {
    Text(String),
    RedactedContent(String),
    Signature(String),
    #[serde(untagged)]
    Other(Value),
}

/// `contentBlockStop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStopEvent {
    pub content_block_index: u32,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `messageStop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStopEvent {
    pub stop_reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_response_fields: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `metadata`: usage and metrics, after `messageStop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataEvent {
    #[serde(default)]
    pub usage: TokenUsage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The body of a Bedrock error (an HTTP error body or a stream exception
/// payload): `{"message": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default, alias = "Message", skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unions_are_single_member_objects() {
        let blocks = vec![
            ContentBlock::Text("hi".into()),
            ContentBlock::ToolUse(ToolUseBlock {
                tool_use_id: "t1".into(),
                name: "f".into(),
                input: json!({"a": 1}),
                extra: Extra::new(),
            }),
            ContentBlock::CachePoint(CachePointBlock::default_point()),
        ];
        assert_eq!(
            serde_json::to_value(&blocks).unwrap(),
            json!([
                {"text": "hi"},
                {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}},
                {"cachePoint": {"type": "default"}}
            ])
        );
        let choice = ToolChoice::Any(Extra::new());
        assert_eq!(serde_json::to_value(&choice).unwrap(), json!({"any": {}}));
    }

    #[test]
    fn unknown_members_survive() {
        let raw = json!({"document": {"format": "pdf", "name": "x", "source": {"bytes": "AAAA"}}});
        let b: ContentBlock = serde_json::from_value(raw.clone()).unwrap();
        assert!(matches!(b, ContentBlock::Other(_)));
        assert_eq!(serde_json::to_value(&b).unwrap(), raw);
    }

    #[test]
    fn response_parses() {
        let r: ConverseResponse = serde_json::from_value(json!({
            "output": {"message": {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "think", "signature": "sig"}}},
                {"text": "Hello"}
            ]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7},
            "metrics": {"latencyMs": 12}
        }))
        .unwrap();
        let msg = r.output.message.unwrap();
        assert!(matches!(
            &msg.content[0],
            ContentBlock::ReasoningContent(ReasoningContentBlock::ReasoningText(_))
        ));
        assert_eq!(r.usage.total_tokens, Some(7));
    }

    #[test]
    fn stream_payloads_parse_with_padding() {
        // ConverseStream payloads carry a `p` padding member; it is ignored.
        let d: ContentBlockDeltaEvent = serde_json::from_value(json!({
            "contentBlockIndex": 1,
            "delta": {"toolUse": {"input": "{\"a\":"}},
            "p": "abcdef"
        }))
        .unwrap();
        assert_eq!(d.content_block_index, 1);
        assert!(matches!(d.delta, ContentBlockDelta::ToolUse(_)));
    }
}
