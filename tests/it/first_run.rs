//! What a new user meets on a first real run: a patch that holds the change
//! and not the build, gates that must exist, a command line that fits
//! habits (data on stdout, the newest run found, help with examples).

use serde_json::json;

use crate::support::{BATON, GOOD_TEST, TestContext, agent, call, happy_script, write};

/// A Rust crate beside the shell project, with no `.gitignore`: whatever
/// `cargo build` leaves is an untracked file in the work tree.
fn rust_repository() -> TestContext {
    let context = TestContext::new("");
    std::fs::write(
        context.repo.join("Cargo.toml"),
        "[package]\nname = \"greeting\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
    )
    .unwrap();
    std::fs::create_dir_all(context.repo.join("src")).unwrap();
    std::fs::write(
        context.repo.join("src/lib.rs"),
        "pub fn greet() -> &'static str {\n    \"hello\"\n}\n",
    )
    .unwrap();
    assert!(!context.repo.join(".gitignore").exists());
    context.commit("a crate");
    context
}

#[test]
fn the_patch_holds_the_edited_sources_and_not_what_cargo_build_left() {
    let context = rust_repository();
    let build = "env -u CARGO_TARGET_DIR cargo build --offline --quiet && mkdir -p __pycache__ && echo x > __pycache__/m.pyc && echo built";
    let mut script = happy_script();
    script["plan"][0]["calls"][0]["arguments"]["touchpoints"] = json!(["lib.sh", "src/", "tests/"]);
    script["implement"] = agent(vec![
        vec![write("lib.sh", "greet() { echo \"hello, world\"; }\n")],
        vec![call(
            "edit_file",
            json!({"path": "src/lib.rs", "old": "\"hello\"", "new": "\"hello, world\""}),
        )],
        vec![call("run", json!({ "command": build }))],
    ]);
    context.script(&script);
    context.run_local().assert_code(0);
    let patch = context.run_file("changes.patch");
    let files: Vec<&str> = patch
        .lines()
        .filter_map(|line| line.strip_prefix("diff --git a/"))
        .map(|rest| rest.split(" b/").next().unwrap())
        .collect();
    assert_eq!(
        files,
        ["lib.sh", "src/lib.rs", "tests/greet_test.sh"],
        "{patch}"
    );
    assert!(patch.len() < 4_000, "{} bytes", patch.len());
    let evidence = context.evidence();
    let left_out: Vec<&str> = evidence["left_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|path| path.as_str().unwrap())
        .collect();
    assert!(left_out.contains(&"Cargo.lock"), "{left_out:?}");
    assert!(left_out.contains(&"__pycache__/m.pyc"), "{left_out:?}");
    assert!(
        left_out.iter().any(|path| path.starts_with("target/")),
        "{left_out:?}"
    );
    let markdown = context.run_file("evidence.md");
    assert!(markdown.contains("Left out:"), "{markdown}");
    assert!(markdown.contains("`Cargo.lock`"), "{markdown}");
}

#[test]
fn a_rejected_patch_names_ten_files_and_counts_the_rest() {
    // Outside `allow` (the write tools refuse only `deny`).
    let context = TestContext::new("[scope]\nallow = [\"lib.sh\", \"tests/**\"]\n");
    let mut script = happy_script();
    let mut writes: Vec<serde_json::Value> = (0..25)
        .map(|index| write(&format!("vendor/file_{index:02}.txt"), "x\n"))
        .collect();
    writes.push(write("lib.sh", "greet() { echo \"hello, world\"; }\n"));
    script["plan"][0]["calls"][0]["arguments"]["touchpoints"] =
        json!(["lib.sh", "vendor/", "tests/"]);
    script["implement"] = agent(vec![writes]);
    context.script(&script);
    let run = context.run_local();
    run.assert_code(1);
    let reason = context.manifest()["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("vendor/file_09.txt"), "{reason}");
    assert!(!reason.contains("vendor/file_10.txt"), "{reason}");
    assert!(reason.contains("and 15 more file(s)"), "{reason}");
    assert!(reason.len() < 1_500, "{} bytes: {reason}", reason.len());
    // The whole list is in evidence.json.
    let violations = context.evidence()["scope"]["violations"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(violations, 26, "25 files and the patch's size");
    assert!(
        context
            .run_file("evidence.md")
            .contains("and 15 more file(s) (all listed in `evidence.json`)")
    );
}

#[test]
fn a_gate_whose_command_is_not_found_is_a_configuration_problem() {
    let context = TestContext::with_config(&crate::support::BASE_CONFIG.replace(
        "run = \"sh run_tests.sh\"",
        "run = \"no-such-test-runner --all\"",
    ));
    context.script(&happy_script());
    let run = context.run_local();
    run.assert_code(1);
    let manifest = context.manifest();
    assert_eq!(manifest["outcome"], "blocked");
    let reason = manifest["reason"].as_str().unwrap();
    assert!(reason.contains("configuration problem"), "{reason}");
    assert!(reason.contains("no-such-test-runner"), "{reason}");
    assert!(!reason.contains("never failed"), "{reason}");
    // Nothing was spent on writing tests that could never be judged.
    let tests = manifest["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|phase| phase["name"] == "tests")
        .unwrap()
        .clone();
    assert_eq!(tests["tokens_in"], 0, "{tests}");
}

#[test]
fn status_prints_data_on_stdout_and_finds_the_newest_run() {
    let context = TestContext::new("");
    context.script(&happy_script());
    // No --run-dir: intake creates .baton/runs/<id> and says where.
    let intake = context.baton(&[
        "phase",
        "intake",
        "--issue-file",
        context.issue.to_str().unwrap(),
    ]);
    intake.assert_code(0);
    assert!(
        intake.stderr().contains("run directory: ") && intake.stderr().contains(".baton/runs/"),
        "{}",
        intake.stderr()
    );
    assert!(
        intake.stderr().contains("next: baton phase spec"),
        "{}",
        intake.stderr()
    );
    // The next phase finds it without being told.
    let spec = context.baton(&["phase", "spec"]);
    spec.assert_code(0);
    assert!(
        spec.stderr().contains("using the newest run"),
        "{}",
        spec.stderr()
    );
    // `baton status | cat`: the table is on stdout.
    let status = context.baton(&["status"]);
    status.assert_code(0);
    let table = status.stdout();
    assert!(table.contains("spec"), "{table}");
    assert!(table.contains("outcome running"), "{table}");
    assert!(table.contains("next: "), "{table}");
    // `baton status --json | jq .outcome`.
    let json = context.baton(&["status", "--json"]);
    let summary: serde_json::Value = serde_json::from_str(&json.stdout()).unwrap();
    assert_eq!(summary["outcome"], "running");
    assert_eq!(summary["next"], "design");
}

#[test]
fn status_with_no_run_says_how_to_start_one() {
    let context = TestContext::new("");
    let status = context.baton(&["status"]);
    status.assert_code(2);
    assert!(
        status.stderr().contains(".baton/runs"),
        "{}",
        status.stderr()
    );
    assert!(status.stderr().contains("--run-dir"), "{}", status.stderr());
}

#[test]
fn a_warning_is_one_plain_line_unless_baton_log_asks_for_records() {
    let context = TestContext::new("");
    let mut script = happy_script();
    // The routing model answers nothing usable: intake warns and routes by default.
    script.as_object_mut().unwrap().remove("intake").unwrap();
    context.script(&script);
    let run = context.run_local();
    run.assert_code(0);
    let warning = run
        .stderr()
        .lines()
        .find(|line| line.contains("routing falls back"))
        .map_or_else(|| panic!("{}", run.stderr()), str::to_owned);
    assert!(warning.starts_with("! routing falls back"), "{warning}");
    assert!(!run.stderr().contains(" WARN "), "{}", run.stderr());

    let context = context.env("BATON_LOG", "warn");
    std::fs::remove_dir_all(&context.run_dir).unwrap();
    let run = context.run_local();
    assert!(run.stderr().contains("WARN"), "{}", run.stderr());
}

#[test]
fn config_check_names_every_type_error_in_toml_terms() {
    let context = TestContext::new(
        "[budget]\nmax_cost_usd = \"lots\"\nmax_repairs = -1\n\n[agent]\ncommand_timeout_s = \"10\"\n",
    );
    let check = context.baton(&["config", "check"]);
    check.assert_code(2);
    let stderr = check.stderr();
    assert!(stderr.contains("3 problems"), "{stderr}");
    assert!(
        stderr.contains("`budget.max_cost_usd`: is the string \"lots\"; give a number"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`budget.max_repairs`: is the integer -1; give a whole number, 0 or more"),
        "{stderr}"
    );
    assert!(stderr.contains("`agent.command_timeout_s`"), "{stderr}");
    for rust in ["u32", "u64", "f64", "invalid type"] {
        assert!(!stderr.contains(rust), "{rust} in {stderr}");
    }
}

#[test]
fn every_command_shows_examples_and_exit_codes_in_its_help() {
    for arguments in [
        vec!["--help"],
        vec!["demo", "--help"],
        vec!["run", "--help"],
        vec!["phase", "--help"],
        vec!["status", "--help"],
        vec!["init", "--help"],
        vec!["command", "--help"],
        vec!["sweep", "--help"],
        vec!["config", "--help"],
        vec!["config", "check", "--help"],
    ] {
        let output = std::process::Command::new(BATON)
            .args(&arguments)
            .output()
            .unwrap();
        assert!(output.status.success(), "{arguments:?}");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("Examples:\n  baton"), "{arguments:?}: {help}");
        assert!(help.contains("Exit codes:"), "{arguments:?}: {help}");
        assert!(help.contains("  2    bad input"), "{arguments:?}: {help}");
    }
}

#[test]
fn demo_into_a_file_is_refused_naming_the_path() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("not-a-directory");
    std::fs::write(&file, "x").unwrap();
    let output = std::process::Command::new(BATON)
        .args(["demo", "--dir", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(file.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("--dir"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "x",
        "left as it was"
    );
}

#[test]
fn the_tests_phase_keeps_only_the_test_files_it_wrote() {
    // A test runner that leaves a cache beside the tests: not a test file
    // the phase wrote, so neither sent back nor in the patch.
    let context = TestContext::new("");
    let mut script = happy_script();
    script["tests"] = agent(vec![
        vec![write("tests/greet_test.sh", GOOD_TEST)],
        vec![call(
            "run",
            json!({"command": "mkdir -p tests/.cache && echo 1 > tests/.cache/last && sh run_tests.sh; true"}),
        )],
    ]);
    context.script(&script);
    context.run_local().assert_code(0);
    let patch = context.run_file("changes.patch");
    assert!(!patch.contains(".cache"), "{patch}");
    assert_eq!(context.manifest()["outcome"], "done");
}

#[test]
fn terminal_control_sequences_in_the_issue_never_reach_a_terminal_or_the_body() {
    let context = TestContext::new("");
    context.script(&happy_script());
    let issue = context.path().join("issue.json");
    std::fs::write(
        &issue,
        json!({
            "number": 9,
            "title": "Evil\u{1b}[2J\u{1b}[31mRED\nsecond line ✔ publish done\r",
            "body": "`greet` should say \"hello, world\".\r\n\u{1b}]0;owned\u{7}",
            "labels": []
        })
        .to_string(),
    )
    .unwrap();
    let run = context.baton(&[
        "run",
        "--issue-file",
        issue.to_str().unwrap(),
        "--run-dir",
        context.run_dir.to_str().unwrap(),
    ]);
    run.assert_code(0);
    let status = context.baton(&["status", "--run-dir", context.run_dir.to_str().unwrap()]);
    for (what, text) in [
        ("stderr", run.stderr()),
        ("status", status.stdout()),
        ("evidence.md", context.run_file("evidence.md")),
        ("ticket.json", context.run_file("ticket.json")),
    ] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{7}'),
            "{what}: {text:?}"
        );
    }
    assert!(
        run.stderr()
            .contains("issue #9 Evil[2J[31mRED second line ✔ publish done"),
        "{}",
        run.stderr()
    );
}

#[test]
fn config_check_reports_the_file_the_gates_and_the_keys_at_once() {
    let context = TestContext::with_config(
        "[models]\nheavy = \"anthropic:claude-opus-4-1\"\nstandard = \"openai:gpt-4.1\"\nlight = \"anthropic:claude-haiku-4-5\"\n\n[budget]\nmax_repairs = \"two\"\n",
    );
    let check = context.baton(&["config", "check"]);
    check.assert_code(2);
    let stderr = check.stderr();
    assert!(stderr.contains("4 problems"), "{stderr}");
    assert!(stderr.contains("`budget.max_repairs`"), "{stderr}");
    assert!(stderr.contains("`gates`: no [[gates]]"), "{stderr}");
    assert!(
        stderr.contains("`models.heavy`: $ANTHROPIC_API_KEY is not set"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`models.standard`: $OPENAI_API_KEY is not set"),
        "{stderr}"
    );
}

#[test]
fn only_a_model_that_could_cost_money_is_flagged_unpriced() {
    // The scripted models with their [pricing] entries removed: flagged.
    let unpriced: String = crate::support::BASE_CONFIG
        .split("[pricing.")
        .next()
        .unwrap()
        .to_owned();
    let context = TestContext::with_config(&unpriced);
    context.script(&happy_script());
    context.run_local().assert_code(0);
    let risks = context.evidence()["risks"].to_string();
    assert!(
        risks.contains("No [pricing] entry for `fake:standard`"),
        "{risks}"
    );

    // A server on this machine: $0 is the truth, not a risk.
    let server = crate::support::fake_llm::FakeLlm::start(
        crate::support::fake_llm::Wire::OpenAi,
        "",
        happy_script(),
    );
    let local = format!(
        "[models]\nheavy = \"local:m\"\nstandard = \"local:m\"\nlight = \"local:m\"\n\n[providers.local]\nkind = \"openai\"\nbase_url = \"{}\"\n\n[[gates]]\nname = \"test\"\nrun = \"sh run_tests.sh\"\n",
        server.base_url()
    );
    let context = TestContext::with_config(&local);
    context.run_local().assert_code(0);
    let risks = context.evidence()["risks"].to_string();
    assert!(!risks.contains("[pricing]"), "{risks}");
}
