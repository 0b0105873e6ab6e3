//! Ranking by cosine similarity (optionally hubness-corrected), and recall metrics.
pub mod metrics;
pub mod rank;
pub mod score;
