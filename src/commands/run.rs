//! `baton run --local`: a whole route on this machine, phase by phase as CI
//! jobs would run it; without `--issue-file`, the run in `--run-dir` resumes.

use std::path::Path;

use super::{conclude, drive, interrupts, parse_route, protect, run_dir_or_env};
use crate::cli::RunArgs;
use crate::error::ExitStatus;
use crate::phases::{self, Job, PhaseReport};
use crate::report::Reporter;
use crate::run_dir::{MANIFEST, read_manifest};
use crate::settings::Settings;
use crate::trigger::{IntakeRequest, Trigger};

pub async fn run(
    reporter: &dyn Reporter,
    config: Option<&Path>,
    arguments: RunArgs,
) -> anyhow::Result<ExitStatus> {
    let repo = arguments.target.repo.as_deref();
    let run_dir = run_dir_or_env(arguments.target.run_dir);
    let mut interrupts = interrupts()?;
    let run_dir = if let Some(issue_file) = arguments.issue_file {
        let settings = Settings::resolve(config, repo)?;
        crate::settings::preflight(&settings.config, &settings.config_source)?;
        protect(&settings, reporter);
        let request = IntakeRequest {
            trigger: Trigger::IssueFile(issue_file),
            run_dir,
            route: parse_route(arguments.route.as_deref())?,
        };
        let mut job = Job {
            settings: &settings,
            reporter,
            interrupts: &mut interrupts,
        };
        let (run_dir, report) = phases::run_intake(&mut job, request).await?;
        reporter.line(&format!("run directory: {}", run_dir.display()));
        if report == PhaseReport::Interrupted {
            return conclude(reporter, &run_dir);
        }
        run_dir
    } else {
        if arguments.route.is_some() {
            return Err(crate::bad_input!(
                "--route is fixed at intake; a resumed run keeps its route"
            ));
        }
        Some(super::require_run_dir(run_dir, repo)?)
            .filter(|directory| directory.join(MANIFEST).is_file())
            .ok_or_else(|| {
                crate::bad_input!(
                    "--issue-file FILE starts a run; without it, --run-dir must name an existing run to resume"
                )
            })?
    };
    let manifest = read_manifest(&run_dir)?;
    let settings = Settings::pinned(config, repo, &manifest)?;
    protect(&settings, reporter);
    let mut job = Job {
        settings: &settings,
        reporter,
        interrupts: &mut interrupts,
    };
    drive(&mut job, &run_dir).await?;
    conclude(reporter, &run_dir)
}
