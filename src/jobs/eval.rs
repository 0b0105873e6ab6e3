//! `eval`: recall of held-out pairs, every caption against every usable image of the set.
use super::fit::load_pairs_features;
use crate::data::Skip;
use crate::embed::Embedder;
use crate::error::Result;
use crate::features::image::ExtractStats;
use crate::features::text::OovReport;
use crate::retrieval::{metrics, Direction, Scorer};
use ndarray::{Array2, ArrayView2};
use std::path::Path;
use std::time::Instant;

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
    emb: &Embedder,
    scorer: &Scorer,
    pairs: &Path,
    images: &Path,
) -> Result<EvalOutput> {
    let t0 = Instant::now();
    let pf = load_pairs_features(
        &[(pairs.to_path_buf(), images.to_path_buf())],
        emb.spec(),
        emb.extract_options(),
    )?;
    let (txt, oov) = emb.texts(&pf.captions);
    let img = emb.project_images(pf.images.view());
    let ids = pf.image_keys.into_iter().map(|(_, id)| id).collect();
    let report = evaluate_projected(scorer, txt.view(), img, ids, &pf.owner)?;
    Ok(EvalOutput {
        report,
        scoring: scorer.describe(),
        skipped: pf.skipped,
        oov,
        extract: pf.extract,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Recall of projected captions × images (`owner[t]` = row of caption t's image in `images`),
/// through the scorer; the images are a gallery like any other (ties break by `image_ids`).
pub fn evaluate_projected(
    scorer: &Scorer,
    texts: ArrayView2<f32>,
    images: Array2<f32>,
    image_ids: Vec<String>,
    owner: &[usize],
) -> Result<metrics::EvalReport> {
    let g = scorer.prepare(Direction::TextToImage, image_ids, images)?;
    let mut index_of = vec![0; g.len()];
    for j in 0..g.len() {
        index_of[g.source_row(j)] = j;
    }
    let owner: Vec<usize> = owner.iter().map(|&o| index_of[o]).collect();
    let (t2i, i2t) = scorer.eval_matrices(texts, g.vectors())?;
    let a = metrics::evaluate(t2i.view(), &owner);
    let b = metrics::evaluate(i2t.view(), &owner);
    Ok(metrics::EvalReport {
        t2i: a.t2i,
        i2t: b.i2t,
        ..a
    })
}
