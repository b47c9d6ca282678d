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

use crate::config::{ModelLimits, ModelRef, ToolChoicePolicy};
use crate::llm::{
    Block, Message, Provider, ProviderError, Reply, Request, Role, StopReason, ToolChoice, ToolSpec,
};
use tools::Workspace;

pub const FINISH: &str = "finish";
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
    /// The model's window and reply limit: every request is kept inside.
    pub limits: ModelLimits,
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
    /// A call answered from its first result (counted for the evidence).
    fn repeated_call(&mut self) {}
    /// How long a request may still take before the wall-time budget is
    /// spent; `None`: no bound. A request still unanswered then is dropped
    /// (which cancels it) and the session stops on the budget.
    fn time_left(&self) -> Option<std::time::Duration> {
        None
    }
}

/// Sends `request`, bounded by what is left of the wall-time budget.
async fn complete(
    provider: &dyn Provider,
    request: &Request,
    observer: &dyn Observer,
) -> Result<Reply, SessionError> {
    let Some(left) = observer.time_left() else {
        return Ok(provider.complete(request).await?);
    };
    match tokio::time::timeout(left, provider.complete(request)).await {
        Ok(reply) => Ok(reply?),
        Err(_) => Err(SessionError::Budget(format!(
            "wall-time budget reached while waiting {:.0} s for the model (budget.max_wall_minutes); the request was cancelled",
            left.as_secs_f64()
        ))),
    }
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
    let mut forced = false;
    // Whether the server failed a request that forced "any tool"
    // (llama-cpp-python's function-calling handler does).
    let mut any_refused = false;
    // The last call that was refused, and why: the same one again ends it.
    let mut last_refusal: Option<(String, String, String)> = None;
    // Answers to `read_file`, `list_files`, `search` and `run` since the
    // tree last changed: the same call again gets the same answer, with a
    // note, instead of another run.
    let mut answered: Vec<(String, String, String)> = Vec::new();
    for turn in 0..spec.max_turns {
        // From the second prose reply on, the tool is forced: some servers
        // leave the tools out of the prompt unless one is.
        // And it stays forced for the rest of the session: a server that
        // needed it once will need it again.
        forced |= prose_in_a_row > 0;
        let tool_choice = match spec.tool_choice {
            ToolChoicePolicy::Auto if !forced => ToolChoice::Auto,
            // A server that failed on "any tool" is not asked again.
            _ if terminal == FINISH && any_refused => ToolChoice::Auto,
            ToolChoicePolicy::Required => ToolChoice::Any,
            _ if terminal == FINISH => ToolChoice::Any,
            _ => ToolChoice::Tool(terminal.to_owned()),
        };
        // Earlier refusals and prose shrink to a line each; the oldest tool
        // results go first when the window is short.
        let keep = messages.len().saturating_sub(2);
        compact(&mut messages[..keep]);
        let fixed = estimate_tokens(
            spec.system.len() + serde_json::to_string(&tools).map_or(0, |text| text.len()),
        );
        let window = spec.limits.context_window as usize;
        // A margin for what the wire adds (roles, tool wrappers, a
        // template's special tokens) and for the estimate itself.
        let margin = 64 + window / 10;
        let room = window.saturating_sub(spec.limits.max_output_tokens as usize + fixed + margin);
        fit(&mut messages, room);
        let mut request = Request {
            run_id: spec.run_id.to_owned(),
            phase: spec.phase_label.clone(),
            attempt: spec.attempt,
            turn,
            model: spec.model.model.clone(),
            system: spec.system.clone(),
            messages: messages.clone(),
            tools: tools.clone(),
            max_tokens: spec.limits.max_output_tokens,
            tool_choice,
        };
        observer
            .before_request(&request)
            .map_err(SessionError::Budget)?;
        tracing::debug!(phase = %spec.phase_label, turn, "model request");
        let reply = match complete(spec.provider, &request, observer).await {
            Err(SessionError::Provider(error))
                if request.tool_choice == ToolChoice::Any && !is_context_overflow(&error) =>
            {
                // Some servers cannot force "any tool" and fail the request;
                // ask again without forcing, and do not force it again.
                tracing::warn!(phase = %spec.phase_label, "the server failed a request that forced a tool call ({error}); asking again without forcing one");
                any_refused = true;
                request.tool_choice = ToolChoice::Auto;
                observer
                    .before_request(&request)
                    .map_err(SessionError::Budget)?;
                complete(spec.provider, &request, observer).await?
            }
            Err(SessionError::Provider(error)) if is_context_overflow(&error) => {
                // The server counts differently than baton's estimate: trim
                // harder and try once more.
                if !fit(&mut messages, room * 3 / 5) {
                    return Err(SessionError::Stuck(format!(
                        "the conversation does not fit the model's context window ({window} tokens) even trimmed; set [providers.{}].context_window to the server's real window or use a larger model ({error})",
                        spec.model.provider
                    )));
                }
                tracing::info!(phase = %spec.phase_label, "the server said the request exceeds its context: trimmed, sending again");
                request.messages = messages.clone();
                observer
                    .before_request(&request)
                    .map_err(SessionError::Budget)?;
                complete(spec.provider, &request, observer).await?
            }
            other => other?,
        };
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
        let cut_off = reply.stop_reason == StopReason::MaxTokens;
        let mut results = Vec::new();
        for (id, name, arguments) in calls {
            let output = if !arguments.is_object() && cut_off {
                // A call cut off at the token limit: its arguments end
                // mid-way, which is not the model's JSON being wrong.
                tools::ToolOutput {
                    content: format!(
                        "your reply was cut off at the token limit ({} tokens) in the middle of `{name}`'s arguments; send a shorter call (less text per call: write a large file in parts with edit_file)",
                        spec.limits.max_output_tokens
                    ),
                    is_error: true,
                }
            } else if !arguments.is_object() {
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
                    observer.repeated_call();
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

/// Roughly the tokens `chars` characters of prompt cost: three characters a
/// token, on the safe side for code and JSON.
fn estimate_tokens(chars: usize) -> usize {
    chars / 3 + 1
}

fn block_chars(block: &Block) -> usize {
    match block {
        Block::Text { text } => text.len(),
        Block::ToolCall {
            name, arguments, ..
        } => name.len() + arguments.to_string().len() + 16,
        Block::ToolResult { content, .. } => content.len() + 16,
    }
}

fn conversation_tokens(messages: &[Message]) -> usize {
    messages
        .iter()
        .map(|message| estimate_tokens(message.content.iter().map(block_chars).sum::<usize>() + 8))
        .sum()
}

/// Cuts the oldest tool results to a one-line note until the conversation
/// fits `room` tokens; the newest result, if it alone is too large, is cut
/// to what fits, with a marker. The task (the first message) stays whole.
/// Returns whether it fits.
fn fit(messages: &mut [Message], room: usize) -> bool {
    let newest = messages.len().saturating_sub(1);
    for index in 1..newest {
        if conversation_tokens(messages) <= room {
            return true;
        }
        for block in &mut messages[index].content {
            if let Block::ToolResult { content, .. } = block
                && content.len() > 160
            {
                *content = format!(
                    "[baton: this result ({} characters) was trimmed to keep the conversation inside the model's context window; call the tool again if you still need it]",
                    content.len()
                );
            }
        }
    }
    let total = conversation_tokens(messages);
    if total <= room {
        return true;
    }
    if newest > 0 {
        let excess_chars = (total - room) * 3 + 200;
        for block in &mut messages[newest].content {
            if let Block::ToolResult { content, .. } = block
                && content.len() > excess_chars + 400
            {
                let keep = content.len() - excess_chars;
                let cut: String = content.chars().take(keep).collect();
                *content = format!(
                    "{cut}\n[baton: the rest of this result ({} characters) was cut to fit the model's context window; read a narrower part if you need it]",
                    content.len() - cut.len()
                );
                break;
            }
        }
    }
    conversation_tokens(messages) <= room
}

/// Earlier turns that led nowhere, kept as a line each: prose replies, and
/// refused calls (their arguments and the full refusal).
fn compact(messages: &mut [Message]) {
    let mut refused: Vec<String> = Vec::new();
    for message in messages.iter_mut().rev() {
        let prose = message.role == Role::Assistant
            && message
                .content
                .iter()
                .all(|block| matches!(block, Block::Text { .. }));
        for block in &mut message.content {
            match block {
                Block::ToolResult {
                    id,
                    content,
                    is_error: true,
                } => {
                    refused.push(id.clone());
                    *content = one_line(content);
                }
                Block::ToolCall { id, arguments, .. }
                    if refused.contains(id) && arguments.to_string().len() > 200 =>
                {
                    *arguments = serde_json::json!({
                        "_baton": format!("arguments of a refused call ({} characters) left out", arguments.to_string().len())
                    });
                }
                Block::Text { text } if prose => *text = one_line(text),
                _ => {}
            }
        }
    }
}

fn one_line(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    let mut line: String = first.chars().take(200).collect();
    if line.len() < text.len() {
        line.push_str(" […]");
    }
    line
}

/// A 400 (or an invalid-request 500) whose message says the prompt is
/// longer than the model's context.
fn is_context_overflow(error: &ProviderError) -> bool {
    let ProviderError::Rejected { message, .. } = error else {
        return false;
    };
    let message = message.to_ascii_lowercase();
    message.contains("context_length_exceeded")
        || message.contains("exceed_context_size")
        || message.contains("prompt is too long")
        || message.contains("n_ctx")
        || (message.contains("context")
            && ["length", "window", "size", "exceed", "maximum"]
                .iter()
                .any(|word| message.contains(word)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, content: &str, is_error: bool) -> Block {
        Block::ToolResult {
            id: id.into(),
            content: content.into(),
            is_error,
        }
    }

    fn call(id: &str, arguments: Value) -> Block {
        Block::ToolCall {
            id: id.into(),
            name: "write_file".into(),
            arguments,
        }
    }

    fn message(role: Role, content: Vec<Block>) -> Message {
        Message { role, content }
    }

    #[test]
    fn fit_trims_the_oldest_tool_results_first_and_keeps_the_task_and_the_last_exchange() {
        let big = "x".repeat(6000);
        let mut messages = vec![
            Message::user_text("the task"),
            message(Role::Assistant, vec![call("1", serde_json::json!({}))]),
            message(Role::User, vec![result("1", &big, false)]),
            message(Role::Assistant, vec![call("2", serde_json::json!({}))]),
            message(Role::User, vec![result("2", &big, false)]),
            message(Role::Assistant, vec![call("3", serde_json::json!({}))]),
            message(Role::User, vec![result("3", &big, false)]),
        ];
        let before = conversation_tokens(&messages);
        assert!(fit(&mut messages, before - 1000));
        let lengths: Vec<usize> = messages
            .iter()
            .map(|message| message.content.iter().map(block_chars).sum())
            .collect();
        assert!(lengths[2] < 300, "the oldest result is trimmed");
        assert!(lengths[4] > 6000, "the next one is kept while it fits");
        assert!(lengths[6] > 6000, "the newest is whole while it fits");
        assert!(fit(&mut messages, 1500), "the newest result is cut to fit");
        let newest = serde_json::to_string(&messages[6]).unwrap();
        assert!(newest.contains("was cut to fit"), "{newest}");
        assert!(
            !fit(&mut messages, 10),
            "a conversation that cannot fit says so"
        );
        assert_eq!(messages[0], Message::user_text("the task"));
    }

    #[test]
    fn compact_keeps_refusals_and_prose_as_a_line_each() {
        let long = "y".repeat(5000);
        let mut messages = vec![
            Message::user_text("the task"),
            message(
                Role::Assistant,
                vec![Block::Text {
                    text: format!("I will now explain at length.\n{long}"),
                }],
            ),
            message(
                Role::Assistant,
                vec![call("1", serde_json::json!({"path": "a", "content": long}))],
            ),
            message(
                Role::User,
                vec![result(
                    "1",
                    &format!("refused: outside the test paths\n{long}"),
                    true,
                )],
            ),
            message(
                Role::Assistant,
                vec![call("2", serde_json::json!({"path": "b", "content": long}))],
            ),
            message(Role::User, vec![result("2", "ok", false)]),
        ];
        compact(&mut messages);
        let text = serde_json::to_string(&messages).unwrap();
        assert_eq!(
            text.matches(&long).count(),
            1,
            "only the accepted call keeps its content"
        );
        assert!(text.contains("I will now explain at length. […]"));
        assert!(text.contains("refused: outside the test paths […]"));
        assert!(text.contains("left out"));
    }

    #[test]
    fn context_overflow_messages_of_real_servers_are_recognised() {
        let rejected = |message: &str| ProviderError::Rejected {
            provider: "p".into(),
            status: 400,
            message: message.into(),
        };
        for message in [
            "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens",
            "Requested tokens (9100) exceed context window of 8192",
            "the request exceeds the available context size, try increasing it",
            "prompt is too long: 210000 tokens > 200000 maximum",
        ] {
            assert!(is_context_overflow(&rejected(message)), "{message}");
        }
        assert!(!is_context_overflow(&rejected("tools[0].name: invalid")));
    }
}
