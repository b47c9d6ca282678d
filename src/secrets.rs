//! Secrets are types, and every text leaving baton passes one redaction function.
//!
//! The same rule set serves two purposes: `Redactor::redact` scrubs transcripts,
//! logs, patches and evidence, and `Redactor::scan` is the policy's secret scan
//! of a patch. Known values (the tokens and keys baton holds from its
//! environment) are matched literally; common token shapes by pattern.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use regex::Regex;

/// A token or key. It never prints: `Debug` and `Display` show a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send it (an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("[redacted]")
    }
}

/// Token shapes worth refusing in a patch and hiding in any output.
/// Names are what evidence shows; the matched text never is.
const PATTERNS: &[(&str, &str)] = &[
    (
        "private-key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?s:.*?)(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\z)",
    ),
    ("aws-access-key-id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("github-token", r"\bgh[pousr]_[A-Za-z0-9]{36,}"),
    (
        "github-fine-grained-token",
        r"\bgithub_pat_[A-Za-z0-9_]{40,}",
    ),
    ("anthropic-api-key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}"),
    (
        "openai-api-key",
        r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{32,}",
    ),
    ("slack-token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    ("google-api-key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("stripe-live-key", r"\b[sr]k_live_[0-9A-Za-z]{20,}"),
    ("gitlab-token", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
    ("npm-token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    (
        "json-web-token",
        r"\beyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",
    ),
];

/// Values shorter than this are not treated as secrets: redacting `true` or
/// `1` everywhere would destroy the text and protect nothing.
const MIN_SECRET_VALUE_LEN: usize = 8;

/// Whether an environment variable's name says it holds a credential.
/// Used both to collect values to redact and to scrub child environments.
pub fn is_secret_name(name: &str) -> bool {
    const MARKERS: &[&str] = &[
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "ACCESS_KEY",
        "AUTH",
        "COOKIE",
        "SESSION",
    ];
    let upper = name.to_ascii_uppercase();
    MARKERS.iter().any(|marker| upper.contains(marker)) || upper.ends_with("_KEY") || upper == "KEY"
}

/// One secret found by the scan: which rule, on which line of the scanned text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: String,
    pub line: usize,
}

pub struct Redactor {
    patterns: Vec<(String, Regex)>,
    /// (environment variable name, value), longest value first so a value that
    /// contains another is replaced whole.
    values: Vec<(String, String)>,
}

impl Redactor {
    /// A redactor for the given named values plus the built-in token patterns.
    pub fn new(values: impl IntoIterator<Item = (String, String)>) -> Self {
        let patterns = PATTERNS
            .iter()
            .filter_map(|(name, pattern)| Some(((*name).to_owned(), Regex::new(pattern).ok()?)))
            .collect();
        let mut values: Vec<(String, String)> = values
            .into_iter()
            .filter(|(_, value)| value.trim().len() >= MIN_SECRET_VALUE_LEN)
            .collect();
        values.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
        values.dedup_by(|a, b| a.1 == b.1);
        Self { patterns, values }
    }

    /// Every secret-named variable of the process environment.
    pub fn from_environment() -> Self {
        Self::new(std::env::vars().filter(|(name, _)| is_secret_name(name)))
    }

    /// Adds values held under names that do not look secret (e.g. a provider's
    /// `api_key_env = "MY_LLM"`).
    #[must_use]
    pub fn with_values(mut self, values: impl IntoIterator<Item = (String, String)>) -> Self {
        let extra: Vec<_> = values.into_iter().collect();
        let merged = self.values.drain(..).chain(extra);
        let rebuilt = Self::new(merged);
        self.values = rebuilt.values;
        self
    }

    /// The secret values held (for a CI runner's `::add-mask::`).
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(|(_, value)| value.as_str())
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut output = self.redact_values(text);
        for (name, pattern) in &self.patterns {
            if pattern.is_match(&output) {
                let replaced = pattern
                    .replace_all(&output, format!("[REDACTED:{name}]").as_str())
                    .into_owned();
                output = Cow::Owned(replaced);
            }
        }
        output
    }

    /// Known values only, no patterns (for text copied from the repository,
    /// where token-shaped test fixtures are data, not leaks).
    pub fn redact_values<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut output = Cow::Borrowed(text);
        for (name, value) in &self.values {
            if output.contains(value.as_str()) {
                output = Cow::Owned(output.replace(value.as_str(), &format!("[REDACTED:{name}]")));
            }
        }
        output
    }

    /// A patch: added lines fully redacted, context and removed lines (the
    /// repository's own text) for known values only, so the patch still
    /// applies to the base commit.
    pub fn redact_patch(&self, patch: &str) -> String {
        let mut output = String::with_capacity(patch.len());
        for line in patch.split_inclusive('\n') {
            if line.starts_with('+') && !line.starts_with("+++ ") {
                output.push_str(&self.redact(line));
            } else {
                output.push_str(&self.redact_values(line));
            }
        }
        output
    }

    /// Finds secrets in `text`, one finding per rule and line.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
        let mut findings = Vec::new();
        for (name, value) in &self.values {
            for (offset, _) in text.match_indices(value.as_str()) {
                findings.push(Finding {
                    rule: format!("value of ${name}"),
                    line: line_of(offset),
                });
            }
        }
        for (name, pattern) in &self.patterns {
            for found in pattern.find_iter(text) {
                findings.push(Finding {
                    rule: name.clone(),
                    line: line_of(found.start()),
                });
            }
        }
        findings.sort_by(|a, b| a.line.cmp(&b.line).then_with(|| a.rule.cmp(&b.rule)));
        findings.dedup();
        findings
    }

    pub fn known_values(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(|(_, value)| value.as_str())
    }
}

static GLOBAL: RwLock<Option<Arc<Redactor>>> = RwLock::new(None);

/// Installs the process-wide redactor, once the config has named any extra
/// key variables. It replaces the environment-only one used before that.
pub fn install(redactor: Redactor) {
    *GLOBAL.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(redactor));
}

/// The process-wide redactor; built from the environment if none was installed.
pub fn global() -> Arc<Redactor> {
    if let Some(redactor) = GLOBAL
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        return Arc::clone(redactor);
    }
    let redactor = Arc::new(Redactor::from_environment());
    *GLOBAL.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&redactor));
    redactor
}

/// The one redaction function every outgoing text passes.
pub fn redact(text: &str) -> Cow<'_, str> {
    match global().redact(text) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(owned) => Cow::Owned(owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_github_token() -> String {
        format!("ghp_{}", "a1B2".repeat(9))
    }

    #[test]
    fn redacts_known_values_and_patterns() {
        let redactor = Redactor::new([("MY_TOKEN".to_owned(), "hunter2-very-secret".to_owned())]);
        let text = format!("key=hunter2-very-secret and {} end", fake_github_token());
        let redacted = redactor.redact(&text);
        assert_eq!(
            redacted,
            "key=[REDACTED:MY_TOKEN] and [REDACTED:github-token] end"
        );
    }

    #[test]
    fn patches_keep_repository_fixtures_but_not_added_secrets() {
        let redactor = Redactor::new([("CI_TOKEN".to_owned(), "live-token-value-123".to_owned())]);
        let fixture = fake_github_token();
        let patch = format!(
            " const FIXTURE = \"{fixture}\";\n-old live-token-value-123\n+let t = \"{fixture}\";\n"
        );
        let redacted = redactor.redact_patch(&patch);
        assert!(redacted.starts_with(&format!(" const FIXTURE = \"{fixture}\";")));
        assert!(redacted.contains("-old [REDACTED:CI_TOKEN]"));
        assert!(redacted.ends_with("+let t = \"[REDACTED:github-token]\";\n"));
    }

    #[test]
    fn short_values_are_not_secrets() {
        let redactor = Redactor::new([("CI_TOKEN".to_owned(), "true".to_owned())]);
        assert_eq!(redactor.redact("true story"), "true story");
    }

    #[test]
    fn scan_reports_rule_and_line_not_value() {
        let redactor = Redactor::new([]);
        let text = format!("first\n+let key = \"{}\";\n", fake_github_token());
        let findings = redactor.scan(&text);
        assert_eq!(
            findings,
            vec![Finding {
                rule: "github-token".into(),
                line: 2
            }]
        );
    }

    #[test]
    fn private_key_blocks_are_redacted_whole() {
        let redactor = Redactor::new([]);
        let text = "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\nb";
        assert_eq!(redactor.redact(text), "a\n[REDACTED:private-key]\nb");
    }

    #[test]
    fn secret_names() {
        for name in [
            "GITHUB_TOKEN",
            "ANTHROPIC_API_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "DB_PASSWORD",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["PATH", "HOME", "CARGO_HOME", "KEYBOARD_LAYOUT", "RUST_LOG"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let secret = Secret::new("s3cr3t-value");
        assert_eq!(
            format!("{secret} {secret:?}"),
            "[redacted] Secret([redacted])"
        );
    }
}
