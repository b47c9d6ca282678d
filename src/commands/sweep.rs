//! `baton sweep`: start runs for the backlog (SPEC §7, §9). `--dry-run`
//! prints the plan on stdout and starts nothing.

use std::path::Path;

use crate::cli::SweepArgs;
use crate::error::ExitStatus;
use crate::forge::ForgeSettings;
use crate::report::Reporter;
use crate::settings::Settings;
use crate::trigger::sweep::{self, Action};

pub async fn run(
    reporter: &dyn Reporter,
    config: Option<&Path>,
    arguments: &SweepArgs,
) -> anyhow::Result<ExitStatus> {
    let settings = Settings::resolve(config, None)?;
    super::protect(&settings, reporter);
    let config = &settings.config;
    let forge = ForgeSettings::from_environment(&config.forge)?.connect()?;
    let label = &config.triggers.sweep_label;
    let issues = forge.list_issues(label).await?;
    let pulls = forge.open_pull_requests().await?;
    let plan = sweep::plan(&issues, &pulls, forge.repository(), config.sweep.max_runs);
    if arguments.dry_run {
        print!("{}", sweep::render(&plan));
        reporter.line(&format!(
            "dry run: {} of {} issue(s) labelled `{label}` would start; nothing was dispatched",
            plan.iter()
                .filter(|planned| planned.action == Action::Start)
                .count(),
            plan.len()
        ));
        return Ok(ExitStatus::Success);
    }
    if plan.iter().all(|planned| planned.action != Action::Start) {
        reporter.line(&format!(
            "sweep: nothing to start ({} issue(s) labelled `{label}`)",
            plan.len()
        ));
        return Ok(ExitStatus::Success);
    }
    let reference = forge.default_branch().await?;
    let started =
        sweep::start(forge.as_ref(), &plan, &config.triggers.workflow, &reference).await?;
    for number in &started {
        reporter.line(&format!(
            "sweep: started #{number} ({} on {reference})",
            config.triggers.workflow
        ));
    }
    reporter.line(&format!(
        "sweep: {} started, {} skipped",
        started.len(),
        plan.len() - started.len()
    ));
    Ok(ExitStatus::Success)
}
