//! `demo`: the main job on a generated data set — fit, lay out 附件2/附件3, rank, evaluate.
use super::{eval, fit, rank, split};
use crate::data::{self, synthetic};
use crate::embed::{Embedder, VectorFiles};
use crate::error::Result;
use crate::features::image::{BackboneKind, ExtractOptions, ImageFeatureConfig, Pooling};
use crate::features::text::TextFeatureConfig;
use crate::projection::{CcaParams, ProjectionParams};
use crate::retrieval::metrics::EvalReport;
use crate::retrieval::ScoreOptions;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub dir: PathBuf,
    pub train_images: usize,
    pub val_images: usize,
    pub backbone: BackboneKind,
    pub extract: ExtractOptions,
}

#[derive(Debug)]
pub struct DemoOutput {
    pub data_root: PathBuf,
    pub pairs_used: usize,
    pub model_dir: PathBuf,
    pub results: Vec<PathBuf>,
    pub eval: EvalReport,
}

/// Each step prints one line through `say`.
pub fn demo(o: &DemoOptions, say: &mut dyn FnMut(String)) -> Result<DemoOutput> {
    let data = synthetic::generate(&o.dir.join("data"), o.train_images, o.val_images, 7)?;
    say(format!(
        "generated {} + {} images under {}",
        o.train_images,
        o.val_images,
        data.root.display()
    ));
    let opts = fit::FitOptions {
        sets: vec![(data.train_pairs.clone(), data.images.clone())],
        image: ImageFeatureConfig::single(o.backbone, Pooling::Avg, false),
        text: TextFeatureConfig::default(),
        projection: ProjectionParams {
            pca_image: 64,
            cca: CcaParams::new(16).reg(0.3, 0.1),
            ..Default::default()
        },
        extract: o.extract.clone(),
        vectors: None,
        vectors2: None,
        extra_pairs: Vec::new(),
    };
    let (model, rep) = fit::fit(&opts)?;
    let model_dir = o.dir.join("model");
    model.save(&model_dir)?;
    say(format!(
        "fit: {} pairs, model in {}",
        rep.pairs_used,
        model_dir.display()
    ));
    let val = data::read_pairs(&data.val_pairs)?;
    let (d2, d3) = (o.dir.join("附件2"), o.dir.join("附件3"));
    split::layout_teddy(&val.pairs, &data.images, &d2, &d3)?;
    let emb = Embedder::new(model, &VectorFiles::default(), o.extract.clone())?;
    let ranker = rank::Ranker::new(&emb, emb.scorer(ScoreOptions::default())?);
    let mut results = Vec::new();
    for job in rank::teddy_jobs(&[d2, d3], &o.dir)? {
        results.push(ranker.run(&job)?.path);
    }
    say(format!(
        "rank: {}",
        results
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    ));
    let e = eval::evaluate(&emb, &ranker.scorer, &data.val_pairs, &data.images)?;
    Ok(DemoOutput {
        data_root: data.root,
        pairs_used: rep.pairs_used,
        model_dir,
        results,
        eval: e.report,
    })
}
