"""EfficientNet-Lite2 extraction, the PyTorch side of issue #19 (tuwen ≥ 1.5× PyTorch eager end to end).

The network is written here as a torch nn.Module over models/efficientnet-lite2.safetensors (the file
tuwen loads; layout read off the tensors as src/features/image/backbone.rs `efficientnet_layout`
does; TensorFlow SAME padding, batch norm eps 1e-3, ReLU6, global average pool of the 1,280-d head
map). Input as tuwen: decode (EXIF orientation applied, transparency on white, first GIF frame),
centre square cut in source coordinates, resized to 260 (box pre-shrink to 520 first when the square
is over 1,040 px), RGB/255, (x - 0.5)/0.5; features averaged over the image and its mirror.

For each data set (first N files by sorted name):
  stages      decode / resize+crop per image (main process, one thread); forward on pre-decoded
              pixels (batches of 16, flip = one batch of 32), eager and TorchScript, NCHW and
              channels-last, best of 3, interleaved
  end_to_end  DataLoader(batch_size=16, num_workers=2) + forward + flip average, for
              eager (nn.Module), jit (torch.jit.freeze(torch.jit.script(m)) + optimize_for_inference,
              which folds batch norm into the convolutions and runs oneDNN) and jit_draft (the same
              with PIL's JPEG draft mode: DCT-scaled decoding, 1/2 to 1/8, to the smallest size with
              both sides ≥ 260), each in its faster layout (NCHW or channels-last, from the forward stage)
  same_pixels the pixels tuwen's `bench_extract` decoded (its `pixels`, `pixel_features`) fed to this
              module: max abs / relative feature difference; and PIL's pixels against tuwen's
Writes experiments/bench/results/extract-lite2.json.

    experiments/bench/.venv/bin/python experiments/bench/extract_lite.py [--flickr 200] [--teddy 200]
        [--rounds 2] [--forward-images 64] [--check-images 32] [--threads T] [--bench-extract BIN]
        [--tuwen BIN] [--tuwen-args ARGS] [--tuwen-before OLD_BIN] [--tuwen-before-args ARGS]
A tuwen built since 8180ee9 extracts Lite2 + Lite0 without flip by default: time it on this script's
network with --tuwen-args '--flip --second-backbone none' (extract_default.py benchmarks the new default).
Quick check (a few minutes on 2 cores): --flickr 32 --teddy 32 --rounds 1 --forward-images 32
"""
import argparse, json, os, platform, re, subprocess, sys, time
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORK = os.path.join(ROOT, "runs", "bench")
DATA = os.environ.get("TUWEN_DATA", os.path.join(ROOT, "..", "shared", "data"))
SIZE = 260
STAGE_STRIDES = [1, 2, 2, 2, 1, 2, 1]
# backbone → (MBConv blocks, head input channels, input side), as backbone.rs tells the variants apart.
VARIANTS = {"efficientnet-lite0": (16, 320, 224), "efficientnet-lite2": (21, 352, 260)}


# ---------------------------------------------------------------- the network


def same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TensorFlow SAME padding (backbone.rs same_pad): the extra pixel of an odd total goes last."""
    h, wd = x.shape[2], x.shape[3]
    ph = max((((h + s - 1) // s) - 1) * s + k - h, 0)
    pw = max((((wd + s - 1) // s) - 1) * s + k - wd, 0)
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


def same_pads(n: int, k: int, s: int):
    """(before, after) of TensorFlow SAME padding for an n-pixel side (backbone.rs same_pad)."""
    p = max((((n + s - 1) // s) - 1) * s + k - n, 0)
    return p // 2, p - p // 2


class ConvPad(nn.Conv2d):
    """Conv2d without bias after SAME padding. `size` given (the input side this conv sees at the
    network's build size, 260² for Lite2):
    the padding is fixed at build time, inside the convolution where it is symmetric (every stride-1
    conv), an explicit F.pad before it where not (the five stride-2 convs); `size` 0: computed per
    call from the input's shape, as backbone.rs does."""
    def __init__(self, cin: int, cout: int, k: int, s: int, groups: int, size: int = 0):
        (a, b) = same_pads(size, k, s) if size else (0, 0)
        sym = size > 0 and a == b
        super().__init__(cin, cout, k, s, padding=a if sym else 0, groups=groups, bias=False)
        self.k, self.s = k, s
        self.dynamic = size == 0
        self.explicit = size > 0 and not sym
        self.pad = [a, b, a, b]

    def forward(self, x):
        if self.dynamic:
            x = same_pad(x, self.k, self.s)
        elif self.explicit:
            x = F.pad(x, self.pad)
        return self._conv_forward(x, self.weight, None)


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3)


class MBConv(nn.Module):
    """[1×1 expand + BN + ReLU6] → k×k depthwise (stride s) + BN + ReLU6 → 1×1 project + BN [+ input]."""
    def __init__(self, cin: int, mid: int, cout: int, k: int, s: int, expand: bool, size: int):
        super().__init__()
        self.expand, self.skip = expand, s == 1 and cin == cout
        out = (size + s - 1) // s if size else 0
        if expand:
            self._expand_conv, self._bn0 = ConvPad(cin, mid, 1, 1, 1, size), bn(mid)
        else:
            self._expand_conv, self._bn0 = nn.Identity(), nn.Identity()
        self._depthwise_conv, self._bn1 = ConvPad(mid, mid, k, s, mid, size), bn(mid)
        self._project_conv, self._bn2 = ConvPad(mid, cout, 1, 1, 1, out), bn(cout)
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x):
        inp = x
        if self.expand:
            x = self.act(self._bn0(self._expand_conv(x)))
        x = self.act(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        if self.skip:
            x = x + inp
        return x


class EfficientNetLite(nn.Module):
    """Pooled head features (N×1280) of a normalised N×3×S×S batch. Attribute names are the
    safetensors file's tensor names, so the file loads with load_state_dict."""
    def __init__(self, blocks, stem_out: int, head_in: int, head_out: int, size: int):
        super().__init__()
        self._conv_stem, self._bn0 = ConvPad(3, stem_out, 3, 2, 1, size), bn(stem_out)
        size = (size + 1) // 2 if size else 0
        mods = []
        for b in blocks:
            mods.append(MBConv(*b, size))
            size = (size + b[4] - 1) // b[4] if size else 0
        self._blocks = nn.ModuleList(mods)
        self._conv_head, self._bn1 = ConvPad(head_in, head_out, 1, 1, 1, size), bn(head_out)
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x):
        x = self.act(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = self.act(self._bn1(self._conv_head(x)))
        return x.mean((2, 3))


def build_module(weights_path, static_pad=True, backbone="efficientnet-lite2"):
    """EfficientNet-Lite2 (or `backbone`, a VARIANTS key) from tuwen's safetensors file, eval mode;
    with the file's metadata and the block list (in, mid, out, kernel, stride, expand). static_pad:
    SAME padding fixed for the backbone's input side (260² for Lite2, 224² for Lite0; see ConvPad);
    False: computed per call from the input's shape."""
    n_blocks, head_in, size = VARIANTS[backbone]
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(weights_path, "pt") as f:
        meta = f.metadata() or {}
    if meta.get("preprocess") != "mean0.5-std0.5":
        sys.exit(f"{weights_path}: preprocessing tag {meta.get('preprocess')!r}, expected mean0.5-std0.5")
    w = load_file(weights_path)
    # The block structure, read off the tensors as backbone.rs efficientnet_layout does: kernel from
    # the depthwise weight, expansion from an expand conv's presence; a block whose channels change
    # opens a stage; the seven stages have strides 1,2,2,2,1,2,1.
    blocks, stage, prev_out, i = [], -1, -1, 0
    while f"_blocks.{i}._depthwise_conv.weight" in w:
        p = f"_blocks.{i}"
        dw, pr = w[f"{p}._depthwise_conv.weight"], w[f"{p}._project_conv.weight"]
        ex = w.get(f"{p}._expand_conv.weight")
        cin = ex.shape[1] if ex is not None else dw.shape[0]
        cout = pr.shape[0]
        opens = i == 0 or cin != prev_out or cin != cout
        stage += opens
        stride = STAGE_STRIDES[stage] if opens and stage < len(STAGE_STRIDES) else 1
        blocks.append((cin, dw.shape[0], cout, dw.shape[2], stride, ex is not None))
        prev_out, i = cout, i + 1
    head = w["_conv_head.weight"]
    if stage != 6 or (len(blocks), head.shape[1]) != (n_blocks, head_in):
        sys.exit(f"{weights_path}: not {backbone} ({len(blocks)} blocks, head input {head.shape[1]})")
    net = EfficientNetLite(blocks, w["_conv_stem.weight"].shape[0], head.shape[1], head.shape[0], size if static_pad else 0)
    missing, unexpected = net.load_state_dict({k: v for k, v in w.items() if not k.startswith("_fc.")}, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit(f"{weights_path}: missing {missing}, unexpected {unexpected}")
    return net.eval(), meta, blocks


def gflop_per_image(net, size=SIZE):
    """2 × multiply-adds of all convolutions at size² (batch norm, ReLU6, pooling not counted)."""
    total = [0]

    def hook(m, inp, out):
        total[0] += 2 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        net(torch.zeros(1, 3, size, size))
    for h in hs:
        h.remove()
    return total[0] / 1e9


def jit_module(net, channels_last):
    """torch.jit.freeze(torch.jit.script(net)) + optimize_for_inference (conv-bn folding, oneDNN)."""
    import copy
    m = copy.deepcopy(net)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    s = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(m)))
    return s


def features(net, px, channels_last=False, flip=True):
    """N×S×S×3 uint8 pixels → N×1280 (mean of the image's and its mirror's features when flip;
    both in one batch of 2N); also returns the unflipped features. tuwen's normalisation, same order."""
    x = px.permute(0, 3, 1, 2).float()
    x = (x / 255.0 - 0.5) / 0.5
    if flip:
        x = torch.cat([x, x.flip(3)])
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    f = net(x)
    if not flip:
        return f, f
    n = px.shape[0]
    return (f[:n] + f[n:]) / 2.0, f[:n]


# ---------------------------------------------------------------- decoding, as close to decode.rs as PIL allows

def pil_decode(path, draft_side=0):
    """PIL image in RGB, oriented as its EXIF tag says, transparency composited on white (tuwen's
    formula), the first frame of a GIF. draft_side > 0: JPEG DCT-scaled decoding (PIL draft mode)
    to the largest scale whose both sides stay ≥ draft_side."""
    from PIL import Image, ImageOps
    img = Image.open(path)
    if draft_side and img.format == "JPEG":
        img.draft("RGB", (draft_side, draft_side))
    img.load()
    ImageOps.exif_transpose(img, in_place=True)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode in ("P", "L", "RGB") and "transparency" in img.info)
    if not has_alpha:
        return img.convert("RGB") if img.mode != "RGB" else img
    a = np.asarray(img.convert("RGBA"))
    alpha = a[..., 3:4].astype(np.float32) / np.float32(255.0)
    # Rust: (p as f32 * a + 255.0 * (1.0 - a)).round() as u8 (f32 throughout, halves away from 0)
    v = a[..., :3].astype(np.float32) * alpha + np.float32(255.0) * (np.float32(1.0) - alpha)
    return Image.fromarray(np.floor(v + np.float32(0.5)).clip(0, 255).astype(np.uint8), "RGB")


def pil_resize_center_crop(img, size=SIZE):
    """decode.rs resize_center_crop in PIL: the centre square (integer offsets (w-side)/2) is cut in
    source coordinates (PIL's box= argument, no copy); over 4× size a box-filter pre-shrink to 2×size,
    then triangle (bilinear, antialiased) resampling to size×size."""
    from PIL import Image
    w, h = img.size
    side = max(min(w, h), 1)
    x, y = (w - min(side, w)) // 2, (h - min(side, h)) // 2
    box = (x, y, x + min(side, w), y + min(side, h))
    if side > 4 * size:
        pre = img.resize((2 * size, 2 * size), Image.BOX, box=box)
        return pre.resize((size, size), Image.BILINEAR)
    return img.resize((size, size), Image.BILINEAR, box=box)


class Files:
    """DataLoader dataset: path → (ok, S×S×3 uint8). A file PIL cannot read gives ok = 0, zeros."""
    def __init__(self, paths, draft_side=0):
        self.paths, self.draft_side = paths, draft_side

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            img = pil_resize_center_crop(pil_decode(self.paths[i], self.draft_side))
            return torch.tensor(1, dtype=torch.uint8), torch.from_numpy(np.asarray(img).copy())
        except Exception:
            return torch.tensor(0, dtype=torch.uint8), torch.zeros(SIZE, SIZE, 3, dtype=torch.uint8)


# ---------------------------------------------------------------- measurements

def end_to_end(net, paths, channels_last, workers, batch, draft_side=0):
    """The notebook pipeline: DataLoader workers decode and resize while the main process runs the
    network on the image and its mirror. Timed from the DataLoader's creation (workers start at the
    first iteration) to the last batch's features."""
    t = time.perf_counter()
    loader = torch.utils.data.DataLoader(Files(paths, draft_side), batch_size=batch, num_workers=workers, shuffle=False)
    feats, noflip, ok = [], [], []
    with torch.inference_mode():
        for good, px in loader:
            f, g = features(net, px, channels_last)
            feats.append(f); noflip.append(g); ok.append(good)
    secs = time.perf_counter() - t
    return torch.cat(feats).numpy(), torch.cat(noflip).numpy(), torch.cat(ok).numpy().astype(bool), secs


def stage_times(paths, draft_side):
    """Per image, main process: decode (open, load, EXIF, RGB/alpha) and resize/crop, seconds summed."""
    dec = dec_draft = rsz = 0.0
    n = 0
    for p in paths:
        try:
            t = time.perf_counter(); img = pil_decode(p); t1 = time.perf_counter()
            np.asarray(pil_resize_center_crop(img)); t2 = time.perf_counter()
            del img
            t3 = time.perf_counter(); pil_decode(p, draft_side); t4 = time.perf_counter()
        except Exception:
            continue
        dec += t1 - t; rsz += t2 - t1; dec_draft += t4 - t3; n += 1
    per = lambda s: {"seconds": round(s, 3), "ms_per_image": round(1000 * s / max(n, 1), 2),
                     "images_per_s_one_core": round(n / s, 2) if s else None}
    return {"images": n, "decode": per(dec), "resize_crop": per(rsz), "decode_jpeg_draft": per(dec_draft),
            "decode_plus_resize": per(dec + rsz)}


def forward_times(models, px, batch, reps=3, flip=True):
    """Forward (normalise + flip batch when flip + network + pool) on pre-decoded pixels, batches of
    `batch`, every model once as warm-up, then `reps` interleaved rounds, best of each."""
    run = lambda m, cl: torch.cat([features(m, px[i:i + batch], cl, flip)[0] for i in range(0, len(px), batch)])
    best = {k: float("inf") for k in models}
    outs = {}
    with torch.inference_mode():
        for k, (m, cl) in models.items():
            outs[k] = run(m, cl).numpy()
        for _ in range(reps):
            for k, (m, cl) in models.items():
                t = time.perf_counter(); run(m, cl); best[k] = min(best[k], time.perf_counter() - t)
    return {k: round(len(px) / best[k], 3) for k in models}, outs


def run_tuwen(binary, images, ids, name, n_forward, backbone="efficientnet-lite2"):
    """tuwen's bench_extract on `ids` (one network, no flip): its JSON report and its output tensors."""
    from safetensors.numpy import load_file
    lst = os.path.join(WORK, f"extract-lite-{name}.txt")
    open(lst, "w").write("\n".join(ids) + "\n")
    out = os.path.join(WORK, f"extract-lite-{name}.safetensors")
    r = subprocess.run([binary, "--backbone", backbone, "--images", images, "--ids", lst, "--out", out,
                        "--forward-images", str(n_forward)], capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        sys.exit(f"{binary} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1]), load_file(out)


def tuwen_cli(binary, images, ids, name, args=()):
    """`tuwen extract --no-cache [args]` (the binary's default features, unless args say otherwise;
    EfficientNet-Lite2 with flip before 8180ee9, Lite2 + Lite0 without flip since) on `ids`, as a
    user runs it: wall seconds of the whole command (reading, hashing, decoding, forward, model load)
    and the number of images it extracted."""
    lst = os.path.join(WORK, f"extract-lite-{name}.csv")
    with open(lst, "w", encoding="utf-8") as fh:
        fh.write("image_id\n" + "\n".join(ids) + "\n")
    t = time.perf_counter()
    r = subprocess.run([binary, "extract", "--no-cache", "--quiet", "--pairs", lst, "--images", images, *args],
                       capture_output=True, text=True, cwd=ROOT)
    secs = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{binary} extract failed:\n{r.stderr}")
    m = re.search(r"(\d+) images: (\d+) computed", r.stdout + r.stderr)
    return (int(m.group(2)) if m else len(ids)), secs


def diff(a, b):
    """Feature differences: max abs, max abs relative to the largest feature, worst row's relative L2
    distance, min cosine."""
    d = np.abs(a - b)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)
    return {"rows": int(len(a)), "max_abs": float(d.max()), "mean_abs": float(d.mean()),
            "feature_max": float(np.abs(b).max()), "max_rel": float(d.max() / np.abs(b).max()),
            "max_row_rel_l2": float((np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)).max()),
            "min_cosine": float(cos.min())}


def pixel_diff(ours, theirs, names):
    d = np.abs(ours.astype(np.int16) - theirs.astype(np.int16))
    per = d.reshape(len(d), -1)
    worst = np.argsort(-per.mean(1))[:5]
    return {"images": int(len(d)), "identical_bytes": float((d == 0).mean()), "within_1": float((d <= 1).mean()),
            "max_abs": int(d.max()), "mean_abs": float(d.mean()), "identical_images": int((per.max(1) == 0).sum()),
            "worst": [{"id": names[i], "mean_abs": round(float(per[i].mean()), 3), "max_abs": int(per[i].max())}
                      for i in worst]}


def is_jpeg(path):
    with open(path, "rb") as f:
        return f.read(3) == b"\xff\xd8\xff"


def pick(dataset, n):
    """The first n files of a data set's image folder by sorted name (fixed order)."""
    images = os.path.join(DATA, "flickr8k-cn", "images") if dataset == "flickr8k-cn" \
        else os.path.join(DATA, "teddy-sample", "ImageData")
    names = sorted(f for f in os.listdir(images) if os.path.isfile(os.path.join(images, f)))
    return images, names[:n]


def machine():
    info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    get = lambda k: (re.search(rf"^{k}:\s*(.+)$", info, re.M) or [None, None])[1]
    return {"model_name": (get("Model name") or "").strip(), "cpus": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)), "cores_per_socket": get("Core\\(s\\) per socket"),
            "sockets": get("Socket\\(s\\)"), "threads_per_core": get("Thread\\(s\\) per core"),
            "avx512": "avx512f" in info, "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg()}


def main():
    import PIL
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flickr", type=int, default=200, help="images of Flickr8k-CN (0: skip)")
    ap.add_argument("--teddy", type=int, default=200, help="images of the Teddy sample (0: skip)")
    ap.add_argument("--rounds", type=int, default=2, help="end-to-end rounds (variants interleaved), best kept")
    ap.add_argument("--variants", default="eager,jit,jit_draft")
    ap.add_argument("--forward-images", type=int, default=64, help="pre-decoded images for the forward stage")
    ap.add_argument("--check-images", type=int, default=32, help="images of tuwen's pixels for the same-pixels check")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: what tuwen's libtorch uses)")
    ap.add_argument("--draft-side", type=int, default=SIZE,
                    help="*_draft variants: JPEGs DCT-scaled (PIL draft) to the smallest size with both sides ≥ this")
    ap.add_argument("--bench-extract", default=os.environ.get(
        "TUWEN_BENCH_EXTRACT", os.path.join(ROOT, "target", "release", "examples", "bench_extract")))
    ap.add_argument("--tuwen", default=os.path.join(ROOT, "target", "release", "tuwen"),
                    help="tuwen binary timed end to end (`extract --no-cache`) between the PyTorch variants")
    ap.add_argument("--tuwen-before", default="",
                    help="a second tuwen binary (e.g. the previous release) timed the same way")
    ap.add_argument("--tuwen-args", default="",
                    help="extra `tuwen extract` flags for --tuwen; a build since 8180ee9 needs "
                         "'--flip --second-backbone none' to run this script's network (Lite2 with flip)")
    ap.add_argument("--tuwen-before-args", default="", help="the same for --tuwen-before")
    ap.add_argument("--weights", default=os.path.join(ROOT, "models", "efficientnet-lite2.safetensors"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "extract-lite2.json"))
    a = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    variants = [v for v in a.variants.split(",") if v]

    t = time.perf_counter()
    net, meta, blocks = build_module(a.weights)
    load_s = time.perf_counter() - t
    gflop = gflop_per_image(net)
    net_cl = build_module(a.weights)[0].to(memory_format=torch.channels_last)
    # The literal mirror of backbone.rs: SAME padding computed and applied (F.pad) before every conv.
    net_dyn = build_module(a.weights, static_pad=False)[0].to(memory_format=torch.channels_last)
    jit, jit_prep = {}, {}
    for cl in (False, True):
        t = time.perf_counter()
        jit[cl] = jit_module(net, cl)
        jit_prep[cl] = time.perf_counter() - t
    eager = {False: net, True: net_cl}
    result = {"issue": 19, "backbone": "efficientnet-lite2", "input_size": SIZE, "weights": os.path.basename(a.weights),
              "weights_metadata": meta,
              "blocks": [f"{b[0]}->{b[1]}->{b[2]} k{b[3]} s{b[4]}{'' if b[5] else ' no-expand'}" for b in blocks],
              "padding": "SAME, fixed for 260² input: symmetric ones inside the convolution, the 2 asymmetric "
                         "(stem, block 1 depthwise) as F.pad; forward_images_per_s.eager_dynamic_pad_channels_last "
                         "pads before every conv as backbone.rs does",
              "gflop_per_image": round(gflop, 3), "gflop_per_image_with_flip": round(2 * gflop, 3), "flip": True,
              "machine": machine(), "torch": torch.__version__, "pillow": PIL.__version__, "numpy": np.__version__,
              "dataloader": {"batch_size": a.batch, "num_workers": a.workers,
                             "start_method": torch.multiprocessing.get_start_method()},
              "bench_extract": {"path": a.bench_extract, "mtime": time.strftime(
                  "%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime(a.bench_extract)))},
              "git_head": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                         cwd=ROOT).stdout.strip(),
              "module_load_seconds": round(load_s, 3),
              "jit_prepare_seconds": {"nchw": round(jit_prep[False], 3), "channels_last": round(jit_prep[True], 3)},
              "datasets": []}
    threads_set = False
    for dataset, n in [("flickr8k-cn", a.flickr), ("teddy-sample", a.teddy)]:
        if n == 0:
            continue
        images, ids = pick(dataset, n)
        paths = [os.path.join(images, i) for i in ids]
        row = {"dataset": dataset, "images": len(ids), "first": ids[0], "last": ids[-1]}
        print(f"== {dataset}: {len(ids)} images", flush=True)

        # Same pixels: tuwen's decoded input through this module (tuwen first, so the torch thread
        # count can follow libtorch's default as tuwen runs it).
        # The first check_images ids, and every non-JPEG file among the N (GIF/PNG: alpha, frames).
        check = ids[:a.check_images] + [i for i in ids[a.check_images:] if not is_jpeg(os.path.join(images, i))]
        tw, t = run_tuwen(a.bench_extract, images, check, f"{dataset}-check", len(check))
        if not threads_set:
            torch.set_num_threads(a.threads or tw["torch_threads"])
            result["torch_threads"] = torch.get_num_threads()
            result["tuwen_torch_threads"] = tw["torch_threads"]
            threads_set = True
        tw_ok = t["ok"][:, 0] > 0
        tw_ids = [i for i, o in zip(check, tw_ok) if o][:len(t["pixels"])]
        row["check_ids"] = {"first": min(a.check_images, len(ids)), "non_jpeg": check[a.check_images:]}
        tpx = torch.from_numpy(t["pixels"].round().astype(np.uint8)).view(-1, SIZE, SIZE, 3)
        with torch.inference_mode():
            sp = {}
            for name, m, cl in [("eager_nchw", net, False), ("eager_channels_last", net_cl, True),
                                ("jit_nchw", jit[False], False), ("jit_channels_last", jit[True], True)]:
                f, g = features(m, tpx, cl)
                sp[name] = {"vs_tuwen_noflip": diff(g.numpy(), t["pixel_features"]),
                            "vs_tuwen_if_flip": diff(f.numpy(), t["pixel_features"])}
        # bench_extract runs flip=false (extract.rs); its pixel_features match the unflipped ones.
        tuwen_flip = tw.get("flip", sp["eager_nchw"]["vs_tuwen_if_flip"]["max_rel"] < sp["eager_nchw"]["vs_tuwen_noflip"]["max_rel"])
        key = "vs_tuwen_if_flip" if tuwen_flip else "vs_tuwen_noflip"
        row["same_pixels"] = {"tuwen_flip": bool(tuwen_flip),
                              **{m: v[key] for m, v in sp.items()}}
        print("same pixels:", json.dumps({m: {q: v[key][q] for q in ("max_abs", "max_rel", "min_cosine")} for m, v in sp.items()}), flush=True)
        ours, keep = [], []
        for j, i in enumerate(tw_ids):
            try:
                ours.append(np.asarray(pil_resize_center_crop(pil_decode(os.path.join(images, i))))); keep.append(j)
            except Exception as e:
                print(f"PIL cannot read {i} ({e}); tuwen could", flush=True)
        ours = np.stack(ours)
        kept = [tw_ids[j] for j in keep]
        row["pil_pixels_vs_tuwen"] = pixel_diff(ours, tpx.numpy()[keep], kept)
        # If tuwen decodes JPEGs DCT-scaled, PIL's draft mode is the closer counterpart.
        drafted = np.stack([np.asarray(pil_resize_center_crop(pil_decode(os.path.join(images, i), a.draft_side))) for i in kept])
        row["pil_draft_pixels_vs_tuwen"] = pixel_diff(drafted, tpx.numpy()[keep], kept)
        row["tuwen_bench_extract"] = {**tw, "flip": bool(tuwen_flip), "note": "on the check ids only (check_ids)"}

        # Stages.
        row["stages"] = stage_times(paths, a.draft_side)
        fpx = torch.from_numpy(ours[:a.forward_images]) if len(ours) >= a.forward_images else torch.from_numpy(
            np.stack([np.asarray(pil_resize_center_crop(pil_decode(p))) for p in paths[:a.forward_images]]))
        fw, outs = forward_times({"eager_nchw": (net, False), "eager_channels_last": (net_cl, True),
                                  "jit_nchw": (jit[False], False), "jit_channels_last": (jit[True], True),
                                  "eager_dynamic_pad_channels_last": (net_dyn, True)}, fpx, a.batch)
        row["stages"]["forward_images"] = len(fpx)
        row["stages"]["forward_images_per_s"] = fw
        row["stages"]["forward_gflops"] = {m: round(v * 2 * gflop, 1) for m, v in fw.items()}
        row["stages"]["jit_vs_eager_max_rel"] = diff(outs["jit_nchw"], outs["eager_nchw"])["max_rel"]
        row["stages"]["dynamic_vs_static_pad_max_abs"] = diff(outs["eager_dynamic_pad_channels_last"], outs["eager_channels_last"])["max_abs"]
        print("forward img/s:", fw, flush=True)

        # End to end, each variant in its faster layout, rounds interleaved.
        layout = {"eager": fw["eager_channels_last"] > fw["eager_nchw"], "jit": fw["jit_channels_last"] > fw["jit_nchw"]}
        clis = [("tuwen", a.tuwen, a.tuwen_args)] + (
            [("tuwen_before", a.tuwen_before, a.tuwen_before_args)] if a.tuwen_before else [])
        e2e = {v: {"seconds_all": []} for v in variants + [c[0] for c in clis]}
        feats = {}
        for r in range(a.rounds):
            for name, binary, args in clis:
                done, secs = tuwen_cli(binary, images, ids, f"{dataset}-{name}", args.split())
                e2e[name]["seconds_all"].append(round(secs, 3))
                e2e[name]["extracted"] = done
                print(f"{name} round {r}: {done / secs:.2f} img/s", flush=True)
            for v in variants:
                kind = v.split("_")[0]
                cl = layout[kind]
                m = eager[cl] if kind == "eager" else jit[cl]
                f, g, ok, secs = end_to_end(m, paths, cl, a.workers, a.batch, a.draft_side if v.endswith("_draft") else 0)
                e2e[v]["seconds_all"].append(round(secs, 3))
                feats.setdefault(v, (f, g, ok))
                print(f"{v} round {r}: {ok.sum() / secs:.2f} img/s", flush=True)
        for v in variants:
            kind, (f, g, ok) = v.split("_")[0], feats[v]
            best = min(e2e[v]["seconds_all"])
            prep = load_s + (jit_prep[layout[kind]] if kind == "jit" else 0.0)
            e2e[v].update({"layout": "channels_last" if layout[kind] else "nchw", "extracted": int(ok.sum()),
                           "seconds": best, "images_per_s": round(ok.sum() / best, 3),
                           "images_per_s_incl_model_preparation": round(ok.sum() / (best + prep), 3),
                           "jpeg_draft_side": a.draft_side if v.endswith("_draft") else None})
        for name, binary, args in clis:
            best = min(e2e[name]["seconds_all"])
            e2e[name].update({"binary": binary, "args": args, "seconds": best,
                              "images_per_s": round(e2e[name]["extracted"] / best, 3),
                              "note": "whole `tuwen extract --no-cache` command (model load and hashing included)"})
            for v in variants:
                e2e[name][f"speedup_vs_{v}"] = round(e2e[name]["images_per_s"] / e2e[v]["images_per_s"], 3)
        base = feats[variants[0]]
        for v in variants[1:]:
            both = base[2] & feats[v][2]
            e2e[v]["features_vs_" + variants[0]] = diff(feats[v][0][both], base[0][both])
        # End to end against tuwen's own decode (its features of the check images, unflipped).
        pos = {i: j for j, i in enumerate(ids)}
        rows_tw = [j for j, o in enumerate(tw_ok) if o and base[2][pos[check[j]]]]
        ours_rows = [pos[check[j]] for j in rows_tw]
        if rows_tw:
            for v in variants:
                f, g, ok = feats[v]
                e2e[v]["features_vs_tuwen_end_to_end"] = diff((f if tuwen_flip else g)[ours_rows], t["features"][rows_tw])
        row["end_to_end"] = e2e
        result["datasets"].append(row)
        print(json.dumps({v: e2e[v]["images_per_s"] for v in e2e}), flush=True)

    result["notes"] = [
        "end_to_end images_per_s excludes building the module (module_load_seconds) and scripting/freezing "
        "(jit_prepare_seconds); images_per_s_incl_model_preparation includes them. tuwen's bench_extract "
        "'seconds' includes hashing and loading the weights.",
        "flip: the image and its mirror go through the network as one batch of 2×16.",
        "PIL cannot reproduce image-rs bit for bit: different JPEG decoders (libjpeg-turbo vs zune-jpeg: "
        "IDCT and chroma upsampling), PIL's resampler rounds to 8 bits between its horizontal and vertical "
        "passes (image-rs keeps f32) and runs them in the other order, and PIL's BOX filter weighs partial "
        "pixels where image-rs' thumbnail uses whole pixels; pil_pixels_vs_tuwen measures the result. On the "
        "same decoded pixels PIL's BILINEAR and image-rs' Triangle agree to ~0.08 levels on average (max 1).",
        "pil_draft_pixels_vs_tuwen: the same with PIL's JPEG draft (DCT-scaled) decoding, the closer match when "
        "tuwen's decoder scales JPEGs too; scaled IDCTs differ between libjpeg-turbo and tuwen's decoder.",
        "same_pixels: tuwen's own decoded pixels through this module; this is the check that the module is "
        "tuwen's network (independent of decoders).",
    ]
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    json.dump(result, open(a.out, "w"), indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
