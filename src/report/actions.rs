//! The reporter on a GitHub Actions or Forgejo Actions runner: each phase in
//! a log group, an `::error` annotation for a gate that failed verify (with
//! the file and line its log names), and `::add-mask::` for every secret
//! baton holds. Workflow commands go to stderr, which both runners read;
//! stdout stays for data.

use std::io::Write as _;
use std::sync::LazyLock;

use regex::Regex;

use super::{Reporter, thousands};
use crate::records::GateResult;
use crate::run_dir::manifest::{PhaseRecord, PhaseStatus};
use crate::settings::env;
use crate::types::PhaseName;

#[derive(Debug, Default, Clone, Copy)]
pub struct Actions;

/// Whether baton runs on an Actions runner (GitHub's, or Forgejo's, which
/// sets the same variable and `FORGEJO_ACTIONS`).
pub fn on_runner() -> bool {
    [env::GITHUB_ACTIONS, env::FORGEJO_ACTIONS]
        .iter()
        .any(|name| env::get(name).is_some_and(|value| value == "true"))
}

fn emit(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{}", crate::secrets::redact(text));
}

impl Reporter for Actions {
    fn line(&self, text: &str) {
        emit(text);
    }

    fn phase_started(&self, phase: PhaseName, detail: &str) {
        emit(&format!("::group::baton {phase} {}", escape_data(detail)));
    }

    fn phase_finished(&self, record: &PhaseRecord) {
        emit("::endgroup::");
        emit(&finished_line(record));
    }

    fn working(&self, _label: &str) -> Box<dyn Send> {
        Box::new(())
    }

    fn gate(&self, result: &GateResult, judged: bool) {
        emit(&format!(
            "    gate {:<12} {} ({:.1}s)",
            result.name,
            if result.passed { "passed" } else { "FAILED" },
            result.duration_s
        ));
        if judged && !result.passed {
            emit(&annotation(result));
        }
    }

    fn protect(&self, values: &[&str]) {
        // Printed as commands, which the runner consumes and never shows.
        let mut stderr = std::io::stderr().lock();
        for value in values.iter().filter(|value| !value.trim().is_empty()) {
            for line in value.lines().filter(|line| !line.trim().is_empty()) {
                let _ = writeln!(stderr, "::add-mask::{line}");
            }
        }
    }
}

/// One line per finished phase, outside its group so it is seen folded.
fn finished_line(record: &PhaseRecord) -> String {
    let mark = match record.status {
        PhaseStatus::Done if record.passed == Some(false) => "✘",
        PhaseStatus::Done => "✔",
        PhaseStatus::Interrupted => "■",
        _ => "✘",
    };
    let mut parts = vec![format!("{:.1}s", record.wall_s)];
    if record.tokens_in + record.tokens_out > 0 {
        parts.push(format!(
            "{} tokens · ${:.4}",
            thousands(record.tokens_in + record.tokens_out),
            record.cost_usd
        ));
    }
    if let Some(note) = &record.note {
        parts.push(note.clone());
    }
    format!("{mark} {:<9} {}", record.name.as_str(), parts.join(" · "))
}

/// `path/to/file.ext:LINE[:COL]` in a log line, rustc's `--> path:line:col`
/// included; absolute paths and URLs are not the repository's files.
static LOCATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s(>])((?:[\w.-]+/)*[\w.-]+\.[A-Za-z0-9]+):(\d+)(?::(\d+))?")
        .unwrap_or_else(|_| Regex::new("$^").unwrap_or_else(|_| unreachable!()))
});

/// An `::error` for a failed gate: the first line of its log tail that names
/// a file and line (preferring one that says "error"), else the gate itself.
fn annotation(result: &GateResult) -> String {
    let title = format!("gate {} failed", result.name);
    let lines: Vec<&str> = result.log_tail.lines().collect();
    let located = lines.iter().enumerate().find_map(|(index, line)| {
        let captures = LOCATION.captures(line)?;
        let file = captures.get(1)?.as_str().trim_start_matches("./");
        Some((index, file, captures.get(2)?.as_str()))
    });
    match located {
        Some((index, file, number)) => {
            // The message is the error the location belongs to: rustc puts
            // it on the line before `--> file:line`.
            let message = lines[index.saturating_sub(3)..=index]
                .iter()
                .rev()
                .find(|line| line.to_ascii_lowercase().contains("error"))
                .unwrap_or(&lines[index]);
            format!(
                "::error file={},line={number},title={}::{}",
                escape_property(file),
                escape_property(&title),
                escape_data(message.trim())
            )
        }
        None => format!(
            "::error title={}::{}",
            escape_property(&title),
            escape_data(&format!(
                "`{}` exited {}",
                result.command,
                result.exit_code.map_or_else(
                    || "without a code (timed out or killed)".to_owned(),
                    |code| code.to_string()
                )
            ))
        ),
    }
}

/// Workflow command data: `%`, CR and LF escaped.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Workflow command properties: data escapes plus `:` and `,`.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(log_tail: &str) -> GateResult {
        GateResult {
            name: "test".into(),
            command: "cargo test".into(),
            required: true,
            passed: false,
            exit_code: Some(101),
            timed_out: false,
            duration_s: 1.0,
            log_tail: log_tail.into(),
        }
    }

    #[test]
    fn a_failed_gate_is_annotated_at_the_file_and_line_its_log_names() {
        let rustc = failed(
            "   Compiling textkit v0.1.0\nerror[E0425]: cannot find value `x` in this scope\n  --> src/lib.rs:12:5\n   |\n",
        );
        assert_eq!(
            annotation(&rustc),
            "::error file=src/lib.rs,line=12,title=gate test failed::error[E0425]: cannot find value `x` in this scope"
        );
        let panic = failed("thread 'slug' panicked at tests/slug.rs:7:9:\nassertion failed");
        assert!(annotation(&panic).starts_with("::error file=tests/slug.rs,line=7,"));
        let plain = failed("greet said: hello");
        assert_eq!(
            annotation(&plain),
            "::error title=gate test failed::`cargo test` exited 101"
        );
    }

    #[test]
    fn command_text_is_escaped() {
        assert_eq!(escape_data("50%\nnext"), "50%25%0Anext");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
    }
}
