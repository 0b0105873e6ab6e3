"""Append the CCA baseline (`tuwen eval --json` of prepare.sh) as rows of results.jsonl.
Usage: record_cca.py NAME DATASET MODEL EVAL_CSLS_JSON EVAL_COSINE_JSON [FIT_SECONDS [PEAK_KB]]"""
import json
import sys

import common as C

name, dataset, model, ev_csls, ev_cos = sys.argv[1:6]
fit_s = float(sys.argv[6]) if len(sys.argv) > 6 else None
peak = float(sys.argv[7]) / 1024 if len(sys.argv) > 7 else None
with open(f"{model}/config.json", encoding="utf-8") as f:
    cfg = json.load(f)
for score, path in (("csls(k=10)", ev_csls), ("cosine", ev_cos)):
    with open(path) as f:
        ev = json.load(f)
    row = C.append_result({"name": name, "method": "cca (tuwen fit, defaults)", "dataset": dataset,
                           "score": score, "model": model,
                           "projection": cfg.get("projection"),
                           "i2t": ev["i2t"], "t2i": ev["t2i"],
                           "fit_s": fit_s, "peak_mib": peak,
                           "note": "fit_s/peak: /usr/bin/time of tuwen fit incl. loading cached "
                                   "features; machine shared"})
    print(name, score, C.fmt(row))
