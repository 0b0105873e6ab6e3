//! The three jobs — fit, eval, rank — as library calls over the data → features → projection →
//! retrieval → outputs flow. The CLI is a thin shell over these.
use crate::data::{self, Skip};
use crate::error::{Error, Result};
use crate::features::image::{self, ExtractOptions, ExtractStats, ImageFeatureConfig};
use crate::features::text::{OovReport, TextEncoder, TextFeatureConfig};
use crate::model::{Model, ModelConfig, TrainInfo, WordVectorsInfo, FORMAT};
use crate::outputs::csv::{self as out_csv, Task};
use crate::projection::ProjectionParams;
use crate::retrieval::{metrics, rank};
use ndarray::{Array2, Axis};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Features of the images of some pairs files, and which pairs survive.
struct PairsFeatures {
    /// One row per distinct usable image (`image_keys` gives (folder index, id)).
    images: Array2<f32>,
    image_keys: Vec<(usize, String)>,
    captions: Vec<String>,
    owner: Vec<usize>,
    skipped: Vec<Skip>,
    extract: Vec<ExtractStats>,
}

fn load_pairs_features(
    sets: &[(PathBuf, PathBuf)],
    cfg: &ImageFeatureConfig,
    ex: &ExtractOptions,
) -> Result<PairsFeatures> {
    let mut images: Vec<Array2<f32>> = Vec::new();
    let mut image_keys = Vec::new();
    let mut captions = Vec::new();
    let mut owner = Vec::new();
    let mut skipped = Vec::new();
    let mut extract = Vec::new();
    for (si, (csv, dir)) in sets.iter().enumerate() {
        let p = data::read_pairs(csv)?;
        if p.encoding == data::Encoding::Gbk {
            eprintln!("note: {} decoded as GBK", csv.display());
        }
        skipped.extend(p.skipped);
        let (ids, pair_image) = data::group_images(&p.pairs);
        let f = image::extract(&ids, dir, cfg, ex)?;
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
    pub extract: ExtractOptions,
    pub vectors: Option<PathBuf>,
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
    let pf = load_pairs_features(&opts.sets, &opts.image, &opts.extract)?;
    let mut enc = TextEncoder::load(opts.text.clone(), opts.vectors.as_deref())?;
    enc.fit_stats(&pf.captions);
    let (texts, oov) = enc.features(&pf.captions);
    // Captions with no known token carry no signal: leave them out of the fit, and say so.
    let mut skipped = pf.skipped;
    let keep: Vec<usize> = (0..texts.nrows())
        .filter(|&i| {
            let z = texts.row(i).iter().all(|&v| v == 0.0);
            if z {
                skipped.push(Skip {
                    file: "(training captions)".into(),
                    row: i + 1,
                    id: pf.image_keys[pf.owner[i]].1.clone(),
                    reason: format!("caption has no known token: {}", pf.captions[i]),
                });
            }
            !z
        })
        .collect();
    let texts = texts.select(Axis(0), &keep);
    let owner: Vec<usize> = keep.iter().map(|&i| pf.owner[i]).collect();
    let t0 = Instant::now();
    let projection = opts
        .projection
        .fit(pf.images.view(), &owner, texts.view())?;
    let fit_seconds = t0.elapsed().as_secs_f64();
    let vectors_meta =
        std::fs::metadata(&enc.vectors_path).map_err(|e| Error::io(&enc.vectors_path, e))?;
    let config = ModelConfig {
        format: FORMAT,
        image: opts.image,
        text: opts.text.clone(),
        projection: opts.projection.clone(),
        word_vectors: WordVectorsInfo {
            file: enc
                .vectors_path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            size_bytes: vectors_meta.len(),
            vocab: enc.vocab_len(),
            dim: enc.dim(),
        },
        train: TrainInfo {
            pairs_files: opts
                .sets
                .iter()
                .map(|s| s.0.display().to_string())
                .collect(),
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
        },
        report,
    ))
}

/// Text encoder matching a fitted model (same vectors file, config and training statistics).
pub fn model_text_encoder(model: &Model, vectors: Option<&Path>) -> Result<TextEncoder> {
    let mut enc = TextEncoder::load(model.config.text.clone(), vectors)?;
    let wv = &model.config.word_vectors;
    if enc.dim() != wv.dim || enc.vocab_len() != wv.vocab {
        return Err(Error::Model(format!(
            "word vectors {} ({} words × {}) differ from the model's {} ({} × {})",
            enc.vectors_path.display(),
            enc.vocab_len(),
            enc.dim(),
            wv.file,
            wv.vocab,
            wv.dim
        )));
    }
    enc.set_stats(model.word_stats.clone());
    Ok(enc)
}

#[derive(Debug, serde::Serialize)]
pub struct EvalOutput {
    pub report: metrics::EvalReport,
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
    vectors: Option<&Path>,
) -> Result<EvalOutput> {
    let t0 = Instant::now();
    let pf = load_pairs_features(
        &[(pairs.to_path_buf(), images.to_path_buf())],
        &model.config.image,
        ex,
    )?;
    let enc = model_text_encoder(model, vectors)?;
    let (texts, oov) = enc.features(&pf.captions);
    let img = model.projection.project_images(pf.images.view());
    let txt = model.projection.project_texts(texts.view());
    let sim = txt.dot(&img.t());
    let report = metrics::evaluate(sim.view(), &pf.owner);
    Ok(EvalOutput {
        report,
        skipped: pf.skipped,
        oov,
        extract: pf.extract,
        seconds: t0.elapsed().as_secs_f64(),
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
    pub oov: OovReport,
    pub seconds: f64,
    /// Top-5 (id, score) per written query, for reports.
    #[serde(skip)]
    pub top: Vec<(String, Vec<(String, f32)>)>,
}

/// Task 1: captions of `word_test.csv` against the images of `image_data.csv`.
pub fn rank_task1(
    model: &Model,
    word_test: &Path,
    image_data: &Path,
    images: &Path,
    out: &Path,
    ex: &ExtractOptions,
    vectors: Option<&Path>,
) -> Result<RankOutput> {
    let texts = data::read_ids(word_test, "text_id", true)?;
    let imgs = data::read_ids(image_data, "image_id", false)?;
    rank_task(
        model,
        Task::TextToImage,
        &texts,
        &imgs,
        images,
        out,
        ex,
        vectors,
    )
}

/// Task 2: images of `image_test.csv` against the captions of `word_data.csv`.
pub fn rank_task2(
    model: &Model,
    image_test: &Path,
    word_data: &Path,
    images: &Path,
    out: &Path,
    ex: &ExtractOptions,
    vectors: Option<&Path>,
) -> Result<RankOutput> {
    let imgs = data::read_ids(image_test, "image_id", false)?;
    let texts = data::read_ids(word_data, "text_id", true)?;
    rank_task(
        model,
        Task::ImageToText,
        &texts,
        &imgs,
        images,
        out,
        ex,
        vectors,
    )
}

/// Both tasks: project a caption list and an image list, rank the query side against the
/// gallery side, write the validated result file. Unreadable images leave the image side (and
/// are reported: as failed queries in task 2, as failed gallery items in task 1).
#[allow(clippy::too_many_arguments)]
fn rank_task(
    model: &Model,
    task: Task,
    texts: &data::IdList,
    imgs: &data::IdList,
    img_dir: &Path,
    out: &Path,
    ex: &ExtractOptions,
    vectors: Option<&Path>,
) -> Result<RankOutput> {
    let t0 = Instant::now();
    let enc = model_text_encoder(model, vectors)?;
    let (tf, oov) = enc.features(texts.captions.as_ref().expect("caption column"));
    let f = image::extract(&imgs.ids, img_dir, &model.config.image, ex)?;
    let keep: Vec<usize> = (0..imgs.ids.len()).filter(|&i| f.ok[i]).collect();
    let image_ids: Vec<String> = keep.iter().map(|&i| imgs.ids[i].clone()).collect();
    let pi = model
        .projection
        .project_images(f.features.select(Axis(0), &keep).view());
    let pt = model.projection.project_texts(tf.view());
    let (q, g, qids, gids) = match task {
        Task::TextToImage => (&pt, &pi, &texts.ids, &image_ids),
        Task::ImageToText => (&pi, &pt, &image_ids, &texts.ids),
    };
    let top = rank::top_k(q.view(), g.view(), out_csv::TOP);
    let results: Vec<Vec<String>> = top
        .iter()
        .map(|r| r.iter().map(|&(j, _)| gids[j].clone()).collect())
        .collect();
    out_csv::write_results(out, task, qids, &results, gids)?;
    let top = qids
        .iter()
        .zip(&top)
        .map(|(id, r)| {
            (
                id.clone(),
                r.iter().map(|&(j, s)| (gids[j].clone(), s)).collect(),
            )
        })
        .collect();
    let (failed_queries, failed_gallery) = match task {
        Task::TextToImage => (Vec::new(), f.skipped),
        Task::ImageToText => (f.skipped, Vec::new()),
    };
    Ok(RankOutput {
        task: if task == Task::TextToImage { 1 } else { 2 },
        path: out.to_path_buf(),
        queries: qids.len(),
        gallery: gids.len(),
        failed_queries,
        failed_gallery,
        oov,
        seconds: t0.elapsed().as_secs_f64(),
        top,
    })
}

/// Lay out held-out pairs as Teddy 附件2 (task 1) and 附件3 (task 2) folders, with the ground
/// truth beside them (`truth.csv`: text_id,image_id). Text ids are `Word-<n>`.
pub fn layout_teddy(pairs: &[data::Pair], images: &Path, dir2: &Path, dir3: &Path) -> Result<()> {
    use std::fmt::Write as _;
    let (ids, owner) = data::group_images(pairs);
    for d in [dir2, dir3] {
        let img_dir = d.join("ImageData");
        std::fs::create_dir_all(&img_dir).map_err(|e| Error::io(&img_dir, e))?;
        for id in &ids {
            let (src, dst) = (images.join(id), img_dir.join(id));
            if src.exists() && !dst.exists() {
                std::fs::hard_link(&src, &dst)
                    .or_else(|_| std::fs::copy(&src, &dst).map(|_| ()))
                    .map_err(|e| Error::io(&dst, e))?;
            }
        }
    }
    let mut words = String::from("text_id,caption\n");
    let mut truth = String::from("text_id,image_id\n");
    let mut w = ::csv::Writer::from_writer(Vec::new());
    for (i, p) in pairs.iter().enumerate() {
        let tid = format!("Word-{:010}", 1_000_000_001u64 + i as u64);
        w.write_record([tid.as_str(), p.caption.as_str()])
            .map_err(|e| Error::Model(e.to_string()))?;
        let _ = writeln!(truth, "{tid},{}", ids[owner[i]]);
    }
    words.push_str(&String::from_utf8_lossy(
        &w.into_inner().map_err(|e| Error::Model(e.to_string()))?,
    ));
    let img_list = format!("image_id\n{}\n", ids.join("\n"));
    let files = [
        (dir2.join("word_test.csv"), &words),
        (dir2.join("image_data.csv"), &img_list),
        (dir2.join("truth.csv"), &truth),
        (dir3.join("image_test.csv"), &img_list),
        (dir3.join("word_data.csv"), &words),
        (dir3.join("truth.csv"), &truth),
    ];
    for (p, s) in files {
        crate::outputs::write_atomic(&p, s.as_bytes())?;
    }
    Ok(())
}

/// Rank the Teddy folders in `dirs` (result files beside `out_html`) and write an HTML sheet of
/// the first `n` queries per task; true matches are marked where a `truth.csv` is present.
pub fn teddy_report(
    model: &Model,
    dirs: &[PathBuf],
    out_html: &Path,
    n: usize,
    ex: &ExtractOptions,
    vectors: Option<&Path>,
) -> Result<Vec<RankOutput>> {
    use crate::outputs::report::{write_html, Query, Row, Section};
    let out_dir = out_html
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut sections = Vec::new();
    let mut outputs = Vec::new();
    for d in dirs {
        let truth: HashMap<String, String> = match data::read_table(&d.join("truth.csv")) {
            Ok(t) => t
                .rows
                .into_iter()
                .map(|r| (r[0].clone(), r[1].clone()))
                .collect(),
            Err(_) => HashMap::new(),
        };
        let img_dir = d.join("ImageData");
        if d.join("word_test.csv").is_file() {
            let q = data::read_ids(&d.join("word_test.csv"), "text_id", true)?;
            let caps: HashMap<String, String> = q
                .ids
                .iter()
                .cloned()
                .zip(q.captions.clone().unwrap_or_default())
                .collect();
            let r = rank_task1(
                model,
                &d.join("word_test.csv"),
                &d.join("image_data.csv"),
                &img_dir,
                &out_dir.join("result1.csv"),
                ex,
                vectors,
            )?;
            let rows = r.top.iter().take(n).map(|(qid, res)| Row {
                query_id: qid.clone(),
                query: Query::Text(caps[qid].clone()),
                results: res
                    .iter()
                    .map(|(id, s)| (id.clone(), *s, Query::Image(img_dir.join(id))))
                    .collect(),
                truth: truth.get(qid).into_iter().cloned().collect(),
            });
            sections.push(Section {
                title: format!("Task 1, text → image ({})", d.display()),
                rows: rows.collect(),
            });
            outputs.push(r);
        }
        if d.join("image_test.csv").is_file() {
            let g = data::read_ids(&d.join("word_data.csv"), "text_id", true)?;
            let caps: HashMap<String, String> = g
                .ids
                .iter()
                .cloned()
                .zip(g.captions.clone().unwrap_or_default())
                .collect();
            let mut texts_of: HashMap<&str, Vec<String>> = HashMap::new();
            for (t, i) in &truth {
                texts_of.entry(i.as_str()).or_default().push(t.clone());
            }
            let r = rank_task2(
                model,
                &d.join("image_test.csv"),
                &d.join("word_data.csv"),
                &img_dir,
                &out_dir.join("result2.csv"),
                ex,
                vectors,
            )?;
            let rows = r.top.iter().take(n).map(|(qid, res)| Row {
                query_id: qid.clone(),
                query: Query::Image(img_dir.join(qid)),
                results: res
                    .iter()
                    .map(|(id, s)| (id.clone(), *s, Query::Text(caps[id].clone())))
                    .collect(),
                truth: texts_of
                    .get(qid.as_str())
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect(),
            });
            sections.push(Section {
                title: format!("Task 2, image → text ({})", d.display()),
                rows: rows.collect(),
            });
            outputs.push(r);
        }
    }
    let c = &model.config;
    let summary = format!(
        "model: {} {} features{}, text {:?}{}, {:?} with {} components; fitted on {} pairs",
        c.image.backbone.name(),
        c.image.pooling.name(),
        if c.image.flip { " + flip" } else { "" },
        c.text.weighting,
        if c.text.bag.is_some() {
            " + bag of terms"
        } else {
            ""
        },
        c.projection.method,
        c.projection.cca.components,
        c.train.pairs_used
    );
    write_html(out_html, "tuwen 图文 result sheet", &summary, &sections)?;
    Ok(outputs)
}
