//! Blocked top-k: similarities are computed a block of queries at a time (one block × gallery
//! matrix in memory), and each row keeps only its k best, so 5,000 × 50,000 runs in bounded memory.
use ndarray::{s, ArrayView2, Axis};
use rayon::prelude::*;

/// Queries per block: 512 × 50,000 f32 scores = 100 MB.
pub const BLOCK: usize = 512;

/// Order used everywhere: higher score first, then lower gallery index (ties are deterministic).
#[inline]
pub fn better(a: (usize, f32), b: (usize, f32)) -> bool {
    a.1 > b.1 || (a.1 == b.1 && a.0 < b.0)
}

/// The `k` best gallery rows for every query row (rows are expected L2-normalised: the dot
/// product is the cosine). Returns (gallery index, score), best first.
pub fn top_k(
    queries: ArrayView2<f32>,
    gallery: ArrayView2<f32>,
    k: usize,
) -> Vec<Vec<(usize, f32)>> {
    let k = k.min(gallery.nrows());
    let mut out = Vec::with_capacity(queries.nrows());
    for start in (0..queries.nrows()).step_by(BLOCK) {
        let end = (start + BLOCK).min(queries.nrows());
        let scores = queries.slice(s![start..end, ..]).dot(&gallery.t());
        let block: Vec<Vec<(usize, f32)>> = scores
            .axis_iter(Axis(0))
            .into_par_iter()
            .map(|row| select_k(row.as_slice().expect("row-major scores"), k))
            .collect();
        out.extend(block);
    }
    out
}

/// Partial selection of the k best of one row (k is small: a sorted insertion buffer).
pub fn select_k(row: &[f32], k: usize) -> Vec<(usize, f32)> {
    if k == 0 {
        return Vec::new();
    }
    super::score::select_pairs(row.iter().copied().enumerate(), k)
}
