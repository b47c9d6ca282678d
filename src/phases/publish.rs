//! publish: trust nothing handed over, re-check it all, decide the outcome,
//! and write the evidence (the PR body). Opening the PR comes with the forge
//! backends; a local run ends with `evidence.md` and `changes.patch`.

use super::{Context, PhaseResult, write_evidence};
use crate::config::Config;
use crate::records::{Review, Ticket, VerifyRecord};
use crate::run_dir::artifact::{self, PATCH};
use crate::run_dir::sha256_hex;
use crate::settings::env;
use crate::types::{Outcome, PhaseName, ReviewVerdict, Route};

pub fn run(context: &mut Context<'_>) -> anyhow::Result<PhaseResult> {
    // The config was read from the base commit and checked against the pin
    // (`Settings::pinned`): a run cannot loosen its own rules.
    let config = context.config().clone();
    recompute_issue(context)?;
    // Publish decides `done` only from its own checks, never from what the
    // manifest (which is not hashed) says. A run another phase ended with
    // another outcome is finalised as it stands.
    let end = match context.run.manifest.outcome {
        Outcome::Running | Outcome::Done => judge(context, &config)?,
        _ => PhaseResult::Finished,
    };
    let outcome = match &end {
        PhaseResult::Stop(outcome, _) => *outcome,
        _ => context.run.manifest.outcome,
    };
    // The evidence shows the outcome publish is about to record.
    if let PhaseResult::Stop(outcome, reason) = &end {
        context.run.manifest.outcome = *outcome;
        context.run.manifest.reason = (*outcome != Outcome::Done).then(|| reason.clone());
    }
    let evidence = write_evidence(context, Some(&config))?;
    if let Some(summary_path) = env::get(env::GITHUB_STEP_SUMMARY) {
        let markdown = context
            .run
            .read_text(artifact::EVIDENCE_MARKDOWN)?
            .unwrap_or_default();
        append(&summary_path, &markdown)?;
    }
    if let Some(output_path) = env::get(env::GITHUB_OUTPUT) {
        append(
            &output_path,
            &format!(
                "outcome={}\nrun-dir={}\n",
                evidence.outcome,
                context.run.path().display()
            ),
        )?;
    }
    context.record().note = Some(match context.run.manifest.route {
        _ if outcome != Outcome::Done => format!("outcome {outcome}; evidence written"),
        Route::Epic => {
            format!("{} child issue(s) ready to file", evidence.children.len())
        }
        _ => "local run: no pull request opened; evidence.md is its body".into(),
    });
    Ok(end)
}

/// The issue number and branch come from the ticket (hash-checked with the
/// rest of the run directory), not from what the manifest says.
fn recompute_issue(context: &mut Context<'_>) -> anyhow::Result<()> {
    let ticket: Ticket = context
        .run
        .read_json(artifact::TICKET)?
        .ok_or_else(|| crate::bad_input!("ticket.json is missing from the run directory"))?;
    let manifest = &mut context.run.manifest;
    manifest.issue.number = ticket.number;
    manifest.branch = format!("baton/issue-{}", ticket.number);
    Ok(())
}

/// The checks publish makes on its own, for a run that reached it running.
fn judge(context: &Context<'_>, config: &Config) -> anyhow::Result<PhaseResult> {
    let route = context.run.manifest.route;
    if route.contains(PhaseName::Verify) {
        let patch = context.patch()?;
        let verify: Option<VerifyRecord> = context.run.read_json(artifact::VERIFY)?;
        let Some(verify) = verify else {
            return Ok(PhaseResult::Stop(
                Outcome::Failed,
                "verify never ran: a gate that did not run counts as failed".into(),
            ));
        };
        let current = context
            .run
            .sha256_of(PATCH)
            .map_or_else(|| sha256_hex(b""), str::to_owned);
        if verify.patch_sha256 != current || sha256_hex(patch.as_bytes()) != current {
            return Ok(PhaseResult::Stop(
                Outcome::Rejected,
                "changes.patch is not the patch verify checked; refusing to publish an unverified change".into(),
            ));
        }
        let changes = crate::patch::parse(&patch);
        let plan = context.plan()?;
        let verdict = super::policy_verdict(context, config, &changes, plan.as_ref());
        if !verdict.is_clean() {
            return Ok(PhaseResult::Stop(
                Outcome::Rejected,
                format!("policy violation: {}", verdict.summary()),
            ));
        }
        if config.gates.is_empty() {
            return Ok(PhaseResult::Stop(
                Outcome::Blocked,
                "the base commit's config defines no gates".into(),
            ));
        }
        for gate in config.gates.iter().filter(|gate| gate.required) {
            match verify.gates.iter().find(|result| result.name == gate.name) {
                Some(result) if result.passed => {}
                Some(_) => {
                    return Ok(PhaseResult::Stop(
                        Outcome::Failed,
                        format!("required gate `{}` failed", gate.name),
                    ));
                }
                None => {
                    return Ok(PhaseResult::Stop(
                        Outcome::Failed,
                        format!(
                            "required gate `{}` did not run; a gate that did not run counts as failed",
                            gate.name
                        ),
                    ));
                }
            }
        }
        if route.contains(PhaseName::Tests) {
            let tests: Option<crate::records::TestsRecord> =
                context.run.read_json(artifact::TESTS)?;
            if !tests.is_some_and(|tests| tests.red) {
                return Ok(PhaseResult::Stop(
                    Outcome::Blocked,
                    "the tests were never red on the base commit".into(),
                ));
            }
            if verify.tests_intact == Some(false) {
                return Ok(PhaseResult::Stop(
                    Outcome::Blocked,
                    "the tests written first were changed after the tests phase".into(),
                ));
            }
        }
        if !verdict.needs_approval.is_empty() {
            return Ok(PhaseResult::Stop(
                Outcome::Blocked,
                format!(
                    "changes to {} need `/baton approve`",
                    verdict.needs_approval.join(", ")
                ),
            ));
        }
    }
    if route.contains(PhaseName::Review) {
        let review: Option<Review> = context.run.read_json(artifact::REVIEW)?;
        match review {
            Some(review) if review.verdict == ReviewVerdict::Approve => {}
            Some(_) => {
                return Ok(PhaseResult::Stop(
                    Outcome::Blocked,
                    "the review requested changes".into(),
                ));
            }
            None => {
                return Ok(PhaseResult::Stop(
                    Outcome::Blocked,
                    "the review did not finish".into(),
                ));
            }
        }
    }
    if route.contains(PhaseName::Split) && context.run.read(artifact::CHILDREN)?.is_none() {
        return Ok(PhaseResult::Stop(
            Outcome::Blocked,
            "the split did not finish".into(),
        ));
    }
    Ok(PhaseResult::Stop(Outcome::Done, "done".into()))
}

fn append(path: &str, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{text}")?;
    Ok(())
}
