//! `split`: a seeded split of a pairs file by image into `train.csv` and `heldout.csv`, and the
//! held-out pairs laid out as Teddy 附件2/附件3 folders with their ground truth.
use crate::data;
use crate::error::{Error, Result};
use crate::fsutil;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct SplitOptions {
    pub pairs: PathBuf,
    /// Number of images held out (all their captions go with them).
    pub held_out: usize,
    pub seed: u64,
    /// Output folder: train.csv, heldout.csv (and 附件2/, 附件3/ with `teddy_layout`).
    pub out: PathBuf,
    /// The image folder, to lay the held-out pairs out as Teddy folders.
    pub teddy_layout: Option<PathBuf>,
}

#[derive(Debug)]
pub struct SplitOutput {
    pub held_out: usize,
    pub kept: usize,
    /// The 附件2 and 附件3 folders written, with `teddy_layout`.
    pub teddy: Option<(PathBuf, PathBuf)>,
    /// Warnings for the user (held-out images without a file).
    pub notes: Vec<String>,
}

impl SplitOptions {
    /// Validate the options before any work: at least one image held out (an empty held-out
    /// set evaluates nothing). That some remain for training needs the file's image count,
    /// checked by [`data::split_by_image`].
    pub fn check(&self) -> Result<()> {
        if self.held_out == 0 {
            return Err(Error::Param(
                "--held-out must be >= 1, got 0: an empty held-out set evaluates nothing".into(),
            ));
        }
        Ok(())
    }
}

/// Split, and write the output folder whole (staged, then swapped in): never over an input or a
/// folder tuwen did not write, and a failure (a full disk) leaves the previous one.
pub fn split(o: &SplitOptions) -> Result<SplitOutput> {
    o.check()?;
    let p = data::read_pairs(&o.pairs)?;
    let s = data::split_by_image(&p, o.held_out, o.seed, o.teddy_layout.as_deref())?;
    let inputs: Vec<&Path> = std::iter::once(o.pairs.as_path())
        .chain(o.teddy_layout.as_deref())
        .collect();
    let out = fsutil::OutputDir::begin(&o.out, &fsutil::SPLIT_DIR, &inputs)?;
    out.write(
        "train.csv",
        &data::pairs_csv(&o.out.join("train.csv"), &s.train)?,
    )?;
    out.write(
        "heldout.csv",
        &data::pairs_csv(&o.out.join("heldout.csv"), &s.held_out)?,
    )?;
    if let Some(images) = &o.teddy_layout {
        let staged = out.path();
        layout_teddy(
            &s.held_out,
            images,
            &staged.join("附件2"),
            &staged.join("附件3"),
        )?;
    }
    out.commit()?;
    Ok(SplitOutput {
        held_out: s.held_out_images,
        kept: s.images - s.held_out_images,
        teddy: o
            .teddy_layout
            .as_ref()
            .map(|_| (o.out.join("附件2"), o.out.join("附件3"))),
        notes: s.notes(),
    })
}

/// A CSV file's bytes: RFC 4180 quoting wherever a field needs it (ids with commas or quotes,
/// captions with newlines).
fn csv_bytes<'a, const N: usize>(
    header: [&str; N],
    rows: impl IntoIterator<Item = [&'a str; N]>,
) -> Result<Vec<u8>> {
    let err = |e: String| Error::Model(format!("writing CSV: {e}"));
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(header).map_err(|e| err(e.to_string()))?;
    for r in rows {
        w.write_record(r).map_err(|e| err(e.to_string()))?;
    }
    w.into_inner().map_err(|e| err(e.to_string()))
}

/// Lay out held-out pairs as Teddy 附件2 (task 1) and 附件3 (task 2) folders, with the ground
/// truth beside them (`truth.csv`: text_id,image_id). Text ids are [`data::pair_text_id`].
pub fn layout_teddy(pairs: &[data::Pair], images: &Path, dir2: &Path, dir3: &Path) -> Result<()> {
    let (ids, owner) = data::group_images(pairs);
    let tids: Vec<String> = (0..pairs.len()).map(data::pair_text_id).collect();
    let words = csv_bytes(
        ["text_id", "caption"],
        pairs
            .iter()
            .zip(&tids)
            .map(|(p, t)| [t.as_str(), p.caption.as_str()]),
    )?;
    let truth = csv_bytes(
        ["text_id", "image_id"],
        tids.iter()
            .zip(&owner)
            .map(|(t, &o)| [t.as_str(), ids[o].as_str()]),
    )?;
    let img_list = csv_bytes(["image_id"], ids.iter().map(|i| [i.as_str()]))?;
    // Each folder is staged whole and swapped in (fsutil::OutputDir): only a folder tuwen laid
    // out is replaced, and a failure (a full disk) leaves the previous one.
    let dirs = [
        (
            dir2,
            [("word_test.csv", &words), ("image_data.csv", &img_list)],
        ),
        (
            dir3,
            [("image_test.csv", &img_list), ("word_data.csv", &words)],
        ),
    ];
    for (d, files) in dirs {
        let out = fsutil::OutputDir::begin(d, &fsutil::TEDDY_DIR, &[images])?;
        fsutil::link_or_copy(images, &ids, &out.path().join("ImageData"))?;
        for (name, bytes) in files.into_iter().chain([("truth.csv", &truth)]) {
            out.write(name, bytes)?;
        }
        out.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teddy_layout_quotes_ids_that_need_it() {
        let dir = tempfile::tempdir().unwrap();
        let pairs = vec![
            data::Pair {
                image_id: "a,b.jpg".into(),
                caption: "一只\"狗\"".into(),
                row: 1,
            },
            data::Pair {
                image_id: "c.jpg".into(),
                caption: "两行\n字幕".into(),
                row: 2,
            },
        ];
        let (d2, d3) = (dir.path().join("2"), dir.path().join("3"));
        layout_teddy(&pairs, dir.path(), &d2, &d3).unwrap();
        let truth = data::read_table(&d2.join("truth.csv")).unwrap();
        assert_eq!(truth.rows[0][1], "a,b.jpg");
        let list = data::read_ids(&d3.join("image_test.csv"), "image_id", false).unwrap();
        assert_eq!(list.ids, ["a,b.jpg", "c.jpg"]);
        let words = data::read_ids(&d2.join("word_test.csv"), "text_id", true).unwrap();
        // The quoted newline stayed inside its field (captions are read whitespace-collapsed).
        assert_eq!(words.captions.unwrap()[1], "两行 字幕");
    }
}
