//! The run's life cycle from outside: every run ends, reruns and `--force`
//! are safe, interrupts and killed jobs leave a run that can be resumed, one
//! writer per run directory, and the config is the one pinned at intake.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{
    BASE_CONFIG, GOOD_TEST, Run, TestContext, agent, all_files, happy_script, write,
};

const BUGGY: &str = "greet() { echo \"hello world\"; }\n";

#[test]
fn a_repair_that_changes_nothing_ends_the_run_failed() {
    let context = TestContext::new("[budget]\nmax_repairs = 5\n");
    let mut script = happy_script();
    script["implement"] = agent(vec![vec![write("lib.sh", BUGGY)]]);
    // Every repair rewrites the same buggy line: the patch never changes.
    script["repair"] = agent(vec![vec![write("lib.sh", BUGGY)]]);
    context.script(&script);
    let run_dir = context.run_dir.to_str().unwrap();
    let issue = context.issue.to_str().unwrap();
    context
        .baton_within(
            120,
            &[
                "run",
                "--local",
                "--issue-file",
                issue,
                "--run-dir",
                run_dir,
            ],
        )
        .assert_code(1);
    let manifest = context.manifest();
    assert_eq!(manifest["outcome"], "failed");
    assert!(
        manifest["reason"].as_str().unwrap().contains("unchanged"),
        "{}",
        manifest["reason"]
    );
    assert_eq!(
        context
            .phase_names()
            .iter()
            .filter(|p| *p == "repair")
            .count(),
        1
    );
    assert_eq!(context.evidence()["outcome"], "failed");
}

#[test]
fn every_phase_of_an_ended_run_is_a_no_op_that_exits_zero() {
    let context = TestContext::new("");
    context.script(&happy_script());
    context.run_local().assert_code(0);
    let before = context.run_file("manifest.json");
    for phase in [
        "spec",
        "design",
        "plan",
        "tests",
        "implement",
        "verify",
        "repair",
        "review",
        "publish",
    ] {
        let run = context.phase(phase);
        run.assert_code(0);
        assert!(
            run.stderr().contains("the run has ended done")
                || run.stderr().contains("already finished")
                || run.stderr().contains("skipped"),
            "{phase}: {}",
            run.stderr()
        );
    }
    assert!(
        context
            .phase("spec")
            .stderr()
            .contains("the run has ended done")
    );
    assert_eq!(context.run_file("manifest.json"), before);
}

#[test]
fn a_failed_run_stays_ended_for_reruns() {
    let context = TestContext::new("[budget]\nmax_repairs = 0\n");
    let mut script = happy_script();
    script["implement"] = agent(vec![vec![write("lib.sh", BUGGY)]]);
    context.script(&script);
    context.run_local().assert_code(1);
    for phase in ["spec", "verify", "repair", "review", "publish"] {
        let run = context.phase(phase);
        run.assert_code(0);
        assert!(
            run.stderr().contains("the run has ended failed")
                || run.stderr().contains("already finished"),
            "{phase}: {}",
            run.stderr()
        );
    }
}

/// intake → plan → implement on the chore route, phase by phase.
fn up_to_verify(context: &TestContext) {
    context.script(&happy_script());
    context.intake(&["--route", "chore"]).assert_code(0);
    context.phase("plan").assert_code(0);
    context.phase("implement").assert_code(0);
}

#[test]
fn a_verify_that_cannot_run_its_gates_is_never_repaired() {
    let context = TestContext::new("");
    up_to_verify(&context);
    // No `sh` on PATH: the gates cannot even start.
    let run_dir = context.run_dir.to_str().unwrap();
    let mut command = context.command(&["phase", "verify", "--run-dir", run_dir]);
    command.env("PATH", context.path().join("no-bin"));
    let run = Run(command.output().unwrap());
    run.assert_code(2);
    assert!(
        run.stderr().contains("verify could not finish"),
        "{}",
        run.stderr()
    );
    assert_eq!(context.manifest()["outcome"], "running");
    let verify = context.manifest()["phases"][3].clone();
    assert_eq!(verify["status"], "failed");
    assert!(verify.get("passed").is_none(), "{verify}");

    let repair = context.phase("repair");
    repair.assert_code(2);
    assert!(
        repair.stderr().contains("next phase is verify"),
        "{}",
        repair.stderr()
    );
    assert!(!context.phase_names().contains(&"repair".to_owned()));
    let status = context.baton(&["status", "--run-dir", run_dir, "--json"]);
    let status: Value = serde_json::from_str(&status.stdout()).unwrap();
    assert_eq!(status["next"], "verify");

    // With the cause fixed, verify reruns and the run goes on.
    context.phase("verify").assert_code(0);
    context
        .baton(&["run", "--local", "--run-dir", run_dir])
        .assert_code(0);
    assert_eq!(context.manifest()["outcome"], "done");
}

#[test]
fn an_early_publish_refuses_and_leaves_the_run_open() {
    let context = TestContext::new("");
    context.script(&happy_script());
    context.intake(&[]).assert_code(0);
    context.phase("spec").assert_code(0);
    let run = context.phase("publish");
    run.assert_code(2);
    assert!(
        run.stderr().contains("next phase is design"),
        "{}",
        run.stderr()
    );
    assert_eq!(context.manifest()["outcome"], "running");
    assert_eq!(context.phase_names(), ["intake", "spec"]);
}

#[test]
fn force_invalidates_the_phase_and_every_later_one() {
    let context = TestContext::new("");
    context.script(&happy_script());
    context.intake(&[]).assert_code(0);
    for phase in ["spec", "design", "plan"] {
        context.phase(phase).assert_code(0);
    }
    assert!(context.run_dir.join("plan.json").exists());
    let run_dir = context.run_dir.to_str().unwrap();
    context
        .baton(&["phase", "spec", "--force", "--run-dir", run_dir])
        .assert_code(0);
    // design and plan are stale now: tests may not run on them.
    let tests = context.phase("tests");
    tests.assert_code(2);
    assert!(
        tests.stderr().contains("next phase is design"),
        "{}",
        tests.stderr()
    );
    assert!(!context.run_dir.join("plan.json").exists());
    let statuses: Vec<String> = context.manifest()["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|phase| {
            format!(
                "{}:{}",
                phase["name"].as_str().unwrap(),
                phase["status"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            "intake:done",
            "spec:superseded",
            "design:superseded",
            "plan:superseded",
            "spec:done"
        ]
    );
    // The rest of the route runs again, and ends done.
    context
        .baton(&["run", "--local", "--run-dir", run_dir])
        .assert_code(0);
    assert_eq!(context.manifest()["outcome"], "done");
}

#[test]
fn force_reopens_an_ended_run() {
    let context = TestContext::new("[budget]\nmax_repairs = 0\n");
    let mut script = happy_script();
    script["implement"] = agent(vec![vec![write("lib.sh", BUGGY)]]);
    context.script(&script);
    context.run_local().assert_code(1);
    assert_eq!(context.manifest()["outcome"], "failed");
    // The future `/baton retry implement`: the second implement is right.
    context.script(&happy_script());
    let run_dir = context.run_dir.to_str().unwrap();
    context
        .baton(&["phase", "implement", "--force", "--run-dir", run_dir])
        .assert_code(0);
    assert_eq!(context.manifest()["outcome"], "running");
    assert!(!context.run_dir.join("evidence.json").exists());
    context
        .baton(&["run", "--local", "--run-dir", run_dir])
        .assert_code(0);
    assert_eq!(context.evidence()["outcome"], "done");
}

/// A repository whose gate, while `slow` exists, starts a long-running child
/// that writes its pid to `gate.pid` and waits for it.
fn slow_gate_context() -> (TestContext, PathBuf, PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    let slow = directory.path().join("slow");
    let pid = directory.path().join("gate.pid");
    let config = BASE_CONFIG.replace(
        "run = \"sh run_tests.sh\"",
        &format!(
            "run = \"if [ -e {slow} ]; then sh -c 'echo $$ > {pid}; exec sleep 60' & wait; fi; sh run_tests.sh\"",
            slow = slow.display(),
            pid = pid.display()
        ),
    ) + &format!(
        "\n[sandbox]\nwritable = [\"{}\"]\n",
        directory.path().display()
    );
    let context = TestContext::with_config(&config);
    // Keep the marker directory alive as long as the context.
    std::fs::write(&slow, "").unwrap();
    let kept = directory.keep();
    (context, kept.join("slow"), kept.join("gate.pid"))
}

fn wait_for(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.trim().is_empty()
        {
            return text.trim().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

fn gone_soon(pid: &str) -> bool {
    for _ in 0..100 {
        if !running(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn signal(child: &Child, name: &str) {
    std::process::Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
}

fn spawn_verify(context: &TestContext) -> Child {
    let run_dir = context.run_dir.to_str().unwrap();
    context
        .command(&["phase", "verify", "--run-dir", run_dir])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn sigint_during_a_gate_cancels_cleanly_and_the_phase_resumes() {
    let (context, slow, pid_file) = slow_gate_context();
    let temporary = context.path().join("tmp");
    std::fs::create_dir_all(&temporary).unwrap();
    let context = context.env("TMPDIR", temporary.to_str().unwrap());
    up_to_verify(&context);
    let child = spawn_verify(&context);
    let gate = wait_for(&pid_file);
    assert!(running(&gate));
    signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    let run = Run(output);
    run.assert_code(130);
    assert!(
        gone_soon(&gate),
        "the gate's child {gate} outlived the interrupt"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&temporary)
        .unwrap()
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("baton-work-")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "work trees left behind: {leftovers:?}"
    );
    let manifest = context.manifest();
    assert_eq!(manifest["outcome"], "cancelled");
    assert_eq!(manifest["phases"][3]["status"], "interrupted");
    assert_eq!(context.evidence()["outcome"], "cancelled");
    assert!(run.stderr().contains("resume"), "{}", run.stderr());

    let run_dir = context.run_dir.to_str().unwrap();
    let status = context.baton(&["status", "--run-dir", run_dir]);
    assert!(
        status
            .stdout()
            .contains("cancelled during verify: resume with `baton phase verify"),
        "{}",
        status.stdout()
    );
    // Other phases are no-ops while the run is cancelled.
    context.phase("review").assert_code(0);

    std::fs::remove_file(&slow).unwrap();
    context.phase("verify").assert_code(0);
    assert_eq!(context.manifest()["outcome"], "running");
    context
        .baton(&["run", "--local", "--run-dir", run_dir])
        .assert_code(0);
    assert_eq!(context.evidence()["outcome"], "done");
}

#[test]
fn a_second_writer_exits_two_naming_the_holder_and_status_still_reads() {
    let (context, slow, pid_file) = slow_gate_context();
    up_to_verify(&context);
    let child = spawn_verify(&context);
    let gate = wait_for(&pid_file);
    let run_dir = context.run_dir.to_str().unwrap();
    let second = context.baton(&["phase", "implement", "--force", "--run-dir", run_dir]);
    second.assert_code(2);
    assert!(
        second.stderr().contains("busy") && second.stderr().contains(&child.id().to_string()),
        "{}",
        second.stderr()
    );
    let status = context.baton(&["status", "--run-dir", run_dir]);
    status.assert_code(0);
    assert!(
        status.stdout().contains("busy: process"),
        "{}",
        status.stdout()
    );
    std::fs::remove_file(&slow).unwrap();
    signal(&child, "TERM");
    Run(child.wait_with_output().unwrap()).assert_code(130);
    assert!(gone_soon(&gate));
    // The implement that was refused changed nothing.
    assert_eq!(
        context.phase_names(),
        ["intake", "plan", "implement", "verify"]
    );
}

#[test]
fn a_phase_killed_with_its_process_group_reruns_without_force() {
    let (context, slow, pid_file) = slow_gate_context();
    // A SIGKILL leaves the killed job's work tree behind: keep it in the
    // test's own directory.
    let temporary = context.path().join("tmp");
    std::fs::create_dir_all(&temporary).unwrap();
    let context = context.env("TMPDIR", temporary.to_str().unwrap());
    up_to_verify(&context);
    let run_dir = context.run_dir.to_str().unwrap();
    let mut command = context.command(&["phase", "verify", "--run-dir", run_dir]);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let gate = wait_for(&pid_file);
    // What a runner does to a job it gives up on: SIGKILL to the job's group
    // (the gate has a group of its own, so it is killed the same way).
    for group in [child.id().to_string(), gate.clone()] {
        std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{group}")])
            .status()
            .unwrap();
    }
    let mut child = child;
    child.wait().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &gate])
        .status();
    assert_eq!(context.manifest()["phases"][3]["status"], "running");
    let status = context.baton(&["status", "--run-dir", run_dir]);
    assert!(
        status.stdout().contains("its job died"),
        "{}",
        status.stdout()
    );

    std::fs::remove_file(&slow).unwrap();
    context.phase("verify").assert_code(0);
    let phases = context.manifest()["phases"].clone();
    assert_eq!(phases[3]["status"], "failed");
    assert_eq!(phases[4]["status"], "done");
    assert_eq!(phases[4]["passed"], true);
}

#[test]
fn later_phases_read_the_config_pinned_at_intake() {
    let context = TestContext::new("");
    context.script(&happy_script());
    context.intake(&[]).assert_code(0);
    let manifest = context.manifest();
    assert_eq!(manifest["config"]["path"], "baton.toml");
    assert_eq!(manifest["config"]["sha256"].as_str().unwrap().len(), 64);
    // A job's checkout with a loosened config changes nothing: the phase
    // reads the base commit's.
    std::fs::write(context.repo.join("baton.toml"), "# no gates, no rules\n").unwrap();
    context.phase("spec").assert_code(0);

    // A manifest whose pin no longer matches the base commit is refused.
    let path = context.run_dir.join("manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    manifest["config"]["sha256"] = json!("0".repeat(64));
    std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    let run = context.phase("design");
    run.assert_code(2);
    assert!(
        run.stderr().contains("baton.toml") && run.stderr().contains("pinned"),
        "{}",
        run.stderr()
    );
}

#[test]
fn intake_refuses_a_config_that_differs_from_the_base_commit() {
    let context = TestContext::new("");
    context.script(&happy_script());
    let config = std::fs::read_to_string(context.repo.join("baton.toml")).unwrap();
    std::fs::write(
        context.repo.join("baton.toml"),
        format!("{config}\n[budget]\nmax_repairs = 9\n"),
    )
    .unwrap();
    let run = context.intake(&[]);
    run.assert_code(2);
    assert!(run.stderr().contains("commit"), "{}", run.stderr());
    assert!(!context.run_dir.join("manifest.json").exists());
}

#[test]
fn artifacts_name_no_machine_paths() {
    let context = TestContext::new("");
    // The script is missing: the provider's error names its absolute path.
    context.run_local().assert_code(1);
    assert_eq!(context.manifest()["outcome"], "blocked");
    let machine = context.path().to_str().unwrap().to_owned();
    for (path, text) in all_files(&context.run_dir) {
        let name = path
            .strip_prefix(&context.run_dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if name == "manifest.json"
            || name.starts_with("evidence")
            || name.starts_with("transcripts/")
        {
            assert!(!text.contains(&machine), "{name} names {machine}:\n{text}");
        }
    }
    assert!(
        context.manifest()["reason"]
            .as_str()
            .unwrap()
            .contains("script.json")
    );
}

#[test]
fn a_config_outside_the_repository_is_local_only_and_flagged() {
    let context = TestContext::new("");
    context.script(&happy_script());
    let outside = context.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let config = outside.join("baton.toml");
    std::fs::copy(context.repo.join("baton.toml"), &config).unwrap();
    let config = config.to_str().unwrap();
    let issue = context.issue.to_str().unwrap();
    let run_dir = context.run_dir.to_str().unwrap();
    let intake = [
        "--config",
        config,
        "phase",
        "intake",
        "--issue-file",
        issue,
        "--run-dir",
        run_dir,
    ];

    let mut in_ci = context.command(&intake);
    in_ci.env("CI", "true");
    let refused = Run(in_ci.output().unwrap());
    refused.assert_code(2);
    assert!(
        refused.stderr().contains("outside the repository"),
        "{}",
        refused.stderr()
    );

    context.baton(&intake).assert_code(0);
    assert_eq!(context.manifest()["config"]["outside_repository"], true);
    assert_eq!(context.manifest()["config"]["path"], "baton.toml");
    // Later phases need the same file again, and check its hash.
    let spec = context.phase("spec");
    spec.assert_code(2);
    assert!(spec.stderr().contains("--config"), "{}", spec.stderr());
    context
        .baton(&["--config", config, "run", "--local", "--run-dir", run_dir])
        .assert_code(0);
    let needs = context.evidence()["needs_human"].to_string();
    assert!(needs.contains("outside the repository"), "{needs}");
}

#[test]
fn force_reopens_a_run_publish_ended_done_and_publish_judges_again() {
    let context = TestContext::new("");
    context.script(&happy_script());
    context.run_local().assert_code(0);
    let run_dir = context.run_dir.to_str().unwrap();
    context
        .baton(&["phase", "review", "--force", "--run-dir", run_dir])
        .assert_code(0);
    assert_eq!(context.manifest()["outcome"], "running");
    assert!(!context.run_dir.join("evidence.json").exists());
    context
        .baton(&["run", "--local", "--run-dir", run_dir])
        .assert_code(0);
    let evidence = context.evidence();
    assert_eq!(evidence["outcome"], "done");
    assert_eq!(evidence["gates"][0]["status"], "passed");
    assert_eq!(evidence["tests_first"]["green"], true);

    // A manifest edited to claim `done` before publish does not make it so.
    let context = TestContext::new("[budget]\nmax_repairs = 0\n");
    let mut script = happy_script();
    script["implement"] = agent(vec![vec![
        write("lib.sh", BUGGY),
        write("tests/greet_test.sh", GOOD_TEST),
    ]]);
    context.script(&script);
    context.intake(&["--route", "chore"]).assert_code(0);
    for phase in ["plan", "implement"] {
        context.phase(phase).assert_code(0);
    }
    context.phase("verify").assert_code(1);
    let path = context.run_dir.join("manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    manifest["outcome"] = json!("done");
    manifest.as_object_mut().unwrap().remove("ended_by");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    context.phase("publish").assert_code(1);
    assert_ne!(context.evidence()["outcome"], "done");
}

#[test]
fn the_same_cancel_delivered_twice_at_once_is_one_interrupt() {
    // `timeout` (and a terminal) signal the process and its process group:
    // baton receives the same SIGTERM twice within microseconds. That is
    // one cancel: the phase is recorded interrupted, not abandoned.
    let (context, _slow, pid_file) = slow_gate_context();
    let temporary = context.path().join("tmp");
    std::fs::create_dir_all(&temporary).unwrap();
    let context = context.env("TMPDIR", temporary.to_str().unwrap());
    up_to_verify(&context);
    let child = spawn_verify(&context);
    let gate = wait_for(&pid_file);
    assert!(running(&gate));
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("kill -TERM {0}; kill -TERM {0}", child.id()))
        .status()
        .unwrap();
    let run = Run(child.wait_with_output().unwrap());
    run.assert_code(130);
    assert!(gone_soon(&gate));
    let manifest = context.manifest();
    assert_eq!(manifest["outcome"], "cancelled", "{}", run.stderr());
    assert_eq!(manifest["phases"][3]["status"], "interrupted");
}
