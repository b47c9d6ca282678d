//! Pure decisions: the run's state machine, phase order, repair stops,
//! budgets and the review panel's vote.
//!
//! Nothing here does IO. The phases, the local driver and `status` ask these
//! functions what to do, given the manifest; the CI workflows encode the same
//! order.

pub mod budget;
pub mod machine;

use std::collections::BTreeMap;

use crate::records::Vote;
use crate::types::{ReviewVerdict, Route};

pub use machine::{Decision, PhaseResult, apply, begin, decide, force, next_phase};

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
    let mut text = String::new();
    for (gate, log_tail) in failures {
        text.push_str(gate);
        text.push('\0');
        let tail: Vec<&str> = log_tail.lines().rev().take(30).collect();
        for line in tail.iter().rev() {
            let normalized: String = line.chars().filter(|c| !c.is_ascii_digit()).collect();
            text.push_str(normalized.trim());
            text.push('\n');
        }
    }
    crate::digest::sha256_hex(text.as_bytes())[..16].to_owned()
}

/// A panel's decision: approve when the weighted share of `approve` votes
/// exceeds `threshold`; anything else (ties included) requests changes.
pub fn weighted_verdict(votes: &[Vote], threshold: f64) -> ReviewVerdict {
    let total: f64 = votes.iter().map(|vote| vote.weight).sum();
    let approving: f64 = votes
        .iter()
        .filter(|vote| vote.verdict == ReviewVerdict::Approve)
        .map(|vote| vote.weight)
        .sum();
    if total > 0.0 && approving / total > threshold {
        ReviewVerdict::Approve
    } else {
        ReviewVerdict::RequestChanges
    }
}

/// Route from labels through `[triggers].routes`; the first label that maps wins.
pub fn route_from_labels(
    labels: &[String],
    routes: &BTreeMap<String, Route>,
) -> Option<(Route, String)> {
    labels
        .iter()
        .find_map(|label| routes.get(label).map(|route| (*route, label.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PhaseName;

    #[test]
    fn routes_have_the_spec_order() {
        let names = |route: Route| {
            route
                .phases()
                .iter()
                .map(|phase| phase.as_str())
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
        assert!(Route::Epic.contains(PhaseName::Split));
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
        use ReviewVerdict::{Approve, RequestChanges};
        let vote = |verdict: ReviewVerdict, weight: f64| Vote {
            persona: "p".into(),
            weight,
            verdict,
            reason: String::new(),
        };
        assert_eq!(
            weighted_verdict(&[vote(Approve, 2.0), vote(RequestChanges, 1.0)], 0.5),
            Approve
        );
        assert_eq!(
            weighted_verdict(&[vote(Approve, 1.0), vote(RequestChanges, 1.0)], 0.5),
            RequestChanges
        );
        assert_eq!(
            weighted_verdict(&[vote(Approve, 1.0), vote(RequestChanges, 3.0)], 0.5),
            RequestChanges
        );
        assert_eq!(weighted_verdict(&[], 0.5), RequestChanges);
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
