//! The Gemini API side of the mock upstream: routes, canned replies in
//! Google's documented format, and its error envelopes.
//!
//! - `POST /v1beta/models/{model}:generateContent` answers one
//!   `GenerateContentResponse`;
//! - `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` answers
//!   server-sent events, one `GenerateContentResponse` each, lines ending in
//!   CRLF as Google's are, and no end marker (the stream just closes); without
//!   `alt=sse` the same responses come as one JSON array.
//!
//! Usage is in `usageMetadata` (the last event of a stream has the totals); a
//! request that offers function declarations gets a `functionCall` whose
//! arguments fit the first declaration's schema (with a thought signature, as
//! Gemini 3 models send). References: <https://ai.google.dev/api/generate-content>,
//! <https://ai.google.dev/gemini-api/docs/function-calling>.

use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use crate::{Reply, Split, validate};

/// A Gemini method call parsed from a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// The model id (`gemini-2.5-flash`, or a tuned model's id).
    pub model: String,
    /// `streamGenerateContent`.
    pub stream: bool,
    /// `alt=sse` was asked for (server-sent events instead of a JSON array).
    pub sse: bool,
}

/// `/{version}/models/{model}:{method}` (or `tunedModels/`), for the two
/// content-generation methods.
pub(crate) fn route(path: &str, query: &str) -> Option<Route> {
    let rest = ["/v1beta/", "/v1/", "/v1alpha/"]
        .iter()
        .find_map(|v| path.strip_prefix(v))?;
    let rest = rest
        .strip_prefix("models/")
        .or_else(|| rest.strip_prefix("tunedModels/"))?;
    let (model, method) = rest.rsplit_once(':')?;
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return None,
    };
    if model.is_empty() || model.contains('/') {
        return None;
    }
    Some(Route {
        model: model.to_owned(),
        stream,
        sse: query.split('&').any(|kv| kv == "alt=sse"),
    })
}

/// The canonical status name Google pairs with an HTTP status.
pub(crate) fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// Google's error envelope (<https://ai.google.dev/gemini-api/docs/troubleshooting>).
pub fn gemini_error(code: u16, status: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status}})
}

/// A 429 body as Gemini sends it: Google's catch-all quota wording, which
/// quota was hit, and the retry delay (Gemini sends no `Retry-After` header).
pub fn gemini_rate_limit_error(retry_delay_secs: u64) -> Value {
    json!({"error": {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                "quotaValue": "10"
            }]},
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits"
            }]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{retry_delay_secs}s")}
        ]
    }})
}

/// Rejects what the Gemini API would: a missing API key (403), a bearer
/// token instead of one (401), a malformed body (400). The test kit also
/// refuses a key in the URL (`?key=`): Gemini takes it, but the gateway must
/// never put a credential in a URL.
pub(crate) fn invalid(headers: &HeaderMap, query: &str, body: &Value) -> Option<Reply> {
    let err = |code: u16, msg: &str| Reply::error(code, gemini_error(code, status_name(code), msg));
    if query.split('&').any(|kv| kv.starts_with("key=")) {
        return Some(err(
            400,
            "test kit: the API key must travel in the x-goog-api-key header, never in the URL",
        ));
    }
    if headers.contains_key("authorization") {
        return Some(err(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        ));
    }
    match headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) {
        Some(k) if !k.is_empty() => {}
        _ => {
            return Some(err(
                403,
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
            ));
        }
    }
    validate::gemini_request(body).err().map(|m| err(400, &m))
}

/// Sample arguments for the first function declaration, from its schema
/// (`parametersJsonSchema`, or `parameters` in Gemini's OpenAPI subset, whose
/// type names are upper case).
fn sample_call(body: &Value) -> Option<(String, Value)> {
    let decl = body["tools"]
        .as_array()?
        .iter()
        .filter_map(|t| t["functionDeclarations"].as_array())
        .flatten()
        .next()?;
    let name = decl["name"].as_str()?;
    let schema = if decl.get("parametersJsonSchema").is_some() {
        &decl["parametersJsonSchema"]
    } else {
        &decl["parameters"]
    };
    let mut args = Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for (k, p) in props {
            let kind = p["type"].as_str().unwrap_or("").to_ascii_lowercase();
            let v = match kind.as_str() {
                "integer" | "number" => json!(1),
                "boolean" => json!(true),
                _ => json!("mock"),
            };
            args.insert(k.clone(), v);
        }
    }
    Some((name.to_owned(), Value::Object(args)))
}

/// The canned answer for a valid request.
pub(crate) fn default_reply(route: &Route, body: &Value) -> Reply {
    let mode = body["toolConfig"]["functionCallingConfig"]["mode"]
        .as_str()
        .unwrap_or("AUTO");
    let call = if mode == "NONE" {
        None
    } else {
        sample_call(body)
    };
    let events = match (&call, route.stream) {
        (Some((name, args)), false) => {
            return Reply::json(gemini_tool_response(&route.model, name, args.clone()));
        }
        (None, false) => return Reply::json(gemini_response(&route.model, "Hello from Gemini.")),
        (Some((name, args)), true) => gemini_tool_events(&route.model, name, args.clone()),
        (None, true) => gemini_stream_events(&route.model, &["Hello", " from", " Gemini."]),
    };
    if route.sse {
        Reply::sse(events.iter().map(sse_event).collect(), Split::Events)
    } else {
        Reply::json(Value::Array(events))
    }
}

/// One server-sent event as Gemini frames it (CRLF line ends).
pub fn sse_event(response: &Value) -> String {
    format!("data: {response}\r\n\r\n")
}

fn usage(
    prompt: u64,
    candidates: Option<u64>,
    thoughts: Option<u64>,
    cached: Option<u64>,
) -> Value {
    let mut u = json!({"promptTokenCount": prompt});
    let mut total = prompt;
    if let Some(c) = candidates {
        u["candidatesTokenCount"] = json!(c);
        total += c;
    }
    if let Some(t) = thoughts {
        u["thoughtsTokenCount"] = json!(t);
        total += t;
    }
    if let Some(c) = cached {
        u["cachedContentTokenCount"] = json!(c);
    }
    u["totalTokenCount"] = json!(total);
    u["promptTokensDetails"] = json!([{"modality": "TEXT", "tokenCount": prompt}]);
    u
}

/// A canned `generateContent` answer. Usage: 10 prompt tokens (4 of them
/// cached), 5 candidate tokens, 3 thought tokens.
pub fn gemini_response(model: &str, text: &str) -> Value {
    json!({
        "candidates": [{
            "content": {"parts": [{"text": text}], "role": "model"},
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": usage(10, Some(5), Some(3), Some(4)),
        "modelVersion": model,
        "responseId": "gemini-mock-1"
    })
}

/// A canned `generateContent` answer calling `name` with `args` (with a
/// thought signature on the call, as Gemini 3 models send).
pub fn gemini_tool_response(model: &str, name: &str, args: Value) -> Value {
    json!({
        "candidates": [{
            "content": {"parts": [
                {"functionCall": {"name": name, "args": args}, "thoughtSignature": "c2lnLW1vY2stMQ=="}
            ], "role": "model"},
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": usage(40, Some(12), None, None),
        "modelVersion": model,
        "responseId": "gemini-mock-tool"
    })
}

/// The responses of a streamed text answer, one per piece: the prompt count
/// on every event, the totals and `finishReason` on the last.
pub fn gemini_stream_events(model: &str, pieces: &[&str]) -> Vec<Value> {
    let n = pieces.len();
    pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let last = i + 1 == n;
            let mut cand = json!({"content": {"parts": [{"text": p}], "role": "model"}, "index": 0});
            if last {
                cand["finishReason"] = json!("STOP");
            }
            json!({
                "candidates": [cand],
                "usageMetadata": if last { usage(10, Some(n as u64), None, None) } else { usage(10, None, None, None) },
                "modelVersion": model,
                "responseId": "gemini-mock-s"
            })
        })
        .collect()
}

/// Server-sent events for a streamed text answer (see [`gemini_stream_events`]).
pub fn gemini_stream(model: &str, pieces: &[&str]) -> Vec<String> {
    gemini_stream_events(model, pieces)
        .iter()
        .map(sse_event)
        .collect()
}

/// The responses of a streamed function call: a little text, then the call
/// (whole, as Gemini sends calls) with the finish reason and totals.
pub fn gemini_tool_events(model: &str, name: &str, args: Value) -> Vec<Value> {
    vec![
        json!({
            "candidates": [{"content": {"parts": [{"text": "Let me check."}], "role": "model"}, "index": 0}],
            "usageMetadata": usage(40, None, None, None),
            "modelVersion": model,
            "responseId": "gemini-mock-t"
        }),
        json!({
            "candidates": [{
                "content": {"parts": [
                    {"functionCall": {"name": name, "args": args}, "thoughtSignature": "c2lnLW1vY2stMQ=="}
                ], "role": "model"},
                "finishReason": "STOP",
                "index": 0
            }],
            "usageMetadata": usage(40, Some(12), Some(6), None),
            "modelVersion": model,
            "responseId": "gemini-mock-t"
        }),
    ]
}

/// Server-sent events for a streamed function call (see [`gemini_tool_events`]).
pub fn gemini_tool_stream(model: &str, name: &str, args: Value) -> Vec<String> {
    gemini_tool_events(model, name, args)
        .iter()
        .map(sse_event)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route(
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                "alt=sse"
            ),
            Some(Route {
                model: "gemini-2.5-flash".into(),
                stream: true,
                sse: true
            })
        );
        assert_eq!(
            route("/v1beta/models/gemini-2.5-flash:generateContent", "").map(|r| r.stream),
            Some(false)
        );
        assert!(route("/v1beta/models/gemini-2.5-flash:embedContent", "").is_none());
        assert!(route("/v1/chat/completions", "").is_none());
    }

    #[test]
    fn tool_arguments_fit_either_schema_form() {
        let body = json!({"tools": [{"functionDeclarations": [{"name": "f",
            "parameters": {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}, "s": {"type": "STRING"}}}}]}]});
        assert_eq!(
            sample_call(&body),
            Some(("f".into(), json!({"n": 1, "s": "mock"})))
        );
        let body = json!({"tools": [{"functionDeclarations": [{"name": "g",
            "parametersJsonSchema": {"type": "object", "properties": {"b": {"type": "boolean"}}}}]}]});
        assert_eq!(sample_call(&body), Some(("g".into(), json!({"b": true}))));
    }
}
