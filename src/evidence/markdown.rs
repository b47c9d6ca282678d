//! `evidence.md`: the pull request body.

use std::fmt::Write;

use super::Evidence;
use crate::report::thousands;
use crate::types::{Outcome, PhaseName};

pub fn render_markdown(evidence: &Evidence) -> String {
    let mut out = String::new();
    let icon = match evidence.outcome {
        Outcome::Done => "✅",
        Outcome::Running => "⏳",
        Outcome::Blocked | Outcome::Cancelled => "⏸️",
        Outcome::Failed | Outcome::BudgetExceeded | Outcome::Rejected => "❌",
    };
    let short_base: String = evidence.base_sha.chars().take(10).collect();
    let _ = writeln!(out, "<!-- baton:issue={} -->", evidence.issue.number);
    let _ = writeln!(
        out,
        "## {icon} baton: `{}` — #{} {}",
        evidence.outcome,
        evidence.issue.number,
        one_line(&evidence.issue.title)
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Route `{}` · base `{short_base}` · branch `{}` · run `{}`",
        evidence.route, evidence.branch, evidence.run_id
    );
    if let Some(parent) = evidence.issue.parent {
        let _ = writeln!(out, "\nPart of #{parent}: split from that epic by baton.");
    }
    if let Some(reason) = &evidence.reason {
        let _ = writeln!(out, "\n> **Stopped:** {}", one_line(reason));
    }

    let _ = writeln!(out, "\n### What changed\n");
    if evidence.changed_files.is_empty() {
        let _ = writeln!(out, "No file changed.");
    } else {
        let _ = writeln!(out, "| file | + | − |\n|---|---:|---:|");
        for file in &evidence.changed_files {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                file.path, file.added, file.removed
            );
        }
        let added: usize = evidence.changed_files.iter().map(|file| file.added).sum();
        let removed: usize = evidence.changed_files.iter().map(|file| file.removed).sum();
        let _ = writeln!(
            out,
            "\n{} file(s), +{added} −{removed}",
            evidence.changed_files.len()
        );
    }

    if !evidence.gates.is_empty() {
        let _ = writeln!(
            out,
            "\n### Checks\n\nRun by verify on a clean checkout of the base commit plus the patch; the agent's own claims count for nothing.\n"
        );
        let _ = writeln!(
            out,
            "| gate | required | result | exit | time |\n|---|---|---|---:|---:|"
        );
        for gate in &evidence.gates {
            let result = match gate.status.as_str() {
                "passed" => "✅ passed",
                "failed" => "❌ failed",
                _ => "⚠️ not run (counts as failed)",
            };
            let exit = gate
                .exit_code
                .map_or_else(|| "—".to_owned(), |code| code.to_string());
            let _ = writeln!(
                out,
                "| `{}` | {} | {result} | {exit} | {:.1} s |",
                gate.name,
                if gate.required { "yes" } else { "no" },
                gate.duration_s
            );
        }
    }

    let _ = writeln!(out, "\n### Tests first\n");
    let mark = |value: Option<bool>| match value {
        Some(true) => "✅ yes",
        Some(false) => "❌ no",
        None => "— n/a",
    };
    let _ = writeln!(
        out,
        "- red on the base commit: {}",
        mark(evidence.tests_first.red)
    );
    let _ = writeln!(
        out,
        "- green after the change: {}",
        mark(evidence.tests_first.green)
    );
    let _ = writeln!(out, "- {}", evidence.tests_first.note);

    let _ = writeln!(out, "\n### Scope\n");
    if evidence.scope.violations.is_empty() {
        let _ = writeln!(
            out,
            "✅ No policy violation (scope globs, plan touchpoints, size limits, secret scan)."
        );
    } else {
        let _ = writeln!(out, "❌ Policy violations:\n");
        for violation in &evidence.scope.violations {
            let _ = writeln!(
                out,
                "- `{}` — {}: {}",
                violation.path, violation.rule, violation.detail
            );
        }
    }
    if !evidence.scope.outside_plan.is_empty() {
        let _ = writeln!(
            out,
            "\nOutside the plan's touchpoints: {}",
            code_list(&evidence.scope.outside_plan)
        );
    }
    if !evidence.scope.needs_approval.is_empty() {
        let _ = writeln!(
            out,
            "\nNeeds approval: {}",
            code_list(&evidence.scope.needs_approval)
        );
    }

    let _ = writeln!(out, "\n### Cost\n");
    let _ = writeln!(
        out,
        "| phase | runs | attempts | tokens in | tokens out | cost | time |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    // In pipeline order, not alphabetical: a reviewer reads the run as it went.
    let ordered = PhaseName::ALL.iter().filter_map(|phase| {
        Some((
            phase.as_str(),
            evidence.budget.by_phase.get(phase.as_str())?,
        ))
    });
    for (phase, spend) in ordered {
        let _ = writeln!(
            out,
            "| {phase} | {} | {} | {} | {} | ${:.4} | {:.1} s |",
            spend.runs,
            spend.attempts,
            thousands(spend.tokens_in),
            thousands(spend.tokens_out),
            spend.cost_usd,
            spend.wall_s
        );
    }
    let _ = writeln!(
        out,
        "| **total** | | | {} | {} | **${:.4}** | {:.1} s |",
        thousands(evidence.budget.tokens_in),
        thousands(evidence.budget.tokens_out),
        evidence.budget.cost_usd,
        evidence.budget.wall_s
    );
    let mut by_model: std::collections::BTreeMap<&str, crate::types::Spend> =
        std::collections::BTreeMap::new();
    for spend in evidence.budget.by_phase.values() {
        for (model, model_spend) in &spend.by_model {
            by_model.entry(model.as_str()).or_default().add(model_spend);
        }
    }
    if !by_model.is_empty() {
        let _ = writeln!(
            out,
            "\n| model | tokens in | tokens out | cost |\n|---|---:|---:|---:|"
        );
        for (model, spend) in &by_model {
            let _ = writeln!(
                out,
                "| `{model}` | {} | {} | ${:.4} |",
                thousands(spend.tokens_in),
                thousands(spend.tokens_out),
                spend.cost_usd
            );
        }
    }

    if !evidence.validator.is_empty() || !evidence.repairs.is_empty() {
        let _ = writeln!(out, "\n### Validator and repairs\n");
        for entry in &evidence.validator {
            let objections = if entry.objections.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    entry
                        .objections
                        .iter()
                        .map(|o| one_line(o))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            };
            let _ = writeln!(
                out,
                "- {} attempt {}: **{}**{objections}",
                entry.phase, entry.attempt, entry.verdict
            );
        }
        for repair in &evidence.repairs {
            let _ = writeln!(
                out,
                "- repair {}: after {} failed — {}",
                repair.round,
                code_list(&repair.failed_gates),
                one_line(&repair.summary)
            );
        }
    }

    if let Some(review) = &evidence.review {
        let _ = writeln!(out, "\n### Review: `{}`\n", review.verdict);
        if review.findings.is_empty() {
            let _ = writeln!(out, "No findings.");
        }
        for finding in &review.findings {
            let place = finding
                .path
                .as_deref()
                .map(|path| format!(" `{path}`"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "- **{}**{place}: {}",
                finding.severity,
                one_line(&finding.comment)
            );
        }
    }

    if let Some(review) = &evidence.review
        && !review.votes.is_empty()
    {
        let _ = writeln!(
            out,
            "\n| reviewer | weight | vote | reason |\n|---|---:|---|---|"
        );
        for vote in &review.votes {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                one_line(&vote.persona),
                vote.weight,
                vote.verdict,
                one_line(&vote.reason).replace('|', "\\|")
            );
        }
    }

    if !evidence.adversarial.is_empty() {
        let _ = writeln!(out, "\n### Adversarial review of the spec\n");
        for finding in &evidence.adversarial {
            let _ = writeln!(
                out,
                "- **{}**: {}",
                finding.kind.replace('_', " "),
                one_line(&finding.description)
            );
        }
    }

    if !evidence.children.is_empty() {
        let _ = writeln!(out, "\n### Child issues\n");
        for (index, child) in evidence.children.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}. **{}** — {}",
                index + 1,
                one_line(&child.title),
                one_line(&child.body)
            );
        }
    }

    let _ = writeln!(out, "\n### Risks\n");
    write_list(&mut out, &evidence.risks, "None found.");
    let _ = writeln!(out, "\n### Needs a human\n");
    write_list(
        &mut out,
        &evidence.needs_human,
        "Nothing beyond reviewing this PR.",
    );
    let _ = writeln!(out, "\n### Rollback\n\n{}", evidence.rollback);
    out
}

fn write_list(out: &mut String, items: &[String], empty: &str) {
    if items.is_empty() {
        let _ = writeln!(out, "{empty}");
    }
    for item in items {
        let _ = writeln!(out, "- {}", one_line(item));
    }
}

fn code_list(items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Untrusted or multi-line text kept on one line so it cannot restructure the body.
fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.replace("<!--", "&lt;!--")
}
