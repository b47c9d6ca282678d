//! Model routing features: escalation, the adversarial spec pass, the review
//! panel, per-step implement, and external executors.

use serde_json::json;

use crate::support::{TestContext, agent, call, happy_script, read_json, reply, write};

fn review(verdict: &str, comment: &str) -> serde_json::Value {
    json!([reply(vec![call(
        "submit_review",
        json!({"verdict": verdict, "findings": [{"severity": "minor", "comment": comment}]})
    )])])
}

const PANEL: &str = r#"
[review]
panel = [
  { persona = "security", weight = 2.0 },
  { persona = "reliability", weight = 1.0 },
  { persona = "product", weight = 1.0 },
]
"#;

#[test]
fn the_review_panel_votes_by_weight_and_every_vote_is_evidence() {
    let context = TestContext::new(PANEL);
    let mut script = happy_script();
    script["review.security"] = review("approve", "no secrets handled");
    script["review.reliability"] = review("request_changes", "no error path for a missing lib.sh");
    script["review.product"] = review("approve", "does what the issue asks");
    context.script(&script);
    context.run_local().assert_code(0);
    let evidence = context.evidence();
    let votes = evidence["review"]["votes"].as_array().unwrap();
    let summary: Vec<(&str, f64, &str)> = votes
        .iter()
        .map(|vote| {
            (
                vote["persona"].as_str().unwrap(),
                vote["weight"].as_f64().unwrap(),
                vote["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("security", 2.0, "approve"),
            ("reliability", 1.0, "request_changes"),
            ("product", 1.0, "approve")
        ]
    );
    assert!(
        votes[1]["reason"]
            .as_str()
            .unwrap()
            .contains("no error path")
    );
    assert_eq!(evidence["review"]["verdict"], "approve");
    let markdown = context.run_file("evidence.md");
    assert!(
        markdown.contains("| reliability | 1 | request_changes |"),
        "{markdown}"
    );
}

#[test]
fn a_weighted_tie_is_not_an_approval() {
    let context = TestContext::new(PANEL);
    let mut script = happy_script();
    script["review.security"] = review("request_changes", "the key is logged");
    script["review.reliability"] = review("approve", "fine");
    script["review.product"] = review("approve", "fine");
    context.script(&script);
    context.run_local().assert_code(1);
    let evidence = context.evidence();
    assert_eq!(evidence["review"]["verdict"], "request_changes");
    assert_eq!(evidence["outcome"], "blocked");
}

#[test]
fn the_adversarial_pass_sends_its_findings_back_to_the_spec() {
    let context = TestContext::new("[phases.spec]\nadversarial = true\n");
    let mut script = happy_script();
    script["spec.adversarial"] = json!([reply(vec![call(
        "submit_findings",
        json!({"findings": [
            {"kind": "edge_case", "description": "greet with LANG unset prints nothing"},
            {"kind": "missing_acceptance", "description": "no criterion for a trailing newline"}
        ]})
    )])]);
    context.script(&script);
    context.run_local().assert_code(0);
    let evidence = context.evidence();
    let adversarial = evidence["adversarial"].as_array().unwrap();
    assert_eq!(adversarial.len(), 2);
    assert_eq!(adversarial[0]["kind"], "edge_case");
    let feedback = read_json(&context.run_dir.join("feedback/spec.json"));
    assert_eq!(feedback["attempts"][0]["verdict"], "adversarial");
    assert_eq!(feedback["attempts"][1]["verdict"], "pass");
    assert!(
        context
            .run_file("transcripts/spec-2.jsonl")
            .contains("greet with LANG unset prints nothing")
    );
    assert!(
        context
            .run_file("evidence.md")
            .contains("Adversarial review of the spec")
    );
    // It runs once: the second spec goes to the validator alone.
    assert!(
        !context
            .run_dir
            .join("transcripts/spec.adversarial-2.jsonl")
            .exists()
    );
}

#[test]
fn a_revise_escalates_the_next_attempt_to_the_configured_model() {
    let context = TestContext::new("[phases.spec]\nescalate = \"heavy\"\n");
    let mut script = happy_script();
    script["spec.validate#1"] = json!([reply(vec![call(
        "submit_verdict",
        json!({"verdict": "revise", "objections": ["too vague"]})
    )])]);
    context.script(&script);
    context.run_local().assert_code(0);
    let spec = &context.manifest()["phases"][1];
    assert_eq!(spec["model"], "fake:standard");
    assert!(
        spec["by_model"]["fake:heavy"]["tokens_in"]
            .as_u64()
            .unwrap()
            > 0,
        "{spec}"
    );
    assert!(
        context
            .run_file("transcripts/spec-2.jsonl")
            .contains("\"model\":\"fake:heavy\"")
    );
    assert!(
        context
            .run_file("transcripts/spec-1.jsonl")
            .contains("\"model\":\"fake:standard\"")
    );
}

#[test]
fn per_step_implement_runs_one_fresh_session_per_plan_step() {
    let context = TestContext::new("[phases.implement]\nper_step = true\n");
    let mut script = happy_script();
    script["implement#1"] = agent(vec![vec![write(
        "lib.sh",
        "greet() { echo \"hello, world\"; }\n",
    )]]);
    script["implement#2"] = agent(vec![]);
    context.script(&script);
    context.run_local().assert_code(0);
    let second = context.run_file("transcripts/implement-2.jsonl");
    assert!(
        second.contains("Your step (2 of 2)") && second.contains("change greet"),
        "{second}"
    );
    // A summary of the diff so far, not the first session's conversation.
    assert!(second.contains("`lib.sh` +1 −1"), "{second}");
    assert!(
        !second.contains("wrote 33 bytes"),
        "the first step's conversation leaked into the second"
    );
    assert_eq!(context.manifest()["phases"][5]["attempts"], 2);
}

#[test]
fn an_external_executor_edits_the_tree_is_verified_and_never_sees_tokens() {
    let directory = tempfile::tempdir().unwrap();
    let script_path = directory.path().join("fake-agent.sh");
    let env_dump = directory.path().join("env.txt");
    let prompt_copy = directory.path().join("prompt.md");
    std::fs::write(
        &script_path,
        "cp \"$1\" \"$2\"\nenv > \"$3\"\nprintf 'greet() { echo \"hello, world\"; }\\n' > lib.sh\necho edited lib.sh\n",
    )
    .unwrap();
    let config = format!(
        "[executor]\nkind = \"command\"\ncommand = \"sh {} {{prompt_file}} {} {}\"\nkey_env = \"FAKE_MODEL_KEY\"\ntimeout_s = 60\n[sandbox]\nwritable = [\"{}\"]\n",
        script_path.display(),
        prompt_copy.display(),
        env_dump.display(),
        directory.path().display()
    );
    let context = TestContext::new(&config)
        .env("FAKE_MODEL_KEY", "model-key-0123456789")
        .env("GITHUB_TOKEN", "ghs_forge-token-0123456789")
        .env("BATON_FORGE_TOKEN", "forge-token-abcdefghij")
        .env("ANTHROPIC_API_KEY", "sk-ant-unused-0123456789abcdef");
    context.script(&happy_script());
    context.run_local().assert_code(0);

    let environment = std::fs::read_to_string(&env_dump).unwrap();
    assert!(environment.contains("FAKE_MODEL_KEY=model-key-0123456789"));
    for leaked in [
        "GITHUB_TOKEN",
        "BATON_FORGE_TOKEN",
        "ANTHROPIC_API_KEY",
        "forge-token",
    ] {
        assert!(!environment.contains(leaked), "the executor saw {leaked}");
    }
    let prompt = std::fs::read_to_string(&prompt_copy).unwrap();
    assert!(
        prompt.contains("Implement the change now") && prompt.contains("# The spec"),
        "{prompt}"
    );

    let evidence = context.evidence();
    assert_eq!(evidence["outcome"], "done");
    assert_eq!(evidence["changed_files"][0]["path"], "lib.sh");
    assert_eq!(evidence["tests_first"]["green"], true);
    let transcript = context.run_file("transcripts/implement-1.jsonl");
    assert!(
        transcript.contains("\"executor\":\"command\"") && transcript.contains("edited lib.sh"),
        "{transcript}"
    );
    assert_eq!(context.manifest()["phases"][5]["model"], "executor:command");
}

#[test]
fn a_field_the_schema_does_not_name_is_dropped_not_refused() {
    let context = TestContext::new("");
    let mut script = happy_script();
    script["plan"][0]["calls"][0]["arguments"]["notes"] = json!("an extra field");
    context.script(&script);
    context.run_local().assert_code(0);
    let plan = read_json(&context.run_dir.join("plan.json"));
    assert!(plan.get("notes").is_none(), "{plan}");
    assert_eq!(context.manifest()["phases"][3]["attempts"], 1);
}

#[test]
fn a_validator_pass_with_objections_is_a_revise_that_carries_them() {
    let context = TestContext::new("");
    let mut script = happy_script();
    script["spec.validate#1"] = json!([reply(vec![call(
        "submit_verdict",
        json!({"verdict": "pass", "objections": ["acceptance names no exact output"]})
    )])]);
    context.script(&script);
    context.run_local().assert_code(0);
    let feedback = read_json(&context.run_dir.join("feedback/spec.json"));
    assert_eq!(feedback["attempts"][0]["verdict"], "revise");
    assert_eq!(feedback["attempts"][1]["verdict"], "pass");
    assert!(
        context
            .run_file("transcripts/spec-2.jsonl")
            .contains("acceptance names no exact output")
    );
}

#[test]
fn plan_touchpoints_that_name_nothing_in_the_repository_are_sent_back() {
    let context = TestContext::new("");
    let mut script = happy_script();
    let mut prose = script["plan"][0].clone();
    prose["calls"][0]["arguments"]["touchpoints"] = json!(["lib.sh", "run tests"]);
    script["plan#1"] = json!([prose]);
    context.script(&script);
    context.run_local().assert_code(0);
    let feedback = read_json(&context.run_dir.join("feedback/plan.json"));
    let first = feedback["attempts"][0]["objections"][0].as_str().unwrap();
    assert!(first.contains("touchpoint `run tests`"), "{first}");
    assert_eq!(feedback["attempts"][1]["verdict"], "pass");
}

#[test]
fn a_repeated_read_or_command_is_answered_from_its_first_result() {
    // The log is outside the work tree: the sandbox must let the command write it.
    let outside = tempfile::tempdir().unwrap();
    let log = outside.path().join("ran.log");
    let context = TestContext::new(&format!(
        "[sandbox]\nwritable = [\"{}\"]\n",
        outside.path().display()
    ));
    let command = format!("echo ran >> {}; echo once", log.display());
    let mut script = happy_script();
    script["implement"] = agent(vec![
        vec![call("run", json!({ "command": command }))],
        vec![call("run", json!({ "command": command }))],
        vec![call("read_file", json!({"path": "lib.sh"}))],
        vec![write("lib.sh", "greet() { echo \"hello, world\"; }\n")],
        vec![call("read_file", json!({"path": "lib.sh"}))],
    ]);
    context.script(&script);
    context.run_local().assert_code(0);
    let transcript = context.run_file("transcripts/implement-1.jsonl");
    assert_eq!(
        transcript.matches("this is its earlier answer").count(),
        1,
        "{transcript}"
    );
    let implement = context.manifest()["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|phase| phase["name"] == "implement")
        .cloned()
        .unwrap();
    assert_eq!(implement["repeated_calls"], 1, "counted");
    assert!(
        context
            .run_file("evidence.md")
            .contains("repeated 1 tool call"),
        "and told in the evidence"
    );
    // The second `run` never ran: one line in the log, from the first.
    let ran = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(ran.lines().count(), 1, "{ran}");
    // After the write, the read is real: the new text is in the transcript.
    assert!(transcript.contains("hello, world"));
}

#[test]
fn a_model_that_never_delivers_is_named_and_no_validator_is_blamed() {
    let context = TestContext::new("");
    let mut script = happy_script();
    let prose: Vec<serde_json::Value> = (0..12)
        .map(|index| json!({"text": format!("I think the spec is fine ({index})."), "usage": {"input": 100, "output": 10}}))
        .collect();
    script["spec"] = json!(prose);
    script["spec.validate"] = json!([]);
    context.script(&script);
    context.run_local().assert_code(1);
    let reason = context.manifest()["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("the model delivered no spec"), "{reason}");
    assert!(reason.contains("no validator was asked"), "{reason}");
    assert!(!reason.contains("validator still objected"), "{reason}");
}
