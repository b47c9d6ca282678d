//! One file per command; `dispatch` picks the one the command line names.
//! Commands turn arguments into `Settings` and a `Job`, drive the phases and
//! map how the run stands to an exit status.

pub mod command;
pub mod config;
pub mod demo;
pub mod init;
pub mod phase;
pub mod run;
pub mod status;
pub mod sweep;

use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command, ConfigCommand};
use crate::error::{ExitStatus, RunStopped};
use crate::interrupt::Interrupts;
use crate::phases::{self, Job, PhaseReport};
use crate::pipeline::machine;
use crate::report::Reporter;
use crate::run_dir::{artifact, read_manifest};
use crate::settings::{Settings, env};
use crate::types::{Outcome, Route};

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitStatus> {
    let reporter = crate::report::for_environment();
    let reporter = reporter.as_ref();
    match cli.command {
        Command::Demo(arguments) => demo::run(reporter, &arguments).await,
        Command::Run(arguments) => run::run(reporter, cli.config.as_deref(), arguments).await,
        Command::Phase(arguments) => phase::run(reporter, cli.config.as_deref(), arguments).await,
        Command::Status(arguments) => status::run(arguments),
        Command::Init(arguments) => init::run(reporter, cli.config.as_deref(), &arguments),
        Command::Command => command::run(reporter, cli.config.as_deref()).await,
        Command::Sweep(arguments) => sweep::run(reporter, cli.config.as_deref(), &arguments).await,
        Command::Config {
            command: ConfigCommand::Check,
        } => config::check(reporter, cli.config.as_deref()),
    }
}

/// Installs the redactor for these settings and tells the reporter which
/// values it must keep out of sight (a runner masks them in its logs).
/// The forge token is left out: the runner masks it already (it is the
/// workflow's token or a secret), and baton never prints it, not even to
/// mask it.
fn protect(settings: &Settings, reporter: &dyn Reporter) {
    settings.install_redactor();
    let forge_tokens: Vec<String> = [env::BATON_FORGE_TOKEN, env::GITHUB_TOKEN]
        .iter()
        .filter_map(|name| env::get(name))
        .collect();
    let redactor = crate::secrets::global();
    let values: Vec<&str> = redactor
        .values()
        .filter(|value| !forge_tokens.iter().any(|token| token == value))
        .collect();
    reporter.protect(&values);
}

/// `--run-dir`, else `$BATON_RUN_DIR`.
fn run_dir_or_env(run_dir: Option<PathBuf>) -> Option<PathBuf> {
    run_dir.or_else(|| env::get(env::BATON_RUN_DIR).map(PathBuf::from))
}

/// `--run-dir`, else `$BATON_RUN_DIR`, else the newest run under
/// `.baton/runs` of the repository (`--repo`, else the current directory or
/// the nearest one above it that has runs), said on stderr.
fn require_run_dir(run_dir: Option<PathBuf>, repo: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(run_dir) = run_dir_or_env(run_dir) {
        return Ok(run_dir);
    }
    let start = match repo {
        Some(repo) => repo.to_path_buf(),
        None => std::env::current_dir()?,
    };
    let runs = start
        .ancestors()
        .map(|directory| directory.join(".baton/runs"))
        .find(|runs| runs.is_dir());
    let newest = runs.as_deref().and_then(newest_run);
    match newest {
        Some(run_dir) => {
            eprintln!("using the newest run, {}", run_dir.display());
            Ok(run_dir)
        }
        None => Err(crate::bad_input!(
            "no run to use: none under {}; pass --run-dir DIR or set ${}, or start one with `baton run --issue-file FILE`",
            start.join(".baton/runs").display(),
            env::BATON_RUN_DIR
        )),
    }
}

/// The run directory under `runs` whose manifest changed last.
fn newest_run(runs: &Path) -> Option<PathBuf> {
    std::fs::read_dir(runs)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let modified = entry
                .path()
                .join(artifact::MANIFEST)
                .metadata()
                .and_then(|metadata| metadata.modified())
                .ok()?;
            Some((modified, entry.path()))
        })
        .max()
        .map(|(_, path)| path)
}

/// The route a `--route` value names, as bad input when it names none.
fn parse_route(text: Option<&str>) -> anyhow::Result<Option<Route>> {
    text.map(|text| {
        text.parse()
            .map_err(|message: String| crate::bad_input!("--route: {message}"))
    })
    .transpose()
}

fn interrupts() -> anyhow::Result<Interrupts> {
    Interrupts::install()
        .map_err(|error| anyhow::anyhow!("cannot listen for SIGINT and SIGTERM: {error}"))
}

/// The local driver: whatever `next_phase` says, each phase reopening the
/// run directory exactly as a CI job would, until the run has ended and
/// published, or a signal stops it. The state machine's bound backs the
/// loop: a driver that went past it would be a bug, and it says so.
pub async fn drive(job: &mut Job<'_>, run_dir: &Path) -> anyhow::Result<()> {
    let bound = machine::max_executions(&read_manifest(run_dir)?);
    for _ in 0..=bound {
        let manifest = read_manifest(run_dir)?;
        let Some(next) = machine::next_phase(&manifest) else {
            return Ok(());
        };
        match phases::run_phase(job, next, run_dir, false).await? {
            PhaseReport::Ran { .. } => {}
            PhaseReport::Interrupted => return Ok(()),
            other => {
                return Err(anyhow::anyhow!(
                    "internal error: the next phase, {next}, did not run ({other:?}); the run directory is unchanged"
                ));
            }
        }
    }
    Err(anyhow::anyhow!(
        "internal error: the run did not end within {bound} phase executions"
    ))
}

/// The step outputs (SPEC §9) for the run as it stands.
fn outputs(run_dir: &Path, skipped: bool) -> anyhow::Result<crate::ci::Outputs> {
    let manifest = read_manifest(run_dir)?;
    Ok(crate::ci::Outputs {
        outcome: manifest.outcome.to_string(),
        route: manifest.route.to_string(),
        next: machine::next_phase(&manifest)
            .map(|phase| phase.to_string())
            .unwrap_or_default(),
        skipped,
        issue: manifest.issue.number.to_string(),
        pull_request: manifest
            .forge
            .and_then(|forge| forge.pull_request)
            .map(|pull| (pull.number, pull.url)),
    })
}

/// Prints the closing table and where the evidence is; exit status by outcome.
pub fn conclude(reporter: &dyn Reporter, run_dir: &Path) -> anyhow::Result<ExitStatus> {
    let manifest = &read_manifest(run_dir)?;
    reporter.summary(manifest);
    let evidence = run_dir.join(artifact::EVIDENCE_MARKDOWN);
    reporter.line("");
    reporter.line(&format!("outcome: {}", manifest.outcome));
    if let Some(reason) = &manifest.reason {
        reporter.line(&format!("reason:  {reason}"));
    }
    if evidence.exists() {
        reporter.line(&format!("evidence: {}", evidence.display()));
    }
    match manifest.outcome {
        Outcome::Running if machine::next_phase(manifest).is_none() => Err(crate::bad_input!(
            "{} says the run is running, yet nothing is left to run: the run directory was changed by hand",
            run_dir.join(artifact::MANIFEST).display()
        )),
        Outcome::Done | Outcome::Running => Ok(ExitStatus::Success),
        Outcome::Cancelled => {
            if let Some(next) = machine::next_phase(manifest) {
                reporter.line(&format!(
                    "resume:  baton phase {next} --run-dir {}",
                    run_dir.display()
                ));
            }
            Ok(ExitStatus::Interrupted)
        }
        outcome => {
            // Whatever stopped it (a provider down, a budget, a gate), the
            // way back once the cause is fixed is the phase where it stopped.
            if let Some(stopped) = manifest
                .valid()
                .rev()
                .map(|(_, record)| record.name)
                .find(|phase| *phase != crate::types::PhaseName::Publish)
                && outcome != Outcome::Rejected
            {
                reporter.line(&format!(
                    "rerun:   baton phase {stopped} --force --run-dir {}   (once the cause is fixed)",
                    run_dir.display()
                ));
            }
            Err(RunStopped(format!(
                "the run ended {outcome}: {}; see {}",
                manifest.reason.as_deref().unwrap_or("no reason recorded"),
                evidence.display()
            ))
            .into())
        }
    }
}
