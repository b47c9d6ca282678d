//! The CI event that started a job (`GITHUB_EVENT_NAME`, `GITHUB_EVENT_PATH`):
//! the payload parsed into baton's own `Event` (both forges' shapes), and
//! what intake makes of it. Payloads are untrusted: only numbers, labels,
//! logins and the comment text are read, and the issue itself is fetched
//! from the forge; a sender's permission is asked of the forge.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::bad_input;
use crate::types::{PhaseName, Route};

/// What an event asks of intake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventRequest {
    /// Start a run on `issue`.
    Start {
        issue: u64,
        route: Option<Route>,
        from_phase: Option<PhaseName>,
        /// `/baton fix`: the id of the comment whose feedback the run
        /// repairs the pull request with (its text and author are read
        /// again from the forge, never carried in the dispatch).
        fix_comment: Option<u64>,
        /// How the evidence names the trigger: `issues labeled baton`, ….
        description: String,
        /// Who caused the event (`sender.login`); intake asks the forge for
        /// their permission, never trusting the payload's word for it.
        sender: Option<String>,
    },
    /// Not for baton (another label, another action): exit 0, `skipped=true`.
    Skip(String),
}

/// <https://docs.github.com/en/webhooks/webhook-events-and-payloads#issues>;
/// Forgejo sends `label_updated` and no `label`.
#[derive(Debug, Deserialize)]
struct WireIssuesEvent {
    action: String,
    #[serde(default)]
    label: Option<WireLabel>,
    issue: WireIssue,
    #[serde(default)]
    sender: Option<WireSender>,
}

#[derive(Debug, Deserialize)]
struct WireSender {
    login: String,
}

#[derive(Debug, Deserialize)]
struct WireIssue {
    number: u64,
    #[serde(default)]
    labels: Vec<WireLabel>,
}

#[derive(Debug, Deserialize)]
struct WireLabel {
    name: String,
}

/// <https://docs.github.com/en/webhooks/webhook-events-and-payloads#workflow_dispatch>;
/// inputs are strings on Forgejo, and strings, numbers or booleans on GitHub.
#[derive(Debug, Deserialize)]
struct WireDispatch {
    #[serde(default)]
    inputs: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    workflow: Option<String>,
}

/// An event as baton understands it, whichever forge sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `issues`: `labeled` on GitHub (with the label), `label_updated` on
    /// Forgejo (without it), or any other action.
    Issues {
        action: String,
        label: Option<String>,
        issue: u64,
        labels: Vec<String>,
        sender: Option<String>,
    },
    /// `issue_comment` on an issue or a pull request.
    IssueComment {
        action: String,
        issue: u64,
        on_pull_request: bool,
        comment: EventComment,
    },
    /// `workflow_dispatch`; every input as text (Forgejo sends strings,
    /// GitHub also numbers and booleans).
    Dispatch {
        inputs: BTreeMap<String, String>,
        /// Forgejo names the workflow file.
        workflow: Option<String>,
    },
    /// `schedule`: GitHub sends `{"schedule": "<cron>"}`, Forgejo
    /// `{"action": "schedule"}`.
    Schedule { cron: Option<String> },
    /// Any other event, by name.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventComment {
    pub id: u64,
    pub body: String,
    pub author: String,
    /// GitHub's `type: Bot`, or a `…[bot]` login.
    pub author_is_bot: bool,
}

/// <https://docs.github.com/en/webhooks/webhook-events-and-payloads#issue_comment>
#[derive(Debug, Deserialize)]
struct WireCommentEvent {
    action: String,
    issue: WireCommentIssue,
    comment: WireComment,
}

#[derive(Debug, Deserialize)]
struct WireCommentIssue {
    number: u64,
    #[serde(default)]
    pull_request: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireComment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    user: WireUser,
}

#[derive(Debug, Deserialize)]
struct WireUser {
    login: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

/// <https://docs.github.com/en/webhooks/webhook-events-and-payloads#schedule>
#[derive(Debug, Deserialize)]
struct WireSchedule {
    #[serde(default)]
    schedule: Option<String>,
}

/// Parses a payload; the error says what does not fit.
pub fn parse(name: &str, text: &str) -> Result<Event, String> {
    let error = |error: serde_json::Error| error.to_string();
    Ok(match name {
        "issues" => {
            let event: WireIssuesEvent = serde_json::from_str(text).map_err(error)?;
            Event::Issues {
                action: event.action,
                label: event.label.map(|label| label.name),
                issue: event.issue.number,
                labels: event
                    .issue
                    .labels
                    .into_iter()
                    .map(|label| label.name)
                    .collect(),
                sender: event.sender.map(|sender| sender.login),
            }
        }
        "issue_comment" => {
            let event: WireCommentEvent = serde_json::from_str(text).map_err(error)?;
            let user = event.comment.user;
            Event::IssueComment {
                action: event.action,
                issue: event.issue.number,
                on_pull_request: event
                    .issue
                    .pull_request
                    .is_some_and(|value| !value.is_null()),
                comment: EventComment {
                    id: event.comment.id,
                    body: event.comment.body.unwrap_or_default(),
                    author_is_bot: user.kind.as_deref() == Some("Bot")
                        || user.login.ends_with("[bot]"),
                    author: user.login,
                },
            }
        }
        "workflow_dispatch" => {
            let event: WireDispatch = serde_json::from_str(text).map_err(error)?;
            let mut inputs = BTreeMap::new();
            for (key, value) in event.inputs.unwrap_or_default() {
                let text = match value {
                    Value::String(text) => text,
                    Value::Number(number) => number.to_string(),
                    Value::Bool(flag) => flag.to_string(),
                    Value::Null => continue,
                    other => return Err(format!("input `{key}` is {other}, not text")),
                };
                inputs.insert(key, text);
            }
            Event::Dispatch {
                inputs,
                workflow: event.workflow,
            }
        }
        "schedule" => {
            let event: WireSchedule = serde_json::from_str(text).map_err(error)?;
            Event::Schedule {
                cron: event.schedule,
            }
        }
        other => Event::Other(other.to_owned()),
    })
}

/// Reads and parses the event file (exit 2 when it cannot).
pub fn read_file(name: &str, path: &Path) -> anyhow::Result<Event> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        bad_input!(
            "cannot read the {name} event at {} ($GITHUB_EVENT_PATH): {error}",
            path.display()
        )
    })?;
    parse(name, &text).map_err(|error| {
        bad_input!(
            "the {name} event at {} is not what the forge sends: {error}",
            path.display()
        )
    })
}

/// Reads the event file for intake. `label` is `[triggers].label`.
pub fn read(name: &str, path: &Path, label: &str) -> anyhow::Result<EventRequest> {
    intake_request(&read_file(name, path)?, label)
}

/// What intake makes of an event.
pub fn intake_request(event: &Event, label: &str) -> anyhow::Result<EventRequest> {
    match event {
        Event::Issues {
            action,
            label: added,
            issue,
            labels,
            sender,
        } => Ok(issues_event(
            action,
            added.as_deref(),
            *issue,
            labels,
            sender.clone(),
            label,
        )),
        Event::Dispatch { inputs, .. } => dispatch_event(inputs),
        Event::IssueComment { .. } => Err(bad_input!(
            "an issue_comment event is handled by `baton command`, not by intake"
        )),
        Event::Schedule { .. } => Ok(EventRequest::Skip(
            "a schedule starts `baton sweep`, not intake".into(),
        )),
        Event::Other(other) => Ok(EventRequest::Skip(format!(
            "the {other} event does not start a run"
        ))),
    }
}

fn issues_event(
    action: &str,
    added: Option<&str>,
    number: u64,
    labels: &[String],
    sender: Option<String>,
    label: &str,
) -> EventRequest {
    let start = |sender| EventRequest::Start {
        issue: number,
        route: None,
        from_phase: None,
        fix_comment: None,
        description: format!("issue #{number} labelled `{label}`"),
        sender,
    };
    match action {
        "labeled" => match added {
            Some(added) if added == label => start(sender),
            Some(added) => EventRequest::Skip(format!(
                "label `{added}` is not the trigger label `{label}` ([triggers].label)"
            )),
            None => EventRequest::Skip("a labeled event without its label".into()),
        },
        // Forgejo: the payload does not say which label changed; the
        // issue's labels say whether the trigger label is on it now. Any
        // label edit sends this, baton's own `baton:<state>` labels
        // included: an issue that carries one has (had) a run, and only
        // removing it (or `/baton run`) starts another.
        "label_updated" => {
            if let Some(state) = labels.iter().find(|each| each.starts_with("baton:")) {
                EventRequest::Skip(format!(
                    "issue #{number} already carries `{state}`: a label change does not start another run"
                ))
            } else if labels.iter().any(|each| each == label) {
                start(sender)
            } else {
                EventRequest::Skip(format!(
                    "issue #{number} does not carry the trigger label `{label}` ([triggers].label)"
                ))
            }
        }
        other => EventRequest::Skip(format!("the issues event `{other}` does not start a run")),
    }
}

fn dispatch_event(inputs: &BTreeMap<String, String>) -> anyhow::Result<EventRequest> {
    let input = |name: &str| -> Option<String> {
        inputs
            .get(name)
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty())
    };
    let issue = input("issue").ok_or_else(|| {
        bad_input!("workflow_dispatch needs the input `issue` (the issue number)")
    })?;
    let issue: u64 = issue.trim_start_matches('#').parse().map_err(|_| {
        bad_input!("workflow_dispatch input `issue` must be an issue number, not `{issue}`")
    })?;
    let route = input("route")
        .map(|text| {
            text.parse::<Route>()
                .map_err(|message| bad_input!("workflow_dispatch input `route`: {message}"))
        })
        .transpose()?;
    let from_phase = input("from_phase")
        .map(|text| {
            text.parse::<PhaseName>()
                .map_err(|message| bad_input!("workflow_dispatch input `from_phase`: {message}"))
        })
        .transpose()?;
    let fix_comment = input("fix_comment")
        .map(|text| {
            text.parse::<u64>().map_err(|_| {
                bad_input!(
                    "workflow_dispatch input `fix_comment` must be a comment id, not `{text}`"
                )
            })
        })
        .transpose()?;
    Ok(EventRequest::Start {
        issue,
        route,
        from_phase,
        fix_comment,
        description: format!("workflow_dispatch for issue #{issue}"),
        // Dispatching a workflow already takes write access, and the
        // dispatches baton makes itself come from the workflow's bot, which
        // the permission route would call `none`: nobody to ask about.
        sender: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(json: &str, label: &str) -> EventRequest {
        intake_request(&parse("issues", json).unwrap(), label).unwrap()
    }

    #[test]
    fn the_trigger_label_starts_a_run_and_others_are_skipped() {
        let labeled = r#"{"action": "labeled", "label": {"name": "baton"}, "issue": {"number": 4, "labels": [{"name": "baton"}]}}"#;
        assert!(matches!(
            issues(labeled, "baton"),
            EventRequest::Start { issue: 4, .. }
        ));
        assert!(matches!(issues(labeled, "other"), EventRequest::Skip(_)));
        let forgejo = r#"{"action": "label_updated", "issue": {"number": 5, "labels": [{"name": "bug"}, {"name": "baton"}]}}"#;
        assert!(matches!(
            issues(forgejo, "baton"),
            EventRequest::Start { issue: 5, .. }
        ));
        assert!(matches!(issues(forgejo, "ready"), EventRequest::Skip(_)));
        // baton's own label edits do not start another run.
        let own = r#"{"action": "label_updated", "issue": {"number": 5, "labels": [{"name": "baton"}, {"name": "baton:running"}]}}"#;
        assert!(matches!(issues(own, "baton"), EventRequest::Skip(_)));
        let opened = r#"{"action": "opened", "issue": {"number": 6}}"#;
        assert!(matches!(issues(opened, "baton"), EventRequest::Skip(_)));
    }

    #[test]
    fn the_real_github_payloads_parse() {
        let labeled = parse(
            "issues",
            include_str!("../../tests/fixtures/github-events/issues.labeled.json"),
        )
        .unwrap();
        assert!(matches!(
            labeled,
            Event::Issues { ref action, label: Some(ref label), issue: 1, .. } if action == "labeled" && label == "bug"
        ));
        let comment = parse(
            "issue_comment",
            include_str!("../../tests/fixtures/github-events/issue_comment.created.json"),
        )
        .unwrap();
        let Event::IssueComment {
            action,
            issue,
            on_pull_request,
            comment,
        } = comment
        else {
            panic!("not a comment: {comment:?}");
        };
        assert_eq!(
            (action.as_str(), issue, on_pull_request),
            ("created", 1, false)
        );
        assert_eq!(comment.author, "Codertocat");
        assert!(!comment.author_is_bot);
        let dispatch = parse(
            "workflow_dispatch",
            include_str!("../../tests/fixtures/github-events/workflow_dispatch.json"),
        )
        .unwrap();
        assert!(matches!(dispatch, Event::Dispatch { ref inputs, .. } if inputs.is_empty()));
    }

    #[test]
    fn forgejo_payloads_parse() {
        let comment = parse(
            "issue_comment",
            include_str!("../../tests/fixtures/forgejo-events/issue_comment.created.json"),
        )
        .unwrap();
        assert!(matches!(
            comment,
            Event::IssueComment { issue: 7, on_pull_request: false, ref comment, .. }
                if comment.body.starts_with("/baton run") && comment.author == "alice"
        ));
        let dispatch = parse(
            "workflow_dispatch",
            include_str!("../../tests/fixtures/forgejo-events/workflow_dispatch.json"),
        )
        .unwrap();
        let Event::Dispatch { inputs, workflow } = &dispatch else {
            panic!("{dispatch:?}");
        };
        assert_eq!(inputs["issue"], "7");
        assert_eq!(workflow.as_deref(), Some(".forgejo/workflows/baton.yml"));
        assert!(matches!(
            intake_request(&dispatch, "baton").unwrap(),
            EventRequest::Start {
                issue: 7,
                route: Some(Route::Chore),
                ..
            }
        ));
        let labeled = parse(
            "issues",
            include_str!("../../tests/fixtures/forgejo-events/issues.label_updated.json"),
        )
        .unwrap();
        assert!(matches!(
            intake_request(&labeled, "baton").unwrap(),
            EventRequest::Start { issue: 7, .. }
        ));
    }

    #[test]
    fn schedules_of_both_shapes() {
        assert_eq!(
            parse("schedule", r#"{"schedule": "0 6 * * 1-5"}"#).unwrap(),
            Event::Schedule {
                cron: Some("0 6 * * 1-5".into())
            }
        );
        assert_eq!(
            parse("schedule", r#"{"action": "schedule"}"#).unwrap(),
            Event::Schedule { cron: None }
        );
        assert!(matches!(
            intake_request(&Event::Schedule { cron: None }, "baton").unwrap(),
            EventRequest::Skip(_)
        ));
    }

    #[test]
    fn dispatch_inputs_as_strings_numbers_or_booleans() {
        let dispatch = |json: &str| {
            let event = parse("workflow_dispatch", json).map_err(|error| anyhow::anyhow!(error))?;
            intake_request(&event, "baton")
        };
        let request =
            dispatch(r#"{"inputs": {"issue": "12", "route": "chore", "from_phase": ""}}"#).unwrap();
        assert_eq!(
            request,
            EventRequest::Start {
                issue: 12,
                route: Some(Route::Chore),
                from_phase: None,
                fix_comment: None,
                description: "workflow_dispatch for issue #12".into(),
                sender: None,
            }
        );
        assert!(matches!(
            dispatch(r#"{"inputs": {"issue": 3, "dry": true}}"#).unwrap(),
            EventRequest::Start { issue: 3, .. }
        ));
        assert!(dispatch(r#"{"inputs": {"issue": "twelve"}}"#).is_err());
        assert!(matches!(
            dispatch(r#"{"inputs": {"issue": "12", "fix_comment": "345"}}"#).unwrap(),
            EventRequest::Start {
                fix_comment: Some(345),
                ..
            }
        ));
        assert!(dispatch(r#"{"inputs": {"issue": "12", "fix_comment": "soon"}}"#).is_err());
        assert!(dispatch(r#"{"inputs": {"issue": "12", "route": "fix"}}"#).is_err());
        assert!(dispatch(r#"{"inputs": {"route": "chore"}}"#).is_err());
        assert!(dispatch(r#"{"inputs": {"issue": "1", "route": "yolo"}}"#).is_err());
        assert!(dispatch(r#"{"inputs": {"issue": {"n": 1}}}"#).is_err());
    }
}
