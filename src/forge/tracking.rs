//! The tracking comment (one per issue, edited as phases end) and the
//! markers that find baton's comment and pull request again. Pure rendering
//! from the manifest.

use crate::run_dir::manifest::{Manifest, PhaseStatus};
use crate::types::{Outcome, PhaseName};

/// The first line of the tracking comment.
pub const MARKER: &str = "<!-- baton:tracking -->";

/// The first line of a pull request's body: which issue it belongs to.
pub fn pull_request_marker(issue: u64) -> String {
    format!("<!-- baton:issue={issue} -->")
}

/// The issue a pull request body's marker names, if it has one.
pub fn issue_of_pull_request(body: &str) -> Option<u64> {
    body.trim_start()
        .strip_prefix("<!-- baton:issue=")?
        .split_once(" -->")?
        .0
        .parse()
        .ok()
}

/// The tracking comment's body: a checkbox per phase of the route, the
/// outcome, the cost and a link to the CI run.
pub fn render(manifest: &Manifest, run_url: Option<&str>, note: Option<&str>) -> String {
    let mut out = format!(
        "{MARKER}\n### baton · route `{}` · {}\n\n",
        manifest.route,
        outcome_line(manifest)
    );
    for phase in manifest.route.phases() {
        out.push_str(&phase_line(manifest, *phase));
        out.push('\n');
    }
    let spent = manifest.spent();
    out.push_str(&format!(
        "\n**Cost:** ${:.4} · {} tokens",
        spent.cost_usd,
        spent.tokens()
    ));
    if let Some(url) = run_url {
        out.push_str(&format!(" · [CI run]({url})"));
    }
    out.push('\n');
    if let Some(pull) = manifest
        .forge
        .as_ref()
        .and_then(|forge| forge.pull_request.as_ref())
    {
        out.push_str(&format!(
            "\n**Pull request:** [#{}]({}){}\n",
            pull.number,
            pull.url,
            if pull.draft { " (draft)" } else { "" }
        ));
    }
    if let Some(note) = note {
        out.push_str(&format!("\n{note}\n"));
    }
    out
}

/// The workflow run the tracking comment links: only baton's own link on
/// its cost line counts, never a URL inside a reason a model's text reached.
pub fn linked_run(body: &str) -> Option<u64> {
    let line = body.lines().find(|line| line.starts_with("**Cost:**"))?;
    let start = line.rfind(" · [CI run](")? + " · [CI run](".len();
    let url = line[start..].split(')').next()?;
    let digits = url.rsplit_once("/actions/runs/")?.1;
    let digits: String = digits.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn outcome_line(manifest: &Manifest) -> String {
    match manifest.outcome {
        Outcome::Running => "**running**".to_owned(),
        outcome => match &manifest.reason {
            Some(reason) => format!("**{outcome}**: {}", one_line(reason)),
            None => format!("**{outcome}**"),
        },
    }
}

fn phase_line(manifest: &Manifest, phase: PhaseName) -> String {
    let runs: Vec<_> = manifest
        .valid()
        .map(|(_, record)| record)
        .filter(|record| record.name == phase)
        .collect();
    let Some(last) = runs.last() else {
        return format!("- [ ] {phase}");
    };
    let done = matches!(last.status, PhaseStatus::Done);
    let mut line = format!("- [{}] {phase}", if done { "x" } else { " " });
    let detail = match last.status {
        PhaseStatus::Running => Some("running…".to_owned()),
        PhaseStatus::Done if phase == PhaseName::Verify => Some(if last.passed == Some(true) {
            "gates passed".to_owned()
        } else {
            "gates failed".to_owned()
        }),
        PhaseStatus::Done => None,
        status => Some(
            last.note
                .as_deref()
                .map_or_else(|| status.as_str().to_owned(), one_line),
        ),
    };
    if runs.len() > 1 {
        line.push_str(&format!(" ({} runs)", runs.len()));
    }
    if let Some(detail) = detail {
        line.push_str(&format!(" — {detail}"));
    }
    line
}

/// The first line of a note, capped: the comment stays reviewable.
fn one_line(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    match first.char_indices().nth(200) {
        Some((index, _)) => format!("{}…", &first[..index]),
        None => first.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::manifest::PhaseRecord;
    use crate::types::Route;

    #[test]
    fn one_checkbox_per_phase_and_the_outcome() {
        let mut manifest = Manifest::for_tests(Route::Chore);
        for name in [PhaseName::Intake, PhaseName::Plan] {
            let mut record = PhaseRecord::started(name, None);
            record.status = PhaseStatus::Done;
            manifest.phases.push(record);
        }
        let body = render(&manifest, Some("https://ci/run/1"), None);
        assert!(body.starts_with(MARKER));
        assert!(
            body.contains("- [x] intake\n- [x] plan\n- [ ] implement"),
            "{body}"
        );
        assert!(body.contains("[CI run](https://ci/run/1)"));
        assert!(body.contains("**running**"));
        assert_eq!(super::linked_run(&body), None, "not an Actions run URL");
    }

    #[test]
    fn only_batons_own_run_link_names_the_run() {
        let body = "<!-- baton:tracking -->\n### baton · route `chore` · **blocked**: stuck writing /x/actions/runs/987 and [CI run](https://h/o/r/actions/runs/986)\n\n- [x] intake\n\n**Cost:** $0.0100 · 10 tokens · [CI run](https://h/o/r/actions/runs/42)\n";
        assert_eq!(super::linked_run(body), Some(42));
        assert_eq!(super::linked_run("**Cost:** $0 · 0 tokens\n"), None);
    }

    #[test]
    fn pull_request_markers_round_trip() {
        let body = format!("{}\n# Evidence", pull_request_marker(42));
        assert_eq!(issue_of_pull_request(&body), Some(42));
        assert_eq!(issue_of_pull_request("no marker"), None);
    }
}
