//! `fit`: features of training pairs → PCA/CCA projection → a model.
use crate::data::{self, Skip, SkipReason};
use crate::error::{Error, Result};
use crate::features::image::{self, ExtractOptions, ExtractStats, FeatureSpec, ImageFeatureConfig};
use crate::features::text::{OovReport, TextEncoder, TextFeatureConfig};
use crate::model::{Model, ModelConfig, TrainBanks, TrainFile, TrainInfo, WordVectorsInfo, FORMAT};
use crate::projection::{ContrastiveReport, ExtraPairs, Method, ProjectionParams, SparseRows};
use finalfusion::vocab::Vocab;
use ndarray::{Array2, Axis};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Features of the images of some pairs files, and which pairs survive.
pub(crate) struct PairsFeatures {
    /// One row per distinct usable image (`image_keys` gives (folder index, id)).
    pub(crate) images: Array2<f32>,
    pub(crate) image_keys: Vec<(usize, String)>,
    pub(crate) captions: Vec<String>,
    /// (pairs file, 1-based row) of each caption, for skip reports.
    pub(crate) caption_rows: Vec<(String, usize)>,
    pub(crate) owner: Vec<usize>,
    pub(crate) skipped: Vec<Skip>,
    pub(crate) extract: Vec<ExtractStats>,
}

pub(crate) fn load_pairs_features(
    sets: &[(PathBuf, PathBuf)],
    spec: &FeatureSpec,
    ex: &ExtractOptions,
) -> Result<PairsFeatures> {
    let mut images: Vec<Array2<f32>> = Vec::new();
    let mut image_keys = Vec::new();
    let mut captions = Vec::new();
    let mut caption_rows = Vec::new();
    let mut owner = Vec::new();
    let mut skipped = Vec::new();
    let mut extract = Vec::new();
    for (si, (csv, dir)) in sets.iter().enumerate() {
        let p = data::read_nonempty_pairs(csv)?;
        if p.encoding == data::Encoding::Gbk {
            eprintln!("note: {} decoded as GBK", csv.display());
        }
        skipped.extend(p.skipped);
        let (ids, pair_image) = data::group_images(&p.pairs);
        let f = image::extract(&ids, dir, spec, ex)?;
        if f.ok.iter().all(|&ok| !ok) {
            return Err(f.nothing_usable(dir, &format!("images of {}", csv.display())));
        }
        let mut row_of: HashMap<usize, usize> = HashMap::new();
        let base = image_keys.len();
        let mut keep = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if f.ok[i] {
                row_of.insert(i, base + keep.len());
                keep.push(i);
                image_keys.push((si, id.clone()));
            }
        }
        images.push(f.features.select(Axis(0), &keep));
        let failed: HashMap<&str, &Skip> = f.skipped.iter().map(|s| (s.id.as_str(), s)).collect();
        for (pair, &img) in p.pairs.iter().zip(&pair_image) {
            match row_of.get(&img) {
                Some(&r) => {
                    captions.push(pair.caption.clone());
                    caption_rows.push((csv.display().to_string(), pair.row));
                    owner.push(r);
                }
                None => skipped.push(Skip {
                    file: csv.display().to_string(),
                    row: pair.row,
                    id: pair.image_id.clone(),
                    reason: match failed.get(pair.image_id.as_str()) {
                        Some(s) => SkipReason::PairImage {
                            missing: s.reason.is_missing(),
                            message: s.reason.to_string(),
                        },
                        None => SkipReason::PairImage {
                            missing: false,
                            message: "?".into(),
                        },
                    },
                }),
            }
        }
        extract.push(f.stats);
    }
    let views: Vec<_> = images.iter().map(|a| a.view()).collect();
    let images = ndarray::concatenate(Axis(0), &views).map_err(|e| Error::Model(e.to_string()))?;
    Ok(PairsFeatures {
        images,
        image_keys,
        captions,
        caption_rows,
        owner,
        skipped,
        extract,
    })
}

#[derive(Debug, Clone)]
pub struct FitOptions {
    /// (pairs CSV, image folder) per training set.
    pub sets: Vec<(PathBuf, PathBuf)>,
    pub image: ImageFeatureConfig,
    pub text: TextFeatureConfig,
    pub projection: ProjectionParams,
    /// Extraction settings, including the backbone's weights file (`weights`).
    pub extract: ExtractOptions,
    pub vectors: Option<PathBuf>,
    /// The second vector set's file (used when `text.second` is set; default models/cnsyn.vector).
    pub vectors2: Option<PathBuf>,
    /// Pairs only `--method contrastive` trains on (refused otherwise); their images must be
    /// images of `sets` (rows of other images are skipped and reported).
    pub extra_pairs: Vec<PathBuf>,
}

/// Extra captions encoded at a time.
const EXTRA_CHUNK: usize = 2000;

/// The extra pairs of `files` whose image is a training image (`image_keys`, matched by id),
/// their captions encoded with the training captions' statistics; other rows go to `skipped`.
fn load_extra_pairs(
    files: &[PathBuf],
    image_keys: &[(usize, String)],
    enc: &TextEncoder,
    skipped: &mut Vec<Skip>,
) -> Result<(ExtraPairs, Vec<TrainFile>)> {
    let mut row_of: HashMap<&str, usize> = HashMap::new();
    for (r, (_, id)) in image_keys.iter().enumerate() {
        row_of.entry(id.as_str()).or_insert(r);
    }
    let mut owner = Vec::new();
    let mut texts = SparseRows::new(enc.feature_dim());
    let mut recorded = Vec::new();
    for csv in files {
        let p = data::read_nonempty_pairs(csv)?;
        skipped.extend(p.skipped);
        let file = csv.display().to_string();
        let mut kept = Vec::new();
        for pair in &p.pairs {
            match row_of.get(pair.image_id.as_str()) {
                Some(&r) => kept.push((r, pair)),
                None => skipped.push(Skip {
                    file: file.clone(),
                    row: pair.row,
                    id: pair.image_id.clone(),
                    reason: SkipReason::NotTrainingImage,
                }),
            }
        }
        // Encoded a chunk at a time: the word-vector blocks are dense until made sparse.
        for chunk in kept.chunks(EXTRA_CHUNK) {
            let captions: Vec<String> = chunk.iter().map(|(_, p)| p.caption.clone()).collect();
            let (f, _) = enc.features_sparse(&captions);
            let mut rows = Vec::new();
            for (i, (r, pair)) in chunk.iter().enumerate() {
                if f.is_zero_row(i) {
                    skipped.push(Skip {
                        file: file.clone(),
                        row: pair.row,
                        id: pair.image_id.clone(),
                        reason: SkipReason::NoKnownToken(pair.caption.clone()),
                    });
                } else {
                    rows.push(i);
                    owner.push(*r);
                }
            }
            texts.append_rows(&f, &rows);
        }
        recorded.push(TrainFile {
            pairs: file,
            pairs_sha256: crate::assets::sha256_file(csv)?,
            images: String::new(),
        });
    }
    Ok((ExtraPairs { owner, texts }, recorded))
}

#[derive(Debug, serde::Serialize)]
pub struct FitReport {
    pub pairs_used: usize,
    pub images_used: usize,
    pub skipped: Vec<Skip>,
    pub extract: Vec<ExtractStats>,
    pub oov: OovReport,
    pub correlations: Vec<f64>,
    pub fit_seconds: f64,
    /// `--method contrastive`: the epoch kept and the history that chose it.
    pub contrastive: Option<ContrastiveReport>,
}

pub fn fit(opts: &FitOptions) -> Result<(Model, FitReport)> {
    if opts.sets.is_empty() {
        return Err(Error::Param("no training pairs file given".into()));
    }
    // Bad flags are refused before any feature is computed.
    opts.text.check()?;
    opts.projection.check()?;
    opts.extract.check()?;
    if !opts.extra_pairs.is_empty() && opts.projection.method != Method::Contrastive {
        return Err(Error::Param(
            "--extra-pairs is used only with --method contrastive".into(),
        ));
    }
    let spec = opts.image.resolve(opts.extract.weights.as_deref())?;
    let mut enc = TextEncoder::load_with(
        opts.text.clone(),
        opts.vectors.as_deref(),
        opts.vectors2.as_deref(),
    )?;
    let pf = load_pairs_features(&opts.sets, &spec, &opts.extract)?;
    enc.fit_stats(&pf.captions);
    let (texts, oov) = enc.features_sparse(&pf.captions);
    crate::projection::check_fit_data(pf.images.view(), &pf.owner, None)?;
    // Captions with no known token carry no signal: leave them out of the fit, and say so.
    let mut skipped = pf.skipped;
    let keep: Vec<usize> = (0..texts.nrows())
        .filter(|&i| {
            let z = texts.is_zero_row(i);
            if z {
                let (file, row) = pf.caption_rows[i].clone();
                skipped.push(Skip {
                    file,
                    row,
                    id: pf.image_keys[pf.owner[i]].1.clone(),
                    reason: SkipReason::NoKnownToken(pf.captions[i].clone()),
                });
            }
            !z
        })
        .collect();
    if keep.len() < 2 {
        return Err(Error::Param(format!(
            "only {} of {} training captions have a known token (fitting needs at least 2); \
             {} pairs were skipped — see --skip-list",
            keep.len(),
            texts.nrows(),
            skipped.len()
        )));
    }
    let texts = texts.select(&keep);
    let owner: Vec<usize> = keep.iter().map(|&i| pf.owner[i]).collect();
    let t0 = Instant::now();
    let (extra, extra_files) = if opts.extra_pairs.is_empty() {
        (None, Vec::new())
    } else {
        let (e, f) = load_extra_pairs(&opts.extra_pairs, &pf.image_keys, &enc, &mut skipped)?;
        (Some(e), f)
    };
    // Several networks or layers: each block normalised on its own.
    let params = ProjectionParams {
        image_blocks: match spec.blocks() {
            b if b.len() > 1 => b,
            _ => Vec::new(),
        },
        ..opts.projection.clone()
    };
    let (projection, contrastive) = params.fit_with(
        pf.images.view(),
        &owner,
        &texts,
        extra.as_ref(),
        opts.extract.progress,
    )?;
    let fit_seconds = t0.elapsed().as_secs_f64();
    let banks = TrainBanks::sample(
        projection.project_images(pf.images.view()),
        projection.project_text_rows(&texts),
    );
    let info = |path: &Path, sha: &str, vocab: usize, dim: usize| -> Result<WordVectorsInfo> {
        Ok(WordVectorsInfo {
            file: path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            sha256: sha.to_string(),
            size_bytes: std::fs::metadata(path)
                .map_err(|e| Error::io(path, e))?
                .len(),
            vocab,
            dim,
        })
    };
    let word_vectors = info(
        &enc.vectors_path,
        &enc.vectors_sha256,
        enc.vocab_len(),
        enc.dim(),
    )?;
    let word_vectors2 = match &enc.second {
        Some((e, p, sha)) => Some(info(p, sha, e.vocab().words_len(), e.dims())?),
        None => None,
    };
    let files = opts
        .sets
        .iter()
        .map(|(csv, dir)| {
            Ok(TrainFile {
                pairs: csv.display().to_string(),
                pairs_sha256: crate::assets::sha256_file(csv)?,
                images: dir.display().to_string(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let config = ModelConfig {
        format: FORMAT,
        image: spec,
        text: opts.text.clone(),
        projection: params,
        word_vectors,
        word_vectors2,
        train: TrainInfo {
            files,
            pairs_used: owner.len(),
            images_used: pf.images.nrows(),
            pairs_skipped: skipped.len(),
            oov: oov.clone(),
            correlations: projection.correlations.clone(),
            fit_seconds,
            extra_files,
            contrastive: contrastive.clone(),
        },
    };
    let report = FitReport {
        pairs_used: owner.len(),
        images_used: pf.images.nrows(),
        skipped,
        extract: pf.extract,
        oov,
        correlations: projection.correlations.clone(),
        fit_seconds,
        contrastive,
    };
    Ok((
        Model {
            config,
            projection,
            word_stats: enc.stats().clone(),
            banks: Some(banks),
        },
        report,
    ))
}
