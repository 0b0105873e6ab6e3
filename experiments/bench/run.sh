#!/usr/bin/env bash
# All side-by-side benchmarks in one run on one machine (see experiments/bench/README.md):
#   experiments/bench/run.sh [rank] [fit] [extract] [extract-lite]   (default: the first three)
# extract-lite: EfficientNet-Lite2 with flip, PyTorch eager / TorchScript + DataLoader (issue #19),
# results/extract-lite2.json; options for it via EXTRACT_LITE_ARGS (e.g. "--flickr 500 --teddy 200").
# Needs scripts/setup.sh done (models/) and ../shared/data. Installs the Python references into
# experiments/bench/.venv (git-ignored) on first use. Run on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
parts=("$@"); [ ${#parts[@]} -eq 0 ] && parts=(rank fit extract)
bash experiments/bench/setup_venv.sh
cargo build --release --quiet --examples
py=experiments/bench/.venv/bin/python
for p in "${parts[@]}"; do
  echo "== $p"
  if [ "$p" = extract-lite ]; then
    # shellcheck disable=SC2086
    $py experiments/bench/extract_lite.py ${EXTRACT_LITE_ARGS:-}
    continue
  fi
  $py experiments/bench/$p.py
  # The VGG19 forward pass in libtorch's CPU layouts (quoted in README.md).
  [ "$p" = extract ] && target/release/examples/bench_forward 16 5 | tee experiments/bench/results/forward.txt
done
$py experiments/bench/summarize.py
