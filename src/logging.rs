//! Logging through `tracing` to stderr: `BATON_LOG` filters, `BATON_LOG_FORMAT`
//! picks `text` or `json`, `NO_COLOR` is respected, and every line passes the
//! redaction function. Without `BATON_LOG`, a warning is one `! …` line in
//! the style of the progress around it, not a timestamped record.

use std::io::{self, Write};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

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

/// A message as a person reads it beside baton's progress lines:
/// `! text` for a warning, `error: text` for an error.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let prefix = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "! ",
            _ => "  ",
        };
        write!(writer, "{prefix}")?;
        context
            .field_format()
            .format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

pub fn init() {
    let asked = env::get(env::BATON_LOG);
    // Unasked, only baton's own warnings: a library's error record for a
    // request baton retries (octocrab's "failed with status 500") would
    // read as baton failing.
    let filter = EnvFilter::try_new(asked.clone().unwrap_or_else(|| "baton=warn".into()))
        .unwrap_or_else(|_| EnvFilter::new("baton=warn"));
    let json = env::get(env::BATON_LOG_FORMAT).is_some_and(|format| format == "json");
    let color =
        env::get(env::NO_COLOR).is_none() && std::io::IsTerminal::is_terminal(&io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(MakeRedactingStderr)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else if asked.is_none() {
        builder.event_format(Plain).try_init()
    } else {
        builder.with_ansi(color).try_init()
    };
}
