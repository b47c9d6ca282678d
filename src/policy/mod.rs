//! Guardrails as pure code: (config, patch, plan) → verdict with reasons.
//!
//! The same check runs after every agent phase and again in publish, on the
//! patch text itself, so a later job never has to trust an earlier one.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::config::{Budget, Scope};
use crate::patch::FileChange;
use crate::secrets::Redactor;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub rule: String,
    /// The file it concerns (`*` for whole-patch limits).
    pub path: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub violations: Vec<Violation>,
    pub outside_plan: Vec<String>,
    /// Files matching `[scope].approval`: publish needs `/baton approve`.
    pub needs_approval: Vec<String>,
}

/// Each file with the rules it broke (`rule: detail`), in the order the
/// files were first found; `*` stands for the whole patch (its size).
pub fn by_file(violations: &[Violation]) -> Vec<(&str, Vec<String>)> {
    let mut files: Vec<(&str, Vec<String>)> = Vec::new();
    for violation in violations {
        let broken = format!("{}: {}", violation.rule, violation.detail);
        match files.iter_mut().find(|(path, _)| *path == violation.path) {
            Some((_, rules)) => rules.push(broken),
            None => files.push((&violation.path, vec![broken])),
        }
    }
    files
}

/// How many violations a message or the PR body names before counting.
pub const NAMED_VIOLATIONS: usize = 10;

impl Verdict {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    /// One line for logs and the run's stop reason; names files, never
    /// secrets, at most [`NAMED_VIOLATIONS`] of them with every rule each
    /// broke (all are in `evidence.json`).
    pub fn summary(&self) -> String {
        let (whole, by_file): (Vec<_>, Vec<_>) = self
            .by_file()
            .into_iter()
            .partition(|(path, _)| *path == "*");
        let mut parts: Vec<String> = whole
            .iter()
            .map(|(_, broken)| format!("the patch ({})", broken.join("; ")))
            .collect();
        parts.extend(
            by_file
                .iter()
                .take(NAMED_VIOLATIONS)
                .map(|(path, broken)| format!("{path} ({})", broken.join("; "))),
        );
        if by_file.len() > NAMED_VIOLATIONS {
            parts.push(format!(
                "and {} more file(s) (all listed in evidence.json)",
                by_file.len() - NAMED_VIOLATIONS
            ));
        }
        parts.join("; ")
    }

    /// Each file with the rules it broke; see [`by_file`].
    pub fn by_file(&self) -> Vec<(&str, Vec<String>)> {
        by_file(&self.violations)
    }
}

pub struct PolicyInput<'a> {
    pub scope: &'a Scope,
    pub budget: &'a Budget,
    pub changes: &'a [FileChange],
    /// The plan's touchpoints, when the route has a plan.
    pub touchpoints: Option<&'a [String]>,
    /// Paths the agent may never change (baton's own config file).
    pub protected: &'a [String],
}

/// Marker the redactor leaves; finding it in a patch means a secret was there.
const REDACTION_MARKER: &str = "[REDACTED:";

pub fn check(input: &PolicyInput<'_>, redactor: &Redactor) -> Verdict {
    let mut verdict = Verdict::default();
    let deny = glob_set(&input.scope.deny);
    let allow = glob_set(&input.scope.allow);
    let approval = glob_set(&input.scope.approval);
    let touchpoints = input.touchpoints.map(|globs| {
        let expanded: Vec<String> = globs
            .iter()
            .flat_map(|glob| {
                let glob = glob.trim_start_matches("./");
                if glob.ends_with('/') {
                    vec![format!("{glob}**")]
                } else {
                    vec![glob.to_owned(), format!("{glob}/**")]
                }
            })
            .collect();
        glob_set(&expanded)
    });
    let mut violations = Vec::new();
    let mut push = |rule: &str, path: &str, detail: String| {
        violations.push(Violation {
            rule: rule.into(),
            path: path.into(),
            detail,
        });
    };

    for change in input.changes {
        let paths = std::iter::once(change.path.as_str()).chain(change.old_path.as_deref());
        for path in paths {
            if path.starts_with('/') || path.split('/').any(|part| part == "..") {
                push("path", path, "leaves the repository".into());
            }
            if let Some(glob) = first_match(&deny, &input.scope.deny, path) {
                push("scope.deny", path, format!("matches `{glob}`"));
            }
            if !input.scope.allow.is_empty() && !allow.is_match(path) {
                push("scope.allow", path, "matches no allowed glob".into());
            }
            if input.protected.iter().any(|protected| protected == path) {
                push(
                    "protected",
                    path,
                    "baton's own configuration cannot be changed by a run".into(),
                );
            }
        }
        if let Some(touchpoints) = &touchpoints
            && !touchpoints.is_match(&change.path)
        {
            verdict.outside_plan.push(change.path.clone());
            if input.scope.enforce_plan {
                push(
                    "plan.touchpoints",
                    &change.path,
                    "changed outside the plan's touchpoints".into(),
                );
            }
        }
        // A rename out of an approval glob changes what it guards too.
        if std::iter::once(change.path.as_str())
            .chain(change.old_path.as_deref())
            .any(|path| approval.is_match(path))
        {
            verdict.needs_approval.push(change.path.clone());
        }
        let mut rules: Vec<String> = redactor
            .scan(&change.added_text)
            .into_iter()
            .map(|finding| finding.rule)
            .collect();
        if change.added_text.contains(REDACTION_MARKER) {
            rules.push("redacted secret".into());
        }
        rules.sort();
        rules.dedup();
        if !rules.is_empty() {
            push(
                "secret",
                &change.path,
                format!("added lines contain {}", rules.join(", ")),
            );
        }
    }

    let changed = input.changes.len();
    if changed > input.budget.max_changed_files {
        push(
            "budget.max_changed_files",
            "*",
            format!(
                "{changed} files changed, limit {}",
                input.budget.max_changed_files
            ),
        );
    }
    let lines: usize = input
        .changes
        .iter()
        .map(|change| change.added + change.removed)
        .sum();
    if lines > input.budget.max_diff_lines {
        push(
            "budget.max_diff_lines",
            "*",
            format!(
                "{lines} lines changed, limit {}",
                input.budget.max_diff_lines
            ),
        );
    }
    verdict.violations = violations;
    verdict
}

fn build_glob(pattern: &str) -> Option<Glob> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .ok()
}

/// The paths a run may never change, as one matcher: `[scope].deny` and
/// the run's own config file. The agent's write tools refuse them at once;
/// the policy rejects a patch that changed them anyway (through `run`).
pub fn forbidden_paths(deny: &[String], protected: &[String]) -> GlobSet {
    let mut patterns: Vec<String> = deny.to_vec();
    patterns.extend(protected.iter().map(|path| globset::escape(path)));
    glob_set(&patterns)
}

/// Invalid globs are rejected by `baton config check`; here they match nothing.
fn glob_set(patterns: &[String]) -> GlobSet {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        if let Some(glob) = build_glob(pattern) {
            builder.add(glob);
        }
    }
    builder.build().unwrap_or_else(|_| GlobSet::empty())
}

fn first_match<'a>(set: &GlobSet, patterns: &'a [String], path: &str) -> Option<&'a str> {
    let index = set.matches(path).into_iter().next()?;
    patterns
        .iter()
        .filter(|pattern| build_glob(pattern).is_some())
        .nth(index)
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, added_text: &str) -> FileChange {
        FileChange {
            path: path.into(),
            added: added_text.lines().count(),
            added_text: added_text.into(),
            ..FileChange::default()
        }
    }

    fn verdict(changes: &[FileChange], touchpoints: Option<&[String]>) -> Verdict {
        let scope = Scope {
            approval: vec!["migrations/**".into()],
            ..Scope::default()
        };
        let budget = Budget {
            max_changed_files: 3,
            max_diff_lines: 10,
            ..Budget::default()
        };
        let protected = vec!["baton.toml".to_owned()];
        check(
            &PolicyInput {
                scope: &scope,
                budget: &budget,
                changes,
                touchpoints,
                protected: &protected,
            },
            &Redactor::new([("DEPLOY_TOKEN".to_owned(), "tok-1234567890".to_owned())]),
        )
    }

    #[test]
    fn denied_paths_are_named_with_their_glob() {
        let result = verdict(
            &[
                change(".github/workflows/ci.yml", "x\n"),
                change("app/.env.local", "A=1\n"),
            ],
            None,
        );
        let rules: Vec<(&str, &str)> = result
            .violations
            .iter()
            .map(|v| (v.path.as_str(), v.detail.as_str()))
            .collect();
        assert_eq!(
            rules,
            vec![
                (".github/workflows/ci.yml", "matches `.github/**`"),
                ("app/.env.local", "matches `**/.env*`")
            ]
        );
    }

    #[test]
    fn secrets_are_found_by_pattern_by_value_and_by_redaction_marker() {
        let token = format!("ghp_{}", "x".repeat(36));
        let result = verdict(
            &[
                change("a.rs", &format!("let t = \"{token}\";\n")),
                change("b.rs", "let t = \"tok-1234567890\";\n"),
                change("c.rs", "let t = \"[REDACTED:github-token]\";\n"),
                change("d.rs", "fine\n"),
            ],
            None,
        );
        let secret_paths: Vec<&str> = result
            .violations
            .iter()
            .filter(|violation| violation.rule == "secret")
            .map(|violation| violation.path.as_str())
            .collect();
        assert_eq!(secret_paths, vec!["a.rs", "b.rs", "c.rs"]);
        assert!(!result.summary().contains(&token));
        assert!(!result.summary().contains("tok-1234567890"));
    }

    #[test]
    fn a_rename_out_of_an_approval_glob_needs_approval() {
        let renamed = FileChange {
            old_path: Some("migrations/001.sql".into()),
            ..change("old/001.sql", "")
        };
        assert_eq!(
            verdict(&[renamed], None).needs_approval,
            vec!["old/001.sql"]
        );
    }

    #[test]
    fn plan_touchpoints_limits_and_approval() {
        let touchpoints = vec!["src/".to_owned(), "tests/slug.rs".to_owned()];
        let many = "line\n".repeat(11);
        let result = verdict(
            &[
                change("src/slug.rs", "x\n"),
                change("tests/slug.rs", "x\n"),
                change("README.md", &many),
                change("migrations/001.sql", "x\n"),
                change("baton.toml", "x\n"),
            ],
            Some(&touchpoints),
        );
        assert_eq!(
            result.outside_plan,
            vec!["README.md", "migrations/001.sql", "baton.toml"]
        );
        assert_eq!(result.needs_approval, vec!["migrations/001.sql"]);
        let rules: Vec<&str> = result.violations.iter().map(|v| v.rule.as_str()).collect();
        assert!(rules.contains(&"budget.max_changed_files"));
        assert!(rules.contains(&"budget.max_diff_lines"));
        assert!(rules.contains(&"protected"));
        assert!(verdict(&[change("src/a.rs", "x\n")], Some(&touchpoints)).is_clean());
    }
}
