//! One feature identity from weights to model: the weights' hash keys the cache and is stored in
//! the model; mismatched weights, vectors or damaged model folders are clear errors, not panics or
//! silently wrong numbers. Needs models/ from set-up, not ../shared.
mod common;
use std::collections::HashMap;
use std::path::Path;
use tch::Device;
use tuwen::features::image::{Backbone, BackboneKind, ExtractOptions, ImageFeatureConfig, Pooling};

fn lite0() -> ImageFeatureConfig {
    ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, false)
}

/// Rewrite a safetensors file, dropping tensors and replacing metadata.
fn rewrite(src: &Path, dst: &Path, drop: &[&str], meta: Option<HashMap<String, String>>) {
    let bytes = std::fs::read(src).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.or_else(|| m.metadata().clone());
    let kept: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| !drop.contains(&n.as_str()))
        .collect();
    let out = safetensors::serialize(kept, &meta).unwrap();
    std::fs::write(dst, out).unwrap();
}

#[test]
fn lite0_weights_under_the_lite2_name_are_refused() {
    let models = common::models();
    let d = tempfile::tempdir().unwrap();
    // As converted before variants were tagged: the generic tag, Lite0 tensors, Lite2's name.
    let fake = d.path().join("efficientnet-lite2.safetensors");
    let meta = HashMap::from([
        ("arch".to_string(), "efficientnet-lite".to_string()),
        ("preprocess".to_string(), "mean0.5-std0.5".to_string()),
    ]);
    rewrite(
        &models.join("efficientnet-lite0.safetensors"),
        &fake,
        &[],
        Some(meta),
    );
    let e = Backbone::load(BackboneKind::EfficientNetLite2, Some(&fake), Device::Cpu)
        .err()
        .expect("Lite0 tensors must not load as Lite2")
        .to_string();
    assert!(
        e.contains("efficientnet-lite0") && e.contains("not efficientnet-lite2"),
        "{e}"
    );
    // The set-up script's files carry their variant.
    let st = std::fs::read(models.join("efficientnet-lite0.safetensors")).unwrap();
    let (_, m) = safetensors::SafeTensors::read_metadata(&st).unwrap();
    assert_eq!(
        m.metadata()
            .as_ref()
            .and_then(|m| m.get("arch"))
            .map(String::as_str),
        Some("efficientnet-lite0")
    );
    // The CLI says so too, naming the file, when an image needs the network.
    image::RgbImage::from_pixel(64, 48, image::Rgb([200, 30, 30]))
        .save(d.path().join("x.png"))
        .unwrap();
    std::fs::write(d.path().join("list.csv"), "image_id\nx.png\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .args([
            "extract",
            "--quiet",
            "--no-cache",
            "--backbone",
            "efficientnet-lite2",
            "--weights",
        ])
        .arg(&fake)
        .arg("--pairs")
        .arg(d.path().join("list.csv"))
        .arg("--images")
        .arg(d.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && out.status.code() != Some(101),
        "{err}"
    );
    assert!(
        err.contains("efficientnet-lite2.safetensors") && err.contains("efficientnet-lite0"),
        "{err}"
    );
}

#[test]
fn missing_batch_norm_tensors_are_named() {
    let models = common::models();
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("efficientnet-lite0.safetensors");
    rewrite(
        &models.join("efficientnet-lite0.safetensors"),
        &f,
        &["_blocks.3._bn1.running_var"],
        None,
    );
    let e = Backbone::load(BackboneKind::EfficientNetLite0, Some(&f), Device::Cpu)
        .err()
        .expect("a missing batch-norm tensor must be an error")
        .to_string();
    assert!(
        e.contains("_blocks.3._bn1.running_var") && e.contains("missing"),
        "{e}"
    );
}

#[test]
fn the_weights_hash_keys_the_cache() {
    let models = common::models();
    let d = tempfile::tempdir().unwrap();
    let copy = d.path().join("efficientnet-lite0.safetensors");
    let mut meta = HashMap::from([
        ("arch".to_string(), "efficientnet-lite0".to_string()),
        ("preprocess".to_string(), "mean0.5-std0.5".to_string()),
    ]);
    meta.insert("note".into(), "same tensors, other file".into());
    rewrite(
        &models.join("efficientnet-lite0.safetensors"),
        &copy,
        &[],
        Some(meta),
    );
    let a = lite0().resolve(None).unwrap();
    let b = lite0().resolve(Some(&copy)).unwrap();
    assert_ne!(a.weights_sha256, b.weights_sha256);
    assert_ne!(a.cache_key(), b.cache_key());
    assert!(a.cache_key().starts_with("efficientnet-lite0-w"));
    assert_eq!(a.weights_sha256.len(), 64);
}

/// A small fitted model for the model-folder tests.
fn small_model(root: &Path) -> (tuwen::model::Model, tuwen::data::synthetic::Synthetic) {
    let data = tuwen::data::synthetic::generate(&root.join("syn"), 24, 8, 9).unwrap();
    let opts = tuwen::jobs::fit::FitOptions {
        sets: vec![(data.train_pairs.clone(), data.images.clone())],
        image: lite0(),
        text: Default::default(),
        projection: tuwen::projection::ProjectionParams {
            cca: tuwen::projection::CcaParams::new(6).reg(0.3, 0.3),
            ..Default::default()
        },
        extract: ExtractOptions {
            cache_dir: Some(root.join("cache")),
            progress: false,
            ..Default::default()
        },
        vectors: None,
        vectors2: None,
        extra_pairs: Vec::new(),
    };
    (tuwen::jobs::fit::fit(&opts).unwrap().0, data)
}

#[test]
fn model_folders_are_checked_and_written_whole() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let (model, data) = small_model(d.path());
    let dir = d.path().join("model");
    model.save(&dir).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    // The features' identity and the training files (as given, with hashes) are recorded.
    assert_eq!(cfg["image"]["weights_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(cfg["word_vectors"]["sha256"].as_str().unwrap().len(), 64);
    let train = &cfg["train"]["files"][0];
    assert_eq!(train["pairs"], data.train_pairs.display().to_string());
    assert_eq!(train["pairs_sha256"].as_str().unwrap().len(), 64);

    // A save over a model with other components replaces every file (a stale one would not load).
    let mut other = model.clone();
    other.projection.image_proj = other
        .projection
        .image_proj
        .slice(ndarray::s![.., ..3])
        .to_owned();
    other.projection.text_proj = other
        .projection
        .text_proj
        .slice(ndarray::s![.., ..3])
        .to_owned();
    other.projection.correlations.truncate(3);
    other.config.train.correlations.truncate(3);
    other.banks = None;
    other.save(&dir).unwrap();
    assert_eq!(tuwen::model::Model::load(&dir).unwrap().projection.dim(), 3);
    model.save(&dir).unwrap();
    assert_eq!(tuwen::model::Model::load(&dir).unwrap().projection.dim(), 6);

    // Mixed folders: the projection of the 3-component model beside the 6-component config.
    let mixed = d.path().join("mixed");
    other.save(&mixed).unwrap();
    std::fs::copy(dir.join("config.json"), mixed.join("config.json")).unwrap();
    let e = tuwen::model::Model::load(&mixed)
        .expect_err("mixed folder")
        .to_string();
    assert!(
        e.contains("projection.safetensors") && e.contains("image_proj"),
        "{e}"
    );
    // Truncated tensors file.
    let bytes = std::fs::read(dir.join("projection.safetensors")).unwrap();
    std::fs::write(
        mixed.join("projection.safetensors"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let e = tuwen::model::Model::load(&mixed)
        .expect_err("truncated")
        .to_string();
    assert!(e.contains("projection.safetensors"), "{e}");
    // Word statistics of another bag size.
    std::fs::copy(
        dir.join("projection.safetensors"),
        mixed.join("projection.safetensors"),
    )
    .unwrap();
    let mut ws = model.word_stats.clone();
    ws.bag_vocab.pop();
    std::fs::write(
        mixed.join("word_stats.json"),
        serde_json::to_vec(&ws).unwrap(),
    )
    .unwrap();
    let e = tuwen::model::Model::load(&mixed)
        .expect_err("bag size")
        .to_string();
    assert!(e.contains("text_mean") || e.contains("text_proj"), "{e}");

    // Other word vectors than the model's: an error naming both files.
    let ex = ExtractOptions {
        cache_dir: Some(d.path().join("cache")),
        progress: false,
        ..Default::default()
    };
    let cnsyn = common::models().join("cnsyn.vector");
    let e = common::evaluate(
        &model,
        &data.val_pairs,
        &data.images,
        &ex,
        &tuwen::embed::VectorFiles {
            words: Some(cnsyn.clone()),
            second: None,
        },
        &Default::default(),
    )
    .expect_err("other vectors must be refused")
    .to_string();
    assert!(
        e.contains("words.vector") && e.contains("cnsyn.vector"),
        "{e}"
    );
}

/// A batch norm whose length does not match its convolution's output channels is a clear error
/// naming the file: folding it into the convolution at load used to panic inside libtorch.
#[test]
fn a_batch_norm_of_the_wrong_length_is_refused_at_load() {
    let models = common::models();
    let d = tempfile::tempdir().unwrap();
    let src = models.join("efficientnet-lite0.safetensors");
    let bytes = std::fs::read(&src).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let bad_name = "_blocks.3._bn1.running_var";
    let n = st.tensor(bad_name).unwrap().shape()[0];
    let longer: Vec<u8> = vec![1.0f32; n + 1]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut kept: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(name, _)| name != bad_name)
        .collect();
    kept.push((
        bad_name.to_string(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n + 1], &longer)
            .unwrap(),
    ));
    let fake = d.path().join("efficientnet-lite0.safetensors");
    std::fs::write(&fake, safetensors::serialize(kept, m.metadata()).unwrap()).unwrap();
    let e = Backbone::load(BackboneKind::EfficientNetLite0, Some(&fake), Device::Cpu)
        .err()
        .expect("a mismatched batch norm must not load")
        .to_string();
    assert!(e.contains(bad_name) && e.contains("output channels"), "{e}");
}
