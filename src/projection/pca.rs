//! PCA per modality, kept as a plain (mean, components) linear map.
//!
//! Two solvers give the same map: `Eigh` (default) diagonalises the d×d covariance with LAPACK
//! through ndarray-linalg — exact, and about a second for d = 1,280; `Linfa` is linfa-reduction's
//! PCA (LOBPCG truncated SVD). Measured here, linfa-reduction took 339 s for 256 of 1,280
//! dimensions on 3,000 rows and returned fewer components than asked when the data's rank was
//! low, so it is kept for comparison and small problems only.
use crate::error::{Error, Result};
use linfa::traits::{Fit, Transformer};
use linfa::{DatasetBase, ParamGuard};
use ndarray::{Array1, Array2, Axis};
use ndarray_linalg::{Eigh, UPLO};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PcaSolver {
    #[default]
    Eigh,
    Linfa,
}

#[derive(Debug, Clone)]
pub struct PcaMap {
    pub mean: Array1<f64>,
    /// k × d; rows are scaled to unit output variance when whitening.
    pub components: Array2<f64>,
    pub explained_variance_ratio: Array1<f64>,
}

/// Checked PCA hyper-parameters (linfa's validated-params type).
#[derive(Debug, Clone, PartialEq)]
pub struct PcaValidParams {
    components: usize,
    whiten: bool,
    solver: PcaSolver,
}

/// PCA hyper-parameters as given (linfa's params type): `PcaParams::new(k).whiten(true)`, then
/// [`Fit::fit`] on a `DatasetBase` of the rows (targets are ignored).
#[derive(Debug, Clone, PartialEq)]
pub struct PcaParams(PcaValidParams);

impl PcaParams {
    pub fn new(components: usize) -> Self {
        PcaParams(PcaValidParams {
            components,
            whiten: false,
            solver: PcaSolver::Eigh,
        })
    }
    /// Scale each output to unit variance.
    pub fn whiten(mut self, whiten: bool) -> Self {
        self.0.whiten = whiten;
        self
    }
    pub fn solver(mut self, solver: PcaSolver) -> Self {
        self.0.solver = solver;
        self
    }
}

impl ParamGuard for PcaParams {
    type Checked = PcaValidParams;
    type Error = Error;

    fn check_ref(&self) -> Result<&PcaValidParams> {
        if self.0.components == 0 {
            return Err(Error::Param("PCA needs at least 1 component".into()));
        }
        Ok(&self.0)
    }

    fn check(self) -> Result<PcaValidParams> {
        self.check_ref()?;
        Ok(self.0)
    }
}

impl<T> Fit<Array2<f64>, T, Error> for PcaValidParams {
    type Object = PcaMap;

    fn fit(&self, ds: &DatasetBase<Array2<f64>, T>) -> Result<PcaMap> {
        fit(ds.records(), self.components, self.whiten, self.solver)
    }
}

impl Transformer<&Array2<f64>, Array2<f64>> for PcaMap {
    fn transform(&self, x: &Array2<f64>) -> Array2<f64> {
        PcaMap::transform(self, x)
    }
}

/// Fit a PCA with `k` components on the rows of `x`.
pub fn fit(x: &Array2<f64>, k: usize, whiten: bool, solver: PcaSolver) -> Result<PcaMap> {
    if k == 0 || k > x.ncols() || k >= x.nrows() {
        return Err(Error::Param(format!(
            "PCA to {k} dimensions needs 0 < k <= {} features and k < {} samples",
            x.ncols(),
            x.nrows()
        )));
    }
    let map = match solver {
        PcaSolver::Eigh => fit_eigh(x, k, whiten)?,
        PcaSolver::Linfa => {
            let ds = DatasetBase::from(x.clone());
            let pca = linfa_reduction::Pca::params(k)
                .whiten(whiten)
                .fit(&ds)
                .map_err(|e| Error::Linalg(format!("PCA: {e}")))?;
            PcaMap {
                mean: pca.mean().clone(),
                components: pca.components().clone(),
                explained_variance_ratio: pca.explained_variance_ratio(),
            }
        }
    };
    if map.components.nrows() != k {
        return Err(Error::Linalg(format!(
            "PCA found {} components, {k} asked (the data's rank may be lower)",
            map.components.nrows()
        )));
    }
    Ok(map)
}

fn fit_eigh(x: &Array2<f64>, k: usize, whiten: bool) -> Result<PcaMap> {
    let mean = x
        .mean_axis(Axis(0))
        .ok_or_else(|| Error::Param("PCA of an empty matrix".into()))?;
    if x.ncols() > x.nrows() {
        // Wide data (more features than rows, e.g. VGG pool5's 25,088-d on a few thousand
        // images): diagonalise the n×n Gram matrix instead of the d×d covariance; axis i is
        // Xcᵀuᵢ/√(λᵢ(n−1)).
        let n = x.nrows();
        let xc = x - &mean;
        let gram = xc.dot(&xc.t()) / (n - 1) as f64;
        let (vals, vecs) = gram.eigh(UPLO::Lower)?; // same non-zero spectrum as the covariance
        let axis =
            |j: usize| xc.t().dot(&vecs.column(j)) / (vals[j].max(1e-12) * (n - 1) as f64).sqrt();
        return Ok(assemble(mean, &vals, axis, k, whiten));
    }
    let cov = super::covariance::cross_covariance(x, x, &mean, &mean);
    let (vals, vecs) = cov.eigh(UPLO::Lower)?;
    Ok(assemble(
        mean,
        &vals,
        |j| vecs.column(j).to_owned(),
        k,
        whiten,
    ))
}

/// The k leading axes from ascending eigenvalues `vals` (`axis(j)` gives eigenvector j as a
/// unit-length row in feature space), with scikit-learn's sign convention (largest-magnitude entry
/// positive) and optional whitening.
fn assemble(
    mean: Array1<f64>,
    vals: &Array1<f64>,
    axis: impl Fn(usize) -> Array1<f64>,
    k: usize,
    whiten: bool,
) -> PcaMap {
    let last = vals.len() - 1;
    let total: f64 = vals.iter().map(|v| v.max(0.0)).sum();
    let mut components = Array2::<f64>::zeros((k, mean.len()));
    let mut ratio = Array1::<f64>::zeros(k);
    for i in 0..k {
        let j = last - i;
        let mut row = axis(j);
        let big = row
            .iter()
            .cloned()
            .fold(0.0f64, |a, v| if v.abs() > a.abs() { v } else { a });
        if big < 0.0 {
            row.mapv_inplace(|v| -v);
        }
        if whiten {
            row /= vals[j].max(1e-12).sqrt();
        }
        components.row_mut(i).assign(&row);
        ratio[i] = vals[j].max(0.0) / total.max(f64::MIN_POSITIVE);
    }
    PcaMap {
        mean,
        components,
        explained_variance_ratio: ratio,
    }
}

impl PcaMap {
    pub fn transform(&self, x: &Array2<f64>) -> Array2<f64> {
        (x - &self.mean).dot(&self.components.t())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Array2<f64> {
        // Full-rank, deterministic: a fixed mixing of pseudo-random columns with falling scale.
        Array2::from_shape_fn((60, 6), |(i, j)| {
            let h = ((i * 2654435761usize + j * 40503) % 1000) as f64 / 1000.0 - 0.5;
            h * (6 - j) as f64 + 0.3 * ((i + j) as f64).sin()
        })
    }

    #[test]
    fn eigh_and_linfa_agree_up_to_sign() {
        let x = data();
        let a = fit(&x, 3, false, PcaSolver::Eigh).unwrap();
        let b = fit(&x, 3, false, PcaSolver::Linfa).unwrap();
        for i in 0..3 {
            let dot = a.components.row(i).dot(&b.components.row(i));
            assert!(
                (dot.abs() - 1.0).abs() < 1e-6,
                "component {i}: |dot| = {}",
                dot.abs()
            );
        }
        // linfa normalises the ratio over the k components it kept, so compare relative sizes.
        let rel = |r: &Array1<f64>| r.mapv(|v| v / r[0]);
        let (ra, rb) = (
            rel(&a.explained_variance_ratio),
            rel(&b.explained_variance_ratio),
        );
        assert!((&ra - &rb).iter().all(|d| d.abs() < 1e-6), "{ra} vs {rb}");
    }

    #[test]
    fn gram_route_for_wide_data_matches_covariance_route() {
        // 12 rows × 20 features: the Gram route is taken; compare with the covariance route.
        let x = Array2::from_shape_fn((12, 20), |(i, j)| {
            ((i as f64 + 1.3).powf(j as f64 * 0.13 + 0.5)).sin() * (20 - j) as f64
        });
        let wide = fit(&x, 5, true, PcaSolver::Eigh).unwrap();
        let mean = x.mean_axis(Axis(0)).unwrap();
        let cov = super::super::covariance::cross_covariance(&x, &x, &mean, &mean);
        let (vals, vecs) = cov.eigh(UPLO::Lower).unwrap();
        for i in 0..5 {
            let v = vecs.column(19 - i);
            let w = wide.components.row(i).to_owned() * vals[19 - i].sqrt(); // undo whitening
            assert!(
                (v.dot(&w).abs() - 1.0).abs() < 1e-8,
                "axis {i}: {}",
                v.dot(&w)
            );
        }
    }

    #[test]
    fn whitened_outputs_have_unit_variance() {
        let x = data();
        let p = fit(&x, 4, true, PcaSolver::Eigh).unwrap();
        let z = p.transform(&x);
        let cov = z.t().dot(&z) / (x.nrows() - 1) as f64;
        for i in 0..4 {
            for j in 0..4 {
                let e = if i == j { 1.0 } else { 0.0 };
                assert!((cov[[i, j]] - e).abs() < 1e-8);
            }
        }
    }

    #[test]
    fn too_many_components_is_an_error() {
        assert!(fit(&data(), 7, false, PcaSolver::Eigh)
            .unwrap_err()
            .to_string()
            .contains("0 < k <= 6"));
    }
}
