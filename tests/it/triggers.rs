//! Triggers other than a label: the scheduled sweep over the backlog, on
//! both fake forges.

use crate::support::fake_forge::{FakeForge, Fault, Flavor};
use crate::support::{Run, TestContext};

const TOKEN: &str = "ghs_TriggersToken0123456789abcdefABCDEF";

fn sweep(context: &TestContext, forge: &FakeForge, flavor: Flavor, extra: &[&str]) -> Run {
    let mut arguments = vec!["sweep"];
    arguments.extend(extra);
    let mut command = context.command(&arguments);
    command
        .env("CI", "true")
        .env("GITHUB_REPOSITORY", "octo/repo")
        .env("GITHUB_API_URL", forge.api_url())
        .env("GITHUB_SERVER_URL", forge.server_url())
        .env("BATON_FORGE_TOKEN", TOKEN);
    if flavor == Flavor::Forgejo {
        command.env("FORGEJO_ACTIONS", "true");
    }
    Run(command.output().unwrap())
}

fn backlog(flavor: Flavor) -> FakeForge {
    let forge = FakeForge::start(flavor, "octo", "repo", TOKEN);
    for number in 1..=250 {
        let mut labels = vec!["baton:ready"];
        match number {
            1 => labels.push("baton:running"),
            3 => labels.push("priority:low"),
            10 | 200 => labels.push("priority:high"),
            120 => labels.push("priority:medium"),
            _ => {}
        }
        forge.add_issue(number, &format!("issue {number}"), "", &labels, "alice");
    }
    // Unlabelled issues and a pull request for #2 already open.
    for number in 251..=260 {
        forge.add_issue(number, &format!("other {number}"), "", &[], "alice");
    }
    forge.add_pull(300, "Fix #2", "baton/issue-2", "main", true, "baton[bot]");
    forge
}

fn dispatched(forge: &FakeForge) -> Vec<String> {
    forge
        .dispatches()
        .iter()
        .map(|dispatch| dispatch["inputs"]["issue"].as_str().unwrap().to_owned())
        .collect()
}

fn a_sweep_starts_max_runs_in_priority_order_with_few_requests(flavor: Flavor) {
    let context = TestContext::new("[sweep]\nmax_runs = 5\n");
    let forge = backlog(flavor);

    let dry = sweep(&context, &forge, flavor, &["--dry-run"]);
    dry.assert_code(0);
    assert!(
        forge.dispatches().is_empty(),
        "a dry run dispatches nothing"
    );
    let table = dry.stdout();
    assert!(table.contains("#10") && table.contains("start"), "{table}");
    assert!(table.contains("skip: open pull request #300"), "{table}");
    assert!(table.contains("skip: a run is in flight"), "{table}");

    let before = forge.requests().len();
    sweep(&context, &forge, flavor, &[]).assert_code(0);
    assert_eq!(dispatched(&forge), ["10", "200", "120", "4", "5"]);
    for dispatch in forge.dispatches() {
        assert_eq!(dispatch["ref"], "main");
    }
    for number in [10, 200, 120, 4, 5] {
        assert!(
            forge
                .labels_of(number)
                .contains(&"baton:running".to_owned())
        );
    }
    let requests = forge.requests().len() - before;
    let per_page = match flavor {
        Flavor::GitHub => 100,
        Flavor::Forgejo => 50,
    };
    let pages = 250_usize.div_ceil(per_page);
    assert!(
        requests <= pages + 2 * 5 + 5,
        "{requests} requests for {pages} pages and 5 dispatches"
    );

    // A second sweep (or one that overlapped) skips what the first started.
    sweep(&context, &forge, flavor, &[]).assert_code(0);
    assert_eq!(
        dispatched(&forge),
        ["10", "200", "120", "4", "5", "6", "7", "8", "9", "11"]
    );
}

#[test]
fn github_sweep_starts_max_runs_in_priority_order_with_few_requests() {
    a_sweep_starts_max_runs_in_priority_order_with_few_requests(Flavor::GitHub);
}

#[test]
fn forgejo_sweep_starts_max_runs_in_priority_order_with_few_requests() {
    a_sweep_starts_max_runs_in_priority_order_with_few_requests(Flavor::Forgejo);
}

#[test]
fn a_sweep_without_a_token_names_both_variables() {
    let context = TestContext::new("");
    let forge = backlog(Flavor::GitHub);
    let run = Run(context
        .command(&["sweep"])
        .env("GITHUB_REPOSITORY", "octo/repo")
        .env("GITHUB_API_URL", forge.api_url())
        .output()
        .unwrap());
    run.assert_code(2);
    assert!(run.stderr().contains("BATON_FORGE_TOKEN") && run.stderr().contains("GITHUB_TOKEN"));
}

// ---- `/baton` comments ----

struct Comments {
    context: TestContext,
    forge: FakeForge,
    flavor: Flavor,
}

impl Comments {
    fn new(flavor: Flavor) -> Self {
        let context = TestContext::new("");
        let forge = FakeForge::start(flavor, "octo", "repo", TOKEN);
        forge.add_issue(7, "Greet the whole world", "", &["baton"], "alice");
        forge.set_permission("alice", "write");
        forge.set_permission("bob", "read");
        // baton's token acts as `baton`: its comments are baton's.
        forge.set_token_user("baton", false);
        Self {
            context,
            forge,
            flavor,
        }
    }

    /// `author` comments `body` on `issue`; `baton command` runs on the event.
    fn comment(&self, issue: u64, author: &str, body: &str, on_pull_request: bool) -> (u64, Run) {
        let bot = author.ends_with("[bot]");
        let id = self.forge.add_comment(issue, author, body, bot);
        let mut event = serde_json::json!({
            "action": "created",
            "issue": {"number": issue},
            "comment": {"id": id, "body": body, "user": {"login": author}},
        });
        if on_pull_request {
            event["issue"]["pull_request"] =
                serde_json::json!({"url": "https://example.invalid/pulls"});
        }
        if self.flavor == Flavor::GitHub {
            event["comment"]["user"]["type"] = serde_json::json!(if bot { "Bot" } else { "User" });
        }
        (id, self.rerun(&event))
    }

    fn rerun(&self, event: &serde_json::Value) -> Run {
        let run = self.run_event(event);
        run.assert_code(0);
        run
    }

    /// The command job on `event`, whatever its exit code.
    fn run_event(&self, event: &serde_json::Value) -> Run {
        let path = self.context.path().join("comment-event.json");
        std::fs::write(&path, event.to_string()).unwrap();
        let mut command = self.context.command(&["command"]);
        command
            .env("CI", "true")
            .env("GITHUB_EVENT_NAME", "issue_comment")
            .env("GITHUB_EVENT_PATH", &path)
            .env("GITHUB_REPOSITORY", "octo/repo")
            .env("GITHUB_API_URL", self.forge.api_url())
            .env("GITHUB_SERVER_URL", self.forge.server_url())
            .env("BATON_FORGE_TOKEN", TOKEN);
        if self.flavor == Flavor::Forgejo {
            command.env("FORGEJO_ACTIONS", "true");
        }
        Run(command.output().unwrap())
    }

    fn replies(&self, issue: u64) -> Vec<String> {
        self.forge
            .comments(issue)
            .into_iter()
            .filter_map(|comment| comment["body"].as_str().map(str::to_owned))
            .filter(|body| body.starts_with("<!-- baton:reply="))
            .collect()
    }
}

fn every_verb(flavor: Flavor) {
    let comments = Comments::new(flavor);
    let forge = &comments.forge;

    // run: an eyes reaction, a dispatch, one reply; a rerun of the job
    // finds its reply and does nothing twice.
    let (id, _) = comments.comment(7, "alice", "/Baton  run", false);
    assert!(forge.reactions().contains(&(id, "eyes".to_owned())));
    assert_eq!(dispatched(forge), ["7"]);
    let replies = comments.replies(7);
    assert_eq!(replies.len(), 1);
    assert!(
        replies[0].contains("Started a run for #7"),
        "{}",
        replies[0]
    );
    let event = serde_json::json!({"action": "created", "issue": {"number": 7}, "comment": {"id": id, "body": "/baton run", "user": {"login": "alice"}}});
    comments.rerun(&event);
    assert_eq!(dispatched(forge), ["7"]);
    assert_eq!(comments.replies(7).len(), 1);

    // A reader is refused and nothing runs.
    let (id, _) = comments.comment(7, "bob", "/baton run", false);
    assert!(forge.reactions().contains(&(id, "eyes".to_owned())));
    assert_eq!(dispatched(forge), ["7"]);
    assert!(
        comments
            .replies(7)
            .last()
            .unwrap()
            .contains("only from people with write access")
    );

    // A bot is ignored entirely, and so is a comment that is no command.
    let replies = comments.replies(7).len();
    let (id, _) = comments.comment(7, "renovate[bot]", "/baton run", false);
    let (other, _) = comments.comment(7, "alice", "looks good, /baton run later", false);
    assert!(
        !forge
            .reactions()
            .iter()
            .any(|(each, _)| *each == id || *each == other)
    );
    assert_eq!(comments.replies(7).len(), replies);
    assert_eq!(dispatched(forge), ["7"]);

    // retry: a new run; with a phase, the reply says how a phase is rerun.
    comments.comment(7, "alice", "/baton retry verify", false);
    assert_eq!(dispatched(forge), ["7", "7"]);
    assert!(
        comments
            .replies(7)
            .last()
            .unwrap()
            .contains("re-run its job")
    );

    // Unknown verbs list the verbs; approve belongs on the pull request.
    comments.comment(7, "alice", "/baton dance", false);
    assert!(
        comments
            .replies(7)
            .last()
            .unwrap()
            .contains("The verbs are")
    );
    comments.comment(7, "alice", "/baton approve", false);
    assert!(
        comments
            .replies(7)
            .last()
            .unwrap()
            .contains("comment it on the pull request")
    );
    assert_eq!(dispatched(forge), ["7", "7"]);

    // status and stop read the tracking comment.
    comments.comment(7, "alice", "/baton status", false);
    assert!(
        comments
            .replies(7)
            .last()
            .unwrap()
            .contains("no baton run yet")
    );
    forge.add_comment(
        7,
        "baton",
        "<!-- baton:tracking -->\n### baton · route `feature` · **running**: a model wrote /x/actions/runs/987\n\n- [x] intake\n- [ ] spec\n\n**Cost:** $0.0100 · 1200 tokens · [CI run](https://forge.example/octo/repo/actions/runs/4242)\n",
        false,
    );
    comments.comment(7, "alice", "/baton status", false);
    assert!(comments.replies(7).last().unwrap().contains("- [x] intake"));
    // retry <phase>: on GitHub the phase's job of the linked run runs
    // again (the last one that ran); Forgejo's API cannot, so a new run.
    forge.set_run_jobs(
        4242,
        &[
            (1, "intake", "success"),
            (2, "verify", "failure"),
            (3, "repair 1", "success"),
            (4, "verify 1", "cancelled"),
            (5, "verify 2", "skipped"),
        ],
    );
    let before = forge.dispatches().len();
    comments.comment(7, "alice", "/baton retry verify", false);
    match flavor {
        Flavor::GitHub => {
            assert_eq!(forge.rerun_jobs(), [4]);
            assert_eq!(forge.dispatches().len(), before);
            assert!(
                comments
                    .replies(7)
                    .last()
                    .unwrap()
                    .contains("Re-running the verify job")
            );
            comments.comment(7, "alice", "/baton retry split", false);
            assert!(
                comments
                    .replies(7)
                    .last()
                    .unwrap()
                    .contains("has no split job")
            );
            assert_eq!(forge.dispatches().len(), before);
        }
        Flavor::Forgejo => {
            assert_eq!(forge.dispatches().len(), before + 1);
            assert!(
                comments
                    .replies(7)
                    .last()
                    .unwrap()
                    .contains("re-run its job")
            );
        }
    }
    comments.comment(7, "alice", "/baton stop", false);
    match flavor {
        Flavor::GitHub => {
            assert_eq!(forge.cancelled_runs(), [4242]);
            assert!(
                comments
                    .replies(7)
                    .last()
                    .unwrap()
                    .contains("Cancelled workflow run 4242")
            );
        }
        Flavor::Forgejo => {
            assert!(forge.cancelled_runs().is_empty());
            assert!(
                comments
                    .replies(7)
                    .last()
                    .unwrap()
                    .contains("cancel run 4242 from its page")
            );
        }
    }

    // On a baton pull request, the command is about the issue it names.
    forge.add_pull(50, "Greet (#7)", "baton/issue-7", "main", true, "baton");
    forge.set_body(50, "<!-- baton:issue=7 -->\nevidence");
    let before = forge.dispatches().len();
    comments.comment(50, "alice", "/baton run", true);
    assert_eq!(dispatched(forge).len(), before + 1);
    assert_eq!(dispatched(forge).last().unwrap(), "7");

    // fix: on the pull request, a dispatch naming the comment (its text is
    // read again by intake); without text, or on the issue, nothing runs.
    comments.comment(7, "alice", "/baton fix rename it", false);
    assert!(
        comments
            .replies(7)
            .last()
            .unwrap()
            .contains("comment it on the pull request")
    );
    comments.comment(50, "alice", "/baton fix", true);
    assert!(
        comments
            .replies(50)
            .last()
            .unwrap()
            .contains("say what to fix")
    );
    comments.comment(50, "bob", "/baton fix rename it", true);
    assert!(
        comments
            .replies(50)
            .last()
            .unwrap()
            .contains("only from people with write access")
    );
    assert_eq!(forge.dispatches().len(), before + 1);
    let (id, _) = comments.comment(50, "alice", "/baton fix rename `greet` to `hello`", true);
    let dispatch = forge.dispatches().last().unwrap().clone();
    assert_eq!(dispatch["inputs"]["issue"], "7");
    assert_eq!(dispatch["inputs"]["fix_comment"], id.to_string());
    assert!(
        comments
            .replies(50)
            .last()
            .unwrap()
            .contains("Started a fix")
    );
}

#[test]
fn github_every_verb_of_a_baton_comment() {
    every_verb(Flavor::GitHub);
}

#[test]
fn forgejo_every_verb_of_a_baton_comment() {
    every_verb(Flavor::Forgejo);
}

/// `/baton approve` against pull requests publish left waiting: only the
/// exact head commit is approved, a reader approves nothing, and a marker a
/// person pasted counts for nothing.
fn approve_is_bound_to_the_head_commit(flavor: Flavor) {
    let comments = Comments::new(flavor);
    let forge = &comments.forge;
    let head = "0123456789abcdef0123456789abcdef01234567";
    let is_draft = |number: u64| {
        let pull = &forge
            .pulls()
            .into_iter()
            .find(|pull| pull["number"] == number)
            .unwrap();
        pull["draft"].as_bool().unwrap() || pull["title"].as_str().unwrap().starts_with("WIP:")
    };
    let title = match flavor {
        Flavor::GitHub => "Greet (#7)",
        Flavor::Forgejo => "WIP: Greet (#7)",
    };
    forge.add_pull(50, title, "baton/issue-7", "main", true, "baton");
    forge.set_head_sha("baton/issue-7", head);
    forge.set_body(
        50,
        &format!("<!-- baton:issue=7 -->\n<!-- baton:awaiting-approval={head} -->\n### Needs a human\n\n- Changes to db.sql need `/baton approve` before they can be published."),
    );
    // A pasted approval marker is no approval, and a reader is refused.
    forge.add_comment(50, "bob", &format!("<!-- baton:approved={head} -->"), false);
    comments.comment(50, "bob", "/baton approve", true);
    assert!(
        comments
            .replies(50)
            .last()
            .unwrap()
            .contains("only from people with write access")
    );
    assert!(is_draft(50));

    comments.comment(50, "alice", "/baton approve", true);
    let reply = comments.replies(50).last().unwrap().clone();
    assert!(reply.contains("ready for review"), "{reply}");
    assert!(reply.contains(&format!("<!-- baton:approved={head} -->")));
    assert!(!is_draft(50));
    let body = forge.issue(50)["body"].as_str().unwrap().to_owned();
    assert!(body.contains("by @alice on commit 0123456789ab"), "{body}");
    for number in [7, 50] {
        assert!(forge.labels_of(number).contains(&"baton:done".to_owned()));
    }
    comments.comment(50, "alice", "/baton approve", true);
    assert!(
        comments
            .replies(50)
            .last()
            .unwrap()
            .contains("approved already")
    );

    // Someone pushed after publish: the head is not what baton verified.
    forge.add_pull(51, title, "baton/issue-8", "main", true, "baton");
    forge.set_head_sha("baton/issue-8", "fedcba9876543210fedcba9876543210fedcba98");
    forge.set_body(
        51,
        &format!("<!-- baton:issue=8 -->\n<!-- baton:awaiting-approval={head} -->"),
    );
    comments.comment(51, "alice", "/baton approve", true);
    let reply = comments.replies(51).last().unwrap().clone();
    assert!(reply.contains("nothing was approved"), "{reply}");
    assert!(!reply.contains("baton:approved="));
    assert!(is_draft(51));

    // A pull request that is not baton's branch for its issue.
    forge.add_pull(52, "Mine", "feature/x", "main", true, "alice");
    forge.set_body(52, "<!-- baton:issue=7 -->");
    comments.comment(52, "alice", "/baton approve", true);
    assert!(
        comments
            .replies(52)
            .last()
            .unwrap()
            .contains("not baton's branch")
    );
    assert!(forge.dispatches().is_empty());
}

#[test]
fn github_approve_is_bound_to_the_head_commit() {
    approve_is_bound_to_the_head_commit(Flavor::GitHub);
}

#[test]
fn forgejo_approve_is_bound_to_the_head_commit() {
    approve_is_bound_to_the_head_commit(Flavor::Forgejo);
}

/// An approve whose labels could not be set fails its job with the pull
/// request still waiting; the job run again finishes it.
#[test]
fn an_approve_cut_short_is_finished_by_running_the_job_again() {
    let comments = Comments::new(Flavor::GitHub);
    let forge = &comments.forge;
    let head = "0123456789abcdef0123456789abcdef01234567";
    forge.add_pull(50, "Greet (#7)", "baton/issue-7", "main", true, "baton");
    forge.set_head_sha("baton/issue-7", head);
    forge.set_body(
        50,
        &format!("<!-- baton:issue=7 -->\n<!-- baton:awaiting-approval={head} -->"),
    );
    forge.fault(Fault {
        method: "POST".into(),
        path_contains: "/labels".into(),
        status: 500,
        headers: Vec::new(),
        body: "{}".into(),
        times: 5,
        delay_ms: 0,
    });
    let id = forge.add_comment(50, "alice", "/baton approve", false);
    let event = serde_json::json!({
        "action": "created",
        "issue": {"number": 50, "pull_request": {"url": "https://example.invalid/pulls"}},
        "comment": {"id": id, "body": "/baton approve", "user": {"login": "alice", "type": "User"}},
    });
    let first = comments.run_event(&event);
    assert_ne!(first.code(), 0, "{}", first.stderr());
    let body = forge.issue(50)["body"].as_str().unwrap().to_owned();
    assert!(body.contains("baton:awaiting-approval="), "{body}");
    // The same event again (a re-run of the job).
    comments.rerun(&event);
    for number in [7, 50] {
        assert!(
            forge.labels_of(number).contains(&"baton:done".to_owned()),
            "{number}: {:?}",
            forge.labels_of(number)
        );
    }
    let pull = forge
        .pulls()
        .into_iter()
        .find(|pull| pull["number"] == 50)
        .unwrap();
    assert_eq!(pull["draft"], false, "{pull}");
}
