//! `fit --method contrastive` on generated data (needs models/ only): a seed fixes the maps and
//! another seed changes them, extra pairs of images outside the training set are reported as
//! skips, bad flags are refused, the model saves, loads and ranks, and `explain` stays exact.
mod common;
use ndarray::Axis;
use std::path::{Path, PathBuf};
use std::process::Command;
use tuwen::data::SkipReason;
use tuwen::embed::{Embedder, VectorFiles};
use tuwen::features::image::{self, BackboneKind, ExtractOptions, ImageFeatureConfig, Pooling};
use tuwen::jobs::fit::{FitOptions, FitReport};
use tuwen::model::Model;
use tuwen::projection::{CcaParams, ContrastiveParams, Method, ProjectionParams, SparseRows};
use tuwen::retrieval::score::Scoring;
use tuwen::retrieval::{Bank, Direction, ScoreOptions};

const TOL: f32 = 1e-5;

fn ex(cache: &Path) -> ExtractOptions {
    ExtractOptions {
        cache_dir: Some(cache.to_path_buf()),
        progress: false,
        ..Default::default()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    data: tuwen::data::synthetic::Synthetic,
    cache: PathBuf,
    /// Extra pairs: one more caption per training image, plus `UNKNOWN` rows of images that
    /// are not training images.
    extra: PathBuf,
}

const UNKNOWN: usize = 3;

fn fixture() -> Fixture {
    common::models();
    let dir = tempfile::tempdir().unwrap();
    let data = tuwen::data::synthetic::generate(&dir.path().join("syn"), 60, 15, 5).unwrap();
    let train = tuwen::data::read_pairs(&data.train_pairs).unwrap();
    let val = tuwen::data::read_pairs(&data.val_pairs).unwrap();
    let extra = dir.path().join("extra.csv");
    let mut w = csv::Writer::from_path(&extra).unwrap();
    w.write_record(["image_id", "caption"]).unwrap();
    // A paraphrase of each training image's first caption (punctuation added).
    for p in train.pairs.iter().step_by(2) {
        w.write_record([p.image_id.as_str(), &format!("{}。", p.caption)])
            .unwrap();
    }
    for p in val.pairs.iter().step_by(2).take(UNKNOWN) {
        w.write_record([p.image_id.as_str(), p.caption.as_str()])
            .unwrap();
    }
    w.flush().unwrap();
    let cache = dir.path().join("cache");
    Fixture {
        _dir: dir,
        data,
        cache,
        extra,
    }
}

fn options(f: &Fixture, seed: u64, extra: bool) -> FitOptions {
    FitOptions {
        sets: vec![(f.data.train_pairs.clone(), f.data.images.clone())],
        image: ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, false),
        text: Default::default(),
        projection: ProjectionParams {
            method: Method::Contrastive,
            // A weak CCA (3 components, strong ridge) on a large stop part: room to improve,
            // so the kept epoch is not 0.
            cca: CcaParams::new(3).reg(1.0, 1.0),
            contrastive: Some(ContrastiveParams {
                epochs_max: 4,
                patience: 4,
                early_stop_fraction: 0.5,
                lr: 1e-2,
                seed,
                // Several batches per epoch, so the seed's permutation matters.
                batch: 24,
                ..Default::default()
            }),
            ..Default::default()
        },
        extract: ex(&f.cache),
        vectors: None,
        vectors2: None,
        extra_pairs: if extra {
            vec![f.extra.clone()]
        } else {
            Vec::new()
        },
    }
}

fn fit(f: &Fixture, seed: u64) -> (Model, FitReport) {
    tuwen::jobs::fit::fit(&options(f, seed, true)).unwrap()
}

fn max_diff(a: &ndarray::Array2<f32>, b: &ndarray::Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn a_seed_fixes_the_maps_and_another_seed_changes_them() {
    let f = fixture();
    let (a, ra) = fit(&f, 0);
    let (b, _) = fit(&f, 0);
    let (c, rc) = fit(&f, 1);
    let k = ra.contrastive.as_ref().unwrap();
    // Training happened (else every seed would give the full CCA).
    assert!(k.best_epoch > 0, "{k:?}");
    assert!(rc.contrastive.as_ref().unwrap().best_epoch > 0);
    assert_eq!(k.history[0].epoch, 0);
    assert_eq!(k.refit_loss.len(), k.best_epoch);
    for (x, y) in [
        (&a.projection.image_proj, &b.projection.image_proj),
        (&a.projection.text_proj, &b.projection.text_proj),
    ] {
        assert_eq!(x, y, "same seed, other maps");
    }
    assert_eq!(a.projection.image_mean, b.projection.image_mean);
    assert_eq!(a.projection.text_mean, b.projection.text_mean);
    assert!(max_diff(&a.projection.image_proj, &c.projection.image_proj) > 1e-4);
    assert!(max_diff(&a.projection.text_proj, &c.projection.text_proj) > 1e-4);
    // Not the CCA: the maps moved.
    let cca = tuwen::jobs::fit::fit(&FitOptions {
        projection: ProjectionParams {
            method: Method::Cca,
            contrastive: None,
            ..options(&f, 0, false).projection
        },
        ..options(&f, 0, false)
    })
    .unwrap()
    .0;
    assert!(max_diff(&a.projection.text_proj, &cca.projection.text_proj) > 1e-4);
}

#[test]
fn extra_pairs_of_other_images_are_reported_as_skips() {
    let f = fixture();
    let (_, rep) = fit(&f, 0);
    let skipped: Vec<_> = rep
        .skipped
        .iter()
        .filter(|s| s.reason == SkipReason::NotTrainingImage)
        .collect();
    assert_eq!(skipped.len(), UNKNOWN, "{:?}", rep.skipped);
    let val = tuwen::data::read_pairs(&f.data.val_pairs).unwrap();
    for s in &skipped {
        assert!(s.file.ends_with("extra.csv"), "{s:?}");
        assert!(val.pairs.iter().any(|p| p.image_id == s.id), "{s:?}");
    }
    let k = rep.contrastive.unwrap();
    assert_eq!(k.extra_pairs, 60);
    assert_eq!(k.train_pairs, rep.pairs_used + 60);
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tuwen"))
}

fn refused(args: &[&str], want: &str) {
    let out = bin()
        .args(["fit", "--pairs", "p.csv", "--images", "img", "--out", "m"])
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} accepted");
    assert!(err.contains(want), "{args:?}: {err}");
}

#[test]
fn bad_flags_are_refused() {
    refused(
        &["--extra-pairs", "e.csv"],
        "--extra-pairs is used only with --method contrastive",
    );
    refused(
        &["--method", "pca-cca", "--lr", "0.001"],
        "--lr is used only with --method contrastive",
    );
    refused(&["--method", "contrastive", "--lr", "0"], "--lr must be");
    refused(&["--method", "contrastive", "--lr=-1"], "--lr must be");
    for v in ["0", "1", "1.5"] {
        refused(
            &["--method", "contrastive", "--early-stop-fraction", v],
            "--early-stop-fraction must be in (0, 1)",
        );
    }
    refused(
        &["--method", "contrastive", "--patience", "0"],
        "--patience must be >= 1",
    );
    // The library refuses the same without the command line.
    let f = fixture();
    let mut o = options(&f, 0, true);
    o.projection.method = Method::Cca;
    o.projection.contrastive = None;
    let e = tuwen::jobs::fit::fit(&o).unwrap_err().to_string();
    assert!(e.contains("--extra-pairs"), "{e}");
    let mut o = options(&f, 0, false);
    o.projection.contrastive = None;
    let e = tuwen::jobs::fit::fit(&o).unwrap_err().to_string();
    assert!(e.contains("contrastive"), "{e}");
}

#[test]
fn the_model_saves_loads_and_ranks() {
    let f = fixture();
    let (model, _) = fit(&f, 0);
    let dir = f.cache.parent().unwrap().join("model");
    model.save(&dir).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["projection"]["method"], "contrastive");
    assert_eq!(cfg["projection"]["contrastive"]["lr"], 1e-2);
    assert!(cfg["train"]["contrastive"]["best_epoch"].as_u64().unwrap() > 0);
    assert_eq!(cfg["train"]["extra_files"].as_array().unwrap().len(), 1);
    let loaded = Model::load(&dir).unwrap();
    assert_eq!(loaded.projection.image_proj, model.projection.image_proj);
    assert_eq!(loaded.projection.text_mean, model.projection.text_mean);
    let e = common::evaluate(
        &loaded,
        &f.data.val_pairs,
        &f.data.images,
        &ex(&f.cache),
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    // 15 images: chance R@5 is a third; colour and shape are learnable.
    assert!(
        e.report.t2i.r5 > 60.0 && e.report.i2t.r5 > 60.0,
        "{:?}",
        e.report
    );
    // The command line ranks with it.
    let val = tuwen::data::read_pairs(&f.data.val_pairs).unwrap();
    let root = f.cache.parent().unwrap();
    let (d2, d3) = (root.join("附件2"), root.join("附件3"));
    tuwen::jobs::split::layout_teddy(&val.pairs, &f.data.images, &d2, &d3).unwrap();
    let out = bin()
        .args(["rank", "--model"])
        .arg(&dir)
        .arg("--teddy-dir")
        .arg(&d2)
        .arg("--teddy-dir")
        .arg(&d3)
        .arg("--out-dir")
        .arg(root)
        .arg("--cache")
        .arg(&f.cache)
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root.join("result1.csv").is_file() && root.join("result2.csv").is_file());
}

#[test]
fn explain_is_exact_on_a_contrastive_model() {
    let f = fixture();
    let (model, _) = fit(&f, 0);
    let emb = Embedder::new(model.clone(), &VectorFiles::default(), ex(&f.cache)).unwrap();
    let enc = emb.encoder();
    let p = tuwen::data::read_pairs(&f.data.val_pairs).unwrap();
    let (ids, _) = tuwen::data::group_images(&p.pairs);
    let spec = model.feature_spec(None).unwrap();
    let feats = image::extract(&ids, &f.data.images, &spec, &ex(&f.cache)).unwrap();
    let index = feats.index();
    let proj = &model.projection;
    for pair in p.pairs.iter().take(10) {
        let (t, _) = enc.features(std::slice::from_ref(&pair.caption));
        for img in [&pair.image_id, &ids[0]] {
            let x = feats.features.row(index[img.as_str()]);
            let e = tuwen::explain::explain_pair(&emb, &pair.caption, x).unwrap();
            let cos = proj
                .project_texts(t.view())
                .dot(&proj.project_images(x.insert_axis(Axis(0))).t())[[0, 0]];
            assert!((e.cosine - cos).abs() < TOL, "{} vs {cos}", e.cosine);
            assert!(
                (e.total() - e.cosine).abs() < TOL,
                "terms + offset = {} but cosine {}",
                e.total(),
                e.cosine
            );
        }
    }
    // explain's score is rank's, for plain cosine and for CSLS over the training banks.
    let root = f.cache.parent().unwrap();
    let (d2, d3) = (root.join("附件2"), root.join("附件3"));
    tuwen::jobs::split::layout_teddy(&p.pairs, &f.data.images, &d2, &d3).unwrap();
    let jobs = tuwen::jobs::rank::teddy_jobs(&[d2], root).unwrap();
    for opts in [
        ScoreOptions::cosine(),
        ScoreOptions {
            scoring: Scoring::Csls { k: 4 },
            bank: Bank::Train,
        },
    ] {
        let ranker = tuwen::jobs::rank::Ranker::new(&emb, emb.scorer(opts).unwrap());
        let r = ranker.run(&jobs[0]).unwrap();
        for (qid, top) in r.top.iter().take(3) {
            for (img, ranked) in top {
                let s = tuwen::jobs::explain::explain_files(
                    &emb,
                    &ranker.scorer,
                    &r.captions[qid],
                    &jobs[0].images.join(img),
                    Direction::TextToImage,
                )
                .unwrap();
                assert_eq!(s.score.to_bits(), ranked.to_bits(), "{}", opts.describe());
                let parts = s.scale * s.cosine.total() - s.query_penalty - s.gallery_penalty;
                assert!((parts - s.score).abs() < TOL, "{parts} vs {}", s.score);
            }
        }
    }
}

/// Degenerate data is refused like the closed form refuses it, not indexed into (an empty pair
/// list and an owner outside the image rows used to panic in the fit/stop split).
#[test]
fn degenerate_training_data_is_an_error_not_a_panic() {
    let params = ProjectionParams {
        method: Method::Contrastive,
        cca: CcaParams::new(2).reg(1.0, 1.0),
        contrastive: Some(ContrastiveParams::default()),
        ..Default::default()
    };
    let images = ndarray::Array2::<f32>::from_shape_fn((4, 3), |(i, j)| (i * 3 + j) as f32 + 1.0);
    let none = ndarray::Array2::<f32>::zeros((0, 5));
    let e = params
        .fit_with(
            images.view(),
            &[],
            &SparseRows::from_dense(none.view()),
            None,
            false,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 2"), "{e}");
    let texts = ndarray::Array2::<f32>::from_shape_fn((3, 5), |(i, j)| ((i + 1) * (j + 2)) as f32);
    let e = params
        .fit_with(
            images.view(),
            &[0, 1, 9],
            &SparseRows::from_dense(texts.view()),
            None,
            false,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("out of range"), "{e}");
}
