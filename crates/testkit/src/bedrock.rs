//! The Bedrock Runtime side of the mock upstream: `POST /model/{modelId}/converse`
//! (JSON) and `/model/{modelId}/converse-stream` (binary
//! `application/vnd.amazon.eventstream` frames).
//!
//! Like the real service, a request is authenticated before anything else:
//! either `Authorization: Bearer <Bedrock API key>` (one of the keys the mock
//! knows, [`MOCK_BEDROCK_API_KEY`] by default) or a SigV4 `Authorization`
//! header whose format is checked strictly (`AWS4-HMAC-SHA256
//! Credential=<akid>/<yyyymmdd>/<region>/bedrock/aws4_request,
//! SignedHeaders=...host...x-amz-date..., Signature=<64 hex>`, an
//! `x-amz-date` within five minutes of now) and whose signature is
//! recomputed with the credentials the mock knows ([`MOCK_AWS_ACCESS_KEY_ID`]
//! / [`MOCK_AWS_SECRET_ACCESS_KEY`] by default). Then the body is validated
//! against the documented Converse request shape
//! (<https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>).
//! Failures answer like Bedrock: a status, `x-amzn-ErrorType` and
//! `{"message": ...}`.

use axum::http::HeaderMap;
use modelgate_codec::eventstream::{self, Header, HeaderValue, Message};
use modelgate_codec::sigv4;
use serde_json::{Value, json};

use crate::Reply;

/// The access key id the mock verifies SigV4 signatures for.
pub const MOCK_AWS_ACCESS_KEY_ID: &str = "AKIDMOCKUPSTREAM0001";
/// The secret access key that goes with [`MOCK_AWS_ACCESS_KEY_ID`].
pub const MOCK_AWS_SECRET_ACCESS_KEY: &str = "mock/Secret+Access/Key0000000000000000000";
/// The Bedrock API key the mock accepts as `Authorization: Bearer`.
pub const MOCK_BEDROCK_API_KEY: &str = "ABSKbW9jay1iZWRyb2NrLWtleQ==";

/// Credentials the mock knows.
#[derive(Debug, Clone)]
pub struct Known {
    /// (access key id, secret access key) pairs for SigV4.
    pub aws: Vec<(String, String)>,
    /// (access key id, session token) of temporary credentials: a request
    /// signed with such a key must carry its token.
    pub sessions: Vec<(String, String)>,
    /// Bedrock API keys (bearer tokens).
    pub api_keys: Vec<String>,
}

impl Default for Known {
    fn default() -> Self {
        Known {
            aws: vec![(
                MOCK_AWS_ACCESS_KEY_ID.to_owned(),
                MOCK_AWS_SECRET_ACCESS_KEY.to_owned(),
            )],
            sessions: vec![],
            api_keys: vec![MOCK_BEDROCK_API_KEY.to_owned()],
        }
    }
}

/// How a request authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// A known Bedrock API key.
    Bearer,
    /// A verified SigV4 signature (the region it was signed for).
    SigV4 { region: String },
}

/// The path the gateway posts to for `model_id` (the id percent-encoded
/// as a path label: `amazon.nova-pro-v1%3A0`).
pub fn converse_path(model_id: &str, stream: bool) -> String {
    modelgate_codec::bedrock::converse_url("http://mock", model_id, stream)
        .map(|u| u.trim_start_matches("http://mock").to_owned())
        .unwrap_or_default()
}

/// `Some(stream)` when `path` is a Converse (`false`) or ConverseStream
/// (`true`) path.
pub fn route(path: &str) -> Option<bool> {
    let rest = path.strip_prefix("/model/")?;
    let (model, op) = rest.rsplit_once('/')?;
    if model.is_empty() {
        return None;
    }
    match op {
        "converse" => Some(false),
        "converse-stream" => Some(true),
        _ => None,
    }
}

/// A Bedrock error reply: `x-amzn-ErrorType` and `{"message": ...}`.
pub fn error(status: u16, exception: &str, message: &str) -> Reply {
    Reply::Json {
        status,
        body: json!({ "message": message }),
        headers: vec![("x-amzn-errortype".into(), exception.into())],
    }
}

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks the request's credentials the way Bedrock does.
pub fn authenticate(
    known: &Known,
    headers: &HeaderMap,
    path_and_query: &str,
    body: &[u8],
    now_unix: u64,
) -> Result<Auth, Reply> {
    authenticate_for(
        known,
        headers,
        "POST",
        path_and_query,
        body,
        now_unix,
        "bedrock",
    )
    .map(|(region, _)| Auth::SigV4 { region })
    .or_else(|e| match e {
        Denied::Bearer => Ok(Auth::Bearer),
        Denied::Reply(r) => Err(r),
    })
}

/// Why [`authenticate_for`] did not return a verified signature.
pub enum Denied {
    /// A known bearer token (Bedrock API key) instead of a signature.
    Bearer,
    /// The error to answer.
    Reply(Reply),
}

impl From<Reply> for Denied {
    fn from(r: Reply) -> Denied {
        Denied::Reply(r)
    }
}

/// Verifies a SigV4 request to `service` against `known`: the region and
/// access key id it was signed with.
#[allow(clippy::too_many_arguments)]
pub fn authenticate_for(
    known: &Known,
    headers: &HeaderMap,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now_unix: u64,
    service: &str,
) -> Result<(String, String), Denied> {
    let Some(authz) = header(headers, "authorization") else {
        return Err(error(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        )
        .into());
    };
    if let Some(token) = authz.strip_prefix("Bearer ") {
        return if service == "bedrock" && known.api_keys.iter().any(|k| k == token) {
            Err(Denied::Bearer)
        } else {
            Err(error(
                403,
                "UnrecognizedClientException",
                "Invalid API Key format: Must start with pre-defined prefix",
            )
            .into())
        };
    }
    verify_sigv4(
        known,
        headers,
        authz,
        method,
        path_and_query,
        body,
        now_unix,
        service,
    )
    .map_err(Denied::Reply)
}

#[allow(clippy::too_many_arguments)]
fn verify_sigv4(
    known: &Known,
    headers: &HeaderMap,
    authz: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now_unix: u64,
    expected_service: &str,
) -> Result<(String, String), Reply> {
    let incomplete = |what: &str| {
        error(
            403,
            "IncompleteSignatureException",
            &format!("Authorization header requires {what}"),
        )
    };
    let Some(rest) = authz.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(incomplete(
            "the AWS4-HMAC-SHA256 algorithm or a Bearer token",
        ));
    };
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        } else {
            return Err(incomplete("only Credential, SignedHeaders and Signature"));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(incomplete("Credential, SignedHeaders and Signature"));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, terminator] = scope.as_slice() else {
        return Err(incomplete(
            "Credential=<key id>/<date>/<region>/<service>/aws4_request",
        ));
    };
    let amz_date = header(headers, "x-amz-date").unwrap_or("");
    let date_ok = date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit());
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !date_ok || !region_ok || *service != expected_service || *terminator != "aws4_request" {
        return Err(incomplete(&format!(
            "a credential scope <date>/<region>/{expected_service}/aws4_request"
        )));
    }
    if amz_date.len() != 16 || !amz_date.starts_with(date) {
        return Err(incomplete(
            "an x-amz-date header (YYYYMMDDTHHMMSSZ) on the credential's date",
        ));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    let sorted = names.windows(2).all(|w| w[0] < w[1]);
    let lower = names
        .iter()
        .all(|n| !n.is_empty() && n.bytes().all(|b| !b.is_ascii_uppercase()));
    if !sorted || !lower || !names.contains(&"host") || !names.contains(&"x-amz-date") {
        return Err(incomplete(
            "SignedHeaders: sorted lowercase names including host and x-amz-date",
        ));
    }
    if header(headers, "x-amz-security-token").is_some() && !names.contains(&"x-amz-security-token")
    {
        return Err(incomplete("x-amz-security-token among the SignedHeaders"));
    }
    if signature.len() != 64
        || !signature
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(incomplete("a Signature of 64 lowercase hex digits"));
    }
    // SigV4 requests are valid for five minutes either side of the server's clock.
    let (earliest, latest) = (
        sigv4::amz_date(now_unix.saturating_sub(300)),
        sigv4::amz_date(now_unix + 300),
    );
    if amz_date < earliest.as_str() || amz_date > latest.as_str() {
        return Err(error(
            403,
            "InvalidSignatureException",
            &format!("Signature expired: {amz_date} is now earlier than {earliest}"),
        ));
    }
    let Some((_, secret)) = known.aws.iter().find(|(id, _)| id == akid) else {
        return Err(error(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    };
    // Temporary credentials only work with their session token.
    if let Some((_, token)) = known.sessions.iter().find(|(id, _)| id == akid)
        && header(headers, "x-amz-security-token") != Some(token.as_str())
    {
        return Err(error(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    // Recompute the signature over what was received.
    let host = header(headers, "host").unwrap_or("");
    let mut others: Vec<(&str, &str)> = vec![("host", host)];
    for n in &names {
        if matches!(
            *n,
            "host" | "x-amz-date" | "x-amz-security-token" | "x-amz-content-sha256"
        ) {
            continue;
        }
        let Some(v) = header(headers, n) else {
            return Err(incomplete(&format!("the signed header {n} to be present")));
        };
        others.push((n, v));
    }
    let expected = sigv4::sign_detailed(
        &sigv4::SignableRequest {
            method,
            url: &format!("http://{host}{path_and_query}"),
            headers: &others,
            body_sha256_hex: &sigv4::sha256_hex(body),
        },
        &sigv4::Credentials {
            access_key_id: akid,
            secret_access_key: secret,
            session_token: header(headers, "x-amz-security-token"),
        },
        &sigv4::SigningParams {
            region,
            service: expected_service,
            amz_date,
            content_sha256_header: names.contains(&"x-amz-content-sha256"),
        },
    );
    match expected {
        Ok(s) if s.signed_headers == signed_headers && s.signature == signature => {
            Ok(((*region).to_owned(), (*akid).to_owned()))
        }
        _ => Err(error(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method.",
        )),
    }
}

// ---------------------------------------------------------------------------
// Request validation
// ---------------------------------------------------------------------------

/// Top-level members of a Converse request body.
const TOP_LEVEL: [&str; 11] = [
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "promptVariables",
    "requestMetadata",
    "performanceConfig",
    "outputConfig",
];

/// The single member of a union object.
fn union_member<'a>(v: &'a Value, at: &str) -> Result<(&'a str, &'a Value), String> {
    let obj = v
        .as_object()
        .ok_or(format!("{at}: expected an object (a union)"))?;
    let mut it = obj.iter();
    match (it.next(), it.next()) {
        (Some((k, v)), None) => Ok((k.as_str(), v)),
        _ => Err(format!("{at}: a union must set exactly one member")),
    }
}

fn valid_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_text(v: &Value, at: &str) -> Result<(), String> {
    match v.as_str() {
        Some(t) if !t.trim().is_empty() => Ok(()),
        Some(_) => Err(format!(
            "{at}: The text field in the ContentBlock object is blank."
        )),
        None => Err(format!("{at}: expected a string")),
    }
}

fn check_image(v: &Value, at: &str) -> Result<(), String> {
    let format = v["format"].as_str().unwrap_or("");
    if !["png", "jpeg", "gif", "webp"].contains(&format) {
        return Err(format!("{at}.format: must be png, jpeg, gif or webp"));
    }
    let (kind, src) = union_member(&v["source"], &format!("{at}.source"))?;
    if kind == "bytes" && src.as_str().is_some_and(|s| !s.is_empty()) {
        Ok(())
    } else {
        Err(format!("{at}.source: expected non-empty base64 `bytes`"))
    }
}

/// `outputConfig`: `{"textFormat": {"type": "json_schema", "structure":
/// {"jsonSchema": {"schema": "<the schema as a JSON string>", "name"?,
/// "description"?}}}}`
/// (<https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_OutputConfig.html>).
fn check_output_config(oc: &Value) -> Result<(), String> {
    let oc = oc.as_object().ok_or("outputConfig: expected an object")?;
    if let Some(k) = oc.keys().find(|k| *k != "textFormat") {
        return Err(format!(
            "outputConfig: extraneous key [{k}] is not permitted"
        ));
    }
    let Some(tf) = oc.get("textFormat") else {
        return Ok(());
    };
    let tf = tf
        .as_object()
        .ok_or("outputConfig.textFormat: expected an object")?;
    if let Some(k) = tf.keys().find(|k| *k != "type" && *k != "structure") {
        return Err(format!(
            "outputConfig.textFormat: extraneous key [{k}] is not permitted"
        ));
    }
    if tf.get("type").and_then(Value::as_str) != Some("json_schema") {
        return Err("outputConfig.textFormat.type: must be json_schema".into());
    }
    let structure = tf
        .get("structure")
        .ok_or("outputConfig.textFormat.structure: required")?;
    match union_member(structure, "outputConfig.textFormat.structure")? {
        ("jsonSchema", def) => {
            let at = "outputConfig.textFormat.structure.jsonSchema";
            let def = def.as_object().ok_or(format!("{at}: expected an object"))?;
            if let Some(k) = def
                .keys()
                .find(|k| !["schema", "name", "description"].contains(&k.as_str()))
            {
                return Err(format!("{at}: extraneous key [{k}] is not permitted"));
            }
            // The schema travels as a string holding JSON, not as an object.
            let schema = def.get("schema").and_then(Value::as_str).ok_or(format!(
                "{at}.schema: expected a string holding a JSON schema"
            ))?;
            if !serde_json::from_str::<Value>(schema).is_ok_and(|v| v.is_object()) {
                return Err(format!("{at}.schema: is not a valid JSON schema"));
            }
            for k in ["name", "description"] {
                if def
                    .get(k)
                    .is_some_and(|v| v.as_str().is_none_or(str::is_empty))
                {
                    return Err(format!("{at}.{k}: must be a non-empty string"));
                }
            }
            Ok(())
        }
        (k, _) => Err(format!(
            "outputConfig.textFormat.structure: unsupported member {k}"
        )),
    }
}

/// Checks a Converse / ConverseStream body; `Err` holds Bedrock's style of
/// ValidationException message.
pub fn validate_request(body: &Value) -> Result<(), String> {
    let obj = body.as_object().ok_or("body: expected a JSON object")?;
    for k in obj.keys() {
        if !TOP_LEVEL.contains(&k.as_str()) {
            return Err(format!(
                "Malformed input request: extraneous key [{k}] is not permitted"
            ));
        }
    }
    if let Some(system) = obj.get("system") {
        let blocks = system.as_array().ok_or("system: expected a list")?;
        for (i, b) in blocks.iter().enumerate() {
            let at = format!("system[{i}]");
            match union_member(b, &at)? {
                ("text", t) => check_text(t, &at)?,
                ("cachePoint", c) if c["type"] == "default" => {}
                (k, _) => return Err(format!("{at}: unsupported member {k}")),
            }
        }
    }
    if let Some(ic) = obj.get("inferenceConfig") {
        let ic = ic
            .as_object()
            .ok_or("inferenceConfig: expected an object")?;
        for (k, v) in ic {
            let ok = match k.as_str() {
                "maxTokens" => v.as_u64().is_some_and(|n| n >= 1),
                "temperature" | "topP" => v.as_f64().is_some_and(|x| (0.0..=1.0).contains(&x)),
                "stopSequences" => v.as_array().is_some_and(|a| {
                    a.len() <= 2500 && a.iter().all(|s| s.as_str().is_some_and(|s| !s.is_empty()))
                }),
                _ => {
                    return Err(format!(
                        "inferenceConfig: extraneous key [{k}] is not permitted"
                    ));
                }
            };
            if !ok {
                return Err(format!("inferenceConfig.{k}: invalid value {v}"));
            }
        }
    }
    let mut tool_names = Vec::new();
    if let Some(tc) = obj.get("toolConfig") {
        let tools = tc["tools"]
            .as_array()
            .filter(|t| !t.is_empty())
            .ok_or("toolConfig.tools: at least one tool is required")?;
        for (i, t) in tools.iter().enumerate() {
            let at = format!("toolConfig.tools[{i}]");
            match union_member(t, &at)? {
                ("toolSpec", spec) => {
                    let name = spec["name"].as_str().unwrap_or("");
                    if !valid_ident(name) {
                        return Err(format!(
                            "{at}.toolSpec.name: must match [a-zA-Z0-9_-]{{1,64}}"
                        ));
                    }
                    if spec
                        .get("description")
                        .is_some_and(|d| d.as_str().is_none_or(str::is_empty))
                    {
                        return Err(format!("{at}.toolSpec.description: must not be empty"));
                    }
                    let (kind, schema) =
                        union_member(&spec["inputSchema"], &format!("{at}.toolSpec.inputSchema"))?;
                    if kind != "json" || schema["type"] != "object" {
                        return Err(format!(
                            "{at}.toolSpec.inputSchema: expected `json` with a top-level type of object"
                        ));
                    }
                    tool_names.push(name.to_owned());
                }
                ("cachePoint", _) => {}
                (k, _) => return Err(format!("{at}: unsupported member {k}")),
            }
        }
        if let Some(choice) = tc.get("toolChoice") {
            match union_member(choice, "toolConfig.toolChoice")? {
                ("auto" | "any", v) if v.is_object() => {}
                ("tool", v) => {
                    let name = v["name"].as_str().unwrap_or("");
                    if !tool_names.iter().any(|n| n == name) {
                        return Err(format!(
                            "toolConfig.toolChoice.tool.name: {name:?} is not among the tools"
                        ));
                    }
                }
                (k, _) => return Err(format!("toolConfig.toolChoice: unsupported member {k}")),
            }
        }
        if let Some(k) = tc.as_object().and_then(|o| {
            o.keys()
                .find(|k| *k != "tools" && *k != "toolChoice")
                .cloned()
        }) {
            return Err(format!("toolConfig: extraneous key [{k}] is not permitted"));
        }
    }
    if let Some(a) = obj.get("additionalModelRequestFields")
        && !a.is_object()
    {
        return Err("additionalModelRequestFields: expected a JSON object".into());
    }
    if let Some(oc) = obj.get("outputConfig") {
        check_output_config(oc)?;
    }
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("messages: at least one message is required")?;
    let mut previous_role = "";
    let mut previous_tool_uses: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = m["role"].as_str().unwrap_or("");
        if role != "user" && role != "assistant" {
            return Err(format!("{at}.role: must be user or assistant"));
        }
        if i == 0 && role != "user" {
            return Err("A conversation must start with a user message.".into());
        }
        if role == previous_role {
            return Err("A conversation must alternate between user and assistant roles.".into());
        }
        let blocks = m["content"]
            .as_array()
            .filter(|c| !c.is_empty())
            .ok_or(format!(
                "{at}.content: at least one content block is required"
            ))?;
        let mut uses = Vec::new();
        let mut results = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let bat = format!("{at}.content[{j}]");
            match (role, union_member(b, &bat)?) {
                (_, ("text", t)) => check_text(t, &bat)?,
                ("user", ("image", img)) => check_image(img, &format!("{bat}.image"))?,
                (_, ("cachePoint", c)) if c["type"] == "default" => {}
                ("assistant", ("toolUse", u)) => {
                    let id = u["toolUseId"].as_str().unwrap_or("");
                    if !valid_ident(id) || !u["name"].is_string() || !u["input"].is_object() {
                        return Err(format!(
                            "{bat}.toolUse: needs toolUseId, name and an object input"
                        ));
                    }
                    if obj.get("toolConfig").is_none() {
                        return Err(
                            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
                                .into(),
                        );
                    }
                    uses.push(id.to_owned());
                }
                ("assistant", ("reasoningContent", _)) => {}
                ("user", ("toolResult", r)) => {
                    let id = r["toolUseId"].as_str().unwrap_or("");
                    if !previous_tool_uses.iter().any(|u| u == id) {
                        return Err(format!(
                            "{bat}.toolResult: toolUseId {id:?} does not match a toolUse block of the previous turn"
                        ));
                    }
                    if obj.get("toolConfig").is_none() {
                        return Err(
                            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
                                .into(),
                        );
                    }
                    let parts = r["content"]
                        .as_array()
                        .ok_or(format!("{bat}.toolResult.content: expected a list"))?;
                    for (k, p) in parts.iter().enumerate() {
                        let pat = format!("{bat}.toolResult.content[{k}]");
                        match union_member(p, &pat)? {
                            ("text", t) if t.is_string() => {}
                            ("json", _) => {}
                            ("image", img) => check_image(img, &format!("{pat}.image"))?,
                            (k, _) => return Err(format!("{pat}: unsupported member {k}")),
                        }
                    }
                    if let Some(s) = r.get("status")
                        && s != "success"
                        && s != "error"
                    {
                        return Err(format!("{bat}.toolResult.status: must be success or error"));
                    }
                    results.push(id.to_owned());
                }
                (r, (k, _)) => {
                    return Err(format!("{bat}: {k} is not allowed in a {r} message"));
                }
            }
        }
        if role == "user"
            && !previous_tool_uses.is_empty()
            && previous_tool_uses.iter().any(|u| !results.contains(u))
        {
            return Err(format!(
                "{at}: every toolUse of the previous turn needs a toolResult"
            ));
        }
        previous_role = role;
        previous_tool_uses = uses;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Canned replies
// ---------------------------------------------------------------------------

/// Arguments for the first tool of a Converse request, from its schema.
fn sample_tool_call(body: &Value) -> Option<(String, Value)> {
    let spec = body["toolConfig"]["tools"]
        .as_array()?
        .iter()
        .find_map(|t| t.get("toolSpec"))?;
    let name = spec["name"].as_str()?.to_owned();
    let mut args = serde_json::Map::new();
    if let Some(props) = spec["inputSchema"]["json"]["properties"].as_object() {
        for (k, p) in props {
            let v = match p["type"].as_str() {
                Some("integer" | "number") => json!(1),
                Some("boolean") => json!(true),
                _ => json!("mock"),
            };
            args.insert(k.clone(), v);
        }
    }
    Some((name, Value::Object(args)))
}

/// Usage every canned reply reports.
fn usage(output: u64) -> Value {
    json!({"inputTokens": 11, "outputTokens": output, "totalTokens": 11 + output})
}

/// A canned Converse reply with `text`.
pub fn converse_response(text: &str) -> Value {
    json!({
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": usage(4),
        "metrics": {"latencyMs": 123}
    })
}

/// A canned Converse reply calling tool `name` with `input`.
pub fn converse_tool_response(name: &str, input: Value) -> Value {
    json!({
        "output": {"message": {"role": "assistant", "content": [
            {"text": "Let me check."},
            {"toolUse": {"toolUseId": "tooluse_mock01", "name": name, "input": input}}
        ]}},
        "stopReason": "tool_use",
        "usage": usage(20),
        "metrics": {"latencyMs": 150}
    })
}

/// One ConverseStream event frame. Like the real service, payloads carry a
/// `p` padding member.
pub fn event(event_type: &str, mut payload: Value) -> Vec<u8> {
    if let Some(o) = payload.as_object_mut() {
        o.insert("p".into(), json!("abcdefghijklmnopqrstuvwxyzABCDEF"));
    }
    eventstream::encode(&Message {
        headers: vec![
            string_header(":event-type", event_type),
            string_header(":content-type", "application/json"),
            string_header(":message-type", "event"),
        ],
        payload: payload.to_string().into_bytes(),
    })
}

/// A modelled exception frame (`throttlingException`, ...).
pub fn exception(exception_type: &str, message: &str) -> Vec<u8> {
    eventstream::encode(&Message {
        headers: vec![
            string_header(":exception-type", exception_type),
            string_header(":content-type", "application/json"),
            string_header(":message-type", "exception"),
        ],
        payload: json!({ "message": message }).to_string().into_bytes(),
    })
}

fn string_header(name: &str, value: &str) -> Header {
    Header {
        name: name.to_owned(),
        value: HeaderValue::String(value.to_owned()),
    }
}

/// ConverseStream frames for a text answer in `pieces`, ending with
/// `messageStop` and, when `with_metadata`, the `metadata` (usage) event.
pub fn converse_stream(pieces: &[&str], with_metadata: bool) -> Vec<Vec<u8>> {
    let mut out = vec![event("messageStart", json!({"role": "assistant"}))];
    for p in pieces {
        out.push(event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": p}}),
        ));
    }
    out.push(event("contentBlockStop", json!({"contentBlockIndex": 0})));
    out.push(event("messageStop", json!({"stopReason": "end_turn"})));
    if with_metadata {
        out.push(event(
            "metadata",
            json!({"usage": usage(pieces.len() as u64), "metrics": {"latencyMs": 99}}),
        ));
    }
    out
}

/// ConverseStream frames for a tool call whose input JSON arrives in `parts`.
pub fn converse_tool_stream(name: &str, parts: &[&str]) -> Vec<Vec<u8>> {
    let mut out = vec![
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Let me check."}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_mock01", "name": name}}}),
        ),
    ];
    for p in parts {
        out.push(event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": p}}}),
        ));
    }
    out.push(event("contentBlockStop", json!({"contentBlockIndex": 1})));
    out.push(event("messageStop", json!({"stopReason": "tool_use"})));
    out.push(event(
        "metadata",
        json!({"usage": usage(20), "metrics": {"latencyMs": 150}}),
    ));
    out
}

/// The default answer to a valid Converse (`stream` false) or
/// ConverseStream request: text, or a call of the first tool offered.
pub fn default_reply(body: &Value, stream: bool) -> Reply {
    if let Some((name, input)) = sample_tool_call(body) {
        return if stream {
            let text = input.to_string();
            let (a, b) = text.split_at(text.len() / 2);
            Reply::event_stream(converse_tool_stream(&name, &[a, b]), crate::Split::Events)
        } else {
            Reply::json(converse_tool_response(&name, input))
        };
    }
    if stream {
        Reply::event_stream(
            converse_stream(&["Hello", " from", " Bedrock."], true),
            crate::Split::Events,
        )
    } else {
        Reply::json(converse_response("Hello from Bedrock."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_paths() {
        assert_eq!(
            converse_path("amazon.nova-pro-v1:0", false),
            "/model/amazon.nova-pro-v1%3A0/converse"
        );
        assert_eq!(route("/model/amazon.nova-pro-v1%3A0/converse"), Some(false));
        assert_eq!(route("/model/x/converse-stream"), Some(true));
        assert_eq!(route("/model//converse"), None);
        assert_eq!(route("/v1/messages"), None);
    }

    #[test]
    fn catches_what_converse_rejects() {
        let ok = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
        assert!(validate_request(&ok).is_ok());
        let structured = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "outputConfig": {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": "{\"type\":\"object\"}", "name": "x"}}}}});
        assert_eq!(validate_request(&structured), Ok(()));
        for bad in [
            json!({"modelId": "x", "messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
            json!({"messages": []}),
            json!({"messages": [{"role": "assistant", "content": [{"text": "hi"}]}]}),
            json!({"messages": [{"role": "user", "content": [{"text": ""}]}]}),
            json!({"messages": [{"role": "user", "content": [{"text": "a"}]}, {"role": "user", "content": [{"text": "b"}]}]}),
            json!({"messages": [{"role": "user", "content": [{"text": "hi", "image": {}}]}]}),
            json!({"inferenceConfig": {"temperature": 1.5}, "messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
            json!({"inferenceConfig": {"max_tokens": 5}, "messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
            json!({"toolConfig": {"tools": [], "toolChoice": {"auto": {}}}, "messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
            json!({"outputConfig": {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": {"type": "object"}}}}}, "messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
            json!({"outputConfig": {"textFormat": {"type": "json", "structure": {"jsonSchema": {"schema": "{}"}}}}, "messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
            json!({"messages": [
                {"role": "user", "content": [{"text": "hi"}]},
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]},
                {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "r"}]}}]}
            ]}),
        ] {
            assert!(validate_request(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_replies_decode() {
        let frames = converse_stream(&["a", "b"], true);
        let mut d = eventstream::EventStreamDecoder::new();
        let msgs = d.push(&frames.concat()).unwrap();
        assert_eq!(msgs.len(), 6);
        assert_eq!(msgs[5].event_type(), Some("metadata"));
        let x = exception("throttlingException", "slow down");
        let m = d.push(&x).unwrap();
        assert_eq!(m[0].exception_type(), Some("throttlingException"));
    }
}
