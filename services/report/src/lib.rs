//! Reports of a window: layouts (the machine table, the annex tables of the Vietnamese
//! reports) in [`layout`], and the writers every output goes through in [`render`]
//! (JSON, CSV, XLSX, Parquet). The window core knows nothing of them.

mod error;
pub mod layout;
mod parquet;
pub mod render;
mod xlsx;

pub use error::ReportError;
pub use layout::{Header, Layout, Report, vi_rate};
pub use parquet::to_parquet;
pub use render::{Format, Rendered, ReportOptions, render};
pub use xlsx::to_xlsx;
