#!/usr/bin/env bash
# Issue #18: the development split, the CCA baselines (tuwen fit/eval with the product's defaults),
# and the raw features every script here reads (tuwen export --raw --format npy).
# Usage: experiments/contrastive/prepare.sh [dev|dev-mt|val|all]   (from the repository root)
# Env: TUWEN (binary, default target/release/tuwen), RUNS (default runs/contrastive),
#      DATA (default ../shared/data/flickr8k-cn), TUWEN_CACHE / TUWEN_MODELS as usual.
set -euo pipefail
TUWEN=${TUWEN:-target/release/tuwen}
RUNS=${RUNS:-runs/contrastive}
DATA=${DATA:-../shared/data/flickr8k-cn}
PY=${PY:-experiments/bench/.venv/bin/python}
IMAGES=$DATA/images
what=${1:-all}
mkdir -p "$RUNS"

# MT captions of the images of a pairs file (image ids taken from that file).
mt_of() { # pairs.csv mt.csv out.csv
  "$PY" - "$1" "$2" "$3" <<'PYEOF'
import csv, sys
keep = {r[0] for r in csv.reader(open(sys.argv[1], encoding="utf-8-sig"))}
with open(sys.argv[2], encoding="utf-8-sig", newline="") as f, open(sys.argv[3], "w", encoding="utf-8", newline="") as g:
    r, w = csv.reader(f), csv.writer(g)
    w.writerow(next(r))
    n = sum(w.writerow(row) is not None for row in r if row[0] in keep)
print(f"{n} MT captions of {len(keep) - 1} images -> {sys.argv[3]}")
PYEOF
}

one() { # tag train.csv eval.csv mt.csv
  local tag=$1 train=$2 eval=$3 mt=$4 m=$RUNS/cca-$1
  if [ ! -f "$m/config.json" ]; then
    /usr/bin/time -f "fit %e s %M KB" "$TUWEN" fit --pairs "$train" --images "$IMAGES" --out "$m" --quiet
  fi
  "$TUWEN" eval --model "$m" --pairs "$eval" --images "$IMAGES" --json > "$RUNS/eval-$tag-csls.json"
  "$TUWEN" eval --model "$m" --pairs "$eval" --images "$IMAGES" --json --score cosine > "$RUNS/eval-$tag-cosine.json"
  "$TUWEN" export --model "$m" --pairs "$train" --images "$IMAGES" --raw --format npy --out "$RUNS/x-$tag-train" --quiet
  "$TUWEN" export --model "$m" --pairs "$eval" --images "$IMAGES" --raw --format npy --out "$RUNS/x-$tag-eval" --quiet
  mt_of "$train" "$mt" "$RUNS/mt-$tag.csv"
  "$TUWEN" export --model "$m" --pairs "$RUNS/mt-$tag.csv" --what texts --raw --format npy --out "$RUNS/x-$tag-mt" --quiet
}

if [ "$what" = dev ] || [ "$what" = all ]; then
  [ -f "$RUNS/dev/train.csv" ] || "$TUWEN" split --pairs "$DATA/train.csv" --held-out 1000 --seed 2024 --out "$RUNS/dev"
  one dev "$RUNS/dev/train.csv" "$RUNS/dev/heldout.csv" "$DATA/train_mt.csv"
fi
# CCA with the MT captions as extra pairs (the product's way to use them: tuwen fit --pairs twice).
if [ "$what" = dev-mt ] || [ "$what" = all ]; then
  m=$RUNS/cca-dev-mt
  [ -f "$m/config.json" ] || /usr/bin/time -f "fit %e s %M KB" "$TUWEN" fit --pairs "$RUNS/dev/train.csv" --pairs "$RUNS/mt-dev.csv" \
    --images "$IMAGES" --images "$IMAGES" --out "$m" --quiet
  "$TUWEN" eval --model "$m" --pairs "$RUNS/dev/heldout.csv" --images "$IMAGES" --json > "$RUNS/eval-dev-mt-csls.json"
  "$TUWEN" eval --model "$m" --pairs "$RUNS/dev/heldout.csv" --images "$IMAGES" --json --score cosine > "$RUNS/eval-dev-mt-cosine.json"
fi
if [ "$what" = val ] || [ "$what" = all ]; then
  one val "$DATA/train.csv" "$DATA/val.csv" "$DATA/train_mt.csv"
fi
