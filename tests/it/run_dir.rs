//! The run directory as CI hands it from job to job.

use crate::support::{TestContext, happy_script};

fn started(context: &TestContext) {
    context.script(&happy_script());
    context.intake(&[]).assert_code(0);
    context.phase("spec").assert_code(0);
}

#[test]
fn a_tampered_artifact_is_refused_naming_the_file() {
    let context = TestContext::new("");
    started(&context);
    let spec = context.run_dir.join("spec.md");
    std::fs::write(&spec, "# Spec\n\nDo something else entirely.\n").unwrap();
    let manifest_before = context.run_file("manifest.json");
    let run = context.phase("design");
    run.assert_code(2);
    assert!(run.stderr().contains("spec.md"), "{}", run.stderr());
    assert!(run.stderr().contains("tampered"), "{}", run.stderr());
    // Nothing already written was touched.
    assert_eq!(context.run_file("manifest.json"), manifest_before);
}

#[test]
fn a_missing_artifact_is_refused_naming_the_file() {
    let context = TestContext::new("");
    started(&context);
    std::fs::remove_file(context.run_dir.join("ticket.json")).unwrap();
    let run = context.phase("design");
    run.assert_code(2);
    assert!(run.stderr().contains("ticket.json"), "{}", run.stderr());
}

#[test]
fn a_finished_phase_rerun_is_a_no_op_and_force_reruns_it() {
    let context = TestContext::new("");
    started(&context);
    let before = context.run_file("manifest.json");
    let run = context.phase("spec");
    run.assert_code(0);
    assert!(
        run.stderr().contains("already finished"),
        "{}",
        run.stderr()
    );
    assert_eq!(context.run_file("manifest.json"), before);

    let run_dir = context.run_dir.to_str().unwrap();
    context
        .baton(&["phase", "spec", "--run-dir", run_dir, "--force"])
        .assert_code(0);
    let specs = context
        .phase_names()
        .iter()
        .filter(|name| *name == "spec")
        .count();
    assert_eq!(specs, 2);
}

#[test]
fn phases_out_of_order_and_bad_usage_exit_two() {
    let context = TestContext::new("");
    started(&context);
    let run = context.phase("implement");
    run.assert_code(2);
    assert!(
        run.stderr().contains("next phase is design"),
        "{}",
        run.stderr()
    );
    context.phase("teleport").assert_code(2);
    context
        .baton(&[
            "phase",
            "spec",
            "--run-dir",
            context.path().join("nothing").to_str().unwrap(),
        ])
        .assert_code(2);
    context
        .baton(&["run", "--local", "--bogus-flag"])
        .assert_code(2);
}

#[test]
fn status_reports_the_run_as_json_on_stdout() {
    let context = TestContext::new("");
    started(&context);
    let run = context.baton(&[
        "status",
        "--run-dir",
        context.run_dir.to_str().unwrap(),
        "--json",
    ]);
    run.assert_code(0);
    let status: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(status["outcome"], "running");
    assert_eq!(status["next"], "design");
    assert_eq!(status["phases"][1]["name"], "spec");
}

#[test]
fn status_prints_its_table_on_stdout_so_it_can_be_piped() {
    let context = TestContext::new("");
    started(&context);
    let run = context.baton(&["status", "--run-dir", context.run_dir.to_str().unwrap()]);
    run.assert_code(0);
    let table = run.stdout();
    assert!(table.contains("phase") && table.contains("spec"), "{table}");
    assert!(table.contains("outcome running"), "{table}");
    assert!(!run.stderr().contains("spec"), "the table is not on stderr");
}

#[test]
fn status_shows_how_long_a_running_phase_has_run() {
    let context = TestContext::new("");
    started(&context);
    let path = context.run_dir.join("manifest.json");
    let mut manifest = context.manifest();
    let mut running = manifest["phases"][1].clone();
    running["name"] = serde_json::json!("design");
    running["status"] = serde_json::json!("running");
    running["wall_s"] = serde_json::json!(0.0);
    running["finished_at"] = serde_json::Value::Null;
    let two_minutes_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
    running["started_at"] = serde_json::json!(baton::clock::format_rfc3339(two_minutes_ago));
    manifest["phases"].as_array_mut().unwrap().push(running);
    std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    let run = context.baton(&["status", "--run-dir", context.run_dir.to_str().unwrap()]);
    run.assert_code(0);
    let line = run
        .stdout()
        .lines()
        .find(|line| line.starts_with("design"))
        .unwrap_or_default()
        .to_owned();
    let seconds: f64 = line
        .split_whitespace()
        .last()
        .and_then(|time| time.trim_end_matches('s').parse().ok())
        .unwrap_or(0.0);
    assert!(seconds >= 119.0, "{line}");
}
