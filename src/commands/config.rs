//! `baton config check`: every problem in the config file, with its key path.

use std::path::Path;

use anyhow::Context as _;

use crate::config::{CONFIG_LOOKUP, Config};
use crate::error::ExitStatus;
use crate::report::Reporter;
use crate::settings;

pub fn check(reporter: &dyn Reporter, explicit: Option<&Path>) -> anyhow::Result<ExitStatus> {
    let repo = std::env::current_dir().context("cannot read the current directory")?;
    match settings::locate_config(explicit, &repo)? {
        None => {
            reporter.line(&format!(
                "no config file found (looked for {}); the built-in defaults apply",
                CONFIG_LOOKUP.join(", ")
            ));
            Ok(ExitStatus::Success)
        }
        Some(path) => {
            let config = Config::load(&path)?;
            reporter.line(&format!(
                "{}: ok ({} gate(s), {} provider(s))",
                path.display(),
                config.gates.len(),
                config.providers.len()
            ));
            if config.gates.is_empty() {
                reporter.line(
                    "warning: no [[gates]]: verify will block every run until a gate is configured",
                );
            }
            Ok(ExitStatus::Success)
        }
    }
}
