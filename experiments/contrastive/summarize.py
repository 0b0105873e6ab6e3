"""Markdown tables of results.jsonl (CSLS rows; cosine R@5 beside them): one per data set."""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
rows = [json.loads(l) for l in open(os.path.join(HERE, "results.jsonl"), encoding="utf-8")]
cos = {(r["name"], r["dataset"]): r for r in rows if r.get("score") == "cosine"}


def cfg(r):
    c = r.get("config") or {}
    if r.get("method", "").startswith("cca"):
        return "tuwen fit defaults" + (" + MT pairs" if "mt" in r["name"] else "")
    if r["method"] == "method1-lstm":
        s = f"loss {c.get('loss', 'cosine-embedding')} m={c['margin']}, lr {c['lr']}, batch {c['batch']}"
    else:
        s = (f"{c['init']} init, image {c['image_map']}, lr {c['lr']}"
             + (f", pull {c['pull']}" if c["pull"] else "") + (f", wd {c['wd']}" if c["wd"] else "")
             + (f", dropout {c['dropout']}" if c["dropout"] else "") + (", +MT" if c["mt"] else "")
             + (f", seed {c['seed']}" if c.get("seed") else ""))
    if c.get("early_stop"):
        s += f", early stop {c['early_stop']:g}" + (" + refit" if c.get("refit") else "")
    return s


for ds in ("flickr8k-dev", "flickr8k-cn"):
    print(f"\n### {ds}\n")
    print("| run | configuration | epochs | i2t R@1 / R@5 / R@10 | t2i R@1 / R@5 / R@10 | "
          "R@5 cosine i2t / t2i | fit s | peak MiB |")
    print("|---|---|---|---|---|---|---|---|")
    seen = set()
    for r in rows:
        if r.get("dataset") != ds or r.get("score") != "csls(k=10)":
            continue
        key = (r["name"], ds)
        c = cos.get(key)
        a, b = r["i2t"], r["t2i"]
        cr = f"{c['i2t']['r5']:.1f} / {c['t2i']['r5']:.1f}" if c else ""
        peak = f"{r['peak_mib']:.0f}" if r.get("peak_mib") else ""
        fit = f"{r['fit_s']:.0f}" if r.get("fit_s") is not None else ""
        print(f"| `{r['name']}` | {cfg(r)} | {r.get('epochs_run', '')} | "
              f"{a['r1']:.1f} / {a['r5']:.1f} / {a['r10']:.1f} | "
              f"{b['r1']:.1f} / {b['r5']:.1f} / {b['r10']:.1f} | {cr} | {fit} | {peak} |")
