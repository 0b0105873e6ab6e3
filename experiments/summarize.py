#!/usr/bin/env python3
"""Markdown table of experiments/results.jsonl (the latest row per name and scoring): R@1/5/10 and
medr both ways, fit seconds, and the options that define the run. Rows made before session 3
(no "scoring" field) were scored with cosine and tuned on val; they are marked so.
`python3 experiments/summarize.py`."""
import json, os
here = os.path.dirname(os.path.abspath(__file__))
rows = {}
for line in open(os.path.join(here, "results.jsonl"), encoding="utf-8"):
    if line.strip():
        r = json.loads(line)
        rows[(r["name"], r.get("scoring", "cosine"))] = r
print("| run | data | scoring | image→text R@1 / R@5 / R@10 (medr) | text→image R@1 / R@5 / R@10 (medr) | fit s | options |")
print("|---|---|---|---|---|---|---|")
for r in rows.values():
    f = lambda d: f"{d['r1']:.1f} / **{d['r5']:.1f}** / {d['r10']:.1f} ({d['medr']:g})"
    scoring = r.get("scoring", "cosine (tuned on val, sessions 1–2)")
    print(f"| {r['name']} | {r['dataset']} | {scoring} | {f(r['i2t'])} | {f(r['t2i'])} | {r['fit_seconds']:.0f} | `{r['fit_args']}` |")
