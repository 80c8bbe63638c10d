//! The Azure OpenAI side of the mock upstream:
//! `POST /openai/deployments/{deployment}/{chat/completions|completions|embeddings}?api-version=...`.
//!
//! Azure speaks the OpenAI dialect at deployment URLs. Like the real service,
//! a request needs an `api-version` query parameter (without one Azure
//! answers 404 "Resource not found") and a credential: the `api-key` header,
//! or `Authorization: Bearer` with a Microsoft Entra ID token (401 without
//! either). The deployment is in the URL, so the body needs no `model`; chat
//! bodies are otherwise checked like OpenAI's. Errors use Azure's envelope,
//! whose `code` is the status as a string. The canned replies are the
//! OpenAI ones.
//! Reference: <https://learn.microsoft.com/en-us/azure/ai-foundry/openai/reference>.

use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::{Reply, validate};

/// The operations a deployment URL serves, as their OpenAI path.
const OPERATIONS: [(&str, &str); 3] = [
    ("chat/completions", "/v1/chat/completions"),
    ("completions", "/v1/completions"),
    ("embeddings", "/v1/embeddings"),
];

/// The path of `op` (`chat/completions`, ...) on deployment `deployment`.
pub fn path(deployment: &str, op: &str) -> String {
    format!("/openai/deployments/{deployment}/{op}")
}

/// For an Azure deployment path, the OpenAI path of its operation
/// (`/v1/chat/completions`, ...), whose checks and canned replies apply.
pub(crate) fn route(path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("/openai/deployments/")?;
    let (deployment, op) = rest.split_once('/')?;
    if deployment.is_empty() {
        return None;
    }
    OPERATIONS
        .iter()
        .find(|(o, _)| *o == op)
        .map(|(_, openai)| *openai)
}

/// An error in Azure's envelope: `code` is the status as a string.
pub fn error(status: u16, message: &str) -> Reply {
    Reply::error(
        status,
        json!({"error": {"code": status.to_string(), "message": message}}),
    )
}

/// Rejects what Azure would: no `api-version` (404), no credential (401), a
/// malformed chat body (400).
pub(crate) fn invalid(
    openai_path: &str,
    headers: &HeaderMap,
    query: &str,
    body: &Value,
) -> Option<Reply> {
    let version = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("api-version="))
        .next();
    if version.is_none_or(str::is_empty) {
        return Some(error(404, "Resource not found"));
    }
    let key = headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|k| !k.is_empty());
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7);
    if !key && !bearer {
        return Some(error(
            401,
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        ));
    }
    if openai_path != "/v1/chat/completions" {
        return None;
    }
    validate::azure_chat_request(body).err().map(|m| {
        Reply::error(
            400,
            json!({"error": {"message": m, "type": "invalid_request_error", "param": null, "code": null}}),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_checks() {
        assert_eq!(
            route("/openai/deployments/gpt4o/chat/completions"),
            Some("/v1/chat/completions")
        );
        assert_eq!(
            route("/openai/deployments/e/embeddings"),
            Some("/v1/embeddings")
        );
        assert_eq!(route("/openai/deployments//chat/completions"), None);
        assert_eq!(route("/openai/deployments/x/responses"), None);
        assert_eq!(route("/v1/chat/completions"), None);
        let mut h = HeaderMap::new();
        let body = json!({"messages": [{"role": "user", "content": "hi"}]});
        let status = |r: Option<Reply>| match r {
            Some(Reply::Json { status, .. }) => status,
            _ => 0,
        };
        assert_eq!(
            status(invalid(
                "/v1/chat/completions",
                &h,
                "api-version=2024-10-21",
                &body
            )),
            401
        );
        h.insert("api-key", "k".parse().unwrap());
        assert_eq!(status(invalid("/v1/chat/completions", &h, "", &body)), 404);
        assert!(invalid("/v1/chat/completions", &h, "api-version=2024-10-21", &body).is_none());
        assert_eq!(
            status(invalid(
                "/v1/chat/completions",
                &h,
                "api-version=2024-10-21",
                &json!({"messages": []})
            )),
            400
        );
    }
}
