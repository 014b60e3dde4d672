"""Write Torch7 binary files byte by byte, valid or hostile, without Lua or torch.

Follows torch7's ``File.lua`` (``writeObject``: type tags, reference indices, tables,
torch classes as ``"V <version>"`` + class name + their data) and ``generic/Tensor.c``
/ ``generic/Storage.c`` (tensor: ndim, sizes, strides, 1-based offset, storage;
storage: count, raw elements), little-endian with 8-byte longs. It shares no code
with ``adain_jax.weights.torch7``; ``tests/weights/test_torch7.py`` checks its files
with the independent ``torchfile`` reader.

Python values map to Lua ones: ``None`` nil, ``bool`` boolean, ``int``/``float``
number, ``str``/``bytes`` string, ``dict`` table, ``list`` table keyed 1..n,
``np.ndarray`` a tensor with its own storage, ``Storage``/``View`` shared storages and
views of them, ``Module`` an nn module, ``Raw`` bytes written as they are.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NIL, NUMBER, STRING, TABLE, TORCH, BOOLEAN, FUNCTION = 0, 1, 2, 3, 4, 5, 6

_TYPE_PREFIX = {
    np.dtype(np.float32): "Float",
    np.dtype(np.float64): "Double",
    np.dtype(np.int64): "Long",
    np.dtype(np.int32): "Int",
    np.dtype(np.int16): "Short",
    np.dtype(np.int8): "Char",
    np.dtype(np.uint8): "Byte",
}


@dataclass(eq=False)
class Module:
    """A torch class written as a table of fields (``nn.*``)."""

    class_name: str
    fields: dict
    version: str | None = "V 1"  # None: the pre-versioning form (class name only)


@dataclass(eq=False)
class Storage:
    """A storage; ``numel`` overrides the count written before the elements."""

    data: np.ndarray
    numel: int | None = None
    class_name: str | None = None


@dataclass(eq=False)
class View:
    """A tensor viewing ``storage`` (``None``: an empty tensor); ``offset`` 0-based."""

    storage: Storage | None
    size: Sequence[int] = ()
    stride: Sequence[int] | None = None
    offset: int = 0
    class_name: str | None = None
    dtype: Any = np.float32


@dataclass
class Raw:
    """Bytes written verbatim where an object goes."""

    data: bytes


@dataclass
class Ref:
    """A reference (tag and index only) to object ``index``, read or not."""

    index: int
    tag: int = TABLE


def contiguous(size: Sequence[int]) -> tuple[int, ...]:
    stride, acc = [], 1
    for s in reversed(size):
        stride.append(acc)
        acc *= s
    return tuple(reversed(stride))


def empty(dtype: Any = np.float32) -> View:
    """An empty tensor (``torch.FloatTensor()``: no dimensions, no storage)."""
    return View(None, dtype=dtype)


@dataclass
class Writer:
    """``dumps`` one object; objects written twice are written once, then referenced."""

    out: bytearray = field(default_factory=bytearray)
    indices: dict[int, int] = field(default_factory=dict)
    keep: list = field(default_factory=list)

    def int(self, v: int) -> None:
        self.out += struct.pack("<i", v)

    def long(self, v: int) -> None:
        self.out += struct.pack("<q", v)

    def string(self, s: str | bytes) -> None:
        raw = s.encode() if isinstance(s, str) else s
        self.int(len(raw))
        self.out += raw

    def _new(self, obj: Any, tag: int) -> bool:
        """Write ``tag`` and the index; True if ``obj`` must be written in full."""
        self.int(tag)
        if id(obj) in self.indices:
            self.int(self.indices[id(obj)])
            return False
        index = len(self.indices) + 1
        self.indices[id(obj)] = index
        self.keep.append(obj)  # ids stay unique while the writer lives
        self.int(index)
        return True

    def _class(self, version: str | None, name: str) -> None:
        if version is not None:
            self.string(version)
        self.string(name)

    def write(self, obj: Any) -> None:
        if obj is None:
            self.int(NIL)
        elif isinstance(obj, bool):
            self.int(BOOLEAN)
            self.int(int(obj))
        elif isinstance(obj, (int, float)):
            self.int(NUMBER)
            self.out += struct.pack("<d", obj)
        elif isinstance(obj, (str, bytes)):
            self.int(STRING)
            self.string(obj)
        elif isinstance(obj, Raw):
            self.out += obj.data
        elif isinstance(obj, Ref):
            self.int(obj.tag)
            self.int(obj.index)
        elif isinstance(obj, list):
            self.write({i + 1: v for i, v in enumerate(obj)})
        elif isinstance(obj, dict):
            if self._new(obj, TABLE):
                self.int(len(obj))
                for k, v in obj.items():
                    self.write(k)
                    self.write(v)
        elif isinstance(obj, Module):
            if self._new(obj, TORCH):
                self._class(obj.version, obj.class_name)
                self.write(obj.fields)
        elif isinstance(obj, np.ndarray):
            self.write(View(Storage(obj.reshape(-1)), obj.shape, dtype=obj.dtype))
        elif isinstance(obj, View):
            self._tensor(obj)
        elif isinstance(obj, Storage):
            self._storage(obj)
        else:
            raise TypeError(f"cannot write {type(obj).__name__}")

    def _tensor(self, t: View) -> None:
        if not self._new(t, TORCH):
            return
        dtype = np.dtype(t.storage.data.dtype if t.storage is not None else t.dtype)
        self._class("V 1", t.class_name or f"torch.{_TYPE_PREFIX[dtype]}Tensor")
        size = tuple(t.size)
        stride = tuple(t.stride) if t.stride is not None else contiguous(size)
        self.int(len(size))
        for v in size:
            self.long(v)
        for v in stride:
            self.long(v)
        self.long(t.offset + 1)
        self.write(t.storage)

    def _storage(self, s: Storage) -> None:
        if not self._new(s, TORCH):
            return
        data = np.ascontiguousarray(s.data).reshape(-1)
        self._class("V 1", s.class_name or f"torch.{_TYPE_PREFIX[data.dtype]}Storage")
        self.long(len(data) if s.numel is None else s.numel)
        self.out += data.astype(data.dtype.newbyteorder("<")).tobytes()


def dumps(obj: Any) -> bytes:
    """The ``.t7`` bytes of ``obj`` (``torch.save``'s binary mode)."""
    w = Writer()
    w.write(obj)
    return bytes(w.out)


# ---------------------------------------------------------------- nn modules
def _module(class_name: str, **fields: Any) -> Module:
    """An nn module with the bookkeeping fields ``clearState`` leaves."""
    base = {"output": empty(), "gradInput": empty(), "train": False, "_type": "torch.FloatTensor"}
    return Module(class_name, {**fields, **base})


def conv(
    weight: np.ndarray, bias: np.ndarray, *, flat: bool = False, grads: bool = False
) -> Module:
    """``nn.SpatialConvolution``: OIHW ``weight`` (``flat``: stored ``[O, I*kH*kW]``, the
    layout of older nn versions); ``grads``: with zero gradWeight/gradBias tensors."""
    o, i, kh, kw = weight.shape
    stored = weight.reshape(o, i * kh * kw) if flat else weight
    fields = {"nInputPlane": i, "nOutputPlane": o, "kW": kw, "kH": kh, "dW": 1, "dH": 1}
    fields |= {"padW": 0, "padH": 0, "weight": stored, "bias": bias}
    fields |= {"finput": empty(), "fgradInput": empty()}
    if grads:
        fields |= {"gradWeight": np.zeros_like(stored), "gradBias": np.zeros_like(bias)}
    return _module("nn.SpatialConvolution", **fields)


def reflection_pad(p: int = 1) -> Module:
    return _module("nn.SpatialReflectionPadding", pad_l=p, pad_r=p, pad_t=p, pad_b=p)


def relu() -> Module:
    return _module("nn.ReLU", threshold=0, val=0, inplace=False)


def max_pool() -> Module:
    return _module(
        "nn.SpatialMaxPooling", kW=2, kH=2, dW=2, dH=2, padW=0, padH=0, ceil_mode=True,
        indices=empty(np.int64),
    )  # fmt: skip


def upsample() -> Module:
    return _module("nn.SpatialUpSamplingNearest", scale_factor=2)


def sequential(modules: Sequence[Module]) -> Module:
    return _module("nn.Sequential", modules=list(modules))


def from_torch(seq, *, flat: bool = False, grads: bool = False) -> Module:
    """The authors' Torch7 form of a ``torch.nn.Sequential`` of the port's layers."""
    from torch import nn

    out = []
    for m in seq:
        if isinstance(m, nn.Conv2d):
            w = m.weight.detach().numpy().astype(np.float32)
            out.append(conv(w, m.bias.detach().numpy().astype(np.float32), flat=flat, grads=grads))
        elif isinstance(m, nn.ReflectionPad2d):
            out.append(reflection_pad(m.padding[0]))
        elif isinstance(m, nn.ReLU):
            out.append(relu())
        elif isinstance(m, nn.MaxPool2d):
            out.append(max_pool())
        elif isinstance(m, nn.Upsample):
            out.append(upsample())
        else:
            raise TypeError(f"no Torch7 form for {type(m).__name__}")
    return sequential(out)


def small_model(flat: bool = False) -> Module:
    """A small valid model: pad, a 2->3 conv (with gradient tensors), ReLU, pool, up."""
    w = np.arange(3 * 2 * 3 * 3, dtype=np.float32).reshape(3, 2, 3, 3) / 10
    b = np.array([0.5, -1.0, 2.0], np.float32)
    return sequential(
        [reflection_pad(), conv(w, b, flat=flat, grads=True), relu(), max_pool(), upsample()]
    )
