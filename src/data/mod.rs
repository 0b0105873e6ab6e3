//! Input tables: training pairs (附件1), and the Teddy query/gallery files (附件2, 附件3).
//!
//! Every reader names the file and the 1-based data row (header = row 0) in its errors, accepts a
//! UTF-8 BOM, decodes UTF-16 (Excel's "Unicode text"; by its BOM, or by its zero bytes when it has
//! none), and decodes GBK files (common for Chinese CSVs saved by Excel) when they are not UTF-8.
pub mod synthetic;

use crate::error::{Error, Result};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// How a file's bytes were decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Gbk,
    Utf16Le,
    Utf16Be,
}

/// Raw table: header names and rows of strings, with the encoding that was detected.
#[derive(Debug)]
pub struct Table {
    pub path: PathBuf,
    pub encoding: Encoding,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Read a CSV file, detecting UTF-8 (with or without BOM) or GBK.
pub fn read_table(path: &Path) -> Result<Table> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (text, encoding) = decode_text(path, &bytes)?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| Error::file(path, format!("cannot read the CSV header: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| Error::row(path, i + 1, format!("malformed CSV: {e}")))?;
        rows.push(rec.iter().map(|s| s.to_string()).collect());
    }
    Ok(Table {
        path: path.to_path_buf(),
        encoding,
        headers,
        rows,
    })
}

/// UTF-16 by its BOM, or (without one) by zero bytes, which no UTF-8 or GBK text holds: ASCII
/// characters in UTF-16 have a zero high byte, so zeros at odd positions mean little-endian.
fn utf16_of(bytes: &[u8]) -> Option<(Encoding, &[u8])> {
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return Some((Encoding::Utf16Le, rest));
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return Some((Encoding::Utf16Be, rest));
    }
    let zeros = |parity: usize| {
        bytes
            .iter()
            .skip(parity)
            .step_by(2)
            .filter(|&&b| b == 0)
            .count()
    };
    let (even, odd) = (zeros(0), zeros(1));
    if even + odd == 0 {
        return None;
    }
    Some((
        if odd >= even {
            Encoding::Utf16Le
        } else {
            Encoding::Utf16Be
        },
        bytes,
    ))
}

fn decode_text(path: &Path, bytes: &[u8]) -> Result<(String, Encoding)> {
    if let Some((enc, body)) = utf16_of(bytes) {
        let (name, coding) = match enc {
            Encoding::Utf16Be => ("UTF-16BE", encoding_rs::UTF_16BE),
            _ => ("UTF-16LE", encoding_rs::UTF_16LE),
        };
        let (text, had_errors) = coding.decode_without_bom_handling(body);
        if had_errors || text.contains('\0') {
            return Err(Error::file(
                path,
                format!(
                    "holds zero bytes, as no UTF-8 text does, but is not valid {name} text \
                     either; re-save the file as UTF-8 CSV"
                ),
            ));
        }
        return Ok((text.into_owned(), enc));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok((s.to_string(), Encoding::Utf8)),
        Err(utf8_err) => {
            let (text, _, had_errors) = encoding_rs::GBK.decode(bytes);
            if had_errors {
                Err(Error::file(
                    path,
                    format!("neither UTF-8 ({utf8_err}) nor GBK; re-save the file as UTF-8"),
                ))
            } else {
                Ok((text.into_owned(), Encoding::Gbk))
            }
        }
    }
}

impl Table {
    /// Index of a required column, or an error listing what the file has.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.headers.iter().position(|h| h == name).ok_or_else(|| {
            Error::file(
                &self.path,
                format!(
                    "missing column `{name}` (columns found: {:?})",
                    self.headers
                ),
            )
        })
    }
}

/// One training or evaluation pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub image_id: String,
    pub caption: String,
    /// 1-based data row in the source file.
    pub row: usize,
}

/// A row that was not used, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Skip {
    pub file: String,
    pub row: usize,
    pub id: String,
    #[serde(serialize_with = "display")]
    pub reason: SkipReason,
}

fn display<S: serde::Serializer>(r: &SkipReason, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(r)
}

/// The first ten skips as `id (reason)`, comma-separated, and how many more: for notes.
pub fn list_skips(s: &[Skip]) -> String {
    let shown: Vec<String> = s
        .iter()
        .take(10)
        .map(|x| format!("{} ({})", x.id, x.reason))
        .collect();
    let more = s.len().saturating_sub(10);
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    shown.join(", ") + &tail
}

/// Why a row or file was not used: one kind per cause (counted by [`SkipReason::kind`]), with
/// its details for the user.
#[derive(Debug, Clone, PartialEq)]
pub enum SkipReason {
    /// An image file that could not be used (`missing`: there is no such file).
    Image { missing: bool, message: String },
    /// A pair (or list row) whose image could not be used.
    PairImage { missing: bool, message: String },
    /// An empty training or gallery caption (left out).
    EmptyCaption,
    /// A training caption none of whose terms the model knows.
    NoKnownToken(String),
    /// An empty query caption: answered, but its results are arbitrary.
    EmptyQueryCaption,
    /// An empty caption of a caption gallery: never returned.
    EmptyGalleryCaption,
    /// A held-out image without a file in the image folder.
    HeldOutMissing(PathBuf),
    /// An extra training pair (`--extra-pairs`) whose image is not a training image.
    NotTrainingImage,
}

impl SkipReason {
    /// The cause alone, for counts: "file not found", "caption has no known token", …
    pub fn kind(&self) -> &'static str {
        match self {
            SkipReason::Image { missing: true, .. } => "file not found",
            SkipReason::Image { .. } => "image unreadable",
            SkipReason::PairImage { missing: true, .. } => "image unusable (not found)",
            SkipReason::PairImage { .. } => "image unusable",
            SkipReason::EmptyCaption
            | SkipReason::EmptyQueryCaption
            | SkipReason::EmptyGalleryCaption => "empty caption",
            SkipReason::NoKnownToken(_) => "caption has no known token",
            SkipReason::HeldOutMissing(_) => "held-out image has no file",
            SkipReason::NotTrainingImage => "extra pair's image is not a training image",
        }
    }

    /// True for an image (or a pair's image) with no file.
    pub fn is_missing(&self) -> bool {
        matches!(
            self,
            SkipReason::Image { missing: true, .. } | SkipReason::PairImage { missing: true, .. }
        )
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Image { message, .. } => f.write_str(message),
            SkipReason::PairImage { message, .. } => write!(f, "image unusable: {message}"),
            SkipReason::EmptyCaption => f.write_str("empty caption"),
            SkipReason::NoKnownToken(c) => write!(f, "caption has no known token: {c}"),
            SkipReason::EmptyQueryCaption => {
                f.write_str("empty caption: its results are arbitrary")
            }
            SkipReason::EmptyGalleryCaption => {
                f.write_str("empty caption: left out of the gallery")
            }
            SkipReason::HeldOutMissing(d) => {
                write!(f, "held-out image has no file in {}", d.display())
            }
            SkipReason::NotTrainingImage => {
                f.write_str("extra pair's image is not an image of the training pairs")
            }
        }
    }
}

#[derive(Debug)]
pub struct Pairs {
    pub path: PathBuf,
    pub encoding: Encoding,
    pub pairs: Vec<Pair>,
    pub skipped: Vec<Skip>,
    /// Rows repeating an earlier (image_id, caption) row (kept).
    pub duplicates: usize,
}

/// Read an `image_id,caption` file (附件1 `ImageWordData.csv`, Flickr8k-CN splits).
/// Several captions per image are allowed, identical ones too (Flickr8k-CN has such rows, and
/// the standard 5-captions-per-image protocol keeps them); they are counted in `duplicates`.
/// An empty caption is skipped and reported.
pub fn read_pairs(path: &Path) -> Result<Pairs> {
    let t = read_table(path)?;
    let (ci, cc) = (t.column("image_id")?, t.column("caption")?);
    let mut seen = HashSet::new();
    let mut pairs = Vec::with_capacity(t.rows.len());
    let mut skipped = Vec::new();
    let mut duplicates = 0;
    for (i, r) in t.rows.iter().enumerate() {
        let row = i + 1;
        let image_id = r[ci].trim().to_string();
        let caption = clean_caption(&r[cc]);
        let skip = |reason: SkipReason| Skip {
            file: path.display().to_string(),
            row,
            id: image_id.clone(),
            reason,
        };
        if image_id.is_empty() {
            return Err(Error::row(path, row, "empty image_id"));
        }
        check_image_id(path, row, &image_id)?;
        if caption.is_empty() {
            skipped.push(skip(SkipReason::EmptyCaption));
            continue;
        }
        if !seen.insert((image_id.clone(), caption.clone())) {
            duplicates += 1;
        }
        pairs.push(Pair {
            image_id,
            caption,
            row,
        });
    }
    Ok(Pairs {
        path: path.to_path_buf(),
        encoding: t.encoding,
        pairs,
        skipped,
        duplicates,
    })
}

/// An image id names a file inside the image folder: a relative path of plain names only (no
/// `..`, no root), so no id reads or writes outside that folder.
pub fn check_image_id(path: &Path, row: usize, id: &str) -> Result<()> {
    use std::path::Component;
    let ok = Path::new(id)
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(Error::row(
            path,
            row,
            format!("image id `{id}` must be a file name inside the image folder (no `..`, no leading `/`)"),
        ))
    }
}

/// Quoted newlines and surrounding blanks carry no meaning in a caption.
pub fn clean_caption(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An `id[,caption]` list (Teddy `word_test.csv`, `word_data.csv`, `image_data.csv`, `image_test.csv`).
#[derive(Debug)]
pub struct IdList {
    pub path: PathBuf,
    pub ids: Vec<String>,
    /// Captions, when the file has a caption column.
    pub captions: Option<Vec<String>>,
}

/// Read a Teddy id list. `id_col` is `text_id` or `image_id`; duplicate ids are an error, since a
/// result file keyed by id could not tell them apart.
pub fn read_ids(path: &Path, id_col: &str, with_caption: bool) -> Result<IdList> {
    let t = read_table(path)?;
    let ci = t.column(id_col)?;
    let cc = if with_caption {
        Some(t.column("caption")?)
    } else {
        None
    };
    let mut seen = HashSet::new();
    let mut ids = Vec::with_capacity(t.rows.len());
    let mut caps = Vec::new();
    for (i, r) in t.rows.iter().enumerate() {
        let id = r[ci].trim().to_string();
        if id.is_empty() {
            return Err(Error::row(path, i + 1, format!("empty {id_col}")));
        }
        if id_col == "image_id" {
            check_image_id(path, i + 1, &id)?;
        }
        if !seen.insert(id.clone()) {
            return Err(Error::row(
                path,
                i + 1,
                format!("duplicate {id_col} `{id}`"),
            ));
        }
        ids.push(id);
        if let Some(cc) = cc {
            caps.push(clean_caption(&r[cc]));
        }
    }
    Ok(IdList {
        path: path.to_path_buf(),
        ids,
        captions: cc.map(|_| caps),
    })
}

/// [`read_pairs`] of a file that must hold at least one usable pair (training, evaluation,
/// export): none is an error saying how many rows were skipped.
pub fn read_nonempty_pairs(path: &Path) -> Result<Pairs> {
    let p = read_pairs(path)?;
    if p.pairs.is_empty() {
        return Err(Error::file(
            path,
            format!(
                "no usable pair (image_id,caption) in the file ({} rows skipped)",
                p.skipped.len()
            ),
        ));
    }
    Ok(p)
}

/// The distinct image ids of a pairs file or id list (column `image_id`), in first-appearance
/// order, with the 1-based row each first appears on; each id checked as [`check_image_id`]
/// (inside the image folder). Empty ids are skipped; no id at all is an error.
pub fn read_image_ids(path: &Path) -> Result<(Vec<String>, Vec<usize>)> {
    let t = read_table(path)?;
    let col = t.column("image_id")?;
    let mut seen = HashSet::new();
    let (mut ids, mut rows) = (Vec::new(), Vec::new());
    for (i, r) in t.rows.iter().enumerate() {
        let id = r[col].trim();
        if id.is_empty() || seen.contains(id) {
            continue;
        }
        check_image_id(path, i + 1, id)?;
        seen.insert(id.to_string());
        ids.push(id.to_string());
        rows.push(i + 1);
    }
    if ids.is_empty() {
        return Err(Error::file(path, "no image ids (column image_id is empty)"));
    }
    Ok((ids, rows))
}

/// The caption id of the `n`-th (0-based) pair of a pairs file laid out as 附件2/附件3
/// (`split --teddy-layout`); `export --pairs` and `serve --captions` name captions the same way.
pub fn pair_text_id(n: usize) -> String {
    format!("Word-{:010}", 1_000_000_001u64 + n as u64)
}

/// Unique image ids in first-appearance order, and for each pair the index of its image.
pub fn group_images(pairs: &[Pair]) -> (Vec<String>, Vec<usize>) {
    let mut index = std::collections::HashMap::new();
    let mut images = Vec::new();
    let owners = pairs
        .iter()
        .map(|p| {
            *index.entry(p.image_id.clone()).or_insert_with(|| {
                images.push(p.image_id.clone());
                images.len() - 1
            })
        })
        .collect();
    (images, owners)
}

/// A pairs file split by image ([`split_by_image`]): every caption of an image goes to the same
/// side.
#[derive(Debug)]
pub struct Split {
    /// Source pairs file (for messages).
    pub path: PathBuf,
    pub train: Vec<Pair>,
    pub held_out: Vec<Pair>,
    /// Distinct images: all, and held out.
    pub images: usize,
    pub held_out_images: usize,
    /// Held-out images without a file in the image folder (when one was given), one per image
    /// with the row it first appears on: a Teddy layout would list them with no image.
    pub missing: Vec<Skip>,
}

/// Split pairs by image: `held_out` images drawn with `seed` (a seeded shuffle of the images in
/// first-appearance order, the first `held_out` held out). With `images`, held-out ids that are
/// not a regular file there are listed in [`Split::missing`].
pub fn split_by_image(
    p: &Pairs,
    held_out: usize,
    seed: u64,
    images: Option<&Path>,
) -> Result<Split> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let (ids, owner) = group_images(&p.pairs);
    if held_out == 0 || held_out >= ids.len() {
        return Err(Error::file(
            &p.path,
            format!(
                "--held-out {held_out} must be at least 1 and below the file's {} images (some \
                 must remain for training)",
                ids.len()
            ),
        ));
    }
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let held: HashSet<usize> = order[..held_out].iter().copied().collect();
    let (mut train, mut held_pairs, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    let mut checked = HashSet::new();
    for (pair, &o) in p.pairs.iter().zip(&owner) {
        if !held.contains(&o) {
            train.push(pair.clone());
            continue;
        }
        held_pairs.push(pair.clone());
        if let Some(dir) = images {
            // Following links, as reading the image would; a folder or FIFO is no image.
            let is_file = std::fs::metadata(dir.join(&pair.image_id)).is_ok_and(|m| m.is_file());
            if checked.insert(o) && !is_file {
                missing.push(Skip {
                    file: p.path.display().to_string(),
                    row: pair.row,
                    id: pair.image_id.clone(),
                    reason: SkipReason::HeldOutMissing(dir.to_path_buf()),
                });
            }
        }
    }
    Ok(Split {
        path: p.path.clone(),
        train,
        held_out: held_pairs,
        images: ids.len(),
        held_out_images: held_out,
        missing,
    })
}

impl Split {
    /// Warnings for the user: held-out images without a file (named, the first few).
    pub fn notes(&self) -> Vec<String> {
        if self.missing.is_empty() {
            return Vec::new();
        }
        let shown: Vec<String> = self
            .missing
            .iter()
            .take(5)
            .map(|s| format!("`{}` (row {})", s.id, s.row))
            .collect();
        let more = self.missing.len().saturating_sub(shown.len());
        vec![format!(
            "warning: {} of the {} held-out images of {} have no file ({}): {}{}",
            self.missing.len(),
            self.held_out_images,
            self.path.display(),
            self.missing[0].reason,
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )]
    }
}

/// An `image_id,caption` CSV of pairs (as `split` writes train.csv and heldout.csv), with `path`
/// (the file it will be written to) in any error.
pub fn pairs_csv(path: &Path, pairs: &[Pair]) -> Result<Vec<u8>> {
    let err = |e: csv::Error| Error::file(path, format!("cannot write CSV: {e}"));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["image_id", "caption"]).map_err(err)?;
    for p in pairs {
        w.write_record([&p.image_id, &p.caption]).map_err(err)?;
    }
    w.into_inner()
        .map_err(|e| Error::file(path, format!("cannot write CSV: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids_outside_the_folder_are_refused_with_their_row() {
        let p = Path::new("pairs.csv");
        for bad in ["../x.jpg", "/etc/passwd", "a/../../b.jpg", "./"] {
            let e = check_image_id(p, 7, bad).unwrap_err().to_string();
            assert!(e.contains("row 7") && e.contains(bad), "{e}");
        }
        for good in ["x.jpg", "sub/x.jpg", "Image14001001-2540.jpg"] {
            check_image_id(p, 1, good).unwrap();
        }
    }
    use std::io::Write;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }

    #[test]
    fn bom_quoted_newlines_and_skips() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "p.csv",
            "\u{FEFF}image_id,caption\na.jpg,\"一只\n狗\"\na.jpg,\"一只\n狗\"\nb.jpg,\nc.jpg,猫\n"
                .as_bytes(),
        );
        let r = read_pairs(&p).unwrap();
        assert_eq!(r.encoding, Encoding::Utf8);
        assert_eq!(r.pairs.len(), 3);
        assert_eq!(r.pairs[0].caption, "一只 狗");
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.pairs[2].row, 4);
        assert_eq!(r.skipped.len(), 1);
        assert_eq!(r.skipped[0].reason, SkipReason::EmptyCaption);
        assert_eq!(r.skipped[0].row, 3);
    }

    #[test]
    fn gbk_is_detected() {
        let d = tempfile::tempdir().unwrap();
        let (bytes, _, _) = encoding_rs::GBK.encode("image_id,caption\na.jpg,一只黑色的狗\n");
        let p = write(d.path(), "g.csv", &bytes);
        let r = read_pairs(&p).unwrap();
        assert_eq!(r.encoding, Encoding::Gbk);
        assert_eq!(r.pairs[0].caption, "一只黑色的狗");
    }

    #[test]
    fn undecodable_bytes_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "bad.csv",
            b"image_id,caption\na.jpg,\xff\xff\xff\n",
        );
        let e = read_pairs(&p).unwrap_err().to_string();
        assert!(e.contains("bad.csv") && e.contains("UTF-8"), "{e}");
    }

    #[test]
    fn missing_column_lists_found_columns() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "m.csv", "img,text\na.jpg,狗\n".as_bytes());
        let e = read_pairs(&p).unwrap_err().to_string();
        assert!(
            e.contains("m.csv") && e.contains("`image_id`") && e.contains("img"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_query_id_is_an_error_with_row() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "w.csv",
            "text_id,caption\nW1,狗\nW2,猫\nW1,鸟\n".as_bytes(),
        );
        let e = read_ids(&p, "text_id", true).unwrap_err().to_string();
        assert!(e.contains("row 3") && e.contains("W1"), "{e}");
    }

    #[test]
    fn ragged_row_is_an_error_with_row() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "r.csv",
            "image_id,caption\na.jpg,狗\nb.jpg\n".as_bytes(),
        );
        let e = read_pairs(&p).unwrap_err().to_string();
        assert!(e.contains("r.csv") && e.contains("row 2"), "{e}");
    }

    #[test]
    fn utf16_with_and_without_bom_is_decoded() {
        let d = tempfile::tempdir().unwrap();
        let text = "image_id,caption\na.jpg,一只黑色的狗\n";
        let le: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        for (name, bytes, enc) in [
            (
                "le_bom.csv",
                [&b"\xFF\xFE"[..], &le].concat(),
                Encoding::Utf16Le,
            ),
            ("le.csv", le.clone(), Encoding::Utf16Le),
            (
                "be_bom.csv",
                [&b"\xFE\xFF"[..], &be].concat(),
                Encoding::Utf16Be,
            ),
            ("be.csv", be.clone(), Encoding::Utf16Be),
        ] {
            let p = write(d.path(), name, &bytes);
            let r = read_pairs(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(r.encoding, enc, "{name}");
            assert_eq!(r.pairs[0].image_id, "a.jpg", "{name}");
            assert_eq!(r.pairs[0].caption, "一只黑色的狗", "{name}");
        }
        // Zero bytes that are no UTF-16 either: an error naming the file, never "GBK".
        let p = write(d.path(), "odd.csv", b"image_id,caption\na.jpg,\0x\n\0");
        let e = read_pairs(&p).unwrap_err().to_string();
        assert!(
            e.contains("odd.csv") && e.contains("UTF-16") && !e.contains("GBK"),
            "{e}"
        );
    }

    fn pairs_of(n_images: usize) -> Pairs {
        let pairs = (0..n_images)
            .flat_map(|i| {
                (0..2).map(move |k| Pair {
                    image_id: format!("img{i}.jpg"),
                    caption: format!("第{i}张图 {k}"),
                    row: 2 * i + k + 1,
                })
            })
            .collect();
        Pairs {
            path: PathBuf::from("some/pairs.csv"),
            encoding: Encoding::Utf8,
            pairs,
            skipped: Vec::new(),
            duplicates: 0,
        }
    }

    #[test]
    fn split_keeps_images_whole_and_names_held_out_images_without_a_file() {
        let d = tempfile::tempdir().unwrap();
        let p = pairs_of(10);
        for i in 0..10 {
            if i % 3 != 0 {
                write(d.path(), &format!("img{i}.jpg"), b"x");
            }
        }
        let s = split_by_image(&p, 4, 2024, Some(d.path())).unwrap();
        assert_eq!((s.images, s.held_out_images), (10, 4));
        assert_eq!(s.train.len() + s.held_out.len(), 20);
        let held: HashSet<&str> = s.held_out.iter().map(|p| p.image_id.as_str()).collect();
        assert_eq!(held.len(), 4);
        assert!(s.train.iter().all(|p| !held.contains(p.image_id.as_str())));
        // Exactly the held-out ids without a file, once each, with their first row.
        let want: Vec<&str> = {
            let mut v: Vec<&str> = held
                .iter()
                .copied()
                .filter(|id| !d.path().join(id).is_file())
                .collect();
            v.sort();
            v
        };
        let mut got: Vec<&str> = s.missing.iter().map(|m| m.id.as_str()).collect();
        got.sort();
        assert_eq!(got, want);
        for m in &s.missing {
            let first = p.pairs.iter().find(|x| x.image_id == m.id).unwrap().row;
            assert_eq!(m.row, first);
        }
        let notes = s.notes();
        assert_eq!(notes.is_empty(), want.is_empty());
        if let Some(n) = notes.first() {
            assert!(n.contains("some/pairs.csv") && n.contains(want[0]), "{n}");
        }
        // The same seed gives the same split; no folder, no check.
        let again = split_by_image(&p, 4, 2024, None).unwrap();
        assert_eq!(again.held_out, s.held_out);
        assert!(again.missing.is_empty());
        // Too many held out: the error names the file.
        let e = split_by_image(&p, 10, 1, None).unwrap_err().to_string();
        assert!(
            e.contains("some/pairs.csv") && e.contains("10 images"),
            "{e}"
        );
        // Written pairs read back the same.
        let out = d.path().join("train.csv");
        std::fs::write(&out, pairs_csv(&out, &s.train).unwrap()).unwrap();
        let back = read_pairs(&out).unwrap();
        let strip = |v: &[Pair]| -> Vec<(String, String)> {
            v.iter()
                .map(|p| (p.image_id.clone(), p.caption.clone()))
                .collect()
        };
        assert_eq!(strip(&back.pairs), strip(&s.train));
    }
}
