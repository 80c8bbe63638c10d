//! Request validation the way the real APIs do it, so tests catch a
//! translation the provider would reject (facts from the Messages API reference:
//! <https://docs.anthropic.com/en/api/messages>, and the Gemini API reference:
//! <https://ai.google.dev/api/generate-content>,
//! <https://ai.google.dev/api/caching#Content>,
//! <https://ai.google.dev/gemini-api/docs/function-calling>).

use serde_json::Value;

/// Top-level fields the Messages API accepts.
const ANTHROPIC_TOP_LEVEL: [&str; 19] = [
    "model",
    "max_tokens",
    "messages",
    "system",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "metadata",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
    "output_format",
    "output_config",
];

/// Checks a `POST /v1/messages` body; `Err` holds Anthropic's style of message.
pub fn anthropic_request(body: &Value) -> Result<(), String> {
    let obj = body.as_object().ok_or("body: expected an object")?;
    for k in obj.keys() {
        if !ANTHROPIC_TOP_LEVEL.contains(&k.as_str()) {
            return Err(format!("{k}: Extra inputs are not permitted"));
        }
    }
    if !obj.get("model").is_some_and(Value::is_string) {
        return Err("model: Field required".into());
    }
    match obj.get("max_tokens").and_then(Value::as_u64) {
        Some(n) if n >= 1 => {}
        _ => return Err("max_tokens: Field required (integer >= 1)".into()),
    }
    if let Some(t) = obj.get("temperature") {
        let t = t.as_f64().ok_or("temperature: must be a number")?;
        if !(0.0..=1.0).contains(&t) {
            return Err("temperature: Input should be less than or equal to 1".into());
        }
    }
    if let Some(s) = obj.get("stop_sequences")
        && !s.as_array().is_some_and(|a| a.iter().all(Value::is_string))
    {
        return Err("stop_sequences: Input should be a valid list of strings".into());
    }
    if let Some(m) = obj.get("metadata") {
        let m = m.as_object().ok_or("metadata: must be an object")?;
        if m.keys().any(|k| k != "user_id") {
            return Err("metadata: Extra inputs are not permitted".into());
        }
    }
    match obj.get("system") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(blocks)) => {
            for (i, b) in blocks.iter().enumerate() {
                if b["type"] != "text" || b["text"].as_str().is_none_or(str::is_empty) {
                    return Err(format!("system.{i}: must be a non-empty text block"));
                }
            }
        }
        Some(_) => return Err("system: Input should be a string or list of text blocks".into()),
    }
    let tools = tool_names(obj.get("tools"))?;
    if let Some(tc) = obj.get("tool_choice") {
        match tc["type"].as_str() {
            Some("auto" | "any" | "none") => {}
            Some("tool") => {
                let name = tc["name"]
                    .as_str()
                    .ok_or("tool_choice.name: Field required")?;
                if !tools.iter().any(|t| t == name) {
                    return Err(format!("tool_choice.name: tool {name:?} is not in tools"));
                }
            }
            _ => return Err("tool_choice.type: must be auto, any, tool or none".into()),
        }
        if tools.is_empty() {
            return Err("tool_choice: may only be specified while providing tools".into());
        }
    }
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("messages: Field required")?;
    if messages.is_empty() {
        return Err("messages: at least one message is required".into());
    }
    let mut previous_tool_uses: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if role != "user" && role != "assistant" {
            return Err(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            ));
        }
        let blocks: Vec<Value> = match &m["content"] {
            Value::String(s) if s.is_empty() => {
                return Err(format!("messages.{i}: text content must be non-empty"));
            }
            Value::String(s) => vec![serde_json::json!({"type": "text", "text": s})],
            Value::Array(b) if !b.is_empty() => b.clone(),
            _ => {
                return Err(format!(
                    "messages.{i}.content: must be a string or non-empty list"
                ));
            }
        };
        let mut uses = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let at = format!("messages.{i}.content.{j}");
            match (role, b["type"].as_str().unwrap_or("")) {
                (_, "text") => {
                    if b["text"].as_str().is_none_or(str::is_empty) {
                        return Err(format!("{at}: text content blocks must be non-empty"));
                    }
                }
                ("user", "image") => image_source(&b["source"], &at)?,
                ("user", "tool_result") => {
                    let id = b["tool_use_id"]
                        .as_str()
                        .ok_or(format!("{at}.tool_use_id: Field required"))?;
                    if !previous_tool_uses.iter().any(|u| u == id) {
                        return Err(format!(
                            "{at}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                        ));
                    }
                }
                ("assistant", "tool_use") => {
                    let id = b["id"].as_str().ok_or(format!("{at}.id: Field required"))?;
                    if !b["name"].is_string() || !b["input"].is_object() {
                        return Err(format!("{at}: tool_use needs name and an object input"));
                    }
                    uses.push(id.to_owned());
                }
                ("assistant", "thinking" | "redacted_thinking") => {}
                (r, t) => return Err(format!("{at}.type: {t:?} is not allowed in a {r} message")),
            }
        }
        previous_tool_uses = uses;
    }
    Ok(())
}

fn image_source(src: &Value, at: &str) -> Result<(), String> {
    match src["type"].as_str() {
        Some("base64") => {
            let mt = src["media_type"].as_str().unwrap_or("");
            if !["image/jpeg", "image/png", "image/gif", "image/webp"].contains(&mt) {
                return Err(format!("{at}.source.media_type: unsupported {mt:?}"));
            }
            if src["data"].as_str().is_none_or(str::is_empty) {
                return Err(format!("{at}.source.data: Field required"));
            }
            Ok(())
        }
        Some("url") if src["url"].as_str().is_some_and(|u| u.starts_with("http")) => Ok(()),
        _ => Err(format!("{at}.source: must be base64 or url")),
    }
}

fn tool_names(tools: Option<&Value>) -> Result<Vec<String>, String> {
    let Some(tools) = tools else {
        return Ok(vec![]);
    };
    let arr = tools.as_array().ok_or("tools: must be a list")?;
    let mut names = Vec::new();
    for (i, t) in arr.iter().enumerate() {
        let name = t["name"]
            .as_str()
            .ok_or(format!("tools.{i}.name: Field required"))?;
        let valid = !name.is_empty()
            && name.len() <= 128
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(format!(
                "tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
            ));
        }
        if t.get("type").is_none() && t["input_schema"]["type"] != "object" {
            return Err(format!(
                "tools.{i}.input_schema.type: Input should be 'object'"
            ));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

/// Checks a `POST /v1/chat/completions` body the way OpenAI does (the basics).
pub fn openai_chat_request(body: &Value) -> Result<(), String> {
    if !body["model"].is_string() {
        return Err("you must provide a model parameter".into());
    }
    chat_request(body)
}

/// Checks an Azure OpenAI chat body: OpenAI's checks, but the deployment in
/// the URL names the model, so `model` is optional.
pub fn azure_chat_request(body: &Value) -> Result<(), String> {
    if body.get("model").is_some_and(|m| !m.is_string()) {
        return Err("model: must be a string".into());
    }
    chat_request(body)
}

fn chat_request(body: &Value) -> Result<(), String> {
    let msgs = body["messages"]
        .as_array()
        .ok_or("messages: Field required")?;
    if msgs.is_empty() {
        return Err("'messages' must contain at least one message".into());
    }
    for (i, m) in msgs.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if ![
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
            "function",
        ]
        .contains(&role)
        {
            return Err(format!("messages[{i}].role: invalid role {role:?}"));
        }
    }
    if body.get("stream_options").is_some() && body["stream"] != true {
        return Err(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.".into(),
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Gemini
// ---------------------------------------------------------------------------

/// Top-level fields of a `GenerateContentRequest`, as documented (camelCase).
/// Google's JSON parser also takes the proto's snake_case names; we insist on
/// the documented spelling so a translation that drifts from it fails here.
const GEMINI_TOP_LEVEL: [&str; 7] = [
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
];

/// `generationConfig` fields.
const GEMINI_GENERATION_CONFIG: [&str; 20] = [
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "mediaResolution",
    "imageConfig",
];

/// The `data` oneof of a `Part`: exactly one must be set.
const GEMINI_PART_DATA: [&str; 7] = [
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
];

/// Other `Part` fields.
const GEMINI_PART_META: [&str; 5] = [
    "thought",
    "thoughtSignature",
    "videoMetadata",
    "mediaResolution",
    "partMetadata",
];

/// Google's wording for an unknown field.
fn unknown_name(name: &str, at: &str) -> String {
    if at.is_empty() {
        format!("Invalid JSON payload received. Unknown name \"{name}\": Cannot find field.")
    } else {
        format!(
            "Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field."
        )
    }
}

fn only_keys(
    obj: &serde_json::Map<String, Value>,
    allowed: &[&str],
    at: &str,
) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(unknown_name(k, at)),
        None => Ok(()),
    }
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a serde_json::Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("Invalid JSON payload received. Expected an object at '{at}'."))
}

/// Checks a `generateContent` / `streamGenerateContent` body; `Err` holds a
/// message in Google's style.
pub fn gemini_request(body: &Value) -> Result<(), String> {
    let obj = object(body, "")?;
    only_keys(obj, &GEMINI_TOP_LEVEL, "")?;
    let contents = match obj.get("contents") {
        Some(Value::Array(c)) if !c.is_empty() => c,
        _ => return Err("* GenerateContentRequest.contents: contents is not specified".into()),
    };
    // Number of function calls in the previous turn when it was a model turn
    // that made some.
    let mut pending_calls: Option<usize> = None;
    let mut previous_role = "";
    for (i, c) in contents.iter().enumerate() {
        let at = format!("contents[{i}]");
        let (role, parts) = gemini_content(c, &at, false)?;
        let calls = parts
            .iter()
            .filter(|p| p.get("functionCall").is_some())
            .count();
        let responses = parts
            .iter()
            .filter(|p| p.get("functionResponse").is_some())
            .count();
        if role == "model" && calls > 0 && previous_role != "user" {
            return Err("Please ensure that function call turn comes immediately after a user turn or after a function response turn.".into());
        }
        if role == "user" && responses > 0 {
            match pending_calls {
                Some(n) if n == responses => {}
                _ => return Err("Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.".into()),
            }
        }
        for (j, p) in parts.iter().enumerate() {
            if role == "user" && p.get("functionCall").is_some() {
                return Err(format!(
                    "* GenerateContentRequest.{at}.parts[{j}]: function calls are only allowed in model turns"
                ));
            }
            if role == "model" && p.get("functionResponse").is_some() {
                return Err(format!(
                    "* GenerateContentRequest.{at}.parts[{j}]: function responses are only allowed in user turns"
                ));
            }
        }
        pending_calls = (role == "model" && calls > 0).then_some(calls);
        previous_role = role;
    }
    if let Some(si) = obj.get("systemInstruction") {
        let (_, parts) = gemini_content(si, "system_instruction", true)?;
        if parts.iter().any(|p| p.get("text").is_none()) {
            return Err(
                "* GenerateContentRequest.system_instruction: only text parts are allowed".into(),
            );
        }
    }
    let names = gemini_tools(obj.get("tools"))?;
    if let Some(tc) = obj.get("toolConfig") {
        let tc = object(tc, "tool_config")?;
        only_keys(
            tc,
            &["functionCallingConfig", "retrievalConfig"],
            "tool_config",
        )?;
        if let Some(fc) = tc.get("functionCallingConfig") {
            let fc = object(fc, "tool_config.function_calling_config")?;
            only_keys(
                fc,
                &["mode", "allowedFunctionNames"],
                "tool_config.function_calling_config",
            )?;
            if names.is_empty() {
                return Err("Function calling config is set without function_declarations.".into());
            }
            let mode = fc.get("mode").and_then(Value::as_str).unwrap_or("AUTO");
            if !["MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"].contains(&mode) {
                return Err(format!(
                    "Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), \"{mode}\""
                ));
            }
            if let Some(allowed) = fc.get("allowedFunctionNames") {
                if !matches!(mode, "ANY" | "VALIDATED") {
                    return Err("* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: allowed_function_names may be set only when mode is ANY or VALIDATED.".into());
                }
                for n in allowed.as_array().into_iter().flatten() {
                    let n = n.as_str().unwrap_or("");
                    if !names.iter().any(|d| d == n) {
                        return Err(format!(
                            "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: function {n:?} is not declared"
                        ));
                    }
                }
            }
        }
    }
    if let Some(gc) = obj.get("generationConfig") {
        gemini_generation_config(gc)?;
    }
    if let Some(ss) = obj.get("safetySettings") {
        for (i, s) in ss.as_array().into_iter().flatten().enumerate() {
            let s = object(s, &format!("safety_settings[{i}]"))?;
            only_keys(
                s,
                &["category", "threshold", "method"],
                &format!("safety_settings[{i}]"),
            )?;
        }
    }
    Ok(())
}

/// Checks one `Content`; returns its role (`user` when it has none, as
/// Google assumes) and its parts.
fn gemini_content<'a>(
    c: &'a Value,
    at: &str,
    system: bool,
) -> Result<(&'a str, &'a [Value]), String> {
    let obj = object(c, at)?;
    only_keys(obj, &["role", "parts"], at)?;
    let role = match obj.get("role") {
        None => "user",
        Some(Value::String(r)) if r == "user" || r == "model" => r.as_str(),
        // The system instruction's role is ignored.
        Some(Value::String(_)) if system => "user",
        Some(_) => return Err("Please use a valid role: user, model.".into()),
    };
    let parts = match obj.get("parts") {
        Some(Value::Array(p)) if !p.is_empty() => p.as_slice(),
        _ => {
            return Err(format!(
                "* GenerateContentRequest.{at}.parts: contents.parts must not be empty."
            ));
        }
    };
    for (j, p) in parts.iter().enumerate() {
        gemini_part(p, &format!("{at}.parts[{j}]"))?;
    }
    Ok((role, parts))
}

fn gemini_part(p: &Value, at: &str) -> Result<(), String> {
    let obj = object(p, at)?;
    let mut allowed: Vec<&str> = GEMINI_PART_DATA.to_vec();
    allowed.extend(GEMINI_PART_META);
    only_keys(obj, &allowed, at)?;
    let data: Vec<&str> = GEMINI_PART_DATA
        .iter()
        .copied()
        .filter(|k| obj.contains_key(*k))
        .collect();
    match data.as_slice() {
        [] => {
            return Err(format!(
                "* GenerateContentRequest.{at}.data: required oneof field 'data' must have one initialized field"
            ));
        }
        [_] => {}
        [_, second, ..] => {
            return Err(format!(
                "Invalid JSON payload received. Oneof field 'data' is already set. Cannot set '{second}'"
            ));
        }
    }
    let field = |k: &str| format!("{at}.{k}");
    match data[0] {
        "text" => {
            let t = obj["text"]
                .as_str()
                .ok_or_else(|| format!("Invalid value at '{}' (TYPE_STRING)", field("text")))?;
            // Google's answers carry a signature on an empty text part;
            // anything else must say something.
            if t.is_empty() && !obj.contains_key("thoughtSignature") {
                return Err("Unable to submit request because it has an empty text parameter. Add a value to the parameter and try again.".into());
            }
        }
        "inlineData" => {
            let b = object(&obj["inlineData"], &field("inline_data"))?;
            only_keys(b, &["mimeType", "data"], &field("inline_data"))?;
            if b.get("mimeType")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(format!(
                    "* GenerateContentRequest.{at}.inline_data.mime_type: required"
                ));
            }
            if b.get("data")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(format!(
                    "* GenerateContentRequest.{at}.inline_data.data: required"
                ));
            }
        }
        "fileData" => {
            let f = object(&obj["fileData"], &field("file_data"))?;
            only_keys(f, &["mimeType", "fileUri"], &field("file_data"))?;
            if f.get("fileUri")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(format!(
                    "* GenerateContentRequest.{at}.file_data.file_uri: required"
                ));
            }
        }
        "functionCall" => {
            let f = object(&obj["functionCall"], &field("function_call"))?;
            only_keys(f, &["id", "name", "args"], &field("function_call"))?;
            if f.get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(format!(
                    "* GenerateContentRequest.{at}.function_call.name: Name cannot be empty."
                ));
            }
            if f.get("args").is_some_and(|a| !a.is_object()) {
                return Err(format!(
                    "Invalid value at '{at}.function_call.args' (type.googleapis.com/google.protobuf.Struct)"
                ));
            }
        }
        "functionResponse" => {
            let f = object(&obj["functionResponse"], &field("function_response"))?;
            only_keys(
                f,
                &[
                    "id",
                    "name",
                    "response",
                    "parts",
                    "willContinue",
                    "scheduling",
                ],
                &field("function_response"),
            )?;
            if f.get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(format!(
                    "* GenerateContentRequest.{at}.function_response.name: Name cannot be empty."
                ));
            }
            if !f.get("response").is_some_and(Value::is_object) {
                return Err(format!(
                    "Invalid value at '{at}.function_response.response' (type.googleapis.com/google.protobuf.Struct)"
                ));
            }
        }
        _ => {}
    }
    if obj.get("thought").is_some_and(|t| !t.is_boolean()) {
        return Err(format!("Invalid value at '{at}.thought' (TYPE_BOOL)"));
    }
    if obj.get("thoughtSignature").is_some_and(|t| !t.is_string()) {
        return Err(format!(
            "Invalid value at '{at}.thought_signature' (TYPE_BYTES)"
        ));
    }
    Ok(())
}

/// Whether `name` is a valid function name: starts with a letter or an
/// underscore; then letters, digits, `_ . : -`; at most 64 characters.
fn gemini_function_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
}

/// Checks `tools`; returns the declared function names.
fn gemini_tools(tools: Option<&Value>) -> Result<Vec<String>, String> {
    let Some(tools) = tools else {
        return Ok(vec![]);
    };
    let arr = tools
        .as_array()
        .ok_or("Invalid JSON payload received. Expected a list at 'tools'.")?;
    let mut names = Vec::new();
    for (i, t) in arr.iter().enumerate() {
        let at = format!("tools[{i}]");
        let t = object(t, &at)?;
        only_keys(
            t,
            &[
                "functionDeclarations",
                "googleSearch",
                "googleSearchRetrieval",
                "codeExecution",
                "urlContext",
                "fileSearch",
                "computerUse",
                "googleMaps",
            ],
            &at,
        )?;
        let Some(decls) = t.get("functionDeclarations") else {
            continue;
        };
        for (j, d) in decls.as_array().into_iter().flatten().enumerate() {
            let dat = format!("{at}.function_declarations[{j}]");
            let d = object(d, &dat)?;
            only_keys(
                d,
                &[
                    "name",
                    "description",
                    "behavior",
                    "parameters",
                    "parametersJsonSchema",
                    "response",
                    "responseJsonSchema",
                ],
                &dat,
            )?;
            let name = d.get("name").and_then(Value::as_str).unwrap_or("");
            if !gemini_function_name(name) {
                return Err(format!(
                    "* GenerateContentRequest.{dat}.name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:) or dashes (-), with a maximum length of 64."
                ));
            }
            if d.contains_key("parameters") && d.contains_key("parametersJsonSchema") {
                return Err(format!(
                    "* GenerateContentRequest.{dat}: parameters and parameters_json_schema cannot both be set."
                ));
            }
            if d.get("parametersJsonSchema")
                .is_some_and(|p| !p.is_object())
            {
                return Err(format!(
                    "Invalid value at '{dat}.parameters_json_schema' (type.googleapis.com/google.protobuf.Value): expected a JSON Schema object"
                ));
            }
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

fn gemini_generation_config(gc: &Value) -> Result<(), String> {
    let at = "generation_config";
    let obj = object(gc, at)?;
    only_keys(obj, &GEMINI_GENERATION_CONFIG, at)?;
    let number = |k: &str, lo: f64, hi: f64| -> Result<(), String> {
        match obj.get(k) {
            None => Ok(()),
            Some(v) => match v.as_f64() {
                Some(x) if (lo..=hi).contains(&x) => Ok(()),
                Some(x) => Err(format!(
                    "* GenerateContentRequest.{at}.{k}: {x} is out of range [{lo}, {hi}]"
                )),
                None => Err(format!("Invalid value at '{at}.{k}' (TYPE_FLOAT)")),
            },
        }
    };
    number("temperature", 0.0, 2.0)?;
    number("topP", 0.0, 1.0)?;
    number("presencePenalty", -2.0, 2.0)?;
    number("frequencyPenalty", -2.0, 2.0)?;
    for k in ["candidateCount", "maxOutputTokens"] {
        if let Some(v) = obj.get(k)
            && v.as_u64().is_none_or(|n| n < 1)
        {
            return Err(format!(
                "* GenerateContentRequest.{at}.{k}: must be a positive integer"
            ));
        }
    }
    if let Some(v) = obj.get("topK")
        && v.as_u64().is_none()
    {
        return Err(format!("Invalid value at '{at}.top_k' (TYPE_INT32)"));
    }
    if let Some(v) = obj.get("seed")
        && v.as_i64().is_none_or(|s| i32::try_from(s).is_err())
    {
        return Err(format!("Invalid value at '{at}.seed' (TYPE_INT32)"));
    }
    if let Some(s) = obj.get("stopSequences") {
        let arr = s
            .as_array()
            .filter(|a| a.iter().all(Value::is_string))
            .ok_or_else(|| format!("Invalid value at '{at}.stop_sequences' (TYPE_STRING)"))?;
        if arr.len() > 5 {
            return Err(format!(
                "* GenerateContentRequest.{at}.stop_sequences: at most 5 stop sequences are allowed"
            ));
        }
    }
    let mime = obj.get("responseMimeType").and_then(Value::as_str);
    if let Some(m) = mime
        && !["text/plain", "application/json", "text/x.enum"].contains(&m)
    {
        return Err(format!(
            "* GenerateContentRequest.{at}.response_mime_type: allowed mimetypes are `text/plain`, `application/json`, `text/x.enum`; got {m:?}"
        ));
    }
    let schema = obj.contains_key("responseSchema");
    let json_schema = obj.contains_key("responseJsonSchema");
    if schema && json_schema {
        return Err(format!(
            "* GenerateContentRequest.{at}: response_schema and response_json_schema cannot both be set."
        ));
    }
    if (schema || json_schema) && mime != Some("application/json") && mime != Some("text/x.enum") {
        return Err(format!(
            "* GenerateContentRequest.{at}.response_mime_type: a response schema needs response_mime_type application/json"
        ));
    }
    if let Some(tc) = obj.get("thinkingConfig") {
        let tc = object(tc, "generation_config.thinking_config")?;
        only_keys(
            tc,
            &["includeThoughts", "thinkingBudget", "thinkingLevel"],
            "generation_config.thinking_config",
        )?;
        if tc.contains_key("thinkingBudget") && tc.contains_key("thinkingLevel") {
            return Err("You can only set only one of thinking budget and thinking level.".into());
        }
        if let Some(l) = tc.get("thinkingLevel").and_then(Value::as_str)
            && ![
                "minimal", "low", "medium", "high", "MINIMAL", "LOW", "MEDIUM", "HIGH",
            ]
            .contains(&l)
        {
            return Err(format!(
                "Invalid value at 'generation_config.thinking_config.thinking_level', \"{l}\""
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn catches_what_anthropic_rejects() {
        let ok = json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]});
        assert!(anthropic_request(&ok).is_ok());
        for bad in [
            json!({"model":"m","messages":[{"role":"user","content":"hi"}]}),
            json!({"model":"m","max_tokens":5,"n":2,"messages":[{"role":"user","content":"hi"}]}),
            json!({"model":"m","max_tokens":5,"messages":[{"role":"system","content":"hi"}]}),
            json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":""}]}),
            json!({"model":"m","max_tokens":5,"temperature":1.5,"messages":[{"role":"user","content":"x"}]}),
            json!({"model":"m","max_tokens":5,"tool_choice":{"type":"auto"},"messages":[{"role":"user","content":"x"}]}),
            json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t9"}]}]}),
        ] {
            assert!(anthropic_request(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn catches_what_gemini_rejects() {
        let ok = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "tools": [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": {"type": "object"}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
            "generationConfig": {"maxOutputTokens": 10, "temperature": 0.5, "thinkingConfig": {"thinkingBudget": 0}}});
        assert_eq!(gemini_request(&ok), Ok(()));
        let round_trip = json!({"contents": [
            {"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "c2ln"}, {"functionCall": {"name": "f", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": "1"}}}, {"functionResponse": {"name": "f", "response": {"output": "2"}}}]},
            {"role": "user", "parts": [{"text": "thanks"}]}
        ]});
        assert_eq!(gemini_request(&round_trip), Ok(()));
        for bad in [
            json!({"contents": []}),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "system_instruction": {"parts": [{"text": "x"}]}}),
            json!({"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}),
            json!({"contents": [{"role": "user", "parts": []}]}),
            json!({"contents": [{"role": "user", "parts": [{"text": ""}]}]}),
            json!({"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {"mimeType": "image/png", "data": "x"}}]}]}),
            json!({"contents": [{"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": "x"}}]}]}),
            json!({"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f"}}]}]}),
            json!({"contents": [{"role": "user", "parts": [{"text": "q"}]}, {"role": "model", "parts": [{"functionCall": {"name": "f"}}]}, {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}, {"functionResponse": {"name": "f", "response": {}}}]}]}),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "tools": [{"functionDeclarations": [{"name": "9bad"}]}]}),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}}}),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"max_output_tokens": 5}}),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"temperature": 3}}),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"responseJsonSchema": {"type": "object"}}}),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"thinkingConfig": {"thinkingBudget": 1, "thinkingLevel": "low"}}}),
        ] {
            assert!(gemini_request(&bad).is_err(), "{bad}");
        }
    }
}
