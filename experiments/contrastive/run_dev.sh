#!/usr/bin/env bash
# Issue #18 study on the development split (after prepare.sh dev). Each line appends rows to
# experiments/contrastive/results.jsonl. Usage: run_dev.sh [NAME...] (default: all, in order).
# Env: RUNS (default runs/contrastive), DATA, PY as in prepare.sh. One thread per run.
set -euo pipefail
RUNS=$(realpath "${RUNS:-runs/contrastive}")
DATA=$(realpath "${DATA:-../shared/data/flickr8k-cn}")
PY=${PY:-experiments/bench/.venv/bin/python}; PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
cd "$(dirname "$0")"
D="--train $RUNS/x-dev-train --train-pairs $RUNS/dev/train.csv --eval $RUNS/x-dev-eval --eval-pairs $RUNS/dev/heldout.csv --dataset flickr8k-dev"
P="$D --cca-model $RUNS/cca-dev"
MT="--mt $RUNS/x-dev-mt --mt-pairs $RUNS/mt-dev.csv"
ES="--early-stop 0.1 --max-epochs 20 --patience 3 --refit"
declare -A RUN=(
  [validate]="validate.py $RUNS/cca-dev $RUNS/x-dev-train $RUNS/dev/train.csv $RUNS/x-dev-eval $RUNS/dev/heldout.csv $RUNS/eval-dev-csls.json $RUNS/eval-dev-cosine.json --no-cca"
  [validate-cca]="validate.py $RUNS/cca-dev $RUNS/x-dev-train $RUNS/dev/train.csv $RUNS/x-dev-eval $RUNS/dev/heldout.csv $RUNS/eval-dev-csls.json $RUNS/eval-dev-cosine.json"
  [m1-5ep]="method1.py $D --epochs 5 --name m1-5ep"
  [m1-es]="method1.py $D --early-stop 0.1 --max-epochs 30 --patience 3 --name m1-es"
  [p-cca-lin-pull-es]="project.py $P --init cca --pull 1 --lr 2e-4 $ES --name p-cca-lin-pull-es"
  [p-rand-lin-es]="project.py $P --init random $ES --name p-rand-lin-es"
  [p-cca-lin-pull-mt-es]="project.py $P $MT --init cca --pull 1 --lr 2e-4 $ES --name p-cca-lin-pull-mt-es"
  [p-rand-lin-wd-drop-es]="project.py $P --init random --wd 0.5 --dropout 0.3 $ES --name p-rand-lin-wd-drop-es"
  [p-rand-mlp-drop-es]="project.py $P --init random --image-map mlp --wd 0.1 --dropout 0.3 $ES --name p-rand-mlp-drop-es"
  [p-cca-mlp-pull-mt-es]="project.py $P $MT --init cca --image-map mlp --pull 1 --lr 2e-4 --dropout 0.1 $ES --name p-cca-mlp-pull-mt-es"
  [m1-hinge-es]="method1.py $D --loss hinge --early-stop 0.1 --max-epochs 30 --patience 3 --name m1-hinge-es"
  [p-rand-lin-4ep]="project.py $P --init random --epochs 4 --name p-rand-lin-4ep"
  [p-cca-lin-pull0.1-lr1e-3-es]="project.py $P --init cca --pull 0.1 --lr 1e-3 $ES --name p-cca-lin-pull0.1-lr1e-3-es"
  [p-cca-lin-pull-mt-es-seed1]="project.py $P $MT --init cca --pull 1 --lr 2e-4 $ES --seed 1 --name p-cca-lin-pull-mt-es-seed1"
  [p-rand-lin-mt-drop-es]="project.py $P $MT --init random --wd 0.1 --dropout 0.3 $ES --name p-rand-lin-mt-drop-es"
)
ORDER="validate m1-5ep m1-es p-cca-lin-pull-es p-rand-lin-es p-cca-lin-pull-mt-es p-rand-lin-wd-drop-es p-rand-mlp-drop-es p-cca-mlp-pull-mt-es p-rand-lin-mt-drop-es m1-hinge-es p-rand-lin-4ep p-cca-lin-pull0.1-lr1e-3-es p-cca-lin-pull-mt-es-seed1"
main() {
for name in ${@:-$ORDER}; do
  echo "== $name" >&2
  # shellcheck disable=SC2086
  "$PY" ${RUN[$name]}
done
}
main "$@"
exit
