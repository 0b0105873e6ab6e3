//! The pretrained assets fetched by scripts/setup.sh load and behave like ImageNet / word2vec models.
//! Needs the set-up (models/) and ../shared/data.
mod common;
use tch::{Device, Kind};
use tuwen::features::image::{self, Backbone, BackboneKind, ImageFeatureConfig, Pooling};

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let d: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    d / (n(a) * n(b))
}

#[test]
fn vgg19_image_and_its_flip_are_nearer_than_two_images() {
    common::models();
    let files = common::flickr_images_with("狗", 3);
    let net = Backbone::load(BackboneKind::Vgg19, None, Device::Cpu).unwrap();
    let cfg = ImageFeatureConfig::single(BackboneKind::Vgg19, Pooling::Avg, false);
    let size = cfg.backbone.input_size();
    let mut px = Vec::new();
    for f in &files {
        let img = image::decode::decode(&std::fs::read(f).unwrap()).unwrap();
        let crop = image::decode::resize_center_crop(&img, size);
        let flipped = ::image::imageops::flip_horizontal(&crop);
        px.push(crop.into_raw());
        px.push(flipped.into_raw());
    }
    let refs: Vec<&[u8]> = px.iter().map(|p| p.as_slice()).collect();
    let f = image::forward(&net, &refs, size, &cfg).unwrap();
    for v in &f {
        assert_eq!(v.len(), 512, "documented VGG GAP dimension");
        assert!(v.iter().all(|x| x.is_finite()));
        let (lo, hi) = v
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        assert!(hi - lo > 1e-3, "feature is constant");
    }
    for i in 0..3 {
        let same = cosine(&f[2 * i], &f[2 * i + 1]);
        for j in 0..3 {
            if j != i {
                let other = cosine(&f[2 * i], &f[2 * j]);
                assert!(
                    same > other,
                    "image {i}: flip cosine {same} <= other image {j} cosine {other}"
                );
            }
        }
    }
}

#[test]
fn vgg19_grid_pooling_has_pool5_dimension() {
    common::models();
    let files = common::flickr_images_with("狗", 1);
    let net = Backbone::load(BackboneKind::Vgg19, None, Device::Cpu).unwrap();
    let cfg = ImageFeatureConfig::single(BackboneKind::Vgg19, Pooling::Grid, true);
    let f = image::features_of_files(&net, &files, &cfg).unwrap();
    assert_eq!(f[0].len(), 25_088);
    assert!(f[0].iter().all(|x| x.is_finite() && *x >= 0.0));
}

/// ImageNet classes 151..=268 are dog breeds. Flickr8k-CN val images whose captions say 狗 (dog)
/// should mostly be classified as some dog breed.
fn dog_top1_rate(kind: BackboneKind) -> f64 {
    common::models();
    let files = common::flickr_images_with("狗", 12);
    assert_eq!(files.len(), 12);
    let net = Backbone::load(kind, None, Device::Cpu).unwrap();
    let size = kind.input_size() as i64;
    let px: Vec<u8> = files
        .iter()
        .flat_map(|f| {
            let img = image::decode::decode(&std::fs::read(f).unwrap()).unwrap();
            image::decode::resize_center_crop(&img, size as u32).into_raw()
        })
        .collect();
    let x = tch::Tensor::from_slice(&px)
        .view([12, size, size, 3])
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float);
    let logits =
        tch::no_grad(|| net.logits(&net.normalise(&x))).expect("EfficientNet has a classifier");
    let top: Vec<i64> = Vec::try_from(logits.argmax(1, false)).unwrap();
    top.iter().filter(|&&c| (151..=268).contains(&c)).count() as f64 / 12.0
}

#[test]
fn efficientnet_lite0_classifies_dogs_as_dogs() {
    let rate = dog_top1_rate(BackboneKind::EfficientNetLite0);
    assert!(
        rate >= 0.5,
        "only {:.0}% of dog photos got a dog-breed class",
        rate * 100.0
    );
}

#[test]
fn efficientnet_lite2_classifies_dogs_as_dogs() {
    let rate = dog_top1_rate(BackboneKind::EfficientNetLite2);
    assert!(
        rate >= 0.5,
        "only {:.0}% of dog photos got a dog-breed class",
        rate * 100.0
    );
}

#[test]
fn word2vec_loads_with_expected_shape_and_neighbours() {
    common::models();
    let cfg = tuwen::features::text::TextFeatureConfig::default();
    let enc = tuwen::features::text::TextEncoder::load(cfg, None).unwrap();
    assert_eq!(enc.vocab_len(), 125_796);
    assert_eq!(enc.dim(), 100);
    let near: Vec<String> = enc.nearest("狗", 20).into_iter().map(|x| x.0).collect();
    assert!(near.iter().any(|w| w == "猫"), "狗's neighbours: {near:?}");
}

#[test]
fn missing_or_corrupted_weights_name_the_file_and_the_setup_script() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("vgg19.safetensors");
    let e = Backbone::load(BackboneKind::Vgg19, Some(&missing), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("vgg19.safetensors") && e.contains("scripts/setup.sh"),
        "{e}"
    );

    let corrupt = d.path().join("efficientnet-lite0.safetensors");
    std::fs::write(
        &corrupt,
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all",
    )
    .unwrap();
    let e = Backbone::load(BackboneKind::EfficientNetLite0, Some(&corrupt), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("efficientnet-lite0.safetensors") && e.contains("scripts/setup.sh"),
        "{e}"
    );

    // A file listed in SHA256SUMS whose bytes changed is caught by its checksum.
    let real = common::models().join("efficientnet-lite0.safetensors");
    let mut bytes = std::fs::read(&real).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    let flipped = d.path().join("efficientnet-lite0.safetensors");
    std::fs::write(&flipped, &bytes).unwrap();
    let sums = std::fs::read_to_string(common::models().join("SHA256SUMS")).unwrap();
    std::fs::write(d.path().join("SHA256SUMS"), sums).unwrap();
    let e = Backbone::load(BackboneKind::EfficientNetLite0, Some(&flipped), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("corrupted") && e.contains("scripts/setup.sh"),
        "{e}"
    );

    let bad_vec = d.path().join("words.vector");
    std::fs::write(&bad_vec, b"garbage").unwrap();
    let cfg = tuwen::features::text::TextFeatureConfig {
        remove_stopwords: false,
        ..Default::default()
    };
    let e = tuwen::features::text::TextEncoder::load(cfg, Some(&bad_vec))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("words.vector") && e.contains("scripts/setup.sh"),
        "{e}"
    );
}

/// The channels-last layout (the default, for speed) computes the same features as plain NCHW,
/// for both network families (plain convolutions, and depthwise + batch norm + padding).
#[test]
fn channels_last_and_nchw_layouts_give_the_same_features() {
    common::models();
    let files = common::flickr_images_with("狗", 2);
    for kind in [BackboneKind::Vgg19, BackboneKind::EfficientNetLite0] {
        let cfg = ImageFeatureConfig::single(kind, Pooling::Avg, false);
        let mut net = Backbone::load(kind, None, Device::Cpu).unwrap();
        assert!(net.channels_last(), "channels-last is the default");
        let fast = image::features_of_files(&net, &files, &cfg).unwrap();
        net.set_channels_last(false);
        let plain = image::features_of_files(&net, &files, &cfg).unwrap();
        for (a, b) in fast.iter().zip(&plain) {
            let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
            let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(scale > 0.0);
            assert!(
                diff <= 1e-4 * scale,
                "{kind:?}: max diff {diff} at scale {scale}"
            );
        }
    }
}
