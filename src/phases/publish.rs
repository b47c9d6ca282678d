//! publish: trust nothing handed over, re-check it all, decide the outcome,
//! write the evidence (the PR body), and, for a run a forge event started,
//! push the branch, open or update the one pull request, file an epic's
//! children and set the issue's label. A local run ends with `evidence.md`
//! and `changes.patch`.

use super::{Context, PhaseResult, forge_sync, write_evidence};
use crate::ci::event::EventRequest;
use crate::config::{Config, Unfinished};
use crate::forge::{self, Forge, PullRequestSpec, tracking};
use crate::records::{Children, FixRecord, Review, Ticket, VerifyRecord};
use crate::run_dir::artifact::{self, PATCH};
use crate::run_dir::manifest::PullRequestRef;
use crate::run_dir::sha256_hex;
use crate::settings::env;
use crate::trigger::approval::{self, Approval};
use crate::types::{Outcome, PhaseName, ReviewVerdict, Route};

/// GitHub refuses bodies over 65,536 characters; the evidence is cut first.
const BODY_LIMIT: usize = 60_000;

pub async fn run(context: &mut Context<'_>) -> anyhow::Result<PhaseResult> {
    // The config was read from the base commit and checked against the pin
    // (`Settings::pinned`): a run cannot loosen its own rules.
    let config = context.config().clone();
    recompute_issue(context)?;
    // Publish decides `done` only from its own checks, never from what the
    // manifest (which is not hashed) says. A run another phase ended with
    // another outcome is finalised as it stands.
    let mut awaiting = None;
    let end = match context.run.manifest.outcome {
        Outcome::Running | Outcome::Done => {
            let end = judge(context, &config)?;
            checkpoint(context, &config, end, &mut awaiting).await?
        }
        _ => PhaseResult::Finished,
    };
    let outcome = match &end {
        PhaseResult::Stop(outcome, _) => *outcome,
        _ => context.run.manifest.outcome,
    };
    // The evidence shows the outcome publish is about to record; if the
    // forge side then fails, the outcome goes back to what it was, so the
    // job fails (exit 2) and a rerun of publish tries again.
    let before = (
        context.run.manifest.outcome,
        context.run.manifest.reason.clone(),
    );
    if let PhaseResult::Stop(outcome, reason) = &end {
        context.run.manifest.outcome = *outcome;
        context.run.manifest.reason = (*outcome != Outcome::Done).then(|| reason.clone());
    }
    let evidence = write_evidence(context, Some(&config))?;
    let markdown = context
        .run
        .read_text(artifact::EVIDENCE_MARKDOWN)?
        .unwrap_or_default();
    crate::ci::step_summary(&markdown)?;
    let note = if context.run.manifest.forge.is_some() {
        match to_forge(context, &config, outcome, &markdown, awaiting.as_deref()).await {
            Ok(note) => note,
            Err(error) => {
                (context.run.manifest.outcome, context.run.manifest.reason) = before;
                return Err(error);
            }
        }
    } else {
        match context.run.manifest.route {
            _ if outcome != Outcome::Done => format!("outcome {outcome}; evidence written"),
            Route::Epic => format!("{} child issue(s) ready to file", evidence.children.len()),
            _ => "local run: no pull request opened; evidence.md is its body".into(),
        }
    };
    context.record().note = Some(note);
    Ok(end)
}

/// The approval checkpoint (`[scope].approval`), once every other check
/// passed: a run whose patch touches those globs is `done` only when a
/// `/baton approve` was recorded on exactly the commit publish is about to
/// push; otherwise it is `blocked` and its pull request stays a draft, its
/// body naming the commit it waits for (`awaiting`).
async fn checkpoint(
    context: &mut Context<'_>,
    config: &Config,
    end: PhaseResult,
    awaiting: &mut Option<String>,
) -> anyhow::Result<PhaseResult> {
    if !matches!(&end, PhaseResult::Stop(Outcome::Done, _))
        || !context.run.manifest.route.contains(PhaseName::Verify)
    {
        return Ok(end);
    }
    let patch = context.patch()?;
    let plan = context.plan()?;
    let changes = crate::patch::parse(&patch);
    let paths = super::policy_verdict(context, config, &changes, plan.as_ref()).needs_approval;
    if paths.is_empty() {
        return Ok(end);
    }
    if context.run.manifest.forge.is_none() {
        // A local run has nobody to approve it.
        return Ok(PhaseResult::Stop(
            Outcome::Blocked,
            Approval::Missing.reason(&paths),
        ));
    }
    let (settings, forge) = forge_sync::connect(config)?;
    let forge = forge.as_ref();
    let fix = fix_record(context)?;
    let manifest = &context.run.manifest;
    if fix.is_some() {
        // The commit goes on the branch's head: its objects must be here.
        context
            .source
            .fetch_branch(&manifest.branch, Some(&settings.token))?;
    }
    let head = context.source.commit_for(
        &manifest.base_sha,
        &patch,
        &commit_message(manifest, fix.as_ref()),
        fix.as_ref().map(|fix| fix.head_sha.as_str()),
    )?;
    let base = match &config.publish.base {
        Some(base) => base.clone(),
        None => forge.default_branch().await?,
    };
    let approved = match forge.find_pull_request(&manifest.branch, &base).await? {
        Some(pull) => {
            let comments = forge.issue(pull.number).await?.comments;
            approval::last_approved(&comments).map(str::to_owned)
        }
        None => None,
    };
    let approval = Approval::of(approved.as_deref(), &head);
    if let Approval::Valid(sha) = &approval {
        if let Some(run) = context.run.manifest.forge.as_mut() {
            run.approved_head = Some(sha.clone());
        }
        return Ok(end);
    }
    if let Some(run) = context.run.manifest.forge.as_mut() {
        run.approved_head = None;
    }
    *awaiting = Some(head);
    Ok(PhaseResult::Stop(Outcome::Blocked, approval.reason(&paths)))
}

/// The message of the commit publish pushes. It names the run, not the
/// outcome: the same run's patch is always the same commit, so an approval
/// of it survives a rerun of publish.
fn commit_message(
    manifest: &crate::run_dir::manifest::Manifest,
    fix: Option<&FixRecord>,
) -> String {
    let fix = fix
        .map(|fix| {
            format!(
                ": `/baton fix` from @{} (comment {})",
                fix.author, fix.comment
            )
        })
        .unwrap_or_default();
    format!(
        "{} (#{})\n\nbaton run {}{fix}.",
        manifest.issue.title, manifest.issue.number, manifest.run_id
    )
}

/// Tells the pull request a `/baton fix` ended without a change to push;
/// once per fix comment, found again by its marker on a rerun.
async fn fix_unfinished(
    context: &Context<'_>,
    forge: &dyn Forge,
    fix: &FixRecord,
    outcome: Outcome,
) -> anyhow::Result<()> {
    let marker = format!("<!-- baton:fix={} -->", fix.comment);
    let reason = context
        .run
        .manifest
        .reason
        .clone()
        .unwrap_or_else(|| "the run did not finish".into());
    let body = format!(
        "{marker}\nThe `/baton fix` of @{} ended `{outcome}`: {reason}. Nothing was pushed; this pull request is as it was. The run's artifact holds the attempt and its evidence.",
        fix.author
    );
    let comments = forge.issue(fix.pull_request).await?.comments;
    match forge::find_marked(&comments, &marker) {
        Some(existing) => forge.update_comment(existing.id, &body).await?,
        None => {
            forge::create_comment_once(forge, fix.pull_request, &body).await?;
        }
    }
    Ok(())
}

/// A fix run's record (hash-checked with the rest of the run directory).
fn fix_record(context: &Context<'_>) -> anyhow::Result<Option<FixRecord>> {
    if context.run.manifest.route != Route::Fix {
        return Ok(None);
    }
    let fix: FixRecord = context
        .run
        .read_json(artifact::FIX)?
        .ok_or_else(|| crate::bad_input!("fix.json is missing from the run directory"))?;
    Ok(Some(fix))
}

/// Why the patch must not leave the run directory, whatever the outcome
/// says: the policy (scope, protected files, secrets) re-run on the patch
/// itself, and, once verify ran, the patch must be the one it checked.
fn push_refusal(context: &Context<'_>, config: &Config) -> anyhow::Result<Option<String>> {
    let patch = context.patch()?;
    if let Some(reason) = super::policy_stop(context, config, &patch)? {
        return Ok(Some(reason));
    }
    let verify: Option<VerifyRecord> = context.run.read_json(artifact::VERIFY)?;
    if let Some(verify) = verify
        && verify.patch_sha256 != sha256_hex(patch.as_bytes())
    {
        return Ok(Some(
            "changes.patch is not the patch verify checked".to_owned(),
        ));
    }
    Ok(None)
}

/// The forge side of publish. A rejected patch is never pushed; any other
/// outcome keeps its work on the branch, in a pull request that is a draft
/// unless the run is `done` (or, with `[publish].unfinished = "comment"`, in
/// a comment on the issue).
async fn to_forge(
    context: &mut Context<'_>,
    config: &Config,
    outcome: Outcome,
    evidence: &str,
    awaiting: Option<&str>,
) -> anyhow::Result<String> {
    let (settings, forge) = forge_sync::connect(config)?;
    let forge = forge.as_ref();
    let number = context.run.manifest.issue.number;
    let branch = context.run.manifest.branch.clone();
    let mut notes = Vec::new();
    // Checked for every outcome: a run directory that says `failed` is as
    // untrusted as one that says `running`.
    let refusal = if outcome == Outcome::Rejected {
        Some("rejected".to_owned())
    } else {
        push_refusal(context, config)?
    };
    // A fix that waits only for an approval (`awaiting`: every other check
    // passed) is pushed like any run's work, as a draft waiting for
    // `/baton approve` of its commit; anything else short of done is not.
    let unfinished_fix = match fix_record(context)? {
        Some(fix) if outcome != Outcome::Done && awaiting.is_none() => Some(fix),
        _ => None,
    };
    if let Some(refusal) = refusal {
        notes.push(format!("{refusal}: nothing was pushed"));
        if let Some(fix) = &unfinished_fix {
            fix_unfinished(context, forge, fix, outcome).await?;
        }
    } else if let Some(fix) = &unfinished_fix {
        // A fix that did not end `done` would put unverified work on top
        // of a pull request people are reviewing: the branch stays as it
        // was, and the pull request is told why.
        fix_unfinished(context, forge, fix, outcome).await?;
        notes.push(format!(
            "the fix ended {outcome}: nothing was pushed; pull request #{} is as it was",
            fix.pull_request
        ));
    } else if context.run.manifest.route == Route::Epic {
        if outcome == Outcome::Done {
            notes.push(file_children(context, forge).await?);
        }
    } else if context.patch()?.trim().is_empty() {
        notes.push("no change to push".to_owned());
    } else {
        let manifest = &context.run.manifest;
        let title = format!("{} (#{number})", manifest.issue.title);
        let fix = fix_record(context)?;
        let message = commit_message(manifest, fix.as_ref());
        if let Some(fix) = &fix {
            // A fix goes on top of the head it was made for; a branch that
            // moved since would lose a commit to the push. (A rerun of
            // publish finds its own commit there: the same one again.)
            let current = context
                .source
                .fetch_branch(&branch, Some(&settings.token))?;
            let ours = context.source.commit_for(
                &manifest.base_sha,
                &context.patch()?,
                &message,
                Some(&fix.head_sha),
            )?;
            if current != fix.head_sha && current != ours {
                return Err(crate::bad_input!(
                    "{branch} moved from {} to {} since this fix started; nothing was pushed: ask again with `/baton fix`",
                    approval::short(&fix.head_sha),
                    approval::short(&current)
                ));
            }
        }
        let commit = context.source.push_branch(
            &manifest.base_sha,
            &context.patch()?,
            &branch,
            &message,
            Some(&settings.token),
            fix.as_ref().map(|fix| fix.head_sha.as_str()),
        )?;
        notes.push(format!("pushed {branch} at {}", &commit[..12]));
        if outcome == Outcome::Done || config.publish.unfinished == Unfinished::Draft {
            let base = match &config.publish.base {
                Some(base) => base.clone(),
                None => forge.default_branch().await?,
            };
            let spec = PullRequestSpec {
                title,
                body: pull_request_body(
                    number,
                    awaiting
                        .filter(|head| *head == commit)
                        .map(approval::awaiting_marker),
                    fix.as_ref().map(|fix| {
                        format!(
                            "> The last commit, {}, is the `/baton fix` @{} asked for in [this comment]({}).\n",
                            approval::short(&commit),
                            fix.author,
                            fix.url
                        )
                    }),
                    evidence,
                ),
                head: branch.clone(),
                base,
                draft: outcome != Outcome::Done,
            };
            let pull = match forge.find_pull_request(&spec.head, &spec.base).await? {
                Some(existing) => forge.update_pull_request(&existing, &spec).await?,
                None => forge::create_pull_request_once(forge, &spec).await?,
            };
            if outcome == Outcome::Done
                && let Err(error) = forge
                    .request_reviewers(pull.number, &config.publish.reviewers)
                    .await
            {
                tracing::warn!("could not request reviewers: {error}");
            }
            forge_sync::finish_labels(forge, pull.number, outcome).await?;
            notes.push(format!(
                "pull request #{}{}",
                pull.number,
                if pull.draft { " (draft)" } else { "" }
            ));
            if let Some(run) = context.run.manifest.forge.as_mut() {
                run.pull_request = Some(PullRequestRef {
                    number: pull.number,
                    url: pull.url,
                    draft: pull.draft,
                });
            }
        } else {
            let body = format!(
                "{UNFINISHED_MARKER}\nbaton kept this run's unfinished work ({outcome}) on branch `{branch}`; no pull request was opened.\n\n{}",
                cap(evidence)
            );
            let comments = forge.issue(number).await?.comments;
            match forge::find_marked(&comments, UNFINISHED_MARKER) {
                Some(existing) => forge.update_comment(existing.id, &body).await?,
                None => {
                    forge::create_comment_once(forge, number, &body).await?;
                }
            }
            notes.push("unfinished work kept on the branch; see the issue comment".to_owned());
        }
    }
    forge_sync::finish_labels(forge, number, outcome).await?;
    Ok(notes.join("; "))
}

/// The PR body: the marker (and the commit it waits an approval for),
/// then the evidence.
fn pull_request_body(
    issue: u64,
    awaiting: Option<String>,
    fix: Option<String>,
    evidence: &str,
) -> String {
    let awaiting = awaiting.map(|line| format!("{line}\n")).unwrap_or_default();
    let fix = fix.map(|note| format!("\n{note}\n")).unwrap_or_default();
    format!(
        "{}\n{awaiting}{fix}{}",
        tracking::pull_request_marker(issue),
        cap(evidence)
    )
}

fn cap(text: &str) -> String {
    match text.char_indices().nth(BODY_LIMIT) {
        Some((index, _)) => format!(
            "{}\n\n[… evidence cut at {BODY_LIMIT} characters; evidence.md in the run directory has it all]",
            &text[..index]
        ),
        None => text.to_owned(),
    }
}

/// The epic's children as issues, each filed once (their numbers are kept
/// in the manifest as they are filed), and a task list on the parent.
async fn file_children(context: &mut Context<'_>, forge: &dyn Forge) -> anyhow::Result<String> {
    let children: Children = context
        .run
        .read_json(artifact::CHILDREN)?
        .ok_or_else(|| crate::bad_input!("children.json is missing from the run directory"))?;
    let parent = context.run.manifest.issue.number;
    for (index, child) in children.children.iter().enumerate().skip(filed(context)) {
        let marker = child_marker(parent, index);
        let body = format!(
            "{}\n\n_Split from #{parent} by baton._\n{marker}",
            child.body
        );
        let number = match forge.create_issue(&child.title, &body).await {
            Ok(issue) => issue.number,
            Err(error) if error.is_no_answer() => {
                tracing::warn!("{error}; looking for the child before filing it again");
                let open = forge.list_issues("").await?;
                match open.iter().find(|issue| issue.body.contains(&marker)) {
                    Some(issue) => issue.number,
                    None => forge.create_issue(&child.title, &body).await?.number,
                }
            }
            Err(error) => return Err(error.into()),
        };
        // The sweep picks the children up: each runs its own pipeline.
        let sweep_label = context.config().triggers.sweep_label.clone();
        forge.add_labels(number, &[sweep_label]).await?;
        if let Some(run) = context.run.manifest.forge.as_mut() {
            run.children.push(number);
        }
        // Saved at once: a publish that dies here never files it again.
        context.run.save()?;
    }
    // The parent as it is now: people may have edited it during the run.
    let current = forge.issue(parent).await?.body;
    let numbers = context
        .run
        .manifest
        .forge
        .as_ref()
        .map(|run| run.children.clone())
        .unwrap_or_default();
    let list: String = numbers
        .iter()
        .map(|number| format!("- [ ] #{number}\n"))
        .collect();
    let original = current
        .split(CHILDREN_MARKER)
        .next()
        .unwrap_or_default()
        .trim_end();
    forge
        .update_issue_body(parent, &format!("{original}\n\n{CHILDREN_MARKER}\n{list}"))
        .await?;
    Ok(format!("{} child issue(s) filed", numbers.len()))
}

const CHILDREN_MARKER: &str = "<!-- baton:children -->";
/// The first line of the comment that keeps an unfinished run's work.
const UNFINISHED_MARKER: &str = "<!-- baton:unfinished -->";

/// The hidden line that names a child issue: found again after a create
/// that got no answer.
fn child_marker(parent: u64, index: usize) -> String {
    format!("<!-- baton:child={parent}/{index} -->")
}

fn filed(context: &Context<'_>) -> usize {
    context
        .run
        .manifest
        .forge
        .as_ref()
        .map_or(0, |run| run.children.len())
}

/// The issue number and branch come from the ticket (hash-checked with the
/// rest of the run directory), not from what the manifest says.
fn recompute_issue(context: &mut Context<'_>) -> anyhow::Result<()> {
    let ticket: Ticket = context
        .run
        .read_json(artifact::TICKET)?
        .ok_or_else(|| crate::bad_input!("ticket.json is missing from the run directory"))?;
    // In CI the event that started this workflow run is the anchor no job
    // could rewrite: the ticket must be the issue it names.
    if context.run.manifest.forge.is_some()
        && let (Some(name), Some(path)) = (
            env::get(env::GITHUB_EVENT_NAME),
            env::get(env::GITHUB_EVENT_PATH),
        )
        && let Ok(EventRequest::Start {
            issue, fix_comment, ..
        }) = crate::ci::event::read(
            &name,
            std::path::Path::new(&path),
            &context.config().triggers.label,
        )
    {
        if issue != ticket.number {
            return Err(crate::bad_input!(
                "ticket.json is issue #{} but this workflow run was started for issue #{issue}; refusing to publish a run directory that belongs to another issue",
                ticket.number
            ));
        }
        // Whether this is a fix (pushed on top of the pull request) or a
        // run (one commit on the base, replacing the branch) is the event's
        // word, not the manifest's: a route edited in the run directory
        // must not turn one into the other.
        let is_fix = context.run.manifest.route == Route::Fix;
        let fixing = match (fix_comment, is_fix) {
            (Some(comment), true) => fix_record(context)?.is_some_and(|fix| fix.comment == comment),
            (None, false) => true,
            _ => false,
        };
        if !fixing {
            return Err(crate::bad_input!(
                "the run directory's route `{}` does not match this workflow run's event ({}); refusing to publish",
                context.run.manifest.route,
                fix_comment.map_or_else(
                    || "no /baton fix".to_owned(),
                    |comment| format!("/baton fix of comment {comment}")
                )
            ));
        }
    }
    let manifest = &mut context.run.manifest;
    manifest.issue.number = ticket.number;
    manifest.branch = format!("baton/issue-{}", ticket.number);
    Ok(())
}

/// The checks publish makes on its own, for a run that reached it running.
fn judge(context: &Context<'_>, config: &Config) -> anyhow::Result<PhaseResult> {
    let route = context.run.manifest.route;
    if route.contains(PhaseName::Verify) {
        let patch = context.patch()?;
        let verify: Option<VerifyRecord> = context.run.read_json(artifact::VERIFY)?;
        let Some(verify) = verify else {
            return Ok(PhaseResult::Stop(
                Outcome::Failed,
                "verify never ran: a gate that did not run counts as failed".into(),
            ));
        };
        let current = context
            .run
            .sha256_of(PATCH)
            .map_or_else(|| sha256_hex(b""), str::to_owned);
        if verify.patch_sha256 != current || sha256_hex(patch.as_bytes()) != current {
            return Ok(PhaseResult::Stop(
                Outcome::Rejected,
                "changes.patch is not the patch verify checked; refusing to publish an unverified change".into(),
            ));
        }
        let changes = crate::patch::parse(&patch);
        let plan = context.plan()?;
        let verdict = super::policy_verdict(context, config, &changes, plan.as_ref());
        if !verdict.is_clean() {
            return Ok(PhaseResult::Stop(
                Outcome::Rejected,
                format!("policy violation: {}", verdict.summary()),
            ));
        }
        if config.gates.is_empty() {
            return Ok(PhaseResult::Stop(
                Outcome::Blocked,
                "the base commit's config defines no gates".into(),
            ));
        }
        for gate in config.gates.iter().filter(|gate| gate.required) {
            match verify.gates.iter().find(|result| result.name == gate.name) {
                Some(result) if result.passed => {}
                Some(_) => {
                    return Ok(PhaseResult::Stop(
                        Outcome::Failed,
                        format!("required gate `{}` failed", gate.name),
                    ));
                }
                None => {
                    return Ok(PhaseResult::Stop(
                        Outcome::Failed,
                        format!(
                            "required gate `{}` did not run; a gate that did not run counts as failed",
                            gate.name
                        ),
                    ));
                }
            }
        }
        if route.contains(PhaseName::Tests) {
            let tests: Option<crate::records::TestsRecord> =
                context.run.read_json(artifact::TESTS)?;
            if !tests.is_some_and(|tests| tests.red) {
                return Ok(PhaseResult::Stop(
                    Outcome::Blocked,
                    "the tests were never red on the base commit".into(),
                ));
            }
            if verify.tests_intact == Some(false) {
                return Ok(PhaseResult::Stop(
                    Outcome::Blocked,
                    "the tests written first were changed after the tests phase".into(),
                ));
            }
        }
    }
    if route.contains(PhaseName::Review) {
        let review: Option<Review> = context.run.read_json(artifact::REVIEW)?;
        match review {
            Some(review) if review.verdict == ReviewVerdict::Approve => {}
            Some(_) => {
                return Ok(PhaseResult::Stop(
                    Outcome::Blocked,
                    "the review requested changes".into(),
                ));
            }
            None => {
                return Ok(PhaseResult::Stop(
                    Outcome::Blocked,
                    "the review did not finish".into(),
                ));
            }
        }
    }
    if route.contains(PhaseName::Split) && context.run.read(artifact::CHILDREN)?.is_none() {
        return Ok(PhaseResult::Stop(
            Outcome::Blocked,
            "the split did not finish".into(),
        ));
    }
    Ok(PhaseResult::Stop(Outcome::Done, "done".into()))
}
