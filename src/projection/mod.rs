//! Learned linear maps from each modality into the shared space: optional PCA, then CCA.
pub mod cca;
pub mod contrastive;
pub mod covariance;
pub mod pca;

use crate::error::{Error, Result};
use crate::kernel;
pub use crate::sparse::SparseRows;
pub use cca::{Cca, CcaParams, CcaValidParams};
pub use contrastive::{ContrastiveParams, ContrastiveReport, ExtraPairs};
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
    /// CCA, then both maps trained with symmetric InfoNCE ([`contrastive`]).
    Contrastive,
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
    /// Normalise each block of columns (widths `blocks`, summing to the row width) on its own,
    /// then scale by 1/√blocks so a row stays unit-length: features of two networks, or of
    /// several layers, each count by their pattern, not by their magnitude. An empty or
    /// one-block list is the whole row ([`ImageNorm::apply`]).
    pub fn apply_blocks(&self, x: ArrayView2<f32>, blocks: &[usize]) -> Array2<f32> {
        if blocks.len() <= 1 || *self == ImageNorm::None {
            return self.apply(x);
        }
        let scale = 1.0 / (blocks.len() as f32).sqrt();
        let mut out = Array2::<f32>::zeros(x.raw_dim());
        let mut at = 0;
        for &w in blocks {
            let end = (at + w).min(x.ncols());
            let part = self.apply(x.slice(ndarray::s![.., at..end]));
            out.slice_mut(ndarray::s![.., at..end])
                .assign(&part.mapv(|v| v * scale));
            at = end;
        }
        out
    }

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
    /// Widths of the image feature blocks normalised on their own ([`ImageNorm::apply_blocks`]);
    /// set from the feature spec by `fit` (empty: one block).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_blocks: Vec<usize>,
    /// The training of `Method::Contrastive` (set exactly for that method).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contrastive: Option<ContrastiveParams>,
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
            // Image ridge 1 for the default two-network features (0.3 was best with one).
            cca: CcaParams::new(256).reg(1.0, 1.0),
            power: 2.0,
            image_blocks: Vec::new(),
            contrastive: None,
        }
    }
}

/// The fitted maps: a row x goes to normalize((x − mean)·proj).
#[derive(Debug, Clone)]
pub struct Projection {
    pub image_norm: ImageNorm,
    /// [`ProjectionParams::image_blocks`].
    pub image_blocks: Vec<usize>,
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

/// Refuse training data that admits no shared space, before fitting: fewer than 2 pairs, all
/// captions of one image, images with identical features, identical caption features, or
/// non-finite values. Without this the fit "succeeds" with canonical correlations of 0.000 (or
/// fails inside LAPACK), and the model ranks at random. `images` has one row per distinct image,
/// `owner[i]` is the image row of caption `i`; `texts` (one row per caption) may be left out to
/// check the pairs and images alone (before captions without a known token are dropped).
pub fn check_fit_data(
    images: ArrayView2<f32>,
    owner: &[usize],
    texts: Option<&SparseRows>,
) -> Result<()> {
    let n = owner.len();
    if n < 2 {
        return Err(Error::Data(format!(
            "fitting needs at least 2 image-caption pairs ({n} usable given)"
        )));
    }
    if texts.is_some_and(|t| t.nrows() != n) {
        return Err(Error::Param(
            "one owner image per caption row is needed".into(),
        ));
    }
    if let Some(&bad) = owner.iter().find(|&&o| o >= images.nrows()) {
        return Err(Error::Param(format!("owner index {bad} out of range")));
    }
    let non_finite = |what: &str, r: usize, v: f32| {
        Error::Data(format!(
            "{what} features hold a non-finite value ({v} in row {})",
            r + 1
        ))
    };
    if let Some(((r, _), v)) = images.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(non_finite("image", r, *v));
    }
    if let Some(t) = texts {
        for r in 0..t.nrows() {
            if let Some(v) = t.row(r).1.iter().find(|v| !v.is_finite()) {
                return Err(non_finite("caption", r, *v));
            }
        }
    }
    let used: std::collections::BTreeSet<usize> = owner.iter().copied().collect();
    if used.len() < 2 {
        return Err(Error::Data(format!(
            "all {n} training captions describe one image: fitting needs pairs of at least 2 \
             different images"
        )));
    }
    let used: Vec<usize> = used.into_iter().collect();
    if all_rows_equal(images.select(Axis(0), &used).view()) {
        return Err(Error::Data(format!(
            "the {} training images have identical features (copies of one picture?): fitting \
             needs at least 2 different images",
            used.len()
        )));
    }
    if texts.is_some_and(all_sparse_rows_equal) {
        return Err(Error::Data(format!(
            "all {n} training captions have identical text features (the same caption, or the \
             same known words): fitting needs at least 2 different captions"
        )));
    }
    Ok(())
}

/// Every row equals the first, up to f32 rounding relative to the values' scale.
fn all_rows_equal(m: ArrayView2<f32>) -> bool {
    let Some(first) = m.rows().into_iter().next() else {
        return true;
    };
    let scale = m.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let tol = 1e-6 * scale;
    m.rows().into_iter().all(|r| {
        r.iter()
            .zip(first.iter())
            .all(|(a, b)| (a - b).abs() <= tol)
    })
}

/// [`all_rows_equal`] of sparse rows (densified one at a time; a difference usually shows in
/// the second row).
fn all_sparse_rows_equal(m: &SparseRows) -> bool {
    let scale = m.values().iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let tol = 1e-6 * scale;
    if m.nrows() == 0 {
        return true;
    }
    let first = m.dense_rows(0..1);
    let mut row = vec![0.0f32; m.ncols()];
    (1..m.nrows()).all(|r| {
        row.iter_mut().for_each(|v| *v = 0.0);
        m.write_row(r, &mut row);
        row.iter()
            .zip(first.iter())
            .all(|(a, b)| (a - b).abs() <= tol)
    })
}

/// Below this, the best canonical correlation means the two sides share nothing.
const MIN_CORRELATION: f64 = 1e-6;

impl ProjectionParams {
    /// Validate the parameters before any work: `--power` (finite, >= 0), `--components` (>= 1),
    /// `--reg-image` / `--reg-text` (finite, >= 0).
    pub fn check(&self) -> Result<()> {
        if !(self.power >= 0.0 && self.power.is_finite()) {
            return Err(Error::Param(format!(
                "--power must be finite and >= 0, got {}",
                self.power
            )));
        }
        match (self.method, &self.contrastive) {
            (Method::Contrastive, Some(c)) => c.check()?,
            (Method::Contrastive, None) => {
                return Err(Error::Param(
                    "--method contrastive needs its training parameters".into(),
                ))
            }
            (_, Some(_)) => {
                return Err(Error::Param(
                    "contrastive training parameters are used only with --method contrastive"
                        .into(),
                ))
            }
            (_, None) => {}
        }
        use linfa::ParamGuard;
        self.cca.check_ref().map(|_| ())
    }

    /// [`ProjectionParams::fit`], with the pairs only `--method contrastive` trains on (refused
    /// for other methods) and its report; `progress` shows its epochs.
    pub fn fit_with(
        &self,
        images: ArrayView2<f32>,
        owner: &[usize],
        texts: &SparseRows,
        extra: Option<&ExtraPairs>,
        progress: bool,
    ) -> Result<(Projection, Option<ContrastiveReport>)> {
        self.check()?;
        if self.method != Method::Contrastive {
            if extra.is_some() {
                return Err(Error::Param(
                    "extra pairs are used only by --method contrastive".into(),
                ));
            }
            return Ok((self.fit(images, owner, texts)?, None));
        }
        let (p, r) = self.fit_contrastive(images, owner, texts, extra, progress)?;
        Ok((p, Some(r)))
    }

    /// Fit on pairs: `images` holds one row per distinct image, `owner[i]` is the image row of
    /// caption row `i` of `texts`. The image PCA is fitted on distinct images (each counted once).
    pub fn fit(
        &self,
        images: ArrayView2<f32>,
        owner: &[usize],
        texts: &SparseRows,
    ) -> Result<Projection> {
        self.check()?;
        if self.method == Method::Contrastive {
            return Ok(self.fit_with(images, owner, texts, None, false)?.0);
        }
        // Checked after normalisation: images whose features differ only in scale are the same
        // image to an L2-normalised fit.
        if !self.image_blocks.is_empty()
            && self.image_blocks.iter().sum::<usize>() != images.ncols()
        {
            return Err(Error::Param(format!(
                "image feature blocks {:?} do not add up to the {} feature columns",
                self.image_blocks,
                images.ncols()
            )));
        }
        let normed = self.image_norm.apply_blocks(images, &self.image_blocks);
        check_fit_data(normed.view(), owner, Some(texts))?;
        let (kx, ky) = match self.method {
            Method::PcaCca => (self.pca_image, self.pca_text),
            Method::Cca | Method::Contrastive => (0, 0),
        };
        let (zx_img, mx, px) = side_pca(normed.mapv(f64::from), kx, self.whiten, self.pca_solver)?;
        drop(normed);
        let zx = zx_img.select(Axis(0), owner);
        drop(zx_img);
        // Caption features stay sparse unless a text PCA needs them dense.
        let (cca, my, py) = if ky > 0 && ky < texts.ncols() {
            let dense = texts.to_dense_f64();
            let (zy, my, py) = side_pca(dense, ky, self.whiten, self.pca_solver)?;
            (self.cca.fit(&DatasetBase::new(zx, zy))?, my, py)
        } else {
            let cca = self.cca.fit(&DatasetBase::new(zx, texts))?;
            let my = cca.mean_y.clone();
            (cca, my, None)
        };
        let best = cca.correlations.iter().cloned().fold(0.0f64, f64::max);
        if best.is_nan() || best < MIN_CORRELATION {
            return Err(Error::Data(format!(
                "image and caption features share no direction (best canonical correlation \
                 {best:.3e}): the pairs carry no signal to fit"
            )));
        }
        let scale = cca.correlations.mapv(|c| c.max(0.0).powf(self.power));
        let (image_mean, image_proj) = fold(px, &cca.wx, mx, &cca.mean_x)?;
        let (text_mean, text_proj) = fold(py, &cca.wy, my, &cca.mean_y)?;
        let f32s = |m: Array1<f64>| m.mapv(|v| v as f32);
        let p = Projection {
            image_norm: self.image_norm,
            image_blocks: self.image_blocks.clone(),
            image_mean: f32s(image_mean),
            image_proj: (&image_proj * &scale).mapv(|v| v as f32),
            text_mean: f32s(text_mean),
            text_proj: (&text_proj * &scale).mapv(|v| v as f32),
            correlations: cca.correlations.to_vec(),
        };
        // Never hand out a model whose scores would be NaN (a load would refuse it anyway).
        let finite = p.image_mean.iter().chain(&p.image_proj).chain(&p.text_mean);
        if !finite.chain(&p.text_proj).all(|v| v.is_finite())
            || !p.correlations.iter().all(|c| c.is_finite())
        {
            return Err(Error::Linalg(
                "the fit produced non-finite values (features too large or degenerate)".into(),
            ));
        }
        Ok(p)
    }
}

impl Projection {
    pub fn dim(&self) -> usize {
        self.image_proj.ncols()
    }
    /// Unit-length rows of the shared space. Through the one float path ([`crate::kernel`]):
    /// a row projected alone or in a batch, in any command, gets the same bits.
    pub fn project_images(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let centred = &self.image_norm.apply_blocks(x, &self.image_blocks) - &self.image_mean;
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
    /// [`Projection::project_texts`] of sparse rows, densified a block at a time (each row gets
    /// the same bits as through the dense path: the kernel is batch-invariant).
    pub fn project_text_rows(&self, y: &SparseRows) -> Array2<f32> {
        y.map_dense_chunks(TEXT_BLOCK, self.dim(), |b| self.project_texts(b))
    }
}

/// Caption rows densified at a time (8,100 columns: 64 MB).
const TEXT_BLOCK: usize = 2048;

/// L2-normalise rows (a zero row stays zero).
pub use crate::kernel::normalize_rows;

#[cfg(test)]
mod tests {
    use super::*;

    /// Caption rows that follow their image's features with some noise, 12 images × 2 captions.
    fn pairs() -> (Array2<f32>, Vec<usize>, Array2<f32>) {
        let h = |i: usize, j: usize| ((i * 2654435761 + j * 40503) % 1000) as f32 / 1000.0 - 0.5;
        let images = Array2::from_shape_fn((12, 6), |(i, j)| h(i, j) + 1.0);
        let owner: Vec<usize> = (0..24).map(|t| t / 2).collect();
        let texts = Array2::from_shape_fn((24, 5), |(t, j)| images[[t / 2, j]] + 0.1 * h(t, j + 7));
        (images, owner, texts)
    }

    fn params() -> ProjectionParams {
        ProjectionParams {
            cca: CcaParams::new(3).reg(0.1, 0.1),
            ..Default::default()
        }
    }

    fn fit_err(images: &Array2<f32>, owner: &[usize], texts: &Array2<f32>) -> String {
        params()
            .fit(images.view(), owner, &SparseRows::from_dense(texts.view()))
            .expect_err("degenerate data must be refused")
            .to_string()
    }

    #[test]
    fn degenerate_training_data_is_refused_with_what_is_wrong() {
        let (images, owner, texts) = pairs();
        let p = params()
            .fit(images.view(), &owner, &SparseRows::from_dense(texts.view()))
            .unwrap();
        assert!(p.correlations[0] > 0.5, "{:?}", p.correlations);

        // One pair.
        let e = fit_err(
            &images,
            &owner[..1],
            &texts.slice(ndarray::s![..1, ..]).to_owned(),
        );
        assert!(e.contains("at least 2 image-caption pairs"), "{e}");
        // Every caption of one image.
        let e = fit_err(&images, &[3; 24], &texts);
        assert!(e.contains("describe one image"), "{e}");
        // Different files, identical pictures.
        let same = Array2::from_shape_fn((12, 6), |(_, j)| j as f32 + 1.0);
        let e = fit_err(&same, &owner, &texts);
        assert!(e.contains("identical features"), "{e}");
        // Identical captions.
        let same_text = Array2::from_shape_fn((24, 5), |(_, j)| j as f32 - 2.0);
        let e = fit_err(&images, &owner, &same_text);
        assert!(e.contains("identical text features"), "{e}");
        // NaN in the caption features (e.g. from a NaN weight).
        let mut nan = texts.clone();
        nan[[5, 2]] = f32::NAN;
        let e = fit_err(&images, &owner, &nan);
        assert!(e.contains("non-finite") && e.contains("row 6"), "{e}");
        // The pairs-and-images check alone, as fit runs it before dropping captions.
        check_fit_data(images.view(), &owner, None).unwrap();
        assert!(check_fit_data(images.view(), &[0], None).is_err());
        assert!(check_fit_data(images.view(), &[1, 1], None).is_err());
    }

    #[test]
    fn parameters_are_checked_before_fitting() {
        params().check().unwrap();
        for power in [f64::NAN, f64::INFINITY, -1.0] {
            let p = ProjectionParams { power, ..params() };
            assert!(p.check().unwrap_err().to_string().contains("--power"));
        }
        let p = ProjectionParams {
            cca: CcaParams::new(0),
            ..params()
        };
        assert!(p.check().is_err());
        let p = ProjectionParams {
            cca: CcaParams::new(3).reg(f64::NAN, 0.1),
            ..params()
        };
        assert!(p.check().is_err());
    }
}
