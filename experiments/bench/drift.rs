//! Feature drift of issue #19's changes, image by image: the session-4 pixels and network path
//! (full decode, explicit padding, separate batch norm, flip as a second batch) against today's
//! (JPEGs ≥ 2× the input decoded at 1/2–1/8 scale, batch norm folded, flip in one batch).
//!   cargo run --release --example bench_drift -- --images DIR [--ids LIST] [--backbone efficientnet-lite2]
//! Prints one JSON object: images, how many were decoded at reduced scale, cosine between the two
//! feature vectors (min / mean over all, and over the scaled ones), max relative difference.
#[path = "common.rs"]
mod common;
use tuwen::features::image::{
    self, decode, Backbone, BackboneKind, ImageFeatureConfig, InferencePath, Pooling,
};

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    d / (n(a) * n(b))
}

fn main() {
    tuwen::blas::reexec_with_fast_kernels();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| common::opt(&args, name);
    let dir = std::path::PathBuf::from(opt("--images").expect("--images DIR"));
    let kind: BackboneKind = opt("--backbone")
        .unwrap_or("efficientnet-lite2".into())
        .parse()
        .unwrap();
    let mut ids: Vec<String> = match opt("--ids") {
        Some(l) => std::fs::read_to_string(l)
            .unwrap()
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
        None => std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
    };
    ids.sort();
    let cfg = ImageFeatureConfig::single(kind, Pooling::Avg, true);
    let size = kind.input_size();
    let fused = Backbone::load(kind, None, tch::Device::Cpu).unwrap();
    let mut reference = Backbone::load(kind, None, tch::Device::Cpu).unwrap();
    reference.set_inference_path(InferencePath::Reference);
    let (mut all, mut scaled_cos, mut max_rel) = (Vec::new(), Vec::new(), 0f64);
    let mut unreadable = 0;
    for id in &ids {
        let Ok(bytes) = std::fs::read(dir.join(id)) else {
            unreadable += 1;
            continue;
        };
        let Ok(full) = decode::decode(&bytes) else {
            unreadable += 1;
            continue;
        };
        let scaled = decode::decode_at_least(&bytes, size).unwrap();
        let was_scaled = scaled.dimensions() != full.dimensions();
        let old_px = decode::resize_center_crop(&full, size).into_raw();
        drop(full);
        let new_px = decode::network_input(&bytes, size).unwrap().into_raw();
        let old = image::forward(&reference, &[old_px.as_slice()], size, &cfg).unwrap();
        let new = image::forward(&fused, &[new_px.as_slice()], size, &cfg).unwrap();
        let c = cosine(&old[0], &new[0]);
        let scale = old[0].iter().fold(0f32, |m, x| m.max(x.abs()));
        let d = old[0]
            .iter()
            .zip(&new[0])
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        max_rel = max_rel.max((d / scale) as f64);
        all.push(c);
        if was_scaled {
            scaled_cos.push(c);
        }
    }
    let stats = |v: &[f64]| {
        if v.is_empty() {
            return serde_json::json!(null);
        }
        let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        serde_json::json!({"min": min, "mean": mean})
    };
    println!(
        "{}",
        serde_json::json!({
            "backbone": kind.name(), "images": all.len(), "unreadable": unreadable,
            "scaled": scaled_cos.len(), "cosine": stats(&all), "cosine_scaled": stats(&scaled_cos),
            "max_rel_diff": max_rel,
        })
    );
}
