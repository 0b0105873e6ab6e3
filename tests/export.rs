//! `tuwen export`: the Parquet and NPY files hold exactly the library's projections (the vectors
//! ranking compares) with their ids; images that cannot be read and empty captions are reported
//! and left out. Files are read back with the parquet/arrow crates and, for .npy, by a header
//! parser written here independently of the writer. Needs models/ from set-up, not ../shared.
mod common;
use arrow_array::{Array, FixedSizeListArray, Float32Array, StringArray};
use ndarray::{Array2, Axis};
use std::path::{Path, PathBuf};
use std::process::Command;
use tuwen::features::image::{self, BackboneKind, ExtractOptions, ImageFeatureConfig, Pooling};

fn small_model(root: &Path) -> (tuwen::model::Model, tuwen::data::synthetic::Synthetic) {
    let data = tuwen::data::synthetic::generate(&root.join("syn"), 24, 8, 9).unwrap();
    let opts = tuwen::jobs::fit::FitOptions {
        sets: vec![(data.train_pairs.clone(), data.images.clone())],
        image: ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, false),
        text: Default::default(),
        projection: tuwen::projection::ProjectionParams {
            cca: tuwen::projection::CcaParams::new(6).reg(0.3, 0.3),
            ..Default::default()
        },
        extract: extract_options(root),
        vectors: None,
        vectors2: None,
        extra_pairs: Vec::new(),
    };
    (tuwen::jobs::fit::fit(&opts).unwrap().0, data)
}

fn extract_options(root: &Path) -> ExtractOptions {
    ExtractOptions {
        cache_dir: Some(root.join("cache")),
        progress: false,
        ..Default::default()
    }
}

/// Run `tuwen export` with the test's cache; (stdout, stderr), asserting success.
fn export(root: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .arg("export")
        .args(args)
        .args(["--quiet", "--cache"])
        .arg(root.join("cache"))
        .output()
        .unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{so}\n{se}");
    (so, se)
}

/// What the library gives for the items of a pairs file: (ids, projections, raw features) of
/// its readable images and of its non-empty captions.
struct Expected {
    image_ids: Vec<String>,
    images: Array2<f32>,
    raw_images: Array2<f32>,
    text_ids: Vec<String>,
    texts: Array2<f32>,
    raw_texts: Array2<f32>,
}

fn expected(model: &tuwen::model::Model, root: &Path, pairs: &Path, dir: &Path) -> Expected {
    let p = tuwen::data::read_pairs(pairs).unwrap();
    let (ids, _) = tuwen::data::group_images(&p.pairs);
    let spec = model.feature_spec(None).unwrap();
    let f = image::extract(&ids, dir, &spec, &extract_options(root)).unwrap();
    let keep: Vec<usize> = (0..ids.len()).filter(|&i| f.ok[i]).collect();
    let raw_images = f.features.select(Axis(0), &keep);
    let enc = tuwen::embed::model_text_encoder(model, &Default::default()).unwrap();
    let captions: Vec<String> = p.pairs.iter().map(|x| x.caption.clone()).collect();
    let (raw_texts, _) = enc.features(&captions);
    Expected {
        image_ids: keep.iter().map(|&i| ids[i].clone()).collect(),
        images: model.projection.project_images(raw_images.view()),
        raw_images,
        text_ids: (0..captions.len())
            .map(|n| format!("Word-{:010}", 1_000_000_001 + n))
            .collect(),
        texts: model.projection.project_texts(raw_texts.view()),
        raw_texts,
    }
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= 1e-6, "{what}[{i}]: {a} vs {b}");
    }
}

fn row_values(l: &FixedSizeListArray, i: usize) -> Vec<f32> {
    let v = l.value(i);
    v.as_any()
        .downcast_ref::<Float32Array>()
        .unwrap()
        .values()
        .to_vec()
}

/// A copy of the synthetic val pairs with a row naming an image that does not exist and a row
/// with an empty caption.
fn val_with_faults(data: &tuwen::data::synthetic::Synthetic, root: &Path) -> PathBuf {
    let mut csv = std::fs::read_to_string(&data.val_pairs).unwrap();
    let first_image = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    csv.push_str("Missing-0001.jpg,一个红色的圆形\n");
    csv.push_str(&format!("{first_image},\"  \"\n"));
    let p = root.join("val-faults.csv");
    std::fs::write(&p, csv).unwrap();
    p
}

#[test]
fn parquet_holds_the_projections_with_ids_kinds_and_raw_features() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let (model, data) = small_model(root);
    let model_dir = root.join("model");
    model.save(&model_dir).unwrap();
    let pairs = val_with_faults(&data, root);
    let out = root.join("out/emb.parquet");
    let (json, stderr) = export(
        root,
        &[
            "--model",
            model_dir.to_str().unwrap(),
            "--pairs",
            pairs.to_str().unwrap(),
            "--images",
            data.images.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--raw",
            "--json",
        ],
    );
    // The missing image and the empty caption are reported, by id, and counted.
    let rep: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(rep["failed_images"].as_array().unwrap().len(), 1, "{rep}");
    assert_eq!(rep["failed_images"][0]["id"], "Missing-0001.jpg");
    assert_eq!(rep["failed_images"][0]["reason"], "file not found");
    assert_eq!(rep["empty_captions"].as_array().unwrap().len(), 1, "{rep}");
    assert!(
        stderr.contains("1 images could not be read") && stderr.contains("Missing-0001.jpg"),
        "{stderr}"
    );
    assert!(stderr.contains("1 captions are empty"), "{stderr}");

    let want = expected(&model, root, &pairs, &data.images);
    assert_eq!(want.image_ids.len(), 8, "8 val images are readable");
    assert_eq!(
        want.text_ids.len(),
        17,
        "16 val captions + the missing image's"
    );
    assert_eq!(rep["images"], 8);
    assert_eq!(rep["texts"], 17);

    let file = std::fs::File::open(&out).unwrap();
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let schema = builder.schema().clone();
    assert!(schema.metadata().contains_key("tuwen"));
    let dim = model.projection.dim();
    assert_eq!(dim, 6);
    let width = |name: &str| match schema.field_with_name(name).unwrap().data_type() {
        arrow_schema::DataType::FixedSizeList(item, w) => {
            assert_eq!(item.data_type(), &arrow_schema::DataType::Float32);
            *w as usize
        }
        t => panic!("{name}: {t:?}"),
    };
    assert_eq!(width("vector"), dim);
    assert_eq!(width("raw_image"), want.raw_images.ncols());
    assert_eq!(width("raw_text"), want.raw_texts.ncols());
    let (mut ids, mut kinds) = (Vec::new(), Vec::new());
    let mut vectors: Vec<Vec<f32>> = Vec::new();
    let mut raws: Vec<Vec<f32>> = Vec::new();
    for batch in builder.build().unwrap() {
        let b = batch.unwrap();
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let strs = |n: &str| {
            col(n)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .iter()
                .map(|s| s.unwrap().to_string())
                .collect::<Vec<_>>()
        };
        let list = |n: &str| {
            col(n)
                .as_any()
                .downcast_ref::<FixedSizeListArray>()
                .unwrap()
                .clone()
        };
        let (v, ri, rt) = (list("vector"), list("raw_image"), list("raw_text"));
        let k = strs("kind");
        assert_eq!(k.len(), b.num_rows());
        for (i, kind) in k.iter().enumerate() {
            vectors.push(row_values(&v, i));
            // Each row has the raw features of its own kind, and null for the other one.
            let (own, other) = if kind == "image" {
                (&ri, &rt)
            } else {
                (&rt, &ri)
            };
            assert!(own.is_valid(i) && other.is_null(i), "row {i}");
            raws.push(row_values(own, i));
        }
        ids.extend(strs("id"));
        kinds.extend(k);
    }
    let n_img = want.image_ids.len();
    assert_eq!(ids[..n_img], want.image_ids[..]);
    assert_eq!(ids[n_img..], want.text_ids[..]);
    assert!(!ids.iter().any(|i| i == "Missing-0001.jpg"));
    assert!(kinds[..n_img].iter().all(|k| k == "image"));
    assert!(kinds[n_img..].iter().all(|k| k == "text"));
    for (i, row) in vectors.iter().enumerate() {
        let (w, r) = if i < n_img {
            (want.images.row(i), want.raw_images.row(i))
        } else {
            (want.texts.row(i - n_img), want.raw_texts.row(i - n_img))
        };
        assert_close(row, &w.to_vec(), &format!("vector of {}", ids[i]));
        assert_close(&raws[i], &r.to_vec(), &format!("raw of {}", ids[i]));
        // Unit length, as ranking uses them.
        let n: f32 = row.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-5, "{}: |v|² = {n}", ids[i]);
    }
}

/// A parsed .npy file: (descr, fortran_order, shape, data).
fn read_npy(path: &Path) -> (String, String, Vec<usize>, Vec<f32>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..6], b"\x93NUMPY", "{}: magic", path.display());
    assert_eq!((b[6], b[7]), (1, 0), "version 1.0");
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    assert_eq!((10 + hlen) % 16, 0, "header padded to 16 bytes (numpy: 64)");
    let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
    assert!(header.ends_with('\n'));
    // `{'key': value, ...}`: a value is a quoted string, a word, or a parenthesised tuple.
    let value = |key: &str| -> String {
        let at = header.find(&format!("'{key}':")).unwrap() + key.len() + 3;
        let rest = header[at..].trim_start();
        let end = match rest.chars().next().unwrap() {
            '\'' => rest[1..].find('\'').unwrap() + 2,
            '(' => rest.find(')').unwrap() + 1,
            _ => rest.find([',', '}']).unwrap(),
        };
        rest[..end].trim().to_string()
    };
    let shape: Vec<usize> = value("shape")
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let data: Vec<f32> = b[10 + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(
        (b.len() - 10 - hlen) % 4,
        0,
        "{}: whole floats",
        path.display()
    );
    (
        value("descr").trim_matches('\'').to_string(),
        value("fortran_order"),
        shape,
        data,
    )
}

#[test]
fn npy_files_and_teddy_lists_match_the_projections() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let (model, data) = small_model(root);
    let model_dir = root.join("model");
    model.save(&model_dir).unwrap();
    let pairs = val_with_faults(&data, root);
    let want = expected(&model, root, &pairs, &data.images);
    let prefix = root.join("npy/emb");
    let (stdout, stderr) = export(
        root,
        &[
            "--model",
            model_dir.to_str().unwrap(),
            "--pairs",
            pairs.to_str().unwrap(),
            "--images",
            data.images.to_str().unwrap(),
            "--out",
            prefix.to_str().unwrap(),
            "--format",
            "npy",
            "--raw",
        ],
    );
    assert!(stdout.contains("8 images, 17 captions"), "{stdout}");
    assert!(stderr.contains("Missing-0001.jpg"), "{stderr}");
    let file = |s: &str| root.join(format!("npy/emb.{s}"));
    for (kind, ids, vecs, raw) in [
        ("images", &want.image_ids, &want.images, &want.raw_images),
        ("texts", &want.text_ids, &want.texts, &want.raw_texts),
    ] {
        let (descr, fortran, shape, v) = read_npy(&file(&format!("{kind}.npy")));
        assert_eq!(descr, "<f4");
        assert_eq!(fortran, "False");
        assert_eq!(shape, vec![ids.len(), model.projection.dim()]);
        assert_close(&v, vecs.as_standard_layout().as_slice().unwrap(), kind);
        let (_, _, shape, v) = read_npy(&file(&format!("{kind}.raw.npy")));
        assert_eq!(shape, vec![ids.len(), raw.ncols()]);
        assert_close(&v, raw.as_standard_layout().as_slice().unwrap(), kind);
        let listed = std::fs::read_to_string(file(&format!("{kind}.ids.txt"))).unwrap();
        assert_eq!(listed.lines().collect::<Vec<_>>(), *ids);
    }

    // Laid out as 附件2, the caption and image lists export the same ids and vectors: pairs
    // mode numbers captions as `split --teddy-layout` does.
    let p = tuwen::data::read_pairs(&pairs).unwrap();
    let (d2, d3) = (root.join("附件2"), root.join("附件3"));
    tuwen::jobs::split::layout_teddy(&p.pairs, &data.images, &d2, &d3).unwrap();
    let m = model_dir.to_str().unwrap();
    let t = root.join("teddy/t");
    export(
        root,
        &[
            "--model",
            m,
            "--captions",
            d2.join("word_test.csv").to_str().unwrap(),
            "--out",
            t.to_str().unwrap(),
            "--format",
            "npy",
        ],
    );
    let (_, stderr) = export(
        root,
        &[
            "--model",
            m,
            "--ids",
            d2.join("image_data.csv").to_str().unwrap(),
            "--images",
            d2.join("ImageData").to_str().unwrap(),
            "--out",
            t.to_str().unwrap(),
            "--format",
            "npy",
        ],
    );
    assert!(stderr.contains("Missing-0001.jpg"), "{stderr}");
    for (kind, npy) in [("texts", &want.texts), ("images", &want.images)] {
        let ids = std::fs::read_to_string(root.join(format!("teddy/t.{kind}.ids.txt"))).unwrap();
        let want_ids = if kind == "texts" {
            &want.text_ids
        } else {
            &want.image_ids
        };
        assert_eq!(ids.lines().collect::<Vec<_>>(), *want_ids);
        let (_, _, _, v) = read_npy(&root.join(format!("teddy/t.{kind}.npy")));
        assert_close(&v, npy.as_standard_layout().as_slice().unwrap(), kind);
    }
    // No raw files without --raw.
    assert!(!root.join("teddy/t.texts.raw.npy").exists());
}

#[test]
fn export_needs_one_input() {
    let out = Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .args(["export", "--model", "m", "--out", "x.parquet"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("--pairs") && e.contains("--ids") && e.contains("--captions"),
        "{e}"
    );
}

#[test]
fn npy_headers_are_aligned_and_names_append_kind_and_extension() {
    use tuwen::outputs::export::{npy_header, npy_path, Kind};
    for (r, c) in [(0, 0), (3, 256), (5000, 8100), (123456789, 1)] {
        let h = npy_header(r, c);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(u16::from_le_bytes([h[8], h[9]]) as usize, h.len() - 10);
        assert_eq!(*h.last().unwrap(), b'\n');
        let s = std::str::from_utf8(&h[10..]).unwrap();
        assert!(s.contains(&format!("'shape': ({r}, {c})")), "{s}");
    }
    let p = Path::new("out/emb");
    assert_eq!(
        npy_path(p, Kind::Image, "npy"),
        PathBuf::from("out/emb.images.npy")
    );
    assert_eq!(
        npy_path(p, Kind::Text, "ids.txt"),
        PathBuf::from("out/emb.texts.ids.txt")
    );
}
