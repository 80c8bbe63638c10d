//! The embedding endpoints of the Gemini API, Vertex AI and Bedrock, as
//! they validate and answer, with deterministic vectors (the same text gives
//! the same vector):
//!
//! - `POST /{version}/models/{m}:batchEmbedContents` (Gemini API key in
//!   `x-goog-api-key`): every request names `models/{m}` and has text parts;
//!   `outputDimensionality` sizes the vectors (default 768 → kept at 8 here
//!   to stay small unless asked).
//! - `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:predict`
//!   (Vertex bearer token): `instances[].content`; Gemini embedding models
//!   take one instance per request, others up to 250; each prediction
//!   reports a `token_count`.
//! - `POST /model/{id}/invoke` (SigV4 or a Bedrock API key): Titan Text
//!   Embeddings take exactly `inputText` (+ `dimensions` 256/512/1024,
//!   `normalize`, `embeddingTypes`) and reject other keys; Cohere Embed takes
//!   `texts` (at most 96) and a required `input_type`.

use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::gemini::{gemini_error, status_name};
use crate::{Reply, bedrock};

/// A deterministic vector of `dims` values for `text`.
pub fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..dims)
        .map(|i| {
            h = h
                .rotate_left(7)
                .wrapping_add(i as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
            ((h >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn google_err(code: u16, msg: &str) -> Reply {
    Reply::error(code, gemini_error(code, status_name(code), msg))
}

/// `batchEmbedContents` on model `model`.
pub(crate) fn gemini(headers: &HeaderMap, model: &str, body: &Value) -> Reply {
    match headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) {
        Some(k) if !k.is_empty() => {}
        _ => {
            return google_err(
                403,
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
            );
        }
    }
    if !model.contains("embedding") {
        return google_err(
            404,
            &format!(
                "models/{model} is not found for API version v1beta, or is not supported for batchEmbedContents. Call ListModels to see the list of available models and their supported methods."
            ),
        );
    }
    let Some(requests) = body["requests"].as_array().filter(|r| !r.is_empty()) else {
        return google_err(
            400,
            "* BatchEmbedContentsRequest.requests: contents is not specified",
        );
    };
    let mut out = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        if r["model"] != format!("models/{model}") {
            return google_err(
                400,
                &format!(
                    "* BatchEmbedContentsRequest.requests[{i}].model: model must match the model in the URL"
                ),
            );
        }
        let Some(parts) = r["content"]["parts"].as_array().filter(|p| !p.is_empty()) else {
            return google_err(
                400,
                &format!(
                    "* BatchEmbedContentsRequest.requests[{i}].content: contents is not specified"
                ),
            );
        };
        let text: String = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        let dims = r["outputDimensionality"].as_u64().unwrap_or(8) as usize;
        out.push(json!({ "values": vector(&text, dims) }));
    }
    Reply::json(json!({ "embeddings": out }))
}

/// Vertex `:predict` on text embedding model `model` (auth already checked).
pub(crate) fn vertex(model: &str, body: &Value) -> Reply {
    let Some(instances) = body["instances"].as_array().filter(|i| !i.is_empty()) else {
        return google_err(400, "instances must be a non-empty list");
    };
    let limit = if model.starts_with("gemini-embedding") {
        1
    } else {
        250
    };
    if instances.len() > limit {
        return google_err(
            400,
            &format!(
                "Unable to submit request because {model} supports up to {limit} instances per request."
            ),
        );
    }
    let dims = body["parameters"]["outputDimensionality"]
        .as_u64()
        .unwrap_or(8) as usize;
    let mut predictions = Vec::new();
    for inst in instances {
        let Some(text) = inst["content"].as_str() else {
            return google_err(400, "instances[].content must be a string");
        };
        predictions.push(json!({"embeddings": {
            "values": vector(text, dims),
            "statistics": {"token_count": text.len().div_ceil(4), "truncated": false}
        }}));
    }
    Reply::json(json!({ "predictions": predictions, "metadata": {"billableCharacterCount": 1} }))
}

/// The model id of a Bedrock `InvokeModel` path (percent-decoded), if it is one.
pub(crate) fn invoke_route(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/model/")?;
    let id = rest.strip_suffix("/invoke")?;
    (!id.is_empty() && !id.contains('/')).then(|| id.replace("%3A", ":").replace("%3a", ":"))
}

/// Bedrock `InvokeModel` for embedding model `id` (auth already checked).
pub(crate) fn bedrock_invoke(id: &str, body: &Value) -> Reply {
    let validation = |m: &str| bedrock::error(400, "ValidationException", m);
    let Some(obj) = body.as_object() else {
        return validation("Malformed input request: expected type: JSONObject");
    };
    if id.contains("amazon.titan-embed") {
        let allowed = ["inputText", "dimensions", "normalize", "embeddingTypes"];
        if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return validation(&format!(
                "Malformed input request: #: extraneous key [{k}] is not permitted, please reformat your input and try again."
            ));
        }
        let Some(text) = obj.get("inputText").and_then(Value::as_str) else {
            return validation("Malformed input request: #: required key [inputText] not found");
        };
        let dims = match obj.get("dimensions") {
            None => 1024,
            Some(d) => match d.as_u64() {
                Some(n @ (256 | 512 | 1024)) => n as usize,
                _ => return validation("Malformed input request: #/dimensions: 256, 512 or 1024"),
            },
        };
        return Reply::json(json!({
            "embedding": vector(text, dims),
            "inputTextTokenCount": text.len().div_ceil(4),
        }));
    }
    if id.contains("cohere.embed") {
        let Some(texts) = obj
            .get("texts")
            .and_then(Value::as_array)
            .filter(|t| !t.is_empty())
        else {
            return validation("Malformed input request: #: required key [texts] not found");
        };
        if texts.len() > 96 {
            return validation("Malformed input request: #/texts: expected maximum item count: 96");
        }
        if obj.get("input_type").and_then(Value::as_str).is_none() {
            return validation("Malformed input request: #: required key [input_type] not found");
        }
        let embeddings: Vec<Vec<f32>> = texts
            .iter()
            .map(|t| vector(t.as_str().unwrap_or(""), 1024))
            .collect();
        return Reply::json(json!({
            "id": "mock-embed", "embeddings": embeddings, "response_type": "embeddings_floats",
            "texts": texts,
        }));
    }
    validation("The provided model identifier is invalid.")
}
