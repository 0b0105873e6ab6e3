//! Never lose a user's data, and say so early (issue: export/demo outputs, --skip-list checked up
//! front, `split --held-out 0`, an empty `explain --caption`). Runs the built binary on generated
//! fixtures; needs models/ from set-up, not ../shared.
mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tuwen"))
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Failed cleanly (no panic), with a message containing every needle.
fn fails(c: &mut Command, needles: &[&str]) -> String {
    let out: Output = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected a failure; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "message lacks `{n}`: {err}");
    }
    err
}

fn names(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn fit(pairs: &Path, images: &Path, out: &Path, cache: &Path) -> Command {
    let mut c = bin();
    c.args([
        "fit",
        "--quiet",
        "--backbone",
        "efficientnet-lite0",
        "--flip",
        "false",
        "--components",
        "4",
        "--pairs",
    ])
    .arg(pairs)
    .arg("--images")
    .arg(images)
    .arg("--out")
    .arg(out)
    .arg("--cache")
    .arg(cache);
    c
}

/// A fitted model on a small generated set.
struct Fixture {
    _d: tempfile::TempDir,
    root: PathBuf,
    model: PathBuf,
    cache: PathBuf,
    pairs: PathBuf,
    images: PathBuf,
}

fn fixture() -> Fixture {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().to_path_buf();
    let data = tuwen::data::synthetic::generate(&root.join("syn"), 24, 8, 5).unwrap();
    let (model, cache) = (root.join("model"), root.join("cache"));
    ok(&mut fit(&data.train_pairs, &data.images, &model, &cache));
    Fixture {
        _d: d,
        root,
        model,
        cache,
        pairs: data.val_pairs,
        images: data.images,
    }
}

impl Fixture {
    fn cmd(&self, name: &str) -> Command {
        let mut c = bin();
        c.arg(name)
            .arg("--quiet")
            .arg("--model")
            .arg(&self.model)
            .arg("--cache")
            .arg(&self.cache);
        c
    }
    fn export(&self, out: &Path, npy: bool) -> Command {
        let mut c = self.cmd("export");
        c.arg("--pairs")
            .arg(&self.pairs)
            .arg("--images")
            .arg(&self.images)
            .arg("--out")
            .arg(out);
        if npy {
            c.args(["--format", "npy"]);
        }
        c
    }
}

/// Item 1: `export --out` a user's file is refused, naming it; tuwen's own export is replaced.
#[test]
fn export_never_overwrites_a_users_file() {
    let f = fixture();
    let dir = f.root.join("out");
    std::fs::create_dir(&dir).unwrap();

    // Parquet: a user's file (of any content) at --out.
    let mine = dir.join("vectors.parquet");
    std::fs::write(&mine, "my own vectors\n").unwrap();
    let e = fails(
        &mut f.export(&mine, false),
        &["vectors.parquet", "not", "tuwen"],
    );
    assert!(e.contains("remove") || e.contains("another"), "{e}");
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "my own vectors\n");
    // Nor another program's Parquet file (it holds no tuwen metadata).
    let theirs = dir.join("theirs.parquet");
    write_foreign_parquet(&theirs);
    let before = std::fs::read(&theirs).unwrap();
    fails(&mut f.export(&theirs, false), &["theirs.parquet"]);
    assert_eq!(std::fs::read(&theirs).unwrap(), before);
    // A new file, then tuwen's own file again: fine.
    let e = dir.join("e.parquet");
    ok(&mut f.export(&e, false));
    ok(&mut f.export(&e, false));

    // npy: a user's file of the same name as one of the outputs (say their own float32 matrix).
    let prefix = dir.join("emb");
    let users = dir.join("emb.images.npy");
    std::fs::write(&users, b"\x93NUMPY\x01\x00user").unwrap();
    fails(&mut f.export(&prefix, true), &["emb.images.npy", "not"]);
    assert_eq!(std::fs::read(&users).unwrap(), b"\x93NUMPY\x01\x00user");
    assert!(!dir.join("emb.texts.npy").exists(), "nothing written");
    std::fs::remove_file(&users).unwrap();
    // Its own npy files tuwen replaces, also when exports of one kind at a time share a prefix.
    ok(&mut f.export(&prefix, true));
    ok(&mut f.export(&prefix, true));
    let mut c = f.cmd("export");
    c.arg("--pairs")
        .arg(&f.pairs)
        .args(["--what", "texts", "--format", "npy", "--out"])
        .arg(&prefix);
    ok(&mut c);
    ok(&mut f.export(&prefix, true));
}

/// A Parquet file another program wrote (no `tuwen` key in its metadata).
fn write_foreign_parquet(path: &Path) {
    use arrow_array::{ArrayRef, Int32Array, RecordBatch};
    let col: ArrayRef = std::sync::Arc::new(Int32Array::from(vec![1, 2, 3]));
    let batch = RecordBatch::try_from_iter([("x", col)]).unwrap();
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn demo(dir: &Path, cache: &Path) -> Command {
    let mut c = bin();
    c.args([
        "demo",
        "--quiet",
        "--train-images",
        "40",
        "--val-images",
        "10",
        "--dir",
    ])
    .arg(dir)
    .arg("--cache")
    .arg(cache);
    c
}

/// Item 2: `demo --dir` a user's folder is refused (nothing written into it); its own output
/// folder it replaces whole.
#[test]
fn demo_never_writes_into_a_users_folder() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let user = d.path().join("userdir");
    std::fs::create_dir(&user).unwrap();
    std::fs::write(user.join("thesis.txt"), "precious").unwrap();
    fails(
        &mut demo(&user, &cache),
        &["userdir", "thesis.txt", "not a demo folder"],
    );
    assert_eq!(names(&user), ["thesis.txt"]);
    assert!(!cache.exists(), "refused before any work");

    let out = d.path().join("demo");
    let said = ok(&mut demo(&out, &cache));
    assert!(said.contains("R@5"), "{said}");
    assert!(out.join("result1.csv").is_file() && out.join("model/config.json").is_file());
    // The model records where its training data is now, not a staging folder.
    let config = std::fs::read_to_string(out.join("model/config.json")).unwrap();
    let train = out.join("data/train.csv").display().to_string();
    assert!(
        config.contains(&train) && !config.contains(".demo."),
        "{config}"
    );
    // A rerun replaces tuwen's own demo folder; nothing is left beside it.
    ok(&mut demo(&out, &cache));
    assert_eq!(names(d.path()), ["cache", "demo", "userdir"]);
    // A file the user put into it blocks the next run instead of vanishing.
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    fails(&mut demo(&out, &cache), &["notes.txt"]);
    assert!(out.join("notes.txt").is_file() && out.join("result2.csv").is_file());
    std::fs::remove_file(out.join("notes.txt")).unwrap();
    // So do the user's files and folders inside the image folders tuwen laid out.
    for (folder, name) in [
        ("data/ImageData", "my_holiday.jpg"),
        ("附件2/ImageData", "mine.png"),
        ("附件3/ImageData", "album"),
    ] {
        let p = out.join(folder).join(name);
        if name == "album" {
            std::fs::create_dir(&p).unwrap();
        } else {
            std::fs::write(&p, "mine").unwrap();
        }
        fails(&mut demo(&out, &cache), &[name, "did not lay out"]);
        assert!(p.exists(), "{} was deleted", p.display());
        if name == "album" {
            std::fs::remove_dir(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    ok(&mut demo(&out, &cache));
}

/// Item 3: a bad `--skip-list` fails before any work (nothing fitted, extracted or cached), and
/// the check itself creates and truncates nothing.
#[test]
fn a_bad_skip_list_fails_before_any_work() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let data = tuwen::data::synthetic::generate(&root.join("syn"), 24, 0, 5).unwrap();
    let (model, cache) = (root.join("model"), root.join("cache"));
    let users = root.join("notes.csv");
    std::fs::write(&users, "my,notes\n1,2\n").unwrap();
    let a_file = root.join("a_file");
    std::fs::write(&a_file, "x").unwrap();
    let folder = root.join("folder");
    std::fs::create_dir(&folder).unwrap();
    let cases: [(&Path, &[&str]); 3] = [
        (&users, &["notes.csv", "not a skip list"]),
        (&folder, &["folder", "is a folder"]),
        (&a_file.join("skips.csv"), &["a_file", "not a folder"]),
    ];
    for (list, needles) in cases {
        let mut c = fit(&data.train_pairs, &data.images, &model, &cache);
        fails(c.arg("--skip-list").arg(list), needles);
        assert!(!model.exists(), "no model fitted");
        assert!(!cache.exists(), "no feature extracted");
        let mut c = bin();
        c.args(["extract", "--quiet", "--backbone", "efficientnet-lite0"])
            .args(["--flip", "false", "--pairs"])
            .arg(&data.train_pairs)
            .arg("--images")
            .arg(&data.images)
            .arg("--cache")
            .arg(&cache);
        fails(c.arg("--skip-list").arg(list), needles);
        assert!(!cache.exists(), "no feature extracted");
    }
    assert_eq!(std::fs::read_to_string(&users).unwrap(), "my,notes\n1,2\n");
    assert_eq!(names(&folder), Vec::<String>::new());
    // A missing folder is only created once there is a list to write: a run refused for
    // another reason leaves none behind.
    let list = root.join("new/sub/skips.csv");
    let mut c = fit(&root.join("missing.csv"), &data.images, &model, &cache);
    fails(c.arg("--skip-list").arg(&list), &["missing.csv"]);
    assert!(!root.join("new").exists());
    // A good one is written at the end, as before.
    let mut c = fit(&data.train_pairs, &data.images, &model, &cache);
    ok(c.arg("--skip-list").arg(&list));
    assert_eq!(
        std::fs::read_to_string(&list).unwrap(),
        "file,row,id,reason\n"
    );
}

/// Item 4: `split --held-out 0` (an empty held-out set) and a count of all the images or more
/// are refused, naming the flag, and nothing is written.
#[test]
fn split_refuses_an_empty_or_total_held_out_set() {
    let d = tempfile::tempdir().unwrap();
    let data = tuwen::data::synthetic::generate(&d.path().join("syn"), 6, 0, 4).unwrap();
    let out = d.path().join("split");
    for n in ["0", "6", "7"] {
        let mut c = bin();
        c.args(["split", "--held-out", n, "--pairs"])
            .arg(&data.train_pairs)
            .arg("--out")
            .arg(&out);
        fails(&mut c, &["--held-out"]);
        assert!(!out.exists());
    }
    let mut c = bin();
    c.args(["split", "--held-out", "1", "--pairs"])
        .arg(&data.train_pairs)
        .arg("--out")
        .arg(&out);
    ok(&mut c);
}

/// A rerun of `split --teddy-layout` over its own folder is refused when the user put a file or
/// a folder into one of the image folders it laid out (replacing the folder would delete them).
#[test]
fn split_never_deletes_a_users_file_in_its_image_folders() {
    let d = tempfile::tempdir().unwrap();
    let data = tuwen::data::synthetic::generate(&d.path().join("syn"), 8, 0, 4).unwrap();
    let out = d.path().join("split");
    let split = || {
        let mut c = bin();
        c.args(["split", "--held-out", "3", "--teddy-layout", "--pairs"])
            .arg(&data.train_pairs)
            .arg("--images")
            .arg(&data.images)
            .arg("--out")
            .arg(&out);
        c
    };
    ok(&mut split());
    ok(&mut split());
    let user = out.join("附件2/ImageData/user.jpg");
    std::fs::write(&user, "mine").unwrap();
    fails(&mut split(), &["user.jpg", "did not lay out"]);
    assert!(user.is_file());
    std::fs::remove_file(&user).unwrap();
    let sub = out.join("附件3/ImageData/sub");
    std::fs::create_dir(&sub).unwrap();
    fails(&mut split(), &["sub"]);
    assert!(sub.is_dir());
}

/// Item 5: an empty or blank `explain --caption` is refused (before the model is loaded).
#[test]
fn explain_refuses_an_empty_caption() {
    let f = fixture();
    let image = f.images.join(&names(&f.images)[0]);
    for caption in ["", "   ", "\t\n"] {
        let mut c = f.cmd("explain");
        c.arg("--caption").arg(caption).arg("--image").arg(&image);
        fails(&mut c, &["--caption", "empty"]);
    }
    let mut c = f.cmd("explain");
    c.args(["--caption", "一个红色的圆形", "--image"])
        .arg(&image);
    assert!(ok(&mut c).contains("score"));
}
