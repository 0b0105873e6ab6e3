"""Checks before any comparison (issue #18): (1) R@K of this folder's evaluate() on tuwen's exported
CCA embeddings equals `tuwen eval --json` (CSLS and cosine); (2) the CCA maps of the model folder
applied to the raw features (sqrt-l2 images) give the exported embeddings; (3) the word-vector
tokens of words.py give the exported word-vector mean (the LSTM's inputs are tuwen's tokens);
(4) cca.py's numpy CCA refitted on the raw training features ranks as tuwen's CCA.
Usage: validate.py MODEL TRAIN_PREFIX TRAIN_PAIRS HELDOUT_PREFIX HELDOUT_PAIRS EVAL_CSLS_JSON EVAL_COS_JSON [--no-cca]"""
import json
import sys
import time

import numpy as np

import cca as CCA
import common as C
from words import Tokens


def close(a, b, tol=0.1):
    return all(abs(a[d][k] - b[d][k]) <= tol for d in ("i2t", "t2i") for k in ("r1", "r5", "r10"))


def main():
    model, trp, trpairs, hop, hopairs, ev_csls, ev_cos = sys.argv[1:8]
    ho = C.load_set(hop, hopairs)
    out = {}
    for score, path in (("csls", ev_csls), ("cosine", ev_cos)):
        with open(path) as f:
            ref = json.load(f)
        mine = C.evaluate(ho["cca_img"], ho["cca_txt"], ho["owner"], score)
        print(f"[{score}] tuwen eval: i2t {ref['i2t']} t2i {ref['t2i']}")
        print(f"[{score}] python    : {C.fmt(mine)}  (n_images {mine['n_images']}, n_texts {mine['n_texts']})")
        out[score] = {"match": close(mine, ref), "tuwen": {d: ref[d] for d in ("i2t", "t2i")},
                      "python": {d: mine[d] for d in ("i2t", "t2i")}}
    t, cfg = C.load_cca(model)
    maps = {k: t[k] for k in ("image_mean", "image_proj", "text_mean", "text_proj")}
    ei, et = CCA.project(maps, ho["img"], ho["txt"])
    out["projection_max_abs_diff"] = {"images": float(np.abs(ei - ho["cca_img"]).max()),
                                      "texts": float(np.abs(et - ho["cca_txt"]).max())}
    print("maps on raw features vs exported embeddings:", out["projection_max_abs_diff"])
    tok = Tokens("/work/main/models")
    raw = np.asarray(C.load_export(hop)["texts_raw"][:, :100])
    mine = np.stack([v.mean(0) if len(v) else np.zeros(100, np.float32)
                     for v in (tok.vectors(c) for c in ho["captions"])])
    diff = np.abs(mine - raw).max(axis=1)
    out["w2v_mean"] = {"max_abs_diff": float(diff.max()),
                       "captions_over_1e-4": int((diff > 1e-4).sum()), "captions": len(diff)}
    print("word-vector mean from words.py vs export:", out["w2v_mean"])
    if "--no-cca" in sys.argv:
        print(json.dumps(out))
        C.append_result({"name": "validate-eval", "dataset": "flickr8k-dev", **out})
        return
    tr = C.load_set(trp, trpairs)
    t0 = time.time()
    m2 = CCA.fit(tr["img"], tr["owner"], tr["txt"])
    out["numpy_cca_fit_s"] = round(time.time() - t0, 1)
    ei, et = CCA.project(m2, ho["img"], ho["txt"])
    rep = C.evaluate(ei, et, ho["owner"], "csls")
    out["numpy_cca"] = {d: rep[d] for d in ("i2t", "t2i")}
    out["numpy_cca_peak_mib"] = round(C.peak_mib(), 1)
    print(f"numpy CCA refit ({out['numpy_cca_fit_s']} s) [csls] {C.fmt(rep)}")
    print(json.dumps(out))
    C.append_result({"name": "validate-eval", "dataset": "flickr8k-dev", **out})


if __name__ == "__main__":
    main()
