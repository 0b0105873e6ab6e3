//! Elongated images (a valid 20000×1 PNG is 143 bytes) must not make extraction allocate
//! gigabytes: the centre square is cut before resizing. Its own test binary, so the process's
//! peak memory is this test's alone. Needs models/ from set-up.
mod common;
use tuwen::features::image::{
    self as fimg, BackboneKind, ExtractOptions, ImageFeatureConfig, Pooling,
};

fn peak_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn elongated_images_are_extracted_in_bounded_memory() {
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
    let spec = ImageFeatureConfig {
        backbone: BackboneKind::EfficientNetLite0,
        pooling: Pooling::Avg,
        flip: false,
    }
    .resolve(None)
    .unwrap();
    let before = peak_rss_kib();
    let f = fimg::extract(
        &ids,
        &img,
        &spec,
        &ExtractOptions {
            cache_dir: None,
            progress: false,
            ..Default::default()
        },
    )
    .unwrap();
    let peak = peak_rss_kib();
    assert_eq!(f.stats.computed, 3, "{:?}", f.skipped);
    // Resizing a 20000×1 image to a 224 shorter side would need 20000·224 × 224 × 3 bytes ≈ 3 GB.
    assert!(
        peak < before + 1_500_000,
        "peak RSS grew from {before} kB to {peak} kB"
    );
}
