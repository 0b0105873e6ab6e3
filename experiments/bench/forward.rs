//! VGG19 forward pass (relu5_4, spatially averaged) through libtorch, in the layouts libtorch
//! offers for CPU convolution, timed on the same batch:
//!   plain NCHW (what `tuwen extract` ran before), channels-last (NHWC strides), and oneDNN's
//!   blocked layout with weights reordered once (what torch.utils.mkldnn.to_mkldnn does).
//!   cargo run --release --example bench_forward [-- BATCH REPEATS]
//! Prints images/s, GFLOP/s and the largest difference from the plain result per variant.
use std::collections::HashMap;
use tch::{Kind, Tensor};

use tuwen::features::image::backbone::to_channels_last as nhwc;

/// VGG19 up to relu5_4, spatially averaged, in whatever layout `x` and `w` carry.
fn vgg(
    mut x: Tensor,
    w: &HashMap<String, Tensor>,
    convs: &[(usize, bool)],
    inplace: bool,
) -> Tensor {
    for &(i, pool) in convs {
        let (wt, bs) = (
            &w[&format!("features.{i}.weight")],
            &w[&format!("features.{i}.bias")],
        );
        x = x.conv2d(wt, Some(bs), [1, 1], [1, 1], [1, 1], 1);
        x = if inplace { x.relu_() } else { x.relu() };
        if pool {
            x = x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
        }
    }
    x.mean_dim([2i64, 3].as_slice(), false, Kind::Float)
}

fn main() {
    let a: Vec<i64> = std::env::args()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let (batch, reps) = (*a.first().unwrap_or(&16), *a.get(1).unwrap_or(&3));
    let w: HashMap<String, Tensor> = Tensor::read_safetensors("models/vgg19.safetensors")
        .expect("models/vgg19.safetensors (scripts/setup.sh)")
        .into_iter()
        .collect();
    // (conv index, max-pool after) as in torchvision's vgg19.features, pool5 left out.
    let mut convs = Vec::new();
    let mut idx = 0;
    for (b, &n) in [2, 2, 4, 4, 4].iter().enumerate() {
        for j in 0..n {
            convs.push((idx, j + 1 == n && b < 4));
            idx += 2;
        }
        idx += 1;
    }
    // 2 × multiply-adds of the 3×3 convolutions at 224² (ReLU and pooling not counted), from
    // the weight shapes: the same count experiments/bench/extract.py uses.
    let mut side = 224i64;
    let mut flop = 0.0;
    for &(i, pool) in &convs {
        let s = w[&format!("features.{i}.weight")].size();
        flop += 2.0 * (side * side * s[0] * s[1] * s[2] * s[3]) as f64;
        if pool {
            side /= 2;
        }
    }
    let gflop = flop / 1e9;
    let x = Tensor::randn([batch, 3, 224, 224], (Kind::Float, tch::Device::Cpu)) * 60.0;
    let w_nhwc: HashMap<String, Tensor> = w
        .iter()
        .map(|(k, v)| {
            let t = if v.dim() == 4 {
                nhwc(v)
            } else {
                v.shallow_clone()
            };
            (k.clone(), t)
        })
        .collect();
    let plain = |x: &Tensor| vgg(x.shallow_clone(), &w, &convs, false);
    let channels_last = |x: &Tensor| vgg(nhwc(x), &w_nhwc, &convs, false);
    // ReLU in place, as torchvision's nn.ReLU(inplace=True): no new activation tensor per layer.
    let channels_last_inplace = |x: &Tensor| vgg(nhwc(x), &w_nhwc, &convs, true);
    let w_mkl: HashMap<String, Tensor> = convs
        .iter()
        .map(|&(i, _)| {
            let k = format!("features.{i}.weight");
            let r = w[&k].to_mkldnn().mkldnn_reorder_conv2d_weight(
                [1, 1],
                [1, 1],
                [1, 1],
                1,
                None::<&[i64]>,
            );
            (k, r)
        })
        .collect();
    let blocked = |x: &Tensor| {
        let mut x = x.to_mkldnn();
        for &(i, pool) in &convs {
            let (wt, bs) = (
                &w_mkl[&format!("features.{i}.weight")],
                &w[&format!("features.{i}.bias")],
            );
            x = x
                .mkldnn_convolution(wt, Some(bs), [1, 1], [1, 1], [1, 1], 1)
                .relu();
            if pool {
                x = x.mkldnn_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
        }
        x.to_dense(Kind::Float, false)
            .mean_dim([2i64, 3].as_slice(), false, Kind::Float)
    };
    let reference = tch::no_grad(|| plain(&x));
    type Variant<'a> = (&'a str, &'a dyn Fn(&Tensor) -> Tensor);
    let variants: [Variant; 4] = [
        ("plain NCHW", &plain),
        ("channels-last", &channels_last),
        ("c-last, ReLU_", &channels_last_inplace),
        ("oneDNN blocked", &blocked),
    ];
    // Interleaved and best-of: this shared machine's speed drifts by ±30 % within minutes.
    let mut best = [f64::INFINITY; 4];
    let mut diffs = [0.0; 4];
    for (v, (_, f)) in variants.iter().enumerate() {
        let out = tch::no_grad(|| f(&x)); // warm-up (and oneDNN primitive creation)
        diffs[v] = (&out - &reference).abs().max().double_value(&[]);
    }
    for _ in 0..reps {
        for (v, (_, f)) in variants.iter().enumerate() {
            let t = std::time::Instant::now();
            let _ = tch::no_grad(|| f(&x));
            best[v] = best[v].min(t.elapsed().as_secs_f64());
        }
    }
    for (v, (name, _)) in variants.iter().enumerate() {
        let ips = batch as f64 / best[v];
        println!(
            "{name:<16} {ips:6.2} images/s  {:6.1} GFLOP/s  max |diff| {:.2e}  (best of {reps}, threads {})",
            ips * gflop,
            diffs[v],
            tch::get_num_threads()
        );
    }
}
