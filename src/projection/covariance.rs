//! Covariance matrices Aᵀ·B/(n−1) of centred data, computed from uncentred rows so that sparse
//! inputs (the TF-IDF bag: ~15 non-zeros in 8,000 columns) stay sparse. Dense inputs go to BLAS.
use crate::sparse::SparseRows;
use ndarray::{Array1, Array2, Axis};

/// Fraction of non-zero entries below which a matrix is treated as sparse.
const SPARSE: f64 = 0.1;

/// One side of a covariance: a dense f64 matrix, or sparse f32 rows (read as f64).
#[derive(Clone, Copy)]
pub enum Side<'a> {
    Dense(&'a Array2<f64>),
    Sparse(&'a SparseRows),
}

impl<'a> From<&'a Array2<f64>> for Side<'a> {
    fn from(a: &'a Array2<f64>) -> Self {
        Side::Dense(a)
    }
}

impl<'a> From<&'a SparseRows> for Side<'a> {
    fn from(a: &'a SparseRows) -> Self {
        Side::Sparse(a)
    }
}

impl Side<'_> {
    pub fn nrows(&self) -> usize {
        match self {
            Side::Dense(a) => a.nrows(),
            Side::Sparse(s) => s.nrows(),
        }
    }
    pub fn ncols(&self) -> usize {
        match self {
            Side::Dense(a) => a.ncols(),
            Side::Sparse(s) => s.ncols(),
        }
    }
    /// Column means (`None` without rows).
    pub fn mean(&self) -> Option<Array1<f64>> {
        match self {
            Side::Dense(a) => a.mean_axis(Axis(0)),
            Side::Sparse(s) => (s.nrows() > 0).then(|| s.mean()),
        }
    }
    fn density(&self) -> f64 {
        match self {
            Side::Dense(a) => {
                a.iter().filter(|v| **v != 0.0).count() as f64 / (a.len().max(1)) as f64
            }
            Side::Sparse(s) => s.density(),
        }
    }
}

/// Row access for the sparse products: the non-zeros of each row.
enum Rows<'a> {
    Dense(&'a Array2<f64>),
    /// Sparse rows that are mostly non-zero (e.g. caption features without the bag): densified
    /// so the product goes through BLAS.
    Densified(Array2<f64>),
    Lists(Vec<Vec<(usize, f64)>>),
    Csr(&'a SparseRows),
}

impl<'a> Rows<'a> {
    /// Dense matrices that are mostly zeros are listed by their non-zeros.
    fn of(side: Side<'a>) -> Rows<'a> {
        match side {
            Side::Sparse(s) if s.density() >= SPARSE => Rows::Densified(s.to_dense_f64()),
            Side::Sparse(s) => Rows::Csr(s),
            Side::Dense(a) if side.density() < SPARSE => Rows::Lists(
                a.axis_iter(Axis(0))
                    .map(|r| {
                        r.iter()
                            .enumerate()
                            .filter(|(_, v)| **v != 0.0)
                            .map(|(j, v)| (j, *v))
                            .collect()
                    })
                    .collect(),
            ),
            Side::Dense(a) => Rows::Dense(a),
        }
    }
    /// The dense matrix, when the rows are held dense.
    fn dense(&self) -> Option<&Array2<f64>> {
        match self {
            Rows::Dense(a) => Some(a),
            Rows::Densified(a) => Some(a),
            _ => None,
        }
    }
    /// Row `r`'s non-zeros into `buf` (cleared first). Only for sparse rows: dense ones are
    /// multiplied whole through BLAS in [`cross_covariance`].
    fn nonzeros(&self, r: usize, buf: &mut Vec<(usize, f64)>) {
        buf.clear();
        match self {
            Rows::Dense(_) | Rows::Densified(_) => unreachable!("dense rows go through BLAS"),
            Rows::Lists(l) => buf.extend_from_slice(&l[r]),
            Rows::Csr(s) => {
                let (cols, vals) = s.row(r);
                buf.extend(
                    cols.iter()
                        .zip(vals)
                        .map(|(&j, &v)| (j as usize, f64::from(v))),
                );
            }
        }
    }
}

/// Cov(A, B) with the given column means.
pub fn cross_covariance<'a, 'b>(
    a: impl Into<Side<'a>>,
    b: impl Into<Side<'b>>,
    mean_a: &Array1<f64>,
    mean_b: &Array1<f64>,
) -> Array2<f64> {
    let (a, b) = (a.into(), b.into());
    let n = a.nrows();
    assert_eq!(
        n,
        b.nrows(),
        "covariance of sides with different row counts"
    );
    let denom = (n - 1) as f64;
    let (ra, rb) = (Rows::of(a), Rows::of(b));
    let (p, q) = (a.ncols(), b.ncols());
    let mut out = match (ra.dense(), rb.dense()) {
        (Some(a), Some(b)) => {
            let ac = a - mean_a;
            let bc = b - mean_b;
            return ac.t().dot(&bc) / denom;
        }
        // Σ aᵢ bᵢᵀ over the rows, from the non-zeros of the sparser side, then − n·μa·μbᵀ.
        (Some(a), None) => {
            // Dense A, sparse B: accumulate Bᵀ·A row by row (contiguous), transpose at the end.
            let mut t = Array2::<f64>::zeros((q, p));
            let mut nz = Vec::new();
            for (r, row_a) in a.axis_iter(Axis(0)).enumerate() {
                rb.nonzeros(r, &mut nz);
                for &(j, vb) in &nz {
                    t.row_mut(j).scaled_add(vb, &row_a);
                }
            }
            t.reversed_axes().as_standard_layout().into_owned()
        }
        (None, Some(b)) => {
            let mut out = Array2::<f64>::zeros((p, q));
            let mut nz = Vec::new();
            for (r, row_b) in b.axis_iter(Axis(0)).enumerate() {
                ra.nonzeros(r, &mut nz);
                for &(i, va) in &nz {
                    out.row_mut(i).scaled_add(va, &row_b);
                }
            }
            out
        }
        (None, None) => {
            let mut out = Array2::<f64>::zeros((p, q));
            let (mut za, mut zb) = (Vec::new(), Vec::new());
            for r in 0..n {
                ra.nonzeros(r, &mut za);
                rb.nonzeros(r, &mut zb);
                for &(i, va) in &za {
                    let row = out.row_mut(i).into_slice().expect("standard layout");
                    for &(j, vb) in &zb {
                        row[j] += va * vb;
                    }
                }
            }
            out
        }
    };
    // In place: the outer product of the means would be another p×q matrix (525 MB at 8,100
    // caption columns).
    for (mut row, &ma) in out.axis_iter_mut(Axis(0)).zip(mean_a) {
        row.scaled_add(-(n as f64) * ma, mean_b);
    }
    out.mapv_inplace(|v| v / denom);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_and_dense_paths_agree() {
        let n = 50;
        let dense = Array2::from_shape_fn((n, 4), |(i, j)| ((i * 7 + j * 3) as f64 * 0.37).sin());
        let sparse = Array2::from_shape_fn((n, 30), |(i, j)| {
            if (i + 2 * j) % 11 == 0 {
                1.0 + (i % 3) as f64
            } else {
                0.0
            }
        });
        let mean = |m: &Array2<f64>| m.mean_axis(Axis(0)).unwrap();
        let reference = |a: &Array2<f64>, b: &Array2<f64>| {
            (a - &mean(a)).t().dot(&(b - &mean(b))) / (n - 1) as f64
        };
        for (a, b) in [
            (&dense, &sparse),
            (&sparse, &dense),
            (&sparse, &sparse),
            (&dense, &dense),
        ] {
            let got = cross_covariance(a, b, &mean(a), &mean(b));
            let want = reference(a, b);
            assert!((&got - &want).iter().all(|d| d.abs() < 1e-10));
        }
        // Sparse f32 rows (the caption features' storage) against the dense f64 reference.
        let csr = SparseRows::from_dense(sparse.mapv(|v| v as f32).view());
        let m = csr.mean();
        assert!((&m - &mean(&sparse)).iter().all(|d| d.abs() < 1e-12));
        for (got, want) in [
            (
                cross_covariance(&csr, &csr, &m, &m),
                reference(&sparse, &sparse),
            ),
            (
                cross_covariance(&dense, &csr, &mean(&dense), &m),
                reference(&dense, &sparse),
            ),
            (
                cross_covariance(&csr, &dense, &m, &mean(&dense)),
                reference(&sparse, &dense),
            ),
        ] {
            assert!((&got - &want).iter().all(|d| d.abs() < 1e-10));
        }
    }
}
