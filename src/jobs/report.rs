//! `report`: rank Teddy folders as `rank` does and write an HTML sheet of queries and results,
//! with per-term explanations and the true matches where a `truth.csv` is present.
use super::rank::{RankOutput, Ranker};
use crate::data;
use crate::error::Result;
use crate::retrieval::Direction;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Rank the Teddy folders in `dirs` (result files beside `out_html`) and write an HTML sheet of
/// the first `n` queries per task; true matches are marked where a `truth.csv` is present.
/// Ranking is [`Ranker::run`], as for `rank`; images left out are said on the sheet too.
///
/// The sheet and its result files are never written over an input (the jobs' files or
/// `inputs`, the model's) and are replaced together, only when everything succeeded.
pub fn teddy_report(
    ranker: &Ranker,
    dirs: &[PathBuf],
    out_html: &Path,
    n: usize,
    inputs: &[&Path],
) -> Result<Vec<RankOutput>> {
    use crate::outputs::report::{write_html, Query, Row, Section};
    let out_dir = out_html
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let jobs = super::rank::teddy_jobs(dirs, out_dir)?;
    let outs: Vec<&Path> = std::iter::once(out_html)
        .chain(jobs.iter().map(|j| j.out.as_path()))
        .collect();
    let mut all = inputs.to_vec();
    all.extend(
        jobs.iter()
            .flat_map(|j| [j.queries.as_path(), &j.gallery, &j.images]),
    );
    for o in &outs {
        crate::fsutil::check_not_input(o, &all)?;
    }
    for j in &jobs {
        crate::outputs::csv::check_result_target(&j.out, j.direction)?;
    }
    let batch = crate::fsutil::OutputBatch::begin(&outs)?;
    let mut sections = Vec::new();
    let mut outputs = Vec::new();
    for job in jobs {
        let dir = job.queries.parent().unwrap_or(Path::new("."));
        let truth = read_truth(&dir.join("truth.csv"))?;
        let r = ranker.run_keeping(&job, true)?;
        let explain = |text_id: &str, image_id: &str| -> Vec<(String, f32)> {
            let (Some(cap), Some(feature)) =
                (r.captions.get(text_id), r.image_features.get(image_id))
            else {
                return Vec::new();
            };
            crate::explain::explain_pair(ranker.embedder, cap, feature.view())
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
            let (query, truth): (Query, std::collections::HashSet<String>) = match job.direction {
                Direction::TextToImage => {
                    (caption(qid), truth.get(qid).into_iter().cloned().collect())
                }
                Direction::ImageToText => (
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
                        let cell = match job.direction {
                            Direction::TextToImage => image(id),
                            Direction::ImageToText => caption(id),
                        };
                        (id.clone(), *s, cell)
                    })
                    .collect(),
                explanations: res
                    .iter()
                    .map(|(id, _)| match job.direction {
                        Direction::TextToImage => explain(qid, id),
                        Direction::ImageToText => explain(id, qid),
                    })
                    .collect(),
                truth,
            }
        });
        let title = match job.direction {
            Direction::TextToImage => format!("Task 1, text → image ({})", dir.display()),
            Direction::ImageToText => format!("Task 2, image → text ({})", dir.display()),
        };
        sections.push(Section {
            title,
            notes: r.failure_notes(),
            rows: rows.collect(),
        });
        outputs.push(r);
    }
    let c = &ranker.embedder.model().config;
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
        ranker.scorer.describe()
    );
    write_html(out_html, "tuwen 图文 result sheet", &summary, &sections)?;
    batch.commit()?;
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
