#!/usr/bin/env bash
# Session 5 (issue #17): richer image features, each measured on the development split
# (flickr8k-dev: train.csv's images split 5,000 / 1,000 by `tuwen split --held-out 1000 --seed 2024`)
# one at a time from the default, then combined; val once per final configuration.
# Prerequisite (features cached; experiments/README.md has the extraction times):
#   F=../shared/data/flickr8k-cn
#   for s in train val; do tuwen extract --pairs $F/$s.csv --images $F/images; done       # default
#   tuwen extract --pairs $F/train.csv --images $F/images --backbone efficientnet-lite0 --flip false
#   tuwen extract --pairs $F/train.csv --images $F/images --pooling stages
#   tuwen extract --pairs $F/train.csv --images $F/images --pooling pyramid
# Usage: experiments/sweep-features.sh [NAME-PATTERN]   (only runs whose name matches)
set -euo pipefail
cd "$(dirname "$0")/.."
only=${1:-.}
R() { if [[ $1 =~ $only ]]; then experiments/run.sh "$@"; fi; }
# The session-4 default, spelled out (defaults of `tuwen fit`).
# Since session 6 the CLI adds Lite0 beside Lite2 by default: session-5 rows name their networks.
D="--backbone efficientnet-lite2 --flip true --pooling avg --image-norm sqrt-l2 --method cca \
--components 256 --reg-image 0.3 --reg-text 1 --power 2"
N="--second-backbone none"
R s5-dev-default flickr8k-dev $D $N
# 1. Two networks: + EfficientNet-Lite0 without flip (each network's block normalised alone).
R s5-dev-lite0 flickr8k-dev $D --second-backbone efficientnet-lite0 --second-flip false
R s5-dev-lite0-ri1 flickr8k-dev ${D/--reg-image 0.3/--reg-image 1} --second-backbone efficientnet-lite0
R s5-dev-lite0-pca1024 flickr8k-dev ${D/--method cca/--method pca-cca --pca-image 1024} \
  --second-backbone efficientnet-lite0
# 2. Several layers: stages 4-6 + the last map, each averaged (4 blocks).
R s5-dev-stages flickr8k-dev ${D/--pooling avg/--pooling stages} $N
# 3. Spatial pyramid of the last map: global + 2×2 (5 blocks).
R s5-dev-pyramid flickr8k-dev ${D/--pooling avg/--pooling pyramid} $N
# 1b. The image ridge with two networks (one network: ridge 1 lost, dev-p2-ri1).
R s5-dev-lite0-ri3 flickr8k-dev ${D/--reg-image 0.3/--reg-image 3} --second-backbone efficientnet-lite0
R s5-dev-lite0-ri0.6 flickr8k-dev ${D/--reg-image 0.3/--reg-image 0.6} --second-backbone efficientnet-lite0
# 2b. Stages with more image ridge (4 blocks, 1,960-d), and with the second network.
R s5-dev-stages-ri1 flickr8k-dev ${D/--pooling avg --image-norm sqrt-l2 --method cca --components 256 --reg-image 0.3/--pooling stages --image-norm sqrt-l2 --method cca --components 256 --reg-image 1} $N
R s5-dev-stages-lite0-ri1 flickr8k-dev ${D/--pooling avg --image-norm sqrt-l2 --method cca --components 256 --reg-image 0.3/--pooling stages --image-norm sqrt-l2 --method cca --components 256 --reg-image 1} --second-backbone efficientnet-lite0
# 3b. The pyramid measured on EfficientNet-Lite0 without flip (a Lite2 pass was too slow on the
# shared cores that session): Lite0 average pooling against Lite0 pyramid.
L0="${D/--backbone efficientnet-lite2 --flip true/--backbone efficientnet-lite0 --flip false}"
R s5-dev-l0 flickr8k-dev $L0 $N
R s5-dev-l0-pyramid flickr8k-dev ${L0/--pooling avg/--pooling pyramid} $N
R s5-dev-l0-pyramid-ri1 flickr8k-dev ${L0/--pooling avg --image-norm sqrt-l2 --method cca --components 256 --reg-image 0.3/--pooling pyramid --image-norm sqrt-l2 --method cca --components 256 --reg-image 1} $N
# Session 6. Features cached first (as above) for: Lite2 without flip (train + val), Lite0 five crops
# (train).
R s6-dev-l2nf flickr8k-dev ${D/--flip true/--flip false} $N
R s6-dev-l2nf-lite0-ri1 flickr8k-dev ${D/--flip true --pooling avg --image-norm sqrt-l2 --method cca --components 256 --reg-image 0.3/--flip false --pooling avg --image-norm sqrt-l2 --method cca --components 256 --reg-image 1} --second-backbone efficientnet-lite0 --second-flip false
R s6-dev-l2nf-lite0-ri0.6 flickr8k-dev ${D/--flip true --pooling avg --image-norm sqrt-l2 --method cca --components 256 --reg-image 0.3/--flip false --pooling avg --image-norm sqrt-l2 --method cca --components 256 --reg-image 0.6} --second-backbone efficientnet-lite0 --second-flip false
R s6-dev-default flickr8k-dev          # today's defaults: the row above
R s6-dev-l0-whole flickr8k-dev ${L0} --crop whole
R s6-dev-l0-five flickr8k-dev ${L0} --crop five
# Val once per final configuration: experiments/run.sh s6-val-default flickr8k-cn
