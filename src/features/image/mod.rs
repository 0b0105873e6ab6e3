//! Image features: decode → resize/crop → CNN → pooled vector, with a resumable on-disk cache.
pub mod backbone;
pub mod cache;
pub mod decode;
pub mod shard;

pub use backbone::{Backbone, BackboneKind, InferencePath, Pooling};
pub use decode::{Crop, DecodeError};
pub use shard::Shard;

use crate::data::Skip;
use crate::error::{Error, Result};
use ::image::RgbImage;
use cache::FeatureCache;
use ndarray::Array2;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// What a user asks to compute for each image; [`ImageFeatureConfig::resolve`] pins it to a
/// weights file as a [`FeatureSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageFeatureConfig {
    pub backbone: BackboneKind,
    pub pooling: Pooling,
    /// Average the features of the image and its mirror image (test-time augmentation).
    pub flip: bool,
    /// How the network's input is cut from the image (absent in older configs: the centre).
    #[serde(default, skip_serializing_if = "Crop::is_centre")]
    pub crop: Crop,
    /// The side of the network's square input, if not its own ([`BackboneKind::input_size`]):
    /// the image at another scale (absent in older configs: the network's own size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// A second network whose features are appended to the first's (each network's blocks are
    /// normalised on their own by the projection). Its weights are the models folder's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second: Option<NetworkConfig>,
}

/// One network's part of an [`ImageFeatureConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkConfig {
    pub backbone: BackboneKind,
    pub pooling: Pooling,
    pub flip: bool,
    #[serde(default, skip_serializing_if = "Crop::is_centre")]
    pub crop: Crop,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
}

impl NetworkConfig {
    /// A second network on the centre square at its own input size.
    pub fn new(backbone: BackboneKind, pooling: Pooling, flip: bool) -> Self {
        NetworkConfig {
            backbone,
            pooling,
            flip,
            crop: Crop::Centre,
            size: None,
        }
    }

    /// The side of this network's square input.
    pub fn input_size(&self) -> u32 {
        self.size.unwrap_or(self.backbone.input_size())
    }
}

/// Input sides accepted by `size` (a network's stride is 32: smaller inputs leave no map).
pub const INPUT_SIZES: std::ops::RangeInclusive<u32> = 64..=1024;

impl Default for ImageFeatureConfig {
    /// The CLI's default, chosen on the development split (experiments/README.md, session 6):
    /// EfficientNet-Lite2 and EfficientNet-Lite0, each averaged, without flip.
    fn default() -> Self {
        ImageFeatureConfig {
            backbone: BackboneKind::EfficientNetLite2,
            pooling: Pooling::Avg,
            flip: false,
            crop: Crop::Centre,
            size: None,
            second: Some(NetworkConfig::new(
                BackboneKind::EfficientNetLite0,
                Pooling::Avg,
                false,
            )),
        }
    }
}

impl ImageFeatureConfig {
    /// One network, pooled `pooling`, with or without flip, on the centre square.
    pub fn single(backbone: BackboneKind, pooling: Pooling, flip: bool) -> Self {
        ImageFeatureConfig {
            backbone,
            pooling,
            flip,
            crop: Crop::Centre,
            size: None,
            second: None,
        }
    }

    /// The same features with an input of `size`×`size` (`None`: the network's own size).
    pub fn with_size(self, size: Option<u32>) -> Self {
        ImageFeatureConfig { size, ..self }
    }

    /// The side of the first network's square input.
    pub fn input_size(&self) -> u32 {
        self.size.unwrap_or(self.backbone.input_size())
    }

    /// The same features cut from the image by `crop`.
    pub fn with_crop(self, crop: Crop) -> Self {
        ImageFeatureConfig { crop, ..self }
    }

    pub fn dim(&self) -> usize {
        self.blocks().iter().sum()
    }

    /// Widths of the feature blocks in order: the first network's pooled blocks, then the
    /// second's. A pooling a network does not define has none (see [`Self::check`]).
    pub fn blocks(&self) -> Vec<usize> {
        let mut b = self
            .backbone
            .pooled_blocks(self.pooling)
            .unwrap_or_default();
        if let Some(s) = &self.second {
            b.extend(s.backbone.pooled_blocks(s.pooling).unwrap_or_default());
        }
        b
    }

    /// Refuse poolings a network does not define (grid: VGG only; stages: EfficientNet only).
    pub fn check(&self) -> Result<()> {
        let nets = std::iter::once((self.backbone, self.pooling, self.size))
            .chain(self.second.map(|s| (s.backbone, s.pooling, s.size)));
        for (k, (backbone, pooling, size)) in nets.enumerate() {
            if let Some(size) = size {
                if !INPUT_SIZES.contains(&size) {
                    let flag = if k == 0 { "--size" } else { "--second-size" };
                    return Err(Error::Param(format!(
                        "input size {size} ({flag}) is outside {}..={} pixels",
                        INPUT_SIZES.start(),
                        INPUT_SIZES.end()
                    )));
                }
                // The grid is pool5's 7×7 cells, which only the network's own size gives.
                if pooling == Pooling::Grid && size != backbone.input_size() {
                    return Err(Error::Param(format!(
                        "grid pooling needs {}'s own input size ({} px), not {size}",
                        backbone.name(),
                        backbone.input_size()
                    )));
                }
            }
            if backbone.pooled_blocks(pooling).is_none() {
                let only = if pooling == Pooling::Grid {
                    "VGG"
                } else {
                    "EfficientNet"
                };
                return Err(Error::Param(format!(
                    "{} pooling is defined for {only} only, not {}",
                    pooling.name(),
                    backbone.name()
                )));
            }
        }
        if let Some(s) = &self.second {
            if (s.backbone, s.pooling, s.flip, s.crop, s.input_size())
                == (
                    self.backbone,
                    self.pooling,
                    self.flip,
                    self.crop,
                    self.input_size(),
                )
            {
                return Err(Error::Param(format!(
                    "the second network is the first one again ({}, {} pooling): its features \
                     would be a copy; choose another --second-backbone or none",
                    s.backbone.name(),
                    s.pooling.name()
                )));
            }
        }
        Ok(())
    }

    /// The weights file used for this backbone: `weights` if given, else the models folder's.
    pub fn weights_path(&self, weights: Option<&Path>) -> PathBuf {
        weights
            .map(Path::to_path_buf)
            .unwrap_or_else(|| backbone::default_models_dir().join(self.backbone.weights_file()))
    }

    /// Pin this request to the weights file that will compute it (hashing the file): the
    /// identity under which features are cached and models are stored.
    pub fn resolve(&self, weights: Option<&Path>) -> Result<FeatureSpec> {
        self.check()?;
        let second = match &self.second {
            Some(s) => Some(Box::new(
                ImageFeatureConfig::single(s.backbone, s.pooling, s.flip)
                    .with_crop(s.crop)
                    .with_size(s.size)
                    .resolve(None)?,
            )),
            None => None,
        };
        let path = self.weights_path(weights);
        if !path.is_file() {
            return Err(Error::asset(
                &path,
                backbone::missing_weights_hint(self.backbone),
            ));
        }
        let sha = crate::assets::verified_sha256(&path)?;
        Ok(FeatureSpec {
            backbone: self.backbone,
            weights_sha256: sha,
            weights_file: path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            pooling: self.pooling,
            flip: self.flip,
            crop: self.crop,
            input_size: self.input_size(),
            preprocess_version: PREPROCESS_VERSION,
            second,
        })
    }
}

/// Version of the pixels fed to the network (decode → crop → resize). Bump it whenever they
/// change, so cached features and fitted models of the old pipeline are never mixed with new ones.
/// 2: the centre square is cut in source coordinates before resizing (1 resized whole images).
/// 3: JPEGs at least twice the input size are decoded at 1/2, 1/4 or 1/8 scale in the DCT
/// domain ([`decode::network_input`]); smaller images keep version 2's pixels exactly.
/// 4: resized by a SIMD fixed-point convolution ([`decode::resample`], Pillow's bilinear) instead
/// of image's f32 Triangle filter (a tenth of the time; pixels within about one level), with no
/// box pre-shrink of large squares.
pub const PREPROCESS_VERSION: u32 = 4;

/// The one identity of an image feature: which network, with which weights (by content hash),
/// pooled how, on which input. It names the cache folder, is stored in every fitted model, and
/// a model is only ever fed features of the same spec.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeatureSpec {
    pub backbone: BackboneKind,
    /// sha256 of the weights file.
    pub weights_sha256: String,
    /// The weights file's name when resolved (for messages only; the hash is the identity).
    #[serde(default)]
    pub weights_file: String,
    pub pooling: Pooling,
    pub flip: bool,
    /// How the input is cut ([`Crop`]); older specs (without it) are the centre crop, and so
    /// are their cache keys and identities.
    #[serde(default, skip_serializing_if = "Crop::is_centre")]
    pub crop: Crop,
    pub input_size: u32,
    pub preprocess_version: u32,
    /// The second network's features, appended ([`ImageFeatureConfig::second`]); each network's
    /// features are cached under their own spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second: Option<Box<FeatureSpec>>,
}

impl FeatureSpec {
    pub fn config(&self) -> ImageFeatureConfig {
        ImageFeatureConfig {
            backbone: self.backbone,
            pooling: self.pooling,
            flip: self.flip,
            crop: self.crop,
            size: self.size(),
            second: self.second.as_ref().map(|s| NetworkConfig {
                backbone: s.backbone,
                pooling: s.pooling,
                flip: s.flip,
                crop: s.crop,
                size: s.size(),
            }),
        }
    }

    /// The input side when it is not the network's own.
    fn size(&self) -> Option<u32> {
        (self.input_size != self.backbone.input_size()).then_some(self.input_size)
    }

    pub fn dim(&self) -> usize {
        self.config().dim()
    }

    /// Block widths of the features ([`ImageFeatureConfig::blocks`]).
    pub fn blocks(&self) -> Vec<usize> {
        self.config().blocks()
    }

    /// One spec per network, in feature order; each is computed and cached on its own.
    pub fn parts(&self) -> Vec<FeatureSpec> {
        let first = FeatureSpec {
            second: None,
            ..self.clone()
        };
        let mut parts = vec![first];
        if let Some(s) = &self.second {
            parts.extend(s.parts());
        }
        parts
    }

    fn short_sha(&self) -> &str {
        self.weights_sha256
            .get(..12)
            .unwrap_or(self.weights_sha256.as_str())
    }

    /// Cache folder name: every field that changes the numbers (two networks: both names, for
    /// messages; each network's features are cached under its own).
    pub fn cache_key(&self) -> String {
        self.joined("+", |p| p.key(p.short_sha()))
    }

    /// `f` of the one network, or of each network joined by `sep`.
    fn joined(&self, sep: &str, f: impl Fn(&FeatureSpec) -> String) -> String {
        if self.second.is_none() {
            return f(self);
        }
        let each: Vec<String> = self.parts().iter().map(f).collect();
        each.join(sep)
    }

    /// One network's fields that change the numbers, with `sha` for its weights. The crop is
    /// named only when it is not the centre, so the keys of older caches stay valid.
    fn key(&self, sha: &str) -> String {
        format!(
            "{}-w{}-{}-{}-s{}-p{}{}",
            self.backbone.name(),
            sha,
            self.pooling.name(),
            if self.flip { "flip" } else { "noflip" },
            self.input_size,
            self.preprocess_version,
            if self.crop.is_centre() {
                String::new()
            } else {
                format!("-{}", self.crop.name())
            }
        )
    }

    /// Every field that changes the numbers, with the full weights hash: what a cache shard
    /// records and is checked against before it is served.
    pub fn identity(&self) -> String {
        self.joined("+", |p| p.key(&p.weights_sha256))
    }

    /// Same features: every field but the informative file name.
    pub fn same_features(&self, other: &FeatureSpec) -> bool {
        let (a, b) = (self.parts(), other.parts());
        a.len() == b.len()
            && a.iter().zip(&b).all(|(x, y)| {
                FeatureSpec {
                    weights_file: String::new(),
                    ..x.clone()
                } == FeatureSpec {
                    weights_file: String::new(),
                    ..y.clone()
                }
            })
    }

    /// For messages: `efficientnet-lite2 (efficientnet-lite2.safetensors, sha256 14593eede4f3…),
    /// avg pooling, flip, 260 px, preprocessing v2` (a crop other than the centre is named after
    /// the flip: `flip, five crops, 260 px`).
    pub fn describe(&self) -> String {
        self.joined(" + ", FeatureSpec::describe_one)
    }

    fn describe_one(&self) -> String {
        format!(
            "{} ({}sha256 {}…), {} pooling, {}{}, {} px, preprocessing v{}",
            self.backbone.name(),
            if self.weights_file.is_empty() {
                String::new()
            } else {
                format!("{}, ", self.weights_file)
            },
            self.short_sha(),
            self.pooling.name(),
            if self.flip { "flip" } else { "no flip" },
            match self.crop {
                Crop::Centre => "",
                Crop::Whole => ", whole image",
                Crop::Five => ", five crops",
            },
            self.input_size,
            self.preprocess_version
        )
    }
}

/// How extraction runs.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    pub batch_size: usize,
    /// Images per cache shard; a shard is written whole (atomically) or not at all.
    pub shard_size: usize,
    pub cache_dir: Option<PathBuf>,
    pub weights: Option<PathBuf>,
    pub progress: bool,
    pub device: Device,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            batch_size: 16,
            shard_size: 256,
            cache_dir: Some(default_cache_dir()),
            weights: None,
            progress: true,
            device: Device::cuda_if_available(),
        }
    }
}

/// `$TUWEN_CACHE`, else `tuwen-cache` in the working directory.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("TUWEN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("tuwen-cache"))
}

/// Features for a list of image ids, in the order asked; ids that failed are listed in `skipped`.
#[derive(Debug)]
pub struct ImageFeatures {
    pub ids: Vec<String>,
    /// One row per id in `ids`; rows of skipped ids are zero and must not be used.
    pub features: Array2<f32>,
    pub ok: Vec<bool>,
    pub skipped: Vec<Skip>,
    pub stats: ExtractStats,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ExtractStats {
    pub requested: usize,
    pub computed: usize,
    pub from_cache: usize,
    pub skipped: usize,
    /// Feature-cache problems (shards not used, cache not writable), as shown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache_warnings: Vec<String>,
    pub seconds: f64,
    /// Images per second over the computed ones.
    pub images_per_second: f64,
}

impl ImageFeatures {
    /// Skips name the list file that asked for the images and its CSV row: `rows[i]` is the row
    /// of `ids[i]` (`None`: row = position + 1, as for lists with unique ids).
    pub fn relabel_skips(&mut self, file: &Path, rows: Option<&[usize]>) {
        for s in &mut self.skipped {
            if let Some(r) = rows.and_then(|r| r.get(s.row.wrapping_sub(1))) {
                s.row = *r;
            }
            s.file = file.display().to_string();
        }
    }

    /// The error for a request none of whose images could be used: what was found, and the
    /// usual slip (the folder above `ImageData/`). `what` names them, e.g. "images of x.csv".
    pub fn nothing_usable(&self, dir: &Path, what: &str) -> Error {
        let missing = self
            .skipped
            .iter()
            .filter(|s| s.reason.is_missing())
            .count();
        let mut msg = format!(
            "0 of {} {what} could be used ({missing} not found",
            self.ids.len()
        );
        if missing < self.skipped.len() {
            msg.push_str(&format!(", {} unreadable", self.skipped.len() - missing));
        }
        msg.push(')');
        if let Some(s) = self.skipped.first() {
            msg.push_str(&format!("; e.g. `{}`: {}", s.id, s.reason));
        }
        let sub = dir.join("ImageData");
        if missing > 0 && sub.is_dir() {
            msg.push_str(&format!("; did you mean {}?", sub.display()));
        }
        Error::file(dir, msg)
    }

    /// Row index of every usable id.
    pub fn index(&self) -> HashMap<&str, usize> {
        self.ids
            .iter()
            .enumerate()
            .filter(|(i, _)| self.ok[*i])
            .map(|(i, id)| (id.as_str(), i))
            .collect()
    }
}

/// Extract features for `ids` (file names under `dir`). With two networks, each network's
/// features are cached on their own and appended; every file is read, hashed and decoded once
/// for both ([`decode::network_views_many`]); an image either network cannot use is skipped.
pub fn extract(
    ids: &[String],
    dir: &Path,
    spec: &FeatureSpec,
    opts: &ExtractOptions,
) -> Result<ImageFeatures> {
    let t0 = Instant::now();
    let parts = spec.parts();
    let (mut per_part, compute_secs) = extract_parts(ids, dir, &parts, opts)?;
    if per_part.len() == 1 {
        let mut one = per_part.pop().expect("one part").into_features(ids);
        one.stats.seconds = t0.elapsed().as_secs_f64();
        return Ok(one);
    }
    let views: Vec<_> = per_part.iter().map(|p| p.features.view()).collect();
    let mut features = ndarray::concatenate(ndarray::Axis(1), &views)
        .map_err(|e| Error::Param(format!("feature blocks do not align: {e}")))?;
    let ok: Vec<bool> = (0..ids.len())
        .map(|i| per_part.iter().all(|p| p.ok[i]))
        .collect();
    for (i, _) in ok.iter().enumerate().filter(|(_, o)| !**o) {
        features.row_mut(i).fill(0.0);
    }
    // One skip per row: the first network's reason, else the later one's.
    let mut skipped: Vec<Skip> = Vec::new();
    for p in &per_part {
        for s in &p.skipped {
            if !skipped.iter().any(|k| k.row == s.row) {
                skipped.push(s.clone());
            }
        }
    }
    skipped.sort_by_key(|s| s.row);
    // An image counts as computed when any network computed it, as cached when all had it.
    let computed = (0..ids.len())
        .filter(|&i| ok[i] && per_part.iter().any(|p| p.computed[i]))
        .count();
    let stats = ExtractStats {
        requested: ids.len(),
        computed,
        from_cache: ok.iter().filter(|o| **o).count() - computed,
        skipped: skipped.len(),
        cache_warnings: per_part
            .iter()
            .flat_map(|p| p.stats.cache_warnings.iter().cloned())
            .collect(),
        seconds: t0.elapsed().as_secs_f64(),
        images_per_second: if compute_secs > 0.0 {
            computed as f64 / compute_secs
        } else {
            0.0
        },
    };
    Ok(ImageFeatures {
        ids: ids.to_vec(),
        features,
        ok,
        skipped,
        stats,
    })
}

/// One network's features, and which rows it computed (not from its cache).
struct PartFeatures {
    features: Array2<f32>,
    ok: Vec<bool>,
    computed: Vec<bool>,
    skipped: Vec<Skip>,
    stats: ExtractStats,
}

impl PartFeatures {
    fn into_features(self, ids: &[String]) -> ImageFeatures {
        ImageFeatures {
            ids: ids.to_vec(),
            features: self.features,
            ok: self.ok,
            skipped: self.skipped,
            stats: self.stats,
        }
    }
}

/// A file's pixels for each network that needs it (`None`: that network has it cached).
type Decoded = Vec<Option<Result<Vec<u8>, DecodeError>>>;

/// Each network's features ([`FeatureSpec::parts`]) from one pass over the files: each file is
/// read and hashed once, looked up in each network's cache, and decoded once for the networks
/// that miss it. Returns the parts and the seconds spent computing. Batches are formed per
/// network from its own missing images of each shard, in request order, as a one-network run
/// forms them, so a part's features do not depend on the other part.
fn extract_parts(
    ids: &[String],
    dir: &Path,
    parts: &[FeatureSpec],
    opts: &ExtractOptions,
) -> Result<(Vec<PartFeatures>, f64)> {
    let cfgs: Vec<ImageFeatureConfig> = parts.iter().map(|p| p.config()).collect();
    for c in &cfgs {
        c.check()?;
    }
    if !dir.is_dir() {
        return Err(Error::file(dir, "image folder not found"));
    }
    let mut caches = Vec::new();
    let mut out = Vec::new();
    for (spec, cfg) in parts.iter().zip(&cfgs) {
        let mut cache = match &opts.cache_dir {
            Some(root) => Some(FeatureCache::open(&root.join(spec.cache_key()), spec)?),
            None => None,
        };
        let mut cache_warnings = Vec::new();
        if let Some(c) = cache.as_mut() {
            for w in c.take_warnings() {
                eprintln!("warning: {w}");
                cache_warnings.push(w);
            }
        }
        caches.push(cache);
        out.push(PartFeatures {
            features: Array2::<f32>::zeros((ids.len(), cfg.dim())),
            ok: vec![false; ids.len()],
            computed: vec![false; ids.len()],
            skipped: Vec::new(),
            stats: ExtractStats {
                requested: ids.len(),
                cache_warnings,
                ..Default::default()
            },
        });
    }
    // Hash every file (content, not name, keys the cache), in parallel. Only regular files are
    // read: a FIFO would block forever.
    let hashes: Vec<Result<blake3::Hash, DecodeError>> = ids
        .par_iter()
        .map(|id| decode::read_image_file(&dir.join(id)).map(|b| blake3::hash(&b)))
        .collect();
    let mut failures: Vec<Vec<(usize, DecodeError)>> = vec![Vec::new(); parts.len()];
    // Per image: the hash and which networks must compute it.
    let mut todo: Vec<(usize, blake3::Hash, Vec<bool>)> = Vec::new();
    for (i, h) in hashes.into_iter().enumerate() {
        match h {
            Err(e) => {
                for f in failures.iter_mut() {
                    f.push((i, e.clone()));
                }
            }
            Ok(h) => {
                let mut need = vec![false; parts.len()];
                for (k, (cache, part)) in caches.iter().zip(out.iter_mut()).enumerate() {
                    match cache.as_ref().and_then(|c| c.get(&h)) {
                        Some(v) => {
                            part.features
                                .row_mut(i)
                                .assign(&ndarray::ArrayView1::from(v));
                            part.ok[i] = true;
                            part.stats.from_cache += 1;
                        }
                        None => need[k] = true,
                    }
                }
                if need.iter().any(|&n| n) {
                    todo.push((i, h, need));
                }
            }
        }
    }

    let mut compute_secs = 0.0;
    if !todo.is_empty() {
        let mut nets = Vec::new();
        for (k, spec) in parts.iter().enumerate() {
            // --weights names the first network's file; the others are the models folder's.
            let weights = if k == 0 {
                opts.weights.as_deref()
            } else {
                None
            };
            nets.push(if todo.iter().any(|t| t.2[k]) {
                Some(load_checked(spec, weights, opts.device)?)
            } else {
                None
            });
        }
        let names: Vec<&str> = cfgs.iter().map(|c| c.backbone.name()).collect();
        let steps: usize = todo
            .iter()
            .map(|t| t.2.iter().filter(|&&n| n).count())
            .sum();
        let bar = progress_bar(
            steps as u64,
            opts.progress,
            &format!("{} features", names.join(" + ")),
        );
        let t_compute = Instant::now();
        // Chunks are fixed by position in the request, so an interrupted run that resumes forms
        // the same batches and computes bit-identical features.
        let mut chunks: Vec<Vec<(usize, blake3::Hash, Vec<bool>)>> = Vec::new();
        let mut last = usize::MAX;
        for t in todo {
            let s = t.0 / opts.shard_size.max(1);
            if s != last {
                chunks.push(Vec::new());
                last = s;
            }
            chunks.last_mut().expect("pushed").push(t);
        }
        let wants: Vec<(u32, Crop)> = cfgs.iter().map(|c| (c.input_size(), c.crop)).collect();
        std::thread::scope(|scope| -> Result<()> {
            // Decoding of the next chunk runs while the networks work on this one.
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(usize, blake3::Hash, Decoded)>>(1);
            let (chunks_ref, wants_ref) = (&chunks, &wants);
            scope.spawn(move || {
                for chunk in chunks_ref {
                    let decoded = chunk
                        .par_iter()
                        .map(|(i, h, need)| (*i, *h, decode_for(dir, &ids[*i], h, need, wants_ref)))
                        .collect();
                    if tx.send(decoded).is_err() {
                        break;
                    }
                }
            });
            for decoded in rx {
                for (k, net) in nets.iter().enumerate() {
                    let Some(net) = net else { continue };
                    let mut good = Vec::new();
                    for (i, h, per) in &decoded {
                        match &per[k] {
                            None => {}
                            Some(Ok(px)) => good.push((*i, *h, px.as_slice())),
                            Some(Err(e)) => {
                                failures[k].push((*i, e.clone()));
                                bar.inc(1);
                            }
                        }
                    }
                    let mut rows: Vec<Vec<f32>> = Vec::with_capacity(good.len());
                    for batch in good.chunks(opts.batch_size.max(1)) {
                        let pixels: Vec<&[u8]> = batch.iter().map(|g| g.2).collect();
                        rows.extend(forward(net, &pixels, wants[k].0, &cfgs[k])?);
                        bar.inc(batch.len() as u64);
                    }
                    let entries: Vec<(blake3::Hash, &[f32])> = good
                        .iter()
                        .zip(&rows)
                        .map(|(g, r)| (g.1, r.as_slice()))
                        .collect();
                    let part = &mut out[k];
                    if let Some(c) = caches[k].as_mut() {
                        c.write_shard(&entries)?;
                        for w in c.take_warnings() {
                            bar.suspend(|| eprintln!("warning: {w}"));
                            part.stats.cache_warnings.push(w);
                        }
                    }
                    for (g, r) in good.iter().zip(&rows) {
                        part.features
                            .row_mut(g.0)
                            .assign(&ndarray::ArrayView1::from(r.as_slice()));
                        part.ok[g.0] = true;
                        part.computed[g.0] = true;
                        part.stats.computed += 1;
                    }
                }
            }
            Ok(())
        })?;
        bar.finish_and_clear();
        compute_secs = t_compute.elapsed().as_secs_f64();
    }
    for (part, mut fails) in out.iter_mut().zip(failures) {
        fails.sort_by_key(|f| f.0);
        part.skipped = fails
            .into_iter()
            .map(|(i, e)| Skip {
                file: dir.join(&ids[i]).display().to_string(),
                row: i + 1,
                id: ids[i].clone(),
                reason: crate::data::SkipReason::Image {
                    missing: matches!(e, DecodeError::Missing),
                    message: e.to_string(),
                },
            })
            .collect();
        part.stats.skipped = part.skipped.len();
        part.stats.images_per_second = if compute_secs > 0.0 {
            part.stats.computed as f64 / compute_secs
        } else {
            0.0
        };
    }
    Ok((out, compute_secs))
}

/// Read `id` again, check it is still the content hashed earlier (the cache keys it by that
/// hash), and cut each needed network's views from one decode. The decoded image (and its share
/// of the decode budget) is let go as soon as the views are cut.
fn decode_for(
    dir: &Path,
    id: &str,
    h: &blake3::Hash,
    need: &[bool],
    wants: &[(u32, Crop)],
) -> Decoded {
    let bytes = decode::read_image_file(&dir.join(id)).and_then(|b| {
        if blake3::hash(&b) != *h {
            return Err(DecodeError::Io("the file changed during extraction".into()));
        }
        Ok(b)
    });
    let needed: Vec<(u32, Crop)> = wants
        .iter()
        .zip(need)
        .filter(|(_, n)| **n)
        .map(|(w, _)| *w)
        .collect();
    let mut views = match &bytes {
        Ok(b) => decode::network_views_many(b, &needed).into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    need.iter()
        .map(|&n| {
            n.then(|| match &bytes {
                Ok(_) => views
                    .next()
                    .expect("one result per needed network")
                    .map(view_pixels),
                Err(e) => Err(e.clone()),
            })
        })
        .collect()
}

/// The views of one image as the network input buffer [`forward`] takes: back to back.
pub fn view_pixels(views: Vec<RgbImage>) -> Vec<u8> {
    if views.len() == 1 {
        return views.into_iter().next().unwrap_or_default().into_raw();
    }
    views
        .iter()
        .flat_map(|v| v.as_raw().iter().copied())
        .collect()
}

/// Most views in one forward pass (at least the batch and its mirror, as one flip pass always
/// held): a batch of 16 with five crops and flip is 160 views, whose activations would take
/// gigabytes at once; in passes of 64 its peak is twice that of a flipped batch.
const MAX_VIEWS_PER_PASS: i64 = 64;

/// One batch of images → pooled feature rows. Each image's buffer holds its
/// [`Crop::views`] views of S×S RGB back to back ([`view_pixels`]); every view (and its mirror,
/// with flip) is pooled alone, then the image's row is the mean over its views.
pub fn forward(
    net: &Backbone,
    pixels: &[&[u8]],
    size: u32,
    cfg: &ImageFeatureConfig,
) -> Result<Vec<Vec<f32>>> {
    let s = size as i64;
    let n = pixels.len() as i64;
    let views = cfg.crop.views() as i64;
    let per_image = (views * s * s * 3) as usize;
    if let Some(p) = pixels.iter().find(|p| p.len() != per_image) {
        return Err(Error::Param(format!(
            "a network input of {} bytes, not {per_image} ({views} view(s) of {size}×{size} RGB)",
            p.len()
        )));
    }
    // Rows are image-major: image i's views are rows i·views .. (i+1)·views.
    let m = n * views;
    let flat: Vec<u8> = pixels.iter().flat_map(|p| p.iter().copied()).collect();
    let x = Tensor::from_slice(&flat)
        .view([m, s, s, 3])
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float)
        .to_device(net.device);
    let x = net.normalise(&x);
    let most = (2 * n).max(MAX_VIEWS_PER_PASS);
    let out = tch::no_grad(|| -> Result<Tensor> {
        if !cfg.flip {
            return pooled_in_passes(net, &x, cfg.pooling, most);
        }
        Ok(match net.inference_path() {
            // The mirrored views in the same batch: one pass over 2n images instead of two
            // over n (fewer, larger kernels; the weights are read once).
            InferencePath::Fused => {
                let both = Tensor::cat(&[&x, &x.flip([3])], 0);
                let p = pooled_in_passes(net, &both, cfg.pooling, most)?;
                (p.narrow(0, 0, m) + p.narrow(0, m, m)) / 2.0
            }
            InferencePath::Reference => {
                let f = pooled_in_passes(net, &x, cfg.pooling, most)?;
                let g = pooled_in_passes(net, &x.flip([3]), cfg.pooling, most)?;
                (f + g) / 2.0
            }
        })
    })?;
    // Pooled per view, then averaged over the views (each pooled block alike).
    let out = if views > 1 {
        out.reshape([n, views, -1])
            .mean_dim([1i64].as_slice(), false, Kind::Float)
    } else {
        out
    };
    let out = out.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let d = out.size()[1] as usize;
    let v: Vec<f32> = Vec::<f32>::try_from(out.flatten(0, -1))?;
    Ok(v.chunks(d).map(|c| c.to_vec()).collect())
}

/// [`Backbone::pooled`] over the rows of `x`, at most `most` rows per pass (one pass when they
/// fit: the batch's every view in one set of kernels).
fn pooled_in_passes(net: &Backbone, x: &Tensor, pooling: Pooling, most: i64) -> Result<Tensor> {
    if x.size()[0] <= most {
        return net.pooled(x, pooling);
    }
    let parts = x
        .split(most, 0)
        .iter()
        .map(|c| net.pooled(c, pooling))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 0))
}

/// Load the network of a one-network spec from `weights` (default: the models folder's) and
/// refuse a file whose hash is not the spec's.
fn load_checked(spec: &FeatureSpec, weights: Option<&Path>, device: Device) -> Result<Backbone> {
    let net = Backbone::load(spec.backbone, weights, device)?;
    if net.sha256 != spec.weights_sha256 {
        return Err(Error::asset(
            spec.config().weights_path(weights),
            format!(
                "has sha256 {}, but the features asked for are {}",
                net.sha256,
                spec.describe()
            ),
        ));
    }
    Ok(net)
}

/// The loaded networks of a spec, one per part, each checked against its weights hash: what
/// turns one image's bytes into its feature row outside a batch extraction (`serve` uploads).
pub struct Networks {
    parts: Vec<(FeatureSpec, Backbone)>,
}

impl Networks {
    /// Load every network of `spec`; `weights` names the first network's file.
    pub fn load(spec: &FeatureSpec, weights: Option<&Path>, device: Device) -> Result<Networks> {
        let mut parts = Vec::new();
        for (i, part) in spec.parts().into_iter().enumerate() {
            let w = if i == 0 { weights } else { None };
            let net = load_checked(&part, w, device)?;
            parts.push((part, net));
        }
        Ok(Networks { parts })
    }

    /// Each network's input pixels for one image file's bytes.
    pub fn pixels(spec: &FeatureSpec, bytes: &[u8]) -> Result<Vec<Vec<u8>>, DecodeError> {
        spec.parts()
            .iter()
            .map(|p| decode::network_views(bytes, p.input_size, p.crop).map(view_pixels))
            .collect()
    }

    /// The feature row of one image from its [`Networks::pixels`].
    pub fn features(&self, pixels: &[Vec<u8>]) -> Result<Vec<f32>> {
        let mut row = Vec::new();
        for ((part, net), px) in self.parts.iter().zip(pixels) {
            let f = forward(net, &[px.as_slice()], part.input_size, &part.config())?;
            row.extend_from_slice(&f[0]);
        }
        Ok(row)
    }
}

/// Load images from files and run them (no cache): for tests and one-off use.
pub fn features_of_files(
    net: &Backbone,
    files: &[PathBuf],
    cfg: &ImageFeatureConfig,
) -> Result<Vec<Vec<f32>>> {
    let size = cfg.input_size();
    let px: Vec<Vec<u8>> = files
        .iter()
        .map(|f| {
            let b = decode::read_image_file(f).map_err(|e| Error::file(f, e.to_string()))?;
            let views = decode::network_views(&b, size, cfg.crop)
                .map_err(|e| Error::file(f, e.to_string()))?;
            Ok(view_pixels(views))
        })
        .collect::<Result<_>>()?;
    let refs: Vec<&[u8]> = px.iter().map(|p| p.as_slice()).collect();
    forward(net, &refs, size, cfg)
}

pub(crate) fn progress_bar(len: u64, show: bool, msg: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, ETA {eta})",
        )
        .expect("valid template"),
    );
    bar.set_message(msg.to_string());
    bar
}
