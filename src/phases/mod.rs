//! One module per phase; this one holds what they share: opening the run,
//! deciding whether the phase runs, the phase record, model accounting and
//! transcripts, and writing the evidence whenever a run stops.

mod deliverable;
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
use crate::llm::{Message, Reply, Request};
use crate::pipeline::budget::{self, Spend};
use crate::pipeline::{self, Outcome, PhaseDecision, PhaseName, Route};
use crate::policy;
use crate::progress;
use crate::records::{
    Child, Children, Feedback, Plan, RepairRecord, Review, TestsRecord, VerifyRecord,
};
use crate::run_dir::RunDir;
use crate::run_dir::manifest::{PhaseRecord, PhaseStatus};
use crate::settings::Settings;

pub use intake::IntakeRequest;

pub const PATCH: &str = "changes.patch";

/// The reply size a budget projection assumes (replies rarely need more).
const PROJECTED_REPLY_TOKENS: u64 = 1024;

/// How a phase left the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseEnd {
    Continue,
    Stop(Outcome, String),
}

/// What `baton phase` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseReport {
    Ran { outcome: Outcome },
    Skipped(String),
    AlreadyDone,
    Ended(Outcome),
}

/// Everything a running phase works with.
pub struct Context<'a> {
    pub settings: &'a Settings,
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
            transcript: format!("transcripts/{label}-{attempt}.jsonl"),
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

    pub fn plan(&self) -> anyhow::Result<Option<Plan>> {
        self.run.read_json("plan.json")
    }
}

pub struct PhaseObserver<'c, 's> {
    context: &'c mut Context<'s>,
    transcript: String,
    model: String,
    price: Option<crate::config::Price>,
    /// When the pending request was sent (the transcript and benchmarks read it).
    requested_at: String,
}

impl Observer for PhaseObserver<'_, '_> {
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
        self.context.run.save()
    }
}

/// Runs one phase on an existing run directory (every phase but intake).
pub async fn run_phase(
    settings: &Settings,
    name: PhaseName,
    run_dir: &Path,
    force: bool,
) -> anyhow::Result<PhaseReport> {
    let run = RunDir::open(run_dir)?;
    let patch_sha = run.sha256_of(PATCH).map(str::to_owned);
    match pipeline::decide(&run.manifest, name, patch_sha.as_deref()) {
        PhaseDecision::Run => {}
        PhaseDecision::AlreadyDone if force => {}
        PhaseDecision::AlreadyDone => {
            progress::line(&format!(
                "· {name:<9} already finished; nothing to do (--force reruns it)"
            ));
            return Ok(PhaseReport::AlreadyDone);
        }
        PhaseDecision::Skip(reason) => {
            progress::line(&format!("· {name:<9} skipped: {reason}"));
            return Ok(PhaseReport::Skipped(reason));
        }
        PhaseDecision::NotReady(reason) => {
            return Err(crate::bad_input!(
                "cannot run {name} on {}: {reason}",
                run_dir.display()
            ));
        }
        PhaseDecision::Ended(outcome) => return Ok(PhaseReport::Ended(outcome)),
    }
    let source = Source::open(&settings.repo)?;
    let mut context = Context {
        settings,
        run,
        source,
        started: Instant::now(),
        record: 0,
    };
    let model = match name {
        PhaseName::Verify | PhaseName::Publish => None,
        _ => Some(context.model_for(name)?.to_string()),
    };
    context
        .run
        .manifest
        .phases
        .push(PhaseRecord::started(name, model.clone()));
    context.record = context.run.manifest.phases.len() - 1;
    context.run.save()?;
    progress::phase_started(name.as_str(), model.as_deref().unwrap_or(""));
    let spinner = progress::Spinner::start(name.as_str());

    let result = match context.budget_exceeded() {
        Some(reason) if name != PhaseName::Publish => {
            Ok(PhaseEnd::Stop(Outcome::BudgetExceeded, reason))
        }
        _ => dispatch(&mut context, name).await,
    };
    drop(spinner);
    let end = match result {
        Ok(end) => end,
        Err(error) => {
            // Record the failure before passing the error on, so the run
            // directory says what happened even when the job dies here.
            let record = context.record();
            record.status = PhaseStatus::Failed;
            record.note = Some(crate::secrets::redact(&format!("{error:#}")).into_owned());
            finish_record(&mut context);
            context.run.save()?;
            progress::phase_finished(&context.run.manifest.phases[context.record]);
            return Err(error);
        }
    };
    if let PhaseEnd::Stop(outcome, reason) = &end {
        context.record().status = if *outcome == Outcome::Done {
            PhaseStatus::Done
        } else {
            PhaseStatus::Failed
        };
        context.run.manifest.outcome = *outcome;
        context.run.manifest.reason = (*outcome != Outcome::Done).then(|| reason.clone());
        if context.record().note.is_none() {
            context.record().note = Some(reason.clone());
        }
    } else {
        context.record().status = PhaseStatus::Done;
    }
    finish_record(&mut context);
    if matches!(end, PhaseEnd::Stop(..)) && name != PhaseName::Publish {
        // Evidence is written whenever a run stops, not only by publish.
        write_evidence(&mut context, None)?;
    }
    context.run.save()?;
    progress::phase_finished(&context.run.manifest.phases[context.record]);
    Ok(PhaseReport::Ran {
        outcome: context.run.manifest.outcome,
    })
}

fn finish_record(context: &mut Context<'_>) {
    let elapsed = context.started.elapsed().as_secs_f64();
    let record = context.record();
    record.wall_s = elapsed;
    record.finished_at = Some(crate::clock::now_rfc3339());
}

async fn dispatch(context: &mut Context<'_>, name: PhaseName) -> anyhow::Result<PhaseEnd> {
    match name {
        PhaseName::Intake => Err(crate::bad_input!(
            "intake creates the run; it is started with --issue-file"
        )),
        PhaseName::Spec
        | PhaseName::Design
        | PhaseName::Plan
        | PhaseName::Review
        | PhaseName::Split => deliverable::run(context, name).await,
        PhaseName::Tests => work::tests(context).await,
        PhaseName::Implement => work::implement(context).await,
        PhaseName::Repair => work::repair(context).await,
        PhaseName::Verify => verify::run(context).await,
        PhaseName::Publish => publish::run(context),
    }
}

/// Creates the run (intake), then reports like any phase.
pub async fn run_intake(settings: &Settings, request: IntakeRequest) -> anyhow::Result<PathBuf> {
    intake::run(settings, request).await
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
    let plan: Option<Plan> = run.read_json("plan.json")?;
    let verdict = policy_verdict(context, config, &changes, plan.as_ref());
    let verify: Option<VerifyRecord> = run.read_json("verify.json")?;
    let tests: Option<TestsRecord> = run.read_json("tests.json")?;
    let repairs: Option<RepairRecord> = run.read_json("repair.json")?;
    let review: Option<Review> = run.read_json("review.json")?;
    let adversarial: Option<crate::records::Adversarial> = run.read_json("adversarial.json")?;
    let children: Vec<Child> = run
        .read_json::<Children>("children.json")?
        .map(|c| c.children)
        .unwrap_or_default();
    let mut feedback = Vec::new();
    for phase in PhaseName::ALL.iter().filter(|phase| phase.is_validated()) {
        if let Some(entry) = run.read_json::<Feedback>(&format!("feedback/{phase}.json"))? {
            feedback.push(entry);
        }
    }
    let mut unpriced: Vec<String> = run
        .manifest
        .phases
        .iter()
        .flat_map(|record| record.by_model.keys())
        .filter(|model| {
            model.split_once(':').is_none_or(|(provider, name)| {
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
        children: &children,
        adversarial: adversarial.as_ref(),
        unpriced_models: &unpriced,
    });
    let markdown = evidence::render_markdown(&evidence);
    context.run.write_json("evidence.json", &evidence)?;
    context.run.write_text("evidence.md", &markdown)?;
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
pub fn policy_stop(context: &Context<'_>, patch: &str) -> anyhow::Result<Option<String>> {
    let changes = crate::patch::parse(patch);
    let plan = context.plan()?;
    let verdict = policy_verdict(context, context.config(), &changes, plan.as_ref());
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
