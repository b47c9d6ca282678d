//! Confinement, scope, and secrets.

use serde_json::json;

use crate::support::{TestContext, agent, all_files, call, happy_script, write};

#[test]
fn paths_out_of_the_tree_are_refused_and_reported_to_the_model() {
    let context = TestContext::new("");
    let outside = context.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("private.txt"), "outside the tree").unwrap();
    std::os::unix::fs::symlink(&outside, context.repo.join("escape")).unwrap();
    context.commit("a symlink that points out");
    let mut script = happy_script();
    script["implement"] = agent(vec![
        vec![call("read_file", json!({"path": "../outside/private.txt"}))],
        vec![call(
            "read_file",
            json!({"path": outside.join("private.txt").to_str().unwrap()}),
        )],
        vec![call("read_file", json!({"path": "escape/private.txt"}))],
        vec![write("escape/planted.txt", "x")],
        vec![write("lib.sh", "greet() { echo \"hello, world\"; }\n")],
    ]);
    context.script(&script);
    context.run_local().assert_code(0);
    let transcript = context.run_file("transcripts/implement-1.jsonl");
    assert!(transcript.contains("leaves the work tree"), "{transcript}");
    assert!(transcript.contains("is an absolute path"), "{transcript}");
    assert_eq!(
        transcript.matches("resolves outside the work tree").count(),
        2,
        "{transcript}"
    );
    assert!(
        !transcript.contains("outside the tree\""),
        "the outside file's content reached the model"
    );
    assert!(!outside.join("planted.txt").exists());
}

#[test]
fn a_patch_touching_a_denied_path_is_rejected_naming_it() {
    // The write tools refuse a denied path; a command can still change a
    // tracked file there, and the policy rejects the patch.
    let context = TestContext::new("");
    std::fs::create_dir_all(context.repo.join(".github/workflows")).unwrap();
    std::fs::write(
        context.repo.join(".github/workflows/release.yml"),
        "on: tag\n",
    )
    .unwrap();
    context.commit("a workflow");
    let mut script = happy_script();
    script["plan"][0]["calls"][0]["arguments"]["touchpoints"] =
        json!(["lib.sh", "tests/", ".github/"]);
    script["implement"] = agent(vec![vec![
        write("lib.sh", "greet() { echo \"hello, world\"; }\n"),
        call(
            "run",
            json!({"command": "echo 'on: push' > .github/workflows/release.yml"}),
        ),
    ]]);
    context.script(&script);
    let run = context.run_local();
    run.assert_code(1);
    assert!(
        run.stderr().contains(".github/workflows/release.yml"),
        "{}",
        run.stderr()
    );
    let evidence = context.evidence();
    assert_eq!(evidence["outcome"], "rejected");
    assert_eq!(
        evidence["scope"]["violations"][0]["path"],
        ".github/workflows/release.yml"
    );
    assert_eq!(evidence["scope"]["violations"][0]["rule"], "scope.deny");
}

#[test]
fn files_outside_the_plan_are_rejected() {
    let context = TestContext::new("");
    let mut script = happy_script();
    script["implement"] = agent(vec![vec![
        write("lib.sh", "greet() { echo \"hello, world\"; }\n"),
        write("docs/notes.md", "unplanned\n"),
    ]]);
    context.script(&script);
    context.run_local().assert_code(1);
    let evidence = context.evidence();
    assert_eq!(evidence["outcome"], "rejected");
    assert_eq!(evidence["scope"]["outside_plan"], json!(["docs/notes.md"]));
}

#[test]
fn planted_secrets_are_rejected_and_never_written_or_printed() {
    let held = "hunter2-deploy-credential-4711";
    let pattern = format!("ghp_{}", "Zq7".repeat(12));
    let context = TestContext::new("").env("DEPLOY_TOKEN", held);
    let mut script = happy_script();
    script["implement"] = agent(vec![
        vec![write(
            "lib.sh",
            &format!("greet() {{ echo \"hello, world\"; }}\nTOKEN={held}\nGH={pattern}\n"),
        )],
        vec![call(
            "run",
            json!({"command": "cat lib.sh; echo \"env: $DEPLOY_TOKEN\""}),
        )],
    ]);
    context.script(&script);
    let run = context.run_local();
    run.assert_code(1);
    let evidence = context.evidence();
    assert_eq!(evidence["outcome"], "rejected");
    let violation = evidence["scope"]["violations"][0].clone();
    assert_eq!(violation["path"], "lib.sh");
    assert_eq!(violation["rule"], "secret");
    for (path, text) in all_files(&context.run_dir) {
        assert!(
            !text.contains(held),
            "{} holds the secret value",
            path.display()
        );
        assert!(
            !text.contains(&pattern),
            "{} holds the planted token",
            path.display()
        );
    }
    for output in [run.stdout(), run.stderr()] {
        assert!(
            !output.contains(held) && !output.contains(&pattern),
            "{output}"
        );
    }
    // The agent's command ran without the variable, and said so.
    assert!(
        context
            .run_file("transcripts/implement-1.jsonl")
            .contains("env: \\n")
    );
}

#[test]
fn the_run_cannot_change_its_own_config() {
    let context = TestContext::new("");
    let mut script = happy_script();
    script["plan"][0]["calls"][0]["arguments"]["touchpoints"] = json!(["**"]);
    script["implement"] = agent(vec![vec![
        write("lib.sh", "greet() { echo \"hello, world\"; }\n"),
        call(
            "run",
            json!({"command": "echo '# gates removed' > baton.toml"}),
        ),
    ]]);
    context.script(&script);
    context.run_local().assert_code(1);
    let evidence = context.evidence();
    assert_eq!(evidence["outcome"], "rejected");
    assert_eq!(evidence["scope"]["violations"][0]["rule"], "protected");
}

#[test]
fn token_shaped_fixtures_in_the_repository_do_not_break_the_patch() {
    let context = TestContext::new("");
    let fixture = format!("ghp_{}", "F1x7ure".repeat(6));
    std::fs::write(
        context.repo.join("lib.sh"),
        format!("# scanner fixture: {fixture}\ngreet() {{ echo \"hello\"; }}\n"),
    )
    .unwrap();
    context.commit("a fixture next to the code");
    let mut script = happy_script();
    script["implement"] = agent(vec![vec![call(
        "edit_file",
        json!({"path": "lib.sh", "old": "echo \"hello\"", "new": "echo \"hello, world\""}),
    )]]);
    context.script(&script);
    context.run_local().assert_code(0);
    let patch = context.run_file("changes.patch");
    assert!(
        patch.contains(&fixture),
        "the repository's own context line was altered:\n{patch}"
    );
    assert_eq!(context.evidence()["outcome"], "done");
}

#[test]
fn a_write_to_a_denied_path_is_refused_at_the_tool_and_the_run_goes_on() {
    let context = TestContext::new("");
    let mut script = happy_script();
    script["implement"] = agent(vec![
        vec![write(".github/workflows/pwn.yml", "on: push\n")],
        vec![write("baton.toml", "[budget]\nmax_cost_usd = 1000.0\n")],
        vec![write("lib.sh", "greet() { echo \"hello, world\"; }\n")],
    ]);
    context.script(&script);
    context.run_local().assert_code(0);
    let transcript = context.run_file("transcripts/implement-1.jsonl");
    assert_eq!(
        transcript.matches("is out of bounds for this run").count(),
        2,
        "{transcript}"
    );
    assert!(!context.run_file("changes.patch").contains("pwn.yml"));
    assert_eq!(context.manifest()["outcome"], "done");
}
