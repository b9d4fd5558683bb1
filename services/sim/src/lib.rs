//! Realistic, deterministic portal traffic for dvc-pulse: dossier lifecycles with
//! per-service volumes and online rates calibrated on the seed reports, and the messiness
//! of real feeds on purpose (duplicates, out-of-order and late versions, corrections,
//! mixed date formats and normal forms, DVCQG records carrying personal data, malformed
//! records). The same seed gives the same bytes on every machine.
//!
//! Modules: [`rng`] (portable PRNG), [`profile`] (calibration), [`generate`] (traffic),
//! [`truth`] (the ground truth of a window), [`golden`] (events that add up to a given table).

pub mod generate;
pub mod golden;
pub mod profile;
pub mod rng;
pub mod truth;

pub use generate::{Delivery, SimConfig, Simulation, simulate};
pub use truth::{TruthRow, TruthTable, window_truth};
