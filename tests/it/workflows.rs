//! The pipeline workflows as written: `.github/workflows/baton.yml` and
//! `.forgejo/workflows/baton.yml` run job by job by a small Actions runner
//! (`support/runner.rs`), each job's baton step run for real against a fake
//! model server and a fake forge. Plus what the files must say (who holds
//! which token, pins), that `baton init` writes them, and the action's
//! install script against a fake release server.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::fake_forge::{FakeForge, Flavor};
use crate::support::fake_llm::{FakeLlm, Wire};
use crate::support::runner::{Forge, Runner};
use crate::support::{BATON, TestContext, agent, happy_script, write};

const TOKEN: &str = "ghs_WorkflowToken0123456789abcdefABCDEF";
const KEY: &str = "sk-ant-workflow-key-0123456789abcdef";
const ISSUE: u64 = 7;
const BUGGY: &str = "greet() { echo \"hello world\"; }\n";
const FIXED: &str = "greet() { echo \"hello, world\"; }\n";

/// A repository whose models are a real provider kind, reached through the
/// base-URL variable the workflow passes (`vars.ANTHROPIC_BASE_URL`).
const CONFIG: &str = r#"
[models]
heavy = "anthropic:model-a"
standard = "anthropic:model-a"
light = "anthropic:model-a"

[providers.anthropic]
kind = "anthropic"
max_retries = 1
backoff_ms = 20
timeout_s = 20

[[gates]]
name = "test"
run = "sh run_tests.sh"
timeout_s = 60

[pricing."anthropic:model-a"]
input_per_mtok = 3.0
output_per_mtok = 15.0
"#;

fn workflow_path(forge: Forge) -> PathBuf {
    let folder = match forge {
        Forge::GitHub => ".github",
        Forge::Forgejo => ".forgejo",
    };
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("{folder}/workflows/baton.yml"))
}

struct Pipeline {
    context: TestContext,
    forge: FakeForge,
    llm: FakeLlm,
    runner: Runner,
}

impl Pipeline {
    fn new(forge: Forge, script: Value) -> Self {
        Self::with_config(forge, script, CONFIG)
    }

    fn with_config(forge: Forge, script: Value, config: &str) -> Self {
        let context = TestContext::with_config(config);
        let flavor = match forge {
            Forge::GitHub => Flavor::GitHub,
            Forge::Forgejo => Flavor::Forgejo,
        };
        let fake_forge = FakeForge::start(flavor, "octo", "repo", TOKEN);
        fake_forge.add_issue(
            ISSUE,
            "Greet the whole world",
            "`greet` should say \"hello, world\".",
            &["baton"],
            "alice",
        );
        fake_forge.set_permission("alice", "write");
        let llm = FakeLlm::start(Wire::Anthropic, KEY, script);
        let origin = context.path().join("origin.git");
        git2::build::RepoBuilder::new()
            .bare(true)
            .clone(context.repo.to_str().unwrap(), &origin)
            .unwrap();
        let text = std::fs::read_to_string(workflow_path(forge)).unwrap();
        let root = context.path().join("runner");
        let mut runner = Runner::new(forge, &text, &origin, &root);
        fake_forge.set_origin(&origin);
        runner.token = TOKEN.into();
        runner
            .secrets
            .insert("ANTHROPIC_API_KEY".into(), KEY.into());
        runner
            .vars
            .insert("ANTHROPIC_BASE_URL".into(), llm.base_url());
        runner
            .base_env
            .insert("GITHUB_API_URL".into(), fake_forge.api_url());
        runner
            .base_env
            .insert("GITHUB_SERVER_URL".into(), fake_forge.server_url());
        // The label `baton` added by alice, as each forge sends it.
        runner.event_name = "issues".into();
        runner.event = match forge {
            Forge::GitHub => json!({"action": "labeled", "label": {"name": "baton"}}),
            Forge::Forgejo => json!({"action": "label_updated"}),
        };
        runner.event["issue"] = json!({"number": ISSUE, "labels": [{"name": "baton"}]});
        runner.event["sender"] = json!({"login": "alice"});
        Self {
            context,
            forge: fake_forge,
            llm,
            runner,
        }
    }

    fn tracking_comments(&self) -> Vec<String> {
        self.forge
            .comments(ISSUE)
            .into_iter()
            .filter_map(|comment| comment["body"].as_str().map(str::to_owned))
            .filter(|body| body.starts_with("<!-- baton:tracking -->"))
            .collect()
    }

    fn branch_head(&self) -> Option<git2::Oid> {
        git2::Repository::open_bare(&self.runner.origin)
            .unwrap()
            .refname_to_id(&format!("refs/heads/baton/issue-{ISSUE}"))
            .ok()
    }

    /// Neither the forge token nor the model key appears in any log, and
    /// the jobs that must not hold them never saw them.
    fn assert_secrets_kept(&self) {
        for (id, result) in &self.runner.results {
            // `::add-mask::` hands the runner a value to hide: the one line
            // that must carry it.
            let log: String = result
                .log
                .lines()
                .filter(|line| !line.starts_with("::add-mask::"))
                .collect();
            assert!(!log.contains(TOKEN), "{id} printed the token");
            assert!(!log.contains(KEY), "{id} printed the model key");
            let values: Vec<&String> = result
                .environments
                .iter()
                .flat_map(BTreeMap::values)
                .collect();
            let holds = |secret: &str| values.iter().any(|value| value.contains(secret));
            let writer = matches!(id.as_str(), "intake" | "publish");
            let verify = id.starts_with("verify");
            if !writer {
                assert!(!holds(TOKEN), "{id} was given the forge token");
            }
            if verify || id == "publish" {
                assert!(!holds(KEY), "{id} was given the model key");
            }
        }
        for artifact in self.runner.artifacts.values() {
            for (path, text) in crate::support::all_files(artifact) {
                assert!(!text.contains(TOKEN), "{} holds the token", path.display());
                assert!(!text.contains(KEY), "{} holds the key", path.display());
            }
        }
    }
}

fn jobs(list: &[&str]) -> Vec<String> {
    list.iter().map(|job| (*job).to_owned()).collect()
}

fn passes_first_time(forge: Forge) {
    let mut pipeline = Pipeline::new(forge, happy_script());
    pipeline.runner.run();
    let runner = &pipeline.runner;
    let failed: Vec<String> = runner
        .ran()
        .into_iter()
        .filter(|id| runner.result(id).result != "success")
        .collect();
    assert!(
        failed.is_empty(),
        "{failed:?} failed:\n{}",
        failed
            .iter()
            .map(|id| runner.result(id).log.clone())
            .collect::<String>()
    );
    assert_eq!(
        runner.ran(),
        jobs(&[
            "intake",
            "spec",
            "design",
            "plan",
            "tests",
            "implement",
            "verify",
            "review",
            "publish"
        ])
    );
    let publish = &runner.result("publish").outputs;
    assert_eq!(publish["outcome"], "done");
    assert_eq!(publish["next"], "none");
    assert!(publish.contains_key("pr"), "{publish:?}");
    let pulls = pipeline.forge.pulls();
    assert_eq!(pulls.len(), 1);
    let tracking = pipeline.tracking_comments();
    assert_eq!(tracking.len(), 1, "one tracking comment");
    assert!(tracking[0].contains("done"), "{}", tracking[0]);
    assert!(
        pipeline
            .forge
            .labels_of(ISSUE)
            .contains(&"baton:done".to_owned())
    );
    assert!(pipeline.branch_head().is_some());
    pipeline.assert_secrets_kept();

    // Any job run again with the same artifact in: the same result and no
    // second pull request, comment or commit. (A re-run job re-runs the
    // jobs after it, as on GitHub.)
    let head = pipeline.branch_head();
    let comments = pipeline.forge.comments(ISSUE).len();
    for id in ["publish", "verify", "implement", "intake"] {
        let ids = pipeline.runner.job_ids();
        let from = ids.iter().position(|each| each == id).unwrap();
        for later in &ids[from..] {
            pipeline.runner.rerun(later);
        }
        let publish = &pipeline.runner.result("publish").outputs;
        assert_eq!(publish["outcome"], "done", "after re-running {id}");
        assert_eq!(pipeline.forge.pulls().len(), 1, "after re-running {id}");
        assert_eq!(pipeline.tracking_comments().len(), 1);
        assert_eq!(pipeline.forge.comments(ISSUE).len(), comments);
        assert_eq!(pipeline.branch_head(), head, "after re-running {id}");
    }
}

#[test]
fn github_pipeline_passes_first_time_and_reruns_change_nothing() {
    passes_first_time(Forge::GitHub);
}

#[test]
fn forgejo_pipeline_passes_first_time_and_reruns_change_nothing() {
    passes_first_time(Forge::Forgejo);
}

fn needs_a_repair(forge: Forge) {
    let mut script = happy_script();
    script["implement"] = agent(vec![vec![write("lib.sh", BUGGY)]]);
    script["repair"] = agent(vec![vec![write("lib.sh", FIXED)]]);
    let mut pipeline = Pipeline::new(forge, script);
    pipeline.runner.run();
    let runner = &pipeline.runner;
    assert_eq!(
        runner.ran(),
        jobs(&[
            "intake",
            "spec",
            "design",
            "plan",
            "tests",
            "implement",
            "verify",
            "repair_1",
            "verify_1",
            "review",
            "publish"
        ])
    );
    assert_eq!(
        runner.result("verify").result,
        "failure",
        "a failing gate turns verify red"
    );
    assert_eq!(runner.result("verify_1").result, "success");
    assert_eq!(runner.result("publish").outputs["outcome"], "done");
    assert_eq!(pipeline.forge.pulls().len(), 1);
    pipeline.assert_secrets_kept();
}

#[test]
fn github_pipeline_repairs_a_red_verify() {
    needs_a_repair(Forge::GitHub);
}

#[test]
fn forgejo_pipeline_repairs_a_red_verify() {
    needs_a_repair(Forge::Forgejo);
}

fn stays_red(forge: Forge) {
    let mut script = happy_script();
    script["implement"] = agent(vec![vec![write("lib.sh", BUGGY)]]);
    script["repair"] = agent(vec![vec![write(
        "lib.sh",
        "greet() { echo \"hello  world\"; }\n",
    )]]);
    let mut pipeline = Pipeline::new(forge, script);
    pipeline.runner.run();
    let runner = &pipeline.runner;
    assert_eq!(runner.result("verify").result, "failure");
    let publish = runner.result("publish");
    assert_eq!(publish.outputs["outcome"], "failed", "{}", publish.log);
    assert_eq!(runner.result("review").result, "skipped");
    let tracking = pipeline.tracking_comments();
    assert_eq!(tracking.len(), 1);
    assert!(tracking[0].contains("failed"), "{}", tracking[0]);
    assert!(
        pipeline
            .forge
            .labels_of(ISSUE)
            .contains(&"baton:failed".to_owned())
    );
    // The work is kept, in a draft.
    let pulls = pipeline.forge.pulls();
    assert_eq!(pulls.len(), 1);
    pipeline.assert_secrets_kept();
}

#[test]
fn a_gate_that_stays_red_fails_verify_and_publish_still_finalises_on_both_forges() {
    stays_red(Forge::GitHub);
    stays_red(Forge::Forgejo);
}

#[test]
fn a_cancelled_workflow_is_finalised_by_publish() {
    let mut pipeline = Pipeline::new(Forge::GitHub, happy_script());
    let ids = pipeline.runner.job_ids();
    for id in &ids {
        if id == "verify" {
            // Someone pressed "Cancel workflow" while implement was ending.
            pipeline.runner.cancelled = true;
        }
        pipeline.runner.rerun(id);
    }
    assert_cancelled(&pipeline);
}

/// `/baton stop` while implement runs: on GitHub baton cancels the
/// workflow run through the API; Forgejo's API cannot, and the reply says
/// to press cancel on the run's page. Either way publish finalises the run
/// as `cancelled` and the label `baton:running` becomes `baton:cancelled`.
fn a_stop_comment(forge: Forge) {
    let mut pipeline = Pipeline::new(forge, happy_script());
    pipeline.forge.set_token_user("baton", false);
    let ids = pipeline.runner.job_ids();
    for id in &ids {
        if id == "verify" {
            assert!(
                pipeline
                    .forge
                    .labels_of(ISSUE)
                    .contains(&"baton:running".to_owned())
            );
            // The comment's own workflow run: only its command job runs.
            let text = std::fs::read_to_string(workflow_path(forge)).unwrap();
            let root = pipeline.context.path().join("command-runner");
            let mut command = Runner::new(forge, &text, &pipeline.runner.origin, &root);
            command.token = TOKEN.into();
            command.base_env = pipeline.runner.base_env.clone();
            command.run_id = "5151".into();
            let comment = pipeline
                .forge
                .add_comment(ISSUE, "alice", "/baton stop", false);
            command.event_name = "issue_comment".into();
            command.event = json!({
                "action": "created",
                "issue": {"number": ISSUE},
                "comment": {"id": comment, "body": "/baton stop", "user": {"login": "alice"}},
            });
            command.run();
            assert_eq!(command.ran(), jobs(&["command"]));
            let reply = pipeline
                .forge
                .comments(ISSUE)
                .into_iter()
                .filter_map(|comment| comment["body"].as_str().map(str::to_owned))
                .rfind(|body| body.starts_with("<!-- baton:reply="))
                .unwrap();
            match forge {
                Forge::GitHub => {
                    assert_eq!(pipeline.forge.cancelled_runs(), [4242], "{reply}");
                }
                Forge::Forgejo => {
                    assert!(reply.contains("cancel run 4242 from its page"), "{reply}");
                }
            }
            // The run is cancelled (by the API, or by the person on Forgejo).
            pipeline.runner.cancelled = true;
        }
        pipeline.runner.rerun(id);
    }
    assert_cancelled(&pipeline);
    assert!(
        !pipeline
            .forge
            .labels_of(ISSUE)
            .contains(&"baton:running".to_owned())
    );
}

#[test]
fn github_a_stop_comment_cancels_the_run_and_publish_labels_it_cancelled() {
    a_stop_comment(Forge::GitHub);
}

#[test]
fn forgejo_a_stop_comment_cancels_the_run_and_publish_labels_it_cancelled() {
    a_stop_comment(Forge::Forgejo);
}

fn assert_cancelled(pipeline: &Pipeline) {
    let runner = &pipeline.runner;
    assert_eq!(runner.result("verify").result, "skipped");
    assert_eq!(runner.result("review").result, "skipped");
    let publish = runner.result("publish");
    assert_eq!(
        publish.outputs.get("outcome").map(String::as_str),
        Some("cancelled"),
        "{} {}",
        publish.result,
        publish.log
    );
    let tracking = pipeline.tracking_comments();
    assert_eq!(tracking.len(), 1);
    assert!(tracking[0].contains("cancelled"), "{}", tracking[0]);
    // Unverified work is not pushed as a reviewable change: publish
    // refuses a patch verify never checked only when verify ran; here it
    // keeps the work on the branch, in a draft.
    assert!(
        pipeline
            .forge
            .labels_of(ISSUE)
            .contains(&"baton:cancelled".to_owned())
    );
}

#[test]
fn another_label_starts_nothing_and_publish_does_not_run() {
    // GitHub names the label: the workflow itself starts no job.
    let mut pipeline = Pipeline::new(Forge::GitHub, happy_script());
    pipeline.runner.event["label"] = json!({"name": "bug"});
    pipeline.runner.run();
    assert!(pipeline.runner.ran().is_empty());
    assert!(pipeline.forge.comments(ISSUE).is_empty());
    // Forgejo does not: intake runs when the issue carries the trigger
    // label, and baton skips an issue whose run is already under way.
    let mut pipeline = Pipeline::new(Forge::Forgejo, happy_script());
    pipeline.runner.event["issue"]["labels"] = json!([{"name": "bug"}]);
    pipeline.runner.run();
    assert!(pipeline.runner.ran().is_empty());
    pipeline.runner.event["issue"]["labels"] =
        json!([{"name": "baton"}, {"name": "baton:running"}]);
    pipeline.runner.run();
    assert_eq!(pipeline.runner.ran(), jobs(&["intake"]));
    assert_eq!(pipeline.runner.result("intake").outputs["next"], "none");
    assert!(pipeline.forge.comments(ISSUE).is_empty());
    let _ = &pipeline.context;
}

#[test]
fn a_job_whose_phase_crashed_stops_the_chain_and_publish_finalises() {
    // The model server is gone when spec runs: the phase cannot finish
    // (exit 2); no later job takes its place, and publish ends the run.
    let mut pipeline = Pipeline::new(Forge::GitHub, happy_script());
    let ids = pipeline.runner.job_ids();
    for id in &ids {
        if id == "spec" {
            pipeline
                .runner
                .vars
                .insert("ANTHROPIC_BASE_URL".into(), "http://127.0.0.1:9".into());
        }
        pipeline.runner.rerun(id);
    }
    let runner = &pipeline.runner;
    assert_eq!(runner.ran(), jobs(&["intake", "spec", "publish"]));
    assert_eq!(runner.result("spec").result, "failure");
    let publish = runner.result("publish");
    assert!(
        matches!(
            publish.outputs.get("outcome").map(String::as_str),
            Some("cancelled" | "blocked")
        ),
        "{:?} {}",
        publish.outputs,
        publish.log
    );
    let tracking = pipeline.tracking_comments();
    assert_eq!(tracking.len(), 1);
}

fn a_scheduled_sweep_dispatches_and_the_dispatched_run_publishes(forge: Forge) {
    let mut pipeline = Pipeline::new(forge, happy_script());
    pipeline
        .forge
        .add_issue(8, "Not ready yet", "", &[], "alice");
    // #7 carries the sweep label (and no trigger label): the schedule finds it.
    pipeline.forge.add_issue(
        ISSUE,
        "Greet the whole world",
        "`greet` should say \"hello, world\".",
        &["baton:ready"],
        "alice",
    );
    pipeline.runner.event_name = "schedule".into();
    pipeline.runner.event = match forge {
        Forge::GitHub => json!({"schedule": "17 6 * * 1-5"}),
        Forge::Forgejo => json!({"action": "schedule"}),
    };
    pipeline.runner.run();
    assert_eq!(pipeline.runner.ran(), jobs(&["sweep"]));
    let dispatches = pipeline.forge.dispatches();
    assert_eq!(dispatches.len(), 1, "{dispatches:?}");
    assert_eq!(dispatches[0]["inputs"]["issue"], "7");
    // The dispatch starts the pipeline (GitHub sends inputs as given;
    // Forgejo as strings).
    pipeline.runner.event_name = "workflow_dispatch".into();
    pipeline.runner.event = json!({"inputs": dispatches[0]["inputs"], "ref": "refs/heads/main", "sender": {"login": "github-actions[bot]"}});
    pipeline.runner.run();
    let publish = &pipeline.runner.result("publish").outputs;
    assert_eq!(
        publish["outcome"],
        "done",
        "{}",
        pipeline.runner.result("publish").log
    );
    assert_eq!(pipeline.forge.pulls().len(), 1);
    // The next sweep finds the issue in flight and starts nothing.
    pipeline.runner.event_name = "schedule".into();
    pipeline.runner.event = json!({"schedule": "17 6 * * 1-5"});
    pipeline.runner.run();
    assert_eq!(pipeline.forge.dispatches().len(), 1);
}

fn a_comment_dispatches_a_run(forge: Forge) {
    let mut pipeline = Pipeline::new(forge, happy_script());
    pipeline.forge.set_token_user("baton", false);
    let id = pipeline
        .forge
        .add_comment(ISSUE, "alice", "/baton run", false);
    pipeline.runner.event_name = "issue_comment".into();
    pipeline.runner.event = json!({
        "action": "created",
        "issue": {"number": ISSUE},
        "comment": {"id": id, "body": "/baton run", "user": {"login": "alice"}},
    });
    pipeline.runner.run();
    assert_eq!(pipeline.runner.ran(), jobs(&["command"]));
    let dispatches = pipeline.forge.dispatches();
    assert_eq!(dispatches.len(), 1);
    assert_eq!(dispatches[0]["inputs"]["issue"], "7");
    // Any other comment starts no job at all.
    pipeline.runner.event["comment"]["body"] = json!("thanks!");
    pipeline.runner.run();
    assert!(pipeline.runner.ran().is_empty());
}

impl Pipeline {
    /// `author` comments `body` on pull request `pull`: the `command` job
    /// runs on the event.
    fn comment_on_pull(&mut self, pull: u64, author: &str, body: &str) {
        let id = self.forge.add_comment(pull, author, body, false);
        self.runner.event_name = "issue_comment".into();
        self.runner.event = json!({
            "action": "created",
            "issue": {"number": pull, "pull_request": {"url": "https://example.invalid/pulls"}},
            "comment": {"id": id, "body": body, "user": {"login": author}},
        });
        self.runner.run();
        assert_eq!(self.runner.ran(), jobs(&["command"]));
        assert_eq!(self.runner.result("command").result, "success");
    }

    fn pull(&self) -> Value {
        let pulls = self.forge.pulls();
        assert_eq!(pulls.len(), 1, "{pulls:?}");
        pulls[0].clone()
    }

    fn pull_is_draft(&self) -> bool {
        let pull = self.pull();
        pull["draft"].as_bool().unwrap() || pull["title"].as_str().unwrap().starts_with("WIP:")
    }
}

/// `[scope].approval` names lib.sh, which the run changes: publish keeps
/// the pull request a draft that waits for an approval of its head commit;
/// a reader's `/baton approve` is refused; a writer's makes it ready; a
/// rerun of publish (the same commit) keeps it; a new run's push makes the
/// approval stale and the pull request a draft again.
fn an_approval_checkpoint(forge: Forge) {
    let config = format!("{CONFIG}\n[scope]\napproval = [\"lib.sh\"]\n");
    let mut pipeline = Pipeline::with_config(forge, happy_script(), &config);
    pipeline.forge.set_token_user("baton", false);
    pipeline.forge.set_permission("bob", "read");
    pipeline.runner.run();
    let publish = pipeline.runner.result("publish");
    assert_eq!(publish.outputs["outcome"], "blocked", "{}", publish.log);
    let head = pipeline.branch_head().unwrap().to_string();
    let pull = pipeline.pull();
    let number = pull["number"].as_u64().unwrap();
    assert!(pipeline.pull_is_draft());
    let body = pull["body"].as_str().unwrap();
    assert!(
        body.contains(&format!("<!-- baton:awaiting-approval={head} -->")),
        "{body}"
    );
    assert!(body.contains("need `/baton approve`"), "{body}");
    assert_eq!(pull["head"]["sha"], head.as_str());

    // A reader cannot approve.
    pipeline.comment_on_pull(number, "bob", "/baton approve");
    assert!(pipeline.pull_is_draft());

    // A writer approves the head commit: ready for review, labels done.
    pipeline.comment_on_pull(number, "alice", "/Baton approve");
    assert!(
        !pipeline.pull_is_draft(),
        "{:?}",
        pipeline.runner.result("command").log
    );
    let reply = pipeline
        .forge
        .comments(number)
        .into_iter()
        .filter_map(|comment| comment["body"].as_str().map(str::to_owned))
        .rfind(|body| body.starts_with("<!-- baton:reply="))
        .unwrap();
    assert!(
        reply.contains(&format!("<!-- baton:approved={head} -->")),
        "{reply}"
    );
    assert!(
        pipeline
            .forge
            .labels_of(ISSUE)
            .contains(&"baton:done".to_owned())
    );
    let body = pipeline.pull()["body"].as_str().unwrap().to_owned();
    assert!(body.contains("by @alice on commit"), "{body}");
    assert!(!body.contains("need `/baton approve`"), "{body}");

    // publish run again: the same commit, the approval holds.
    pipeline.runner.event_name = "issues".into();
    pipeline.runner.event = match forge {
        Forge::GitHub => json!({"action": "labeled", "label": {"name": "baton"}}),
        Forge::Forgejo => json!({"action": "label_updated"}),
    };
    pipeline.runner.event["issue"] = json!({"number": ISSUE, "labels": [{"name": "baton"}]});
    pipeline.runner.event["sender"] = json!({"login": "alice"});
    pipeline.runner.run();
    let publish = pipeline.runner.result("publish");
    assert_eq!(publish.outputs["outcome"], "done", "{}", publish.log);
    assert_eq!(pipeline.branch_head().unwrap().to_string(), head);
    assert!(!pipeline.pull_is_draft());

    // A later run pushes a new commit: the approval is stale.
    pipeline.runner.run_id = "4343".into();
    pipeline.runner.run();
    let publish = pipeline.runner.result("publish");
    assert_eq!(publish.outputs["outcome"], "blocked", "{}", publish.log);
    let new_head = pipeline.branch_head().unwrap().to_string();
    assert_ne!(new_head, head);
    assert!(pipeline.pull_is_draft());
    let body = pipeline.pull()["body"].as_str().unwrap().to_owned();
    assert!(body.contains("is stale"), "{body}");
    assert!(body.contains(&format!("<!-- baton:awaiting-approval={new_head} -->")));
    assert!(
        pipeline
            .forge
            .labels_of(ISSUE)
            .contains(&"baton:blocked".to_owned())
    );
}

/// `/baton fix <text>` on the pull request: the command job dispatches a
/// fix run; its repair gets the feedback, verify gates it, review reads it
/// and publish pushes it as a new commit on top of the branch (a
/// fast-forward); a reader's fix starts nothing.
fn a_fix_comment(forge: Forge) {
    const BYE: &str = "greet() { echo \"hello, world\"; }\nbye() { echo \"bye\"; }\n";
    let mut script = happy_script();
    script["repair"] = agent(vec![vec![write("lib.sh", BYE)]]);
    let mut pipeline = Pipeline::new(forge, script);
    pipeline.forge.set_token_user("baton", false);
    pipeline.forge.set_permission("bob", "read");
    pipeline.runner.run();
    assert_eq!(pipeline.runner.result("publish").outputs["outcome"], "done");
    let first = pipeline.branch_head().unwrap();
    let number = pipeline.pull()["number"].as_u64().unwrap();

    pipeline.comment_on_pull(number, "bob", "/baton fix add a bye");
    assert!(pipeline.forge.dispatches().is_empty());

    pipeline.comment_on_pull(number, "alice", "/baton fix also add `bye`\nthat says bye");
    let dispatches = pipeline.forge.dispatches();
    assert_eq!(dispatches.len(), 1, "{dispatches:?}");
    assert_eq!(dispatches[0]["inputs"]["issue"], "7");
    let comment = dispatches[0]["inputs"]["fix_comment"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!comment.is_empty());

    pipeline.runner.run_id = "4343".into();
    pipeline.runner.event_name = "workflow_dispatch".into();
    pipeline.runner.event = json!({"inputs": dispatches[0]["inputs"], "ref": "refs/heads/main", "sender": {"login": "github-actions[bot]"}});
    pipeline.runner.run();
    let runner = &pipeline.runner;
    assert_eq!(
        runner.ran(),
        jobs(&["intake", "repair_1", "verify_1", "review", "publish"]),
        "{}",
        runner.result("intake").log
    );
    assert_eq!(runner.result("verify_1").result, "success");
    let publish = runner.result("publish");
    assert_eq!(publish.outputs["outcome"], "done", "{}", publish.log);
    assert_eq!(publish.outputs["route"], "fix");
    // The feedback reached the repair, marked as untrusted.
    let repair = pipeline
        .llm
        .requests()
        .into_iter()
        .find(|request| request.headers.get("x-baton-phase").map(String::as_str) == Some("repair"))
        .expect("the repair asked the model");
    let text = repair.body.to_string();
    assert!(
        text.contains("untrusted text") && text.contains("also add `bye`"),
        "{text}"
    );

    // A new commit on the branch, on top of the one before.
    let second = pipeline.branch_head().unwrap();
    assert_ne!(second, first);
    let origin = git2::Repository::open_bare(&pipeline.runner.origin).unwrap();
    let commit = origin.find_commit(second).unwrap();
    assert_eq!(commit.parent_ids().collect::<Vec<_>>(), [first]);
    assert!(
        commit
            .message()
            .unwrap()
            .contains("`/baton fix` from @alice")
    );
    let body = pipeline.pull()["body"].as_str().unwrap().to_owned();
    assert!(
        body.contains("is the `/baton fix` @alice asked for"),
        "{body}"
    );
    let blob = commit
        .tree()
        .unwrap()
        .get_path(Path::new("lib.sh"))
        .unwrap()
        .to_object(&origin)
        .unwrap();
    assert_eq!(blob.as_blob().unwrap().content(), BYE.as_bytes());
    // The rest of the pull request's change is still there.
    assert!(
        commit
            .tree()
            .unwrap()
            .get_path(Path::new("tests/greet_test.sh"))
            .is_ok()
    );
    assert_eq!(pipeline.forge.pulls().len(), 1);
    assert!(!pipeline.pull_is_draft());
    pipeline.assert_secrets_kept();

    // publish run again: its own commit is on the branch; nothing changes.
    let again = pipeline.runner.rerun("publish");
    assert_eq!(again.result, "success", "{}", again.log);
    assert_eq!(pipeline.branch_head().unwrap(), second);
    assert_eq!(pipeline.forge.pulls().len(), 1);
}

/// A fix of a pull request whose change needs approval: pushed on top as
/// a draft waiting for an approval of the fix's own commit (the earlier
/// approval is stale), and released by `/baton approve` of that commit.
#[test]
fn a_fix_of_an_approved_change_waits_for_its_own_approval() {
    const BYE: &str = "greet() { echo \"hello, world\"; }\nbye() { echo \"bye\"; }\n";
    let config = format!("{CONFIG}\n[scope]\napproval = [\"lib.sh\"]\n");
    let mut script = happy_script();
    script["repair"] = agent(vec![vec![write("lib.sh", BYE)]]);
    let mut pipeline = Pipeline::with_config(Forge::GitHub, script, &config);
    pipeline.forge.set_token_user("baton", false);
    pipeline.runner.run();
    assert_eq!(
        pipeline.runner.result("publish").outputs["outcome"],
        "blocked"
    );
    let number = pipeline.pull()["number"].as_u64().unwrap();
    pipeline.comment_on_pull(number, "alice", "/baton approve");
    assert!(!pipeline.pull_is_draft());
    let approved = pipeline.branch_head().unwrap();

    pipeline.comment_on_pull(number, "alice", "/baton fix also add `bye`");
    let dispatches = pipeline.forge.dispatches();
    assert_eq!(dispatches.len(), 1, "{dispatches:?}");
    pipeline.runner.run_id = "4343".into();
    pipeline.runner.event_name = "workflow_dispatch".into();
    pipeline.runner.event = json!({"inputs": dispatches[0]["inputs"], "ref": "refs/heads/main", "sender": {"login": "github-actions[bot]"}});
    pipeline.runner.run();
    let publish = pipeline.runner.result("publish");
    assert_eq!(publish.outputs["outcome"], "blocked", "{}", publish.log);
    // Pushed on top, a draft waiting for its own commit's approval.
    let fixed = pipeline.branch_head().unwrap();
    assert_ne!(fixed, approved, "{}", publish.log);
    let origin = git2::Repository::open_bare(&pipeline.runner.origin).unwrap();
    assert_eq!(
        origin
            .find_commit(fixed)
            .unwrap()
            .parent_ids()
            .collect::<Vec<_>>(),
        [approved]
    );
    assert!(pipeline.pull_is_draft());
    let body = pipeline.pull()["body"].as_str().unwrap().to_owned();
    assert!(
        body.contains(&format!("<!-- baton:awaiting-approval={fixed} -->")),
        "{body}"
    );

    pipeline.comment_on_pull(number, "alice", "/baton approve");
    assert!(!pipeline.pull_is_draft());
}

/// A fix whose gates stay red pushes nothing: the pull request people are
/// reviewing stays as it was and is told why.
#[test]
fn a_fix_that_stays_red_leaves_the_pull_request_as_it_was() {
    let mut script = happy_script();
    script["repair"] = agent(vec![vec![write("lib.sh", BUGGY)]]);
    let mut pipeline = Pipeline::new(Forge::Forgejo, script);
    pipeline.forge.set_token_user("baton", false);
    pipeline.runner.run();
    let before = pipeline.branch_head().unwrap();
    let number = pipeline.pull()["number"].as_u64().unwrap();
    pipeline.comment_on_pull(number, "alice", "/baton fix break it");
    let inputs = pipeline.forge.dispatches()[0]["inputs"].clone();
    pipeline.runner.run_id = "4343".into();
    pipeline.runner.event_name = "workflow_dispatch".into();
    pipeline.runner.event = json!({"inputs": inputs, "ref": "refs/heads/main", "sender": {"login": "github-actions[bot]"}});
    pipeline.runner.run();
    let publish = pipeline.runner.result("publish");
    assert_eq!(publish.outputs["outcome"], "failed", "{}", publish.log);
    assert_eq!(pipeline.runner.result("verify_1").result, "failure");
    assert_eq!(pipeline.branch_head().unwrap(), before);
    assert!(!pipeline.pull_is_draft());
    let told = pipeline
        .forge
        .comments(number)
        .into_iter()
        .filter_map(|comment| comment["body"].as_str().map(str::to_owned))
        .filter(|body| body.starts_with("<!-- baton:fix="))
        .collect::<Vec<_>>();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("ended `failed`"), "{}", told[0]);
}

/// A person pushes to the branch while a fix runs: publish refuses to
/// push over their commit, and the branch keeps it.
#[test]
fn a_fix_never_pushes_over_a_commit_made_while_it_ran() {
    let mut script = happy_script();
    script["repair"] = agent(vec![vec![write(
        "lib.sh",
        "greet() { echo \"hello, world\"; }\nhi() { echo hi; }\n",
    )]]);
    let mut pipeline = Pipeline::new(Forge::GitHub, script);
    pipeline.forge.set_token_user("baton", false);
    pipeline.runner.run();
    let number = pipeline.pull()["number"].as_u64().unwrap();
    pipeline.comment_on_pull(number, "alice", "/baton fix say hi");
    let inputs = pipeline.forge.dispatches()[0]["inputs"].clone();
    pipeline.runner.run_id = "4343".into();
    pipeline.runner.event_name = "workflow_dispatch".into();
    pipeline.runner.event = json!({"inputs": inputs, "ref": "refs/heads/main", "sender": {"login": "github-actions[bot]"}});
    pipeline.runner.results.clear();
    for id in pipeline.runner.job_ids() {
        if id == "publish" {
            // alice pushes a commit of her own to the branch.
            let origin = git2::Repository::open_bare(&pipeline.runner.origin).unwrap();
            let reference = "refs/heads/baton/issue-7";
            let head = origin
                .find_commit(origin.refname_to_id(reference).unwrap())
                .unwrap();
            let signature = git2::Signature::now("alice", "alice@example.com").unwrap();
            origin
                .commit(
                    Some(reference),
                    &signature,
                    &signature,
                    "a commit of alice's",
                    &head.tree().unwrap(),
                    &[&head],
                )
                .unwrap();
        }
        if id == "command" || id == "sweep" {
            continue;
        }
        pipeline.runner.rerun(&id);
    }
    let alice = pipeline.branch_head().unwrap();
    let publish = pipeline.runner.result("publish");
    assert_eq!(publish.result, "failure", "{}", publish.log);
    assert!(publish.log.contains("moved from"), "{}", publish.log);
    let origin = git2::Repository::open_bare(&pipeline.runner.origin).unwrap();
    assert_eq!(
        origin.find_commit(alice).unwrap().message().unwrap(),
        "a commit of alice's"
    );
}

#[test]
fn github_a_fix_comment_pushes_a_verified_commit_on_the_pull_request() {
    a_fix_comment(Forge::GitHub);
}

#[test]
fn forgejo_a_fix_comment_pushes_a_verified_commit_on_the_pull_request() {
    a_fix_comment(Forge::Forgejo);
}

#[test]
fn github_an_approval_checkpoint_is_released_by_approve_and_stale_after_a_push() {
    an_approval_checkpoint(Forge::GitHub);
}

#[test]
fn forgejo_an_approval_checkpoint_is_released_by_approve_and_stale_after_a_push() {
    an_approval_checkpoint(Forge::Forgejo);
}

#[test]
fn github_a_comment_dispatches_a_run() {
    a_comment_dispatches_a_run(Forge::GitHub);
}

#[test]
fn forgejo_a_comment_dispatches_a_run() {
    a_comment_dispatches_a_run(Forge::Forgejo);
}

#[test]
fn github_a_scheduled_sweep_dispatches_and_the_dispatched_run_publishes() {
    a_scheduled_sweep_dispatches_and_the_dispatched_run_publishes(Forge::GitHub);
}

#[test]
fn forgejo_a_scheduled_sweep_dispatches_and_the_dispatched_run_publishes() {
    a_scheduled_sweep_dispatches_and_the_dispatched_run_publishes(Forge::Forgejo);
}

// ---- what the files say ----

fn workflow(forge: Forge) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(workflow_path(forge)).unwrap()).unwrap()
}

#[test]
fn only_intake_and_publish_can_write_and_verify_gets_no_secret() {
    for forge in [Forge::GitHub, Forge::Forgejo] {
        let workflow = workflow(forge);
        assert_eq!(
            workflow["permissions"],
            serde_yaml::Value::Mapping(serde_yaml::Mapping::new()),
            "permissions: {{}} at the top"
        );
        assert!(
            workflow["concurrency"]["group"]
                .as_str()
                .unwrap()
                .contains("issue")
        );
        for (id, job) in workflow["jobs"].as_mapping().unwrap() {
            let id = id.as_str().unwrap();
            let permissions = job["permissions"].as_mapping().unwrap();
            let writes: Vec<&str> = permissions
                .iter()
                .filter(|(_, level)| level.as_str() == Some("write"))
                .map(|(scope, _)| scope.as_str().unwrap())
                .collect();
            let text = serde_yaml::to_string(job).unwrap();
            match id {
                "intake" => assert_eq!(writes, ["issues"]),
                "command" => {
                    assert_eq!(writes, ["actions", "issues", "pull-requests"]);
                    assert!(
                        !text.contains("secrets.ANTHROPIC"),
                        "commands get no model key"
                    );
                }
                "sweep" => {
                    assert_eq!(writes, ["actions", "issues"]);
                    assert!(
                        !text.contains("secrets.ANTHROPIC"),
                        "the sweep gets no model key"
                    );
                }
                "publish" => {
                    assert_eq!(writes, ["contents", "issues", "pull-requests"]);
                    assert!(job["if"].as_str().unwrap().contains("always()"));
                    assert!(
                        !text.contains("secrets.ANTHROPIC"),
                        "publish gets no model key"
                    );
                }
                _ => {
                    assert!(writes.is_empty(), "{id} can write: {writes:?}");
                    assert!(!text.contains("forge-token"), "{id} gets a forge token");
                    assert!(!text.contains("github.token"), "{id} gets the job token");
                }
            }
            if id.starts_with("verify") {
                assert!(!text.contains("secrets."), "{id} gets a secret");
                assert!(!text.contains("vars."), "{id} gets a variable");
            }
        }
    }
}

#[test]
fn every_action_is_pinned_by_commit_with_its_version() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = [
        ".github/workflows/baton.yml",
        ".forgejo/workflows/baton.yml",
        ".github/workflows/ci.yml",
        ".github/workflows/release.yml",
    ];
    let pin = regex::Regex::new(r"@[0-9a-f]{40} # v\d+(\.\d+)*$").unwrap();
    for file in files {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for line in text.lines() {
            let Some((_, target)) = line.split_once("uses: ") else {
                continue;
            };
            if target == "./" {
                continue;
            }
            assert!(pin.is_match(target), "{file}: `{target}` is not pinned");
        }
    }
    let forgejo = std::fs::read_to_string(root.join(".forgejo/workflows/baton.yml")).unwrap();
    assert!(forgejo.contains("https://code.forgejo.org/forgejo/upload-artifact@"));
    assert!(forgejo.contains("https://code.forgejo.org/forgejo/download-artifact@"));
    assert!(!forgejo.contains("uses: actions/"));
}

#[test]
fn the_committed_workflows_are_what_baton_init_writes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // baton's own GitHub pipeline builds baton from this source; the
    // Forgejo one installs the release (a Forgejo runner's image need not
    // have Rust).
    for (forge, folder, version) in [
        ("github", ".github", "source"),
        ("forgejo", ".forgejo", "v0.1.0"),
    ] {
        let directory = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(directory.path().join(".github")).unwrap();
        std::fs::copy(
            root.join(".github/baton.toml"),
            directory.path().join(".github/baton.toml"),
        )
        .unwrap();
        let run = std::process::Command::new(BATON)
            .args([
                "init",
                "--forge",
                forge,
                "--action",
                "./",
                "--version",
                version,
            ])
            .current_dir(directory.path())
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let written = std::fs::read_to_string(
            directory
                .path()
                .join(format!("{folder}/workflows/baton.yml")),
        )
        .unwrap();
        let committed =
            std::fs::read_to_string(root.join(format!("{folder}/workflows/baton.yml"))).unwrap();
        assert!(
            written == committed,
            "{folder}/workflows/baton.yml differs from `baton init --forge {forge} --action ./ --version {version}`; run it again"
        );
    }
}

#[test]
fn init_writes_a_config_that_checks_and_never_overwrites_without_force() {
    let directory = tempfile::tempdir().unwrap();
    let repo = directory.path();
    std::fs::write(repo.join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
    let init = |arguments: &[&str]| {
        std::process::Command::new(BATON)
            .arg("init")
            .args(arguments)
            .current_dir(repo)
            .env_remove("BATON_CONFIG")
            .output()
            .unwrap()
    };
    let first = init(&[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let config = std::fs::read_to_string(repo.join(".github/baton.toml")).unwrap();
    assert!(
        config.contains("cargo test --locked"),
        "the gate is guessed from Cargo.toml"
    );
    let check = |key: Option<&str>| {
        let mut command = std::process::Command::new(BATON);
        command
            .args(["config", "check"])
            .current_dir(repo)
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("ANTHROPIC_BASE_URL");
        if let Some(key) = key {
            command.env("ANTHROPIC_API_KEY", key);
        }
        command.output().unwrap()
    };
    let with_key = check(Some("sk-ant-x"));
    assert!(
        with_key.status.success(),
        "{}",
        String::from_utf8_lossy(&with_key.stderr)
    );
    // Without the key the models need, the check fails and names it.
    let without = check(None);
    assert_eq!(without.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&without.stderr).contains("$ANTHROPIC_API_KEY is not set"));
    let workflow = repo.join(".github/workflows/baton.yml");
    std::fs::write(&workflow, "# mine\n").unwrap();
    let again = init(&[]);
    assert_eq!(again.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("baton.yml") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&workflow).unwrap(), "# mine\n");
    let forced = init(&["--force", "--forge", "forgejo"]);
    assert!(forced.status.success());
    assert!(repo.join(".forgejo/workflows/baton.yml").exists());
    let bad = init(&["--forge", "gitlab"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--forge gitlab"));
}

// ---- the action's install script ----

/// Serves `files` (path → bytes) on loopback; anything else is a 404.
fn serve(files: BTreeMap<String, Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let mut stream = stream;
            match files.get(&path) {
                Some(body) => {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(body);
                }
                None => {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
            }
            let _ = reader.read(&mut [0; 0]);
        }
    });
    format!("http://{address}/releases")
}

fn target() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "aarch64-unknown-linux-musl",
        _ => "x86_64-unknown-linux-musl",
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Runs scripts/install.sh for `v9.9.9` from `url`, with `pinned` as the
/// action's checksums file. Returns (exit code, stderr, installed binary).
fn install(url: &str, pinned: &str) -> (i32, String, Option<PathBuf>) {
    let directory = tempfile::tempdir().unwrap();
    let action = directory.path().join("action");
    std::fs::create_dir_all(action.join("scripts")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh"),
        action.join("scripts/install.sh"),
    )
    .unwrap();
    std::fs::write(action.join("scripts/checksums.txt"), pinned).unwrap();
    let temp = directory.path().join("temp");
    std::fs::create_dir_all(&temp).unwrap();
    let output = directory.path().join("output");
    let run = std::process::Command::new("bash")
        .arg(action.join("scripts/install.sh"))
        .env("BATON_VERSION", "v9.9.9")
        .env("BATON_RELEASE_URL", url)
        .env("GITHUB_ACTION_PATH", &action)
        .env("RUNNER_TEMP", &temp)
        .env("GITHUB_OUTPUT", &output)
        .output()
        .unwrap();
    let installed = crate::support::runner::parse_outputs(
        &std::fs::read_to_string(&output).unwrap_or_default(),
    )
    .get("path")
    .map(PathBuf::from)
    .filter(|path| path.exists())
    .map(|path| {
        let kept = std::env::temp_dir().join(format!("baton-installed-{}", std::process::id()));
        std::fs::copy(&path, &kept).unwrap();
        kept
    });
    let binary_left = temp.join("baton-install/bin/baton").exists();
    assert_eq!(
        binary_left,
        installed.is_some(),
        "a binary is installed only when the step succeeds"
    );
    (
        run.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&run.stderr).into_owned(),
        installed,
    )
}

#[test]
fn the_install_script_verifies_the_release_before_installing_it() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::copy(BATON, directory.path().join("baton")).unwrap();
    let archive_path = directory.path().join("baton.tar.gz");
    let tar = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&archive_path)
        .arg("-C")
        .arg(directory.path())
        .arg("baton")
        .status()
        .unwrap();
    assert!(tar.success());
    let archive = std::fs::read(&archive_path).unwrap();
    let name = format!("baton-v9.9.9-{}.tar.gz", target());
    let good = sha256(&archive);
    let files = |sum: &str| {
        BTreeMap::from([
            (format!("/releases/v9.9.9/{name}"), archive.clone()),
            (
                format!("/releases/v9.9.9/{name}.sha256"),
                format!("{sum}  {name}\n").into_bytes(),
            ),
        ])
    };

    let (code, stderr, installed) = install(&serve(files(&good)), "");
    assert_eq!(code, 0, "{stderr}");
    let installed = installed.expect("installed");
    let version = std::process::Command::new(&installed)
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("baton "));
    std::fs::remove_file(installed).unwrap();

    // A release whose sum does not match: nothing installed.
    let wrong = "0".repeat(64);
    let (code, stderr, installed) = install(&serve(files(&wrong)), "");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("expected") && stderr.contains(&wrong),
        "{stderr}"
    );
    assert!(installed.is_none());

    // The sum pinned in the action wins over the release's own.
    let (code, stderr, installed) = install(&serve(files(&good)), &format!("{wrong}  {name}\n"));
    assert_eq!(code, 1, "{stderr}");
    assert!(installed.is_none());

    // A plain-HTTP release address off this machine is refused.
    let (code, stderr, _) = install("http://example.com/releases", "");
    assert_eq!(code, 1);
    assert!(stderr.contains("https://"), "{stderr}");
}
