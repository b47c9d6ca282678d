//! On an Actions runner: log groups per phase, an annotation for the gate
//! that failed verify, masks for secrets, and a step summary per phase.

use crate::support::{GOOD_TEST, TestContext, agent, happy_script, write};

#[test]
fn on_a_runner_phases_are_groups_failed_gates_are_annotated_and_secrets_masked() {
    let secret = "s3cr3t-value-for-the-mask";
    let summary = tempfile::NamedTempFile::new().unwrap();
    let context = TestContext::new("[budget]\nmax_repairs = 0\n")
        .env("GITHUB_ACTIONS", "true")
        .env("MY_SERVICE_TOKEN", secret)
        .env("GITHUB_STEP_SUMMARY", summary.path().to_str().unwrap());
    let mut script = happy_script();
    script["implement"] = agent(vec![vec![
        write("lib.sh", "greet() { echo \"hello world\"; }\n"),
        write("tests/greet_test.sh", GOOD_TEST),
    ]]);
    context.script(&script);
    let intake = context.intake(&["--route", "chore"]);
    intake.assert_code(0);
    assert!(
        intake.stderr().contains(&format!("::add-mask::{secret}")),
        "{}",
        intake.stderr()
    );
    context.phase("plan").assert_code(0);
    context.phase("implement").assert_code(0);
    let verify = context.phase("verify");
    verify.assert_code(1);
    let stderr = verify.stderr();
    assert!(stderr.contains("::group::baton verify"), "{stderr}");
    assert!(stderr.contains("::endgroup::"), "{stderr}");
    assert!(
        stderr.contains("::error title=gate test failed::"),
        "{stderr}"
    );
    let summary = std::fs::read_to_string(summary.path()).unwrap();
    assert!(summary.contains("#### baton · plan: done"), "{summary}");
    assert!(
        summary.contains("#### baton · verify: stopped"),
        "{summary}"
    );
    assert!(summary.contains("| failed |"), "{summary}");

    // Off a runner: no workflow commands.
    let local = TestContext::new("");
    local.script(&happy_script());
    let intake = local.intake(&[]);
    assert!(!intake.stderr().contains("::"), "{}", intake.stderr());
}

#[test]
fn on_a_runner_verify_runs_the_gates_in_the_job_workspace() {
    let directory = tempfile::tempdir().unwrap();
    let marker = directory.path().join("where");
    let config = crate::support::BASE_CONFIG.replace(
        "run = \"sh run_tests.sh\"",
        &format!("run = \"pwd > {}; sh run_tests.sh\"", marker.display()),
    ) + &format!(
        "\n[sandbox]\nwritable = [\"{}\"]\n",
        directory.path().display()
    );
    let local = TestContext::with_config(&config);
    local.script(&happy_script());
    local.intake(&["--route", "chore"]).assert_code(0);
    local.phase("plan").assert_code(0);
    local.phase("implement").assert_code(0);
    // Off a runner: a temporary clone, the checkout untouched.
    local.phase("verify").assert_code(0);
    let elsewhere = std::fs::read_to_string(&marker).unwrap();
    // That clone is gone by now; the checkout was not it.
    assert!(
        !std::path::Path::new(elsewhere.trim()).exists(),
        "{elsewhere}"
    );

    let ci = TestContext::with_config(&config);
    let workspace = ci.repo.to_str().unwrap().to_owned();
    let ci = ci
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", &workspace);
    ci.script(&happy_script());
    ci.intake(&["--route", "chore"]).assert_code(0);
    ci.phase("plan").assert_code(0);
    ci.phase("implement").assert_code(0);
    let verify = ci.phase("verify");
    verify.assert_code(0);
    let inside = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(
        std::path::Path::new(inside.trim()).canonicalize().unwrap(),
        ci.repo.canonicalize().unwrap()
    );
    assert!(
        verify.stderr().contains("in the job's workspace"),
        "{}",
        verify.stderr()
    );
    // The patch is applied there: the job's checkout holds the change.
    let lib = std::fs::read_to_string(ci.repo.join("lib.sh")).unwrap();
    assert!(lib.contains("hello, world"), "{lib}");
}
