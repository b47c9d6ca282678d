//! GitHub over octocrab: octocrab carries the requests (auth, TLS, timeouts;
//! built without its `retry` feature, which would resend POSTs), and
//! `client::Client` decides on rate limits and retries. Wire structs follow
//! the REST API pages linked above each one and convert to baton's types.

use std::collections::BTreeMap;

use octocrab::Octocrab;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{Client, Method, NoAnswer, Response, Transport, segment};
use super::{
    BoxFuture, Comment, Forge, ForgeError, ForgeKind, ForgeSettings, Issue, Permission,
    PullRequest, PullRequestSpec, Result,
};

const PAGE: usize = 100;
/// Who writes with a workflow's `GITHUB_TOKEN`.
const ACTIONS_BOT: &str = "github-actions[bot]";
/// No listing baton needs is longer; a `Link: next` that never ends is cut here.
const MAX_PAGES: usize = 100;

struct OctocrabTransport {
    octocrab: Octocrab,
    api_url: String,
}

impl Transport for OctocrabTransport {
    fn send<'a>(
        &'a self,
        method: Method,
        path: &'a str,
        body: Option<&'a Value>,
    ) -> BoxFuture<'a, std::result::Result<Response, NoAnswer>> {
        Box::pin(async move {
            // GraphQL's absolute address passes through as it is.
            let uri = if path.starts_with("http") {
                path.to_owned()
            } else {
                format!("{}{path}", self.api_url)
            };
            let sent = match method {
                Method::Get => self.octocrab._get(uri).await,
                Method::Post => self.octocrab._post(uri, body).await,
                Method::Patch => self.octocrab._patch(uri, body).await,
                Method::Delete => self.octocrab._delete(uri, body).await,
            };
            let response = sent.map_err(|error| NoAnswer(error.to_string()))?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_ascii_lowercase(),
                        value.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let body = self
                .octocrab
                .body_to_string(response)
                .await
                .map_err(|error| NoAnswer(format!("the body did not arrive: {error}")))?;
            Ok(Response {
                status,
                headers,
                body,
            })
        })
    }
}

pub struct GitHub {
    client: Client<OctocrabTransport>,
    repository: String,
    graphql_url: String,
    /// The token's login, when GitHub tells it (asked again after a failure).
    login: tokio::sync::OnceCell<String>,
}

impl GitHub {
    pub fn new(settings: &ForgeSettings) -> anyhow::Result<Self> {
        // The token goes only to the API base's host: octocrab leaves it off
        // requests to anywhere else. Only scheme and host: octocrab puts a
        // base path in front of every path, and GraphQL on GitHub Enterprise
        // lives beside /api/v3, not under it. Requests carry absolute URLs.
        let origin = origin_of(&settings.api_url);
        let octocrab = Octocrab::builder()
            .base_uri(origin.as_str())
            .map_err(|error| {
                crate::bad_input!("{} is not a usable API address: {error}", settings.api_url)
            })?
            .personal_token(settings.token.expose().to_owned())
            .set_connect_timeout(Some(settings.timeout))
            .set_read_timeout(Some(settings.timeout))
            .set_write_timeout(Some(settings.timeout))
            .build()
            .map_err(|error| anyhow::anyhow!("cannot set up the GitHub client: {error}"))?;
        // GitHub Enterprise serves REST under /api/v3 and GraphQL at /api/graphql.
        let graphql_url = match settings.api_url.strip_suffix("/api/v3") {
            Some(host) => format!("{host}/api/graphql"),
            None => format!("{}/graphql", settings.api_url),
        };
        Ok(Self {
            client: Client {
                kind: ForgeKind::GitHub,
                transport: OctocrabTransport {
                    octocrab,
                    api_url: settings.api_url.clone(),
                },
                policy: settings.policy,
            },
            repository: settings.repository.clone(),
            graphql_url,
            login: tokio::sync::OnceCell::new(),
        })
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}{rest}", self.repository)
    }

    /// `GET /user`: answers for a personal token, refuses an Actions token.
    async fn own_login(&self) -> Option<&str> {
        self.login
            .get_or_try_init(|| async {
                self.client
                    .json::<WireUser>(Method::Get, "/user", None, true)
                    .await
                    .map(|user| user.login)
            })
            .await
            .ok()
            .map(String::as_str)
    }

    async fn comments(&self, number: u64) -> Result<Vec<Comment>> {
        let mut comments = Vec::new();
        for page in 1..=MAX_PAGES {
            let path = self.repo_path(&format!(
                "/issues/{number}/comments?per_page={PAGE}&page={page}"
            ));
            let response = self.client.request(Method::Get, &path, None, true).await?;
            let batch: Vec<WireComment> = self.client.decode(Method::Get, &path, &response)?;
            let more = has_next(&response, batch.len());
            let login = self.own_login().await;
            comments.extend(batch.into_iter().map(|wire| wire.into_comment(login)));
            if !more {
                break;
            }
        }
        Ok(comments)
    }

    async fn graphql(&self, mutation: &str, node_id: &str) -> Result<()> {
        let query = format!(
            "mutation($id: ID!) {{ {mutation}(input: {{pullRequestId: $id}}) {{ pullRequest {{ isDraft }} }} }}"
        );
        let body = json!({"query": query, "variables": {"id": node_id}});
        let response = self
            .client
            .request(Method::Post, &self.graphql_url, Some(&body), true)
            .await?;
        let answer: Value = self.client.decode(Method::Post, "/graphql", &response)?;
        if let Some(errors) = answer.get("errors") {
            return Err(ForgeError::Status {
                forge: ForgeKind::GitHub,
                request: format!("POST /graphql {mutation}"),
                status: response.status,
                message: errors.to_string(),
            });
        }
        Ok(())
    }
}

/// `https://host[:port]` of a URL.
fn origin_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split('/').next().unwrap_or(rest);
            format!("{scheme}://{host}")
        }
        None => url.to_owned(),
    }
}

/// Whether another page follows: the `Link` header says so.
fn has_next(response: &Response, count: usize) -> bool {
    match response.header("link") {
        Some(link) => link.contains("rel=\"next\""),
        None => count >= PAGE,
    }
}

/// <https://docs.github.com/en/rest/users/users> (the `user` of an issue or comment)
#[derive(Debug, Deserialize)]
struct WireUser {
    login: String,
    #[serde(rename = "type", default)]
    kind: String,
}

impl WireUser {
    fn is_bot(&self) -> bool {
        self.kind == "Bot" || self.login.ends_with("[bot]")
    }
}

/// <https://docs.github.com/en/rest/issues/labels>
#[derive(Debug, Deserialize)]
struct WireLabel {
    name: String,
}

/// <https://docs.github.com/en/rest/issues/issues#get-an-issue>
#[derive(Debug, Deserialize)]
struct WireIssue {
    number: u64,
    title: String,
    #[serde(default)]
    body: Option<String>,
    html_url: String,
    #[serde(default)]
    user: Option<WireUser>,
    #[serde(default)]
    labels: Vec<WireLabel>,
    #[serde(default)]
    pull_request: Option<Value>,
}

impl From<WireIssue> for Issue {
    fn from(wire: WireIssue) -> Self {
        Self {
            number: wire.number,
            title: wire.title,
            body: wire.body.unwrap_or_default(),
            url: wire.html_url,
            author: wire.user.map(|user| user.login).unwrap_or_default(),
            from_baton: false,
            labels: wire.labels.into_iter().map(|label| label.name).collect(),
            is_pull_request: wire.pull_request.is_some_and(|value| !value.is_null()),
            comments: Vec::new(),
        }
    }
}

/// <https://docs.github.com/en/rest/issues/comments>
#[derive(Debug, Deserialize)]
struct WireComment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    html_url: String,
    #[serde(default)]
    user: Option<WireUser>,
}

/// Whether `user` is the token's own identity: its login when GitHub told
/// it (a personal token); an Actions token may not ask who it is, and what
/// it writes is the Actions bot's. Another app's bot is not baton.
fn written_by_baton(own_login: Option<&str>, user: Option<&WireUser>) -> bool {
    match (own_login, user) {
        (Some(login), Some(user)) => user.login == login,
        (None, Some(user)) => user.is_bot() && user.login == ACTIONS_BOT,
        (_, None) => false,
    }
}

impl WireComment {
    /// `own_login`: the token's login when GitHub told it (a personal
    /// token); an Actions token may not ask, and its comments are a bot's.
    fn into_comment(self, own_login: Option<&str>) -> Comment {
        let from_baton = written_by_baton(own_login, self.user.as_ref());
        Comment {
            id: self.id,
            from_baton,
            author: self.user.map(|user| user.login).unwrap_or_default(),
            body: self.body.unwrap_or_default(),
            url: self.html_url,
        }
    }
}

/// <https://docs.github.com/en/rest/pulls/pulls>
#[derive(Debug, Deserialize)]
struct WirePull {
    number: u64,
    html_url: String,
    #[serde(default)]
    node_id: String,
    #[serde(default)]
    draft: Option<bool>,
    title: String,
    #[serde(default)]
    body: Option<String>,
    head: WireHead,
}

#[derive(Debug, Deserialize)]
struct WireHead {
    #[serde(rename = "ref")]
    branch: String,
    #[serde(default)]
    sha: String,
    #[serde(default)]
    repo: Option<WireRepository>,
}

/// <https://docs.github.com/en/rest/repos/repos#get-a-repository>
#[derive(Debug, Deserialize)]
struct WireRepository {
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    default_branch: String,
}

impl From<WirePull> for PullRequest {
    fn from(wire: WirePull) -> Self {
        Self {
            number: wire.number,
            url: wire.html_url,
            draft: wire.draft.unwrap_or(false),
            title: wire.title,
            body: wire.body.unwrap_or_default(),
            head: wire.head.branch,
            head_sha: wire.head.sha,
            head_repository: wire
                .head
                .repo
                .map(|repo| repo.full_name)
                .unwrap_or_default(),
            node_id: wire.node_id,
        }
    }
}

/// <https://docs.github.com/en/rest/collaborators/collaborators#get-repository-permissions-for-a-user>:
/// `permission` is `admin`, `write`, `read` or `none` (octocrab's enum
/// rejects some of them, hence the raw call); `role_name` is finer.
#[derive(Debug, Deserialize)]
struct WirePermission {
    permission: String,
    #[serde(default)]
    role_name: Option<String>,
}

impl From<WirePermission> for Permission {
    fn from(wire: WirePermission) -> Self {
        let word = |text: &str| match text {
            "admin" => Some(Permission::Admin),
            "maintain" => Some(Permission::Maintain),
            "write" | "push" => Some(Permission::Write),
            "triage" => Some(Permission::Triage),
            "read" | "pull" => Some(Permission::Read),
            _ => None,
        };
        let base = word(&wire.permission).unwrap_or(Permission::None);
        // The role refines the grant (write → maintain, read → triage) but
        // never moves it across the line between reading and writing.
        match wire.role_name.as_deref().and_then(word) {
            Some(role) if role.can_write() == base.can_write() && base != Permission::None => role,
            _ => base,
        }
    }
}

impl Forge for GitHub {
    fn kind(&self) -> ForgeKind {
        ForgeKind::GitHub
    }

    fn repository(&self) -> &str {
        &self.repository
    }

    fn default_branch(&self) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move {
            let path = self.repo_path("");
            let repository: WireRepository =
                self.client.json(Method::Get, &path, None, true).await?;
            Ok(repository.default_branch)
        })
    }

    fn issue(&self, number: u64) -> BoxFuture<'_, Result<Issue>> {
        Box::pin(async move {
            let path = self.repo_path(&format!("/issues/{number}"));
            let wire: WireIssue = self.client.json(Method::Get, &path, None, true).await?;
            let login = self.own_login().await;
            let from_baton = written_by_baton(login, wire.user.as_ref());
            let mut issue = Issue::from(wire);
            issue.from_baton = from_baton;
            issue.comments = self.comments(number).await?;
            Ok(issue)
        })
    }

    fn add_labels<'a>(&'a self, number: u64, labels: &'a [String]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let path = self.repo_path(&format!("/issues/{number}/labels"));
            // Adding labels is a set union: safe to resend.
            let body = json!({ "labels": labels });
            self.client
                .request(Method::Post, &path, Some(&body), true)
                .await?;
            Ok(())
        })
    }

    fn remove_label<'a>(&'a self, number: u64, label: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let path = self.repo_path(&format!("/issues/{number}/labels/{}", segment(label)));
            match self.client.request(Method::Delete, &path, None, true).await {
                Err(error) if error.is_not_found() => Ok(()),
                other => other.map(|_| ()),
            }
        })
    }

    fn create_comment<'a>(&'a self, number: u64, body: &'a str) -> BoxFuture<'a, Result<Comment>> {
        Box::pin(async move {
            let path = self.repo_path(&format!("/issues/{number}/comments"));
            let payload = json!({ "body": body });
            let wire: WireComment = self
                .client
                .json(Method::Post, &path, Some(&payload), false)
                .await?;
            let mut comment = wire.into_comment(None);
            comment.from_baton = true;
            Ok(comment)
        })
    }

    fn update_comment<'a>(&'a self, id: u64, body: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let path = self.repo_path(&format!("/issues/comments/{id}"));
            let payload = json!({ "body": body });
            // Setting a body is idempotent.
            self.client
                .request(Method::Patch, &path, Some(&payload), true)
                .await?;
            Ok(())
        })
    }

    /// Any base: a person may have retargeted the pull request.
    fn find_pull_request<'a>(
        &'a self,
        head: &'a str,
        _base: &'a str,
    ) -> BoxFuture<'a, Result<Option<PullRequest>>> {
        Box::pin(async move {
            let owner = self.repository.split('/').next().unwrap_or_default();
            let path = self.repo_path(&format!(
                "/pulls?state=open&head={}:{}&per_page={PAGE}",
                segment(owner),
                segment(head)
            ));
            let pulls: Vec<WirePull> = self.client.json(Method::Get, &path, None, true).await?;
            // Only a branch of this repository: a fork's PR never counts,
            // whatever its body says.
            Ok(pulls
                .into_iter()
                .map(PullRequest::from)
                .find(|pull| pull.head == head && pull.head_repository == self.repository))
        })
    }

    fn create_pull_request<'a>(
        &'a self,
        spec: &'a PullRequestSpec,
    ) -> BoxFuture<'a, Result<PullRequest>> {
        Box::pin(async move {
            let path = self.repo_path("/pulls");
            let body = json!({
                "title": spec.title,
                "body": spec.body,
                "head": spec.head,
                "base": spec.base,
                "draft": spec.draft,
            });
            let wire: WirePull = self
                .client
                .json(Method::Post, &path, Some(&body), false)
                .await?;
            Ok(wire.into())
        })
    }

    fn pull_request(&self, number: u64) -> BoxFuture<'_, Result<PullRequest>> {
        Box::pin(async move {
            let path = self.repo_path(&format!("/pulls/{number}"));
            let wire: WirePull = self.client.json(Method::Get, &path, None, true).await?;
            Ok(wire.into())
        })
    }

    fn update_pull_request<'a>(
        &'a self,
        existing: &'a PullRequest,
        spec: &'a PullRequestSpec,
    ) -> BoxFuture<'a, Result<PullRequest>> {
        Box::pin(async move {
            let path = self.repo_path(&format!("/pulls/{}", existing.number));
            let body = json!({ "title": spec.title, "body": spec.body });
            let wire: WirePull = self
                .client
                .json(Method::Patch, &path, Some(&body), true)
                .await?;
            let mut pull = PullRequest::from(wire);
            // REST cannot change the draft state; GraphQL can.
            if pull.draft != spec.draft {
                let mutation = if spec.draft {
                    "convertPullRequestToDraft"
                } else {
                    "markPullRequestReadyForReview"
                };
                self.graphql(mutation, &pull.node_id).await?;
                pull.draft = spec.draft;
            }
            Ok(pull)
        })
    }

    fn request_reviewers<'a>(
        &'a self,
        number: u64,
        reviewers: &'a [String],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if reviewers.is_empty() {
                return Ok(());
            }
            let path = self.repo_path(&format!("/pulls/{number}/requested_reviewers"));
            let body = json!({ "reviewers": reviewers });
            self.client
                .request(Method::Post, &path, Some(&body), true)
                .await?;
            Ok(())
        })
    }

    fn permission<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Permission>> {
        Box::pin(async move {
            let path = self.repo_path(&format!("/collaborators/{}/permission", segment(user)));
            match self
                .client
                .json::<WirePermission>(Method::Get, &path, None, true)
                .await
            {
                Ok(wire) => Ok(wire.into()),
                // Not a collaborator at all.
                Err(error) if error.is_not_found() => Ok(Permission::None),
                Err(error) => Err(error),
            }
        })
    }

    fn create_issue<'a>(&'a self, title: &'a str, body: &'a str) -> BoxFuture<'a, Result<Issue>> {
        Box::pin(async move {
            let path = self.repo_path("/issues");
            let payload = json!({ "title": title, "body": body });
            let wire: WireIssue = self
                .client
                .json(Method::Post, &path, Some(&payload), false)
                .await?;
            Ok(wire.into())
        })
    }

    fn update_issue_body<'a>(&'a self, number: u64, body: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let path = self.repo_path(&format!("/issues/{number}"));
            let payload = json!({ "body": body });
            self.client
                .request(Method::Patch, &path, Some(&payload), true)
                .await?;
            Ok(())
        })
    }

    fn list_issues<'a>(&'a self, label: &'a str) -> BoxFuture<'a, Result<Vec<Issue>>> {
        Box::pin(async move {
            let mut issues = Vec::new();
            for page in 1..=MAX_PAGES {
                let filter = if label.is_empty() {
                    String::new()
                } else {
                    format!("&labels={}", segment(label))
                };
                let path = self.repo_path(&format!(
                    "/issues?state=open{filter}&sort=created&direction=asc&per_page={PAGE}&page={page}"
                ));
                let response = self.client.request(Method::Get, &path, None, true).await?;
                let batch: Vec<WireIssue> = self.client.decode(Method::Get, &path, &response)?;
                let more = has_next(&response, batch.len());
                issues.extend(
                    batch
                        .into_iter()
                        .map(Issue::from)
                        .filter(|issue| !issue.is_pull_request),
                );
                if !more {
                    break;
                }
            }
            Ok(issues)
        })
    }

    fn open_pull_requests(&self) -> BoxFuture<'_, Result<Vec<PullRequest>>> {
        Box::pin(async move {
            let mut pulls = Vec::new();
            for page in 1..=MAX_PAGES {
                let path =
                    self.repo_path(&format!("/pulls?state=open&per_page={PAGE}&page={page}"));
                let response = self.client.request(Method::Get, &path, None, true).await?;
                let batch: Vec<WirePull> = self.client.decode(Method::Get, &path, &response)?;
                let more = has_next(&response, batch.len());
                pulls.extend(batch.into_iter().map(PullRequest::from));
                if !more {
                    break;
                }
            }
            Ok(pulls)
        })
    }

    fn dispatch_workflow<'a>(
        &'a self,
        workflow: &'a str,
        reference: &'a str,
        inputs: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let path = self.repo_path(&format!(
                "/actions/workflows/{}/dispatches",
                segment(workflow)
            ));
            let body = json!({ "ref": reference, "inputs": inputs });
            // A dispatch cannot be looked up afterwards: never resent blindly.
            self.client
                .request(Method::Post, &path, Some(&body), false)
                .await?;
            Ok(())
        })
    }

    fn react<'a>(&'a self, comment: u64, content: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let path = self.repo_path(&format!("/issues/comments/{comment}/reactions"));
            // Reacting twice is harmless: the forge keeps one per user.
            self.client
                .request(
                    Method::Post,
                    &path,
                    Some(&json!({ "content": content })),
                    true,
                )
                .await?;
            Ok(())
        })
    }

    fn cancel_run(&self, run: u64) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move {
            let path = self.repo_path(&format!("/actions/runs/{run}/cancel"));
            self.client
                .request(Method::Post, &path, Some(&json!({})), true)
                .await?;
            Ok(true)
        })
    }

    /// <https://docs.github.com/en/rest/actions/workflow-jobs#list-jobs-for-a-workflow-run>
    /// (the latest attempt's jobs), then
    /// <https://docs.github.com/en/rest/actions/workflow-jobs#re-run-a-job-from-a-workflow-run>,
    /// which re-runs the job and the jobs that depend on it.
    fn rerun_job<'a>(&'a self, run: u64, job: &'a str) -> BoxFuture<'a, Result<Option<bool>>> {
        Box::pin(async move {
            let path = self.repo_path(&format!("/actions/runs/{run}/jobs?per_page={PAGE}"));
            let jobs: WireJobs = self.client.json(Method::Get, &path, None, true).await?;
            // `verify`, or `verify 2` in the unrolled repair loop: the last
            // one that ran.
            let Some(found) = jobs.jobs.iter().rev().find(|each| {
                (each.name == job || each.name.starts_with(&format!("{job} ")))
                    && each.conclusion.as_deref() != Some("skipped")
            }) else {
                return Ok(Some(false));
            };
            let path = self.repo_path(&format!("/actions/jobs/{}/rerun", found.id));
            self.client
                .request(Method::Post, &path, Some(&json!({})), false)
                .await?;
            Ok(Some(true))
        })
    }
}

/// <https://docs.github.com/en/rest/actions/workflow-jobs#list-jobs-for-a-workflow-run>
#[derive(Debug, Deserialize)]
struct WireJobs {
    #[serde(default)]
    jobs: Vec<WireJob>,
}

#[derive(Debug, Deserialize)]
struct WireJob {
    id: u64,
    name: String,
    #[serde(default)]
    conclusion: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_uri_is_scheme_and_host() {
        assert_eq!(
            origin_of("https://ghe.example/api/v3"),
            "https://ghe.example"
        );
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }

    #[test]
    fn permission_strings_as_github_answers_them() {
        let permission = |permission: &str, role: Option<&str>| {
            Permission::from(WirePermission {
                permission: permission.into(),
                role_name: role.map(str::to_owned),
            })
        };
        assert_eq!(permission("admin", Some("admin")), Permission::Admin);
        assert_eq!(permission("write", Some("maintain")), Permission::Maintain);
        assert_eq!(permission("write", Some("write")), Permission::Write);
        assert_eq!(permission("read", Some("triage")), Permission::Triage);
        assert_eq!(permission("read", Some("read")), Permission::Read);
        assert_eq!(permission("none", None), Permission::None);
        // A role never lifts a read grant to write.
        assert_eq!(permission("read", Some("maintain")), Permission::Read);
    }
}
