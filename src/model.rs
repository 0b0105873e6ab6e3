//! A fitted model: its configuration (human-readable `config.json`), the projection matrices
//! (`projection.safetensors`) and the training captions' token statistics (`word_stats.json`).
//!
//! The config stores the [`FeatureSpec`] of the image features and the word vectors' identity
//! (sha256); a model is only ever applied to features of the same spec and the same vectors.
use crate::error::{Error, Result};
use crate::features::image::FeatureSpec;
use crate::features::text::{OovReport, TextFeatureConfig, WordStats};
use crate::projection::{Projection, ProjectionParams};
use ndarray::{Array1, Array2};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::path::Path;

/// 2: feature spec with weights hash, word-vector hash, training files with hashes.
pub const FORMAT: u32 = 2;

/// A model folder, for [`crate::fsutil`]: recognised by its `config.json` (a JSON object with the
/// fields every format of tuwen's model config has), holding only the files a save writes.
pub const MODEL_DIR: crate::fsutil::DirKind = crate::fsutil::DirKind {
    what: "model folder",
    entries: &["config.json", "projection.safetensors", "word_stats.json"],
    mark: crate::fsutil::Mark::Check(is_model_dir),
    nested: &[],
};

/// Whether `dir/config.json` is a tuwen model config (of any format).
pub fn is_model_dir(dir: &Path) -> bool {
    std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| {
            v["format"].is_u64()
                && ["image", "text", "projection", "train"]
                    .iter()
                    .all(|k| v[k].is_object())
        })
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelConfig {
    pub format: u32,
    pub image: FeatureSpec,
    pub text: TextFeatureConfig,
    pub projection: ProjectionParams,
    pub word_vectors: WordVectorsInfo,
    /// The second word-vector set, if the text features use one.
    #[serde(default)]
    pub word_vectors2: Option<WordVectorsInfo>,
    pub train: TrainInfo,
}

/// Identity of the word-vector file the model was fitted with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WordVectorsInfo {
    /// File name (informative; the hash is what is checked).
    pub file: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub vocab: usize,
    pub dim: usize,
}

/// A training input as the user gave it, with its content hash.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TrainFile {
    pub pairs: String,
    pub pairs_sha256: String,
    pub images: String,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TrainInfo {
    pub files: Vec<TrainFile>,
    pub pairs_used: usize,
    pub images_used: usize,
    pub pairs_skipped: usize,
    pub oov: OovReport,
    pub correlations: Vec<f64>,
    pub fit_seconds: f64,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub config: ModelConfig,
    pub projection: Projection,
    pub word_stats: WordStats,
    /// Projected training items (evenly spaced samples, at most [`BANK_ROWS`] per side): the
    /// hubness-correction banks for `--bank train`, when the items being ranked cannot serve.
    pub banks: Option<TrainBanks>,
}

/// Rows kept per side in a model's training banks.
pub const BANK_ROWS: usize = 5000;

#[derive(Debug, Clone, PartialEq)]
pub struct TrainBanks {
    pub images: Array2<f32>,
    pub texts: Array2<f32>,
}

impl TrainBanks {
    /// Evenly spaced rows of already projected (unit-length) training images and captions.
    pub fn sample(images: Array2<f32>, texts: Array2<f32>) -> TrainBanks {
        let pick = |m: Array2<f32>| {
            if m.nrows() <= BANK_ROWS {
                return m;
            }
            let idx: Vec<usize> = (0..BANK_ROWS).map(|i| i * m.nrows() / BANK_ROWS).collect();
            m.select(ndarray::Axis(0), &idx)
        };
        TrainBanks {
            images: pick(images),
            texts: pick(texts),
        }
    }
}

fn bytes(v: impl IntoIterator<Item = f32>) -> Vec<u8> {
    v.into_iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Model {
    /// Whether [`Model::save`] may write `dir`: absent, empty or a tuwen model folder, and not
    /// holding any of `inputs` (checked before a long fit, so a mistake costs nothing).
    pub fn check_save_target(dir: &Path, inputs: &[&Path]) -> Result<()> {
        crate::fsutil::check_dir_replaceable(dir, &MODEL_DIR, inputs)
    }

    /// Save into `dir` as one unit: a save over an existing model replaces all of its files or
    /// none (never a mix of old and new, never a moment without a model). Only an absent or
    /// empty folder or a tuwen model folder is replaced ([`crate::fsutil::check_dir_replaceable`]).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let p = &self.projection;
        let blobs = [
            (
                "image_mean",
                bytes(p.image_mean.iter().copied()),
                vec![p.image_mean.len()],
            ),
            (
                "image_proj",
                bytes(p.image_proj.iter().copied()),
                p.image_proj.shape().to_vec(),
            ),
            (
                "text_mean",
                bytes(p.text_mean.iter().copied()),
                vec![p.text_mean.len()],
            ),
            (
                "text_proj",
                bytes(p.text_proj.iter().copied()),
                p.text_proj.shape().to_vec(),
            ),
            (
                "correlations",
                bytes(p.correlations.iter().map(|&c| c as f32)),
                vec![p.correlations.len()],
            ),
        ];
        let mut blobs = blobs.to_vec();
        if let Some(b) = &self.banks {
            for (name, m) in [("bank_images", &b.images), ("bank_texts", &b.texts)] {
                blobs.push((name, bytes(m.iter().copied()), m.shape().to_vec()));
            }
        }
        let views = blobs
            .iter()
            .map(|(n, b, s)| {
                TensorView::new(Dtype::F32, s.clone(), b)
                    .map(|v| (*n, v))
                    .map_err(|e| Error::Model(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let st = safetensors::serialize(views, &None).map_err(|e| Error::Model(e.to_string()))?;
        let json = |v: serde_json::Result<Vec<u8>>| v.map_err(|e| Error::Model(e.to_string()));
        // config.json first: it marks even a partly written staging folder as ours.
        crate::fsutil::write_dir_atomic(
            dir,
            &MODEL_DIR,
            &[
                (
                    "config.json",
                    json(serde_json::to_vec_pretty(&self.config))?,
                ),
                ("projection.safetensors", st),
                (
                    "word_stats.json",
                    json(serde_json::to_vec(&self.word_stats))?,
                ),
            ],
        )
    }

    /// Load a model, checking every stored tensor's dtype and shape against the config and the
    /// word statistics, so a damaged or mismatched folder is an error naming the file, not a
    /// panic later.
    pub fn load(dir: &Path) -> Result<Model> {
        // A save interrupted between two renames (file systems without an atomic exchange, or
        // tuwen before 0.1.1) left the previous model aside: put it back.
        crate::fsutil::recover_dir(dir, &MODEL_DIR)?;
        if !dir.is_dir() {
            return Err(Error::file(
                dir,
                "model folder not found (make one with `tuwen fit … --out DIR`)",
            ));
        }
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        #[derive(serde::Deserialize)]
        struct Version {
            format: u32,
        }
        let v: Version = serde_json::from_str(&text)
            .map_err(|e| Error::file(&cfg_path, format!("invalid model config: {e}")))?;
        if v.format != FORMAT {
            return Err(Error::file(
                &cfg_path,
                format!(
                    "model format {} (this tuwen reads format {FORMAT}: features are now identified \
                     by their weights' hash); refit the model with `tuwen fit`",
                    v.format
                ),
            ));
        }
        let config: ModelConfig = serde_json::from_str(&text)
            .map_err(|e| Error::file(&cfg_path, format!("invalid model config: {e}")))?;
        let ws_path = dir.join("word_stats.json");
        let ws = std::fs::read(&ws_path).map_err(|e| Error::io(&ws_path, e))?;
        let word_stats: WordStats =
            serde_json::from_slice(&ws).map_err(|e| Error::file(&ws_path, e.to_string()))?;

        let st_path = dir.join("projection.safetensors");
        let raw = std::fs::read(&st_path).map_err(|e| Error::io(&st_path, e))?;
        let st =
            SafeTensors::deserialize(&raw).map_err(|e| Error::file(&st_path, e.to_string()))?;
        let k = config.train.correlations.len();
        let dx = config.image.dim();
        let dy = config.word_vectors.dim
            + config.word_vectors2.as_ref().map_or(0, |w| w.dim)
            + if config.text.bag.is_some() {
                word_stats.bag_vocab.len()
            } else {
                0
            };
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = st
                .tensor(name)
                .map_err(|e| Error::file(&st_path, format!("{name}: {e}")))?;
            if t.dtype() != Dtype::F32 || t.shape() != shape {
                return Err(Error::file(
                    &st_path,
                    format!(
                        "tensor `{name}` is {:?} {:?}, but config.json and word_stats.json need F32 {shape:?}; \
                         the model folder is damaged or mixed: refit it",
                        t.dtype(),
                        t.shape()
                    ),
                ));
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let arr2 = |name: &str, r: usize, c: usize| -> Result<Array2<f32>> {
            Array2::from_shape_vec((r, c), get(name, &[r, c])?)
                .map_err(|e| Error::file(&st_path, format!("{name}: {e}")))
        };
        let projection = Projection {
            image_norm: config.projection.image_norm,
            image_mean: Array1::from(get("image_mean", &[dx])?),
            image_proj: arr2("image_proj", dx, k)?,
            text_mean: Array1::from(get("text_mean", &[dy])?),
            text_proj: arr2("text_proj", dy, k)?,
            correlations: get("correlations", &[k])?
                .into_iter()
                .map(f64::from)
                .collect(),
        };
        // Banks are optional (their row counts are free, their width is the model's).
        let bank = |name: &str| -> Result<Option<Array2<f32>>> {
            let Ok(t) = st.tensor(name) else {
                return Ok(None);
            };
            let rows = t.shape().first().copied().unwrap_or(0);
            arr2(name, rows, k).map(Some)
        };
        let banks = match (bank("bank_images")?, bank("bank_texts")?) {
            (Some(images), Some(texts)) => Some(TrainBanks { images, texts }),
            _ => None,
        };
        Ok(Model {
            config,
            projection,
            word_stats,
            banks,
        })
    }

    /// The image features this model takes, computed with `weights` (default: the models
    /// folder's file for its backbone). Weights other than those it was fitted with are an error
    /// naming both.
    pub fn feature_spec(&self, weights: Option<&Path>) -> Result<FeatureSpec> {
        let want = &self.config.image;
        let cfg = want.config();
        let got = cfg.resolve(weights)?;
        if !got.same_features(want) {
            return Err(Error::Model(format!(
                "the model was fitted on image features {}, but {} gives {}; pass the weights it \
                 was fitted with (--weights) or refit",
                want.describe(),
                cfg.weights_path(weights).display(),
                got.describe()
            )));
        }
        Ok(got)
    }
}
