//! SIGINT and SIGTERM (what Ctrl-C and a CI cancel send). The first stops
//! the running phase: its model request is dropped, its commands' process
//! groups are killed, its work trees removed, and it is recorded as
//! interrupted. A second signal, a second or more after the first, exits at
//! once with 130. Copies of the first that arrive together with it are one
//! event: `timeout` and a terminal signal both the process and its process
//! group, so the same cancel is delivered twice.

use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The exit code of a process ended by SIGINT (128 + 2), used for both.
pub const EXIT_CODE: u8 = 130;

/// Signals this soon after the first are copies of it, not a second one.
const SAME_EVENT: Duration = Duration::from_secs(1);

pub struct Interrupts {
    interrupt: Signal,
    terminate: Signal,
}

impl Interrupts {
    /// Listens for both signals; a second one (not a copy of the first)
    /// exits the process at once. Call inside the runtime, once per process.
    pub fn install() -> anyhow::Result<Self> {
        let interrupts = Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        };
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut first: Option<Instant> = None;
                for _ in signals.forever() {
                    match first {
                        None => first = Some(Instant::now()),
                        Some(at) if at.elapsed() >= SAME_EVENT => {
                            std::process::exit(i32::from(EXIT_CODE));
                        }
                        Some(_) => {}
                    }
                }
            })?;
        Ok(interrupts)
    }

    /// Waits for the first signal; its name.
    pub async fn received(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}
