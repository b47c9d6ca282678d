//! How a run tells people what it is doing: a `Reporter` handed to every
//! phase, never a global. The terminal reporter writes lines and a spinner
//! to stderr; a CI reporter (log groups, annotations, step summary) slots in
//! beside it.

pub mod actions;
pub mod terminal;

use crate::records::GateResult;
use crate::run_dir::manifest::{Manifest, PhaseRecord, PhaseStatus};
use crate::types::PhaseName;

pub use actions::Actions;
pub use terminal::Terminal;

/// The reporter for where baton runs: workflow commands on a GitHub or
/// Forgejo Actions runner, else the terminal.
pub fn for_environment() -> Box<dyn Reporter> {
    if actions::on_runner() {
        Box::new(Actions)
    } else {
        Box::new(Terminal)
    }
}

/// Where progress goes. Implementations redact what they write.
pub trait Reporter: Sync {
    /// One line for a person.
    fn line(&self, text: &str);

    fn phase_started(&self, phase: PhaseName, detail: &str);

    fn phase_finished(&self, record: &PhaseRecord);

    /// A phase is working; what it returns is dropped when the work ends
    /// (a spinner stops, a log group closes).
    fn working(&self, label: &str) -> Box<dyn Send>;

    /// One gate's result, as verify and the tests phase's red check see it.
    /// `judged`: verify judges the change by it (a failure is an error).
    fn gate(&self, result: &GateResult, _judged: bool) {
        self.line(&format!(
            "    gate {:<12} {} ({:.1}s)",
            result.name,
            if result.passed { "passed" } else { "FAILED" },
            result.duration_s
        ));
    }

    /// Secret values the reporter's audience must never see (a CI runner
    /// masks them in its logs). The terminal has nothing to do: everything
    /// it prints is redacted already.
    fn protect(&self, _values: &[&str]) {}

    /// The closing table of a run.
    fn summary(&self, manifest: &Manifest) {
        self.line("");
        self.line(&format!(
            "{:<10} {:<30} {:>8} {:>12} {:>10} {:>8}",
            "phase", "model", "attempts", "tokens", "cost", "time"
        ));
        for record in &manifest.phases {
            // An execution that no longer counts, or did not finish, says
            // so: two `spec` rows are a rerun, not a double.
            let status = match record.status {
                PhaseStatus::Done | PhaseStatus::Running => String::new(),
                other => format!("  ({})", other.as_str()),
            };
            self.line(&format!(
                "{:<10} {:<30} {:>8} {:>12} {:>10} {:>7.1}s{status}",
                record.name.as_str(),
                record.model.as_deref().unwrap_or("-"),
                record.attempts,
                thousands(record.tokens_in + record.tokens_out),
                format!("${:.4}", record.cost_usd),
                record.wall_s
            ));
        }
        let spent = manifest.spent();
        self.line(&format!(
            "{:<10} {:<30} {:>8} {:>12} {:>10} {:>7.1}s",
            "total",
            "",
            "",
            thousands(spent.tokens()),
            format!("${:.4}", spent.cost_usd),
            spent.wall_s
        ));
    }
}

pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// A reporter whose lines are data on stdout (`baton status`): a reader
/// that closes the pipe early (`| head`) is not an error.
pub struct Stdout;

impl Reporter for Stdout {
    fn line(&self, text: &str) {
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }

    fn phase_started(&self, _phase: PhaseName, _detail: &str) {}

    fn phase_finished(&self, _record: &PhaseRecord) {}

    fn working(&self, _label: &str) -> Box<dyn Send> {
        Box::new(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_separators() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(1234), "1,234");
        assert_eq!(super::thousands(1_234_567), "1,234,567");
    }
}
