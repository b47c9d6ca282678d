//! `baton demo`: the bundled example end to end, with a scripted model and
//! real gates, so anyone can watch every mechanism without an API key.
//!
//! The example is compiled into the binary; the demo writes it to a fresh
//! directory, commits it (with a fixed date, so the base commit is the same
//! everywhere) and runs the feature route on it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{conclude, drive, interrupts, protect};
use crate::bad_input;
use crate::cli::DemoArgs;
use crate::error::ExitStatus;
use crate::phases::{self, Job, PhaseReport};
use crate::report::Reporter;
use crate::run_dir::read_manifest;
use crate::settings::Settings;
use crate::trigger::{IntakeRequest, Trigger};
use crate::types::Outcome;

const PROJECT: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../examples/demo/project/Cargo.toml"),
    ),
    (
        ".gitignore",
        include_str!("../../examples/demo/project/gitignore"),
    ),
    (
        "AGENTS.md",
        include_str!("../../examples/demo/project/AGENTS.md"),
    ),
    (
        "README.md",
        include_str!("../../examples/demo/project/README.md"),
    ),
    (
        "baton.toml",
        include_str!("../../examples/demo/project/baton.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../examples/demo/project/src/lib.rs"),
    ),
];
const ISSUE: &str = include_str!("../../examples/demo/issue.md");
const SCRIPT: &str = include_str!("../../examples/demo/script.json");

/// The demo's layout under its directory.
pub struct DemoLayout {
    pub project: PathBuf,
    pub issue: PathBuf,
    pub script: PathBuf,
    pub run_dir: PathBuf,
}

impl DemoLayout {
    pub fn under(directory: &Path) -> Self {
        Self {
            project: directory.join("project"),
            issue: directory.join("issue.md"),
            script: directory.join("script.json"),
            run_dir: directory.join("run"),
        }
    }
}

pub async fn run(reporter: &dyn Reporter, arguments: &DemoArgs) -> anyhow::Result<ExitStatus> {
    let directory = match &arguments.dir {
        Some(directory) => directory.clone(),
        None => tempfile::Builder::new()
            .prefix("baton-demo-")
            .tempdir()?
            .keep(),
    };
    let layout = prepare(&directory)?;
    if arguments.prepare_only {
        reporter.line(&format!(
            "demo prepared in {}: project {}, issue {}, script {}",
            directory.display(),
            layout.project.display(),
            layout.issue.display(),
            layout.script.display()
        ));
        reporter.line(&format!(
            "run it:  cd {} && baton run --issue-file {} --run-dir {}",
            layout.project.display(),
            layout.issue.display(),
            layout.run_dir.display()
        ));
        return Ok(ExitStatus::Success);
    }
    reporter.line(&format!("baton demo in {}", directory.display()));
    let settings = Settings::resolve(
        Some(&layout.project.join("baton.toml")),
        Some(&layout.project),
    )?;
    protect(&settings, reporter);
    let request = IntakeRequest {
        trigger: Trigger::IssueFile(layout.issue.clone()),
        run_dir: Some(layout.run_dir.clone()),
        route: None,
    };
    let mut interrupts = interrupts()?;
    let mut job = Job {
        settings: &settings,
        reporter,
        interrupts: &mut interrupts,
    };
    let (run_dir, report) = phases::run_intake(&mut job, request).await?;
    if report != PhaseReport::Interrupted {
        drive(&mut job, &run_dir).await?;
    }
    let status = conclude(reporter, &run_dir)?;
    if read_manifest(&run_dir)?.outcome == Outcome::Done {
        next_steps(reporter, &layout);
    }
    Ok(status)
}

/// What a new user does after the demo: read the evidence, see the patch
/// apply, then point baton at their own repository and a real model.
fn next_steps(reporter: &dyn Reporter, layout: &DemoLayout) {
    let run_dir = layout.run_dir.display();
    let project = layout.project.display();
    reporter.line("");
    reporter.line("next:");
    reporter.line(&format!(
        "  read the evidence (the PR body):  less {run_dir}/evidence.md"
    ));
    reporter.line(&format!(
        "  apply the change it verified:     git -C {project} apply {run_dir}/changes.patch"
    ));
    reporter.line(&format!(
        "  see how each phase went:          baton status --run-dir {run_dir}"
    ));
    reporter.line(
        "  try it on your repository:        cd your-repo && baton init, set a model key, then baton run --issue-file issue.md",
    );
    reporter.line("                                    (README: \"Use it on your repository\")");
}

/// Writes the example project (as a git repository), its issue and script.
pub fn prepare(directory: &Path) -> anyhow::Result<DemoLayout> {
    let layout = DemoLayout::under(directory);
    if directory.exists() && !directory.is_dir() {
        return Err(bad_input!(
            "--dir {} is a file, not a directory; pass a directory that does not hold a demo yet (or leave --dir out for a temporary one)",
            directory.display()
        ));
    }
    std::fs::create_dir_all(directory).map_err(|error| {
        bad_input!(
            "--dir {}: cannot create the directory: {error}",
            directory.display()
        )
    })?;
    if layout.project.exists() || layout.run_dir.exists() {
        return Err(bad_input!(
            "{} already holds a demo; pass a new --dir",
            directory.display()
        ));
    }
    for (relative, content) in PROJECT {
        let path = layout.project.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, content)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    std::fs::write(&layout.issue, ISSUE)?;
    std::fs::write(&layout.script, SCRIPT)?;
    commit(&layout.project)?;
    Ok(layout)
}

/// One commit with a fixed author and date: the demo's base commit is the
/// same on every machine, so runs can be compared byte for byte.
fn commit(project: &Path) -> anyhow::Result<()> {
    let repository = git2::Repository::init(project)?;
    let mut index = repository.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repository.find_tree(index.write_tree()?)?;
    let when = git2::Time::new(1_767_225_600, 0); // 2026-01-01T00:00:00Z
    let signature = git2::Signature::new("baton demo", "demo@baton.invalid", &when)?;
    repository.commit(
        Some("HEAD"),
        &signature,
        &signature,
        "textkit: word_count",
        &tree,
        &[],
    )?;
    Ok(())
}
