//! Provider `openai`: Chat Completions with tool calls, against OpenAI or any
//! compatible server (vLLM, Ollama, llama.cpp's server, LiteLLM).
//! <https://platform.openai.com/docs/api-reference/chat/create>

use serde_json::{Value, json};

use super::http::{Header, HttpClient};
use super::{
    Block, BoxFuture, Provider, ProviderError, Reply, Request, Role, StopReason, ToolChoice, Usage,
};
use crate::secrets::Secret;

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

pub struct OpenAi {
    pub http: HttpClient,
    pub base_url: String,
    /// Optional: local servers often need none.
    pub key: Option<Secret>,
}

impl Provider for OpenAi {
    fn complete<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Reply, ProviderError>> {
        Box::pin(async move {
            let official = self.base_url.trim_end_matches('/') == DEFAULT_BASE_URL;
            if official && self.key.is_none() {
                return Err(ProviderError::Auth {
                    provider: self.http.provider.clone(),
                    variable: self.http.key_variable.clone(),
                    status: 0,
                    message: "no API key".into(),
                });
            }
            let url = format!("{}/chat/completions", self.base_url.trim_end_matches('/'));
            let mut headers = Vec::new();
            if let Some(key) = &self.key {
                headers.push(Header::Secret("authorization", key, "Bearer "));
            }
            let body = to_wire(request, official);
            self.http
                .post(
                    &url,
                    &headers,
                    &body,
                    &request.model,
                    (&request.run_id, &request.phase),
                    from_wire,
                )
                .await
        })
    }
}

/// Request body. OpenAI's own API wants `max_completion_tokens`; compatible
/// servers still read `max_tokens`.
pub fn to_wire(request: &Request, official: bool) -> Value {
    let mut messages = vec![json!({"role": "system", "content": request.system})];
    for message in &request.messages {
        match message.role {
            Role::Assistant => {
                let text: String = message
                    .content
                    .iter()
                    .filter_map(|block| match block {
                        Block::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                let calls: Vec<Value> = message
                    .content
                    .iter()
                    .filter_map(|block| match block {
                        Block::ToolCall {
                            id,
                            name,
                            arguments,
                        } => Some(json!({
                            "id": id, "type": "function",
                            "function": {"name": name, "arguments": match arguments {
                                Value::String(raw) => raw.clone(),
                                other => other.to_string(),
                            }},
                        })),
                        _ => None,
                    })
                    .collect();
                // A message that only calls tools carries `"content": ""`:
                // llama-cpp-python refuses `null` with a 500, and its chat
                // templates fail on a message without the key.
                let mut entry = json!({"role": "assistant", "content": text});
                if !calls.is_empty() {
                    entry["tool_calls"] = json!(calls);
                }
                messages.push(entry);
            }
            Role::User => {
                let mut texts = Vec::new();
                for block in &message.content {
                    match block {
                        Block::ToolResult { id, content, .. } => {
                            messages.push(
                                json!({"role": "tool", "tool_call_id": id, "content": content}),
                            );
                        }
                        Block::Text { text } => texts.push(text.as_str()),
                        Block::ToolCall { .. } => {}
                    }
                }
                if !texts.is_empty() {
                    messages.push(json!({"role": "user", "content": texts.join("\n")}));
                }
            }
        }
    }
    let tools: Vec<Value> = request
        .tools
        .iter()
        .map(|tool| json!({"type": "function", "function": {"name": tool.name, "description": tool.description, "parameters": tool.input_schema}}))
        .collect();
    let mut body = json!({"model": request.model, "messages": messages, "tools": tools});
    match &request.tool_choice {
        ToolChoice::Auto => {}
        ToolChoice::Any => body["tool_choice"] = json!("required"),
        ToolChoice::Tool(name) => {
            body["tool_choice"] = json!({"type": "function", "function": {"name": name}});
        }
    }
    body[if official {
        "max_completion_tokens"
    } else {
        "max_tokens"
    }] = json!(request.max_tokens);
    body
}

/// Response body → `Reply`. Tool arguments that are not valid JSON are kept
/// as a string: the agent loop tells the model, instead of failing the call.
pub fn from_wire(value: &Value) -> Result<Reply, String> {
    let choice = value.pointer("/choices/0").ok_or("no `choices[0]`")?;
    let message = choice.get("message").ok_or("no `message`")?;
    let mut content = Vec::new();
    if let Some(text) = message.get("content").and_then(Value::as_str)
        && !text.trim().is_empty()
    {
        content.push(Block::Text {
            text: text.to_owned(),
        });
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let function = call.get("function").ok_or("tool call without `function`")?;
        let raw = function
            .get("arguments")
            .and_then(Value::as_str)
            .unwrap_or("{}");
        content.push(Block::ToolCall {
            id: call
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("call")
                .to_owned(),
            name: function
                .get("name")
                .and_then(Value::as_str)
                .ok_or("tool call without a name")?
                .to_owned(),
            arguments: serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned())),
        });
    }
    let stop_reason = match choice.get("finish_reason").and_then(Value::as_str) {
        Some("stop") | None => StopReason::EndTurn,
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
        Some("length") => StopReason::MaxTokens,
        Some(other) => StopReason::Other(other.to_owned()),
    };
    let usage = value.get("usage");
    let count = |pointer: &str| {
        usage
            .and_then(|usage| usage.pointer(pointer))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let cached = count("/prompt_tokens_details/cached_tokens");
    Ok(Reply {
        content,
        stop_reason,
        usage: Usage {
            input_tokens: count("/prompt_tokens").saturating_sub(cached),
            output_tokens: count("/completion_tokens"),
            cache_read_tokens: cached,
            cache_write_tokens: 0,
        },
        served_by: String::new(),
    })
}
