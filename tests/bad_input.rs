//! Bad input never crashes, hangs or shifts ids: each case is a clear error naming the file (and
//! row) or a counted, reported skip. All fixtures are generated here. Needs models/ (set-up).
mod common;
use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};
use tuwen::features::image::{
    self as fimg, decode, BackboneKind, DecodeError, ExtractOptions, ImageFeatureConfig, Pooling,
};

fn photo(w: u32, h: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            ((x * 3 + seed * 40) % 256) as u8,
            ((y * 5 + seed * 17) % 256) as u8,
            (((x + y) * seed) % 256) as u8,
        ])
    })
}

fn jpeg_bytes(img: &RgbImage) -> Vec<u8> {
    let mut v = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut v), image::ImageFormat::Jpeg)
        .unwrap();
    v
}

/// Every kind of awkward file the real data holds, plus broken ones. Returns (dir, ids).
fn fixture_folder(dir: &Path) -> Vec<(String, Option<&'static str>)> {
    let img = dir.join("ImageData");
    std::fs::create_dir_all(&img).unwrap();
    let w = |name: &str, bytes: &[u8]| std::fs::write(img.join(name), bytes).unwrap();
    w("ok.jpg", &jpeg_bytes(&photo(300, 200, 1)));
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(120, 90, |x, _| {
        image::Rgba([200, 10, 10, (x * 2) as u8])
    }))
    .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
    .unwrap();
    w("png-named.jpg", &png);
    // Animated GIF, two frames.
    let mut gif = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut gif);
        let frames = (0..2).map(|k| {
            image::Frame::new(image::RgbaImage::from_fn(64, 48, move |x, y| {
                image::Rgba([(x * 4) as u8, (y * 5) as u8, 80 * k, 255])
            }))
        });
        enc.encode_frames(frames).unwrap();
    }
    w("animated.jpg", &gif);
    // CMYK JPEG.
    let mut cmyk = Vec::new();
    let px: Vec<u8> = (0..80 * 60)
        .flat_map(|i| [(i % 255) as u8, 40, 200, 10])
        .collect();
    jpeg_encoder::Encoder::new(&mut cmyk, 90)
        .encode(&px, 80, 60, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    w("cmyk.jpg", &cmyk);
    // Grey JPEG.
    let grey = image::GrayImage::from_fn(100, 100, |x, y| image::Luma([((x + y) % 256) as u8]));
    let mut gj = Vec::new();
    grey.write_to(&mut std::io::Cursor::new(&mut gj), image::ImageFormat::Jpeg)
        .unwrap();
    w("grey.jpg", &gj);
    // Broken files.
    w("empty.jpg", b"");
    let full = jpeg_bytes(&photo(400, 300, 2));
    w("truncated.jpg", &full[..full.len() / 3]);
    w("notimage.jpg", b"this is a text file, not an image");
    w("bomb.png", &bomb_png());
    vec![
        ("ok.jpg".into(), None),
        ("missing.jpg".into(), Some("file not found")),
        ("png-named.jpg".into(), None),
        ("animated.jpg".into(), None),
        ("cmyk.jpg".into(), None),
        ("grey.jpg".into(), None),
        ("empty.jpg".into(), Some("empty file")),
        ("truncated.jpg".into(), Some("corrupt or truncated")),
        ("notimage.jpg".into(), Some("unrecognised image format")),
        ("bomb.png".into(), Some("decompression bomb")),
    ]
}

/// A valid PNG header claiming 60,000 × 60,000 pixels (10.8 GB decoded) with a tiny body.
fn bomb_png() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend_from_slice(data);
        out.extend_from_slice(&c);
        out.extend_from_slice(&crc32(&c).to_be_bytes());
    }
    fn crc32(b: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &x in b {
            c ^= x as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&60_000u32.to_be_bytes());
    ihdr.extend_from_slice(&60_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn decoder_handles_every_case_with_a_reason() {
    let d = tempfile::tempdir().unwrap();
    let cases = fixture_folder(d.path());
    for (name, expect) in cases {
        let path = d.path().join("ImageData").join(&name);
        let r = std::fs::read(&path)
            .map_err(|_| DecodeError::Missing)
            .and_then(|b| decode::decode(&b));
        match (expect, r) {
            (None, Ok(img)) => assert!(img.width() > 0, "{name}"),
            (Some(reason), Err(e)) => assert!(
                e.to_string().contains(reason),
                "{name}: `{e}` lacks `{reason}`"
            ),
            (None, Err(e)) => panic!("{name} should decode, got {e}"),
            (Some(reason), Ok(_)) => panic!("{name} should fail with `{reason}`"),
        }
    }
}

#[test]
fn first_frame_cmyk_and_alpha_are_decoded_to_the_right_colours() {
    let d = tempfile::tempdir().unwrap();
    fixture_folder(d.path());
    let read = |n: &str| {
        decode::decode(&std::fs::read(d.path().join("ImageData").join(n)).unwrap()).unwrap()
    };
    let gif = read("animated.jpg");
    assert_eq!(gif.dimensions(), (64, 48));
    assert!(
        gif.get_pixel(10, 10)[2] < 20,
        "first frame has blue 0, the second 80"
    );
    let cmyk = read("cmyk.jpg");
    // C=?, M=40, Y=200, K=10 (Adobe-inverted or not, the decoder must give a colour image, not noise).
    assert_eq!(cmyk.dimensions(), (80, 60));
    // Transparent PNG pixels are composited on white.
    let png = read("png-named.jpg");
    assert_eq!(png.get_pixel(0, 0).0, [255, 255, 255]);
}

#[test]
fn extraction_skips_are_counted_reported_and_never_shift_ids() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let cases = fixture_folder(d.path());
    let ids: Vec<String> = cases.iter().map(|c| c.0.clone()).collect();
    let cfg = ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, false);
    let opts = ExtractOptions {
        cache_dir: Some(d.path().join("cache")),
        progress: false,
        batch_size: 3,
        ..Default::default()
    };
    let spec = cfg.resolve(None).unwrap();
    let f = fimg::extract(&ids, &d.path().join("ImageData"), &spec, &opts).unwrap();
    let expected_bad: Vec<&str> = cases
        .iter()
        .filter(|c| c.1.is_some())
        .map(|c| c.0.as_str())
        .collect();
    let skipped: Vec<&str> = f.skipped.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(skipped, expected_bad);
    assert_eq!(f.stats.skipped, 5);
    assert_eq!(f.stats.computed, 5);
    for (s, c) in f.skipped.iter().zip(cases.iter().filter(|c| c.1.is_some())) {
        assert!(
            s.reason.to_string().contains(c.1.unwrap()),
            "{}: {}",
            s.id,
            s.reason
        );
        assert!(s.file.ends_with(&c.0));
        assert_eq!(ids[s.row - 1], s.id, "skip rows point at the right id");
    }
    // Ids are not shifted: the feature of ok.jpg equals the one computed on its own.
    let alone = fimg::extract(
        &["ok.jpg".to_string()],
        &d.path().join("ImageData"),
        &spec,
        &ExtractOptions {
            cache_dir: None,
            progress: false,
            ..Default::default()
        },
    )
    .unwrap();
    // oneDNN's kernels depend on the batch shape (3 here, 1 alone), so the two agree to rounding,
    // not bit for bit; a neighbour's row would differ by far more than the tolerance.
    let diff = (&f.features.row(0) - &alone.features.row(0))
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    assert!(diff < 1e-4, "ok.jpg alone vs in a batch: max |diff| {diff}");
    let other = (&f.features.row(0) - &f.features.row(1))
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        other > 100.0 * diff.max(1e-6),
        "rows 0 and 1 are too alike: {other}"
    );
    for (i, c) in cases.iter().enumerate() {
        assert_eq!(f.ok[i], c.1.is_none(), "{}", c.0);
    }
}

fn tiny_set(dir: &Path, n: usize) -> (PathBuf, Vec<String>) {
    let img = dir.join("ImageData");
    std::fs::create_dir_all(&img).unwrap();
    let mut ids = Vec::new();
    let mut csv = String::from("image_id,caption\n");
    for i in 0..n {
        let id = format!("img{i:03}.jpg");
        std::fs::write(
            img.join(&id),
            jpeg_bytes(&photo(160 + (i as u32 % 5) * 20, 140, i as u32 + 1)),
        )
        .unwrap();
        csv.push_str(&format!("{id},图片{i}\n"));
        ids.push(id);
    }
    std::fs::write(dir.join("pairs.csv"), csv).unwrap();
    (img, ids)
}

#[test]
fn second_run_is_served_from_the_cache() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let (img, ids) = tiny_set(d.path(), 6);
    let cfg = ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, true);
    let opts = ExtractOptions {
        cache_dir: Some(d.path().join("cache")),
        progress: false,
        ..Default::default()
    };
    let spec = cfg.resolve(None).unwrap();
    let a = fimg::extract(&ids, &img, &spec, &opts).unwrap();
    assert_eq!((a.stats.computed, a.stats.from_cache), (6, 0));
    let b = fimg::extract(&ids, &img, &spec, &opts).unwrap();
    assert_eq!((b.stats.computed, b.stats.from_cache), (0, 6));
    assert_eq!(a.features, b.features);
    // Same content under a new name is found by content hash.
    std::fs::copy(img.join(&ids[0]), img.join("renamed.jpg")).unwrap();
    let c = fimg::extract(&["renamed.jpg".to_string()], &img, &spec, &opts).unwrap();
    assert_eq!(c.stats.from_cache, 1);
    assert_eq!(c.features.row(0), a.features.row(0));
}

#[test]
fn killed_extraction_resumes_to_identical_features() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let (img, ids) = tiny_set(d.path(), 40);
    let cfg = ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, false);
    let spec = cfg.resolve(None).unwrap();
    // Uninterrupted reference run.
    let reference = fimg::extract(
        &ids,
        &img,
        &spec,
        &ExtractOptions {
            cache_dir: Some(d.path().join("cache-a")),
            shard_size: 8,
            batch_size: 4,
            progress: false,
            ..Default::default()
        },
    )
    .unwrap();
    // A run through the binary, killed (SIGKILL) once its first shard is on disk.
    let cache_b = d.path().join("cache-b");
    let shard_dir = cache_b.join(spec.cache_key());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .args([
            "extract",
            "--backbone",
            "efficientnet-lite0",
            "--quiet",
            "--flip",
            "false",
            "--shard-size",
            "8",
            "--batch-size",
            "4",
            "--pairs",
        ])
        .arg(d.path().join("pairs.csv"))
        .arg("--images")
        .arg(&img)
        .arg("--cache")
        .arg(&cache_b)
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    loop {
        let n = std::fs::read_dir(&shard_dir)
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("shard-"))
                    .count()
            })
            .unwrap_or(0);
        if n >= 1 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("extraction ended ({status}) before it could be killed");
        }
        assert!(t0.elapsed().as_secs() < 120, "no shard written in 120 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let resumed = fimg::extract(
        &ids,
        &img,
        &spec,
        &ExtractOptions {
            cache_dir: Some(cache_b),
            shard_size: 8,
            batch_size: 4,
            progress: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        resumed.stats.from_cache >= 8 && resumed.stats.computed > 0,
        "{:?}",
        resumed.stats
    );
    assert_eq!(resumed.stats.from_cache + resumed.stats.computed, 40);
    // Same batches as the uninterrupted run; compared to a tolerance, since the killed run's
    // shard was computed in another process (oneDNN may pick other kernels there).
    let diff = (&resumed.features - &reference.features)
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        diff < 1e-4,
        "features differ from the uninterrupted run: {diff}"
    );
}

#[test]
fn gbk_bom_and_all_oov_captions_go_through_fit_with_counted_skips() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let (img, ids) = tiny_set(d.path(), 12);
    // GBK-encoded pairs with a quoted newline, an empty caption, an all-OOV caption and a missing image.
    let mut s = String::from("image_id,caption\n");
    let words = ["一只黑色的狗", "红色的汽车", "蓝色的天空", "绿色的草地"];
    for (i, id) in ids.iter().enumerate() {
        s.push_str(&format!("{id},\"{}\n在跑\"\n", words[i % 4]));
        s.push_str(&format!(
            "{id},{}和{}\n",
            words[(i + 1) % 4],
            words[(i + 2) % 4]
        ));
    }
    s.push_str("img000.jpg,\n");
    s.push_str("img001.jpg,ㄅㄆㄇㄈ\n");
    s.push_str("absent.jpg,一只猫\n");
    let (gbk, _, _) = encoding_rs::GBK.encode(&s);
    std::fs::write(d.path().join("gbk.csv"), &gbk).unwrap();
    let opts = tuwen::jobs::fit::FitOptions {
        sets: vec![(d.path().join("gbk.csv"), img.clone())],
        image: ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, false),
        text: Default::default(),
        projection: tuwen::projection::ProjectionParams {
            pca_image: 8,
            cca: tuwen::projection::CcaParams::new(4).reg(0.5, 0.5),
            ..Default::default()
        },
        extract: ExtractOptions {
            cache_dir: None,
            progress: false,
            ..Default::default()
        },
        vectors: None,
        vectors2: None,
        extra_pairs: Vec::new(),
    };
    let (_, rep) = tuwen::jobs::fit::fit(&opts).unwrap();
    assert_eq!(rep.pairs_used, 24);
    let reasons: Vec<String> = rep
        .skipped
        .iter()
        .map(|s| format!("{}:{}", s.id, s.reason))
        .collect();
    assert_eq!(rep.skipped.len(), 3, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("img000.jpg:empty caption")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("absent.jpg:image unusable: file not found")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("img001.jpg:caption has no known token")),
        "{reasons:?}"
    );
    assert_eq!(rep.oov.empty_captions, 1);
}

/// Issue 16 item 5: a FIFO (or a link to one) among the images hung every command forever
/// (opening it blocks until a writer comes). Anything that is not a regular file is skipped,
/// named and counted, without being opened. Bounded: the extraction runs in a thread that must
/// answer within 120 s; a hang is unblocked by opening the FIFOs for writing.
#[test]
fn fifos_links_to_fifos_and_folders_are_skipped_without_hanging() {
    use std::os::unix::ffi::OsStrExt;
    common::models();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("ImageData");
    std::fs::create_dir_all(dir.join("folder.jpg")).unwrap();
    std::fs::write(dir.join("ok.jpg"), jpeg_bytes(&photo(64, 48, 1))).unwrap();
    let fifo = dir.join("pipe.jpg");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    std::os::unix::fs::symlink(&fifo, dir.join("link.jpg")).unwrap();
    let ids: Vec<String> = ["ok.jpg", "pipe.jpg", "link.jpg", "folder.jpg"]
        .map(String::from)
        .to_vec();
    let spec = ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, false)
        .resolve(None)
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let (ids, dir, cache) = (ids.clone(), dir.clone(), d.path().join("cache"));
        std::thread::spawn(move || {
            let opts = ExtractOptions {
                cache_dir: Some(cache),
                progress: false,
                ..Default::default()
            };
            let _ = tx.send(fimg::extract(&ids, &dir, &spec, &opts));
        });
    }
    let f = match rx.recv_timeout(std::time::Duration::from_secs(120)) {
        Ok(f) => f.unwrap(),
        Err(_) => {
            // Release the blocked reader(s) so the process can end, then fail.
            for _ in 0..4 {
                let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
            }
            // Let it finish, so the process does not exit under a running extraction.
            let _ = rx.recv_timeout(std::time::Duration::from_secs(60));
            panic!("extraction hung on a FIFO");
        }
    };
    assert_eq!(
        (f.stats.computed, f.stats.skipped),
        (1, 3),
        "{:?}",
        f.skipped
    );
    let reasons: Vec<(&str, String)> = f
        .skipped
        .iter()
        .map(|s| (s.id.as_str(), s.reason.to_string()))
        .collect();
    assert!(reasons[0].0 == "pipe.jpg" && reasons[0].1.contains("not a regular file (a FIFO)"));
    assert!(reasons[1].0 == "link.jpg" && reasons[1].1.contains("not a regular file (a FIFO)"));
    assert!(reasons[2].0 == "folder.jpg" && reasons[2].1.contains("not a regular file (a folder)"));
    // Reading directly (thumbnails, one-off files) refuses them the same way.
    assert!(matches!(
        decode::read_image_file(&fifo),
        Err(DecodeError::NotAFile("a FIFO"))
    ));
}

/// Issue 16 item 15: BMP and TIFF files were reported as "corrupt or truncated"; they are
/// recognised and named as an unsupported format.
#[test]
fn bmp_and_tiff_are_named_as_unsupported_formats() {
    // A 1×1 24-bit BMP and a little-endian TIFF header: enough for the format to be recognised.
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&58u32.to_le_bytes());
    bmp.extend_from_slice(&[0, 0, 0, 0]);
    bmp.extend_from_slice(&54u32.to_le_bytes());
    bmp.extend_from_slice(&40u32.to_le_bytes());
    bmp.extend_from_slice(&1i32.to_le_bytes());
    bmp.extend_from_slice(&1i32.to_le_bytes());
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&24u16.to_le_bytes());
    bmp.extend_from_slice(&[0; 24]);
    bmp.extend_from_slice(&[0, 0, 255, 0]);
    let tiff = b"II*\0\x08\0\0\0\0\0".to_vec();
    for (bytes, name) in [(bmp, "BMP"), (tiff, "TIFF")] {
        let e = decode::decode(&bytes).expect_err(name).to_string();
        assert!(
            e.contains(&format!("unsupported format {name}")) && !e.contains("corrupt"),
            "{name}: {e}"
        );
    }
}
