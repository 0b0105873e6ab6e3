//! `explain`: one caption and one image file, their score split term by term.
use crate::embed::{Embedder, Listed};
use crate::error::{Error, Result};
use crate::explain::{explain_scored, ScoredExplanation};
use crate::retrieval::{Direction, ScoreError, Scorer};
use std::path::Path;

/// The image's feature through the model's feature spec (from the cache where it is there), then
/// [`explain_scored`].
pub fn explain_files(
    emb: &Embedder,
    scorer: &Scorer,
    caption: &str,
    image_path: &Path,
    direction: Direction,
) -> Result<ScoredExplanation> {
    if !scorer.scores_single_queries() {
        return Err(ScoreError::NoSets(scorer.scoring()).into());
    }
    let name = image_path
        .file_name()
        .ok_or_else(|| Error::file(image_path, "not an image file"))?
        .to_string_lossy()
        .into_owned();
    let dir = match image_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // An unusable file is an error that names it and says why.
    let r = emb.images(
        &[name],
        dir,
        Listed {
            file: image_path,
            rows: None,
        },
    )?;
    explain_scored(emb, scorer, caption, r.raw.row(0), direction)
}
