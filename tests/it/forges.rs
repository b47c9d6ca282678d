//! The run against GitHub and Forgejo, as CI runs it: every phase a job in a
//! fresh clone of a bare `origin`, the run directory handed from job to job,
//! the `GITHUB_*` variables of SPEC §3 set, and a fake forge on loopback.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::fake_forge::{FakeForge, Fault, Flavor};
use crate::support::{Run, TestContext, all_files, happy_script};

/// Token-shaped, so the redaction patterns would catch it too: the check
/// below is that it never gets that far.
const TOKEN: &str = "ghs_FakeForgeToken0123456789abcdefABCDEF";
const ISSUE: u64 = 7;

struct Ci {
    context: TestContext,
    forge: FakeForge,
    flavor: Flavor,
    origin: PathBuf,
    event: PathBuf,
    event_name: &'static str,
    job: usize,
    /// The run directory the last job uploaded.
    artifact: Option<PathBuf>,
    /// Everything every job printed, for the token check.
    printed: String,
}

impl Ci {
    fn new(flavor: Flavor, extra_config: &str) -> Self {
        let context = TestContext::new(extra_config);
        context.script(&happy_script());
        let forge = FakeForge::start(flavor, "octo", "repo", TOKEN);
        forge.add_issue(
            ISSUE,
            "Greet the whole world",
            "`greet` should say \"hello, world\".",
            &["baton"],
            "alice",
        );
        forge.set_permission("alice", "write");
        let origin = context.path().join("origin.git");
        git2::build::RepoBuilder::new()
            .bare(true)
            .clone(context.repo.to_str().unwrap(), &origin)
            .unwrap();
        let event = context.path().join("event.json");
        let ci = Self {
            context,
            forge,
            flavor,
            origin,
            event,
            event_name: "workflow_dispatch",
            job: 0,
            artifact: None,
            printed: String::new(),
        };
        ci.dispatch_event("alice");
        ci
    }

    /// The trigger label added by `sender` (GitHub's `labeled`, Forgejo's
    /// `label_updated`).
    fn labeled_event(&mut self, sender: &str) {
        let action = match self.flavor {
            Flavor::GitHub => json!({"action": "labeled", "label": {"name": "baton"}}),
            Flavor::Forgejo => json!({"action": "label_updated"}),
        };
        let mut event = action;
        event["issue"] = json!({"number": ISSUE, "labels": [{"name": "baton"}]});
        event["sender"] = json!({"login": sender});
        std::fs::write(&self.event, event.to_string()).unwrap();
        self.event_name = "issues";
    }

    fn dispatch_event(&self, sender: &str) {
        std::fs::write(
            &self.event,
            json!({"inputs": {"issue": ISSUE.to_string()}, "sender": {"login": sender}, "ref": "refs/heads/main"}).to_string(),
        )
        .unwrap();
    }

    /// One CI job: a fresh clone, the previous job's run directory, the
    /// variables a runner sets; `baton phase NAME` run in it.
    fn job(&mut self, phase: &str, extra: &[&str]) -> (Run, String) {
        self.job += 1;
        let root = self.context.path();
        let checkout = root.join(format!("checkout-{}", self.job));
        git2::Repository::clone(self.origin.to_str().unwrap(), &checkout).unwrap();
        let run_dir = root.join(format!("job-{}", self.job));
        if let Some(previous) = &self.artifact {
            copy_dir(previous, &run_dir);
        }
        let output = root.join(format!("output-{}", self.job));
        let summary = root.join(format!("summary-{}", self.job));
        let mut arguments = vec![
            "phase",
            phase,
            "--run-dir",
            run_dir.to_str().unwrap(),
            "--repo",
            checkout.to_str().unwrap(),
        ];
        arguments.extend(extra);
        let mut command = self.context.command(&arguments);
        command
            .current_dir(&checkout)
            .env("CI", "true")
            .env("GITHUB_EVENT_NAME", self.event_name)
            .env("GITHUB_EVENT_PATH", &self.event)
            .env("GITHUB_REPOSITORY", "octo/repo")
            .env("GITHUB_API_URL", self.forge.api_url())
            .env("GITHUB_SERVER_URL", self.forge.server_url())
            .env("GITHUB_RUN_ID", "4242")
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("BATON_FORGE_TOKEN", TOKEN);
        if self.flavor == Flavor::Forgejo {
            command.env("FORGEJO_ACTIONS", "true");
        }
        let run = Run(command.output().unwrap());
        for file in [&output, &summary] {
            self.printed
                .push_str(&std::fs::read_to_string(file).unwrap_or_default());
        }
        self.printed.push_str(&run.stdout());
        self.printed.push_str(&run.stderr());
        if run_dir.join("manifest.json").exists() {
            self.artifact = Some(run_dir);
        }
        let outputs = std::fs::read_to_string(&output).unwrap_or_default();
        // The job's machine is gone afterwards.
        std::fs::remove_dir_all(&checkout).unwrap();
        (run, outputs)
    }

    /// Runs the pipeline as the workflow's job graph would: intake, then
    /// whatever `next` each job's outputs name, until none.
    fn pipeline(&mut self) -> String {
        let (run, mut outputs) = self.job("intake", &[]);
        run.assert_code(0);
        for _ in 0..20 {
            let next = output(&outputs, "next");
            if next.is_empty() {
                return outputs;
            }
            let (run, next_outputs) = self.job(&next, &[]);
            assert!(matches!(run.code(), 0 | 1), "{next}: {}", run.stderr());
            outputs = next_outputs;
        }
        panic!("the pipeline did not end");
    }

    fn manifest(&self) -> Value {
        crate::support::read_json(&self.artifact.as_ref().unwrap().join("manifest.json"))
    }

    fn tracking_comments(&self) -> Vec<Value> {
        self.forge
            .comments(ISSUE)
            .into_iter()
            .filter(|comment| {
                comment["body"]
                    .as_str()
                    .unwrap()
                    .starts_with("<!-- baton:tracking -->")
            })
            .collect()
    }

    fn origin_branch(&self) -> Option<git2::Oid> {
        git2::Repository::open_bare(&self.origin)
            .unwrap()
            .refname_to_id(&format!("refs/heads/baton/issue-{ISSUE}"))
            .ok()
    }

    /// The token is nowhere: no artifact, log, output or summary.
    fn assert_token_nowhere(&self) {
        assert!(!self.printed.contains(TOKEN), "the token was printed");
        for job in 1..=self.job {
            let run_dir = self.context.path().join(format!("job-{job}"));
            if run_dir.exists() {
                for (path, text) in all_files(&run_dir) {
                    assert!(!text.contains(TOKEN), "{} holds the token", path.display());
                }
            }
        }
    }
}

fn output(outputs: &str, key: &str) -> String {
    outputs
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
        .to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn the_whole_route_publishes_one_pull_request(flavor: Flavor) {
    let mut ci = Ci::new(flavor, "");
    let outputs = ci.pipeline();
    assert_eq!(output(&outputs, "outcome"), "done", "{outputs}");
    assert_eq!(output(&outputs, "skipped"), "false");
    assert_eq!(output(&outputs, "issue"), ISSUE.to_string());
    let pr_number = output(&outputs, "pr");
    assert!(!pr_number.is_empty(), "{outputs}");
    assert!(output(&outputs, "pr_url").contains(&pr_number));

    // The branch is in origin: the base commit plus the patch, one commit.
    let branch = ci.origin_branch().unwrap();
    let origin = git2::Repository::open_bare(&ci.origin).unwrap();
    let commit = origin.find_commit(branch).unwrap();
    assert_eq!(
        commit.parent_id(0).unwrap().to_string(),
        ci.manifest()["base_sha"]
    );
    let lib = commit
        .tree()
        .unwrap()
        .get_path(Path::new("lib.sh"))
        .unwrap();
    let lib = origin.find_blob(lib.id()).unwrap();
    assert!(String::from_utf8_lossy(lib.content()).contains("hello, world"));

    let pulls = ci.forge.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    let pull = &pulls[0];
    assert!(
        pull["body"]
            .as_str()
            .unwrap()
            .starts_with("<!-- baton:issue=7 -->"),
        "{pull}"
    );
    // Merging the PR closes the issue.
    assert!(
        pull["body"].as_str().unwrap().contains("\nCloses #7\n"),
        "{pull}"
    );
    assert_eq!(pull["draft"], false, "{pull}");
    let pull_number = pull["number"].as_u64().unwrap();
    assert_eq!(ci.forge.labels_of(pull_number), ["baton:done"]);
    assert_eq!(pull["head"]["ref"], "baton/issue-7");

    let tracking = ci.tracking_comments();
    assert_eq!(tracking.len(), 1, "{tracking:?}");
    let body = tracking[0]["body"].as_str().unwrap();
    assert!(body.contains("**done**"), "{body}");
    assert!(body.contains("- [x] publish"), "{body}");
    assert!(body.contains("/octo/repo/actions/runs/4242"), "{body}");
    assert!(body.contains(&format!("#{pr_number}")), "{body}");
    let labels = ci.forge.labels_of(ISSUE);
    assert!(labels.contains(&"baton:done".to_owned()), "{labels:?}");
    assert!(!labels.contains(&"baton:running".to_owned()), "{labels:?}");

    // Run publish again: still one PR and one tracking comment, updated.
    let before = ci.forge.requests().len();
    let (run, outputs) = ci.job("publish", &["--force"]);
    run.assert_code(0);
    assert_eq!(output(&outputs, "pr"), pr_number);
    assert_eq!(ci.forge.pulls().len(), 1);
    assert_eq!(ci.tracking_comments().len(), 1);
    let updates: Vec<String> = ci.forge.requests()[before..]
        .iter()
        .filter(|request| request.method == "PATCH")
        .map(|request| request.path.clone())
        .collect();
    assert!(
        updates.iter().any(|path| path.contains("/pulls/")),
        "the PR body was not updated: {updates:?}"
    );
    assert!(
        updates
            .iter()
            .any(|path| path.contains("/issues/comments/")),
        "the tracking comment was not updated: {updates:?}"
    );
    ci.assert_token_nowhere();
}

#[test]
fn github_the_whole_route_publishes_one_pull_request() {
    the_whole_route_publishes_one_pull_request(Flavor::GitHub);
}

#[test]
fn forgejo_the_whole_route_publishes_one_pull_request() {
    the_whole_route_publishes_one_pull_request(Flavor::Forgejo);
}

/// Up to review; then `tamper` changes the run directory as an attacker who
/// also fixed the hashes would; publish must refuse and push nothing.
fn publish_refuses(flavor: Flavor, tamper: impl Fn(&Path), reason: &str) {
    let mut ci = Ci::new(flavor, "");
    let (run, mut outputs) = ci.job("intake", &[]);
    run.assert_code(0);
    loop {
        let next = output(&outputs, "next");
        if next == "publish" {
            break;
        }
        let (run, next_outputs) = ci.job(&next, &[]);
        run.assert_code(0);
        outputs = next_outputs;
    }
    tamper(ci.artifact.as_ref().unwrap());
    let (run, outputs) = ci.job("publish", &[]);
    run.assert_code(1);
    assert_eq!(output(&outputs, "outcome"), "rejected");
    assert!(ci.origin_branch().is_none(), "a refused patch was pushed");
    assert!(ci.forge.pulls().is_empty());
    let tracking = ci.tracking_comments();
    assert_eq!(tracking.len(), 1);
    let body = tracking[0]["body"].as_str().unwrap();
    assert!(
        body.contains("**rejected**") && body.contains(reason),
        "{body}"
    );
    assert!(
        ci.forge
            .labels_of(ISSUE)
            .contains(&"baton:rejected".to_owned())
    );
    ci.assert_token_nowhere();
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Rewrites an artifact and fixes its hash in the manifest (and, with
/// `also_verify`, the patch hash verify recorded), as a careful attacker would.
fn rewrite(run_dir: &Path, artifact: &str, text: &str, also_verify: bool) {
    std::fs::write(run_dir.join(artifact), text).unwrap();
    let manifest_path = run_dir.join("manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest["artifacts"][artifact] = json!(sha256(text.as_bytes()));
    if also_verify {
        let verify_path = run_dir.join("verify.json");
        let mut verify: Value =
            serde_json::from_str(&std::fs::read_to_string(&verify_path).unwrap()).unwrap();
        verify["patch_sha256"] = json!(sha256(text.as_bytes()));
        let verify_text = serde_json::to_string_pretty(&verify).unwrap();
        std::fs::write(&verify_path, &verify_text).unwrap();
        manifest["artifacts"]["verify.json"] = json!(sha256(verify_text.as_bytes()));
    }
    std::fs::write(
        &manifest_path,
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
}

const DENIED_PATCH: &str = "diff --git a/.github/workflows/x.yml b/.github/workflows/x.yml\nnew file mode 100644\n--- /dev/null\n+++ b/.github/workflows/x.yml\n@@ -0,0 +1 @@\n+on: push\n";

#[test]
fn publish_refuses_a_changed_patch_on_both_forges() {
    for flavor in [Flavor::GitHub, Flavor::Forgejo] {
        publish_refuses(
            flavor,
            |run_dir| {
                let patch = std::fs::read_to_string(run_dir.join("changes.patch")).unwrap();
                rewrite(
                    run_dir,
                    "changes.patch",
                    &patch.replace("hello, world", "hello, mars"),
                    false,
                );
            },
            "not the patch verify checked",
        );
    }
}

#[test]
fn publish_refuses_a_denied_path_or_a_secret_even_when_verify_agrees() {
    publish_refuses(
        Flavor::GitHub,
        |run_dir| rewrite(run_dir, "changes.patch", DENIED_PATCH, true),
        ".github/workflows/x.yml",
    );
    let secret = format!("ghp_{}", "Secr3tToken".repeat(4));
    let patch = format!(
        "diff --git a/notes.txt b/notes.txt\nnew file mode 100644\n--- /dev/null\n+++ b/notes.txt\n@@ -0,0 +1 @@\n+token = {secret}\n"
    );
    publish_refuses(
        Flavor::Forgejo,
        move |run_dir| rewrite(run_dir, "changes.patch", &patch, true),
        "secret",
    );
}

#[test]
fn only_people_with_write_access_start_a_run() {
    let cases = [
        (Flavor::GitHub, "read", false),
        (Flavor::GitHub, "triage", false),
        (Flavor::GitHub, "none", false),
        (Flavor::GitHub, "write", true),
        (Flavor::GitHub, "maintain", true),
        (Flavor::GitHub, "admin", true),
        (Flavor::Forgejo, "read", false),
        (Flavor::Forgejo, "none", false),
        (Flavor::Forgejo, "write", true),
        (Flavor::Forgejo, "admin", true),
        (Flavor::Forgejo, "owner", true),
    ];
    for (flavor, permission, allowed) in cases {
        let mut ci = Ci::new(flavor, "");
        ci.forge.set_permission("bob", permission);
        ci.labeled_event("bob");
        let (run, outputs) = ci.job("intake", &[]);
        run.assert_code(0);
        let label = format!("{flavor:?} {permission}");
        if allowed {
            assert_eq!(
                output(&outputs, "skipped"),
                "false",
                "{label}: {}",
                run.stderr()
            );
            assert_eq!(ci.tracking_comments().len(), 1, "{label}");
        } else {
            assert_eq!(
                output(&outputs, "skipped"),
                "true",
                "{label}: {}",
                run.stderr()
            );
            assert!(ci.artifact.is_none(), "{label}: a run was created");
            let comments = ci.forge.comments(ISSUE);
            assert_eq!(comments.len(), 1, "{label}: {comments:?}");
            assert!(
                comments[0]["body"]
                    .as_str()
                    .unwrap()
                    .contains("write access"),
                "{label}"
            );
        }
    }
}

#[test]
fn a_dispatch_from_the_workflow_bot_starts_a_run() {
    // What `baton sweep` and `/baton run` send: the permission route would
    // answer `none` for the bot, and dispatching already takes write access.
    let mut ci = Ci::new(Flavor::GitHub, "");
    ci.dispatch_event("github-actions[bot]");
    let (run, outputs) = ci.job("intake", &[]);
    run.assert_code(0);
    assert_eq!(output(&outputs, "skipped"), "false", "{}", run.stderr());
    assert!(
        !ci.forge
            .requests()
            .iter()
            .any(|request| request.path.contains("/permission")),
        "a dispatch asked for permission"
    );
}

#[test]
fn another_label_is_skipped() {
    let mut ci = Ci::new(Flavor::GitHub, "");
    let fixture = include_str!("../fixtures/github-events/issues.labeled.json");
    std::fs::write(&ci.event, fixture).unwrap();
    let mut command_event = ci.context.command(&["phase", "intake"]);
    let output_file = ci.context.path().join("skip-output");
    command_event
        .env("GITHUB_EVENT_NAME", "issues")
        .env("GITHUB_EVENT_PATH", &ci.event)
        .env("GITHUB_REPOSITORY", "octo/repo")
        .env("GITHUB_API_URL", ci.forge.api_url())
        .env("GITHUB_OUTPUT", &output_file)
        .env("BATON_FORGE_TOKEN", TOKEN)
        .env("BATON_RUN_DIR", ci.context.path().join("skip-run"));
    let run = Run(command_event.output().unwrap());
    run.assert_code(0);
    assert!(
        run.stderr().contains("`bug` is not the trigger label"),
        "{}",
        run.stderr()
    );
    let outputs = std::fs::read_to_string(&output_file).unwrap();
    assert_eq!(output(&outputs, "skipped"), "true");
    assert!(!ci.context.path().join("skip-run").exists());
    assert!(
        ci.forge.requests().is_empty(),
        "a skipped event talked to the forge"
    );
    ci.job = 0;
}

#[test]
fn a_secondary_rate_limit_is_waited_out_and_a_timed_out_post_is_not_repeated() {
    let mut ci = Ci::new(Flavor::GitHub, "[forge]\ntimeout_s = 1\n");
    ci.forge
        .fault(Fault::secondary_rate_limit("GET", "/issues/7", 1));
    // The tracking comment's POST is applied, but its answer comes too late.
    ci.forge.fault(Fault {
        method: "POST".into(),
        path_contains: "/issues/7/comments".into(),
        status: 0,
        delay_ms: 2500,
        times: 1,
        ..Fault::default()
    });
    let (run, outputs) = ci.job("intake", &[]);
    run.assert_code(0);
    assert_eq!(output(&outputs, "skipped"), "false");
    let gets: Vec<_> = ci
        .forge
        .requests()
        .into_iter()
        .filter(|request| request.method == "GET" && request.path.ends_with("/issues/7"))
        .collect();
    // The first answered 403, the second waited it out; a third looked for
    // the comment whose POST timed out before posting it again (and the
    // tracking update at the end of intake reads the issue once more).
    assert!(gets.len() >= 3, "{gets:?}");
    assert_eq!((gets[0].status, gets[1].status), (403, 200));
    assert!(
        gets[1].at.duration_since(gets[0].at).as_secs_f64() >= 0.9,
        "retry-after was not honoured"
    );
    assert!(
        run.stderr().contains("secondary rate limit"),
        "{}",
        run.stderr()
    );
    assert_eq!(
        ci.tracking_comments().len(),
        1,
        "the comment was posted twice"
    );
    let posts = ci
        .forge
        .requests()
        .iter()
        .filter(|request| request.method == "POST" && request.path.ends_with("/issues/7/comments"))
        .count();
    assert_eq!(posts, 1, "the timed-out POST was sent again");
    let manifest = ci.manifest();
    let id = manifest["forge"]["tracking_comment"].as_u64().unwrap();
    assert_eq!(ci.tracking_comments()[0]["id"].as_u64().unwrap(), id);
}

/// Runs the pipeline with `implement` writing a failing test and a wrong
/// fix, and no repairs left: the run fails in verify.
fn failing(ci: &Ci) {
    let mut script = happy_script();
    script["implement"] = crate::support::agent(vec![vec![crate::support::write(
        "lib.sh",
        "greet() { echo \"hello world\"; }\n",
    )]]);
    ci.context.script(&script);
}

#[test]
fn an_unfinished_run_keeps_its_work_in_a_draft_or_a_comment() {
    for flavor in [Flavor::GitHub, Flavor::Forgejo] {
        let mut ci = Ci::new(flavor, "[budget]\nmax_repairs = 0\n");
        failing(&ci);
        let outputs = ci.pipeline();
        assert_eq!(output(&outputs, "outcome"), "failed", "{outputs}");
        assert!(
            ci.origin_branch().is_some(),
            "{flavor:?}: the work was not pushed"
        );
        let pulls = ci.forge.pulls();
        assert_eq!(pulls.len(), 1);
        assert_eq!(pulls[0]["draft"], true, "{flavor:?}: {}", pulls[0]);
        let pull_number = pulls[0]["number"].as_u64().unwrap();
        assert_eq!(ci.forge.labels_of(pull_number), ["baton:failed"]);
        assert!(
            ci.forge
                .labels_of(ISSUE)
                .contains(&"baton:failed".to_owned())
        );
        ci.assert_token_nowhere();
    }
    let mut ci = Ci::new(
        Flavor::GitHub,
        "[budget]\nmax_repairs = 0\n\n[publish]\nunfinished = \"comment\"\n",
    );
    failing(&ci);
    ci.pipeline();
    assert!(ci.origin_branch().is_some());
    assert!(ci.forge.pulls().is_empty());
    assert!(ci.forge.comments(ISSUE).iter().any(|comment| {
        comment["body"]
            .as_str()
            .unwrap()
            .contains("kept this run's unfinished work (failed) on branch `baton/issue-7`")
    }));
}

#[test]
fn an_epic_files_its_children_once_with_a_task_list_on_the_parent() {
    for flavor in [Flavor::GitHub, Flavor::Forgejo] {
        let mut ci = Ci::new(flavor, "");
        std::fs::write(
            &ci.event,
            json!({"inputs": {"issue": "7", "route": "epic"}, "sender": {"login": "alice"}})
                .to_string(),
        )
        .unwrap();
        let outputs = ci.pipeline();
        assert_eq!(output(&outputs, "outcome"), "done", "{outputs}");
        assert_eq!(output(&outputs, "route"), "epic");
        let parent = ci.forge.issue(ISSUE);
        let body = parent["body"].as_str().unwrap().to_owned();
        assert!(body.starts_with("`greet` should say"), "{body}");
        let children: Vec<u64> = ci.manifest()["forge"]["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|number| number.as_u64().unwrap())
            .collect();
        assert_eq!(children.len(), 2);
        for child in &children {
            assert!(body.contains(&format!("- [ ] #{child}")), "{body}");
            assert!(
                ci.forge.issue(*child)["body"]
                    .as_str()
                    .unwrap()
                    .contains("Split from #7")
            );
            assert!(
                ci.forge
                    .labels_of(*child)
                    .contains(&"baton:ready".to_owned()),
                "a child carries the sweep label"
            );
        }
        // Publishing again files nothing new.
        ci.job("publish", &["--force"]).0.assert_code(0);
        assert!(
            ci.forge.issue(children[1] + 1).is_null(),
            "a child was filed twice"
        );
        assert!(ci.origin_branch().is_none(), "an epic pushes no branch");

        // A child's own run cites its parent in its evidence.
        ci.artifact = None;
        std::fs::write(
            &ci.event,
            json!({"inputs": {"issue": children[0].to_string(), "route": "chore"}, "sender": {"login": "alice"}})
                .to_string(),
        )
        .unwrap();
        let outputs = ci.pipeline();
        assert_eq!(
            output(&outputs, "issue"),
            children[0].to_string(),
            "{outputs}"
        );
        let run_dir = ci.artifact.clone().unwrap();
        let evidence = crate::support::read_json(&run_dir.join("evidence.json"));
        assert_eq!(evidence["issue"]["parent"], 7, "{evidence}");
        let markdown = std::fs::read_to_string(run_dir.join("evidence.md")).unwrap();
        assert!(markdown.contains("Part of #7"), "{markdown}");

        // The same hidden line in an issue a person opened is not believed.
        ci.forge.add_issue(
            90,
            "Pretend child",
            "<!-- baton:child=7/0 -->",
            &[],
            "mallory",
        );
        ci.artifact = None;
        std::fs::write(
            &ci.event,
            json!({"inputs": {"issue": "90", "route": "chore"}, "sender": {"login": "alice"}})
                .to_string(),
        )
        .unwrap();
        ci.job("intake", &[]).0.assert_code(0);
        assert!(ci.manifest()["issue"].get("parent").is_none());
    }
}

#[test]
fn forgejo_label_updated_starts_a_run_only_with_the_trigger_label() {
    let mut ci = Ci::new(Flavor::Forgejo, "");
    std::fs::write(
        &ci.event,
        include_str!("../fixtures/forgejo-events/issues.label_updated.json"),
    )
    .unwrap();
    let run_dir = ci.context.path().join("labelled-run");
    let mut command = ci.context.command(&["phase", "intake"]);
    command
        .env("FORGEJO_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", "issues")
        .env("GITHUB_EVENT_PATH", &ci.event)
        .env("GITHUB_REPOSITORY", "octo/repo")
        .env("GITHUB_API_URL", ci.forge.api_url())
        .env("BATON_FORGE_TOKEN", TOKEN)
        .env("BATON_RUN_DIR", &run_dir);
    Run(command.output().unwrap()).assert_code(0);
    let manifest = crate::support::read_json(&run_dir.join("manifest.json"));
    assert_eq!(manifest["issue"]["number"], 7);
    assert_eq!(manifest["forge"]["kind"], "forgejo");
    assert_eq!(manifest["trigger"], "issue #7 labelled `baton`");
    assert!(
        ci.forge
            .labels_of(ISSUE)
            .contains(&"baton:running".to_owned())
    );
    // The issue as fetched from the forge, not as the payload said.
    let ticket = crate::support::read_json(&run_dir.join("ticket.json"));
    assert_eq!(ticket["untrusted"], true);
    assert_eq!(ticket["author"], "alice");
    ci.job = 0;
}

#[test]
fn the_forge_clients_page_through_labels_and_dispatch_workflows() {
    use baton::forge::{ForgeKind, ForgeSettings, client::RetryPolicy};
    for (flavor, kind, count) in [
        (Flavor::GitHub, ForgeKind::GitHub, 260),
        (Flavor::Forgejo, ForgeKind::Forgejo, 120),
    ] {
        let forge = FakeForge::start(flavor, "octo", "repo", TOKEN);
        for number in 1..=count {
            let labels: &[&str] = if number % 2 == 0 {
                &["baton:ready"]
            } else {
                &[]
            };
            forge.add_issue(number, &format!("issue {number}"), "", labels, "alice");
        }
        let settings = ForgeSettings {
            kind,
            api_url: forge.api_url(),
            server_url: forge.server_url(),
            repository: "octo/repo".into(),
            token: baton::secrets::Secret::new(TOKEN),
            timeout: std::time::Duration::from_secs(10),
            policy: RetryPolicy::default(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // octocrab's client starts inside a runtime.
        let _inside = runtime.enter();
        let client = settings.connect().unwrap();
        let issues = runtime.block_on(client.list_issues("baton:ready")).unwrap();
        assert_eq!(issues.len() as u64, count / 2, "{flavor:?}");
        assert!(
            issues
                .windows(2)
                .all(|pair| pair[0].number < pair[1].number)
        );
        let pages = forge
            .requests()
            .iter()
            .filter(|request| request.path.contains("/issues?"))
            .count();
        assert!(pages >= 2, "{flavor:?}: {pages} page(s)");
        let inputs = [("issue".to_owned(), "4".to_owned())].into_iter().collect();
        runtime
            .block_on(client.dispatch_workflow("baton.yml", "main", &inputs))
            .unwrap();
        let dispatches = forge.dispatches();
        assert_eq!(dispatches.len(), 1);
        assert_eq!(dispatches[0]["inputs"]["issue"], "4");
        assert_eq!(dispatches[0]["ref"], "main");
    }
}

#[test]
fn an_ended_run_with_a_tampered_patch_is_not_pushed_either() {
    let mut ci = Ci::new(Flavor::GitHub, "[budget]\nmax_repairs = 0\n");
    failing(&ci);
    let (run, mut outputs) = ci.job("intake", &[]);
    run.assert_code(0);
    while output(&outputs, "next") != "publish" {
        let next = output(&outputs, "next");
        let (_, next_outputs) = ci.job(&next, &[]);
        outputs = next_outputs;
    }
    assert_eq!(output(&outputs, "outcome"), "failed");
    // The run says `failed`, so publish does not judge it: the patch is
    // still checked before anything leaves.
    rewrite(
        ci.artifact.as_ref().unwrap(),
        "changes.patch",
        DENIED_PATCH,
        true,
    );
    let (run, _) = ci.job("publish", &[]);
    run.assert_code(1);
    assert!(ci.origin_branch().is_none(), "a denied patch was pushed");
    assert!(ci.forge.pulls().is_empty());
    let manifest = ci.manifest();
    let note = manifest["phases"].as_array().unwrap().last().unwrap()["note"].clone();
    assert!(
        note.as_str().unwrap().contains("nothing was pushed"),
        "{note}"
    );
}

#[test]
fn a_pull_request_the_forge_refuses_fails_publish_and_a_rerun_opens_it() {
    let mut ci = Ci::new(Flavor::GitHub, "");
    ci.forge.fault(Fault {
        method: "POST".into(),
        path_contains: "/repos/octo/repo/pulls".into(),
        status: 403,
        body: json!({"message": "GitHub Actions is not permitted to create or approve pull requests."}).to_string(),
        times: 1,
        ..Fault::default()
    });
    let (run, mut outputs) = ci.job("intake", &[]);
    run.assert_code(0);
    while output(&outputs, "next") != "publish" {
        let next = output(&outputs, "next");
        let (_, next_outputs) = ci.job(&next, &[]);
        outputs = next_outputs;
    }
    let (run, outputs) = ci.job("publish", &[]);
    run.assert_code(2);
    assert!(
        run.stderr().contains("not permitted to create"),
        "{}",
        run.stderr()
    );
    assert_eq!(output(&outputs, "outcome"), "running");
    assert_eq!(output(&outputs, "next"), "publish");
    assert!(ci.forge.pulls().is_empty());
    let (run, outputs) = ci.job("publish", &[]);
    run.assert_code(0);
    assert_eq!(output(&outputs, "outcome"), "done");
    assert_eq!(ci.forge.pulls().len(), 1);
    assert_eq!(ci.tracking_comments().len(), 1);
}
