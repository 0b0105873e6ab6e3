#!/usr/bin/env bash
# Wall time of fit, eval and rank with the default configuration on Flickr8k-CN, features already
# cached (run experiments/sweep-*.sh or `tuwen extract` first). Prints a table to paste into README.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/tuwen; F=${TUWEN_DATA:-../shared/data}/flickr8k-cn
[ -d runs/flickr-val-teddy/附件2 ] || $BIN split --pairs $F/val.csv --images $F/images --held-out 999 --seed 1 --out runs/flickr-val-teddy --teddy-layout >/dev/null
t() { local s=$(date +%s.%N); "$@" > /dev/null 2>&1; python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" $s $(date +%s.%N); }
echo "| step | wall s |"
echo "|---|---|"
echo "| fit, default config, 30,000 pairs / 6,000 images (features cached) | $(t $BIN fit --pairs $F/train.csv --images $F/images --out runs/timing-model --quiet) |"
echo "| eval, 1,000 images × 5,000 captions | $(t $BIN eval --model runs/timing-model --pairs $F/val.csv --images $F/images --quiet) |"
echo "| rank task 1 + task 2 on 999 held-out val images laid out as 附件2/附件3 (≈5,000 captions × 999 images, both ways) | $(t $BIN rank --model runs/timing-model --teddy-dir runs/flickr-val-teddy/附件2 --teddy-dir runs/flickr-val-teddy/附件3 --out-dir runs/timing-results --quiet) |"
