//! The fused inference path (batch norm folded into the convolutions, padding inside them, the
//! mirrored view in the same batch) and the reduced-scale JPEG decode give today's features.
//! Needs the set-up (models/); the Flickr8k-CN images of ../shared/data for the real-photo check.
mod common;
use tch::{Device, Kind, Tensor};
use tuwen::features::image::{
    self, decode, Backbone, BackboneKind, ImageFeatureConfig, InferencePath, Pooling,
};

/// Largest |a - b| over the largest |b|: the relative error of a whole feature vector.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(scale > 0.0, "all-zero features");
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(|p| p.as_slice()).collect()
}

fn lite(kind: BackboneKind) -> ImageFeatureConfig {
    ImageFeatureConfig::single(kind, Pooling::Avg, true)
}

#[test]
fn fused_features_equal_the_reference_path_on_the_same_pixels() {
    common::models();
    let files = common::flickr_images_with("狗", 3);
    for kind in [
        BackboneKind::EfficientNetLite2,
        BackboneKind::EfficientNetLite0,
    ] {
        let cfg = lite(kind);
        for channels_last in [true, false] {
            let mut net = Backbone::load(kind, None, Device::Cpu).unwrap();
            assert_eq!(net.inference_path(), InferencePath::Fused, "the default");
            net.set_channels_last(channels_last);
            let fused = image::features_of_files(&net, &files, &cfg).unwrap();
            net.set_inference_path(InferencePath::Reference);
            let reference = image::features_of_files(&net, &files, &cfg).unwrap();
            for (i, (a, b)) in fused.iter().zip(&reference).enumerate() {
                let d = rel_diff(a, b);
                assert!(
                    d <= 1e-4,
                    "{kind:?} channels-last {channels_last} image {i}: relative diff {d}"
                );
            }
        }
    }
}

/// Odd and even sides take both padding branches (inside the convolution where SAME padding is
/// symmetric, an explicit copy where a stride-2 unit pads one side more).
#[test]
fn fused_maps_equal_the_reference_at_odd_and_even_input_sizes() {
    common::models();
    let mut net = Backbone::load(BackboneKind::EfficientNetLite0, None, Device::Cpu).unwrap();
    tch::manual_seed(7);
    for side in [31i64, 32, 33, 64, 65] {
        let x = Tensor::rand([2, 3, side, side], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        net.set_inference_path(InferencePath::Fused);
        let a = tch::no_grad(|| net.feature_map(&x));
        net.set_inference_path(InferencePath::Reference);
        let b = tch::no_grad(|| net.feature_map(&x));
        assert_eq!(a.size(), b.size(), "side {side}");
        let va = Vec::<f32>::try_from(a.flatten(0, -1)).unwrap();
        let vb = Vec::<f32>::try_from(b.flatten(0, -1)).unwrap();
        let d = rel_diff(&va, &vb);
        assert!(d <= 1e-4, "side {side}: relative diff {d}");
    }
}

/// A flipped batch computed in one pass is the average of the two views, not one of them.
#[test]
fn one_pass_flip_averages_both_views() {
    common::models();
    let files = common::flickr_images_with("狗", 2);
    let kind = BackboneKind::EfficientNetLite0;
    let net = Backbone::load(kind, None, Device::Cpu).unwrap();
    let size = kind.input_size();
    let px: Vec<Vec<u8>> = files
        .iter()
        .map(|f| {
            decode::network_input(&std::fs::read(f).unwrap(), size)
                .unwrap()
                .into_raw()
        })
        .collect();
    let mirrored: Vec<Vec<u8>> = files
        .iter()
        .map(|f| {
            let img = decode::network_input(&std::fs::read(f).unwrap(), size).unwrap();
            ::image::imageops::flip_horizontal(&img).into_raw()
        })
        .collect();
    let plain = ImageFeatureConfig {
        flip: false,
        ..lite(kind)
    };
    let a = image::forward(&net, &refs(&px), size, &plain).unwrap();
    let b = image::forward(&net, &refs(&mirrored), size, &plain).unwrap();
    let both = image::forward(&net, &refs(&px), size, &lite(kind)).unwrap();
    for i in 0..files.len() {
        let mean: Vec<f32> = a[i].iter().zip(&b[i]).map(|(x, y)| (x + y) / 2.0).collect();
        assert!(rel_diff(&both[i], &mean) <= 1e-4, "image {i}");
        assert!(rel_diff(&both[i], &a[i]) > 1e-3, "image {i}: flip ignored");
    }
}

/// A photo-like test image: smooth colour gradients with texture, `w`×`h`.
fn photo(w: u32, h: u32) -> Vec<u8> {
    let mut px = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let tex = ((x as f32 * 0.05).sin() * (y as f32 * 0.07).cos() * 20.0) as i32;
            let c = |v: f32| (v * 200.0 + 20.0 + tex as f32).clamp(0.0, 255.0) as u8;
            px.extend([c(fx), c(fy), c(1.0 - fx * fy)]);
        }
    }
    px
}

fn jpeg(px: &[u8], w: u32, h: u32, exif_orientation: Option<u16>) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut e = jpeg_encoder::Encoder::new(&mut buf, 92);
    if let Some(o) = exif_orientation {
        // Exif header, big-endian TIFF header, one IFD entry: Orientation (0x0112), SHORT, 1.
        let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
        exif.extend(o.to_be_bytes());
        exif.extend([0, 0, 0, 0, 0, 0]);
        e.add_app_segment(1, &exif).unwrap();
    }
    e.encode(px, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    buf
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .sum::<f64>()
        / a.len() as f64
}

#[test]
fn scale_denominator_keeps_the_network_input_size() {
    use decode::jpeg_scale_denominator as d;
    assert_eq!(
        d(500, 375, 260),
        None,
        "Flickr-sized photos are decoded whole"
    );
    assert_eq!(d(600, 518, 260), None, "ceil(518 / 2) = 259");
    assert_eq!(d(600, 520, 260), Some(2));
    assert_eq!(d(4720, 3785, 260), Some(8), "the largest Teddy photo");
    assert_eq!(d(2100, 1700, 260), Some(4));
    assert_eq!(d(1700, 2100, 260), Some(4), "the shorter side decides");
    assert_eq!(d(2079, 2079, 260), Some(8), "ceil(2079 / 8) = 260");
    assert_eq!(d(2072, 2072, 260), Some(4), "ceil(2072 / 8) = 259");
    assert_eq!(d(100, 100, 0), None);
}

#[test]
fn large_jpegs_decode_at_reduced_scale_to_nearly_the_same_pixels() {
    let (w, h) = (2100u32, 1700u32);
    let bytes = jpeg(&photo(w, h), w, h, None);
    let scaled = decode::decode_at_least(&bytes, 260).unwrap();
    assert_eq!(scaled.dimensions(), (525, 425), "1/4 scale");
    let full = decode::decode(&bytes).unwrap();
    assert_eq!(full.dimensions(), (w, h));
    let a = decode::network_input(&bytes, 260).unwrap();
    let b = decode::resize_center_crop(&full, 260);
    assert_eq!(a.dimensions(), (260, 260));
    let d = mean_abs_diff(a.as_raw(), b.as_raw());
    assert!(d < 3.0, "mean abs pixel difference {d}");
}

#[test]
fn reduced_scale_decode_applies_exif_orientation() {
    // Orientation 6: the stored 2100×1700 image is shown rotated 90° clockwise, 1700×2100.
    let (w, h) = (2100u32, 1700u32);
    let bytes = jpeg(&photo(w, h), w, h, Some(6));
    let full = decode::decode(&bytes).unwrap();
    assert_eq!(full.dimensions(), (h, w), "the full decoder rotates");
    let scaled = decode::decode_at_least(&bytes, 260).unwrap();
    assert_eq!(
        scaled.dimensions(),
        (425, 525),
        "rotated like the full decode"
    );
    let a = decode::network_input(&bytes, 260).unwrap();
    let b = decode::resize_center_crop(&full, 260);
    let d = mean_abs_diff(a.as_raw(), b.as_raw());
    assert!(d < 3.0, "mean abs pixel difference {d} (orientation lost?)");
    // Unrotated pixels would differ a lot: the check above can fail.
    let unrotated = decode::resize_center_crop(
        &::image::RgbImage::from_raw(w, h, photo(w, h)).unwrap(),
        260,
    );
    assert!(mean_abs_diff(a.as_raw(), unrotated.as_raw()) > 10.0);
}

#[test]
fn small_jpegs_and_other_formats_keep_their_exact_pixels() {
    let (w, h) = (500u32, 375u32);
    let px = photo(w, h);
    let bytes = jpeg(&px, w, h, None);
    let full = decode::decode(&bytes).unwrap();
    let a = decode::network_input(&bytes, 260).unwrap();
    assert_eq!(
        a,
        decode::resize_center_crop(&full, 260),
        "JPEG decoded whole"
    );
    let mut png = Vec::new();
    ::image::RgbImage::from_raw(1200, 1100, photo(1200, 1100))
        .unwrap()
        .write_to(
            &mut std::io::Cursor::new(&mut png),
            ::image::ImageFormat::Png,
        )
        .unwrap();
    let full = decode::decode(&png).unwrap();
    assert_eq!(
        decode::network_input(&png, 260).unwrap(),
        decode::resize_center_crop(&full, 260),
        "PNG decoded whole"
    );
}

#[test]
fn grey_large_jpegs_decode_at_reduced_scale_to_rgb() {
    let (w, h) = (1200u32, 1000u32);
    let grey: Vec<u8> = photo(w, h).chunks(3).map(|p| p[0]).collect();
    let mut bytes = Vec::new();
    jpeg_encoder::Encoder::new(&mut bytes, 92)
        .encode(&grey, w as u16, h as u16, jpeg_encoder::ColorType::Luma)
        .unwrap();
    let scaled = decode::decode_at_least(&bytes, 260).unwrap();
    assert_eq!(scaled.dimensions(), (600, 500), "1/2 scale");
    let a = decode::network_input(&bytes, 224).unwrap();
    let b = decode::resize_center_crop(&decode::decode(&bytes).unwrap(), 224);
    assert!(mean_abs_diff(a.as_raw(), b.as_raw()) < 3.0);
    assert!(
        a.pixels().all(|p| p[0] == p[1] && p[1] == p[2]),
        "grey stays grey"
    );
}

#[test]
fn truncated_large_jpegs_still_fail_with_the_full_decoders_message() {
    let (w, h) = (1200u32, 1000u32);
    let bytes = jpeg(&photo(w, h), w, h, None);
    let cut = &bytes[..bytes.len() / 2];
    let e = decode::network_input(cut, 260).unwrap_err();
    assert_eq!(e, decode::decode(cut).unwrap_err());
}
