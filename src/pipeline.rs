//! The jobs — fit, eval, rank, report — as library calls over the data → features → projection
//! → retrieval → outputs flow. The CLI is a thin shell over these.
use crate::data::{self, Skip};
use crate::error::{Error, Result};
use crate::features::image::{self, ExtractOptions, ExtractStats, FeatureSpec, ImageFeatureConfig};
use crate::features::text::{OovReport, TextEncoder, TextFeatureConfig};
use crate::model::{Model, ModelConfig, TrainBanks, TrainFile, TrainInfo, WordVectorsInfo, FORMAT};
use crate::outputs::csv::{self as out_csv, Task};
use crate::projection::ProjectionParams;
use crate::retrieval::metrics;
use crate::retrieval::score::{self, Scoring};
use finalfusion::vocab::Vocab;
use ndarray::{Array2, Axis};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Which items the hubness correction compares each item with.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Bank {
    /// The sets being ranked: all queries and the whole gallery (Teddy gives both at once;
    /// evaluation: the held-out captions and images).
    #[default]
    Sets,
    /// The training images and captions stored in the model (for queries that arrive alone).
    Train,
}

/// How scores are computed: plain cosine or a hubness-corrected score, and its banks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreOptions {
    pub scoring: Scoring,
    pub bank: Bank,
}

impl Default for ScoreOptions {
    /// The CLI's default, the best on the development split (experiments/README.md).
    fn default() -> Self {
        ScoreOptions {
            scoring: Scoring::Csls { k: 10 },
            bank: Bank::Sets,
        }
    }
}

impl ScoreOptions {
    /// Plain cosine similarity, the design's baseline.
    pub fn cosine() -> Self {
        ScoreOptions {
            scoring: Scoring::Cosine,
            bank: Bank::Sets,
        }
    }
}

impl ScoreOptions {
    /// For outputs and reports: `csls(k=10), banks: sets`.
    pub fn describe(&self) -> String {
        match self.scoring {
            Scoring::Cosine => "cosine".into(),
            s => format!(
                "{s}, banks: {}",
                match self.bank {
                    Bank::Sets => "the ranked sets",
                    Bank::Train => "training items in the model",
                }
            ),
        }
    }

    pub(crate) fn check(&self, model: &Model) -> Result<()> {
        self.scoring.validate().map_err(Error::Param)?;
        if self.scoring != Scoring::Cosine && self.bank == Bank::Train && model.banks.is_none() {
            return Err(Error::Model(
                "this model stores no training banks; use --bank sets or refit".into(),
            ));
        }
        Ok(())
    }

    /// (query bank, gallery bank) from the model for a ranking whose queries are texts or not.
    pub(crate) fn train_banks<'m>(
        &self,
        model: &'m Model,
        queries_are_texts: bool,
    ) -> Result<(ndarray::ArrayView2<'m, f32>, ndarray::ArrayView2<'m, f32>)> {
        let b = model
            .banks
            .as_ref()
            .ok_or_else(|| Error::Model("the model stores no training banks".into()))?;
        Ok(if queries_are_texts {
            (b.texts.view(), b.images.view())
        } else {
            (b.images.view(), b.texts.view())
        })
    }
}

/// Features of the images of some pairs files, and which pairs survive.
struct PairsFeatures {
    /// One row per distinct usable image (`image_keys` gives (folder index, id)).
    images: Array2<f32>,
    image_keys: Vec<(usize, String)>,
    captions: Vec<String>,
    /// (pairs file, 1-based row) of each caption, for skip reports.
    caption_rows: Vec<(String, usize)>,
    owner: Vec<usize>,
    skipped: Vec<Skip>,
    extract: Vec<ExtractStats>,
}

fn load_pairs_features(
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
        let p = data::read_pairs(csv)?;
        if p.encoding == data::Encoding::Gbk {
            eprintln!("note: {} decoded as GBK", csv.display());
        }
        if p.pairs.is_empty() {
            return Err(Error::file(
                csv,
                format!(
                    "no usable pair (image_id,caption) in the file ({} rows skipped)",
                    p.skipped.len()
                ),
            ));
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
                    reason: format!(
                        "image unusable: {}",
                        failed
                            .get(pair.image_id.as_str())
                            .map(|s| s.reason.as_str())
                            .unwrap_or("?")
                    ),
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
}

pub fn fit(opts: &FitOptions) -> Result<(Model, FitReport)> {
    if opts.sets.is_empty() {
        return Err(Error::Param("no training pairs file given".into()));
    }
    let spec = opts.image.resolve(opts.extract.weights.as_deref())?;
    let mut enc = TextEncoder::load_with(
        opts.text.clone(),
        opts.vectors.as_deref(),
        opts.vectors2.as_deref(),
    )?;
    let pf = load_pairs_features(&opts.sets, &spec, &opts.extract)?;
    enc.fit_stats(&pf.captions);
    let (texts, oov) = enc.features(&pf.captions);
    // Captions with no known token carry no signal: leave them out of the fit, and say so.
    let mut skipped = pf.skipped;
    let keep: Vec<usize> = (0..texts.nrows())
        .filter(|&i| {
            let z = texts.row(i).iter().all(|&v| v == 0.0);
            if z {
                let (file, row) = pf.caption_rows[i].clone();
                skipped.push(Skip {
                    file,
                    row,
                    id: pf.image_keys[pf.owner[i]].1.clone(),
                    reason: format!("caption has no known token: {}", pf.captions[i]),
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
    let texts = texts.select(Axis(0), &keep);
    let owner: Vec<usize> = keep.iter().map(|&i| pf.owner[i]).collect();
    let t0 = Instant::now();
    let projection = opts
        .projection
        .fit(pf.images.view(), &owner, texts.view())?;
    let fit_seconds = t0.elapsed().as_secs_f64();
    let banks = TrainBanks::sample(
        projection.project_images(pf.images.view()),
        projection.project_texts(texts.view()),
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
        projection: opts.projection.clone(),
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

/// Word-vector files to use with a model (None: the models folder's defaults).
#[derive(Debug, Clone, Default)]
pub struct VectorFiles {
    pub words: Option<PathBuf>,
    /// The second set, for models whose text features use one.
    pub second: Option<PathBuf>,
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

#[derive(Debug, serde::Serialize)]
pub struct EvalOutput {
    pub report: metrics::EvalReport,
    pub scoring: String,
    pub skipped: Vec<Skip>,
    pub oov: OovReport,
    pub extract: Vec<ExtractStats>,
    pub seconds: f64,
}

/// Evaluate on held-out pairs: every caption against every usable image of the set.
pub fn evaluate(
    model: &Model,
    pairs: &Path,
    images: &Path,
    ex: &ExtractOptions,
    vectors: &VectorFiles,
    scoring: &ScoreOptions,
) -> Result<EvalOutput> {
    let t0 = Instant::now();
    scoring.check(model)?;
    let spec = model.feature_spec(ex.weights.as_deref())?;
    let enc = model_text_encoder(model, vectors)?;
    let pf = load_pairs_features(&[(pairs.to_path_buf(), images.to_path_buf())], &spec, ex)?;
    let (texts, oov) = enc.features(&pf.captions);
    let img = model.projection.project_images(pf.images.view());
    let txt = model.projection.project_texts(texts.view());
    let report = evaluate_scored(model, txt.view(), img.view(), &pf.owner, scoring)?;
    Ok(EvalOutput {
        report,
        scoring: scoring.describe(),
        skipped: pf.skipped,
        oov,
        extract: pf.extract,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// One ranking job: a Teddy task's query file, gallery file, image folder and result file.
#[derive(Debug, Clone)]
pub struct RankJob {
    pub task: Task,
    /// `word_test.csv` (task 1) or `image_test.csv` (task 2).
    pub queries: PathBuf,
    /// `image_data.csv` (task 1) or `word_data.csv` (task 2).
    pub gallery: PathBuf,
    /// Folder of the images named in either file.
    pub images: PathBuf,
    /// Result file to write.
    pub out: PathBuf,
}

impl RankJob {
    pub fn number(&self) -> u8 {
        match self.task {
            Task::TextToImage => 1,
            Task::ImageToText => 2,
        }
    }
}

/// The jobs of Teddy folders: 附件2 (`word_test.csv` + `image_data.csv`) gives `result1.csv`,
/// 附件3 (`image_test.csv` + `word_data.csv`) gives `result2.csv`, both written to `out_dir`.
pub fn teddy_jobs(dirs: &[PathBuf], out_dir: &Path) -> Result<Vec<RankJob>> {
    let mut jobs = Vec::new();
    for d in dirs {
        let before = jobs.len();
        for (task, q, g) in [
            (Task::TextToImage, "word_test.csv", "image_data.csv"),
            (Task::ImageToText, "image_test.csv", "word_data.csv"),
        ] {
            if d.join(q).is_file() && d.join(g).is_file() {
                let job = RankJob {
                    task,
                    queries: d.join(q),
                    gallery: d.join(g),
                    images: d.join("ImageData"),
                    out: PathBuf::new(),
                };
                let out = out_dir.join(format!("result{}.csv", job.number()));
                jobs.push(RankJob { out, ..job });
            }
        }
        if jobs.len() == before {
            return Err(Error::file(
                d,
                "holds neither word_test.csv + image_data.csv (附件2) nor image_test.csv + \
                 word_data.csv (附件3)",
            ));
        }
    }
    check_distinct_outputs(&jobs)?;
    Ok(jobs)
}

/// Two jobs of one run must not write the same result file.
pub fn check_distinct_outputs(jobs: &[RankJob]) -> Result<()> {
    let mut outs = std::collections::HashSet::new();
    for j in jobs {
        if !outs.insert(j.out.clone()) {
            return Err(Error::file(
                &j.out,
                "two inputs of the same task would write this result file; rank them separately",
            ));
        }
    }
    Ok(())
}

/// Recall of projected captions × images (`owner[t]` = image of caption t) under a scoring:
/// text→image ranks each caption's row, image→text each image's column.
pub fn evaluate_scored(
    model: &Model,
    txt: ndarray::ArrayView2<f32>,
    img: ndarray::ArrayView2<f32>,
    owner: &[usize],
    opts: &ScoreOptions,
) -> Result<metrics::EvalReport> {
    let cos = txt.dot(&img.t());
    let (t2i, i2t) = match (opts.scoring, opts.bank) {
        (Scoring::Cosine, _) => return Ok(metrics::evaluate(cos.view(), owner)),
        (s, Bank::Sets) => {
            let b = score::both_ways(cos.view(), s).map_err(Error::Param)?;
            (b.row_queries, b.col_queries)
        }
        (s, Bank::Train) => {
            let (tb, ib) = opts.train_banks(model, true)?;
            let p = score::penalties(s, txt, img, tb, ib).map_err(Error::Param)?;
            let t2i = score::score_matrix(txt, img, s, &p);
            let p = score::penalties(s, img, txt, ib, tb).map_err(Error::Param)?;
            let i2t = score::score_matrix(img, txt, s, &p).reversed_axes();
            (t2i, i2t)
        }
    };
    let a = metrics::evaluate(t2i.view(), owner);
    let b = metrics::evaluate(i2t.view(), owner);
    Ok(metrics::EvalReport {
        t2i: a.t2i,
        i2t: b.i2t,
        ..a
    })
}

#[derive(Debug, serde::Serialize)]
pub struct RankOutput {
    pub task: u8,
    pub path: PathBuf,
    pub queries: usize,
    pub gallery: usize,
    /// Queries whose image could not be read (task 2): not in the result file.
    pub failed_queries: Vec<Skip>,
    /// Gallery images that could not be read (task 1): never returned.
    pub failed_gallery: Vec<Skip>,
    /// Empty captions: ranked but arbitrary as queries (task 1), left out of the gallery (task 2).
    pub empty_captions: Vec<Skip>,
    pub oov: OovReport,
    pub scoring: String,
    pub seconds: f64,
    /// Top-5 (id, score) per written query, for reports.
    #[serde(skip)]
    pub top: Vec<(String, Vec<(String, f32)>)>,
    /// Caption of every text id of the job (queries in task 1, gallery in task 2).
    #[serde(skip)]
    pub captions: HashMap<String, String>,
    /// Raw features (as extracted) of the images in `top` (results in task 1, queries in task 2);
    /// empty unless asked for ([`Ranker::run_keeping`]).
    #[serde(skip)]
    pub image_features: HashMap<String, ndarray::Array1<f32>>,
}

impl RankOutput {
    /// What a user must be told about images left out (empty when none was).
    pub fn failure_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let list = |s: &[Skip]| {
            let shown: Vec<String> = s
                .iter()
                .take(10)
                .map(|x| format!("{} ({})", x.id, x.reason))
                .collect();
            let more = s.len().saturating_sub(10);
            shown.join(", ")
                + &if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
        };
        if !self.failed_queries.is_empty() {
            notes.push(format!(
                "task {}: {} query images could not be read and have no results: {}",
                self.task,
                self.failed_queries.len(),
                list(&self.failed_queries)
            ));
        }
        if !self.failed_gallery.is_empty() {
            notes.push(format!(
                "task {}: {} gallery images could not be read and are never returned: {}",
                self.task,
                self.failed_gallery.len(),
                list(&self.failed_gallery)
            ));
        }
        if !self.empty_captions.is_empty() {
            let what = if self.task == 1 {
                "query captions are empty (answered, but their results are arbitrary)"
            } else {
                "gallery captions are empty and are never returned"
            };
            notes.push(format!(
                "task {}: {} {what}: {}",
                self.task,
                self.empty_captions.len(),
                list(&self.empty_captions)
            ));
        }
        notes
    }
}

/// What ranking needs from a model, prepared once (feature spec checked against the weights,
/// text encoder checked against the vectors) and used for every job: `rank` and `report` both
/// go through [`Ranker::run`].
pub struct Ranker<'a> {
    pub model: &'a Model,
    pub spec: FeatureSpec,
    pub enc: TextEncoder,
    pub ex: &'a ExtractOptions,
    pub score: ScoreOptions,
}

impl<'a> Ranker<'a> {
    pub fn new(
        model: &'a Model,
        ex: &'a ExtractOptions,
        vectors: &VectorFiles,
        score: ScoreOptions,
    ) -> Result<Self> {
        score.check(model)?;
        Ok(Ranker {
            model,
            spec: model.feature_spec(ex.weights.as_deref())?,
            enc: model_text_encoder(model, vectors)?,
            ex,
            score,
        })
    }

    /// Project a caption list and an image list, rank the query side against the gallery side,
    /// write the validated result file. Unreadable images leave the image side and are reported
    /// (as failed queries in task 2, as failed gallery items in task 1) with their CSV rows.
    pub fn run(&self, job: &RankJob) -> Result<RankOutput> {
        self.run_keeping(job, false)
    }

    /// [`Ranker::run`], also keeping the raw features of the answer's images
    /// ([`RankOutput::image_features`]) when `keep_features` (for explanations in a report).
    pub fn run_keeping(&self, job: &RankJob, keep_features: bool) -> Result<RankOutput> {
        let t0 = Instant::now();
        let (text_file, image_file) = match job.task {
            Task::TextToImage => (&job.queries, &job.gallery),
            Task::ImageToText => (&job.gallery, &job.queries),
        };
        let texts = data::read_ids(text_file, "text_id", true)?;
        let imgs = data::read_ids(image_file, "image_id", false)?;
        for (list, path) in [(&texts.ids, text_file), (&imgs.ids, image_file)] {
            if list.is_empty() {
                return Err(Error::file(path, "no rows: nothing to rank"));
            }
        }
        let captions = texts.captions.clone().unwrap_or_default();
        // An empty caption carries nothing to match: in the gallery (task 2) it is left out; as a
        // query (task 1) it must still be answered, so it is ranked but reported.
        let empty: Vec<usize> = (0..captions.len())
            .filter(|&i| captions.get(i).is_none_or(|c| c.is_empty()))
            .collect();
        let empty_captions: Vec<Skip> = empty
            .iter()
            .map(|&i| Skip {
                file: text_file.display().to_string(),
                row: i + 1,
                id: texts.ids[i].clone(),
                reason: match job.task {
                    Task::TextToImage => "empty caption: its results are arbitrary".into(),
                    Task::ImageToText => "empty caption: left out of the gallery".into(),
                },
            })
            .collect();
        let text_keep: Vec<usize> = match job.task {
            Task::TextToImage => (0..captions.len()).collect(),
            Task::ImageToText => (0..captions.len()).filter(|i| !empty.contains(i)).collect(),
        };
        let text_ids: Vec<String> = text_keep.iter().map(|&i| texts.ids[i].clone()).collect();
        let kept_captions: Vec<String> = text_keep.iter().map(|&i| captions[i].clone()).collect();
        let (tf, oov) = self.enc.features(&kept_captions);
        let mut f = image::extract(&imgs.ids, &job.images, &self.spec, self.ex)?;
        if f.ok.iter().all(|&ok| !ok) {
            return Err(
                f.nothing_usable(&job.images, &format!("images of {}", image_file.display()))
            );
        }
        // Ids are unique in a Teddy list, so each skip's row is its position + 1.
        f.relabel_skips(image_file, None);
        let keep: Vec<usize> = (0..imgs.ids.len()).filter(|&i| f.ok[i]).collect();
        let image_ids: Vec<String> = keep.iter().map(|&i| imgs.ids[i].clone()).collect();
        let proj = &self.model.projection;
        let pi = proj.project_images(f.features.select(Axis(0), &keep).view());
        let pt = proj.project_texts(tf.view());
        let (q, g, qids, gids) = match job.task {
            Task::TextToImage => (&pt, &pi, &text_ids, &image_ids),
            Task::ImageToText => (&pi, &pt, &image_ids, &text_ids),
        };
        let s = self.score.scoring;
        let top = match self.score.bank {
            // Teddy gives all queries and the whole gallery at once: they are the banks.
            Bank::Sets => score::rank(q.view(), g.view(), out_csv::TOP, s, q.view(), g.view()),
            Bank::Train => {
                let (qb, gb) = self
                    .score
                    .train_banks(self.model, job.task == Task::TextToImage)?;
                score::penalties(s, q.view(), g.view(), qb, gb).map(|p| {
                    (
                        score::top_k_scored(q.view(), g.view(), out_csv::TOP, s, &p),
                        p,
                    )
                })
            }
        }
        .map_err(Error::Param)?
        .0;
        let results: Vec<Vec<String>> = top
            .iter()
            .map(|r| r.iter().map(|&(j, _)| gids[j].clone()).collect())
            .collect();
        out_csv::write_results(&job.out, job.task, qids, &results, gids)?;
        let top: Vec<(String, Vec<(String, f32)>)> = qids
            .iter()
            .zip(&top)
            .map(|(id, r)| {
                (
                    id.clone(),
                    r.iter().map(|&(j, s)| (gids[j].clone(), s)).collect(),
                )
            })
            .collect();
        // Raw features of the images in the answer (for explanations), so a report need not
        // open the feature cache a second time.
        let row_of = f.index();
        let image_features: HashMap<String, ndarray::Array1<f32>> = top
            .iter()
            .filter(|_| keep_features)
            .flat_map(|(q, res)| match job.task {
                Task::TextToImage => res.iter().map(|(id, _)| id).collect::<Vec<_>>(),
                Task::ImageToText => vec![q],
            })
            .filter_map(|id| {
                row_of
                    .get(id.as_str())
                    .map(|&i| (id.clone(), f.features.row(i).to_owned()))
            })
            .collect();
        let (failed_queries, failed_gallery) = match job.task {
            Task::TextToImage => (Vec::new(), f.skipped),
            Task::ImageToText => (f.skipped, Vec::new()),
        };
        Ok(RankOutput {
            task: job.number(),
            path: job.out.clone(),
            queries: qids.len(),
            gallery: gids.len(),
            failed_queries,
            failed_gallery,
            empty_captions,
            oov,
            scoring: self.score.describe(),
            seconds: t0.elapsed().as_secs_f64(),
            top,
            captions: texts.ids.iter().cloned().zip(captions).collect(),
            image_features,
        })
    }
}

/// Rank the Teddy folders in `dirs` (result files beside `out_html`) and write an HTML sheet of
/// the first `n` queries per task; true matches are marked where a `truth.csv` is present.
/// Ranking is [`Ranker::run`], as for `rank`; images left out are said on the sheet too.
pub fn teddy_report(
    ranker: &Ranker,
    dirs: &[PathBuf],
    out_html: &Path,
    n: usize,
) -> Result<Vec<RankOutput>> {
    use crate::outputs::report::{write_html, Query, Row, Section};
    let out_dir = out_html
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut sections = Vec::new();
    let mut outputs = Vec::new();
    for job in teddy_jobs(dirs, out_dir)? {
        let dir = job.queries.parent().unwrap_or(Path::new("."));
        let truth = read_truth(&dir.join("truth.csv"))?;
        let r = ranker.run_keeping(&job, true)?;
        let explain = |text_id: &str, image_id: &str| -> Vec<(String, f32)> {
            let (Some(cap), Some(feature)) =
                (r.captions.get(text_id), r.image_features.get(image_id))
            else {
                return Vec::new();
            };
            crate::explain::explain_pair(ranker.model, &ranker.enc, cap, feature.view())
                .map(|e| {
                    e.terms
                        .iter()
                        .filter(|t| t.contribution != 0.0)
                        .take(4)
                        .map(|t| {
                            (
                                format!("cosine term: {} {}", t.kind.name(), t.text),
                                t.contribution,
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let caption = |id: &str| Query::Text(r.captions.get(id).cloned().unwrap_or_default());
        let image = |id: &str| Query::Image(job.images.join(id));
        let rows = r.top.iter().take(n).map(|(qid, res)| {
            let (query, truth): (Query, std::collections::HashSet<String>) = match job.task {
                Task::TextToImage => (caption(qid), truth.get(qid).into_iter().cloned().collect()),
                Task::ImageToText => (
                    image(qid),
                    truth
                        .iter()
                        .filter(|(_, i)| *i == qid)
                        .map(|(t, _)| t.clone())
                        .collect(),
                ),
            };
            Row {
                query_id: qid.clone(),
                query,
                results: res
                    .iter()
                    .map(|(id, s)| {
                        let cell = match job.task {
                            Task::TextToImage => image(id),
                            Task::ImageToText => caption(id),
                        };
                        (id.clone(), *s, cell)
                    })
                    .collect(),
                explanations: res
                    .iter()
                    .map(|(id, _)| match job.task {
                        Task::TextToImage => explain(qid, id),
                        Task::ImageToText => explain(id, qid),
                    })
                    .collect(),
                truth,
            }
        });
        let title = match job.task {
            Task::TextToImage => format!("Task 1, text → image ({})", dir.display()),
            Task::ImageToText => format!("Task 2, image → text ({})", dir.display()),
        };
        sections.push(Section {
            title,
            notes: r.failure_notes(),
            rows: rows.collect(),
        });
        outputs.push(r);
    }
    let c = &ranker.model.config;
    let summary = format!(
        "model: {} features, text {:?}{}, {:?} with {} components; fitted on {} pairs; scores: {}",
        c.image.describe(),
        c.text.weighting,
        if c.text.bag.is_some() {
            " + bag of terms"
        } else {
            ""
        },
        c.projection.method,
        c.projection.cca.components(),
        c.train.pairs_used,
        ranker.score.describe()
    );
    write_html(out_html, "tuwen 图文 result sheet", &summary, &sections)?;
    Ok(outputs)
}

/// `truth.csv` (text_id,image_id) beside a Teddy folder, if there is one.
fn read_truth(path: &Path) -> Result<HashMap<String, String>> {
    if !path.is_file() {
        return Ok(HashMap::new());
    }
    let t = data::read_table(path)?;
    let (ct, ci) = (t.column("text_id")?, t.column("image_id")?);
    Ok(t.rows
        .iter()
        .map(|r| (r[ct].trim().to_string(), r[ci].trim().to_string()))
        .collect())
}

/// Lay out held-out pairs as Teddy 附件2 (task 1) and 附件3 (task 2) folders, with the ground
/// truth beside them (`truth.csv`: text_id,image_id). Text ids are `Word-<n>`.
pub fn layout_teddy(pairs: &[data::Pair], images: &Path, dir2: &Path, dir3: &Path) -> Result<()> {
    use std::fmt::Write as _;
    let (ids, owner) = data::group_images(pairs);
    let mut words = String::from("text_id,caption\n");
    let mut truth = String::from("text_id,image_id\n");
    let mut w = ::csv::Writer::from_writer(Vec::new());
    for (i, p) in pairs.iter().enumerate() {
        let tid = data::pair_text_id(i);
        w.write_record([tid.as_str(), p.caption.as_str()])
            .map_err(|e| Error::Model(e.to_string()))?;
        let _ = writeln!(truth, "{tid},{}", ids[owner[i]]);
    }
    words.push_str(&String::from_utf8_lossy(
        &w.into_inner().map_err(|e| Error::Model(e.to_string()))?,
    ));
    let img_list = format!("image_id\n{}\n", ids.join("\n"));
    // Each folder is staged whole and swapped in (fsutil::OutputDir): only a folder tuwen laid
    // out is replaced, and a failure (a full disk) leaves the previous one.
    let dirs = [
        (
            dir2,
            [("word_test.csv", &words), ("image_data.csv", &img_list)],
        ),
        (
            dir3,
            [("image_test.csv", &img_list), ("word_data.csv", &words)],
        ),
    ];
    for (d, files) in dirs {
        let out = crate::fsutil::OutputDir::begin(d, &crate::fsutil::TEDDY_DIR, &[images])?;
        crate::fsutil::link_or_copy(images, &ids, &out.path().join("ImageData"))?;
        for (name, s) in files.into_iter().chain([("truth.csv", &truth)]) {
            out.write(name, s.as_bytes())?;
        }
        out.commit()?;
    }
    Ok(())
}
