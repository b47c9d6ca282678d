//! The `scripted` provider: replays a JSON script of replies keyed by phase,
//! attempt and turn, with no network. It drives `baton demo` and the tests.
//!
//! Script shape: `{ "<phase>": [reply, …], "<phase>#<attempt>": [reply, …] }`.
//! The key with the attempt wins; the n-th reply answers turn n. A reply is
//! `{ "text"?, "calls"?: [{ "name", "arguments" }], "usage"?: { "input", "output" },
//! "stop"?: "max_tokens" }`. Keys starting with `_` are comments.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::{
    Block, BoxFuture, Provider, ProviderError, Reply, Request, StopReason, Usage, estimate_tokens,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptedReply {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    calls: Vec<ScriptedCall>,
    #[serde(default)]
    usage: Option<ScriptedUsage>,
    #[serde(default)]
    stop: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptedCall {
    name: String,
    #[serde(default)]
    arguments: Value,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptedUsage {
    input: u64,
    output: u64,
}

pub struct Scripted {
    path: PathBuf,
    replies: BTreeMap<String, Vec<ScriptedReply>>,
}

impl Scripted {
    pub fn load(path: &Path) -> Result<Self, ProviderError> {
        let unavailable = |message: String| ProviderError::Unavailable {
            provider: "scripted".into(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|error| {
            unavailable(format!("cannot read script {}: {error}", path.display()))
        })?;
        let raw: BTreeMap<String, Value> = serde_json::from_str(&text).map_err(|error| {
            unavailable(format!(
                "script {} is not valid JSON: {error}",
                path.display()
            ))
        })?;
        let mut replies = BTreeMap::new();
        for (key, value) in raw {
            if key.starts_with('_') {
                continue;
            }
            let parsed: Vec<ScriptedReply> = serde_json::from_value(value).map_err(|error| {
                unavailable(format!("script {}: key `{key}`: {error}", path.display()))
            })?;
            replies.insert(key, parsed);
        }
        Ok(Self {
            path: path.to_owned(),
            replies,
        })
    }

    fn reply_for(&self, request: &Request) -> Result<Reply, ProviderError> {
        let keyed = format!("{}#{}", request.phase, request.attempt);
        let turns = self
            .replies
            .get(&keyed)
            .or_else(|| self.replies.get(&request.phase))
            .ok_or_else(|| {
                ProviderError::Script(format!(
                    "script {} has no replies for phase `{}` (attempt {}); add a key `{}` or `{keyed}`",
                    self.path.display(),
                    request.phase,
                    request.attempt,
                    request.phase
                ))
            })?;
        let scripted = turns.get(request.turn as usize).ok_or_else(|| {
            ProviderError::Script(format!(
                "script {} has {} replies for `{}` (attempt {}) but the model was asked for turn {}; add more replies",
                self.path.display(),
                turns.len(),
                request.phase,
                request.attempt,
                request.turn + 1
            ))
        })?;
        let mut content = Vec::new();
        if let Some(text) = &scripted.text {
            content.push(Block::Text { text: text.clone() });
        }
        for (index, call) in scripted.calls.iter().enumerate() {
            content.push(Block::ToolCall {
                id: format!("call_{}_{}_{index}", request.attempt, request.turn),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            });
        }
        let stop_reason = match scripted.stop.as_deref() {
            Some("max_tokens") => StopReason::MaxTokens,
            Some(other) => StopReason::Other(other.to_owned()),
            None if scripted.calls.is_empty() => StopReason::EndTurn,
            None => StopReason::ToolUse,
        };
        let usage = scripted.usage.map_or_else(
            || Usage {
                // What a real API bills: the conversation, the system
                // prompt and the tool schemas.
                input_tokens: estimate_tokens(
                    &serde_json::to_string(&request.messages).unwrap_or_default(),
                ) + estimate_tokens(&request.system)
                    + estimate_tokens(&serde_json::to_string(&request.tools).unwrap_or_default()),
                output_tokens: estimate_tokens(
                    &serde_json::to_string(&content).unwrap_or_default(),
                ),
                ..Usage::default()
            },
            |usage| Usage {
                input_tokens: usage.input,
                output_tokens: usage.output,
                ..Usage::default()
            },
        );
        Ok(Reply {
            content,
            stop_reason,
            usage,
            served_by: String::new(),
        })
    }
}

impl Provider for Scripted {
    fn complete<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Reply, ProviderError>> {
        Box::pin(async move { self.reply_for(request) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(phase: &str, attempt: u32, turn: u32) -> Request {
        Request {
            run_id: "r".into(),
            phase: phase.into(),
            attempt,
            turn,
            model: "m".into(),
            system: String::new(),
            messages: Vec::new(),
            tools: Vec::new(),
            max_tokens: 100,
            tool_choice: crate::llm::ToolChoice::Auto,
        }
    }

    #[test]
    fn attempt_keys_win_and_turns_index_replies() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("script.json");
        std::fs::write(
            &path,
            r#"{"_comment": "x",
                "spec.validate": [{"calls": [{"name": "submit_verdict", "arguments": {"verdict": "pass", "objections": []}}], "usage": {"input": 10, "output": 2}}],
                "spec.validate#1": [{"calls": [{"name": "submit_verdict", "arguments": {"verdict": "revise", "objections": ["x"]}}]}],
                "implement": [{"text": "thinking"}, {"calls": [{"name": "finish", "arguments": {"summary": "s"}}]}]}"#,
        )
        .unwrap();
        let script = Scripted::load(&path).unwrap();
        let first = script.reply_for(&request("spec.validate", 1, 0)).unwrap();
        assert_eq!(first.tool_calls().next().unwrap().2["verdict"], "revise");
        let second = script.reply_for(&request("spec.validate", 2, 0)).unwrap();
        assert_eq!(second.tool_calls().next().unwrap().2["verdict"], "pass");
        assert_eq!(
            second.usage,
            Usage {
                input_tokens: 10,
                output_tokens: 2,
                ..Usage::default()
            }
        );
        let prose = script.reply_for(&request("implement", 1, 0)).unwrap();
        assert_eq!(prose.stop_reason, StopReason::EndTurn);
        let error = script
            .reply_for(&request("implement", 1, 2))
            .unwrap_err()
            .to_string();
        assert!(error.contains("turn 3"), "{error}");
        assert!(script.reply_for(&request("plan", 1, 0)).is_err());
    }
}
