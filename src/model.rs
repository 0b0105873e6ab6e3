//! A fitted model: its configuration (human-readable `config.json`), the projection matrices
//! (`projection.safetensors`) and the training captions' token statistics (`word_stats.json`).
//!
//! The config stores the [`FeatureSpec`] of the image features and the word vectors' identity
//! (sha256); a model is only ever applied to features of the same spec and the same vectors.
//! Its first entry, `integrity`, records the sha256 of the other two files and of the rest of
//! config.json's own text, so a file edited or copied in from another model is refused on load,
//! naming the file.
use crate::error::{Error, Result};
use crate::features::image::FeatureSpec;
use crate::features::text::{OovReport, TextFeatureConfig, WordStats};
use crate::projection::{Projection, ProjectionParams};
use ndarray::{Array1, Array2};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::path::Path;

/// 3: config.json records the sha256 of the other files and of its own text (`integrity`).
/// 2: feature spec with weights hash, word-vector hash, training files with hashes (still
/// loaded, with a warning that edits to its files cannot be detected).
pub const FORMAT: u32 = 3;
/// The oldest format [`Model::load`] still reads.
const FORMAT_UNVERIFIED: u32 = 2;

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
    /// `--extra-pairs` files (`--method contrastive`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_files: Vec<TrainFile>,
    /// `--method contrastive`: the epoch kept and the early-stopping history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contrastive: Option<crate::projection::ContrastiveReport>,
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

pub use crate::retrieval::scorer::{TrainBanks, BANK_ROWS};

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
        let ws = json(serde_json::to_vec(&self.word_stats))?;
        // config.json records the sha256 of the other files and of its own fields.
        let config = config_json(&self.config, &[(STATS, &ws), (TENSORS, &st)])?;
        // config.json first: it marks even a partly written staging folder as ours.
        crate::fsutil::write_dir_atomic(
            dir,
            &MODEL_DIR,
            &[("config.json", config), (TENSORS, st), (STATS, ws)],
        )
    }

    /// Load a model, checking every stored tensor's dtype and shape against the config and the
    /// word statistics, every value for being finite, and every file against the sha256 that
    /// config.json records, so a damaged, edited or mixed folder is an error naming the file, not
    /// a panic or a wrong result later. Warnings (an old model without hashes) go to stderr.
    pub fn load(dir: &Path) -> Result<Model> {
        let (model, notes) = Model::load_with_notes(dir)?;
        for n in notes {
            eprintln!("{n}");
        }
        Ok(model)
    }

    /// [`Model::load`], returning its warnings instead of printing them.
    pub fn load_with_notes(dir: &Path) -> Result<(Model, Vec<String>)> {
        // A save interrupted between two renames (file systems without an atomic exchange, or
        // tuwen before 0.1.1) left the previous model aside: put it back.
        crate::fsutil::recover_dir(dir, &MODEL_DIR)?;
        let mut notes = Vec::new();
        if !dir.is_dir() {
            return Err(Error::file(
                dir,
                "model folder not found (make one with `tuwen fit … --out DIR`)",
            ));
        }
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let invalid =
            |e: serde_json::Error| Error::file(&cfg_path, format!("invalid model config: {e}"));
        let mut value: serde_json::Value = serde_json::from_str(&text).map_err(invalid)?;
        let integrity = value
            .as_object_mut()
            .and_then(|m| m.remove(INTEGRITY))
            .map(serde_json::from_value::<Integrity>)
            .transpose()
            .map_err(invalid)?;
        let cfg_body = split_record(&text).map(|(_, body)| body);
        #[derive(serde::Deserialize)]
        struct Version {
            format: u32,
        }
        let v: Version = serde_json::from_value(value.clone()).map_err(invalid)?;
        if v.format != FORMAT && v.format != FORMAT_UNVERIFIED {
            return Err(Error::file(
                &cfg_path,
                format!(
                    "model format {} (this tuwen reads formats {FORMAT_UNVERIFIED} and {FORMAT}: \
                     features are identified by their weights' hash); refit the model with `tuwen fit`",
                    v.format
                ),
            ));
        }
        if integrity.is_none() && v.format == FORMAT {
            return Err(Error::file(
                &cfg_path,
                format!(
                    "format {FORMAT} model without its `{INTEGRITY}` record: the file was edited; \
                     restore it or refit the model with `tuwen fit`"
                ),
            ));
        }
        let config: ModelConfig = serde_json::from_value(value.clone()).map_err(invalid)?;
        config
            .text
            .check()
            .and_then(|_| config.projection.check())
            .map_err(|e| Error::file(&cfg_path, format!("invalid model config: {e}")))?;
        let ws_path = dir.join(STATS);
        let ws = std::fs::read(&ws_path).map_err(|e| Error::io(&ws_path, e))?;
        let word_stats: WordStats =
            serde_json::from_slice(&ws).map_err(|e| Error::file(&ws_path, e.to_string()))?;

        let st_path = dir.join(TENSORS);
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
            let v: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            // A NaN or infinite weight makes every score NaN, which would rank as a match.
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(Error::file(
                    &st_path,
                    format!(
                        "tensor `{name}` holds a non-finite value ({} at index {i}); the model \
                         folder is damaged: refit it",
                        v[i]
                    ),
                ));
            }
            Ok(v)
        };
        let arr2 = |name: &str, r: usize, c: usize| -> Result<Array2<f32>> {
            Array2::from_shape_vec((r, c), get(name, &[r, c])?)
                .map_err(|e| Error::file(&st_path, format!("{name}: {e}")))
        };
        let blocks = &config.projection.image_blocks;
        // A model of several blocks without its block list would normalise them as one.
        let multi = config.image.blocks().len() > 1;
        if (multi || !blocks.is_empty())
            && (blocks.iter().sum::<usize>() != dx || *blocks != config.image.blocks())
        {
            return Err(Error::file(
                &cfg_path,
                format!(
                    "image blocks {blocks:?} do not match the image features ({:?})",
                    config.image.blocks()
                ),
            ));
        }
        let projection = Projection {
            image_norm: config.projection.image_norm,
            image_blocks: blocks.clone(),
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
        // Shapes and values are fine; now any edit that kept them (another model's word
        // statistics, a changed pooling or flip in the config) is caught by the recorded hashes.
        match integrity {
            Some(rec) => {
                rec.verify_config(&cfg_path, cfg_body.as_deref())?;
                rec.verify_file(&ws_path, STATS, &ws)?;
                rec.verify_file(&st_path, TENSORS, &raw)?;
            }
            None => notes.push(format!(
                "warning: {}: format {FORMAT_UNVERIFIED} model without sha256 records: edits to \
                 its files cannot be detected; refit it to add them",
                cfg_path.display()
            )),
        }
        Ok((
            Model {
                config,
                projection,
                word_stats,
                banks,
            },
            notes,
        ))
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

const TENSORS: &str = "projection.safetensors";
const STATS: &str = "word_stats.json";
/// config.json's key for its sha256 record.
const INTEGRITY: &str = "integrity";

/// What config.json records of the model's contents.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Integrity {
    /// sha256 of config.json's text without its `integrity` line (see [`split_record`]).
    config_sha256: String,
    /// sha256 of each other file of the folder, by file name.
    files: std::collections::BTreeMap<String, String>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(bytes))
}

/// How config.json begins: its record comes first, on one line.
const RECORD_PREFIX: &str = "{\n  \"integrity\": ";

/// config.json's text split into its record (the JSON after `"integrity": `) and the rest as
/// it was before the record went in. The text is hashed, not the parsed values: serde_json's
/// float parsing is not always exact, so numbers read back can differ in their last bit.
fn split_record(text: &str) -> Option<(&str, String)> {
    let rest = text.strip_prefix(RECORD_PREFIX)?;
    let (line, after) = rest.split_once('\n')?;
    Some((line.strip_suffix(',')?, format!("{{\n{after}")))
}

/// config.json's bytes: the config with the sha256 of its text and of `files` (name, bytes).
fn config_json(config: &ModelConfig, files: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let err = |e: serde_json::Error| Error::Model(e.to_string());
    let body = serde_json::to_string_pretty(config).map_err(err)?;
    with_integrity(&body, files)
}

/// `body` (pretty JSON of an object) with the record as its first entry.
fn with_integrity(body: &str, files: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let err = |e: serde_json::Error| Error::Model(e.to_string());
    let rec = Integrity {
        config_sha256: sha256_hex(body.as_bytes()),
        files: files
            .iter()
            .map(|(n, b)| (n.to_string(), sha256_hex(b)))
            .collect(),
    };
    let rest = body
        .strip_prefix("{\n")
        .ok_or_else(|| Error::Model("model config is not a JSON object".into()))?;
    let rec = serde_json::to_string(&rec).map_err(err)?;
    Ok(format!("{RECORD_PREFIX}{rec},\n{rest}").into_bytes())
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

impl Integrity {
    /// `body`: config.json's text without the record ([`split_record`]; None when the record
    /// is not where a save puts it, i.e. the file was rewritten).
    fn verify_config(&self, path: &Path, body: Option<&str>) -> Result<()> {
        let got = body.map(|b| sha256_hex(b.as_bytes()));
        if got.as_deref() == Some(self.config_sha256.as_str()) {
            return Ok(());
        }
        Err(Error::file(
            path,
            format!(
                "settings changed since the model was saved (sha256 of its text {}, recorded \
                 {}…): a model's settings cannot be edited, since its matrices were fitted for \
                 them; restore the file or refit with the settings you want",
                got.as_deref()
                    .map_or("unknown: the file was rewritten".into(), |g| format!(
                        "{}…",
                        short(g)
                    )),
                short(&self.config_sha256)
            ),
        ))
    }

    fn verify_file(&self, path: &Path, name: &str, bytes: &[u8]) -> Result<()> {
        let Some(want) = self.files.get(name) else {
            return Err(Error::file(
                path,
                format!("config.json records no sha256 for {name}: restore config.json or refit"),
            ));
        };
        let got = sha256_hex(bytes);
        if &got == want {
            return Ok(());
        }
        Err(Error::file(
            path,
            format!(
                "not the file this model was saved with (sha256 {}…, config.json records {}…): \
                 it was edited or copied from another model; restore it or refit",
                short(&got),
                short(want)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_record_survives_a_save_and_load_and_catches_edits() {
        // f64 values whose parse is not exact in serde_json (about one in ten): the hash must
        // not depend on them being read back bit for bit.
        #[derive(serde::Serialize)]
        struct C {
            a: f32,
            b: Vec<f64>,
            s: &'static str,
        }
        let b: Vec<f64> = (1..200).map(|i| (i as f64 * 0.7368).sin() * 37.0).collect();
        let body = serde_json::to_string_pretty(&C {
            a: 1e-3,
            b,
            s: "avg",
        })
        .unwrap();
        let bytes = with_integrity(&body, &[("x", b"1")]).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let rec: Integrity =
            serde_json::from_value(v.as_object_mut().unwrap().remove(INTEGRITY).unwrap()).unwrap();
        let (line, rest) = split_record(&text).unwrap();
        assert_eq!(serde_json::from_str::<Integrity>(line).unwrap(), rec);
        assert_eq!(rest, body);
        let p = Path::new("config.json");
        rec.verify_config(p, Some(&rest)).unwrap();
        rec.verify_file(Path::new("x"), "x", b"1").unwrap();
        assert!(rec.verify_file(Path::new("x"), "x", b"2").is_err());
        assert!(rec.verify_file(Path::new("y"), "y", b"1").is_err());
        // One value changed, or the file rewritten (record moved): refused, naming the file.
        let edited = text.replace("\"avg\"", "\"max\"");
        let e = rec
            .verify_config(p, split_record(&edited).map(|x| x.1).as_deref())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("config.json") && e.contains("settings changed"),
            "{e}"
        );
        assert!(split_record(&serde_json::to_string(&v).unwrap()).is_none());
        assert!(rec.verify_config(p, None).is_err());
    }
}
