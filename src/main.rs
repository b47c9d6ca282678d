//! Parse arguments, start logging, run, turn the result into an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The sandbox wrapper (baton re-executed to confine a command) answers
    // before anything else starts: it only confines itself and execs.
    let arguments: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if arguments
        .first()
        .is_some_and(|first| first == baton::sandbox::WRAPPER_ARGUMENT)
    {
        let code = baton::sandbox::wrapper_main(&arguments[1..]);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    baton::sandbox::harden_self();
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
