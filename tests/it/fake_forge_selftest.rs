//! The fake forge (`support::fake_forge`) against a tiny std HTTP client:
//! authentication, issues and comments, labels by name (GitHub) and by id
//! (Forgejo), pull requests and their duplicates, permissions, paging with
//! `Link`, faults, and a write applied under a late reply. These pin the
//! fake's routes and shapes so the forge clients' tests can lean on them.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::fake_forge::{FakeForge, Fault, Flavor};

const TOKEN: &str = "forge-token-0123456789";
const PATIENT: Duration = Duration::from_secs(10);

struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: Value,
}

fn start(flavor: Flavor) -> FakeForge {
    FakeForge::start(flavor, "acme", "widgets", TOKEN)
}

fn authorization(forge: &FakeForge) -> String {
    // Which scheme each forge documents; both accept either.
    if forge.api_url().ends_with("/api/v1") {
        format!("token {TOKEN}")
    } else {
        format!("Bearer {TOKEN}")
    }
}

/// One HTTP/1.1 request to `target` (path and query from the server root).
fn send(
    forge: &FakeForge,
    method: &str,
    target: &str,
    authorization: Option<&str>,
    body: Option<&Value>,
    timeout: Duration,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(forge.address)?;
    stream.set_read_timeout(Some(timeout))?;
    let payload = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nhost: {}\r\nuser-agent: baton-fake-forge-selftest\r\naccept: application/json\r\nconnection: close\r\n",
        forge.address
    );
    if let Some(authorization) = authorization {
        head.push_str(&format!("authorization: {authorization}\r\n"));
    }
    if body.is_some() {
        head.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            payload.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(payload.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|status| status.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    })
}

/// A request to `path` under the API base, with the token.
fn call(forge: &FakeForge, method: &str, path: &str, body: Option<Value>) -> Response {
    let prefix = forge.api_url()[forge.server_url().len()..].to_owned();
    send(
        forge,
        method,
        &format!("{prefix}{path}"),
        Some(&authorization(forge)),
        body.as_ref(),
        PATIENT,
    )
    .unwrap()
}

/// The `rel="next"` target of a `Link` header, from the server root.
fn next_page(forge: &FakeForge, response: &Response) -> Option<String> {
    let link = response.headers.get("link")?;
    link.split(", ")
        .find(|part| part.ends_with("rel=\"next\""))
        .and_then(|part| part.split_once('<'))
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(url, _)| url[forge.server_url().len()..].to_owned())
}

fn numbers(body: &Value) -> Vec<u64> {
    body.as_array()
        .unwrap()
        .iter()
        .map(|item| item["number"].as_u64().unwrap())
        .collect()
}

fn names(body: &Value) -> Vec<&str> {
    body.as_array()
        .unwrap()
        .iter()
        .map(|label| label["name"].as_str().unwrap())
        .collect()
}

#[test]
fn fake_forge_refuses_requests_without_the_token() {
    for flavor in [Flavor::GitHub, Flavor::Forgejo] {
        let forge = start(flavor);
        let prefix = forge.api_url()[forge.server_url().len()..].to_owned();
        let target = format!("{prefix}/repos/acme/widgets");
        let missing = send(&forge, "GET", &target, None, None, PATIENT).unwrap();
        assert_eq!(missing.status, 401);
        assert!(missing.body["message"].is_string());
        let wrong = send(&forge, "GET", &target, Some("token nope"), None, PATIENT).unwrap();
        assert_eq!(wrong.status, 401);
        match flavor {
            Flavor::GitHub => {
                assert_eq!(wrong.body["message"], "Bad credentials");
                assert!(wrong.body["documentation_url"].is_string());
            }
            Flavor::Forgejo => assert!(wrong.body["url"].is_string()),
        }
        for scheme in ["token", "Bearer"] {
            let credential = format!("{scheme} {TOKEN}");
            let repository =
                send(&forge, "GET", &target, Some(&credential), None, PATIENT).unwrap();
            assert_eq!(repository.status, 200, "{flavor:?} {scheme}");
            assert_eq!(repository.body["full_name"], "acme/widgets");
            assert_eq!(repository.body["default_branch"], "main");
            assert!(repository.body["html_url"].is_string());
        }
        let statuses: Vec<u16> = forge
            .requests()
            .iter()
            .map(|request| request.status)
            .collect();
        assert_eq!(statuses, [401, 401, 200, 200]);
    }
}

#[test]
fn fake_forge_serves_issues_and_comments_on_both_flavors() {
    for flavor in [Flavor::GitHub, Flavor::Forgejo] {
        let forge = start(flavor);
        forge.add_issue(
            7,
            "Greet the world",
            "say hello, world",
            &["baton:queued"],
            "alice",
        );
        forge.add_comment(7, "baton[bot]", "<!-- baton:status -->", true);

        let issue = call(&forge, "GET", "/repos/acme/widgets/issues/7", None);
        assert_eq!(issue.status, 200);
        assert_eq!(issue.body["number"], 7);
        assert_eq!(issue.body["title"], "Greet the world");
        assert_eq!(issue.body["state"], "open");
        assert_eq!(issue.body["user"]["login"], "alice");
        assert_eq!(names(&issue.body["labels"]), ["baton:queued"]);
        assert_eq!(issue.body, forge.issue(7));
        match flavor {
            Flavor::GitHub => assert!(issue.body.get("pull_request").is_none()),
            Flavor::Forgejo => assert!(issue.body["pull_request"].is_null()),
        }
        assert_eq!(
            call(&forge, "GET", "/repos/acme/widgets/issues/99", None).status,
            404
        );

        let created = call(
            &forge,
            "POST",
            "/repos/acme/widgets/issues/7/comments",
            Some(json!({"body": "working on it"})),
        );
        assert_eq!(created.status, 201);
        let id = created.body["id"].as_u64().unwrap();
        let edited = call(
            &forge,
            "PATCH",
            &format!("/repos/acme/widgets/issues/comments/{id}"),
            Some(json!({"body": "done"})),
        );
        assert_eq!(edited.status, 200);
        assert_eq!(edited.body["body"], "done");

        let listed = call(&forge, "GET", "/repos/acme/widgets/issues/7/comments", None);
        assert_eq!(listed.status, 200);
        assert_eq!(listed.body.as_array().unwrap().len(), 2);
        assert_eq!(listed.body[1]["body"], "done");
        if flavor == Flavor::GitHub {
            assert_eq!(listed.body[0]["user"]["type"], "Bot");
            assert_eq!(listed.body[1]["user"]["login"], "github-actions[bot]");
        }
        assert_eq!(forge.comments(7), *listed.body.as_array().unwrap());

        let closed = call(
            &forge,
            "PATCH",
            "/repos/acme/widgets/issues/7",
            Some(json!({"state": "closed"})),
        );
        let edit_status = if flavor == Flavor::GitHub { 200 } else { 201 };
        assert_eq!(closed.status, edit_status);
        assert_eq!(closed.body["state"], "closed");

        let labels = match flavor {
            Flavor::GitHub => json!(["baton:child"]),
            Flavor::Forgejo => json!([forge.label_id("baton:queued").unwrap()]),
        };
        let child = call(
            &forge,
            "POST",
            "/repos/acme/widgets/issues",
            Some(json!({"title": "Part one", "body": "the first half", "labels": labels})),
        );
        assert_eq!(child.status, 201);
        assert_eq!(child.body["number"], 8);
        assert_eq!(child.body["labels"].as_array().unwrap().len(), 1);
    }
}

#[test]
fn fake_forge_labels_issues_by_name_on_github() {
    let forge = start(Flavor::GitHub);
    forge.add_issue(7, "Greet", "", &[], "alice");
    let added = call(
        &forge,
        "POST",
        "/repos/acme/widgets/issues/7/labels",
        Some(json!({"labels": ["baton:running"]})),
    );
    assert_eq!(added.status, 200);
    assert_eq!(names(&added.body), ["baton:running"]);
    assert_eq!(forge.labels_of(7), ["baton:running"]);

    let removed = call(
        &forge,
        "DELETE",
        "/repos/acme/widgets/issues/7/labels/baton%3Arunning",
        None,
    );
    assert_eq!(removed.status, 200);
    assert_eq!(removed.body, json!([]));
    let again = call(
        &forge,
        "DELETE",
        "/repos/acme/widgets/issues/7/labels/baton%3Arunning",
        None,
    );
    assert_eq!(again.status, 404);
    assert_eq!(again.body["message"], "Label does not exist");
}

#[test]
fn fake_forge_labels_issues_by_id_on_forgejo() {
    let forge = start(Flavor::Forgejo);
    forge.add_issue(7, "Greet", "", &["baton:queued"], "alice");
    let queued = forge.label_id("baton:queued").unwrap();

    let listed = call(
        &forge,
        "GET",
        "/repos/acme/widgets/labels?page=1&limit=50",
        None,
    );
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body[0]["id"], queued);
    assert_eq!(listed.headers["x-total-count"], "1");

    let created = call(
        &forge,
        "POST",
        "/repos/acme/widgets/labels",
        Some(json!({"name": "baton:running", "color": "#00aabb"})),
    );
    assert_eq!(created.status, 201);
    assert_eq!(created.body["color"], "00aabb");
    let running = created.body["id"].as_u64().unwrap();

    let added = call(
        &forge,
        "POST",
        "/repos/acme/widgets/issues/7/labels",
        Some(json!({"labels": [running, 424_242]})),
    );
    assert_eq!(added.status, 200, "an unknown id is dropped, not refused");
    assert_eq!(names(&added.body), ["baton:queued", "baton:running"]);

    let removed = call(
        &forge,
        "DELETE",
        &format!("/repos/acme/widgets/issues/7/labels/{queued}"),
        None,
    );
    assert_eq!(removed.status, 204);
    assert_eq!(forge.labels_of(7), ["baton:running"]);
    let unknown = call(
        &forge,
        "DELETE",
        "/repos/acme/widgets/issues/7/labels/424242",
        None,
    );
    assert_eq!(unknown.status, 422);
}

#[test]
fn fake_forge_github_pull_requests_refuse_duplicates_and_change_draft_by_graphql() {
    let forge = start(Flavor::GitHub);
    forge.add_issue(7, "Greet the world", "", &[], "alice");
    let pull = json!({"title": "Greet the world", "head": "baton/issue-7", "base": "main", "body": "Closes #7", "draft": true});
    let created = call(
        &forge,
        "POST",
        "/repos/acme/widgets/pulls",
        Some(pull.clone()),
    );
    assert_eq!(created.status, 201);
    assert_eq!(created.body["number"], 8);
    assert_eq!(created.body["draft"], true);
    assert_eq!(created.body["head"]["ref"], "baton/issue-7");
    let node_id = created.body["node_id"].as_str().unwrap().to_owned();

    let found = call(
        &forge,
        "GET",
        "/repos/acme/widgets/pulls?state=open&head=acme%3Abaton%2Fissue-7&per_page=100",
        None,
    );
    assert_eq!(numbers(&found.body), [8]);
    let elsewhere = call(
        &forge,
        "GET",
        "/repos/acme/widgets/pulls?state=open&head=other:baton/issue-7",
        None,
    );
    assert_eq!(elsewhere.body, json!([]));

    let duplicate = call(&forge, "POST", "/repos/acme/widgets/pulls", Some(pull));
    assert_eq!(duplicate.status, 422);
    assert_eq!(duplicate.body["message"], "Validation Failed");
    assert_eq!(
        duplicate.body["errors"][0]["message"],
        "A pull request already exists for acme:baton/issue-7."
    );

    let updated = call(
        &forge,
        "PATCH",
        "/repos/acme/widgets/pulls/8",
        Some(json!({"body": "Closes #7\n\nReady.", "draft": false})),
    );
    assert_eq!(updated.status, 200);
    assert_eq!(updated.body["body"], "Closes #7\n\nReady.");
    assert_eq!(updated.body["draft"], true, "REST cannot change draft");

    let ready = call(
        &forge,
        "POST",
        "/graphql",
        Some(json!({
            "query": "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) { pullRequest { isDraft } } }",
            "variables": {"id": node_id}
        })),
    );
    assert_eq!(ready.status, 200);
    assert_eq!(
        ready.body["data"]["markPullRequestReadyForReview"]["pullRequest"]["isDraft"],
        false
    );
    assert_eq!(forge.pulls()[0]["draft"], false);
    let unknown = call(
        &forge,
        "POST",
        "/graphql",
        Some(
            json!({"query": "mutation { convertPullRequestToDraft(input: {pullRequestId: \"PR_nope\"}) { clientMutationId } }"}),
        ),
    );
    assert_eq!(unknown.body["errors"][0]["type"], "NOT_FOUND");

    let reviewers = call(
        &forge,
        "POST",
        "/repos/acme/widgets/pulls/8/requested_reviewers",
        Some(json!({"reviewers": ["bob"]})),
    );
    assert_eq!(reviewers.status, 201);
    assert_eq!(reviewers.body["requested_reviewers"][0]["login"], "bob");

    let listed = call(&forge, "GET", "/repos/acme/widgets/issues?state=open", None);
    assert_eq!(
        numbers(&listed.body),
        [8, 7],
        "newest first, pull requests included"
    );
    assert!(listed.body[0]["pull_request"]["html_url"].is_string());
}

#[test]
fn fake_forge_forgejo_pull_requests_are_found_by_base_and_head() {
    let forge = start(Flavor::Forgejo);
    let pull = json!({"title": "WIP: Greet the world", "head": "baton/issue-7", "base": "main", "body": "Closes #7"});
    let created = call(
        &forge,
        "POST",
        "/repos/acme/widgets/pulls",
        Some(pull.clone()),
    );
    assert_eq!(created.status, 201);
    assert_eq!(created.body["draft"], true, "a WIP: title is a draft");
    let number = created.body["number"].as_u64().unwrap();

    for head in ["baton/issue-7", "acme:baton/issue-7", "baton%2Fissue-7"] {
        let found = call(
            &forge,
            "GET",
            &format!("/repos/acme/widgets/pulls/main/{head}"),
            None,
        );
        assert_eq!(found.status, 200, "{head}");
        assert_eq!(found.body["number"], number);
    }
    let missing = call(&forge, "GET", "/repos/acme/widgets/pulls/main/other", None);
    assert_eq!(missing.status, 404);

    let duplicate = call(&forge, "POST", "/repos/acme/widgets/pulls", Some(pull));
    assert_eq!(duplicate.status, 409);
    assert!(
        duplicate.body["message"]
            .as_str()
            .unwrap()
            .starts_with("pull request already exists")
    );

    let ready = call(
        &forge,
        "PATCH",
        &format!("/repos/acme/widgets/pulls/{number}"),
        Some(json!({"title": "Greet the world"})),
    );
    assert_eq!(ready.status, 201);
    assert_eq!(ready.body["draft"], false);

    let reviewers = call(
        &forge,
        "POST",
        &format!("/repos/acme/widgets/pulls/{number}/requested_reviewers"),
        Some(json!({"reviewers": ["bob"]})),
    );
    assert_eq!(reviewers.status, 201);
    assert_eq!(reviewers.body[0]["state"], "REQUEST_REVIEW");
    assert_eq!(reviewers.body[0]["user"]["login"], "bob");

    call(
        &forge,
        "PATCH",
        &format!("/repos/acme/widgets/pulls/{number}"),
        Some(json!({"state": "closed"})),
    );
    let closed = call(
        &forge,
        "GET",
        "/repos/acme/widgets/pulls/main/baton/issue-7",
        None,
    );
    assert_eq!(
        closed.status, 200,
        "the base/head route finds closed ones too"
    );
    assert_eq!(closed.body["state"], "closed");
}

#[test]
fn fake_forge_answers_permission_strings_as_set() {
    let forge = start(Flavor::GitHub);
    forge.set_permission("alice", "admin");
    forge.set_permission("bob", "maintain");
    let ask = |user: &str| {
        call(
            &forge,
            "GET",
            &format!("/repos/acme/widgets/collaborators/{user}/permission"),
            None,
        )
    };
    let alice = ask("alice");
    assert_eq!(alice.status, 200);
    assert_eq!(
        (&alice.body["permission"], &alice.body["role_name"]),
        (&json!("admin"), &json!("admin"))
    );
    assert_eq!(alice.body["user"]["login"], "alice");
    let bob = ask("bob");
    assert_eq!(
        (&bob.body["permission"], &bob.body["role_name"]),
        (&json!("write"), &json!("maintain"))
    );
    assert_eq!(ask("carol").body["permission"], "none");

    let forge = start(Flavor::Forgejo);
    forge.set_permission("alice", "owner");
    let ask = |user: &str| {
        call(
            &forge,
            "GET",
            &format!("/repos/acme/widgets/collaborators/{user}/permission"),
            None,
        )
    };
    let alice = ask("alice");
    assert_eq!(
        (&alice.body["permission"], &alice.body["role_name"]),
        (&json!("owner"), &json!("owner"))
    );
    assert_eq!(ask("carol").body["permission"], "none");
    forge.set_permission("forgejo-actions", "write");
    assert_eq!(
        ask("carol").status,
        403,
        "only repository admins may ask about others"
    );
    assert_eq!(ask("forgejo-actions").body["permission"], "write");
}

#[test]
fn fake_forge_pages_issue_lists_with_link_headers() {
    let forge = start(Flavor::GitHub);
    for number in 1..=5 {
        forge.add_issue(
            number,
            &format!("queued {number}"),
            "",
            &["baton:queued"],
            "alice",
        );
    }
    forge.add_issue(6, "other", "", &[], "alice");
    let mut target = Some(
        "/repos/acme/widgets/issues?state=open&labels=baton%3Aqueued&sort=created&direction=asc&per_page=2"
            .to_owned(),
    );
    let (mut seen, mut pages) = (Vec::new(), 0);
    while let Some(path) = target {
        let page = send(
            &forge,
            "GET",
            &path,
            Some(&authorization(&forge)),
            None,
            PATIENT,
        )
        .unwrap();
        assert_eq!(page.status, 200);
        if pages == 0 {
            assert!(page.headers["link"].contains("rel=\"last\""));
        }
        seen.extend(numbers(&page.body));
        pages += 1;
        target = next_page(&forge, &page);
    }
    assert_eq!((seen, pages), (vec![1, 2, 3, 4, 5], 3));

    let forge = start(Flavor::Forgejo);
    for number in 1..=60 {
        let labels: &[&str] = if number % 12 == 0 {
            &["baton:queued"]
        } else {
            &[]
        };
        forge.add_issue(number, "issue", "", labels, "alice");
    }
    let clamped = call(
        &forge,
        "GET",
        "/repos/acme/widgets/issues?state=open&type=issues&limit=100",
        None,
    );
    assert_eq!(
        clamped.body.as_array().unwrap().len(),
        50,
        "limit is capped at 50"
    );
    assert_eq!(clamped.headers["x-total-count"], "60");
    let first = call(
        &forge,
        "GET",
        "/repos/acme/widgets/issues?state=open&labels=baton%3Aqueued&type=issues&sort=oldest&limit=2",
        None,
    );
    assert_eq!(numbers(&first.body), [12, 24]);
    assert_eq!(first.headers["x-total-count"], "5");
    let next = next_page(&forge, &first).unwrap();
    assert!(next.starts_with("/api/v1/repos/acme/widgets/issues?"));
    let second = send(
        &forge,
        "GET",
        &next,
        Some(&authorization(&forge)),
        None,
        PATIENT,
    )
    .unwrap();
    assert_eq!(numbers(&second.body), [36, 48]);
}

#[test]
fn fake_forge_faults_come_before_the_route() {
    let forge = start(Flavor::GitHub);
    forge.add_issue(7, "Greet", "", &[], "alice");
    forge.fault(Fault::secondary_rate_limit("POST", "/issues/7/comments", 1));
    forge.fault(Fault {
        method: "GET".to_owned(),
        path_contains: "/issues/7".to_owned(),
        status: 502,
        body: "<html><body>502 Bad Gateway</body></html>".to_owned(),
        times: 1,
        ..Fault::default()
    });
    let comment = Some(json!({"body": "hello"}));

    let limited = call(
        &forge,
        "POST",
        "/repos/acme/widgets/issues/7/comments",
        comment.clone(),
    );
    assert_eq!(limited.status, 403);
    assert_eq!(limited.headers["retry-after"], "1");
    assert!(
        limited.body["message"]
            .as_str()
            .unwrap()
            .contains("secondary rate limit")
    );
    assert!(
        forge.comments(7).is_empty(),
        "a refused write is not applied"
    );
    let retried = call(
        &forge,
        "POST",
        "/repos/acme/widgets/issues/7/comments",
        comment,
    );
    assert_eq!(retried.status, 201);

    let gateway = call(&forge, "GET", "/repos/acme/widgets/issues/7", None);
    assert_eq!(gateway.status, 502);
    assert!(gateway.headers["content-type"].starts_with("text/html"));
    assert_eq!(
        call(&forge, "GET", "/repos/acme/widgets/issues/7", None).status,
        200
    );

    let statuses: Vec<u16> = forge
        .requests()
        .iter()
        .map(|request| request.status)
        .collect();
    assert_eq!(statuses, [403, 201, 502, 200]);
}

#[test]
fn fake_forge_applies_a_write_whose_reply_is_late() {
    let forge = start(Flavor::Forgejo);
    forge.add_issue(7, "Greet", "", &[], "alice");
    forge.fault(Fault {
        method: "POST".to_owned(),
        path_contains: "/issues/7/comments".to_owned(),
        status: 0,
        times: 1,
        delay_ms: 2_000,
        ..Fault::default()
    });
    let target = "/api/v1/repos/acme/widgets/issues/7/comments";
    let late = send(
        &forge,
        "POST",
        target,
        Some(&authorization(&forge)),
        Some(&json!({"body": "hello"})),
        Duration::from_millis(300),
    );
    assert!(late.is_err(), "the client gives up before the reply");
    assert_eq!(forge.comments(7).len(), 1, "but the comment was made");
    assert_eq!(forge.requests()[0].status, 201);
    assert_eq!(forge.requests()[0].body["body"], "hello");
}

#[test]
fn fake_forge_records_workflow_dispatches() {
    for flavor in [Flavor::GitHub, Flavor::Forgejo] {
        let forge = start(flavor);
        let path = "/repos/acme/widgets/actions/workflows/baton.yml/dispatches";
        let dispatched = call(
            &forge,
            "POST",
            path,
            Some(json!({"ref": "main", "inputs": {"issue": "7"}})),
        );
        assert_eq!(dispatched.status, 204);
        let no_ref = call(&forge, "POST", path, Some(json!({"inputs": {}})));
        let expected = if flavor == Flavor::GitHub { 422 } else { 400 };
        assert_eq!(no_ref.status, expected);
        assert_eq!(
            forge.dispatches(),
            [json!({"workflow": "baton.yml", "ref": "main", "inputs": {"issue": "7"}})]
        );
    }
    let forge = start(Flavor::Forgejo);
    let typed = call(
        &forge,
        "POST",
        "/repos/acme/widgets/actions/workflows/baton.yml/dispatches",
        Some(json!({"ref": "main", "inputs": {"issue": 7}})),
    );
    assert_eq!(typed.status, 422, "Forgejo's inputs are strings");
}
