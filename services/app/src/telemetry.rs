//! Structured logs on stderr: text for people, JSON for shippers.

use crate::config::LogConfig;
use tracing_subscriber::EnvFilter;

/// Libraries that log every table scan at INFO: warnings only unless `RUST_LOG` says otherwise.
const QUIET: &str = "buoyant_kernel=warn,delta_kernel=warn,deltalake_core=warn,datafusion=warn";

/// Installs the global subscriber once; later calls are no-ops (tests call it freely).
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},{QUIET}", cfg.level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if cfg.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
