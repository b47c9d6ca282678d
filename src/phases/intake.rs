//! intake: read the issue, fix the base commit, pick the route, create the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Context, forge_sync, prompts};
use crate::agent::{self, SessionEnd, SessionError, SessionSpec, schema};
use crate::bad_input;
use crate::git::Source;
use crate::llm::ProviderError;
use crate::pipeline::{self, PhaseResult};
use crate::records::{Comment, Ticket, UNTRUSTED_WARNING};
use crate::report::Reporter;
use crate::run_dir::manifest::{BudgetState, IssueRef, Manifest, SCHEMA};
use crate::run_dir::{RunDir, artifact};
use crate::settings::{Settings, env};
use crate::trigger::{IntakeRequest, Trigger};
use crate::types::{Outcome, PhaseName, Route};

/// Opens the run a request names: an existing run directory is picked up
/// (under its lock) as it is; otherwise the trigger is read, the base commit
/// fixed, the config pinned and the run directory created.
pub async fn open_run(
    settings: &Settings,
    reporter: &dyn Reporter,
    request: IntakeRequest,
) -> anyhow::Result<(RunDir, Source)> {
    let source = Source::open(&settings.repo)?;
    let run_id = env::get(env::GITHUB_RUN_ID).map_or_else(local_run_id, |id| format!("gh-{id}"));
    let run_dir = request
        .run_dir
        .or_else(|| env::get(env::BATON_RUN_DIR).map(PathBuf::from))
        .unwrap_or_else(|| settings.repo.join(".baton/runs").join(&run_id));
    if run_dir.join(artifact::MANIFEST).exists() {
        let mut run = RunDir::open_for_write(&run_dir)?;
        run.relative_to(&settings.repo);
        return Ok((run, source));
    }
    let (ticket, forge) = match &request.trigger {
        Trigger::IssueFile(path) => (read_issue_file(path)?, None),
        Trigger::Forge {
            issue, fix_comment, ..
        } => {
            let (_, forge) = forge_sync::connect(&settings.config)?;
            // Nothing is decided yet: any failure here is the event's or the
            // forge's to fix (exit 2), and the job can simply run again.
            let issue = forge.issue(*issue).await.map_err(|error| {
                if error.is_not_found() {
                    bad_input!(
                        "issue #{issue} does not exist in {}: check the event or the dispatch input",
                        forge.repository()
                    )
                } else {
                    bad_input!("cannot read issue #{issue}: {error}")
                }
            })?;
            if issue.is_pull_request {
                return Err(bad_input!(
                    "#{} is a pull request, not an issue; start a run from its issue",
                    issue.number
                ));
            }
            let fix = match fix_comment {
                Some(comment) => Some(
                    super::fix::prepare(settings, forge.as_ref(), &source, issue.number, *comment)
                        .await?,
                ),
                None => None,
            };
            (forge_sync::ticket_from(&issue), Some((forge, issue, fix)))
        }
    };
    // An epic's child names its parent in a hidden line; issue text is
    // untrusted, so only an issue baton itself opened is believed.
    let parent = match &forge {
        Some((_, issue, _)) if issue.from_baton => {
            crate::trigger::command::parent_of_child(&issue.body)
        }
        _ => None,
    };
    let ticket = without_control_characters(ticket);
    let base_sha = source.head_sha()?;
    if source.is_dirty() {
        reporter.line(&format!(
            "! {} has uncommitted changes; the run starts from the last commit {base_sha}",
            settings.repo.display()
        ));
    }
    let config = settings.pin(&source, &base_sha)?;
    let repository = env::get(env::GITHUB_REPOSITORY).unwrap_or_else(|| source.repository_name());
    let (route, route_reason) = match (
        request.route,
        pipeline::route_from_labels(&ticket.labels, &settings.config.triggers.routes),
    ) {
        (Some(Route::Fix), _) => (Route::Fix, "`/baton fix` on the pull request".to_owned()),
        (Some(route), _) => (route, "set by --route".to_owned()),
        (None, Some((route, label))) => (
            route,
            format!("label `{label}` → {route} ([triggers].routes)"),
        ),
        (None, None) => (Route::Feature, ASK_MODEL.to_owned()),
    };
    let trigger = match &forge {
        Some((_, _, Some((fix, _)))) => format!(
            "`/baton fix` from @{} on pull request #{} ({})",
            fix.author, fix.pull_request, fix.url
        ),
        _ => request.trigger.describe(),
    };
    let manifest = Manifest {
        schema: SCHEMA.into(),
        run_id,
        repository,
        issue: IssueRef {
            number: ticket.number,
            title: ticket.title.clone(),
            url: ticket.url.clone(),
            parent,
        },
        base_sha,
        branch: format!("baton/issue-{}", ticket.number),
        route,
        route_reason,
        trigger,
        created_at: crate::clock::now_rfc3339(),
        phases: Vec::new(),
        budget: BudgetState {
            limits: settings.config.budget.clone(),
            spent: crate::types::Spend::default(),
        },
        outcome: Outcome::Running,
        reason: None,
        ended_by: None,
        config,
        forge: None,
        artifacts: BTreeMap::new(),
    };
    if let Some(runs) = run_dir
        .parent()
        .filter(|parent| parent.ends_with(".baton/runs"))
    {
        // Default run directories live in the repository: keep them out of git.
        let ignore = runs.join("../.gitignore");
        if !ignore.exists() {
            std::fs::create_dir_all(runs)?;
            std::fs::write(&ignore, "*\n")?;
        }
    }
    let mut run = RunDir::create(&run_dir, manifest)?;
    run.relative_to(&settings.repo);
    run.write_json(artifact::TICKET, &ticket)?;
    if let Some((_, _, Some((record, patch)))) = &forge {
        run.write_json(artifact::FIX, record)?;
        run.write_patch(artifact::PATCH, patch)?;
    }
    if let Some((forge, issue, _)) = forge {
        forge_sync::start(forge.as_ref(), &mut run.manifest, &issue).await?;
    }
    run.save()?;
    Ok((run, source))
}

/// The route reason while the model has not been asked yet.
const ASK_MODEL: &str = "default: to be asked of the intake model";

/// The model intake asks for a route, when labels and `--route` did not set it.
pub fn routing_model(context: &Context<'_>) -> Option<String> {
    (context.run.manifest.route_reason == ASK_MODEL)
        .then(|| context.config().phase_model(PhaseName::Intake).ok())
        .flatten()
        .map(|model| model.to_string())
}

/// Intake's work once the run exists: ask the model for the route if needed.
pub async fn route(context: &mut Context<'_>) -> anyhow::Result<PhaseResult> {
    // `enforce` on a kernel that cannot confine: refused before any model
    // request of the run (each agent phase checks again on its own machine).
    if context.config().sandbox.mode == crate::config::SandboxMode::Enforce {
        let scratch = tempfile::tempdir()?;
        let (_, report) = context
            .sandbox(crate::sandbox::Use::Agent, scratch.path())
            .await?;
        if let Some(reason) = context.sandbox_refusal(&report) {
            return Ok(PhaseResult::Stop(crate::types::Outcome::Blocked, reason));
        }
    }
    if context.run.manifest.route_reason == ASK_MODEL {
        let ticket: Ticket = context
            .run
            .read_json(artifact::TICKET)?
            .ok_or_else(|| bad_input!("ticket.json is missing from the run directory"))?;
        let model = context.config().phase_model(PhaseName::Intake).ok();
        let (route, reason) = match ask_route(context, &ticket, model.as_ref()).await {
            Ok(chosen) => chosen,
            Err((outcome, reason)) => return Ok(PhaseResult::Stop(outcome, reason)),
        };
        context.run.manifest.route = route;
        context.run.manifest.route_reason = reason;
    }
    let manifest = &context.run.manifest;
    context.record().note = Some(format!(
        "route {}: {}",
        manifest.route, manifest.route_reason
    ));
    Ok(PhaseResult::Finished)
}

/// Asks the intake model for a route; a failure of the model falls back to
/// `feature` with the reason recorded (SPEC §1: labels, else the model,
/// else feature). Refused credentials and a spent budget stop the run
/// here: the next phase would only meet them again.
async fn ask_route(
    context: &mut Context<'_>,
    ticket: &Ticket,
    model: Option<&crate::config::ModelRef>,
) -> Result<(Route, String), (Outcome, String)> {
    let Some(model) = model else {
        return Ok((
            Route::Feature,
            "default: the intake model is not configured".into(),
        ));
    };
    let provider = match context.provider(model) {
        Ok(provider) => provider,
        Err(error) => {
            tracing::warn!("routing falls back to feature: {error}");
            context.record().model = None;
            return Ok((
                Route::Feature,
                format!("default: no model to ask ({error})"),
            ));
        }
    };
    let spec = SessionSpec {
        provider: provider.as_ref(),
        model,
        run_id: &context.run_id(),
        phase_label: "intake".into(),
        attempt: 1,
        system: prompts::system(
            "Role: choose the route for this issue: feature (new behaviour), hotfix (a defect to fix fast), chore (maintenance, no behaviour change), epic (too large for one PR; to be split). Call submit_route.",
            "",
        ),
        prompt: prompts::untrusted_ticket(ticket),
        terminal: schema::submit_route(),
        tools: Vec::new(),
        workspace: None,
        max_turns: 3,
        tool_choice: context.config().tool_choice(model),
        limits: context.config().limits(model),
    };
    context.record().attempts = 1;
    let mut observer = context.observer("intake", 1, model);
    Ok(match agent::run_session(spec, &mut observer).await {
        Ok(SessionEnd::Submitted(arguments)) => {
            let route = arguments
                .get("route")
                .and_then(Value::as_str)
                .and_then(|route| route.parse().ok());
            let reason = arguments
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            match route {
                Some(route) => (route, format!("model: {reason}")),
                None => (
                    Route::Feature,
                    "default: the model's route was invalid".into(),
                ),
            }
        }
        Err(SessionError::Budget(reason)) => return Err((Outcome::BudgetExceeded, reason)),
        Err(SessionError::Provider(error @ ProviderError::Auth { .. })) => {
            return Err((Outcome::Blocked, error.to_string()));
        }
        Err(error) => {
            tracing::warn!("routing falls back to feature: {error}");
            (
                Route::Feature,
                format!("default: the model gave no route ({error})"),
            )
        }
    })
}

fn local_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "local-{}-{:04x}",
        now.as_secs(),
        (now.subsec_nanos() ^ std::process::id()) & 0xffff
    )
}

/// Reads an issue from JSON (GitHub's issue object, or the same fields with
/// `labels` as strings) or Markdown (`# Title`, the body, optional front matter
/// with `number:` and `labels:`).
/// The issue's text without terminal control sequences: a title printed in
/// the progress lines, `status` and the PR body cannot clear a screen, move
/// the cursor or fake a line. The title keeps no line break; the body and
/// comments keep theirs (and tabs).
fn without_control_characters(mut ticket: Ticket) -> Ticket {
    let clean = |text: &str, keep_lines: bool| -> String {
        text.chars()
            .filter(|character| {
                !character.is_control() || (keep_lines && matches!(character, '\n' | '\t'))
            })
            .collect()
    };
    let title = clean(&ticket.title.replace(['\n', '\r', '\t'], " "), false);
    title.trim().clone_into(&mut ticket.title);
    ticket.body = clean(&ticket.body, true);
    ticket.author = clean(&ticket.author, false);
    for label in &mut ticket.labels {
        *label = clean(label, false);
    }
    for comment in &mut ticket.comments {
        comment.body = clean(&comment.body, true);
        comment.author = clean(&comment.author, false);
    }
    ticket
}

pub fn read_issue_file(path: &Path) -> anyhow::Result<Ticket> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| bad_input!("cannot read issue file {}: {error}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|extension| extension == "json")
        || text.trim_start().starts_with('{');
    let ticket = if is_json {
        from_json(&text, path)?
    } else {
        from_markdown(&text)
    };
    if ticket.title.trim().is_empty() {
        return Err(bad_input!(
            "issue file {} has no title (JSON `title`, or a `# Title` line)",
            path.display()
        ));
    }
    Ok(ticket)
}

fn from_json(text: &str, path: &Path) -> anyhow::Result<Ticket> {
    let value: Value = serde_json::from_str(text)
        .map_err(|error| bad_input!("issue file {} is not valid JSON: {error}", path.display()))?;
    let issue = value.get("issue").unwrap_or(&value);
    let string = |key: &str| {
        issue
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let labels = issue
        .get("labels")
        .and_then(Value::as_array)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|label| {
                    label
                        .as_str()
                        .or_else(|| label.get("name").and_then(Value::as_str))
                })
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let comments = issue
        .get("comments")
        .and_then(Value::as_array)
        .map(|comments| {
            comments
                .iter()
                .map(|comment| Comment {
                    author: comment
                        .pointer("/user/login")
                        .or_else(|| comment.get("author"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    body: comment
                        .get("body")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Ticket {
        untrusted: true,
        warning: UNTRUSTED_WARNING.into(),
        number: issue.get("number").and_then(Value::as_u64).unwrap_or(1),
        title: string("title"),
        body: string("body"),
        labels,
        url: issue
            .get("html_url")
            .or_else(|| issue.get("url"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        author: issue
            .pointer("/user/login")
            .or_else(|| issue.get("author"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        comments,
    })
}

fn from_markdown(text: &str) -> Ticket {
    let mut number = 1;
    let mut labels = Vec::new();
    let mut rest = text;
    if let Some(after) = text.strip_prefix("---\n")
        && let Some((front, body)) = after.split_once("\n---\n")
    {
        for line in front.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "number" => number = value.parse().unwrap_or(1),
                "labels" => {
                    labels = value
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .split(',')
                        .map(|label| label.trim().trim_matches(['"', '\'']).to_owned())
                        .filter(|label| !label.is_empty())
                        .collect();
                }
                _ => {}
            }
        }
        rest = body;
    }
    let rest = rest.trim_start();
    let (title, body) = match rest.strip_prefix("# ") {
        Some(heading) => heading.split_once('\n').unwrap_or((heading, "")),
        None => ("", rest),
    };
    Ticket {
        untrusted: true,
        warning: UNTRUSTED_WARNING.into(),
        number,
        title: title.trim().to_owned(),
        body: body.trim().to_owned(),
        labels,
        url: String::new(),
        author: String::new(),
        comments: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_with_front_matter() {
        let ticket = from_markdown(
            "---\nnumber: 7\nlabels: [bug, \"ui\"]\n---\n# Fix the thing\n\nIt breaks.\n",
        );
        assert_eq!(
            (ticket.number, ticket.title.as_str(), ticket.body.as_str()),
            (7, "Fix the thing", "It breaks.")
        );
        assert_eq!(ticket.labels, vec!["bug", "ui"]);
    }

    #[test]
    fn github_issue_json() {
        let ticket = from_json(
            r#"{"number": 3, "title": "T", "body": "B", "html_url": "https://example.com/3", "labels": [{"name": "chore"}], "user": {"login": "octo"}}"#,
            Path::new("x.json"),
        )
        .unwrap();
        assert_eq!(ticket.labels, vec!["chore"]);
        assert_eq!(ticket.author, "octo");
        assert!(ticket.untrusted);
    }
}
