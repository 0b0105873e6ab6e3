#!/usr/bin/env bash
# Session 3 (issue #11): every knob tuned on the development split (flickr8k-dev: train.csv's
# images split 5,000 / 1,000 by `tuwen split --held-out 1000 --seed 2024`), never on val.
# Prerequisite: Flickr8k-CN features extracted once with the defaults (Lite2, flip):
#   for s in train val; do target/release/tuwen extract --pairs ../shared/data/flickr8k-cn/$s.csv \
#     --images ../shared/data/flickr8k-cn/images; done
# Every fit option is spelled out; scoring options go in EVAL_ARGS (REUSE=1 re-scores a fitted model).
# Usage: experiments/sweep-dev.sh [NAME-PATTERN]   (only runs whose name matches)
set -euo pipefail
cd "$(dirname "$0")/.."
only=${1:-.}
R() { if [[ $1 =~ $only ]]; then experiments/run.sh "$@"; fi; }
# The session-2 default configuration, spelled out.
D="--backbone efficientnet-lite2 --flip true --image-norm sqrt-l2 --method cca --components 256 \
--reg-image 0.3 --reg-text 1 --power 1 --weighting mean --bag true --bag-max-terms 8000 --w2v-weight 1"
S() { local name=$1; shift; EVAL_ARGS="$*" REUSE=1 R "$name" flickr8k-dev $D; }
# 1. Scoring on the default model: cosine, CSLS (k), inverted softmax (β), banks.
EVAL_ARGS="--score cosine" R dev-default flickr8k-dev $D
for k in 5 10 20 40; do S dev-default "--score csls --csls-k $k"; done
for b in 5 10 20 40; do S dev-default "--score inverted-softmax --beta $b"; done
S dev-default "--score csls --csls-k 10 --bank train"
S dev-default "--score inverted-softmax --beta 10 --bank train"
# 2. Fit knobs, scored with CSLS (k = 10, banks: the ranked sets).
E="--score csls --csls-k 10"
F() { local name=$1; shift; EVAL_ARGS="$E" R "$name" flickr8k-dev "$@"; }
for k in 128 384 512; do F dev-k$k ${D/--components 256/--components $k}; done
for rt in 0.3 3; do F dev-rt$rt ${D/--reg-text 1/--reg-text $rt}; done
for ri in 0.1 1; do F dev-ri$ri ${D/--reg-image 0.3/--reg-image $ri}; done
for p in 0.5 2; do F dev-p$p ${D/--power 1/--power $p}; done
# 3. Text side: the second word-vector set (cnsyn), a larger bag.
for w in 0.5 1 2; do F dev-cnsyn$w $D --second-weight $w; done
F dev-bag16k ${D/--bag-max-terms 8000/--bag-max-terms 16000}
# 4. Stronger ridge on both sides (CSLS favours it), combined, and with more components.
for rt in 3 10; do for ri in 1 3; do
  X=${D/--reg-text 1/--reg-text $rt}; F dev-rt$rt-ri$ri ${X/--reg-image 0.3/--reg-image $ri}
done; done
X=${D/--reg-text 1/--reg-text 3}; X=${X/--reg-image 0.3/--reg-image 1}
F dev-rt3-ri1-k384 ${X/--components 256/--components 384}
F dev-rt3-ri1-p2 ${X/--power 1/--power 2}
# 5. Power 2 (best alone; with ridge 3 / 1 it lost: dev-rt3-ri1-p2): power 1.5 and 2 with one
# ridge raised at a time, 384 components, the second vector set; other scorings on that fit.
P2=${D/--power 1/--power 2}
F dev-p1.5 ${D/--power 1/--power 1.5}
F dev-p2-rt3 ${P2/--reg-text 1/--reg-text 3}
F dev-p2-ri1 ${P2/--reg-image 0.3/--reg-image 1}
F dev-p2-k384 ${P2/--components 256/--components 384}
F dev-p2-cnsyn1 $P2 --second-weight 1
EVAL_ARGS="--score inverted-softmax --beta 10" REUSE=1 R dev-p2 flickr8k-dev $P2
EVAL_ARGS="--score cosine" REUSE=1 R dev-p2 flickr8k-dev $P2
