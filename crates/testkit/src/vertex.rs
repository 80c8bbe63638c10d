//! The Vertex AI side of the mock upstream, and a mock Google token endpoint.
//!
//! - `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`
//!   and `:streamGenerateContent?alt=sse` answer like the Gemini routes
//!   (same validator, same canned replies);
//! - `POST .../publishers/anthropic/models/{m}:rawPredict` and
//!   `:streamRawPredict` answer like `/v1/messages`, after checking the body
//!   as Vertex wants it: `anthropic_version: "vertex-2023-10-16"` present and
//!   no `model` (it is in the URL);
//! - `POST .../publishers/anthropic/models/count-tokens:rawPredict` counts
//!   tokens (`model` in the body, with the same `anthropic_version`);
//! - every Vertex call needs `Authorization: Bearer <token>` with a token the
//!   token endpoint issued or the test accepted ([`crate::MockUpstream::accept_vertex_token`]);
//! - `POST /token` is an OAuth token endpoint: the jwt-bearer grant (the
//!   assertion's RS256 signature is verified against the test-only key, its
//!   `aud` must be this endpoint and its scope cloud-platform) or the
//!   refresh_token grant; it answers `{"access_token", "expires_in", "token_type"}`.
//!
//! References: <https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude>,
//! <https://developers.google.com/identity/protocols/oauth2/service-account#httprest>.

use axum::http::HeaderMap;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use serde_json::{Value, json};

use crate::gemini::{self, gemini_error, status_name};
use crate::{Reply, validate};

/// The throwaway RSA key the Vertex tests sign with (PKCS#8 PEM). TEST ONLY:
/// generated once with openssl, registered nowhere.
pub const TEST_ONLY_SERVICE_ACCOUNT_KEY: &str =
    include_str!("../../providers/tests/fixtures/TEST_ONLY_service_account_key.pem");

/// The Anthropic version Vertex AI wants in Claude request bodies.
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/token";

/// A service-account key file for the test-only key, whose `token_uri` is
/// `token_uri` (the mock's `{url}/token`).
pub fn service_account_json(token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "test-only-key-1",
        "private_key": TEST_ONLY_SERVICE_ACCOUNT_KEY,
        "client_email": "gateway@test-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    })
    .to_string()
}

/// A Vertex model call parsed from a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub publisher: String,
    pub model: String,
    pub stream: bool,
    pub sse: bool,
}

/// `/v1/projects/{p}/locations/{l}/publishers/{pub}/models/{model}:{method}`.
pub(crate) fn route(path: &str, query: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v1/projects/")?;
    let parts: Vec<&str> = rest.splitn(7, '/').collect();
    let [
        _project,
        "locations",
        _location,
        "publishers",
        publisher,
        "models",
        tail,
    ] = parts[..]
    else {
        return None;
    };
    let (model, method) = tail.rsplit_once(':')?;
    let stream = match (publisher, method) {
        ("google", "generateContent") | ("anthropic", "rawPredict") => false,
        ("google", "streamGenerateContent") | ("anthropic", "streamRawPredict") => true,
        _ => return None,
    };
    (!model.is_empty() && !model.contains('/')).then(|| Route {
        publisher: publisher.to_owned(),
        model: model.to_owned(),
        stream,
        sse: query.split('&').any(|kv| kv == "alt=sse"),
    })
}

fn err(code: u16, msg: &str) -> Reply {
    Reply::error(code, gemini_error(code, status_name(code), msg))
}

/// Vertex AI's 401 for a request without a bearer token it issued.
pub(crate) fn unauthenticated(headers: &HeaderMap, tokens: &[String]) -> Option<Reply> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|t| tokens.iter().any(|k| k == t)) {
        return None;
    }
    Some(err(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
    ))
}

/// Rejects what Vertex AI would: no or an unknown bearer token (401), an
/// API key header, a malformed body (400).
pub(crate) fn invalid(
    route: &Route,
    headers: &HeaderMap,
    body: &Value,
    tokens: &[String],
) -> Option<Reply> {
    if let Some(reply) = unauthenticated(headers, tokens) {
        return Some(reply);
    }
    if headers.contains_key("x-goog-api-key") || headers.contains_key("x-api-key") {
        return Some(err(400, "test kit: Vertex calls carry no API key header"));
    }
    if route.publisher == "google" {
        return validate::gemini_request(body).err().map(|m| err(400, &m));
    }
    if body["anthropic_version"] != VERTEX_ANTHROPIC_VERSION {
        return Some(err(400, "anthropic_version: must be \"vertex-2023-10-16\""));
    }
    if route.model == COUNT_TOKENS {
        // Token counting names the model in the body.
        return match (body["model"].as_str(), body["messages"].as_array()) {
            (Some(m), Some(msgs)) if m.starts_with("claude") && !msgs.is_empty() => None,
            _ => Some(err(
                400,
                "count-tokens: `model` (a Claude model) and non-empty `messages` are required",
            )),
        };
    }
    if body.get("model").is_some() {
        return Some(err(
            400,
            "test kit: `model` belongs in the URL, not the body",
        ));
    }
    if body["stream"].as_bool().unwrap_or(false) != route.stream {
        return Some(err(
            400,
            "test kit: `stream` must match rawPredict / streamRawPredict",
        ));
    }
    // The Messages validator, on the body as the Anthropic API would see it.
    let mut as_messages = body.clone();
    if let Some(o) = as_messages.as_object_mut() {
        o.remove("anthropic_version");
        o.insert("model".into(), json!(route.model));
    }
    validate::anthropic_request(&as_messages).err().map(|m| {
        Reply::error(
            400,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": m}}),
        )
    })
}

/// The model id Vertex AI counts Claude tokens at
/// (`.../publishers/anthropic/models/count-tokens:rawPredict`).
pub const COUNT_TOKENS: &str = "count-tokens";

/// The canned answer for a valid request.
pub(crate) fn default_reply(route: &Route, body: &Value) -> Reply {
    if route.model == COUNT_TOKENS {
        // About four characters a token, like the real tokenizer's order.
        let chars = body["messages"].to_string().len() + body["system"].to_string().len();
        return Reply::json(json!({ "input_tokens": chars.div_ceil(4) }));
    }
    if route.publisher == "google" {
        let g = gemini::Route {
            model: route.model.clone(),
            stream: route.stream,
            sse: route.sse,
        };
        return gemini::default_reply(&g, body);
    }
    crate::default_reply("/v1/messages", body)
}

fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let std: String = body
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .filter(|c| *c != '=')
        .collect();
    b64url_decode(&std).unwrap_or_default()
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (unescape(k), unescape(v)))
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
                continue;
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks a token request; `Ok` means a token may be issued. `endpoint` is
/// the URL the assertion's `aud` must name.
pub(crate) fn check_token_request(body: &[u8], endpoint: &str) -> Result<(), String> {
    let f = form(body);
    let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match get("grant_type") {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let jwt = get("assertion").ok_or("assertion missing")?;
            let parts: Vec<&str> = jwt.split('.').collect();
            let [h, c, s] = parts[..] else {
                return Err("assertion is not a JWT".into());
            };
            let header: Value = serde_json::from_slice(&b64url_decode(h).ok_or("bad header")?)
                .map_err(|_| "bad header")?;
            let claims: Value = serde_json::from_slice(&b64url_decode(c).ok_or("bad claims")?)
                .map_err(|_| "bad claims")?;
            if header["alg"] != "RS256" {
                return Err(format!("alg {} is not RS256", header["alg"]));
            }
            if claims["aud"] != endpoint {
                return Err(format!("aud {} is not {endpoint}", claims["aud"]));
            }
            if claims["scope"] != "https://www.googleapis.com/auth/cloud-platform" {
                return Err("scope is not cloud-platform".into());
            }
            let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
            if !matches!((iat, exp), (Some(i), Some(e)) if e > i && e - i <= 3600) {
                return Err("iat/exp missing or lifetime over an hour".into());
            }
            let key = RsaKeyPair::from_pkcs8(&pem_der(TEST_ONLY_SERVICE_ACCOUNT_KEY))
                .map_err(|_| "test key unusable")?;
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public().as_ref())
                .verify(
                    format!("{h}.{c}").as_bytes(),
                    &b64url_decode(s).ok_or("bad signature encoding")?,
                )
                .map_err(|_| "invalid JWT signature".to_owned())
        }
        Some("refresh_token") => {
            match (get("client_id"), get("client_secret"), get("refresh_token")) {
                (Some(_), Some(_), Some(_)) => Ok(()),
                _ => Err("client_id, client_secret and refresh_token are required".into()),
            }
        }
        other => Err(format!("unsupported grant_type {other:?}")),
    }
}

// ---------------------------------------------------------------------------
// Workload identity federation: Google's STS and service account
// impersonation, and a subject token URL
// ---------------------------------------------------------------------------

/// Google STS's token-exchange path on the mock (an `external_account`
/// file's `token_url` is `{url}/google-sts/v1/token`).
pub const GOOGLE_STS_PATH: &str = "/google-sts/v1/token";
/// The prefix of impersonation URLs on the mock:
/// `{url}/iam/v1/projects/-/serviceAccounts/{email}:generateAccessToken`.
pub const IMPERSONATION_PREFIX: &str = "/iam/v1/projects/-/serviceAccounts/";
/// A subject token URL (Azure managed identity style: it needs
/// `Metadata: True` and answers `{"access_token": ...}`).
pub const SUBJECT_TOKEN_PATH: &str = "/subject-token";

fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::error(
        status,
        json!({"error": error, "error_description": description}),
    )
}

/// The exchange as Google's STS checks it (RFC 8693): the grant, the
/// requested type, the scope, the audience, and a subject token it can
/// verify — one the test accepted, or for AWS a `GetCallerIdentity` request
/// signed by credentials the mock knows for that audience.
pub(crate) fn google_sts(
    form: &[(String, String)],
    accepted: &[String],
    known: &crate::bedrock::Known,
    now: u64,
) -> Result<(), Reply> {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("grant_type") != Some("urn:ietf:params:oauth:grant-type:token-exchange") {
        return Err(oauth_error(
            400,
            "unsupported_grant_type",
            "grant_type must be token-exchange",
        ));
    }
    if get("requested_token_type") != Some("urn:ietf:params:oauth:token-type:access_token") {
        return Err(oauth_error(
            400,
            "invalid_request",
            "requested_token_type must be access_token",
        ));
    }
    if get("scope").is_none_or(|s| !s.split(' ').any(|s| s == CLOUD_PLATFORM)) {
        return Err(oauth_error(
            400,
            "invalid_scope",
            "the cloud-platform scope is required",
        ));
    }
    let audience = get("audience").unwrap_or("");
    if !audience.starts_with("//iam.googleapis.com/") {
        return Err(oauth_error(
            400,
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid.",
        ));
    }
    let token = get("subject_token").unwrap_or("");
    match get("subject_token_type") {
        Some("urn:ietf:params:aws:token-type:aws4_request") => {
            verify_aws_subject(token, audience, known, now)
                .map_err(|m| oauth_error(400, "invalid_grant", &m))
        }
        Some(
            "urn:ietf:params:oauth:token-type:jwt"
            | "urn:ietf:params:oauth:token-type:id_token"
            | "urn:ietf:params:oauth:token-type:saml2",
        ) => {
            if accepted.iter().any(|t| t == token) {
                Ok(())
            } else {
                Err(oauth_error(
                    400,
                    "invalid_grant",
                    "The subject token could not be verified.",
                ))
            }
        }
        _ => Err(oauth_error(
            400,
            "invalid_request",
            "unsupported subject_token_type",
        )),
    }
}

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

fn verify_aws_subject(
    token: &str,
    audience: &str,
    known: &crate::bedrock::Known,
    now: u64,
) -> Result<(), String> {
    let json = crate::aws::parse_form(format!("t={token}").as_bytes())
        .pop()
        .map(|(_, v)| v)
        .unwrap_or_default();
    let v: Value =
        serde_json::from_str(&json).map_err(|_| "subject token is not JSON".to_owned())?;
    if v["method"] != "POST" {
        return Err("the AWS request must be a POST".into());
    }
    let url = v["url"].as_str().unwrap_or("");
    if !url.contains("Action=GetCallerIdentity") {
        return Err("the AWS request must be GetCallerIdentity".into());
    }
    let mut headers = HeaderMap::new();
    for h in v["headers"].as_array().cloned().unwrap_or_default() {
        let (Some(k), Some(val)) = (h["key"].as_str(), h["value"].as_str()) else {
            return Err("malformed header in the AWS request".into());
        };
        let name = axum::http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|_| "bad header name".to_owned())?;
        let value =
            axum::http::HeaderValue::from_str(val).map_err(|_| "bad header value".to_owned())?;
        headers.insert(name, value);
    }
    if headers
        .get("x-goog-cloud-target-resource")
        .and_then(|v| v.to_str().ok())
        != Some(audience)
    {
        return Err("x-goog-cloud-target-resource must be the audience".into());
    }
    let path_and_query = url
        .split_once("://")
        .map(|(_, r)| &r[r.find(['/', '?']).unwrap_or(r.len())..])
        .unwrap_or("");
    crate::bedrock::authenticate_for(known, &headers, "POST", path_and_query, b"", now, "sts")
        .map(|_| ())
        .map_err(|_| "AWS rejected the signed GetCallerIdentity request".into())
}

/// The impersonation call: the bearer must be a token STS issued, the body
/// `{"scope": [...cloud-platform...], "lifetime": "<n>s"}`.
pub(crate) fn impersonation(
    headers: &HeaderMap,
    body: &Value,
    sts_tokens: &[String],
) -> Result<u64, Reply> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|b| sts_tokens.iter().any(|t| t == b)) {
        return Err(err(401, "Request had invalid authentication credentials."));
    }
    let scopes_ok = body["scope"]
        .as_array()
        .is_some_and(|s| s.iter().any(|x| x == CLOUD_PLATFORM));
    let lifetime = body["lifetime"]
        .as_str()
        .and_then(|l| l.strip_suffix('s'))
        .and_then(|n| n.parse::<u64>().ok());
    match (scopes_ok, lifetime) {
        (true, Some(l)) if (1..=43_200).contains(&l) => Ok(l),
        _ => Err(err(
            400,
            "scope (with cloud-platform) and lifetime (\"<n>s\") are required",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = route(
            "/v1/projects/p/locations/us-central1/publishers/anthropic/models/claude-x@1:streamRawPredict",
            "",
        )
        .unwrap();
        assert_eq!(
            (r.publisher.as_str(), r.model.as_str(), r.stream),
            ("anthropic", "claude-x@1", true)
        );
        let r = route(
            "/v1/projects/p/locations/global/publishers/google/models/gemini-2.5-flash:streamGenerateContent",
            "alt=sse",
        )
        .unwrap();
        assert!(r.stream && r.sse);
        assert!(
            route(
                "/v1/projects/p/locations/l/publishers/google/models/m:rawPredict",
                ""
            )
            .is_none()
        );
        assert!(route("/v1beta/models/m:generateContent", "").is_none());
        assert_eq!(unescape("a%3Ab+c"), "a:b c");
    }
}
