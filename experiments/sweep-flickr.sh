#!/usr/bin/env bash
# Sweep on Flickr8k-CN (fit train, eval val) over cached EfficientNet-Lite2 features.
# Prerequisite (once, ~10 min, and ~20 more for the flipped copies, on 2 cores):
#   for s in train val; do target/release/tuwen extract --pairs ../shared/data/flickr8k-cn/$s.csv \
#     --images ../shared/data/flickr8k-cn/images --backbone efficientnet-lite2 --flip false; done
# Every option that differs from a default is spelled out, so the runs do not depend on the
# defaults of the day (those were later set to the best configuration found).
# Usage: experiments/sweep-flickr.sh [NAME-PATTERN]   (only runs whose name matches)
set -euo pipefail
cd "$(dirname "$0")/.."
only=${1:-.}
R() { if [[ $1 =~ $only ]]; then experiments/run.sh "$@"; fi; }
L2="--backbone efficientnet-lite2 --flip false --image-norm none --method cca"
W="$L2 --bag false --reg-text 0.01 --components 100"
# 1. Text weighting, word2vec mean only (CCA on raw features, 100 components).
for w in mean idf sif; do R w2v-$w flickr8k-cn $W --weighting $w; done
R w2v-mean-nochar flickr8k-cn $W --weighting mean --no-char-fallback
R w2v-mean-stop flickr8k-cn $W --weighting mean --keep-stopwords
# 2. Bag of words/characters/bigrams next to the word2vec mean.
B="$L2 --weighting mean --bag"
for rt in 0.03 0.1 0.3 1; do R bag-rt$rt flickr8k-cn $B --components 256 --reg-text $rt; done
for ri in 0.1 1; do R bag-ri$ri flickr8k-cn $B --components 256 --reg-text 0.3 --reg-image $ri; done
for k in 128 512; do R bag-k$k flickr8k-cn $B --components $k --reg-text 0.3; done
for p in 0 2 4; do R bag-p$p flickr8k-cn $B --components 256 --reg-text 0.3 --power $p; done
R bag-words-only flickr8k-cn $B --components 256 --reg-text 0.3 --bag-no-chars --bag-no-bigrams
R bag-no-w2v flickr8k-cn $B --components 256 --reg-text 0.3 --w2v-weight 0
# 3. Image side: PCA before CCA.
P="--backbone efficientnet-lite2 --flip false --image-norm none --weighting mean --bag --components 256 --reg-text 0.3"
R bag-pca512 flickr8k-cn $P --method pca-cca --pca-image 512
R bag-pca256w flickr8k-cn $P --method pca-cca --pca-image 256 --whiten
