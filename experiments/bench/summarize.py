"""Table of the side-by-side ratios from experiments/bench/results/*.json → results/summary.md."""
import json, os, platform, re, subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
R = os.path.join(HERE, "results")


def load(name):
    p = os.path.join(R, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else []


def machine():
    info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s*(.+)", info).group(1).strip()
    cpus = os.cpu_count()
    mhz = float(re.search(r"cpu MHz\s*:\s*([\d.]+)", open("/proc/cpuinfo").read()).group(1))
    avx512 = "avx512f" in info
    flops_per_cycle = 64 if avx512 else 32  # 2 FMA units × (16 or 8) fp32 lanes × 2
    peak = cpus * mhz / 1000 * flops_per_cycle
    return model, cpus, mhz, avx512, peak


def main():
    model, cpus, mhz, avx512, peak = machine()
    out = [f"Machine: {model}, {cpus} cores at {mhz:.0f} MHz (KVM), "
           f"{'AVX-512' if avx512 else 'AVX2'}; fp32 peak {cpus} × {mhz/1000:.2f} GHz × "
           f"{64 if avx512 else 32} FLOP/cycle = {peak:.0f} GFLOP/s.", ""]
    ex = load("extract")
    if ex:
        meta = ex[-1]
        out += [f"**Extraction** (VGG19, 224², {meta['vgg19_gflop_per_image']} GFLOP/image; PyTorch's MKL "
                f"sgemm 4096² reaches {meta['sgemm_gflops']} GFLOP/s here). End to end = read + decode + resize/crop + "
                "forward, tuwen and PyTorch alternating in chunks of 100 images.", "",
                "| data | tuwen img/s | PyTorch + DataLoader (2 workers) img/s | ratio | forward GFLOP/s: tuwen channels-last "
                "(NCHW) / PyTorch NCHW (channels-last) | tuwen forward, % of peak | same pixels: max abs diff | "
                "end to end: max abs diff (mean; min cosine) |",
                "|---|---|---|---|---|---|---|---|"]
        for r in ex:
            if "dataset" not in r:
                continue
            out.append(f"| {r['dataset']} ({r['images']}) | {r['tuwen_images_per_s']:.2f} | {r['pytorch_images_per_s']:.2f} | "
                       f"**{r['tuwen_images_per_s']/r['pytorch_images_per_s']:.2f}×** | {r['tuwen_forward_gflops']} "
                       f"({r['tuwen_forward_gflops_nchw']}) / {r['pytorch_forward_gflops']} ({r['pytorch_forward_gflops_channels_last']}) | "
                       f"{100*r['tuwen_forward_gflops']/peak:.0f} % | {r['same_pixels_max_abs_diff']:.2g} "
                       f"(features up to {r['feature_scale_max']:.0f}) | {r['end_to_end_max_abs_diff']:.3g} "
                       f"({r['end_to_end_mean_abs_diff']:.2g}; {r['end_to_end_min_cosine']:.4f}) |")
        out.append("")
    fit = load("fit")
    if fit:
        out += ["**Fit** (Flickr8k-CN training features, both sides PCA-reduced to 256 dims, 64 canonical pairs; "
                "the default fit is the full model: 1,280-d image × text dims → 256 pairs, ridge 0.3/1.0)", "",
                "| pairs | tuwen CCA s | scikit-learn CCA s | speed-up | max corr. gap | linfa-pls s | speed-up | max corr. gap | default fit s |",
                "|---|---|---|---|---|---|---|---|---|"]
        by = {(r.get("part"), r.get("method", r.get("versus")), r["pairs"]): r for r in fit if "pairs" in r}
        for n in sorted({r["pairs"] for r in fit if r.get("part") == "cca"}):
            tw = by[("cca", "tuwen", n)]
            cells = [str(n), f"{tw['seconds']:.2f}"]
            for other in ["scikit-learn", "linfa-pls"]:
                o, c = by.get(("cca", other, n)), by.get(("cca-compare", other, n))
                if o and c:
                    secs = (f"{o['seconds_scaled']:.0f} (first {o['components']}: {o['seconds']:.0f})"
                            if "seconds_scaled" in o else f"{o['seconds']:.1f}")
                    cells += [secs, f"**{c['speedup']}×**", f"{c['max_correlation_gap']:.4f}"]
                elif o:
                    cells += ["—", "—", o.get("error", "")[:60]]
                else:
                    cells += ["—"] * 3
            d = by.get(("default-fit", None, n))
            cells.append(f"{d['seconds']:.1f}" if d else "—")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    rank = load("rank")
    if rank:
        out += ["**Rank** (5,000 queries, random unit vectors, dim 256, top-5)", "",
                "| gallery | tuwen s | numpy s | faiss s | tuwen / faiss time | peak MiB tuwen / numpy / faiss "
                "(above inputs) | identical top-5 sets vs numpy / faiss |", "|---|---|---|---|---|---|---|"]
        for ng in sorted({r["gallery"] for r in rank if "method" in r}):
            m = {r["method"]: r for r in rank if r.get("gallery") == ng and "method" in r}
            ck = {r["check"].split()[-1]: r for r in rank if r.get("gallery") == ng and "check" in r}
            pk = " / ".join(f"{m[k]['peak_mib']} ({m[k]['peak_mib'] - m[k]['inputs_mib']})" for k in ["tuwen", "numpy", "faiss"])
            out.append(f"| {ng} | {m['tuwen']['seconds']:.2f} | {m['numpy']['seconds']:.2f} | {m['faiss']['seconds']:.2f} | "
                       f"**{m['tuwen']['seconds']/m['faiss']['seconds']:.2f}×** | {pk} | "
                       f"{ck['numpy']['identical']} / {ck['faiss']['identical']} of {ck['faiss']['queries']} |")
        out.append("")
    text = "\n".join(out)
    open(os.path.join(R, "summary.md"), "w").write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
