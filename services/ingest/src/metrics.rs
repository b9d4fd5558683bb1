//! The gateway's counters, in Prometheus naming: `dvc_pulse_ingest_*`.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// Label key for a rejection reason code.
pub const LABEL_REASON: &str = "reason";

/// Every counter the gateway exports on `/metrics`.
#[derive(Clone)]
pub struct IngestMetrics {
    /// The registry they live in.
    pub registry: Registry,
    /// Records committed to the events topic.
    pub accepted: IntCounter,
    /// Records committed to the dead-letter topic, by reason code.
    pub rejected: IntCounterVec,
    /// Requests answered 503 because the broker did not commit (nothing was accepted).
    pub unavailable: IntCounter,
    /// Requests refused for a missing or wrong token.
    pub unauthorized: IntCounter,
}

impl IngestMetrics {
    /// Registers every counter in a fresh registry, with `dvc_pulse_build_info`.
    pub fn new() -> Self {
        let registry = Registry::new();
        let o = |name: &str, help: &str| {
            Opts::new(name, help)
                .namespace("dvc_pulse")
                .subsystem("ingest")
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::with_opts(o(name, help)).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let rejected = IntCounterVec::new(
            o(
                "rejected_records_total",
                "Records rejected to the dead-letter topic, by reason.",
            ),
            &[LABEL_REASON],
        )
        .expect("valid metric");
        registry
            .register(Box::new(rejected.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(build_info()))
            .expect("unique metric");
        IngestMetrics {
            accepted: counter(
                "accepted_records_total",
                "Records committed to the events topic.",
            ),
            rejected,
            unavailable: counter(
                "unavailable_requests_total",
                "Requests answered 503: the broker did not commit, nothing was accepted.",
            ),
            unauthorized: counter(
                "unauthorized_requests_total",
                "Requests refused for a missing or wrong token.",
            ),
            registry,
        }
    }

    /// The text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        out
    }
}

impl Default for IngestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

pub use dvc_pulse_kafka::metrics::build_info;
