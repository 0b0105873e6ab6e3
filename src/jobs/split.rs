//! `split`: a seeded split of a pairs file by image into `train.csv` and `heldout.csv`, and the
//! held-out pairs laid out as Teddy 附件2/附件3 folders with their ground truth.
use crate::data;
use crate::error::{Error, Result};
use std::collections::HashSet;
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
}

pub fn split(o: &SplitOptions) -> Result<SplitOutput> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let p = data::read_pairs(&o.pairs)?;
    let (ids, owner) = data::group_images(&p.pairs);
    if o.held_out >= ids.len() {
        return Err(Error::file(
            &o.pairs,
            format!(
                "--held-out {} must be below the {} images of the file",
                o.held_out,
                ids.len()
            ),
        ));
    }
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(o.seed));
    let held: HashSet<usize> = order[..o.held_out].iter().copied().collect();
    let (mut train, mut heldout) = (Vec::new(), Vec::new());
    for (pair, &i) in p.pairs.iter().zip(&owner) {
        if held.contains(&i) {
            heldout.push(pair.clone());
        } else {
            train.push(pair.clone());
        }
    }
    std::fs::create_dir_all(&o.out).map_err(|e| Error::io(&o.out, e))?;
    for (name, pairs) in [("train.csv", &train), ("heldout.csv", &heldout)] {
        let rows = pairs
            .iter()
            .map(|p| [p.image_id.as_str(), p.caption.as_str()]);
        crate::fsutil::write_atomic(
            &o.out.join(name),
            &csv_bytes(["image_id", "caption"], rows)?,
        )?;
    }
    let teddy = match &o.teddy_layout {
        None => None,
        Some(images) => {
            let (d2, d3) = (o.out.join("附件2"), o.out.join("附件3"));
            layout_teddy(&heldout, images, &d2, &d3)?;
            Some((d2, d3))
        }
    };
    Ok(SplitOutput {
        held_out: o.held_out,
        kept: ids.len() - o.held_out,
        teddy,
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
    for d in [dir2, dir3] {
        let img_dir = d.join("ImageData");
        std::fs::create_dir_all(&img_dir).map_err(|e| Error::io(&img_dir, e))?;
        for id in &ids {
            let (src, dst) = (images.join(id), img_dir.join(id));
            if src.exists() && !dst.exists() {
                std::fs::hard_link(&src, &dst)
                    .or_else(|_| std::fs::copy(&src, &dst).map(|_| ()))
                    .map_err(|e| Error::io(&dst, e))?;
            }
        }
    }
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
    let files = [
        (dir2.join("word_test.csv"), &words),
        (dir2.join("image_data.csv"), &img_list),
        (dir2.join("truth.csv"), &truth),
        (dir3.join("image_test.csv"), &img_list),
        (dir3.join("word_data.csv"), &words),
        (dir3.join("truth.csv"), &truth),
    ];
    for (p, bytes) in files {
        crate::fsutil::write_atomic(&p, bytes)?;
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
