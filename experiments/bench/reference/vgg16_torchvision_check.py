"""End-to-end check of tuwen's torchvision-VGG16 path (README: "written but untested").

1. torchvision `vgg16()` with random weights (seed 0; conv biases drawn too, so a lost or shifted
   bias shows), its state_dict saved with `torch.save` twice: the current zip format and the legacy
   format torchvision's own vgg16-397923af.pth (2017) is in.
2. Each file converted by `python3 scripts/convert_weights.py torchvision-vgg IN OUT` (the
   standard-library converter, run by the system python3 as a user would).
3. Reference: torchvision on a generated 224×224 RGB input: RGB/255, ImageNet mean/std, features up
   to relu5_3 (before pool5), averaged over space.
4. tuwen on the same bytes: `cargo run --release --example reference_features -- --backbone vgg16
   --weights OUT --pixels FILE`; compared (max abs diff, relative, cosine).
Run through vgg16_torchvision_check.sh, which records the output.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
FORMULA = "(3*x + 5*y + 77*c + (x*y) % 31) % 256"  # as in backbone_reference.py
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TOL = 1e-3


def pixels(size):
    y, x, c = np.meshgrid(np.arange(size), np.arange(size), np.arange(3), indexing="ij")
    return ((3 * x + 5 * y + 77 * c + (x * y) % 31) % 256).astype(np.uint8)  # H×W×3 RGB


def torchvision_features(net, px, caffe=False):
    x = torch.from_numpy(px).permute(2, 0, 1).unsqueeze(0).float()
    if caffe:  # the wrong preprocessing for these weights (control only): BGR minus means
        x = x[:, [2, 1, 0]] - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    else:
        x = torchvision.transforms.functional.normalize(x / 255.0, MEAN, STD)
    body = net.features[:30]  # conv1_1 ... conv5_3 + relu5_3 (index 29); 30 is pool5
    assert isinstance(body[29], torch.nn.ReLU) and isinstance(net.features[30], torch.nn.MaxPool2d)
    with torch.inference_mode():
        fmap = body(x)
    assert fmap.shape == (1, 512, 14, 14)
    return fmap.mean(dim=(2, 3))[0].double().numpy()


def tuwen_features(weights, pix_file):
    cmd = ["cargo", "run", "--release", "--quiet", "--example", "reference_features", "--",
           "--backbone", "vgg16", "--weights", weights, "--pixels", pix_file]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        raise SystemExit(f"tuwen failed ({r.returncode}): {' '.join(cmd)}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return np.array(out["features"], dtype=np.float64), out


def compare(a, ref):
    diff = np.abs(a - ref)
    cos = float(a @ ref / (np.linalg.norm(a) * np.linalg.norm(ref)))
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "max_rel_diff": float((diff / np.maximum(np.abs(ref), 1e-6)).max()),
            "ref_max_abs": float(np.abs(ref).max()), "cosine": cos}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", help="keep the work files in this folder")
    ap.add_argument("--python3", default=shutil.which("python3"),
                    help="interpreter for scripts/convert_weights.py (a plain one, without torch)")
    args = ap.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="vgg16-check-")
    os.makedirs(work, exist_ok=True)

    torch.manual_seed(0)
    net = torchvision.models.vgg16(weights=None)  # torchvision's own init (Kaiming normal, zero bias)
    with torch.no_grad():
        for m in net.features:
            if isinstance(m, torch.nn.Conv2d):
                m.bias.normal_(0.0, 0.05)
    net.eval()
    state = net.state_dict()
    print(f"vgg16: {len(state)} tensors in the state_dict "
          f"({sum(1 for k in state if k.startswith('features.'))} under features.)")

    px = pixels(224)
    pix_file = os.path.join(work, "input-224.rgb")
    px.tofile(pix_file)
    ref = torchvision_features(net, px)
    controls = {"the mirrored input": torchvision_features(net, np.ascontiguousarray(px[:, ::-1])),
                "Caffe BGR preprocessing": torchvision_features(net, px, caffe=True)}
    no_bias = torchvision.models.vgg16(weights=None).eval()
    no_bias.load_state_dict(state)
    with torch.no_grad():
        for m in no_bias.features:
            if isinstance(m, torch.nn.Conv2d):
                m.bias.zero_()
    controls["conv biases dropped"] = torchvision_features(no_bias, px)
    print(f"input: 224x224 RGB u8, pixel(x, y, c) = {FORMULA}")
    print(f"torchvision relu5_3 avg: 512-d, min {ref.min():.5f} max {ref.max():.5f} "
          f"norm {np.linalg.norm(ref):.5f}")

    ok = True
    python3 = args.python3
    results = {}
    for fmt, kw in [("zip", {}), ("legacy", {"_use_new_zipfile_serialization": False})]:
        pth = os.path.join(work, f"vgg16-random-{fmt}.pth")
        torch.save(state, pth, **kw)
        out = os.path.join(work, f"vgg16-random-{fmt}.safetensors")
        conv = subprocess.run([python3, os.path.join(ROOT, "scripts", "convert_weights.py"),
                               "torchvision-vgg", pth, out], capture_output=True, text=True)
        print(f"[{fmt}] torch.save -> {os.path.basename(pth)} ({os.path.getsize(pth)} bytes); "
              f"convert_weights.py ({python3}): rc {conv.returncode} {conv.stdout.strip()} {conv.stderr.strip()}")
        if conv.returncode != 0:
            ok = False
            continue
        feats, info = tuwen_features(out, pix_file)
        c = compare(feats, ref)
        results[fmt] = c
        passed = c["max_abs_diff"] <= TOL and c["cosine"] > 0.99999
        ok &= passed
        print(f"[{fmt}] tuwen --backbone vgg16 --weights {os.path.basename(out)} "
              f"(preprocess {info['preprocess']}, channels_last {info['channels_last']}, "
              f"{info['torch_threads']} threads): max |diff| {c['max_abs_diff']:.3e} "
              f"(values up to {c['ref_max_abs']:.4f}), mean |diff| {c['mean_abs_diff']:.3e}, "
              f"max rel {c['max_rel_diff']:.3e}, cosine {c['cosine']:.9f} -> "
              f"{'PASS' if passed else 'FAIL'} (tolerance {TOL})")
    for what, feats in controls.items():
        ctrl = compare(feats, ref)
        print(f"control (what a bug would look like): torchvision with {what}: "
              f"max |diff| {ctrl['max_abs_diff']:.3e}, cosine {ctrl['cosine']:.6f}")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}, numpy {np.__version__}; converter run by {python3} "
          f"({subprocess.run([python3, '--version'], capture_output=True, text=True).stdout.strip()})")
    print("RESULT:", "PASS" if ok and len(results) == 2 else "FAIL")
    if not args.keep:
        shutil.rmtree(work)
    sys.exit(0 if ok and len(results) == 2 else 1)


if __name__ == "__main__":
    main()
