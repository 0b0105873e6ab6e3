//! Blocked top-5 (tuwen::retrieval::rank::top_k) timed on its own.
//!   cargo run --release --example bench_rank [-- QUERIES GALLERY DIM]   random unit vectors
//!   cargo run --release --example bench_rank -- --input X.safetensors --out TOP.safetensors
//!       (`queries`, `gallery` from the file — the inputs experiments/bench/bench.py gives every
//!       contender; the top-5 indices are written for the side-by-side check)
//! Prints one JSON line: seconds, GFLOP/s of the score products, peak resident memory (VmHWM) and
//! the peak before ranking (inputs loaded).
#[path = "common.rs"]
mod common;
use ndarray::Array2;
use rand::{rngs::StdRng, Rng, SeedableRng};

fn main() {
    tuwen::blas::reexec_with_fast_kernels();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| common::opt(&args, name);
    let (q, g) = if let Some(input) = opt("--input") {
        let mut m = common::read_matrices(std::path::Path::new(&input));
        (
            m.remove("queries").expect("`queries` tensor"),
            m.remove("gallery").expect("`gallery` tensor"),
        )
    } else {
        let a: Vec<usize> = args.iter().filter_map(|x| x.parse().ok()).collect();
        let (nq, ng, d) = (
            *a.first().unwrap_or(&5000),
            *a.get(1).unwrap_or(&50_000),
            *a.get(2).unwrap_or(&256),
        );
        let mut rng = StdRng::seed_from_u64(1);
        let mut rand = |n: usize| {
            tuwen::projection::normalize_rows(Array2::from_shape_fn((n, d), |_| {
                rng.gen::<f32>() - 0.5
            }))
        };
        (rand(nq), rand(ng))
    };
    let (nq, ng, d) = (q.nrows(), g.nrows(), q.ncols());
    let before = common::peak_rss_mib();
    let t = std::time::Instant::now();
    let top = tuwen::retrieval::score::rank_sets(
        q.view(),
        g.view(),
        5,
        tuwen::retrieval::score::Scoring::Cosine,
    )
    .expect("valid scoring")
    .0;
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(top.len(), nq);
    if let Some(out) = opt("--out") {
        let idx = Array2::from_shape_fn((nq, 5), |(i, j)| top[i][j].0 as f32);
        common::write_matrices(std::path::Path::new(&out), &[("top", idx.view())]);
    }
    println!(
        "{{\"method\": \"tuwen\", \"queries\": {nq}, \"gallery\": {ng}, \"dim\": {d}, \"seconds\": {secs:.3}, \
         \"gflops\": {:.1}, \"peak_mib\": {:.0}, \"inputs_mib\": {before:.0}, \"blas\": \"{}\"}}",
        2.0 * (nq * ng * d) as f64 / secs / 1e9,
        common::peak_rss_mib(),
        tuwen::blas::core_name()
    );
}
