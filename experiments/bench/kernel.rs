//! The one float path ([`tuwen::kernel::dots`]) against BLAS sgemm on the same block: seconds
//! and GFLOP/s of a ranking block (512 queries × 50,000 gallery × 256 dims by default).
//!   cargo run --release --example bench_kernel [-- QUERIES GALLERY DIM]
use ndarray::Array2;
use rand::{rngs::StdRng, Rng, SeedableRng};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (nq, ng, d) = (n(0, 512), n(1, 50_000), n(2, 256));
    let mut rng = StdRng::seed_from_u64(1);
    let mut rand = |r: usize| Array2::from_shape_fn((r, d), |_| rng.gen::<f32>() - 0.5);
    let (q, g) = (rand(nq), rand(ng));
    let flops = 2.0 * (nq * ng * d) as f64;
    let best = |f: &dyn Fn() -> Array2<f32>| {
        (0..3)
            .map(|_| {
                let t = std::time::Instant::now();
                std::hint::black_box(f());
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let k = best(&|| tuwen::kernel::dots(q.view(), g.view()));
    let b = best(&|| q.dot(&g.t()));
    for (name, s) in [("kernel", k), ("blas", b)] {
        println!(
            "{{\"method\": \"{name}\", \"queries\": {nq}, \"gallery\": {ng}, \"dim\": {d}, \"seconds\": {s:.3}, \"gflops\": {:.1}, \"ratio_to_blas\": {:.2}}}",
            flops / s / 1e9,
            s / b
        );
    }
}
