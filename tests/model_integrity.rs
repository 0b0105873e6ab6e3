//! A damaged, edited or mixed model folder, degenerate training data and bad flags are refused
//! with a message naming the file or flag, never turned into wrong results (issue 16, items 7,
//! 8, 13, 14, 15). Runs the built binary on a small synthetic model. Needs models/ from set-up.
mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn tuwen(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tuwen"));
    c.args(args);
    for (flag, p) in paths {
        c.arg(flag).arg(p);
    }
    c.arg("--quiet").output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command failed cleanly and its message contains every one of `needles`.
fn fails_with(out: &Output, needles: &[&str]) -> String {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "expected a failure; stdout: {} stderr: {err}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_ne!(out.status.code(), Some(101), "panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "message lacks `{n}`: {err}");
    }
    err
}

fn succeeds(out: &Output) {
    assert!(out.status.success(), "failed: {}", stderr(out));
}

/// One small network (the edits below each match one place in config.json).
const LITE0: [&str; 6] = [
    "--backbone",
    "efficientnet-lite0",
    "--flip",
    "false",
    "--second-backbone",
    "none",
];

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: tuwen::data::synthetic::Synthetic,
    cache: PathBuf,
    /// Fitted on all training pairs, and on the first half (same bag size, other statistics).
    model: PathBuf,
    other: PathBuf,
}

fn fit_args() -> Vec<&'static str> {
    let mut a = vec!["fit", "--components", "4", "--bag-max-terms", "30"];
    a.extend(LITE0);
    a
}

/// One model for every test of this file (fitting is the slow part).
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        common::models();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let data = tuwen::data::synthetic::generate(&root.join("syn"), 24, 8, 3).unwrap();
        let cache = root.join("cache");
        let model = root.join("model");
        let fit = |pairs: &Path, out: &Path| {
            succeeds(&tuwen(
                &fit_args(),
                &[
                    ("--pairs", pairs),
                    ("--images", &data.images),
                    ("--out", out),
                    ("--cache", &cache),
                ],
            ))
        };
        fit(&data.train_pairs, &model);
        let text = std::fs::read_to_string(&data.train_pairs).unwrap();
        let half: Vec<&str> = text.lines().take(25).collect();
        let half_pairs = root.join("half.csv");
        std::fs::write(&half_pairs, half.join("\n") + "\n").unwrap();
        let other = root.join("other");
        fit(&half_pairs, &other);
        Fixture {
            _dir: dir,
            root,
            data,
            cache,
            model,
            other,
        }
    })
}

/// A copy of the fixture's model in a fresh folder.
fn copy_model(f: &Fixture, name: &str) -> PathBuf {
    let to = f.root.join(name);
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(&f.model).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    to
}

fn eval(f: &Fixture, model: &Path) -> Output {
    tuwen(
        &["eval"],
        &[
            ("--model", model),
            ("--pairs", &f.data.val_pairs),
            ("--images", &f.data.images),
            ("--cache", &f.cache),
        ],
    )
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn write_json(p: &Path, v: &serde_json::Value) {
    std::fs::write(p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// Overwrite element `index` of tensor `name` in a safetensors file (still a valid file).
fn set_tensor_value(path: &Path, name: &str, index: usize, value: f32) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize;
    let at = 8 + n + start + 4 * index;
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// Make a model folder look as one saved before sha256 records (format 2).
fn make_format_2(model: &Path) {
    let p = model.join("config.json");
    let mut v = read_json(&p);
    v.as_object_mut().unwrap().remove("integrity");
    v["format"] = 2.into();
    write_json(&p, &v);
}

/// Run `serve` on a model that must be refused: it must exit (with an error) by itself.
fn serve_refuses(f: &Fixture, model: &Path, needles: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .args(["serve", "--quiet", "--port", "0", "--model"])
        .arg(model)
        .arg("--images")
        .arg(&f.data.images)
        .arg("--cache")
        .arg(&f.cache)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve started on a model it must refuse");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    fails_with(&child.wait_with_output().unwrap(), needles);
}

#[test]
fn non_finite_tensors_are_refused_by_every_command() {
    let f = fixture();
    for (name, tensor, value) in [
        ("nan_proj", "image_proj", f32::NAN),
        ("inf_mean", "text_mean", f32::INFINITY),
    ] {
        let m = copy_model(f, name);
        set_tensor_value(&m.join("projection.safetensors"), tensor, 3, value);
        // Also without the sha256 records, which would catch the edit on their own.
        make_format_2(&m);
        let out = eval(f, &m);
        fails_with(&out, &["projection.safetensors", tensor, "non-finite"]);
        assert!(!String::from_utf8_lossy(&out.stdout).contains("100.0"));

        let val = tuwen::data::read_pairs(&f.data.val_pairs).unwrap();
        let teddy = f.root.join(format!("{name}-teddy"));
        let (d2, d3) = (teddy.join("附件2"), teddy.join("附件3"));
        tuwen::jobs::split::layout_teddy(&val.pairs, &f.data.images, &d2, &d3).unwrap();
        let results = f.root.join(format!("{name}-results"));
        let out = tuwen(
            &["rank"],
            &[
                ("--model", &m),
                ("--teddy-dir", &d2),
                ("--teddy-dir", &d3),
                ("--out-dir", &results),
                ("--cache", &f.cache),
            ],
        );
        fails_with(&out, &["projection.safetensors", "non-finite"]);
        assert!(!results.join("result1.csv").exists() && !results.join("result2.csv").exists());
        serve_refuses(f, &m, &["projection.safetensors", "non-finite"]);
    }
}

#[test]
fn edits_that_keep_shapes_are_caught_naming_the_file() {
    let f = fixture();
    succeeds(&eval(f, &f.model));

    // Word statistics of another model with the same bag size.
    let ws_a = read_json(&f.model.join("word_stats.json"));
    let ws_b = read_json(&f.other.join("word_stats.json"));
    let bag = |v: &serde_json::Value| v["bag_vocab"].as_array().unwrap().len();
    assert_eq!(bag(&ws_a), bag(&ws_b), "the fixture needs equal bag sizes");
    assert_ne!(ws_a, ws_b);
    let m = copy_model(f, "mixed_stats");
    std::fs::copy(f.other.join("word_stats.json"), m.join("word_stats.json")).unwrap();
    fails_with(&eval(f, &m), &["word_stats.json", "another model"]);

    // One IDF changed by hand.
    let m = copy_model(f, "edited_stats");
    let mut ws = ws_a.clone();
    ws["bag_vocab"][0][1] = 9.5.into();
    write_json(&m.join("word_stats.json"), &ws);
    fails_with(&eval(f, &m), &["word_stats.json", "not the file"]);

    // config.json edits that keep every shape, made as a user would, in a text editor.
    let cfg = read_json(&f.model.join("config.json"));
    let cfg_text = std::fs::read_to_string(f.model.join("config.json")).unwrap();
    let c = cfg["projection"]["cca"]["components"].as_u64().unwrap();
    let edits = [
        (
            "pooling",
            "\"pooling\": \"avg\"",
            "\"pooling\": \"max\"".to_string(),
        ),
        ("flip", "\"flip\": false", "\"flip\": true".to_string()),
        (
            "components",
            &*format!("\"components\": {c}"),
            format!("\"components\": {}", c + 1),
        ),
        (
            "weighting",
            "\"weighting\": \"mean\"",
            "\"weighting\": \"idf\"".to_string(),
        ),
    ];
    for (what, from, to) in edits {
        assert_eq!(cfg_text.matches(from).count(), 1, "{what}: {from}");
        let m = copy_model(f, &format!("edited_{what}"));
        std::fs::write(m.join("config.json"), cfg_text.replace(from, &to)).unwrap();
        fails_with(&eval(f, &m), &["config.json", "settings changed"]);
    }
    // A removed record is no way around the check.
    let m = copy_model(f, "no_record");
    let mut v = cfg.clone();
    v.as_object_mut().unwrap().remove("integrity");
    write_json(&m.join("config.json"), &v);
    fails_with(&eval(f, &m), &["config.json", "integrity"]);

    // A finite change to one weight (a valid safetensors file).
    let m = copy_model(f, "edited_tensor");
    set_tensor_value(&m.join("projection.safetensors"), "image_proj", 0, 0.125);
    fails_with(&eval(f, &m), &["projection.safetensors", "not the file"]);

    // Rewriting config.json (keys reordered, compact) is an edit too: the record hashes text.
    let m = copy_model(f, "rewritten");
    let compact: serde_json::Map<String, serde_json::Value> = cfg
        .as_object()
        .unwrap()
        .iter()
        .rev()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    std::fs::write(
        m.join("config.json"),
        serde_json::to_vec(&serde_json::Value::Object(compact)).unwrap(),
    )
    .unwrap();
    fails_with(&eval(f, &m), &["config.json", "settings changed"]);
    // An untouched copy still loads.
    succeeds(&eval(f, &copy_model(f, "untouched")));
}

#[test]
fn old_models_load_with_a_warning_and_older_ones_are_refused() {
    let f = fixture();
    let m = copy_model(f, "format2");
    make_format_2(&m);
    let out = eval(f, &m);
    succeeds(&out);
    let err = stderr(&out);
    assert!(err.contains("warning") && err.contains("refit"), "{err}");

    let p = m.join("config.json");
    let mut v = read_json(&p);
    v["format"] = 1.into();
    write_json(&p, &v);
    fails_with(&eval(f, &m), &["config.json", "model format 1", "refit"]);
}

#[test]
fn degenerate_training_data_is_refused_with_the_reason() {
    let f = fixture();
    let pairs = tuwen::data::read_pairs(&f.data.train_pairs).unwrap();
    let (ids, _) = tuwen::data::group_images(&pairs.pairs);
    let cases = [
        (
            "one_pair",
            format!("image_id,caption\n{},一个红色的圆形\n", ids[0]),
            "at least 2 image-caption pairs",
        ),
        (
            "one_image",
            format!(
                "image_id,caption\n{a},一个红色的圆形\n{a},蓝色的方形图案\n{a},画面中间有黄色条纹\n",
                a = ids[0]
            ),
            "describe one image",
        ),
        (
            "same_caption",
            ids.iter()
                .take(6)
                .fold("image_id,caption\n".to_string(), |s, id| {
                    s + &format!("{id},一个红色的圆形\n")
                }),
            "identical text features",
        ),
    ];
    for (name, csv, needle) in cases {
        let p = f.root.join(format!("{name}.csv"));
        std::fs::write(&p, csv).unwrap();
        let out_dir = f.root.join(format!("{name}-model"));
        let out = tuwen(
            &fit_args(),
            &[
                ("--pairs", &p),
                ("--images", &f.data.images),
                ("--out", &out_dir),
                ("--cache", &f.cache),
            ],
        );
        let err = fails_with(&out, &[needle]);
        assert!(!err.contains("no known token"), "{name}: {err}");
        assert!(!out_dir.exists(), "{name}: no model is written");
    }
}

#[test]
fn bad_flags_are_refused_before_any_work() {
    let f = fixture();
    let cases: [(&[&str], &str); 6] = [
        (&["--w2v-weight", "NaN"], "--w2v-weight"),
        (&["--w2v-weight", "inf"], "--w2v-weight"),
        (&["--w2v-weight=-1"], "--w2v-weight"),
        (&["--batch-size", "0"], "--batch-size"),
        (&["--shard-size", "0"], "--shard-size"),
        (&["--power", "NaN"], "--power"),
    ];
    for (i, (flags, needle)) in cases.into_iter().enumerate() {
        let mut a = fit_args();
        a.extend(flags);
        let cache = f.root.join(format!("flag-cache-{i}"));
        let out_dir = f.root.join(format!("flag-model-{i}"));
        let out = tuwen(
            &a,
            &[
                ("--pairs", &f.data.train_pairs),
                ("--images", &f.data.images),
                ("--out", &out_dir),
                ("--cache", &cache),
            ],
        );
        let err = fails_with(&out, &[needle]);
        assert!(!err.contains("LAPACK"), "{err}");
        // Refused up front: no feature was computed (the cache was never created).
        assert!(
            !cache.exists(),
            "{flags:?}: extraction ran before the check"
        );
        assert!(!out_dir.exists());
    }
}

#[test]
fn utf16_csvs_are_read_as_utf16() {
    let f = fixture();
    let utf16 = |p: &Path, bom: bool| -> PathBuf {
        let text = std::fs::read_to_string(p).unwrap();
        let bytes: Vec<u8> = (if bom { vec![0xFF, 0xFE] } else { vec![] })
            .into_iter()
            .chain(text.encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        let to = f.root.join(format!(
            "utf16{}-{}",
            if bom { "bom" } else { "" },
            p.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&to, bytes).unwrap();
        to
    };
    // With a BOM: was decoded, but announced as "decoded as GBK".
    let out = tuwen(
        &["eval"],
        &[
            ("--model", &f.model),
            ("--pairs", &utf16(&f.data.val_pairs, true)),
            ("--images", &f.data.images),
            ("--cache", &f.cache),
        ],
    );
    succeeds(&out);
    assert!(!stderr(&out).contains("GBK"), "{}", stderr(&out));

    // Without a BOM (zero bytes): was decoded as GBK into garbage column names.
    let p = utf16(&f.data.train_pairs, false);
    let out_dir = f.root.join("split16");
    // (split has no --quiet.)
    let out = Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .args(["split", "--held-out", "5", "--seed", "9", "--pairs"])
        .arg(&p)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    succeeds(&out);
    let held = tuwen::data::read_pairs(&out_dir.join("heldout.csv")).unwrap();
    // The library split (for the lead's `split`) picks the same images as the command.
    let lib =
        tuwen::data::split_by_image(&tuwen::data::read_pairs(&p).unwrap(), 5, 9, None).unwrap();
    let key = |v: &[tuwen::data::Pair]| -> Vec<(String, String)> {
        v.iter()
            .map(|p| (p.image_id.clone(), p.caption.clone()))
            .collect()
    };
    assert_eq!(key(&held.pairs), key(&lib.held_out));
}
