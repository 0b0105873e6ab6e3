//! Closed-form CCA against reference values from scikit-learn and numpy.
//! The numbers come from `python3 tests/reference/cca_reference.py` (numpy 2, scikit-learn 1.x,
//! `CCA(n_components=2, scale=False, max_iter=10000, tol=1e-12)`), on data defined by formulas.
use linfa::traits::Fit;
use linfa::DatasetBase;
use ndarray::{Array2, Axis};
use tuwen::projection::{CcaParams, SparseRows};

fn data() -> (Array2<f64>, Array2<f64>) {
    let (n, p, q) = (40, 4, 3);
    let x = Array2::from_shape_fn((n, p), |(i, j)| {
        (0.37 * i as f64 * (j as f64 + 1.0) + j as f64).sin()
    });
    let z = Array2::from_shape_fn((n, q), |(i, j)| (0.23 * i as f64 * (j as f64 + 2.0)).cos());
    let y = Array2::from_shape_fn((n, q), |(i, j)| match j {
        0 => x[[i, 0]] + 0.5 * z[[i, 0]],
        1 => x[[i, 1]] - x[[i, 2]] + 0.3 * z[[i, 1]],
        _ => z[[i, 2]] + 0.2 * x[[i, 3]],
    });
    (x, y)
}

const TOL: f64 = 1e-6;

#[test]
fn canonical_correlations_match_sklearn_and_numpy() {
    let (x, y) = data();
    let cca = CcaParams::new(3)
        .fit(&DatasetBase::new(x.clone(), y.clone()))
        .unwrap();
    // sklearn (NIPALS): 0.99373856, 0.86773649; numpy closed form adds the third, 0.17116031.
    let expect = [0.99373856, 0.86773649, 0.17116031];
    for (c, e) in cca.correlations.iter().zip(expect) {
        assert!((c - e).abs() < TOL, "correlation {c} vs reference {e}");
    }
    // The projected columns really have these correlations.
    let (px, py) = (cca.transform_x(&x), cca.transform_y(&y));
    for (k, e) in expect.iter().enumerate() {
        let (a, b) = (px.column(k), py.column(k));
        let r = a.dot(&b) / (a.dot(&a) * b.dot(&b)).sqrt();
        assert!((r - e).abs() < TOL, "component {k}: empirical {r}");
    }
    // Unit variance and uncorrelated within a side: Wxᵀ Cxx Wx = I.
    let cov = px.t().dot(&px) / (x.nrows() - 1) as f64;
    for i in 0..3 {
        for j in 0..3 {
            let e = if i == j { 1.0 } else { 0.0 };
            assert!(
                (cov[[i, j]] - e).abs() < 1e-6,
                "cov[{i},{j}] = {}",
                cov[[i, j]]
            );
        }
    }
}

#[test]
fn first_direction_is_parallel_to_sklearn_rotation() {
    let (x, y) = data();
    let cca = CcaParams::new(2)
        .fit(&DatasetBase::new(x.clone(), y.clone()))
        .unwrap();
    let sk = [-0.03573934, 0.77255355, -0.63393651, 0.00286536];
    let w = cca.wx.column(0);
    let cos = w.iter().zip(sk).map(|(a, b)| a * b).sum::<f64>()
        / (w.dot(&w).sqrt() * sk.iter().map(|v| v * v).sum::<f64>().sqrt());
    assert!(
        cos.abs() > 1.0 - 1e-6,
        "cosine to sklearn's x_rotations_[:,0] is {cos}"
    );
}

#[test]
fn ridge_matches_reference_and_shrinks_correlations() {
    let (x, y) = data();
    let cca = CcaParams::new(3)
        .reg(0.1, 0.1)
        .fit(&DatasetBase::new(x.clone(), y.clone()))
        .unwrap();
    let expect = [0.92463309, 0.75412124, 0.15147751];
    for (c, e) in cca.correlations.iter().zip(expect) {
        assert!(
            (c - e).abs() < TOL,
            "ridge correlation {c} vs reference {e}"
        );
    }
}

#[test]
fn bad_parameters_are_clear_errors() {
    let (x, y) = data();
    let e = CcaParams::new(4)
        .fit(&DatasetBase::new(x.clone(), y.clone()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("1..=3"), "{e}");
    let e = CcaParams::new(2)
        .reg(-1.0, 0.0)
        .fit(&DatasetBase::new(x.clone(), y.clone()))
        .unwrap_err()
        .to_string();
    assert!(e.contains(">= 0"), "{e}");
    let e = CcaParams::new(2)
        .fit(&DatasetBase::new(x.clone(), y.select(Axis(0), &[0, 1, 2])))
        .unwrap_err()
        .to_string();
    assert!(e.contains("rows"), "{e}");
}

#[test]
fn pca_then_cca_projection_recovers_pairs() {
    use tuwen::projection::{Method, ProjectionParams};
    // 30 "images" in 6-d, two noisy "captions" each in 5-d that are a linear view of the image.
    let n = 30;
    let img = Array2::from_shape_fn((n, 6), |(i, j)| {
        (((i * 2654435761usize + j * 40503) % 1000) as f32 / 1000.0 - 0.5) * (6 - j) as f32
    });
    let owner: Vec<usize> = (0..2 * n).map(|t| t / 2).collect();
    let txt = Array2::from_shape_fn((2 * n, 5), |(t, j)| {
        let i = t / 2;
        img[[i, j]] - 0.5 * img[[i, (j + 1) % 6]] + 0.05 * ((t * 13 + j) as f32).cos()
    });
    for method in [Method::PcaCca, Method::Cca] {
        let params = ProjectionParams {
            image_norm: Default::default(),
            method,
            pca_image: 5,
            pca_text: 4,
            whiten: false,
            pca_solver: Default::default(),
            cca: CcaParams::new(4).reg(0.01, 0.01),
            power: 1.0,
            image_blocks: Vec::new(),
            contrastive: None,
        };
        let p = params
            .fit(img.view(), &owner, &SparseRows::from_dense(txt.view()))
            .unwrap();
        let (pi, pt) = (p.project_images(img.view()), p.project_texts(txt.view()));
        let sim = pt.dot(&pi.t());
        let r = tuwen::retrieval::metrics::evaluate(sim.view(), &owner);
        assert!(r.t2i.r1 > 80.0, "{method:?}: text→image R@1 {}", r.t2i.r1);
    }
}

#[test]
fn folded_pca_cca_equals_pca_then_cca_with_uneven_caption_counts() {
    use linfa::traits::Transformer;
    use tuwen::projection::pca::PcaParams;
    use tuwen::projection::{normalize_rows, ImageNorm, Method, ProjectionParams};
    // 20 images; image i has 1 + (i % 4) captions, so caption rows over-weight some images and
    // the CCA mean of PCA outputs is far from zero.
    let n = 20;
    let img = Array2::from_shape_fn((n, 7), |(i, j)| {
        (((i * 2654435761usize + j * 40503) % 1000) as f64 / 1000.0) * (7 - j) as f64
            + if i % 4 == 3 { 2.0 } else { 0.0 }
    });
    let owner: Vec<usize> = (0..n)
        .flat_map(|i| std::iter::repeat_n(i, 1 + i % 4))
        .collect();
    let txt = Array2::from_shape_fn((owner.len(), 5), |(t, j)| {
        let i = owner[t];
        img[[i, j]] + 0.3 * img[[i, 6 - j]] + 0.1 * ((t * 7 + j) as f64).sin()
    });
    let params = ProjectionParams {
        image_norm: ImageNorm::None,
        method: Method::PcaCca,
        pca_image: 5,
        pca_text: 0,
        whiten: false,
        pca_solver: Default::default(),
        cca: CcaParams::new(3).reg(0.1, 0.1),
        power: 0.0,
        image_blocks: Vec::new(),
        contrastive: None,
    };
    let (img32, txt32) = (img.mapv(|v| v as f32), txt.mapv(|v| v as f32));
    let p = params
        .fit(img32.view(), &owner, &SparseRows::from_dense(txt32.view()))
        .unwrap();

    // The same two steps applied one after the other.
    let pca = PcaParams::new(5)
        .fit(&DatasetBase::from(img.clone()))
        .unwrap();
    let z = pca.transform(&img);
    let cca = CcaParams::new(3)
        .reg(0.1, 0.1)
        .fit(&DatasetBase::new(z.select(Axis(0), &owner), txt.clone()))
        .unwrap();
    let mean_z = cca.mean_x.iter().fold(0f64, |m, v| m.max(v.abs()));
    assert!(
        mean_z > 0.1,
        "the test needs a non-zero CCA mean, got {mean_z}"
    );
    let want_i = normalize_rows(cca.transform(&z).mapv(|v| v as f32));
    let want_t = normalize_rows(cca.transform_y(&txt).mapv(|v| v as f32));
    let got_i = p.project_images(img32.view());
    let got_t = p.project_texts(txt32.view());
    let max = |a: &Array2<f32>, b: &Array2<f32>| (a - b).iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        max(&got_i, &want_i) < 1e-4,
        "images: {}",
        max(&got_i, &want_i)
    );
    assert!(
        max(&got_t, &want_t) < 1e-4,
        "texts: {}",
        max(&got_t, &want_t)
    );
}

/// The caption side stored sparse gives the fit of the same matrix dense: a bag-like Y (mostly
/// zeros, the sparse products) and a dense Y (densified, BLAS), both to rounding.
#[test]
fn sparse_targets_fit_as_the_dense_matrix() {
    let (x, _) = data();
    let n = x.nrows();
    let bag = Array2::from_shape_fn((n, 60), |(i, j)| {
        if (i * 7 + j * 3) % 17 == 0 || j == i % 60 {
            ((i + j) % 5) as f64 * 0.25 + 0.5 + x[[i, j % 4]]
        } else {
            0.0
        }
    });
    let (_, dense_y) = data();
    for y in [bag, dense_y] {
        let y32 = y.mapv(|v| v as f32);
        let y = y32.mapv(f64::from);
        let rows = SparseRows::from_dense(y32.view());
        let params = CcaParams::new(3).reg(0.1, 0.2);
        let a = params.fit(&DatasetBase::new(x.clone(), y)).unwrap();
        let b = params.fit(&DatasetBase::new(x.clone(), &rows)).unwrap();
        let close = |p: &Array2<f64>, q: &Array2<f64>| {
            let scale = p.iter().fold(0f64, |m, v| m.max(v.abs()));
            p.iter().zip(q).all(|(u, v)| (u - v).abs() <= 1e-9 * scale)
        };
        assert!(close(&a.wx, &b.wx) && close(&a.wy, &b.wy));
        for (c, d) in a.correlations.iter().zip(&b.correlations) {
            assert!((c - d).abs() < 1e-12, "{c} vs {d}");
        }
        assert!((&a.mean_y - &b.mean_y).iter().all(|d| d.abs() < 1e-12));
    }
}

/// Sparse caption rows are projected a block at a time; rows across a block boundary get what the
/// dense path gives them.
#[test]
fn sparse_text_rows_project_as_dense_rows() {
    let (x, y) = data();
    let (x32, y32) = (x.mapv(|v| v as f32), y.mapv(|v| v as f32));
    let owner: Vec<usize> = (0..x.nrows()).collect();
    let p = tuwen::projection::ProjectionParams {
        cca: CcaParams::new(2).reg(0.1, 0.1),
        ..Default::default()
    }
    .fit(x32.view(), &owner, &SparseRows::from_dense(y32.view()))
    .unwrap();
    // 5,000 rows (more than two blocks of 2,048), cycling the data's rows.
    let many = Array2::from_shape_fn((5000, y32.ncols()), |(i, j)| y32[[i % y32.nrows(), j]]);
    let dense = p.project_texts(many.view());
    let sparse = p.project_text_rows(&SparseRows::from_dense(many.view()));
    assert_eq!(dense.dim(), sparse.dim());
    let worst = (&dense - &sparse).iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(worst <= 1e-6, "{worst}");
}
