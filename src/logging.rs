//! Where the `switchyard` command's log goes and how it looks: the one
//! place that sets up the tracing subscriber.

use std::io::IsTerminal;

use switchyard::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Sends log events to stderr, filtered by `SWITCHYARD_LOG` (`info` when
/// unset or not a valid filter): text for people, coloured only when stderr
/// is a terminal, or one JSON object a line for log pipelines
/// (`{"timestamp":…,"level":…,"message":…,<fields>…,"target":…}`).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("SWITCHYARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

/// Reports an error that ends the command: as an error event in the JSON
/// log (so every line of stderr stays JSON), else as an `error:` line.
pub fn fatal(format: LogFormat, message: &str) {
    match format {
        LogFormat::Json => tracing::error!("{message}"),
        LogFormat::Text => eprintln!("error: {message}"),
    }
}
