//! Hubness-corrected ranking against plain cosine ranking at Teddy scale (default 5,000 queries ×
//! 50,000 gallery × 256 dims, random unit vectors; `--hubs H` mixes a shared direction of weight H
//! into every gallery row, which makes hubs and sends more queries to CSLS's exact second pass).
//!   cargo run --release --example bench_score [-- QUERIES GALLERY DIM] [--hubs 0.5]
//! Prints one JSON line per method: seconds (best of 3), ratio to cosine, peak resident memory.
#[path = "common.rs"]
mod common;
use ndarray::Array2;
use rand::{rngs::StdRng, Rng, SeedableRng};
use tuwen::retrieval::score::{self, Scoring};

fn best_of_3<T>(mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (best, out.expect("three runs"))
}

fn main() {
    tuwen::blas::reexec_with_fast_kernels();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let hubs: f32 = common::opt(&args, "--hubs")
        .and_then(|h| h.parse().ok())
        .unwrap_or(0.0);
    let a: Vec<usize> = args.iter().filter_map(|x| x.parse().ok()).collect();
    let (nq, ng, d) = (
        *a.first().unwrap_or(&5000),
        *a.get(1).unwrap_or(&50_000),
        *a.get(2).unwrap_or(&256),
    );
    let mut rng = StdRng::seed_from_u64(1);
    let shared: Vec<f32> = (0..d).map(|_| rng.gen::<f32>() - 0.5).collect();
    let mut rand = |n: usize, h: f32| {
        tuwen::projection::normalize_rows(Array2::from_shape_fn((n, d), |(_, j)| {
            rng.gen::<f32>() - 0.5 + h * shared[j]
        }))
    };
    let (q, g) = (rand(nq, 0.0), rand(ng, hubs));
    let (cos_s, cos_top) = best_of_3(|| {
        score::rank_sets(q.view(), g.view(), 5, Scoring::Cosine)
            .expect("valid scoring")
            .0
    });
    let line = |method: &str, secs: f64, extra: String| {
        println!(
            "{{\"method\": \"{method}\", \"queries\": {nq}, \"gallery\": {ng}, \"dim\": {d}, \"hubs\": {hubs}, \
             \"seconds\": {secs:.3}, \"ratio_to_cosine\": {:.2}, \"peak_mib\": {:.0}{extra}}}",
            secs / cos_s,
            common::peak_rss_mib()
        )
    };
    line("cosine", cos_s, String::new());
    for s in [
        Scoring::Csls { k: 10 },
        Scoring::InvertedSoftmax { beta: 10.0 },
    ] {
        let (secs, (top, _)) =
            best_of_3(|| score::rank_sets(q.view(), g.view(), 5, s).expect("valid scoring"));
        let changed = top
            .iter()
            .zip(&cos_top)
            .filter(|(a, b)| a.first().map(|x| x.0) != b.first().map(|x| x.0))
            .count();
        line(&s.name(), secs, format!(", \"top1_changed\": {changed}"));
    }
}
