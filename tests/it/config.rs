//! Configuration errors: exit 2, naming the file and the key.

use crate::support::{TestContext, happy_script};

#[test]
fn an_unknown_key_is_an_error_naming_it() {
    let context = TestContext::new("[budget]\nmax_cost = 2.0\n");
    context.script(&happy_script());
    let check = context.baton(&["config", "check"]);
    check.assert_code(2);
    assert!(
        check.stderr().contains("budget.max_cost"),
        "{}",
        check.stderr()
    );
    assert!(
        check.stderr().contains("did you mean `max_cost_usd`"),
        "{}",
        check.stderr()
    );
    assert!(check.stderr().contains("baton.toml"), "{}", check.stderr());
    let run = context.run_local();
    run.assert_code(2);
    assert!(run.stderr().contains("budget.max_cost"), "{}", run.stderr());
    assert!(
        !context.run_dir.exists(),
        "a run was started on an invalid config"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let context = TestContext::new("[scope]\ndenny = []\n[[gates]]\nname = \"lint\"\n");
    let check = context.baton(&["config", "check"]);
    check.assert_code(2);
    let stderr = check.stderr();
    assert!(stderr.contains("scope.denny"), "{stderr}");
    assert!(stderr.contains("gates"), "{stderr}");
    assert!(stderr.contains("2 problems"), "{stderr}");
}

#[test]
fn an_explicit_config_that_does_not_exist_is_an_error() {
    let context = TestContext::new("");
    let run = context.baton(&["config", "check", "--config", "nowhere.toml"]);
    run.assert_code(2);
    assert!(run.stderr().contains("nowhere.toml"), "{}", run.stderr());
}

#[test]
fn a_valid_config_checks_clean() {
    let context = TestContext::new("");
    let run = context.baton(&["config", "check"]);
    run.assert_code(0);
    assert!(run.stderr().contains("ok"), "{}", run.stderr());
}
