#!/usr/bin/env bash
# Backbones on equal footing, on the first 2,000 Flickr8k-CN training images (VGG19 costs ~0.3 s
# per image on 2 cores, so the full 7,000 were not extracted with it). Eval on val.
set -euo pipefail
cd "$(dirname "$0")/.."
R=experiments/run.sh
T="--flip false --method cca --weighting mean --bag --components 128 --reg-text 1"
$R bb2000-lite2 flickr8k-cn-2000 --backbone efficientnet-lite2 $T --image-norm none
$R bb2000-lite2-sqrt flickr8k-cn-2000 --backbone efficientnet-lite2 $T --image-norm sqrt-l2
$R bb2000-vgg19-avg flickr8k-cn-2000 --backbone vgg19 $T --image-norm none
$R bb2000-vgg19-avg-sqrt flickr8k-cn-2000 --backbone vgg19 $T --image-norm sqrt-l2
