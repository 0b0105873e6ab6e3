#!/usr/bin/env bash
# Backbones on equal footing, on the first 2,000 Flickr8k-CN training images (VGG19 costs ~0.3 s
# per image on 2 cores, so the full 7,000 were not extracted with it). Eval on val.
# Features: tuwen extract --backbone {efficientnet-lite2,vgg19} [--pooling grid] --flip false
#   on val.csv and runs/subsets/train2000.csv (made by experiments/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
R=experiments/run.sh
T="--flip false --weighting mean --bag --components 128 --reg-text 1"
$R bb2000-lite2 flickr8k-cn-2000 --backbone efficientnet-lite2 $T --method cca --image-norm none
$R bb2000-lite2-sqrt flickr8k-cn-2000 --backbone efficientnet-lite2 $T --method cca --image-norm sqrt-l2
$R bb2000-vgg19-avg flickr8k-cn-2000 --backbone vgg19 $T --method cca --image-norm none
$R bb2000-vgg19-avg-sqrt flickr8k-cn-2000 --backbone vgg19 $T --method cca --image-norm sqrt-l2
# pool5 grid (25,088-d): PCA (through the 2,000 × 2,000 Gram matrix) to 512, then CCA.
$R bb2000-vgg19-grid-pca512-sqrt flickr8k-cn-2000 --backbone vgg19 --pooling grid $T --method pca-cca --pca-image 512 --image-norm sqrt-l2
$R bb2000-vgg19-grid-pca512 flickr8k-cn-2000 --backbone vgg19 --pooling grid $T --method pca-cca --pca-image 512 --image-norm none
