//! Parse arguments, start logging, run, turn the result into an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = baton::cli::Cli::parse();
    baton::logging::init();
    match baton::run(cli) {
        Ok(status) => status.into(),
        Err(error) => {
            let status = baton::error::classify(&error);
            let message = format!("{error:#}");
            eprintln!("error: {}", baton::secrets::redact(&message));
            status.into()
        }
    }
}
