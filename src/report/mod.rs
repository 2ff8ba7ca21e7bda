//! What a run produces, computed from its recorded run directory only:
//! summary.json, junit.xml (and, to come, report.html).

pub mod charts;
pub mod html;
pub mod junit;
pub mod summary;

pub use summary::{FaultSummary, LoadGenerator, Orders, RunInfo, ScaleOut, Summary, summarize};
