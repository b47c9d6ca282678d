//! Each of the four routes, end to end, and how the route is chosen.

use crate::support::{TestContext, happy_script};

#[test]
fn feature_route_chosen_by_the_model_runs_every_phase() {
    let context = TestContext::new("");
    context.script(&happy_script());
    context.run_local().assert_code(0);
    assert_eq!(
        context.phase_names(),
        [
            "intake",
            "spec",
            "design",
            "plan",
            "tests",
            "implement",
            "verify",
            "review",
            "publish"
        ]
    );
    let manifest = context.manifest();
    assert_eq!(manifest["route"], "feature");
    assert!(
        manifest["route_reason"]
            .as_str()
            .unwrap()
            .starts_with("model:"),
        "{}",
        manifest["route_reason"]
    );
    let evidence = context.evidence();
    assert_eq!(evidence["outcome"], "done");
    assert_eq!(evidence["tests_first"]["red"], true);
    assert_eq!(evidence["tests_first"]["green"], true);
    assert_eq!(evidence["gates"][0]["status"], "passed");
    let markdown = context.run_file("evidence.md");
    assert!(
        markdown.starts_with("<!-- baton:issue=7 -->\n"),
        "{markdown}"
    );
}

#[test]
fn hotfix_route_from_a_real_github_labeled_payload() {
    // The webhook payload of an `issues` `labeled` event, label `bug`.
    let context = TestContext::new("");
    context.script(&happy_script());
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/github-events/issues.labeled.json"
    );
    context
        .baton(&[
            "run",
            "--local",
            "--issue-file",
            fixture,
            "--run-dir",
            context.run_dir.to_str().unwrap(),
        ])
        .assert_code(0);
    assert_eq!(
        context.phase_names(),
        [
            "intake",
            "spec",
            "tests",
            "implement",
            "verify",
            "review",
            "publish"
        ]
    );
    let manifest = context.manifest();
    assert_eq!(manifest["route"], "hotfix");
    assert_eq!(manifest["issue"]["number"], 1);
    assert_eq!(manifest["branch"], "baton/issue-1");
    assert!(
        manifest["route_reason"]
            .as_str()
            .unwrap()
            .contains("label `bug`")
    );
    // No model was asked to route: the label decided.
    assert!(!context.run_dir.join("transcripts/intake-1.jsonl").exists());
    let ticket = crate::support::read_json(&context.run_dir.join("ticket.json"));
    assert_eq!(ticket["untrusted"], true);
}

#[test]
fn chore_route_has_no_spec_and_no_tests_first() {
    let context = TestContext::new("");
    context.issue_with_labels(&["chore"]);
    context.script(&happy_script());
    context.run_local().assert_code(0);
    assert_eq!(
        context.phase_names(),
        ["intake", "plan", "implement", "verify", "review", "publish"]
    );
    let evidence = context.evidence();
    assert_eq!(evidence["route"], "chore");
    assert_eq!(evidence["tests_first"]["red"], serde_json::Value::Null);
    assert_eq!(evidence["outcome"], "done");
}

#[test]
fn epic_route_splits_into_children() {
    let context = TestContext::new("");
    context.issue_with_labels(&["epic"]);
    context.script(&happy_script());
    context.run_local().assert_code(0);
    assert_eq!(
        context.phase_names(),
        ["intake", "spec", "design", "split", "publish"]
    );
    let evidence = context.evidence();
    assert_eq!(evidence["children"].as_array().unwrap().len(), 2);
    assert!(context.run_file("evidence.md").contains("Part two"));
    assert!(context.run_file("children.md").contains("## 1. Part one"));
}

#[test]
fn route_flag_overrides_labels_and_skipped_phases_exit_zero() {
    let context = TestContext::new("");
    context.issue_with_labels(&["bug"]);
    context.script(&happy_script());
    let issue = context.issue.to_str().unwrap();
    context.intake(&["--route", "chore"]).assert_code(0);
    assert_eq!(context.manifest()["route"], "chore");
    let skipped = context.phase("spec");
    skipped.assert_code(0);
    assert!(skipped.stderr().contains("skipped"), "{}", skipped.stderr());
    let unknown = context.baton(&[
        "phase",
        "intake",
        "--issue-file",
        issue,
        "--run-dir",
        "elsewhere",
        "--route",
        "sideways",
    ]);
    unknown.assert_code(2);
    assert!(unknown.stderr().contains("--route"), "{}", unknown.stderr());
}

#[test]
fn repository_conventions_reach_the_model() {
    let context = TestContext::new("");
    std::fs::write(
        context.repo.join("AGENTS.md"),
        "Always write POSIX sh, never bash.\n",
    )
    .unwrap();
    context.commit("conventions");
    context.script(&happy_script());
    context.run_local().assert_code(0);
    assert!(
        context
            .run_file("transcripts/spec-1.jsonl")
            .contains("Always write POSIX sh, never bash.")
    );
    assert!(
        context
            .run_file("transcripts/implement-1.jsonl")
            .contains("Always write POSIX sh, never bash.")
    );
}

#[test]
fn run_works_without_local_which_is_its_only_mode() {
    let context = TestContext::new("");
    context.script(&crate::support::happy_script());
    context.issue_with_labels(&["chore"]);
    let run = context.baton(&[
        "run",
        "--issue-file",
        context.issue.to_str().unwrap(),
        "--run-dir",
        context.run_dir.to_str().unwrap(),
    ]);
    run.assert_code(0);
    assert_eq!(context.manifest()["outcome"], "done");
}
