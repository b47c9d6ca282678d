//! SIGINT and SIGTERM (what Ctrl-C and a CI cancel send). The first stops
//! the running phase: its model request is dropped, its commands' process
//! groups are killed, its work trees removed, and it is recorded as
//! interrupted. A second signal exits at once with 130.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The exit code of a process ended by SIGINT (128 + 2), used for both.
pub const EXIT_CODE: u8 = 130;

pub struct Interrupts {
    interrupt: Signal,
    terminate: Signal,
}

impl Interrupts {
    /// Listens for both signals; from the second one on, the process exits
    /// at once. Call inside the runtime, once per process.
    pub fn install() -> anyhow::Result<Self> {
        let received = Arc::new(AtomicBool::new(false));
        for number in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Registered before tokio's handler and the flag: on the first
            // signal the flag is still false, so only the phase stops.
            signal_hook::flag::register_conditional_shutdown(
                number,
                i32::from(EXIT_CODE),
                Arc::clone(&received),
            )?;
        }
        let interrupts = Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        };
        for number in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(number, Arc::clone(&received))?;
        }
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
