//! The dossier event contract of dvc-pulse: the canonical event, its stable rejection
//! reasons, normalisation of messy portal input, the DVCQG adapter and reference data.
//!
//! Pure: no I/O beyond parsing bytes handed in, and the clock is always an argument.
//! Modules: [`auth`] (bearer tokens), [`event`] (types and versions), [`reason`] (reason codes), [`normalize`]
//! (dates, text, codes), [`parse`] (body splitting and record parsing), [`dvcqg`]
//! (national-portal records), [`reference`] (services, localities, agencies), [`settings`]
//! (configuration value types: durations, secrets).

pub mod auth;
pub mod dvcqg;
pub mod error;
pub mod event;
pub mod normalize;
pub mod parse;
pub mod reason;
pub mod reference;
pub mod settings;

pub use error::ModelError;
pub use event::{Channel, DossierEvent, Status};
pub use parse::{Parsed, Validator, ValidatorConfig};
pub use reason::{Reason, Rejection};
pub use reference::Reference;
