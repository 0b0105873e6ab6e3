//! Fit side: tuwen's closed-form CCA (and the whole default projection fit) on real cached
//! features, plus linfa-pls's CCA (NIPALS) on the same matrices.
//!   cargo run --release --example bench_fit -- [--pairs CSV --images DIR] [--sizes 5000 15000 30000]
//!       [--pca 256] [--components 64] [--out runs/bench]
//! Features: EfficientNet-Lite2 (no flip, from the feature cache; extracted if missing), default
//! text features (word2vec mean + TF-IDF bag). Writes `fit-inputs.safetensors` (both sides reduced
//! to `--pca` dims, the matrices experiments/bench/fit.py gives scikit-learn) and prints JSON lines.
#[path = "common.rs"]
mod common;
use linfa::prelude::*;
use ndarray::{s, Array2, ArrayView2, Axis};
use std::path::PathBuf;
use std::time::Instant;
use tuwen::features::image::{
    self, backbone::BackboneKind, ExtractOptions, ImageFeatureConfig, Pooling,
};
use tuwen::features::text::{TextEncoder, TextFeatureConfig};
use tuwen::projection::{cca::CcaParams, pca, ImageNorm, ProjectionParams, SparseRows};

/// Correlation of matching score columns (how every method's canonical pairs are judged).
fn column_correlations(a: ArrayView2<f64>, b: ArrayView2<f64>) -> Vec<f64> {
    (0..a.ncols())
        .map(|j| {
            let (x, y) = (a.column(j), b.column(j));
            let (mx, my) = (x.mean().unwrap(), y.mean().unwrap());
            let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
            for (u, v) in x.iter().zip(y.iter()) {
                sxy += (u - mx) * (v - my);
                sxx += (u - mx) * (u - mx);
                syy += (v - my) * (v - my);
            }
            (sxy / (sxx * syy).sqrt()).abs()
        })
        .collect()
}

fn round4(v: &[f64]) -> Vec<f64> {
    v.iter().map(|c| (c * 1e4).round() / 1e4).collect()
}

fn main() {
    tuwen::blas::reexec_with_fast_kernels();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| common::opt(&args, name);
    let list = |name: &str| -> Vec<usize> {
        args.iter()
            .position(|a| a == name)
            .map(|i| {
                args[i + 1..]
                    .iter()
                    .take_while(|a| !a.starts_with("--"))
                    .map(|a| a.parse().expect("a number"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let data = std::env::var("TUWEN_DATA").unwrap_or_else(|_| "../shared/data".into());
    let pairs_csv =
        PathBuf::from(opt("--pairs").unwrap_or(format!("{data}/flickr8k-cn/train.csv")));
    let images = PathBuf::from(opt("--images").unwrap_or(format!("{data}/flickr8k-cn/images")));
    let out = PathBuf::from(opt("--out").unwrap_or("runs/bench".into()));
    let mut sizes = list("--sizes");
    if sizes.is_empty() {
        sizes = vec![5000, 15000, 30000];
    }
    let k_pca: usize = opt("--pca").map_or(256, |v| v.parse().unwrap());
    let k: usize = opt("--components").map_or(64, |v| v.parse().unwrap());
    // linfa-pls takes minutes per component here (two pseudo-inverses through a pure-Rust SVD
    // each), so it solves the first few only and its time is scaled to k, labelled as such.
    let k_linfa: usize = opt("--linfa-components").map_or(2, |v| v.parse().unwrap());
    let linfa_max: usize = opt("--linfa-max-pairs").map_or(5000, |v| v.parse().unwrap());
    std::fs::create_dir_all(&out).unwrap();

    // Features, as `tuwen fit` computes them.
    let pairs = tuwen::data::read_pairs(&pairs_csv).unwrap();
    let (ids, owner) = tuwen::data::group_images(&pairs.pairs);
    let cfg = ImageFeatureConfig::single(BackboneKind::EfficientNetLite2, Pooling::Avg, false);
    let spec = cfg.resolve(None).unwrap();
    let f = image::extract(&ids, &images, &spec, &ExtractOptions::default()).unwrap();
    assert!(f.ok.iter().all(|&o| o), "every training image must decode");
    let captions: Vec<String> = pairs.pairs.iter().map(|p| p.caption.clone()).collect();
    let mut enc = TextEncoder::load(TextFeatureConfig::default(), None).unwrap();
    enc.fit_stats(&captions);
    let (texts, _) = enc.features(&captions);
    let n_all = captions.len();
    eprintln!(
        "{n_all} pairs, image {} dims, text {} dims",
        f.features.ncols(),
        texts.ncols()
    );

    // 1. The default projection fit (no PCA; CCA 256 components, reg 0.3/1.0) at each size.
    for &n in &sizes {
        let n = n.min(n_all);
        let t = Instant::now();
        let p = ProjectionParams::default()
            .fit(
                f.features.view(),
                &owner[..n],
                &SparseRows::from_dense(texts.slice(s![..n, ..])),
            )
            .unwrap();
        println!(
            "{{\"part\": \"default-fit\", \"pairs\": {n}, \"image_dims\": {}, \"text_dims\": {}, \
             \"components\": {}, \"seconds\": {:.3}, \"blas\": \"{}\"}}",
            f.features.ncols(),
            texts.ncols(),
            p.dim(),
            t.elapsed().as_secs_f64(),
            tuwen::blas::core_name()
        );
    }

    // 2. The comparison problem: both sides PCA-reduced to k_pca dims (over all pairs), then
    //    plain CCA (no ridge) with k components, which scikit-learn and linfa-pls also solve.
    let inputs = out.join("fit-inputs.safetensors");
    if inputs.exists() && !args.iter().any(|a| a == "--fresh") {
        eprintln!("reusing {} (--fresh recomputes it)", inputs.display());
    } else {
        let t = Instant::now();
        let x_full = ImageNorm::SqrtL2
            .apply(f.features.view())
            .select(Axis(0), &owner)
            .mapv(f64::from);
        let y_full = texts.mapv(f64::from);
        let reduce = |m: &Array2<f64>| {
            pca::fit(m, k_pca, false, pca::PcaSolver::Eigh)
                .unwrap()
                .transform(m)
        };
        let (x, y) = (reduce(&x_full), reduce(&y_full));
        eprintln!(
            "PCA to {k_pca} dims per side: {:.1} s",
            t.elapsed().as_secs_f64()
        );
        common::write_matrices(
            &inputs,
            &[
                ("x", x.mapv(|v| v as f32).view()),
                ("y", y.mapv(|v| v as f32).view()),
            ],
        );
    }
    // Read back what Python reads, so every contender sees the same f32-rounded numbers.
    let m = common::read_matrices(&inputs);
    let (x, y) = (m["x"].mapv(f64::from), m["y"].mapv(f64::from));
    for &n in &sizes {
        let n = n.min(n_all);
        let (xs, ys) = (
            x.slice(s![..n, ..]).to_owned(),
            y.slice(s![..n, ..]).to_owned(),
        );
        let t = Instant::now();
        let cca = linfa::traits::Fit::fit(
            &CcaParams::new(k),
            &linfa::DatasetBase::new(xs.clone(), ys.clone()),
        )
        .unwrap();
        let secs = t.elapsed().as_secs_f64();
        let cx = (&xs - &cca.mean_x).dot(&cca.wx);
        let cy = (&ys - &cca.mean_y).dot(&cca.wy);
        let corr = column_correlations(cx.view(), cy.view());
        println!(
            "{{\"part\": \"cca\", \"method\": \"tuwen\", \"pairs\": {n}, \"dims\": {k_pca}, \"components\": {k}, \
             \"seconds\": {secs:.3}, \"correlations\": {:?}}}",
            round4(&corr)
        );
        if n > linfa_max {
            println!(
                "{{\"part\": \"cca\", \"method\": \"linfa-pls\", \"pairs\": {n}, \"dims\": {k_pca}, \
                 \"components\": 0, \"seconds\": null, \"error\": \"not run above {linfa_max} pairs (--linfa-max-pairs)\"}}"
            );
            continue;
        }
        let ds = linfa::Dataset::new(xs.clone(), ys.clone());
        let t = Instant::now();
        let fitted = linfa_pls::PlsCca::<f64>::params(k_linfa)
            .scale(false)
            .fit(&ds);
        let secs = t.elapsed().as_secs_f64();
        match fitted {
            Ok(pls) => {
                let tr = pls.transform(linfa::Dataset::new(xs.clone(), ys.clone()));
                let corr = column_correlations(tr.records().view(), tr.targets().view());
                println!(
                    "{{\"part\": \"cca\", \"method\": \"linfa-pls\", \"pairs\": {n}, \"dims\": {k_pca}, \
                     \"components\": {k_linfa}, \"seconds\": {secs:.3}, \"seconds_scaled_to\": {k}, \
                     \"seconds_scaled\": {:.1}, \"correlations\": {:?}}}",
                    secs * k as f64 / k_linfa as f64,
                    round4(&corr)
                );
            }
            Err(e) => println!(
                "{{\"part\": \"cca\", \"method\": \"linfa-pls\", \"pairs\": {n}, \"dims\": {k_pca}, \
                 \"components\": {k_linfa}, \"seconds\": {secs:.3}, \"error\": {:?}}}",
                e.to_string()
            ),
        }
    }
}
