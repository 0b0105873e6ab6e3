//! Every command on empty and all-missing inputs: a non-zero exit with a message that says what
//! was found and what to do — never a panic (exit 101). Needs models/ from set-up, not ../shared.
mod common;
use std::path::Path;
use std::process::{Command, Output};

fn tuwen(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tuwen"));
    c.args(args);
    for (flag, p) in paths {
        c.arg(flag).arg(p);
    }
    c.arg("--quiet").output().unwrap()
}

/// The command failed cleanly and its message contains every one of `needles`.
fn fails_with(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_ne!(out.status.code(), Some(101), "panicked: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "message lacks `{n}`: {err}");
    }
}

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

#[test]
fn every_command_errors_clearly_on_empty_and_missing_inputs() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    // A real little set to fit a model on.
    let data = tuwen::data::synthetic::generate(&root.join("syn"), 24, 8, 3).unwrap();
    let model = root.join("model");
    let lite0 = ["--backbone", "efficientnet-lite0", "--flip", "false"];
    let cache = root.join("cache");
    let mut fit_args = vec!["fit", "--components", "4"];
    fit_args.extend(lite0);
    let out = tuwen(
        &fit_args,
        &[
            ("--pairs", &data.train_pairs),
            ("--images", &data.images),
            ("--out", &model),
            ("--cache", &cache),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 附件1 laid out as shipped: pairs beside ImageData/; the user points --images at the parent.
    let att1 = root.join("附件1");
    let pairs_text = std::fs::read_to_string(&data.train_pairs).unwrap();
    write(&att1.join("ImageWordData.csv"), &pairs_text);
    std::fs::create_dir_all(att1.join("ImageData")).unwrap();
    let empty = root.join("empty.csv");
    write(&empty, "image_id,caption\n");

    // fit: all images missing (wrong folder) → says 0 of N and suggests ImageData.
    let mut a = vec!["fit"];
    a.extend(lite0);
    let out = tuwen(
        &a,
        &[
            ("--pairs", &att1.join("ImageWordData.csv")),
            ("--images", &att1),
            ("--out", &root.join("m2")),
            ("--cache", &cache),
        ],
    );
    let n_images = 24;
    fails_with(
        &out,
        &[
            &format!("0 of {n_images} images"),
            "did you mean",
            "ImageData",
        ],
    );
    assert!(
        !root.join("m2").exists(),
        "no model folder is written on failure"
    );
    // fit: a pairs file with no rows.
    let out = tuwen(
        &a,
        &[
            ("--pairs", &empty),
            ("--images", &data.images),
            ("--out", &root.join("m3")),
            ("--cache", &cache),
        ],
    );
    fails_with(&out, &["empty.csv", "no usable pair"]);

    // eval: empty pairs, and all images missing.
    let m = [("--model", model.as_path()), ("--cache", cache.as_path())];
    let out = tuwen(
        &["eval"],
        &[m[0], m[1], ("--pairs", &empty), ("--images", &data.images)],
    );
    fails_with(&out, &["no usable pair"]);
    let out = tuwen(
        &["eval"],
        &[
            m[0],
            m[1],
            ("--pairs", &data.val_pairs),
            ("--images", &att1),
        ],
    );
    fails_with(&out, &["0 of 8 images", "did you mean"]);
    // eval: a model folder that does not exist.
    let out = tuwen(
        &["eval"],
        &[
            ("--model", &root.join("nope")),
            ("--pairs", &data.val_pairs),
            ("--images", &data.images),
        ],
    );
    fails_with(&out, &["nope", "model folder not found"]);

    // rank / report on a 附件2 folder whose lists are empty, then whose images are all missing.
    let att2 = root.join("附件2");
    write(&att2.join("word_test.csv"), "text_id,caption\n");
    write(&att2.join("image_data.csv"), "image_id\n");
    std::fs::create_dir_all(att2.join("ImageData")).unwrap();
    let outdir = root.join("results");
    // rank and report go through one ranking routine: both must say the same.
    let rank_and_report = |needles: &[&str]| {
        for (cmd, flag, target) in [
            ("rank", "--out-dir", outdir.clone()),
            ("report", "--out", outdir.join("r.html")),
        ] {
            let out = tuwen(
                &[cmd],
                &[m[0], m[1], ("--teddy-dir", &att2), (flag, &target)],
            );
            fails_with(&out, needles);
        }
    };
    rank_and_report(&["no rows"]);
    write(
        &att2.join("word_test.csv"),
        "text_id,caption\nWord-1,一只红色的圆\n",
    );
    let ids: Vec<String> = (0..6).map(|i| format!("gone{i}.jpg")).collect();
    write(
        &att2.join("image_data.csv"),
        &format!("image_id\n{}\n", ids.join("\n")),
    );
    rank_and_report(&["0 of 6 images", "not found"]);
    assert!(
        !outdir.join("result1.csv").exists(),
        "no result file on failure"
    );

    // extract: every image missing, and an empty list.
    let mut a = vec!["extract"];
    a.extend(lite0);
    let out = tuwen(
        &a,
        &[
            ("--pairs", &att1.join("ImageWordData.csv")),
            ("--images", &att1),
            ("--cache", &cache),
        ],
    );
    fails_with(&out, &["0 of 24 images", "did you mean"]);
    let out = tuwen(&a, &[("--pairs", &empty), ("--images", &data.images)]);
    fails_with(&out, &["no image ids"]);
}

#[test]
fn extract_skip_list_rows_are_csv_rows() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let data = tuwen::data::synthetic::generate(&d.path().join("syn"), 6, 0, 5).unwrap();
    let pairs = tuwen::data::read_pairs(&data.train_pairs).unwrap();
    let (ids, _) = tuwen::data::group_images(&pairs.pairs);
    // Rows 1–2 repeat one image, so de-duplicated positions and CSV rows differ after them.
    let csv = format!(
        "image_id,caption\n{a},一\n{a},二\n{b},三\nmissing.jpg,四\n{c},五\n",
        a = ids[0],
        b = ids[1],
        c = ids[2]
    );
    let list = d.path().join("list.csv");
    std::fs::write(&list, csv).unwrap();
    let skips = d.path().join("skips.csv");
    let out = tuwen(
        &[
            "extract",
            "--backbone",
            "efficientnet-lite0",
            "--flip",
            "false",
            "--no-cache",
        ],
        &[
            ("--pairs", &list),
            ("--images", &data.images),
            ("--skip-list", &skips),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = tuwen::data::read_table(&skips).unwrap();
    let (cf, cr, ci) = (
        t.column("file").unwrap(),
        t.column("row").unwrap(),
        t.column("id").unwrap(),
    );
    assert_eq!(t.rows.len(), 1);
    assert_eq!(t.rows[0][ci], "missing.jpg");
    // Data row 4 of list.csv (it is the 3rd distinct id).
    assert_eq!(t.rows[0][cr], "4");
    assert!(t.rows[0][cf].ends_with("list.csv"), "{}", t.rows[0][cf]);
}

/// Issue 16 item 4: `extract` read ids outside the image folder (`../x.jpg`, `/abs/x.jpg`) and
/// cached their features; it now refuses them with their row, as every other command does.
#[test]
fn extract_refuses_ids_outside_the_image_folder() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let data = tuwen::data::synthetic::generate(&root.join("syn"), 2, 0, 1).unwrap();
    // A real image outside the folder, reachable by both spellings.
    let outside = root.join("outside.jpg");
    let first = tuwen::data::read_pairs(&data.train_pairs).unwrap().pairs[0]
        .image_id
        .clone();
    std::fs::copy(data.images.join(&first), &outside).unwrap();
    let cache = root.join("cache");
    for bad in ["../outside.jpg".to_string(), outside.display().to_string()] {
        let csv = root.join("ids.csv");
        write(&csv, &format!("image_id\n{first}\n{bad}\n"));
        let out = tuwen(
            &[
                "extract",
                "--backbone",
                "efficientnet-lite0",
                "--flip",
                "false",
            ],
            &[
                ("--pairs", &csv),
                ("--images", &data.images),
                ("--cache", &cache),
            ],
        );
        fails_with(&out, &["row 2", "inside the image folder"]);
    }
    assert!(!cache.exists(), "nothing may be computed or cached");
}
