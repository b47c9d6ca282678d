//! The scheduled backlog sweep: open issues carrying `[triggers].sweep_label`,
//! those already in flight skipped, ordered by priority label then age, at
//! most `[sweep].max_runs` started, each with a `workflow_dispatch` (events
//! made with the workflow's token start no workflows; a dispatch does).
//!
//! In flight means an open pull request from `baton/issue-<N>` or the label
//! `baton:running`. The sweep sets that label before it dispatches, so a
//! sweep that overlaps this one skips the issues this one started.

use std::collections::{BTreeMap, BTreeSet};

use crate::forge::{Forge, Issue, PullRequest, RUNNING_LABEL};

/// What the sweep does with one issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Start,
    /// Skipped, and why.
    Skip(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub number: u64,
    pub title: String,
    pub priority: &'static str,
    pub action: Action,
}

/// `priority:high` first, then `priority:medium`, none, `priority:low`.
fn priority(labels: &[String]) -> (u8, &'static str) {
    let has = |name: &str| labels.iter().any(|label| label.eq_ignore_ascii_case(name));
    if has("priority:high") {
        (0, "high")
    } else if has("priority:medium") {
        (1, "medium")
    } else if has("priority:low") {
        (3, "low")
    } else {
        (2, "")
    }
}

/// The plan for `issues` (as the forge listed them) given the open pull
/// requests: every issue, in the order the sweep considers them.
pub fn plan(
    issues: &[Issue],
    pulls: &[PullRequest],
    repository: &str,
    max_runs: u32,
) -> Vec<Planned> {
    let open_branches: BTreeMap<&str, u64> = pulls
        .iter()
        .filter(|pull| pull.head_repository.is_empty() || pull.head_repository == repository)
        .map(|pull| (pull.head.as_str(), pull.number))
        .collect();
    let mut ordered: Vec<&Issue> = issues.iter().collect();
    // Numbers grow with age: lower is older.
    ordered.sort_by_key(|issue| (priority(&issue.labels).0, issue.number));
    let mut seen = BTreeSet::new();
    let mut started = 0;
    ordered
        .into_iter()
        .filter(|issue| seen.insert(issue.number))
        .map(|issue| {
            let branch = format!("baton/issue-{}", issue.number);
            let action = if let Some(pull) = open_branches.get(branch.as_str()) {
                Action::Skip(format!("open pull request #{pull}"))
            } else if issue.labels.iter().any(|label| label == RUNNING_LABEL) {
                Action::Skip(format!("a run is in flight ({RUNNING_LABEL})"))
            } else if started >= max_runs {
                Action::Skip(format!("over [sweep].max_runs = {max_runs}"))
            } else {
                started += 1;
                Action::Start
            };
            Planned {
                number: issue.number,
                title: issue.title.clone(),
                priority: priority(&issue.labels).1,
                action,
            }
        })
        .collect()
}

/// The plan as a table for `--dry-run`.
pub fn render(plan: &[Planned]) -> String {
    let mut out = format!(
        "{:<8} {:<8} {:<40} {}\n",
        "issue", "priority", "title", "action"
    );
    for planned in plan {
        let title: String = planned.title.chars().take(38).collect();
        let action = match &planned.action {
            Action::Start => "start".to_owned(),
            Action::Skip(reason) => format!("skip: {reason}"),
        };
        out.push_str(&format!(
            "{:<8} {:<8} {:<40} {action}\n",
            format!("#{}", planned.number),
            if planned.priority.is_empty() {
                "-"
            } else {
                planned.priority
            },
            title
        ));
    }
    out
}

/// Starts the planned runs: the running label first (an overlapping sweep
/// skips the issue), then the dispatch. Returns the issues started.
pub async fn start(
    forge: &dyn Forge,
    plan: &[Planned],
    workflow: &str,
    reference: &str,
) -> crate::forge::Result<Vec<u64>> {
    let mut started = Vec::new();
    for planned in plan
        .iter()
        .filter(|planned| planned.action == Action::Start)
    {
        forge
            .add_labels(planned.number, &[RUNNING_LABEL.to_owned()])
            .await?;
        let inputs = BTreeMap::from([("issue".to_owned(), planned.number.to_string())]);
        forge
            .dispatch_workflow(workflow, reference, &inputs)
            .await?;
        started.push(planned.number);
    }
    Ok(started)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(number: u64, labels: &[&str]) -> Issue {
        Issue {
            from_baton: false,
            number,
            title: format!("issue {number}"),
            body: String::new(),
            url: String::new(),
            author: "alice".into(),
            labels: labels.iter().map(|label| (*label).to_owned()).collect(),
            is_pull_request: false,
            comments: Vec::new(),
        }
    }

    fn pull(number: u64, head: &str, repository: &str) -> PullRequest {
        PullRequest {
            number,
            url: String::new(),
            draft: false,
            title: String::new(),
            body: String::new(),
            head: head.into(),
            head_repository: repository.into(),
            node_id: String::new(),
            head_sha: String::new(),
        }
    }

    #[test]
    fn priority_then_age_skipping_runs_in_flight_up_to_max_runs() {
        let issues = vec![
            issue(9, &["baton:ready"]),
            issue(3, &["baton:ready", "priority:low"]),
            issue(7, &["baton:ready", "priority:high"]),
            issue(5, &["baton:ready", RUNNING_LABEL]),
            issue(2, &["baton:ready"]),
            issue(8, &["baton:ready", "priority:medium"]),
            issue(4, &["baton:ready"]),
        ];
        let pulls = vec![
            pull(40, "baton/issue-2", "octo/repo"),
            // A fork's branch of the same name proves nothing.
            pull(41, "baton/issue-4", "mallory/repo"),
        ];
        let plan = plan(&issues, &pulls, "octo/repo", 3);
        let order: Vec<u64> = plan.iter().map(|planned| planned.number).collect();
        assert_eq!(order, [7, 8, 2, 4, 5, 9, 3]);
        let started: Vec<u64> = plan
            .iter()
            .filter(|planned| planned.action == Action::Start)
            .map(|planned| planned.number)
            .collect();
        assert_eq!(started, [7, 8, 4]);
        assert_eq!(plan[2].action, Action::Skip("open pull request #40".into()));
        assert!(matches!(&plan[4].action, Action::Skip(reason) if reason.contains("in flight")));
        assert!(matches!(&plan[5].action, Action::Skip(reason) if reason.contains("max_runs")));
        let table = render(&plan);
        assert!(
            table.contains("#7")
                && table.contains("start")
                && table.contains("skip: open pull request #40")
        );
    }
}
