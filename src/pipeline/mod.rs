//! Pure decisions: routes, phase order, budgets and stop conditions.
//!
//! Nothing here does IO. The phases and the local driver ask these functions
//! what to do next, given the manifest; the CI workflows encode the same order.

pub mod budget;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::run_dir::manifest::{Manifest, PhaseStatus};

/// The task shape picked at intake (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Feature,
    Hotfix,
    Chore,
    Epic,
}

impl Route {
    pub const ALL: [Route; 4] = [Route::Feature, Route::Hotfix, Route::Chore, Route::Epic];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Feature => "feature",
            Self::Hotfix => "hotfix",
            Self::Chore => "chore",
            Self::Epic => "epic",
        }
    }

    /// The phases of the route in order; `verify`/`repair` stand once each,
    /// their loop is decided by `next_phase`.
    pub fn phases(self) -> &'static [PhaseName] {
        use PhaseName::{
            Design, Implement, Intake, Plan, Publish, Repair, Review, Spec, Split, Tests, Verify,
        };
        match self {
            Self::Feature => &[
                Intake, Spec, Design, Plan, Tests, Implement, Verify, Repair, Review, Publish,
            ],
            Self::Hotfix => &[
                Intake, Spec, Tests, Implement, Verify, Repair, Review, Publish,
            ],
            Self::Chore => &[Intake, Plan, Implement, Verify, Repair, Review, Publish],
            Self::Epic => &[Intake, Spec, Design, Split, Publish],
        }
    }

    pub fn contains(self, phase: PhaseName) -> bool {
        self.phases().contains(&phase)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Route {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Route::ALL
            .into_iter()
            .find(|route| route.as_str() == text)
            .ok_or_else(|| format!("unknown route `{text}`; use feature, hotfix, chore or epic"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseName {
    Intake,
    Spec,
    Design,
    Plan,
    Tests,
    Implement,
    Verify,
    Repair,
    Review,
    Split,
    Publish,
}

impl PhaseName {
    pub const ALL: [PhaseName; 11] = [
        Self::Intake,
        Self::Spec,
        Self::Design,
        Self::Plan,
        Self::Tests,
        Self::Implement,
        Self::Verify,
        Self::Repair,
        Self::Review,
        Self::Split,
        Self::Publish,
    ];

    pub const ALL_NAMES: &'static [&'static str] = &[
        "intake",
        "spec",
        "design",
        "plan",
        "tests",
        "implement",
        "verify",
        "repair",
        "review",
        "split",
        "publish",
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL_NAMES[self as usize]
    }

    /// The tier a phase uses when `[phases.X].model` is unset: the cheapest
    /// that fits the work.
    pub fn default_tier(self) -> &'static str {
        match self {
            Self::Intake | Self::Verify | Self::Publish => "light",
            Self::Design => "heavy",
            _ => "standard",
        }
    }

    /// Phases whose deliverable goes through the validator loop.
    pub fn is_validated(self) -> bool {
        matches!(
            self,
            Self::Spec | Self::Design | Self::Plan | Self::Review | Self::Split
        )
    }
}

impl fmt::Display for PhaseName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for PhaseName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|phase| phase.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "unknown phase `{text}`; use one of: {}",
                    Self::ALL_NAMES.join(" ")
                )
            })
    }
}

/// How a run ends (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Running,
    Done,
    Blocked,
    Failed,
    BudgetExceeded,
    Cancelled,
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Blocked => "blocked",
            Self::Failed => "failed",
            Self::BudgetExceeded => "budget_exceeded",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
        }
    }

    pub fn is_terminal(self) -> bool {
        self != Self::Running
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// What `baton phase NAME` should do with the run as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseDecision {
    Run,
    /// Not on this route, or nothing to do (repair after a green verify).
    Skip(String),
    /// Already finished for the current inputs: a no-op unless `--force`.
    AlreadyDone,
    /// An earlier phase has not finished.
    NotReady(String),
    /// The run has ended; only publish (finalise) still runs.
    Ended(Outcome),
}

/// Decides whether `phase` runs now. Pure over the manifest.
pub fn decide(manifest: &Manifest, phase: PhaseName, patch_sha256: Option<&str>) -> PhaseDecision {
    let route = manifest.route;
    if phase != PhaseName::Intake && !route.contains(phase) {
        return PhaseDecision::Skip(format!("the {route} route has no {phase} phase"));
    }
    if manifest.outcome.is_terminal() && phase != PhaseName::Publish {
        return PhaseDecision::Ended(manifest.outcome);
    }
    let finished = |name: PhaseName| {
        manifest
            .phases
            .iter()
            .any(|record| record.name == name && record.status == PhaseStatus::Done)
    };
    match phase {
        PhaseName::Verify => {
            if let Some(missing) = first_unfinished_before(manifest, phase, finished) {
                return PhaseDecision::NotReady(missing);
            }
            let last_verify = manifest
                .phases
                .iter()
                .rev()
                .find(|record| record.name == PhaseName::Verify);
            match last_verify {
                Some(record)
                    if record.status == PhaseStatus::Done
                        && record.input_sha256.as_deref() == patch_sha256 =>
                {
                    PhaseDecision::AlreadyDone
                }
                _ => PhaseDecision::Run,
            }
        }
        PhaseName::Repair => {
            let last_verify = manifest
                .phases
                .iter()
                .rev()
                .find(|record| record.name == PhaseName::Verify);
            let Some(last_verify) = last_verify else {
                return PhaseDecision::NotReady("verify has not run yet".into());
            };
            if last_verify.passed == Some(true) {
                return PhaseDecision::Skip("the last verify passed: nothing to repair".into());
            }
            let last = manifest.phases.last().map(|record| record.name);
            if last == Some(PhaseName::Repair) {
                PhaseDecision::AlreadyDone
            } else {
                PhaseDecision::Run
            }
        }
        _ => {
            if finished(phase) {
                return PhaseDecision::AlreadyDone;
            }
            if phase == PhaseName::Publish {
                return PhaseDecision::Run;
            }
            if let Some(missing) = first_unfinished_before(manifest, phase, finished) {
                return PhaseDecision::NotReady(missing);
            }
            if phase == PhaseName::Review || phase == PhaseName::Split {
                let last_verify = manifest
                    .phases
                    .iter()
                    .rev()
                    .find(|record| record.name == PhaseName::Verify);
                if route.contains(PhaseName::Verify)
                    && last_verify.and_then(|r| r.passed) != Some(true)
                {
                    return PhaseDecision::NotReady("verify has not passed yet".into());
                }
            }
            PhaseDecision::Run
        }
    }
}

fn first_unfinished_before(
    manifest: &Manifest,
    phase: PhaseName,
    finished: impl Fn(PhaseName) -> bool,
) -> Option<String> {
    manifest
        .route
        .phases()
        .iter()
        .take_while(|earlier| **earlier != phase)
        .filter(|earlier| **earlier != PhaseName::Repair)
        .find(|earlier| !finished(**earlier))
        .map(|earlier| format!("phase {earlier} has not finished; run it first"))
}

/// The phase the local driver (and a CI job graph) runs after `completed`.
/// `None` once publish has finished. Pure over the manifest.
pub fn next_phase(manifest: &Manifest) -> Option<PhaseName> {
    let route = manifest.route;
    let last = manifest.phases.last()?;
    if manifest.outcome.is_terminal() {
        return (last.name != PhaseName::Publish).then_some(PhaseName::Publish);
    }
    match last.name {
        PhaseName::Verify if last.passed != Some(true) => Some(PhaseName::Repair),
        PhaseName::Repair => Some(PhaseName::Verify),
        PhaseName::Publish => None,
        current => {
            let phases = route.phases();
            let position = phases.iter().position(|phase| *phase == current)?;
            phases[position + 1..]
                .iter()
                .copied()
                .find(|phase| *phase != PhaseName::Repair)
        }
    }
}

/// Why a failed verify cannot be followed by another repair, if it cannot.
pub fn repair_stop(repairs_done: u32, max_repairs: u32, signatures: &[String]) -> Option<String> {
    if let [.., previous, last] = signatures
        && previous == last
    {
        return Some(
            "the same gate failure came back twice in a row: repairs are not converging".into(),
        );
    }
    if repairs_done >= max_repairs {
        return Some(format!(
            "gates still red after {repairs_done} repair(s) (budget.max_repairs = {max_repairs})"
        ));
    }
    None
}

/// A failure signature: which gates failed and how their logs end, with digits
/// removed so timings and addresses do not make equal failures look different.
pub fn failure_signature(failures: &[(&str, &str)]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (gate, log_tail) in failures {
        hasher.update(gate.as_bytes());
        hasher.update([0]);
        let tail: Vec<&str> = log_tail.lines().rev().take(30).collect();
        for line in tail.iter().rev() {
            let normalized: String = line.chars().filter(|c| !c.is_ascii_digit()).collect();
            hasher.update(normalized.trim().as_bytes());
            hasher.update([b'\n']);
        }
    }
    hex(&hasher.finalize())[..16].to_owned()
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

/// A panel's decision: approve when the weighted share of `approve` votes
/// exceeds `threshold`; anything else (ties included) requests changes.
pub fn weighted_verdict(votes: &[crate::records::Vote], threshold: f64) -> &'static str {
    let total: f64 = votes.iter().map(|vote| vote.weight).sum();
    let approving: f64 = votes
        .iter()
        .filter(|vote| vote.verdict == "approve")
        .map(|vote| vote.weight)
        .sum();
    if total > 0.0 && approving / total > threshold {
        "approve"
    } else {
        "request_changes"
    }
}

/// Route from labels through `[triggers].routes`; the first label that maps wins.
pub fn route_from_labels(
    labels: &[String],
    routes: &std::collections::BTreeMap<String, Route>,
) -> Option<(Route, String)> {
    labels
        .iter()
        .find_map(|label| routes.get(label).map(|route| (*route, label.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::manifest::PhaseRecord;

    fn manifest(route: Route, done: &[(PhaseName, Option<bool>)]) -> Manifest {
        let mut manifest = Manifest::for_tests(route);
        for (name, passed) in done {
            let mut record = PhaseRecord::started(*name, None);
            record.status = PhaseStatus::Done;
            record.passed = *passed;
            record.input_sha256 = Some("patch-1".into());
            manifest.phases.push(record);
        }
        manifest
    }

    #[test]
    fn routes_have_the_spec_order() {
        let names = |route: Route| {
            route
                .phases()
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            names(Route::Feature),
            "intake spec design plan tests implement verify repair review publish"
        );
        assert_eq!(
            names(Route::Hotfix),
            "intake spec tests implement verify repair review publish"
        );
        assert_eq!(
            names(Route::Chore),
            "intake plan implement verify repair review publish"
        );
        assert_eq!(names(Route::Epic), "intake spec design split publish");
    }

    #[test]
    fn next_phase_loops_verify_and_repair() {
        use PhaseName::*;
        let m = manifest(
            Route::Chore,
            &[
                (Intake, None),
                (Plan, None),
                (Implement, None),
                (Verify, Some(false)),
            ],
        );
        assert_eq!(next_phase(&m), Some(Repair));
        let m = manifest(
            Route::Chore,
            &[
                (Intake, None),
                (Plan, None),
                (Implement, None),
                (Verify, Some(false)),
                (Repair, None),
            ],
        );
        assert_eq!(next_phase(&m), Some(Verify));
        let m = manifest(
            Route::Chore,
            &[
                (Intake, None),
                (Plan, None),
                (Implement, None),
                (Verify, Some(true)),
            ],
        );
        assert_eq!(next_phase(&m), Some(Review));
        let m = manifest(Route::Epic, &[(Intake, None), (Spec, None), (Design, None)]);
        assert_eq!(next_phase(&m), Some(Split));
    }

    #[test]
    fn decisions() {
        use PhaseName::*;
        let m = manifest(Route::Chore, &[(Intake, None), (Plan, None)]);
        assert_eq!(decide(&m, Plan, None), PhaseDecision::AlreadyDone);
        assert!(matches!(decide(&m, Spec, None), PhaseDecision::Skip(_)));
        assert!(matches!(
            decide(&m, Verify, Some("x")),
            PhaseDecision::NotReady(_)
        ));
        let m = manifest(
            Route::Chore,
            &[
                (Intake, None),
                (Plan, None),
                (Implement, None),
                (Verify, Some(true)),
            ],
        );
        assert_eq!(
            decide(&m, Verify, Some("patch-1")),
            PhaseDecision::AlreadyDone
        );
        assert_eq!(decide(&m, Verify, Some("patch-2")), PhaseDecision::Run);
        assert!(matches!(decide(&m, Repair, None), PhaseDecision::Skip(_)));
        assert_eq!(decide(&m, Review, None), PhaseDecision::Run);
    }

    #[test]
    fn repair_stops_on_budget_or_repeated_signature() {
        assert!(repair_stop(0, 2, &["a".into()]).is_none());
        assert!(
            repair_stop(2, 2, &["a".into(), "b".into(), "c".into()])
                .unwrap()
                .contains("max_repairs")
        );
        assert!(
            repair_stop(1, 2, &["a".into(), "a".into()])
                .unwrap()
                .contains("twice")
        );
    }

    #[test]
    fn weighted_votes() {
        let vote = |verdict: &str, weight: f64| crate::records::Vote {
            persona: "p".into(),
            weight,
            verdict: verdict.into(),
            reason: String::new(),
        };
        assert_eq!(
            weighted_verdict(&[vote("approve", 2.0), vote("request_changes", 1.0)], 0.5),
            "approve"
        );
        assert_eq!(
            weighted_verdict(&[vote("approve", 1.0), vote("request_changes", 1.0)], 0.5),
            "request_changes"
        );
        assert_eq!(
            weighted_verdict(&[vote("approve", 1.0), vote("request_changes", 3.0)], 0.5),
            "request_changes"
        );
        assert_eq!(weighted_verdict(&[], 0.5), "request_changes");
    }

    #[test]
    fn signatures_ignore_digits() {
        let first = failure_signature(&[(
            "test",
            "test result: FAILED. 1 passed; 1 failed; finished in 0.12s",
        )]);
        let second = failure_signature(&[(
            "test",
            "test result: FAILED. 1 passed; 1 failed; finished in 0.49s",
        )]);
        let other = failure_signature(&[("build", "error[E0425]")]);
        assert_eq!(first, second);
        assert_ne!(first, other);
    }
}
