//! `baton phase NAME`: one phase on a run directory, how every CI job calls
//! baton. A finished, skipped or ended phase is a no-op that exits 0.

use std::path::Path;

use super::{conclude, interrupts, outputs, parse_route, protect, require_run_dir, run_dir_or_env};
use crate::ci::event::{self, EventRequest};
use crate::cli::PhaseArgs;
use crate::error::ExitStatus;
use crate::phases::{self, Job, PhaseReport};
use crate::report::Reporter;
use crate::run_dir::{RunDir, read_manifest};
use crate::settings::Settings;
use crate::settings::env;
use crate::trigger::{IntakeRequest, Trigger};
use crate::types::{Outcome, PhaseName};

pub async fn run(
    reporter: &dyn Reporter,
    config: Option<&Path>,
    arguments: PhaseArgs,
) -> anyhow::Result<ExitStatus> {
    let name: PhaseName = arguments
        .name
        .parse()
        .map_err(|message: String| crate::bad_input!("{message}"))?;
    let repo = arguments.target.repo.as_deref();
    if name != PhaseName::Intake && (arguments.issue_file.is_some() || arguments.route.is_some()) {
        return Err(crate::bad_input!(
            "--issue-file and --route belong to `baton phase intake`; {name} reads the run directory"
        ));
    }
    if arguments.finalise && name != PhaseName::Publish {
        return Err(crate::bad_input!(
            "--finalise belongs to `baton phase publish`; {name} cannot finalise a run"
        ));
    }
    let mut interrupts = interrupts()?;
    let (run_dir, report) = if name == PhaseName::Intake {
        let settings = Settings::resolve(config, repo)?;
        crate::settings::preflight(&settings.config, &settings.config_source)?;
        protect(&settings, reporter);
        let mut route = parse_route(arguments.route.as_deref())?;
        let trigger = match arguments.issue_file {
            Some(issue_file) => Trigger::IssueFile(issue_file),
            None => match read_event(&settings)? {
                EventRequest::Start {
                    issue,
                    route: asked,
                    description,
                    sender,
                    fix_comment,
                    ..
                } => {
                    if let Some(sender) = sender
                        && let Some(refusal) =
                            phases::authorize(&settings.config, issue, &sender).await?
                    {
                        return skipped(reporter, &refusal);
                    }
                    route = route.or(asked);
                    if fix_comment.is_some() {
                        route = Some(crate::types::Route::Fix);
                    }
                    Trigger::Forge {
                        issue,
                        description,
                        fix_comment,
                    }
                }
                EventRequest::Skip(reason) => return skipped(reporter, &reason),
            },
        };
        let request = IntakeRequest {
            trigger,
            run_dir: run_dir_or_env(arguments.target.run_dir),
            route,
        };
        let mut job = Job {
            settings: &settings,
            reporter,
            interrupts: &mut interrupts,
        };
        let (run_dir, report) = phases::run_intake(&mut job, request).await?;
        // Where the run went, and how the next job finds it.
        if let Ok(manifest) = read_manifest(&run_dir)
            && let Some(next) = crate::pipeline::machine::next_phase(&manifest)
        {
            reporter.line(&format!(
                "run directory: {} (next: baton phase {next} --run-dir {})",
                run_dir.display(),
                run_dir.display()
            ));
        } else {
            reporter.line(&format!("run directory: {}", run_dir.display()));
        }
        (run_dir, report)
    } else {
        let run_dir = require_run_dir(arguments.target.run_dir, repo)?;
        let manifest = read_manifest(&run_dir)?;
        let settings = Settings::pinned(config, repo, &manifest)?;
        protect(&settings, reporter);
        if arguments.finalise {
            finalise(reporter, &run_dir)?;
        }
        let mut job = Job {
            settings: &settings,
            reporter,
            interrupts: &mut interrupts,
        };
        let report = phases::run_phase(&mut job, name, &run_dir, arguments.force).await;
        if report.is_err() {
            // A phase that could not finish still tells the job graph where
            // the run stands (`next` is the same phase again).
            if let Ok(outputs) = outputs(&run_dir, false) {
                outputs.write()?;
            }
        }
        (run_dir, report?)
    };
    outputs(&run_dir, matches!(report, PhaseReport::Skipped(_)))?.write()?;
    if name != PhaseName::Publish
        && matches!(report, PhaseReport::Ran { .. } | PhaseReport::Interrupted)
    {
        let manifest = read_manifest(&run_dir)?;
        let next = crate::pipeline::machine::next_phase(&manifest);
        crate::ci::step_summary(&crate::ci::phase_summary(&manifest, name, next))?;
    }
    match report {
        PhaseReport::Skipped(_) | PhaseReport::AlreadyDone | PhaseReport::Ended(_) => {
            Ok(ExitStatus::Success)
        }
        PhaseReport::Ran {
            outcome: Outcome::Running,
        } if name == PhaseName::Verify && gates_failed(&run_dir)? => {
            // The run goes on to repair, but this job is red: CI shows
            // the failing gates where they failed.
            reporter.line("gates failed: the run goes on with repair");
            Ok(ExitStatus::RunStopped)
        }
        PhaseReport::Ran {
            outcome: Outcome::Running | Outcome::Done,
        } => Ok(ExitStatus::Success),
        PhaseReport::Ran { .. } | PhaseReport::Interrupted => conclude(reporter, &run_dir),
    }
}

/// Whether the verify that just ran found a gate red.
fn gates_failed(run_dir: &Path) -> anyhow::Result<bool> {
    let manifest = read_manifest(run_dir)?;
    Ok(
        crate::pipeline::machine::last_verify(&manifest).and_then(|verify| verify.passed)
            == Some(false),
    )
}

/// `publish --finalise`: a run the pipeline left before its end is ended
/// `cancelled`, so publish can finalise it.
fn finalise(reporter: &dyn Reporter, run_dir: &Path) -> anyhow::Result<()> {
    let mut run = RunDir::open_for_write(run_dir)?;
    if crate::pipeline::machine::finalise(
        &mut run.manifest,
        "a job failed, was cancelled or did not run (see the workflow run)",
    ) {
        run.save()?;
        reporter.line(&format!(
            "· publish   finalising: {}",
            run.manifest
                .reason
                .as_deref()
                .unwrap_or("the run was cancelled")
        ));
    }
    Ok(())
}

/// The CI event that started this job: intake's trigger when no
/// `--issue-file` is given.
fn read_event(settings: &Settings) -> anyhow::Result<EventRequest> {
    let (Some(name), Some(path)) = (
        env::get(env::GITHUB_EVENT_NAME),
        env::get(env::GITHUB_EVENT_PATH),
    ) else {
        return Err(crate::bad_input!(
            "intake needs --issue-file FILE, or a CI event (${} and ${})",
            env::GITHUB_EVENT_NAME,
            env::GITHUB_EVENT_PATH
        ));
    };
    event::read(&name, Path::new(&path), &settings.config.triggers.label)
}

/// An event baton does not act on: exit 0 with `skipped=true`.
fn skipped(reporter: &dyn Reporter, reason: &str) -> anyhow::Result<ExitStatus> {
    reporter.line(&format!("· intake    skipped: {reason}"));
    crate::ci::Outputs {
        skipped: true,
        ..crate::ci::Outputs::default()
    }
    .write()?;
    Ok(ExitStatus::Success)
}
