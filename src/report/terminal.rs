//! The terminal reporter: what a person watching a run sees on stderr — one
//! line as each phase starts and ends, a spinner while it works (only on a
//! terminal), and a closing table. Everything passes the redaction function
//! on its way out.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Reporter, thousands};
use crate::run_dir::manifest::{PhaseRecord, PhaseStatus};
use crate::settings::env;
use crate::types::PhaseName;

/// Writes to stderr, in colour on a terminal unless `NO_COLOR` is set.
#[derive(Debug, Default, Clone, Copy)]
pub struct Terminal;

impl Reporter for Terminal {
    fn line(&self, text: &str) {
        line(text);
    }

    fn phase_started(&self, phase: PhaseName, detail: &str) {
        line(&format!(
            "{} {:<9} {detail}",
            colored("36", "▶"),
            phase.as_str()
        ));
    }

    fn phase_finished(&self, record: &PhaseRecord) {
        phase_finished(record);
    }

    fn working(&self, label: &str) -> Box<dyn Send> {
        Box::new(Spinner::start(label))
    }
}

fn line(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{}", crate::secrets::redact(text));
}

fn colored(code: &str, text: &str) -> String {
    if std::io::stderr().is_terminal() && env::get(env::NO_COLOR).is_none() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

fn phase_finished(record: &PhaseRecord) {
    let mark = match record.status {
        PhaseStatus::Done if record.passed == Some(false) => colored("33", "✘"),
        PhaseStatus::Done => colored("32", "✔"),
        PhaseStatus::Interrupted => colored("33", "■"),
        _ => colored("31", "✘"),
    };
    let mut parts = Vec::new();
    if let Some(model) = &record.model {
        parts.push(model.clone());
    }
    if record.attempts > 0 {
        parts.push(format!(
            "attempt{} {}",
            if record.attempts == 1 { "" } else { "s" },
            record.attempts
        ));
    }
    if record.tokens_in + record.tokens_out > 0 {
        parts.push(format!(
            "{} tokens",
            thousands(record.tokens_in + record.tokens_out)
        ));
        parts.push(format!("${:.4}", record.cost_usd));
    }
    parts.push(format!("{:.1}s", record.wall_s));
    if let Some(note) = &record.note {
        parts.push(note.clone());
    }
    line(&format!(
        "{mark} {:<9} {}",
        record.name.as_str(),
        parts.join(" · ")
    ));
}

/// A spinner on stderr while a phase works; nothing when stderr is not a terminal.
struct Spinner {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Spinner {
    fn start(label: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Self { stop, handle: None };
        }
        let flag = Arc::clone(&stop);
        let label = label.to_owned();
        let handle = std::thread::spawn(move || {
            const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
            let started = Instant::now();
            let mut frame = 0;
            while !flag.load(Ordering::Relaxed) {
                let _ = write!(
                    std::io::stderr(),
                    "\r{} {label} {:.0}s\x1b[K",
                    FRAMES[frame % FRAMES.len()],
                    started.elapsed().as_secs_f64()
                );
                frame += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
