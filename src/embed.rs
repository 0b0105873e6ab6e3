//! A fitted model ready to use: the model with its checked backbone weights (feature spec) and
//! word vectors (text encoder). Every command that turns ids or captions into projected rows goes
//! through one [`Embedder`], so they all keep the same usable rows and report the same skips.
use crate::data::Skip;
use crate::error::{Error, Result};
use crate::features::image::{self, ExtractOptions, ExtractStats, FeatureSpec};
use crate::features::text::{OovReport, TextEncoder};
use crate::model::{Model, WordVectorsInfo};
use crate::retrieval::{ScoreOptions, Scorer};
use ndarray::{Array2, ArrayView2, Axis};
use std::path::{Path, PathBuf};

/// Word-vector files to use with a model (None: the models folder's defaults).
#[derive(Debug, Clone, Default)]
pub struct VectorFiles {
    pub words: Option<PathBuf>,
    /// The second set, for models whose text features use one.
    pub second: Option<PathBuf>,
}

/// A model with everything needed to embed new images and captions, checked once.
pub struct Embedder {
    model: Model,
    spec: FeatureSpec,
    enc: TextEncoder,
    ex: ExtractOptions,
}

/// The usable images of a list, in list order, and what was left out.
#[derive(Debug)]
pub struct ImageRows {
    pub ids: Vec<String>,
    /// The caller's 0-based list position of each usable id.
    pub positions: Vec<usize>,
    /// Features as extracted (before the model's image normalisation): for explanations.
    pub raw: Array2<f32>,
    /// Projected, unit-length rows.
    pub projected: Array2<f32>,
    /// Unusable images, labelled with the file (and row) that listed them.
    pub skipped: Vec<Skip>,
    pub stats: ExtractStats,
}

/// Where an image list came from, for skip labels and errors.
#[derive(Debug, Clone, Copy)]
pub struct Listed<'a> {
    /// The file (or folder) that named the ids.
    pub file: &'a Path,
    /// The 1-based row of each id in that file (`None`: position + 1).
    pub rows: Option<&'a [usize]>,
}

impl Embedder {
    /// Check the model against the weights (`ex.weights`, default: the models folder) and the word
    /// vectors it was fitted with; other files are an error naming both.
    pub fn new(model: Model, vectors: &VectorFiles, ex: ExtractOptions) -> Result<Embedder> {
        ex.check()?;
        let spec = model.feature_spec(ex.weights.as_deref())?;
        let enc = model_text_encoder(&model, vectors)?;
        Ok(Embedder {
            model,
            spec,
            enc,
            ex,
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }
    pub fn encoder(&self) -> &TextEncoder {
        &self.enc
    }
    pub fn extract_options(&self) -> &ExtractOptions {
        &self.ex
    }

    /// The scorer for `options`, with the model's training banks where they are needed.
    pub fn scorer(&self, options: ScoreOptions) -> Result<Scorer> {
        Ok(Scorer::new(options, self.model.banks.as_ref())?)
    }

    /// Features of `ids` in `dir` (from the cache where they are there), the usable ones
    /// projected. None usable is an error saying what was found and the usual slip.
    pub fn images(&self, ids: &[String], dir: &Path, listed: Listed) -> Result<ImageRows> {
        let mut f = image::extract(ids, dir, &self.spec, &self.ex)?;
        if f.ok.iter().all(|&ok| !ok) {
            return Err(f.nothing_usable(dir, &format!("images of {}", listed.file.display())));
        }
        f.relabel_skips(listed.file, listed.rows);
        let positions: Vec<usize> = (0..ids.len()).filter(|&i| f.ok[i]).collect();
        let raw = f.features.select(Axis(0), &positions);
        let projected = self.model.projection.project_images(raw.view());
        Ok(ImageRows {
            ids: positions.iter().map(|&i| ids[i].clone()).collect(),
            positions,
            raw,
            projected,
            skipped: f.skipped,
            stats: f.stats,
        })
    }

    /// Raw text features of captions (the model's encoder and training statistics).
    pub fn text_features(&self, captions: &[String]) -> (Array2<f32>, OovReport) {
        self.enc.features(captions)
    }

    /// Projected, unit-length rows of captions.
    pub fn texts(&self, captions: &[String]) -> (Array2<f32>, OovReport) {
        let (t, oov) = self.enc.features_sparse(captions);
        (self.model.projection.project_text_rows(&t), oov)
    }

    pub fn project_texts(&self, features: ArrayView2<f32>) -> Array2<f32> {
        if features.nrows() == 0 {
            return Array2::zeros((0, self.model.projection.dim()));
        }
        self.model.projection.project_texts(features)
    }

    pub fn project_images(&self, features: ArrayView2<f32>) -> Array2<f32> {
        self.model.projection.project_images(features)
    }
}

/// Text encoder matching a fitted model: the same vectors file (by sha256), config and training
/// statistics. Other vectors are an error naming both files.
pub fn model_text_encoder(model: &Model, vectors: &VectorFiles) -> Result<TextEncoder> {
    let mut enc = TextEncoder::load_with(
        model.config.text.clone(),
        vectors.words.as_deref(),
        vectors.second.as_deref(),
    )?;
    let check = |wv: &WordVectorsInfo, path: &Path, sha: &str, flag: &str| -> Result<()> {
        if sha == wv.sha256 {
            return Ok(());
        }
        Err(Error::Model(format!(
            "the model was fitted with word vectors {} (sha256 {}…, {} words × {}), but {} has \
             sha256 {}…; pass the model's vectors with {flag} or refit",
            wv.file,
            wv.sha256.get(..12).unwrap_or(&wv.sha256),
            wv.vocab,
            wv.dim,
            path.display(),
            sha.get(..12).unwrap_or(sha),
        )))
    };
    let c = &model.config;
    check(
        &c.word_vectors,
        &enc.vectors_path,
        &enc.vectors_sha256,
        "--vectors",
    )?;
    match (&c.word_vectors2, &enc.second) {
        (Some(wv), Some((_, p, sha))) => check(wv, p, sha, "--vectors2")?,
        (None, None) => {}
        _ => {
            return Err(Error::Model(
                "model config and second word vectors disagree".into(),
            ))
        }
    }
    enc.set_stats(model.word_stats.clone());
    Ok(enc)
}
