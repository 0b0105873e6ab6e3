#!/usr/bin/env python3
"""Issue #17's Pareto table: each image-feature variant's development-split recall
(experiments/results.jsonl, the run named below) beside its extraction speed on the Teddy sample
(experiments/bench/results/pareto.jsonl from pareto.sh: best round of the latest date) and the
projected time of the full Teddy job (105,000 images) on that machine. Prints Markdown.
   python3 experiments/bench/pareto.py [--date YYYY-MM-DD]"""
import argparse, json, os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# variant of pareto.sh -> (development-split run, what it is)
RUNS = {
    "default": ("s7-dev-default", "Lite2 + Lite0, no flip (the default)"),
    "default+flip": ("s5-dev-lite0-ri1", "Lite2 with flip + Lite0"),
    "lite2": ("s6-dev-l2nf", "Lite2 alone, no flip"),
    "lite2+flip": ("s5-dev-default", "Lite2 alone with flip (session-5 default)"),
    "lite0": ("s5-dev-l0", "Lite0 alone"),
    "lite0-five": ("s6-dev-l0-five", "Lite0, five crops"),
    "lite2-stages+flip": ("s5-dev-stages", "Lite2 with flip, stages 4-6 + last map"),
    "lite0-pyramid": ("s5-dev-l0-pyramid-ri1", "Lite0, pyramid 1x1 + 2x2 (image ridge 1)"),
    "vgg19": ("s7-dev-vgg19", "VGG19 alone"),
    "lite2+vgg19": ("s7-dev-lite2+vgg19", "Lite2 + VGG19"),
    "lite2@300+lite0": ("s7-dev-lite2at300", "Lite2 at 300 px + Lite0"),
    "lite2+lite2@330": ("s7-dev-lite2+lite2at330", "Lite2 at 260 and at 330 px (an extra scale)"),
    "lite2+lite0@288": ("s7-dev-lite2+lite0at288", "Lite2 + Lite0 at 288 px"),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--date", default="", help="only pareto.jsonl rows of this date (default: the latest)")
    a = ap.parse_args()
    recall = {}
    for line in open(os.path.join(ROOT, "experiments", "results.jsonl"), encoding="utf-8"):
        r = json.loads(line)
        if r.get("dataset") == "flickr8k-dev":
            recall[r["name"]] = r  # the last row of a name wins
    rows = [json.loads(l) for l in open(os.path.join(HERE, "results", "pareto.jsonl"), encoding="utf-8")]
    date = a.date or max(r["date"][:10] for r in rows)
    speed = {}
    for r in rows:
        if r["date"].startswith(date) and r["images_per_s"]:
            speed[r["variant"]] = max(speed.get(r["variant"], 0), r["images_per_s"])
    print(f"| variant | dev run | i2t R@1 / R@5 / R@10 | t2i R@1 / R@5 / R@10 | Teddy images/s ({date}) | full Teddy job |")
    print("|---|---|---|---|---|---|")
    for v, (run, what) in RUNS.items():
        rec = recall.get(run)
        f = lambda d: " / ".join(f"{d[k]:.1f}" for k in ("r1", "r5", "r10"))
        i2t, t2i = (f(rec["i2t"]), f(rec["t2i"])) if rec else ("not run", "not run")
        s = speed.get(v)
        job = f"{105000 / s / 3600:.2f} h" if s else "—"
        print(f"| {what} | `{run}` | {i2t} | {t2i} | {s if s else '—'} | {job} |")


if __name__ == "__main__":
    main()
