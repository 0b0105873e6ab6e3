//! `tuwen extract --shard K/N`: N runs extract disjoint parts covering every id, and their
//! caches merge by copying files into one folder. Generated images, models/ from set-up.
mod common;
use std::path::Path;
use std::process::Command;
use tuwen::features::image::{
    self, cache::FeatureCache, BackboneKind, ExtractOptions, ImageFeatureConfig, Pooling, Shard,
};

fn extract_cli(pairs: &Path, images: &Path, cache: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .args([
            "extract",
            "--quiet",
            "--backbone",
            "efficientnet-lite0",
            "--flip",
            "false",
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
    let cfg = ImageFeatureConfig {
        backbone: BackboneKind::EfficientNetLite0,
        pooling: Pooling::Avg,
        flip: false,
    };
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
        assert_eq!(
            FeatureCache::open(&dir, spec.dim()).unwrap().len(),
            part.len()
        );
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
