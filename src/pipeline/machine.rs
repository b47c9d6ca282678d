//! The run's state machine, as pure functions over the manifest.
//!
//! A run is its list of phase records plus an outcome. Four functions move it:
//! `begin` (a phase starts), `apply` (it reported how it ended), `force`
//! (a person asked to redo a phase and everything after it) and the two
//! questions every caller asks: `next_phase` (what runs now) and `decide`
//! (may this phase run now). The local driver, `status`, every phase and the
//! CI workflows all read these, so they cannot disagree.
//!
//! The guarantees, property-tested below: every run reaches a terminal outcome
//! within `max_executions`; a phase never finishes twice on the same inputs;
//! the phase `next_phase` names is always one `decide` lets run.

use crate::run_dir::manifest::{Manifest, PhaseRecord, PhaseStatus};
use crate::types::{Outcome, PhaseName, Route};

/// How often one phase may fail to finish (an infrastructure error) in a row
/// before the run stops `blocked`: a broken runner must not retry forever.
pub const MAX_CONSECUTIVE_ERRORS: usize = 3;

/// What a phase execution reported when it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseResult {
    /// It did its work; the run goes on.
    Finished,
    /// verify ran every gate; `signature` identifies a failure.
    Verified {
        passed: bool,
        signature: Option<String>,
    },
    /// It did its work and the run ends with this outcome (`done` from publish).
    Stop(Outcome, String),
    /// It could not do its work (an infrastructure or input error): nothing
    /// was decided, the same phase runs again.
    Error(String),
    /// SIGINT or SIGTERM: the run is `cancelled`; rerunning the phase resumes it.
    Interrupted(String),
}

/// What `baton phase NAME` does with the run as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Run,
    /// Not on this route, or nothing to do (repair after a green verify).
    Skip(String),
    /// Already finished for the current inputs: a no-op unless `--force`.
    AlreadyDone,
    /// Another phase must run first (exit 2).
    NotReady(String),
    /// The run has ended: a no-op that says how.
    Ended(Outcome),
}

fn is_finished(status: PhaseStatus) -> bool {
    matches!(status, PhaseStatus::Done | PhaseStatus::Stopped)
}

fn last_valid(manifest: &Manifest) -> Option<(usize, &PhaseRecord)> {
    manifest.valid().next_back()
}

/// The last verify that ran its gates, among the valid records.
pub fn last_verify(manifest: &Manifest) -> Option<&PhaseRecord> {
    manifest
        .valid()
        .rev()
        .map(|(_, record)| record)
        .find(|record| record.name == PhaseName::Verify && is_finished(record.status))
}

/// The phase after `current` on the run's route, `repair` excepted (it only
/// follows a red verify).
fn after(manifest: &Manifest, current: PhaseName) -> Option<PhaseName> {
    let phases = manifest.route.phases();
    let position = phases.iter().position(|phase| *phase == current)?;
    phases[position + 1..]
        .iter()
        .copied()
        .find(|phase| *phase != PhaseName::Repair)
}

/// The phase that runs now; `None` once the run has ended and published.
pub fn next_phase(manifest: &Manifest) -> Option<PhaseName> {
    if manifest.has_ended() {
        if manifest.outcome == Outcome::Cancelled
            && let Some(record) = manifest
                .ended_by
                .and_then(|index| manifest.phases.get(index))
        {
            return Some(record.name);
        }
        let published = manifest
            .valid()
            .any(|(_, record)| record.name == PhaseName::Publish && is_finished(record.status));
        return (!published).then_some(PhaseName::Publish);
    }
    let Some((_, last)) = last_valid(manifest) else {
        return Some(PhaseName::Intake);
    };
    if !is_finished(last.status) {
        return Some(last.name);
    }
    match last.name {
        PhaseName::Verify if last.passed != Some(true) => manifest
            .route
            .contains(PhaseName::Repair)
            .then_some(PhaseName::Repair),
        PhaseName::Repair => Some(PhaseName::Verify),
        // A fix starts with its repair: the feedback is its failing gate.
        PhaseName::Intake if manifest.route == Route::Fix => Some(PhaseName::Repair),
        PhaseName::Publish => None,
        current => after(manifest, current),
    }
}

/// Whether `phase` runs now. A phase runs only when it is `next_phase`; any
/// other call is a no-op (exit 0) or names what must run first (exit 2).
pub fn decide(manifest: &Manifest, phase: PhaseName) -> Decision {
    let route = manifest.route;
    if phase != PhaseName::Intake && !route.contains(phase) {
        return Decision::Skip(format!("the {route} route has no {phase} phase"));
    }
    let next = next_phase(manifest);
    if next == Some(phase) {
        return Decision::Run;
    }
    if manifest.has_ended() {
        return Decision::Ended(manifest.outcome);
    }
    if phase == PhaseName::Repair && last_verify(manifest).and_then(|v| v.passed) == Some(true) {
        return Decision::Skip("the last verify passed: nothing to repair".into());
    }
    let finished = manifest
        .valid()
        .any(|(_, record)| record.name == phase && is_finished(record.status));
    if finished {
        return Decision::AlreadyDone;
    }
    match next {
        Some(next) => Decision::NotReady(format!(
            "the run's next phase is {next}; run `baton phase {next}` first"
        )),
        None => Decision::AlreadyDone,
    }
}

/// A phase starts: a running record is pushed. A record still `running`
/// belongs to a job that died (the caller holds the run's lock, so no live
/// process owns it); it is marked failed. Resuming the phase a cancel
/// interrupted reopens the run.
pub fn begin(manifest: &mut Manifest, record: PhaseRecord) -> usize {
    for (_, stale) in manifest
        .phases
        .iter_mut()
        .enumerate()
        .filter(|(_, record)| record.status == PhaseStatus::Running)
    {
        stale.status = PhaseStatus::Failed;
        stale.note = Some("the job running this phase died before it ended".into());
    }
    if manifest.outcome == Outcome::Cancelled
        && manifest
            .ended_by
            .and_then(|index| manifest.phases.get(index))
            .is_some_and(|interrupted| interrupted.name == record.name)
    {
        reopen(manifest);
    }
    manifest.phases.push(record);
    manifest.phases.len() - 1
}

fn reopen(manifest: &mut Manifest) {
    manifest.outcome = Outcome::Running;
    manifest.reason = None;
    manifest.ended_by = None;
}

/// The run ends with `outcome`, or, when it had ended already (publish
/// finalising it), keeps the outcome it ended with: the first stop wins.
/// "Had ended" is read from `ended_by` (an earlier record), not from the
/// outcome, which publish sets for its evidence before this runs.
fn stop(manifest: &mut Manifest, index: usize, outcome: Outcome, reason: String) {
    let finalising = ended_earlier(manifest, index);
    let record = &mut manifest.phases[index];
    record.status = if outcome == Outcome::Done {
        PhaseStatus::Done
    } else {
        PhaseStatus::Stopped
    };
    if record.note.is_none() || outcome != Outcome::Done {
        record.note = Some(reason.clone());
    }
    if finalising {
        return;
    }
    manifest.outcome = outcome;
    manifest.reason = (outcome != Outcome::Done).then_some(reason);
    manifest.ended_by = Some(index);
}

/// The last record (the running phase) ends with `result`; the run's outcome
/// follows. The current patch is read from the manifest's artifacts.
pub fn apply(manifest: &mut Manifest, result: PhaseResult) {
    let Some(index) = manifest.phases.len().checked_sub(1) else {
        return;
    };
    let name = manifest.phases[index].name;
    let patch = manifest.patch_sha256().map(str::to_owned);
    if matches!(
        name,
        PhaseName::Tests | PhaseName::Implement | PhaseName::Repair | PhaseName::Verify
    ) || produces_patch(manifest.route, name)
    {
        manifest.phases[index].patch_sha256.clone_from(&patch);
    }
    match result {
        PhaseResult::Finished => {
            manifest.phases[index].status = PhaseStatus::Done;
            if name == PhaseName::Repair {
                let verified = manifest.phases[..index]
                    .iter()
                    .rev()
                    .filter(|record| record.status != PhaseStatus::Superseded)
                    .find(|record| record.name == PhaseName::Verify && is_finished(record.status))
                    .and_then(|record| record.patch_sha256.clone());
                if verified == patch {
                    let round = repairs_done(manifest);
                    stop(
                        manifest,
                        index,
                        Outcome::Failed,
                        format!(
                            "repair {round} left the patch unchanged, so the same gate failure would come back: repairs are not converging"
                        ),
                    );
                }
            }
        }
        PhaseResult::Verified { passed, signature } => {
            let record = &mut manifest.phases[index];
            record.status = PhaseStatus::Done;
            record.passed = Some(passed);
            record.signature = if passed { None } else { signature };
            if !passed {
                let reason = if manifest.route.contains(PhaseName::Repair) {
                    super::repair_stop(
                        repairs_done(manifest),
                        manifest.budget.limits.max_repairs,
                        &consecutive_signatures(manifest),
                    )
                } else {
                    Some("gates failed and the route has no repair".into())
                };
                if let Some(reason) = reason {
                    let note = manifest.phases[index].note.take();
                    let reason = match note {
                        Some(note) => format!("{reason}; {note}"),
                        None => reason,
                    };
                    stop(manifest, index, Outcome::Failed, reason);
                }
            }
        }
        PhaseResult::Stop(outcome, reason) => stop(manifest, index, outcome, reason),
        PhaseResult::Error(reason) => {
            let record = &mut manifest.phases[index];
            record.status = PhaseStatus::Failed;
            record.note = Some(reason.clone());
            let errors = manifest
                .valid()
                .rev()
                .take_while(|(_, record)| record.name == name)
                .filter(|(_, record)| record.status == PhaseStatus::Failed)
                .count();
            if errors >= MAX_CONSECUTIVE_ERRORS {
                stop(
                    manifest,
                    index,
                    Outcome::Blocked,
                    format!(
                        "{name} could not finish {errors} times in a row; last error: {reason}"
                    ),
                );
            }
        }
        PhaseResult::Interrupted(reason) => {
            let finalising = ended_earlier(manifest, index);
            let record = &mut manifest.phases[index];
            record.status = PhaseStatus::Interrupted;
            record.note = Some(reason.clone());
            if finalising {
                // Publish was finalising an ended run: it runs again, and
                // the outcome the run ended with stands.
                return;
            }
            manifest.outcome = Outcome::Cancelled;
            manifest.reason = Some(reason);
            manifest.ended_by = Some(index);
        }
    }
}

/// Whether a record before `index` ended the run (publish is finalising it).
fn ended_earlier(manifest: &Manifest, index: usize) -> bool {
    manifest.ended_by.is_some_and(|ended| ended < index)
}

fn repairs_done(manifest: &Manifest) -> u32 {
    manifest
        .valid()
        .filter(|(_, record)| record.name == PhaseName::Repair && is_finished(record.status))
        .count() as u32
}

/// Failure signatures of the verifies since the last green one, oldest first.
fn consecutive_signatures(manifest: &Manifest) -> Vec<String> {
    let mut signatures: Vec<String> = manifest
        .valid()
        .rev()
        .map(|(_, record)| record)
        .filter(|record| record.name == PhaseName::Verify && is_finished(record.status))
        .take_while(|record| record.passed != Some(true))
        .filter_map(|record| record.signature.clone())
        .collect();
    signatures.reverse();
    signatures
}

/// `--force` on `phase`: its last execution and every one after it are
/// superseded (kept for their spend). A run ended by one of them reopens.
/// Returns the superseded record indices; empty when the phase never ran.
pub fn force(manifest: &mut Manifest, phase: PhaseName) -> Vec<usize> {
    let Some((from, _)) = manifest
        .valid()
        .rev()
        .find(|(_, record)| record.name == phase)
    else {
        return Vec::new();
    };
    let invalidated: Vec<usize> = manifest
        .valid()
        .filter(|(index, _)| *index >= from)
        .map(|(index, _)| index)
        .collect();
    for index in &invalidated {
        manifest.phases[*index].status = PhaseStatus::Superseded;
    }
    if manifest
        .ended_by
        .is_some_and(|index| invalidated.contains(&index))
    {
        reopen(manifest);
    }
    invalidated
}

/// publish asked to finalise a run the pipeline left before its end (a job
/// failed to finish, was cancelled, or never ran): the run ends `cancelled`
/// with `reason` (an interrupt's reason stands), and publish is next.
/// Returns whether anything changed; a run at publish, or already
/// published, is left alone.
pub fn finalise(manifest: &mut Manifest, reason: &str) -> bool {
    let Some(next) = next_phase(manifest).filter(|next| *next != PhaseName::Publish) else {
        return false;
    };
    if manifest.outcome == Outcome::Cancelled {
        // An interrupt's reason says how to resume; once published as it
        // stood, the run no longer resumes: say what happened instead.
        let was = manifest.reason.take().unwrap_or_default();
        let was = was.split("; rerun").next().unwrap_or_default().trim();
        manifest.reason = Some(format!(
            "{was}; published as it stood (`--force` on a phase reopens the run)"
        ));
    } else {
        manifest.outcome = Outcome::Cancelled;
        manifest.reason = Some(format!(
            "the pipeline stopped before {next} could finish: {reason}"
        ));
    }
    // Resuming the interrupted phase no longer reopens the run: it has
    // been published as it stood.
    manifest.ended_by = None;
    true
}

/// The patch the next phase starts from: the one the last valid finished
/// producer (tests, implement, repair) left, as (record index, phase, sha256);
/// `None` means no patch (the base commit as it is).
pub fn expected_patch(manifest: &Manifest) -> Option<(usize, PhaseName, String)> {
    manifest
        .valid()
        .rev()
        .filter(|(_, record)| {
            produces_patch(manifest.route, record.name) && record.status == PhaseStatus::Done
        })
        .find_map(|(index, record)| Some((index, record.name, record.patch_sha256.clone()?)))
}

/// The phases whose execution leaves the run's patch: tests, implement and
/// repair, and, on the fix route, intake (the pull request's change).
pub fn produces_patch(route: Route, phase: PhaseName) -> bool {
    matches!(
        phase,
        PhaseName::Tests | PhaseName::Implement | PhaseName::Repair
    ) || (route == Route::Fix && phase == PhaseName::Intake)
}

/// An upper bound on phase executions before any run ends, from the route
/// and `[budget].max_repairs`: every phase may fail to finish
/// `MAX_CONSECUTIVE_ERRORS - 1` times and still finish once, verify and
/// repair loop at most `max_repairs` times, and publish finalises.
pub fn max_executions(manifest: &Manifest) -> usize {
    let loops = 2 * manifest.budget.limits.max_repairs as usize;
    (manifest.route.phases().len() + loops + 1) * MAX_CONSECUTIVE_ERRORS
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::run_dir::artifact;
    use crate::types::Route;

    #[test]
    fn finalise_ends_a_run_the_pipeline_left_and_publish_runs_next() {
        let mut manifest = Manifest::for_tests(Route::Chore);
        execute(
            &mut manifest,
            PhaseName::Intake,
            PhaseResult::Finished,
            None,
        );
        assert_eq!(next_phase(&manifest), Some(PhaseName::Plan));
        assert!(finalise(&mut manifest, "a job failed"));
        assert_eq!(manifest.outcome, Outcome::Cancelled);
        assert!(manifest.reason.as_deref().unwrap().contains("before plan"));
        assert_eq!(decide(&manifest, PhaseName::Publish), Decision::Run);
        execute(
            &mut manifest,
            PhaseName::Publish,
            PhaseResult::Finished,
            None,
        );
        assert_eq!(next_phase(&manifest), None);
        assert_eq!(manifest.outcome, Outcome::Cancelled);
        // Once published there is nothing left to finalise.
        assert!(!finalise(&mut manifest, "again"));
    }

    #[test]
    fn finalise_keeps_an_interrupts_reason_without_its_resume_hint_and_leaves_a_run_at_publish_alone()
     {
        let mut manifest = Manifest::for_tests(Route::Chore);
        execute(
            &mut manifest,
            PhaseName::Intake,
            PhaseResult::Finished,
            None,
        );
        execute(
            &mut manifest,
            PhaseName::Plan,
            PhaseResult::Interrupted(
                "interrupted by SIGTERM during plan; rerun `baton phase plan` to resume".into(),
            ),
            None,
        );
        assert_eq!(next_phase(&manifest), Some(PhaseName::Plan));
        assert!(finalise(&mut manifest, "cancelled"));
        assert_eq!(
            manifest.reason.as_deref(),
            Some(
                "interrupted by SIGTERM during plan; published as it stood (`--force` on a phase reopens the run)"
            )
        );
        assert_eq!(next_phase(&manifest), Some(PhaseName::Publish));

        let mut failed = Manifest::for_tests(Route::Chore);
        execute(&mut failed, PhaseName::Intake, PhaseResult::Finished, None);
        execute(
            &mut failed,
            PhaseName::Plan,
            PhaseResult::Stop(Outcome::Blocked, "validator".into()),
            None,
        );
        assert!(!finalise(&mut failed, "x"));
        assert_eq!(failed.outcome, Outcome::Blocked);
    }

    fn record(name: PhaseName) -> PhaseRecord {
        PhaseRecord::started(name, None)
    }

    /// Runs `phase` with `result`, updating the patch as a producer would.
    fn execute(
        manifest: &mut Manifest,
        phase: PhaseName,
        result: PhaseResult,
        patch: Option<&str>,
    ) {
        assert_eq!(
            decide(manifest, phase),
            Decision::Run,
            "{phase} must be runnable"
        );
        restore(manifest);
        begin(manifest, record(phase));
        if let Some(patch) = patch {
            manifest
                .artifacts
                .insert(artifact::PATCH.into(), patch.to_owned());
        }
        // Publish records its verdict in the outcome for its evidence
        // before it reports; the machine must not take that for an end.
        if let (PhaseName::Publish, PhaseResult::Stop(outcome, _)) = (phase, &result)
            && !manifest.has_ended()
        {
            manifest.outcome = *outcome;
        }
        apply(manifest, result);
    }

    /// What the IO layer does at `begin`: the patch is the last producer's.
    fn restore(manifest: &mut Manifest) {
        match expected_patch(manifest) {
            Some((_, _, sha)) => {
                manifest.artifacts.insert(artifact::PATCH.into(), sha);
            }
            None => {
                manifest.artifacts.remove(artifact::PATCH);
            }
        }
    }

    fn chore() -> Manifest {
        let mut manifest = Manifest::for_tests(Route::Chore);
        manifest.budget.limits.max_repairs = 2;
        for phase in [PhaseName::Intake, PhaseName::Plan] {
            execute(&mut manifest, phase, PhaseResult::Finished, None);
        }
        execute(
            &mut manifest,
            PhaseName::Implement,
            PhaseResult::Finished,
            Some("p1"),
        );
        manifest
    }

    fn red(signature: &str) -> PhaseResult {
        PhaseResult::Verified {
            passed: false,
            signature: Some(signature.into()),
        }
    }

    #[test]
    fn a_fix_starts_with_its_repair_and_loops_like_any_repair() {
        let mut manifest = Manifest::for_tests(Route::Fix);
        manifest.budget.limits.max_repairs = 2;
        execute(
            &mut manifest,
            PhaseName::Intake,
            PhaseResult::Finished,
            Some("p0"),
        );
        assert_eq!(next_phase(&manifest), Some(PhaseName::Repair));
        assert_eq!(decide(&manifest, PhaseName::Repair), Decision::Run);
        execute(
            &mut manifest,
            PhaseName::Repair,
            PhaseResult::Finished,
            Some("p1"),
        );
        assert_eq!(manifest.outcome, Outcome::Running);
        assert_eq!(next_phase(&manifest), Some(PhaseName::Verify));
        execute(&mut manifest, PhaseName::Verify, red("a"), None);
        assert_eq!(next_phase(&manifest), Some(PhaseName::Repair));
        execute(
            &mut manifest,
            PhaseName::Repair,
            PhaseResult::Finished,
            Some("p2"),
        );
        execute(
            &mut manifest,
            PhaseName::Verify,
            PhaseResult::Verified {
                passed: true,
                signature: None,
            },
            None,
        );
        assert_eq!(next_phase(&manifest), Some(PhaseName::Review));
        assert!(matches!(
            decide(&manifest, PhaseName::Spec),
            Decision::Skip(_)
        ));
    }

    #[test]
    fn a_repair_that_changes_nothing_ends_the_run_failed() {
        let mut manifest = chore();
        execute(&mut manifest, PhaseName::Verify, red("a"), None);
        assert_eq!(next_phase(&manifest), Some(PhaseName::Repair));
        execute(
            &mut manifest,
            PhaseName::Repair,
            PhaseResult::Finished,
            Some("p1"),
        );
        assert_eq!(manifest.outcome, Outcome::Failed);
        assert!(manifest.reason.as_deref().unwrap().contains("unchanged"));
        assert_eq!(next_phase(&manifest), Some(PhaseName::Publish));
    }

    #[test]
    fn the_same_failure_twice_or_too_many_repairs_end_the_run() {
        let mut manifest = chore();
        execute(&mut manifest, PhaseName::Verify, red("a"), None);
        execute(
            &mut manifest,
            PhaseName::Repair,
            PhaseResult::Finished,
            Some("p2"),
        );
        execute(&mut manifest, PhaseName::Verify, red("a"), None);
        assert_eq!(manifest.outcome, Outcome::Failed);
        assert!(manifest.reason.as_deref().unwrap().contains("twice"));

        let mut manifest = chore();
        for (round, patch) in ["p2", "p3"].into_iter().enumerate() {
            execute(
                &mut manifest,
                PhaseName::Verify,
                red(&round.to_string()),
                None,
            );
            execute(
                &mut manifest,
                PhaseName::Repair,
                PhaseResult::Finished,
                Some(patch),
            );
        }
        execute(&mut manifest, PhaseName::Verify, red("z"), None);
        assert!(manifest.reason.as_deref().unwrap().contains("max_repairs"));
    }

    #[test]
    fn an_error_is_rerun_never_repaired_and_three_in_a_row_block() {
        let mut manifest = chore();
        execute(
            &mut manifest,
            PhaseName::Verify,
            PhaseResult::Error("no disk".into()),
            None,
        );
        assert_eq!(next_phase(&manifest), Some(PhaseName::Verify));
        assert!(matches!(
            decide(&manifest, PhaseName::Repair),
            Decision::NotReady(_)
        ));
        for _ in 1..MAX_CONSECUTIVE_ERRORS {
            execute(
                &mut manifest,
                PhaseName::Verify,
                PhaseResult::Error("no disk".into()),
                None,
            );
        }
        assert_eq!(manifest.outcome, Outcome::Blocked);
    }

    #[test]
    fn an_ended_run_is_a_no_op_for_every_phase_but_publish() {
        let mut manifest = chore();
        execute(
            &mut manifest,
            PhaseName::Verify,
            PhaseResult::Verified {
                passed: true,
                signature: None,
            },
            None,
        );
        execute(
            &mut manifest,
            PhaseName::Review,
            PhaseResult::Finished,
            None,
        );
        execute(
            &mut manifest,
            PhaseName::Publish,
            PhaseResult::Stop(Outcome::Done, "done".into()),
            None,
        );
        for phase in Route::Chore.phases() {
            let decision = decide(&manifest, *phase);
            assert!(
                matches!(decision, Decision::Ended(Outcome::Done)),
                "{phase}: {decision:?}"
            );
        }
        assert_eq!(next_phase(&manifest), None);
    }

    #[test]
    fn force_invalidates_the_phase_and_everything_after_it() {
        let mut manifest = Manifest::for_tests(Route::Feature);
        for phase in [
            PhaseName::Intake,
            PhaseName::Spec,
            PhaseName::Design,
            PhaseName::Plan,
        ] {
            execute(&mut manifest, phase, PhaseResult::Finished, None);
        }
        let superseded = force(&mut manifest, PhaseName::Spec);
        assert_eq!(superseded, vec![1, 2, 3]);
        assert_eq!(next_phase(&manifest), Some(PhaseName::Spec));
        assert!(matches!(
            decide(&manifest, PhaseName::Tests),
            Decision::NotReady(_)
        ));
    }

    #[test]
    fn force_reopens_a_run_that_publish_ended() {
        let mut manifest = chore();
        execute(
            &mut manifest,
            PhaseName::Verify,
            PhaseResult::Verified {
                passed: true,
                signature: None,
            },
            None,
        );
        execute(
            &mut manifest,
            PhaseName::Review,
            PhaseResult::Finished,
            None,
        );
        begin(&mut manifest, record(PhaseName::Publish));
        // Publish sets the outcome for its evidence before reporting.
        manifest.outcome = Outcome::Done;
        apply(
            &mut manifest,
            PhaseResult::Stop(Outcome::Done, "done".into()),
        );
        assert_eq!(manifest.ended_by, Some(manifest.phases.len() - 1));
        force(&mut manifest, PhaseName::Review);
        assert_eq!(manifest.outcome, Outcome::Running);
        assert_eq!(next_phase(&manifest), Some(PhaseName::Review));
    }

    #[test]
    fn early_publish_is_not_ready() {
        let manifest = chore();
        assert!(matches!(
            decide(&manifest, PhaseName::Publish),
            Decision::NotReady(_)
        ));
    }

    #[test]
    fn an_interrupted_phase_resumes_and_a_dead_one_reruns() {
        let mut manifest = chore();
        execute(
            &mut manifest,
            PhaseName::Verify,
            PhaseResult::Interrupted("SIGINT".into()),
            None,
        );
        assert_eq!(manifest.outcome, Outcome::Cancelled);
        assert_eq!(next_phase(&manifest), Some(PhaseName::Verify));
        assert!(matches!(
            decide(&manifest, PhaseName::Review),
            Decision::Ended(Outcome::Cancelled)
        ));
        begin(&mut manifest, record(PhaseName::Verify));
        assert_eq!(manifest.outcome, Outcome::Running);
        // The job is killed here: the record stays `running`.
        assert_eq!(next_phase(&manifest), Some(PhaseName::Verify));
        assert_eq!(decide(&manifest, PhaseName::Verify), Decision::Run);
        begin(&mut manifest, record(PhaseName::Verify));
        assert_eq!(
            manifest.phases[manifest.phases.len() - 2].status,
            PhaseStatus::Failed
        );
    }

    /// One step a property test takes: run whatever is next with a result,
    /// or poke the run as a person or a rerun CI job would.
    #[derive(Debug, Clone)]
    enum Step {
        Run {
            kind: u8,
            passed: bool,
            signature: u8,
            new_patch: bool,
        },
        Rerun(PhaseName),
        Force(PhaseName),
    }

    fn step() -> impl Strategy<Value = Step> {
        let phase = proptest::sample::select(PhaseName::ALL.to_vec());
        prop_oneof![
            8 => (0u8..10, any::<bool>(), 0u8..3, any::<bool>()).prop_map(
                |(kind, passed, signature, new_patch)| Step::Run { kind, passed, signature, new_patch }
            ),
            1 => phase.clone().prop_map(Step::Rerun),
            1 => phase.prop_map(Step::Force),
        ]
    }

    fn result_for(phase: PhaseName, kind: u8, passed: bool, signature: u8) -> PhaseResult {
        match (phase, kind) {
            (_, 0) => PhaseResult::Error("runner lost".into()),
            (_, 1) => PhaseResult::Interrupted("SIGTERM".into()),
            (_, 2) => PhaseResult::Stop(Outcome::Blocked, "validator".into()),
            (PhaseName::Publish, _) => PhaseResult::Stop(Outcome::Done, "done".into()),
            (PhaseName::Verify, _) => PhaseResult::Verified {
                passed,
                signature: Some(signature.to_string()),
            },
            _ => PhaseResult::Finished,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Driven only by phase results, whatever they are, every run ends
        /// and publishes within `max_executions`, and no phase finishes
        /// twice on the same inputs.
        #[test]
        fn every_run_ends_within_the_bound(
            route in proptest::sample::select(Route::ALL.to_vec()),
            max_repairs in 0u32..4,
            results in proptest::collection::vec((2u8..10, any::<bool>(), 0u8..3, any::<bool>()), 1..40),
        ) {
            let mut manifest = Manifest::for_tests(route);
            manifest.budget.limits.max_repairs = max_repairs;
            let bound = max_executions(&manifest);
            let mut seen = BTreeSet::new();
            let mut executions = 0;
            let mut counter = 0u32;
            while let Some(phase) = next_phase(&manifest) {
                prop_assert!(executions <= bound, "no end after {executions} executions");
                let (kind, passed, signature, new_patch) = results[executions % results.len()];
                // The adversary never interrupts here: a cancel ends the run by itself.
                let kind = if kind == 1 { 3 } else { kind };
                counter += 1;
                let patch = (new_patch && matches!(phase, PhaseName::Tests | PhaseName::Implement | PhaseName::Repair))
                    .then(|| format!("patch-{counter}"));
                // What the phase reads: verify the patch, repair the verify
                // it answers; every other phase runs once per validity.
                let inputs = match phase {
                    PhaseName::Verify => (phase, manifest.patch_sha256().map(str::to_owned)),
                    PhaseName::Repair => (phase, Some(format!("{:?}", manifest.valid().rev().find(|(_, r)| r.name == PhaseName::Verify && is_finished(r.status)).map(|(i, _)| i)))),
                    _ => (phase, None),
                };
                execute(&mut manifest, phase, result_for(phase, kind, passed, signature), patch.as_deref());
                if is_finished(manifest.phases[manifest.phases.len() - 1].status) {
                    prop_assert!(seen.insert(inputs.clone()), "{inputs:?} finished twice");
                }
                executions += 1;
            }
            prop_assert!(manifest.has_ended());
        }

        /// Whatever anyone runs, reruns or forces, in any order: `next_phase`
        /// is always runnable, a no-op changes nothing, and after the
        /// pokes stop the run still ends within the bound.
        #[test]
        fn reruns_and_force_keep_the_machine_sound(
            route in proptest::sample::select(Route::ALL.to_vec()),
            steps in proptest::collection::vec(step(), 1..60),
        ) {
            let mut manifest = Manifest::for_tests(route);
            let mut counter = 0u32;
            for step in steps {
                if let Some(next) = next_phase(&manifest) {
                    prop_assert_eq!(decide(&manifest, next), Decision::Run);
                }
                match step {
                    Step::Run { kind, passed, signature, new_patch } => {
                        let Some(phase) = next_phase(&manifest) else { continue };
                        counter += 1;
                        let patch = new_patch.then(|| format!("patch-{counter}"));
                        execute(&mut manifest, phase, result_for(phase, kind, passed, signature), patch.as_deref());
                    }
                    Step::Rerun(phase) => {
                        if decide(&manifest, phase) == Decision::Run {
                            prop_assert_eq!(Some(phase), next_phase(&manifest));
                        }
                    }
                    Step::Force(phase) => {
                        if phase == PhaseName::Intake { continue; }
                        let superseded = force(&mut manifest, phase);
                        if !superseded.is_empty() && manifest.route.contains(phase) {
                            prop_assert_eq!(next_phase(&manifest), Some(phase));
                        }
                    }
                }
            }
            // From wherever the pokes left it, results alone end the run.
            let bound = max_executions(&manifest);
            let mut executions = 0;
            while let Some(phase) = next_phase(&manifest) {
                prop_assert!(executions <= bound);
                let result = result_for(phase, 5, true, 0);
                execute(&mut manifest, phase, result, Some("final"));
                executions += 1;
            }
            prop_assert!(manifest.has_ended());
        }
    }
}
