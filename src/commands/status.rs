//! `baton status`: how a run stands and what runs next. It reads a run that
//! another process is working on (the lock is for writers).

use std::io::Write as _;
use std::path::Path;

use super::require_run_dir;
use crate::cli::StatusArgs;
use crate::error::ExitStatus;
use crate::pipeline::machine;
use crate::report::Reporter;
use crate::run_dir::manifest::{Manifest, PhaseStatus};
use crate::run_dir::{RunDir, lock_holder};
use crate::types::Outcome;

pub fn run(arguments: StatusArgs) -> anyhow::Result<ExitStatus> {
    let run_dir = require_run_dir(arguments.run_dir, None)?;
    let mut run = RunDir::open(&run_dir)?;
    // A phase still running shows how long it has run so far.
    for record in &mut run.manifest.phases {
        if record.status == PhaseStatus::Running
            && let Some(started) = crate::clock::parse_rfc3339(&record.started_at)
        {
            record.wall_s = (crate::clock::now_epoch() - started).max(0.0);
        }
    }
    let manifest = &run.manifest;
    let busy = lock_holder(&run_dir);
    let next = machine::next_phase(manifest);
    if arguments.json {
        let summary = serde_json::json!({
            "run_id": manifest.run_id,
            "issue": manifest.issue,
            "route": manifest.route,
            "outcome": manifest.outcome,
            "reason": manifest.reason,
            "phases": manifest.phases.iter().map(|record| serde_json::json!({
                "name": record.name,
                "status": record.status,
                "attempts": record.attempts,
                "passed": record.passed,
                "note": record.note,
                "model": record.model,
                "tokens_in": record.tokens_in,
                "tokens_out": record.tokens_out,
                "cost_usd": record.cost_usd,
                "wall_s": record.wall_s,
            })).collect::<Vec<_>>(),
            "next": next,
            "busy_pid": busy.as_deref().and_then(|pid| pid.parse::<u32>().ok()),
            "spent": manifest.spent(),
        });
        let text = serde_json::to_string_pretty(&summary)?;
        // A reader that closes the pipe early (`| head`) is not an error.
        let mut stdout = std::io::stdout().lock();
        if let Err(error) = writeln!(stdout, "{text}")
            && error.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(error.into());
        }
        return Ok(ExitStatus::Success);
    }
    // The table is data: stdout, so `baton status | less` shows it.
    let reporter: &dyn Reporter = &crate::report::Stdout;
    reporter.line(&format!(
        "run {} · issue #{} {} · route {} · outcome {}",
        manifest.run_id,
        manifest.issue.number,
        manifest.issue.title,
        manifest.route,
        manifest.outcome
    ));
    reporter.summary(manifest);
    reporter.line("");
    reporter.line(&next_line(manifest, next, busy.as_deref(), &run_dir));
    Ok(ExitStatus::Success)
}

/// What a person should do next, in one line.
fn next_line(
    manifest: &Manifest,
    next: Option<crate::types::PhaseName>,
    busy: Option<&str>,
    run_dir: &Path,
) -> String {
    let directory = run_dir.display();
    if let Some(pid) = busy {
        let running = manifest
            .phases
            .last()
            .filter(|record| record.status == PhaseStatus::Running)
            .map_or_else(String::new, |record| {
                format!(" ({} is running)", record.name)
            });
        return format!("busy: process {pid} is working on this run{running}");
    }
    match (manifest.outcome, next) {
        (Outcome::Cancelled, Some(phase)) => format!(
            "cancelled during {phase}: resume with `baton phase {phase} --run-dir {directory}` (or `baton run --local --run-dir {directory}`), in the repository or with --repo"
        ),
        (_, Some(phase)) => {
            let died = manifest.phases.last().is_some_and(|record| {
                record.name == phase && record.status == PhaseStatus::Running
            });
            if died {
                format!(
                    "{phase} did not end (its job died): rerun it with `baton phase {phase} --run-dir {directory}`"
                )
            } else {
                format!("next: baton phase {phase} --run-dir {directory}")
            }
        }
        (Outcome::Running, None) => format!(
            "nothing left to run, yet manifest.json says the run is running: {directory} was changed by hand"
        ),
        (outcome, None) => format!(
            "the run has ended {outcome}; `baton phase NAME --force --run-dir {directory}` reruns NAME and every phase after it"
        ),
    }
}
