//! Blocked top-5 at the Teddy full scale: 5,000 queries × 50,000 gallery items of random unit
//! vectors (dimension = the default 256 CCA components). Prints wall time and peak resident memory
//! (VmHWM). `cargo run --release --example bench_rank [-- QUERIES GALLERY DIM]`
use ndarray::Array2;
use rand::{rngs::StdRng, Rng, SeedableRng};

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let (nq, ng, d) = (
        *a.first().unwrap_or(&5000),
        *a.get(1).unwrap_or(&50_000),
        *a.get(2).unwrap_or(&256),
    );
    let mut rng = StdRng::seed_from_u64(1);
    let mut rand = |n: usize| {
        tuwen::projection::normalize_rows(Array2::from_shape_fn((n, d), |_| rng.gen::<f32>() - 0.5))
    };
    let (q, g) = (rand(nq), rand(ng));
    let before = peak_rss_mib();
    let t = std::time::Instant::now();
    let top = tuwen::retrieval::rank::top_k(q.view(), g.view(), 5);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(top.len(), nq);
    println!(
        "{nq} × {ng} × {d}: top-5 in {secs:.2} s ({:.1} GFLOP/s); peak RSS {:.0} MiB (inputs alone {:.0} MiB)",
        2.0 * (nq * ng * d) as f64 / secs / 1e9,
        peak_rss_mib(),
        before
    );
}
