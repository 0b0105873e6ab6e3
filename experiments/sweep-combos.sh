#!/usr/bin/env bash
# Second round on Flickr8k-CN: combine what helped in sweep-flickr.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
R=experiments/run.sh
B="--backbone efficientnet-lite2 --method cca --weighting mean --bag"
$R combo-sqrt flickr8k-cn $B --components 256 --reg-text 1 --image-norm sqrt-l2 --flip false
$R combo-l2 flickr8k-cn $B --components 256 --reg-text 1 --image-norm l2 --flip false
$R combo-sqrt-flip flickr8k-cn $B --components 256 --reg-text 1 --image-norm sqrt-l2 --flip
$R combo-sqrt-flip-mt flickr8k-cn+mt $B --components 256 --reg-text 1 --image-norm sqrt-l2 --flip
$R combo-sqrt-flip-mt-rt3 flickr8k-cn+mt $B --components 256 --reg-text 3 --image-norm sqrt-l2 --flip
$R combo-sqrt-flip-mt-k384 flickr8k-cn+mt $B --components 384 --reg-text 1 --image-norm sqrt-l2 --flip
