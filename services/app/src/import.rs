//! `dvc-pulse import FILE`: bulk import with a progress bar and a summary.

use crate::config::Config;
use crate::error::AppError;
use dvc_pulse_ingest::KafkaSink;
use dvc_pulse_ingest::import::{ImportOptions, ImportSummary, import_file};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;

/// Imports `path`; on a Kafka failure the error says where to resume.
pub async fn run(
    cfg: &Config,
    path: &Path,
    options: &ImportOptions,
    show_progress: bool,
) -> Result<ImportSummary, AppError> {
    let validator = crate::gateway::validator(cfg)?;
    let sink = KafkaSink::new(cfg.kafka.clone(), cfg.topics.clone())?;
    let bar = if show_progress {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template"),
    );
    let result = import_file(
        path,
        &validator,
        &sink,
        options,
        chrono::Utc::now,
        |read, total| {
            bar.set_length(total);
            bar.set_position(read);
        },
    )
    .await;
    bar.finish_and_clear();
    result.map_err(|(summary, e)| {
        let resume = summary.committed_through.map(|i| i + 1).unwrap_or(options.skip_before);
        AppError::Interrupted(format!(
            "import stopped after committing {} records ({e}); nothing after index {} is visible. Resume with --skip-before {resume}",
            summary.accepted + summary.rejected.values().sum::<usize>(),
            resume.saturating_sub(1)
        ))
    })
}
