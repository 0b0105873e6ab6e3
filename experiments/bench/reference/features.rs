//! Print tuwen's pooled backbone features of one raw image as JSON, for comparisons with PyTorch
//! (experiments/bench/reference/vgg16_torchvision_check.sh).
//!   cargo run --release --example reference_features -- --backbone vgg16 \
//!       --weights converted.safetensors --pixels image.rgb [--size 224] [--pooling avg]
//! `--pixels` holds S×S×3 bytes: row-major RGB (height, width, channel), no header. The image goes
//! through the same low-level steps as extraction: normalise, last conv map, pooling; no resize,
//! no flip. `--weights` defaults to the models folder's file for the backbone.
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};
use tuwen::features::image::{Backbone, BackboneKind, Pooling};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let usage = "usage: reference_features --backbone NAME --pixels FILE [--weights FILE] [--size S] [--pooling avg|max|grid]";
    let kind = opt("--backbone")
        .expect(usage)
        .parse::<BackboneKind>()
        .expect(usage);
    let pooling = opt("--pooling")
        .unwrap_or("avg".into())
        .parse::<Pooling>()
        .expect(usage);
    let pixels = PathBuf::from(opt("--pixels").expect(usage));
    let weights = opt("--weights").map(PathBuf::from);
    let size: i64 = opt("--size").map_or(kind.input_size() as i64, |s| s.parse().expect(usage));

    let px = std::fs::read(&pixels).unwrap_or_else(|e| panic!("{}: {e}", pixels.display()));
    assert_eq!(
        px.len() as i64,
        size * size * 3,
        "{}: expected {size}×{size}×3 bytes",
        pixels.display()
    );
    let net = Backbone::load(kind, weights.as_deref(), Device::Cpu).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let x = Tensor::from_slice(&px)
        .view([1, size, size, 3])
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float);
    let feat = tch::no_grad(|| {
        let map = net.feature_map(&net.normalise(&x));
        net.pool(&map, pooling).unwrap()
    });
    let features: Vec<f32> = Vec::try_from(feat.flatten(0, -1)).unwrap();
    let out = serde_json::json!({
        "backbone": kind.name(),
        "weights": weights.map(|p| p.display().to_string()),
        "preprocess": format!("{:?}", net.preprocess),
        "size": size,
        "pooling": pooling.name(),
        "channels_last": net.channels_last(),
        "torch_threads": tch::get_num_threads(),
        "features": features,
    });
    println!("{out}");
}
