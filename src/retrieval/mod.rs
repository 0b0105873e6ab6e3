//! Ranking by cosine similarity, and recall metrics.
pub mod metrics;
pub mod rank;
