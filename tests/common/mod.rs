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

/// `eval` as the command runs it: the model ready to use, its scorer, the held-out pairs.
pub fn evaluate(
    model: &tuwen::model::Model,
    pairs: &std::path::Path,
    images: &std::path::Path,
    ex: &tuwen::features::image::ExtractOptions,
    vectors: &tuwen::embed::VectorFiles,
    opts: &tuwen::retrieval::ScoreOptions,
) -> tuwen::Result<tuwen::jobs::eval::EvalOutput> {
    let emb = tuwen::embed::Embedder::new(model.clone(), vectors, ex.clone())?;
    let scorer = emb.scorer(*opts)?;
    tuwen::jobs::eval::evaluate(&emb, &scorer, pairs, images)
}

/// Scores closer than this are one score: the same ranking computed on another CPU (other BLAS
/// and oneDNN kernels) may order them either way.
pub const SCORE_TOL: f32 = 1e-5;

/// Whether two top-k lists are the same ranking up to float noise: scores agree rank by rank
/// within `tol`, and every id of one list is in the other at a position of (nearly) its score —
/// or, if missing, it sits at the cut-off, tied with the other list's last score. Returns why
/// not.
pub fn same_ranking(a: &[(String, f32)], b: &[(String, f32)], tol: f32) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{} vs {} results", a.len(), b.len()));
    }
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if (x.1 - y.1).abs() > tol || (x.1 - y.1).is_nan() {
            return Err(format!("rank {}: score {} vs {}", i + 1, x.1, y.1));
        }
    }
    for (one, other) in [(a, b), (b, a)] {
        let last = other.last().map_or(f32::NAN, |l| l.1);
        for (id, s) in one {
            let ok = match other.iter().find(|(o, _)| o == id) {
                Some((_, t)) => (s - t).abs() <= tol,
                None => (s - last).abs() <= tol,
            };
            if !ok {
                return Err(format!(
                    "`{id}` ({s}) is not in the other list at its score"
                ));
            }
        }
    }
    Ok(())
}

/// [`same_ranking`] for whole result sets (query id → top-k), as an assertion.
pub fn assert_same_rankings(
    a: &std::collections::BTreeMap<String, Vec<(String, f32)>>,
    b: &std::collections::BTreeMap<String, Vec<(String, f32)>>,
    tol: f32,
) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "different queries"
    );
    for (q, ra) in a {
        if let Err(e) = same_ranking(ra, &b[q], tol) {
            panic!("query `{q}`: {e}\n  {ra:?}\n  {:?}", b[q]);
        }
    }
}

#[test]
fn same_ranking_treats_near_ties_as_interchangeable() {
    let l = |v: &[(&str, f32)]| {
        v.iter()
            .map(|&(i, s)| (i.to_string(), s))
            .collect::<Vec<_>>()
    };
    let a = l(&[("x", 0.9), ("y", 0.5), ("z", 0.5)]);
    // Swapped near-ties, and a tie at the cut-off replaced by another item of the same score.
    assert!(same_ranking(&a, &l(&[("x", 0.9), ("z", 0.5), ("y", 0.500_000_2)]), 1e-5).is_ok());
    assert!(same_ranking(&a, &l(&[("x", 0.9), ("y", 0.5), ("w", 0.5)]), 1e-5).is_ok());
    // A real difference is one.
    assert!(same_ranking(&a, &l(&[("y", 0.9), ("x", 0.5), ("z", 0.5)]), 1e-5).is_err());
    assert!(same_ranking(&a, &l(&[("x", 0.9), ("y", 0.5), ("w", 0.4)]), 1e-5).is_err());
    assert!(same_ranking(&a, &l(&[("x", 0.9), ("y", 0.5)]), 1e-5).is_err());
}

/// `img` encoded as a JPEG (the image crate's encoder, default quality).
pub fn jpeg(img: &image::RgbImage) -> Vec<u8> {
    let mut buf = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut buf),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    buf
}
