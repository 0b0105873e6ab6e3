//! `rank`: Teddy query and gallery files → `result1.csv` / `result2.csv`, through the model's
//! [`Embedder`] and one [`Scorer`].
use crate::data::{self, Skip, SkipReason};
use crate::embed::{Embedder, Listed};
use crate::error::{Error, Result};
use crate::features::text::OovReport;
use crate::outputs::csv as out_csv;
use crate::retrieval::{Direction, Scorer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `result1.csv` (text → image) or `result2.csv` (image → text) in `dir`.
pub fn result_file(dir: &Path, direction: Direction) -> PathBuf {
    dir.join(format!("result{}.csv", direction.task()))
}

/// One ranking job: a Teddy task's query file, gallery file, image folder and result file.
#[derive(Debug, Clone)]
pub struct RankJob {
    pub direction: Direction,
    /// `word_test.csv` (task 1) or `image_test.csv` (task 2).
    pub queries: PathBuf,
    /// `image_data.csv` (task 1) or `word_data.csv` (task 2).
    pub gallery: PathBuf,
    /// Folder of the images named in either file.
    pub images: PathBuf,
    /// Result file to write.
    pub out: PathBuf,
}

/// The jobs of Teddy folders: 附件2 (`word_test.csv` + `image_data.csv`) gives `result1.csv`,
/// 附件3 (`image_test.csv` + `word_data.csv`) gives `result2.csv`, both written to `out_dir`.
pub fn teddy_jobs(dirs: &[PathBuf], out_dir: &Path) -> Result<Vec<RankJob>> {
    let mut jobs = Vec::new();
    for d in dirs {
        let before = jobs.len();
        for (direction, q, g) in [
            (Direction::TextToImage, "word_test.csv", "image_data.csv"),
            (Direction::ImageToText, "image_test.csv", "word_data.csv"),
        ] {
            if d.join(q).is_file() && d.join(g).is_file() {
                jobs.push(RankJob {
                    direction,
                    queries: d.join(q),
                    gallery: d.join(g),
                    images: d.join("ImageData"),
                    out: result_file(out_dir, direction),
                });
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

#[derive(Debug, serde::Serialize)]
pub struct RankOutput {
    pub direction: Direction,
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
        let list = data::list_skips;
        if !self.failed_queries.is_empty() {
            notes.push(format!(
                "task {}: {} query images could not be read and have no results: {}",
                self.direction.task(),
                self.failed_queries.len(),
                list(&self.failed_queries)
            ));
        }
        if !self.failed_gallery.is_empty() {
            notes.push(format!(
                "task {}: {} gallery images could not be read and are never returned: {}",
                self.direction.task(),
                self.failed_gallery.len(),
                list(&self.failed_gallery)
            ));
        }
        if !self.empty_captions.is_empty() {
            let what = if self.direction == Direction::TextToImage {
                "query captions are empty (answered, but their results are arbitrary)"
            } else {
                "gallery captions are empty and are never returned"
            };
            notes.push(format!(
                "task {}: {} {what}: {}",
                self.direction.task(),
                self.empty_captions.len(),
                list(&self.empty_captions)
            ));
        }
        notes
    }
}

/// Run `jobs`, replacing all their result files together once every task succeeded (never a new
/// `result1.csv` beside a stale `result2.csv`), and never over an input: the jobs' own files or
/// `inputs` (the model's files).
pub fn rank_all(ranker: &Ranker, jobs: &[RankJob], inputs: &[&Path]) -> Result<Vec<RankOutput>> {
    check_distinct_outputs(jobs)?;
    for j in jobs {
        let mut all = inputs.to_vec();
        all.extend([j.queries.as_path(), &j.gallery, &j.images]);
        crate::fsutil::check_not_input(&j.out, &all)?;
        out_csv::check_result_target(&j.out, j.direction)?;
    }
    let batch = crate::fsutil::OutputBatch::begin(jobs.iter().map(|j| &j.out))?;
    let outs = jobs
        .iter()
        .map(|j| ranker.run(j))
        .collect::<Result<Vec<_>>>()?;
    batch.commit()?;
    Ok(outs)
}

/// What ranking needs, prepared once: the model ready to use and the scorer. `rank` and
/// `report` both go through [`Ranker::run`].
pub struct Ranker<'a> {
    pub embedder: &'a Embedder,
    pub scorer: Scorer,
}

impl<'a> Ranker<'a> {
    pub fn new(embedder: &'a Embedder, scorer: Scorer) -> Ranker<'a> {
        Ranker { embedder, scorer }
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
        let dir = job.direction;
        let (text_file, image_file) = match dir {
            Direction::TextToImage => (&job.queries, &job.gallery),
            Direction::ImageToText => (&job.gallery, &job.queries),
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
            .filter(|&i| captions[i].is_empty())
            .collect();
        let empty_captions: Vec<Skip> = empty
            .iter()
            .map(|&i| Skip {
                file: text_file.display().to_string(),
                row: i + 1,
                id: texts.ids[i].clone(),
                reason: match dir {
                    Direction::TextToImage => SkipReason::EmptyQueryCaption,
                    Direction::ImageToText => SkipReason::EmptyGalleryCaption,
                },
            })
            .collect();
        let text_keep: Vec<usize> = match dir {
            Direction::TextToImage => (0..captions.len()).collect(),
            Direction::ImageToText => (0..captions.len()).filter(|i| !empty.contains(i)).collect(),
        };
        let text_ids: Vec<String> = text_keep.iter().map(|&i| texts.ids[i].clone()).collect();
        let kept_captions: Vec<String> = text_keep.iter().map(|&i| captions[i].clone()).collect();
        let (pt, oov) = self.embedder.texts(&kept_captions);
        // Ids are unique in a Teddy list, so each skip's row is its position + 1.
        let im = self.embedder.images(
            &imgs.ids,
            &job.images,
            Listed {
                file: image_file,
                rows: None,
            },
        )?;
        let (queries, qids, gallery) = match dir {
            Direction::TextToImage => (
                pt,
                text_ids,
                self.scorer.prepare(dir, im.ids.clone(), im.projected)?,
            ),
            Direction::ImageToText => (
                im.projected,
                im.ids.clone(),
                self.scorer.prepare(dir, text_ids, pt)?,
            ),
        };
        let (top, _) = self.scorer.rank(queries.view(), &gallery, out_csv::TOP)?;
        let results: Vec<Vec<String>> = top
            .iter()
            .map(|r| r.iter().map(|&(j, _)| gallery.id(j).to_string()).collect())
            .collect();
        out_csv::write_results(&job.out, dir, &qids, &results, gallery.ids())?;
        let top: Vec<(String, Vec<(String, f32)>)> = qids
            .iter()
            .zip(&top)
            .map(|(id, r)| {
                (
                    id.clone(),
                    r.iter()
                        .map(|&(j, s)| (gallery.id(j).to_string(), s))
                        .collect(),
                )
            })
            .collect();
        // Raw features of the images in the answer (for explanations), so a report need not
        // open the feature cache a second time.
        let row_of: HashMap<&str, usize> = im
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let image_features: HashMap<String, ndarray::Array1<f32>> = top
            .iter()
            .filter(|_| keep_features)
            .flat_map(|(q, res)| match dir {
                Direction::TextToImage => res.iter().map(|(id, _)| id).collect::<Vec<_>>(),
                Direction::ImageToText => vec![q],
            })
            .filter_map(|id| {
                row_of
                    .get(id.as_str())
                    .map(|&i| (id.clone(), im.raw.row(i).to_owned()))
            })
            .collect();
        let (failed_queries, failed_gallery) = match dir {
            Direction::TextToImage => (Vec::new(), im.skipped),
            Direction::ImageToText => (im.skipped, Vec::new()),
        };
        Ok(RankOutput {
            direction: dir,
            path: job.out.clone(),
            queries: qids.len(),
            gallery: gallery.len(),
            failed_queries,
            failed_gallery,
            empty_captions,
            oov,
            scoring: self.scorer.describe(),
            seconds: t0.elapsed().as_secs_f64(),
            top,
            captions: texts.ids.iter().cloned().zip(captions).collect(),
            image_features,
        })
    }
}
