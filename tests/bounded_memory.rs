//! Decoding stays within the documented memory: elongated images (a valid 20000×1 PNG is 143
//! bytes) are cropped before resizing, an image whose decoded size (counted as the buffers the
//! decoders really allocate, colour conversion included) exceeds 512 MiB is refused before
//! allocating, and concurrent decodes share one 512 MiB budget. Its own test binary, so the
//! process's peak memory is these tests' alone; they run one at a time and reset the peak
//! (`/proc/self/clear_refs`) before measuring. Memory bounds only, no timing assertions.
mod common;
use image::{metadata::Orientation, GrayImage, ImageDecoder, ImageFormat, ImageReader};
use std::io::Cursor;
use std::sync::Mutex;
use tuwen::features::image::{
    self as fimg, decode, BackboneKind, ExtractOptions, ImageFeatureConfig, Pooling,
};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn status_kib(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

extern "C" {
    fn malloc_trim(pad: usize) -> i32;
}

/// Give freed memory back to the system and restart the peak from the current RSS, so that
/// fixtures built before (and other tests) do not count. Returns the new baseline (kB).
fn reset_peak() -> u64 {
    // SAFETY: glibc's malloc_trim only releases free heap pages.
    unsafe { malloc_trim(0) };
    // Linux ≥ 4.0; if refused, the peak simply includes earlier allocations (bounds stay valid
    // upper bounds of what is measured, only less sharp).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_kib("VmRSS:")
}

fn png(img: &GrayImage) -> Vec<u8> {
    let mut buf = Vec::new();
    let enc = image::codecs::png::PngEncoder::new_with_quality(
        &mut buf,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    );
    img.write_with_encoder(enc).unwrap();
    buf
}

fn spec() -> fimg::FeatureSpec {
    ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, false)
        .resolve(None)
        .unwrap()
}

fn no_cache() -> ExtractOptions {
    ExtractOptions {
        cache_dir: None,
        progress: false,
        ..Default::default()
    }
}

#[test]
fn elongated_images_are_extracted_in_bounded_memory() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::models();
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("ImageData");
    std::fs::create_dir_all(&img).unwrap();
    let mut ids = Vec::new();
    for (i, (w, h)) in [(20_000u32, 1u32), (1, 20_000), (19_999, 2)]
        .into_iter()
        .enumerate()
    {
        let id = format!("strip{i}.png");
        let mut buf = Vec::new();
        image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 251) as u8, (y % 241) as u8, 90])
        })
        .write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png)
        .unwrap();
        std::fs::write(img.join(&id), &buf).unwrap();
        ids.push(id);
    }
    // Every crop: five crops cut their squares in source coordinates, whole resizes the strip.
    for crop in [fimg::Crop::Centre, fimg::Crop::Whole, fimg::Crop::Five] {
        let spec = ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, false)
            .with_crop(crop)
            .resolve(None)
            .unwrap();
        let before = reset_peak();
        let f = fimg::extract(&ids, &img, &spec, &no_cache()).unwrap();
        let peak = peak_rss_kib();
        assert_eq!(f.stats.computed, 3, "{crop:?}: {:?}", f.skipped);
        // Resizing a 20000×1 image to a 224 (or 256) shorter side would need
        // 20000·224 × 224 × 3 bytes ≈ 3 GB.
        assert!(
            peak < before + 1_500_000,
            "{crop:?}: peak RSS grew from {before} kB to {peak} kB"
        );
    }
}

/// Issue 16 item 3: four copies of a 388 kB grey PNG of 19999×19999 px (within the side limit)
/// cost 3.3 GB to extract: the 400 MB grey image plus its 1.2 GB RGB copy, each.
#[test]
fn an_image_too_large_once_converted_to_rgb_is_refused_before_decoding() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::models();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("ImageData");
    std::fs::create_dir_all(&dir).unwrap();
    let big = png(&GrayImage::new(19_999, 19_999));
    let ids: Vec<String> = (0..4).map(|i| format!("grey{i}.png")).collect();
    for id in &ids {
        std::fs::write(dir.join(id), &big).unwrap();
    }
    drop(big);
    let spec = spec();
    let before = reset_peak();
    let f = fimg::extract(&ids, &dir, &spec, &no_cache()).unwrap();
    let peak = peak_rss_kib();
    assert_eq!(f.stats.skipped, 4, "{:?}", f.stats);
    for s in &f.skipped {
        assert!(
            s.reason.to_string().contains("too large")
                && s.reason.to_string().contains("19999x19999"),
            "{}",
            s.reason
        );
    }
    // The network's weights and libtorch's buffers, not a single decoded image (400 MB).
    assert!(
        peak < before + 300_000,
        "peak RSS grew from {before} kB to {peak} kB"
    );
    assert_eq!(decode::BUDGET.used(), 0);
}

/// Concurrent decodes (extraction workers, server uploads) share one 512 MiB budget: four
/// threads each decoding a 9000×9000 grey PNG (81 MB grey + 243 MB RGB) would peak at about
/// 1.3 GB without it; with it at most one such decode (two do not fit) runs at a time.
#[test]
fn concurrent_decodes_share_one_budget() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = png(&GrayImage::from_fn(9000, 9000, |x, y| {
        image::Luma([((x / 7 + y / 5) % 256) as u8])
    }));
    let before = reset_peak();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let img = decode::decode(&bytes).unwrap();
                assert_eq!(img.dimensions(), (9000, 9000));
                // Held a while, as a server holds an upload while it runs the network: without
                // a shared budget the four images would all be in memory together.
                std::thread::sleep(std::time::Duration::from_millis(300));
                drop(img);
            });
        }
    });
    let peak = peak_rss_kib();
    assert_eq!(decode::BUDGET.used(), 0, "every reservation is given back");
    let limit_kib = decode::MAX_ALLOC / 1024 + 64 * 1024;
    assert!(
        peak < before + limit_kib,
        "peak RSS grew from {before} kB to {peak} kB (budget {} kB + 64 MiB)",
        decode::MAX_ALLOC / 1024
    );
}

/// The budget's estimate of each decode is an upper bound of what the decoder really allocates:
/// measured for each format and colour type the decoders produce.
#[test]
fn decode_cost_bounds_the_memory_each_decoder_really_uses() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (w, h) = (4000u32, 3000u32);
    let rgb = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([((x * 7) ^ (y * 3)) as u8, (x + y) as u8, (x * y) as u8])
    });
    let rgba = image::RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([
            ((x * 7) ^ (y * 3)) as u8,
            (x + y) as u8,
            (x * y) as u8,
            (x ^ y) as u8,
        ])
    });
    let enc = |img: image::DynamicImage, f: ImageFormat| {
        let mut b = Vec::new();
        img.write_to(&mut Cursor::new(&mut b), f).unwrap();
        b
    };
    let jpeg = |sampling, progressive| {
        let mut b = Vec::new();
        let mut e = jpeg_encoder::Encoder::new(&mut b, 90);
        e.set_sampling_factor(sampling);
        e.set_progressive(progressive);
        e.encode(
            rgb.as_raw(),
            w as u16,
            h as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .unwrap();
        b
    };
    let mut cmyk = Vec::new();
    jpeg_encoder::Encoder::new(&mut cmyk, 90)
        .encode(
            rgba.as_raw(),
            w as u16,
            h as u16,
            jpeg_encoder::ColorType::Cmyk,
        )
        .unwrap();
    use image::DynamicImage as D;
    let grey = D::ImageRgb8(rgb.clone()).to_luma8();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "jpeg 4:2:0",
            jpeg(jpeg_encoder::SamplingFactor::F_2_2, false),
        ),
        (
            "jpeg 4:4:4",
            jpeg(jpeg_encoder::SamplingFactor::F_1_1, false),
        ),
        (
            "jpeg progressive 4:2:0",
            jpeg(jpeg_encoder::SamplingFactor::F_2_2, true),
        ),
        (
            "jpeg progressive 4:4:4",
            jpeg(jpeg_encoder::SamplingFactor::F_1_1, true),
        ),
        ("jpeg cmyk", cmyk),
        (
            "jpeg grey",
            enc(D::ImageLuma8(grey.clone()), ImageFormat::Jpeg),
        ),
        ("png rgb", enc(D::ImageRgb8(rgb.clone()), ImageFormat::Png)),
        (
            "png grey",
            enc(D::ImageLuma8(grey.clone()), ImageFormat::Png),
        ),
        (
            "png grey+alpha",
            enc(
                D::ImageRgba8(rgba.clone()).to_luma_alpha8().into(),
                ImageFormat::Png,
            ),
        ),
        (
            "png rgba",
            enc(D::ImageRgba8(rgba.clone()), ImageFormat::Png),
        ),
        (
            "png rgb16",
            enc(
                D::ImageRgb16(D::ImageRgb8(rgb.clone()).to_rgb16()),
                ImageFormat::Png,
            ),
        ),
        (
            "png rgba16",
            enc(
                D::ImageRgba16(D::ImageRgba8(rgba.clone()).to_rgba16()),
                ImageFormat::Png,
            ),
        ),
        (
            "gif",
            enc(
                D::ImageRgba8(image::RgbaImage::from_fn(2000, 1500, |x, y| {
                    image::Rgba([(x % 200) as u8, (y % 100) as u8, 0, 255])
                })),
                ImageFormat::Gif,
            ),
        ),
        (
            "webp lossless rgba",
            enc(D::ImageRgba8(rgba.clone()), ImageFormat::WebP),
        ),
        (
            "webp lossless rgb",
            enc(D::ImageRgb8(rgb.clone()), ImageFormat::WebP),
        ),
    ];
    drop((rgb, rgba, grey));
    let mut report = Vec::new();
    for (name, bytes) in &cases {
        let r = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .unwrap();
        let format = r.format().unwrap();
        let dec = r.into_decoder().unwrap();
        let ((w, h), color) = (dec.dimensions(), dec.color_type());
        drop(dec);
        let cost = decode::decode_cost(format, color, w, h, Orientation::NoTransforms, bytes);
        let before = reset_peak();
        let img = decode::decode(bytes).unwrap();
        let grew = (peak_rss_kib() - before) * 1024;
        drop(img);
        let px = (w * h) as f64;
        report.push(format!(
            "{name}: used {:.2}, estimated {:.2} bytes/px",
            grew as f64 / px,
            cost as f64 / px
        ));
        assert!(grew <= cost, "{}", report.join("\n"));
    }
    println!("{}", report.join("\n"));
}

/// A large JPEG decoded at reduced scale for the network uses far less memory than a full decode,
/// and no more than its reservation from the decode budget.
#[test]
fn reduced_scale_jpeg_decodes_stay_within_their_reservation() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (w, h) = (4000u32, 3000u32);
    let rgb = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([((x * 7) ^ (y * 3)) as u8, (x + y) as u8, (x * y) as u8])
    });
    let mut report = Vec::new();
    for progressive in [false, true] {
        let mut b = Vec::new();
        let mut e = jpeg_encoder::Encoder::new(&mut b, 90);
        e.set_progressive(progressive);
        e.encode(
            rgb.as_raw(),
            w as u16,
            h as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .unwrap();
        let full_cost = decode::decode_cost(
            ImageFormat::Jpeg,
            image::ColorType::Rgb8,
            w,
            h,
            Orientation::NoTransforms,
            &b,
        );
        let before = reset_peak();
        let img = decode::decode_at_least(&b, 260).unwrap();
        let grew = (peak_rss_kib() - before) * 1024;
        let (sw, sh) = img.dimensions();
        drop(img);
        assert_eq!((sw, sh), (500, 375), "1/8 scale");
        let cost = decode::scaled_jpeg_cost(&b, w, h, sw, sh, 3);
        report.push(format!(
            "progressive {progressive}: used {grew} bytes, reserved {cost}, full decode {full_cost}"
        ));
        assert!(grew <= cost, "{}", report.join("\n"));
        if !progressive {
            assert!(cost * 4 < full_cost, "{}", report.join("\n"));
        }
    }
    println!("{}", report.join("\n"));
}
