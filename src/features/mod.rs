//! Feature extraction for both modalities.
pub mod image;
pub mod text;
