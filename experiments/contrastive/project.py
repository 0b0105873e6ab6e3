"""Trained projection study (issue #18 item 2): the same inputs as tuwen's CCA (sqrt-l2 pooled
image features, 1,280-d; caption features = word-vector mean + bag of terms, 8,100-d, sparse), a
linear text map and a linear or MLP image map into 256 dimensions, trained with symmetric InfoNCE
(learned temperature; in-batch negatives, captions of the same image masked out), AdamW.

Levers: --init random|cca (the CCA maps as the starting point; the MLP is then CCA-linear plus a
residual MLP whose last layer starts at 0), --pull λ (λ·‖W − W_cca‖²/‖W_cca‖² per side),
--wd (decoupled weight decay), --dropout (on the input features), --mt PREFIX (machine-translated
captions of the training images as extra pairs), --early-stop F (F of the training images held out;
the epoch with the best R@1+5+10 both ways, CSLS, on them is kept; with CCA init the initial CCA is
refitted (cca.py) on the remaining images so that the held-out part is unseen, and cached beside
the export as PREFIX.inner-cca-F-SEED.npz; epoch 0 is a candidate),
--refit (then retrain on all training pairs for the chosen number of epochs).
One JSON row per run (CSLS and cosine) goes to results.jsonl with fit seconds and peak RSS."""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as nn
import torch.nn.functional as F

import cca as CCA
import common as C

torch.set_num_threads(1)
import warnings
warnings.filterwarnings("ignore", message="Sparse invariant checks")


def coo(m):
    m = m.tocoo()
    idx = torch.from_numpy(np.vstack([m.row, m.col]).astype(np.int64))
    return torch.sparse_coo_tensor(idx, torch.from_numpy(m.data.astype(np.float32)), m.shape)


class Maps(nn.Module):
    def __init__(self, d_img, d_txt, dim, image_map, hidden, dropout, init, temp):
        super().__init__()
        self.w_img = nn.Parameter(torch.empty(d_img, dim))
        self.b_img = nn.Parameter(torch.zeros(dim))
        self.w_txt = nn.Parameter(torch.empty(d_txt, dim))
        self.b_txt = nn.Parameter(torch.zeros(dim))
        nn.init.kaiming_uniform_(self.w_img.T, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.w_txt.T, a=math.sqrt(5))
        self.mlp = None
        if image_map == "mlp":
            self.mlp = nn.Sequential(nn.Linear(d_img, hidden), nn.ReLU(), nn.Dropout(dropout),
                                     nn.Linear(hidden, dim))
        self.dropout = dropout
        self.anchor = None
        if init is not None:
            self.load_cca(init)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temp)))

    def load_cca(self, maps):
        with torch.no_grad():
            wi = torch.from_numpy(maps["image_proj"])
            wt = torch.from_numpy(maps["text_proj"])
            self.w_img.copy_(wi)
            self.b_img.copy_(-torch.from_numpy(maps["image_mean"]) @ wi)
            self.w_txt.copy_(wt)
            self.b_txt.copy_(-torch.from_numpy(maps["text_mean"]) @ wt)
            if self.mlp is not None:
                self.mlp[-1].weight.zero_()
                self.mlp[-1].bias.zero_()
        self.anchor = (wi.clone(), wt.clone())

    def images(self, x):
        if self.training and self.dropout > 0:
            x = F.dropout(x, self.dropout)
        z = x @ self.w_img + self.b_img
        if self.mlp is not None:
            z = z + self.mlp(x)
        return z

    def texts(self, y):
        """y: scipy CSR rows."""
        if self.training and self.dropout > 0:
            y = y.copy()
            keep = np.random.random(y.data.shape[0]) >= self.dropout
            y.data = (y.data * keep / (1.0 - self.dropout)).astype(np.float32)
        return torch.sparse.mm(coo(y), self.w_txt) + self.b_txt

    def pull(self):
        if self.anchor is None:
            return torch.zeros(())
        wi, wt = self.anchor
        return (((self.w_img - wi) ** 2).sum() / (wi ** 2).sum()
                + ((self.w_txt - wt) ** 2).sum() / (wt ** 2).sum())


@torch.no_grad()
def embed(model, img, txt):
    model.eval()
    ei = model.images(torch.from_numpy(img)).numpy()
    et = np.concatenate([model.texts(txt[s:s + 5000]).numpy() for s in range(0, txt.shape[0], 5000)])
    model.train()
    return ei, et


def infonce(zi, zt, own, scale):
    zi, zt = F.normalize(zi, dim=1), F.normalize(zt, dim=1)
    logits = scale * zi @ zt.T  # pair i's image × pair j's caption
    same = own[:, None] == own[None, :]
    eye = torch.eye(len(own), dtype=torch.bool)
    logits = logits.masked_fill(same & ~eye, float("-inf"))
    target = torch.arange(len(own))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def train(model, data, args, epochs, stop=None, log_name=""):
    """data: img [n_img, p], pairs: (owner [n], CSR txt [n, q]). Returns (model, best epoch, history)."""
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    img_t = torch.from_numpy(data["img"])
    owner, txt = data["owner"], data["txt"]
    rng = np.random.default_rng(args.seed)
    history, best, best_ep, best_state = [], -1.0, 0, None

    def check(ep, h):
        nonlocal best, best_ep, best_state
        ei, et = embed(model, stop["img"], stop["txt"])
        rep = C.evaluate(ei, et, stop["owner"], "csls")
        h["stop_rsum"] = round(C.score_key(rep), 2)
        if h["stop_rsum"] > best:
            best, best_ep = h["stop_rsum"], ep
            best_state = {k: v.clone() for k, v in model.state_dict().items()}

    if stop is not None and args.init == "cca":
        h = {"epoch": 0}
        check(0, h)
        history.append(h)
        print(log_name, json.dumps(h), file=sys.stderr)
    for ep in range(1, epochs + 1):
        t = time.time()
        perm = rng.permutation(len(owner))
        tot = 0.0
        for s in range(0, len(perm), args.batch):
            idx = np.sort(perm[s:s + args.batch])
            own = torch.from_numpy(owner[idx])
            zi = model.images(img_t[own])
            zt = model.texts(txt[idx])
            scale = model.logit_scale.clamp(max=math.log(100.0)).exp()
            loss = infonce(zi, zt, own, scale)
            if args.pull > 0:
                loss = loss + args.pull * model.pull()
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
        h = {"epoch": ep, "loss": round(tot / len(perm), 4),
             "temp": round(float(1.0 / model.logit_scale.exp()), 4), "s": round(time.time() - t, 1)}
        if stop is not None:
            check(ep, h)
        history.append(h)
        print(log_name, json.dumps(h), file=sys.stderr)
        if stop is not None and ep - best_ep >= args.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, (best_ep if stop is not None else epochs), history


def with_mt(ds, mt):
    """Pairs of ds plus the MT captions whose image is in ds (owner re-indexed)."""
    if mt is None:
        return ds
    pos = {i: k for k, i in enumerate(ds["image_ids"])}
    keep = [k for k, i in enumerate(mt["image_of"]) if i in pos]
    out = dict(ds)
    out["owner"] = np.concatenate([ds["owner"],
                                   np.array([pos[mt["image_of"][k]] for k in keep], np.int64)])
    out["txt"] = sp.vstack([ds["txt"], mt["txt"][keep]]).tocsr()
    return out


def load_mt(prefix, pairs_csv):
    e = C.load_export(prefix)
    pairs = C.read_pairs(pairs_csv)
    return {"image_of": [pairs[C.word_row(t)][0] for t in e["texts_ids"]],
            "txt": C.text_sparse(e["texts_raw"])}


def new_model(args, d_img, d_txt, init):
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    return Maps(d_img, d_txt, args.dim, args.image_map, args.hidden, args.dropout, init,
                args.temp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--train-pairs", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--eval-pairs", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--cca-model", required=True, help="tuwen model folder fitted on --train-pairs")
    ap.add_argument("--mt", help="export prefix of MT captions (their pairs file: --mt-pairs)")
    ap.add_argument("--mt-pairs")
    ap.add_argument("--image-map", choices=["linear", "mlp"], default="linear")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--init", choices=["random", "cca"], default="random")
    ap.add_argument("--pull", type=float, default=0.0)
    ap.add_argument("--wd", type=float, default=0.0)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--temp", type=float, default=0.05, help="initial temperature (learned)")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--early-stop", type=float, default=0.0)
    ap.add_argument("--max-epochs", type=int, default=20)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--refit", action="store_true")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", required=True)
    args = ap.parse_args()

    t0 = time.time()
    train_ds = C.load_set(args.train, args.train_pairs)
    test = C.load_set(args.eval, args.eval_pairs)
    mt = load_mt(args.mt, args.mt_pairs) if args.mt else None
    t, _ = C.load_cca(args.cca_model)
    full_cca = {"image_mean": t["image_mean"], "image_proj": t["image_proj"],
                "text_mean": t["text_mean"], "text_proj": t["text_proj"]}
    load_s = time.time() - t0
    base_mib = C.rss_mib()
    d_img, d_txt = train_ds["img"].shape[1], train_ds["txt"].shape[1]

    t1 = time.time()
    cca_s = 0.0
    if args.early_stop > 0:
        fit_mask, stop_mask = C.inner_split(len(train_ds["image_ids"]), args.early_stop, args.seed)
        tr, st = C.subset(train_ds, fit_mask), C.subset(train_ds, stop_mask)
        init = None
        if args.init == "cca":
            tc = time.time()
            cache = f"{args.train}.inner-cca-{args.early_stop}-{args.seed}.npz"
            if os.path.exists(cache):
                init = dict(np.load(cache))
            else:
                init = CCA.fit(tr["img"], tr["owner"], tr["txt"])
                np.savez(cache, **init)
            cca_s = time.time() - tc
        model = new_model(args, d_img, d_txt, init)
        model, chosen, history = train(model, with_mt(tr, mt), args, args.max_epochs, st, args.name)
        if args.refit:
            model = new_model(args, d_img, d_txt, full_cca if args.init == "cca" else None)
            model, _, h2 = train(model, with_mt(train_ds, mt), args, chosen, None, args.name + "/refit")
            history = {"early_stop": history, "refit": h2}
    else:
        model = new_model(args, d_img, d_txt, full_cca if args.init == "cca" else None)
        model, chosen, history = train(model, with_mt(train_ds, mt), args, args.epochs, None, args.name)
    fit_s = time.time() - t1

    ei, et = embed(model, test["img"], test["txt"])
    cfg = {k: v for k, v in vars(args).items()
           if k not in ("train", "eval", "train_pairs", "eval_pairs", "mt", "mt_pairs", "cca_model")}
    cfg["mt"] = bool(args.mt)
    for score in ("csls", "cosine"):
        rep = C.evaluate(ei, et, test["owner"], score)
        print(f"{args.name} [{score}] {C.fmt(rep)}  fit {fit_s:.0f}s peak {C.peak_mib():.0f} MiB")
        C.append_result({
            "name": args.name, "method": "infonce-projection", "dataset": args.dataset,
            "score": "csls(k=10)" if score == "csls" else "cosine", "config": cfg,
            "train": args.train_pairs, "eval": args.eval_pairs, "epochs_run": chosen,
            "history": history, **{d: rep[d] for d in ("i2t", "t2i")},
            "n_images": rep["n_images"], "n_texts": rep["n_texts"], "fit_s": round(fit_s, 1),
            "inner_cca_s": round(cca_s, 1), "load_s": round(load_s, 1),
            "peak_mib": round(C.peak_mib(), 1), "rss_after_load_mib": round(base_mib, 1),
            "final_temp": round(float(1.0 / model.logit_scale.exp()), 4),
        })


if __name__ == "__main__":
    main()
