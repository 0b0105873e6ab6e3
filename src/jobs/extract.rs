//! `extract`: compute (or find in the cache) the image features of an id list, optionally one
//! shard of it, so several machines can share the work.
use crate::data::{self, Skip};
use crate::error::Result;
use crate::features::image::{
    self, ExtractOptions, ExtractStats, FeatureSpec, ImageFeatureConfig, Shard,
};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ExtractJob {
    /// Pairs CSV (image_id,caption) or id list (image_id).
    pub list: PathBuf,
    pub images: PathBuf,
    pub shard: Option<Shard>,
    pub config: ImageFeatureConfig,
    pub extract: ExtractOptions,
}

#[derive(Debug)]
pub struct ExtractOutput {
    pub spec: FeatureSpec,
    /// Ids of this run (of the shard, with one).
    pub ids: usize,
    pub stats: Option<ExtractStats>,
    pub skipped: Vec<Skip>,
    /// The error to stop with when no image could be used (after the stats and skips are said).
    pub nothing_usable: Option<crate::Error>,
}

/// Extract the distinct ids of `job.list` (each checked as every command checks image ids).
/// A shard holding no id is not an error (`stats` is `None`); no usable image at all is
/// returned as [`ExtractOutput::nothing_usable`], so the caller can report the skips first.
pub fn extract(job: &ExtractJob) -> Result<ExtractOutput> {
    job.extract.check()?;
    let (ids, rows) = data::read_image_ids(&job.list)?;
    let spec = job.config.resolve(job.extract.weights.as_deref())?;
    let (ids, rows): (Vec<String>, Vec<usize>) = match &job.shard {
        None => (ids, rows),
        Some(sh) => ids
            .into_iter()
            .zip(rows)
            .filter(|(id, _)| sh.contains(id))
            .unzip(),
    };
    if ids.is_empty() {
        return Ok(ExtractOutput {
            spec,
            ids: 0,
            stats: None,
            skipped: Vec::new(),
            nothing_usable: None,
        });
    }
    let mut f = image::extract(&ids, &job.images, &spec, &job.extract)?;
    f.relabel_skips(&job.list, Some(&rows));
    let nothing_usable = (f.stats.skipped == f.stats.requested).then(|| {
        let what = format!("images of {}", job.list.display());
        f.nothing_usable(&job.images, &what)
    });
    Ok(ExtractOutput {
        spec,
        ids: ids.len(),
        stats: Some(f.stats),
        skipped: f.skipped,
        nothing_usable,
    })
}
