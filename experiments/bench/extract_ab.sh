#!/usr/bin/env bash
# Issue #19's headline figure: `tuwen extract --no-cache` of a whole image list with the default
# features (EfficientNet-Lite2, flip), the previous build against this one, alternating, best of
# ROUNDS (default 2). Appends one JSON line per run to experiments/bench/results/extract-ab.jsonl.
#   BEFORE=/path/to/old/tuwen experiments/bench/extract_ab.sh [PAIRS.csv IMAGES]
# Default list: the Teddy sample (../shared/data/teddy-sample, 998 images).
# The previous build: git worktree add /tmp/before <commit> && (cd /tmp/before && cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${TUWEN_DATA:-../shared/data}
pairs=${1:-$DATA/teddy-sample/ImageWordData.csv}
images=${2:-$DATA/teddy-sample/ImageData}
now=${NOW:-target/release/tuwen}
before=${BEFORE:?set BEFORE to the previous build\'s tuwen binary}
out=experiments/bench/results/extract-ab.jsonl
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
for r in $(seq 1 "${ROUNDS:-2}"); do
  for which in before now; do
    bin=$before; [ $which = now ] && bin=$now
    t0=$(date +%s.%N)
    msg=$($bin extract --no-cache --quiet --pairs "$pairs" --images "$images" 2>&1 | grep -E '^[0-9]+ images:' || true)
    t1=$(date +%s.%N)
    python3 - "$which" "$bin" "$pairs" "$t0" "$t1" "$msg" "$cpu" "$r" >> $out <<'PY'
import json, sys, re, datetime, os
which, b, pairs, t0, t1, msg, cpu, r = sys.argv[1:]
m = re.match(r"(\d+) images: (\d+) computed", msg)
n = int(m.group(2)) if m else None
secs = float(t1) - float(t0)
print(json.dumps({"date": datetime.datetime.now().isoformat(timespec="seconds"), "build": which, "binary": b,
                  "list": os.path.basename(pairs), "round": int(r), "images": n, "seconds": round(secs, 1),
                  "images_per_s": round(n / secs, 2) if n else None, "cpu": cpu,
                  "load_average": open("/proc/loadavg").read().split()[:3], "message": msg}))
PY
    tail -1 $out
  done
done
