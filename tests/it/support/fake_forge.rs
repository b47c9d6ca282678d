//! A fake forge on 127.0.0.1 that serves the routes baton's forge clients
//! use, in one of two flavors: GitHub's REST API at the server root (plus the
//! two GraphQL draft mutations at `/graphql`), or Forgejo's API under
//! `/api/v1`. Issues, pull requests, comments, labels, permissions and
//! workflow dispatches live in memory.
//!
//! Shapes and status codes follow the official descriptions: GitHub's
//! OpenAPI description (npm `@octokit/openapi`, `generated/api.github.com.json`;
//! the GraphQL mutations from `@octokit/graphql-schema`, `schema.graphql`) and
//! Forgejo's swagger (`templates/swagger/v1_json.tmpl`, as of Forgejo 15),
//! with the server behaviour the descriptions leave open taken from Forgejo's
//! handlers (`routers/api/v1/repo/*.go`). Each handler's comment names the
//! operation it follows. Objects carry the fields a client reads, not every
//! field the description lists.
//!
//! Faults come first: the first [`Fault`] whose method and path match answers
//! instead of the route (optionally late), or, with `status == 0`, the route
//! is applied and only its reply is late. Every request is recorded, faulted
//! or not. Each connection is served on its own thread and closed after one
//! reply (`connection: close`), so a late reply holds up nobody else.
//!
//! Not modelled: git itself (branches always exist, pull requests have no
//! commits), forks other than by the `owner:` of a head, per-user write
//! checks (any request with the token may write), GitHub's `since`, Forgejo's
//! `since`/`before` on comments, and conditional requests.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    GitHub,
    Forgejo,
}

/// An injected answer. The first fault with `times > 0` whose `method`
/// matches (empty: any) and whose `path_contains` occurs in the request
/// target (path and query, as sent or percent-decoded; empty: any) is used,
/// and its `times` decremented.
#[derive(Debug, Clone, Default)]
pub struct Fault {
    pub method: String,
    pub path_contains: String,
    /// The status to answer with; `0`: answer normally (see `delay_ms`).
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Sent as is: JSON unless a `content-type` header or a leading `<` says otherwise.
    pub body: String,
    pub times: usize,
    /// Hold the reply this many ms (a hang). With a `status`, the fault's
    /// answer comes late and nothing is applied; with `status == 0` the
    /// request is APPLIED first and then the reply is delayed (a write that
    /// timed out on the client but happened on the server).
    pub delay_ms: u64,
}

impl Fault {
    /// GitHub's secondary rate limit: 403, `retry-after`, and its message
    /// (REST API docs, "Rate limits for the REST API").
    pub fn secondary_rate_limit(method: &str, path_contains: &str, retry_after_s: u64) -> Self {
        Self {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            status: 403,
            headers: vec![("retry-after".to_owned(), retry_after_s.to_string())],
            body: json!({
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:0000:0000000:0000000:00000000.",
                "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
                "status": "403"
            })
            .to_string(),
            times: 1,
            delay_ms: 0,
        }
    }

    /// GitHub's primary rate limit: 403 with `x-ratelimit-remaining: 0` and
    /// `x-ratelimit-reset` (epoch seconds) and its message.
    pub fn primary_rate_limit(method: &str, path_contains: &str, reset_epoch_s: u64) -> Self {
        Self {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            status: 403,
            headers: vec![
                ("x-ratelimit-limit".to_owned(), "5000".to_owned()),
                ("x-ratelimit-remaining".to_owned(), "0".to_owned()),
                ("x-ratelimit-used".to_owned(), "5000".to_owned()),
                ("x-ratelimit-reset".to_owned(), reset_epoch_s.to_string()),
                ("x-ratelimit-resource".to_owned(), "core".to_owned()),
            ],
            body: json!({
                "message": "API rate limit exceeded for installation ID 1.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                "status": "403"
            })
            .to_string(),
            times: 1,
            delay_ms: 0,
        }
    }
}

/// One request as the fake saw it, and the status it answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query as sent (still percent-encoded).
    pub path: String,
    /// Names lowercased.
    pub headers: HashMap<String, String>,
    /// The JSON body; `Value::Null` when empty or not JSON.
    pub body: Value,
    pub status: u16,
    pub at: Instant,
}

// ---- the model ---------------------------------------------------------------

#[derive(Debug, Clone)]
struct Label {
    id: u64,
    name: String,
    /// Six hex digits, no `#` (how both forges answer it).
    color: String,
}

#[derive(Debug, Clone)]
struct Comment {
    id: u64,
    issue: u64,
    author: String,
    bot: bool,
    body: String,
    created: u64,
    updated: u64,
}

#[derive(Debug, Clone)]
struct Pull {
    head_owner: String,
    head: String,
    base: String,
    /// GitHub's draft flag; Forgejo derives draft from the title instead.
    draft: bool,
    reviewers: Vec<String>,
}

/// An issue, or a pull request (`pull` set): both forges number them in one
/// sequence and serve pull requests on the issue routes too.
#[derive(Debug, Clone)]
struct Issue {
    number: u64,
    title: String,
    body: String,
    open: bool,
    labels: Vec<u64>,
    author: String,
    bot: bool,
    created: u64,
    updated: u64,
    pull: Option<Pull>,
}

struct State {
    flavor: Flavor,
    address: SocketAddr,
    owner: String,
    repo: String,
    token: String,
    token_user: String,
    token_bot: bool,
    default_branch: String,
    labels: Vec<Label>,
    issues: BTreeMap<u64, Issue>,
    comments: Vec<Comment>,
    permissions: HashMap<String, String>,
    dispatches: Vec<Value>,
    /// (comment id, reaction content).
    reactions: Vec<(u64, String)>,
    cancelled_runs: Vec<u64>,
    /// Workflow run → its jobs `(id, name, conclusion)`, as a test set them.
    run_jobs: HashMap<u64, Vec<(u64, String, String)>>,
    /// Jobs re-run (GitHub's `actions/jobs/{id}/rerun`).
    rerun_jobs: Vec<u64>,
    /// Branch → head commit, as a test set it.
    head_shas: HashMap<String, String>,
    /// A git repository whose branches are the pull requests' heads.
    origin: Option<std::path::PathBuf>,
    faults: Vec<Fault>,
    requests: Vec<Recorded>,
    /// Seconds after 2026-01-01T00:00:00Z; one tick per write.
    clock: u64,
    next_id: u64,
}

const EPOCH_2026: u64 = 1_767_225_600;

pub struct FakeForge {
    pub address: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl FakeForge {
    /// A forge holding the repository `owner/repo` (default branch `main`)
    /// that accepts `token`. The token's user is `github-actions[bot]` (a
    /// Bot) on GitHub and `forgejo-actions` on Forgejo: see `set_token_user`.
    pub fn start(flavor: Flavor, owner: &str, repo: &str, token: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (token_user, token_bot) = match flavor {
            Flavor::GitHub => ("github-actions[bot]", true),
            Flavor::Forgejo => ("forgejo-actions", false),
        };
        let state = Arc::new(Mutex::new(State {
            flavor,
            address,
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            token: token.to_owned(),
            token_user: token_user.to_owned(),
            token_bot,
            default_branch: "main".to_owned(),
            labels: Vec::new(),
            issues: BTreeMap::new(),
            comments: Vec::new(),
            permissions: HashMap::new(),
            dispatches: Vec::new(),
            reactions: Vec::new(),
            cancelled_runs: Vec::new(),
            run_jobs: HashMap::new(),
            rerun_jobs: Vec::new(),
            head_shas: HashMap::new(),
            origin: None,
            faults: Vec::new(),
            requests: Vec::new(),
            clock: 0,
            next_id: 1000,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_state, thread_stop) = (Arc::clone(&state), Arc::clone(&stop));
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(stream) = stream {
                    let state = Arc::clone(&thread_state);
                    std::thread::spawn(move || {
                        let _ = serve(stream, &state);
                    });
                }
            }
        });
        Self {
            address,
            state,
            stop,
            handle: Some(handle),
        }
    }

    /// The API base: `http://127.0.0.1:PORT` (GitHub) or `…/api/v1` (Forgejo).
    pub fn api_url(&self) -> String {
        lock(&self.state).api()
    }

    /// `http://127.0.0.1:PORT`, the base of the `html_url`s.
    pub fn server_url(&self) -> String {
        lock(&self.state).server()
    }

    // ---- seeding --------------------------------------------------------------

    /// An open issue; unknown labels are created. A login ending in `[bot]`
    /// is a Bot on GitHub.
    pub fn add_issue(&self, number: u64, title: &str, body: &str, labels: &[&str], author: &str) {
        let mut state = lock(&self.state);
        let labels = labels.iter().map(|name| state.ensure_label(name)).collect();
        let now = state.tick();
        state.issues.insert(
            number,
            Issue {
                number,
                title: title.to_owned(),
                body: body.to_owned(),
                open: true,
                labels,
                author: author.to_owned(),
                bot: author.ends_with("[bot]"),
                created: now,
                updated: now,
                pull: None,
            },
        );
    }

    /// An open pull request from `head` (`branch` or `owner:branch`) into
    /// `base`. `draft` is GitHub's flag; on Forgejo only a `WIP:` or `[WIP]`
    /// title makes a draft.
    pub fn add_pull(
        &self,
        number: u64,
        title: &str,
        head: &str,
        base: &str,
        draft: bool,
        author: &str,
    ) {
        let mut state = lock(&self.state);
        let (head_owner, head) = state.split_head(head);
        let now = state.tick();
        state.issues.insert(
            number,
            Issue {
                number,
                title: title.to_owned(),
                body: String::new(),
                open: true,
                labels: Vec::new(),
                author: author.to_owned(),
                bot: author.ends_with("[bot]"),
                created: now,
                updated: now,
                pull: Some(Pull {
                    head_owner,
                    head,
                    base: base.to_owned(),
                    draft,
                    reviewers: Vec::new(),
                }),
            },
        );
    }

    /// A comment on issue (or pull request) `issue`; `bot` makes its user a
    /// Bot on GitHub (Forgejo's user object has no type).
    pub fn add_comment(&self, issue: u64, author: &str, body: &str, bot: bool) -> u64 {
        let mut state = lock(&self.state);
        let (id, now) = (state.fresh_id(), state.tick());
        state.comments.push(Comment {
            id,
            issue,
            author: author.to_owned(),
            bot,
            body: body.to_owned(),
            created: now,
            updated: now,
        });
        id
    }

    /// A repository label (color `rrggbb`, `#` optional); its id.
    pub fn add_label(&self, name: &str, color: &str) -> u64 {
        let mut state = lock(&self.state);
        let id = state.fresh_id();
        state.labels.push(Label {
            id,
            name: name.to_owned(),
            color: color.trim_start_matches('#').to_owned(),
        });
        id
    }

    /// The raw string the permission route answers for `user` (default
    /// `none`). GitHub: `admin`, `write`, `read`, `none`, or a role name
    /// (`maintain` answers permission `write`, `triage` answers `read`, with
    /// that `role_name`). Forgejo: `owner`, `admin`, `write`, `read`, `none`.
    pub fn set_permission(&self, user: &str, permission: &str) {
        lock(&self.state)
            .permissions
            .insert(user.to_owned(), permission.to_owned());
    }

    /// The head commit of every pull request from `branch`.
    pub fn set_head_sha(&self, branch: &str, sha: &str) {
        lock(&self.state)
            .head_shas
            .insert(branch.to_owned(), sha.to_owned());
    }

    /// Pull requests' heads are read from the branches of the git
    /// repository at `origin` (where publish pushes).
    pub fn set_origin(&self, origin: &std::path::Path) {
        lock(&self.state).origin = Some(origin.to_path_buf());
    }

    pub fn set_default_branch(&self, branch: &str) {
        lock(&self.state).default_branch = String::from(branch);
    }

    /// Whom the token acts as: the author of what the client creates. On
    /// Forgejo this user counts as a repository admin for the permission
    /// route unless `set_permission` gives it less.
    pub fn set_token_user(&self, login: &str, bot: bool) {
        let mut state = lock(&self.state);
        state.token_user = String::from(login);
        state.token_bot = bot;
    }

    pub fn fault(&self, fault: Fault) {
        lock(&self.state).faults.push(fault);
    }

    // ---- inspection -----------------------------------------------------------

    /// The issue (or pull request's issue) as `GET …/issues/{n}` returns it;
    /// `Value::Null` when there is none.
    pub fn issue(&self, number: u64) -> Value {
        let state = lock(&self.state);
        state
            .issues
            .get(&number)
            .map_or(Value::Null, |issue| state.issue_json(issue))
    }

    /// The comments on `issue`, oldest first, as the list route returns them.
    pub fn comments(&self, issue: u64) -> Vec<Value> {
        let state = lock(&self.state);
        state
            .comments
            .iter()
            .filter(|comment| comment.issue == issue)
            .map(|comment| state.comment_json(comment))
            .collect()
    }

    /// The names of the labels on `issue`, sorted.
    pub fn labels_of(&self, issue: u64) -> Vec<String> {
        let state = lock(&self.state);
        let Some(issue) = state.issues.get(&issue) else {
            return Vec::new();
        };
        let mut names: Vec<String> = state
            .labels
            .iter()
            .filter(|label| issue.labels.contains(&label.id))
            .map(|label| label.name.clone())
            .collect();
        names.sort();
        names
    }

    pub fn label_id(&self, name: &str) -> Option<u64> {
        lock(&self.state).label_named(name).map(|label| label.id)
    }

    /// Every pull request, by number, as `GET …/pulls/{n}` returns it.
    pub fn pulls(&self) -> Vec<Value> {
        let state = lock(&self.state);
        state
            .issues
            .values()
            .filter(|issue| issue.pull.is_some())
            .map(|issue| state.pull_json(issue))
            .collect()
    }

    /// Every workflow dispatch accepted: `{workflow, ref, inputs}`.
    pub fn dispatches(&self) -> Vec<Value> {
        lock(&self.state).dispatches.clone()
    }

    /// Sets an issue's or pull request's body.
    pub fn set_body(&self, number: u64, body: &str) {
        if let Some(issue) = lock(&self.state).issues.get_mut(&number) {
            body.clone_into(&mut issue.body);
        }
    }

    pub fn reactions(&self) -> Vec<(u64, String)> {
        lock(&self.state).reactions.clone()
    }

    /// The jobs of workflow run `run`: `(id, name, conclusion)`.
    pub fn set_run_jobs(&self, run: u64, jobs: &[(u64, &str, &str)]) {
        lock(&self.state).run_jobs.insert(
            run,
            jobs.iter()
                .map(|(id, name, conclusion)| (*id, (*name).to_owned(), (*conclusion).to_owned()))
                .collect(),
        );
    }

    pub fn rerun_jobs(&self) -> Vec<u64> {
        lock(&self.state).rerun_jobs.clone()
    }

    pub fn cancelled_runs(&self) -> Vec<u64> {
        lock(&self.state).cancelled_runs.clone()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state).requests.clone()
    }
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.address);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// The state, even after a handler thread panicked holding it.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---- HTTP -------------------------------------------------------------------

struct Request {
    method: String,
    /// Path and query as sent.
    target: String,
    /// The path, still percent-encoded.
    path: String,
    /// The query's pairs, still percent-encoded.
    query: Vec<(String, String)>,
    headers: HashMap<String, String>,
    body: Value,
}

impl Request {
    /// A query parameter, decoded.
    fn query(&self, name: &str) -> Option<String> {
        self.query
            .iter()
            .find(|(key, _)| percent_decode(key, true) == name)
            .map(|(_, value)| percent_decode(value, true))
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    /// `None`: no body at all (204).
    body: Option<String>,
}

fn json_reply(status: u16, body: &Value) -> Reply {
    Reply {
        status,
        headers: vec![(
            "content-type".to_owned(),
            "application/json; charset=utf-8".to_owned(),
        )],
        body: Some(body.to_string()),
    }
}

fn no_content() -> Reply {
    Reply {
        status: 204,
        headers: Vec::new(),
        body: None,
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let Some(request) = read_request(&mut reader, &stream)? else {
        return Ok(());
    };
    let (reply, delay) = {
        let mut state = lock(state);
        let (reply, delay) = answer(&mut state, &request);
        state.requests.push(Recorded {
            method: request.method.clone(),
            path: request.target.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
            status: reply.status,
            at: Instant::now(),
        });
        (reply, delay)
    };
    std::thread::sleep(delay);
    write_reply(&stream, &reply)
}

fn read_request(
    reader: &mut BufReader<TcpStream>,
    stream: &TcpStream,
) -> std::io::Result<Option<Request>> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(None);
    }
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    if headers
        .get("expect")
        .is_some_and(|value| value.eq_ignore_ascii_case("100-continue"))
    {
        let mut writer = stream;
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"))
    {
        read_chunked(reader)?
    } else {
        let length: usize = headers
            .get("content-length")
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        body
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Some(Request {
        method: method.to_ascii_uppercase(),
        target: target.to_owned(),
        path: path.to_owned(),
        query: query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (key.to_owned(), value.to_owned())
            })
            .collect(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    }))
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size = size_line.trim().split(';').next().unwrap_or("0");
        let size = usize::from_str_radix(size, 16).unwrap_or(0);
        if size == 0 {
            loop {
                let mut trailer = String::new();
                if reader.read_line(&mut trailer)? == 0 || trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut line_end = String::new();
        reader.read_line(&mut line_end)?;
    }
}

fn write_reply(mut stream: &TcpStream, reply: &Reply) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    if let Some(body) = &reply.body {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("connection: close\r\n");
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(body) = &reply.body {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// `%XX` decoded (and `+` as a space in a query); malformed escapes kept.
fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes
            .get(index + 1..index + 3)
            .filter(|_| bytes[index] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(byte) = escaped {
            decoded.push(byte);
            index += 3;
        } else {
            decoded.push(if plus_is_space && bytes[index] == b'+' {
                b' '
            } else {
                bytes[index]
            });
            index += 1;
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

// ---- faults, authentication and routing -----------------------------------------

/// The reply and how long to hold it: a fault's, or the route's.
fn answer(state: &mut State, request: &Request) -> (Reply, Duration) {
    let decoded_target = percent_decode(&request.target, false);
    let fault = state
        .faults
        .iter_mut()
        .find(|fault| {
            fault.times > 0
                && (fault.method.is_empty() || fault.method.eq_ignore_ascii_case(&request.method))
                && (request.target.contains(&fault.path_contains)
                    || decoded_target.contains(&fault.path_contains))
        })
        .map(|fault| {
            fault.times -= 1;
            fault.clone()
        });
    let Some(fault) = fault else {
        return (route(state, request), Duration::ZERO);
    };
    let Fault {
        status,
        mut headers,
        body,
        delay_ms,
        ..
    } = fault;
    let delay = Duration::from_millis(delay_ms);
    if status == 0 {
        return (route(state, request), delay);
    }
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        let kind = if body.trim_start().starts_with('<') {
            "text/html; charset=utf-8"
        } else {
            "application/json; charset=utf-8"
        };
        headers.push(("content-type".to_owned(), kind.to_owned()));
    }
    let body = (status != 204 && status != 304).then_some(body);
    (
        Reply {
            status,
            headers,
            body,
        },
        delay,
    )
}

fn route(state: &mut State, request: &Request) -> Reply {
    let path = match state.flavor {
        Flavor::GitHub => Some(request.path.as_str()),
        Flavor::Forgejo => request.path.strip_prefix("/api/v1"),
    };
    let Some(path) = path else {
        return state.not_found();
    };
    // GitHub refuses API requests without a User-Agent (REST API docs,
    // "Getting started": user agent required).
    if state.flavor == Flavor::GitHub && !request.headers.contains_key("user-agent") {
        return state.error(403, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.");
    }
    if let Err(refusal) = authorize(state, request, path) {
        return refusal;
    }
    let mut reply = if state.flavor == Flavor::GitHub && path == "/graphql" {
        if request.method == "POST" {
            graphql(state, request)
        } else {
            state.not_found()
        }
    } else {
        let segments: Vec<String> = path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(|segment| percent_decode(segment, false))
            .collect();
        match segments.as_slice() {
            [user] if user == "user" && request.method == "GET" => authenticated_user(state),
            [first, owner, repo, rest @ ..]
                if first == "repos"
                    && owner.eq_ignore_ascii_case(&state.owner)
                    && repo.eq_ignore_ascii_case(&state.repo) =>
            {
                let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
                match state.flavor {
                    Flavor::GitHub => github_routes(state, request, &rest),
                    Flavor::Forgejo => forgejo_routes(state, request, &rest),
                }
            }
            _ => state.not_found(),
        }
    };
    if state.flavor == Flavor::GitHub {
        reply.headers.extend(github_rate_headers());
    }
    reply
}

/// `GET /user` (GitHub `users/get-authenticated`, Forgejo `userGetCurrent`):
/// the token's user. GitHub refuses it to an Actions installation token
/// (a Bot): 403 "Resource not accessible by integration".
fn authenticated_user(state: &State) -> Reply {
    if state.flavor == Flavor::GitHub && state.token_bot {
        return state.error(403, "Resource not accessible by integration");
    }
    json_reply(200, &state.user_json(&state.token_user, state.token_bot))
}

/// GitHub: `Authorization: Bearer <token>` or `token <token>`. Forgejo takes
/// both schemes too (its token parser accepts `token` and `bearer`).
fn authorize(state: &State, request: &Request, path: &str) -> Result<(), Reply> {
    let header = request
        .headers
        .get("authorization")
        .map_or("", String::as_str);
    let (scheme, credential) = header.split_once(' ').unwrap_or(("", ""));
    let known_scheme =
        scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token");
    if known_scheme && credential.trim() == state.token {
        return Ok(());
    }
    let message = match (state.flavor, header.is_empty()) {
        (Flavor::GitHub, true) if path == "/graphql" => {
            "This endpoint requires you to be authenticated."
        }
        (Flavor::GitHub, true) => "Requires authentication",
        (Flavor::GitHub, false) => "Bad credentials",
        (Flavor::Forgejo, true) => "token is required",
        (Flavor::Forgejo, false) => "invalid token",
    };
    Err(state.error(401, message))
}

fn github_rate_headers() -> Vec<(String, String)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    vec![
        ("x-ratelimit-limit".to_owned(), "5000".to_owned()),
        ("x-ratelimit-remaining".to_owned(), "4999".to_owned()),
        ("x-ratelimit-reset".to_owned(), (now + 3600).to_string()),
        ("x-ratelimit-resource".to_owned(), "core".to_owned()),
    ]
}

/// Paths are relative to `/repos/{owner}/{repo}`, segments percent-decoded.
fn github_routes(state: &mut State, request: &Request, rest: &[&str]) -> Reply {
    match (request.method.as_str(), rest) {
        ("GET", []) => get_repository(state),
        ("GET", ["issues"]) => github_list_issues(state, request),
        ("POST", ["issues"]) => create_issue(state, request),
        ("GET", ["issues", number]) => get_issue(state, number),
        ("PATCH", ["issues", "comments", id]) => edit_comment(state, request, id),
        ("PATCH", ["issues", number]) => edit_issue(state, request, number),
        ("GET", ["issues", number, "comments"]) => list_comments(state, request, number),
        ("POST", ["issues", number, "comments"]) => create_comment(state, request, number),
        ("POST", ["issues", number, "labels"]) => github_add_labels(state, request, number),
        ("DELETE", ["issues", number, "labels", name]) => github_remove_label(state, number, name),
        ("GET", ["pulls"]) => github_list_pulls(state, request),
        ("POST", ["pulls"]) => github_create_pull(state, request),
        ("GET", ["pulls", number]) => get_pull(state, number),
        ("PATCH", ["pulls", number]) => edit_pull(state, request, number),
        ("POST", ["pulls", number, "requested_reviewers"]) => {
            request_reviewers(state, request, number)
        }
        ("GET", ["collaborators", user, "permission"]) => permission(state, user),
        ("POST", ["actions", "workflows", workflow, "dispatches"]) => {
            dispatch(state, request, workflow)
        }
        ("POST", ["issues", "comments", id, "reactions"]) => react(state, request, id),
        // `actions/list-jobs-for-workflow-run` (the latest attempt).
        ("GET", ["actions", "runs", id, "jobs"]) => match parse_number(id) {
            Some(run) => {
                let jobs: Vec<Value> = state
                    .run_jobs
                    .get(&run)
                    .into_iter()
                    .flatten()
                    .map(|(id, name, conclusion)| {
                        json!({"id": id, "run_id": run, "name": name, "status": "completed", "conclusion": conclusion})
                    })
                    .collect();
                json_reply(200, &json!({"total_count": jobs.len(), "jobs": jobs}))
            }
            None => state.not_found(),
        },
        // `actions/re-run-job-for-workflow-run` → 201.
        ("POST", ["actions", "jobs", id, "rerun"]) => match parse_number(id) {
            Some(job)
                if state
                    .run_jobs
                    .values()
                    .flatten()
                    .any(|(each, _, _)| *each == job) =>
            {
                state.rerun_jobs.push(job);
                json_reply(201, &json!({}))
            }
            _ => state.not_found(),
        },
        ("POST", ["actions", "runs", id, "cancel"]) => match parse_number(id) {
            Some(run) => {
                state.cancelled_runs.push(run);
                json_reply(202, &json!({}))
            }
            None => state.not_found(),
        },
        _ => state.not_found(),
    }
}

/// <https://docs.github.com/en/rest/reactions/reactions#create-reaction-for-an-issue-comment>;
/// Forgejo's `issueCommentReaction` takes the same body.
fn react(state: &mut State, request: &Request, id: &str) -> Reply {
    let Some(id) = parse_number(id) else {
        return state.not_found();
    };
    if !state.comments.iter().any(|comment| comment.id == id) {
        return state.not_found();
    }
    let Some(content) = request.body["content"].as_str() else {
        return state.invalid(
            "Reaction",
            "content",
            "missing_field",
            "content is required",
        );
    };
    let content = content.to_owned();
    let existed = state.reactions.contains(&(id, content.clone()));
    if !existed {
        state.reactions.push((id, content.clone()));
    }
    json_reply(
        if existed { 200 } else { 201 },
        &json!({"id": state.fresh_id(), "content": content}),
    )
}

/// Paths are relative to `/api/v1/repos/{owner}/{repo}`, segments decoded.
fn forgejo_routes(state: &mut State, request: &Request, rest: &[&str]) -> Reply {
    match (request.method.as_str(), rest) {
        ("GET", []) => get_repository(state),
        ("GET", ["issues"]) => forgejo_list_issues(state, request),
        ("POST", ["issues"]) => create_issue(state, request),
        ("GET", ["issues", number]) => get_issue(state, number),
        ("PATCH", ["issues", "comments", id]) => edit_comment(state, request, id),
        ("PATCH", ["issues", number]) => edit_issue(state, request, number),
        ("GET", ["issues", number, "comments"]) => list_comments(state, request, number),
        ("POST", ["issues", number, "comments"]) => create_comment(state, request, number),
        ("GET", ["labels"]) => forgejo_list_labels(state, request),
        ("POST", ["labels"]) => forgejo_create_label(state, request),
        ("POST", ["issues", number, "labels"]) => forgejo_add_labels(state, request, number),
        ("DELETE", ["issues", number, "labels", label]) => {
            forgejo_remove_label(state, number, label)
        }
        ("GET", ["pulls"]) => forgejo_list_pulls(state, request),
        ("POST", ["pulls"]) => forgejo_create_pull(state, request),
        ("GET", ["pulls", number]) => get_pull(state, number),
        // `/pulls/{base}/*`: the head may hold slashes (a branch) and an `owner:`.
        ("GET", ["pulls", base, head @ ..]) => {
            forgejo_pull_by_base_head(state, base, &head.join("/"))
        }
        ("PATCH", ["pulls", number]) => edit_pull(state, request, number),
        ("POST", ["pulls", number, "requested_reviewers"]) => {
            request_reviewers(state, request, number)
        }
        ("GET", ["collaborators", user, "permission"]) => permission(state, user),
        ("POST", ["actions", "workflows", workflow, "dispatches"]) => {
            dispatch(state, request, workflow)
        }
        ("POST", ["issues", "comments", id, "reactions"]) => react(state, request, id),
        _ => state.not_found(),
    }
}

// ---- repository ---------------------------------------------------------------

/// GitHub `repos/get` (full-repository); Forgejo `repoGet` (Repository).
fn get_repository(state: &State) -> Reply {
    json_reply(200, &state.repository_json(&state.owner))
}

// ---- issues ---------------------------------------------------------------------

/// GitHub `issues/list-for-repo`: issues AND pull requests; `labels` are
/// names that must all be on the item (an unknown name matches nothing);
/// `sort` created|updated|comments, `direction` default desc; paged by
/// `per_page` (default 30, at most 100) and `page`, with a `Link` header.
fn github_list_issues(state: &State, request: &Request) -> Reply {
    let wanted = request.query("state").unwrap_or_else(|| "open".to_owned());
    let names = split_list(request.query("labels").as_deref());
    let mut found: Vec<&Issue> = state
        .issues
        .values()
        .filter(|issue| state_matches(issue, &wanted))
        .filter(|issue| {
            names.iter().all(|name| {
                state
                    .label_named(name)
                    .is_some_and(|label| issue.labels.contains(&label.id))
            })
        })
        .collect();
    match request.query("sort").as_deref() {
        Some("updated") => found.sort_by_key(|issue| (issue.updated, issue.number)),
        Some("comments") => {
            found.sort_by_key(|issue| (state.comment_count(issue.number), issue.number));
        }
        _ => found.sort_by_key(|issue| (issue.created, issue.number)),
    }
    if request.query("direction").as_deref() != Some("asc") {
        found.reverse();
    }
    let items = found.iter().map(|issue| state.issue_json(issue)).collect();
    paginate(state, request, items, "per_page", 30, 100)
}

/// Forgejo `issueListIssues`: issues and pulls unless `type=issues|pulls`;
/// `labels` are names, those the repository lacks are dropped and, when none
/// is left, so is the filter (`GetLabelIDsInRepoByNames`); the rest must all
/// be on the item (`IncludedLabelIDs`). `sort` default `latest` (newest
/// first), `oldest` for oldest first. Paged by `limit` (default 30, at most
/// 50: `[api] DEFAULT_PAGING_NUM`, `MAX_RESPONSE_ITEMS`) and `page`, with
/// `Link` and `x-total-count`.
fn forgejo_list_issues(state: &State, request: &Request) -> Reply {
    let wanted = request.query("state").unwrap_or_else(|| "open".to_owned());
    let label_ids: Vec<u64> = split_list(request.query("labels").as_deref())
        .iter()
        .filter_map(|name| state.label_named(name).map(|label| label.id))
        .collect();
    let kind = request.query("type");
    let mut found: Vec<&Issue> = state
        .issues
        .values()
        .filter(|issue| state_matches(issue, &wanted))
        .filter(|issue| label_ids.iter().all(|id| issue.labels.contains(id)))
        .filter(|issue| match kind.as_deref() {
            Some("issues") => issue.pull.is_none(),
            Some("pulls") => issue.pull.is_some(),
            _ => true,
        })
        .collect();
    match request.query("sort").as_deref() {
        Some("oldest") => found.sort_by_key(|issue| (issue.created, issue.number)),
        Some("recentupdate") => {
            found.sort_by_key(|issue| (issue.updated, issue.number));
            found.reverse();
        }
        Some("leastupdate") => found.sort_by_key(|issue| (issue.updated, issue.number)),
        _ => {
            found.sort_by_key(|issue| (issue.created, issue.number));
            found.reverse();
        }
    }
    let items = found.iter().map(|issue| state.issue_json(issue)).collect();
    paginate(state, request, items, "limit", 30, 50)
}

/// GitHub `issues/get` (200 issue); Forgejo `issueGetIssue` (200 Issue).
fn get_issue(state: &State, number: &str) -> Reply {
    match parse_number(number).and_then(|number| state.issues.get(&number)) {
        Some(issue) => json_reply(200, &state.issue_json(issue)),
        None => state.not_found(),
    }
}

/// GitHub `issues/create` `{title, body, labels: [names]}` → 201 (unknown
/// labels are created); Forgejo `issueCreateIssue` `{title, body, labels:
/// [ids]}` → 201 (unknown ids are dropped). `title` is required on both.
fn create_issue(state: &mut State, request: &Request) -> Reply {
    let title = match &request.body["title"] {
        Value::String(title) if !title.is_empty() => title.clone(),
        Value::Number(number) if state.flavor == Flavor::GitHub => number.to_string(),
        _ => return state.invalid("Issue", "title", "missing_field", "title is required"),
    };
    let labels = match state.flavor {
        Flavor::GitHub => label_names(&request.body["labels"])
            .iter()
            .map(|name| state.ensure_label(name))
            .collect(),
        Flavor::Forgejo => match forgejo_label_refs(state, &request.body["labels"], false) {
            Ok(ids) => ids,
            Err(refusal) => return refusal,
        },
    };
    let number = state.next_number();
    let now = state.tick();
    let issue = Issue {
        number,
        title,
        body: request.body["body"].as_str().unwrap_or_default().to_owned(),
        open: true,
        labels,
        author: state.token_user.clone(),
        bot: state.token_bot,
        created: now,
        updated: now,
        pull: None,
    };
    let mut reply = json_reply(201, &state.issue_json(&issue));
    if state.flavor == Flavor::GitHub {
        reply.headers.push((
            "location".to_owned(),
            format!("{}/issues/{number}", state.repo_api()),
        ));
    }
    state.issues.insert(number, issue);
    reply
}

/// GitHub `issues/update` `{title?, body?, state?, labels?}` → 200; Forgejo
/// `issueEditIssue` `{title?, body?, state?}` → 201 (sic: its swagger and
/// handler both say 201).
fn edit_issue(state: &mut State, request: &Request, number: &str) -> Reply {
    let Some(number) = parse_number(number).filter(|number| state.issues.contains_key(number))
    else {
        return state.not_found();
    };
    let labels: Option<Vec<u64>> =
        (state.flavor == Flavor::GitHub && request.body["labels"].is_array()).then(|| {
            label_names(&request.body["labels"])
                .iter()
                .map(|name| state.ensure_label(name))
                .collect()
        });
    let now = state.tick();
    let flavor = state.flavor;
    let Some(issue) = state.issues.get_mut(&number) else {
        return state.not_found();
    };
    if let Some(title) = request.body["title"]
        .as_str()
        .filter(|title| !title.is_empty())
    {
        issue.title = String::from(title);
    }
    if let Some(body) = request.body["body"].as_str() {
        issue.body = String::from(body);
    }
    match request.body["state"].as_str() {
        Some("closed") => issue.open = false,
        Some("open") => issue.open = true,
        _ => {}
    }
    if let Some(labels) = labels {
        issue.labels = labels;
    }
    issue.updated = now;
    let status = match flavor {
        Flavor::GitHub => 200,
        Flavor::Forgejo => 201,
    };
    json_reply(status, &state.issue_json(&state.issues[&number]))
}

// ---- comments -------------------------------------------------------------------

/// GitHub `issues/list-comments`: ascending by id, paged by `per_page`
/// (default 30, at most 100) with a `Link` header. Forgejo
/// `issueGetComments`: every comment, no paging (the route takes only
/// `since`/`before`, which the fake ignores).
fn list_comments(state: &State, request: &Request, number: &str) -> Reply {
    let Some(number) = parse_number(number).filter(|number| state.issues.contains_key(number))
    else {
        return state.not_found();
    };
    let items: Vec<Value> = state
        .comments
        .iter()
        .filter(|comment| comment.issue == number)
        .map(|comment| state.comment_json(comment))
        .collect();
    match state.flavor {
        Flavor::GitHub => paginate(state, request, items, "per_page", 30, 100),
        Flavor::Forgejo => json_reply(200, &Value::Array(items)),
    }
}

/// GitHub `issues/create-comment` `{body}` → 201 issue-comment (with
/// `Location`); Forgejo `issueCreateComment` `{body}` → 201 Comment.
fn create_comment(state: &mut State, request: &Request, number: &str) -> Reply {
    let Some(number) = parse_number(number).filter(|number| state.issues.contains_key(number))
    else {
        return state.not_found();
    };
    let Some(body) = request.body["body"]
        .as_str()
        .filter(|body| !body.is_empty())
    else {
        return state.invalid("IssueComment", "body", "missing_field", "body is required");
    };
    let (id, now) = (state.fresh_id(), state.tick());
    let comment = Comment {
        id,
        issue: number,
        author: state.token_user.clone(),
        bot: state.token_bot,
        body: body.to_owned(),
        created: now,
        updated: now,
    };
    if let Some(issue) = state.issues.get_mut(&number) {
        issue.updated = now;
    }
    let mut reply = json_reply(201, &state.comment_json(&comment));
    if state.flavor == Flavor::GitHub {
        reply.headers.push((
            "location".to_owned(),
            format!("{}/issues/comments/{id}", state.repo_api()),
        ));
    }
    state.comments.push(comment);
    reply
}

/// GitHub `issues/update-comment` `{body}` → 200; Forgejo `issueEditComment`
/// `{body}` → 200 (its 204 is only for comment kinds without text).
fn edit_comment(state: &mut State, request: &Request, id: &str) -> Reply {
    let Some(id) = parse_number(id) else {
        return state.not_found();
    };
    let Some(body) = request.body["body"].as_str() else {
        return state.invalid("IssueComment", "body", "missing_field", "body is required");
    };
    let now = state.tick();
    let Some(comment) = state.comments.iter_mut().find(|comment| comment.id == id) else {
        return state.not_found();
    };
    comment.body = String::from(body);
    comment.updated = now;
    let comment = comment.clone();
    json_reply(200, &state.comment_json(&comment))
}

// ---- labels ---------------------------------------------------------------------

/// GitHub `issues/add-labels`: `{labels: [names]}` (or a bare array; items
/// may be `{name}`), at least one; unknown names are created. 200 with every
/// label now on the issue.
fn github_add_labels(state: &mut State, request: &Request, number: &str) -> Reply {
    let Some(number) = parse_number(number).filter(|number| state.issues.contains_key(number))
    else {
        return state.not_found();
    };
    let listed = if request.body.is_array() {
        &request.body
    } else {
        &request.body["labels"]
    };
    let names = label_names(listed);
    if names.is_empty() {
        return state.invalid(
            "Label",
            "labels",
            "missing_field",
            "labels must not be empty",
        );
    }
    let ids: Vec<u64> = names.iter().map(|name| state.ensure_label(name)).collect();
    let now = state.tick();
    if let Some(issue) = state.issues.get_mut(&number) {
        for id in ids {
            if !issue.labels.contains(&id) {
                issue.labels.push(id);
            }
        }
        issue.updated = now;
    }
    json_reply(200, &state.labels_json(&state.issues[&number].labels))
}

/// GitHub `issues/remove-label`: 200 with the labels left; 404 "Label does
/// not exist" when the issue does not carry it.
fn github_remove_label(state: &mut State, number: &str, name: &str) -> Reply {
    let Some(number) = parse_number(number).filter(|number| state.issues.contains_key(number))
    else {
        return state.not_found();
    };
    let label = state.label_named(name).map(|label| label.id);
    let now = state.tick();
    let Some(issue) = state.issues.get_mut(&number) else {
        return state.not_found();
    };
    let Some(position) = label.and_then(|id| issue.labels.iter().position(|held| *held == id))
    else {
        return state.error(404, "Label does not exist");
    };
    issue.labels.remove(position);
    issue.updated = now;
    json_reply(200, &state.labels_json(&state.issues[&number].labels))
}

/// Forgejo `issueListLabels`: the repository's labels by name, paged by
/// `limit` (default 30, at most 50) with `Link` and `x-total-count`.
fn forgejo_list_labels(state: &State, request: &Request) -> Reply {
    let mut labels: Vec<&Label> = state.labels.iter().collect();
    labels.sort_by(|left, right| left.name.cmp(&right.name).then(left.id.cmp(&right.id)));
    let items = labels.iter().map(|label| state.label_json(label)).collect();
    paginate(state, request, items, "limit", 30, 50)
}

/// Forgejo `issueCreateLabel` `{name, color}` (`#rrggbb`, `rrggbb` or the
/// three-digit forms) → 201 Label, the color answered without `#`; 422 for
/// a missing name or a bad color.
fn forgejo_create_label(state: &mut State, request: &Request) -> Reply {
    let name = request.body["name"].as_str().unwrap_or_default();
    let color = request.body["color"].as_str().unwrap_or_default();
    let hex = color.trim_start_matches('#');
    let valid_color =
        (hex.len() == 6 || hex.len() == 3) && hex.chars().all(|c| c.is_ascii_hexdigit());
    if name.is_empty() || !valid_color {
        return state.invalid(
            "Label",
            "color",
            "invalid",
            "Name and a color (#rrggbb) are required",
        );
    }
    let id = state.fresh_id();
    let label = Label {
        id,
        name: name.to_owned(),
        color: hex.to_ascii_lowercase(),
    };
    let reply = json_reply(201, &state.label_json(&label));
    state.labels.push(label);
    reply
}

/// Forgejo `issueAddLabel` `{labels: [...]}`: label ids (Forgejo 15 also
/// takes names); ids and names the repository lacks are dropped silently.
/// 200 with every label now on the issue.
fn forgejo_add_labels(state: &mut State, request: &Request, number: &str) -> Reply {
    let Some(number) = parse_number(number).filter(|number| state.issues.contains_key(number))
    else {
        return state.not_found();
    };
    let ids = match forgejo_label_refs(state, &request.body["labels"], true) {
        Ok(ids) => ids,
        Err(refusal) => return refusal,
    };
    let now = state.tick();
    if let Some(issue) = state.issues.get_mut(&number) {
        for id in ids {
            if !issue.labels.contains(&id) {
                issue.labels.push(id);
            }
        }
        issue.updated = now;
    }
    json_reply(200, &state.labels_json(&state.issues[&number].labels))
}

/// Forgejo `issueRemoveLabel` `DELETE …/labels/{identifier}` (an id; Forgejo
/// 15 also a name) → 204, also when the issue did not carry it; 422 when the
/// repository has no such label.
fn forgejo_remove_label(state: &mut State, number: &str, label: &str) -> Reply {
    let Some(number) = parse_number(number).filter(|number| state.issues.contains_key(number))
    else {
        return state.not_found();
    };
    let id = match parse_number(label) {
        Some(id) => state.labels.iter().find(|known| known.id == id),
        None => state.label_named(label),
    }
    .map(|known| known.id);
    let Some(id) = id else {
        return state.error(422, &format!("label does not exist [id: {label}]"));
    };
    let now = state.tick();
    if let Some(issue) = state.issues.get_mut(&number) {
        issue.labels.retain(|held| *held != id);
        issue.updated = now;
    }
    no_content()
}

/// Forgejo's label references: numbers are ids; strings are names where
/// `names` allows them (the issue-labels route), else a 422 as Go's binding
/// of `[]int64` gives. Unknown ones are dropped.
fn forgejo_label_refs(state: &State, listed: &Value, names: bool) -> Result<Vec<u64>, Reply> {
    let mut ids = Vec::new();
    for item in listed.as_array().into_iter().flatten() {
        let found = match item {
            Value::Number(id) => id
                .as_u64()
                .and_then(|id| state.labels.iter().find(|label| label.id == id)),
            Value::String(name) if names => state.label_named(name),
            _ => {
                return Err(state.invalid(
                    "Label",
                    "labels",
                    "invalid",
                    "labels must be label ids (or names)",
                ));
            }
        };
        if let Some(label) = found {
            ids.push(label.id);
        }
    }
    Ok(ids)
}

// ---- pull requests --------------------------------------------------------------

/// GitHub `pulls/list`: `state` (default open), `head` as `owner:branch` (a
/// head without the `owner:` does not filter), `base`; newest first unless
/// `direction=asc`; paged by `per_page` (default 30, at most 100).
fn github_list_pulls(state: &State, request: &Request) -> Reply {
    let wanted = request.query("state").unwrap_or_else(|| "open".to_owned());
    let head = request.query("head").and_then(|head| {
        head.split_once(':')
            .map(|(owner, branch)| (owner.to_owned(), branch.to_owned()))
    });
    let base = request.query("base");
    let mut found: Vec<&Issue> = state
        .issues
        .values()
        .filter(|issue| state_matches(issue, &wanted))
        .filter(|issue| {
            issue.pull.as_ref().is_some_and(|pull| {
                head.as_ref().is_none_or(|(owner, branch)| {
                    pull.head_owner.eq_ignore_ascii_case(owner) && pull.head == *branch
                }) && base.as_ref().is_none_or(|base| pull.base == *base)
            })
        })
        .collect();
    found.sort_by_key(|issue| (issue.created, issue.number));
    let ascending = match request.query("sort").as_deref() {
        None | Some("created") => request.query("direction").as_deref() == Some("asc"),
        Some(_) => request.query("direction").as_deref() != Some("desc"),
    };
    if !ascending {
        found.reverse();
    }
    let items = found.iter().map(|issue| state.pull_json(issue)).collect();
    paginate(state, request, items, "per_page", 30, 100)
}

/// Forgejo `repoListPullRequests`: `state` (`open` by default, `closed`,
/// `all`), newest first, paged with `page` and `limit` (50 at most).
fn forgejo_list_pulls(state: &State, request: &Request) -> Reply {
    let wanted = request.query("state").unwrap_or_else(|| "open".to_owned());
    let mut found: Vec<&Issue> = state
        .issues
        .values()
        .filter(|issue| issue.pull.is_some() && state_matches(issue, &wanted))
        .collect();
    found.sort_by_key(|issue| (issue.created, issue.number));
    found.reverse();
    let items = found.iter().map(|issue| state.pull_json(issue)).collect();
    paginate(state, request, items, "limit", 30, 50)
}

/// GitHub `pulls/create` `{title, head, base, body, draft}` → 201
/// pull-request; 422 Validation Failed when an open pull request from that
/// head into that base exists, or head and base are one branch.
fn github_create_pull(state: &mut State, request: &Request) -> Reply {
    let (Some(head), Some(base)) = (request.body["head"].as_str(), request.body["base"].as_str())
    else {
        return state.invalid(
            "PullRequest",
            "head",
            "missing_field",
            "head and base are required",
        );
    };
    let Some(title) = request.body["title"]
        .as_str()
        .filter(|title| !title.is_empty())
    else {
        return state.invalid("PullRequest", "title", "missing_field", "title is required");
    };
    let (head_owner, head) = state.split_head(head);
    if head_owner.eq_ignore_ascii_case(&state.owner) && head == base {
        return state.invalid(
            "PullRequest",
            "base",
            "custom",
            &format!("No commits between {base} and {head}"),
        );
    }
    if state.open_pull(&head_owner, &head, base).is_some() {
        return state.invalid(
            "PullRequest",
            "head",
            "custom",
            &format!("A pull request already exists for {head_owner}:{head}."),
        );
    }
    let draft = request.body["draft"].as_bool().unwrap_or(false);
    let number = new_pull(state, request, title, (head_owner, head), base, draft);
    let mut reply = json_reply(201, &state.pull_json(&state.issues[&number]));
    reply.headers.push((
        "location".to_owned(),
        format!("{}/pulls/{number}", state.repo_api()),
    ));
    reply
}

/// Forgejo `repoCreatePullRequest` `{title, head, base, body}` → 201
/// PullRequest. There is no draft field: a title starting with `WIP:` or
/// `[WIP]` (any case) is a draft. 409 when an open pull request from that
/// head into that base exists; 422 when a field is missing or head is base.
fn forgejo_create_pull(state: &mut State, request: &Request) -> Reply {
    let field = |name: &str| {
        request.body[name]
            .as_str()
            .filter(|value| !value.is_empty())
    };
    let (Some(title), Some(head), Some(base)) = (field("title"), field("head"), field("base"))
    else {
        return state.invalid(
            "PullRequest",
            "title",
            "missing_field",
            "[Title Head Base]: Required",
        );
    };
    if head == base {
        return state.invalid(
            "PullRequest",
            "head",
            "custom",
            "Invalid PullRequest: There are no changes between the head and the base",
        );
    }
    let (head_owner, head) = state.split_head(head);
    if let Some(existing) = state.open_pull(&head_owner, &head, base) {
        // `ErrPullRequestAlreadyExists` as Forgejo words it.
        return state.error(
            409,
            &format!(
                "pull request already exists for these targets [id: {}, issue_id: {existing}, head_repo_id: 1, base_repo_id: 1, head_branch: {head}, base_branch: {base}]",
                pull_id(existing)
            ),
        );
    }
    let number = new_pull(state, request, title, (head_owner, head), base, false);
    json_reply(201, &state.pull_json(&state.issues[&number]))
}

fn new_pull(
    state: &mut State,
    request: &Request,
    title: &str,
    (head_owner, head): (String, String),
    base: &str,
    draft: bool,
) -> u64 {
    let number = state.next_number();
    let now = state.tick();
    state.issues.insert(
        number,
        Issue {
            number,
            title: title.to_owned(),
            body: request.body["body"].as_str().unwrap_or_default().to_owned(),
            open: true,
            labels: Vec::new(),
            author: state.token_user.clone(),
            bot: state.token_bot,
            created: now,
            updated: now,
            pull: Some(Pull {
                head_owner,
                head,
                base: base.to_owned(),
                draft,
                reviewers: Vec::new(),
            }),
        },
    );
    number
}

/// Forgejo `repoGetPullRequestByBaseHead` (`GET …/pulls/{base}/{head}`, head
/// `branch` or `owner:branch`): 200 with the first pull request, of ANY
/// state, from that head into that base (`GetPullRequestByBaseHeadInfo` has
/// no state condition); 404 when there is none.
fn forgejo_pull_by_base_head(state: &State, base: &str, head: &str) -> Reply {
    let (head_owner, head) = state.split_head(head);
    let found = state.issues.values().find(|issue| {
        issue.pull.as_ref().is_some_and(|pull| {
            pull.base == base
                && pull.head == head
                && pull.head_owner.eq_ignore_ascii_case(&head_owner)
        })
    });
    match found {
        Some(issue) => json_reply(200, &state.pull_json(issue)),
        None => state.not_found(),
    }
}

/// GitHub `pulls/get`; Forgejo `repoGetPullRequest`. 404 for a plain issue.
fn get_pull(state: &State, number: &str) -> Reply {
    match parse_number(number)
        .and_then(|number| state.issues.get(&number))
        .filter(|issue| issue.pull.is_some())
    {
        Some(issue) => json_reply(200, &state.pull_json(issue)),
        None => state.not_found(),
    }
}

/// GitHub `pulls/update` `{title?, body?, state?, base?}` → 200 (a `draft`
/// field is ignored: REST cannot change it, see `graphql`); Forgejo
/// `repoEditPullRequest` → 201 (sic), draft following the new title.
fn edit_pull(state: &mut State, request: &Request, number: &str) -> Reply {
    let Some(number) = parse_number(number).filter(|number| {
        state
            .issues
            .get(number)
            .is_some_and(|issue| issue.pull.is_some())
    }) else {
        return state.not_found();
    };
    let now = state.tick();
    let flavor = state.flavor;
    let Some(issue) = state.issues.get_mut(&number) else {
        return state.not_found();
    };
    if let Some(title) = request.body["title"]
        .as_str()
        .filter(|title| !title.is_empty())
    {
        issue.title = String::from(title);
    }
    if let Some(body) = request.body["body"].as_str() {
        issue.body = String::from(body);
    }
    match request.body["state"].as_str() {
        Some("closed") => issue.open = false,
        Some("open") => issue.open = true,
        _ => {}
    }
    if let (Some(base), Some(pull)) = (
        request.body["base"]
            .as_str()
            .filter(|base| !base.is_empty()),
        issue.pull.as_mut(),
    ) {
        pull.base = String::from(base);
    }
    issue.updated = now;
    let status = match flavor {
        Flavor::GitHub => 200,
        Flavor::Forgejo => 201,
    };
    json_reply(status, &state.pull_json(&state.issues[&number]))
}

/// GitHub `pulls/request-reviewers` `{reviewers}` → 201 pull-request-simple;
/// 422 when the author is asked to review. Forgejo
/// `repoCreatePullReviewRequests` `{reviewers}` → 201 with a PullReview
/// (`state: REQUEST_REVIEW`) per reviewer, not the pull request.
fn request_reviewers(state: &mut State, request: &Request, number: &str) -> Reply {
    let Some(number) = parse_number(number).filter(|number| {
        state
            .issues
            .get(number)
            .is_some_and(|issue| issue.pull.is_some())
    }) else {
        return state.not_found();
    };
    let reviewers: Vec<String> = request.body["reviewers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let author = state.issues[&number].author.clone();
    if state.flavor == Flavor::GitHub
        && reviewers
            .iter()
            .any(|login| login.eq_ignore_ascii_case(&author))
    {
        return state.invalid(
            "PullRequest",
            "reviewers",
            "custom",
            "Review cannot be requested from pull request author.",
        );
    }
    let now = state.tick();
    let mut reviews = Vec::new();
    for login in &reviewers {
        let id = state.fresh_id();
        reviews.push(state.review_request_json(id, number, login, now));
    }
    if let Some(pull) = state
        .issues
        .get_mut(&number)
        .and_then(|issue| issue.pull.as_mut())
    {
        for login in reviewers {
            if !pull.reviewers.contains(&login) {
                pull.reviewers.push(login);
            }
        }
    }
    match state.flavor {
        Flavor::GitHub => json_reply(201, &state.pull_json(&state.issues[&number])),
        Flavor::Forgejo => json_reply(201, &Value::Array(reviews)),
    }
}

/// GitHub's GraphQL `markPullRequestReadyForReview(input: {pullRequestId})`
/// and `convertPullRequestToDraft(input: {pullRequestId})` (schema.graphql),
/// the id given inline, as a variable, or in an `input` variable. 200 with
/// `data.<mutation>.pullRequest {id, number, isDraft, url}` whatever the
/// selection; an unknown id gives GitHub's NOT_FOUND error; any other
/// document a 200 with `errors`.
fn graphql(state: &mut State, request: &Request) -> Reply {
    let document = request.body["query"].as_str().unwrap_or_default();
    let variables = &request.body["variables"];
    let mutation = ["markPullRequestReadyForReview", "convertPullRequestToDraft"]
        .into_iter()
        .find(|name| document.contains(name))
        .filter(|_| document.trim_start().starts_with("mutation"));
    let Some(mutation) = mutation else {
        return json_reply(
            200,
            &json!({"errors": [{"message": "fake forge: only the markPullRequestReadyForReview and convertPullRequestToDraft mutations are served", "locations": [{"line": 1, "column": 1}]}]}),
        );
    };
    let id = graphql_pull_id(document, variables).unwrap_or_default();
    let found = state
        .issues
        .values()
        .find(|issue| issue.pull.is_some() && pull_node_id(issue.number) == id)
        .map(|issue| issue.number);
    let mut data = Map::new();
    let Some(number) = found else {
        data.insert(mutation.to_owned(), Value::Null);
        return json_reply(
            200,
            &json!({"data": data, "errors": [{
                "type": "NOT_FOUND",
                "path": [mutation],
                "locations": [{"line": 2, "column": 3}],
                "message": format!("Could not resolve to a node with the global id of '{id}'")
            }]}),
        );
    };
    let now = state.tick();
    if let Some(issue) = state.issues.get_mut(&number)
        && let Some(pull) = issue.pull.as_mut()
    {
        pull.draft = mutation == "convertPullRequestToDraft";
        issue.updated = now;
    }
    let issue = &state.issues[&number];
    data.insert(
        mutation.to_owned(),
        json!({"pullRequest": {
            "id": id,
            "number": number,
            "isDraft": state.is_draft(issue),
            "url": state.issue_html(issue)
        }}),
    );
    json_reply(200, &json!({ "data": data }))
}

/// The `pullRequestId` of a mutation: a string literal, a `$variable`, or a
/// `pullRequestId` inside a variable (`input: $input`).
fn graphql_pull_id(document: &str, variables: &Value) -> Option<String> {
    for (position, _) in document.match_indices("pullRequestId") {
        if document[..position].ends_with('$') {
            continue;
        }
        let after = document[position + "pullRequestId".len()..].trim_start();
        let Some(value) = after.strip_prefix(':').map(str::trim_start) else {
            continue;
        };
        if let Some(literal) = value.strip_prefix('"') {
            return literal.split('"').next().map(str::to_owned);
        }
        if let Some(variable) = value.strip_prefix('$') {
            let name: String = variable
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            return variables[name.as_str()].as_str().map(str::to_owned);
        }
    }
    variables
        .as_object()
        .into_iter()
        .flat_map(|object| object.values())
        .find_map(|value| value["pullRequestId"].as_str())
        .map(str::to_owned)
}

// ---- collaborators --------------------------------------------------------------

/// GitHub `repos/get-collaborator-permission-level` → `{permission,
/// role_name, user}`: `maintain` maps to permission `write` and `triage` to
/// `read`, the role kept in `role_name`. Forgejo `repoGetRepoPermissions` →
/// `{permission, role_name, user}`, both the access mode (`none`, `read`,
/// `write`, `admin`, `owner`); 403 unless the token user is a repository
/// admin or asks about itself.
fn permission(state: &State, user: &str) -> Reply {
    let raw = state.permissions.get(user).map_or("none", String::as_str);
    match state.flavor {
        Flavor::GitHub => {
            let permission = match raw {
                "maintain" => "write",
                "triage" => "read",
                other => other,
            };
            let mut user_json = state.user_json(user, false);
            user_json["role_name"] = json!(raw);
            user_json["permissions"] = json!({
                "admin": permission == "admin",
                "maintain": raw == "maintain" || permission == "admin",
                "push": permission == "admin" || permission == "write",
                "triage": permission != "none",
                "pull": permission != "none",
            });
            json_reply(
                200,
                &json!({"permission": permission, "role_name": raw, "user": user_json}),
            )
        }
        Flavor::Forgejo => {
            let asker = state
                .permissions
                .get(&state.token_user)
                .map_or("admin", String::as_str);
            if !matches!(asker, "admin" | "owner") && user != state.token_user {
                return state.error(
                    403,
                    "Only admins can query all permissions, repo admins can query all repo permissions, collaborators can query only their own",
                );
            }
            json_reply(
                200,
                &json!({"permission": raw, "role_name": raw, "user": state.user_json(user, false)}),
            )
        }
    }
}

// ---- actions --------------------------------------------------------------------

/// GitHub `actions/create-workflow-dispatch` `{ref, inputs}` → 204 (200
/// with `{workflow_run_id, run_url, html_url}` when `return_run_details`);
/// 422 without `ref` or with more than 25 inputs. Forgejo `DispatchWorkflow`
/// `{ref, inputs}` → 204 (201 `{id, run_number, jobs}` when
/// `return_run_info`); 400 without `ref`; inputs are a string map there.
fn dispatch(state: &mut State, request: &Request, workflow: &str) -> Reply {
    let reference = request.body["ref"].as_str().unwrap_or_default();
    let inputs = match &request.body["inputs"] {
        Value::Null => json!({}),
        other => other.clone(),
    };
    match state.flavor {
        Flavor::GitHub => {
            if reference.is_empty() {
                return state.invalid(
                    "Workflow",
                    "ref",
                    "missing_field",
                    "Invalid request.\n\n\"ref\" wasn't supplied.",
                );
            }
            if inputs.as_object().is_none_or(|inputs| inputs.len() > 25) {
                return state.invalid(
                    "Workflow",
                    "inputs",
                    "invalid",
                    "inputs must be an object of at most 25 properties",
                );
            }
        }
        Flavor::Forgejo => {
            if reference.is_empty() {
                return state.error(400, "ref is empty");
            }
            if !inputs
                .as_object()
                .is_some_and(|inputs| inputs.values().all(Value::is_string))
            {
                return state.invalid("Workflow", "inputs", "invalid", "Inputs: json: cannot unmarshal into Go struct field DispatchWorkflowOption.inputs of type string");
            }
        }
    }
    state
        .dispatches
        .push(json!({"workflow": workflow, "ref": reference, "inputs": inputs}));
    let run = state.fresh_id();
    match state.flavor {
        Flavor::GitHub if request.body["return_run_details"] == json!(true) => json_reply(
            200,
            &json!({
                "workflow_run_id": run,
                "run_url": format!("{}/actions/runs/{run}", state.repo_api()),
                "html_url": format!("{}/actions/runs/{run}", state.repo_html()),
            }),
        ),
        Flavor::Forgejo if request.body["return_run_info"] == json!(true) => json_reply(
            201,
            &json!({"id": run, "run_number": state.dispatches.len(), "jobs": []}),
        ),
        Flavor::GitHub | Flavor::Forgejo => no_content(),
    }
}

// ---- paging ---------------------------------------------------------------------

/// One page of `items` and the `Link` header (`next`, `last`, `first`,
/// `prev`, absolute URLs keeping the other query parameters) both forges
/// send; Forgejo also `x-total-count`.
fn paginate(
    state: &State,
    request: &Request,
    items: Vec<Value>,
    size_parameter: &str,
    default_size: usize,
    max_size: usize,
) -> Reply {
    let total = items.len();
    let size = request
        .query(size_parameter)
        .and_then(|value| value.parse::<usize>().ok())
        .filter(|size| *size > 0)
        .map_or(default_size, |size| size.min(max_size));
    let page = request
        .query("page")
        .and_then(|value| value.parse::<usize>().ok())
        .filter(|page| *page > 0)
        .unwrap_or(1);
    let last = total.div_ceil(size).max(1);
    let shown: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .collect();
    let link = |target: usize, relation: &str| {
        let mut pairs: Vec<String> = request
            .query
            .iter()
            .filter(|(key, _)| key != "page" && key != size_parameter)
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        pairs.push(format!("{size_parameter}={size}"));
        pairs.push(format!("page={target}"));
        format!(
            "<{}{}?{}>; rel=\"{relation}\"",
            state.server(),
            request.path,
            pairs.join("&")
        )
    };
    let mut links = Vec::new();
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
        links.push(link(page - 1, "prev"));
    }
    let mut reply = json_reply(200, &Value::Array(shown));
    if !links.is_empty() {
        reply.headers.push(("link".to_owned(), links.join(", ")));
    }
    if state.flavor == Flavor::Forgejo {
        reply
            .headers
            .push(("x-total-count".to_owned(), total.to_string()));
    }
    reply
}

// ---- small helpers ---------------------------------------------------------------

fn parse_number(text: &str) -> Option<u64> {
    text.parse().ok()
}

fn state_matches(issue: &Issue, wanted: &str) -> bool {
    match wanted {
        "all" => true,
        "closed" => !issue.open,
        _ => issue.open,
    }
}

fn split_list(list: Option<&str>) -> Vec<String> {
    list.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// GitHub label lists: names, or objects with a `name`.
fn label_names(listed: &Value) -> Vec<String> {
    listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_str().or_else(|| item["name"].as_str()))
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

fn pull_id(number: u64) -> u64 {
    20_000 + number
}

fn pull_node_id(number: u64) -> String {
    format!("PR_kwDOfake{number:06}")
}

/// A stable id for a login (FNV-1a).
fn user_id(login: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in login.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % 9_000_000 + 1_000_000
}

/// A stable fake commit id for a branch.
fn fake_sha(branch: &str) -> String {
    let high = u128::from(user_id(branch));
    let low = u128::from(user_id(&format!("{branch}#")));
    format!("{:040x}", (high << 64) | low)
}

/// `seconds` after the fake epoch as RFC 3339 UTC.
fn timestamp(seconds: u64) -> String {
    let total = EPOCH_2026 + seconds;
    let (days, in_day) = (total / 86_400, total % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

// ---- the state: lookups, errors and the JSON shapes ---------------------------------

impl State {
    fn server(&self) -> String {
        format!("http://{}", self.address)
    }

    fn api(&self) -> String {
        match self.flavor {
            Flavor::GitHub => self.server(),
            Flavor::Forgejo => format!("{}/api/v1", self.server()),
        }
    }

    fn repo_api(&self) -> String {
        format!("{}/repos/{}/{}", self.api(), self.owner, self.repo)
    }

    fn repo_html(&self) -> String {
        format!("{}/{}/{}", self.server(), self.owner, self.repo)
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Issues and pull requests share one sequence.
    fn next_number(&self) -> u64 {
        self.issues.keys().next_back().map_or(1, |last| last + 1)
    }

    /// GitHub label names are case-insensitive; Forgejo matches them exactly.
    fn label_named(&self, name: &str) -> Option<&Label> {
        self.labels.iter().find(|label| match self.flavor {
            Flavor::GitHub => label.name.eq_ignore_ascii_case(name),
            Flavor::Forgejo => label.name == name,
        })
    }

    /// The label's id, creating it (color `ededed`) if the repository lacks it.
    fn ensure_label(&mut self, name: &str) -> u64 {
        if let Some(label) = self.label_named(name) {
            return label.id;
        }
        let id = self.fresh_id();
        self.labels.push(Label {
            id,
            name: name.to_owned(),
            color: "ededed".to_owned(),
        });
        id
    }

    /// `owner:branch` → (owner, branch); a bare branch is the repository owner's.
    fn split_head(&self, head: &str) -> (String, String) {
        match head.split_once(':') {
            // Forgejo also takes `owner/repo:branch`.
            Some((owner, branch)) => (
                owner.split('/').next().unwrap_or(owner).to_owned(),
                branch.to_owned(),
            ),
            None => (self.owner.clone(), head.to_owned()),
        }
    }

    fn open_pull(&self, head_owner: &str, head: &str, base: &str) -> Option<u64> {
        self.issues
            .values()
            .find(|issue| {
                issue.open
                    && issue.pull.as_ref().is_some_and(|pull| {
                        pull.head_owner.eq_ignore_ascii_case(head_owner)
                            && pull.head == head
                            && pull.base == base
                    })
            })
            .map(|issue| issue.number)
    }

    fn comment_count(&self, number: u64) -> usize {
        self.comments
            .iter()
            .filter(|comment| comment.issue == number)
            .count()
    }

    /// GitHub: the `draft` flag. Forgejo: the title's `WIP:` or `[WIP]`
    /// prefix, any case (`WORK_IN_PROGRESS_PREFIXES` default).
    fn is_draft(&self, issue: &Issue) -> bool {
        match self.flavor {
            Flavor::GitHub => issue.pull.as_ref().is_some_and(|pull| pull.draft),
            Flavor::Forgejo => {
                let title = issue.title.to_ascii_uppercase();
                issue.pull.is_some() && (title.starts_with("WIP:") || title.starts_with("[WIP]"))
            }
        }
    }

    fn issue_html(&self, issue: &Issue) -> String {
        let kind = match (issue.pull.is_some(), self.flavor) {
            (false, _) => "issues",
            (true, Flavor::GitHub) => "pull",
            (true, Flavor::Forgejo) => "pulls",
        };
        format!("{}/{kind}/{}", self.repo_html(), issue.number)
    }

    // ---- errors ----

    /// GitHub basic-error `{message, documentation_url, status}`; Forgejo
    /// APIError `{message, url}`.
    fn error(&self, status: u16, message: &str) -> Reply {
        let body = match self.flavor {
            Flavor::GitHub => json!({
                "message": message,
                "documentation_url": "https://docs.github.com/rest",
                "status": status.to_string()
            }),
            Flavor::Forgejo => {
                json!({"message": message, "url": format!("{}/api/swagger", self.server())})
            }
        };
        json_reply(status, &body)
    }

    /// GitHub `{"message": "Not Found", …}`; Forgejo APINotFound
    /// `{message, url, errors}` (`ctx.NotFound()`).
    fn not_found(&self) -> Reply {
        match self.flavor {
            Flavor::GitHub => self.error(404, "Not Found"),
            Flavor::Forgejo => json_reply(
                404,
                &json!({
                    "errors": null,
                    "message": "The target couldn't be found.",
                    "url": format!("{}/api/swagger", self.server())
                }),
            ),
        }
    }

    /// 422. GitHub validation-error: `{"message": "Validation Failed",
    /// "errors": [{resource, field, code, message}], documentation_url,
    /// status}`; Forgejo APIValidationError `{message, url}`.
    fn invalid(&self, resource: &str, field: &str, code: &str, message: &str) -> Reply {
        match self.flavor {
            Flavor::GitHub => json_reply(
                422,
                &json!({
                    "message": "Validation Failed",
                    "errors": [{"resource": resource, "field": field, "code": code, "message": message}],
                    "documentation_url": "https://docs.github.com/rest",
                    "status": "422"
                }),
            ),
            Flavor::Forgejo => self.error(422, message),
        }
    }

    // ---- shapes ----

    /// GitHub simple-user `{login, id, node_id, type, …}`; Forgejo User
    /// `{id, login, …}` (no type: Forgejo does not mark bots).
    fn user_json(&self, login: &str, bot: bool) -> Value {
        let id = user_id(login);
        match self.flavor {
            Flavor::GitHub => json!({
                "login": login,
                "id": id,
                "node_id": format!("U_kgfake{id}"),
                "avatar_url": format!("{}/avatars/{login}", self.server()),
                "gravatar_id": "",
                "url": format!("{}/users/{login}", self.api()),
                "html_url": format!("{}/{login}", self.server()),
                "type": if bot { "Bot" } else { "User" },
                "user_view_type": "public",
                "site_admin": false
            }),
            Flavor::Forgejo => json!({
                "id": id,
                "login": login,
                "login_name": "",
                "full_name": "",
                "email": format!("{login}@noreply.localhost"),
                "avatar_url": format!("{}/avatars/{id}", self.server()),
                "html_url": format!("{}/{login}", self.server()),
                "language": "",
                "is_admin": false,
                "restricted": false,
                "active": true,
                "prohibit_login": false,
                "visibility": "public",
                "created": timestamp(0)
            }),
        }
    }

    /// GitHub full-repository; Forgejo Repository (the fields a client reads).
    fn repository_json(&self, owner: &str) -> Value {
        let full_name = format!("{owner}/{}", self.repo);
        let html_url = format!("{}/{full_name}", self.server());
        let mut repository = json!({
            "id": user_id(&full_name),
            "name": self.repo,
            "full_name": full_name,
            "owner": self.user_json(owner, false),
            "private": false,
            "fork": owner != self.owner,
            "html_url": html_url,
            "url": format!("{}/repos/{full_name}", self.api()),
            "clone_url": format!("{html_url}.git"),
            "default_branch": self.default_branch,
            "archived": false,
        });
        match self.flavor {
            Flavor::GitHub => {
                repository["node_id"] = json!(format!("R_kgfake{}", user_id(&full_name)));
                repository["has_issues"] = json!(true);
                repository["visibility"] = json!("public");
            }
            Flavor::Forgejo => {
                repository["empty"] = json!(false);
                repository["has_issues"] = json!(true);
                repository["has_pull_requests"] = json!(true);
                repository["has_actions"] = json!(true);
            }
        }
        repository
    }

    /// GitHub label `{id, node_id, url, name, description, color, default}`;
    /// Forgejo Label `{id, name, exclusive, is_archived, color, description, url}`.
    fn label_json(&self, label: &Label) -> Value {
        let name = &label.name;
        match self.flavor {
            Flavor::GitHub => json!({
                "id": label.id,
                "node_id": format!("LA_kwfake{}", label.id),
                "url": format!("{}/labels/{}", self.repo_api(), name.replace(':', "%3A").replace(' ', "%20")),
                "name": name,
                "description": null,
                "color": label.color,
                "default": false
            }),
            Flavor::Forgejo => json!({
                "id": label.id,
                "name": name,
                "exclusive": false,
                "is_archived": false,
                "color": label.color,
                "description": "",
                "url": format!("{}/labels/{}", self.repo_api(), label.id)
            }),
        }
    }

    /// The labels with these ids, by name (how both forges list an issue's).
    fn labels_json(&self, ids: &[u64]) -> Value {
        let mut labels: Vec<&Label> = self
            .labels
            .iter()
            .filter(|label| ids.contains(&label.id))
            .collect();
        labels.sort_by(|left, right| left.name.cmp(&right.name).then(left.id.cmp(&right.id)));
        Value::Array(labels.iter().map(|label| self.label_json(label)).collect())
    }

    /// GitHub issue (a pull request's carries `pull_request {url, html_url,
    /// diff_url, patch_url, merged_at}` and `draft`; a plain issue has no
    /// `pull_request` key); Forgejo Issue (`pull_request` null, or
    /// PullRequestMeta `{merged, merged_at, draft, html_url}`).
    fn issue_json(&self, issue: &Issue) -> Value {
        let number = issue.number;
        let html_url = self.issue_html(issue);
        let state = if issue.open { "open" } else { "closed" };
        let closed_at = (!issue.open).then(|| timestamp(issue.updated));
        match self.flavor {
            Flavor::GitHub => {
                let mut json = json!({
                    "id": 10_000 + number,
                    "node_id": format!("I_kwDOfake{number:06}"),
                    "url": format!("{}/issues/{number}", self.repo_api()),
                    "repository_url": self.repo_api(),
                    "labels_url": format!("{}/issues/{number}/labels{{/name}}", self.repo_api()),
                    "comments_url": format!("{}/issues/{number}/comments", self.repo_api()),
                    "events_url": format!("{}/issues/{number}/events", self.repo_api()),
                    "html_url": html_url,
                    "number": number,
                    "state": state,
                    "state_reason": if issue.open { Value::Null } else { json!("completed") },
                    "title": issue.title,
                    "body": issue.body,
                    "user": self.user_json(&issue.author, issue.bot),
                    "labels": self.labels_json(&issue.labels),
                    "assignee": null,
                    "assignees": [],
                    "milestone": null,
                    "locked": false,
                    "active_lock_reason": null,
                    "comments": self.comment_count(number),
                    "created_at": timestamp(issue.created),
                    "updated_at": timestamp(issue.updated),
                    "closed_at": closed_at,
                    "author_association": self.association(&issue.author),
                });
                if issue.pull.is_some() {
                    json["draft"] = json!(self.is_draft(issue));
                    json["pull_request"] = json!({
                        "url": format!("{}/pulls/{number}", self.repo_api()),
                        "html_url": html_url,
                        "diff_url": format!("{html_url}.diff"),
                        "patch_url": format!("{html_url}.patch"),
                        "merged_at": null
                    });
                }
                json
            }
            Flavor::Forgejo => json!({
                "id": 10_000 + number,
                "url": format!("{}/issues/{number}", self.repo_api()),
                "html_url": html_url,
                "number": number,
                "user": self.user_json(&issue.author, issue.bot),
                "original_author": "",
                "original_author_id": 0,
                "title": issue.title,
                "body": issue.body,
                "ref": "",
                "assets": [],
                "labels": self.labels_json(&issue.labels),
                "milestone": null,
                "assignee": null,
                "assignees": null,
                "state": state,
                "is_locked": false,
                "comments": self.comment_count(number),
                "created_at": timestamp(issue.created),
                "updated_at": timestamp(issue.updated),
                "closed_at": closed_at,
                "due_date": null,
                "pull_request": issue.pull.as_ref().map(|_| json!({
                    "merged": false,
                    "merged_at": null,
                    "draft": self.is_draft(issue),
                    "html_url": html_url
                })),
                "repository": {
                    "id": user_id(&format!("{}/{}", self.owner, self.repo)),
                    "name": self.repo,
                    "owner": self.owner,
                    "full_name": format!("{}/{}", self.owner, self.repo)
                },
                "pin_order": 0
            }),
        }
    }

    /// A branch's head: as a test set it, else as the origin repository
    /// has it, else a made-up one.
    fn head_sha(&self, branch: &str) -> String {
        if let Some(sha) = self.head_shas.get(branch) {
            return sha.clone();
        }
        if let Some(origin) = &self.origin
            && let Ok(output) = std::process::Command::new("git")
                .arg("-C")
                .arg(origin)
                .args(["rev-parse", "--verify", "--quiet"])
                .arg(format!("refs/heads/{branch}"))
                .output()
            && output.status.success()
        {
            return String::from_utf8_lossy(&output.stdout).trim().to_owned();
        }
        fake_sha(branch)
    }

    /// GitHub pull-request; Forgejo PullRequest (`draft` from the title,
    /// `head.label` the bare branch, `requested_reviewers` users).
    fn pull_json(&self, issue: &Issue) -> Value {
        let Some(pull) = &issue.pull else {
            return Value::Null;
        };
        let number = issue.number;
        let html_url = self.issue_html(issue);
        let reviewers: Vec<Value> = pull
            .reviewers
            .iter()
            .map(|login| self.user_json(login, false))
            .collect();
        let head_sha = self.head_sha(&pull.head);
        let base_sha = fake_sha(&pull.base);
        let state = if issue.open { "open" } else { "closed" };
        let closed_at = (!issue.open).then(|| timestamp(issue.updated));
        match self.flavor {
            Flavor::GitHub => json!({
                "url": format!("{}/pulls/{number}", self.repo_api()),
                "id": pull_id(number),
                "node_id": pull_node_id(number),
                "html_url": html_url,
                "diff_url": format!("{html_url}.diff"),
                "patch_url": format!("{html_url}.patch"),
                "issue_url": format!("{}/issues/{number}", self.repo_api()),
                "number": number,
                "state": state,
                "locked": false,
                "title": issue.title,
                "user": self.user_json(&issue.author, issue.bot),
                "body": issue.body,
                "labels": self.labels_json(&issue.labels),
                "milestone": null,
                "created_at": timestamp(issue.created),
                "updated_at": timestamp(issue.updated),
                "closed_at": closed_at,
                "merged_at": null,
                "merge_commit_sha": null,
                "assignee": null,
                "assignees": [],
                "requested_reviewers": reviewers,
                "requested_teams": [],
                "head": {
                    "label": format!("{}:{}", pull.head_owner, pull.head),
                    "ref": pull.head,
                    "sha": head_sha,
                    "user": self.user_json(&pull.head_owner, false),
                    "repo": self.repository_json(&pull.head_owner)
                },
                "base": {
                    "label": format!("{}:{}", self.owner, pull.base),
                    "ref": pull.base,
                    "sha": base_sha,
                    "user": self.user_json(&self.owner, false),
                    "repo": self.repository_json(&self.owner)
                },
                "author_association": self.association(&issue.author),
                "auto_merge": null,
                "draft": self.is_draft(issue),
                "merged": false,
                "mergeable": null,
                "mergeable_state": "unknown",
                "merged_by": null,
                "comments": self.comment_count(number),
                "review_comments": 0,
                "maintainer_can_modify": false,
                "commits": 1,
                "additions": 1,
                "deletions": 0,
                "changed_files": 1
            }),
            Flavor::Forgejo => json!({
                "id": pull_id(number),
                "url": format!("{}/pulls/{number}", self.repo_api()),
                "number": number,
                "user": self.user_json(&issue.author, issue.bot),
                "title": issue.title,
                "body": issue.body,
                "labels": self.labels_json(&issue.labels),
                "milestone": null,
                "assignee": null,
                "assignees": null,
                "requested_reviewers": reviewers,
                "requested_reviewers_teams": [],
                "state": state,
                "draft": self.is_draft(issue),
                "is_locked": false,
                "comments": self.comment_count(number),
                "review_comments": 0,
                "additions": 1,
                "deletions": 0,
                "changed_files": 1,
                "html_url": html_url,
                "diff_url": format!("{html_url}.diff"),
                "patch_url": format!("{html_url}.patch"),
                "mergeable": true,
                "merged": false,
                "merged_at": null,
                "merge_commit_sha": null,
                "merged_by": null,
                "allow_maintainer_edit": false,
                "base": {
                    "label": pull.base,
                    "ref": pull.base,
                    "sha": base_sha,
                    "repo_id": user_id(&format!("{}/{}", self.owner, self.repo)),
                    "repo": self.repository_json(&self.owner)
                },
                "head": {
                    "label": pull.head,
                    "ref": pull.head,
                    "sha": head_sha,
                    "repo_id": user_id(&format!("{}/{}", pull.head_owner, self.repo)),
                    "repo": self.repository_json(&pull.head_owner)
                },
                "merge_base": base_sha,
                "due_date": null,
                "created_at": timestamp(issue.created),
                "updated_at": timestamp(issue.updated),
                "closed_at": closed_at,
                "pin_order": 0,
                "flow": 0
            }),
        }
    }

    /// GitHub issue-comment `{id, node_id, url, html_url, body, user,
    /// created_at, updated_at, issue_url, author_association}`; Forgejo
    /// Comment `{id, html_url, pull_request_url, issue_url, user, body, …}`.
    fn comment_json(&self, comment: &Comment) -> Value {
        let issue_html = self.issues.get(&comment.issue).map_or_else(
            || format!("{}/issues/{}", self.repo_html(), comment.issue),
            |issue| self.issue_html(issue),
        );
        let is_pull = self
            .issues
            .get(&comment.issue)
            .is_some_and(|issue| issue.pull.is_some());
        let html_url = format!("{issue_html}#issuecomment-{}", comment.id);
        match self.flavor {
            Flavor::GitHub => json!({
                "id": comment.id,
                "node_id": format!("IC_kwfake{}", comment.id),
                "url": format!("{}/issues/comments/{}", self.repo_api(), comment.id),
                "html_url": html_url,
                "body": comment.body,
                "user": self.user_json(&comment.author, comment.bot),
                "created_at": timestamp(comment.created),
                "updated_at": timestamp(comment.updated),
                "issue_url": format!("{}/issues/{}", self.repo_api(), comment.issue),
                "author_association": self.association(&comment.author)
            }),
            Flavor::Forgejo => json!({
                "id": comment.id,
                "html_url": html_url,
                "pull_request_url": if is_pull { issue_html.clone() } else { String::new() },
                "issue_url": if is_pull { String::new() } else { issue_html },
                "user": self.user_json(&comment.author, comment.bot),
                "original_author": "",
                "original_author_id": 0,
                "body": comment.body,
                "assets": [],
                "created_at": timestamp(comment.created),
                "updated_at": timestamp(comment.updated)
            }),
        }
    }

    /// Forgejo PullReview for a review request.
    fn review_request_json(&self, id: u64, number: u64, login: &str, now: u64) -> Value {
        let pull_html = format!("{}/pulls/{number}", self.repo_html());
        let head = self.issues[&number]
            .pull
            .as_ref()
            .map_or_else(String::new, |pull| fake_sha(&pull.head));
        json!({
            "id": id,
            "user": self.user_json(login, false),
            "team": null,
            "state": "REQUEST_REVIEW",
            "body": "",
            "commit_id": head,
            "stale": false,
            "official": false,
            "dismissed": false,
            "comments_count": 0,
            "submitted_at": timestamp(now),
            "updated_at": timestamp(now),
            "html_url": format!("{pull_html}#issuecomment-{id}"),
            "pull_request_url": pull_html
        })
    }

    /// GitHub author_association: the repository owner is OWNER, anyone
    /// given a permission a COLLABORATOR, the rest NONE.
    fn association(&self, login: &str) -> &'static str {
        if login.eq_ignore_ascii_case(&self.owner) {
            "OWNER"
        } else if self
            .permissions
            .get(login)
            .is_some_and(|permission| permission != "none")
        {
            "COLLABORATOR"
        } else {
            "NONE"
        }
    }
}
