//! fit → rank → eval on a generated data set (no ../shared needed; needs models/ from set-up).
mod common;
use std::path::Path;
use std::process::Command;
use tuwen::features::image::{BackboneKind, ExtractOptions, ImageFeatureConfig, Pooling};
use tuwen::outputs::csv::check_file;
use tuwen::retrieval::Direction as Task;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tuwen"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "command failed:\nstdout: {so}\nstderr: {se}"
    );
    format!("{so}{se}")
}

#[test]
fn library_fit_eval_beats_chance_by_far() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let data = tuwen::data::synthetic::generate(d.path(), 160, 40, 11).unwrap();
    let ex = ExtractOptions {
        cache_dir: Some(d.path().join("cache")),
        progress: false,
        ..Default::default()
    };
    let opts = tuwen::jobs::fit::FitOptions {
        sets: vec![(data.train_pairs.clone(), data.images.clone())],
        image: ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, false),
        text: Default::default(),
        projection: tuwen::projection::ProjectionParams {
            pca_image: 64,
            cca: tuwen::projection::CcaParams::new(16).reg(0.3, 0.1),
            ..Default::default()
        },
        extract: ex.clone(),
        vectors: None,
        vectors2: None,
        extra_pairs: Vec::new(),
    };
    let (model, rep) = tuwen::jobs::fit::fit(&opts).unwrap();
    assert_eq!(rep.pairs_used, 320);
    let rep_model = model.clone();
    model.save(&d.path().join("model")).unwrap();
    let model = tuwen::model::Model::load(&d.path().join("model")).unwrap();
    let e = common::evaluate(
        &model,
        &data.val_pairs,
        &data.images,
        &ex,
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    // 40 images: chance R@5 is 12.5 %. Colour and shape are learnable, so far more is expected.
    assert_eq!((e.report.n_images, e.report.n_texts), (40, 80));
    assert!(
        e.report.t2i.r5 > 40.0 && e.report.i2t.r5 > 40.0,
        "{:?}",
        e.report
    );
    // The saved model is the fitted one: same projections after a save → load round trip.
    let fitted = &rep_model;
    for (a, b) in [
        (&fitted.projection.image_proj, &model.projection.image_proj),
        (&fitted.projection.text_proj, &model.projection.text_proj),
    ] {
        assert_eq!(a, b);
    }
    assert_eq!(fitted.projection.image_mean, model.projection.image_mean);
    assert_eq!(fitted.projection.text_mean, model.projection.text_mean);
    assert_eq!(fitted.config.image, model.config.image);
    assert_eq!(fitted.word_stats.bag_vocab, model.word_stats.bag_vocab);
    // A model used with other weights than it was fitted with is an error naming both.
    let lite2 = ExtractOptions {
        weights: Some(common::models().join("efficientnet-lite2.safetensors")),
        ..ex.clone()
    };
    let err = common::evaluate(
        &model,
        &data.val_pairs,
        &data.images,
        &lite2,
        &Default::default(),
        &Default::default(),
    )
    .expect_err("other weights must be refused")
    .to_string();
    assert!(
        err.contains("efficientnet-lite0") && err.contains("efficientnet-lite2.safetensors"),
        "{err}"
    );
}

#[test]
fn cli_fit_rank_eval_on_teddy_layout() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let data = tuwen::data::synthetic::generate(&root.join("data"), 120, 30, 5).unwrap();
    let cache = root.join("cache");
    let model = root.join("model");
    run_ok(
        bin()
            .args([
                "fit",
                "--backbone",
                "efficientnet-lite0",
                "--pca-image",
                "48",
                "--components",
                "12",
                "--reg-text",
                "0.1",
                "--quiet",
                "--pairs",
            ])
            .arg(&data.train_pairs)
            .arg("--images")
            .arg(&data.images)
            .arg("--out")
            .arg(&model)
            .arg("--cache")
            .arg(&cache),
    );
    assert!(model.join("config.json").is_file() && model.join("projection.safetensors").is_file());
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["image"]["backbone"], "efficientnet-lite0");

    // Held-out pairs as 附件2 / 附件3; one query image of task 2 is missing.
    let val = tuwen::data::read_pairs(&data.val_pairs).unwrap();
    let (d2, d3) = (root.join("附件2"), root.join("附件3"));
    tuwen::jobs::split::layout_teddy(&val.pairs, &data.images, &d2, &d3).unwrap();
    let gone = val.pairs[0].image_id.clone();
    std::fs::remove_file(d3.join("ImageData").join(&gone)).unwrap();
    let out_dir = root.join("out");
    let log = run_ok(
        bin()
            .args(["rank", "--quiet", "--model"])
            .arg(&model)
            .arg("--teddy-dir")
            .arg(&d2)
            .arg("--teddy-dir")
            .arg(&d3)
            .arg("--out-dir")
            .arg(&out_dir)
            .arg("--cache")
            .arg(&cache)
            .arg("--skip-list")
            .arg(root.join("skips.csv")),
    );
    assert!(
        log.contains("1 query images could not be read") && log.contains(&gone),
        "{log}"
    );
    let skips = std::fs::read_to_string(root.join("skips.csv")).unwrap();
    assert!(
        skips.contains(&gone) && skips.contains("file not found"),
        "{skips}"
    );

    let ids = |p: &Path, col: &str| tuwen::data::read_ids(p, col, false).unwrap().ids;
    let texts = ids(&d2.join("word_test.csv"), "text_id");
    let images = ids(&d2.join("image_data.csv"), "image_id");
    check_file(
        &out_dir.join("result1.csv"),
        Task::TextToImage,
        &texts,
        &images,
    )
    .unwrap();
    let queries: Vec<String> = ids(&d3.join("image_test.csv"), "image_id")
        .into_iter()
        .filter(|i| *i != gone)
        .collect();
    check_file(
        &out_dir.join("result2.csv"),
        Task::ImageToText,
        &queries,
        &ids(&d3.join("word_data.csv"), "text_id"),
    )
    .unwrap();
    let r1 = std::fs::read_to_string(out_dir.join("result1.csv")).unwrap();
    assert!(r1.starts_with("text_id,similarity_ranking,result_image_id\n"));
    let r2 = std::fs::read_to_string(out_dir.join("result2.csv")).unwrap();
    assert!(r2.starts_with("image_id,similarity_ranking,result_text_id\n"));

    // The result file agrees with the truth well above chance (R@5 chance: 5/30).
    let truth: std::collections::HashMap<String, String> =
        tuwen::data::read_table(&d2.join("truth.csv"))
            .unwrap()
            .rows
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect();
    let hits = tuwen::data::read_table(&out_dir.join("result1.csv"))
        .unwrap()
        .rows
        .iter()
        .filter(|r| truth[&r[0]] == r[2])
        .count();
    assert!(
        hits as f64 / texts.len() as f64 > 0.4,
        "{hits} of {} texts found their image in the top 5",
        texts.len()
    );

    // The HTML sheet: self-contained (thumbnails embedded), true matches marked.
    let html = root.join("sheet").join("report.html");
    run_ok(
        bin()
            .args(["report", "--quiet", "--n", "5", "--model"])
            .arg(&model)
            .arg("--teddy-dir")
            .arg(&d2)
            .arg("--out")
            .arg(&html)
            .arg("--cache")
            .arg(&cache),
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Task 1, text → image") && page.contains("data:image/jpeg;base64,"));
    assert!(
        page.contains("class=hit"),
        "no true match marked in the top 5 of 5 queries"
    );
    // Each result carries its largest per-term contributions.
    assert!(
        page.matches("cosine term: ").count() >= 5,
        "no explanations on the sheet"
    );
    assert!(root.join("sheet").join("result1.csv").is_file());

    // eval --json prints the documented object.
    let eval_json = |extra: &[&str]| -> serde_json::Value {
        let out = bin()
            .args(["eval", "--json", "--quiet", "--model"])
            .arg(&model)
            .arg("--pairs")
            .arg(&data.val_pairs)
            .arg("--images")
            .arg(&data.images)
            .arg("--cache")
            .arg(&cache)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = eval_json(&[]);
    for dir in ["i2t", "t2i"] {
        for k in ["r1", "r5", "r10", "medr"] {
            assert!(v[dir][k].is_number(), "{dir}.{k} missing in {v}");
        }
    }
    assert_eq!(v["n_images"], 30);
    assert_eq!(v["n_texts"], 60);
    // The scoring is recorded; CSLS is the default, cosine and inverted softmax one flag away,
    // and the training banks stored in the model serve queries that arrive alone.
    assert!(
        v["scoring"].as_str().unwrap().starts_with("csls(k=10)"),
        "{v}"
    );
    assert_eq!(eval_json(&["--score", "cosine"])["scoring"], "cosine");
    let is = eval_json(&["--score", "inverted-softmax", "--beta", "20"]);
    assert!(is["scoring"].as_str().unwrap().contains("beta=20"), "{is}");
    let train = eval_json(&["--bank", "train"]);
    assert!(
        train["scoring"].as_str().unwrap().contains("training"),
        "{train}"
    );
    assert!(
        train["t2i"]["r5"].as_f64().unwrap() > 100.0 * 5.0 / 30.0,
        "{train}"
    );
    let bad = bin()
        .args(["eval", "--quiet", "--csls-k", "0", "--model"])
        .arg(&model)
        .arg("--pairs")
        .arg(&data.val_pairs)
        .arg("--images")
        .arg(&data.images)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("k must be at least 1"));
    // rank with the training banks writes valid files too.
    run_ok(
        bin()
            .args(["rank", "--quiet", "--bank", "train", "--model"])
            .arg(&model)
            .arg("--teddy-dir")
            .arg(&d2)
            .arg("--out-dir")
            .arg(root.join("out-train"))
            .arg("--cache")
            .arg(&cache),
    );
    check_file(
        &root.join("out-train").join("result1.csv"),
        Task::TextToImage,
        &texts,
        &images,
    )
    .unwrap();

    // report says which gallery images it could not read, like rank, on the sheet too.
    std::fs::remove_file(d2.join("ImageData").join(&images[3])).unwrap();
    let log = run_ok(
        bin()
            .args(["report", "--quiet", "--n", "3", "--model"])
            .arg(&model)
            .arg("--teddy-dir")
            .arg(&d2)
            .arg("--out")
            .arg(&html)
            .arg("--cache")
            .arg(&cache),
    );
    assert!(
        log.contains("1 gallery images could not be read") && log.contains(&images[3]),
        "{log}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("could not be read") && page.contains(&images[3]));
}

#[test]
fn rank_with_nothing_to_do_or_a_wrong_folder_says_so() {
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("m");
    let out = bin()
        .args(["rank", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("model folder not found"));
}
