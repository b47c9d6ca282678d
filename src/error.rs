//! Error kinds that decide the exit code: one classification at the top.
//!
//! Adapters return their own `thiserror` enums and orchestration adds context
//! with `anyhow`; `classify` walks the chain once and maps it to 0/1/2.

use std::process::ExitCode;

/// Bad usage or input: an unknown flag, an invalid config, a missing or tampered
/// run directory, an unreadable event. Exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

impl InputError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// The run cannot go on (gates red, blocked, budget exceeded, policy rejected).
/// Exit code 1. The message is what a person needs to know next.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RunStopped(pub String);

/// What the process ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    RunStopped,
    BadInput,
    /// SIGINT or SIGTERM stopped the run (130, as a shell reports Ctrl-C).
    Interrupted,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::RunStopped => ExitCode::from(1),
            ExitStatus::BadInput => ExitCode::from(2),
            ExitStatus::Interrupted => ExitCode::from(crate::interrupt::EXIT_CODE),
        }
    }
}

/// Bad input anywhere in the chain wins: it means nothing should be retried
/// until a person fixes a file, flag or key.
pub fn classify(error: &anyhow::Error) -> ExitStatus {
    if error.chain().any(<dyn std::error::Error>::is::<InputError>) {
        ExitStatus::BadInput
    } else {
        ExitStatus::RunStopped
    }
}

/// Shorthand for returning an `InputError` from orchestration code.
#[macro_export]
macro_rules! bad_input {
    ($($arg:tt)*) => {
        ::anyhow::Error::new($crate::error::InputError::new(format!($($arg)*)))
    };
}
