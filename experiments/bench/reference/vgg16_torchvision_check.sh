#!/usr/bin/env bash
# End-to-end check of the torchvision VGG16 path: random-weight torchvision vgg16() saved with
# torch.save (zip and legacy formats) -> scripts/convert_weights.py torchvision-vgg -> tuwen
# --backbone vgg16 --weights, against torchvision's own relu5_3 average on the same pixels.
# Writes experiments/bench/results/vgg16-torchvision-check.txt (or $1).
#   bash experiments/bench/reference/vgg16_torchvision_check.sh [OUT.txt]
# Needs: bash experiments/bench/reference/setup_venv.sh, and libtorch (scripts/setup.sh or $LIBTORCH).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-$root/experiments/bench/results/vgg16-torchvision-check.txt}"
cd "$root"
bash "$here/setup_venv.sh" >/dev/null
py3="$(command -v python3)"   # the plain interpreter a user converts with (no torch in it)
cargo build --release --quiet --example reference_features
{
    echo "# tuwen VGG16 (torchvision checkpoint) path, end to end"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src scripts || echo ' (+ uncommitted changes in src/ or scripts/)')"
    echo "command: bash experiments/bench/reference/vgg16_torchvision_check.sh"
    echo "rustc: $(rustc --version); libtorch: $(cat "${LIBTORCH:-.deps/libtorch}/build-version" 2>/dev/null || echo '?')"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
    echo
    "$here/.venv/bin/python" "$here/vgg16_torchvision_check.py" --python3 "$py3"
} 2>&1 | tee "$out"
