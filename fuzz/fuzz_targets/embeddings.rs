//! The embedding reply decoders (Gemini `batchEmbedContents`, Vertex
//! `:predict`, Bedrock Titan and Cohere) and the OpenAI list they feed: any
//! bytes give vectors or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_api::openai::EmbeddingsRequest;
use modelgate_codec::embeddings::{
    BedrockFamily, bedrock_response, gemini_response, openai_list, vertex_response,
};

fuzz_target!(|data: &[u8]| {
    let req: EmbeddingsRequest =
        serde_json::from_str(r#"{"model":"m","input":["a","b"],"encoding_format":"base64"}"#)
            .unwrap_or_else(|_| unreachable!());
    if let Ok(v) = gemini_response(data) {
        let _ = openai_list(&req, v, "m", None);
    }
    if let Ok((v, t)) = vertex_response(data) {
        let _ = openai_list(&req, v, "m", t);
    }
    for family in [BedrockFamily::Titan, BedrockFamily::Cohere] {
        if let Ok((v, t)) = bedrock_response(data, family) {
            let _ = openai_list(&req, v, "m", t);
        }
    }
});
