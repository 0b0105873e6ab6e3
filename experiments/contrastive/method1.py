"""The worked solution's method 1, as a measured row: frozen CNN features (EfficientNet-Lite2
pooled, flip-averaged, the features CCA sees: `tuwen export --raw`, signed sqrt + L2) with a
trained linear layer for images; an LSTM over the captions' word vectors (the same jieba tokens
and word2vec vectors as tuwen's text encoder, frozen) for captions; trained with a cosine-margin
contrastive loss (torch.nn.CosineEmbeddingLoss: 1 − cos for a matching pair, max(0, cos − margin)
for a non-matching one; one random non-matching caption of the batch per pair), Adam.
Either a fixed number of epochs (5, as the worked solution) or early stopping on a seeded part of
the training images (R@1+5+10 both ways with CSLS), optionally refitted on all training pairs for
the chosen number of epochs. Evaluated with CSLS (k = 10, tuwen's default) and plain cosine."""
import argparse
import json
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import common as C
from words import Tokens

torch.set_num_threads(1)


class Model(nn.Module):
    def __init__(self, d_img, d_word, dim):
        super().__init__()
        self.img = nn.Linear(d_img, dim)
        self.lstm = nn.LSTM(d_word, dim, batch_first=True)

    def images(self, x):
        return self.img(x)

    def texts(self, seqs, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(seqs, lengths, batch_first=True,
                                                   enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return h[-1]


def sequences(tok, captions):
    seqs = [torch.from_numpy(tok.vectors(c)) for c in captions]
    # A caption without a known token is one zero step (the LSTM then sees only its bias).
    seqs = [s if len(s) else torch.zeros(1, tok.mat.shape[1]) for s in seqs]
    return seqs


def batch_text(model, seqs, idx):
    b = [seqs[i] for i in idx]
    lengths = torch.tensor([len(s) for s in b])
    pad = nn.utils.rnn.pad_sequence(b, batch_first=True)
    return model.texts(pad, lengths)


@torch.no_grad()
def embed(model, img, seqs, bs=1000):
    model.eval()
    ei = model.images(torch.from_numpy(img)).numpy()
    et = np.concatenate([batch_text(model, seqs, list(range(s, min(s + bs, len(seqs))))).numpy()
                         for s in range(0, len(seqs), bs)])
    model.train()
    return ei, et


def hinge_in_batch(ii, ti, own, margin):
    """Variant (not the worked solution's): summed triplet hinge on cosines over all in-batch
    negatives, both directions (VSE), same-image pairs not counted as negatives."""
    cos = F.normalize(ii, dim=1) @ F.normalize(ti, dim=1).T
    pos = cos.diag()
    neg = torch.from_numpy(own[:, None] != own[None, :])
    l_i2t = (margin - pos[:, None] + cos).clamp(min=0) * neg
    l_t2i = (margin - pos[None, :] + cos).clamp(min=0) * neg
    return (l_i2t.sum() + l_t2i.sum()) / len(own)


def train_epoch(model, opt, img, seqs, owner, rng, bs, margin, loss_kind="cosine-embedding"):
    perm = rng.permutation(len(owner))
    loss_fn = nn.CosineEmbeddingLoss(margin=margin)
    tot = 0.0
    for s in range(0, len(perm), bs):
        idx = perm[s:s + bs]
        ti = batch_text(model, seqs, idx)
        ii = model.images(torch.from_numpy(img[owner[idx]]))
        if loss_kind == "hinge":
            loss = hinge_in_batch(ii, ti, owner[idx], margin)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
            continue
        # One non-matching caption per pair: a shuffle of the batch, skipping same-image ones.
        neg = rng.permutation(len(idx))
        ok = owner[idx][neg] != owner[idx]
        x1 = torch.cat([ii, ii[torch.from_numpy(ok)]])
        x2 = torch.cat([ti, ti[torch.from_numpy(neg[ok])]])
        y = torch.cat([torch.ones(len(idx)), -torch.ones(int(ok.sum()))])
        loss = loss_fn(x1, x2, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item() * len(idx)
    return tot / len(perm)


def fit(train, seqs, args, epochs, stop=None, stop_seqs=None, log=None):
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = Model(train["img"].shape[1], seqs[0].shape[1], args.dim)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    best, best_state, best_ep, history = -1.0, None, 0, []
    for ep in range(1, epochs + 1):
        t = time.time()
        loss = train_epoch(model, opt, train["img"], seqs, train["owner"], rng, args.batch,
                           args.margin, args.loss)
        h = {"epoch": ep, "loss": round(loss, 5), "s": round(time.time() - t, 1)}
        if stop is not None:
            ei, et = embed(model, stop["img"], stop_seqs)
            rep = C.evaluate(ei, et, stop["owner"], "csls")
            h["stop_rsum"] = round(C.score_key(rep), 2)
            if h["stop_rsum"] > best:
                best, best_ep = h["stop_rsum"], ep
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            elif ep - best_ep >= args.patience:
                history.append(h)
                print(json.dumps(h), file=sys.stderr)
                break
        history.append(h)
        print(json.dumps(h), file=sys.stderr)
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, best_ep, history


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True, help="export prefix of the training pairs")
    ap.add_argument("--train-pairs", required=True)
    ap.add_argument("--eval", required=True, help="export prefix of the evaluation pairs")
    ap.add_argument("--eval-pairs", required=True)
    ap.add_argument("--dataset", required=True, help="label: flickr8k-dev or flickr8k-cn")
    ap.add_argument("--models", default="/work/main/models")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--early-stop", type=float, default=0.0,
                    help="fraction of training images held out for early stopping (0: off)")
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--refit", action="store_true",
                    help="after early stopping, refit on all training pairs for the best epoch count")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--margin", type=float, default=0.2)
    ap.add_argument("--loss", choices=["cosine-embedding", "hinge"], default="cosine-embedding",
                    help="cosine-embedding: the worked solution's loss; hinge: in-batch VSE variant")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", required=True)
    args = ap.parse_args()

    t0 = time.time()
    tok = Tokens(args.models)
    train = C.load_set(args.train, args.train_pairs)
    test = C.load_set(args.eval, args.eval_pairs)
    seqs = sequences(tok, train["captions"])
    test_seqs = sequences(tok, test["captions"])
    load_s = time.time() - t0
    base_mib = C.rss_mib()

    t1 = time.time()
    history, chosen = None, args.epochs
    if args.early_stop > 0:
        fit_mask, stop_mask = C.inner_split(len(train["image_ids"]), args.early_stop, args.seed)
        tr, st = C.subset(train, fit_mask), C.subset(train, stop_mask)
        keep = np.flatnonzero(fit_mask[train["owner"]])
        skeep = np.flatnonzero(stop_mask[train["owner"]])
        model, chosen, history = fit(tr, [seqs[i] for i in keep], args, args.max_epochs, st,
                                     [seqs[i] for i in skeep])
        if args.refit:
            model, _, h2 = fit(train, seqs, args, chosen)
            history = {"early_stop": history, "refit": h2}
    else:
        model, _, history = fit(train, seqs, args, args.epochs)
    fit_s = time.time() - t1

    ei, et = embed(model, test["img"], test_seqs)
    rows = []
    for score in ("csls", "cosine"):
        rep = C.evaluate(ei, et, test["owner"], score)
        print(f"{args.name} [{score}] {C.fmt(rep)}")
        rows.append(C.append_result({
            "name": args.name, "method": "method1-lstm", "dataset": args.dataset,
            "score": "csls(k=10)" if score == "csls" else "cosine",
            "config": {k: v for k, v in vars(args).items()
                       if k not in ("train", "eval", "train_pairs", "eval_pairs", "models")},
            "train": args.train_pairs, "eval": args.eval_pairs,
            "epochs_run": chosen, "history": history,
            **{d: rep[d] for d in ("i2t", "t2i")}, "n_images": rep["n_images"],
            "n_texts": rep["n_texts"], "fit_s": round(fit_s, 1), "load_s": round(load_s, 1),
            "peak_mib": round(C.peak_mib(), 1), "rss_after_load_mib": round(base_mib, 1),
        }))


if __name__ == "__main__":
    main()
