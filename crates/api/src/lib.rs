//! Wire types for the APIs Modelgate speaks, owned by us.
//!
//! Role: serde types for OpenAI Chat Completions / Embeddings / Models, the
//! Anthropic Messages API, the OpenAI Responses API, the Google Gemini API and
//! the Amazon Bedrock Converse API, exactly as they travel on the wire.
//!
//! Invariants:
//! - Every object type keeps a `#[serde(flatten)] extra` map, so fields we do not
//!   model survive a decode/encode round trip.
//! - Enums that providers may grow have an `Other(String)` arm.
//! - No dependency besides serde: no I/O, no async runtime.

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod openai;
pub mod responses;

/// A JSON object with unknown fields, kept in arrival order is not guaranteed.
pub type Extra = serde_json::Map<String, serde_json::Value>;
