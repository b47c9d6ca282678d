//! One module per phase; this one holds what they share: opening the run
//! under its lock, asking the state machine whether the phase runs, the
//! phase record, interrupts, model accounting and transcripts, and writing
//! the evidence whenever a run stops.

mod deliverable;
mod fix;
pub mod forge_sync;

pub use forge_sync::authorize;
mod intake;
mod prompts;
mod publish;
mod verify;
mod work;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use serde_json::json;

use crate::agent::Observer;
use crate::config::{Config, ModelRef};
use crate::evidence::{self, EvidenceInput};
use crate::git::Source;
use crate::interrupt::Interrupts;
use crate::llm::{Message, Reply, Request};
use crate::pipeline::budget;
use crate::pipeline::machine::{self, Decision, PhaseResult};
use crate::policy;
use crate::records::{
    Child, Children, Feedback, Plan, RepairRecord, Review, TestsRecord, VerifyRecord,
};
use crate::report::Reporter;
use crate::run_dir::RunDir;
use crate::run_dir::artifact::{self, PATCH};
use crate::run_dir::manifest::{PhaseRecord, PhaseStatus};
use crate::sandbox;
use crate::settings::Settings;
use crate::trigger::IntakeRequest;
use crate::types::{Outcome, PhaseName, Route, Spend};

/// The reply size a budget projection assumes (replies rarely need more).
const PROJECTED_REPLY_TOKENS: u64 = 1024;

/// What `baton phase` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseReport {
    /// The phase ran; the run's outcome after it.
    Ran {
        outcome: Outcome,
    },
    Skipped(String),
    AlreadyDone,
    /// The run had ended; nothing ran.
    Ended(Outcome),
    /// SIGINT or SIGTERM stopped the phase; the run is `cancelled`.
    Interrupted,
}

/// What a phase job is handed besides the run directory.
pub struct Job<'a> {
    pub settings: &'a Settings,
    pub reporter: &'a dyn Reporter,
    pub interrupts: &'a mut Interrupts,
}

/// Everything a running phase works with.
pub struct Context<'a> {
    pub settings: &'a Settings,
    pub reporter: &'a dyn Reporter,
    pub run: RunDir,
    pub source: Source,
    pub started: Instant,
    record: usize,
}

impl<'s> Context<'s> {
    pub fn config(&self) -> &Config {
        &self.settings.config
    }

    pub fn record(&mut self) -> &mut PhaseRecord {
        &mut self.run.manifest.phases[self.record]
    }

    pub fn run_id(&self) -> String {
        self.run.manifest.run_id.clone()
    }

    /// The sandbox for `purpose` in `tree`, after asking the kernel what it
    /// confines; the line for the evidence goes into this phase's record.
    pub async fn sandbox(
        &mut self,
        purpose: sandbox::Use,
        tree: &Path,
    ) -> anyhow::Result<(sandbox::Sandbox, sandbox::Report)> {
        let sandbox = sandbox::Sandbox::new(&self.config().sandbox, purpose, tree)?;
        let mut report = sandbox.probe().await;
        if sandbox.is_confined()
            && let Some(feature) =
                crate::settings::env::get(crate::settings::env::BATON_SANDBOX_SIMULATE_MISSING)
        {
            report.missing.push(format!("{feature} (simulated)"));
        }
        let line = sandbox.line(&report);
        let lines = &mut self.record().sandbox;
        if !lines.contains(&line) {
            lines.push(line);
        }
        Ok((sandbox, report))
    }

    /// With `[sandbox] mode = "enforce"`: why an agent phase must not run
    /// (a kernel feature is missing), before any model is asked anything.
    pub fn sandbox_refusal(&self, report: &sandbox::Report) -> Option<String> {
        (self.config().sandbox.mode == crate::config::SandboxMode::Enforce
            && !report.missing.is_empty())
        .then(|| {
            format!(
                "[sandbox] mode = \"enforce\" and commands cannot be confined here: missing {}; run on a kernel with Landlock and seccomp, or set mode = \"best_effort\"",
                report.missing.join(", ")
            )
        })
    }

    pub fn patch(&self) -> anyhow::Result<String> {
        Ok(self.run.read_text(PATCH)?.unwrap_or_default())
    }

    /// Spend so far, the running phase's elapsed time included.
    pub fn spent(&self) -> Spend {
        let mut spent = self.run.manifest.spent();
        spent.wall_s += self.started.elapsed().as_secs_f64();
        spent
    }

    pub fn budget_exceeded(&self) -> Option<String> {
        budget::exceeded(&self.run.manifest.budget.limits, &self.spent())
    }

    pub fn provider(
        &self,
        model: &ModelRef,
    ) -> Result<Box<dyn crate::llm::Provider>, crate::llm::ProviderError> {
        crate::llm::provider_for(self.config(), &self.settings.config_dir, model)
    }

    pub fn model_for(&self, phase: PhaseName) -> anyhow::Result<ModelRef> {
        self.config()
            .phase_model(phase)
            .map_err(|message| crate::bad_input!("phases.{phase}.model: {message}"))
    }

    /// The accounting and transcript hooks for one model session.
    pub fn observer(
        &mut self,
        label: &str,
        attempt: u32,
        model: &ModelRef,
    ) -> PhaseObserver<'_, 's> {
        PhaseObserver {
            transcript: artifact::transcript(label, attempt),
            model: model.to_string(),
            price: crate::llm::pricing::price(self.config(), model),
            requested_at: String::new(),
            context: self,
        }
    }

    /// Repository conventions (AGENTS.md and the like) at the base commit.
    pub fn conventions(&self) -> String {
        const FILES: &[&str] = &[
            "AGENTS.md",
            "CLAUDE.md",
            "CONTRIBUTING.md",
            ".github/CONTRIBUTING.md",
            "docs/CONTRIBUTING.md",
            ".github/copilot-instructions.md",
        ];
        let base = &self.run.manifest.base_sha;
        let mut sections = Vec::new();
        for file in FILES {
            if let Ok(Some(bytes)) = self.source.read_at(base, file) {
                let text = String::from_utf8_lossy(&bytes);
                sections.push(format!("## {file}\n\n{}", prompts::cap(&text, 8000)));
            }
        }
        sections.join("\n\n")
    }

    /// Records that this execution wrote `transcript`.
    pub fn note_transcript(&mut self, transcript: &str) {
        let record = self.record();
        if !record.transcripts.iter().any(|known| known == transcript) {
            record.transcripts.push(transcript.to_owned());
        }
    }

    pub fn plan(&self) -> anyhow::Result<Option<Plan>> {
        self.run.read_json(artifact::PLAN)
    }
}

pub struct PhaseObserver<'c, 's> {
    context: &'c mut Context<'s>,
    transcript: String,
    model: String,
    price: Option<crate::types::Price>,
    /// When the pending request was sent (the transcript and benchmarks read it).
    requested_at: String,
}

impl Observer for PhaseObserver<'_, '_> {
    fn time_left(&self) -> Option<std::time::Duration> {
        let limit = self.context.run.manifest.budget.limits.max_wall_minutes * 60.0;
        let left = (limit - self.context.spent().wall_s).max(0.0);
        Some(std::time::Duration::from_secs_f64(left))
    }

    fn repeated_call(&mut self) {
        self.context.record().repeated_calls += 1;
    }

    fn before_request(&mut self, request: &Request) -> Result<(), String> {
        if let Some(reason) = self.context.budget_exceeded() {
            return Err(reason);
        }
        // Projection: the request about to go out, and a typical reply.
        let projected_in = crate::llm::estimate_tokens(&request.system)
            + crate::llm::estimate_tokens(
                &serde_json::to_string(&request.messages).unwrap_or_default(),
            )
            + crate::llm::estimate_tokens(
                &serde_json::to_string(&request.tools).unwrap_or_default(),
            );
        let projected_out = u64::from(request.max_tokens).min(PROJECTED_REPLY_TOKENS);
        let usage = crate::llm::Usage {
            input_tokens: projected_in,
            output_tokens: projected_out,
            ..Default::default()
        };
        let mut projected = self.context.spent();
        projected.add(&Spend {
            tokens_in: projected_in,
            tokens_out: projected_out,
            cost_usd: crate::llm::pricing::cost_usd(self.price, &usage),
            wall_s: 0.0,
        });
        if let Some(reason) = budget::exceeded(&self.context.run.manifest.budget.limits, &projected)
        {
            return Err(format!(
                "{reason}, counting the next request's projected {} tokens",
                projected_in + projected_out
            ));
        }
        self.requested_at = crate::clock::now_rfc3339();
        Ok(())
    }

    fn after_reply(
        &mut self,
        request: &Request,
        sent: &[Message],
        reply: &Reply,
    ) -> anyhow::Result<()> {
        let served_by = if reply.served_by.is_empty() {
            self.model.clone()
        } else {
            reply.served_by.clone()
        };
        let price = if served_by == self.model {
            self.price
        } else {
            served_by
                .split_once(':')
                .map(|(provider, model)| crate::config::ModelRef {
                    provider: provider.into(),
                    model: model.into(),
                })
                .and_then(|model| crate::llm::pricing::price(self.context.config(), &model))
        };
        let spend = Spend {
            tokens_in: reply.usage.all_input(),
            tokens_out: reply.usage.output_tokens,
            cost_usd: crate::llm::pricing::cost_usd(price, &reply.usage),
            wall_s: 0.0,
        };
        let record = self.context.record();
        record.record_usage(&served_by, &spend);
        let fallback = format!("{} → {served_by}", self.model);
        if served_by != self.model && !record.fallbacks.contains(&fallback) {
            record.fallbacks.push(fallback);
        }
        let mut line = json!({
            "turn": request.turn,
            "requested_at": self.requested_at,
            "replied_at": crate::clock::now_rfc3339(),
            "phase": request.phase,
            "attempt": request.attempt,
            "model": served_by,
            "sent": sent,
            "reply": reply,
            "cost_usd": spend.cost_usd,
        });
        if request.turn == 0 {
            line["system"] = json!(request.system);
            line["tools"] = json!(
                request
                    .tools
                    .iter()
                    .map(|tool| &tool.name)
                    .collect::<Vec<_>>()
            );
        }
        self.context
            .run
            .append_line(&self.transcript, &line.to_string())?;
        self.context.note_transcript(&self.transcript);
        self.context.run.save()
    }
}

/// Runs one phase on an existing run directory (every phase but intake),
/// if the state machine says it runs now. `force` first supersedes the
/// phase's last execution and every one after it.
pub async fn run_phase(
    job: &mut Job<'_>,
    name: PhaseName,
    run_dir: &Path,
    force: bool,
) -> anyhow::Result<PhaseReport> {
    let mut run = RunDir::open_for_write(run_dir)?;
    run.relative_to(&job.settings.repo);
    if force {
        let superseded = machine::force(&mut run.manifest, name);
        if !superseded.is_empty() {
            invalidate(&mut run, &superseded)?;
            run.save()?;
            job.reporter.line(&format!(
                "· {name:<9} --force: {} execution(s) from {name} on superseded",
                superseded.len()
            ));
        }
    }
    match machine::decide(&run.manifest, name) {
        Decision::Run => {}
        Decision::AlreadyDone => {
            job.reporter.line(&format!(
                "· {name:<9} already finished; nothing to do (--force reruns it and every phase after it)"
            ));
            return Ok(PhaseReport::AlreadyDone);
        }
        Decision::Skip(reason) => {
            job.reporter.line(&format!("· {name:<9} skipped: {reason}"));
            return Ok(PhaseReport::Skipped(reason));
        }
        Decision::NotReady(reason) => {
            return Err(crate::bad_input!(
                "cannot run {name} on {}: {reason}",
                run_dir.display()
            ));
        }
        Decision::Ended(outcome) => {
            // --force reopens a run from a phase that ran; for one that
            // never ran, name the phase where the run stopped instead.
            let ran = run.manifest.valid().any(|(_, record)| record.name == name);
            let stopped_at = run
                .manifest
                .valid()
                .rev()
                .map(|(_, record)| record.name)
                .find(|phase| *phase != PhaseName::Publish);
            let hint = match stopped_at {
                Some(stopped) if !ran => format!(
                    "{name} never ran in this run; `baton phase {stopped} --force` reruns {stopped}, where it stopped, and every phase after it"
                ),
                _ => format!("--force reruns {name} and every phase after it"),
            };
            job.reporter.line(&format!(
                "· {name:<9} nothing to do: the run has ended {outcome}{} ({hint})",
                run.manifest
                    .reason
                    .as_deref()
                    .map(|reason| format!(": {reason}"))
                    .unwrap_or_default()
            ));
            return Ok(PhaseReport::Ended(outcome));
        }
    }
    if name != PhaseName::Publish {
        // Publish judges (and shows) the patch as the run left it.
        restore_patch(&mut run)?;
    }
    let source = Source::open(&job.settings.repo)?;
    let mut context = Context {
        settings: job.settings,
        reporter: job.reporter,
        run,
        source,
        started: Instant::now(),
        record: 0,
    };
    let model = match name {
        PhaseName::Verify | PhaseName::Publish => None,
        _ => Some(context.model_for(name)?.to_string()),
    };
    context.record = machine::begin(
        &mut context.run.manifest,
        PhaseRecord::started(name, model.clone()),
    );
    start_clean(&mut context.run, name)?;
    context.run.save()?;
    context
        .reporter
        .phase_started(name, model.as_deref().unwrap_or(""));
    let budget_stop = context
        .budget_exceeded()
        .filter(|_| name != PhaseName::Publish);
    let ended = if let Some(reason) = budget_stop {
        Ended::Result(Ok(PhaseResult::Stop(Outcome::BudgetExceeded, reason)))
    } else {
        let working = context.reporter.working(name.as_str());
        let ended = interruptible(job.interrupts, dispatch(&mut context, name)).await;
        drop(working);
        ended
    };
    conclude_phase(&mut context, ended).await
}

/// How a phase's work ended: with a result or error, or by a signal.
enum Ended {
    Result(anyhow::Result<PhaseResult>),
    Signal(&'static str),
}

/// Runs `work` until it ends or a signal arrives; on a signal the work is
/// dropped, which cancels its model request, kills its commands' process
/// groups and removes its work trees.
async fn interruptible(
    interrupts: &mut Interrupts,
    work: impl Future<Output = anyhow::Result<PhaseResult>>,
) -> Ended {
    tokio::select! {
        biased;
        signal = interrupts.received() => Ended::Signal(signal),
        result = work => Ended::Result(result),
    }
}

/// Records how the phase ended, moves the run's state, writes the evidence
/// when the run stops, and reports.
async fn conclude_phase(context: &mut Context<'_>, ended: Ended) -> anyhow::Result<PhaseReport> {
    let name = context.run.manifest.phases[context.record].name;
    let (result, error) = match ended {
        Ended::Result(Ok(result)) => (result, None),
        Ended::Result(Err(error)) => {
            let message = context
                .run
                .portable(&crate::secrets::redact(&format!("{error:#}")));
            (PhaseResult::Error(message), Some(error))
        }
        Ended::Signal(signal) => (
            PhaseResult::Interrupted(format!(
                "interrupted by {signal} during {name}; rerun `baton phase {name}` to resume"
            )),
            None,
        ),
    };
    let interrupted = matches!(result, PhaseResult::Interrupted(_));
    let elapsed = context.started.elapsed().as_secs_f64();
    let note = match &result {
        // A `done` keeps the note the phase wrote (publish names its PR).
        PhaseResult::Stop(outcome, reason) if *outcome != Outcome::Done => {
            Some(context.run.portable(reason))
        }
        PhaseResult::Error(reason) => Some(context.run.portable(reason)),
        _ => None,
    };
    let record = context.record();
    record.wall_s = elapsed;
    record.finished_at = Some(crate::clock::now_rfc3339());
    if note.is_some() {
        record.note = note;
    }
    machine::apply(&mut context.run.manifest, result);
    let record = &context.run.manifest.phases[context.record];
    if record.status == PhaseStatus::Done
        && machine::produces_patch(context.run.manifest.route, name)
        && context.run.read(PATCH)?.is_some()
    {
        context
            .run
            .copy(PATCH, &artifact::patch_snapshot(context.record, name))?;
    }
    if context.run.manifest.has_ended() && name != PhaseName::Publish {
        // Evidence is written whenever a run stops, not only by publish.
        write_evidence(context, None)?;
    }
    context.run.save()?;
    context
        .reporter
        .phase_finished(&context.run.manifest.phases[context.record]);
    forge_sync::sync(context, None).await;
    if let Some(error) = error {
        if context.run.manifest.has_ended() {
            return Ok(PhaseReport::Ran {
                outcome: context.run.manifest.outcome,
            });
        }
        return Err(crate::bad_input!(
            "{name} could not finish: {error:#}; nothing was decided: fix the cause and rerun `baton phase {name}`"
        ));
    }
    if interrupted {
        return Ok(PhaseReport::Interrupted);
    }
    Ok(PhaseReport::Ran {
        outcome: context.run.manifest.outcome,
    })
}

/// What an execution that is about to start must not find: the transcripts
/// of earlier executions of the phase that never finished (it writes the
/// same names), and the evidence of a run that has just reopened.
fn start_clean(run: &mut RunDir, name: PhaseName) -> anyhow::Result<()> {
    let stale: Vec<String> = run
        .manifest
        .phases
        .iter_mut()
        .filter(|record| {
            record.name == name
                && matches!(
                    record.status,
                    PhaseStatus::Failed | PhaseStatus::Interrupted
                )
        })
        .flat_map(|record| std::mem::take(&mut record.transcripts))
        .collect();
    for transcript in stale {
        run.remove(&transcript)?;
    }
    if !run.manifest.has_ended() {
        for evidence in [artifact::EVIDENCE, artifact::EVIDENCE_MARKDOWN] {
            run.remove(evidence)?;
        }
    }
    Ok(())
}

/// The patch a phase starts from is the one the last finished producer left
/// (a failed or superseded execution may have written another).
fn restore_patch(run: &mut RunDir) -> anyhow::Result<()> {
    match machine::expected_patch(&run.manifest) {
        Some((_, _, sha)) if run.manifest.patch_sha256() == Some(sha.as_str()) => Ok(()),
        Some((index, phase, _)) => run.copy(&artifact::patch_snapshot(index, phase), PATCH),
        None => run.remove(PATCH),
    }
}

/// After `--force`: removes what the superseded executions wrote, so no
/// later phase or the evidence reads it, and trims the verify and repair
/// histories to the executions still valid.
fn invalidate(run: &mut RunDir, superseded: &[usize]) -> anyhow::Result<()> {
    let manifest = &run.manifest;
    let gone: Vec<PhaseName> = PhaseName::ALL
        .into_iter()
        .filter(|phase| {
            superseded
                .iter()
                .any(|index| manifest.phases[*index].name == *phase)
                && !manifest.valid().any(|(_, record)| record.name == *phase)
        })
        .collect();
    let owned: Vec<String> = manifest
        .artifacts
        .keys()
        .filter(|name| gone.iter().any(|phase| artifact::owned_by(*phase, name)))
        .cloned()
        .collect();
    for name in owned {
        run.remove(&name)?;
    }
    // What each superseded execution wrote under its own name.
    let mut written = Vec::new();
    for index in superseded {
        let record = &mut run.manifest.phases[*index];
        written.extend(std::mem::take(&mut record.transcripts));
        written.push(artifact::patch_snapshot(*index, record.name));
    }
    for name in written {
        run.remove(&name)?;
    }
    let verifies = run
        .manifest
        .valid()
        .filter(|(_, record)| record.name == PhaseName::Verify && record.passed.is_some())
        .count();
    if let Some(mut verify) = run.read_json::<VerifyRecord>(artifact::VERIFY)? {
        verify.rounds.truncate(verifies);
        run.write_json(artifact::VERIFY, &verify)?;
    }
    let repairs = run
        .manifest
        .valid()
        .filter(|(_, record)| record.name == PhaseName::Repair)
        .count();
    if let Some(mut repair) = run.read_json::<RepairRecord>(artifact::REPAIR)? {
        repair.rounds.truncate(repairs);
        run.write_json(artifact::REPAIR, &repair)?;
    }
    for name in [artifact::EVIDENCE, artifact::EVIDENCE_MARKDOWN] {
        run.remove(name)?;
    }
    restore_patch(run)
}

async fn dispatch(context: &mut Context<'_>, name: PhaseName) -> anyhow::Result<PhaseResult> {
    match name {
        PhaseName::Intake => intake::route(context).await,
        PhaseName::Spec
        | PhaseName::Design
        | PhaseName::Plan
        | PhaseName::Review
        | PhaseName::Split => deliverable::run(context, name).await,
        PhaseName::Tests => work::tests(context).await,
        PhaseName::Implement => work::implement(context).await,
        PhaseName::Repair => work::repair(context).await,
        PhaseName::Verify => verify::run(context).await,
        PhaseName::Publish => publish::run(context).await,
    }
}

/// Intake: creates the run from its trigger (or, when the run exists and
/// its intake never finished, picks it up again), then routes it.
pub async fn run_intake(
    job: &mut Job<'_>,
    request: IntakeRequest,
) -> anyhow::Result<(PathBuf, PhaseReport)> {
    let started = Instant::now();
    let (run, source) = intake::open_run(job.settings, job.reporter, request).await?;
    let run_dir = run.path().to_owned();
    if machine::decide(&run.manifest, PhaseName::Intake) != Decision::Run {
        job.reporter
            .line("· intake    already finished; nothing to do: intake never changes a run (not its route, not with --force); a new run needs a new --run-dir");
        return Ok((run_dir, PhaseReport::AlreadyDone));
    }
    let mut context = Context {
        settings: job.settings,
        reporter: job.reporter,
        run,
        source,
        started,
        record: 0,
    };
    let model = intake::routing_model(&context);
    context.record = machine::begin(
        &mut context.run.manifest,
        PhaseRecord::started(PhaseName::Intake, model),
    );
    context.run.save()?;
    let issue = &context.run.manifest.issue;
    context.reporter.phase_started(
        PhaseName::Intake,
        &format!("issue #{} {}", issue.number, issue.title),
    );
    let ended = interruptible(job.interrupts, dispatch(&mut context, PhaseName::Intake)).await;
    let report = conclude_phase(&mut context, ended).await?;
    Ok((run_dir, report))
}

/// Builds and writes `evidence.json` and `evidence.md`. `config` is the one
/// to judge by (publish passes the base commit's); else the run's own.
pub fn write_evidence(
    context: &mut Context<'_>,
    config: Option<&Config>,
) -> anyhow::Result<evidence::Evidence> {
    let config = config.unwrap_or(&context.settings.config);
    let run = &context.run;
    let patch = run.read_text(PATCH)?.unwrap_or_default();
    let changes = crate::patch::parse(&patch);
    let plan: Option<Plan> = run.read_json(artifact::PLAN)?;
    let spec: Option<crate::records::Spec> = run.read_json(artifact::SPEC)?;
    let verdict = policy_verdict(context, config, &changes, plan.as_ref());
    let verify: Option<VerifyRecord> = run.read_json(artifact::VERIFY)?;
    let tests: Option<TestsRecord> = run.read_json("tests.json")?;
    let repairs: Option<RepairRecord> = run.read_json(artifact::REPAIR)?;
    let review: Option<Review> = run.read_json(artifact::REVIEW)?;
    let adversarial: Option<crate::records::Adversarial> = run.read_json(artifact::ADVERSARIAL)?;
    let children: Vec<Child> = run
        .read_json::<Children>(artifact::CHILDREN)?
        .map(|c| c.children)
        .unwrap_or_default();
    let mut feedback = Vec::new();
    for phase in PhaseName::ALL.iter().filter(|phase| phase.is_validated()) {
        if let Some(entry) = run.read_json::<Feedback>(&artifact::feedback(*phase))? {
            feedback.push(entry);
        }
    }
    let mut unpriced: Vec<String> = run
        .manifest
        .phases
        .iter()
        .flat_map(|record| record.by_model.keys())
        .filter(|model| {
            // A server on this machine costs nothing per token: $0 is right.
            let local = model.split_once(':').is_some_and(|(provider, _)| {
                config.providers.get(provider).is_some_and(|settings| {
                    settings
                        .base_url
                        .as_deref()
                        .is_some_and(crate::config::is_loopback_url)
                })
            });
            !local
                && model.split_once(':').is_none_or(|(provider, name)| {
                    let reference = crate::config::ModelRef {
                        provider: provider.into(),
                        model: name.into(),
                    };
                    crate::llm::pricing::price(config, &reference).is_none()
                })
        })
        .cloned()
        .collect();
    unpriced.sort();
    unpriced.dedup();
    let evidence = evidence::build(&EvidenceInput {
        manifest: &run.manifest,
        changes: &changes,
        gates: &config.gates,
        verify: verify.as_ref(),
        tests: tests.as_ref(),
        policy: &verdict,
        feedback: &feedback,
        repairs: repairs.as_ref(),
        review: review.as_ref(),
        plan: plan.as_ref(),
        spec: spec.as_ref(),
        closes: run
            .manifest
            .forge
            .as_ref()
            .filter(|_| run.manifest.route != crate::types::Route::Epic)
            .map(|_| run.manifest.issue.number),
        children: &children,
        adversarial: adversarial.as_ref(),
        unpriced_models: &unpriced,
    });
    let markdown = evidence::render_markdown(&evidence);
    context.run.write_json(artifact::EVIDENCE, &evidence)?;
    context
        .run
        .write_text(artifact::EVIDENCE_MARKDOWN, &markdown)?;
    Ok(evidence)
}

/// Runs the policy on a patch; `Some(reason)` when the run must be rejected.
/// The policy's verdict on `changes`, judged by `config` and the run's plan.
pub fn policy_verdict(
    context: &Context<'_>,
    config: &Config,
    changes: &[crate::patch::FileChange],
    plan: Option<&Plan>,
) -> policy::Verdict {
    let protected: Vec<String> = context.settings.config_in_repo.iter().cloned().collect();
    policy::check(
        &policy::PolicyInput {
            scope: &config.scope,
            budget: &config.budget,
            changes,
            touchpoints: plan.map(|plan| plan.touchpoints.as_slice()),
            protected: &protected,
        },
        &crate::secrets::global(),
    )
}

/// Runs the policy on a patch; `Some(reason)` when the run must be rejected.
pub fn policy_stop(
    context: &Context<'_>,
    config: &Config,
    patch: &str,
) -> anyhow::Result<Option<String>> {
    let changes = crate::patch::parse(patch);
    let plan = context.plan()?;
    let verdict = policy_verdict(context, config, &changes, plan.as_ref());
    Ok((!verdict.is_clean()).then(|| format!("policy violation: {}", verdict.summary())))
}

/// The route a `--route` value names, as bad input when it names none.
pub fn parse_route(text: &str) -> anyhow::Result<Route> {
    text.parse()
        .map_err(|message: String| crate::bad_input!("--route: {message}"))
}

/// Writes a deliverable and its rendering.
pub fn save_deliverable(
    context: &mut Context<'_>,
    name: &str,
    value: &serde_json::Value,
    markdown: &str,
) -> anyhow::Result<()> {
    context.run.write_json(&format!("{name}.json"), value)?;
    context.run.write_text(&format!("{name}.md"), markdown)
}

pub fn read_text_artifact(context: &Context<'_>, name: &str) -> anyhow::Result<String> {
    context
        .run
        .read_text(name)?
        .with_context(|| format!("{name} is missing from the run directory"))
}
