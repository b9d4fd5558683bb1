//! The development kit of dvc-pulse: realistic, deterministic portal traffic (dossier
//! lifecycles calibrated on the seed reports, with the messiness of real feeds on
//! purpose: duplicates, out-of-order and late versions, corrections, mixed date formats
//! and normal forms, DVCQG records carrying personal data, malformed records), the
//! embedded Kafka-protocol broker, the `demo` and `simulate` commands, and the fixtures
//! tests and benchmarks share. The same seed gives the same bytes on every machine.
//! Production crates never depend on it.
//!
//! Modules: [`rng`] (portable PRNG), [`profile`] (calibration), [`generate`] (traffic),
//! [`truth`] (the ground truth of a window), [`golden`] (events that add up to a given
//! table), [`broker`] (the embedded broker), [`commands`], [`simulate`] and [`demo`],
//! [`fixture`] (test helpers: a broker with gateway and workers, topic readers, oracles).

pub mod broker;
pub mod commands;
pub mod demo;
pub mod fixture;
pub mod generate;
pub mod golden;
pub mod profile;
pub mod rng;
pub mod simulate;
pub mod truth;

pub use broker::EmbeddedBroker;
pub use generate::{Delivery, SimConfig, Simulation, simulate};
pub use truth::{TruthRow, TruthTable, window_truth};
