//! baton: a verified, phase-per-job pipeline that turns an issue into an
//! evidence-backed pull request. `run` is the whole program behind `main`;
//! each command's body lives in `commands/`.

pub mod agent;
pub mod ci;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod digest;
pub mod error;
pub mod evidence;
pub mod forge;
pub mod git;
pub mod interrupt;
pub mod llm;
pub mod logging;
pub mod patch;
pub mod phases;
pub mod pipeline;
pub mod policy;
pub mod records;
pub mod report;
pub mod run_dir;
pub mod sandbox;
pub mod secrets;
pub mod settings;
pub mod trigger;
pub mod types;

use cli::Cli;
use error::ExitStatus;

pub fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(commands::dispatch(cli))
}
