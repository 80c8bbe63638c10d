//! OpenAI Chat Completions <-> Anthropic Messages translation.
//!
//! INTERFACE (implementation pending): see the helper brief.

use modelgate_api::anthropic::{MessagesRequest, MessagesResponse, StreamEvent};
use modelgate_api::openai::{ChatChunk, ChatCompletion, ChatRequest};
use modelgate_core::Usage;

use crate::{CodecError, UnixSeconds, UpstreamFailure};

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
    pub request: MessagesRequest,
    pub context_json_tool: Option<String>,
}

/// Encodes an OpenAI chat request as an Anthropic Messages request.
pub fn encode_request(
    _req: &ChatRequest,
    _upstream_model: &str,
    _opts: &EncodeOptions,
) -> Result<Encoded, CodecError> {
    Err(CodecError::new("model", "anthropic codec not built yet"))
}

/// Decodes a non-streaming Anthropic response into a `chat.completion`.
pub fn decode_response(_resp: MessagesResponse, _ctx: &ResponseContext) -> (ChatCompletion, Usage) {
    unreachable_response()
}

fn unreachable_response() -> (ChatCompletion, Usage) {
    (
        ChatCompletion {
            id: String::new(),
            object: "chat.completion".into(),
            created: 0,
            model: String::new(),
            choices: vec![],
            usage: None,
            system_fingerprint: None,
            extra: Default::default(),
        },
        Usage::default(),
    )
}

/// Stateful translator of an Anthropic event stream into OpenAI chunks.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    _ctx: ResponseContext,
}

impl StreamDecoder {
    /// A decoder for one stream.
    pub fn new(ctx: ResponseContext) -> Self {
        StreamDecoder { _ctx: ctx }
    }

    /// Feeds one event; returns the chunks to send, or the failure an `error` event reports.
    pub fn on_event(&mut self, _ev: StreamEvent) -> Result<Vec<ChatChunk>, UpstreamFailure> {
        Ok(vec![])
    }

    /// Usage seen so far.
    pub fn usage(&self) -> Usage {
        Usage::default()
    }

    /// Whether `message_stop` was seen.
    pub fn is_done(&self) -> bool {
        false
    }
}

/// Classifies an Anthropic error response (status + body).
pub fn classify_error(status: u16, _body: &[u8]) -> UpstreamFailure {
    UpstreamFailure {
        class: crate::class_for_status(status),
        status: Some(status),
        message: String::new(),
        upstream_code: None,
    }
}
