//! `tuwen explain`: a caption–image cosine split into per-term contributions and a constant
//! must add up to the cosine ranking computes, and a hubness-corrected score to the score
//! ranking computes. Generated data (models/ from set-up), and one model fitted on a small part
//! of Flickr8k-CN in ../shared/data (fails, never skips, when it is missing).
mod common;
use ndarray::Axis;
use std::path::{Path, PathBuf};
use tuwen::embed::{Embedder, VectorFiles};
use tuwen::explain::{self, TermKind};
use tuwen::features::image::{self, BackboneKind, ExtractOptions, ImageFeatureConfig, Pooling};
use tuwen::features::text::{BagConfig, SecondVectors, TextFeatureConfig, Weighting};
use tuwen::jobs::explain::explain_files;
use tuwen::model::Model;
use tuwen::retrieval::score::Scoring;
use tuwen::retrieval::{Bank, Direction, ScoreOptions};

const TOL: f32 = 1e-5;

fn lite0() -> ImageFeatureConfig {
    ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, false)
}

fn ex(cache: &Path) -> ExtractOptions {
    ExtractOptions {
        cache_dir: Some(cache.to_path_buf()),
        progress: false,
        ..Default::default()
    }
}

fn fit(pairs: &Path, images: &Path, cache: &Path, text: TextFeatureConfig, k: usize) -> Model {
    let opts = tuwen::jobs::fit::FitOptions {
        sets: vec![(pairs.to_path_buf(), images.to_path_buf())],
        image: lite0(),
        text,
        projection: tuwen::projection::ProjectionParams {
            cca: tuwen::projection::CcaParams::new(k).reg(0.3, 0.3),
            ..Default::default()
        },
        extract: ex(cache),
        vectors: None,
        vectors2: None,
        extra_pairs: Vec::new(),
    };
    tuwen::jobs::fit::fit(&opts).unwrap().0
}

fn embedder(model: &Model, cache: &Path) -> Embedder {
    Embedder::new(model.clone(), &VectorFiles::default(), ex(cache)).unwrap()
}

/// For every (caption, image) of `pairs`: the parts rebuild `features()`, the contributions and
/// the offset add up to the cosine, which is the dot of the two projections.
fn check_pairs(model: &Model, pairs: &Path, images: &Path, cache: &Path, max: usize) {
    let emb = embedder(model, cache);
    let enc = emb.encoder();
    let p = tuwen::data::read_pairs(pairs).unwrap();
    let (ids, _) = tuwen::data::group_images(&p.pairs);
    let spec = model.feature_spec(None).unwrap();
    let f = image::extract(&ids, images, &spec, &ex(cache)).unwrap();
    let index = f.index();
    let proj = &model.projection;
    for pair in p.pairs.iter().take(max) {
        // The explanation's implied t is the `features()` row.
        let (t, _) = enc.features(std::slice::from_ref(&pair.caption));
        let implied = enc.caption_parts(&pair.caption).feature();
        assert_eq!(implied.len(), t.ncols());
        for (a, b) in implied.iter().zip(t.row(0)) {
            assert!((a - b).abs() < 1e-6, "{}: {a} vs {b}", pair.caption);
        }
        // Against a different image too, not only the caption's own.
        for img in [&pair.image_id, &ids[0]] {
            let x = f.features.row(index[img.as_str()]);
            let e = explain::explain_pair(&emb, &pair.caption, x).unwrap();
            let cos = proj
                .project_texts(t.view())
                .dot(&proj.project_images(x.insert_axis(Axis(0))).t())[[0, 0]];
            assert!((e.cosine - cos).abs() < TOL, "{} vs {cos}", e.cosine);
            assert!(
                (e.total() - e.cosine).abs() < TOL,
                "{}: terms + offset = {} but cosine {}",
                pair.caption,
                e.total(),
                e.cosine
            );
            // Sorted by |contribution|; every listed term is in the caption.
            for w in e.terms.windows(2) {
                assert!(w[0].contribution.abs() >= w[1].contribution.abs());
            }
            // Characters and bigrams are taken over the caption's letters and digits only (a
            // bigram may span removed punctuation).
            let letters: String = pair
                .caption
                .chars()
                .filter(|c| c.is_alphanumeric())
                .collect();
            for term in &e.terms {
                assert!(
                    pair.caption.contains(&term.text) || letters.contains(&term.text),
                    "{} not in {}",
                    term.text,
                    pair.caption
                );
                if term.oov {
                    assert_eq!(term.contribution, 0.0);
                }
            }
        }
    }
}

#[test]
fn explanations_add_up_to_the_ranked_cosine_and_score() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let data = tuwen::data::synthetic::generate(&root.join("syn"), 30, 8, 11).unwrap();
    let cache = root.join("cache");
    // The default text features, and one with every other path: SIF weights, a scaled first
    // block and a second word-vector set.
    let other = TextFeatureConfig {
        weighting: Weighting::Sif,
        bag: Some(BagConfig {
            w2v_weight: 0.7,
            ..Default::default()
        }),
        second: Some(SecondVectors { weight: 0.5 }),
        ..Default::default()
    };
    for text in [TextFeatureConfig::default(), other] {
        let model = fit(&data.train_pairs, &data.images, &cache, text, 6);
        check_pairs(&model, &data.val_pairs, &data.images, &cache, usize::MAX);

        // The scores `rank` writes: plain cosine, and CSLS over the model's training banks.
        let val = tuwen::data::read_pairs(&data.val_pairs).unwrap();
        let (d2, d3) = (root.join("附件2"), root.join("附件3"));
        tuwen::jobs::split::layout_teddy(&val.pairs, &data.images, &d2, &d3).unwrap();
        let jobs = tuwen::jobs::rank::teddy_jobs(&[d2], root).unwrap();
        let e = ex(&cache);
        let emb = embedder(&model, &cache);
        for (opts, query) in [
            (ScoreOptions::cosine(), Direction::TextToImage),
            (
                ScoreOptions {
                    scoring: Scoring::Csls { k: 4 },
                    bank: Bank::Train,
                },
                Direction::TextToImage,
            ),
            (
                ScoreOptions {
                    scoring: Scoring::InvertedSoftmax { beta: 10.0 },
                    bank: Bank::Train,
                },
                Direction::TextToImage,
            ),
        ] {
            let ranker = tuwen::jobs::rank::Ranker::new(&emb, emb.scorer(opts).unwrap());
            assert_eq!(jobs[0].direction, Direction::TextToImage);
            let r = ranker.run(&jobs[0]).unwrap();
            for (qid, top) in r.top.iter().take(3) {
                let caption = &r.captions[qid];
                for (img, ranked) in top {
                    let s = explain_files(
                        &emb,
                        &ranker.scorer,
                        caption,
                        &jobs[0].images.join(img),
                        query,
                    )
                    .unwrap();
                    // One float path: explain's one pair and rank's whole file give the same
                    // bits (the image features come from the same cache).
                    assert_eq!(
                        s.score.to_bits(),
                        ranked.to_bits(),
                        "{}: explain {} vs rank {ranked}",
                        opts.describe(),
                        s.score
                    );
                    // The parts add up to the corrected score.
                    let parts = s.scale * s.cosine.total() - s.query_penalty - s.gallery_penalty;
                    assert!((parts - s.score).abs() < TOL, "{parts} vs {}", s.score);
                    assert!((s.correction() - (s.score - s.cosine.cosine)).abs() < 1e-7);
                    match opts.scoring {
                        Scoring::Cosine => {
                            assert_eq!(
                                (s.scale, s.query_penalty, s.gallery_penalty),
                                (1.0, 0.0, 0.0)
                            )
                        }
                        Scoring::Csls { .. } => {
                            assert_eq!(s.scale, 2.0);
                            assert!(s.query_penalty != 0.0 && s.gallery_penalty != 0.0);
                        }
                        Scoring::InvertedSoftmax { .. } => assert_eq!(s.query_penalty, 0.0),
                    }
                }
            }
        }

        // A term absent from the caption contributes nothing: an unknown token changes neither
        // t nor the cosine, and is listed as out of vocabulary with contribution 0; a known term
        // of another caption is not listed.
        let spec = model.feature_spec(None).unwrap();
        let id = val.pairs[0].image_id.clone();
        let f = image::extract(std::slice::from_ref(&id), &data.images, &spec, &e).unwrap();
        let caption = "一个红色的圆形";
        let base = explain::explain_pair(&emb, caption, f.features.row(0)).unwrap();
        let more = explain::explain_pair(&emb, "一个红色的圆形 ꙮꙮ", f.features.row(0)).unwrap();
        assert!((base.cosine - more.cosine).abs() < 1e-6);
        // (jieba may cut it into one token or two.)
        let unknown: Vec<_> = more.terms.iter().filter(|t| t.text.contains('ꙮ')).collect();
        assert!(!unknown.is_empty(), "{:?}", more.terms);
        for t in unknown {
            assert!(t.oov && t.kind == TermKind::Token && t.contribution == 0.0);
        }
        assert!(!base.terms.iter().any(|t| t.text.contains("蓝")));
        // The caption's own terms are there, each kind.
        for (kind, text) in [
            (TermKind::Token, "红色"),
            (TermKind::Word, "红色"),
            (TermKind::Char, "红"),
            (TermKind::Bigram, "红色"),
        ] {
            assert!(
                base.terms.iter().any(|t| t.kind == kind && t.text == text),
                "{kind:?} {text} missing from {:?}",
                base.terms
            );
        }
    }

    // One pair has no sets to compare with: a corrected score needs the training banks.
    let model = fit(
        &data.train_pairs,
        &data.images,
        &cache,
        TextFeatureConfig::default(),
        6,
    );
    let emb = embedder(&model, &cache);
    let err = explain_files(
        &emb,
        &emb.scorer(ScoreOptions::default()).unwrap(),
        "一个红色的圆形",
        &data.images.join("Image14000000-0000.jpg"),
        Direction::TextToImage,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("--bank train"), "{err}");
}

#[test]
fn the_cli_prints_the_parts_and_json() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let data = tuwen::data::synthetic::generate(&root.join("syn"), 24, 4, 5).unwrap();
    let cache = root.join("cache");
    let model = fit(
        &data.train_pairs,
        &data.images,
        &cache,
        TextFeatureConfig::default(),
        6,
    );
    let dir = root.join("model");
    model.save(&dir).unwrap();
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tuwen"))
            .arg("explain")
            .arg("--model")
            .arg(&dir)
            .arg("--cache")
            .arg(&cache)
            .args(["--caption", "一个红色的圆形 ꙮꙮ", "--image"])
            .arg(data.images.join("Image14000000-0000.jpg"))
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let table = run(&["--top", "5"]);
    assert!(
        table.contains("score") && table.contains("offset"),
        "{table}"
    );
    assert!(table.contains("query penalty"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&run(&["--json"])).unwrap();
    assert_eq!(json["scoring"], "csls(k=10)");
    let terms = json["cosine"]["terms"].as_array().unwrap();
    assert!(terms
        .iter()
        .any(|t| t["text"].as_str().unwrap().contains('ꙮ')
            && t["oov"] == true
            && t["kind"] == "token"));
    let sum: f64 = terms
        .iter()
        .map(|t| t["contribution"].as_f64().unwrap())
        .sum::<f64>()
        + json["cosine"]["offset"].as_f64().unwrap();
    assert!((sum - json["cosine"]["cosine"].as_f64().unwrap()).abs() < 1e-5);
    let json: serde_json::Value =
        serde_json::from_str(&run(&["--json", "--score", "cosine"])).unwrap();
    assert_eq!(json["score"], json["cosine"]["cosine"]);
}

#[test]
fn explanations_add_up_on_a_small_flickr8k_cn_model() {
    common::models();
    let data = common::shared_data().join("flickr8k-cn");
    let d = tempfile::tempdir().unwrap();
    // The first 300 training images with their captions; 20 of val's captions to explain.
    let subset = |src: &str, images: usize, name: &str| -> PathBuf {
        let p = tuwen::data::read_pairs(&data.join(src)).unwrap();
        let (ids, _) = tuwen::data::group_images(&p.pairs);
        let keep: std::collections::HashSet<&String> = ids.iter().take(images).collect();
        let mut w = csv::Writer::from_path(d.path().join(name)).unwrap();
        w.write_record(["image_id", "caption"]).unwrap();
        for pair in p.pairs.iter().filter(|p| keep.contains(&p.image_id)) {
            w.write_record([&pair.image_id, &pair.caption]).unwrap();
        }
        w.flush().unwrap();
        d.path().join(name)
    };
    let train = subset("train.csv", 300, "train.csv");
    let val = subset("val.csv", 4, "val.csv");
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tuwen-test-cache");
    let images = data.join("images");
    let model = fit(&train, &images, &cache, TextFeatureConfig::default(), 64);
    check_pairs(&model, &val, &images, &cache, 20);
    // CSLS over the stored banks: the parts add up to the corrected score.
    let p = tuwen::data::read_pairs(&val).unwrap();
    let opts = ScoreOptions {
        scoring: Scoring::Csls { k: 10 },
        bank: Bank::Train,
    };
    let emb = embedder(&model, &cache);
    let s = explain_files(
        &emb,
        &emb.scorer(opts).unwrap(),
        &p.pairs[0].caption,
        &images.join(&p.pairs[0].image_id),
        Direction::TextToImage,
    )
    .unwrap();
    let parts = s.scale * s.cosine.total() - s.query_penalty - s.gallery_penalty;
    assert!((parts - s.score).abs() < TOL, "{parts} vs {}", s.score);
    assert!(s.cosine.terms.iter().any(|t| t.contribution != 0.0));
}
