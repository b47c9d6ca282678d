//! `evidence.md`: the pull request body.

use std::fmt::Write;

use super::Evidence;
use crate::policy::NAMED_VIOLATIONS;
use crate::report::thousands;
use crate::types::{Outcome, PhaseName};

/// Changed files shown in the open; more are folded.
const OPEN_FILES: usize = 15;
/// Left-out files named in the body; the rest are counted.
const NAMED_LEFT_OUT: usize = 20;

pub fn render_markdown(evidence: &Evidence) -> String {
    let mut out = String::new();
    headline(&mut out, evidence);
    acceptance(&mut out, evidence);
    picture(&mut out, evidence);
    changes(&mut out, evidence);
    checks(&mut out, evidence);
    tests_first(&mut out, evidence);
    scope(&mut out, evidence);
    sandbox(&mut out, evidence);
    let _ = writeln!(out, "\n### Needs a human\n");
    write_list(
        &mut out,
        &evidence.needs_human,
        "Nothing beyond reviewing this PR.",
    );
    let _ = writeln!(out, "\n### Risks\n");
    write_list(&mut out, &evidence.risks, "None found.");
    review(&mut out, evidence);
    children(&mut out, evidence);
    cost(&mut out, evidence);
    validator_and_repairs(&mut out, evidence);
    adversarial(&mut out, evidence);
    let _ = writeln!(out, "\n### Rollback\n\n{}", one_line(&evidence.rollback));
    out
}

/// Outcome, what the change does and why, and the issue it closes.
fn headline(out: &mut String, evidence: &Evidence) {
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
    if let Some(parent) = evidence.issue.parent {
        let _ = writeln!(out, "\nPart of #{parent}: split from that epic by baton.");
    }
    if let Some(reason) = &evidence.reason {
        let _ = writeln!(out, "\n> **Stopped:** {}", one_line(reason));
    }
    match evidence.summary.as_deref().filter(|text| !text.is_empty()) {
        Some(summary) => {
            let _ = writeln!(out, "\n{}", one_line(summary));
        }
        None if evidence.route.contains(PhaseName::Spec) => {
            let _ = writeln!(
                out,
                "\nNo spec was accepted: the run stopped before one passed its validator, so the issue is the only statement of what this change is for."
            );
        }
        None => {
            let _ = writeln!(
                out,
                "\nThe `{}` route writes no spec: the issue is the only statement of what this change is for.",
                evidence.route
            );
        }
    }
    if let Some(number) = evidence.closes {
        let _ = writeln!(out, "\nCloses #{number}");
    }
    let _ = writeln!(
        out,
        "\n<sub>Route `{}` · base `{short_base}` · branch `{}` · run `{}`</sub>",
        evidence.route, evidence.branch, evidence.run_id
    );
}

fn acceptance(out: &mut String, evidence: &Evidence) {
    if evidence.acceptance.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### Acceptance criteria\n");
    for criterion in &evidence.acceptance {
        if criterion.met {
            let _ = writeln!(out, "- [x] {}", one_line(&criterion.text));
        } else {
            let _ = writeln!(
                out,
                "- [ ] {} — {}",
                one_line(&criterion.text),
                one_line(&criterion.note)
            );
        }
    }
}

/// The phases as they ran, as a Mermaid flowchart (GitHub and Forgejo
/// render it): attempts, repairs, and the gates a verify failed.
fn picture(out: &mut String, evidence: &Evidence) {
    if evidence.timeline.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### How the run went\n");
    let _ = writeln!(out, "```mermaid\nflowchart LR");
    let mut classes: Vec<(&str, Vec<String>)> = vec![
        ("passed", Vec::new()),
        ("failed", Vec::new()),
        ("open", Vec::new()),
    ];
    for (index, step) in evidence.timeline.iter().enumerate() {
        let mut label = step.phase.clone();
        if step.attempts > 1 {
            let _ = write!(label, "<br/>{} attempts", step.attempts);
        }
        match step.passed {
            Some(true) => label.push_str("<br/>gates passed"),
            Some(false) if !step.failed_gates.is_empty() => {
                let _ = write!(label, "<br/>{} failed", step.failed_gates.join(", "));
            }
            Some(false) => label.push_str("<br/>gates failed"),
            None => {}
        }
        // `running` is publish writing this very body: not worth a word.
        if !matches!(step.status.as_str(), "done" | "running") {
            let _ = write!(label, "<br/>{}", step.status);
        }
        let node = format!("p{index}");
        let _ = writeln!(out, "  {node}[\"{}\"]", mermaid_text(&label));
        if index > 0 {
            let _ = writeln!(out, "  p{} --> {node}", index - 1);
        }
        // The publish writing this body counts as passed when the run is done.
        let publishing = step.status == "running"
            && step.phase == "publish"
            && evidence.outcome == Outcome::Done;
        let class = match (step.status.as_str(), step.passed) {
            (_, Some(false)) | ("failed" | "stopped" | "interrupted", _) => 1,
            ("done", _) => 0,
            _ if publishing => 0,
            _ => 2,
        };
        classes[class].1.push(node);
    }
    let _ = writeln!(
        out,
        "  classDef passed fill:#dcfce7,stroke:#15803d,color:#14532d"
    );
    let _ = writeln!(
        out,
        "  classDef failed fill:#fee2e2,stroke:#b91c1c,color:#7f1d1d"
    );
    let _ = writeln!(
        out,
        "  classDef open fill:#f3f4f6,stroke:#6b7280,color:#111827"
    );
    for (class, nodes) in classes {
        if !nodes.is_empty() {
            let _ = writeln!(out, "  class {} {class}", nodes.join(","));
        }
    }
    let _ = writeln!(out, "```");
}

/// Text safe inside a quoted Mermaid label: quotes and angle brackets as
/// entity codes, except the `<br/>` line breaks baton writes itself.
fn mermaid_text(label: &str) -> String {
    label
        .split("<br/>")
        .map(|part| {
            flat(part)
                .replace('"', "#quot;")
                .replace('<', "#lt;")
                .replace('>', "#gt;")
        })
        .collect::<Vec<_>>()
        .join("<br/>")
}

fn changes(out: &mut String, evidence: &Evidence) {
    let _ = writeln!(out, "\n### What changed\n");
    if evidence.changed_files.is_empty() {
        let _ = writeln!(out, "No file changed.");
    } else {
        let added: usize = evidence.changed_files.iter().map(|file| file.added).sum();
        let removed: usize = evidence.changed_files.iter().map(|file| file.removed).sum();
        let total = format!(
            "{} file(s), +{added} −{removed}",
            evidence.changed_files.len()
        );
        let folded = evidence.changed_files.len() > OPEN_FILES;
        if folded {
            let _ = writeln!(out, "<details><summary>{total}</summary>\n");
        }
        let _ = writeln!(out, "| file | + | − |\n|---|---:|---:|");
        for file in &evidence.changed_files {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                code(&file.path),
                file.added,
                file.removed
            );
        }
        if folded {
            let _ = writeln!(out, "\n</details>");
        } else {
            let _ = writeln!(out, "\n{total}");
        }
    }
    if evidence.left_out_count > 0 {
        let named: Vec<String> = evidence
            .left_out
            .iter()
            .take(NAMED_LEFT_OUT)
            .cloned()
            .collect();
        let more = evidence.left_out_count - named.len();
        let _ = writeln!(
            out,
            "\nLeft out: {} new file(s) that commands produced (build output), not written by the agent's tools: {}{}.",
            evidence.left_out_count,
            code_list(&named),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
}

fn checks(out: &mut String, evidence: &Evidence) {
    if evidence.gates.is_empty() {
        return;
    }
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
            "| {} | {} | {result} | {exit} | {:.1} s |",
            code(&gate.name),
            if gate.required { "yes" } else { "no" },
            gate.duration_s
        );
    }
}

fn tests_first(out: &mut String, evidence: &Evidence) {
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
}

fn scope(out: &mut String, evidence: &Evidence) {
    let _ = writeln!(out, "\n### Scope\n");
    let violations = &evidence.scope.violations;
    if violations.is_empty() {
        let _ = writeln!(
            out,
            "✅ No policy violation (scope globs, plan touchpoints, size limits, secret scan)."
        );
    } else {
        let _ = writeln!(out, "❌ Policy violations:\n");
        // One line per file, with every rule it broke.
        let files = crate::policy::by_file(violations);
        let (whole, files): (Vec<_>, Vec<_>) =
            files.into_iter().partition(|(path, _)| *path == "*");
        for (_, rules) in &whole {
            let _ = writeln!(out, "- the patch — {}", one_line(&rules.join("; ")));
        }
        for (path, rules) in files.iter().take(NAMED_VIOLATIONS) {
            let _ = writeln!(out, "- {} — {}", code(path), one_line(&rules.join("; ")));
        }
        if files.len() > NAMED_VIOLATIONS {
            let _ = writeln!(
                out,
                "- and {} more file(s) (all listed in `evidence.json`)",
                files.len() - NAMED_VIOLATIONS
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
}

/// The Sandbox section: one line per distinct confinement, with the phases
/// it applied to.
fn sandbox(out: &mut String, evidence: &Evidence) {
    if evidence.sandbox.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### Sandbox\n");
    let mut grouped: Vec<(&str, Vec<&str>)> = Vec::new();
    for entry in &evidence.sandbox {
        match grouped.iter_mut().find(|(line, _)| *line == entry.line) {
            Some((_, phases)) => phases.push(&entry.phase),
            None => grouped.push((&entry.line, vec![&entry.phase])),
        }
    }
    for (line, phases) in grouped {
        let phases: Vec<String> = phases.iter().map(|phase| format!("`{phase}`")).collect();
        let _ = writeln!(out, "- Sandbox, {}: {}", phases.join(", "), one_line(line));
    }
}

fn review(out: &mut String, evidence: &Evidence) {
    let Some(review) = &evidence.review else {
        return;
    };
    let _ = writeln!(out, "\n### Review: `{}`\n", review.verdict);
    if review.findings.is_empty() {
        let _ = writeln!(out, "No findings.");
    }
    for finding in &review.findings {
        let place = finding
            .path
            .as_deref()
            .map(|path| format!(" {}", code(path)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "- **{}**{place}: {}",
            finding.severity,
            one_line(&finding.comment)
        );
    }
    if !review.votes.is_empty() {
        let _ = writeln!(
            out,
            "\n<details><summary>{} reviewer vote(s)</summary>\n",
            review.votes.len()
        );
        let _ = writeln!(
            out,
            "| reviewer | weight | vote | reason |\n|---|---:|---|---|"
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
        let _ = writeln!(out, "\n</details>");
    }
}

fn children(out: &mut String, evidence: &Evidence) {
    if evidence.children.is_empty() {
        return;
    }
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

fn cost(out: &mut String, evidence: &Evidence) {
    let _ = writeln!(
        out,
        "\n<details><summary><b>Cost</b>: ${:.4}, {} tokens in, {} out, {:.1} s</summary>\n",
        evidence.budget.cost_usd,
        thousands(evidence.budget.tokens_in),
        thousands(evidence.budget.tokens_out),
        evidence.budget.wall_s
    );
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
    let _ = writeln!(out, "\n</details>");
}

fn validator_and_repairs(out: &mut String, evidence: &Evidence) {
    if evidence.validator.is_empty() && evidence.repairs.is_empty() {
        return;
    }
    let revised = evidence
        .validator
        .iter()
        .filter(|entry| entry.verdict != "pass")
        .count();
    let _ = writeln!(
        out,
        "\n<details><summary><b>Validator and repairs</b>: {} verdict(s), {revised} sent back; {} repair(s)</summary>\n",
        evidence.validator.len(),
        evidence.repairs.len()
    );
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
    let _ = writeln!(out, "\n</details>");
}

fn adversarial(out: &mut String, evidence: &Evidence) {
    if evidence.adversarial.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n<details><summary><b>Adversarial review of the spec</b>: {} finding(s)</summary>\n",
        evidence.adversarial.len()
    );
    for finding in &evidence.adversarial {
        let _ = writeln!(
            out,
            "- **{}**: {}",
            finding.kind.replace('_', " "),
            one_line(&finding.description)
        );
    }
    let _ = writeln!(out, "\n</details>");
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
        .map(|item| code(item))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A path or name as inline code that cannot end its span, break its line
/// or a table row: backticks become quotes, `|` is escaped.
fn code(text: &str) -> String {
    format!("`{}`", flat(text).replace('`', "'").replace('|', "\\|"))
}

/// Untrusted or multi-line text kept on one line so it cannot restructure
/// the body: no line breaks, and no tag (a `</details>`, a hidden comment).
fn one_line(text: &str) -> String {
    flat(text).replace('<', "&lt;").replace("```", "` ` `")
}

/// Text on one line, its whitespace runs single spaces, no control characters.
fn flat(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|character| !character.is_control())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Violation;

    fn demo() -> Evidence {
        serde_json::from_str(include_str!("testdata/demo.json")).unwrap()
    }

    /// A run that went wrong every way a reviewer must see at a glance.
    fn troubled() -> Evidence {
        let mut evidence = demo();
        evidence.outcome = Outcome::Rejected;
        evidence.reason = Some("policy violation: many files".into());
        evidence.closes = Some(42);
        evidence.issue.title =
            "Make \"quotes\" <b>safe</b>\n<!-- baton:issue=1 -->\u{1b}[2J\r".into();
        evidence.rollback =
            "</details></details><!-- baton:issue=1 -->\n## ✅ baton: `done` FAKE\n```".into();
        if let Some(review) = evidence.review.as_mut() {
            review.findings[0].path = Some("src/`x`</details>\n| a | b |".into());
        }
        evidence.changed_files = (0..20)
            .map(|index| super::super::ChangedFile {
                path: format!("src/file_{index:02}.rs"),
                added: index,
                removed: 1,
            })
            .collect();
        evidence.left_out = (0..25)
            .map(|index| format!("target/debug/out_{index:02}"))
            .collect();
        evidence.left_out_count = 640;
        evidence.scope.violations = (0..14)
            .map(|index| Violation {
                path: format!("vendor/lib_{index:02}.rs"),
                rule: "scope.deny".into(),
                detail: "matches `vendor/**`".into(),
            })
            .collect();
        for criterion in &mut evidence.acceptance {
            criterion.met = false;
            criterion.note = "gate `test` failed".into();
        }
        if let Some(last) = evidence
            .timeline
            .iter_mut()
            .rev()
            .find(|step| step.phase == "verify")
        {
            last.passed = Some(false);
            last.failed_gates = vec!["test \"unit\"".into()];
        }
        evidence.timeline.push(super::super::Step {
            phase: "repair".into(),
            status: "stopped".into(),
            attempts: 1,
            passed: None,
            failed_gates: Vec::new(),
        });
        evidence
    }

    /// The Mermaid block, checked line by line against the subset of the
    /// flowchart grammar baton writes: every node declared once with a
    /// quoted label free of raw quotes and tags (but `<br/>`), edges and
    /// classes naming declared nodes, classes declared before use.
    fn check_mermaid(markdown: &str) -> usize {
        let block = markdown
            .split("```mermaid\n")
            .nth(1)
            .and_then(|rest| rest.split("\n```").next())
            .expect("a mermaid block");
        let node = regex::Regex::new(r#"^  (p\d+)\["([^"]*)"\]$"#).unwrap();
        let edge = regex::Regex::new(r"^  (p\d+) --> (p\d+)$").unwrap();
        let class_def =
            regex::Regex::new(r"^  classDef (\w+) [a-z-]+:#?\w+(,[a-z-]+:#?\w+)*$").unwrap();
        let class = regex::Regex::new(r"^  class ((?:p\d+,)*p\d+) (\w+)$").unwrap();
        let mut lines = block.lines();
        assert_eq!(lines.next(), Some("flowchart LR"));
        let mut nodes = std::collections::BTreeSet::new();
        let mut classes = std::collections::BTreeSet::new();
        for line in lines {
            if let Some(captures) = node.captures(line) {
                let label = &captures[2];
                assert!(
                    !label.replace("<br/>", "").contains(['<', '>']),
                    "a tag in {line}"
                );
                assert!(
                    nodes.insert(captures[1].to_owned()),
                    "{line} declared twice"
                );
            } else if let Some(captures) = edge.captures(line) {
                assert!(
                    nodes.contains(&captures[1]) && nodes.contains(&captures[2]),
                    "{line}"
                );
            } else if let Some(captures) = class_def.captures(line) {
                classes.insert(captures[1].to_owned());
            } else if let Some(captures) = class.captures(line) {
                assert!(classes.contains(&captures[2]), "{line}: undeclared class");
                for name in captures[1].split(',') {
                    assert!(nodes.contains(name), "{line}: undeclared node {name}");
                }
            } else {
                panic!("not flowchart grammar: {line:?}");
            }
        }
        nodes.len()
    }

    #[test]
    fn the_demo_body_opens_with_summary_criteria_and_picture() {
        let markdown = render_markdown(&demo());
        insta::assert_snapshot!("demo", markdown);
        assert_eq!(check_mermaid(&markdown), demo().timeline.len());
    }

    #[test]
    fn a_troubled_run_folds_long_lists_and_keeps_untrusted_text_inert() {
        let markdown = render_markdown(&troubled());
        insta::assert_snapshot!("troubled", markdown);
        check_mermaid(&markdown);
        assert!(markdown.contains("Closes #42"));
        assert!(markdown.contains("- and 4 more file(s) (all listed in `evidence.json`)"));
        assert!(markdown.contains("and 620 more"));
        assert_eq!(markdown.matches("<!-- baton:issue=").count(), 1);
        assert_eq!(
            markdown
                .lines()
                .filter(|line| line.starts_with("## "))
                .count(),
            1,
            "one heading of level 2"
        );
        assert_eq!(
            markdown.matches("```").count(),
            2,
            "only the picture's fence"
        );
        assert!(!markdown.contains('\u{1b}') && !markdown.contains('\r'));
        assert!(markdown.lines().all(|line| !line.starts_with("| a |")));
        // Every fold baton opens is closed, and no other text opens or
        // closes one (in a code span, a tag is shown, not obeyed).
        let opened = markdown
            .lines()
            .filter(|line| line.starts_with("<details>"))
            .count();
        let closed = markdown
            .lines()
            .filter(|line| line.starts_with("</details>"))
            .count();
        assert_eq!((opened, closed), (3, 3), "files, cost, validator");
        let outside_code: String = markdown.split('`').step_by(2).collect::<Vec<_>>().join("");
        assert_eq!(outside_code.matches("</details>").count(), 3);
    }
}
