//! What the tool writes: Teddy result files, skip lists, and the HTML result sheet.
pub mod csv;
pub mod report;

pub(crate) use crate::fsutil::write_atomic;
