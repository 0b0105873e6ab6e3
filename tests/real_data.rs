//! Checks on the real data in ../shared/data (fails, never skips, when it is missing).
//! Features are computed with EfficientNet-Lite0 (the quickest backbone) and cached under
//! target/, so a second local run is fast; CI starts from nothing and extracts them.
mod common;
use std::path::PathBuf;
use tuwen::features::image::{self, BackboneKind, ExtractOptions, ImageFeatureConfig, Pooling};

fn cache() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tuwen-test-cache")
}

fn lite0() -> ImageFeatureConfig {
    ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, false)
}

#[test]
fn teddy_sample_extraction_reports_exactly_the_two_missing_files() {
    common::models();
    let t = common::shared_data().join("teddy-sample");
    let p = tuwen::data::read_pairs(&t.join("ImageWordData.csv")).unwrap();
    assert_eq!(
        p.pairs.len(),
        1000,
        "three captions hold quoted newlines; all 1,000 rows must be read"
    );
    let (ids, _) = tuwen::data::group_images(&p.pairs);
    let ex = ExtractOptions {
        cache_dir: Some(cache()),
        progress: false,
        ..Default::default()
    };
    let spec = lite0().resolve(None).unwrap();
    let f = image::extract(&ids, &t.join("ImageData"), &spec, &ex).unwrap();
    let mut missing: Vec<&str> = f.skipped.iter().map(|s| s.id.as_str()).collect();
    missing.sort();
    assert_eq!(
        missing,
        ["Image14001001-2540.jpg", "Image14001005-3174.jpg"]
    );
    assert!(f
        .skipped
        .iter()
        .all(|s| s.reason.to_string() == "file not found"));
    assert_eq!(
        f.ok.iter().filter(|o| **o).count(),
        998,
        "GIFs, the PNG and grey/palette images all decode"
    );
}

#[test]
fn teddy_800_200_split_recalls_well_above_chance() {
    common::models();
    let t = common::shared_data().join("teddy-sample");
    let d = tempfile::tempdir().unwrap();
    // The experiments' split: seed 2024, 200 images held out (see experiments/README.md).
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .args(["split", "--held-out", "200", "--seed", "2024", "--pairs"])
        .arg(t.join("ImageWordData.csv"))
        .arg("--out")
        .arg(d.path())
        .status()
        .unwrap();
    assert!(st.success());
    let ex = ExtractOptions {
        cache_dir: Some(cache()),
        progress: false,
        ..Default::default()
    };
    let opts = tuwen::jobs::fit::FitOptions {
        sets: vec![(d.path().join("train.csv"), t.join("ImageData"))],
        image: lite0(),
        text: tuwen::features::text::TextFeatureConfig {
            weighting: tuwen::features::text::Weighting::Mean,
            ..Default::default()
        },
        projection: tuwen::projection::ProjectionParams {
            method: tuwen::projection::Method::Cca,
            cca: tuwen::projection::CcaParams::new(64).reg(1.0, 0.3),
            ..Default::default()
        },
        extract: ex.clone(),
        vectors: None,
        vectors2: None,
        extra_pairs: Vec::new(),
    };
    let (model, rep) = tuwen::jobs::fit::fit(&opts).unwrap();
    assert!(rep.pairs_used >= 795, "{}", rep.pairs_used);
    let e = common::evaluate(
        &model,
        &d.path().join("heldout.csv"),
        &t.join("ImageData"),
        &ex,
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    let r = &e.report;
    // One caption per image: chance R@5 = 5 / n_images ≈ 2.5 %.
    let chance = 500.0 / r.n_images as f64;
    eprintln!("teddy 800/200, lite0: {r:?} (chance R@5 {chance:.1})");
    assert!(r.i2t.r5 > 3.0 * chance && r.t2i.r5 > 3.0 * chance, "{r:?}");
}
