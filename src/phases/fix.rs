//! `/baton fix <text>` runs: intake reads the comment again from the forge
//! (the dispatch carries only its id), checks its author's permission once
//! more, fetches the pull request's branch and carries its change onto the
//! base commit as the run's first patch. Repair then works the feedback in,
//! verify gates the result on a clean checkout, and publish pushes it as a
//! new commit on top of the branch.

use crate::bad_input;
use crate::forge::{Forge, ForgeSettings};
use crate::git::Source;
use crate::records::FixRecord;
use crate::settings::Settings;
use crate::trigger::command::{self, Verb};

/// The fix record and the patch (the pull request's change against the
/// base commit) a fix run starts from.
pub async fn prepare(
    settings: &Settings,
    forge: &dyn Forge,
    source: &Source,
    issue: u64,
    comment: u64,
) -> anyhow::Result<(FixRecord, String)> {
    let config = &settings.config;
    let branch = format!("baton/issue-{issue}");
    let base = match &config.publish.base {
        Some(base) => base.clone(),
        None => forge.default_branch().await?,
    };
    let pull = forge
        .find_pull_request(&branch, &base)
        .await?
        .ok_or_else(|| {
            bad_input!(
                "issue #{issue} has no open pull request from `{branch}` to fix; `/baton run` starts a run"
            )
        })?;
    let comments = forge.issue(pull.number).await?.comments;
    let found = comments
        .iter()
        .find(|each| each.id == comment)
        .ok_or_else(|| {
            bad_input!(
                "comment {comment} is not on pull request #{}: a fix is asked on the pull request",
                pull.number
            )
        })?;
    let text = match command::parse(&found.body) {
        Some(Ok(Verb::Fix(text))) if !text.trim().is_empty() => text,
        _ => {
            return Err(bad_input!(
                "comment {comment} is not a `/baton fix <text>` command"
            ));
        }
    };
    if found.from_baton {
        return Err(bad_input!(
            "comment {comment} was written by baton itself; baton does not start runs for itself"
        ));
    }
    // Asked again: the comment may have been edited, or its author's
    // access changed, since `baton command` read it.
    if !forge.permission(&found.author).await?.can_write() {
        return Err(bad_input!(
            "@{} has no write access to {}; baton repairs a pull request only for people with write access",
            found.author,
            forge.repository()
        ));
    }
    let token = ForgeSettings::from_environment(&config.forge)?.token;
    let head = source.fetch_branch(&branch, Some(&token))?;
    if !pull.head_sha.is_empty() && pull.head_sha != head {
        tracing::warn!(
            "pull request #{} names head {} but origin's {branch} is at {head}; the fix builds on origin's",
            pull.number,
            pull.head_sha
        );
    }
    let patch = source.carried_patch(&source.head_sha()?, &head)?;
    Ok((
        FixRecord {
            untrusted: true,
            comment,
            author: found.author.clone(),
            text,
            url: found.url.clone(),
            pull_request: pull.number,
            head_sha: head,
        },
        patch,
    ))
}
