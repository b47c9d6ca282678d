//! Triggers other than a label: the scheduled sweep over the backlog, on
//! both fake forges.

use crate::support::fake_forge::{FakeForge, Flavor};
use crate::support::{Run, TestContext};

const TOKEN: &str = "ghs_TriggersToken0123456789abcdefABCDEF";

fn sweep(context: &TestContext, forge: &FakeForge, flavor: Flavor, extra: &[&str]) -> Run {
    let mut arguments = vec!["sweep"];
    arguments.extend(extra);
    let mut command = context.command(&arguments);
    command
        .env("CI", "true")
        .env("GITHUB_REPOSITORY", "octo/repo")
        .env("GITHUB_API_URL", forge.api_url())
        .env("GITHUB_SERVER_URL", forge.server_url())
        .env("BATON_FORGE_TOKEN", TOKEN);
    if flavor == Flavor::Forgejo {
        command.env("FORGEJO_ACTIONS", "true");
    }
    Run(command.output().unwrap())
}

fn backlog(flavor: Flavor) -> FakeForge {
    let forge = FakeForge::start(flavor, "octo", "repo", TOKEN);
    for number in 1..=250 {
        let mut labels = vec!["baton:ready"];
        match number {
            1 => labels.push("baton:running"),
            3 => labels.push("priority:low"),
            10 | 200 => labels.push("priority:high"),
            120 => labels.push("priority:medium"),
            _ => {}
        }
        forge.add_issue(number, &format!("issue {number}"), "", &labels, "alice");
    }
    // Unlabelled issues and a pull request for #2 already open.
    for number in 251..=260 {
        forge.add_issue(number, &format!("other {number}"), "", &[], "alice");
    }
    forge.add_pull(300, "Fix #2", "baton/issue-2", "main", true, "baton[bot]");
    forge
}

fn dispatched(forge: &FakeForge) -> Vec<String> {
    forge
        .dispatches()
        .iter()
        .map(|dispatch| dispatch["inputs"]["issue"].as_str().unwrap().to_owned())
        .collect()
}

fn a_sweep_starts_max_runs_in_priority_order_with_few_requests(flavor: Flavor) {
    let context = TestContext::new("[sweep]\nmax_runs = 5\n");
    let forge = backlog(flavor);

    let dry = sweep(&context, &forge, flavor, &["--dry-run"]);
    dry.assert_code(0);
    assert!(
        forge.dispatches().is_empty(),
        "a dry run dispatches nothing"
    );
    let table = dry.stdout();
    assert!(table.contains("#10") && table.contains("start"), "{table}");
    assert!(table.contains("skip: open pull request #300"), "{table}");
    assert!(table.contains("skip: a run is in flight"), "{table}");

    let before = forge.requests().len();
    sweep(&context, &forge, flavor, &[]).assert_code(0);
    assert_eq!(dispatched(&forge), ["10", "200", "120", "4", "5"]);
    for dispatch in forge.dispatches() {
        assert_eq!(dispatch["ref"], "main");
    }
    for number in [10, 200, 120, 4, 5] {
        assert!(
            forge
                .labels_of(number)
                .contains(&"baton:running".to_owned())
        );
    }
    let requests = forge.requests().len() - before;
    let per_page = match flavor {
        Flavor::GitHub => 100,
        Flavor::Forgejo => 50,
    };
    let pages = 250_usize.div_ceil(per_page);
    assert!(
        requests <= pages + 2 * 5 + 5,
        "{requests} requests for {pages} pages and 5 dispatches"
    );

    // A second sweep (or one that overlapped) skips what the first started.
    sweep(&context, &forge, flavor, &[]).assert_code(0);
    assert_eq!(
        dispatched(&forge),
        ["10", "200", "120", "4", "5", "6", "7", "8", "9", "11"]
    );
}

#[test]
fn github_sweep_starts_max_runs_in_priority_order_with_few_requests() {
    a_sweep_starts_max_runs_in_priority_order_with_few_requests(Flavor::GitHub);
}

#[test]
fn forgejo_sweep_starts_max_runs_in_priority_order_with_few_requests() {
    a_sweep_starts_max_runs_in_priority_order_with_few_requests(Flavor::Forgejo);
}

#[test]
fn a_sweep_without_a_token_names_both_variables() {
    let context = TestContext::new("");
    let forge = backlog(Flavor::GitHub);
    let run = Run(context
        .command(&["sweep"])
        .env("GITHUB_REPOSITORY", "octo/repo")
        .env("GITHUB_API_URL", forge.api_url())
        .output()
        .unwrap());
    run.assert_code(2);
    assert!(run.stderr().contains("BATON_FORGE_TOKEN") && run.stderr().contains("GITHUB_TOKEN"));
}
