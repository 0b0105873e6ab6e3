//! Embedding files for `tuwen export` ([`crate::jobs::export`]): the model's shared-space embeddings of images and captions, with their ids,
//! as one Parquet file or as NumPy `.npy` files, optionally with the features before projection.
//!
//! The vectors are exactly what ranking compares: [`Projection::project_images`] /
//! [`Projection::project_texts`] of the model, L2-normalised, so a dot product is the cosine
//! `--score cosine` ranks by.
//!
//! - **Parquet** (`PATH`): one row per item, images first: `id` (utf8), `kind` (utf8, `image` or
//!   `text`), `vector` (fixed-size list of float32, the model's dimension). With `raw`, also
//!   `raw_image` (the pooled CNN features, before the model's image normalisation) and/or
//!   `raw_text` (the caption features: word-vector mean(s) and bag of terms), one column per kind
//!   exported since their widths differ, each null on the other kind's rows. Snappy-compressed,
//!   row groups of at most [`ROW_GROUP_BYTES`]; the schema's key-value metadata `tuwen` holds the
//!   model folder and feature identities as JSON.
//! - **NPY** (`PATH` is a prefix): `PATH.images.npy` / `PATH.texts.npy` (float32 little-endian,
//!   C order, shape `[n, d]`) with `PATH.images.ids.txt` / `PATH.texts.ids.txt` (one id per line,
//!   the same order), and with `raw` `PATH.images.raw.npy` / `PATH.texts.raw.npy`.
//!
//! Every file is written whole or not at all (a temporary file in the target folder, renamed),
//! and never over a file tuwen did not write ([`check_targets`]): a Parquet file is tuwen's when
//! its metadata has the `tuwen` key; the NPY files are listed in `PATH.tuwen.json` (their format
//! has no room for a mark), which a write updates with the NPY files of the same batch.
//! Unreadable images are left out and reported; so are empty captions.
use crate::error::{Error, Result};
use arrow_array::{Array, ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use ndarray::{Array2, ArrayView2};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest Parquet row group, in (estimated encoded) bytes.
pub const ROW_GROUP_BYTES: usize = 128 << 20;
/// Rows per Arrow batch handed to the Parquet writer (bounds the extra memory of a write).
const BATCH_ROWS: usize = 4096;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// One Parquet file at PATH.
    #[default]
    Parquet,
    /// PATH.images.npy / PATH.texts.npy + PATH.{images,texts}.ids.txt (+ .raw.npy).
    Npy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Image,
    Text,
}

impl Kind {
    /// The `kind` column's value.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Text => "text",
        }
    }
    /// The part of a .npy file name: `images` or `texts`.
    pub fn plural(&self) -> &'static str {
        match self {
            Kind::Image => "images",
            Kind::Text => "texts",
        }
    }
}

/// One kind's exported items.
#[derive(Debug, Clone)]
pub struct Embeddings {
    pub kind: Kind,
    pub ids: Vec<String>,
    /// Projected, L2-normalised: one row per id.
    pub vectors: Array2<f32>,
    /// The features before projection (with `raw`): one row per id.
    pub raw: Option<Array2<f32>>,
}

/// Write `sets` in `format` at `out` (the file for Parquet, the prefix for NPY); `meta` goes
/// into the Parquet schema's metadata under `tuwen`. Returns the files written.
pub fn write(out: &Path, format: Format, sets: &[Embeddings], meta: &str) -> Result<Vec<PathBuf>> {
    let listed = check_targets(out, format)?;
    match format {
        Format::Parquet => {
            write_parquet(out, sets, meta)?;
            Ok(vec![out.to_path_buf()])
        }
        Format::Npy => {
            // Every id is checked before any file is written: no .npy without its ids file.
            for s in sets {
                if let Some(id) = s.ids.iter().find(|id| id.contains(['\n', '\r'])) {
                    return Err(Error::file(
                        npy_path(out, s.kind, "ids.txt"),
                        format!("id {id:?} holds a line break: use --format parquet"),
                    ));
                }
            }
            // Replaced together, the list first: a run killed between the renames leaves no
            // file of ours unlisted.
            let list = npy_list_path(out);
            let batch = crate::fsutil::OutputBatch::begin(output_files(out, format))?;
            let mut files = Vec::new();
            for s in sets {
                let p = npy_path(out, s.kind, "npy");
                write_npy(&p, s.vectors.view())?;
                files.push(p);
                let p = npy_path(out, s.kind, "ids.txt");
                let mut ids = s.ids.join("\n");
                ids.push('\n');
                crate::fsutil::write_atomic(&p, ids.as_bytes())?;
                files.push(p);
                if let Some(r) = &s.raw {
                    let p = npy_path(out, s.kind, "raw.npy");
                    write_npy(&p, r.view())?;
                    files.push(p);
                }
            }
            // Listed: the files of earlier exports to this prefix still there, and these.
            let mut names: Vec<String> = listed
                .into_iter()
                .filter(|n| parent_of(out).join(n).is_file())
                .chain(files.iter().filter_map(|p| file_name(p)))
                .collect();
            names.sort();
            names.dedup();
            let json = serde_json::json!({ "tuwen": NPY_LIST_KIND, "files": names });
            crate::fsutil::write_atomic(&list, format!("{json:#}\n").as_bytes())?;
            batch.commit()?;
            files.push(list);
            Ok(files)
        }
    }
}

/// The `tuwen` value of an NPY export's list file.
const NPY_LIST_KIND: &str = "npy-export";

/// `PREFIX.tuwen.json`: which files at this prefix tuwen wrote (NPY exports).
pub fn npy_list_path(prefix: &Path) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".tuwen.json");
    PathBuf::from(name)
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// The file names an NPY export's list holds, or `None` when `path` is not such a list.
fn read_npy_list(path: &Path) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    if v["tuwen"] != NPY_LIST_KIND {
        return None;
    }
    v["files"]
        .as_array()?
        .iter()
        .map(|f| f.as_str().map(str::to_string))
        .collect()
}

/// Whether `path` is a Parquet file tuwen exported (its Arrow schema's metadata has the `tuwen`
/// key, as [`write_parquet`] writes it). Reads the footer only.
fn is_tuwen_parquet(path: &Path) -> bool {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    std::fs::File::open(path)
        .ok()
        .and_then(|f| ParquetRecordBatchReaderBuilder::try_new(f).ok())
        .is_some_and(|b| b.schema().metadata().contains_key("tuwen"))
}

/// Check, before any work and creating nothing, that an export to `out` in `format` replaces no
/// file tuwen did not write ([`crate::fsutil::check_file_target`]): a Parquet file only if it
/// is a tuwen export, an NPY-format file only if `PREFIX.tuwen.json` lists it. Returns the names
/// that list holds (empty for Parquet).
pub fn check_targets(out: &Path, format: Format) -> Result<Vec<String>> {
    use crate::fsutil::check_file_target;
    match format {
        Format::Parquet => {
            check_file_target(out, "Parquet export", is_tuwen_parquet)?;
            Ok(Vec::new())
        }
        Format::Npy => {
            let list = npy_list_path(out);
            check_file_target(&list, "list of NPY export files", |p| {
                read_npy_list(p).is_some()
            })?;
            let listed = read_npy_list(&list).unwrap_or_default();
            for f in output_files(out, format).iter().filter(|f| **f != list) {
                check_file_target(f, "NPY export file", |p| {
                    file_name(p).is_some_and(|n| listed.contains(&n))
                })?;
            }
            Ok(listed)
        }
    }
}

/// Every file an export to `out` in `format` may write (to check none is an input); for NPY the
/// list file [`npy_list_path`] first.
pub fn output_files(out: &Path, format: Format) -> Vec<PathBuf> {
    match format {
        Format::Parquet => vec![out.to_path_buf()],
        Format::Npy => std::iter::once(npy_list_path(out))
            .chain(
                [Kind::Image, Kind::Text]
                    .into_iter()
                    .flat_map(|k| ["npy", "ids.txt", "raw.npy"].map(|e| npy_path(out, k, e))),
            )
            .collect(),
    }
}

/// `PREFIX.images.npy`, `PREFIX.texts.ids.txt`, …: the prefix's file name with `.{kind}.{ext}`
/// appended.
pub fn npy_path(prefix: &Path, kind: Kind, ext: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(format!(".{}.{ext}", kind.plural()));
    PathBuf::from(name)
}

/// Write a file whole or not at all, streaming: `fill` writes into a temporary file in the
/// target folder, which is synced, made readable like any output, and renamed into place.
fn write_streaming(path: &Path, fill: impl FnOnce(&mut std::fs::File) -> Result<()>) -> Result<()> {
    crate::fsutil::write_atomic_with(path, fill)
}

/// The NPY v1.0 header of a float32 C-order `[rows, cols]` array: magic, version, header length
/// (u16 LE), and the dict padded with spaces to a multiple of 64 bytes, ending in `\n`.
pub fn npy_header(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let len = (dict.len() + pad + 1) as u16;
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.extend(std::iter::repeat_n(b' ', pad));
    h.push(b'\n');
    h
}

/// Write a float32 matrix as a .npy file (v1.0, `<f4`, C order).
pub fn write_npy(path: &Path, m: ArrayView2<f32>) -> Result<()> {
    write_streaming(path, |f| {
        let mut w = std::io::BufWriter::new(f);
        let io = |e| Error::io(path, e);
        w.write_all(&npy_header(m.nrows(), m.ncols())).map_err(io)?;
        let mut buf = Vec::with_capacity(m.ncols() * 4);
        for r in m.rows() {
            buf.clear();
            buf.extend(r.iter().flat_map(|v| v.to_le_bytes()));
            w.write_all(&buf).map_err(io)?;
        }
        w.flush().map_err(io)
    })
}

fn list_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Float32, false))
}

fn list_type(width: usize) -> DataType {
    DataType::FixedSizeList(list_field(), width as i32)
}

fn list_array(rows: ArrayView2<f32>) -> Result<FixedSizeListArray> {
    let values: Vec<f32> = rows.iter().copied().collect();
    FixedSizeListArray::try_new(
        list_field(),
        rows.ncols() as i32,
        Arc::new(Float32Array::from(values)),
        None,
    )
    .map_err(|e| Error::Model(format!("arrow: {e}")))
}

/// Write `sets` as one Parquet file (schema in the module docs).
pub fn write_parquet(path: &Path, sets: &[Embeddings], meta: &str) -> Result<()> {
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::WriterProperties;
    let dim = sets.first().map_or(0, |s| s.vectors.ncols());
    if sets.iter().any(|s| s.vectors.ncols() != dim) {
        return Err(Error::Model(
            "image and text vectors differ in width".into(),
        ));
    }
    // One raw column per exported kind that has raw features: (kind, width).
    let raw_cols: Vec<(Kind, usize)> = sets
        .iter()
        .filter_map(|s| s.raw.as_ref().map(|r| (s.kind, r.ncols())))
        .collect();
    let mut fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("vector", list_type(dim), false),
    ];
    for &(k, w) in &raw_cols {
        fields.push(Field::new(format!("raw_{}", k.name()), list_type(w), true));
    }
    let schema = Arc::new(Schema::new_with_metadata(
        fields,
        std::collections::HashMap::from([("tuwen".to_string(), meta.to_string())]),
    ));
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .build();
    let pq = |e: parquet::errors::ParquetError| Error::file(path, format!("parquet: {e}"));
    write_streaming(path, |f| {
        let mut w = ArrowWriter::try_new(f, schema.clone(), Some(props)).map_err(pq)?;
        for s in sets {
            for start in (0..s.ids.len()).step_by(BATCH_ROWS) {
                let end = (start + BATCH_ROWS).min(s.ids.len());
                let n = end - start;
                let rows = ndarray::s![start..end, ..];
                let mut cols: Vec<ArrayRef> = vec![
                    Arc::new(StringArray::from_iter_values(&s.ids[start..end])),
                    Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                        s.kind.name(),
                        n,
                    ))),
                    Arc::new(list_array(s.vectors.slice(rows))?),
                ];
                for &(k, width) in &raw_cols {
                    let col: ArrayRef = match (&s.raw, k == s.kind) {
                        (Some(r), true) => Arc::new(list_array(r.slice(rows))?),
                        _ => Arc::new(FixedSizeListArray::new_null(list_field(), width as i32, n)),
                    };
                    cols.push(col);
                }
                debug_assert!(cols.iter().all(|c| c.len() == n));
                let batch = RecordBatch::try_new(schema.clone(), cols)
                    .map_err(|e| Error::Model(format!("arrow: {e}")))?;
                w.write(&batch).map_err(pq)?;
            }
        }
        w.close().map_err(pq)?;
        Ok(())
    })
}
