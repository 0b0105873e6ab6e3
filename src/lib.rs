//! tuwen (图文): Chinese image-text retrieval for the 2024 Teddy Cup problem B.
//!
//! Data flow: [`data`] (pairs and Teddy files) → [`features`] (CNN image vectors through libtorch,
//! jieba + word2vec caption vectors) → [`projection`] (PCA, CCA into a shared space) →
//! [`retrieval`] (one scorer: cosine or hubness-corrected top-k, recall) → [`outputs`] (result
//! CSVs, reports, embedding files). [`embed`] is a fitted model ready to use; [`jobs`] strings the
//! steps together, one job per command; [`kernel`] is the one float path of every score.

// Links Debian's OpenBLAS for ndarray-linalg's LAPACK calls.
extern crate openblas_src;

pub mod assets;
pub mod blas;
pub mod data;
pub mod embed;
pub mod error;
pub mod explain;
pub mod features;
pub mod fsutil;
pub mod jobs;
pub mod kernel;
pub mod model;
pub mod outputs;
pub mod projection;
pub mod retrieval;
pub mod serve;
pub mod sparse;

pub use error::{Error, Result};
