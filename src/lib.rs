//! baton: a verified, phase-per-job pipeline that turns an issue into an
//! evidence-backed pull request. `run` is the whole program behind `main`.

pub mod agent;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod evidence;
pub mod git;
pub mod llm;
pub mod logging;
pub mod patch;
pub mod phases;
pub mod pipeline;
pub mod policy;
pub mod progress;
pub mod records;
pub mod run_dir;
pub mod secrets;
pub mod settings;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use cli::{Cli, Command, ConfigCommand};
use error::{ExitStatus, RunStopped};
use phases::{IntakeRequest, PhaseReport};
use pipeline::{Outcome, PhaseName};
use run_dir::RunDir;
use settings::Settings;

pub fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(cli))
}

async fn run_async(cli: Cli) -> anyhow::Result<ExitStatus> {
    match cli.command {
        Command::Demo(arguments) => demo::run(&arguments).await,
        Command::Run(arguments) => {
            let settings =
                Settings::resolve(cli.config.as_deref(), arguments.target.repo.as_deref())?;
            settings.install_redactor();
            let route = arguments
                .route
                .as_deref()
                .map(phases::parse_route)
                .transpose()?;
            let request = IntakeRequest {
                issue_file: Some(arguments.issue_file),
                run_dir: arguments.target.run_dir,
                route,
            };
            let run_dir = run_local(&settings, request).await?;
            conclude(&run_dir)
        }
        Command::Phase(arguments) => {
            let name: PhaseName = arguments
                .name
                .parse()
                .map_err(|message: String| bad_input!("{message}"))?;
            let settings =
                Settings::resolve(cli.config.as_deref(), arguments.target.repo.as_deref())?;
            settings.install_redactor();
            if name == PhaseName::Intake {
                let route = arguments
                    .route
                    .as_deref()
                    .map(phases::parse_route)
                    .transpose()?;
                let run_dir = arguments.target.run_dir.or_else(|| {
                    settings::env::get(settings::env::BATON_RUN_DIR).map(PathBuf::from)
                });
                if let Some(directory) = &run_dir
                    && directory.join(run_dir::MANIFEST).exists()
                {
                    // Intake never overwrites a run, not even with --force.
                    progress::line(
                        "· intake    already finished; nothing to do (a new run needs a new --run-dir)",
                    );
                    return Ok(ExitStatus::Success);
                }
                phases::run_intake(
                    &settings,
                    IntakeRequest {
                        issue_file: arguments.issue_file,
                        run_dir,
                        route,
                    },
                )
                .await?;
                return Ok(ExitStatus::Success);
            }
            let run_dir = require_run_dir(arguments.target.run_dir)?;
            match phases::run_phase(&settings, name, &run_dir, arguments.force).await? {
                PhaseReport::Skipped(_) | PhaseReport::AlreadyDone => Ok(ExitStatus::Success),
                PhaseReport::Ended(outcome) => Err(RunStopped(format!(
                    "the run has ended ({outcome}); only publish still runs. See {}",
                    run_dir.join("evidence.md").display()
                ))
                .into()),
                PhaseReport::Ran { outcome } => match outcome {
                    Outcome::Running | Outcome::Done => Ok(ExitStatus::Success),
                    _ => conclude(&run_dir),
                },
            }
        }
        Command::Status(arguments) => status(&require_run_dir(arguments.run_dir)?, arguments.json),
        Command::Config {
            command: ConfigCommand::Check,
        } => config_check(cli.config.as_deref()),
    }
}

fn require_run_dir(run_dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    run_dir
        .or_else(|| settings::env::get(settings::env::BATON_RUN_DIR).map(PathBuf::from))
        .ok_or_else(|| {
            bad_input!(
                "--run-dir DIR is required (or set ${})",
                settings::env::BATON_RUN_DIR
            )
        })
}

/// The local driver: intake, then whatever `next_phase` says, each phase
/// reopening the run directory exactly as a CI job would.
pub async fn run_local(settings: &Settings, request: IntakeRequest) -> anyhow::Result<PathBuf> {
    let run_dir = phases::run_intake(settings, request).await?;
    loop {
        let manifest = RunDir::open(&run_dir)?.manifest;
        let Some(next) = pipeline::next_phase(&manifest) else {
            break;
        };
        phases::run_phase(settings, next, &run_dir, false).await?;
    }
    Ok(run_dir)
}

/// Prints the closing table and where the evidence is; exit status by outcome.
pub fn conclude(run_dir: &Path) -> anyhow::Result<ExitStatus> {
    let run = RunDir::open(run_dir)?;
    progress::summary(&run.manifest);
    let evidence = run_dir.join("evidence.md");
    progress::line("");
    progress::line(&format!("outcome: {}", run.manifest.outcome));
    if let Some(reason) = &run.manifest.reason {
        progress::line(&format!("reason:  {reason}"));
    }
    progress::line(&format!("evidence: {}", evidence.display()));
    match run.manifest.outcome {
        Outcome::Done => Ok(ExitStatus::Success),
        outcome => Err(RunStopped(format!(
            "the run ended {outcome}: {}; see {}",
            run.manifest
                .reason
                .as_deref()
                .unwrap_or("no reason recorded"),
            evidence.display()
        ))
        .into()),
    }
}

fn status(run_dir: &Path, json: bool) -> anyhow::Result<ExitStatus> {
    let run = RunDir::open(run_dir)?;
    let manifest = &run.manifest;
    if json {
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
            })).collect::<Vec<_>>(),
            "next": pipeline::next_phase(manifest),
            "spent": manifest.spent(),
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        progress::line(&format!(
            "run {} · issue #{} {} · route {} · outcome {}",
            manifest.run_id,
            manifest.issue.number,
            manifest.issue.title,
            manifest.route,
            manifest.outcome
        ));
        progress::summary(manifest);
        if let Some(next) = pipeline::next_phase(manifest) {
            progress::line(&format!(
                "next: baton phase {next} --run-dir {}",
                run_dir.display()
            ));
        }
    }
    Ok(ExitStatus::Success)
}

fn config_check(explicit: Option<&Path>) -> anyhow::Result<ExitStatus> {
    let repo = std::env::current_dir().context("cannot read the current directory")?;
    match settings::locate_config(explicit, &repo)? {
        None => {
            progress::line(&format!(
                "no config file found (looked for {}); the built-in defaults apply",
                config::CONFIG_LOOKUP.join(", ")
            ));
            Ok(ExitStatus::Success)
        }
        Some(path) => {
            let config = config::Config::load(&path)?;
            progress::line(&format!(
                "{}: ok ({} gate(s), {} provider(s))",
                path.display(),
                config.gates.len(),
                config.providers.len()
            ));
            if config.gates.is_empty() {
                progress::line(
                    "warning: no [[gates]]: verify will block every run until a gate is configured",
                );
            }
            Ok(ExitStatus::Success)
        }
    }
}
