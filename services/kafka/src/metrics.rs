//! Metrics every dvc-pulse service exports.

use prometheus::Opts;

/// `dvc_pulse_build_info{version}` = 1, for any registry.
pub fn build_info() -> prometheus::IntGaugeVec {
    let g = prometheus::IntGaugeVec::new(
        Opts::new(
            "dvc_pulse_build_info",
            "1, labelled with the dvc-pulse version.",
        ),
        &["version"],
    )
    .expect("valid metric");
    g.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    g
}
