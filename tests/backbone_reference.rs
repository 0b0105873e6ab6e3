//! tuwen's CNN backbones against PyTorch: a generated input must give the pooled features that an
//! independent PyTorch implementation computes on the same weights (tests/reference/backbones.json,
//! written by experiments/bench/reference/backbone_reference.py: torchvision's vgg19 for VGG19, the
//! PyPI package efficientnet_lite_pytorch on the original .pth for EfficientNet-Lite2).
//!
//! Tolerance 1e-3 per dimension, scaled up for features larger than 10 (VGG19's reach ~50:
//! 1e-3 · max|want| / 10): oneDNN picks its kernels by CPU, so the last bits differ from one x86-64
//! machine to another, and rounding grows with the values through 16 layers. Needs models/ (scripts/setup.sh); fails when it is missing.
use serde_json::Value;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};
use tuwen::features::image::{backbone::default_models_dir, Backbone, BackboneKind, Pooling};

const TOL: f32 = 1e-3;
/// The input formula, as the reference script writes it; pixel(x = column, y = row, c = RGB channel).
const FORMULA: &str = "(3*x + 5*y + 77*c + (x*y) % 31) % 256";

fn pixel(x: u32, y: u32, c: u32) -> u8 {
    ((3 * x + 5 * y + 77 * c + (x * y) % 31) % 256) as u8
}

/// 1×3×S×S float tensor of the 0..255 values, the layout `Backbone::normalise` takes.
fn generated_input(size: u32) -> Tensor {
    let mut px = Vec::with_capacity((size * size * 3) as usize);
    for y in 0..size {
        for x in 0..size {
            for c in 0..3 {
                px.push(pixel(x, y, c));
            }
        }
    }
    let s = size as i64;
    Tensor::from_slice(&px)
        .view([1, s, s, 3])
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float)
}

fn reference() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/backbones.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["input"]["formula"], FORMULA,
        "the reference was computed on another input than this test builds"
    );
    v
}

fn ref_features(r: &Value, name: &str) -> Vec<f32> {
    r["backbones"][name]["features"]
        .as_array()
        .unwrap_or_else(|| panic!("no `{name}` features in backbones.json"))
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// A file of the models folder; fails (never skips) when the set-up has not been run.
fn model_file(name: &str) -> PathBuf {
    let p = default_models_dir().join(name);
    assert!(
        p.is_file(),
        "this test needs {} (run `bash scripts/setup.sh`, or set TUWEN_MODELS)",
        p.display()
    );
    p
}

fn sha256_listed(name: &str) -> String {
    let sums = model_file("SHA256SUMS");
    let text = std::fs::read_to_string(&sums).unwrap();
    text.lines()
        .find_map(|l| {
            let (sum, file) = l.split_once(char::is_whitespace)?;
            (file.trim_start_matches([' ', '*']) == name).then(|| sum.to_string())
        })
        .unwrap_or_else(|| panic!("{name} is not listed in {}", sums.display()))
}

/// normalise → last conv map → global average, the low-level steps of extraction (no flip).
fn features(net: &Backbone, x: &Tensor) -> Vec<f32> {
    let f = tch::no_grad(|| {
        let map = net.feature_map(&net.normalise(x));
        net.pool(&map, Pooling::Avg).unwrap()
    });
    assert_eq!(f.size(), [1, net.kind.channels() as i64]);
    Vec::try_from(f.flatten(0, -1)).unwrap()
}

/// (max |a - b|, its index).
fn max_diff(a: &[f32], b: &[f32]) -> (f32, usize) {
    assert_eq!(a.len(), b.len(), "feature dimensions differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .enumerate()
        .fold((0.0f32, 0), |m, (i, d)| {
            // NaN must fail too, so it wins over any number.
            if d.is_nan() || d > m.0 {
                (d, i)
            } else {
                m
            }
        })
}

fn assert_matches(what: &str, got: &[f32], want: &[f32]) {
    let (d, i) = max_diff(got, want);
    let scale = want.iter().fold(10f32, |m, v| m.max(v.abs())) / 10.0;
    let tol = TOL * scale;
    println!(
        "{what}: max |diff| {d:.3e} at {i} (tuwen {}, PyTorch {}), tolerance {tol:e}",
        got[i], want[i]
    );
    assert!(
        d <= tol,
        "{what}: dimension {i} differs by {d} (tuwen {}, PyTorch {})",
        got[i],
        want[i]
    );
}

#[test]
fn vgg19_matches_pytorch() {
    let r = reference();
    let want = ref_features(&r, "vgg19");
    assert_eq!(want.len(), 512);
    // The reference was computed from this very file (it is read by both sides).
    assert_eq!(
        r["backbones"]["vgg19"]["weights_sha256"],
        sha256_listed("vgg19.safetensors"),
        "models/vgg19.safetensors is not the file the reference was computed with; regenerate \
         tests/reference/backbones.json (experiments/bench/reference/backbone_reference.py)"
    );
    let file = model_file("vgg19.safetensors");
    let mut net = Backbone::load(BackboneKind::Vgg19, Some(&file), Device::Cpu).unwrap();
    let x = generated_input(BackboneKind::Vgg19.input_size());
    assert_eq!(x.size(), [1, 3, 224, 224]);
    let got = features(&net, &x);
    assert_matches("vgg19 (channels-last)", &got, &want);
    assert!(
        want.iter().filter(|&&v| v > 0.01).count() > 100,
        "reference too sparse to mean much"
    );

    // The other memory layout computes the same.
    net.set_channels_last(false);
    assert_matches("vgg19 (NCHW)", &features(&net, &x), &want);
    net.set_channels_last(true);

    // The comparison would catch a preprocessing bug: RGB fed where the weights want BGR.
    let swapped = features(&net, &x.flip([1]));
    let (d, _) = max_diff(&swapped, &want);
    println!("vgg19 with the channel order swapped: max |diff| {d:.3e}");
    assert!(
        d > 100.0 * TOL,
        "swapping R and B changed the features by only {d}"
    );
}

#[test]
fn efficientnet_lite2_matches_pytorch() {
    let r = reference();
    let want = ref_features(&r, "efficientnet-lite2");
    assert_eq!(want.len(), 1280);
    let recorded = r["backbones"]["efficientnet-lite2"]["tuwen_file_sha256"]
        .as_str()
        .unwrap_or("none");
    let listed = sha256_listed("efficientnet-lite2.safetensors");
    if recorded != listed {
        // Not an error: PyTorch read the original .pth, not tuwen's converted file.
        println!("note: models/efficientnet-lite2.safetensors ({listed}) is not the file present when the reference was made ({recorded})");
    }
    let file = model_file("efficientnet-lite2.safetensors");
    let mut net =
        Backbone::load(BackboneKind::EfficientNetLite2, Some(&file), Device::Cpu).unwrap();
    let x = generated_input(BackboneKind::EfficientNetLite2.input_size());
    assert_eq!(x.size(), [1, 3, 260, 260]);
    let got = features(&net, &x);
    assert_matches("efficientnet-lite2 (channels-last)", &got, &want);
    assert!(
        got.iter().all(|&v| (0.0..=6.0).contains(&v)),
        "averages of ReLU6 outputs lie in 0..6"
    );

    net.set_channels_last(false);
    assert_matches("efficientnet-lite2 (NCHW)", &features(&net, &x), &want);

    // The comparison would catch a wrong network: EfficientNet-Lite0 (same block types, same
    // preprocessing, same 1280-d output) run on the same 260×260 input is far off.
    let lite0 = model_file("efficientnet-lite0.safetensors");
    let wrong = Backbone::load(BackboneKind::EfficientNetLite0, Some(&lite0), Device::Cpu).unwrap();
    let (d, _) = max_diff(&features(&wrong, &x), &want);
    println!(
        "efficientnet-lite0 on the same input against the lite2 reference: max |diff| {d:.3e}"
    );
    assert!(
        d > 100.0 * TOL,
        "lite0 weights came within {d} of the lite2 reference"
    );
}
