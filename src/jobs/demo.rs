//! `demo`: the main job on a generated data set — fit, lay out 附件2/附件3, rank, evaluate.
use super::{eval, fit, rank, split};
use crate::data::{self, synthetic};
use crate::embed::{Embedder, VectorFiles};
use crate::error::Result;
use crate::features::image::{BackboneKind, ExtractOptions, ImageFeatureConfig, Pooling};
use crate::features::text::TextFeatureConfig;
use crate::fsutil::{DirKind, Mark, OutputDir, MARKER, TEDDY_DIR};
use crate::model::MODEL_DIR;
use crate::projection::{CcaParams, ProjectionParams};
use crate::retrieval::metrics::EvalReport;
use crate::retrieval::ScoreOptions;
use std::path::{Path, PathBuf};

/// `demo --dir`: the generated data, the model, 附件2/附件3 and the result files, written as one
/// folder ([`OutputDir`]): only an absent or empty folder or a demo folder tuwen wrote (holding
/// nothing else) is replaced, never a user's folder.
pub const DEMO_DIR: DirKind = DirKind {
    what: "demo folder",
    entries: &[
        MARKER,
        "data",
        "model",
        "附件2",
        "附件3",
        "result1.csv",
        "result2.csv",
    ],
    mark: Mark::Check(is_demo_dir),
    nested: &[
        ("data", &DEMO_DATA),
        ("model", &MODEL_DIR),
        ("附件2", &TEDDY_DIR),
        ("附件3", &TEDDY_DIR),
    ],
};

/// The marker a demo folder gets.
const DEMO_MARK: DirKind = DirKind {
    what: "demo folder",
    entries: &[],
    mark: Mark::Marker("demo"),
    nested: &[],
};

/// A demo folder's `data/` ([`synthetic::generate`]); it is ours when its demo folder is.
const DEMO_DATA: DirKind = DirKind {
    what: "demo data folder",
    entries: &["ImageData", "train.csv", "val.csv"],
    mark: Mark::Check(in_a_demo_dir),
    nested: &[],
};

fn in_a_demo_dir(_: &Path) -> bool {
    // Only reached as a nested entry of a folder that [`is_demo_dir`] accepted.
    true
}

/// A demo folder: its marker, or (demo folders of tuwen before the marker) a tuwen model beside
/// 附件2 and 附件3 folders tuwen laid out.
fn is_demo_dir(d: &Path) -> bool {
    DEMO_MARK.is_marked(d)
        || (crate::model::is_model_dir(&d.join("model"))
            && TEDDY_DIR.is_marked(&d.join("附件2"))
            && TEDDY_DIR.is_marked(&d.join("附件3")))
}

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

/// Each step prints one line through `say`. Everything is written into a staging folder beside
/// `o.dir` and swapped in at the end ([`DEMO_DIR`]): a user's folder is refused before any work,
/// and a failed run leaves the previous demo folder whole.
pub fn demo(o: &DemoOptions, say: &mut dyn FnMut(String)) -> Result<DemoOutput> {
    let out = OutputDir::begin(&o.dir, &DEMO_DIR, &[])?;
    out.write(MARKER, &DEMO_MARK.marker_bytes().unwrap_or_default())?;
    let stage = out.path().to_path_buf();
    // Where a staged path will be once the folder is swapped in.
    let fin = |p: &Path| o.dir.join(p.strip_prefix(&stage).unwrap_or(p));
    let data = synthetic::generate(&stage.join("data"), o.train_images, o.val_images, 7)?;
    say(format!(
        "generated {} + {} images under {}",
        o.train_images,
        o.val_images,
        fin(&data.root).display()
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
    let (mut model, rep) = fit::fit(&opts)?;
    // The model records its training files where they will be, not in the staging folder.
    for f in &mut model.config.train.files {
        f.pairs = fin(Path::new(&f.pairs)).display().to_string();
        f.images = fin(Path::new(&f.images)).display().to_string();
    }
    let model_dir = o.dir.join("model");
    model.save(&stage.join("model"))?;
    say(format!(
        "fit: {} pairs, model in {}",
        rep.pairs_used,
        model_dir.display()
    ));
    let val = data::read_pairs(&data.val_pairs)?;
    let (d2, d3) = (stage.join("附件2"), stage.join("附件3"));
    split::layout_teddy(&val.pairs, &data.images, &d2, &d3)?;
    let emb = Embedder::new(model, &VectorFiles::default(), o.extract.clone())?;
    let ranker = rank::Ranker::new(&emb, emb.scorer(ScoreOptions::default())?);
    let mut results = Vec::new();
    for job in rank::teddy_jobs(&[d2, d3], &stage)? {
        results.push(fin(&ranker.run(&job)?.path));
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
    out.commit()?;
    Ok(DemoOutput {
        data_root: fin(&data.root),
        pairs_used: rep.pairs_used,
        model_dir,
        results,
        eval: e.report,
    })
}
