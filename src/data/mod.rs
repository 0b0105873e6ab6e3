//! Input tables: training pairs (附件1), and the Teddy query/gallery files (附件2, 附件3).
//!
//! Every reader names the file and the 1-based data row (header = row 0) in its errors, accepts a
//! UTF-8 BOM, and decodes GBK files (common for Chinese CSVs saved by Excel) when they are not UTF-8.
pub mod synthetic;

use crate::error::{Error, Result};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// How a file's bytes were decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Gbk,
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

fn decode_text(path: &Path, bytes: &[u8]) -> Result<(String, Encoding)> {
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
    pub reason: String,
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
        let skip = |reason: &str| Skip {
            file: path.display().to_string(),
            row,
            id: image_id.clone(),
            reason: reason.to_string(),
        };
        if image_id.is_empty() {
            return Err(Error::row(path, row, "empty image_id"));
        }
        check_image_id(path, row, &image_id)?;
        if caption.is_empty() {
            skipped.push(skip("empty caption"));
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
        assert_eq!(r.skipped[0].reason, "empty caption");
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
}
