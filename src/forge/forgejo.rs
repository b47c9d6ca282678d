//! Forgejo (and Codeberg) over reqwest, API base `<server>/api/v1`. What
//! differs from GitHub: labels are set by id (looked up, created when
//! missing), pages are `page` + `limit` (50 at most), a pull request is found
//! by `GET /repos/{owner}/{repo}/pulls/{base}/{head}`, a draft is a `WIP:`
//! title, and the token's own login tells baton's comments from others'.
//! Wire structs follow Forgejo's swagger (`templates/swagger/v1_json.tmpl`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::client::{Client, Method, NoAnswer, Response, Transport, segment};
use super::{
    BoxFuture, Comment, Forge, ForgeError, ForgeKind, ForgeSettings, Issue, Permission,
    PullRequest, PullRequestSpec, Result,
};

/// Forgejo's largest page (a server may set a smaller one).
const LIMIT: usize = 50;
/// No listing baton needs is longer; a server that never stops paging is cut here.
const MAX_PAGES: usize = 100;

/// Whether to ask for another page: the last one was not empty, and the
/// total the server counts (`x-total-count`) is not reached, or, without it,
/// the page was full.
fn more_pages(response: &Response, batch: usize, seen: usize, page: usize) -> bool {
    if batch == 0 || page >= MAX_PAGES {
        return false;
    }
    match response
        .header("x-total-count")
        .and_then(|total| total.parse::<usize>().ok())
    {
        Some(total) => seen < total,
        None => batch >= LIMIT,
    }
}
/// How Forgejo marks a draft: a title prefix.
const DRAFT_PREFIX: &str = "WIP: ";
const LABEL_COLOR: &str = "#ededed";

struct ReqwestTransport {
    http: reqwest::Client,
    api_url: String,
    authorization: reqwest::header::HeaderValue,
}

impl Transport for ReqwestTransport {
    fn send<'a>(
        &'a self,
        method: Method,
        path: &'a str,
        body: Option<&'a Value>,
    ) -> BoxFuture<'a, std::result::Result<Response, NoAnswer>> {
        Box::pin(async move {
            let url = format!("{}{path}", self.api_url);
            let method = match method {
                Method::Get => reqwest::Method::GET,
                Method::Post => reqwest::Method::POST,
                Method::Patch => reqwest::Method::PATCH,
                Method::Delete => reqwest::Method::DELETE,
            };
            let mut request = self
                .http
                .request(method, &url)
                .header(reqwest::header::AUTHORIZATION, self.authorization.clone())
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|error| NoAnswer(without_url(error)))?;
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
            let body = response.text().await.map_err(|error| {
                NoAnswer(format!("the body did not arrive: {}", without_url(error)))
            })?;
            Ok(Response {
                status,
                headers,
                body,
            })
        })
    }
}

/// reqwest's message without the URL it adds (the caller names the request).
fn without_url(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    format!("{kind}: {}", error.without_url())
}

pub struct Forgejo {
    client: Client<ReqwestTransport>,
    repository: String,
    /// The token's own login, asked once (a failure is asked again):
    /// comments by it are baton's.
    login: OnceCell<String>,
    /// The repository's labels by name, read once per process (a job):
    /// labels are addressed by id.
    label_ids: std::sync::Mutex<Option<BTreeMap<String, u64>>>,
}

impl Forgejo {
    pub fn new(settings: &ForgeSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("baton/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let mut authorization =
            reqwest::header::HeaderValue::from_str(&format!("token {}", settings.token.expose()))
                .map_err(|_| {
                crate::bad_input!("the forge token holds characters a header cannot carry")
            })?;
        authorization.set_sensitive(true);
        Ok(Self {
            client: Client {
                kind: ForgeKind::Forgejo,
                transport: ReqwestTransport {
                    http,
                    api_url: settings.api_url.clone(),
                    authorization,
                },
                policy: settings.policy,
            },
            repository: settings.repository.clone(),
            login: OnceCell::new(),
            label_ids: std::sync::Mutex::new(None),
        })
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}{rest}", self.repository)
    }

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

    /// Every label of the repository, name → id.
    async fn labels(&self) -> Result<BTreeMap<String, u64>> {
        if let Some(known) = self.label_ids.lock().ok().and_then(|cache| cache.clone()) {
            return Ok(known);
        }
        let labels = self.list_labels().await?;
        if let Ok(mut cache) = self.label_ids.lock() {
            *cache = Some(labels.clone());
        }
        Ok(labels)
    }

    fn remember_label(&self, name: &str, id: u64) {
        if let Ok(mut cache) = self.label_ids.lock()
            && let Some(known) = cache.as_mut()
        {
            known.insert(name.to_owned(), id);
        }
    }

    async fn list_labels(&self) -> Result<BTreeMap<String, u64>> {
        let mut labels = BTreeMap::new();
        for page in 1..=MAX_PAGES {
            let path = self.repo_path(&format!("/labels?page={page}&limit={LIMIT}"));
            let response = self.client.request(Method::Get, &path, None, true).await?;
            let batch: Vec<WireLabel> = self.client.decode(Method::Get, &path, &response)?;
            let count = batch.len();
            labels.extend(batch.into_iter().map(|label| (label.name, label.id)));
            if !more_pages(&response, count, labels.len(), page) {
                break;
            }
        }
        Ok(labels)
    }

    /// The open pull request from `head` into any base, by listing: the
    /// base/head route may answer with a closed one.
    async fn open_pull_from(&self, head: &str) -> Result<Option<PullRequest>> {
        Ok(self
            .all_open_pulls()
            .await?
            .into_iter()
            .find(|pull| pull.head == head && pull.head_repository == self.repository))
    }

    async fn all_open_pulls(&self) -> Result<Vec<PullRequest>> {
        let mut pulls = Vec::new();
        for page in 1..=MAX_PAGES {
            let path = self.repo_path(&format!("/pulls?state=open&page={page}&limit={LIMIT}"));
            let response = self.client.request(Method::Get, &path, None, true).await?;
            let batch: Vec<WirePull> = self.client.decode(Method::Get, &path, &response)?;
            let count = batch.len();
            pulls.extend(batch.into_iter().map(PullRequest::from));
            if !more_pages(&response, count, pulls.len(), page) {
                break;
            }
        }
        Ok(pulls)
    }

    async fn comments(&self, number: u64) -> Result<Vec<Comment>> {
        let path = self.repo_path(&format!("/issues/{number}/comments"));
        let wire: Vec<WireComment> = self.client.json(Method::Get, &path, None, true).await?;
        let login = self.own_login().await.map(str::to_owned);
        Ok(wire
            .into_iter()
            .map(|comment| {
                let author = comment.user.map(|user| user.login).unwrap_or_default();
                Comment {
                    id: comment.id,
                    // Forgejo marks no bots: without the token's login,
                    // no comment is known to be baton's.
                    from_baton: login.as_deref() == Some(author.as_str()),
                    author,
                    body: comment.body.unwrap_or_default(),
                    url: comment.html_url,
                }
            })
            .collect())
    }
}

/// `user` in Forgejo's swagger.
#[derive(Debug, Deserialize)]
struct WireUser {
    login: String,
}

/// `Label`
#[derive(Debug, Deserialize)]
struct WireLabel {
    id: u64,
    name: String,
}

/// `Issue` (`GET /repos/{owner}/{repo}/issues/{index}`)
#[derive(Debug, Deserialize)]
struct WireIssue {
    number: u64,
    title: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
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

/// `Comment`
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

/// `PullRequest`
#[derive(Debug, Deserialize)]
struct WirePull {
    number: u64,
    #[serde(default)]
    html_url: String,
    title: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    draft: Option<bool>,
    head: WireBranch,
}

/// `PRBranchInfo`
#[derive(Debug, Deserialize)]
struct WireBranch {
    #[serde(rename = "ref")]
    branch: String,
    #[serde(default)]
    sha: String,
    #[serde(default)]
    repo: Option<WireRepository>,
}

/// `Repository`
#[derive(Debug, Deserialize)]
struct WireRepository {
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    default_branch: String,
}

impl From<WirePull> for PullRequest {
    fn from(wire: WirePull) -> Self {
        let draft = wire.draft.unwrap_or(false) || is_wip(&wire.title);
        Self {
            number: wire.number,
            url: wire.html_url,
            draft,
            title: wire.title,
            body: wire.body.unwrap_or_default(),
            head: wire.head.branch,
            head_sha: wire.head.sha,
            head_repository: wire
                .head
                .repo
                .map(|repo| repo.full_name)
                .unwrap_or_default(),
            node_id: String::new(),
        }
    }
}

fn is_wip(title: &str) -> bool {
    let lower = title.trim_start().to_ascii_lowercase();
    lower.starts_with("wip:") || lower.starts_with("[wip]")
}

/// The title Forgejo is sent: `WIP: ` marks a draft, so a title that
/// starts with a WIP marker of its own loses it (or a `done` PR would be a
/// draft).
fn draft_title(spec: &PullRequestSpec) -> String {
    let mut title = spec.title.trim_start();
    loop {
        let lower = title.to_ascii_lowercase();
        let stripped = if lower.starts_with("wip:") {
            &title[4..]
        } else if lower.starts_with("[wip]") {
            &title[5..]
        } else {
            break;
        };
        title = stripped.trim_start();
    }
    if spec.draft {
        format!("{DRAFT_PREFIX}{title}")
    } else {
        title.to_owned()
    }
}

/// `RepoCollaboratorPermission`: `owner`, `admin`, `write`, `read` or `none`.
#[derive(Debug, Deserialize)]
struct WirePermission {
    permission: String,
}

impl From<WirePermission> for Permission {
    fn from(wire: WirePermission) -> Self {
        match wire.permission.as_str() {
            "owner" | "admin" => Permission::Admin,
            "write" => Permission::Write,
            "read" => Permission::Read,
            _ => Permission::None,
        }
    }
}

impl Forge for Forgejo {
    fn kind(&self) -> ForgeKind {
        ForgeKind::Forgejo
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
            let mut issue = Issue::from(wire);
            // Forgejo marks no bots: only the token's own login is baton.
            issue.from_baton = self.own_login().await == Some(issue.author.as_str());
            issue.comments = self.comments(number).await?;
            Ok(issue)
        })
    }

    fn add_labels<'a>(&'a self, number: u64, labels: &'a [String]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut known = self.labels().await?;
            let mut ids = Vec::new();
            for name in labels {
                let id = if let Some(id) = known.get(name) {
                    *id
                } else {
                    let path = self.repo_path("/labels");
                    let body = json!({ "name": name, "color": LABEL_COLOR });
                    let created: WireLabel = self
                        .client
                        .json(Method::Post, &path, Some(&body), false)
                        .await?;
                    known.insert(created.name.clone(), created.id);
                    self.remember_label(&created.name, created.id);
                    created.id
                };
                ids.push(id);
            }
            let path = self.repo_path(&format!("/issues/{number}/labels"));
            let body = json!({ "labels": ids });
            self.client
                .request(Method::Post, &path, Some(&body), true)
                .await?;
            Ok(())
        })
    }

    fn remove_label<'a>(&'a self, number: u64, label: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Some(id) = self.labels().await?.get(label).copied() else {
                return Ok(());
            };
            let path = self.repo_path(&format!("/issues/{number}/labels/{id}"));
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
            Ok(Comment {
                id: wire.id,
                author: wire.user.map(|user| user.login).unwrap_or_default(),
                from_baton: true,
                body: wire.body.unwrap_or_default(),
                url: wire.html_url,
            })
        })
    }

    fn update_comment<'a>(&'a self, id: u64, body: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let path = self.repo_path(&format!("/issues/comments/{id}"));
            let payload = json!({ "body": body });
            self.client
                .request(Method::Patch, &path, Some(&payload), true)
                .await?;
            Ok(())
        })
    }

    fn find_pull_request<'a>(
        &'a self,
        head: &'a str,
        base: &'a str,
    ) -> BoxFuture<'a, Result<Option<PullRequest>>> {
        Box::pin(async move {
            // The head is the rest of the path and may hold `/` (Forgejo's
            // route takes it as is); the base is one segment.
            let path = self.repo_path(&format!("/pulls/{}/{head}", segment(base)));
            let wire: WirePull = match self.client.json(Method::Get, &path, None, true).await {
                Ok(wire) => wire,
                Err(error) if error.is_not_found() => return Ok(None),
                Err(error) => return Err(error),
            };
            let open = wire.state.is_empty() || wire.state == "open";
            let pull = PullRequest::from(wire);
            if open && pull.head == head && pull.head_repository == self.repository {
                return Ok(Some(pull));
            }
            // A closed one, or a fork's: look through the open ones.
            self.open_pull_from(head).await
        })
    }

    fn create_pull_request<'a>(
        &'a self,
        spec: &'a PullRequestSpec,
    ) -> BoxFuture<'a, Result<PullRequest>> {
        Box::pin(async move {
            let path = self.repo_path("/pulls");
            let body = json!({
                "title": draft_title(spec),
                "body": spec.body,
                "head": spec.head,
                "base": spec.base,
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
            let body = json!({ "title": draft_title(spec), "body": spec.body });
            let wire: WirePull = self
                .client
                .json(Method::Patch, &path, Some(&body), true)
                .await?;
            Ok(wire.into())
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
                Err(error) if error.is_not_found() => Ok(Permission::None),
                // Forgejo tells only repository admins about other people.
                Err(ForgeError::Status { status: 403, .. }) => Err(ForgeError::Status {
                    forge: ForgeKind::Forgejo,
                    request: format!("GET {path}"),
                    status: 403,
                    message: format!(
                        "Forgejo tells only repository admins what access @{user} has; give baton a repository admin's token in BATON_FORGE_TOKEN (nothing runs until it can check)"
                    ),
                }),
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
            let mut seen = 0;
            for page in 1..=MAX_PAGES {
                let filter = if label.is_empty() {
                    String::new()
                } else {
                    format!("&labels={}", segment(label))
                };
                let path = self.repo_path(&format!(
                    "/issues?state=open&type=issues{filter}&sort=oldest&page={page}&limit={LIMIT}"
                ));
                let response = self.client.request(Method::Get, &path, None, true).await?;
                let batch: Vec<WireIssue> = self.client.decode(Method::Get, &path, &response)?;
                let count = batch.len();
                seen += count;
                issues.extend(
                    batch
                        .into_iter()
                        .map(Issue::from)
                        .filter(|issue| !issue.is_pull_request),
                );
                if !more_pages(&response, count, seen, page) {
                    break;
                }
            }
            // `sort=oldest` asks for it; numbers grow with creation, so this
            // holds on servers that ignore it too.
            issues.sort_by_key(|issue| issue.number);
            Ok(issues)
        })
    }

    fn open_pull_requests(&self) -> BoxFuture<'_, Result<Vec<PullRequest>>> {
        Box::pin(self.all_open_pulls())
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

    /// Forgejo's API has no route that cancels a run (the web UI does).
    fn cancel_run(&self, _run: u64) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async { Ok(false) })
    }

    /// Forgejo's API has no job re-run (the web UI has).
    fn rerun_job<'a>(&'a self, _run: u64, _job: &'a str) -> BoxFuture<'a, Result<Option<bool>>> {
        Box::pin(async { Ok(None) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drafts_are_wip_titles() {
        let spec = PullRequestSpec {
            title: "Greet the world".into(),
            body: String::new(),
            head: "baton/issue-7".into(),
            base: "main".into(),
            draft: true,
        };
        assert_eq!(draft_title(&spec), "WIP: Greet the world");
        let ready = PullRequestSpec {
            title: "[WIP] wip: Greet".into(),
            draft: false,
            ..spec
        };
        assert_eq!(draft_title(&ready), "Greet");
        assert!(is_wip("WIP: x") && is_wip("[WIP] x") && !is_wip("Wipe x"));
    }

    #[test]
    fn permission_strings_as_forgejo_answers_them() {
        let permission = |text: &str| {
            Permission::from(WirePermission {
                permission: text.into(),
            })
        };
        assert_eq!(permission("owner"), Permission::Admin);
        assert_eq!(permission("admin"), Permission::Admin);
        assert_eq!(permission("write"), Permission::Write);
        assert_eq!(permission("read"), Permission::Read);
        assert_eq!(permission("none"), Permission::None);
    }
}
