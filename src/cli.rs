//! Command-line types only (clap). Nothing here is seen by the core:
//! `settings` turns these into plain values first.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The exit codes, shown at the end of every command's help.
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0    done, or the phase finished and the run goes on
  1    the run stopped (blocked, failed, rejected, budget_exceeded), or verify found a gate red
  2    bad input: a config key, flag, file or variable to fix; nothing was spent
  130  interrupted (SIGINT or SIGTERM); the run is cancelled and resumable"
    };
}

const MAIN_HELP: &str = concat!(
    "Examples:
  baton demo                         the bundled example, end to end, no API key
  baton init                         write baton.toml and the CI workflow into this repository
  baton config check                 every problem of the config at once
  baton run --issue-file issue.md    a whole run on this machine
  baton status                       how the newest run stands

",
    exit_codes!()
);

#[derive(Debug, Parser)]
#[command(
    name = "baton",
    version,
    about = "Turn an issue into a CI-verified, evidence-backed pull request",
    after_help = MAIN_HELP
)]
pub struct Cli {
    /// Config file (else $BATON_CONFIG, .github/baton.toml, .forgejo/baton.toml, baton.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bundled example end to end with a scripted model (no API key).
    #[command(after_help = concat!("Examples:\n  baton demo\n  baton demo --dir /tmp/baton-demo\n  baton demo --prepare-only --dir /tmp/baton-demo", "\n\n", exit_codes!()))]
    Demo(DemoArgs),
    /// Run a whole route on this machine.
    #[command(after_help = concat!("Examples:\n  baton run --issue-file issue.md\n  baton run --issue-file issue.md --route hotfix\n  baton run --run-dir .baton/runs/local-1795406211-3bed    resume an interrupted run", "\n\n", exit_codes!()))]
    Run(RunArgs),
    /// Run one phase on a run directory (how every CI job calls baton).
    #[command(after_help = concat!("Examples:\n  baton phase intake --issue-file issue.md --run-dir run\n  baton phase spec --run-dir run\n  baton phase verify --run-dir run --force    verify again, superseding what came after", "\n\n", exit_codes!()))]
    Phase(PhaseArgs),
    /// Show a run's phases, spend and outcome.
    #[command(after_help = concat!("Examples:\n  baton status                       the newest run under .baton/runs\n  baton status --run-dir run | less\n  baton status --json | jq .outcome", "\n\n", exit_codes!()))]
    Status(StatusArgs),
    /// Write a commented baton.toml and the pipeline workflow into a repository.
    #[command(after_help = concat!("Examples:\n  baton init\n  baton init --forge forgejo --runs-on docker\n  baton init --force    rewrite the workflow after changing [budget].max_repairs", "\n\n", exit_codes!()))]
    Init(InitArgs),
    /// Act on a `/baton <verb>` comment (the issue_comment event in CI).
    #[command(after_help = concat!("Examples:\n  baton command    in the workflow's comment job: reads $GITHUB_EVENT_PATH, asks the forge with its token", "\n\n", exit_codes!()))]
    Command,
    /// Start runs for open issues labelled `[triggers].sweep_label` (the scheduled sweep).
    #[command(after_help = concat!("Examples:\n  baton sweep --dry-run    the plan, as a table; nothing is started\n  baton sweep", "\n\n", exit_codes!()))]
    Sweep(SweepArgs),
    /// Configuration commands.
    #[command(after_help = concat!("Examples:\n  baton config check\n  baton --config ci/baton.toml config check", "\n\n", exit_codes!()))]
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to put the example project and its run (default: a new temporary directory, kept).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Only set up the example project, its issue and script; do not run.
    #[arg(long)]
    pub prepare_only: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run on this machine: the only mode of `run`, so it may be left out
    /// (CI runs `baton phase` per job).
    #[arg(long)]
    pub local: bool,
    /// The issue as JSON (GitHub's issue shape) or Markdown (`# Title` then the body).
    /// Without it, the run in --run-dir is resumed from its next phase.
    #[arg(long, value_name = "FILE")]
    pub issue_file: Option<PathBuf>,
    #[command(flatten)]
    pub target: Target,
    /// Force the route instead of labels or the model.
    #[arg(long, value_name = "ROUTE")]
    pub route: Option<String>,
}

#[derive(Debug, Args)]
pub struct Target {
    /// The repository (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// The run directory (default: $BATON_RUN_DIR; intake creates .baton/runs/<run id> in the
    /// repository, the other phases and a resumed run use the newest one there).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PhaseArgs {
    /// intake spec design plan tests implement verify repair review split publish
    pub name: String,
    #[command(flatten)]
    pub target: Target,
    /// intake only: the issue file.
    #[arg(long, value_name = "FILE")]
    pub issue_file: Option<PathBuf>,
    /// intake only: force the route.
    #[arg(long, value_name = "ROUTE")]
    pub route: Option<String>,
    /// Run the phase again even if it already finished: its last execution
    /// and every phase after it are superseded (an ended run reopens).
    #[arg(long)]
    pub force: bool,
    /// publish only: when the pipeline stopped before the run ended (a job
    /// failed, was cancelled or never ran), end the run `cancelled` and
    /// publish it as it stands. The pipeline's publish job passes it.
    #[arg(long)]
    pub finalise: bool,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Print the plan (stdout) and start nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// github or forgejo (default: forgejo when the repository has a .forgejo folder).
    #[arg(long, value_name = "FORGE")]
    pub forge: Option<String>,
    /// The repository (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Overwrite files that exist.
    #[arg(long)]
    pub force: bool,
    /// The runner label every job runs on (default: ubuntu-latest on GitHub, docker on Forgejo).
    #[arg(long, value_name = "LABEL")]
    pub runs_on: Option<String>,
    /// The action the jobs use (default: the published baton action of this version).
    #[arg(long, value_name = "REF")]
    pub action: Option<String>,
    /// The baton the action installs: a release tag, or `source` (default: this version).
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run (default: $BATON_RUN_DIR, else the newest run under .baton/runs).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Print the manifest summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the config file and report every problem with its key path.
    #[command(after_help = concat!("Examples:\n  baton config check\n  baton --config ci/baton.toml config check", "\n\n", exit_codes!()))]
    Check,
}
