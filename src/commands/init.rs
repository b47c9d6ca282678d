//! `baton init`: a commented `baton.toml` and the pipeline workflow, written
//! into a repository. Nothing that exists is overwritten without `--force`,
//! and when one file cannot be written, none is.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::ci::workflow::{self, WorkflowOptions};
use crate::cli::InitArgs;
use crate::config::Config;
use crate::error::ExitStatus;
use crate::report::Reporter;
use crate::settings;
use crate::types::ForgeKind;

const CONFIG_TEMPLATE: &str = include_str!("../../templates/baton.toml");

pub fn run(
    reporter: &dyn Reporter,
    explicit: Option<&Path>,
    arguments: &InitArgs,
) -> anyhow::Result<ExitStatus> {
    let repo = match &arguments.repo {
        Some(repo) => repo.clone(),
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    if !repo.is_dir() {
        return Err(crate::bad_input!(
            "--repo {}: no such directory; pass the repository's root",
            repo.display()
        ));
    }
    let forge = match arguments.forge.as_deref() {
        Some("github") => ForgeKind::GitHub,
        Some("forgejo") => ForgeKind::Forgejo,
        Some(other) => {
            return Err(crate::bad_input!(
                "--forge {other}: expected github or forgejo"
            ));
        }
        None if repo.join(".forgejo").is_dir() && !repo.join(".github").is_dir() => {
            ForgeKind::Forgejo
        }
        None => ForgeKind::GitHub,
    };
    let folder = match forge {
        ForgeKind::GitHub => ".github",
        ForgeKind::Forgejo => ".forgejo",
    };
    // An existing config is kept and shapes the workflow; else one is written.
    let (config, config_file) = if let Some(path) = settings::locate_config(explicit, &repo)? {
        (Config::load(&path)?, None)
    } else {
        let text = config_text(&repo);
        let config = Config::parse(&text).map_err(|issues| {
            anyhow::anyhow!("internal error: the config template does not parse: {issues:?}")
        })?;
        (config, Some((repo.join(folder).join("baton.toml"), text)))
    };
    let mut options = WorkflowOptions::for_config(&config, forge);
    if let Some(runs_on) = &arguments.runs_on {
        options.runs_on.clone_from(runs_on);
    }
    if let Some(action) = &arguments.action {
        options.action.clone_from(action);
    }
    if let Some(version) = &arguments.version {
        options.version.clone_from(version);
    }
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    files.extend(config_file);
    files.push((
        repo.join(folder).join("workflows").join("baton.yml"),
        workflow::render(&options),
    ));
    if !arguments.force {
        let existing: Vec<String> = files
            .iter()
            .filter(|(path, _)| path.exists())
            .map(|(path, _)| path.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(crate::bad_input!(
                "{} already exist(s); nothing was written (pass --force to overwrite)",
                existing.join(" and ")
            ));
        }
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        crate::run_dir::write_atomic(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        reporter.line(&format!("wrote {}", path.display()));
    }
    reporter.line("");
    reporter.line("next:");
    let secrets = if options.model_secrets.is_empty() {
        "your model provider's key".to_owned()
    } else {
        options.model_secrets.join(", ")
    };
    reporter.line(&format!(
        "  1. add the repository secret(s) {secrets}, and BATON_FORGE_TOKEN (an app token or a PAT) so the pull request's checks run"
    ));
    reporter.line(
        "  2. edit the [[gates]] in the config: they are the commands CI judges a change by; then `baton config check`",
    );
    reporter.line(&format!(
        "  3. commit both files, create the label `{}`, and add it to an issue",
        config.triggers.label
    ));
    Ok(ExitStatus::Success)
}

/// The commented config, with gates guessed from the repository's build files.
fn config_text(repo: &Path) -> String {
    let guesses: &[(&str, &str, &str)] = &[
        ("Cargo.toml", "test", "cargo test --locked"),
        ("package.json", "test", "npm test"),
        ("go.mod", "test", "go test ./..."),
        ("pyproject.toml", "test", "python -m pytest"),
        ("Makefile", "test", "make test"),
    ];
    let gates = match guesses.iter().find(|(file, _, _)| repo.join(file).exists()) {
        Some((file, name, run)) => format!(
            "# Guessed from {file}; add lint and build gates as you run them.\n[[gates]]\nname = \"{name}\"\nrun = \"{run}\"\ntimeout_s = 900\nrequired = true\n"
        ),
        // Nothing to guess from: no gate is written, so `config check` and
        // the first run say what is missing instead of running a command
        // this repository may not have.
        None => "# No build file recognised: name the command that tests this repository\n# and uncomment the gate; baton refuses to run without one.\n# [[gates]]\n# name = \"test\"\n# run = \"make test\"\n# timeout_s = 900\n# required = true\n".to_owned(),
    };
    CONFIG_TEMPLATE.replace("{gates}", &gates)
}
