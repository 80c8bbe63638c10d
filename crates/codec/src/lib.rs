//! Pure provider codecs.
//!
//! Role: everything about a provider's wire format (OpenAI, Anthropic,
//! Gemini, Bedrock) and our front-door bridges (Anthropic Messages, OpenAI
//! Responses) that needs no I/O:
//! request encoding, response and stream decoding into the OpenAI dialect,
//! SSE framing, and classification of upstream errors.
//!
//! Must not depend on: tokio, reqwest, axum, sqlx. Every function here is
//! synchronous and deterministic (time comes in as an argument), which is what
//! makes golden tests, property tests and fuzzing cheap.

pub mod anthropic;
pub mod bedrock;
mod counts;
pub mod embeddings;
pub mod eventstream;
pub mod gemini;
pub mod json;
pub mod messages;
pub mod openai;
pub mod responses;
pub mod sigv4;
pub mod sse;

use modelgate_core::ErrorClass;

/// A request the target provider cannot represent; becomes a 400 naming `param`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// The request field at fault, as a JSON path (`messages[2].content[0].image_url`).
    pub param: String,
    /// What is wrong, for the client.
    pub message: String,
}

impl CodecError {
    /// A new error naming `param`.
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        CodecError {
            param: param.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.param, self.message)
    }
}

impl std::error::Error for CodecError {}

/// An upstream failure, classified. Carries no secrets and at most a short
/// excerpt of what the upstream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamFailure {
    pub class: ErrorClass,
    /// The upstream HTTP status, when there was one.
    pub status: Option<u16>,
    /// A short, client-safe description.
    pub message: String,
    /// The upstream's own error type/code, when it gave one (`overloaded_error`, `context_length_exceeded`).
    pub upstream_code: Option<String>,
}

/// Longest excerpt of an upstream message we pass on.
pub const EXCERPT_MAX: usize = 300;

/// Cuts `s` to at most [`EXCERPT_MAX`] bytes on a char boundary.
pub fn excerpt(s: &str) -> String {
    if s.len() <= EXCERPT_MAX {
        return s.to_owned();
    }
    let mut end = EXCERPT_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Maps an upstream HTTP status to an error class.
pub fn class_for_status(status: u16) -> ErrorClass {
    match status {
        401 | 403 => ErrorClass::UpstreamAuth,
        408 => ErrorClass::UpstreamTimeout,
        429 => ErrorClass::UpstreamRateLimited,
        400..=499 => ErrorClass::UpstreamBadRequest,
        _ => ErrorClass::UpstreamError,
    }
}

/// Unix seconds; passed into decoders so they stay deterministic.
pub type UnixSeconds = u64;
