"""Reference values for tests/cca.rs: closed-form CCA in numpy and scikit-learn's CCA (NIPALS).

Run: python3 -m pip install numpy scikit-learn && python3 tests/reference/cca_reference.py
The data are given by formulas so the Rust test builds the same matrices without a file.
"""
import numpy as np
from sklearn.cross_decomposition import CCA

n, p, q = 40, 4, 3
i = np.arange(n)[:, None]
X = np.sin(0.37 * i * (np.arange(p)[None, :] + 1) + np.arange(p)[None, :])
Z = np.cos(0.23 * i * (np.arange(q)[None, :] + 2))
Y = np.column_stack([X[:, 0] + 0.5 * Z[:, 0], X[:, 1] - X[:, 2] + 0.3 * Z[:, 1], Z[:, 2] + 0.2 * X[:, 3]])

cca = CCA(n_components=2, scale=False, max_iter=10000, tol=1e-12).fit(X, Y)
xs, ys = cca.transform(X, Y)
sk_corr = [np.corrcoef(xs[:, k], ys[:, k])[0, 1] for k in range(2)]

def inv_sqrt(c):
    w, v = np.linalg.eigh(c)
    return v @ np.diag(w ** -0.5) @ v.T

Xc, Yc = X - X.mean(0), Y - Y.mean(0)
cxx, cyy, cxy = Xc.T @ Xc / (n - 1), Yc.T @ Yc / (n - 1), Xc.T @ Yc / (n - 1)
s = np.linalg.svd(inv_sqrt(cxx) @ cxy @ inv_sqrt(cyy), compute_uv=False)
print("sklearn CCA correlations:", np.round(sk_corr, 8))
print("closed form correlations:", np.round(s[:3], 8))
print("sklearn x_scores[:3, 0] :", np.round(xs[:3, 0], 8))
print("sklearn x_weights[:, 0]:", np.round(cca.x_rotations_[:, 0], 8))
# With ridge r relative to the mean variance: Cxx + r * tr(Cxx)/p * I
r = 0.1
cxx_r = cxx + r * np.trace(cxx) / p * np.eye(p)
cyy_r = cyy + r * np.trace(cyy) / q * np.eye(q)
s_r = np.linalg.svd(inv_sqrt(cxx_r) @ cxy @ inv_sqrt(cyy_r), compute_uv=False)
print("closed form, ridge 0.1  :", np.round(s_r[:3], 8))
