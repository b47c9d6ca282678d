//! External agent executors for implement and repair (`[executor]`):
//! claude-code, codex, opencode, aider, or any command. baton hands the
//! executor its prompt in a file, a timeout, and an environment holding only
//! the one model key it needs; then takes the work tree's diff, which policy
//! and verify judge exactly as they judge the built-in agent's.

use std::path::Path;
use std::time::Duration;

use super::command::{self, CommandOutput, scrubbed_environment};
use crate::config::{ExecutorConfig, ExecutorKind};
use crate::settings::env;

/// The prompt file's path, for commands that read it from the environment.
pub const PROMPT_FILE_VARIABLE: &str = "BATON_PROMPT_FILE";
const OUTPUT_LIMIT: usize = 64 * 1024;

/// Each kind's command line and key variable when the config names none.
pub fn defaults(kind: ExecutorKind) -> (&'static str, Option<&'static str>) {
    match kind {
        ExecutorKind::ClaudeCode => (
            r#"claude -p --permission-mode acceptEdits --output-format text "$(cat {prompt_file})""#,
            Some("ANTHROPIC_API_KEY"),
        ),
        ExecutorKind::Codex => (
            r#"codex exec --full-auto "$(cat {prompt_file})""#,
            Some("OPENAI_API_KEY"),
        ),
        ExecutorKind::Opencode => (
            r#"opencode run "$(cat {prompt_file})""#,
            Some("ANTHROPIC_API_KEY"),
        ),
        ExecutorKind::Aider => (
            "aider --yes-always --no-auto-commits --message-file {prompt_file}",
            Some("OPENAI_API_KEY"),
        ),
        ExecutorKind::Command => ("", None),
    }
}

/// The command line with `{prompt_file}` replaced by the quoted path.
pub fn command_line(config: &ExecutorConfig, prompt_file: &Path) -> String {
    let (default_command, _) = defaults(config.kind);
    let template = config.command.as_deref().unwrap_or(default_command);
    let quoted = format!(
        "'{}'",
        prompt_file.display().to_string().replace('\'', r"'\''")
    );
    template.replace("{prompt_file}", &quoted)
}

/// Runs the executor in `tree`. `secret_variables` are every key baton knows
/// of; all are removed but the executor's own.
pub async fn run(
    config: &ExecutorConfig,
    tree: &Path,
    prompt: &str,
    secret_variables: &[String],
    sandbox: &crate::sandbox::Sandbox,
) -> anyhow::Result<(String, CommandOutput)> {
    // Outside the work tree, so the prompt never becomes part of the diff.
    let mut prompt_file = tempfile::Builder::new()
        .prefix("baton-prompt-")
        .suffix(".md")
        .tempfile()?;
    std::io::Write::write_all(&mut prompt_file, prompt.as_bytes())?;
    let command_line = command_line(config, prompt_file.path());
    let key_variable = config
        .key_env
        .clone()
        .or_else(|| defaults(config.kind).1.map(str::to_owned));
    let mut environment = scrubbed_environment(secret_variables);
    if let Some(variable) = &key_variable
        && let Some(value) = env::get(variable)
    {
        environment.push((variable.clone(), value));
    }
    environment.push((
        PROMPT_FILE_VARIABLE.into(),
        prompt_file.path().display().to_string(),
    ));
    let output = command::run(
        &command_line,
        tree,
        Duration::from_secs(config.timeout_s),
        OUTPUT_LIMIT,
        &environment,
        sandbox,
    )
    .await?;
    Ok((command_line, output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_file_is_quoted_into_the_template() {
        let config = ExecutorConfig {
            kind: ExecutorKind::Aider,
            command: None,
            key_env: None,
            timeout_s: 10,
            phases: vec!["implement".into()],
        };
        let line = command_line(&config, Path::new("/tmp/it's here.md"));
        assert_eq!(
            line,
            r"aider --yes-always --no-auto-commits --message-file '/tmp/it'\''s here.md'"
        );
    }
}
