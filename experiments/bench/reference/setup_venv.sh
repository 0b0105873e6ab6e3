#!/usr/bin/env bash
# Python side of the reference tests (tests/backbone_reference.rs, the VGG16 check): PyTorch,
# torchvision and the EfficientNet-Lite model code from PyPI, in a git-ignored virtual environment
# (experiments/bench/reference/.venv). Not part of scripts/setup.sh or CI: the Rust tests read the
# values this produced from tests/reference/backbones.json; rerun only to regenerate them.
#
# torch 2.13.0 is the libtorch tuwen links. PyPI's Linux torch wheel is built for CUDA, and its
# Python extension (libtorch_python.so) links libtorch_cuda, cuDNN, NCCL and cuFile, so `import torch`
# fails without the nvidia-* wheels even on a CPU-only run: they are installed (~3 GB), nothing uses
# them here. Everything runs on the CPU.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
check='import torch, torchvision, efficientnet_lite_pytorch, numpy, safetensors; print("torch", torch.__version__, "torchvision", torchvision.__version__, "efficientnet_lite_pytorch", efficientnet_lite_pytorch.__version__, "numpy", numpy.__version__)'
if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "reference venv ready: $venv"
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet \
    torch==2.13.0 torchvision==0.28.0 efficientnet-lite-pytorch==0.1.0 \
    numpy==2.4.6 safetensors==0.8.0
"$venv/bin/python" -c "$check"
