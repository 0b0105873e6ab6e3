"""Shared helpers for the contrastive study (issue #18): loading `tuwen export --raw` features,
tuwen's image normalisation and CCA maps, and R@K both ways with CSLS exactly as `tuwen eval`
computes it (src/retrieval/score.rs `both_ways`, src/retrieval/metrics.rs `evaluate`)."""
import csv
import json
import os
import resource
import subprocess
import time

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results.jsonl")


def read_pairs(path):
    """Rows of a pairs CSV (image_id, caption), in file order, as tuwen reads them."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        r = csv.reader(f)
        next(r)
        return [(row[0], row[1]) for row in r]


def load_export(prefix, raw=True):
    """Arrays of `tuwen export --format npy [--raw] --out PREFIX`."""
    out = {}
    for kind in ("images", "texts"):
        ids_path = f"{prefix}.{kind}.ids.txt"
        if not os.path.exists(ids_path):
            continue
        with open(ids_path, encoding="utf-8") as f:
            out[f"{kind}_ids"] = [l.rstrip("\n") for l in f]
        out[kind] = np.load(f"{prefix}.{kind}.npy", mmap_mode="r")
        if raw:
            out[f"{kind}_raw"] = np.load(f"{prefix}.{kind}.raw.npy", mmap_mode="r")
    return out


def word_row(text_id):
    """`Word-<1000000001 + n>` → n, the 0-based row of the pairs file."""
    return int(text_id.split("-")[1]) - 1000000001


def owners(pairs, image_ids, text_ids):
    """Image index (into image_ids) of every exported caption."""
    pos = {i: k for k, i in enumerate(image_ids)}
    return np.array([pos[pairs[word_row(t)][0]] for t in text_ids], dtype=np.int64)


def sqrt_l2(x):
    """tuwen's default `--image-norm sqrt-l2`: signed square root, then unit L2 rows."""
    x = np.asarray(x, dtype=np.float32)
    y = np.sign(x) * np.sqrt(np.abs(x))
    n = np.linalg.norm(y, axis=1, keepdims=True)
    return y / np.where(n > 0, n, 1.0)


def text_sparse(raw):
    """Caption features (word-vector mean + bag of terms) as CSR float32, built in chunks."""
    blocks = []
    for s in range(0, raw.shape[0], 5000):
        blocks.append(sp.csr_matrix(np.asarray(raw[s:s + 5000], dtype=np.float32)))
    return sp.vstack(blocks).tocsr()


def to_torch_sparse(m):
    m = m.tocsr()
    return torch.sparse_csr_tensor(
        torch.from_numpy(m.indptr.astype(np.int64)),
        torch.from_numpy(m.indices.astype(np.int64)),
        torch.from_numpy(m.data.astype(np.float32)),
        size=m.shape,
    )


def load_cca(model_dir):
    """The fitted CCA maps: x ↦ normalize((norm(x) − mean)·proj), both sides."""
    t = load_file(os.path.join(model_dir, "projection.safetensors"))
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    return t, cfg


def l2rows(x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def _mean_topk(m, k, axis):
    k = min(k, m.shape[axis])
    part = -np.partition(-m, k - 1, axis=axis)
    part = part.take(range(k), axis=axis)
    return part.mean(axis=axis)


def _ranks_rows(score, truth_sets):
    """Best (1-based) rank of any true column per row; ties → lower column index first."""
    ranks = np.empty(score.shape[0], dtype=np.int64)
    cols = np.arange(score.shape[1])
    for r, truth in enumerate(truth_sets):
        row = score[r]
        best = None
        for t in truth:
            v = row[t]
            if np.isnan(v):
                continue
            rk = 1 + np.count_nonzero(row > v) + np.count_nonzero((row == v) & (cols < t))
            best = rk if best is None else min(best, rk)
        ranks[r] = best if best is not None else np.iinfo(np.int64).max
    return ranks


def _recall(ranks):
    n = max(len(ranks), 1)
    at = lambda k: 100.0 * np.count_nonzero(ranks <= k) / n
    return {"r1": at(1), "r5": at(5), "r10": at(10), "medr": float(np.median(ranks))}


def evaluate(img_emb, txt_emb, owner, score="csls", k=10):
    """R@1/5/10 and median rank both ways, as `tuwen eval`: sim = texts × images cosine,
    CSLS = 2·cos − r_text − r_image with r = mean of the k largest cosines of the item to the
    other modality's ranked set (the held-out set itself is the bank)."""
    img = l2rows(np.asarray(img_emb, dtype=np.float32))
    txt = l2rows(np.asarray(txt_emb, dtype=np.float32))
    cos = txt @ img.T  # [n_texts, n_images]
    if score == "csls":
        r_t = _mean_topk(cos, k, axis=1)
        r_i = _mean_topk(cos, k, axis=0)
        s = 2.0 * cos - (r_t[:, None] + r_i[None, :])
    elif score == "cosine":
        s = cos
    else:
        raise ValueError(score)
    t2i = _ranks_rows(s, [[o] for o in owner])
    caps = [[] for _ in range(img.shape[0])]
    for t, o in enumerate(owner):
        caps[o].append(t)
    keep = [i for i in range(img.shape[0]) if caps[i]]
    i2t = _ranks_rows(s.T[keep], [caps[i] for i in keep])
    return {"i2t": _recall(i2t), "t2i": _recall(t2i), "n_images": len(keep), "n_texts": len(owner)}


def fmt(rep):
    a, b = rep["i2t"], rep["t2i"]
    return (f"i2t {a['r1']:.1f}/{a['r5']:.1f}/{a['r10']:.1f} (medr {a['medr']:g})  "
            f"t2i {b['r1']:.1f}/{b['r5']:.1f}/{b['r10']:.1f} (medr {b['medr']:g})")


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def git_commit():
    try:
        return subprocess.check_output(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                                       text=True).strip()
    except Exception:
        return None


def append_result(row, path=RESULTS):
    row = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "commit": git_commit(), **row}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return row


def load_set(prefix, pairs_csv, sparse_text=True):
    """One exported pairs set: sqrt-l2 image features [n_img, 1280] (what CCA saw), caption
    features (CSR, [n_txt, 8100]), owner image of each caption, caption strings, CCA embeddings."""
    e = load_export(prefix)
    pairs = read_pairs(pairs_csv)
    own = owners(pairs, e["images_ids"], e["texts_ids"])
    out = {
        "image_ids": e["images_ids"],
        "text_ids": e["texts_ids"],
        "img": sqrt_l2(e["images_raw"]),
        "owner": own,
        "captions": [pairs[word_row(t)][1] for t in e["texts_ids"]],
        "cca_img": np.asarray(e["images"], dtype=np.float32),
        "cca_txt": np.asarray(e["texts"], dtype=np.float32),
    }
    out["txt"] = text_sparse(e["texts_raw"]) if sparse_text else np.asarray(e["texts_raw"])
    return out


def inner_split(n_images, frac, seed):
    """A seeded part of the training images for early stopping: (fit image mask, stop image mask)."""
    rng = np.random.default_rng(seed)
    stop = np.zeros(n_images, dtype=bool)
    stop[rng.choice(n_images, int(round(frac * n_images)), replace=False)] = True
    return ~stop, stop


def subset(ds, image_mask):
    """The images of `image_mask` and their captions (owner re-indexed)."""
    idx = np.flatnonzero(image_mask)
    remap = -np.ones(len(image_mask), dtype=np.int64)
    remap[idx] = np.arange(len(idx))
    keep = np.flatnonzero(image_mask[ds["owner"]])
    out = dict(ds)
    out["img"] = ds["img"][idx]
    out["image_ids"] = [ds["image_ids"][i] for i in idx]
    out["owner"] = remap[ds["owner"][keep]]
    out["txt"] = ds["txt"][keep]
    out["captions"] = [ds["captions"][i] for i in keep]
    out["text_ids"] = [ds["text_ids"][i] for i in keep]
    out["cca_img"] = ds["cca_img"][idx]
    out["cca_txt"] = ds["cca_txt"][keep]
    return out


def score_key(rep):
    """Early-stopping criterion: R@1+5+10 summed over both directions."""
    return sum(rep[d][k] for d in ("i2t", "t2i") for k in ("r1", "r5", "r10"))
