//! `tuwen export`: the model's shared-space embeddings of images and captions, with their ids,
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
//! Every file is written whole or not at all (a temporary file in the target folder, renamed).
//! Unreadable images are left out and reported; so are empty captions.
use crate::data::{self, Skip};
use crate::error::{Error, Result};
use crate::features::image::{self, ExtractOptions, ExtractStats};
use crate::features::text::OovReport;
use crate::model::Model;
use crate::pipeline::{model_text_encoder, VectorFiles};
use arrow_array::{Array, ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use ndarray::{Array2, ArrayView2, Axis};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Largest Parquet row group, in (estimated encoded) bytes.
pub const ROW_GROUP_BYTES: usize = 128 << 20;
/// Rows per Arrow batch handed to the Parquet writer (bounds the extra memory of a write).
const BATCH_ROWS: usize = 4096;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// One Parquet file at PATH.
    #[default]
    Parquet,
    /// PATH.images.npy / PATH.texts.npy + PATH.{images,texts}.ids.txt (+ .raw.npy).
    Npy,
}

/// Which items to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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
        let list = |s: &[Skip]| {
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
        };
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

pub use crate::data::pair_text_id;

/// Embed the items of `opts.source` (see [`embed`]) and write them (see [`write`]).
pub fn export(
    model: &Model,
    ex: &ExtractOptions,
    vectors: &VectorFiles,
    opts: &ExportOptions,
) -> Result<(Vec<Embeddings>, ExportOutput)> {
    let t0 = Instant::now();
    let (sets, mut out) = embed(model, ex, vectors, opts)?;
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
pub fn embed(
    model: &Model,
    ex: &ExtractOptions,
    vectors: &VectorFiles,
    opts: &ExportOptions,
) -> Result<(Vec<Embeddings>, ExportOutput)> {
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
            let p = data::read_pairs(csv)?;
            if p.pairs.is_empty() {
                return Err(Error::file(
                    csv,
                    format!(
                        "no usable pair (image_id,caption) in the file ({} rows skipped)",
                        p.skipped.len()
                    ),
                ));
            }
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
                        reason: "empty caption".into(),
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
        let spec = model.feature_spec(ex.weights.as_deref())?;
        let ids: Vec<String> = image_ids.iter().map(|(id, _)| id.clone()).collect();
        let mut f = image::extract(&ids, dir, &spec, ex)?;
        let rows: Vec<usize> = image_ids.iter().map(|&(_, r)| r).collect();
        f.relabel_skips(src, Some(&rows));
        let keep: Vec<usize> = (0..ids.len()).filter(|&i| f.ok[i]).collect();
        if keep.is_empty() {
            return Err(f.nothing_usable(dir, &format!("images of {}", src.display())));
        }
        let feats = f.features.select(Axis(0), &keep);
        sets.push(Embeddings {
            kind: Kind::Image,
            ids: keep.iter().map(|&i| ids[i].clone()).collect(),
            vectors: model.projection.project_images(feats.view()),
            raw: opts.raw.then_some(feats),
        });
        failed_images = f.skipped;
        extract = Some(f.stats);
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
        let enc = model_text_encoder(model, vectors)?;
        let (ids, texts): (Vec<String>, Vec<String>) = captions.into_iter().unzip();
        let (feats, rep) = enc.features(&texts);
        sets.push(Embeddings {
            kind: Kind::Text,
            ids,
            vectors: model.projection.project_texts(feats.view()),
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
        dim: model.projection.dim(),
        failed_images,
        empty_captions,
        oov,
        extract,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok((sets, out))
}

/// Write `sets` in `format` at `out` (the file for Parquet, the prefix for NPY); `meta` goes
/// into the Parquet schema's metadata under `tuwen`. Returns the files written.
pub fn write(out: &Path, format: Format, sets: &[Embeddings], meta: &str) -> Result<Vec<PathBuf>> {
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
            Ok(files)
        }
    }
}

/// Every file an export to `out` in `format` may write (to check none is an input).
pub fn output_files(out: &Path, format: Format) -> Vec<PathBuf> {
    match format {
        Format::Parquet => vec![out.to_path_buf()],
        Format::Npy => [Kind::Image, Kind::Text]
            .into_iter()
            .flat_map(|k| ["npy", "ids.txt", "raw.npy"].map(|e| npy_path(out, k, e)))
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
