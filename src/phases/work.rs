//! tests, implement, repair: agent phases that edit a clean work tree at the
//! base commit plus the run's patch, through the confined tools. What they
//! leave is the new `changes.patch`, judged by the policy at once and by the
//! gates in verify — never by what the agent says.

use std::time::Duration;

use serde_json::Value;

use super::verify::{GateRun, failing_logs, run_gates};
use super::{Context, PATCH, PhaseResult, policy_stop, prompts};
use crate::agent::command::scrubbed_environment;
use crate::agent::{self, FINISH, SessionEnd, SessionError, SessionSpec, tools};
use crate::git::WorkTree;
use crate::llm::ToolSpec;
use crate::records::{
    AgentSummary, FixRecord, RepairRecord, RepairRound, TestsRecord, VerifyRecord,
};
use crate::run_dir::artifact;
use crate::run_dir::sha256_hex;
use crate::sandbox::Use;
use crate::types::{Outcome, PhaseName, Route};

fn finish_tool() -> ToolSpec {
    tools::agent_specs()
        .into_iter()
        .find(|tool| tool.name == FINISH)
        .unwrap_or_else(|| ToolSpec {
            name: FINISH.into(),
            description: "End the phase.".into(),
            input_schema: serde_json::json!({"type": "object"}),
        })
}

/// The work-tree tools a phase is offered. implement and repair are handed
/// the files they will most likely edit and get no `list_files` or
/// `search`: fewer schemas in every request, for small models above all.
fn working_tools(phase: PhaseName) -> Vec<ToolSpec> {
    let browse = phase == PhaseName::Tests;
    tools::agent_specs()
        .into_iter()
        .filter(|tool| tool.name != FINISH)
        .filter(|tool| browse || !matches!(tool.name.as_str(), "list_files" | "search"))
        .collect()
}

/// The files implement or repair will most likely edit, with their text at
/// `tree`: the plan's touchpoints that name files, or, without a plan, the
/// repository's files the spec names and the tests written first.
fn likely_files(context: &Context<'_>, tree: &WorkTree) -> anyhow::Result<Vec<(String, String)>> {
    const MOST: usize = 4;
    let files = context.source.files_at(&context.run.manifest.base_sha)?;
    let mut chosen: Vec<String> = Vec::new();
    if let Some(plan) = context.plan()? {
        for touchpoint in &plan.touchpoints {
            let Ok(glob) = globset::Glob::new(touchpoint.trim_end_matches('/')) else {
                continue;
            };
            let matcher = glob.compile_matcher();
            chosen.extend(files.iter().filter(|file| matcher.is_match(file)).cloned());
        }
    } else {
        let spec = context
            .run
            .read_text(artifact::SPEC_MARKDOWN)?
            .unwrap_or_default();
        chosen.extend(
            files
                .iter()
                .filter(|file| spec.contains(file.as_str()))
                .cloned(),
        );
        if let Some(tests) = context.run.read_json::<TestsRecord>("tests.json")? {
            chosen.extend(tests.files.into_iter().map(|(path, _)| path));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    chosen.retain(|path| seen.insert(path.clone()));
    Ok(chosen
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(tree.path().join(&path)).ok()?;
            Some((path, text))
        })
        .take(MOST)
        .collect())
}

enum AgentRun {
    Finished(String),
    Stop(Outcome, String),
}

/// Runs one agent session on `tree`.
async fn agent_session(
    context: &mut Context<'_>,
    phase: PhaseName,
    attempt: u32,
    tree: &WorkTree,
    prompt: String,
) -> anyhow::Result<AgentRun> {
    let executor = context
        .config()
        .executor
        .clone()
        .filter(|executor| executor.phases.iter().any(|name| name == phase.as_str()));
    let purpose = if executor.is_some() {
        Use::Executor
    } else {
        Use::Agent
    };
    let (sandbox, report) = context.sandbox(purpose, tree.path()).await?;
    if let Some(reason) = context.sandbox_refusal(&report) {
        return Ok(AgentRun::Stop(Outcome::Blocked, reason));
    }
    if let Some(executor) = executor {
        return run_executor(context, phase, attempt, tree, &prompt, &executor, &sandbox).await;
    }
    let model = context.model_for(phase)?;
    let provider = match context.provider(&model) {
        Ok(provider) => provider,
        Err(error) => return Ok(AgentRun::Stop(Outcome::Blocked, error.to_string())),
    };
    let config = context.config();
    let mut workspace = tools::Workspace::new(
        tree.path(),
        Duration::from_secs(config.agent.command_timeout_s),
        config.agent.output_limit_bytes,
        scrubbed_environment(&context.settings.key_variables),
    )?
    .sandboxed(sandbox);
    if phase == PhaseName::Tests {
        workspace = workspace.writable_only(config.test_path_matcher()?, config.test_paths());
    }
    let protected: Vec<String> = context.settings.config_in_repo.iter().cloned().collect();
    workspace = workspace.forbidding(crate::policy::forbidden_paths(
        &config.scope.deny,
        &protected,
    ));
    let conventions = context.conventions();
    let run_id = context.run_id();
    let has_plan = context.run.manifest.route.contains(PhaseName::Plan);
    let spec = SessionSpec {
        provider: provider.as_ref(),
        model: &model,
        run_id: &run_id,
        phase_label: phase.to_string(),
        attempt,
        system: prompts::system(
            prompts::agent_role(
                if context.run.manifest.route == Route::Fix && phase == PhaseName::Repair {
                    "fix"
                } else {
                    phase.as_str()
                },
                has_plan,
            ),
            &conventions,
        ),
        prompt,
        terminal: finish_tool(),
        tools: working_tools(phase),
        workspace: Some(&workspace),
        max_turns: context.config().max_turns(phase),
        tool_choice: context.config().tool_choice(&model),
        limits: context.config().limits(&model),
    };
    let mut observer = context.observer(phase.as_str(), attempt, &model);
    let ended = agent::run_session(spec, &mut observer).await;
    // Whatever the session's end, what it wrote with its tools is the change.
    tree.note_authored(workspace.written());
    Ok(match ended {
        Ok(SessionEnd::Submitted(value)) => AgentRun::Finished(
            value
                .get("summary")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        ),
        Err(SessionError::Budget(reason)) => AgentRun::Stop(Outcome::BudgetExceeded, reason),
        Err(SessionError::Provider(error)) => AgentRun::Stop(Outcome::Blocked, error.to_string()),
        Err(SessionError::TurnLimit(turns)) => AgentRun::Stop(
            Outcome::Blocked,
            format!("{phase} did not finish within {turns} turns (phases.{phase}.max_turns)"),
        ),
        Err(SessionError::Stuck(reason)) => {
            AgentRun::Stop(Outcome::Blocked, format!("{phase} is stuck: {reason}"))
        }
        Err(SessionError::Other(error)) => return Err(error),
    })
}

/// An external executor in place of the built-in agent: same work tree, same
/// judgement afterwards. Its output goes to the transcript, redacted.
async fn run_executor(
    context: &mut Context<'_>,
    phase: PhaseName,
    attempt: u32,
    tree: &WorkTree,
    prompt: &str,
    executor: &crate::config::ExecutorConfig,
    sandbox: &crate::sandbox::Sandbox,
) -> anyhow::Result<AgentRun> {
    let has_plan = context.run.manifest.route.contains(PhaseName::Plan);
    let system = prompts::system(
        prompts::agent_role(phase.as_str(), has_plan),
        &context.conventions(),
    );
    let full_prompt = format!("{system}\n\n{prompt}");
    let mut secret_variables = context.settings.key_variables.clone();
    secret_variables.extend(executor.key_env.clone());
    let (command_line, output) = crate::agent::executor::run(
        executor,
        tree.path(),
        &full_prompt,
        &secret_variables,
        sandbox,
    )
    .await?;
    let status = output.status(executor.timeout_s);
    let line = serde_json::json!({
        "at": crate::clock::now_rfc3339(),
        "phase": phase,
        "attempt": attempt,
        "executor": executor.kind,
        "command": command_line,
        "status": status,
        "duration_s": output.duration_s,
        "output": output.output,
    });
    let transcript = artifact::transcript(phase.as_str(), attempt);
    context.run.append_line(&transcript, &line.to_string())?;
    context.note_transcript(&transcript);
    context.record().model = Some(format!(
        "executor:{}",
        serde_json::to_value(executor.kind)?
            .as_str()
            .unwrap_or("command")
    ));
    context.record().note = Some(format!("executor {status}"));
    let tail = crate::agent::command::tail(&output.output, 5);
    Ok(AgentRun::Finished(format!(
        "external executor ({status}): {tail}"
    )))
}

/// The ticket-derived inputs every agent phase gets: the spec (or the ticket)
/// and the plan, each capped.
fn task_brief(context: &Context<'_>) -> anyhow::Result<String> {
    let mut brief = String::new();
    match context.run.read_text(artifact::SPEC_MARKDOWN)? {
        Some(spec) => brief.push_str(&format!(
            "# The spec\n\n{}\n\n",
            prompts::cap(&spec, 12_000)
        )),
        None => {
            if let Some(ticket) = context.run.read_json(artifact::TICKET)? {
                brief.push_str(&format!(
                    "# The issue\n\n{}\n\n",
                    prompts::untrusted_ticket(&ticket)
                ));
            }
        }
    }
    if let Some(plan) = context.run.read_text(artifact::PLAN_MARKDOWN)? {
        brief.push_str(&format!(
            "# The plan\n\n{}\n\n",
            prompts::cap(&plan, 12_000)
        ));
    }
    Ok(brief)
}

/// The files a patch changes that the tests phase may not write.
fn outside_test_paths(context: &Context<'_>, patch: &str) -> anyhow::Result<Vec<String>> {
    let set = context.config().test_path_matcher()?;
    Ok(crate::patch::parse(patch)
        .into_iter()
        .map(|change| change.path)
        .filter(|path| !set.is_match(path))
        .collect())
}

/// tests: write failing tests first, then prove they fail on the base commit.
/// Red means something only if the base passes on its own: that is checked
/// first, so a broken base is never taken for tests that fail.
pub async fn tests(context: &mut Context<'_>) -> anyhow::Result<PhaseResult> {
    let base = context.run.manifest.base_sha.clone();
    let attempts = context.config().attempts(PhaseName::Tests);
    let untouched = context.source.work_tree(&base, "")?;
    let on_base = run_gates(context, &untouched, GateRun::RedCheck).await?;
    drop(untouched);
    // A gate whose command the shell cannot find (exit 127) is the config's
    // problem, not the code's: said as such, before any model is asked.
    let missing: Vec<String> = on_base
        .iter()
        .filter(|(gate, _)| gate.exit_code == Some(127))
        .map(|(gate, _)| {
            let said = gate
                .log_tail
                .lines()
                .find(|line| line.contains("not found"))
                .map(|line| format!(" ({})", line.trim()))
                .unwrap_or_default();
            format!("`{}` runs `{}`{said}", gate.name, gate.command)
        })
        .collect();
    if !missing.is_empty() {
        return Ok(PhaseResult::Stop(
            Outcome::Blocked,
            format!(
                "a configuration problem: gate {} could not start on the base commit (exit code 127: command not found); fix `run` of that [[gates]] entry, or install the tool in a set-up step before baton",
                missing.join(", ")
            ),
        ));
    }
    let broken: Vec<String> = on_base
        .iter()
        .filter(|(gate, _)| gate.required && !gate.passed)
        .map(|(gate, _)| gate.name.clone())
        .collect();
    if !broken.is_empty() {
        return Ok(PhaseResult::Stop(
            Outcome::Blocked,
            format!(
                "the base commit fails required gate(s) {} before any change, so failing tests could not be told from a broken base; fix the base first",
                broken.join(", ")
            ),
        ));
    }
    let brief = task_brief(context)?;
    let mut objections = Vec::new();
    let mut last: Option<(String, TestsRecord)> = None;
    for attempt in 1..=attempts {
        context.record().attempts = attempt;
        let tree = context.source.work_tree(&base, "")?;
        let prompt = format!(
            "{brief}Write the tests now.{}",
            prompts::objections_section(&objections)
        );
        let summary = match agent_session(context, PhaseName::Tests, attempt, &tree, prompt).await?
        {
            AgentRun::Finished(summary) => summary,
            AgentRun::Stop(outcome, reason) => return Ok(PhaseResult::Stop(outcome, reason)),
        };
        let changes = tree.changes()?;
        note_left_out(context, &changes);
        let patch = changes.patch;
        if let Some(reason) = policy_stop(context, context.config(), &patch)? {
            context.run.write_patch(PATCH, &patch)?;
            return Ok(PhaseResult::Stop(Outcome::Rejected, reason));
        }
        if patch.trim().is_empty() {
            objections.push(format!("attempt {attempt} wrote no test at all"));
            continue;
        }
        // A `run` command can write anywhere: what is not a test file is
        // sent back, so red can only come from the new tests.
        let outside = outside_test_paths(context, &patch)?;
        if !outside.is_empty() {
            objections.push(format!(
                "attempt {attempt} changed {}, which {} not test files; the tests phase writes tests only and leaves the code under test as it is",
                outside.join(", "),
                if outside.len() == 1 { "is" } else { "are" }
            ));
            continue;
        }
        // Existing tests must still pass, so red comes from the new ones:
        // existing files may gain lines, not lose them.
        let rewritten: Vec<String> = crate::patch::parse(&patch)
            .into_iter()
            .filter(|change| !change.created && (change.deleted || change.removed > 0))
            .map(|change| change.path)
            .collect();
        if !rewritten.is_empty() {
            objections.push(format!(
                "attempt {attempt} removed or changed existing lines in {}; the tests phase adds tests (new files, or new lines in existing ones) and leaves the existing tests as they are, so that only the new tests can fail",
                rewritten.join(", ")
            ));
            continue;
        }
        // The red check runs on a fresh tree: base + the tests, nothing else.
        let fresh = context.source.work_tree(&base, &patch)?;
        let gates = run_gates(context, &fresh, GateRun::RedCheck).await?;
        let red = gates.iter().any(|(gate, _)| gate.required && !gate.passed);
        let files = crate::patch::parse(&patch)
            .into_iter()
            .filter(|change| !change.deleted)
            .map(|change| {
                let bytes = std::fs::read(fresh.path().join(&change.path)).unwrap_or_default();
                (change.path, sha256_hex(&bytes))
            })
            .collect();
        let record = TestsRecord {
            summary,
            attempts: attempt,
            red,
            files,
            gates: gates.into_iter().map(|(gate, _)| gate).collect(),
        };
        if red {
            context.run.write_patch(PATCH, &patch)?;
            context.run.write_json("tests.json", &record)?;
            context.record().note = Some("red on the base commit".into());
            return Ok(PhaseResult::Finished);
        }
        objections.push(format!(
            "attempt {attempt}: the tests you wrote PASS on the base commit (every gate passed), so they cannot show the change works. Write tests that fail until the change exists."
        ));
        last = Some((patch, record));
    }
    let Some((patch, record)) = last else {
        // Say what happened: no attempt got as far as a red check.
        return Ok(PhaseResult::Stop(
            Outcome::Blocked,
            format!(
                "tests: no usable test was written in {attempts} attempt(s): {}",
                objections.join("; ")
            ),
        ));
    };
    context.run.write_patch(PATCH, &patch)?;
    context.run.write_json("tests.json", &record)?;
    Ok(PhaseResult::Stop(
        Outcome::Blocked,
        format!(
            "tests: the new tests never failed on the base commit in {attempts} attempt(s); tests that pass before the change prove nothing"
        ),
    ))
}

/// implement: make the tests pass, on base + the tests' patch. With
/// `[phases.implement].per_step`, one fresh-context session per plan step,
/// each given the plan, its step and a summary of the diff so far.
pub async fn implement(context: &mut Context<'_>) -> anyhow::Result<PhaseResult> {
    let base = context.run.manifest.base_sha.clone();
    let patch = context.patch()?;
    let tree = context.source.work_tree(&base, &patch)?;
    let mut brief = task_brief(context)?;
    if let Some(tests) = context.run.read_json::<TestsRecord>("tests.json")? {
        let files: Vec<String> = tests
            .files
            .iter()
            .map(|(path, _)| format!("`{path}`"))
            .collect();
        brief.push_str(&format!(
            "# Tests written first\n\nThese files already hold failing tests; make them pass and do not change them: {}\n\n",
            files.join(", ")
        ));
    }
    let steps = match context.plan()? {
        Some(plan)
            if context.config().phase(PhaseName::Implement).per_step && !plan.steps.is_empty() =>
        {
            plan.steps
        }
        _ => Vec::new(),
    };
    brief.push_str(&prompts::file_contents(&likely_files(context, &tree)?));
    if steps.is_empty() {
        context.record().attempts = 1;
        let prompt = format!("{brief}Implement the change now.");
        return match agent_session(context, PhaseName::Implement, 1, &tree, prompt).await? {
            AgentRun::Finished(summary) => {
                save_agent_result(context, &tree, artifact::IMPLEMENT, summary)
            }
            AgentRun::Stop(outcome, reason) => Ok(PhaseResult::Stop(outcome, reason)),
        };
    }
    let mut summaries = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let number = index as u32 + 1;
        context.record().attempts = number;
        let so_far = tree.diff()?;
        let diffstat: Vec<String> = crate::patch::parse(&so_far)
            .iter()
            .map(|change| format!("- `{}` +{} −{}", change.path, change.added, change.removed))
            .collect();
        let prompt = format!(
            "{brief}# Your step ({number} of {})\n\n{step}\n\nDo this step only; the other steps have their own sessions.\n\n# The diff so far\n\n{}\n\n```diff\n{}\n```\n",
            steps.len(),
            if diffstat.is_empty() {
                "Nothing changed yet.".to_owned()
            } else {
                diffstat.join("\n")
            },
            prompts::cap(&so_far, 16_000)
        );
        match agent_session(context, PhaseName::Implement, number, &tree, prompt).await? {
            AgentRun::Finished(summary) => summaries.push(format!("step {number}: {summary}")),
            AgentRun::Stop(outcome, reason) => return Ok(PhaseResult::Stop(outcome, reason)),
        }
    }
    save_agent_result(context, &tree, artifact::IMPLEMENT, summaries.join("\n"))
}

/// repair: fix what the gates said, with the history of earlier repairs.
pub async fn repair(context: &mut Context<'_>) -> anyhow::Result<PhaseResult> {
    let base = context.run.manifest.base_sha.clone();
    // A `/baton fix` run starts with a repair: its feedback stands where a
    // failing gate's log would, and verify has not run yet.
    let fix: Option<FixRecord> = context.run.read_json(artifact::FIX)?;
    let verify: Option<VerifyRecord> = context.run.read_json(artifact::VERIFY)?;
    if verify.is_none() && fix.is_none() {
        return Err(crate::bad_input!(
            "verify.json is missing: run verify before repair"
        ));
    }
    let mut history: RepairRecord = context.run.read_json(artifact::REPAIR)?.unwrap_or_default();
    let round = history.rounds.len() as u32 + 1;
    let patch = context.patch()?;
    let tree = context.source.work_tree(&base, &patch)?;
    let mut prompt = task_brief(context)?;
    prompt.push_str(&prompts::file_contents(&likely_files(context, &tree)?));
    if let Some(fix) = &fix {
        prompt.push_str(&prompts::fix_feedback(&fix.author, &fix.text));
    }
    if let Some(verify) = &verify {
        prompt.push_str("# Failing gates (log tails)\n\n");
        prompt.push_str(&failing_logs(context, verify)?);
    }
    if !history.rounds.is_empty() {
        prompt.push_str("\n# Earlier repairs (they did not fix it; do not repeat them)\n\n");
        for earlier in &history.rounds {
            prompt.push_str(&format!(
                "- repair {} after {} failed: {}\n",
                earlier.round,
                earlier.failed_gates.join(", "),
                earlier.summary
            ));
        }
    }
    prompt.push_str(if verify.is_some() {
        "\nFix the failure now."
    } else {
        "\nMake the change the feedback asks for now."
    });
    context.record().attempts = 1;
    let summary = match agent_session(context, PhaseName::Repair, round, &tree, prompt).await? {
        AgentRun::Finished(summary) => summary,
        AgentRun::Stop(outcome, reason) => return Ok(PhaseResult::Stop(outcome, reason)),
    };
    if verify.is_none() && tree.diff()? == patch {
        return Ok(PhaseResult::Stop(
            Outcome::Failed,
            "the repair for the `/baton fix` feedback changed nothing".into(),
        ));
    }
    let failed_gates: Vec<String> = verify
        .iter()
        .flat_map(|verify| &verify.gates)
        .filter(|gate| gate.required && !gate.passed)
        .map(|gate| gate.name.clone())
        .collect();
    let signature = verify
        .as_ref()
        .and_then(|verify| verify.rounds.last())
        .and_then(|last| last.signature.clone())
        .unwrap_or_default();
    history.rounds.push(RepairRound {
        round,
        failed_gates,
        signature,
        summary: summary.clone(),
    });
    context.run.write_json(artifact::REPAIR, &history)?;
    context.record().note = Some(format!("repair {round}"));
    save_agent_result(context, &tree, &artifact::repair_round(round), summary)
}

/// New files that commands produced and the patch leaves out, for the
/// evidence.
fn note_left_out(context: &mut Context<'_>, changes: &crate::git::Changes) {
    let record = context.record();
    record.left_out.clone_from(&changes.left_out);
    record.left_out_count = changes.left_out_count;
}

fn save_agent_result(
    context: &mut Context<'_>,
    tree: &WorkTree,
    artifact: &str,
    summary: String,
) -> anyhow::Result<PhaseResult> {
    let changes = tree.changes()?;
    note_left_out(context, &changes);
    let patch = changes.patch;
    let stop = policy_stop(context, context.config(), &patch)?;
    // Written even when rejected (redacted on the way), so the evidence shows
    // what was refused; publish refuses it again on its own.
    context.run.write_patch(PATCH, &patch)?;
    context
        .run
        .write_json(artifact, &AgentSummary { summary })?;
    Ok(match stop {
        Some(reason) => PhaseResult::Stop(Outcome::Rejected, reason),
        None => PhaseResult::Finished,
    })
}
