//! Shared helpers for integration tests.
#![allow(dead_code)]
use std::path::PathBuf;

/// `../shared/data` beside the checkout. Tests that need it fail (never skip) when it is missing.
pub fn shared_data() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    assert!(
        p.is_dir(),
        "this test needs the real data in {} (../shared/data beside the checkout)",
        p.display()
    );
    p
}

/// The models folder filled by scripts/setup.sh.
pub fn models() -> PathBuf {
    let p = tuwen::features::image::backbone::default_models_dir();
    assert!(
        p.join("SHA256SUMS").is_file(),
        "run `bash scripts/setup.sh` first: {} is not set up",
        p.display()
    );
    p
}

/// First `n` Flickr8k-CN val images whose captions mention `word`.
pub fn flickr_images_with(word: &str, n: usize) -> Vec<PathBuf> {
    let d = shared_data().join("flickr8k-cn");
    let p = tuwen::data::read_pairs(&d.join("val.csv")).unwrap();
    let mut out: Vec<PathBuf> = Vec::new();
    for pair in p.pairs {
        let path = d.join("images").join(&pair.image_id);
        if pair.caption.contains(word) && !out.contains(&path) {
            out.push(path);
        }
        if out.len() == n {
            break;
        }
    }
    out
}
