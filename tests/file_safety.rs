//! No command loses a user's files (issue 16, items 1, 9, 10, 11): output folders are replaced
//! only when tuwen wrote them and never over an input, every output is whole or absent after a
//! failure or a kill, leftovers of killed runs are cleaned, and a skip list is always written.
//! Runs the built binary on generated fixtures; needs models/ from set-up, not ../shared.
mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tuwen"))
}

fn run(c: &mut Command) -> Output {
    c.output().unwrap()
}

fn ok(c: &mut Command) -> String {
    let out = run(c);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Failed cleanly (no panic), with a message containing every needle.
fn fails(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "message lacks `{n}`: {err}");
    }
}

fn names(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Back-date a leftover so it counts as one of a killed run (not one being written right now).
fn age(p: &Path) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::open(p).unwrap().set_modified(t).unwrap();
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).unwrap().lines().count()
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

fn split(pairs: &Path, out: &Path) -> Command {
    let mut c = bin();
    c.args(["split", "--held-out", "3", "--pairs"])
        .arg(pairs)
        .arg("--out")
        .arg(out);
    c
}

#[test]
fn fit_replaces_only_a_model_folder_and_never_its_inputs() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let data = tuwen::data::synthetic::generate(&root.join("syn"), 24, 4, 3).unwrap();
    let cache = root.join("cache");

    // The case: the training CSV inside a user's folder given as --out.
    let user = root.join("userdir");
    std::fs::create_dir_all(user.join("sub")).unwrap();
    std::fs::write(user.join("important.txt"), "precious").unwrap();
    std::fs::copy(&data.train_pairs, user.join("train.csv")).unwrap();
    let before = names(&user);
    let out = run(&mut fit(
        &user.join("train.csv"),
        &data.images,
        &user,
        &cache,
    ));
    fails(&out, &["userdir", "input"]);
    assert_eq!(names(&user), before);
    assert_eq!(
        std::fs::read_to_string(user.join("important.txt")).unwrap(),
        "precious"
    );
    // A user's folder that holds no input is not a model folder either.
    std::fs::remove_file(user.join("train.csv")).unwrap();
    let out = run(&mut fit(&data.train_pairs, &data.images, &user, &cache));
    fails(
        &out,
        &[
            "userdir",
            "important.txt",
            "not a model folder written by tuwen",
        ],
    );
    assert_eq!(names(&user), ["important.txt", "sub"]);
    // --out the image folder: refused, every image kept.
    let imgs = names(&data.images);
    let out = run(&mut fit(
        &data.train_pairs,
        &data.images,
        &data.images,
        &cache,
    ));
    fails(&out, &["input"]);
    assert_eq!(names(&data.images), imgs);

    // A new folder, then a refit over tuwen's own model: fine, nothing left beside it.
    let m = root.join("m");
    ok(&mut fit(&data.train_pairs, &data.images, &m, &cache));
    // A save killed between its two renames (tuwen before this fix): no `m`, the previous
    // model and the new one as dot-folders. Loading puts the previous one back.
    let (old, new) = (root.join(".m.Ab12Cd.old"), root.join(".m.Ef34Gh.tmp"));
    std::fs::rename(&m, &old).unwrap();
    std::fs::create_dir(&new).unwrap();
    for f in names(&old) {
        std::fs::copy(old.join(&f), new.join(&f)).unwrap();
    }
    tuwen::model::Model::load(&m).expect("the previous model is restored");
    assert!(m.join("config.json").is_file() && !old.exists());
    // The next save clears the other leftover (and any killed save's staging).
    let dead = root.join(".m.tuwen-zzzzzz.tmp");
    std::fs::create_dir(&dead).unwrap();
    age(&new);
    age(&dead);
    ok(&mut fit(&data.train_pairs, &data.images, &m, &cache));
    let left: Vec<String> = names(root)
        .into_iter()
        .filter(|n| n.starts_with(".m."))
        .collect();
    assert!(left.is_empty(), "leftovers not cleaned: {left:?}");
    // A file the user put into the model folder blocks the refit instead of vanishing.
    std::fs::write(m.join("notes.txt"), "mine").unwrap();
    let out = run(&mut fit(&data.train_pairs, &data.images, &m, &cache));
    fails(&out, &["notes.txt"]);
    assert!(m.join("notes.txt").is_file() && m.join("config.json").is_file());
}

#[test]
fn split_never_overwrites_its_input_and_is_whole_or_absent() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let data = tuwen::data::synthetic::generate(&root.join("syn"), 12, 0, 4).unwrap();
    let n = lines(&data.train_pairs);

    // Item 9: --pairs sdir/train.csv --out sdir.
    let sdir = root.join("sdir");
    std::fs::create_dir(&sdir).unwrap();
    std::fs::copy(&data.train_pairs, sdir.join("train.csv")).unwrap();
    for _ in 0..2 {
        fails(&run(&mut split(&sdir.join("train.csv"), &sdir)), &["input"]);
        assert_eq!(lines(&sdir.join("train.csv")), n);
    }
    // Even once sdir is tuwen's own split folder.
    let out = root.join("out");
    ok(&mut split(&data.train_pairs, &out));
    let first = std::fs::read(out.join("train.csv")).unwrap();
    fails(&run(&mut split(&out.join("train.csv"), &out)), &["input"]);
    assert_eq!(std::fs::read(out.join("train.csv")).unwrap(), first);

    // A rerun replaces tuwen's folder; with the Teddy layout, and again over that.
    let with_layout = |c: &mut Command| {
        c.arg("--teddy-layout").arg("--images").arg(&data.images);
    };
    for _ in 0..2 {
        let mut c = split(&data.train_pairs, &out);
        with_layout(&mut c);
        ok(&mut c);
    }
    assert!(out.join("附件2/ImageData").is_dir() && out.join("附件3/truth.csv").is_file());
    // A user's folder, and a user's file added to tuwen's folder: refused, kept.
    let user = root.join("user");
    std::fs::create_dir(&user).unwrap();
    std::fs::write(user.join("notes.txt"), "mine").unwrap();
    fails(
        &run(&mut split(&data.train_pairs, &user)),
        &["user", "notes.txt", "not a split folder written by tuwen"],
    );
    std::fs::write(out.join("附件2/result1.csv"), "mine").unwrap();
    let mut c = split(&data.train_pairs, &out);
    with_layout(&mut c);
    fails(&run(&mut c), &["result1.csv"]);
    assert!(out.join("附件2/result1.csv").is_file());
    std::fs::remove_file(out.join("附件2/result1.csv")).unwrap();

    // Item 10: a split killed while writing (here: by the file-size limit, the moment it writes
    // a byte) prints no success and leaves the previous output whole.
    let before: Vec<(String, Vec<u8>)> = ["train.csv", "heldout.csv", "附件2/word_test.csv"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(out.join(f)).unwrap()))
        .collect();
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("ulimit -f 0; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_tuwen"))
        .args(["split", "--held-out", "4", "--seed", "9", "--pairs"])
        .arg(&data.train_pairs)
        .arg("--out")
        .arg(&out);
    with_layout(&mut c);
    let killed = c.output().unwrap();
    assert!(!killed.status.success());
    assert!(
        !String::from_utf8_lossy(&killed.stdout).contains("held out"),
        "no success line: {}",
        String::from_utf8_lossy(&killed.stdout)
    );
    for (f, bytes) in &before {
        assert_eq!(&std::fs::read(out.join(f)).unwrap(), bytes, "{f} changed");
    }
    // Its staging folder is cleaned by the next run.
    let staged: Vec<String> = names(root)
        .into_iter()
        .filter(|n| n.starts_with(".out."))
        .collect();
    assert_eq!(staged.len(), 1, "{staged:?}");
    age(&root.join(&staged[0]));
    let mut c = split(&data.train_pairs, &out);
    with_layout(&mut c);
    ok(&mut c);
    assert!(names(root).iter().all(|n| !n.starts_with(".out.")));
}

/// A fitted model and 附件2 / 附件3 laid out from the held-out pairs.
struct Fixture {
    _d: tempfile::TempDir,
    root: PathBuf,
    model: PathBuf,
    cache: PathBuf,
    d2: PathBuf,
    d3: PathBuf,
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
    let val = tuwen::data::read_pairs(&data.val_pairs).unwrap();
    let (d2, d3) = (root.join("附件2"), root.join("附件3"));
    tuwen::jobs::split::layout_teddy(&val.pairs, &data.images, &d2, &d3).unwrap();
    Fixture {
        _d: d,
        root,
        model,
        cache,
        d2,
        d3,
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
    fn rank(&self, out_dir: &Path) -> Command {
        let mut c = self.cmd("rank");
        c.arg("--teddy-dir")
            .arg(&self.d2)
            .arg("--teddy-dir")
            .arg(&self.d3)
            .arg("--out-dir")
            .arg(out_dir);
        c
    }
}

#[test]
fn rank_report_export_replace_only_their_own_outputs() {
    let f = fixture();
    let res = f.root.join("results");

    // Item 11: a run without skips still writes its skip list (no old list left in place).
    let list = f.root.join("skips.csv");
    std::fs::write(
        &list,
        "file,row,id,reason\nold.csv,3,x.jpg,file not found\n",
    )
    .unwrap();
    // Item 10: temporaries of a killed earlier rank are cleaned.
    std::fs::create_dir_all(&res).unwrap();
    let dead = res.join(".result2.csv.tuwen-zzzzzz.tmp");
    std::fs::write(&dead, "half").unwrap();
    age(&dead);
    ok(f.rank(&res).arg("--skip-list").arg(&list));
    assert_eq!(
        std::fs::read_to_string(&list).unwrap(),
        "file,row,id,reason\n"
    );
    assert_eq!(names(&res), ["result1.csv", "result2.csv"]);

    // Item 10: when a task fails, no result file is replaced (never a new result1.csv beside a
    // stale result2.csv).
    // (An earlier result file of this task: its header marks it as tuwen's.)
    let previous = "text_id,similarity_ranking,result_image_id\nprevious\n";
    std::fs::write(res.join("result1.csv"), previous).unwrap();
    let image_test = f.d3.join("image_test.csv");
    let saved = std::fs::read(&image_test).unwrap();
    std::fs::write(&image_test, "image_id\ngone1.jpg\ngone2.jpg\n").unwrap();
    fails(&run(&mut f.rank(&res)), &["image_test.csv"]);
    assert_eq!(
        std::fs::read_to_string(res.join("result1.csv")).unwrap(),
        previous
    );
    std::fs::write(&image_test, saved).unwrap();

    // A skip list or a result never overwrites an input.
    let word_test = f.d2.join("word_test.csv");
    let words = std::fs::read(&word_test).unwrap();
    fails(
        &run(f.rank(&res).arg("--skip-list").arg(&word_test)),
        &["word_test.csv", "not a skip list"],
    );
    assert_eq!(std::fs::read(&word_test).unwrap(), words);

    // report: --out an input, and over a file tuwen did not write.
    let report = |out: &Path| {
        let mut c = f.cmd("report");
        c.args(["--n", "2", "--teddy-dir"])
            .arg(&f.d2)
            .arg("--out")
            .arg(out);
        run(&mut c)
    };
    fails(&report(&word_test), &["word_test.csv", "input"]);
    assert_eq!(std::fs::read(&word_test).unwrap(), words);
    let sheet = f.root.join("sheet");
    std::fs::create_dir_all(&sheet).unwrap();
    std::fs::write(sheet.join("page.html"), "<p>my page</p>").unwrap();
    fails(
        &report(&sheet.join("page.html")),
        &["page.html", "not a report"],
    );
    assert_eq!(
        std::fs::read_to_string(sheet.join("page.html")).unwrap(),
        "<p>my page</p>"
    );
    assert!(
        !sheet.join("result1.csv").exists(),
        "no result file of a failed report"
    );
    // Its own sheet it replaces; a folder in the way is an error, not replaced.
    let r = sheet.join("r.html");
    assert!(report(&r).status.success());
    assert!(report(&r).status.success());
    fails(&report(&sheet), &["sheet"]);
    assert!(sheet.join("page.html").is_file());

    // export: --out the pairs file it reads, or a folder.
    let pairs = std::fs::read(&f.pairs).unwrap();
    let export = |out: &Path| {
        let mut c = f.cmd("export");
        c.arg("--pairs")
            .arg(&f.pairs)
            .arg("--images")
            .arg(&f.images)
            .arg("--out")
            .arg(out);
        run(&mut c)
    };
    fails(&export(&f.pairs), &["input"]);
    assert_eq!(std::fs::read(&f.pairs).unwrap(), pairs);
    fails(&export(&sheet), &["sheet", "folder"]);
    assert!(sheet.join("page.html").is_file());
    assert!(export(&f.root.join("e.parquet")).status.success());
}
