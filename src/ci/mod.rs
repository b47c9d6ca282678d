//! What baton reads from and writes to the CI system it runs in: the event
//! that started the job, `GITHUB_OUTPUT` (step outputs the workflow's job
//! graph reads) and `GITHUB_STEP_SUMMARY`. Both GitHub and Forgejo runners
//! provide these; each is written only when set.

pub mod event;
pub mod workflow;

use std::io::Write;

use crate::run_dir::manifest::Manifest;
use crate::settings::env;
use crate::types::PhaseName;

/// The outputs every `baton phase` step sets (SPEC §9).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs {
    pub outcome: String,
    pub route: String,
    /// The next phase, or empty once the run has ended and published.
    pub next: String,
    pub skipped: bool,
    pub issue: String,
    /// publish only.
    pub pull_request: Option<(u64, String)>,
}

impl Outputs {
    /// `key=value` lines as `GITHUB_OUTPUT` takes them. Values are one line
    /// each and pass the redaction function: no token reaches a workflow.
    pub fn render(&self) -> String {
        let mut lines = vec![
            ("outcome", self.outcome.clone()),
            ("route", self.route.clone()),
            ("next", self.next.clone()),
            ("skipped", self.skipped.to_string()),
            ("issue", self.issue.clone()),
        ];
        if let Some((number, url)) = &self.pull_request {
            lines.push(("pr", number.to_string()));
            lines.push(("pr_url", url.clone()));
        }
        lines
            .into_iter()
            .map(|(key, value)| {
                let value: String = value.chars().filter(|c| *c != '\n' && *c != '\r').collect();
                format!("{key}={}\n", crate::secrets::redact(&value))
            })
            .collect()
    }

    /// Appends to `$GITHUB_OUTPUT` when it is set.
    pub fn write(&self) -> anyhow::Result<()> {
        append(env::GITHUB_OUTPUT, &self.render())
    }
}

/// Appends Markdown to `$GITHUB_STEP_SUMMARY` when it is set.
pub fn step_summary(markdown: &str) -> anyhow::Result<()> {
    let mut text = crate::secrets::redact(markdown).into_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    append(env::GITHUB_STEP_SUMMARY, &text)
}

fn append(variable: &str, text: &str) -> anyhow::Result<()> {
    let Some(path) = env::get(variable) else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|error| anyhow::anyhow!("cannot open ${variable} ({path}): {error}"))?;
    file.write_all(text.as_bytes())
        .map_err(|error| anyhow::anyhow!("cannot write ${variable} ({path}): {error}"))
}

/// A phase's few lines in the step summary: how the run stands, what it has
/// cost so far and what runs next. (publish writes the whole evidence.)
pub fn phase_summary(manifest: &Manifest, phase: PhaseName, next: Option<PhaseName>) -> String {
    let record = manifest
        .phases
        .iter()
        .rev()
        .find(|record| record.name == phase);
    let status = record.map_or("not run", |record| record.status.as_str());
    let note = record
        .and_then(|record| record.note.as_deref())
        .map(|note| format!(" — {}", note.lines().next().unwrap_or_default()))
        .unwrap_or_default();
    let spent = manifest.spent();
    format!(
        "#### baton · {phase}: {status}{note}\n\n| issue | route | outcome | cost so far | next |\n| --- | --- | --- | --- | --- |\n| #{} | {} | {} | ${:.4} ({} tokens) | {} |\n",
        manifest.issue.number,
        manifest.route,
        manifest.outcome,
        spent.cost_usd,
        spent.tokens(),
        next.map_or_else(|| "—".to_owned(), |next| format!("`{next}`"))
    )
}

/// The link to the CI run: `GITHUB_SERVER_URL/GITHUB_REPOSITORY/actions/runs/GITHUB_RUN_ID`.
pub fn run_url() -> Option<String> {
    Some(format!(
        "{}/{}/actions/runs/{}",
        env::get(env::GITHUB_SERVER_URL)?.trim_end_matches('/'),
        env::get(env::GITHUB_REPOSITORY)?,
        env::get(env::GITHUB_RUN_ID)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_summary_says_where_the_run_stands() {
        let mut manifest = Manifest::for_tests(crate::types::Route::Chore);
        let mut record = crate::run_dir::manifest::PhaseRecord::started(PhaseName::Plan, None);
        record.status = crate::run_dir::manifest::PhaseStatus::Done;
        record.note = Some("3 steps".into());
        record.cost_usd = 0.5;
        manifest.phases.push(record);
        let summary = phase_summary(&manifest, PhaseName::Plan, Some(PhaseName::Implement));
        assert!(
            summary.starts_with("#### baton · plan: done — 3 steps"),
            "{summary}"
        );
        assert!(
            summary.contains("| #1 | chore | running | $0.5000 (0 tokens) | `implement` |"),
            "{summary}"
        );
    }

    #[test]
    fn outputs_are_one_line_each() {
        let outputs = Outputs {
            outcome: "done".into(),
            route: "feature".into(),
            next: String::new(),
            skipped: false,
            issue: "7".into(),
            pull_request: Some((3, "https://forge/pr/3\nextra".into())),
        };
        assert_eq!(
            outputs.render(),
            "outcome=done\nroute=feature\nnext=\nskipped=false\nissue=7\npr=3\npr_url=https://forge/pr/3extra\n"
        );
    }
}
