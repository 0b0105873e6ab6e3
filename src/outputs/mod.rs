//! What the tool writes: Teddy result files, skip lists, the HTML result sheet, and embedding
//! exports (Parquet / NPY).
pub mod csv;
pub mod export;
pub mod report;

pub(crate) use crate::fsutil::write_atomic;
