//! `explain`: one caption and one image file, their score split term by term.
use crate::embed::{Embedder, Listed};
use crate::error::{Error, Result};
use crate::explain::{explain_scored, ScoredExplanation};
use crate::retrieval::{Direction, ScoreError, Scorer};
use std::path::Path;

/// Refuse an empty or blank caption: it has no term to explain, and its "score" would be the
/// centring constant alone.
pub fn check_caption(caption: &str) -> Result<()> {
    if caption.trim().is_empty() {
        return Err(Error::Param(
            "--caption is empty: give the caption (文本) to explain".into(),
        ));
    }
    Ok(())
}

/// The image's feature through the model's feature spec (from the cache where it is there), then
/// [`explain_scored`]. An empty caption is refused ([`check_caption`]).
pub fn explain_files(
    emb: &Embedder,
    scorer: &Scorer,
    caption: &str,
    image_path: &Path,
    direction: Direction,
) -> Result<ScoredExplanation> {
    check_caption(caption)?;
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
