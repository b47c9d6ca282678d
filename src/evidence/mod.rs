//! Pure rendering: run state → `evidence.json` and `evidence.md` (the PR body).
//!
//! The Markdown is ordered for a reviewer with five minutes: outcome first,
//! then what changed, what CI said, whether tests came first, scope, cost,
//! and what still needs a human.

mod markdown;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Gate;
use crate::patch::FileChange;
use crate::policy::{Verdict, Violation};
use crate::records::{
    Adversarial, AdversarialFinding, Child, Feedback, Plan, RepairRecord, Review, Spec,
    TestsRecord, VerifyRecord,
};
use crate::run_dir::manifest::{ConfigPin, IssueRef, Manifest, PhaseStatus};
use crate::types::{Outcome, PhaseName, Route};
use crate::types::{ReviewVerdict, Spend};

pub use markdown::render_markdown;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub schema: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub route: Route,
    pub issue: IssueRef,
    pub run_id: String,
    pub base_sha: String,
    pub branch: String,
    /// The config the run was judged by, as intake pinned it.
    pub config: ConfigPin,
    /// What the change does and why: the spec's summary (routes without a
    /// spec have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The spec's acceptance criteria, each met or not by what the gates said.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acceptance: Vec<Criterion>,
    /// The forge issue the pull request closes (`Closes #N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes: Option<u64>,
    /// The phases as they ran, in order (superseded executions left out).
    #[serde(default)]
    pub timeline: Vec<Step>,
    pub changed_files: Vec<ChangedFile>,
    /// New files that commands produced (a build's output), left out of the
    /// patch: named (at most 200), then counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    #[serde(default)]
    pub left_out_count: usize,
    pub gates: Vec<GateEvidence>,
    pub tests_first: TestsFirst,
    pub scope: ScopeEvidence,
    /// What confined the commands each phase ran (`[sandbox]`).
    #[serde(default)]
    pub sandbox: Vec<SandboxEvidence>,
    pub budget: BudgetEvidence,
    pub attempts: BTreeMap<String, u32>,
    pub validator: Vec<ValidatorEvidence>,
    pub repairs: Vec<RepairEvidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Child>,
    /// The spec's adversarial findings (`[phases.spec].adversarial`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adversarial: Vec<AdversarialFinding>,
    pub risks: Vec<String>,
    pub needs_human: Vec<String>,
    pub rollback: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Criterion {
    pub text: String,
    pub met: bool,
    /// Why it is open (the failing gate, tests that never failed); empty when met.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// One phase execution, for the picture of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub phase: String,
    pub status: String,
    pub attempts: u32,
    /// verify: whether every required gate passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
    /// verify: the required gates that failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_gates: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedFile {
    pub path: String,
    pub added: usize,
    pub removed: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateEvidence {
    pub name: String,
    /// `passed`, `failed`, or `not_run` (which counts as failed).
    pub status: String,
    pub required: bool,
    pub duration_s: f64,
    pub exit_code: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestsFirst {
    /// The new tests failed on the base commit. `None`: the route has no tests phase.
    pub red: Option<bool>,
    /// They pass after the change (never true unless red was).
    pub green: Option<bool>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeEvidence {
    pub violations: Vec<Violation>,
    pub outside_plan: Vec<String>,
    pub needs_approval: Vec<String>,
}

/// One phase's sandbox: what was confined, which kernel features were
/// found, what was not available.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxEvidence {
    pub phase: String,
    pub line: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetEvidence {
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
    pub wall_s: f64,
    pub by_phase: BTreeMap<String, PhaseSpend>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseSpend {
    pub runs: u32,
    pub attempts: u32,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
    pub wall_s: f64,
    pub by_model: BTreeMap<String, Spend>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorEvidence {
    pub phase: String,
    pub attempt: u32,
    pub verdict: String,
    pub objections: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairEvidence {
    pub round: u32,
    pub failed_gates: Vec<String>,
    pub summary: String,
}

/// Everything the evidence is built from, read from the run directory.
pub struct EvidenceInput<'a> {
    pub manifest: &'a Manifest,
    pub changes: &'a [FileChange],
    pub gates: &'a [Gate],
    pub verify: Option<&'a VerifyRecord>,
    pub tests: Option<&'a TestsRecord>,
    pub policy: &'a Verdict,
    pub feedback: &'a [Feedback],
    pub repairs: Option<&'a RepairRecord>,
    pub review: Option<&'a Review>,
    pub plan: Option<&'a Plan>,
    pub spec: Option<&'a Spec>,
    /// The forge issue to close, when the run is on a forge.
    pub closes: Option<u64>,
    pub children: &'a [Child],
    pub adversarial: Option<&'a Adversarial>,
    /// Models that answered without a `[pricing]` entry.
    pub unpriced_models: &'a [String],
}

pub fn build(input: &EvidenceInput<'_>) -> Evidence {
    let manifest = input.manifest;
    let changed_files = input
        .changes
        .iter()
        .map(|change| ChangedFile {
            path: change.path.clone(),
            added: change.added,
            removed: change.removed,
        })
        .collect();

    let gates = gate_evidence(input);
    let tests_first = tests_first(input);
    let acceptance = acceptance(input, &gates, &tests_first);
    let timeline = timeline(input);
    let (left_out, left_out_count) = left_out(manifest);

    let mut by_phase: BTreeMap<String, PhaseSpend> = BTreeMap::new();
    let mut attempts = BTreeMap::new();
    for record in &manifest.phases {
        let entry = by_phase
            .entry(record.name.to_string())
            .or_insert_with(|| PhaseSpend {
                runs: 0,
                attempts: 0,
                tokens_in: 0,
                tokens_out: 0,
                cost_usd: 0.0,
                wall_s: 0.0,
                by_model: BTreeMap::new(),
            });
        entry.runs += 1;
        entry.attempts += record.attempts;
        entry.tokens_in += record.tokens_in;
        entry.tokens_out += record.tokens_out;
        entry.cost_usd += record.cost_usd;
        entry.wall_s += record.wall_s;
        for (model, spend) in &record.by_model {
            entry.by_model.entry(model.clone()).or_default().add(spend);
        }
        if record.attempts > 0 {
            *attempts.entry(record.name.to_string()).or_insert(0) += record.attempts;
        }
    }
    let spent = manifest.spent();

    let validator = input
        .feedback
        .iter()
        .flat_map(|feedback| {
            feedback.attempts.iter().map(|entry| ValidatorEvidence {
                phase: feedback.phase.to_string(),
                attempt: entry.attempt,
                verdict: entry.verdict.as_str().to_owned(),
                objections: entry.objections.clone(),
            })
        })
        .collect();
    let repairs = input
        .repairs
        .map(|record| {
            record
                .rounds
                .iter()
                .map(|round| RepairEvidence {
                    round: round.round,
                    failed_gates: round.failed_gates.clone(),
                    summary: round.summary.clone(),
                })
                .collect()
        })
        .unwrap_or_default();

    let evidence_without_judgement = Evidence {
        schema: "baton.evidence/v1".into(),
        outcome: manifest.outcome,
        reason: manifest.reason.clone(),
        route: manifest.route,
        issue: manifest.issue.clone(),
        run_id: manifest.run_id.clone(),
        config: manifest.config.clone(),
        base_sha: manifest.base_sha.clone(),
        branch: manifest.branch.clone(),
        summary: input.spec.map(|spec| spec.summary.trim().to_owned()),
        acceptance,
        closes: input.closes,
        timeline,
        changed_files,
        left_out,
        left_out_count,
        gates,
        tests_first,
        scope: ScopeEvidence {
            violations: input.policy.violations.clone(),
            outside_plan: input.policy.outside_plan.clone(),
            needs_approval: input.policy.needs_approval.clone(),
        },
        sandbox: sandbox_evidence(manifest),
        budget: BudgetEvidence {
            tokens_in: spent.tokens_in,
            tokens_out: spent.tokens_out,
            cost_usd: spent.cost_usd,
            wall_s: spent.wall_s,
            by_phase,
        },
        attempts,
        validator,
        repairs,
        review: input.review.cloned(),
        children: input.children.to_vec(),
        adversarial: input
            .adversarial
            .map(|record| record.findings.clone())
            .unwrap_or_default(),
        risks: Vec::new(),
        needs_human: Vec::new(),
        rollback: rollback(input),
    };
    let risks = risks(input, &evidence_without_judgement);
    let needs_human = needs_human(input, &evidence_without_judgement);
    Evidence {
        risks,
        needs_human,
        ..evidence_without_judgement
    }
}

/// The spec's criteria, met when the gates passed on the tests written for
/// them (red on the base, green after); open otherwise, with the reason.
fn acceptance(
    input: &EvidenceInput<'_>,
    gates: &[GateEvidence],
    tests_first: &TestsFirst,
) -> Vec<Criterion> {
    let Some(spec) = input.spec else {
        return Vec::new();
    };
    let failing: Vec<String> = gates
        .iter()
        .filter(|gate| gate.required && gate.status != "passed")
        .map(|gate| format!("`{}`", gate.name))
        .collect();
    let writes_tests = input.manifest.route.contains(PhaseName::Tests);
    let (met, note) = if !failing.is_empty() {
        (
            false,
            format!(
                "gate {} {}",
                failing.join(", "),
                if gates.iter().any(|gate| gate.status == "failed") {
                    "failed"
                } else {
                    "did not run"
                }
            ),
        )
    } else if gates.is_empty() {
        (false, "not verified: no gate ran".to_owned())
    } else if writes_tests && tests_first.red != Some(true) {
        (
            false,
            "no test written for it failed on the base commit, so passing gates prove nothing about it".to_owned(),
        )
    } else if writes_tests && tests_first.green != Some(true) {
        (false, tests_first.note.clone())
    } else {
        (true, String::new())
    };
    spec.acceptance
        .iter()
        .map(|text| Criterion {
            text: text.trim().to_owned(),
            met,
            note: note.clone(),
        })
        .collect()
}

fn timeline(input: &EvidenceInput<'_>) -> Vec<Step> {
    let mut verifies = input
        .verify
        .map(|verify| verify.rounds.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|round| round.failed_gates.clone());
    input
        .manifest
        .valid()
        .map(|(_, record)| {
            let failed_gates = if record.name == PhaseName::Verify {
                verifies.next().unwrap_or_default()
            } else {
                Vec::new()
            };
            Step {
                phase: record.name.to_string(),
                status: record.status.as_str().to_owned(),
                attempts: record.attempts,
                passed: record.passed,
                failed_gates,
            }
        })
        .collect()
}

/// The latest agent phase's left-out files.
fn left_out(manifest: &Manifest) -> (Vec<String>, usize) {
    manifest
        .valid()
        .rev()
        .map(|(_, record)| record)
        .find(|record| {
            matches!(
                record.name,
                PhaseName::Tests | PhaseName::Implement | PhaseName::Repair
            ) && record.status == PhaseStatus::Done
        })
        .map(|record| (record.left_out.clone(), record.left_out_count))
        .unwrap_or_default()
}

/// Every phase execution's sandbox lines, a line repeated by the same
/// phase (verify after each repair) shown once.
fn sandbox_evidence(manifest: &Manifest) -> Vec<SandboxEvidence> {
    let mut lines: Vec<SandboxEvidence> = Vec::new();
    for record in &manifest.phases {
        for line in &record.sandbox {
            let entry = SandboxEvidence {
                phase: record.name.to_string(),
                line: line.clone(),
            };
            if !lines.contains(&entry) {
                lines.push(entry);
            }
        }
    }
    lines
}

fn gate_evidence(input: &EvidenceInput<'_>) -> Vec<GateEvidence> {
    let route_verifies = input.manifest.route.contains(PhaseName::Verify);
    if !route_verifies {
        return Vec::new();
    }
    let recorded = input
        .verify
        .map(|verify| verify.gates.as_slice())
        .unwrap_or_default();
    let mut gates: Vec<GateEvidence> = input
        .gates
        .iter()
        .map(
            |gate| match recorded.iter().find(|result| result.name == gate.name) {
                Some(result) => GateEvidence {
                    name: gate.name.clone(),
                    status: if result.passed { "passed" } else { "failed" }.into(),
                    required: gate.required,
                    duration_s: result.duration_s,
                    exit_code: result.exit_code,
                },
                None => GateEvidence {
                    name: gate.name.clone(),
                    status: "not_run".into(),
                    required: gate.required,
                    duration_s: 0.0,
                    exit_code: None,
                },
            },
        )
        .collect();
    // Gates verify ran that the base config no longer lists are shown too.
    for result in recorded {
        if !gates.iter().any(|gate| gate.name == result.name) {
            gates.push(GateEvidence {
                name: result.name.clone(),
                status: if result.passed { "passed" } else { "failed" }.into(),
                required: false,
                duration_s: result.duration_s,
                exit_code: result.exit_code,
            });
        }
    }
    gates
}

fn tests_first(input: &EvidenceInput<'_>) -> TestsFirst {
    if !input.manifest.route.contains(PhaseName::Tests) {
        return TestsFirst {
            red: None,
            green: None,
            note: format!("the {} route writes no tests first", input.manifest.route),
        };
    }
    let Some(tests) = input.tests else {
        return TestsFirst {
            red: None,
            green: None,
            note: "the tests phase did not finish".into(),
        };
    };
    if !tests.red {
        return TestsFirst {
            red: Some(false),
            green: Some(false),
            note: "the new tests passed on the base commit, so they prove nothing about this change; not counted green".into(),
        };
    }
    let verify = input.verify;
    let intact = verify.and_then(|verify| verify.tests_intact);
    let passed = verify.is_some_and(|verify| verify.passed);
    let (green, note) = match (passed, intact) {
        (true, Some(true)) => (
            true,
            "the new tests failed on the base commit and pass after the change".to_owned(),
        ),
        (true, _) => (
            false,
            "gates pass, but the tests written first were changed afterwards; not counted green"
                .to_owned(),
        ),
        (false, _) => (
            false,
            "the new tests failed on the base commit and still fail".to_owned(),
        ),
    };
    TestsFirst {
        red: Some(true),
        green: Some(green),
        note,
    }
}

fn rollback(input: &EvidenceInput<'_>) -> String {
    let generic = "Revert the pull request's merge commit (`git revert -m 1 MERGE_COMMIT`); before merge, close the PR and delete the branch. Locally: `git apply -R changes.patch`.";
    match input.plan {
        Some(plan) => format!("{} {generic}", plan.rollback.trim()),
        None => generic.to_owned(),
    }
}

fn risks(input: &EvidenceInput<'_>, evidence: &Evidence) -> Vec<String> {
    let mut risks = Vec::new();
    if let Some(repairs) = input.repairs
        && !repairs.rounds.is_empty()
    {
        let gates: Vec<String> = repairs
            .rounds
            .iter()
            .flat_map(|round| round.failed_gates.clone())
            .collect();
        risks.push(format!(
            "The first implementation failed gate(s) {}; it took {} repair round(s). Read the repaired code closely.",
            dedup(gates).join(", "),
            repairs.rounds.len()
        ));
    }
    for gate in &evidence.gates {
        if !gate.required && gate.status != "passed" {
            risks.push(format!("Optional gate `{}` did not pass.", gate.name));
        }
    }
    if !input.policy.outside_plan.is_empty()
        && input
            .policy
            .violations
            .iter()
            .all(|v| v.rule != "plan.touchpoints")
    {
        risks.push(format!(
            "Files changed outside the plan: {}.",
            input.policy.outside_plan.join(", ")
        ));
    }
    if let Some(review) = input.review {
        for finding in &review.findings {
            if matches!(finding.severity.as_str(), "major" | "critical") {
                let place = finding
                    .path
                    .as_deref()
                    .map(|path| format!(" ({path})"))
                    .unwrap_or_default();
                risks.push(format!(
                    "Review, {}{place}: {}",
                    finding.severity, finding.comment
                ));
            }
        }
    }
    for record in &input.manifest.phases {
        if let Some(executor) = record
            .model
            .as_deref()
            .and_then(|model| model.strip_prefix("executor:"))
        {
            risks.push(format!(
                "{} ran the external executor `{executor}`: its model use is not metered by baton.",
                record.name
            ));
        }
        if record.repeated_calls > 0 {
            risks.push(format!(
                "{}: the model repeated {} tool call(s) with nothing changed in between; each was answered from its first result.",
                record.name, record.repeated_calls
            ));
        }
        for fallback in &record.fallbacks {
            risks.push(format!(
                "{}: the model fell back ({fallback}) after repeated provider failures.",
                record.name
            ));
        }
    }
    if let Some(head) = approved_head(input)
        && !input.policy.needs_approval.is_empty()
    {
        risks.push(format!(
            "Changes to {} were released by `/baton approve` on commit {}.",
            input.policy.needs_approval.join(", "),
            crate::trigger::approval::short(head)
        ));
    }
    for model in input.unpriced_models {
        risks.push(format!(
            "No [pricing] entry for `{model}`: its cost is counted as $0."
        ));
    }
    risks
}

fn needs_human(input: &EvidenceInput<'_>, evidence: &Evidence) -> Vec<String> {
    let mut needs = Vec::new();
    if evidence.outcome != Outcome::Done {
        let reason = evidence
            .reason
            .clone()
            .unwrap_or_else(|| "the run did not finish".into());
        needs.push(format!("The run ended `{}`: {reason}", evidence.outcome));
    }
    if input.manifest.config.outside_repository {
        needs.push(format!(
            "The run's config ({}) lives outside the repository: its rules were not reviewed with the code.",
            input.manifest.config.path.as_deref().unwrap_or("unnamed")
        ));
    }
    if !input.policy.needs_approval.is_empty() && approved_head(input).is_none() {
        needs.push(format!(
            "Changes to {} need `/baton approve` before they can be published.",
            input.policy.needs_approval.join(", ")
        ));
    }
    if let Some(review) = input.review
        && review.verdict != ReviewVerdict::Approve
    {
        needs.push("The review requested changes; see its findings.".into());
    }
    if !evidence.children.is_empty() {
        needs.push(format!(
            "File the {} child issue(s) listed below, or edit them first.",
            evidence.children.len()
        ));
    }
    let failed: Vec<String> = input
        .manifest
        .valid()
        .filter(|(_, record)| {
            matches!(
                record.status,
                PhaseStatus::Failed | PhaseStatus::Stopped | PhaseStatus::Interrupted
            )
        })
        .map(|(_, record)| format!("{} ({})", record.name, record.status.as_str()))
        .collect();
    if !failed.is_empty() {
        needs.push(format!(
            "Phase(s) that did not finish cleanly: {}.",
            dedup(failed).join(", ")
        ));
    }
    needs
}

/// The commit an approval checkpoint was released for, as publish found it.
fn approved_head<'a>(input: &EvidenceInput<'a>) -> Option<&'a str> {
    input
        .manifest
        .forge
        .as_ref()
        .and_then(|run| run.approved_head.as_deref())
}

fn dedup(mut items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    items.retain(|item| seen.insert(item.clone()));
    items
}
