"""Check `tuwen export` against `tuwen rank --score cosine` with faiss (experiments/export-faiss-check.md).

    layout PAIRS IMAGES DIR      lay PAIRS out as DIR/附件2 (text -> image) and DIR/附件3
                                 (image -> text), caption ids numbered as `tuwen export --pairs`
                                 numbers them (Word-<1000000001 + n>, n-th non-empty caption)
    compare PARQUET RESULTS_DIR  pyarrow reads the export, faiss IndexFlatIP answers both tasks'
                                 top 5, compared with RESULTS_DIR/result1.csv and result2.csv

Needs pyarrow, numpy, faiss-cpu (a throwaway venv is enough).
"""
import csv
import os
import sys
from collections import defaultdict


def layout(pairs, images, out):
    rows = []
    with open(pairs, encoding="utf-8-sig", newline="") as f:
        for r in csv.DictReader(f):
            cap = " ".join(r["caption"].split())  # tuwen's clean_caption
            if cap:
                rows.append((r["image_id"].strip(), cap))
    image_ids = list(dict.fromkeys(i for i, _ in rows))
    text_ids = [f"Word-{1_000_000_001 + n:010d}" for n in range(len(rows))]
    for name, files in [
        ("附件2", {"word_test.csv": "t", "image_data.csv": "i"}),
        ("附件3", {"image_test.csv": "i", "word_data.csv": "t"}),
    ]:
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        link = os.path.join(d, "ImageData")
        if not os.path.exists(link):
            os.symlink(os.path.abspath(images), link)
        for fname, kind in files.items():
            with open(os.path.join(d, fname), "w", encoding="utf-8", newline="") as f:
                w = csv.writer(f)
                if kind == "t":
                    w.writerow(["text_id", "caption"])
                    w.writerows(zip(text_ids, (c for _, c in rows)))
                else:
                    w.writerow(["image_id"])
                    w.writerows([i] for i in image_ids)
    print(f"{len(text_ids)} captions, {len(image_ids)} images -> {out}/附件2, {out}/附件3")


def read_results(path):
    top = defaultdict(dict)
    with open(path, encoding="utf-8", newline="") as f:
        r = csv.reader(f)
        next(r)
        for q, rank, g in r:
            top[q][int(rank)] = g
    return {q: [d[k] for k in sorted(d)] for q, d in top.items()}


def compare(parquet, results_dir):
    import faiss
    import numpy as np
    import pyarrow.parquet as pq

    t = pq.read_table(parquet)
    ids = np.array(t.column("id").to_pylist())
    kind = np.array(t.column("kind").to_pylist())
    vec = t.column("vector").combine_chunks()
    d = vec.type.list_size
    x = vec.flatten().to_numpy().reshape(-1, d).astype(np.float32)
    img, txt = x[kind == "image"], x[kind == "text"]
    img_ids, txt_ids = ids[kind == "image"], ids[kind == "text"]
    norms = np.linalg.norm(x, axis=1)
    print(f"{parquet}: {len(img_ids)} images, {len(txt_ids)} texts, d={d}, "
          f"|v| in [{norms.min():.7f}, {norms.max():.7f}]")
    for task, (q, qids, g, gids) in {
        1: (txt, txt_ids, img, img_ids),
        2: (img, img_ids, txt, txt_ids),
    }.items():
        # Galleries hold exact duplicates (identical captions give identical vectors): ties.
        dup = len(gids) - len(np.unique(g, axis=0))
        index = faiss.IndexFlatIP(d)
        index.add(g)
        # 20 deep, so that ties across rank 5 can be re-ordered by tuwen's rule below.
        D, I = index.search(q, 20)
        tuwen = read_results(os.path.join(results_dir, f"result{task}.csv"))
        raw_same = same = 0
        diffs = []
        for qi, qid in enumerate(qids):
            theirs = tuwen[str(qid)]
            raw = [str(gids[j]) for j in I[qi, :5]]
            raw_same += raw == theirs
            # tuwen's order: higher score first, then lower gallery index (rank.rs `better`).
            order = sorted(range(20), key=lambda r: (-D[qi, r], I[qi, r]))[:5]
            mine = [str(gids[I[qi, r]]) for r in order]
            if mine == theirs:
                same += 1
                continue
            gi = {str(g_): j for j, g_ in enumerate(gids)}
            s32 = {g_: float(np.dot(q[qi], g[gi[g_]])) for g_ in set(mine) | set(theirs)}
            gap = max(abs(s32[a] - s32[b]) for a, b in zip(mine, theirs) if a != b)
            diffs.append((qid, mine, theirs, gap))
        what = "text -> image" if task == 1 else "image -> text"
        print(f"task {task} ({what}): {len(qids)} queries, gallery {len(gids)} "
              f"({dup} exact duplicate vectors)")
        print(f"  faiss top 5 as returned:              {raw_same} identical to tuwen's")
        print(f"  faiss top 20 re-sorted by tuwen's tie rule, first 5: {same} identical; "
              f"{len(diffs)} differ")
        for qid, mine, theirs, gap in diffs[:10]:
            print(f"  {qid}: faiss {mine}\n  {' ' * len(str(qid))}  tuwen {theirs}  "
                  f"(largest score gap between swapped items {gap:.2e})")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"layout": layout, "compare": compare}[cmd](*args)
