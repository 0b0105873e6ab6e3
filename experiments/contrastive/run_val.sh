#!/usr/bin/env bash
# Issue #18: val, once per final configuration (fit on all of train.csv, evaluate on val.csv),
# after prepare.sh val. Usage: run_val.sh [NAME...]. Env as run_dev.sh.
set -euo pipefail
RUNS=$(realpath "${RUNS:-runs/contrastive}")
PY=${PY:-experiments/bench/.venv/bin/python}; PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
cd "$(dirname "$0")"
V="--train $RUNS/x-val-train --train-pairs $(realpath "${DATA:-../../../shared/data/flickr8k-cn}")/train.csv --eval $RUNS/x-val-eval --eval-pairs $(realpath "${DATA:-../../../shared/data/flickr8k-cn}")/val.csv --dataset flickr8k-cn"
P="$V --cca-model $RUNS/cca-val"
MT="--mt $RUNS/x-val-mt --mt-pairs $RUNS/mt-val.csv"
ES="--early-stop 0.1 --max-epochs 20 --patience 3 --refit"
declare -A RUN=(
  [val-m1-5ep]="method1.py $V --epochs 5 --name val-m1-5ep"
  [val-m1-es]="method1.py $V --early-stop 0.1 --max-epochs 30 --patience 3 --name val-m1-es"
  [val-p-cca-mlp-pull-mt-es]="project.py $P $MT --init cca --image-map mlp --pull 1 --lr 2e-4 --dropout 0.1 $ES --name val-p-cca-mlp-pull-mt-es"
  [val-p-cca-lin-pull-mt-es]="project.py $P $MT --init cca --pull 1 --lr 2e-4 $ES --name val-p-cca-lin-pull-mt-es"
)
main() {
for name in "$@"; do
  echo "== $name" >&2
  # shellcheck disable=SC2086
  "$PY" ${RUN[$name]}
done
}
main "$@"
exit
