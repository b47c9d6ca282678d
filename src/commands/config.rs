//! `baton config check`: every problem in the config file, with its key path.

use std::path::Path;

use anyhow::Context as _;

use crate::config::{CONFIG_LOOKUP, Config, config_error};
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
            // Every problem at once: the file's, then what would stop a
            // run before it spends (gates, keys) on the config as far as
            // it could be read.
            let text = std::fs::read_to_string(&path).map_err(|error| {
                crate::bad_input!(
                    "cannot read config file {}: {error}; pass a readable UTF-8 file with --config",
                    path.display()
                )
            })?;
            let file = path.display().to_string();
            let (config, mut issues) =
                Config::parse_with_issues(&text).map_err(|issue| config_error(&file, &[issue]))?;
            // A section that could not be read has its defaults: what
            // preflight says of it would be noise beside the real problem.
            let unread = |sections: &[&str]| {
                issues.iter().any(|issue| {
                    sections.iter().any(|section| {
                        issue.key == *section
                            || issue.key.starts_with(&format!("{section}."))
                            || issue.key.starts_with(&format!("{section}["))
                    })
                })
            };
            let gates_unread = unread(&["gates"]);
            let models_unread = unread(&["models", "providers", "phases"]);
            let preflight: Vec<_> = settings::preflight_issues(&config)
                .into_iter()
                .filter(|issue| {
                    if issue.key == "gates" {
                        !gates_unread
                    } else {
                        !models_unread
                    }
                })
                .collect();
            issues.extend(preflight);
            if !issues.is_empty() {
                return Err(config_error(&file, &issues));
            }
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
