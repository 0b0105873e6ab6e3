//! Learned linear maps from each modality into the shared space: optional PCA, then CCA.
pub mod cca;
pub mod covariance;
pub mod pca;

use crate::error::{Error, Result};
pub use cca::{Cca, CcaParams};
use ndarray::{Array1, Array2, ArrayView2, Axis};

/// How the shared space is learned.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// PCA on each side (dimensions `pca_image`, `pca_text`), then regularised CCA.
    PcaCca,
    /// Regularised CCA on the raw features (no PCA): the baseline PCA is compared against.
    Cca,
}

/// Normalisation of image features before the learned map.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
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
            power: 1.0,
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
        let mean = x.mean_axis(Axis(0)).expect("non-empty");
        return Ok((x, mean, None));
    }
    let p = pca::fit(&x, k, whiten, solver)?;
    let z = p.transform(&x);
    Ok((z, p.mean, Some(p.components.t().to_owned())))
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
        let cca = self.cca.fit(&zx, &zy)?;
        // Fold PCA and CCA into one matrix per side. PCA outputs of the training rows are centred
        // (their mean is zero up to rounding), so the PCA mean is the only offset needed.
        let scale = cca.correlations.mapv(|c| c.max(0.0).powf(self.power));
        let compose =
            |p: Option<Array2<f64>>, w: &Array2<f64>, m_pca: Array1<f64>, m_cca: &Array1<f64>| {
                let (proj, mean) = match p {
                    Some(p) => (p.dot(w), m_pca),
                    None => (w.clone(), m_cca.clone()),
                };
                (
                    (mean.mapv(|v| v as f32)),
                    (&proj * &scale).mapv(|v| v as f32),
                )
            };
        let (image_mean, image_proj) = compose(px, &cca.wx, mx, &cca.mean_x);
        let (text_mean, text_proj) = compose(py, &cca.wy, my, &cca.mean_y);
        Ok(Projection {
            image_norm: self.image_norm,
            image_mean,
            image_proj,
            text_mean,
            text_proj,
            correlations: cca.correlations.to_vec(),
        })
    }
}

impl Projection {
    pub fn dim(&self) -> usize {
        self.image_proj.ncols()
    }
    pub fn project_images(&self, x: ArrayView2<f32>) -> Array2<f32> {
        normalize_rows((&self.image_norm.apply(x) - &self.image_mean).dot(&self.image_proj))
    }
    pub fn project_texts(&self, y: ArrayView2<f32>) -> Array2<f32> {
        normalize_rows((&y - &self.text_mean).dot(&self.text_proj))
    }
}

/// L2-normalise rows (a zero row stays zero).
pub fn normalize_rows(mut m: Array2<f32>) -> Array2<f32> {
    for mut r in m.rows_mut() {
        let n = r.dot(&r).sqrt();
        if n > 0.0 {
            r /= n;
        }
    }
    m
}
