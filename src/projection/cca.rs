//! Regularised canonical correlation analysis in closed form.
//!
//! With centred X (n×p), Y (n×q): Cxx = XᵀX/(n−1) + rx·(tr/p)·I, likewise Cyy, Cxy = XᵀY/(n−1).
//! Whiten each side with its Cholesky factor (Cxx = LxLxᵀ), take the SVD of
//! M = Lx⁻¹ Cxy Ly⁻ᵀ = U S Vᵀ; then Wx = Lx⁻ᵀ U, Wy = Ly⁻ᵀ V, and S holds the canonical
//! correlations. The ridge is relative to the mean variance (tr/p) so one value suits features of
//! any scale; on standardised features it is the textbook Cxx + r·I.
use crate::error::{Error, Result};
use ndarray::{s, Array1, Array2, Axis};
use ndarray_linalg::{Cholesky, Diag, JobSvd, SolveTriangular, SVDDC, UPLO};

/// CCA hyper-parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CcaParams {
    pub components: usize,
    pub reg_x: f64,
    pub reg_y: f64,
}

impl CcaParams {
    pub fn new(components: usize) -> Self {
        CcaParams {
            components,
            reg_x: 0.0,
            reg_y: 0.0,
        }
    }
    pub fn reg(mut self, reg_x: f64, reg_y: f64) -> Self {
        self.reg_x = reg_x;
        self.reg_y = reg_y;
        self
    }
    /// Check the parameters against the data's shape (linfa's params → validated params step).
    pub fn check(&self, n: usize, p: usize, q: usize) -> Result<()> {
        if self.components == 0 || self.components > p.min(q) {
            return Err(Error::Param(format!(
                "CCA components must be in 1..={} (the smaller side's dimension), got {}",
                p.min(q),
                self.components
            )));
        }
        if !(self.reg_x >= 0.0 && self.reg_y >= 0.0) {
            return Err(Error::Param("CCA regularisation must be >= 0".into()));
        }
        if n < 2 {
            return Err(Error::Param("CCA needs at least 2 pairs".into()));
        }
        Ok(())
    }
}

/// A fitted CCA: project with (x − mean_x)·wx.
#[derive(Debug, Clone)]
pub struct Cca {
    pub mean_x: Array1<f64>,
    pub mean_y: Array1<f64>,
    pub wx: Array2<f64>,
    pub wy: Array2<f64>,
    pub correlations: Array1<f64>,
}

impl CcaParams {
    pub fn fit(&self, x: &Array2<f64>, y: &Array2<f64>) -> Result<Cca> {
        let (n, p, q) = (x.nrows(), x.ncols(), y.ncols());
        if y.nrows() != n {
            return Err(Error::Param(format!(
                "CCA: {n} rows of X but {} of Y",
                y.nrows()
            )));
        }
        self.check(n, p, q)?;
        let mean_x = x.mean_axis(Axis(0)).expect("n >= 2");
        let mean_y = y.mean_axis(Axis(0)).expect("n >= 2");
        use super::covariance::cross_covariance as cov;
        let ridge = |mut c: Array2<f64>, r: f64| {
            let mean_var = c.diag().sum() / c.nrows() as f64;
            // A floor keeps Cholesky defined when a feature is constant.
            let add = (r * mean_var).max(1e-10 * mean_var.max(1e-300));
            c.diag_mut().mapv_inplace(|v| v + add);
            c
        };
        let cxx = ridge(cov(x, x, &mean_x, &mean_x), self.reg_x);
        let cyy = ridge(cov(y, y, &mean_y, &mean_y), self.reg_y);
        let cxy = cov(x, y, &mean_x, &mean_y);
        let lx = cxx.cholesky(UPLO::Lower)?;
        let ly = cyy.cholesky(UPLO::Lower)?;
        let a = lx.solve_triangular(UPLO::Lower, Diag::NonUnit, &cxy)?; // Lx⁻¹ Cxy
        let mt = ly.solve_triangular(UPLO::Lower, Diag::NonUnit, &a.t().to_owned())?; // (Lx⁻¹ Cxy Ly⁻ᵀ)ᵀ
        let m = mt.t().to_owned();
        let (u, sv, vt) = m.svddc(JobSvd::Some)?;
        let (u, vt) = (u.expect("requested U"), vt.expect("requested Vt"));
        let k = self.components;
        let uk = u.slice(s![.., ..k]).to_owned();
        let vk = vt.slice(s![..k, ..]).t().to_owned();
        let wx = lx
            .t()
            .to_owned()
            .solve_triangular(UPLO::Upper, Diag::NonUnit, &uk)?;
        let wy = ly
            .t()
            .to_owned()
            .solve_triangular(UPLO::Upper, Diag::NonUnit, &vk)?;
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

impl Cca {
    pub fn transform_x(&self, x: &Array2<f64>) -> Array2<f64> {
        (x - &self.mean_x).dot(&self.wx)
    }
    pub fn transform_y(&self, y: &Array2<f64>) -> Array2<f64> {
        (y - &self.mean_y).dot(&self.wy)
    }
}
