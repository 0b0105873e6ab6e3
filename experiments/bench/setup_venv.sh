#!/usr/bin/env bash
# Python references for the side-by-side benchmarks, from PyPI, into a git-ignored virtual
# environment (experiments/bench/.venv). Not part of scripts/setup.sh or CI: torch from PyPI brings
# its CUDA wheels (~3 GB) even though the benchmark runs on the CPU.
# torch 2.13.0 is the libtorch tuwen links, so both sides run the same convolution kernels.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import torch, torchvision, sklearn, faiss, numpy, PIL' 2>/dev/null; then
    echo "bench venv ready: $venv"
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet \
    torch==2.13.0 torchvision==0.28.0 \
    numpy scikit-learn==1.7.2 faiss-cpu==1.12.0 pillow safetensors
"$venv/bin/python" -c 'import torch, torchvision, sklearn, faiss; print("torch", torch.__version__, "torchvision", torchvision.__version__, "sklearn", sklearn.__version__, "faiss", faiss.__version__)'
