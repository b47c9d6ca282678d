//! The tool loop: ask the model, run its tool calls, hand back the results,
//! until it submits its deliverable (or calls `finish`) or runs out of turns.
//!
//! Sloppy replies are normal: prose instead of a tool call, unknown tools,
//! arguments that miss the schema, a `max_tokens` stop. Each is answered by
//! telling the model what was wrong, and counts as a turn.

pub mod command;
pub mod executor;
pub mod schema;
pub mod tools;

use serde_json::Value;

use crate::config::{ModelRef, ToolChoicePolicy};
use crate::llm::{
    Block, Message, Provider, ProviderError, Reply, Request, Role, StopReason, ToolChoice, ToolSpec,
};
use tools::Workspace;

pub const FINISH: &str = "finish";
const MAX_TOKENS_PER_REPLY: u32 = 8192;
/// Tools that only read: their answers hold until the tree is written to.
const READ_ONLY: &[&str] = &["read_file", "list_files", "search"];

/// Prose replies in a row after which the attempt ends: from the second the
/// tool is forced, and a model that still answers in prose cannot do this.
const MAX_PROSE_REPLIES: u32 = 3;

pub struct SessionSpec<'a> {
    pub provider: &'a dyn Provider,
    pub model: &'a ModelRef,
    pub run_id: &'a str,
    /// What `x-baton-phase` carries: `spec`, `spec.validate`, `repair`…
    pub phase_label: String,
    pub attempt: u32,
    pub system: String,
    pub prompt: String,
    /// The tool that ends the session: a `submit_*` tool or `finish`.
    pub terminal: ToolSpec,
    /// Work-tree tools offered besides the terminal one.
    pub tools: Vec<ToolSpec>,
    pub workspace: Option<&'a Workspace>,
    pub max_turns: u32,
    /// The provider's `tool_choice` policy.
    pub tool_choice: ToolChoicePolicy,
}

/// Hooks the phase gives the loop: the budget check before every request and
/// the accounting and transcript after every reply.
pub trait Observer {
    /// `Err(reason)` stops the session before the request is sent.
    fn before_request(&mut self, request: &Request) -> Result<(), String>;
    fn after_reply(
        &mut self,
        request: &Request,
        sent: &[Message],
        reply: &Reply,
    ) -> anyhow::Result<()>;
}

#[derive(Debug, Clone, PartialEq)]
pub enum SessionEnd {
    /// The terminal tool's arguments, checked against its schema.
    Submitted(Value),
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Budget(String),
    #[error("no deliverable after {0} turns (phases.<name>.max_turns)")]
    TurnLimit(u32),
    /// The model is stuck: the same refused call again, or prose even with
    /// the tool forced. The reason names what happened.
    #[error("{0}")]
    Stuck(String),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub async fn run_session(
    spec: SessionSpec<'_>,
    observer: &mut dyn Observer,
) -> Result<SessionEnd, SessionError> {
    let mut tools = spec.tools.clone();
    tools.push(spec.terminal.clone());
    let terminal = spec.terminal.name.as_str();
    let mut messages = vec![Message::user_text(spec.prompt.clone())];
    let mut logged = 0;
    let mut prose_in_a_row = 0;
    // The last call that was refused, and why: the same one again ends it.
    let mut last_refusal: Option<(String, String, String)> = None;
    // Answers to `read_file`, `list_files`, `search` and `run` since the
    // tree last changed: the same call again gets the same answer, with a
    // note, instead of another run.
    let mut answered: Vec<(String, String, String)> = Vec::new();
    for turn in 0..spec.max_turns {
        // From the second prose reply on, the tool is forced: some servers
        // leave the tools out of the prompt unless one is.
        let tool_choice = match spec.tool_choice {
            ToolChoicePolicy::Auto if prose_in_a_row == 0 => ToolChoice::Auto,
            ToolChoicePolicy::Required => ToolChoice::Any,
            _ if terminal == FINISH => ToolChoice::Any,
            _ => ToolChoice::Tool(terminal.to_owned()),
        };
        let request = Request {
            run_id: spec.run_id.to_owned(),
            phase: spec.phase_label.clone(),
            attempt: spec.attempt,
            turn,
            model: spec.model.model.clone(),
            system: spec.system.clone(),
            messages: messages.clone(),
            tools: tools.clone(),
            max_tokens: MAX_TOKENS_PER_REPLY,
            tool_choice,
        };
        observer
            .before_request(&request)
            .map_err(SessionError::Budget)?;
        tracing::debug!(phase = %spec.phase_label, turn, "model request");
        let reply = spec.provider.complete(&request).await?;
        observer.after_reply(&request, &messages[logged..], &reply)?;
        messages.push(Message {
            role: Role::Assistant,
            content: reply.content.clone(),
        });
        logged = messages.len();

        let calls: Vec<(String, String, Value)> = reply
            .tool_calls()
            .map(|(id, name, arguments)| (id.to_owned(), name.to_owned(), arguments.clone()))
            .collect();
        if calls.is_empty() {
            prose_in_a_row += 1;
            if prose_in_a_row >= MAX_PROSE_REPLIES {
                return Err(SessionError::Stuck(format!(
                    "the model answered in prose {prose_in_a_row} times in a row, the last {} with the tool forced; a server that ignores tools may need [providers.<name>].tool_choice",
                    prose_in_a_row - 1
                )));
            }
            let nudge = if reply.stop_reason == StopReason::MaxTokens {
                format!(
                    "Your reply was cut off at the token limit. Be brief and call `{terminal}`."
                )
            } else {
                format!(
                    "Reply with a tool call. To end this phase, call `{terminal}`; prose alone does nothing."
                )
            };
            messages.push(Message::user_text(nudge));
            continue;
        }
        prose_in_a_row = 0;
        let mut results = Vec::new();
        for (id, name, arguments) in calls {
            let output = if !arguments.is_object() {
                let shown: String = arguments.to_string().chars().take(200).collect();
                tools::ToolOutput {
                    content: format!(
                        "the arguments of `{name}` are not a JSON object ({shown}); send a JSON object matching the tool's schema"
                    ),
                    is_error: true,
                }
            } else if name == terminal {
                let (arguments, dropped) =
                    schema::drop_unknown(&spec.terminal.input_schema, &arguments);
                if !dropped.is_empty() {
                    tracing::info!(
                        "{}: dropped fields `{terminal}` does not name: {}",
                        spec.phase_label,
                        dropped.join(", ")
                    );
                }
                let errors = schema::check(&spec.terminal.input_schema, &arguments);
                if errors.is_empty() {
                    return Ok(SessionEnd::Submitted(arguments));
                }
                tools::ToolOutput {
                    content: format!(
                        "`{terminal}` was not accepted:\n- {}\nFix these and call it again.",
                        errors.join("\n- ")
                    ),
                    is_error: true,
                }
            } else if !tools.iter().any(|tool| tool.name == name) {
                let offered: Vec<&str> = tools.iter().map(|tool| tool.name.as_str()).collect();
                tools::ToolOutput {
                    content: format!(
                        "there is no tool `{name}` in this phase; the tools are: {}",
                        offered.join(", ")
                    ),
                    is_error: true,
                }
            } else if let Some(workspace) = spec.workspace {
                let key = arguments.to_string();
                if let Some((_, _, earlier)) = answered
                    .iter()
                    .find(|(tool, arguments, _)| *tool == name && *arguments == key)
                {
                    tools::ToolOutput {
                        content: format!(
                            "{earlier}\n[baton: the same `{name}` call as before, and nothing was written since: this is its earlier answer]"
                        ),
                        is_error: false,
                    }
                } else {
                    let output = workspace.call(&name, &arguments).await;
                    if name == "run" {
                        // A command may have written anything: only its own
                        // answer still holds.
                        answered.clear();
                        answered.push((name.clone(), key, output.content.clone()));
                    } else if READ_ONLY.contains(&name.as_str()) {
                        if !output.is_error {
                            answered.push((name.clone(), key, output.content.clone()));
                        }
                    } else if !output.is_error {
                        // A write: earlier answers may no longer hold.
                        answered.clear();
                    }
                    output
                }
            } else {
                tools::ToolOutput {
                    content: "this phase has no work tree".into(),
                    is_error: true,
                }
            };
            if output.is_error {
                let call = (name.clone(), arguments.to_string(), output.content.clone());
                if last_refusal.as_ref() == Some(&call) {
                    return Err(SessionError::Stuck(format!(
                        "`{name}` was refused twice in a row with the same arguments: {}",
                        output.content
                    )));
                }
                last_refusal = Some(call);
            } else {
                last_refusal = None;
            }
            results.push(Block::ToolResult {
                id,
                content: output.content,
                is_error: output.is_error,
            });
        }
        messages.push(Message {
            role: Role::User,
            content: results,
        });
    }
    Err(SessionError::TurnLimit(spec.max_turns))
}
