//! A fitted model: its configuration (human-readable `config.json`), the projection matrices
//! (`projection.safetensors`) and the training captions' token statistics (`word_stats.json`).
use crate::error::{Error, Result};
use crate::features::image::{BackboneKind, ImageFeatureConfig};
use crate::features::text::{OovReport, TextFeatureConfig, WordStats};
use crate::outputs::write_atomic;
use crate::projection::{Projection, ProjectionParams};
use ndarray::{Array1, Array2};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::path::Path;

pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelConfig {
    pub format: u32,
    pub image: ImageFeatureConfig,
    pub text: TextFeatureConfig,
    pub projection: ProjectionParams,
    pub word_vectors: WordVectorsInfo,
    pub train: TrainInfo,
}

/// Identity of the word-vector file the model was fitted with.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WordVectorsInfo {
    pub file: String,
    pub size_bytes: u64,
    pub vocab: usize,
    pub dim: usize,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TrainInfo {
    pub pairs_files: Vec<String>,
    pub pairs_used: usize,
    pub images_used: usize,
    pub pairs_skipped: usize,
    pub oov: OovReport,
    pub correlations: Vec<f64>,
    pub fit_seconds: f64,
}

pub struct Model {
    pub config: ModelConfig,
    pub projection: Projection,
    pub word_stats: WordStats,
}

fn view<'a>(a: &'a [u8], shape: Vec<usize>) -> Result<TensorView<'a>> {
    TensorView::new(Dtype::F32, shape, a).map_err(|e| Error::Model(e.to_string()))
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Model {
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let p = &self.projection;
        let corr: Vec<f32> = p.correlations.iter().map(|&c| c as f32).collect();
        let blobs = [
            (
                "image_mean",
                bytes(p.image_mean.as_slice().unwrap()),
                vec![p.image_mean.len()],
            ),
            (
                "image_proj",
                bytes(p.image_proj.as_standard_layout().as_slice().unwrap()),
                p.image_proj.shape().to_vec(),
            ),
            (
                "text_mean",
                bytes(p.text_mean.as_slice().unwrap()),
                vec![p.text_mean.len()],
            ),
            (
                "text_proj",
                bytes(p.text_proj.as_standard_layout().as_slice().unwrap()),
                p.text_proj.shape().to_vec(),
            ),
            ("correlations", bytes(&corr), vec![corr.len()]),
        ];
        let views = blobs
            .iter()
            .map(|(n, b, s)| Ok((*n, view(b, s.clone())?)))
            .collect::<Result<Vec<_>>>()?;
        let st = safetensors::serialize(views, &None).map_err(|e| Error::Model(e.to_string()))?;
        write_atomic(&dir.join("projection.safetensors"), &st)?;
        let cfg = serde_json::to_vec_pretty(&self.config).expect("serialisable");
        write_atomic(&dir.join("config.json"), &cfg)?;
        let ws = serde_json::to_vec(&self.word_stats).expect("serialisable");
        write_atomic(&dir.join("word_stats.json"), &ws)?;
        Ok(())
    }

    /// Load a model; `backbone`, when given, must be the one it was fitted with.
    pub fn load(dir: &Path, backbone: Option<BackboneKind>) -> Result<Model> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let config: ModelConfig = serde_json::from_str(&text)
            .map_err(|e| Error::file(&cfg_path, format!("invalid model config: {e}")))?;
        if config.format != FORMAT {
            return Err(Error::file(
                &cfg_path,
                format!("model format {} (this tuwen reads {FORMAT})", config.format),
            ));
        }
        if let Some(b) = backbone {
            if b != config.image.backbone {
                return Err(Error::Model(format!(
                    "{} was fitted with backbone {}, not {}; refit or drop --backbone",
                    dir.display(),
                    config.image.backbone.name(),
                    b.name()
                )));
            }
        }
        let st_path = dir.join("projection.safetensors");
        let raw = std::fs::read(&st_path).map_err(|e| Error::io(&st_path, e))?;
        let st =
            SafeTensors::deserialize(&raw).map_err(|e| Error::file(&st_path, e.to_string()))?;
        let get = |name: &str| -> Result<(Vec<usize>, Vec<f32>)> {
            let t = st
                .tensor(name)
                .map_err(|e| Error::file(&st_path, format!("{name}: {e}")))?;
            let v = t
                .data()
                .chunks(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Ok((t.shape().to_vec(), v))
        };
        let arr1 = |name: &str| -> Result<Array1<f32>> { Ok(Array1::from(get(name)?.1)) };
        let arr2 = |name: &str| -> Result<Array2<f32>> {
            let (s, v) = get(name)?;
            Array2::from_shape_vec((s[0], s[1]), v)
                .map_err(|e| Error::file(&st_path, format!("{name}: {e}")))
        };
        let projection = Projection {
            image_norm: config.projection.image_norm,
            image_mean: arr1("image_mean")?,
            image_proj: arr2("image_proj")?,
            text_mean: arr1("text_mean")?,
            text_proj: arr2("text_proj")?,
            correlations: get("correlations")?.1.into_iter().map(f64::from).collect(),
        };
        let ws_path = dir.join("word_stats.json");
        let ws = std::fs::read(&ws_path).map_err(|e| Error::io(&ws_path, e))?;
        let word_stats =
            serde_json::from_slice(&ws).map_err(|e| Error::file(&ws_path, e.to_string()))?;
        Ok(Model {
            config,
            projection,
            word_stats,
        })
    }
}
