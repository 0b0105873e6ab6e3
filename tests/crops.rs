//! Crops and scales (issue #17 item 1): how the network input is cut from the image is part of
//! the one feature spec. `centre` is today's input exactly (pixels, cache keys, model identity),
//! `whole` resizes the whole image, `five` averages the 4 corner crops and the centre crop.
//! Small generated images; the feature checks need models/ from set-up, not ../shared.
mod common;
use image::{ImageFormat, RgbImage};
use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use tch::Device;
use tuwen::features::image::{
    self as fimg, decode, Backbone, BackboneKind, Crop, FeatureSpec, ImageFeatureConfig,
    NetworkConfig, Pooling,
};

const CROPS: [Crop; 3] = [Crop::Centre, Crop::Whole, Crop::Five];

/// A picture with different structure in every region, so every crop sees something else.
fn picture(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w.max(1)) as u8,
            if y > h / 2 { 220 } else { (y % 37) as u8 * 6 },
            if x > w / 3 {
                ((x + y) % 61) as u8 * 4
            } else {
                30
            },
        ])
    })
}

fn png(img: &RgbImage) -> Vec<u8> {
    let mut buf = Vec::new();
    img.write_to(&mut Cursor::new(&mut buf), ImageFormat::Png)
        .unwrap();
    buf
}

/// `(x, y, w, h)` of `img` resized to `size`² as preprocessing v4 does it: fast_image_resize's
/// bilinear convolution with the source cropped to the region, called directly here so that a
/// change to the shared code cannot move both sides.
fn region_resized(img: &RgbImage, (x, y, w, h): (u32, u32, u32, u32), size: u32) -> RgbImage {
    use fast_image_resize as fir;
    let src = fir::images::ImageRef::new(
        img.width(),
        img.height(),
        img.as_raw(),
        fir::PixelType::U8x3,
    )
    .unwrap();
    let mut dst = fir::images::Image::new(size, size, fir::PixelType::U8x3);
    let opts = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear))
        .crop(x as f64, y as f64, w as f64, h as f64);
    fir::Resizer::new().resize(&src, &mut dst, &opts).unwrap();
    RgbImage::from_raw(size, size, dst.into_vec()).unwrap()
}

/// The centre input written out: decode, the centre square cut in source coordinates, resized.
fn todays_centre(bytes: &[u8], size: u32) -> RgbImage {
    let img = decode::decode_at_least(bytes, size).unwrap();
    let (w, h) = img.dimensions();
    let side = w.min(h).max(1);
    let (x, y) = ((w - side.min(w)) / 2, (h - side.min(h)) / 2);
    region_resized(&img, (x, y, side.min(w), side.min(h)), size)
}

#[test]
fn centre_is_todays_network_input_exactly() {
    // Small and large, both orientations, PNG and JPEG (a 2000×1500 JPEG is
    // decoded at reduced DCT scale).
    for (w, h) in [
        (300u32, 200u32),
        (200, 300),
        (224, 224),
        (1200, 1000),
        (2000, 1500),
    ] {
        let img = picture(w, h);
        for bytes in [png(&img), common::jpeg(&img)] {
            for size in [224, 260] {
                let v = decode::network_views(&bytes, size, Crop::Centre).unwrap();
                assert_eq!(v.len(), 1);
                assert_eq!(v[0], todays_centre(&bytes, size), "{w}×{h} at {size}");
                assert_eq!(decode::network_input(&bytes, size).unwrap(), v[0]);
            }
        }
    }
}

#[test]
fn whole_is_a_plain_resize_of_the_whole_image() {
    let img = picture(300, 200);
    let bytes = png(&img);
    let v = decode::network_views(&bytes, 224, Crop::Whole).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0], region_resized(&img, (0, 0, 300, 200), 224));
    let centre = decode::network_input(&bytes, 224).unwrap();
    assert_ne!(
        v[0], centre,
        "a non-square image's whole differs from its centre"
    );
    // A square image has nothing to cut: whole and centre are the same pixels.
    let sq = png(&picture(250, 250));
    assert_eq!(
        decode::network_views(&sq, 224, Crop::Whole).unwrap(),
        decode::network_views(&sq, 224, Crop::Centre).unwrap()
    );
    // Large and elongated: still 224×224.
    let big = decode::network_views(&png(&picture(2400, 500)), 224, Crop::Whole).unwrap();
    assert_eq!(big[0].dimensions(), (224, 224));
}

#[test]
fn five_crops_are_the_corners_and_centre_of_the_scaled_image() {
    assert_eq!(decode::five_crop_scale(224), 256);
    assert_eq!(decode::five_crop_scale(260), 297);
    let img = picture(400, 300);
    let v = decode::network_views(&png(&img), 224, Crop::Five).unwrap();
    assert_eq!(v.len(), 5);
    // Shorter side 300 scaled to 256: a 224 crop there is round(300·224/256) = 263 source px.
    let c = 263;
    let at = |x, y| region_resized(&img, (x, y, c, c), 224);
    let (r, b) = (400 - c, 300 - c);
    let want = [at(0, 0), at(r, 0), at(0, b), at(r, b), at(r / 2, b / 2)];
    for (i, (got, want)) in v.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "view {i}");
    }
    for i in 0..5 {
        for j in 0..i {
            assert_ne!(v[i], v[j], "views {i} and {j} are the same");
        }
    }
}

/// Largest |a - b| over the largest |b|.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(scale > 0.0, "all-zero features");
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn mean(rows: &[Vec<f32>]) -> Vec<f32> {
    let mut m = vec![0f32; rows[0].len()];
    for r in rows {
        for (a, b) in m.iter_mut().zip(r) {
            *a += b / rows.len() as f32;
        }
    }
    m
}

/// The five-crop feature is the mean of its 5 views' features, each view computed alone as a
/// centre-crop input (pooled per view, then averaged: every block of pyramid pooling too; with
/// flip each view's mirror joins: 10 views). Several images in one batch (70 views: more than
/// one pass) each get their own views' mean.
#[test]
fn five_is_the_mean_of_its_views_features() {
    common::models();
    let kind = BackboneKind::EfficientNetLite0;
    let net = Backbone::load(kind, None, Device::Cpu).unwrap();
    let size = kind.input_size();
    let images: Vec<Vec<u8>> = [(400, 300), (300, 420), (260, 260), (500, 200)]
        .iter()
        .map(|&(w, h)| png(&picture(w, h)))
        .collect();
    for (pooling, flip) in [
        (Pooling::Avg, false),
        (Pooling::Avg, true),
        (Pooling::Pyramid, false),
    ] {
        let one = ImageFeatureConfig::single(kind, pooling, flip);
        let five = one.with_crop(Crop::Five);
        let px: Vec<Vec<u8>> = images
            .iter()
            .map(|b| fimg::view_pixels(decode::network_views(b, size, Crop::Five).unwrap()))
            .collect();
        let refs: Vec<&[u8]> = px.iter().map(|p| p.as_slice()).collect();
        let together = fimg::forward(&net, &refs, size, &five).unwrap();
        assert_eq!(together.len(), images.len());
        for (i, bytes) in images.iter().enumerate() {
            let views = decode::network_views(bytes, size, Crop::Five).unwrap();
            let alone: Vec<Vec<f32>> = views
                .iter()
                .map(|v| {
                    fimg::forward(&net, &[v.as_raw().as_slice()], size, &one).unwrap()[0].clone()
                })
                .collect();
            let want = mean(&alone);
            let d = rel_diff(&together[i], &want);
            assert!(
                d <= 1e-5,
                "{pooling:?} flip {flip} image {i}: relative diff {d}"
            );
            assert!(
                rel_diff(&alone[0], &want) > 1e-3,
                "{pooling:?} image {i}: the corner view alone is the mean"
            );
        }
    }
    // More views than one pass holds (7 images × 10 views): each image's row is still its own.
    let cfg = ImageFeatureConfig::single(kind, Pooling::Avg, true).with_crop(Crop::Five);
    let many: Vec<Vec<u8>> = (0..7)
        .map(|i| {
            let b = &images[i % images.len()];
            fimg::view_pixels(decode::network_views(b, size, Crop::Five).unwrap())
        })
        .collect();
    let refs: Vec<&[u8]> = many.iter().map(|p| p.as_slice()).collect();
    let rows = fimg::forward(&net, &refs, size, &cfg).unwrap();
    for (i, row) in rows.iter().enumerate() {
        let alone = fimg::forward(&net, &[refs[i]], size, &cfg).unwrap();
        let d = rel_diff(row, &alone[0]);
        assert!(d <= 1e-5, "image {i} in a batch of 7: relative diff {d}");
    }
    // An input of the wrong number of views is an error, not a panic.
    let single = fimg::view_pixels(decode::network_views(&images[0], size, Crop::Centre).unwrap());
    let e = fimg::forward(&net, &[single.as_slice()], size, &cfg).unwrap_err();
    assert!(e.to_string().contains("5 view(s)"), "{e}");
}

/// One path from file to network input: features_of_files and the networks of `serve` uploads
/// see the crop's views.
#[test]
fn every_path_to_the_network_takes_the_crop() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("a.png");
    let bytes = png(&picture(420, 260));
    std::fs::write(&file, &bytes).unwrap();
    let kind = BackboneKind::EfficientNetLite0;
    let net = Backbone::load(kind, None, Device::Cpu).unwrap();
    for crop in CROPS {
        let cfg = ImageFeatureConfig::single(kind, Pooling::Avg, false).with_crop(crop);
        let spec = cfg.resolve(None).unwrap();
        let px = fimg::view_pixels(decode::network_views(&bytes, 224, crop).unwrap());
        let direct = fimg::forward(&net, &[px.as_slice()], 224, &cfg).unwrap();
        let files = fimg::features_of_files(&net, std::slice::from_ref(&file), &cfg).unwrap();
        assert_eq!(files, direct, "{crop:?}");
        let upload = fimg::Networks::pixels(&spec, &bytes).unwrap();
        assert_eq!(upload, vec![px], "{crop:?}");
        let nets = fimg::Networks::load(&spec, None, Device::Cpu).unwrap();
        assert!(rel_diff(&nets.features(&upload).unwrap(), &direct[0]) <= 1e-6);
    }
}

fn lite0(crop: Crop) -> FeatureSpec {
    common::models();
    ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, false)
        .with_crop(crop)
        .resolve(None)
        .unwrap()
}

#[test]
fn the_crop_is_part_of_the_identity_and_centre_keeps_todays() {
    let centre = lite0(Crop::Centre);
    let sha = &centre.weights_sha256;
    // Today's key and identity, letter for letter: existing caches stay valid.
    assert_eq!(
        centre.cache_key(),
        format!("efficientnet-lite0-w{}-avg-noflip-s224-p4", &sha[..12])
    );
    assert_eq!(
        centre.identity(),
        format!("efficientnet-lite0-w{sha}-avg-noflip-s224-p4")
    );
    assert!(!centre.describe().contains("crop") && !centre.describe().contains("whole"));
    // A centre spec is written as before (no `crop` field), and a spec written before crops
    // existed reads as the centre crop, the same features.
    let json = serde_json::to_string(&centre).unwrap();
    assert!(!json.contains("crop"), "{json}");
    let old = format!(
        r#"{{"backbone":"efficientnet-lite0","weights_sha256":"{sha}","weights_file":"efficientnet-lite0.safetensors","pooling":"avg","flip":false,"input_size":224,"preprocess_version":4}}"#
    );
    let back: FeatureSpec = serde_json::from_str(&old).unwrap();
    assert_eq!(back.crop, Crop::Centre);
    assert!(back.same_features(&centre));
    assert_eq!(serde_json::to_string(&back).unwrap(), old);
    let cfg: ImageFeatureConfig = serde_json::from_str(
        r#"{"backbone":"efficientnet-lite0","pooling":"avg","flip":false,"second":{"backbone":"efficientnet-lite2","pooling":"avg","flip":true}}"#,
    )
    .unwrap();
    assert_eq!(cfg.crop, Crop::Centre);
    assert_eq!(cfg.second.unwrap().crop, Crop::Centre);

    let whole = lite0(Crop::Whole);
    let five = lite0(Crop::Five);
    assert_eq!(whole.cache_key(), format!("{}-whole", centre.cache_key()));
    assert_eq!(five.cache_key(), format!("{}-five", centre.cache_key()));
    assert!(
        whole.describe().contains("whole image"),
        "{}",
        whole.describe()
    );
    assert!(
        five.describe().contains("five crops"),
        "{}",
        five.describe()
    );
    let all = [&centre, &whole, &five];
    for (i, a) in all.iter().enumerate() {
        assert_eq!(a.dim(), 1280, "the crop does not change the width");
        let back: FeatureSpec = serde_json::from_str(&serde_json::to_string(a).unwrap()).unwrap();
        assert!(back.same_features(a));
        assert_eq!(back.crop, a.crop);
        for b in &all[..i] {
            assert!(!a.same_features(b), "{} vs {}", a.describe(), b.describe());
            assert_ne!(a.identity(), b.identity());
            assert_ne!(a.cache_key(), b.cache_key());
        }
    }
    // The second network's crop is its own part's.
    let two = ImageFeatureConfig {
        second: Some(NetworkConfig {
            backbone: BackboneKind::EfficientNetLite0,
            pooling: Pooling::Avg,
            flip: false,
            crop: Crop::Five,
            size: None,
        }),
        ..ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, false)
    }
    .resolve(None)
    .unwrap();
    let parts = two.parts();
    assert_eq!(parts[0].cache_key(), centre.cache_key());
    assert_eq!(parts[1].cache_key(), five.cache_key());
    assert_eq!(two.config().second.unwrap().crop, Crop::Five);
}

/// Images of any shape work for every crop, each view the input size.
#[test]
fn elongated_images_work_for_every_crop() {
    for (w, h) in [(20_000u32, 1u32), (1, 20_000), (19_999, 2), (3, 7)] {
        let bytes = png(&picture(w, h));
        for crop in CROPS {
            for size in [224, 260] {
                let v = decode::network_views(&bytes, size, crop).unwrap();
                assert_eq!(v.len(), crop.views(), "{w}×{h} {crop:?}");
                assert!(v.iter().all(|v| v.dimensions() == (size, size)));
            }
        }
    }
}

fn tuwen(args: &[&str], cache: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .args(args)
        .env("TUWEN_CACHE", cache)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn shards(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    v.sort();
    v
}

/// fit --crop whole records the crop in the model; eval computes whole-image features under
/// their own key; features of another crop (centre shards copied into the model's folder) are
/// refused and recomputed, as for any other spec change.
#[test]
fn a_model_records_its_crop_and_refuses_features_of_another() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let data = tuwen::data::synthetic::generate(d.path(), 40, 10, 3).unwrap();
    let cache = d.path().join("cache");
    let model = d.path().join("model");
    let (pairs, images) = (
        data.train_pairs.to_str().unwrap(),
        data.images.to_str().unwrap(),
    );
    let net: &[&str] = &[
        "--backbone",
        "efficientnet-lite0",
        "--flip",
        "false",
        "--second-backbone",
        "none",
    ];
    let (ok, out) = tuwen(
        &[
            &["extract", "--quiet", "--pairs", pairs, "--images", images][..],
            net,
        ]
        .concat(),
        &cache,
    );
    assert!(ok, "{out}");
    let (ok, out) = tuwen(
        &[
            &["fit", "--quiet", "--pairs", pairs, "--images", images][..],
            net,
            &["--crop", "whole", "--components", "8", "--reg-image", "0.3"][..],
            &["--reg-text", "0.1", "--out", model.to_str().unwrap()][..],
        ]
        .concat(),
        &cache,
    );
    assert!(ok, "{out}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["image"]["crop"], "whole", "{cfg}");
    let (centre, whole) = (lite0(Crop::Centre), lite0(Crop::Whole));
    let loaded = tuwen::model::Model::load(&model).unwrap();
    let spec = loaded.feature_spec(None).unwrap();
    assert!(spec.same_features(&whole) && !spec.same_features(&centre));
    let whole_dir = cache.join(whole.cache_key());
    assert!(
        !shards(&whole_dir).is_empty(),
        "whole features cached under their own key"
    );

    // Centre shards put in the model's folder (a wrong merge) are not served to it.
    for s in shards(&whole_dir) {
        std::fs::remove_file(s).unwrap();
    }
    let copied: Vec<_> = shards(&cache.join(centre.cache_key()))
        .into_iter()
        .map(|s| {
            let to = whole_dir.join(s.file_name().unwrap());
            std::fs::copy(&s, &to).unwrap();
            to
        })
        .collect();
    let val = data.val_pairs.to_str().unwrap();
    let (ok, out) = tuwen(
        &[
            "eval",
            "--json",
            "--model",
            model.to_str().unwrap(),
            "--pairs",
            val,
            "--images",
            images,
        ],
        &cache,
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&copied[0].display().to_string()) && out.contains("not used"),
        "centre features must not be served to a whole-image model: {out}"
    );
    // And a model of centre features (no --crop) is written as before: no crop field.
    let centre_model = d.path().join("centre");
    let (ok, out) = tuwen(
        &[
            &["fit", "--quiet", "--pairs", pairs, "--images", images][..],
            net,
            &[
                "--components",
                "8",
                "--reg-image",
                "0.3",
                "--reg-text",
                "0.1",
            ][..],
            &["--out", centre_model.to_str().unwrap()][..],
        ]
        .concat(),
        &cache,
    );
    assert!(ok, "{out}");
    let text = std::fs::read_to_string(centre_model.join("config.json")).unwrap();
    assert!(!text.contains("crop"), "{text}");
}
