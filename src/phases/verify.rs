//! verify: apply the run's patch to a clean checkout of the base commit and
//! run every gate. Only verify decides whether gates passed.

use std::time::Duration;

use super::Context;
use crate::agent::command::{self, scrubbed_environment};
use crate::config::Gate;
use crate::git::WorkTree;
use crate::pipeline::{self, PhaseResult};
use crate::records::{GateResult, TestsRecord, VerifyRecord, VerifyRound};
use crate::run_dir::artifact::{self, PATCH};
use crate::run_dir::sha256_hex;
use crate::sandbox::Use;
use crate::settings::env;
use crate::types::Outcome;

/// Full gate logs kept in `gates/<name>.log`.
const GATE_LOG_LIMIT: usize = 1024 * 1024;
const LOG_TAIL_LINES: usize = 60;

/// What a gate run is for: verify judges the change (a failure is an error
/// a person should see at a glance); the tests phase's red check expects
/// failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateRun {
    Judge,
    RedCheck,
}

/// Runs the configured gates in `tree`; returns each result with its full log.
pub async fn run_gates(
    context: &mut Context<'_>,
    tree: &WorkTree,
    purpose: GateRun,
) -> anyhow::Result<Vec<(GateResult, String)>> {
    let environment = scrubbed_environment(&context.settings.key_variables);
    let (sandbox, report) = context.sandbox(Use::Gates, tree.path()).await?;
    // `enforce`: no gate runs half-confined (each would fail at its
    // wrapper, and the failure would send the run to repair).
    if let Some(reason) = context.sandbox_refusal(&report) {
        return Err(crate::bad_input!("gates cannot run: {reason}"));
    }
    let mut results = Vec::new();
    let gates: Vec<&Gate> = context.config().gates.iter().collect();
    for gate in gates {
        let output = command::run(
            &gate.run,
            tree.path(),
            Duration::from_secs(gate.timeout_s),
            GATE_LOG_LIMIT,
            &environment,
            &sandbox,
        )
        .await?;
        let result = GateResult {
            name: gate.name.clone(),
            command: gate.run.clone(),
            required: gate.required,
            passed: output.succeeded(),
            exit_code: output.exit_code,
            timed_out: output.timed_out,
            duration_s: output.duration_s,
            log_tail: command::tail(&output.output, LOG_TAIL_LINES),
        };
        context
            .reporter
            .gate(&result, purpose == GateRun::Judge && result.required);
        results.push((result, output.output));
    }
    Ok(results)
}

pub async fn run(context: &mut Context<'_>) -> anyhow::Result<PhaseResult> {
    if context.config().gates.is_empty() {
        return Ok(PhaseResult::Stop(
            Outcome::Blocked,
            "no [[gates]] are configured: CI is the judge, and without gates there is nothing to judge by; add at least one gate".into(),
        ));
    }
    let base = context.run.manifest.base_sha.clone();
    let patch = context.patch()?;
    let patch_sha256 = context
        .run
        .sha256_of(PATCH)
        .map_or_else(|| sha256_hex(b""), str::to_owned);
    let tree = if in_job_workspace(context) {
        context.source.in_place(&base, &patch)?
    } else {
        context.source.work_tree(&base, &patch)?
    };
    let results = run_gates(context, &tree, GateRun::Judge).await?;
    for (gate, log) in &results {
        context
            .run
            .write_json(&artifact::gate_result(&gate.name), gate)?;
        context
            .run
            .write_text(&artifact::gate_log(&gate.name), log)?;
    }
    let passed = results
        .iter()
        .all(|(gate, _)| !gate.required || gate.passed);

    let tests: Option<TestsRecord> = context.run.read_json(artifact::TESTS)?;
    let tests_intact = tests.map(|tests| {
        tests.files.iter().all(|(path, sha)| {
            std::fs::read(tree.path().join(path)).is_ok_and(|bytes| sha256_hex(&bytes) == *sha)
        })
    });

    let mut record: VerifyRecord = context.run.read_json(artifact::VERIFY)?.unwrap_or_default();
    let failed: Vec<(&str, &str)> = results
        .iter()
        .filter(|(gate, _)| gate.required && !gate.passed)
        .map(|(gate, _)| (gate.name.as_str(), gate.log_tail.as_str()))
        .collect();
    let signature = (!passed).then(|| pipeline::failure_signature(&failed));
    let failed_gates: Vec<String> = failed.iter().map(|(name, _)| (*name).to_owned()).collect();
    record.rounds.push(VerifyRound {
        round: record.rounds.len() as u32 + 1,
        passed,
        failed_gates: failed_gates.clone(),
        signature: signature.clone(),
    });
    record.patch_sha256.clone_from(&patch_sha256);
    record.passed = passed;
    record.gates = results.into_iter().map(|(gate, _)| gate).collect();
    record.tests_intact = tests_intact;
    context.run.write_json(artifact::VERIFY, &record)?;

    // Whether a repair follows is the state machine's call (`pipeline::apply`).
    let place = if tree.is_in_place() {
        " (in the job's workspace)"
    } else {
        ""
    };
    context.record().note = Some(if passed {
        format!("all required gates passed{place}")
    } else {
        format!("failing: {}{place}", failed_gates.join(", "))
    });
    Ok(PhaseResult::Verified { passed, signature })
}

/// On an Actions runner, with the repository being the job's workspace:
/// verify checks the patch out there (the job is thrown away afterwards).
/// Everywhere else it uses a temporary clone and leaves the checkout alone.
fn in_job_workspace(context: &Context<'_>) -> bool {
    crate::report::actions::on_runner()
        && env::get(env::GITHUB_WORKSPACE)
            .and_then(|workspace| std::path::Path::new(&workspace).canonicalize().ok())
            .is_some_and(|workspace| workspace == context.settings.repo)
}

/// The failing gates' log tails, for repair.
pub fn failing_logs(context: &Context<'_>, verify: &VerifyRecord) -> anyhow::Result<String> {
    let mut text = String::new();
    for gate in verify.gates.iter().filter(|gate| !gate.passed) {
        let log = context
            .run
            .read_text(&artifact::gate_log(&gate.name))?
            .unwrap_or_else(|| gate.log_tail.clone());
        text.push_str(&format!(
            "## gate `{}`: `{}` (exit {})\n\n```\n{}\n```\n\n",
            gate.name,
            gate.command,
            gate.exit_code
                .map_or("none".into(), |code| code.to_string()),
            command::tail(&log, 80)
        ));
    }
    Ok(text)
}
