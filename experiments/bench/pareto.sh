#!/usr/bin/env bash
# Issue #17's Pareto view: extraction speed of every image-feature variant of the study, on the
# same images in the same run (`tuwen extract --no-cache`, whole command), with the projected time
# of the full Teddy job (105,000 images) on this machine. Variants run in rounds, interleaved, so
# drift of this shared machine's speed hits all alike; appends one JSON line per run to
# experiments/bench/results/pareto.jsonl. experiments/bench/pareto.py joins them with the recall
# of the development-split runs (experiments/results.jsonl) into the table.
#   experiments/bench/pareto.sh [N_IMAGES (default 200)] [ROUNDS (default 1)]
# Images: the first N of the Teddy sample (large photos, as the real job has).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${TUWEN_DATA:-../shared/data}
BIN=${TUWEN_BIN:-target/release/tuwen}
n=${1:-200}; rounds=${2:-1}
list=$(mktemp --suffix=.csv); trap 'rm -f $list' EXIT
python3 - "$DATA/teddy-sample/ImageWordData.csv" "$n" > "$list" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8")))
seen = []
for r in rows[1:]:
    if r[0] not in seen: seen.append(r[0])
print("image_id")
print("\n".join(seen[:int(sys.argv[2])]))
PY
# name | extract options (each variant = the features of the dev run of the same name)
variants=(
  "default|"
  "default+flip|--flip"
  "lite2|--second-backbone none"
  "lite2+flip|--second-backbone none --flip"
  "lite0|--backbone efficientnet-lite0"
  "lite0-five|--backbone efficientnet-lite0 --crop five"
  "lite2-stages+flip|--second-backbone none --flip --pooling stages"
  "lite0-pyramid|--backbone efficientnet-lite0 --pooling pyramid"
  "vgg19|--backbone vgg19"
  "lite2+vgg19|--second-backbone vgg19"
  "lite2@300+lite0|--size 300"
  "lite2+lite2@330|--second-backbone efficientnet-lite2 --second-size 330"
  "lite2+lite0@288|--second-size 288"
)
out=experiments/bench/results/pareto.jsonl
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
for r in $(seq 1 "$rounds"); do
  for v in "${variants[@]}"; do
    name=${v%%|*}; opts=${v#*|}
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    msg=$($BIN extract --no-cache --quiet --pairs "$list" --images "$DATA/teddy-sample/ImageData" $opts 2>&1 | grep -E '^[0-9]+ images:' || true)
    t1=$(date +%s.%N)
    python3 - "$name" "$opts" "$t0" "$t1" "$msg" "$cpu" "$r" >> $out <<'PY'
import json, sys, re, datetime
name, opts, t0, t1, msg, cpu, r = sys.argv[1:]
m = re.match(r"(\d+) images: (\d+) computed", msg)
n = int(m.group(2)) if m else None
secs = float(t1) - float(t0)
rate = n / secs if n else None
print(json.dumps({"date": datetime.datetime.now().isoformat(timespec="seconds"), "variant": name,
                  "options": opts, "round": int(r), "images": n, "seconds": round(secs, 2),
                  "images_per_s": round(rate, 2) if rate else None,
                  "teddy_job_hours": round(105000 / rate / 3600, 2) if rate else None, "cpu": cpu,
                  "load_average": open("/proc/loadavg").read().split()[:3], "message": msg}))
PY
    tail -1 $out
  done
done
