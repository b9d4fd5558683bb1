//! Structured logs: text for people, JSON for shippers; on standard error, or in a file
//! when the terminal is busy with something else (the demo's live tally).

use crate::config::LogConfig;
use std::path::Path;
use std::sync::Mutex;
use tracing_subscriber::EnvFilter;

/// Libraries that log every table scan at INFO: warnings only unless `RUST_LOG` says otherwise.
const QUIET: &str = "buoyant_kernel=warn,delta_kernel=warn,deltalake_core=warn,datafusion=warn";

/// Installs the global subscriber once, writing to standard error; later calls are
/// no-ops (tests call it freely).
pub fn init(cfg: &LogConfig) {
    use std::io::IsTerminal;
    install(cfg, std::io::stderr, std::io::stderr().is_terminal());
}

/// Installs the global subscriber writing to `path` (appended to, created if missing)
/// instead of standard error; falls back to standard error when the file cannot be opened.
pub fn init_to_file(cfg: &LogConfig, path: &Path) {
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(file) => install(cfg, Mutex::new(file), false),
        Err(e) => {
            eprintln!(
                "cannot write logs to {}: {e}; logging to stderr",
                path.display()
            );
            init(cfg);
        }
    }
}

/// `ansi`: colours, for a terminal only.
fn install<W>(cfg: &LogConfig, writer: W, ansi: bool)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},{QUIET}", cfg.level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let _ = if cfg.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
