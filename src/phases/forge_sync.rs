//! What phases tell the forge of a run a forge event started: the ticket is
//! fetched at intake, the tracking comment is created once and edited as
//! phases end, and the issue's `baton:<state>` label follows the run.

use super::Context;
use crate::forge::{self, Forge, ForgeSettings, Issue, tracking};
use crate::records::{Comment, Ticket, UNTRUSTED_WARNING};
use crate::run_dir::manifest::{ForgeRun, Manifest};
use crate::types::Outcome;

use crate::forge::RUNNING_LABEL;

/// `baton:<outcome>` for a run that has ended.
pub fn outcome_label(outcome: Outcome) -> String {
    format!("baton:{outcome}")
}

/// Every state label baton sets, so a new run clears the last one's.
fn state_labels() -> Vec<String> {
    [
        Outcome::Running,
        Outcome::Done,
        Outcome::Blocked,
        Outcome::Failed,
        Outcome::BudgetExceeded,
        Outcome::Cancelled,
        Outcome::Rejected,
    ]
    .into_iter()
    .map(outcome_label)
    .collect()
}

/// The forge the environment names, connected.
pub fn connect(
    context_config: &crate::config::Config,
) -> anyhow::Result<(ForgeSettings, Box<dyn Forge>)> {
    let settings = ForgeSettings::from_environment(&context_config.forge)?;
    let forge = settings.connect()?;
    Ok((settings, forge))
}

/// The issue as the ticket: untrusted text, baton's own comments left out.
pub fn ticket_from(issue: &Issue) -> Ticket {
    Ticket {
        untrusted: true,
        warning: UNTRUSTED_WARNING.into(),
        number: issue.number,
        title: issue.title.clone(),
        body: issue.body.clone(),
        labels: issue.labels.clone(),
        url: issue.url.clone(),
        author: issue.author.clone(),
        comments: issue
            .comments
            .iter()
            .filter(|comment| !(comment.from_baton && comment.body.contains(tracking::MARKER)))
            .map(|comment| Comment {
                author: comment.author.clone(),
                body: comment.body.clone(),
            })
            .collect(),
    }
}

/// At intake: the tracking comment (found again by its marker on a comment
/// baton wrote, else created once) and the `baton:running` label.
pub async fn start(
    forge: &dyn Forge,
    manifest: &mut Manifest,
    issue: &Issue,
) -> anyhow::Result<()> {
    let run_url = crate::ci::run_url();
    let body = tracking::render(manifest, run_url.as_deref(), None);
    let comment = match forge::find_marked(&issue.comments, tracking::MARKER) {
        Some(existing) => {
            forge.update_comment(existing.id, &body).await?;
            existing.id
        }
        None => {
            forge::create_comment_once(forge, issue.number, &body)
                .await?
                .id
        }
    };
    for label in state_labels()
        .iter()
        .filter(|label| issue.labels.contains(label))
    {
        forge.remove_label(issue.number, label).await?;
    }
    forge
        .add_labels(issue.number, &[RUNNING_LABEL.to_owned()])
        .await?;
    manifest.forge = Some(ForgeRun {
        kind: forge.kind(),
        repository: forge.repository().to_owned(),
        tracking_comment: Some(comment),
        run_url,
        pull_request: None,
        children: Vec::new(),
        approved_head: None,
    });
    Ok(())
}

/// Brings the tracking comment up to date with the manifest. Phases call
/// it when they end; a job without a token (model and verify jobs run
/// without write access) skips it, and a failure is logged, not fatal:
/// the run directory stays the record.
pub async fn sync(context: &Context<'_>, note: Option<&str>) {
    let Some(run) = &context.run.manifest.forge else {
        return;
    };
    let Some(comment) = run.tracking_comment else {
        return;
    };
    let Ok((_, forge)) = connect(context.config()) else {
        tracing::debug!("no forge token in this job: the tracking comment is left as it is");
        return;
    };
    let body = tracking::render(&context.run.manifest, run.run_url.as_deref(), note);
    let body = context.run.portable(&crate::secrets::redact(&body));
    // The id comes from the manifest, which is not hashed: it is used only
    // if it names baton's own tracking comment on this issue.
    let number = context.run.manifest.issue.number;
    let target = match forge.issue(number).await {
        Ok(issue) => issue
            .comments
            .iter()
            .find(|each| {
                each.id == comment && each.from_baton && each.body.starts_with(tracking::MARKER)
            })
            .or_else(|| forge::find_marked(&issue.comments, tracking::MARKER))
            .map(|each| each.id),
        Err(error) => {
            tracing::warn!(
                "could not read issue #{number} to update its tracking comment: {error}"
            );
            return;
        }
    };
    let Some(target) = target else {
        tracing::warn!("issue #{number} has no tracking comment of baton's to update");
        return;
    };
    if let Err(error) = forge.update_comment(target, &body).await {
        tracing::warn!("could not update the tracking comment: {error}");
    }
}

/// At the end of publish: on the issue (or the pull request) whatever
/// `baton:<state>` label it carries is replaced by `baton:<outcome>`.
pub async fn finish_labels(forge: &dyn Forge, number: u64, outcome: Outcome) -> anyhow::Result<()> {
    let current = forge.issue(number).await?.labels;
    let wanted = outcome_label(outcome);
    for label in state_labels()
        .iter()
        .filter(|label| **label != wanted && current.contains(label))
    {
        forge.remove_label(number, label).await?;
    }
    if !current.contains(&wanted) {
        forge.add_labels(number, &[wanted]).await?;
    }
    Ok(())
}

/// Whether the person behind an event may start a run: write access or
/// more, asked of the forge. Anyone else gets a short reply on the issue and
/// nothing runs; the refusal is returned for the job's log.
pub async fn authorize(
    config: &crate::config::Config,
    issue: u64,
    sender: &str,
) -> anyhow::Result<Option<String>> {
    let (_, forge) = connect(config)?;
    let permission = forge.permission(sender).await?;
    if permission.can_write() {
        return Ok(None);
    }
    let reason = format!(
        "@{sender} has {} access to {}; baton starts runs only for people with write access or more",
        serde_json::to_value(permission)?.as_str().unwrap_or("no"),
        forge.repository()
    );
    forge::create_comment_once(
        forge.as_ref(),
        issue,
        &format!("baton did not start: {reason}."),
    )
    .await?;
    Ok(Some(reason))
}
