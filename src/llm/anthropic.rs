//! Provider `anthropic`: the Messages API.
//! <https://docs.anthropic.com/en/api/messages>

use serde_json::{Value, json};

use super::http::{Header, HttpClient};
use super::{
    Block, BoxFuture, Provider, ProviderError, Reply, Request, Role, StopReason, ToolChoice, Usage,
};
use crate::secrets::Secret;

const API_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    pub http: HttpClient,
    pub base_url: String,
    pub key: Option<Secret>,
}

impl Provider for Anthropic {
    fn complete<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Reply, ProviderError>> {
        Box::pin(async move {
            let key = self.key.as_ref().ok_or_else(|| ProviderError::Auth {
                provider: self.http.provider.clone(),
                variable: self.http.key_variable.clone(),
                status: 0,
                message: "no API key".into(),
            })?;
            let url = format!("{}/v1/messages", self.base_url.trim_end_matches('/'));
            let headers = [
                Header::Secret("x-api-key", key, ""),
                Header::Plain("anthropic-version", API_VERSION),
            ];
            self.http
                .post(
                    &url,
                    &headers,
                    &to_wire(request),
                    &request.model,
                    (&request.run_id, &request.phase),
                    from_wire,
                )
                .await
        })
    }
}

/// Request body. Tool calls whose input was not an object go back as `{}`:
/// the tool result already told the model what was wrong.
pub fn to_wire(request: &Request) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|message| {
            let content: Vec<Value> = message
                .content
                .iter()
                .map(|block| match block {
                    Block::Text { text } => json!({"type": "text", "text": text}),
                    Block::ToolCall { id, name, arguments } => json!({
                        "type": "tool_use", "id": id, "name": name,
                        "input": if arguments.is_object() { arguments.clone() } else { json!({}) },
                    }),
                    Block::ToolResult { id, content, is_error } => json!({
                        "type": "tool_result", "tool_use_id": id, "content": content, "is_error": is_error,
                    }),
                })
                .collect();
            json!({"role": match message.role { Role::User => "user", Role::Assistant => "assistant" }, "content": content})
        })
        .collect();
    let tools: Vec<Value> = request
        .tools
        .iter()
        .map(|tool| json!({"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}))
        .collect();
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "system": request.system,
        "messages": messages,
        "tools": tools,
    });
    match &request.tool_choice {
        ToolChoice::Auto => {}
        ToolChoice::Any => body["tool_choice"] = json!({"type": "any"}),
        ToolChoice::Tool(name) => body["tool_choice"] = json!({"type": "tool", "name": name}),
    }
    body
}

/// Response body → `Reply`. Anything not shaped like a message is an error
/// (the HTTP layer retries it as a malformed body).
pub fn from_wire(value: &Value) -> Result<Reply, String> {
    if value.get("type").and_then(Value::as_str) != Some("message") {
        return Err("not a `message` object".into());
    }
    let blocks = value
        .get("content")
        .and_then(Value::as_array)
        .ok_or("no `content` array")?;
    let mut content = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => content.push(Block::Text {
                text: block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            }),
            Some("tool_use") => content.push(Block::ToolCall {
                id: block
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or("tool_use without id")?
                    .to_owned(),
                name: block
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or("tool_use without name")?
                    .to_owned(),
                arguments: block.get("input").cloned().unwrap_or(Value::Null),
            }),
            // Thinking and other block types carry nothing baton acts on.
            _ => {}
        }
    }
    let stop_reason = match value.get("stop_reason").and_then(Value::as_str) {
        Some("end_turn" | "stop_sequence") | None => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        Some(other) => StopReason::Other(other.to_owned()),
    };
    let usage = value.get("usage").ok_or("no `usage`")?;
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    Ok(Reply {
        content,
        stop_reason,
        usage: Usage {
            input_tokens: count("input_tokens"),
            output_tokens: count("output_tokens"),
            cache_read_tokens: count("cache_read_input_tokens"),
            cache_write_tokens: count("cache_creation_input_tokens"),
        },
        served_by: String::new(),
    })
}
