//! The forges a run starts from and publishes to, behind one `Forge` trait
//! over baton's own types: GitHub (`github.rs`, octocrab) and Forgejo or
//! Codeberg (`forgejo.rs`, reqwest). Wire structs stay in those files; nothing
//! past this module knows which forge it talks to.
//!
//! Which forge, its API base, the repository and the token come from the
//! CI environment (SPEC §9) through `ForgeSettings::from_environment`.

pub mod client;
pub mod forgejo;
pub mod github;
pub mod tracking;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ForgeConfig;
use crate::secrets::Secret;
use crate::settings::env;
pub use crate::types::ForgeKind;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An issue (or the issue side of a pull request) with its comments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub url: String,
    pub author: String,
    /// Opened with baton's own token (an epic's child), by the rule of
    /// `Comment::from_baton`. Filled in by `Forge::issue` only.
    #[serde(default)]
    pub from_baton: bool,
    pub labels: Vec<String>,
    pub is_pull_request: bool,
    pub comments: Vec<Comment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub id: u64,
    pub author: String,
    /// Written with baton's own token: its author is the token's login when
    /// the forge tells it (`GET /user`), else (a GitHub Actions token, which
    /// may not ask) a bot account.
    pub from_baton: bool,
    pub body: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub url: String,
    pub draft: bool,
    pub title: String,
    pub body: String,
    /// The head branch's name.
    pub head: String,
    /// `owner/name` of the repository the head branch lives in.
    pub head_repository: String,
    /// GitHub's GraphQL id (draft ↔ ready goes through GraphQL).
    pub node_id: String,
    /// The head branch's commit: what an approval is bound to.
    pub head_sha: String,
}

/// What a pull request should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestSpec {
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    pub draft: bool,
}

/// A user's access to the repository, from the forge (never from a payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    None,
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

impl Permission {
    /// Write, maintain or admin: who may start a run.
    pub fn can_write(self) -> bool {
        self >= Self::Write
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("{forge} API {request} answered {status}: {message}")]
    Status {
        forge: ForgeKind,
        request: String,
        status: u16,
        message: String,
    },
    /// No answer to a write: it may have happened. Check before resending.
    #[error("{forge} API {request}: no answer ({reason})")]
    NoAnswer {
        forge: ForgeKind,
        request: String,
        reason: String,
    },
    #[error(
        "{forge} API {request}: still rate limited after {retries} wait(s) (the next would be {wait_s} s; baton waits at most [forge].max_wait_s each time); run the job again later"
    )]
    RateLimited {
        forge: ForgeKind,
        request: String,
        wait_s: u64,
        retries: u32,
    },
    #[error("{forge} API {request}: unreadable answer: {message}")]
    Unreadable {
        forge: ForgeKind,
        request: String,
        message: String,
    },
}

impl ForgeError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Status { status: 404, .. })
    }

    pub fn is_no_answer(&self) -> bool {
        matches!(self, Self::NoAnswer { .. })
    }
}

pub type Result<T> = std::result::Result<T, ForgeError>;

/// The label on an issue while its run is running (set by intake, and by a
/// sweep before it dispatches).
pub const RUNNING_LABEL: &str = "baton:running";

/// The operations baton needs from a forge.
pub trait Forge: Send + Sync {
    fn kind(&self) -> ForgeKind;

    /// `owner/name`.
    fn repository(&self) -> &str;

    fn default_branch(&self) -> BoxFuture<'_, Result<String>>;

    /// The issue with its labels and every comment.
    fn issue(&self, number: u64) -> BoxFuture<'_, Result<Issue>>;

    fn add_labels<'a>(&'a self, number: u64, labels: &'a [String]) -> BoxFuture<'a, Result<()>>;

    /// Removes a label; a label the issue does not have is not an error.
    fn remove_label<'a>(&'a self, number: u64, label: &'a str) -> BoxFuture<'a, Result<()>>;

    fn create_comment<'a>(&'a self, number: u64, body: &'a str) -> BoxFuture<'a, Result<Comment>>;

    fn update_comment<'a>(&'a self, id: u64, body: &'a str) -> BoxFuture<'a, Result<()>>;

    /// The open pull request from `head` (a branch of this repository, never
    /// a fork's) into `base`.
    fn find_pull_request<'a>(
        &'a self,
        head: &'a str,
        base: &'a str,
    ) -> BoxFuture<'a, Result<Option<PullRequest>>>;

    fn create_pull_request<'a>(
        &'a self,
        spec: &'a PullRequestSpec,
    ) -> BoxFuture<'a, Result<PullRequest>>;

    /// One pull request by number, open or not.
    fn pull_request(&self, number: u64) -> BoxFuture<'_, Result<PullRequest>>;

    /// Title, body and draft state brought to `spec`.
    fn update_pull_request<'a>(
        &'a self,
        existing: &'a PullRequest,
        spec: &'a PullRequestSpec,
    ) -> BoxFuture<'a, Result<PullRequest>>;

    fn request_reviewers<'a>(
        &'a self,
        number: u64,
        reviewers: &'a [String],
    ) -> BoxFuture<'a, Result<()>>;

    fn permission<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Permission>>;

    fn create_issue<'a>(&'a self, title: &'a str, body: &'a str) -> BoxFuture<'a, Result<Issue>>;

    fn update_issue_body<'a>(&'a self, number: u64, body: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Every open pull request, every page.
    fn open_pull_requests(&self) -> BoxFuture<'_, Result<Vec<PullRequest>>>;

    /// Open issues (not pull requests) with `label`, oldest first, every page.
    fn list_issues<'a>(&'a self, label: &'a str) -> BoxFuture<'a, Result<Vec<Issue>>>;

    fn dispatch_workflow<'a>(
        &'a self,
        workflow: &'a str,
        reference: &'a str,
        inputs: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<()>>;

    /// A reaction (`eyes`, `+1`…) on an issue or pull-request comment.
    fn react<'a>(&'a self, comment: u64, content: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Cancels a workflow run. `Ok(false)`: this forge's API cannot.
    fn cancel_run(&self, run: u64) -> BoxFuture<'_, Result<bool>>;

    /// Re-runs the last job of workflow run `run` whose name is `job`, and
    /// the jobs that need it. `Ok(None)`: this forge's API cannot;
    /// `Ok(Some(false))`: the run has no such job.
    fn rerun_job<'a>(&'a self, run: u64, job: &'a str) -> BoxFuture<'a, Result<Option<bool>>>;
}

/// Where the forge is and how to talk to it.
#[derive(Debug, Clone)]
pub struct ForgeSettings {
    pub kind: ForgeKind,
    pub api_url: String,
    /// `GITHUB_SERVER_URL`: for links to the run.
    pub server_url: String,
    pub repository: String,
    pub token: Secret,
    pub timeout: Duration,
    pub policy: client::RetryPolicy,
}

impl ForgeSettings {
    /// SPEC §9: Forgejo when `FORGEJO_ACTIONS=true` or `[forge].kind =
    /// "forgejo"`; API base from `GITHUB_API_URL`, else `[forge].api_url`;
    /// repository from `GITHUB_REPOSITORY`; token from `BATON_FORGE_TOKEN`,
    /// else `GITHUB_TOKEN` — a step that needs the forge and has none exits 2
    /// naming both.
    pub fn from_environment(config: &ForgeConfig) -> anyhow::Result<Self> {
        let kind = if env::get(env::FORGEJO_ACTIONS).is_some_and(|value| value == "true") {
            ForgeKind::Forgejo
        } else {
            config.kind.unwrap_or(ForgeKind::GitHub)
        };
        let token = env::get(env::BATON_FORGE_TOKEN)
            .or_else(|| env::get(env::GITHUB_TOKEN))
            .ok_or_else(|| {
                crate::bad_input!(
                    "this step talks to {kind} and has no token: set ${} (or ${}) in the job's env",
                    env::BATON_FORGE_TOKEN,
                    env::GITHUB_TOKEN
                )
            })?;
        let repository = env::get(env::GITHUB_REPOSITORY)
            .filter(|name| {
                name.split_once('/')
                    .is_some_and(|(owner, repo)| !owner.is_empty() && !repo.is_empty())
            })
            .ok_or_else(|| {
                crate::bad_input!(
                    "${} must name the repository as owner/name",
                    env::GITHUB_REPOSITORY
                )
            })?;
        let default_api = match kind {
            ForgeKind::GitHub => "https://api.github.com".to_owned(),
            ForgeKind::Forgejo => String::new(),
        };
        let api_url = env::get(env::GITHUB_API_URL)
            .or_else(|| config.api_url.clone())
            .unwrap_or(default_api);
        if api_url.is_empty() {
            return Err(crate::bad_input!(
                "no API address for Forgejo: set ${} or [forge].api_url (`<server>/api/v1`)",
                env::GITHUB_API_URL
            ));
        }
        let server_url = env::get(env::GITHUB_SERVER_URL).unwrap_or_else(|| match kind {
            ForgeKind::GitHub => "https://github.com".to_owned(),
            ForgeKind::Forgejo => api_url.trim_end_matches("/api/v1").to_owned(),
        });
        Ok(Self {
            kind,
            api_url: api_url.trim_end_matches('/').to_owned(),
            server_url: server_url.trim_end_matches('/').to_owned(),
            repository,
            token: Secret::new(token),
            timeout: Duration::from_secs(config.timeout_s),
            policy: client::RetryPolicy {
                max_wait: Duration::from_secs(config.max_wait_s),
                ..client::RetryPolicy::default()
            },
        })
    }

    /// The forge client these settings describe. Call it inside the Tokio
    /// runtime (octocrab starts its service there).
    pub fn connect(&self) -> anyhow::Result<Box<dyn Forge>> {
        Ok(match self.kind {
            ForgeKind::GitHub => Box::new(github::GitHub::new(self)?),
            ForgeKind::Forgejo => Box::new(forgejo::Forgejo::new(self)?),
        })
    }
}

/// Finds the comment that starts with `marker` and was written with baton's
/// token, so a person who pastes the marker cannot take it over.
pub fn find_marked<'a>(comments: &'a [Comment], marker: &str) -> Option<&'a Comment> {
    comments
        .iter()
        .find(|comment| comment.from_baton && comment.body.trim_start().starts_with(marker))
}

/// Creates a comment; when the forge did not answer, looks for it before
/// trying again, so a comment is never posted twice.
pub async fn create_comment_once(forge: &dyn Forge, number: u64, body: &str) -> Result<Comment> {
    match forge.create_comment(number, body).await {
        Err(error) if error.is_no_answer() => {
            tracing::warn!("{error}; checking whether the comment was posted before trying again");
            let issue = forge.issue(number).await?;
            if let Some(comment) = issue
                .comments
                .iter()
                .rev()
                .find(|comment| comment.body.trim() == body.trim())
            {
                return Ok(comment.clone());
            }
            forge.create_comment(number, body).await
        }
        other => other,
    }
}

/// Creates a pull request; when the forge did not answer, looks for it
/// before trying again, so a pull request is never opened twice.
pub async fn create_pull_request_once(
    forge: &dyn Forge,
    spec: &PullRequestSpec,
) -> Result<PullRequest> {
    match forge.create_pull_request(spec).await {
        Err(error) if error.is_no_answer() => {
            tracing::warn!(
                "{error}; checking whether the pull request was opened before trying again"
            );
            if let Some(existing) = forge.find_pull_request(&spec.head, &spec.base).await? {
                return Ok(existing);
            }
            forge.create_pull_request(spec).await
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comment(body: &str, author: &str, from_baton: bool) -> Comment {
        Comment {
            id: 1,
            author: author.into(),
            from_baton,
            body: body.into(),
            url: String::new(),
        }
    }

    #[test]
    fn a_pasted_marker_does_not_take_over_the_tracking_comment() {
        let comments = [
            comment("<!-- baton:tracking -->\nfake", "mallory", false),
            comment("<!-- baton:tracking -->\nreal", "github-actions[bot]", true),
        ];
        let found = find_marked(&comments, "<!-- baton:tracking -->").unwrap();
        assert!(found.body.ends_with("real"));
    }

    #[test]
    fn permissions_order() {
        assert!(!Permission::Read.can_write());
        assert!(!Permission::Triage.can_write());
        assert!(Permission::Write.can_write());
        assert!(Permission::Maintain.can_write());
        assert!(Permission::Admin.can_write());
    }
}
