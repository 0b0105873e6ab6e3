//! Image feature extraction timed end to end (read + decode + resize/crop + forward, no cache),
//! then the forward pass alone on already-decoded pixels, channels-last (the default) and NCHW.
//!   cargo run --release --example bench_extract -- --images DIR --ids LIST --out OUT.safetensors
//!       [--backbone vgg19] [--forward-images 32] [--flip]
//! LIST holds one file name (relative to DIR) per line. OUT gets `features` (one row per listed
//! file) and `pixels`/`pixel_features` (the first images' decoded 224×224 RGB input and its
//! features), which experiments/bench/extract.py feeds to PyTorch for the same-input check.
#[path = "common.rs"]
mod common;
use ndarray::Array2;
use std::path::PathBuf;
use std::time::Instant;
use tuwen::features::image::{
    self, backbone::Backbone, backbone::BackboneKind, decode, ExtractOptions, ImageFeatureConfig,
    InferencePath, Pooling,
};

fn main() {
    tuwen::blas::reexec_with_fast_kernels();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| common::opt(&args, name);
    let dir = PathBuf::from(opt("--images").expect("--images DIR"));
    let list = opt("--ids").expect("--ids LIST");
    let out = PathBuf::from(opt("--out").expect("--out FILE"));
    let backbone = opt("--backbone")
        .unwrap_or("vgg19".into())
        .parse::<BackboneKind>()
        .expect("a backbone name");
    let n_forward: usize = opt("--forward-images").map_or(32, |v| v.parse().unwrap());
    let flip = args.iter().any(|a| a == "--flip");
    let ids: Vec<String> = std::fs::read_to_string(&list)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect();
    let cfg = ImageFeatureConfig::single(backbone, Pooling::Avg, flip);
    let opts = ExtractOptions {
        cache_dir: None,
        progress: false,
        ..Default::default()
    };
    let threads = tch::get_num_threads();

    // End to end, as `tuwen extract` runs (decoding overlaps the network).
    let t = Instant::now();
    let spec = cfg.resolve(None).unwrap();
    let f = image::extract(&ids, &dir, &spec, &opts).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let done = f.ok.iter().filter(|&&o| o).count();

    let ok_col = Array2::from_shape_fn((ids.len(), 1), |(i, _)| f.ok[i] as u8 as f32);
    let mut report = serde_json::json!({
        "method": "tuwen", "backbone": backbone.name(), "images": ids.len(), "extracted": done,
        "skipped": f.skipped.len(), "seconds": secs, "images_per_s": done as f64 / secs,
        "torch_threads": threads, "flip": flip,
    });
    let mut mats = vec![("features", f.features.view().to_owned()), ("ok", ok_col)];
    if n_forward > 0 {
        mats.extend(forward_part(
            &ids,
            &dir,
            &cfg,
            &opts,
            n_forward,
            &mut report,
        ));
    }
    let views: Vec<(&str, ndarray::ArrayView2<f32>)> =
        mats.iter().map(|(n, m)| (*n, m.view())).collect();
    common::write_matrices(&out, &views);
    println!("{report}");
}

/// Forward pass alone on the first `n` decodable images (batches of the default size, after a
/// warm-up): the fused path channels-last (what tuwen runs), NCHW, and the reference path
/// (batch norm unfolded, explicit padding, flip as a second batch) interleaved; adds its timings
/// to `report` and returns the decoded pixels and their features for the same-input check.
fn forward_part(
    ids: &[String],
    dir: &std::path::Path,
    cfg: &ImageFeatureConfig,
    opts: &ExtractOptions,
    n: usize,
    report: &mut serde_json::Value,
) -> Vec<(&'static str, Array2<f32>)> {
    let size = cfg.backbone.input_size();
    let pixels: Vec<Vec<u8>> = ids
        .iter()
        .filter_map(|id| {
            let b = std::fs::read(dir.join(id)).ok()?;
            Some(decode::network_input(&b, size).ok()?.into_raw())
        })
        .take(n)
        .collect();
    let net = Backbone::load(cfg.backbone, None, tch::Device::Cpu).unwrap();
    let mut nchw = Backbone::load(cfg.backbone, None, tch::Device::Cpu).unwrap();
    nchw.set_channels_last(false);
    let mut reference = Backbone::load(cfg.backbone, None, tch::Device::Cpu).unwrap();
    reference.set_inference_path(InferencePath::Reference);
    let refs: Vec<&[u8]> = pixels.iter().map(|p| p.as_slice()).collect();
    let run = |net: &Backbone| -> Vec<Vec<f32>> {
        refs.chunks(opts.batch_size)
            .flat_map(|b| image::forward(net, b, size, cfg).unwrap())
            .collect()
    };
    let pixel_features = run(&net); // also the warm-up
    let nchw_features = run(&nchw);
    let reference_features = run(&reference);
    // Interleaved, best of 3: this shared machine's speed drifts within minutes.
    let (mut fwd_secs, mut nchw_secs, mut ref_secs) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    for _ in 0..3 {
        let t = Instant::now();
        run(&reference);
        ref_secs = ref_secs.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        run(&net);
        fwd_secs = fwd_secs.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        run(&nchw);
        nchw_secs = nchw_secs.min(t.elapsed().as_secs_f64());
    }
    let layout_diff = pixel_features
        .iter()
        .flatten()
        .zip(nchw_features.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let reference_rel_diff = pixel_features
        .iter()
        .zip(&reference_features)
        .map(|(a, b)| {
            let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
            let d = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            d / scale
        })
        .fold(0f32, f32::max);
    let m = pixels.len();
    for (k, v) in [
        ("forward_images", serde_json::json!(m)),
        ("forward_seconds", serde_json::json!(fwd_secs)),
        (
            "forward_images_per_s",
            serde_json::json!(m as f64 / fwd_secs),
        ),
        (
            "forward_images_per_s_nchw",
            serde_json::json!(m as f64 / nchw_secs),
        ),
        ("layout_max_abs_diff", serde_json::json!(layout_diff)),
        (
            "forward_images_per_s_reference",
            serde_json::json!(m as f64 / ref_secs),
        ),
        (
            "reference_max_rel_diff",
            serde_json::json!(reference_rel_diff),
        ),
    ] {
        report[k] = v;
    }
    let matrix = |rows: Vec<Vec<f32>>| {
        let d = rows[0].len();
        Array2::from_shape_vec((rows.len(), d), rows.concat()).unwrap()
    };
    vec![
        (
            "pixels",
            matrix(
                pixels
                    .iter()
                    .map(|p| p.iter().map(|&v| v as f32).collect())
                    .collect(),
            ),
        ),
        ("pixel_features", matrix(pixel_features)),
    ]
}
