//! `baton command`: a `/baton <verb>` comment (an `issue_comment` event).
//! Acted on only for people with write access, asked of the forge; bots are
//! ignored unless `[triggers].allowed_bots` names them. Every command gets
//! an `eyes` reaction and one reply, marked with the comment's id, so a
//! rerun of the job finds its reply and does nothing twice.

use std::path::Path;

use crate::ci::event::{self, Event};
use crate::error::ExitStatus;
use crate::forge::{self, Forge, ForgeSettings, PullRequestSpec, tracking};
use crate::phases::forge_sync;
use crate::report::Reporter;
use crate::settings::{Settings, env};
use crate::trigger::approval;
use crate::trigger::command::{self, VERBS, Verb};
use crate::types::Outcome;

pub async fn run(reporter: &dyn Reporter, config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    let settings = Settings::resolve(config, None)?;
    super::protect(&settings, reporter);
    let config = &settings.config;
    let (Some(name), Some(path)) = (
        env::get(env::GITHUB_EVENT_NAME),
        env::get(env::GITHUB_EVENT_PATH),
    ) else {
        return Err(crate::bad_input!(
            "baton command reads an issue_comment event from ${} and ${}",
            env::GITHUB_EVENT_NAME,
            env::GITHUB_EVENT_PATH
        ));
    };
    let Event::IssueComment {
        action,
        issue,
        on_pull_request,
        comment,
    } = event::read_file(&name, Path::new(&path))?
    else {
        return Err(crate::bad_input!(
            "baton command handles issue_comment events; this job's event is {name}"
        ));
    };
    let say = |text: &str| reporter.line(&format!("· command   {text}"));
    if action != "created" {
        say(&format!("ignored: the comment was {action}"));
        return Ok(ExitStatus::Success);
    }
    let Some(parsed) = command::parse(&comment.body) else {
        say("ignored: the comment is not a /baton command");
        return Ok(ExitStatus::Success);
    };
    if comment.author_is_bot && !config.triggers.allowed_bots.contains(&comment.author) {
        say(&format!(
            "ignored: {} is a bot ([triggers].allowed_bots does not name it)",
            comment.author
        ));
        return Ok(ExitStatus::Success);
    }
    let forge = ForgeSettings::from_environment(&config.forge)?.connect()?;
    let forge = forge.as_ref();
    let marker = format!("<!-- baton:reply={} -->", comment.id);
    // The issue (or pull request) the comment is on, read once: the
    // earlier reply, the marker of a PR, the tracking comment.
    let commented = forge.issue(issue).await?;
    if commented
        .comments
        .iter()
        .any(|each| each.from_baton && each.body.starts_with(&marker))
    {
        say(&format!(
            "comment {} was answered already; nothing to do",
            comment.id
        ));
        return Ok(ExitStatus::Success);
    }
    forge.react(comment.id, "eyes").await?;
    let permission = forge.permission(&comment.author).await?;
    let text = if permission.can_write() {
        match parsed {
            Ok(verb) => act(forge, config, verb, &commented, on_pull_request, &comment).await?,
            Err(message) => format!("{message}. The verbs are {VERBS}."),
        }
    } else {
        format!(
            "@{}: baton acts on `/baton` commands only from people with write access to {}; nothing was run.",
            comment.author,
            forge.repository()
        )
    };
    say(&text);
    forge::create_comment_once(forge, issue, &format!("{marker}\n{text}")).await?;
    Ok(ExitStatus::Success)
}

/// Does what `verb` asks; returns the reply.
async fn act(
    forge: &dyn Forge,
    config: &crate::config::Config,
    verb: Verb,
    commented: &forge::Issue,
    on_pull_request: bool,
    comment: &event::EventComment,
) -> anyhow::Result<String> {
    let author = comment.author.as_str();
    // On a pull request, the command is about the issue its marker names.
    let target = if on_pull_request {
        match command::issue_of_pull_request(&commented.body) {
            Some(target) => target,
            None => {
                return Ok(
                    "this pull request was not opened by baton (its body names no issue); nothing was run."
                        .into(),
                );
            }
        }
    } else {
        commented.number
    };
    let workflow = &config.triggers.workflow;
    Ok(match verb {
        Verb::Run | Verb::Retry(None) => {
            let branch = dispatch(forge, workflow, target).await?;
            format!("Started a run for #{target} (`{workflow}` on `{branch}`).")
        }
        Verb::Retry(Some(phase)) => {
            // The run the tracking comment links: its job for that phase
            // runs again from the run directory the job before it left.
            if let Some(tracking) = tracking_comment(forge, commented, target).await?
                && let Some(run) = tracking::linked_run(&tracking.body)
            {
                match forge.rerun_job(run, phase.as_str()).await? {
                    Some(true) => {
                        return Ok(format!(
                            "Re-running the {phase} job of workflow run {run} and the jobs after it, from the run directory the job before it left. A phase that failed, crashed or was stopped carries on from there; a phase that finished is not done again (`/baton run` starts afresh)."
                        ));
                    }
                    Some(false) => {
                        return Ok(format!(
                            "Workflow run {run} has no {phase} job that ran; nothing was re-run. `/baton run` starts a new run."
                        ));
                    }
                    None => {}
                }
            }
            let branch = dispatch(forge, workflow, target).await?;
            format!(
                "Started a new run for #{target} (`{workflow}` on `{branch}`). It starts from intake, not from {phase}: to rerun one phase of a run, re-run its job in the workflow run, which takes the run directory as that job left it."
            )
        }
        Verb::Stop => {
            let Some(tracking) = tracking_comment(forge, commented, target).await? else {
                return Ok(format!("#{target} has no baton run to stop."));
            };
            let Some(run) = tracking::linked_run(&tracking.body) else {
                return Ok(format!(
                    "the tracking comment of #{target} links no workflow run; nothing was stopped."
                ));
            };
            if forge.cancel_run(run).await? {
                format!(
                    "Cancelled workflow run {run}: its publish job finalises the run as `cancelled` and keeps its work on the branch."
                )
            } else {
                format!(
                    "This forge's API cannot cancel a workflow run: cancel run {run} from its page (linked in the tracking comment); its publish job then finalises the run as `cancelled`."
                )
            }
        }
        Verb::Status => match tracking_comment(forge, commented, target).await? {
            Some(tracking) => {
                let summary: Vec<&str> = tracking
                    .body
                    .lines()
                    .filter(|line| !line.starts_with("<!--") && !line.trim().is_empty())
                    .take(12)
                    .collect();
                format!("Status of #{target}:\n\n{}", summary.join("\n"))
            }
            None => format!("#{target} has no baton run yet; `/baton run` starts one."),
        },
        Verb::Approve if !on_pull_request => format!(
            "`/baton approve` releases the approval checkpoint of a baton pull request: comment it on the pull request for #{target}. Nothing was approved."
        ),
        Verb::Approve => approve(forge, commented, target, author).await?,
        Verb::Fix(_) if !on_pull_request => format!(
            "`/baton fix <text>` repairs a baton pull request: comment it on the pull request for #{target}. Nothing was run."
        ),
        Verb::Fix(text) if text.trim().is_empty() => {
            "say what to fix: `/baton fix <what to change>`. Nothing was run.".into()
        }
        Verb::Fix(_) => {
            let branch = forge.default_branch().await?;
            let inputs = [
                ("issue".to_owned(), target.to_string()),
                ("fix_comment".to_owned(), comment.id.to_string()),
            ]
            .into_iter()
            .collect();
            forge.dispatch_workflow(workflow, &branch, &inputs).await?;
            format!(
                "Started a fix of this pull request with your feedback (`{workflow}` on `{branch}`): a repair, then the gates on a clean checkout and a review; a verified result is pushed as a new commit on `baton/issue-{target}`."
            )
        }
        Verb::Unknown(verb) if verb.is_empty() => format!("The verbs are {VERBS}."),
        Verb::Unknown(verb) => format!("`/baton {verb}` is not a command. The verbs are {VERBS}."),
    })
}

/// `/baton approve` on pull request `number` (baton's, for issue `target`):
/// the approval is bound to the pull request's head commit, read from the
/// forge now. When publish left the pull request a draft only for want of
/// an approval of exactly that commit, it becomes ready for review and the
/// labels say `done`; the reply records the approval either way, so a
/// publish of the same commit counts it.
async fn approve(
    forge: &dyn Forge,
    commented: &forge::Issue,
    target: u64,
    author: &str,
) -> anyhow::Result<String> {
    let number = commented.number;
    let pull = forge.pull_request(number).await?;
    let branch = format!("baton/issue-{target}");
    if pull.head != branch || pull.head_repository != forge.repository() {
        return Ok(format!(
            "this pull request's head is not baton's branch `{branch}` of {}; nothing was approved.",
            forge.repository()
        ));
    }
    let head = pull.head_sha.clone();
    if head.is_empty() {
        return Ok(
            "the forge did not say which commit this pull request's head is; nothing was approved."
                .into(),
        );
    }
    let short = approval::short(&head);
    let recorded = approval::approved_marker(&head);
    if approval::last_approved(&commented.comments) == Some(head.as_str()) && !pull.draft {
        return Ok(format!(
            "Commit {short} is approved already; a later push needs a new `/baton approve`."
        ));
    }
    match approval::awaiting_in(&pull.body) {
        Some(waiting) if waiting == head => {
            let body = approved_body(&pull.body, &head, author);
            let spec = PullRequestSpec {
                title: pull.title.clone(),
                body,
                head: pull.head.clone(),
                base: String::new(),
                draft: false,
            };
            // Labels first: the body's awaiting line is what a re-run of
            // this job goes by, so it goes last, once everything else is done.
            for each in [target, number] {
                forge_sync::finish_labels(forge, each, Outcome::Done).await?;
            }
            forge.update_pull_request(&pull, &spec).await?;
            Ok(format!(
                "Approved commit {short} (by @{author}): the pull request is ready for review. A later push makes this approval stale.\n{recorded}"
            ))
        }
        Some(waiting) => Ok(format!(
            "The head of this pull request ({short}) is not the commit baton published and verified ({}): nothing was approved. `/baton run` publishes a verified commit to approve.",
            approval::short(waiting)
        )),
        None => Ok(format!(
            "Recorded the approval of commit {short}: a publish of exactly this commit counts it. This pull request is not waiting for an approval alone (its evidence says what else it needs), so it stays as it is.\n{recorded}"
        )),
    }
}

/// The body of an approved pull request: the commit it waited for is now
/// the approved one, and the lines that asked for `/baton approve` say who
/// gave it.
fn approved_body(body: &str, head: &str, author: &str) -> String {
    let note = format!(
        "- Approved with `/baton approve` by @{author} on commit {}.",
        approval::short(head)
    );
    let mut noted = false;
    let mut lines = Vec::new();
    for line in body.lines() {
        if line == approval::awaiting_marker(head) {
            lines.push(approval::approved_marker(head));
        } else if line.contains("need `/baton approve`")
            || line.contains("need a new `/baton approve`")
        {
            if !noted {
                lines.push(note.clone());
                noted = true;
            }
        } else {
            lines.push(line.to_owned());
        }
    }
    lines.join("\n")
}

async fn dispatch(forge: &dyn Forge, workflow: &str, issue: u64) -> anyhow::Result<String> {
    let branch = forge.default_branch().await?;
    let inputs = [("issue".to_owned(), issue.to_string())]
        .into_iter()
        .collect();
    forge.dispatch_workflow(workflow, &branch, &inputs).await?;
    Ok(branch)
}

/// The target issue's tracking comment; the issue commented on is not read
/// again.
async fn tracking_comment(
    forge: &dyn Forge,
    commented: &forge::Issue,
    target: u64,
) -> anyhow::Result<Option<forge::Comment>> {
    let comments = if target == commented.number {
        commented.comments.clone()
    } else {
        forge.issue(target).await?.comments
    };
    Ok(forge::find_marked(&comments, tracking::MARKER).cloned())
}
