"""Extraction side by side: tuwen vs PyTorch + torchvision transforms + DataLoader (2 workers).

Same VGG19 weights (models/vgg19.safetensors, torchvision key layout), same input: shorter side
resized to 224 (bilinear, antialiased), centre 224×224 crop, EXIF orientation applied, Caffe
preprocessing (BGR, 0..255, minus the ImageNet means), relu5_4 averaged over space (512-d).
    experiments/bench/.venv/bin/python experiments/bench/extract.py [--flickr 500] [--teddy 200]
Writes experiments/bench/results/extract.json.
"""
import argparse, csv, json, os, subprocess, sys, time
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORK = os.path.join(ROOT, "runs", "bench")
DATA = os.environ.get("TUWEN_DATA", os.path.join(ROOT, "..", "shared", "data"))
MEAN_BGR = [103.939, 116.779, 123.68]


def vgg19_flops(size=224):
    """Multiply-adds × 2 of VGG19's 16 convolutions at size² input (ReLU and pooling not counted)."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
    flops, c_in, s = 0, 3, size
    for v in cfg:
        if v == "M":
            s //= 2
        else:
            flops += 2 * s * s * 9 * c_in * v
            c_in = v
    return flops


class Files:
    def __init__(self, paths):
        from torchvision import transforms
        self.paths = paths
        self.tf = transforms.Compose([transforms.Resize(224), transforms.CenterCrop(224), transforms.PILToTensor()])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image, ImageOps
        img = ImageOps.exif_transpose(Image.open(self.paths[i])).convert("RGB")
        return self.tf(img)


def build_vgg19():
    import torch, torchvision
    from safetensors.torch import load_file
    w = load_file(os.path.join(ROOT, "models", "vgg19.safetensors"))
    net = torchvision.models.vgg19(weights=None).features[:36]  # up to relu5_4, before pool5
    net.load_state_dict({k.removeprefix("features."): v for k, v in w.items() if k.startswith("features.")})
    return net.eval()


def forward(net, x_uint8, channels_last=False):
    import torch
    x = x_uint8.float().flip(1) - torch.tensor(MEAN_BGR).view(1, 3, 1, 1)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return net(x).mean((2, 3))


def python_e2e(net, paths, n_workers):
    """The notebook pipeline: DataLoader workers decode and resize while the main process runs VGG19."""
    import torch
    loader = torch.utils.data.DataLoader(Files(paths), batch_size=16, num_workers=n_workers, shuffle=False)
    feats = []
    t = time.perf_counter()
    with torch.inference_mode():
        for x in loader:
            feats.append(forward(net, x))
    return torch.cat(feats).numpy(), time.perf_counter() - t


def python_forward(net, net_cl, px, reps=3):
    """Forward pass alone on decoded pixels (batches of 16), NCHW and channels-last, best of reps."""
    import torch
    run = lambda m, cl=False: torch.cat([forward(m, px[i:i + 16], cl) for i in range(0, len(px), 16)]).numpy()
    with torch.inference_mode():
        out = run(net)
        run(net_cl, True)  # warm-up
        fwd, fwd_cl = float("inf"), float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            run(net)
            fwd = min(fwd, time.perf_counter() - t)
            t = time.perf_counter()
            run(net_cl, True)
            fwd_cl = min(fwd_cl, time.perf_counter() - t)
    return out, len(px) / fwd, len(px) / fwd_cl


def sgemm_gflops(n=4096, reps=5):
    """What the machine's best fp32 matrix product (PyTorch's MKL, all threads) reaches."""
    import torch
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return round(2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9, 1)


def pick(dataset, n):
    """The first n image files of a dataset, in pairs-file order (deterministic)."""
    if dataset == "flickr8k-cn":
        images, rows = os.path.join(DATA, "flickr8k-cn", "images"), os.path.join(DATA, "flickr8k-cn", "val.csv")
    else:
        images, rows = os.path.join(DATA, "teddy-sample", "ImageData"), os.path.join(DATA, "teddy-sample", "ImageWordData.csv")
    seen = []
    for r in csv.DictReader(open(rows, encoding="utf-8-sig")):
        i = r["image_id"]
        if i not in seen and os.path.isfile(os.path.join(images, i)):
            seen.append(i)
        if len(seen) == n:
            break
    return images, seen


def tuwen(images, ids, name, forward_images):
    lst = os.path.join(WORK, f"extract-{name}.txt")
    open(lst, "w").write("\n".join(ids) + "\n")
    out = os.path.join(WORK, f"extract-{name}.safetensors")
    r = subprocess.run([os.path.join(ROOT, "target", "release", "examples", "bench_extract"), "--images", images,
                        "--ids", lst, "--out", out, "--forward-images", str(forward_images)],
                       capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        sys.exit(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1]), out


def main():
    import torch
    from safetensors.numpy import load_file
    ap = argparse.ArgumentParser()
    ap.add_argument("--flickr", type=int, default=500)
    ap.add_argument("--teddy", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=100,
                    help="tuwen and PyTorch alternate chunk by chunk, so both see the same machine drift")
    a = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    torch.set_num_threads(os.cpu_count())
    net = build_vgg19()
    net_cl = build_vgg19().to(memory_format=torch.channels_last)
    gflop = vgg19_flops() / 1e9
    rows = []
    for dataset, n in [("flickr8k-cn", a.flickr), ("teddy-sample", a.teddy)]:
        if n == 0:
            continue
        images, ids = pick(dataset, n)
        tw_secs = py_secs = 0.0
        tw_feats, py_feats, tw_ok = [], [], []
        for c in range(0, len(ids), a.chunk):
            chunk = ids[c:c + a.chunk]
            tw, out = tuwen(images, chunk, f"{dataset}-{c}", 0)
            t = load_file(out)
            tw_secs += tw["seconds"]
            tw_feats.append(t["features"]); tw_ok.append(t["ok"][:, 0] > 0)
            f, secs = python_e2e(net, [os.path.join(images, i) for i in chunk], a.workers)
            py_secs += secs
            py_feats.append(f)
        tw_feats, py_feats, ok = np.concatenate(tw_feats), np.concatenate(py_feats), np.concatenate(tw_ok)
        diff = np.abs(py_feats[ok] - tw_feats[ok])
        cos = (py_feats[ok] * tw_feats[ok]).sum(1) / (
            np.linalg.norm(py_feats[ok], axis=1) * np.linalg.norm(tw_feats[ok], axis=1))
        # Forward pass alone, on the same decoded pixels, Rust and Python runs alternating.
        tf, out = tuwen(images, ids[:32], f"{dataset}-forward", 32)
        t = load_file(out)
        px = torch.from_numpy(t["pixels"]).view(-1, 224, 224, 3).permute(0, 3, 1, 2).to(torch.uint8)
        pf, py_fwd, py_fwd_cl = python_forward(net, net_cl, px)
        tf2, _ = tuwen(images, ids[:32], f"{dataset}-forward", 32)
        tw_fwd = max(tf["forward_images_per_s"], tf2["forward_images_per_s"])
        tw_fwd_nchw = max(tf["forward_images_per_s_nchw"], tf2["forward_images_per_s_nchw"])
        row = {"dataset": dataset, "images": len(ids), "extracted": int(ok.sum()), "chunk": a.chunk,
               "tuwen_seconds": round(tw_secs, 2), "pytorch_seconds": round(py_secs, 2),
               "tuwen_images_per_s": round(ok.sum() / tw_secs, 3), "pytorch_images_per_s": round(len(ids) / py_secs, 3),
               "dataloader_workers": a.workers, "torch_threads": torch.get_num_threads(),
               "forward_images": len(px),
               "tuwen_forward_gflops": round(tw_fwd * gflop, 1), "tuwen_forward_gflops_nchw": round(tw_fwd_nchw * gflop, 1),
               "pytorch_forward_gflops": round(py_fwd * gflop, 1),
               "pytorch_forward_gflops_channels_last": round(py_fwd_cl * gflop, 1),
               "feature_scale_max": float(np.abs(tw_feats[ok]).max()),
               "same_pixels_max_abs_diff": float(np.abs(pf - t["pixel_features"]).max()),
               "layout_max_abs_diff": tf["layout_max_abs_diff"],
               "end_to_end_max_abs_diff": float(diff.max()), "end_to_end_mean_abs_diff": float(diff.mean()),
               "end_to_end_min_cosine": float(cos.min())}
        rows.append(row)
        print(json.dumps(row), flush=True)
    rows.append({"vgg19_gflop_per_image": round(gflop, 2), "sgemm_gflops": sgemm_gflops()})
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    json.dump(rows, open(os.path.join(HERE, "results", "extract.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
