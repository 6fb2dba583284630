//! Log output of the `jobmesh` binary: `tracing` events to stderr, as text
//! or as one JSON object per line. Only `main` installs the subscriber;
//! library code only emits events, inside a `node` span (field `node_id`)
//! and, for a link, a `link` span (field `peer`).

use tracing_subscriber::EnvFilter;

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the span fields (node_id, peer).
    Json,
}

/// Install the process's subscriber. The filter comes from `RUST_LOG`
/// (e.g. `RUST_LOG=info,jobmesh_node=debug`), default [`DEFAULT_FILTER`]; an
/// unparsable `RUST_LOG` is reported and the default used.
pub fn init(format: LogFormat) {
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => match EnvFilter::try_new(&s) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some(format!("ignoring RUST_LOG={s:?}: {e}"))),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    // A subscriber installed earlier (e.g. by a test harness) wins.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).try_init(),
    };
    if let Some(bad) = bad {
        tracing::warn!("{bad}");
    }
}
