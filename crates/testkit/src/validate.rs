//! Request validation the way the real APIs do it, so tests catch a
//! translation the provider would reject (facts from the Messages API reference:
//! <https://docs.anthropic.com/en/api/messages>).

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
}
