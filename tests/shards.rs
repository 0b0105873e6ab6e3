//! `tuwen extract --shard K/N`: N runs extract disjoint parts covering every id, and their
//! caches merge by copying files into one folder. Generated images, models/ from set-up.
mod common;
use std::path::Path;
use std::process::Command;
use tuwen::features::image::{
    self, cache::FeatureCache, BackboneKind, ExtractOptions, ImageFeatureConfig, Pooling, Shard,
};

fn extract_cli(pairs: &Path, images: &Path, cache: &Path, extra: &[&str]) -> (bool, String) {
    extract_cli_flip(false, pairs, images, cache, extra)
}

fn extract_cli_flip(
    flip: bool,
    pairs: &Path,
    images: &Path,
    cache: &Path,
    extra: &[&str],
) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .args([
            "extract",
            "--quiet",
            "--backbone",
            "efficientnet-lite0",
            "--flip",
            if flip { "true" } else { "false" },
            "--second-backbone",
            "none",
        ])
        .arg("--pairs")
        .arg(pairs)
        .arg("--images")
        .arg(images)
        .arg("--cache")
        .arg(cache)
        .args(extra)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(101), "panicked");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn three_shards_merge_into_one_full_cache() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let data = tuwen::data::synthetic::generate(&root.join("syn"), 24, 0, 3).unwrap();
    let p = tuwen::data::read_pairs(&data.train_pairs).unwrap();
    let (ids, _) = tuwen::data::group_images(&p.pairs);
    let cfg = ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, false);
    let spec = cfg.resolve(None).unwrap();

    // The three parts partition the ids.
    let parts: Vec<Vec<String>> = (1..=3)
        .map(|k| Shard::new(k, 3).unwrap().select(&ids))
        .collect();
    assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), ids.len());
    for id in &ids {
        assert_eq!(parts.iter().filter(|p| p.contains(id)).count(), 1, "{id}");
    }
    assert!(parts.iter().all(|p| !p.is_empty()));

    // One run per part, each into its own cache, holding exactly its part.
    let merged = root.join("merged").join(spec.cache_key());
    std::fs::create_dir_all(&merged).unwrap();
    for (k, part) in (1..=3).zip(&parts) {
        let cache = root.join(format!("cache{k}"));
        let (ok, out) = extract_cli(
            &data.train_pairs,
            &data.images,
            &cache,
            &["--shard", &format!("{k}/3")],
        );
        assert!(ok, "{out}");
        assert!(
            out.contains(&format!("{} images: {} computed", part.len(), part.len())),
            "{out}"
        );
        let dir = cache.join(spec.cache_key());
        assert_eq!(FeatureCache::open(&dir, &spec).unwrap().len(), part.len());
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, merged.join(f.file_name().unwrap())).unwrap();
        }
    }

    // The merged cache serves every image, computing none (CLI and library), with the features
    // of one full run.
    let merged_root = root.join("merged");
    let (ok, out) = extract_cli(&data.train_pairs, &data.images, &merged_root, &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{} images: 0 computed", ids.len()))
            && out.contains(&format!("{} from cache", ids.len())),
        "{out}"
    );
    let opts = |cache: Option<&Path>| ExtractOptions {
        cache_dir: cache.map(Path::to_path_buf),
        progress: false,
        ..Default::default()
    };
    let from_shards = image::extract(&ids, &data.images, &spec, &opts(Some(&merged_root))).unwrap();
    assert_eq!(
        (from_shards.stats.computed, from_shards.stats.from_cache),
        (0, ids.len())
    );
    let full = image::extract(&ids, &data.images, &spec, &opts(None)).unwrap();
    assert_eq!(full.stats.computed, ids.len());
    let diff = (&from_shards.features - &full.features)
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = full.features.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    // Relative: other batches may take other oneDNN kernels, and features reach about 6.
    assert!(
        diff < 1e-5 * scale,
        "max difference {diff} (feature scale {scale})"
    );
}

#[test]
fn bad_shards_are_clear_errors() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("list.csv"), "image_id\nx.png\n").unwrap();
    for bad in ["0/3", "4/3", "1/0", "3", "a/3", "1/2/3"] {
        let (ok, out) = extract_cli(
            &d.path().join("list.csv"),
            d.path(),
            &d.path().join("cache"),
            &["--shard", bad],
        );
        assert!(!ok, "{bad}: {out}");
        assert!(out.contains("K/N") && out.contains(bad), "{bad}: {out}");
    }
    // The help says which K is first.
    let out = Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .args(["extract", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("1-based"));
}

fn shards_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    v.sort();
    v
}

/// Rewrite a shard's values (doubled), keeping a valid safetensors file and its metadata.
fn tamper(path: &Path) {
    use safetensors::{tensor::TensorView, SafeTensors};
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("features").unwrap();
    let data: Vec<u8> = t
        .data()
        .chunks(4)
        .flat_map(|b| (2.0 * f32::from_le_bytes([b[0], b[1], b[2], b[3]])).to_le_bytes())
        .collect();
    let view = TensorView::new(t.dtype(), t.shape().to_vec(), &data).unwrap();
    let out = safetensors::serialize([("features", view)], meta.metadata()).unwrap();
    std::fs::write(path, out).unwrap();
}

struct Fixture {
    _d: tempfile::TempDir,
    root: std::path::PathBuf,
    data: tuwen::data::synthetic::Synthetic,
    /// "N images: N computed".
    computed_all: String,
    n: usize,
}

fn fixture() -> Fixture {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().to_path_buf();
    let data = tuwen::data::synthetic::generate(&root.join("syn"), 6, 0, 5).unwrap();
    let p = tuwen::data::read_pairs(&data.train_pairs).unwrap();
    let n = tuwen::data::group_images(&p.pairs).0.len();
    Fixture {
        _d: d,
        root,
        data,
        computed_all: format!("{n} images: {n} computed"),
        n,
    }
}

fn lite0(flip: bool) -> tuwen::features::image::FeatureSpec {
    ImageFeatureConfig::single(BackboneKind::EfficientNetLite0, Pooling::Avg, flip)
        .resolve(None)
        .unwrap()
}

/// Issue 16 item 6: a shard whose values were rewritten (a valid safetensors file) was served
/// ("60 from cache"). It is named and its images recomputed.
#[test]
fn an_edited_shard_is_named_and_recomputed() {
    let f = fixture();
    let cache = f.root.join("cache");
    let run = || extract_cli(&f.data.train_pairs, &f.data.images, &cache, &[]);
    let (ok, out) = run();
    assert!(ok && out.contains(&f.computed_all), "{out}");
    let shards = shards_in(&cache.join(lite0(false).cache_key()));
    assert!(!shards.is_empty());
    for s in &shards {
        tamper(s);
    }
    let (ok, out) = run();
    assert!(ok, "{out}");
    assert!(
        out.contains(&f.computed_all) && out.contains("0 from cache"),
        "edited rows must not be served: {out}"
    );
    assert!(
        out.contains(&shards[0].display().to_string()) && out.contains("checksum"),
        "{out}"
    );
    // The recomputed shard is served next time (the edited ones are still named).
    let (ok, out) = run();
    assert!(ok && out.contains(&format!("{} from cache", f.n)), "{out}");
}

/// Issue 16 item 6: a no-flip shard copied into the flip folder (merging by copying, wrongly)
/// was served as flip features. It is named and its images recomputed.
#[test]
fn a_shard_copied_into_another_specs_folder_is_named_and_recomputed() {
    let f = fixture();
    let cache = f.root.join("cache");
    let (ok, out) = extract_cli(&f.data.train_pairs, &f.data.images, &cache, &[]);
    assert!(ok, "{out}");
    let flip_dir = cache.join(lite0(true).cache_key());
    std::fs::create_dir_all(&flip_dir).unwrap();
    let copied: Vec<_> = shards_in(&cache.join(lite0(false).cache_key()))
        .into_iter()
        .map(|s| {
            let to = flip_dir.join(s.file_name().unwrap());
            std::fs::copy(&s, &to).unwrap();
            to
        })
        .collect();
    let (ok, out) = extract_cli_flip(true, &f.data.train_pairs, &f.data.images, &cache, &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&f.computed_all) && out.contains("0 from cache"),
        "no-flip rows must not be served as flip: {out}"
    );
    assert!(
        out.contains(&copied[0].display().to_string()) && out.contains("noflip"),
        "{out}"
    );
}

/// Issue 16 item 12: a cache that cannot be written aborted the run after computing a shard.
/// Now it is one warning and the features are still computed. (Tests run as root here, so a
/// read-only folder would still be writable: a file where the cache folder's parent should be
/// fails for every user.)
#[test]
fn an_unwritable_cache_is_one_warning_not_an_abort() {
    let f = fixture();
    let blocker = f.root.join("not-a-folder");
    std::fs::write(&blocker, b"x").unwrap();
    let (ok, out) = extract_cli(
        &f.data.train_pairs,
        &f.data.images,
        &blocker.join("cache"),
        &["--shard-size", "2"],
    );
    assert!(ok, "an unwritable cache must not abort the run: {out}");
    assert!(
        out.contains(&f.computed_all) && out.contains("continuing without caching"),
        "{out}"
    );
    assert_eq!(
        out.matches("continuing without caching").count(),
        1,
        "{out}"
    );
}
