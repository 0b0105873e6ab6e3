"""Rank side by side: tuwen's blocked top-5 vs numpy (matmul + argpartition) vs faiss-cpu IndexFlatIP.

Same random unit vectors for all (5,000 queries × gallery, dim 256 = the default CCA components),
each contender in its own process so peak memory (VmHWM) is its own. Top-5 sets are compared.
    experiments/bench/.venv/bin/python experiments/bench/rank.py [--galleries 10000 50000 200000]
Writes experiments/bench/results/rank.json.
"""
import argparse, json, os, subprocess, sys, time
import numpy as np
from safetensors.numpy import save_file, load_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORK = os.path.join(ROOT, "runs", "bench")


def peak_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def contender(method, path, out):
    """Runs inside a child process: load, rank, print one JSON line."""
    m = load_file(path)
    q, g = m["queries"], m["gallery"]
    if method == "faiss":
        import faiss
        faiss.omp_set_num_threads(os.cpu_count())
        index = faiss.IndexFlatIP(g.shape[1])
        index.add(g)
    before = peak_mib()
    t = time.perf_counter()
    if method == "numpy":
        s = q @ g.T  # the notebook way: the whole score matrix at once
        part = np.argpartition(-s, 5, axis=1)[:, :5]
        order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(part, order, axis=1)
    else:
        _, top = index.search(q, 5)
    secs = time.perf_counter() - t
    save_file({"top": top.astype(np.float32)}, out)
    nq, ng, d = q.shape[0], g.shape[0], q.shape[1]
    print(json.dumps({"method": method, "queries": nq, "gallery": ng, "dim": d, "seconds": round(secs, 3),
                      "gflops": round(2 * nq * ng * d / secs / 1e9, 1), "peak_mib": round(peak_mib()),
                      "inputs_mib": round(before)}))


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--galleries", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3, help="runs per contender; the fastest is kept")
    ap.add_argument("--child", nargs=3, metavar=("METHOD", "IN", "OUT"))
    a = ap.parse_args()
    if a.child:
        return contender(*a.child)
    os.makedirs(WORK, exist_ok=True)
    tuwen = os.path.join(ROOT, "target", "release", "examples", "bench_rank")
    rows = []
    for ng in a.galleries:
        rng = np.random.default_rng(ng)
        unit = lambda n: (lambda x: x / np.linalg.norm(x, axis=1, keepdims=True))(
            rng.standard_normal((n, a.dim), dtype=np.float32))
        path = os.path.join(WORK, f"rank-{a.queries}x{ng}.safetensors")
        save_file({"queries": unit(a.queries), "gallery": unit(ng)}, path)
        tops = {}
        for method in ["tuwen", "numpy", "faiss"]:
            out = os.path.join(WORK, f"top-{method}-{ng}.safetensors")
            cmd = ([tuwen, "--input", path, "--out", out] if method == "tuwen"
                   else [sys.executable, __file__, "--child", method, path, out])
            best = min((run(cmd) for _ in range(a.repeats)), key=lambda r: r["seconds"])
            tops[method] = load_file(out)["top"].astype(np.int64)
            rows.append(best)
            print(json.dumps(best), flush=True)
        for method in ["numpy", "faiss"]:
            same = sum(set(x) == set(y) for x, y in zip(tops["tuwen"], tops[method]))
            rows.append({"check": f"top-5 sets tuwen = {method}", "gallery": ng, "identical": same,
                         "queries": a.queries})
            print(rows[-1], flush=True)
        os.remove(path)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    json.dump(rows, open(os.path.join(HERE, "results", "rank.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
