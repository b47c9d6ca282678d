//! The pipeline workflow, rendered for GitHub Actions or Forgejo Actions:
//! one job per phase, chained with `needs`, the run directory handed from
//! job to job as an artifact.
//!
//! How the chain works. Every phase job outputs `next` (the phase the state
//! machine says runs next, or `none`) and `artifact` (the name of the run
//! directory it uploaded), both only once its upload succeeded. A job runs
//! when the latest job before it that ran says `next` is its phase, and it
//! downloads that job's artifact. Jobs the route does not contain, and the
//! repairs a green verify makes unnecessary, are skipped (grey in the UI);
//! the repair loop is unrolled to `[budget].max_repairs`. The state machine
//! decides; the workflow only follows it, so the two cannot disagree.
//!
//! Who holds what. `permissions: {}` at the top; intake (which reads the
//! issue and posts the tracking comment, and runs no model tools and no
//! untrusted code) and publish (which runs neither either) are the only jobs
//! with a write token. Model jobs read the repository and get the model keys
//! and no forge token; verify gets no secret at all. publish runs under
//! `always()` and finalises the run whatever happened before it.

use std::fmt::Write as _;

use crate::config::Config;
use crate::types::{ForgeKind, PhaseName};

/// Third-party actions, pinned by commit with the version in a comment.
struct Pins {
    checkout: &'static str,
    upload: &'static str,
    download: &'static str,
}

const GITHUB_PINS: Pins = Pins {
    checkout: "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1",
    upload: "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f # v7.0.0",
    download: "actions/download-artifact@3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c # v8.0.1",
};

/// Forgejo's runner cannot use GitHub's artifact actions (they refuse any
/// server but github.com): Forgejo's forks, by full URL. checkout is the
/// mirror of GitHub's (same commits); v4 runs on the node20 images Forgejo
/// runners ship.
const FORGEJO_PINS: Pins = Pins {
    checkout: "https://data.forgejo.org/actions/checkout@11d5960a326750d5838078e36cf38b85af677262 # v4.4.0",
    upload: "https://code.forgejo.org/forgejo/upload-artifact@16871d9e8cfcf27ff31822cac382bbb5450f1e1e # v4.3.1",
    download: "https://code.forgejo.org/forgejo/download-artifact@d8d0a99033603453ad2255e58720b460a0555e1e # v4",
};

/// Where the run directory lives on a runner: outside the checkout, so the
/// work tree verify checks stays clean.
pub const RUN_DIR: &str = "${{ runner.temp }}/baton-run";

/// The published action `baton init` points workflows at.
pub const ACTION_REPOSITORY: &str = "baton-ci/baton";

/// What a rendered workflow depends on.
#[derive(Debug, Clone)]
pub struct WorkflowOptions {
    pub forge: ForgeKind,
    /// The repair loop is unrolled to this many repairs.
    pub max_repairs: u32,
    /// `uses:` of baton's action: `./` in baton's own repository, else the
    /// published action at a version.
    pub action: String,
    /// The action's `version` input: a release tag, or `source`.
    pub version: String,
    /// `runs-on` of every job.
    pub runs_on: String,
    /// Secrets model jobs receive as environment variables (the providers'
    /// key variables), and variables for the providers' base URLs.
    pub model_secrets: Vec<String>,
    pub model_variables: Vec<String>,
    /// `[triggers].label`: only its `labeled` events start intake.
    pub label: String,
}

impl WorkflowOptions {
    /// The options for a repository with `config`: its repair bound and the
    /// key and base-URL variables of its providers.
    pub fn for_config(config: &Config, forge: ForgeKind) -> Self {
        let mut model_secrets = Vec::new();
        let mut model_variables = Vec::new();
        for provider in config.providers.values() {
            let Some((key, base)) = provider.kind.variables() else {
                continue;
            };
            model_secrets.push(provider.api_key_env.clone().unwrap_or_else(|| key.into()));
            if provider.base_url.is_none() {
                model_variables.push(base.to_owned());
            }
        }
        model_secrets.sort();
        model_secrets.dedup();
        model_variables.sort();
        model_variables.dedup();
        Self {
            forge,
            max_repairs: config.budget.max_repairs,
            action: format!("{ACTION_REPOSITORY}@v{}", env!("CARGO_PKG_VERSION")),
            version: format!("v{}", env!("CARGO_PKG_VERSION")),
            runs_on: match forge {
                ForgeKind::GitHub => "ubuntu-latest".into(),
                ForgeKind::Forgejo => "docker".into(),
            },
            model_secrets,
            model_variables,
            label: config.triggers.label.clone(),
        }
    }

    fn pins(&self) -> &'static Pins {
        match self.forge {
            ForgeKind::GitHub => &GITHUB_PINS,
            ForgeKind::Forgejo => &FORGEJO_PINS,
        }
    }
}

/// One job of the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseJob {
    /// The job id: the phase, or `repair_N` / `verify_N` in the unrolled loop.
    pub id: String,
    pub phase: PhaseName,
}

/// Every job, in `needs` order: the phases of all routes, with the repair
/// loop unrolled to `max_repairs`.
pub fn jobs(max_repairs: u32) -> Vec<PhaseJob> {
    let job = |id: &str, phase| PhaseJob {
        id: id.to_owned(),
        phase,
    };
    let mut jobs = vec![
        job("intake", PhaseName::Intake),
        job("spec", PhaseName::Spec),
        job("design", PhaseName::Design),
        job("plan", PhaseName::Plan),
        job("tests", PhaseName::Tests),
        job("implement", PhaseName::Implement),
        job("verify", PhaseName::Verify),
    ];
    for round in 1..=max_repairs {
        jobs.push(job(&format!("repair_{round}"), PhaseName::Repair));
        jobs.push(job(&format!("verify_{round}"), PhaseName::Verify));
    }
    jobs.push(job("review", PhaseName::Review));
    jobs.push(job("split", PhaseName::Split));
    jobs.push(job("publish", PhaseName::Publish));
    jobs
}

/// `needs.a.outputs.X || needs.b.outputs.X || …`, latest job first: the
/// value from the latest job before this one that ran.
fn latest(previous: &[PhaseJob], output: &str) -> String {
    previous
        .iter()
        .rev()
        .map(|job| format!("needs.{}.outputs.{output}", job.id))
        .collect::<Vec<_>>()
        .join(" || ")
}

/// The pipeline workflow, as YAML text.
pub fn render(options: &WorkflowOptions) -> String {
    let pins = options.pins();
    let jobs = jobs(options.max_repairs);
    let mut out = String::new();
    let other = match options.forge {
        ForgeKind::GitHub => "Forgejo: .forgejo/workflows/baton.yml",
        ForgeKind::Forgejo => "GitHub: .github/workflows/baton.yml",
    };
    let _ = write!(
        out,
        "# baton: an issue to a verified pull request, one job per phase.
# Written by `baton init`; `baton init --force` writes it again (the repair
# loop below is unrolled to [budget].max_repairs = {max_repairs}). {other}.
# Each job hands the run directory to the next as an artifact; a job runs
# when the latest job before it says it is next, so the route decides which
# jobs run and the rest show as skipped. Rerun a failed job and the chain
# goes on from it.
#
# Secrets: the model keys ({secrets}), read by model jobs only;
# BATON_FORGE_TOKEN (optional, publish and intake): a GitHub App token or a
# PAT, so that the pull request's own checks run (events made with the
# workflow's token start no workflows).
name: baton

on:
  issues:
    types: [labeled]
  # Only the `command` job runs on a comment: it checks out the default
  # branch (never a pull request's code), runs no model, and asks the forge
  # whether the commenter has write access before anything runs.
  issue_comment: # zizmor: ignore[dangerous-triggers]
    types: [created]
  workflow_dispatch:
    inputs:
      issue:
        description: The issue to run on (its number)
        required: true
        type: string
      route:
        description: \"feature, hotfix, chore or epic (empty: from the issue's labels)\"
        required: false
        type: string
        default: \"\"
      fix_comment:
        description: \"Set by `/baton fix`: the id of the comment whose feedback repairs the issue's pull request\"
        required: false
        type: string
        default: \"\"
  schedule:
    # The backlog sweep: issues labelled [triggers].sweep_label, at most
    # [sweep].max_runs started, each with a workflow_dispatch of this file.
    - cron: \"17 6 * * 1-5\"

permissions: {{}}

concurrency:
  group: {group}
  cancel-in-progress: false

jobs:
",
        max_repairs = options.max_repairs,
        group = concurrency_group(options),
        secrets = options.model_secrets.join(", "),
    );
    for (index, job) in jobs.iter().enumerate() {
        let previous = &jobs[..index];
        render_job(&mut out, options, pins, job, previous);
    }
    render_trigger_job(&mut out, options, pins, "command");
    render_trigger_job(&mut out, options, pins, "sweep");
    out
}

/// The jobs that start runs rather than run phases: `command` (a `/baton`
/// comment) and `sweep` (the schedule). Neither runs a model or untrusted
/// code; they reply, label and dispatch this workflow, so they may write
/// issues and start workflows.
fn render_trigger_job(out: &mut String, options: &WorkflowOptions, pins: &Pins, name: &str) {
    let (condition, pull_requests) = match name {
        "command" => (
            "github.event_name == 'issue_comment' && contains(github.event.comment.body, '/baton')",
            "write",
        ),
        _ => ("github.event_name == 'schedule'", "read"),
    };
    let _ = write!(
        out,
        "  {name}:
    name: {name}
    if: ${{{{ {condition} }}}}
    runs-on: {runs_on}
    timeout-minutes: 10
    permissions:
      actions: write
      contents: read
      issues: write
      pull-requests: {pull_requests}
    steps:
      - uses: {checkout}
        with:
          persist-credentials: false
      - uses: {action}
        with:
          command: {name}
          version: {version}
          forge-token: ${{{{ secrets.BATON_FORGE_TOKEN || github.token }}}}
",
        runs_on = options.runs_on,
        checkout = pins.checkout,
        action = options.action,
        version = options.version,
    );
    if name == "command" {
        out.push('\n');
    }
}

fn render_job(
    out: &mut String,
    options: &WorkflowOptions,
    pins: &Pins,
    job: &PhaseJob,
    previous: &[PhaseJob],
) {
    let id = &job.id;
    let phase = job.phase;
    let needs = previous
        .iter()
        .map(|job| job.id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(out, "  {id}:");
    let title = match id.split_once('_') {
        Some((_, round)) => format!("{phase} {round}"),
        None => phase.to_string(),
    };
    let _ = writeln!(out, "    name: {title}");
    if !previous.is_empty() {
        let _ = writeln!(out, "    needs: [{needs}]");
    }
    let condition = match phase {
        PhaseName::Intake => intake_condition(options),
        PhaseName::Publish => "always() && needs.intake.outputs.artifact != ''".to_owned(),
        _ => format!(
            "!cancelled() && ({}) == '{phase}'",
            latest(previous, "next")
        ),
    };
    let _ = writeln!(out, "    if: ${{{{ {condition} }}}}");
    let _ = writeln!(out, "    runs-on: {}", options.runs_on);
    let _ = writeln!(out, "    timeout-minutes: {}", timeout_minutes(phase));
    // Permissions: what the job's token may do.
    let permissions = match phase {
        PhaseName::Intake => "      contents: read\n      issues: write\n",
        PhaseName::Publish => {
            "      contents: write\n      issues: write\n      pull-requests: write\n"
        }
        _ => "      contents: read\n",
    };
    let _ = write!(out, "    permissions:\n{permissions}");
    let _ = writeln!(out, "    outputs:");
    let _ = writeln!(out, "      next: ${{{{ steps.handoff.outputs.next }}}}");
    let _ = writeln!(
        out,
        "      artifact: ${{{{ steps.handoff.outputs.artifact }}}}"
    );
    for output in ["outcome", "route", "skipped", "issue"] {
        let _ = writeln!(
            out,
            "      {output}: ${{{{ steps.baton.outputs.{output} }}}}"
        );
    }
    if phase == PhaseName::Publish {
        for output in ["pr", "pr_url"] {
            let _ = writeln!(
                out,
                "      {output}: ${{{{ steps.baton.outputs.{output} }}}}"
            );
        }
    }
    let _ = writeln!(out, "    steps:");
    // A full history: later phases read the config at the run's base commit.
    // publish runs in a cancelled workflow too, where a step's default
    // `success()` is false: its steps run on `always()`, each after the
    // one before it succeeded.
    let finalising = phase == PhaseName::Publish;
    let after = |step: &str| {
        if finalising {
            format!("        if: ${{{{ always() && steps.{step}.outcome == 'success' }}}}\n")
        } else {
            String::new()
        }
    };
    let _ = write!(
        out,
        "      - id: checkout\n{}        uses: {}\n        with:\n          fetch-depth: 0\n          persist-credentials: false\n",
        if finalising {
            "        if: ${{ always() }}\n"
        } else {
            ""
        },
        pins.checkout
    );
    if !previous.is_empty() {
        let artifact = latest(previous, "artifact");
        let _ = write!(
            out,
            "      - id: download\n{}        uses: {}\n        with:\n          name: ${{{{ {artifact} }}}}\n          path: {RUN_DIR}\n",
            after("checkout"),
            pins.download
        );
    }
    let command = match phase {
        PhaseName::Publish => "phase publish --finalise".to_owned(),
        _ => format!("phase {phase}"),
    };
    let _ = write!(
        out,
        "      - id: baton\n{}        uses: {}\n        with:\n          command: {command}\n          run-dir: {RUN_DIR}\n          version: {}\n",
        if previous.is_empty() {
            String::new()
        } else {
            after("download")
        },
        options.action,
        options.version
    );
    match phase {
        PhaseName::Intake | PhaseName::Publish => {
            let _ = writeln!(
                out,
                "          forge-token: ${{{{ secrets.BATON_FORGE_TOKEN || github.token }}}}"
            );
        }
        _ => {}
    }
    // Model keys: model jobs (and intake, which may ask the cheapest model
    // for the route) only; never verify, never publish.
    let model_job = !matches!(phase, PhaseName::Verify | PhaseName::Publish);
    if model_job && !(options.model_secrets.is_empty() && options.model_variables.is_empty()) {
        let _ = writeln!(out, "        env:");
        for name in &options.model_secrets {
            let _ = writeln!(out, "          {name}: ${{{{ secrets.{name} }}}}");
        }
        for name in &options.model_variables {
            let _ = writeln!(out, "          {name}: ${{{{ vars.{name} }}}}");
        }
    }
    // The run directory goes on even when the phase failed or was
    // cancelled: the next job, or publish, carries on from it.
    let upload_condition = if phase == PhaseName::Intake {
        "always() && steps.baton.outputs.skipped != 'true'"
    } else {
        "always()"
    };
    let _ = write!(
        out,
        "      - id: upload\n        if: ${{{{ {upload_condition} }}}}\n        uses: {}\n        with:\n          name: baton-run-{id}\n          path: {RUN_DIR}\n          if-no-files-found: ignore\n          overwrite: true\n          retention-days: 30\n",
        pins.upload
    );
    // The hand-off always runs: a job whose phase crashed before its
    // outputs says `none`, so no later job takes its place by accident.
    // `sh`, not bash: a command of the phase cannot have it source a file.
    let _ = write!(
        out,
        "      - id: handoff
        if: ${{{{ always() }}}}
        shell: sh
        env:
          NEXT: ${{{{ steps.baton.outputs.next }}}}
          UPLOADED: ${{{{ steps.upload.outcome }}}}
          RUN_DIR: {RUN_DIR}
        run: |
          if [ \"$UPLOADED\" = success ] && [ -f \"$RUN_DIR/manifest.json\" ]; then
            echo \"artifact=baton-run-{id}\" >> \"$GITHUB_OUTPUT\"
            echo \"next=${{NEXT:-none}}\" >> \"$GITHUB_OUTPUT\"
          else
            echo \"next=none\" >> \"$GITHUB_OUTPUT\"
          fi
\n"
    );
}

/// A label as an expression string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Intake runs for a dispatch, and for the trigger label: GitHub names the
/// label added; Forgejo's `label_updated` does not, so the issue's labels
/// decide there (intake checks the event again either way).
fn intake_condition(options: &WorkflowOptions) -> String {
    let label = literal(&options.label);
    match options.forge {
        ForgeKind::GitHub => format!(
            "github.event_name == 'workflow_dispatch' || (github.event_name == 'issues' && github.event.label.name == {label})"
        ),
        ForgeKind::Forgejo => format!(
            "github.event_name == 'workflow_dispatch' || (github.event_name == 'issues' && contains(github.event.issue.labels.*.name, {label}))"
        ),
    }
}

/// One run per issue at a time. On GitHub another label's event gets a
/// group of its own, so it never replaces a pending run of the issue.
fn concurrency_group(options: &WorkflowOptions) -> String {
    let issue = "format('baton-issue-{0}', github.event.issue.number || inputs.issue)";
    // Sweeps queue behind each other, so two never overlap; a comment's
    // job never waits for the issue's run (`/baton stop` must not).
    let sweep = "github.event_name == 'schedule' && 'baton-sweep' || github.event_name == 'issue_comment' && format('baton-command-{0}', github.run_id)";
    match options.forge {
        ForgeKind::GitHub => format!(
            "${{{{ {sweep} || github.event_name == 'issues' && github.event.label.name != {} && format('baton-skip-{{0}}', github.run_id) || {issue} }}}}",
            literal(&options.label)
        ),
        ForgeKind::Forgejo => format!("${{{{ {sweep} || {issue} }}}}"),
    }
}

/// A job's time limit: the config's wall-time budget ends a run first; this
/// only stops a job whose runner hangs.
fn timeout_minutes(phase: PhaseName) -> u32 {
    match phase {
        PhaseName::Intake | PhaseName::Publish => 15,
        PhaseName::Verify => 60,
        _ => 45,
    }
}
