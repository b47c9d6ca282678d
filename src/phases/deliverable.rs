//! spec, design, plan, review, split: a model writes a deliverable through its
//! `submit_*` tool, a validator checks it against its source, and objections
//! from every earlier attempt go into the next one.

use serde_json::Value;

use super::{Context, PhaseResult, prompts, read_text_artifact, save_deliverable};
use crate::agent::{self, SessionEnd, SessionError, SessionSpec, schema, tools};
use crate::config::ModelRef;
use crate::llm::ToolSpec;
use crate::records::{
    Adversarial, AdversarialFinding, Children, Design, Feedback, FeedbackEntry, FeedbackVerdict,
    Plan, Review, Spec, Ticket, Vote,
};
use crate::run_dir::artifact;
use crate::types::{Outcome, PhaseName, ReviewVerdict, Verdict};

/// What differs between the deliverable phases.
struct Kind {
    tool: ToolSpec,
    artifact: &'static str,
    /// What the validator checks the deliverable against.
    source_name: &'static str,
}

fn kind(phase: PhaseName) -> Kind {
    match phase {
        PhaseName::Spec => Kind {
            tool: schema::submit_spec(),
            artifact: "spec",
            source_name: "the ticket",
        },
        PhaseName::Design => Kind {
            tool: schema::submit_design(),
            artifact: "design",
            source_name: "the spec",
        },
        PhaseName::Plan => Kind {
            tool: schema::submit_plan(),
            artifact: "plan",
            source_name: "the design",
        },
        PhaseName::Review => Kind {
            tool: schema::submit_review(),
            artifact: "review",
            source_name: "the diff",
        },
        _ => Kind {
            tool: schema::submit_children(),
            artifact: "children",
            source_name: "the design",
        },
    }
}

/// How one `submit_*` session ended, for the phase to act on.
enum Asked {
    Value(Value),
    /// No valid submission (the turn limit, or a stuck model), and why:
    /// counts as a failed attempt.
    NoAnswer(String),
    Stop(Outcome, String),
}

/// One session that must end in `tool`.
struct Ask<'a> {
    label: String,
    attempt: u32,
    model: &'a ModelRef,
    system: String,
    prompt: String,
    tool: ToolSpec,
    workspace: Option<&'a tools::Workspace>,
    max_turns: u32,
}

async fn ask(context: &mut Context<'_>, ask: Ask<'_>) -> anyhow::Result<Asked> {
    let provider = match context.provider(ask.model) {
        Ok(provider) => provider,
        Err(error) => return Ok(Asked::Stop(Outcome::Blocked, error.to_string())),
    };
    let run_id = context.run_id();
    let tool_name = ask.tool.name.clone();
    let spec = SessionSpec {
        provider: provider.as_ref(),
        model: ask.model,
        run_id: &run_id,
        phase_label: ask.label.clone(),
        attempt: ask.attempt,
        system: ask.system,
        prompt: ask.prompt,
        terminal: ask.tool,
        tools: if ask.workspace.is_some() {
            tools::read_only_specs()
        } else {
            Vec::new()
        },
        workspace: ask.workspace,
        max_turns: ask.max_turns,
        tool_choice: context.config().tool_choice(ask.model),
        limits: context.config().limits(ask.model),
    };
    let mut observer = context.observer(&ask.label, ask.attempt, ask.model);
    Ok(match agent::run_session(spec, &mut observer).await {
        Ok(SessionEnd::Submitted(value)) => Asked::Value(value),
        Err(SessionError::Budget(reason)) => Asked::Stop(Outcome::BudgetExceeded, reason),
        Err(SessionError::Provider(error)) => Asked::Stop(Outcome::Blocked, error.to_string()),
        Err(SessionError::TurnLimit(turns)) => {
            Asked::NoAnswer(format!("no valid `{tool_name}` in {turns} turns"))
        }
        Err(SessionError::Stuck(reason)) => Asked::NoAnswer(reason),
        Err(SessionError::Other(error)) => return Err(error),
    })
}

pub async fn run(context: &mut Context<'_>, phase: PhaseName) -> anyhow::Result<PhaseResult> {
    let kind = kind(phase);
    let settings = context.config().phase(phase);
    let mut model = context.model_for(phase)?;
    let escalate = settings
        .escalate
        .as_deref()
        .map(|reference| context.config().resolve_model_reference(reference))
        .transpose()
        .map_err(|message| crate::bad_input!("phases.{phase}.escalate: {message}"))?;
    let validator_model = context
        .config()
        .validator_model(phase)
        .map_err(|message| crate::bad_input!("phases.{phase}.validator: {message}"))?;
    let (inputs, source) = inputs(context, phase)?;
    let conventions = context.conventions();
    let attempts = context.config().attempts(phase);
    let max_turns = context.config().max_turns(phase);
    let mut adversarial_pending = phase == PhaseName::Spec && settings.adversarial;
    // The work tree lets design, plan and review read the code they reason about.
    let base = context.run.manifest.base_sha.clone();
    let patch = if phase == PhaseName::Review {
        context.patch()?
    } else {
        String::new()
    };
    let tree = context.source.work_tree(&base, &patch)?;
    let workspace = tools::Workspace::new(
        tree.path(),
        std::time::Duration::from_secs(context.config().agent.command_timeout_s),
        context.config().agent.output_limit_bytes,
        Vec::new(),
    )?;

    let mut feedback = Feedback {
        phase,
        attempts: Vec::new(),
    };
    let mut objections: Vec<String> = Vec::new();
    for attempt in 1..=attempts {
        context.record().attempts = attempt;
        let prompt = format!("{inputs}{}", prompts::objections_section(&objections));
        let panel = context.config().review.panel.clone();
        let asked = if phase == PhaseName::Review && !panel.is_empty() {
            panel_review(
                context,
                attempt,
                &model,
                &prompt,
                &conventions,
                &workspace,
                max_turns,
            )
            .await?
        } else {
            let system = prompts::system(prompts::role(phase.as_str()), &conventions);
            let question = Ask {
                label: phase.to_string(),
                attempt,
                model: &model,
                system,
                prompt,
                tool: kind.tool.clone(),
                workspace: Some(&workspace),
                max_turns,
            };
            ask(context, question).await?
        };
        let deliverable = match asked {
            Asked::Value(value) => value,
            Asked::NoAnswer(reason) => {
                let objection = format!("attempt {attempt}: {reason}");
                feedback.attempts.push(FeedbackEntry {
                    attempt,
                    verdict: FeedbackVerdict::Error,
                    objections: vec![objection.clone()],
                });
                objections.push(objection);
                continue;
            }
            Asked::Stop(outcome, reason) => {
                save_feedback(context, &feedback)?;
                return Ok(PhaseResult::Stop(outcome, reason));
            }
        };
        let markdown = render(phase, &deliverable)?;
        // A plan whose touchpoints are not paths of this repository cannot
        // bound the change: sent back without spending a validator call.
        let problems = if phase == PhaseName::Plan {
            touchpoint_problems(context, &deliverable)?
        } else {
            Vec::new()
        };
        let mut verdict = if problems.is_empty() {
            validate(
                context,
                phase,
                attempt,
                &validator_model,
                &source,
                &kind,
                &markdown,
                &objections,
            )
            .await?
        } else {
            Validation::Revise(FeedbackVerdict::Revise, problems)
        };
        if matches!(verdict, Validation::Pass) && adversarial_pending {
            adversarial_pending = false;
            verdict = adversarial(context, attempt, &model, &source, &markdown).await?;
        }
        match verdict {
            Validation::Pass => {
                feedback.attempts.push(FeedbackEntry {
                    attempt,
                    verdict: FeedbackVerdict::Pass,
                    objections: Vec::new(),
                });
                save_feedback(context, &feedback)?;
                save_deliverable(context, kind.artifact, &deliverable, &markdown)?;
                if phase == PhaseName::Review {
                    let review: Review = serde_json::from_value(deliverable)?;
                    if review.verdict != ReviewVerdict::Approve {
                        return Ok(PhaseResult::Stop(
                            Outcome::Blocked,
                            "the review requested changes; a human decides what happens next"
                                .into(),
                        ));
                    }
                }
                return Ok(PhaseResult::Finished);
            }
            Validation::Revise(label, new_objections) => {
                feedback.attempts.push(FeedbackEntry {
                    attempt,
                    verdict: label,
                    objections: new_objections.clone(),
                });
                objections.extend(new_objections);
                if let Some(stronger) = &escalate
                    && *stronger != model
                {
                    tracing::info!("{phase}: escalating to {stronger} after a revise");
                    context.record().note = Some(format!("escalated to {stronger}"));
                    model = stronger.clone();
                }
            }
            Validation::Stop(outcome, reason) => {
                save_feedback(context, &feedback)?;
                return Ok(PhaseResult::Stop(outcome, reason));
            }
        }
    }
    save_feedback(context, &feedback)?;
    // Say who stopped it: the model that never delivered, or the checks
    // that kept sending its deliverable back.
    let delivered = feedback
        .attempts
        .iter()
        .filter(|entry| entry.verdict != FeedbackVerdict::Error)
        .count();
    let reason = if delivered == 0 {
        let last = feedback
            .attempts
            .last()
            .and_then(|entry| entry.objections.last())
            .map(|objection| format!(" (last: {objection})"))
            .unwrap_or_default();
        format!(
            "{phase}: the model delivered no {} in {attempts} attempt(s){last}; no validator was asked (phases.{phase}.attempts); see feedback/{phase}.json",
            kind.artifact
        )
    } else {
        format!(
            "{phase}: the validator still objected after {attempts} attempt(s), {delivered} of them checked (phases.{phase}.attempts); see feedback/{phase}.json"
        )
    };
    Ok(PhaseResult::Stop(Outcome::Blocked, reason))
}

enum Validation {
    Pass,
    /// Who sent it back (the validator, the adversarial reviewer) and why.
    Revise(FeedbackVerdict, Vec<String>),
    Stop(Outcome, String),
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site; a struct would only rename the list"
)]
async fn validate(
    context: &mut Context<'_>,
    phase: PhaseName,
    attempt: u32,
    model: &ModelRef,
    source: &str,
    kind: &Kind,
    markdown: &str,
    earlier: &[String],
) -> anyhow::Result<Validation> {
    let prompt = format!(
        "Check this {} against {}.\n\n# Source: {}\n\n{source}\n\n# Deliverable: {}\n\n{}{}",
        kind.artifact,
        kind.source_name,
        kind.source_name,
        kind.artifact,
        prompts::cap(markdown, 24_000),
        if earlier.is_empty() {
            String::new()
        } else {
            format!(
                "\n\nEarlier objections (check they were addressed):{}",
                prompts::objections_section(earlier)
            )
        }
    );
    let question = Ask {
        label: format!("{phase}.validate"),
        attempt,
        model,
        system: prompts::system(prompts::role("validate"), ""),
        prompt,
        tool: schema::submit_verdict(),
        workspace: None,
        max_turns: 4,
    };
    Ok(match ask(context, question).await? {
        Asked::Value(value) => {
            let objections = strings(&value, "objections");
            let passed =
                value.get("verdict").and_then(Value::as_str) == Some(Verdict::Pass.as_str());
            // A `pass` that lists objections has not passed: they are carried.
            if passed && objections.is_empty() {
                Validation::Pass
            } else if objections.is_empty() {
                Validation::Revise(
                    FeedbackVerdict::Revise,
                    vec!["the validator asked for a revision without saying why".into()],
                )
            } else {
                Validation::Revise(FeedbackVerdict::Revise, objections)
            }
        }
        // A validator that cannot answer never passes anything.
        Asked::NoAnswer(reason) => Validation::Revise(
            FeedbackVerdict::Revise,
            vec![format!("the validator gave no verdict: {reason}")],
        ),
        Asked::Stop(outcome, reason) => Validation::Stop(outcome, reason),
    })
}

/// Touchpoints that name nothing in the repository: each must be a glob that
/// matches a file at the base commit, an existing path, a new file in an
/// existing directory, or a new test file (`test_paths`: a test directory
/// may be new).
fn touchpoints_problems_for(
    touchpoints: &[String],
    files: &[String],
    test_paths: &globset::GlobSet,
) -> Vec<String> {
    let directories: std::collections::BTreeSet<&str> = files
        .iter()
        .flat_map(|file| {
            file.char_indices()
                .filter(|(_, c)| *c == '/')
                .map(move |(index, _)| &file[..index])
        })
        .collect();
    let mut problems = Vec::new();
    for touchpoint in touchpoints {
        let path = touchpoint
            .trim()
            .trim_start_matches("./")
            .trim_end_matches('/');
        let matches_a_file = globset::Glob::new(path).is_ok_and(|glob| {
            let matcher = glob.compile_matcher();
            files.iter().any(|file| matcher.is_match(file))
        });
        let is_a_directory = directories.contains(path);
        let parent = path.rsplit_once('/').map_or("", |(parent, _)| parent);
        let new_file_in_place = !path.is_empty()
            && !path.contains(char::is_whitespace)
            && !path.contains(['*', '?', '['])
            && (parent.is_empty() || directories.contains(parent) || test_paths.is_match(path));
        if !(matches_a_file || is_a_directory || new_file_in_place) {
            problems.push(format!(
                "touchpoint `{touchpoint}` is not a path or glob of this repository: name the files (or globs, or new files in existing directories) the change will touch"
            ));
        }
    }
    problems
}

fn touchpoint_problems(context: &Context<'_>, deliverable: &Value) -> anyhow::Result<Vec<String>> {
    let touchpoints = strings(deliverable, "touchpoints");
    let files = context.source.files_at(&context.run.manifest.base_sha)?;
    Ok(touchpoints_problems_for(
        &touchpoints,
        &files,
        &context.config().test_path_matcher()?,
    ))
}

/// The spec's adversarial pass: findings become objections for one more
/// attempt, and all of them are kept in `adversarial.json` for the evidence.
async fn adversarial(
    context: &mut Context<'_>,
    attempt: u32,
    model: &ModelRef,
    source: &str,
    markdown: &str,
) -> anyhow::Result<Validation> {
    let question = Ask {
        label: "spec.adversarial".into(),
        attempt,
        model,
        system: prompts::system(prompts::role("adversarial"), ""),
        prompt: format!(
            "# The ticket\n\n{source}\n\n# The spec\n\n{}",
            prompts::cap(markdown, 24_000)
        ),
        tool: schema::submit_findings(),
        workspace: None,
        max_turns: 4,
    };
    let findings: Vec<AdversarialFinding> = match ask(context, question).await? {
        Asked::Value(value) => {
            serde_json::from_value(value.get("findings").cloned().unwrap_or_default())
                .unwrap_or_default()
        }
        Asked::NoAnswer(_) => Vec::new(),
        Asked::Stop(outcome, reason) => return Ok(Validation::Stop(outcome, reason)),
    };
    context.run.write_json(
        artifact::ADVERSARIAL,
        &Adversarial {
            findings: findings.clone(),
        },
    )?;
    if findings.is_empty() {
        return Ok(Validation::Pass);
    }
    let objections = findings
        .iter()
        .map(|finding| {
            format!(
                "{}: {}",
                finding.kind.replace('_', " "),
                finding.description
            )
        })
        .collect();
    Ok(Validation::Revise(FeedbackVerdict::Adversarial, objections))
}

/// `[review].panel`: each persona reviews the diff against the spec; the
/// weighted vote decides. Every vote and its reason is kept.
async fn panel_review(
    context: &mut Context<'_>,
    attempt: u32,
    model: &ModelRef,
    prompt: &str,
    conventions: &str,
    workspace: &tools::Workspace,
    max_turns: u32,
) -> anyhow::Result<Asked> {
    let panel = context.config().review.panel.clone();
    let threshold = context.config().review.approve_threshold;
    let mut votes = Vec::new();
    let mut findings = Vec::new();
    for persona in &panel {
        let role = format!(
            "{}\nYou are the {} reviewer on a panel: judge the diff through that lens, and leave other concerns to the other reviewers.",
            prompts::role("review"),
            persona.persona
        );
        let question = Ask {
            label: format!("review.{}", persona.persona),
            attempt,
            model,
            system: prompts::system(&role, conventions),
            prompt: prompt.to_owned(),
            tool: schema::submit_review(),
            workspace: Some(workspace),
            max_turns,
        };
        let (verdict, reason) = match ask(context, question).await? {
            Asked::Value(value) => {
                let review: Review = serde_json::from_value(value)?;
                let reason = if review.findings.is_empty() {
                    "no findings".to_owned()
                } else {
                    review
                        .findings
                        .iter()
                        .map(|finding| format!("{}: {}", finding.severity, finding.comment))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                for mut finding in review.findings {
                    finding.comment = format!("[{}] {}", persona.persona, finding.comment);
                    findings.push(finding);
                }
                (review.verdict, reason)
            }
            Asked::NoAnswer(reason) => (
                ReviewVerdict::RequestChanges,
                format!("no verdict: {reason}"),
            ),
            Asked::Stop(outcome, reason) => return Ok(Asked::Stop(outcome, reason)),
        };
        votes.push(Vote {
            persona: persona.persona.clone(),
            weight: persona.weight,
            verdict,
            reason,
        });
    }
    let verdict = crate::pipeline::weighted_verdict(&votes, threshold);
    Ok(Asked::Value(serde_json::to_value(Review {
        verdict,
        findings,
        votes,
    })?))
}

fn strings(value: &Value, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn save_feedback(context: &mut Context<'_>, feedback: &Feedback) -> anyhow::Result<()> {
    if feedback.attempts.is_empty() {
        return Ok(());
    }
    context
        .run
        .write_json(&artifact::feedback(feedback.phase), feedback)
}

/// Each phase gets only its own inputs: (prompt text, validator source).
fn inputs(context: &Context<'_>, phase: PhaseName) -> anyhow::Result<(String, String)> {
    let ticket: Ticket = context
        .run
        .read_json(artifact::TICKET)?
        .ok_or_else(|| crate::bad_input!("ticket.json is missing from the run directory"))?;
    let ticket_text = prompts::untrusted_ticket(&ticket);
    let optional = |name: &str| -> anyhow::Result<String> {
        Ok(context.run.read_text(name)?.unwrap_or_default())
    };
    Ok(match phase {
        PhaseName::Spec => (format!("# The issue\n\n{ticket_text}"), ticket_text),
        PhaseName::Design => {
            let spec = read_text_artifact(context, artifact::SPEC_MARKDOWN)?;
            (format!("# The spec\n\n{spec}"), spec)
        }
        PhaseName::Plan => {
            // chore has no spec or design: the plan then answers to the ticket.
            let design = optional(artifact::DESIGN_MARKDOWN)?;
            let spec = optional(artifact::SPEC_MARKDOWN)?;
            if design.is_empty() {
                (format!("# The issue\n\n{ticket_text}"), ticket_text)
            } else {
                (
                    format!("# The design\n\n{design}\n\n# The spec's acceptance\n\n{spec}"),
                    design,
                )
            }
        }
        PhaseName::Review => {
            let spec = optional(artifact::SPEC_MARKDOWN)?;
            let spec = if spec.is_empty() { ticket_text } else { spec };
            let patch = prompts::cap(&context.patch()?, 40_000);
            let diff = format!("```diff\n{patch}\n```");
            (
                format!("# The spec\n\n{spec}\n\n# The diff (gates passed in verify)\n\n{diff}"),
                diff,
            )
        }
        _ => {
            let spec = read_text_artifact(context, artifact::SPEC_MARKDOWN)?;
            let design = read_text_artifact(context, artifact::DESIGN_MARKDOWN)?;
            (
                format!("# The spec\n\n{spec}\n\n# The design\n\n{design}"),
                design,
            )
        }
    })
}

fn bullets(items: &[String]) -> String {
    if items.is_empty() {
        return "_None._\n".into();
    }
    items.iter().map(|item| format!("- {item}\n")).collect()
}

/// Renders a checked deliverable to Markdown.
pub fn render(phase: PhaseName, value: &Value) -> anyhow::Result<String> {
    Ok(match phase {
        PhaseName::Spec => {
            let spec: Spec = serde_json::from_value(value.clone())?;
            format!(
                "# Spec\n\n{}\n\n## Objectives\n\n{}\n## Non-goals\n\n{}\n## Acceptance\n\n{}",
                spec.summary,
                bullets(&spec.objectives),
                bullets(&spec.non_goals),
                bullets(&spec.acceptance)
            )
        }
        PhaseName::Design => {
            let design: Design = serde_json::from_value(value.clone())?;
            let components: Vec<String> = design
                .components
                .iter()
                .map(|c| format!("**{}**: {}", c.name, c.responsibility))
                .collect();
            format!(
                "# Design\n\n{}\n\n## Components\n\n{}\n## Risks\n\n{}",
                design.approach,
                bullets(&components),
                bullets(&design.risks)
            )
        }
        PhaseName::Plan => {
            let plan: Plan = serde_json::from_value(value.clone())?;
            let steps: String = plan
                .steps
                .iter()
                .enumerate()
                .map(|(i, step)| format!("{}. {step}\n", i + 1))
                .collect();
            let touchpoints: Vec<String> =
                plan.touchpoints.iter().map(|t| format!("`{t}`")).collect();
            format!(
                "# Plan\n\n## Steps\n\n{steps}\n## Touchpoints\n\n{}\n## Tests\n\n{}\n## Rollback\n\n{}\n",
                bullets(&touchpoints),
                bullets(&plan.tests),
                plan.rollback
            )
        }
        PhaseName::Review => {
            let review: Review = serde_json::from_value(value.clone())?;
            let findings: Vec<String> = review
                .findings
                .iter()
                .map(|f| {
                    format!(
                        "**{}**{}: {}",
                        f.severity,
                        f.path
                            .as_deref()
                            .map(|p| format!(" `{p}`"))
                            .unwrap_or_default(),
                        f.comment
                    )
                })
                .collect();
            format!("# Review: {}\n\n{}", review.verdict, bullets(&findings))
        }
        _ => {
            let children: Children = serde_json::from_value(value.clone())?;
            let list: String = children
                .children
                .iter()
                .enumerate()
                .map(|(i, child)| format!("## {}. {}\n\n{}\n\n", i + 1, child.title, child.body))
                .collect();
            format!("# Child issues\n\n{list}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touchpoints_must_name_the_repository() {
        let files: Vec<String> = ["src/lib.rs", "tests/slug.rs", "README.md"]
            .into_iter()
            .map(String::from)
            .collect();
        let touchpoints: Vec<String> = [
            "src/lib.rs",
            "src/**",
            "tests/",
            "src/new.rs",
            "CHANGELOG.md",
            "run tests",
            "docs/new.md",
            "lib/*.py",
            "spec/new_spec.rb",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let mut tests = globset::GlobSetBuilder::new();
        tests.add(globset::Glob::new("spec/**").unwrap());
        let problems = touchpoints_problems_for(&touchpoints, &files, &tests.build().unwrap());
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("`run tests`"));
        assert!(problems[1].contains("`docs/new.md`"));
        assert!(problems[2].contains("`lib/*.py`"));
    }
}
