//! The names of the run directory's files (SPEC §6), in one place: phases,
//! evidence and the state machine refer to these, never to string literals.

use crate::types::PhaseName;

pub const MANIFEST: &str = "manifest.json";
/// The advisory lock of the one process that may write the run (not an artifact).
pub const LOCK: &str = ".lock";
pub const TICKET: &str = "ticket.json";
pub const PATCH: &str = "changes.patch";
pub const SPEC: &str = "spec.json";
pub const ADVERSARIAL: &str = "adversarial.json";
pub const DESIGN: &str = "design.json";
pub const DESIGN_MARKDOWN: &str = "design.md";
pub const PLAN: &str = "plan.json";
pub const PLAN_MARKDOWN: &str = "plan.md";
pub const SPEC_MARKDOWN: &str = "spec.md";
pub const TESTS: &str = "tests.json";
pub const IMPLEMENT: &str = "implement.json";
pub const VERIFY: &str = "verify.json";
pub const REPAIR: &str = "repair.json";
/// `/baton fix`: the feedback and the pull-request head the run builds on.
pub const FIX: &str = "fix.json";
pub const REVIEW: &str = "review.json";
pub const CHILDREN: &str = "children.json";
pub const EVIDENCE: &str = "evidence.json";
pub const EVIDENCE_MARKDOWN: &str = "evidence.md";

/// `gates/<name>.json` and `gates/<name>.log`.
pub fn gate_result(gate: &str) -> String {
    format!("gates/{gate}.json")
}

pub fn gate_log(gate: &str) -> String {
    format!("gates/{gate}.log")
}

/// `feedback/<phase>.json`: the validator's objections, every attempt.
pub fn feedback(phase: PhaseName) -> String {
    format!("feedback/{phase}.json")
}

/// `transcripts/<label>-<attempt>.jsonl`.
pub fn transcript(label: &str, attempt: u32) -> String {
    format!("transcripts/{label}-{attempt}.jsonl")
}

/// `repair-<round>.json`: one repair's summary.
pub fn repair_round(round: u32) -> String {
    format!("repair-{round}.json")
}

/// `patches/<record>-<phase>.patch`: the patch a phase execution left, so a
/// `--force` that invalidates later phases can restore the one before them.
pub fn patch_snapshot(record: usize, phase: PhaseName) -> String {
    format!("patches/{record:02}-{phase}.patch")
}

/// The artifacts a phase owns: removed when `--force` invalidates every
/// execution of it, so no later phase or the evidence reads a stale one.
/// Transcripts stay: they are the record of what was spent.
pub fn owned_by(phase: PhaseName, artifact: &str) -> bool {
    let stem = artifact.rsplit_once('.').map_or(artifact, |(stem, _)| stem);
    match phase {
        PhaseName::Intake => false,
        PhaseName::Spec => stem == "spec" || artifact == ADVERSARIAL || artifact == feedback(phase),
        PhaseName::Design | PhaseName::Plan | PhaseName::Review | PhaseName::Split => {
            let own = match phase {
                PhaseName::Split => "children",
                other => other.as_str(),
            };
            stem == own || artifact == feedback(phase)
        }
        PhaseName::Tests => artifact == TESTS,
        PhaseName::Implement => artifact == IMPLEMENT,
        PhaseName::Verify => artifact == VERIFY || artifact.starts_with("gates/"),
        PhaseName::Repair => artifact == REPAIR || artifact.starts_with("repair-"),
        PhaseName::Publish => stem == "evidence",
    }
}
