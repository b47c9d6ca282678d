//! The CI event that started a job (`GITHUB_EVENT_NAME`, `GITHUB_EVENT_PATH`),
//! read into what intake needs: which issue, and whether this event is one
//! baton acts on at all. Payloads are untrusted: only the issue number and
//! labels are read, and the issue itself is fetched from the forge.

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
}

/// Reads the event file. `label` is `[triggers].label`.
pub fn read(name: &str, path: &Path, label: &str) -> anyhow::Result<EventRequest> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        bad_input!(
            "cannot read the {name} event at {} ($GITHUB_EVENT_PATH): {error}",
            path.display()
        )
    })?;
    let unreadable = |error: serde_json::Error| {
        bad_input!(
            "the {name} event at {} is not what the forge sends: {error}",
            path.display()
        )
    };
    match name {
        "issues" => {
            let event: WireIssuesEvent = serde_json::from_str(&text).map_err(unreadable)?;
            Ok(issues_event(&event, label))
        }
        "workflow_dispatch" => {
            let event: WireDispatch = serde_json::from_str(&text).map_err(unreadable)?;
            dispatch_event(&event.inputs.unwrap_or_default())
        }
        "issue_comment" => Err(bad_input!(
            "an issue_comment event is handled by `baton command`, not by intake"
        )),
        other => Ok(EventRequest::Skip(format!(
            "the {other} event does not start a run"
        ))),
    }
}

fn issues_event(event: &WireIssuesEvent, label: &str) -> EventRequest {
    let number = event.issue.number;
    let sender = event.sender.as_ref().map(|sender| sender.login.clone());
    match event.action.as_str() {
        "labeled" => match &event.label {
            Some(added) if added.name == label => EventRequest::Start {
                issue: number,
                route: None,
                from_phase: None,
                description: format!("issue #{number} labelled `{label}`"),
                sender: sender.clone(),
            },
            Some(added) => EventRequest::Skip(format!(
                "label `{}` is not the trigger label `{label}` ([triggers].label)",
                added.name
            )),
            None => EventRequest::Skip("a labeled event without its label".into()),
        },
        // Forgejo: the payload does not say which label changed; the
        // issue's labels say whether the trigger label is on it now.
        "label_updated" => {
            // Any label edit sends this, baton's own `baton:<state>` labels
            // included: an issue that carries one has (had) a run, and only
            // removing it (or `/baton run`) starts another.
            if let Some(state) = event
                .issue
                .labels
                .iter()
                .find(|each| each.name.starts_with("baton:"))
            {
                EventRequest::Skip(format!(
                    "issue #{number} already carries `{}`: a label change does not start another run",
                    state.name
                ))
            } else if event.issue.labels.iter().any(|each| each.name == label) {
                EventRequest::Start {
                    issue: number,
                    route: None,
                    from_phase: None,
                    description: format!("issue #{number} labelled `{label}`"),
                    sender,
                }
            } else {
                EventRequest::Skip(format!(
                    "issue #{number} does not carry the trigger label `{label}` ([triggers].label)"
                ))
            }
        }
        other => EventRequest::Skip(format!("the issues event `{other}` does not start a run")),
    }
}

fn dispatch_event(inputs: &BTreeMap<String, Value>) -> anyhow::Result<EventRequest> {
    let input = |name: &str| -> Option<String> {
        match inputs.get(name)? {
            Value::String(text) => Some(text.trim().to_owned()).filter(|text| !text.is_empty()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
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
    Ok(EventRequest::Start {
        issue,
        route,
        from_phase,
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
        issues_event(&serde_json::from_str(json).unwrap(), label)
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
        let opened = r#"{"action": "opened", "issue": {"number": 6}}"#;
        assert!(matches!(issues(opened, "baton"), EventRequest::Skip(_)));
    }

    #[test]
    fn dispatch_inputs_as_strings_or_numbers() {
        let inputs =
            |json: &str| -> BTreeMap<String, Value> { serde_json::from_str(json).unwrap() };
        let request = dispatch_event(&inputs(
            r#"{"issue": "12", "route": "chore", "from_phase": ""}"#,
        ))
        .unwrap();
        assert_eq!(
            request,
            EventRequest::Start {
                issue: 12,
                route: Some(Route::Chore),
                from_phase: None,
                description: "workflow_dispatch for issue #12".into(),
                sender: None,
            }
        );
        assert!(matches!(
            dispatch_event(&inputs(r#"{"issue": 3}"#)).unwrap(),
            EventRequest::Start { issue: 3, .. }
        ));
        assert!(dispatch_event(&inputs(r#"{"issue": "twelve"}"#)).is_err());
        assert!(dispatch_event(&inputs(r#"{"route": "chore"}"#)).is_err());
        assert!(dispatch_event(&inputs(r#"{"issue": "1", "route": "yolo"}"#)).is_err());
    }
}
