//! PCA per modality through linfa-reduction, kept as a plain (mean, components) linear map.
use crate::error::{Error, Result};
use linfa::traits::Fit;
use linfa::DatasetBase;
use ndarray::{Array1, Array2};

#[derive(Debug, Clone)]
pub struct PcaMap {
    pub mean: Array1<f64>,
    /// k × d; rows are scaled to unit output variance when whitening.
    pub components: Array2<f64>,
    pub explained_variance_ratio: Array1<f64>,
}

/// Fit a PCA with `k` components on the rows of `x`.
pub fn fit(x: &Array2<f64>, k: usize, whiten: bool) -> Result<PcaMap> {
    if k == 0 || k > x.ncols() || k >= x.nrows() {
        return Err(Error::Param(format!(
            "PCA to {k} dimensions needs 0 < k <= {} features and k < {} samples",
            x.ncols(),
            x.nrows()
        )));
    }
    let ds = DatasetBase::from(x.clone());
    let pca = linfa_reduction::Pca::params(k)
        .whiten(whiten)
        .fit(&ds)
        .map_err(|e| Error::Linalg(format!("PCA: {e}")))?;
    Ok(PcaMap {
        mean: pca.mean().clone(),
        components: pca.components().clone(),
        explained_variance_ratio: pca.explained_variance_ratio(),
    })
}

impl PcaMap {
    pub fn transform(&self, x: &Array2<f64>) -> Array2<f64> {
        (x - &self.mean).dot(&self.components.t())
    }
}
