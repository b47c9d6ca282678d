//! Logging through `tracing` to stderr: `BATON_LOG` filters, `BATON_LOG_FORMAT`
//! picks `text` or `json`, `NO_COLOR` is respected, and every line passes the
//! redaction function.

use std::io::{self, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::settings::env;

struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buffer);
        io::stderr()
            .lock()
            .write_all(crate::secrets::redact(&text).as_bytes())?;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

struct MakeRedactingStderr;

impl<'a> MakeWriter<'a> for MakeRedactingStderr {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr
    }
}

pub fn init() {
    let filter = EnvFilter::try_new(env::get(env::BATON_LOG).unwrap_or_else(|| "warn".into()))
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    let json = env::get(env::BATON_LOG_FORMAT).is_some_and(|format| format == "json");
    let color =
        env::get(env::NO_COLOR).is_none() && std::io::IsTerminal::is_terminal(&io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(MakeRedactingStderr)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.with_ansi(color).try_init()
    };
}
