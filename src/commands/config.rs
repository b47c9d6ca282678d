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
        None => Err(crate::bad_input!(
            "no config file found (looked for {}), and the built-in defaults have no [[gates]] to judge a change by; `baton init` writes one",
            CONFIG_LOOKUP.join(", ")
        )),
        Some(path) => {
            let config = Config::load(&path)?;
            settings::preflight(&config, &path.display())?;
            reporter.line(&format!(
                "{}: ok ({} gate(s), {} provider(s), every key the models need is set)",
                path.display(),
                config.gates.len(),
                config
                    .providers
                    .values()
                    .filter(|provider| !provider.builtin)
                    .count()
            ));
            Ok(ExitStatus::Success)
        }
    }
}
