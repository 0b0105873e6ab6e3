"""tuwen's closed-form regularised CCA (src/projection/cca.rs) in numpy, on the same inputs
(sqrt-l2 image features, raw caption features), for CCA initialisations fitted on a part of the
training pairs (early stopping must not be judged on pairs the initial CCA saw). Cxx = XᵀX/(n−1) +
r·(tr/p)·I per side, M = Lx⁻¹ Cxy Ly⁻ᵀ = U S Vᵀ, Wx = Lx⁻ᵀ U, Wy = Ly⁻ᵀ V, component k scaled by
S_k^power; a row maps to normalize((x − mean)·W)."""
import numpy as np
import scipy.linalg as la
import scipy.sparse as sp


def _cov_sparse(a, b, ma, mb, n):
    """(Aᵀ B − n·ma mbᵀ)/(n − 1) for sparse or dense A, B (rows = pairs)."""
    ab = a.T @ b
    ab = ab.toarray() if sp.issparse(ab) else np.asarray(ab)
    return (ab - n * np.outer(ma, mb)) / (n - 1)


def fit(img, owner, txt, components=256, reg_x=0.3, reg_y=1.0, power=2.0):
    """img [n_img, p] (normalised), owner [n] image row of each caption, txt [n, q] (CSR or dense).
    Returns dict of float32 image_mean, image_proj [p, k], text_mean, text_proj [q, k],
    correlations."""
    x = np.asarray(img, dtype=np.float64)[owner]
    y = txt.astype(np.float64) if sp.issparse(txt) else np.asarray(txt, dtype=np.float64)
    n = x.shape[0]
    mx = x.mean(axis=0)
    my = np.asarray(y.mean(axis=0)).ravel()
    cxx = _cov_sparse(x, x, mx, mx, n)
    cyy = _cov_sparse(y, y, my, my, n)
    cxy = _cov_sparse(sp.csr_matrix(x) if sp.issparse(y) else x, y, mx, my, n)
    for c, r in ((cxx, reg_x), (cyy, reg_y)):
        mv = np.trace(c) / c.shape[0]
        c[np.diag_indices_from(c)] += max(r * mv, 1e-10 * max(mv, 1e-300))
    lx = la.cholesky(cxx, lower=True)
    ly = la.cholesky(cyy, lower=True)
    a = la.solve_triangular(lx, cxy, lower=True)
    m = la.solve_triangular(ly, a.T, lower=True).T
    u, s, vt = la.svd(m, full_matrices=False, lapack_driver="gesdd")
    k = components
    wx = la.solve_triangular(lx.T, u[:, :k], lower=False)
    wy = la.solve_triangular(ly.T, vt[:k].T, lower=False)
    scale = np.maximum(s[:k], 0.0) ** power
    return {
        "image_mean": mx.astype(np.float32), "image_proj": (wx * scale).astype(np.float32),
        "text_mean": my.astype(np.float32), "text_proj": (wy * scale).astype(np.float32),
        "correlations": s[:k],
    }


def project(maps, img, txt):
    """Unit rows of the shared space for normalised image features and caption features."""
    ei = (np.asarray(img, np.float32) - maps["image_mean"]) @ maps["image_proj"]
    et = np.asarray(txt @ maps["text_proj"]) - maps["text_mean"] @ maps["text_proj"]
    l2 = lambda z: z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-30)
    return l2(ei), l2(et)
