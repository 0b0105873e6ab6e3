//! `export`: embed the items of a pairs file, an image id list or a caption list through the
//! model ([`crate::embed::Embedder`]) and write them ([`crate::outputs::export`]).
use crate::data::{self, Skip};
use crate::embed::{Embedder, Listed};
use crate::error::{Error, Result};
use crate::features::image::ExtractStats;
use crate::features::text::OovReport;
use crate::outputs::export::write;
pub use crate::outputs::export::{Embeddings, Format, Kind};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Which items to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Images,
    Texts,
    Both,
}

/// Where the items come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A pairs CSV (`image_id,caption`): its distinct images and all its captions. Captions get
    /// the ids `tuwen split --teddy-layout` gives them in 附件2/附件3 (`Word-<1000000001 + n>`,
    /// n = the caption's position among the file's non-empty captions). A caption whose image
    /// cannot be read is still exported (its vector does not depend on the image).
    Pairs(PathBuf),
    /// An image id list (`image_id`, e.g. Teddy `image_data.csv`): images only.
    Ids(PathBuf),
    /// A caption list (`text_id,caption`, e.g. Teddy `word_test.csv`): captions only.
    Captions(PathBuf),
}

impl Source {
    pub fn path(&self) -> &Path {
        match self {
            Source::Pairs(p) | Source::Ids(p) | Source::Captions(p) => p,
        }
    }
}

/// What to export, and where.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub source: Source,
    /// Image folder (needed whenever images are exported).
    pub images: Option<PathBuf>,
    /// Default: what the source holds (pairs: both).
    pub what: Option<What>,
    pub raw: bool,
    pub out: PathBuf,
    pub format: Format,
}

#[derive(Debug, serde::Serialize)]
pub struct ExportOutput {
    /// Files written.
    pub files: Vec<PathBuf>,
    pub images: usize,
    pub texts: usize,
    pub dim: usize,
    /// Images that could not be read: not in the output.
    pub failed_images: Vec<Skip>,
    /// Empty captions: not in the output.
    pub empty_captions: Vec<Skip>,
    pub oov: Option<OovReport>,
    pub extract: Option<ExtractStats>,
    pub seconds: f64,
}

impl ExportOutput {
    /// What a user must be told about items left out (empty when none was).
    pub fn notes(&self) -> Vec<String> {
        let list = data::list_skips;
        let mut notes = Vec::new();
        if !self.failed_images.is_empty() {
            notes.push(format!(
                "{} images could not be read and are not exported: {}",
                self.failed_images.len(),
                list(&self.failed_images)
            ));
        }
        if !self.empty_captions.is_empty() {
            notes.push(format!(
                "{} captions are empty and are not exported: {}",
                self.empty_captions.len(),
                list(&self.empty_captions)
            ));
        }
        notes
    }
}

use crate::data::pair_text_id;

/// Embed the items of `opts.source` (see [`embed`]) and write them (see [`write`]).
///
/// No output file may be an input: the source, the image folder, or `inputs` (the model's files),
/// nor a file tuwen did not write ([`crate::outputs::export::check_targets`]); both are checked
/// before any work.
pub fn export(
    emb: &Embedder,
    opts: &ExportOptions,
    inputs: &[&Path],
) -> Result<(Vec<Embeddings>, ExportOutput)> {
    let t0 = Instant::now();
    let mut all = inputs.to_vec();
    all.push(opts.source.path());
    all.extend(opts.images.as_deref());
    for o in crate::outputs::export::output_files(&opts.out, opts.format) {
        crate::fsutil::check_not_input(&o, &all)?;
    }
    crate::outputs::export::check_targets(&opts.out, opts.format)?;
    let (sets, mut out) = embed(emb, opts)?;
    let model = emb.model();
    let meta = serde_json::json!({
        "source": opts.source.path().display().to_string(),
        "dim": model.projection.dim(),
        "image_features": model.config.image.cache_key(),
        "image_norm": model.config.projection.image_norm,
        "vectors": "L2-normalised projections (dot product = cosine)",
        "raw_image": "pooled CNN features before the image normalisation",
        "raw_text": "caption features (word-vector mean(s), then the bag of terms) before centring",
    });
    out.files = write(&opts.out, opts.format, &sets, &meta.to_string())?;
    out.seconds = t0.elapsed().as_secs_f64();
    Ok((sets, out))
}

/// The projected (and with `opts.raw` the raw) features of the source's images and/or captions,
/// images first. Nothing is written.
pub fn embed(emb: &Embedder, opts: &ExportOptions) -> Result<(Vec<Embeddings>, ExportOutput)> {
    let t0 = Instant::now();
    let src = opts.source.path();
    let what = match (&opts.source, opts.what) {
        (Source::Pairs(_), w) => w.unwrap_or(What::Both),
        (Source::Ids(_), None | Some(What::Images)) => What::Images,
        (Source::Captions(_), None | Some(What::Texts)) => What::Texts,
        (Source::Ids(_), Some(_)) => {
            return Err(Error::Param(
                "an image id list holds no captions: use --what images (or --pairs)".into(),
            ))
        }
        (Source::Captions(_), Some(_)) => {
            return Err(Error::Param(
                "a caption list holds no images: use --what texts (or --pairs)".into(),
            ))
        }
    };
    let want_images = what != What::Texts;
    let want_texts = what != What::Images;
    // (image ids with their CSV rows, captions with (id, row)).
    let mut image_ids: Vec<(String, usize)> = Vec::new();
    let mut captions: Vec<(String, String)> = Vec::new();
    let mut empty_captions = Vec::new();
    match &opts.source {
        Source::Pairs(csv) => {
            let p = data::read_nonempty_pairs(csv)?;
            let mut seen = std::collections::HashSet::new();
            for (n, pair) in p.pairs.iter().enumerate() {
                if seen.insert(pair.image_id.as_str()) {
                    image_ids.push((pair.image_id.clone(), pair.row));
                }
                captions.push((pair_text_id(n), pair.caption.clone()));
            }
            // read_pairs skips exactly the empty captions.
            empty_captions = p.skipped;
        }
        Source::Ids(csv) => {
            let l = data::read_ids(csv, "image_id", false)?;
            image_ids = l
                .ids
                .into_iter()
                .enumerate()
                .map(|(i, id)| (id, i + 1))
                .collect();
        }
        Source::Captions(csv) => {
            let l = data::read_ids(csv, "text_id", true)?;
            let caps = l.captions.unwrap_or_default();
            for (i, (id, c)) in l.ids.into_iter().zip(caps).enumerate() {
                if c.is_empty() {
                    empty_captions.push(Skip {
                        file: csv.display().to_string(),
                        row: i + 1,
                        id,
                        reason: crate::data::SkipReason::EmptyCaption,
                    });
                } else {
                    captions.push((id, c));
                }
            }
        }
    }
    if !want_texts {
        empty_captions.clear();
    }
    let mut sets = Vec::new();
    let mut failed_images = Vec::new();
    let mut extract = None;
    if want_images {
        let dir = opts
            .images
            .as_deref()
            .ok_or_else(|| Error::Param("exporting images needs their folder (--images)".into()))?;
        if image_ids.is_empty() {
            return Err(Error::file(src, "no image ids: nothing to export"));
        }
        let ids: Vec<String> = image_ids.iter().map(|(id, _)| id.clone()).collect();
        let rows: Vec<usize> = image_ids.iter().map(|&(_, r)| r).collect();
        let r = emb.images(
            &ids,
            dir,
            Listed {
                file: src,
                rows: Some(&rows),
            },
        )?;
        sets.push(Embeddings {
            kind: Kind::Image,
            ids: r.ids,
            vectors: r.projected,
            raw: opts.raw.then_some(r.raw),
        });
        failed_images = r.skipped;
        extract = Some(r.stats);
    }
    let mut oov = None;
    if want_texts {
        if captions.is_empty() {
            return Err(Error::file(
                src,
                format!(
                    "no non-empty caption: nothing to export ({} empty)",
                    empty_captions.len()
                ),
            ));
        }
        let (ids, texts): (Vec<String>, Vec<String>) = captions.into_iter().unzip();
        let (feats, rep) = emb.text_features(&texts);
        sets.push(Embeddings {
            kind: Kind::Text,
            ids,
            vectors: emb.project_texts(feats.view()),
            raw: opts.raw.then_some(feats),
        });
        oov = Some(rep);
    }
    let count = |k: Kind| {
        sets.iter()
            .filter(|s| s.kind == k)
            .map(|s| s.ids.len())
            .sum()
    };
    let out = ExportOutput {
        files: Vec::new(),
        images: count(Kind::Image),
        texts: count(Kind::Text),
        dim: emb.model().projection.dim(),
        failed_images,
        empty_captions,
        oov,
        extract,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok((sets, out))
}
