//! Learned linear maps from each modality into the shared space: optional PCA, then CCA.
pub mod cca;
pub mod covariance;
pub mod pca;

use crate::error::{Error, Result};
use crate::kernel;
pub use cca::{Cca, CcaParams, CcaValidParams};
use linfa::traits::Fit;
use linfa::DatasetBase;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use ndarray_linalg::Inverse;

/// How the shared space is learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// PCA on each side (dimensions `pca_image`, `pca_text`), then regularised CCA.
    PcaCca,
    /// Regularised CCA on the raw features (no PCA): the baseline PCA is compared against.
    Cca,
}

/// Normalisation of image features before the learned map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageNorm {
    /// As the CNN gives them.
    #[default]
    None,
    /// Unit L2 norm per image.
    L2,
    /// Signed square root, then unit L2 norm ("power normalisation", as for Fisher vectors).
    SqrtL2,
}

impl ImageNorm {
    pub fn apply(&self, x: ArrayView2<f32>) -> Array2<f32> {
        match self {
            ImageNorm::None => x.to_owned(),
            ImageNorm::L2 => normalize_rows(x.to_owned()),
            ImageNorm::SqrtL2 => normalize_rows(x.mapv(|v| v.signum() * v.abs().sqrt())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProjectionParams {
    #[serde(default)]
    pub image_norm: ImageNorm,
    pub method: Method,
    /// PCA dimensions per side (0 or ≥ the feature dimension: no PCA on that side).
    pub pca_image: usize,
    pub pca_text: usize,
    pub whiten: bool,
    #[serde(default)]
    pub pca_solver: pca::PcaSolver,
    pub cca: CcaParams,
    /// Scale canonical component k by correlation_k^power (Gong et al. 2014 use 4).
    pub power: f64,
}

impl Default for ProjectionParams {
    fn default() -> Self {
        // The best configuration of experiments/README.md.
        ProjectionParams {
            image_norm: ImageNorm::SqrtL2,
            method: Method::Cca,
            pca_image: 512,
            pca_text: 0,
            whiten: false,
            pca_solver: pca::PcaSolver::Eigh,
            cca: CcaParams::new(256).reg(0.3, 1.0),
            power: 2.0,
        }
    }
}

/// The fitted maps: a row x goes to normalize((x − mean)·proj).
#[derive(Debug, Clone)]
pub struct Projection {
    pub image_norm: ImageNorm,
    pub image_mean: Array1<f32>,
    pub image_proj: Array2<f32>,
    pub text_mean: Array1<f32>,
    pub text_proj: Array2<f32>,
    pub correlations: Vec<f64>,
}

/// One side's data after (optional) PCA, the input mean, and the PCA matrix (d × k) if any.
type SidePca = (Array2<f64>, Array1<f64>, Option<Array2<f64>>);

fn side_pca(x: Array2<f64>, k: usize, whiten: bool, solver: pca::PcaSolver) -> Result<SidePca> {
    if k == 0 || k >= x.ncols() {
        let mean = x
            .mean_axis(Axis(0))
            .ok_or_else(|| Error::Param("no rows to fit on".into()))?;
        return Ok((x, mean, None));
    }
    let ds = DatasetBase::from(x);
    let p = pca::PcaParams::new(k)
        .whiten(whiten)
        .solver(solver)
        .fit(&ds)?;
    let z = p.transform(ds.records());
    Ok((z, p.mean.clone(), Some(p.components.t().to_owned())))
}

/// Fold PCA (x ↦ (x − m_pca)·P) and CCA (z ↦ (z − m_cca)·W) into one map x ↦ (x − m)·P·W.
/// The CCA mean is not zero in general (the image PCA is fitted on distinct images, the CCA on
/// caption rows, which repeat images unevenly), so it is carried into input space:
/// m = m_pca + m_cca·P⁺ with P⁺ = (PᵀP)⁻¹Pᵀ, exact because P⁺P = I.
fn fold(
    pca: Option<Array2<f64>>,
    w: &Array2<f64>,
    m_pca: Array1<f64>,
    m_cca: &Array1<f64>,
) -> Result<(Array1<f64>, Array2<f64>)> {
    match pca {
        None => Ok((m_cca.clone(), w.clone())),
        Some(p) => {
            let ptp_inv = p.t().dot(&p).inv()?;
            let mean = m_pca + m_cca.dot(&ptp_inv).dot(&p.t());
            Ok((mean, p.dot(w)))
        }
    }
}

impl ProjectionParams {
    /// Fit on pairs: `images` holds one row per distinct image, `owner[i]` is the image row of
    /// caption row `i` of `texts`. The image PCA is fitted on distinct images (each counted once).
    pub fn fit(
        &self,
        images: ArrayView2<f32>,
        owner: &[usize],
        texts: ArrayView2<f32>,
    ) -> Result<Projection> {
        if owner.len() != texts.nrows() {
            return Err(Error::Param(
                "one owner image per caption row is needed".into(),
            ));
        }
        if texts.nrows() < 2 || images.nrows() < 1 {
            return Err(Error::Param(format!(
                "fitting needs at least 2 caption rows and 1 image ({} and {} given)",
                texts.nrows(),
                images.nrows()
            )));
        }
        if !(self.power >= 0.0 && self.power.is_finite()) {
            return Err(Error::Param(format!(
                "power must be finite and >= 0, got {}",
                self.power
            )));
        }
        if let Some(&bad) = owner.iter().find(|&&o| o >= images.nrows()) {
            return Err(Error::Param(format!("owner index {bad} out of range")));
        }
        let (kx, ky) = match self.method {
            Method::PcaCca => (self.pca_image, self.pca_text),
            Method::Cca => (0, 0),
        };
        let (zx_img, mx, px) = side_pca(
            self.image_norm.apply(images).mapv(f64::from),
            kx,
            self.whiten,
            self.pca_solver,
        )?;
        let zx = zx_img.select(Axis(0), owner);
        let (zy, my, py) = side_pca(texts.mapv(f64::from), ky, self.whiten, self.pca_solver)?;
        let cca = self.cca.fit(&DatasetBase::new(zx, zy))?;
        let scale = cca.correlations.mapv(|c| c.max(0.0).powf(self.power));
        let (image_mean, image_proj) = fold(px, &cca.wx, mx, &cca.mean_x)?;
        let (text_mean, text_proj) = fold(py, &cca.wy, my, &cca.mean_y)?;
        let f32s = |m: Array1<f64>| m.mapv(|v| v as f32);
        Ok(Projection {
            image_norm: self.image_norm,
            image_mean: f32s(image_mean),
            image_proj: (&image_proj * &scale).mapv(|v| v as f32),
            text_mean: f32s(text_mean),
            text_proj: (&text_proj * &scale).mapv(|v| v as f32),
            correlations: cca.correlations.to_vec(),
        })
    }
}

impl Projection {
    pub fn dim(&self) -> usize {
        self.image_proj.ncols()
    }
    /// Unit-length rows of the shared space. Through the one float path ([`crate::kernel`]):
    /// a row projected alone or in a batch, in any command, gets the same bits.
    pub fn project_images(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let centred = &self.image_norm.apply(x) - &self.image_mean;
        normalize_rows(kernel::dots(
            centred.view(),
            self.image_proj.t().as_standard_layout().view(),
        ))
    }
    pub fn project_texts(&self, y: ArrayView2<f32>) -> Array2<f32> {
        let centred = &y - &self.text_mean;
        normalize_rows(kernel::dots(
            centred.view(),
            self.text_proj.t().as_standard_layout().view(),
        ))
    }
}

/// L2-normalise rows (a zero row stays zero).
pub use crate::kernel::normalize_rows;
