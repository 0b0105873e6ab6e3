#!/usr/bin/env bash
# Teddy sample: fixed split (seed 2024, 200 of the 1,000 images held out: runs/teddy-split/,
# made by `tuwen split`), fit on the 800 alone and with Flickr8k-CN train, eval on the 200.
set -euo pipefail
cd "$(dirname "$0")/.."
R=experiments/run.sh
L2="--backbone efficientnet-lite2 --flip false"
$R teddy-w2v teddy-800-200 $L2 --method cca --components 64 --weighting mean --reg-image 1 --reg-text 0.3 --bag false --image-norm none
$R teddy-bag teddy-800-200 $L2 --method cca --components 64 --weighting mean --bag --reg-image 1 --reg-text 1 --image-norm none
$R teddy-bag-sqrt teddy-800-200 $L2 --method cca --components 64 --weighting mean --bag --reg-image 1 --reg-text 1 --image-norm sqrt-l2
$R teddy+flickr-w2v teddy+flickr $L2 --method cca --components 100 --weighting mean --reg-image 0.3 --reg-text 0.3 --bag false --image-norm none
$R teddy+flickr-bag teddy+flickr $L2 --method cca --components 256 --weighting mean --bag --reg-image 0.3 --reg-text 1 --image-norm none
# The default configuration of `tuwen fit` (Lite2 with flip, sqrt-L2, bag, 256 components…).
$R teddy-default teddy-800-200 --components 64 --reg-image 1
$R teddy+flickr-default teddy+flickr
