//! OpenAI embeddings requests for providers that embed in their own
//! format, and their answers back as an OpenAI `list` of `embedding`s.
//!
//! - Gemini API: `POST /v1beta/models/{model}:batchEmbedContents`,
//!   `{"requests": [{"model": "models/{m}", "content": {"parts": [{"text"}]},
//!   "outputDimensionality"}]}` → `{"embeddings": [{"values": [...]}]}`
//!   (<https://ai.google.dev/api/embeddings#method:-models.batchembedcontents>).
//! - Vertex AI: `POST .../publishers/google/models/{m}:predict`,
//!   `{"instances": [{"content"}], "parameters": {"outputDimensionality"}}` →
//!   `{"predictions": [{"embeddings": {"values", "statistics": {"token_count"}}}]}`
//!   (<https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api>).
//! - Amazon Bedrock (`InvokeModel`, `POST /model/{id}/invoke`): Titan Text
//!   Embeddings take one `inputText` a call (`{"embedding", "inputTextTokenCount"}`);
//!   Cohere Embed takes `texts` (`{"embeddings": [[...]]}`).
//!
//! Inputs must be text: token-id arrays (which only OpenAI's tokenizers can
//! read) are refused by name. `dimensions` becomes the provider's output
//! size; `encoding_format: base64` is honoured on the way back (the OpenAI
//! SDKs ask for it by default). Usage is the provider's token count where it
//! reports one, else the gateway's estimate (flagged).

use modelgate_api::openai::{EmbeddingInput, EmbeddingsRequest};
use modelgate_core::{Usage, estimate_tokens};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::CodecError;

/// The request's inputs as text, or a 400 naming `input`.
pub fn texts(req: &EmbeddingsRequest) -> Result<Vec<&str>, CodecError> {
    let texts: Vec<&str> = match &req.input {
        EmbeddingInput::One(s) => vec![s.as_str()],
        EmbeddingInput::Many(v) => v.iter().map(String::as_str).collect(),
        EmbeddingInput::Tokens(_) | EmbeddingInput::ManyTokens(_) => {
            return Err(CodecError::new(
                "input",
                "token-id arrays can only be embedded by OpenAI-tokenizer models; send text",
            ));
        }
    };
    if texts.is_empty() {
        return Err(CodecError::new("input", "at least one input is required"));
    }
    Ok(texts)
}

/// Gemini `batchEmbedContents` body.
pub fn gemini_request(req: &EmbeddingsRequest, model: &str) -> Result<Value, CodecError> {
    let name = if model.contains('/') {
        model.to_owned()
    } else {
        format!("models/{model}")
    };
    let requests: Vec<Value> = texts(req)?
        .into_iter()
        .map(|t| {
            let mut r = json!({"model": name, "content": {"parts": [{"text": t}]}});
            if let Some(d) = req.dimensions {
                r["outputDimensionality"] = json!(d);
            }
            r
        })
        .collect();
    Ok(json!({ "requests": requests }))
}

/// The vectors of a `batchEmbedContents` reply.
pub fn gemini_response(body: &[u8]) -> Result<Vec<Vec<f32>>, String> {
    #[derive(Deserialize)]
    struct Reply {
        #[serde(default)]
        embeddings: Vec<Values>,
    }
    #[derive(Deserialize)]
    struct Values {
        values: Vec<f32>,
    }
    let r: Reply = serde_json::from_slice(body)
        .map_err(|_| "the reply is not a batchEmbedContents response".to_owned())?;
    Ok(r.embeddings.into_iter().map(|e| e.values).collect())
}

/// Vertex AI `:predict` body for text embedding models.
pub fn vertex_request(req: &EmbeddingsRequest) -> Result<Value, CodecError> {
    let instances: Vec<Value> = texts(req)?
        .into_iter()
        .map(|t| json!({ "content": t }))
        .collect();
    let mut body = json!({ "instances": instances });
    if let Some(d) = req.dimensions {
        body["parameters"] = json!({ "outputDimensionality": d });
    }
    Ok(body)
}

/// The vectors and the summed token count of a Vertex `:predict` reply.
pub fn vertex_response(body: &[u8]) -> Result<(Vec<Vec<f32>>, Option<u64>), String> {
    #[derive(Deserialize)]
    struct Reply {
        #[serde(default)]
        predictions: Vec<Prediction>,
    }
    #[derive(Deserialize)]
    struct Prediction {
        embeddings: Embedding,
    }
    #[derive(Deserialize)]
    struct Embedding {
        values: Vec<f32>,
        #[serde(default)]
        statistics: Option<Stats>,
    }
    #[derive(Deserialize)]
    struct Stats {
        token_count: Option<f64>,
    }
    let r: Reply = serde_json::from_slice(body)
        .map_err(|_| "the reply is not a text-embedding prediction".to_owned())?;
    let mut tokens = Some(0u64);
    let vectors = r
        .predictions
        .into_iter()
        .map(|p| {
            let n = p.embeddings.statistics.and_then(|s| s.token_count);
            tokens = match (tokens, n) {
                (Some(t), Some(n)) if n >= 0.0 => Some(t + n as u64),
                _ => None,
            };
            p.embeddings.values
        })
        .collect();
    Ok((vectors, tokens))
}

/// Which Bedrock embedding family a model id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BedrockFamily {
    /// `amazon.titan-embed-*`: one `inputText` a call.
    Titan,
    /// `cohere.embed-*`: `texts`, many a call.
    Cohere,
}

impl BedrockFamily {
    /// The family of `model_id` (inference-profile prefixes allowed).
    pub fn of(model_id: &str) -> Option<BedrockFamily> {
        let id = model_id.rsplit('/').next().unwrap_or(model_id);
        if id.contains("amazon.titan-embed") {
            Some(BedrockFamily::Titan)
        } else if id.contains("cohere.embed") {
            Some(BedrockFamily::Cohere)
        } else {
            None
        }
    }
}

/// The `InvokeModel` bodies for `req` (Titan: one per input; Cohere: one).
pub fn bedrock_requests(
    req: &EmbeddingsRequest,
    family: BedrockFamily,
) -> Result<Vec<Value>, CodecError> {
    let texts = texts(req)?;
    Ok(match family {
        BedrockFamily::Titan => texts
            .into_iter()
            .map(|t| {
                let mut b = json!({ "inputText": t });
                if let Some(d) = req.dimensions {
                    b["dimensions"] = json!(d);
                }
                b
            })
            .collect(),
        BedrockFamily::Cohere => {
            if req.dimensions.is_some() {
                return Err(CodecError::new(
                    "dimensions",
                    "Cohere Embed on Bedrock has a fixed output size",
                ));
            }
            vec![json!({ "texts": texts, "input_type": "search_document" })]
        }
    })
}

/// The vectors and token count of one `InvokeModel` reply.
pub fn bedrock_response(
    body: &[u8],
    family: BedrockFamily,
) -> Result<(Vec<Vec<f32>>, Option<u64>), String> {
    match family {
        BedrockFamily::Titan => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Reply {
                embedding: Vec<f32>,
                input_text_token_count: Option<u64>,
            }
            let r: Reply = serde_json::from_slice(body)
                .map_err(|_| "the reply is not a Titan embedding".to_owned())?;
            Ok((vec![r.embedding], r.input_text_token_count))
        }
        BedrockFamily::Cohere => {
            #[derive(Deserialize)]
            struct Reply {
                embeddings: Vec<Vec<f32>>,
            }
            let r: Reply = serde_json::from_slice(body)
                .map_err(|_| "the reply is not a Cohere embedding".to_owned())?;
            Ok((r.embeddings, None))
        }
    }
}

/// The OpenAI `list` for `vectors`: floats, or base64 of little-endian
/// `f32`s when the request asked for `encoding_format: base64`. Returns the
/// body and the usage (`tokens` when the provider counted, else the
/// estimate of the inputs, flagged).
pub fn openai_list(
    req: &EmbeddingsRequest,
    vectors: Vec<Vec<f32>>,
    model: &str,
    tokens: Option<u64>,
) -> Result<(Vec<u8>, Usage), String> {
    let expected = match &req.input {
        EmbeddingInput::One(_) | EmbeddingInput::Tokens(_) => 1,
        EmbeddingInput::Many(v) => v.len(),
        EmbeddingInput::ManyTokens(v) => v.len(),
    };
    if vectors.len() != expected {
        return Err(format!(
            "the provider returned {} embeddings for {expected} inputs",
            vectors.len()
        ));
    }
    let base64 = req.encoding_format.as_deref() == Some("base64");
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                Value::String(base64_f32(v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let estimated = tokens.is_none();
    let n = tokens.unwrap_or_else(|| {
        estimate_tokens(texts(req).map_or(0, |t| t.iter().map(|s| s.len()).sum())).max(1)
    });
    let body = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": n, "total_tokens": n},
    });
    let usage = Usage {
        input_tokens: n,
        estimated,
        ..Usage::default()
    };
    serde_json::to_vec(&body)
        .map(|b| (b, usage))
        .map_err(|e| e.to_string())
}

/// Standard base64 of the vector's little-endian `f32` bytes (what OpenAI's
/// `encoding_format: base64` carries).
pub fn base64_f32(v: &[f32]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(c.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(c.get(2).copied().unwrap_or(0));
        out.push(char::from(T[(n >> 18) as usize & 63]));
        out.push(char::from(T[(n >> 12) as usize & 63]));
        out.push(if c.len() > 1 {
            char::from(T[(n >> 6) as usize & 63])
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            char::from(T[n as usize & 63])
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(v: Value) -> EmbeddingsRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn gemini_batches_every_input_with_its_dimensions() {
        let r = req(json!({"model": "m", "input": ["a", "b"], "dimensions": 256}));
        assert_eq!(
            gemini_request(&r, "gemini-embedding-001").unwrap(),
            json!({"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 256},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 256}
            ]})
        );
        let v = gemini_response(br#"{"embeddings":[{"values":[0.5,-1]},{"values":[0.25,0]}]}"#)
            .unwrap();
        assert_eq!(v, vec![vec![0.5, -1.0], vec![0.25, 0.0]]);
        let e = gemini_request(&req(json!({"model": "m", "input": [1, 2]})), "x").unwrap_err();
        assert_eq!(e.param, "input");
    }

    #[test]
    fn vertex_predicts_instances_and_counts_tokens() {
        let r = req(json!({"model": "m", "input": "hello", "dimensions": 64}));
        assert_eq!(
            vertex_request(&r).unwrap(),
            json!({"instances": [{"content": "hello"}], "parameters": {"outputDimensionality": 64}})
        );
        let (v, t) = vertex_response(
            br#"{"predictions":[{"embeddings":{"values":[1,2],"statistics":{"token_count":3,"truncated":false}}}]}"#,
        )
        .unwrap();
        assert_eq!((v, t), (vec![vec![1.0, 2.0]], Some(3)));
    }

    #[test]
    fn bedrock_families() {
        assert_eq!(
            BedrockFamily::of("amazon.titan-embed-text-v2:0"),
            Some(BedrockFamily::Titan)
        );
        assert_eq!(
            BedrockFamily::of("cohere.embed-english-v3"),
            Some(BedrockFamily::Cohere)
        );
        assert_eq!(BedrockFamily::of("amazon.nova-pro-v1:0"), None);
        let r = req(json!({"model": "m", "input": ["a", "b"], "dimensions": 512}));
        assert_eq!(
            bedrock_requests(&r, BedrockFamily::Titan).unwrap(),
            vec![
                json!({"inputText": "a", "dimensions": 512}),
                json!({"inputText": "b", "dimensions": 512})
            ]
        );
        assert_eq!(
            bedrock_requests(&r, BedrockFamily::Cohere)
                .unwrap_err()
                .param,
            "dimensions"
        );
        let (v, t) = bedrock_response(
            br#"{"embedding":[0.1,0.2],"inputTextTokenCount":4}"#,
            BedrockFamily::Titan,
        )
        .unwrap();
        assert_eq!((v.len(), t), (1, Some(4)));
    }

    #[test]
    fn openai_lists_floats_or_base64() {
        let r = req(json!({"model": "m", "input": ["a", "b"], "encoding_format": "base64"}));
        let (body, usage) =
            openai_list(&r, vec![vec![1.0, 0.0], vec![0.5, 2.0]], "m", Some(7)).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["data"][0]["embedding"], base64_f32(&[1.0, 0.0]));
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(v["usage"]["prompt_tokens"], 7);
        assert!(!usage.estimated);
        let r = req(json!({"model": "m", "input": "hello world!"}));
        let (body, usage) = openai_list(&r, vec![vec![0.5]], "m", None).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["data"][0]["embedding"], json!([0.5]));
        assert_eq!((usage.input_tokens, usage.estimated), (3, true));
        assert!(
            openai_list(&r, vec![], "m", None).is_err(),
            "count mismatch"
        );
    }
}
