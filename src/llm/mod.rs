//! The model layer: baton's own message types and the `Provider` trait.
//!
//! Wire formats (Anthropic Messages, OpenAI Chat Completions) convert into
//! these types at the provider boundary; nothing past it knows which
//! provider answered.

pub mod scripted;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Config, ModelRef, ProviderKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    ToolCall {
        id: String,
        name: String,
        arguments: Value,
    },
    ToolResult {
        id: String,
        content: String,
        is_error: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Block>,
}

impl Message {
    pub fn user_text(text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: vec![Block::Text { text: text.into() }],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// One call to a model. `phase` is what `x-baton-phase` carries
/// (`spec`, or `spec.validate` for the validator).
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub run_id: String,
    pub phase: String,
    pub attempt: u32,
    pub turn: u32,
    pub model: String,
    pub system: String,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    pub max_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    Other(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub content: Vec<Block>,
    pub stop_reason: StopReason,
    pub usage: Usage,
}

impl Reply {
    pub fn tool_calls(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.content.iter().filter_map(|block| match block {
            Block::ToolCall {
                id,
                name,
                arguments,
            } => Some((id.as_str(), name.as_str(), arguments)),
            _ => None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Not retryable: the provider cannot be used as configured.
    #[error("provider `{provider}`: {message}")]
    Unavailable { provider: String, message: String },
    /// The scripted provider's script has no reply for this request.
    #[error("{0}")]
    Script(String),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Provider: Send + Sync {
    fn complete<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Reply, ProviderError>>;
}

/// Builds the provider a model reference names. `config_dir` resolves
/// relative paths in the config (a script file).
pub fn provider_for(
    config: &Config,
    config_dir: &Path,
    model: &ModelRef,
) -> Result<Box<dyn Provider>, ProviderError> {
    let settings =
        config
            .providers
            .get(&model.provider)
            .ok_or_else(|| ProviderError::Unavailable {
                provider: model.provider.clone(),
                message: format!(
                    "not defined; add [providers.{}] to the config",
                    model.provider
                ),
            })?;
    match settings.kind {
        ProviderKind::Scripted => {
            let script = settings
                .script
                .as_deref()
                .ok_or_else(|| ProviderError::Unavailable {
                    provider: model.provider.clone(),
                    message: format!("set `providers.{}.script` to a script file", model.provider),
                })?;
            Ok(Box::new(scripted::Scripted::load(
                &config_dir.join(script),
            )?))
        }
        kind @ (ProviderKind::Anthropic | ProviderKind::Openai) => {
            Err(ProviderError::Unavailable {
                provider: model.provider.clone(),
                message: format!(
                    "kind `{kind}` is not implemented in this version of baton (only `scripted` is); \
                 point the phase at a scripted provider, e.g. [providers.local] kind = \"scripted\""
                ),
            })
        }
    }
}

/// A rough token estimate (4 characters a token) for replies that report no
/// usage. Real providers always report usage; this only keeps scripted runs
/// from costing nothing.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}
