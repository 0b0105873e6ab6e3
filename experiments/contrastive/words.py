"""Caption tokens and word vectors as tuwen's text encoder makes them (src/features/text.rs):
jieba (HMM on, precise mode; jieba-rs and Python jieba share the default dictionary), tokens
trimmed, kept only with an alphanumeric character and not a stop word; each token's unit word2vec
vector, else the mean of its characters' vectors (character fallback), else dropped."""
import os

import numpy as np


def load_word2vec(path):
    """word2vec binary → (dict word → row, float32 matrix of unit rows)."""
    with open(path, "rb") as f:
        n, d = map(int, f.readline().split())
        vocab = {}
        mat = np.empty((n, d), dtype=np.float32)
        for i in range(n):
            w = bytearray()
            while True:
                c = f.read(1)
                if c == b" ":
                    break
                if c != b"\n":
                    w += c
            mat[i] = np.frombuffer(f.read(4 * d), dtype="<f4")
            word = w.decode("utf-8", errors="replace")
            vocab.setdefault(word, i)
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    mat /= np.where(norms > 0, norms, 1.0)
    return vocab, mat


class Tokens:
    def __init__(self, models_dir):
        import jieba
        jieba.setLogLevel(60)
        self.jieba = jieba
        self.vocab, self.mat = load_word2vec(os.path.join(models_dir, "words.vector"))
        with open(os.path.join(models_dir, "stopwords.txt"), encoding="utf-8") as f:
            self.stop = {l.strip() for l in f if l.strip()}

    def tokenize(self, caption):
        out = []
        for t in self.jieba.cut(caption, HMM=True):
            w = t.strip()
            if w and any(c.isalnum() for c in w) and w not in self.stop:
                out.append(w)
        return out

    def vectors(self, caption):
        """[n_tokens, 100] unit word vectors (character fallback), OOV tokens left out."""
        rows = []
        for tok in self.tokenize(caption):
            i = self.vocab.get(tok)
            if i is not None:
                rows.append(self.mat[i])
                continue
            chars = [self.mat[self.vocab[c]] for c in tok if c in self.vocab]
            if chars:
                rows.append(np.mean(chars, axis=0))
        d = self.mat.shape[1]
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, d), np.float32)
