//! The model layer: baton's own message types and the `Provider` trait.
//!
//! Wire formats (Anthropic Messages, OpenAI Chat Completions) convert into
//! these types at the provider boundary; nothing past it knows which
//! provider answered.

pub mod anthropic;
pub mod fallback;
pub mod http;
pub mod openai;
pub mod pricing;
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
    /// Whether the model must call a tool (servers that leave tools out of
    /// the prompt unless one is forced need it).
    pub tool_choice: ToolChoice,
}

/// How free the model is to answer without a tool call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides (the wire default: nothing is sent).
    #[default]
    Auto,
    /// Some tool must be called (OpenAI `required`, Anthropic `any`).
    Any,
    /// This tool must be called.
    Tool(String),
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
    /// Input tokens billed at the full rate (cache reads and writes excluded).
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
}

impl Usage {
    /// Every input token, however it was billed.
    pub fn all_input(&self) -> u64 {
        self.input_tokens + self.cache_read_tokens + self.cache_write_tokens
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub content: Vec<Block>,
    pub stop_reason: StopReason,
    pub usage: Usage,
    /// `provider:model` that answered (set by the fallback chain).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub served_by: String,
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

/// What to do about refused credentials: set the key variable, or name one
/// (a server a config names takes a key only through `api_key_env`).
fn key_hint(provider: &str, variable: &str) -> String {
    if variable.is_empty() {
        format!(
            "this server wants a key: name the variable holding it with `providers.{provider}.api_key_env` and set it"
        )
    } else {
        format!("set ${variable} to a valid API key")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Not retryable: the provider cannot be used as configured.
    #[error("provider `{provider}`: {message}")]
    Unavailable { provider: String, message: String },
    /// 401/403, or no key at all: the run stops at once.
    #[error(
        "provider `{provider}` refused the credentials (HTTP {status}: {message}); {}",
        key_hint(.provider, .variable)
    )]
    Auth {
        provider: String,
        variable: String,
        status: u16,
        message: String,
    },
    /// A 429 that means money ran out: never retried.
    #[error(
        "provider `{provider}` reports a spend or quota limit ({message}); raise the limit or use another provider"
    )]
    SpendLimit { provider: String, message: String },
    /// Any other 4xx: the request itself is wrong; retrying cannot help.
    #[error("provider `{provider}` rejected the request (HTTP {status}): {message}")]
    Rejected {
        provider: String,
        status: u16,
        message: String,
    },
    /// Transient failures until the retries ran out.
    #[error("provider `{provider}` model `{model}` failed {attempts} time(s); last: {last}")]
    Exhausted {
        provider: String,
        model: String,
        attempts: u32,
        last: String,
    },
    /// The scripted provider's script has no reply for this request.
    #[error("{0}")]
    Script(String),
}

impl ProviderError {
    /// Whether the next model of `[models].fallback` should take over.
    pub fn allows_fallback(&self) -> bool {
        matches!(self, Self::Exhausted { .. })
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Provider: Send + Sync {
    fn complete<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Reply, ProviderError>>;
}

/// The provider for a phase's model, followed by `[models].fallback`.
pub fn provider_for(
    config: &Config,
    config_dir: &Path,
    model: &ModelRef,
) -> Result<Box<dyn Provider>, ProviderError> {
    let mut entries = vec![(model.clone(), single_provider(config, config_dir, model)?)];
    for reference in &config.models.fallback {
        let Ok(fallback) = config.resolve_model_reference(reference) else {
            continue;
        };
        if entries.iter().any(|(existing, _)| *existing == fallback) {
            continue;
        }
        // A fallback that cannot even be built (no key) is skipped, not fatal.
        match single_provider(config, config_dir, &fallback) {
            Ok(provider) => entries.push((fallback, provider)),
            Err(error) => tracing::debug!("fallback {fallback} unavailable: {error}"),
        }
    }
    Ok(Box::new(fallback::Chain::new(entries)))
}

/// Builds the provider a model reference names. `config_dir` resolves
/// relative paths in the config (a script file).
fn single_provider(
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
            let (default_key, base_variable) = kind.variables().unwrap_or_default();
            let default_url = match kind {
                ProviderKind::Anthropic => "https://api.anthropic.com",
                _ => openai::DEFAULT_BASE_URL,
            };
            let base_url = settings
                .base_url
                .clone()
                .or_else(|| crate::settings::env::get(base_variable))
                .unwrap_or_else(|| default_url.to_owned());
            // The kind's default key goes only where that kind's key is
            // meant to go: the official API, or the URL of the kind's own
            // base-URL variable. A server a config names gets a key only
            // through its `api_key_env` (config check requires one for a
            // server that is not on this machine).
            let key_variable = match (&settings.api_key_env, &settings.base_url) {
                (Some(variable), _) => variable.clone(),
                (None, Some(url)) if !crate::config::is_official_url(kind, url) => String::new(),
                (None, _) => default_key.to_owned(),
            };
            let policy = http::RetryPolicy {
                max_retries: settings.max_retries,
                backoff: std::time::Duration::from_millis(settings.backoff_ms),
                max_wait: std::time::Duration::from_secs(settings.max_wait_s),
                timeout: std::time::Duration::from_secs(settings.timeout_s),
            };
            let http = http::HttpClient::new(&model.provider, &key_variable, policy)?;
            let key = if key_variable.is_empty() {
                None
            } else {
                http::key_from(&key_variable)
            };
            Ok(match kind {
                ProviderKind::Anthropic => Box::new(anthropic::Anthropic {
                    http,
                    base_url,
                    key,
                }),
                _ => Box::new(openai::OpenAi {
                    http,
                    base_url,
                    key,
                }),
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
