//! Richer image features (issue #17): spatial pyramid and stage pooling, two networks at once,
//! per-block normalisation. Each is part of the one feature spec (identity, cache key, shape) and
//! every command takes it. Needs models/ from set-up, not ../shared.
mod common;
use ndarray::Array2;
use std::process::Command;
use tch::Device;
use tuwen::features::image::{
    self, Backbone, BackboneKind, Crop, ExtractOptions, FeatureSpec, ImageFeatureConfig,
    NetworkConfig, Pooling,
};
use tuwen::projection::ImageNorm;

fn lite(kind: BackboneKind, pooling: Pooling) -> ImageFeatureConfig {
    ImageFeatureConfig::single(kind, pooling, false)
}

fn two_nets() -> ImageFeatureConfig {
    ImageFeatureConfig {
        second: Some(NetworkConfig {
            backbone: BackboneKind::EfficientNetLite0,
            pooling: Pooling::Avg,
            flip: false,
            crop: Crop::Centre,
            size: None,
        }),
        ..ImageFeatureConfig::single(BackboneKind::EfficientNetLite2, Pooling::Avg, true)
    }
}

fn spec(cfg: &ImageFeatureConfig) -> FeatureSpec {
    common::models();
    cfg.resolve(None).unwrap()
}

#[test]
fn every_variant_has_its_own_identity_dimension_and_blocks() {
    use BackboneKind::*;
    let cases = [
        (lite(EfficientNetLite2, Pooling::Avg), vec![1280]),
        (lite(EfficientNetLite2, Pooling::Pyramid), vec![1280; 5]),
        (
            lite(EfficientNetLite2, Pooling::Stages),
            vec![120, 208, 352, 1280],
        ),
        (
            lite(EfficientNetLite0, Pooling::Stages),
            vec![112, 192, 320, 1280],
        ),
        (lite(Vgg19, Pooling::Pyramid), vec![512; 5]),
        (two_nets(), vec![1280, 1280]),
    ];
    let mut keys = std::collections::HashSet::new();
    let mut identities = std::collections::HashSet::new();
    for (cfg, blocks) in &cases {
        let s = spec(cfg);
        assert_eq!(&s.blocks(), blocks, "{}", s.describe());
        assert_eq!(s.dim(), blocks.iter().sum::<usize>());
        assert!(keys.insert(s.cache_key()), "{}", s.cache_key());
        assert!(identities.insert(s.identity()));
        // Stored in a model's config.json and read back as the same features.
        let back: FeatureSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert!(back.same_features(&s));
    }
    // The session-5 default's key is unchanged by the new optional field (its caches stay
    // valid).
    let d = spec(&ImageFeatureConfig::single(
        EfficientNetLite2,
        Pooling::Avg,
        true,
    ));
    assert!(
        d.cache_key().starts_with("efficientnet-lite2-w")
            && d.cache_key().ends_with("-avg-flip-s260-p4"),
        "{}",
        d.cache_key()
    );
    assert!(!serde_json::to_string(&d).unwrap().contains("second"));
    // Two networks: each part is one network's spec, cached under its own key.
    let two = spec(&two_nets());
    let parts = two.parts();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].cache_key(), d.cache_key());
    assert_eq!(
        parts[1].cache_key(),
        spec(&lite(EfficientNetLite0, Pooling::Avg)).cache_key()
    );
    assert!(!two.same_features(&d));
    assert!(two.describe().contains(" + efficientnet-lite0"));
    // Today's default: Lite2 and Lite0, each averaged, without flip.
    let def = spec(&ImageFeatureConfig::default());
    assert_eq!(def.blocks(), vec![1280, 1280]);
    let keys: Vec<String> = def.parts().iter().map(|p| p.cache_key()).collect();
    assert!(
        keys[0].starts_with("efficientnet-lite2-w") && keys[0].ends_with("-avg-noflip-s260-p4"),
        "{keys:?}"
    );
    assert!(
        keys[1].starts_with("efficientnet-lite0-w") && keys[1].ends_with("-avg-noflip-s224-p4"),
        "{keys:?}"
    );
}

#[test]
fn poolings_a_network_does_not_define_are_refused_before_work() {
    common::models();
    for (cfg, word) in [
        (lite(BackboneKind::Vgg19, Pooling::Stages), "stages"),
        (lite(BackboneKind::EfficientNetLite0, Pooling::Grid), "grid"),
        (
            ImageFeatureConfig {
                second: Some(NetworkConfig {
                    backbone: BackboneKind::Vgg19,
                    pooling: Pooling::Stages,
                    flip: false,
                    crop: Crop::Centre,
                    size: None,
                }),
                ..ImageFeatureConfig::default()
            },
            "stages",
        ),
    ] {
        let e = cfg.resolve(None).unwrap_err().to_string();
        assert!(e.contains(word) && e.contains("defined for"), "{e}");
    }
}

/// Pyramid and stage pooling come from the same forward pass: the global average block is the
/// plain average pooling, the quadrant blocks average to it, and the stage blocks differ.
#[test]
fn pyramid_and_stage_blocks_are_the_pooled_maps() {
    let models = common::models();
    let net = Backbone::load(BackboneKind::EfficientNetLite0, None, Device::Cpu).unwrap();
    let _ = models;
    let size = 224u32;
    // A picture with structure in each quadrant.
    let img = image::decode::resize_center_crop(
        &::image::RgbImage::from_fn(300, 300, |x, y| {
            ::image::Rgb([
                (x % 97) as u8 * 2,
                if y > 150 { 220 } else { 30 },
                if x > 150 { 200 } else { (y % 50) as u8 * 5 },
            ])
        }),
        size,
    )
    .into_raw();
    let run = |p: Pooling| {
        image::forward(&net, &[img.as_slice()], size, &lite(net.kind, p)).unwrap()[0].clone()
    };
    let avg = run(Pooling::Avg);
    let pyr = run(Pooling::Pyramid);
    let stages = run(Pooling::Stages);
    assert_eq!((avg.len(), pyr.len(), stages.len()), (1280, 6400, 1904));
    let close = |a: &[f32], b: &[f32]| {
        let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
        a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-4 * scale)
    };
    assert!(
        close(&pyr[..1280], &avg),
        "pyramid block 0 is the global average"
    );
    // 7×7 map: adaptive 2×2 quadrants overlap in the middle row/column, so their mean is near,
    // not equal to, the global average; but each quadrant differs from it.
    let quad = |q: usize| &pyr[1280 * (1 + q)..1280 * (2 + q)];
    for q in 0..4 {
        assert!(
            !close(quad(q), &avg),
            "quadrant {q} equals the global average"
        );
    }
    assert!(
        close(&stages[1904 - 1280..], &avg),
        "last stage block is the head average"
    );
    assert!(stages[..624].iter().any(|&v| v != 0.0));
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tuwen"))
}

#[test]
fn two_networks_are_each_cached_and_appended_in_order() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let data = tuwen::data::synthetic::generate(d.path(), 12, 4, 5).unwrap();
    let ids: Vec<String> = std::fs::read_dir(&data.images)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut ids = ids;
    ids.sort();
    ids.push("missing.jpg".into());
    let cache = d.path().join("cache");
    let ex = ExtractOptions {
        cache_dir: Some(cache.clone()),
        progress: false,
        ..Default::default()
    };
    let small = ImageFeatureConfig {
        second: Some(NetworkConfig {
            backbone: BackboneKind::EfficientNetLite0,
            pooling: Pooling::Pyramid,
            flip: false,
            crop: Crop::Centre,
            size: None,
        }),
        ..lite(BackboneKind::EfficientNetLite0, Pooling::Avg)
    };
    let two = spec(&small);
    let f = image::extract(&ids, &data.images, &two, &ex).unwrap();
    assert_eq!(f.features.ncols(), 1280 + 6400);
    assert_eq!(f.skipped.len(), 1, "the missing file, once");
    assert_eq!(f.skipped[0].id, "missing.jpg");
    for p in two.parts() {
        assert!(cache.join(p.cache_key()).is_dir(), "{}", p.cache_key());
    }
    // Each part alone (now from the cache) gives exactly its columns.
    let mut at = 0;
    for p in two.parts() {
        let one = image::extract(&ids, &data.images, &p, &ex).unwrap();
        assert_eq!(one.stats.computed, 0, "served from the part's cache");
        let w = one.features.ncols();
        assert_eq!(
            f.features.slice(ndarray::s![.., at..at + w]),
            one.features.view()
        );
        at += w;
    }
}

#[test]
fn blocks_are_normalised_on_their_own() {
    // Block 2 is 100× larger: whole-row normalisation would let it drown block 1.
    let x = Array2::from_shape_vec((1, 4), vec![3.0f32, 4.0, 300.0, 400.0]).unwrap();
    let one = ImageNorm::L2.apply_blocks(x.view(), &[]);
    assert_eq!(one, ImageNorm::L2.apply(x.view()));
    let two = ImageNorm::L2.apply_blocks(x.view(), &[2, 2]);
    let h = 1.0 / 2f32.sqrt();
    for (got, want) in two.iter().zip([0.6 * h, 0.8 * h, 0.6 * h, 0.8 * h]) {
        assert!((got - want).abs() < 1e-6, "{two:?}");
    }
    let n: f32 = two.iter().map(|v| v * v).sum();
    assert!((n - 1.0).abs() < 1e-6);
    let s = ImageNorm::SqrtL2.apply_blocks(x.view(), &[2, 2]);
    assert!((s[[0, 0]] - s[[0, 2]]).abs() < 1e-6, "{s:?}");
}

/// fit → rank → explain with two networks: the model records both and its blocks, rank runs,
/// explain's terms still sum to the score.
#[test]
fn a_two_network_model_fits_ranks_and_explains() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let data = tuwen::data::synthetic::generate(d.path(), 60, 12, 3).unwrap();
    let model = d.path().join("model");
    let run = |args: &[&str]| {
        let out = bin()
            .args(args)
            .env("TUWEN_CACHE", d.path().join("cache"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{args:?}: {text}");
        text
    };
    let pairs = data.train_pairs.to_str().unwrap().to_string();
    let images = data.images.to_str().unwrap().to_string();
    run(&[
        "fit",
        "--quiet",
        "--pairs",
        &pairs,
        "--images",
        &images,
        "--out",
        model.to_str().unwrap(),
        "--backbone",
        "efficientnet-lite0",
        "--flip",
        "false",
        "--second-backbone",
        "efficientnet-lite0",
        "--second-pooling",
        "stages",
        "--components",
        "8",
        "--reg-image",
        "0.3",
        "--reg-text",
        "0.1",
    ]);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["image"]["second"]["pooling"], "stages", "{cfg}");
    assert_eq!(
        cfg["projection"]["image_blocks"],
        serde_json::json!([1280, 112, 192, 320, 1280])
    );
    let val = data.val_pairs.to_str().unwrap().to_string();
    let out = run(&[
        "eval",
        "--quiet",
        "--json",
        "--model",
        model.to_str().unwrap(),
        "--pairs",
        &val,
        "--images",
        &images,
    ]);
    let j: serde_json::Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    assert_eq!(j["n_images"], 12, "{j}");
    assert!(j["t2i"]["r5"].as_f64().unwrap() > 0.0, "{j}");
    let out = run(&[
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--json",
        "--image",
        data.images.join("Image14000000-0000.jpg").to_str().unwrap(),
        "--caption",
        "一个红色的圆形",
    ]);
    let json: serde_json::Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    let terms = json["cosine"]["terms"].as_array().unwrap();
    assert!(!terms.is_empty());
    let sum: f64 = terms
        .iter()
        .map(|t| t["contribution"].as_f64().unwrap())
        .sum::<f64>()
        + json["cosine"]["offset"].as_f64().unwrap();
    assert!(
        (sum - json["cosine"]["cosine"].as_f64().unwrap()).abs() < 1e-5,
        "{json}"
    );
}

/// The CLI's defaults: two networks (Lite2 + Lite0, no flip) with image ridge 1; one network
/// (`--second-backbone none`) with ridge 0.3; second-network flags without a second network are
/// refused before any work.
#[test]
fn default_features_and_their_ridge_come_from_the_cli() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let data = tuwen::data::synthetic::generate(d.path(), 12, 4, 5).unwrap();
    let fit = |name: &str, extra: &[&str]| -> serde_json::Value {
        let out = d.path().join(name);
        let o = bin()
            .args([
                "fit",
                "--quiet",
                "--components",
                "4",
                "--bag-max-terms",
                "30",
            ])
            .arg("--pairs")
            .arg(&data.train_pairs)
            .arg("--images")
            .arg(&data.images)
            .arg("--cache")
            .arg(d.path().join("cache"))
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap()
    };
    let two = fit("two", &[]);
    assert_eq!(two["image"]["backbone"], "efficientnet-lite2");
    assert_eq!(two["image"]["flip"], false);
    assert_eq!(two["image"]["second"]["backbone"], "efficientnet-lite0");
    assert_eq!(two["image"]["second"]["flip"], false);
    assert_eq!(two["projection"]["cca"]["reg_x"], 1.0);
    assert_eq!(
        two["projection"]["image_blocks"],
        serde_json::json!([1280, 1280])
    );
    let one = fit("one", &["--second-backbone", "none"]);
    assert!(one["image"].get("second").is_none(), "{}", one["image"]);
    assert_eq!(one["projection"]["cca"]["reg_x"], 0.3);
    let given = fit("given", &["--second-backbone", "none", "--reg-image", "2"]);
    assert_eq!(given["projection"]["cca"]["reg_x"], 2.0);

    for flag in [["--second-flip", "true"], ["--second-pooling", "avg"]] {
        let o = bin()
            .args(["extract", "--second-backbone", "none"])
            .args(flag)
            .args(["--pairs", "no-such.csv", "--images", "no-such-folder"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(
            err.contains(flag[0]) && err.contains("needs a second network"),
            "{err}"
        );
    }
}

/// A photo-like JPEG of `w`×`h` (smooth colours, so the DCT-scaled decode has content).
fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = ::image::RgbImage::from_fn(w, h, |x, y| {
        ::image::Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            ((x + y) * 97 % 256) as u8,
        ])
    });
    common::jpeg(&img)
}

/// Two networks extracted together read and decode each file once; each still gets exactly the
/// pixels and the features it gets alone — for JPEGs both networks decode at the same reduced
/// scale (1600×1200: 1/4 for 224 and 260) and for ones they do not (640×480: 1/2 for Lite0's
/// 224, whole for Lite2's 260), a PNG, and a missing file.
#[test]
fn networks_extracted_together_equal_each_alone() {
    use tuwen::features::image::{decode, Crop};
    common::models();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("img");
    std::fs::create_dir(&dir).unwrap();
    let files = [("a.jpg", jpeg(640, 480)), ("b.jpg", jpeg(1600, 1200))];
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
        let wants = [(260, Crop::Centre), (224, Crop::Centre), (224, Crop::Five)];
        let together = decode::network_views_many(bytes, &wants);
        for ((size, crop), got) in wants.iter().zip(together) {
            let alone = decode::network_views(bytes, *size, *crop).unwrap();
            // Pixels of one deterministic integer decode and resize, not scores: exact.
            assert!(got.unwrap() == alone, "{name} at {size} {crop:?}");
        }
    }
    ::image::RgbImage::from_pixel(300, 200, ::image::Rgb([20, 200, 90]))
        .save(dir.join("c.png"))
        .unwrap();
    let ids: Vec<String> = ["a.jpg", "b.jpg", "c.png", "missing.jpg"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let ex = ExtractOptions {
        cache_dir: None,
        progress: false,
        batch_size: 2,
        ..Default::default()
    };
    let two = spec(&ImageFeatureConfig::default());
    let f = image::extract(&ids, &dir, &two, &ex).unwrap();
    assert_eq!(f.ok, vec![true, true, true, false]);
    assert_eq!((f.skipped.len(), f.stats.computed), (1, 3));
    let mut at = 0;
    for p in two.parts() {
        let one = image::extract(&ids, &dir, &p, &ex).unwrap();
        let w = one.features.ncols();
        let joint = f.features.slice(ndarray::s![.., at..at + w]);
        let scale = one.features.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (a, b) in joint.iter().zip(one.features.iter()) {
            assert!(
                (a - b).abs() <= 1e-6 * scale,
                "{}: {a} vs {b}",
                p.cache_key()
            );
        }
        at += w;
    }
}

/// The default second network is Lite0 only beside Lite2: another first network stays alone, and
/// a second network equal to the first is refused (its columns would be a copy).
#[test]
fn the_second_network_default_depends_on_the_first() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let data = tuwen::data::synthetic::generate(d.path(), 6, 3, 4).unwrap();
    let run = |extra: &[&str]| {
        bin()
            .args(["extract", "--quiet", "--no-cache"])
            .arg("--pairs")
            .arg(&data.train_pairs)
            .arg("--images")
            .arg(&data.images)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(&["--backbone", "efficientnet-lite0"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("1280-d") && !out.contains('+'), "{out}");
    let o = run(&["--second-backbone", "efficientnet-lite2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("the first one again"), "{err}");
}

/// Another input size (issue #17's scales) is part of the identity: its own cache key, read back
/// from a model's config, and its features are the network on the image resized to that side.
#[test]
fn an_input_size_is_part_of_the_identity_and_of_the_pixels() {
    use BackboneKind::*;
    let own = spec(&lite(EfficientNetLite0, Pooling::Avg));
    let big = spec(&lite(EfficientNetLite0, Pooling::Avg).with_size(Some(288)));
    assert_eq!(big.input_size, 288);
    assert!(
        big.cache_key().ends_with("-avg-noflip-s288-p4"),
        "{}",
        big.cache_key()
    );
    assert_ne!(big.identity(), own.identity());
    assert_eq!(big.config().size, Some(288));
    assert_eq!(
        own.config().size,
        None,
        "the network's own size is not recorded"
    );
    // Naming the network's own size is the default's identity.
    let named = spec(&lite(EfficientNetLite0, Pooling::Avg).with_size(Some(224)));
    assert_eq!(named.identity(), own.identity());
    let back: FeatureSpec = serde_json::from_str(&serde_json::to_string(&big).unwrap()).unwrap();
    assert!(back.same_features(&big) && !back.same_features(&own));
    // The same network at two sizes is two parts (a scale added), not a copy.
    let scales = ImageFeatureConfig {
        second: Some(NetworkConfig {
            size: Some(330),
            ..NetworkConfig::new(EfficientNetLite2, Pooling::Avg, false)
        }),
        ..lite(EfficientNetLite2, Pooling::Avg)
    };
    let s = spec(&scales);
    let keys: Vec<String> = s.parts().iter().map(|p| p.cache_key()).collect();
    assert!(
        keys[0].contains("-s260-") && keys[1].contains("-s330-"),
        "{keys:?}"
    );
    assert_eq!(s.config(), scales, "read back from the spec as asked");
    let copy = ImageFeatureConfig {
        second: Some(NetworkConfig {
            size: Some(260),
            ..NetworkConfig::new(EfficientNetLite2, Pooling::Avg, false)
        }),
        ..lite(EfficientNetLite2, Pooling::Avg)
    };
    let e = copy.resolve(None).unwrap_err().to_string();
    assert!(e.contains("the first one again"), "{e}");
    // Refused before any work: a side the network cannot take, a grid at a foreign size.
    for (cfg, word) in [
        (
            lite(EfficientNetLite0, Pooling::Avg).with_size(Some(32)),
            "outside",
        ),
        (
            lite(Vgg19, Pooling::Grid).with_size(Some(256)),
            "grid pooling needs",
        ),
    ] {
        let e = cfg.resolve(None).unwrap_err().to_string();
        assert!(e.contains(word), "{e}");
    }

    // Extraction at 288 = the network on network_views(…, 288, centre); not the 224 features.
    let d = tempfile::tempdir().unwrap();
    let data = tuwen::data::synthetic::generate(d.path(), 6, 2, 5).unwrap();
    let mut ids: Vec<String> = std::fs::read_dir(&data.images)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    ids.truncate(4);
    let ex = ExtractOptions {
        cache_dir: None,
        progress: false,
        ..Default::default()
    };
    let got = image::extract(&ids, &data.images, &big, &ex).unwrap();
    let small = image::extract(&ids, &data.images, &own, &ex).unwrap();
    let net = Backbone::load(EfficientNetLite0, None, Device::Cpu).unwrap();
    for (i, id) in ids.iter().enumerate() {
        let bytes = std::fs::read(data.images.join(id)).unwrap();
        let px =
            image::view_pixels(image::decode::network_views(&bytes, 288, Crop::Centre).unwrap());
        assert_eq!(px.len(), 288 * 288 * 3);
        let want = &image::forward(&net, &[px.as_slice()], 288, &big.config()).unwrap()[0];
        let row = got.features.row(i);
        let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
        let diff = row
            .iter()
            .zip(want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff <= 1e-4 * scale, "{id}: {diff} of {scale}");
        let other = small.features.row(i);
        let apart = row
            .iter()
            .zip(other.iter())
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            apart > 1e-3 * scale,
            "{id}: 288 px gave the 224 px features"
        );
    }
}

#[test]
fn size_flags_are_checked_and_recorded() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let data = tuwen::data::synthetic::generate(d.path(), 24, 6, 3).unwrap();
    let pairs = data.train_pairs.to_str().unwrap().to_string();
    let images = data.images.to_str().unwrap().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec!["fit", "--quiet", "--pairs", &pairs, "--images", &images];
        args.extend_from_slice(extra);
        bin()
            .args(&args)
            .env("TUWEN_CACHE", d.path().join("cache"))
            .output()
            .unwrap()
    };
    let unused = d.path().join("unused");
    let unused = unused.to_str().unwrap();
    let out = run(&[
        "--out",
        unused,
        "--second-backbone",
        "none",
        "--second-size",
        "300",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--second-size needs a second network"),
        "{err}"
    );
    let out = run(&["--out", unused, "--size", "20"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("(--size) is outside"),
        "{err}"
    );
    assert!(!std::path::Path::new(unused).exists());
    let model = d.path().join("model");
    let out = run(&[
        "--out",
        model.to_str().unwrap(),
        "--backbone",
        "efficientnet-lite0",
        "--size",
        "192",
        "--second-backbone",
        "none",
        "--components",
        "4",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["image"]["input_size"], 192, "{cfg}");
}
