//! Runs that must not end `done`: each stops with its outcome, exit 1, and
//! evidence that says why.

use serde_json::json;

use crate::support::{TestContext, agent, call, happy_script, reply, revise, write};

#[test]
fn validator_exhaustion_blocks_with_every_objection_carried_forward() {
    let context = TestContext::new("[phases.spec]\nattempts = 3\n");
    let mut script = happy_script();
    script["spec.validate#1"] = revise("objection-one: acceptance is vague");
    script["spec.validate#2"] = revise("objection-two: non-goals missing");
    script["spec.validate#3"] = revise("objection-three: still vague");
    context.script(&script);
    let run = context.run_local();
    run.assert_code(1);
    assert!(run.stderr().contains("blocked"), "{}", run.stderr());
    let manifest = context.manifest();
    assert_eq!(manifest["outcome"], "blocked");
    assert_eq!(manifest["phases"][1]["attempts"], 3);
    // The third attempt saw both earlier objections.
    let third = context.run_file("transcripts/spec-3.jsonl");
    assert!(
        third.contains("objection-one") && third.contains("objection-two"),
        "{third}"
    );
    let feedback = crate::support::read_json(&context.run_dir.join("feedback/spec.json"));
    assert_eq!(feedback["attempts"].as_array().unwrap().len(), 3);
    let evidence = context.evidence();
    assert_eq!(evidence["outcome"], "blocked");
    assert!(
        evidence["needs_human"][0]
            .as_str()
            .unwrap()
            .contains("validator")
    );
    // Nothing after the spec ran, and publish finalised the run.
    assert_eq!(context.phase_names(), ["intake", "spec", "publish"]);
}

#[test]
fn tests_that_pass_on_base_are_not_red_and_never_green() {
    let context = TestContext::new("[phases.tests]\nattempts = 2\n");
    let mut script = happy_script();
    script["tests"] = agent(vec![vec![write("tests/greet_test.sh", "exit 0\n")]]);
    context.script(&script);
    context.run_local().assert_code(1);
    let evidence = context.evidence();
    assert_eq!(evidence["outcome"], "blocked");
    assert_eq!(evidence["tests_first"]["red"], false);
    assert_eq!(evidence["tests_first"]["green"], false);
    assert!(
        evidence["tests_first"]["note"]
            .as_str()
            .unwrap()
            .contains("not counted green")
    );
    // The second attempt was told why the first was refused.
    assert!(
        context
            .run_file("transcripts/tests-2.jsonl")
            .contains("PASS on the base commit")
    );
    let markdown = context.run_file("evidence.md");
    assert!(
        markdown.contains("red on the base commit: ❌ no"),
        "{markdown}"
    );
}

fn failing_repairs_context(max_repairs: u32) -> TestContext {
    let context = TestContext::new(&format!("[budget]\nmax_repairs = {max_repairs}\n"));
    let mut script = happy_script();
    script["implement"] = agent(vec![vec![write(
        "lib.sh",
        "greet() { echo \"hello world\"; }\n",
    )]]);
    // Each repair fails differently, so only max_repairs can stop them.
    script["repair#1"] = agent(vec![vec![write(
        "lib.sh",
        "greet() { echo \"hello, wrld\"; }\n",
    )]]);
    script["repair#2"] = agent(vec![vec![write(
        "lib.sh",
        "greet() { echo \"hello; world\"; }\n",
    )]]);
    context.script(&script);
    context
}

#[test]
fn gates_still_red_after_max_repairs_fail_the_run_with_evidence() {
    let context = failing_repairs_context(2);
    context.run_local().assert_code(1);
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
            "repair",
            "verify",
            "repair",
            "verify",
            "publish"
        ]
    );
    let evidence = context.evidence();
    assert_eq!(evidence["outcome"], "failed");
    assert!(
        evidence["reason"].as_str().unwrap().contains("max_repairs"),
        "{}",
        evidence["reason"]
    );
    assert_eq!(evidence["gates"][0]["status"], "failed");
    assert_eq!(evidence["tests_first"]["green"], false);
    assert_eq!(evidence["repairs"].as_array().unwrap().len(), 2);
    // The second repair was handed the first one's history and the gate log.
    let second = context.run_file("transcripts/repair-2.jsonl");
    assert!(second.contains("repair 1 after test failed"), "{second}");
    assert!(second.contains("greet said: hello, wrld"), "{second}");
    assert!(
        context
            .run_file("gates/test.log")
            .contains("greet said: hello; world")
    );
}

#[test]
fn the_same_failure_twice_stops_repairs_early() {
    let context = TestContext::new("[budget]\nmax_repairs = 5\n");
    let mut script = happy_script();
    script["implement"] = agent(vec![vec![write(
        "lib.sh",
        "greet() { echo \"hello world\"; }\n",
    )]]);
    // A repair that changes nothing that matters: the failure comes back as it was.
    script["repair"] = agent(vec![vec![write(
        "lib.sh",
        "greet() { echo \"hello world\";  }\n",
    )]]);
    context.script(&script);
    context.run_local().assert_code(1);
    let evidence = context.evidence();
    assert_eq!(evidence["outcome"], "failed");
    assert!(
        evidence["reason"]
            .as_str()
            .unwrap()
            .contains("twice in a row"),
        "{}",
        evidence["reason"]
    );
    assert_eq!(evidence["repairs"].as_array().unwrap().len(), 1);
}

#[test]
fn budget_exhausted_mid_run_stops_with_evidence() {
    // Each reply costs 1,100 tokens. Intake and the spec fit; the validator's
    // request, projected before it is sent, would cross the limit.
    let context = TestContext::new("[budget]\nmax_tokens = 3000\n");
    context.script(&happy_script());
    let run = context.run_local();
    run.assert_code(1);
    let evidence = context.evidence();
    assert_eq!(evidence["outcome"], "budget_exceeded");
    let reason = evidence["reason"].as_str().unwrap();
    assert!(
        reason.contains("budget.max_tokens") && reason.contains("projected"),
        "{reason}"
    );
    let spent = evidence["budget"]["tokens_in"].as_u64().unwrap()
        + evidence["budget"]["tokens_out"].as_u64().unwrap();
    assert_eq!(
        spent, 2200,
        "the projection stops the run before the limit is crossed"
    );
    assert!(context.run_file("evidence.md").contains("budget_exceeded"));
    assert!(run.stderr().contains("evidence"), "{}", run.stderr());
}

#[test]
fn a_review_that_requests_changes_blocks() {
    let context = TestContext::new("");
    let mut script = happy_script();
    script["review"] = json!([reply(vec![call(
        "submit_review",
        json!({"verdict": "request_changes", "findings": [
            {"severity": "major", "path": "lib.sh", "comment": "greet ignores its argument"}
        ]})
    )])]);
    context.script(&script);
    context.run_local().assert_code(1);
    let evidence = context.evidence();
    assert_eq!(evidence["outcome"], "blocked");
    assert!(
        evidence["risks"]
            .to_string()
            .contains("greet ignores its argument")
    );
}

#[test]
fn sloppy_replies_are_answered_and_counted_as_turns() {
    let context = TestContext::new("");
    let mut script = happy_script();
    script["spec"] = json!([
        {"text": "Sure! Here is the spec in prose.", "usage": {"input": 10, "output": 10}},
        reply(vec![call("no_such_tool", json!({}))]),
        reply(vec![call("submit_spec", json!({"summary": "x"}))]),
        {"text": "The spec is as follows: objectives are", "stop": "max_tokens", "usage": {"input": 10, "output": 10}},
        {"usage": {"input": 10, "output": 0}},
        script["spec"][0].clone(),
    ]);
    context.script(&script);
    context.run_local().assert_code(0);
    let transcript = context.run_file("transcripts/spec-1.jsonl");
    assert!(transcript.contains("prose alone does nothing"));
    assert!(transcript.contains("cut off at the token limit"));
    assert_eq!(
        transcript.lines().count(),
        6,
        "every sloppy reply counted as a turn"
    );
    assert!(transcript.contains("there is no tool `no_such_tool`"));
    assert!(transcript.contains("`objectives` is required"));
}

#[test]
fn the_tests_phase_writes_only_test_files_and_red_comes_from_the_new_tests() {
    let context = TestContext::new("[phases.tests]\nattempts = 2\n");
    let mut script = happy_script();
    // Attempt 1: the test, plus a rewrite of the code under test through
    // write_file (refused) and through a shell command (sent back).
    script["tests#1"] = agent(vec![vec![
        write("tests/greet_test.sh", crate::support::GOOD_TEST),
        write("lib.sh", "greet() { exit 1; }\n"),
        call(
            "run",
            json!({"command": "echo 'greet() { exit 1; }' > lib.sh"}),
        ),
    ]]);
    script["tests#2"] = agent(vec![vec![write(
        "tests/greet_test.sh",
        crate::support::GOOD_TEST,
    )]]);
    context.script(&script);
    context.run_local().assert_code(0);
    let first = context.run_file("transcripts/tests-1.jsonl");
    assert!(first.contains("writes only test files"), "{first}");
    let second = context.run_file("transcripts/tests-2.jsonl");
    assert!(
        second.contains("lib.sh, which is not test files"),
        "{second}"
    );
    let tests = crate::support::read_json(&context.run_dir.join("tests.json"));
    assert_eq!(tests["red"], true);
    let files: Vec<&str> = tests["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file[0].as_str().unwrap())
        .collect();
    assert_eq!(files, ["tests/greet_test.sh"]);
    assert_eq!(context.evidence()["outcome"], "done");
}

#[test]
fn a_base_that_fails_its_gates_blocks_the_tests_phase() {
    let context = TestContext::new("");
    std::fs::write(context.repo.join("tests/broken_test.sh"), "exit 1\n").unwrap();
    context.commit("a broken test on the base");
    context.script(&happy_script());
    context.run_local().assert_code(1);
    let manifest = context.manifest();
    assert_eq!(manifest["outcome"], "blocked");
    assert!(
        manifest["reason"]
            .as_str()
            .unwrap()
            .contains("base commit fails required gate(s) test"),
        "{}",
        manifest["reason"]
    );
}

#[test]
fn a_tests_phase_that_writes_no_test_says_so() {
    let context = TestContext::new("[phases.tests]\nattempts = 2\n");
    let mut script = happy_script();
    script["tests"] = agent(vec![vec![]]);
    context.script(&script);
    context.run_local().assert_code(1);
    let reason = context.manifest()["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("no usable test was written in 2 attempt(s)"),
        "{reason}"
    );
    assert!(reason.contains("wrote no test at all"), "{reason}");
}

#[test]
fn a_tests_phase_that_breaks_an_existing_test_is_sent_back_so_red_comes_from_new_tests() {
    let context = TestContext::new("[phases.tests]\nattempts = 2\n");
    std::fs::write(
        context.repo.join("tests/hello_test.sh"),
        ". ./lib.sh\necho checking hello\n[ -n \"$(greet)\" ] || exit 1\n",
    )
    .unwrap();
    context.commit("an existing test");
    let mut script = happy_script();
    // Attempt 1 rewrites the existing test so that it fails: the gates
    // would go red without any new test failing.
    script["tests#1"] = agent(vec![vec![write("tests/hello_test.sh", "exit 1\n")]]);
    script["tests#2"] = agent(vec![vec![write(
        "tests/greet_test.sh",
        crate::support::GOOD_TEST,
    )]]);
    context.script(&script);
    context.run_local().assert_code(0);
    let second = context.run_file("transcripts/tests-2.jsonl");
    assert!(
        second.contains("removed or changed existing lines in tests/hello_test.sh"),
        "{second}"
    );
    let tests = crate::support::read_json(&context.run_dir.join("tests.json"));
    assert_eq!(tests["red"], true);
    assert_eq!(tests["attempts"], 2);
    assert_eq!(context.evidence()["outcome"], "done");
}
