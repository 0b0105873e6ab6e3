"""tuwen's default image features (since 8180ee9) against PyTorch, end to end: EfficientNet-Lite2 at
260² + EfficientNet-Lite0 at 224², no flip, each global-average pooled (1,280 + 1,280 = 2,560-d).

The networks are extract_lite.py's nn.Module over tuwen's own files (models/efficientnet-lite2 and
-lite0.safetensors; TensorFlow SAME padding fixed for each network's input side), the input its PIL
counterpart of tuwen's decode (EXIF orientation, transparency on white, first GIF frame, centre square
cut in source coordinates, box pre-shrink above 4× the side, bilinear to the side, (x/255 - 0.5)/0.5).

For each data set (first N files by sorted name):
  same_pixels tuwen's `bench_extract --backbone B` (one network, no flip) on the check ids, for each
              network: its decoded pixels (`pixels`) through this module (eager and TorchScript, both
              layouts) against its features (`pixel_features`): that the modules are tuwen's networks;
              PIL's pixels (plain and JPEG draft) against tuwen's
  stages      per image, main process, one thread: decode (plain / JPEG draft to ≥ 260), resize+crop
              to 260 and to 224 from the same decoded image; forward alone on pre-decoded pixels
              (batches of 16, no flip) per network, eager and TorchScript, NCHW and channels-last,
              best of 3, interleaved
  end_to_end  DataLoader(batch_size=16, num_workers=2) whose items are decoded ONCE and resized to
              260 and 224; both networks run in the main process on each batch, features concatenated
              (Lite2 first, as tuwen), for eager (nn.Module), jit (torch.jit.freeze(torch.jit.script(m))
              + optimize_for_inference) and jit_draft (jit with PIL's JPEG draft decoding to the
              smallest DCT scale with both sides ≥ 260, the counterpart of tuwen's scaled JPEG decode),
              each network in its faster layout (from the forward stage); and the whole command
              `tuwen extract --no-cache --quiet --pairs LIST --images DIR` with its default flags
              (which must give 2,560-d features: checked), optionally an older build (--tuwen-before,
              with --tuwen-before-args if its defaults differ), rounds interleaved, best kept; ratios
              tuwen / each PyTorch variant; features of each variant against tuwen's end to end
              (bench_extract's `features`, both networks concatenated) on the check ids
Writes experiments/bench/results/extract-default.json (--out).

    experiments/bench/.venv/bin/python experiments/bench/extract_default.py [--flickr 300] [--teddy 300]
        [--rounds 1] [--forward-images 48] [--check-images 16] [--variants eager,jit,jit_draft]
        [--tuwen BIN] [--tuwen-before OLD_BIN [--tuwen-before-args ARGS]] [--threads T]
Final run (about 6–8 minutes on the idle 2-core machine; run from the repository root after
`cargo build --release --bin tuwen --example bench_extract`):
    experiments/bench/.venv/bin/python experiments/bench/extract_default.py --flickr 300 --teddy 300 --rounds 1
Quick check: --flickr 16 --teddy 16 --rounds 1 --forward-images 16 --check-images 8
"""
import argparse, json, os, re, subprocess, sys, time
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from extract_lite import (ROOT, HERE, WORK, build_module, gflop_per_image, jit_module, features, pil_decode,  # noqa: E402
                          pil_resize_center_crop, forward_times, run_tuwen, diff, pixel_diff, is_jpeg, pick,
                          machine)

# tuwen's default: the first network, then the second (features appended in this order).
NETS = [("efficientnet-lite2", 260), ("efficientnet-lite0", 224)]
DIM = 1280


class Files:
    """DataLoader dataset: path → (ok, S₁×S₁×3, S₂×S₂×3 uint8), one decode per image resized to every
    network's side. A file PIL cannot read gives ok = 0 and zeros."""
    def __init__(self, paths, sizes, draft_side=0):
        self.paths, self.sizes, self.draft_side = paths, sizes, draft_side

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            img = pil_decode(self.paths[i], self.draft_side)
            return (torch.tensor(1, dtype=torch.uint8),
                    *[torch.from_numpy(np.asarray(pil_resize_center_crop(img, s)).copy()) for s in self.sizes])
        except Exception:
            return (torch.tensor(0, dtype=torch.uint8), *[torch.zeros(s, s, 3, dtype=torch.uint8) for s in self.sizes])


def end_to_end(nets, paths, workers, batch, draft_side=0):
    """nets: [(module, channels_last)] in NETS order. DataLoader workers decode and resize while the
    main process runs every network on the batch (no flip). Timed from the DataLoader's creation
    (workers start at the first iteration) to the last batch's features."""
    t = time.perf_counter()
    loader = torch.utils.data.DataLoader(Files(paths, [s for _, s in NETS], draft_side), batch_size=batch,
                                         num_workers=workers, shuffle=False)
    feats, ok = [], []
    with torch.inference_mode():
        for good, *pxs in loader:
            feats.append(torch.cat([features(m, px, cl, flip=False)[0] for (m, cl), px in zip(nets, pxs)], 1))
            ok.append(good)
    secs = time.perf_counter() - t
    return torch.cat(feats).numpy(), torch.cat(ok).numpy().astype(bool), secs


def stage_times(paths, draft_side):
    """Per image, main process: decode (open, load, EXIF, RGB/alpha), resize/crop to each network's
    side from that one decode, and the JPEG-draft decode; seconds summed."""
    sums = {"decode": 0.0, "decode_jpeg_draft": 0.0, **{f"resize_crop_{s}": 0.0 for _, s in NETS}}
    n = 0
    for p in paths:
        try:
            t = time.perf_counter(); img = pil_decode(p); d = time.perf_counter() - t
            r = {}
            for _, s in NETS:
                t = time.perf_counter(); np.asarray(pil_resize_center_crop(img, s)); r[s] = time.perf_counter() - t
            del img
            t = time.perf_counter(); pil_decode(p, draft_side); dd = time.perf_counter() - t
        except Exception:
            continue
        sums["decode"] += d; sums["decode_jpeg_draft"] += dd; n += 1
        for s, v in r.items():
            sums[f"resize_crop_{s}"] += v
    sums["decode_plus_resizes"] = sums["decode"] + sum(sums[f"resize_crop_{s}"] for _, s in NETS)
    sums["decode_jpeg_draft_plus_resizes"] = sums["decode_jpeg_draft"] + sum(sums[f"resize_crop_{s}"] for _, s in NETS)
    per = lambda s: {"seconds": round(s, 3), "ms_per_image": round(1000 * s / max(n, 1), 2),
                     "images_per_s_one_core": round(n / s, 2) if s else None}
    return {"images": n, **{k: per(v) for k, v in sums.items()},
            "note": "resize_crop_S from the plain decode; the draft decode is resized the same way"}


def tuwen_cli(binary, images, ids, name, args=()):
    """`tuwen extract --no-cache --quiet --pairs LIST --images DIR [args]` on `ids` (an id list CSV,
    header image_id), as a user runs it: wall seconds of the whole command (start-up, weights loaded
    and hashed, each network's pass decoding the files again, forward), images it extracted, and the
    feature dimension and spec it reports."""
    lst = os.path.join(WORK, f"extract-default-{name}.csv")
    with open(lst, "w", encoding="utf-8") as fh:
        fh.write("image_id\n" + "\n".join(ids) + "\n")
    t = time.perf_counter()
    r = subprocess.run([binary, "extract", "--no-cache", "--quiet", "--pairs", lst, "--images", images, *args],
                       capture_output=True, text=True, cwd=ROOT)
    secs = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{binary} extract failed:\n{r.stderr}")
    out = r.stdout + r.stderr
    m = re.search(r"(\d+) images: (\d+) computed", out)
    spec = re.search(r"features (\d+)-d \(([^)]*)\)", out)
    # tuwen's own seconds: the sum of its extraction passes (hashing, model load, decode, forward),
    # without process start and resolving the feature spec (the weights' sha256).
    own = re.search(r"skipped; ([\d.]+) s;", out)
    return {"extracted": int(m.group(2)) if m else len(ids), "seconds": secs,
            "dim": int(spec.group(1)) if spec else None, "spec": spec.group(2) if spec else None,
            "reported_seconds": float(own.group(1)) if own else None}


def main():
    import PIL
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flickr", type=int, default=300, help="images of Flickr8k-CN (0: skip)")
    ap.add_argument("--teddy", type=int, default=300, help="images of the Teddy sample (0: skip)")
    ap.add_argument("--rounds", type=int, default=1, help="end-to-end rounds (variants interleaved), best kept")
    ap.add_argument("--variants", default="eager,jit,jit_draft")
    ap.add_argument("--forward-images", type=int, default=48, help="pre-decoded images for the forward stage")
    ap.add_argument("--check-images", type=int, default=16,
                    help="first ids (plus every non-JPEG among the N) for the same-pixels check")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: what tuwen's libtorch uses)")
    ap.add_argument("--draft-side", type=int, default=max(s for _, s in NETS),
                    help="*_draft variants: JPEGs DCT-scaled (PIL draft) to the smallest size with both sides ≥ this")
    ap.add_argument("--bench-extract", default=os.environ.get(
        "TUWEN_BENCH_EXTRACT", os.path.join(ROOT, "target", "release", "examples", "bench_extract")))
    ap.add_argument("--tuwen", default=os.path.join(ROOT, "target", "release", "tuwen"),
                    help="tuwen binary timed end to end (`extract --no-cache`, default flags)")
    ap.add_argument("--tuwen-before", default="", help="a second tuwen binary timed the same way")
    ap.add_argument("--tuwen-before-args", default="",
                    help="extra flags for --tuwen-before, e.g. '--flip false --second-backbone efficientnet-lite0' "
                         "for a build whose default is still Lite2 with flip")
    ap.add_argument("--models", default=os.path.join(ROOT, "models"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "extract-default.json"))
    a = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    variants = [v for v in a.variants.split(",") if v]
    for v in variants:
        if v not in ("eager", "jit", "eager_draft", "jit_draft"):
            sys.exit(f"unknown variant {v!r} (eager, jit, eager_draft, jit_draft)")
    t_start = time.perf_counter()
    sections = {}

    # Modules: per network eager NCHW / channels-last and TorchScript of each layout.
    nets = {}
    for name, size in NETS:
        w = os.path.join(a.models, f"{name}.safetensors")
        t = time.perf_counter()
        net, meta, blocks = build_module(w, backbone=name)
        load_s = time.perf_counter() - t
        net_cl = build_module(w, backbone=name)[0].to(memory_format=torch.channels_last)
        jit, jit_prep = {}, {}
        for cl in (False, True):
            t = time.perf_counter()
            jit[cl] = jit_module(net, cl)
            jit_prep[cl] = time.perf_counter() - t
        nets[name] = {"size": size, "eager": {False: net, True: net_cl}, "jit": jit, "load_s": load_s,
                      "jit_prep": jit_prep, "meta": meta, "blocks": blocks, "gflop": gflop_per_image(net, size),
                      "weights": w}
    sections["modules"] = time.perf_counter() - t_start

    result = {"what": "tuwen default image features (Lite2 260² + Lite0 224², avg, no flip) vs PyTorch",
              "networks": [{"backbone": n, "input_size": s, "weights": os.path.basename(nets[n]["weights"]),
                            "weights_metadata": nets[n]["meta"], "blocks": len(nets[n]["blocks"]),
                            "gflop_per_image": round(nets[n]["gflop"], 3),
                            "module_load_seconds": round(nets[n]["load_s"], 3),
                            "jit_prepare_seconds": {"nchw": round(nets[n]["jit_prep"][False], 3),
                                                    "channels_last": round(nets[n]["jit_prep"][True], 3)}}
                           for n, s in NETS],
              "gflop_per_image": round(sum(nets[n]["gflop"] for n, _ in NETS), 3), "flip": False,
              "feature_dim": DIM * len(NETS),
              "padding": "SAME, fixed at build time for each network's input side (symmetric pads inside the "
                         "convolution, asymmetric ones as F.pad)",
              "machine": machine(), "torch": torch.__version__, "pillow": PIL.__version__, "numpy": np.__version__,
              "dataloader": {"batch_size": a.batch, "num_workers": a.workers,
                             "start_method": torch.multiprocessing.get_start_method(),
                             "decode": "once per image, resized to every network's side"},
              "bench_extract": {"path": a.bench_extract, "mtime": time.strftime(
                  "%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime(a.bench_extract)))},
              "git_head": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                         cwd=ROOT).stdout.strip(),
              "args": vars(a), "datasets": []}
    threads_set = False
    for dataset, n in [("flickr8k-cn", a.flickr), ("teddy-sample", a.teddy)]:
        if n == 0:
            continue
        images, ids = pick(dataset, n)
        paths = [os.path.join(images, i) for i in ids]
        row = {"dataset": dataset, "images": len(ids), "first": ids[0], "last": ids[-1]}
        print(f"== {dataset}: {len(ids)} images", flush=True)

        # Same pixels, per network: tuwen's decoded input through this module (tuwen first, so the
        # torch thread count can follow libtorch's default as tuwen runs it).
        t_sec = time.perf_counter()
        check = ids[:a.check_images] + [i for i in ids[a.check_images:] if not is_jpeg(os.path.join(images, i))]
        row["check_ids"] = {"first": min(a.check_images, len(ids)), "non_jpeg": check[a.check_images:]}
        row["same_pixels"], row["pil_pixels_vs_tuwen"], row["pil_draft_pixels_vs_tuwen"] = {}, {}, {}
        row["tuwen_bench_extract"] = {}
        tw_feats, tw_oks = [], []
        for name, size in NETS:
            tw, t = run_tuwen(a.bench_extract, images, check, f"default-{dataset}-{name}", len(check), name)
            if tw.get("flip"):
                sys.exit(f"{a.bench_extract} ran with flip; this benchmark compares unflipped features")
            if not threads_set:
                torch.set_num_threads(a.threads or tw["torch_threads"])
                result["torch_threads"] = torch.get_num_threads()
                result["tuwen_torch_threads"] = tw["torch_threads"]
                threads_set = True
            tw_ok = t["ok"][:, 0] > 0
            tw_feats.append(t["features"]); tw_oks.append(tw_ok)
            # forward_part takes the first decodable images, in list order.
            tw_ids = [i for i, o in zip(check, tw_ok) if o][:len(t["pixels"])]
            tpx = torch.from_numpy(t["pixels"].round().astype(np.uint8)).view(-1, size, size, 3)
            nt = nets[name]
            sp = {}
            with torch.inference_mode():
                for kind in ("eager", "jit"):
                    for cl in (False, True):
                        f = features(nt[kind][cl], tpx, cl, flip=False)[0]
                        sp[f"{kind}_{'channels_last' if cl else 'nchw'}"] = diff(f.numpy(), t["pixel_features"])
            row["same_pixels"][name] = sp
            print(f"same pixels {name}:", json.dumps({m: {q: v[q] for q in ("max_abs", "max_rel", "min_cosine")}
                                                      for m, v in sp.items()}), flush=True)
            ours, drafted, keep = [], [], []
            for j, i in enumerate(tw_ids):
                try:
                    p = os.path.join(images, i)
                    ours.append(np.asarray(pil_resize_center_crop(pil_decode(p), size)))
                    drafted.append(np.asarray(pil_resize_center_crop(pil_decode(p, size), size)))
                    keep.append(j)
                except Exception as e:
                    print(f"PIL cannot read {i} ({e}); tuwen could", flush=True)
            kept = [tw_ids[j] for j in keep]
            row["pil_pixels_vs_tuwen"][name] = pixel_diff(np.stack(ours), tpx.numpy()[keep], kept)
            # tuwen decodes a JPEG at ≥ 2× the side DCT-scaled to ≥ the side: PIL draft to the same side.
            row["pil_draft_pixels_vs_tuwen"][name] = pixel_diff(np.stack(drafted), tpx.numpy()[keep], kept)
            row["tuwen_bench_extract"][name] = {**tw, "note": "on the check ids only (check_ids)"}
        sections[f"{dataset}_same_pixels"] = time.perf_counter() - t_sec

        # Stages.
        t_sec = time.perf_counter()
        row["stages"] = stage_times(paths, a.draft_side)
        dec = []
        for p in paths:
            try:
                dec.append(pil_decode(p))
            except Exception:
                pass
            if len(dec) == a.forward_images:
                break
        row["stages"]["forward_images"] = len(dec)
        row["stages"]["forward_images_per_s"], row["stages"]["forward_gflops"] = {}, {}
        row["stages"]["jit_vs_eager_max_rel"] = {}
        layout = {}
        for name, size in NETS:
            nt = nets[name]
            fpx = torch.from_numpy(np.stack([np.asarray(pil_resize_center_crop(img, size)) for img in dec]))
            fw, outs = forward_times({"eager_nchw": (nt["eager"][False], False),
                                      "eager_channels_last": (nt["eager"][True], True),
                                      "jit_nchw": (nt["jit"][False], False),
                                      "jit_channels_last": (nt["jit"][True], True)}, fpx, a.batch, flip=False)
            row["stages"]["forward_images_per_s"][name] = fw
            row["stages"]["forward_gflops"][name] = {m: round(v * nt["gflop"], 1) for m, v in fw.items()}
            row["stages"]["jit_vs_eager_max_rel"][name] = diff(outs["jit_nchw"], outs["eager_nchw"])["max_rel"]
            layout[name] = {k: fw[f"{k}_channels_last"] > fw[f"{k}_nchw"] for k in ("eager", "jit")}
            print(f"forward img/s {name}:", fw, flush=True)
        # Both networks back to back on one image (what one end-to-end image costs in forward).
        row["stages"]["forward_both_images_per_s"] = {
            k: round(1.0 / sum(1.0 / max(v for m, v in row["stages"]["forward_images_per_s"][n].items()
                                         if m.startswith(k + "_")) for n, _ in NETS), 3) for k in ("eager", "jit")}
        del dec
        sections[f"{dataset}_stages"] = time.perf_counter() - t_sec

        # End to end, each network in its faster layout, rounds interleaved.
        t_sec = time.perf_counter()
        clis = [("tuwen", a.tuwen, [])] + (
            [("tuwen_before", a.tuwen_before, a.tuwen_before_args.split())] if a.tuwen_before else [])
        e2e = {v: {"seconds_all": []} for v in variants + [c[0] for c in clis]}
        feats = {}
        # The command's fixed cost (start, weights hashed and loaded, per pass), on one image.
        for name, binary, args in clis:
            one = tuwen_cli(binary, images, ids[:1], f"{dataset}-{name}-one", args)
            e2e[name]["one_image_seconds"] = round(one["seconds"], 3)
        for r in range(a.rounds):
            for name, binary, args in clis:
                c = tuwen_cli(binary, images, ids, f"{dataset}-{name}", args)
                e2e[name]["seconds_all"].append(round(c["seconds"], 3))
                e2e[name].update({k: c[k] for k in ("extracted", "dim", "spec")})
                e2e[name].setdefault("reported_seconds_all", []).append(c["reported_seconds"])
                print(f"{name} round {r}: {c['extracted'] / c['seconds']:.2f} img/s ({c['dim']}-d {c['spec']})",
                      flush=True)
            for v in variants:
                kind = v.split("_")[0]
                mods = [(nets[nm][kind][layout[nm][kind]], layout[nm][kind]) for nm, _ in NETS]
                f, ok, secs = end_to_end(mods, paths, a.workers, a.batch, a.draft_side if v.endswith("_draft") else 0)
                e2e[v]["seconds_all"].append(round(secs, 3))
                feats.setdefault(v, (f, ok))
                print(f"{v} round {r}: {ok.sum() / secs:.2f} img/s", flush=True)
        for v in variants:
            kind, (f, ok) = v.split("_")[0], feats[v]
            best = min(e2e[v]["seconds_all"])
            prep = sum(nets[nm]["load_s"] + (nets[nm]["jit_prep"][layout[nm][kind]] if kind == "jit" else 0.0)
                       for nm, _ in NETS)
            e2e[v].update({"layouts": {nm: "channels_last" if layout[nm][kind] else "nchw" for nm, _ in NETS},
                           "extracted": int(ok.sum()), "seconds": best, "images_per_s": round(ok.sum() / best, 3),
                           "images_per_s_incl_model_preparation": round(ok.sum() / (best + prep), 3),
                           "jpeg_draft_side": a.draft_side if v.endswith("_draft") else None})
        for name, binary, args in clis:
            best = min(e2e[name]["seconds_all"])
            own = [x for x in e2e[name]["reported_seconds_all"] if x]
            e2e[name].update({"binary": binary, "args": " ".join(args), "seconds": best,
                              "images_per_s": round(e2e[name]["extracted"] / best, 3),
                              "images_per_s_reported": round(e2e[name]["extracted"] / min(own), 3) if own else None,
                              "note": "images_per_s: the whole `tuwen extract --no-cache` command (process "
                                      "start, weights sha256, model loads, and per network pass: every file "
                                      "read and blake3-hashed, then decoded); images_per_s_reported: over the "
                                      "seconds tuwen prints (its passes only, 0.1 s resolution)"})
            if e2e[name]["dim"] != DIM * len(NETS):
                print(f"WARNING: {name} gave {e2e[name]['dim']}-d features ({e2e[name]['spec']}), not the "
                      f"{DIM * len(NETS)}-d Lite2 + Lite0 default this script runs", flush=True)
                e2e[name]["warning"] = "not the Lite2 + Lite0 no-flip default: ratios compare different work"
            for v in variants:
                e2e[name][f"speedup_vs_{v}"] = round(e2e[name]["images_per_s"] / e2e[v]["images_per_s"], 3)
        base = feats[variants[0]]
        for v in variants[1:]:
            both = base[1] & feats[v][1]
            e2e[v]["features_vs_" + variants[0]] = diff(feats[v][0][both], base[0][both])
        # End to end against tuwen's own decode: bench_extract's features of the check ids, both networks.
        pos = {i: j for j, i in enumerate(ids)}
        tw_all = np.concatenate(tw_feats, 1)
        tw_ok = np.logical_and.reduce(tw_oks)
        rows_tw = [j for j, o in enumerate(tw_ok) if o and base[1][pos[check[j]]]]
        ours_rows = [pos[check[j]] for j in rows_tw]
        if rows_tw:
            for v in variants:
                f = feats[v][0]
                e2e[v]["features_vs_tuwen_end_to_end"] = {
                    "concatenated": diff(f[ours_rows], tw_all[rows_tw]),
                    **{nm: diff(f[ours_rows, k * DIM:(k + 1) * DIM], tw_all[rows_tw, k * DIM:(k + 1) * DIM])
                       for k, (nm, _) in enumerate(NETS)}}
        row["end_to_end"] = e2e
        sections[f"{dataset}_end_to_end"] = time.perf_counter() - t_sec
        result["datasets"].append(row)
        print(json.dumps({v: e2e[v]["images_per_s"] for v in e2e}), flush=True)
        print(json.dumps({f"{c}_vs_{v}": e2e[c][f"speedup_vs_{v}"] for c, _, _ in clis for v in variants}), flush=True)

    sections["total"] = time.perf_counter() - t_start
    result["section_seconds"] = {k: round(v, 1) for k, v in sections.items()}
    result["notes"] = [
        "end_to_end images_per_s excludes building the modules (module_load_seconds) and scripting/freezing "
        "(jit_prepare_seconds); images_per_s_incl_model_preparation includes them. tuwen's figure is the whole "
        "command: process start, weights read and sha256-hashed, both networks loaded.",
        "PyTorch decodes each image once for both networks (the DataLoader item carries both sizes); tuwen "
        "runs one extraction pass per network, each decoding the files (JPEGs DCT-scaled to the network's side).",
        "Both networks run in the main process one after the other on each batch of 16, while the 2 workers "
        "decode the next batches: on 2 cores the workers and torch's threads share the CPUs, as in a notebook.",
        "same_pixels: tuwen's own decoded pixels (bench_extract, one network, no flip) through this module; "
        "the check that the modules are tuwen's networks, independent of decoders. features_vs_tuwen_end_to_end "
        "differs through the decoders and resamplers (see extract-lite2.json's notes).",
    ]
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(result, fh, indent=1)
    os.replace(tmp, a.out)
    print("wrote", a.out, f"({sections['total']:.0f} s)")


if __name__ == "__main__":
    main()
