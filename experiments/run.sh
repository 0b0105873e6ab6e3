#!/usr/bin/env bash
# One experiment: fit on a training set, evaluate on its held-out set, append one JSON row to
# experiments/results.jsonl (date, commit, data, full model config, scoring, R@1/5/10 and medr
# both ways, fit and eval seconds).
#   experiments/run.sh NAME DATASET [fit options...]
# Environment: EVAL_ARGS="--score csls --csls-k 10" (eval options, default: tuwen's defaults);
# REUSE=1 evaluates the model already in runs/exp/NAME instead of fitting again (for scoring
# sweeps; the row then records the fit options it was given, so pass the same ones).
# DATASET: flickr8k-cn (fit train.csv, eval val.csv), flickr8k-cn+mt (train.csv + train_mt.csv),
#          flickr8k-cn-2000 (first 2,000 training images only, eval val.csv),
#          teddy-800-200 (seeded split, see experiments/README.md), teddy+flickr (teddy 800 + flickr train),
#          flickr8k-dev (the development split: train.csv's images split 5,000 / 1,000 by
#          `tuwen split --held-out 1000 --seed 2024`; fit on the 5,000, evaluate on the 1,000; tune here).
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1; dataset=$2; shift 2
DATA=${TUWEN_DATA:-../shared/data}
BIN=${TUWEN_BIN:-target/release/tuwen}
F=$DATA/flickr8k-cn
TS=runs/teddy-split
case $dataset in
  flickr8k-cn)    fit=(--pairs $F/train.csv --images $F/images); ev=(--pairs $F/val.csv --images $F/images) ;;
  flickr8k-cn-2000)  # the first 2,000 training images (in file order), for costly backbones
    [ -f runs/subsets/train2000.csv ] || python3 - <<'PY'
import csv, os
rows = list(csv.reader(open(os.environ.get("TUWEN_DATA", "../shared/data") + "/flickr8k-cn/train.csv", encoding="utf-8")))
seen, keep = set(), []
for r in rows[1:]:
    if r[0] not in seen and len(seen) >= 2000: continue
    seen.add(r[0]); keep.append(r)
os.makedirs("runs/subsets", exist_ok=True)
w = csv.writer(open("runs/subsets/train2000.csv", "w", encoding="utf-8", newline="")); w.writerow(rows[0]); w.writerows(keep)
PY
    fit=(--pairs runs/subsets/train2000.csv --images $F/images); ev=(--pairs $F/val.csv --images $F/images) ;;
  flickr8k-dev)
    DS=runs/dev-split
    [ -f $DS/heldout.csv ] || $BIN split --pairs $F/train.csv --held-out 1000 --seed 2024 --out $DS >/dev/null
    fit=(--pairs $DS/train.csv --images $F/images); ev=(--pairs $DS/heldout.csv --images $F/images) ;;
  flickr8k-cn+mt) fit=(--pairs $F/train.csv --pairs $F/train_mt.csv --images $F/images); ev=(--pairs $F/val.csv --images $F/images) ;;
  teddy-800-200|teddy+flickr)
    [ -f $TS/train.csv ] || $BIN split --pairs $DATA/teddy-sample/ImageWordData.csv --images $DATA/teddy-sample/ImageData \
        --held-out 200 --seed 2024 --out $TS --teddy-layout >/dev/null
    fit=(--pairs $TS/train.csv --images $DATA/teddy-sample/ImageData)
    [ $dataset = teddy+flickr ] && fit=(--pairs $TS/train.csv --pairs $F/train.csv --images $DATA/teddy-sample/ImageData --images $F/images)
    ev=(--pairs $TS/heldout.csv --images $DATA/teddy-sample/ImageData) ;;
  *) echo "unknown dataset $dataset" >&2; exit 2 ;;
esac
model=runs/exp/$name
mkdir -p runs
t0=$(date +%s.%N)
if [ "${REUSE:-0}" = 1 ] && [ -f $model/config.json ]; then :; else
  $BIN fit "${fit[@]}" --out $model --quiet "$@" > runs/exp-$name.fit.log 2>&1 || { cat runs/exp-$name.fit.log >&2; exit 1; }
fi
t1=$(date +%s.%N)
# shellcheck disable=SC2086
json=$($BIN eval --model $model "${ev[@]}" --json --quiet ${EVAL_ARGS:-} 2>/dev/null)
t2=$(date +%s.%N)
python3 - "$name" "$dataset" "$*" "$json" "$t0" "$t1" "$t2" "$model/config.json" "${EVAL_ARGS:-}" <<'PY'
import json, sys, subprocess, datetime
name, dataset, args, ev, t0, t1, t2, cfg, eval_args = sys.argv[1:]
ev = json.loads(ev); cfg = json.load(open(cfg))
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cfg["train"].pop("oov", None)
row = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "commit": commit, "name": name,
       "dataset": dataset, "fit_args": args, "eval_args": eval_args, "scoring": ev.get("scoring", "cosine"),
       "image": cfg["image"], "text": cfg["text"],
       "projection": cfg["projection"], "pairs_used": cfg["train"]["pairs_used"],
       "i2t": ev["i2t"], "t2i": ev["t2i"], "n_images": ev["n_images"], "n_texts": ev["n_texts"],
       "fit_seconds": round(float(t1) - float(t0), 1), "eval_seconds": round(float(t2) - float(t1), 1)}
open("experiments/results.jsonl", "a").write(json.dumps(row, ensure_ascii=False) + "\n")
print(f"{name:<28} {dataset:<13} {ev.get('scoring', 'cosine'):<24} i2t R@1/5/10 {ev['i2t']['r1']:5.1f} {ev['i2t']['r5']:5.1f} {ev['i2t']['r10']:5.1f}  "
      f"t2i {ev['t2i']['r1']:5.1f} {ev['t2i']['r5']:5.1f} {ev['t2i']['r10']:5.1f}  fit {float(t1)-float(t0):.0f}s")
PY
