//! publish: trust nothing handed over, re-check it all, decide the outcome,
//! and write the evidence (the PR body). Opening the PR comes with the forge
//! backends; a local run ends with `evidence.md` and `changes.patch`.

use super::{Context, PATCH, PhaseEnd, write_evidence};
use crate::config::{Config, ConfigSource};
use crate::pipeline::{Outcome, PhaseName};
use crate::records::{Review, VerifyRecord};
use crate::run_dir::sha256_hex;
use crate::settings::env;

pub fn run(context: &mut Context<'_>) -> anyhow::Result<PhaseEnd> {
    let base_config = config_at_base(context)?;
    let manifest = &context.run.manifest;
    let route = manifest.route;
    let mut end = PhaseEnd::Continue;

    if manifest.outcome == Outcome::Running {
        end = judge(context, &base_config)?;
    }
    let outcome = match &end {
        PhaseEnd::Stop(outcome, _) => *outcome,
        PhaseEnd::Continue => context.run.manifest.outcome,
    };
    // Publish finalises the run's outcome before rendering the evidence.
    if let PhaseEnd::Stop(outcome, reason) = &end {
        context.run.manifest.outcome = *outcome;
        context.run.manifest.reason = (*outcome != Outcome::Done).then(|| reason.clone());
    }
    let evidence = write_evidence(context, Some(&base_config))?;
    if let Some(summary_path) = env::get(env::GITHUB_STEP_SUMMARY) {
        let markdown = context.run.read_text("evidence.md")?.unwrap_or_default();
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
    context.record().note = Some(match route {
        _ if outcome != Outcome::Done => format!("outcome {outcome}; evidence written"),
        crate::pipeline::Route::Epic => {
            format!("{} child issue(s) ready to file", evidence.children.len())
        }
        _ => "local run: no pull request opened; evidence.md is its body".into(),
    });
    Ok(end)
}

/// The checks publish makes on its own, for a run that reached it running.
fn judge(context: &Context<'_>, config: &Config) -> anyhow::Result<PhaseEnd> {
    let route = context.run.manifest.route;
    if route.contains(PhaseName::Verify) {
        let patch = context.patch()?;
        let verify: Option<VerifyRecord> = context.run.read_json("verify.json")?;
        let Some(verify) = verify else {
            return Ok(PhaseEnd::Stop(
                Outcome::Failed,
                "verify never ran: a gate that did not run counts as failed".into(),
            ));
        };
        let current = context
            .run
            .sha256_of(PATCH)
            .map_or_else(|| sha256_hex(b""), str::to_owned);
        if verify.patch_sha256 != current || sha256_hex(patch.as_bytes()) != current {
            return Ok(PhaseEnd::Stop(
                Outcome::Rejected,
                "changes.patch is not the patch verify checked; refusing to publish an unverified change".into(),
            ));
        }
        let changes = crate::patch::parse(&patch);
        let plan = context.plan()?;
        let verdict = super::policy_verdict(context, config, &changes, plan.as_ref());
        if !verdict.is_clean() {
            return Ok(PhaseEnd::Stop(
                Outcome::Rejected,
                format!("policy violation: {}", verdict.summary()),
            ));
        }
        if config.gates.is_empty() {
            return Ok(PhaseEnd::Stop(
                Outcome::Blocked,
                "the base commit's config defines no gates".into(),
            ));
        }
        for gate in config.gates.iter().filter(|gate| gate.required) {
            match verify.gates.iter().find(|result| result.name == gate.name) {
                Some(result) if result.passed => {}
                Some(_) => {
                    return Ok(PhaseEnd::Stop(
                        Outcome::Failed,
                        format!("required gate `{}` failed", gate.name),
                    ));
                }
                None => {
                    return Ok(PhaseEnd::Stop(
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
            let tests: Option<crate::records::TestsRecord> = context.run.read_json("tests.json")?;
            if !tests.is_some_and(|tests| tests.red) {
                return Ok(PhaseEnd::Stop(
                    Outcome::Blocked,
                    "the tests were never red on the base commit".into(),
                ));
            }
            if verify.tests_intact == Some(false) {
                return Ok(PhaseEnd::Stop(
                    Outcome::Blocked,
                    "the tests written first were changed after the tests phase".into(),
                ));
            }
        }
        if !verdict.needs_approval.is_empty() {
            return Ok(PhaseEnd::Stop(
                Outcome::Blocked,
                format!(
                    "changes to {} need `/baton approve`",
                    verdict.needs_approval.join(", ")
                ),
            ));
        }
    }
    if route.contains(PhaseName::Review) {
        let review: Option<Review> = context.run.read_json("review.json")?;
        match review {
            Some(review) if review.verdict == "approve" => {}
            Some(_) => {
                return Ok(PhaseEnd::Stop(
                    Outcome::Blocked,
                    "the review requested changes".into(),
                ));
            }
            None => {
                return Ok(PhaseEnd::Stop(
                    Outcome::Blocked,
                    "the review did not finish".into(),
                ));
            }
        }
    }
    if route.contains(PhaseName::Split) && context.run.read("children.json")?.is_none() {
        return Ok(PhaseEnd::Stop(
            Outcome::Blocked,
            "the split did not finish".into(),
        ));
    }
    Ok(PhaseEnd::Stop(Outcome::Done, "done".into()))
}

/// The config as it is at the base commit: a run cannot loosen its own rules.
fn config_at_base(context: &Context<'_>) -> anyhow::Result<Config> {
    let Some(relative) = &context.settings.config_in_repo else {
        return Ok(match &context.settings.config_source {
            ConfigSource::File(path) => Config::load(path)?,
            ConfigSource::Defaults => context.settings.config.clone(),
        });
    };
    let base = &context.run.manifest.base_sha;
    match context.source.read_at(base, relative)? {
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            Config::parse(&text).map_err(|issues| {
                crate::config::config_error(&format!("{relative} at {base}"), &issues)
            })
        }
        None => Ok(Config::parse("").unwrap_or_default()),
    }
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
