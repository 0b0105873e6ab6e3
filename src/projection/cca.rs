//! Regularised canonical correlation analysis in closed form.
//!
//! With centred X (n×p), Y (n×q): Cxx = XᵀX/(n−1) + rx·(tr/p)·I, likewise Cyy, Cxy = XᵀY/(n−1).
//! Whiten each side with its Cholesky factor (Cxx = LxLxᵀ), take the SVD of
//! M = Lx⁻¹ Cxy Ly⁻ᵀ = U S Vᵀ; then Wx = Lx⁻ᵀ U, Wy = Ly⁻ᵀ V, and S holds the canonical
//! correlations. The ridge is relative to the mean variance (tr/p) so one value suits features of
//! any scale; on standardised features it is the textbook Cxx + r·I.
use super::covariance::Side;
use crate::error::{Error, Result};
use crate::sparse::SparseRows;
use linfa::traits::{Fit, Transformer};
use linfa::{DatasetBase, ParamGuard};
use ndarray::{s, Array1, Array2};
use ndarray_linalg::{CholeskyInto, Diag, JobSvd, SolveTriangular, SVDDC, UPLO};

/// Checked CCA hyper-parameters (linfa's validated-params type): fit with [`Fit::fit`] on a
/// `DatasetBase` whose records are X (n×p) and targets Y (n×q).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CcaValidParams {
    components: usize,
    reg_x: f64,
    reg_y: f64,
}

/// CCA hyper-parameters as given (linfa's params type); [`ParamGuard::check`] validates them.
/// Serialised as `{components, reg_x, reg_y}` in a model's config.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct CcaParams(CcaValidParams);

impl CcaParams {
    pub fn new(components: usize) -> Self {
        CcaParams(CcaValidParams {
            components,
            reg_x: 0.0,
            reg_y: 0.0,
        })
    }
    /// Ridge on each side's covariance, relative to its mean variance.
    pub fn reg(mut self, reg_x: f64, reg_y: f64) -> Self {
        self.0.reg_x = reg_x;
        self.0.reg_y = reg_y;
        self
    }
    pub fn components(&self) -> usize {
        self.0.components
    }
}

impl CcaValidParams {
    pub fn components(&self) -> usize {
        self.components
    }
    pub fn reg_x(&self) -> f64 {
        self.reg_x
    }
    pub fn reg_y(&self) -> f64 {
        self.reg_y
    }
}

impl ParamGuard for CcaParams {
    type Checked = CcaValidParams;
    type Error = Error;

    fn check_ref(&self) -> Result<&CcaValidParams> {
        let p = &self.0;
        if p.components == 0 {
            return Err(Error::Param("CCA needs at least 1 component".into()));
        }
        if !(p.reg_x >= 0.0 && p.reg_y >= 0.0 && p.reg_x.is_finite() && p.reg_y.is_finite()) {
            return Err(Error::Param("CCA regularisation must be >= 0".into()));
        }
        Ok(p)
    }

    fn check(self) -> Result<CcaValidParams> {
        self.check_ref()?;
        Ok(self.0)
    }
}

/// A fitted CCA: project with (x − mean_x)·wx and (y − mean_y)·wy. As a linfa `Transformer` it
/// maps the records' side (X).
#[derive(Debug, Clone)]
pub struct Cca {
    pub mean_x: Array1<f64>,
    pub mean_y: Array1<f64>,
    pub wx: Array2<f64>,
    pub wy: Array2<f64>,
    pub correlations: Array1<f64>,
}

impl Fit<Array2<f64>, Array2<f64>, Error> for CcaValidParams {
    type Object = Cca;

    fn fit(&self, ds: &DatasetBase<Array2<f64>, Array2<f64>>) -> Result<Cca> {
        self.fit_sides(ds.records().into(), ds.targets().into())
    }
}

/// Y as sparse rows (the caption features): covariances from the non-zeros, no dense copy.
impl Fit<Array2<f64>, &SparseRows, Error> for CcaValidParams {
    type Object = Cca;

    fn fit(&self, ds: &DatasetBase<Array2<f64>, &SparseRows>) -> Result<Cca> {
        self.fit_sides(ds.records().into(), (*ds.targets()).into())
    }
}

impl CcaValidParams {
    fn fit_sides(&self, x: Side, y: Side) -> Result<Cca> {
        let (n, p, q) = (x.nrows(), x.ncols(), y.ncols());
        if y.nrows() != n {
            return Err(Error::Param(format!(
                "CCA: {n} rows of X but {} of Y",
                y.nrows()
            )));
        }
        if self.components > p.min(q) {
            return Err(Error::Param(format!(
                "CCA components must be in 1..={} (the smaller side's dimension), got {}",
                p.min(q),
                self.components
            )));
        }
        if n < 2 {
            return Err(Error::Param("CCA needs at least 2 pairs".into()));
        }
        let mean_of = |a: &Side| {
            a.mean()
                .ok_or_else(|| Error::Param("CCA needs at least 2 pairs".into()))
        };
        let (mean_x, mean_y) = (mean_of(&x)?, mean_of(&y)?);
        use super::covariance::cross_covariance as cov;
        let ridge = |mut c: Array2<f64>, r: f64| {
            let mean_var = c.diag().sum() / c.nrows() as f64;
            // A floor keeps Cholesky defined when a feature is constant.
            let add = (r * mean_var).max(1e-10 * mean_var.max(1e-300));
            c.diag_mut().mapv_inplace(|v| v + add);
            c
        };
        // Each covariance is factored in place: at 8,100 caption columns one q×q matrix is
        // 525 MB, and no more than two are alive at once.
        let lx = ridge(cov(x, x, &mean_x, &mean_x), self.reg_x).cholesky_into(UPLO::Lower)?;
        let ly = ridge(cov(y, y, &mean_y, &mean_y), self.reg_y).cholesky_into(UPLO::Lower)?;
        let cxy = cov(x, y, &mean_x, &mean_y);
        let a = lx.solve_triangular(UPLO::Lower, Diag::NonUnit, &cxy)?; // Lx⁻¹ Cxy
        drop(cxy);
        let mt = ly.solve_triangular(UPLO::Lower, Diag::NonUnit, &a.t().to_owned())?; // (Lx⁻¹ Cxy Ly⁻ᵀ)ᵀ
        drop(a);
        let m = mt.t().to_owned();
        let (u, sv, vt) = m.svddc(JobSvd::Some)?;
        let (Some(u), Some(vt)) = (u, vt) else {
            return Err(Error::Linalg("SVD returned no singular vectors".into()));
        };
        let k = self.components;
        let uk = u.slice(s![.., ..k]).to_owned();
        let vk = vt.slice(s![..k, ..]).t().to_owned();
        let upper = |l: Array2<f64>| l.reversed_axes().as_standard_layout().into_owned();
        let wx = upper(lx).solve_triangular(UPLO::Upper, Diag::NonUnit, &uk)?;
        let wy = upper(ly).solve_triangular(UPLO::Upper, Diag::NonUnit, &vk)?;
        let correlations = sv.slice(s![..k]).to_owned();
        Ok(Cca {
            mean_x,
            mean_y,
            wx,
            wy,
            correlations,
        })
    }
}

impl Transformer<&Array2<f64>, Array2<f64>> for Cca {
    fn transform(&self, x: &Array2<f64>) -> Array2<f64> {
        self.transform_x(x)
    }
}

impl Cca {
    pub fn transform_x(&self, x: &Array2<f64>) -> Array2<f64> {
        (x - &self.mean_x).dot(&self.wx)
    }
    pub fn transform_y(&self, y: &Array2<f64>) -> Array2<f64> {
        (y - &self.mean_y).dot(&self.wy)
    }
}
