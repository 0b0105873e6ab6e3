"""Fit side by side: tuwen's closed-form CCA vs scikit-learn's CCA (NIPALS) vs linfa-pls's CCA.

Runs the bench_fit example (which writes the shared inputs: Flickr8k-CN training features, each side
PCA-reduced to 256 dims) and scikit-learn on the same matrices, at 5k/15k/30k pairs.
Canonical correlations are judged the same way for every method: the correlation of matching
training score columns.
    experiments/bench/.venv/bin/python experiments/bench/fit.py [--sizes 5000 15000 30000] [--components 64]
Writes experiments/bench/results/fit.json.
"""
import argparse, json, os, subprocess, sys, time, warnings
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORK = os.path.join(ROOT, "runs", "bench")


def corr_columns(a, b):
    a, b = a - a.mean(0), b - b.mean(0)
    return np.abs((a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0)))


def main():
    from safetensors.numpy import load_file
    from sklearn.cross_decomposition import CCA
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 15000, 30000])
    ap.add_argument("--components", type=int, default=64)
    a = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    r = subprocess.run([os.path.join(ROOT, "target", "release", "examples", "bench_fit"), "--sizes",
                        *map(str, a.sizes), "--components", str(a.components), "--out", WORK],
                       capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        sys.exit(r.stderr)
    rows = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    for row in rows:
        print(json.dumps({k: v for k, v in row.items() if k != "correlations"}), flush=True)
    m = load_file(os.path.join(WORK, "fit-inputs.safetensors"))
    x, y = m["x"].astype(np.float64), m["y"].astype(np.float64)
    for n in a.sizes:
        n = min(n, len(x))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t = time.perf_counter()
            cca = CCA(n_components=a.components, scale=False, max_iter=500, tol=1e-6).fit(x[:n], y[:n])
            secs = time.perf_counter() - t
        sx, sy = cca.transform(x[:n], y[:n])
        row = {"part": "cca", "method": "scikit-learn", "pairs": n, "dims": x.shape[1], "components": a.components,
               "seconds": round(secs, 3), "correlations": [round(c, 4) for c in corr_columns(sx, sy)],
               "warnings": sorted({str(w.message)[:80] for w in caught})}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "correlations"}), flush=True)
    # Side by side per size: time ratio and the largest gap in canonical correlations.
    by = {(r["method"], r["pairs"]): r for r in rows if r.get("part") == "cca"}
    for n in sorted({r["pairs"] for r in rows if r.get("part") == "cca"}):
        tw = by[("tuwen", n)]
        for other in ["scikit-learn", "linfa-pls"]:
            o = by.get((other, n))
            if not o or "correlations" not in o:
                continue
            m = min(len(tw["correlations"]), len(o["correlations"]))
            gap = float(np.max(np.abs(np.array(tw["correlations"][:m]) - np.array(o["correlations"][:m]))))
            # linfa-pls solves only its first components; its time is scaled to all of them.
            secs = o.get("seconds_scaled", o["seconds"])
            cmp = {"part": "cca-compare", "pairs": n, "versus": other, "components_compared": m,
                   "speedup": round(secs / tw["seconds"], 1), "max_correlation_gap": round(gap, 4)}
            rows.append(cmp)
            print(json.dumps(cmp), flush=True)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    json.dump(rows, open(os.path.join(HERE, "results", "fit.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
