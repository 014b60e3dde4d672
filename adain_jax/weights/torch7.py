"""Read Torch7 ``.t7`` files (the AdaIN authors' own release) without Lua or torch.

The format is torch7's binary serialisation (``File.lua``'s ``writeObject``; tensors and
storages in ``generic/Tensor.c`` and ``generic/Storage.c``) as written on 64-bit Linux and
macOS: little-endian, 4-byte ints, 8-byte longs and doubles. Every object starts with an int
type tag:

* 0 nil; 1 a number (double); 5 a boolean (int 0 or 1); 2 a string (int length, bytes);
* 3 a table: an int reference index, then, if that index is new, an int count and as many key
  and value objects;
* 4 a torch class: an int index, then, if new, the string ``"V <version>"`` and the class name
  (or only the class name: version 0), then the class's own data. A tensor is an int ``ndim``,
  ``ndim`` long sizes, ``ndim`` long strides, the long 1-based storage offset and its storage
  (an object, or nil); a storage is a long element count and the raw elements; an ``nn``
  module is the table of its fields;
* 6, 7 and 8: Lua functions (bytecode and upvalues).

An index read before is a reference to that object (a storage shared by two tensors).

The file is hostile input, read under the rules of the ``.pth`` reader (``torch_pickle``):

* Nothing is executed: a file holding a function is refused, and torch classes are read only
  from an allow-list, by name (``nn.Sequential``, the five layers of the authors' networks,
  tensors and storages), never looked up or constructed.
* Every string length, table count, tensor rank and storage size is checked against the bytes
  left in the file before anything is read or allocated; storages are skipped while parsing
  and read afterwards, once each; tensors are built by ``torch_records.build_view`` (offset,
  sizes and strides proved inside the storage), their total bounded by the file's size.
* Nesting depth, objects, table entries and string bytes are bounded; a reference to an object
  still being read (a loop) is refused.
* Anything unexpected is one ``TorchFileError`` line naming the file.

``load_state_dict`` turns the authors' ``nn.Sequential`` models into the state dict the PyTorch
port's ``.pth`` files hold for the same networks (``"<index>.weight"``, ``"<index>.bias"``,
0-based Sequential indices, OIHW), so ``convert``'s layouts apply unchanged. The indices agree:
the authors' ``test.lua`` keeps modules 1..31 of the 53 in ``vgg_normalised.t7`` (relu4_1 is
the 31st, the port's index 30), and their ``train.lua`` builds the 29-module decoder
(convolutions 2, 6, 9, ..., 29, the port's 1, 5, 8, ..., 28) that ``decoder.t7`` and
``decoder-content-similar.t7`` hold.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from adain_jax.io import files
from adain_jax.io.messages import one_line
from adain_jax.weights.torch_records import (
    MALFORMED_FILE_ERRORS,
    StorageType,
    TorchFileError,
    build_view,
    output_budget,
)

SUFFIX = ".t7"

TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH, TYPE_BOOLEAN = 0, 1, 2, 3, 4, 5
_FUNCTION_TAGS = (6, 7, 8)  # function, legacy recursive function, recursive function

MAX_DEPTH = 64  # objects inside objects (a model file needs about 6)
MAX_OBJECTS = 20_000  # tables and torch objects (the authors' VGG file has under 1,000)
MAX_ENTRIES = 100_000  # table entries in all (the authors' VGG file has about 1,000)
MAX_STRING = 1 << 20  # bytes of one string
MAX_STRINGS = 16 << 20  # bytes of all strings
MAX_NAME = 256  # bytes of a class name or version string
MAX_NDIM = 32
_MAX_LAYER_SIZE = 1 << 16  # planes and kernel sizes of a convolution

# torch7 storage classes -> the .pth reader's storage names (its dtype table).
_STORAGES = {
    f"torch.{name}Storage": f"{name}Storage"
    for name in ("Byte", "Char", "Short", "Int", "Long", "Float", "Double")
}
_STORAGES["torch.CudaStorage"] = "FloatStorage"  # cutorch writes CUDA float storages as float32
# Each tensor class and the storage class it must point to.
_TENSORS = {name.replace("Storage", "Tensor"): name for name in _STORAGES}

CONV_CLASSES = frozenset({"nn.SpatialConvolution", "nn.SpatialConvolutionMM"})
LAYER_CLASSES = CONV_CLASSES | {
    "nn.ReLU",
    "nn.SpatialReflectionPadding",
    "nn.SpatialMaxPooling",
    "nn.SpatialUpSamplingNearest",
}
MODULE_CLASSES = LAYER_CLASSES | {"nn.Sequential"}
_ALLOWED = "nn.Sequential, its layers (" + ", ".join(sorted(LAYER_CLASSES)) + ") and tensors"


@dataclass(frozen=True, eq=False)
class Storage:
    """A storage found while parsing: its class, element type and count, and where its
    elements lie in the file (read only when a tensor that uses it is built)."""

    class_name: str
    dtype: np.dtype
    numel: int
    position: int


@dataclass(frozen=True, eq=False)
class Tensor:
    """A tensor found while parsing: a view (0-based ``offset``, ``size``, ``stride`` in
    elements) of ``storage``, or an empty tensor (``storage`` None or no dimensions)."""

    class_name: str
    size: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int
    storage: Storage | None


@dataclass(eq=False)
class TorchObject:
    """An allowed torch class that serialises as a table of fields (an ``nn`` module)."""

    class_name: str
    version: float
    fields: dict


_READING = object()  # the slot of an object whose contents are being read


class _Reader:
    """One pass over the file; ``pos`` is the byte position, ``size`` the file's length."""

    def __init__(self, f: BinaryIO, path: str, size: int):
        self.f, self.path, self.size, self.pos = f, path, size, 0
        self.objects: dict[int, Any] = {}
        self.entries = 0
        self.string_bytes = 0
        self.budget = output_budget(size)
        self._arrays: dict[int, np.ndarray] = {}

    def fail(self, what: str) -> TorchFileError:
        return TorchFileError(f"{self.path}: {what} (at byte {self.pos})")

    # ------------------------------------------------------------ primitives
    def raw(self, n: int, what: str) -> bytes:
        left = self.size - self.pos
        if n < 0 or n > left:
            raise self.fail(f"truncated or lying size: {what} needs {n} bytes, {left} left")
        data = self.f.read(n)
        if len(data) != n:
            raise self.fail(f"truncated: {what} is short")
        self.pos += n
        return data

    def int32(self, what: str) -> int:
        return struct.unpack("<i", self.raw(4, what))[0]

    def int64(self, what: str) -> int:
        return struct.unpack("<q", self.raw(8, what))[0]

    def int64s(self, n: int, what: str) -> tuple[int, ...]:
        return struct.unpack(f"<{n}q", self.raw(8 * n, what))

    def string(self, limit: int, what: str) -> str:
        n = self.int32(f"the length of {what}")
        if not 0 <= n <= limit:
            raise self.fail(f"{what} claims {n} bytes (at most {limit})")
        self.string_bytes += n
        if self.string_bytes > MAX_STRINGS:
            raise self.fail(f"strings hold more than {MAX_STRINGS} bytes")
        return self.raw(n, what).decode("utf-8", "surrogateescape")

    # ------------------------------------------------------------ objects
    def obj(self, depth: int) -> Any:
        """Read one object (``File.lua``'s ``readObject``)."""
        if depth > MAX_DEPTH:
            raise self.fail(f"objects nested deeper than {MAX_DEPTH} levels")
        tag = self.int32("a type tag")
        if tag == TYPE_NIL:
            return None
        if tag == TYPE_NUMBER:
            return struct.unpack("<d", self.raw(8, "a number"))[0]
        if tag == TYPE_BOOLEAN:
            value = self.int32("a boolean")
            if value not in (0, 1):
                raise self.fail(f"boolean {value} is neither 0 nor 1")
            return value == 1
        if tag == TYPE_STRING:
            return self.string(MAX_STRING, "a string")
        if tag in _FUNCTION_TAGS:
            raise self.fail(
                "holds a Lua function (bytecode); functions are never loaded, only "
                f"{_ALLOWED} are read"
            )
        if tag not in (TYPE_TABLE, TYPE_TORCH):
            raise self.fail(f"unknown type tag {tag}; not a Torch7 binary file")
        index = self.int32("a reference index")
        if index in self.objects:
            found = self.objects[index]
            if found is _READING:
                raise self.fail(f"reference loop: object {index} contains itself")
            return found
        if len(self.objects) >= MAX_OBJECTS:
            raise self.fail(f"more than {MAX_OBJECTS} objects")
        self.objects[index] = _READING
        value = self._table(depth) if tag == TYPE_TABLE else self._torch(depth)
        self.objects[index] = value
        return value

    def _table(self, depth: int) -> dict:
        count = self.int32("a table size")
        # Each entry takes at least two type tags (8 bytes).
        if count < 0 or 8 * count > self.size - self.pos:
            raise self.fail(f"table claims {count} entries, more than the file holds")
        self.entries += count
        if self.entries > MAX_ENTRIES:
            raise self.fail(f"tables hold more than {MAX_ENTRIES} entries")
        table: dict = {}
        for _ in range(count):
            key = self.obj(depth + 1)
            # Lua keys may be any value; a model's are names and list positions.
            if type(key) not in (str, float) or key != key:
                raise self.fail(f"table key {_describe(key)}; only strings and numbers are read")
            if key in table:
                raise self.fail(f"table key {key!r:.40} appears twice")
            table[key] = self.obj(depth + 1)
        return table

    def _torch(self, depth: int) -> Any:
        head = self.string(MAX_NAME, "a class version")
        version: float = 0.0
        name = head
        if head.startswith("V "):
            try:
                version = float(head[2:])
            except ValueError:
                pass  # like Lua's tonumber failing: the string is the class name
            else:
                if version != version or abs(version) == float("inf"):
                    raise self.fail(f"class version {head!r:.40} is not a number")
                name = self.string(MAX_NAME, "a class name")
        if name in _STORAGES:
            return self._storage(name)
        if name in _TENSORS:
            return self._tensor(name, depth)
        if name in MODULE_CLASSES:
            fields = self.obj(depth + 1)
            if not isinstance(fields, dict):
                raise self.fail(f"{name} without a table of fields")
            return TorchObject(name, version, fields)
        raise self.fail(f"holds a torch class {name!r:.80}; only {_ALLOWED} are read")

    def _storage(self, name: str) -> Storage:
        numel = self.int64(f"the size of a {name}")
        dtype = StorageType(_STORAGES[name]).dtype()
        if numel < 0 or numel * dtype.itemsize > self.size - self.pos:
            raise self.fail(f"{name} claims {numel} elements, more than the file holds")
        storage = Storage(name, dtype, numel, self.pos)
        nbytes = numel * dtype.itemsize
        self.f.seek(nbytes, os.SEEK_CUR)  # read later, only if a tensor is built from it
        self.pos += nbytes
        return storage

    def _tensor(self, name: str, depth: int) -> Tensor:
        ndim = self.int32(f"the rank of a {name}")
        if not 0 <= ndim <= MAX_NDIM:
            raise self.fail(f"{name} with {ndim} dimensions (at most {MAX_NDIM})")
        size = self.int64s(ndim, f"the sizes of a {name}")
        stride = self.int64s(ndim, f"the strides of a {name}")
        offset = self.int64(f"the storage offset of a {name}") - 1
        storage = self.obj(depth + 1)
        if storage is not None and not (
            isinstance(storage, Storage) and storage.class_name == _TENSORS[name]
        ):
            raise self.fail(f"{name} whose storage is {_describe(storage)}")
        return Tensor(name, size, stride, offset, storage)

    # ------------------------------------------------------------ arrays
    def storage_array(self, storage: Storage) -> np.ndarray:
        """The elements of ``storage``, read once (checked against the file when parsed)."""
        key = id(storage)
        if key not in self._arrays:
            nbytes = storage.numel * storage.dtype.itemsize
            self._spend(nbytes)
            self.f.seek(storage.position)
            raw = self.f.read(nbytes)
            if len(raw) != nbytes:
                raise TorchFileError(f"{self.path}: truncated: a {storage.class_name} is short")
            little = storage.dtype.newbyteorder("<")
            self._arrays[key] = np.frombuffer(raw, little).astype(storage.dtype)
        return self._arrays[key]

    def tensor_array(self, tensor: Tensor, where: str) -> np.ndarray:
        """``tensor`` as a new array, its view checked against its storage."""
        if tensor.storage is None or not tensor.size:
            dtype = StorageType(_STORAGES[_TENSORS[tensor.class_name]]).dtype()
            return np.zeros((0,), dtype)
        data = self.storage_array(tensor.storage)
        out = build_view(data, tensor.offset, tensor.size, tensor.stride, f"{self.path}: {where}")
        self._spend(out.nbytes)
        return out

    def _spend(self, nbytes: int) -> None:
        self.budget -= nbytes
        if self.budget < 0:
            raise TorchFileError(f"{self.path}: tensors hold far more data than the file")

    def materialise(self, value: Any, memo: dict[int, Any], where: str = "the object") -> Any:
        """``value`` with every tensor and storage read into an array (shared ones once).

        The walk follows the file's order, so each object is first met where it was parsed
        (references only point back to finished objects): its depth is the parse's, bounded by
        ``MAX_DEPTH``, and later meetings are ``memo`` hits.
        """
        if not isinstance(value, (dict, TorchObject, Tensor, Storage)):
            return value
        key = id(value)
        if key in memo:
            return memo[key]
        if isinstance(value, Tensor):
            out: Any = self.tensor_array(value, where)
        elif isinstance(value, Storage):
            out = self.storage_array(value)
        elif isinstance(value, TorchObject):
            out = TorchObject(value.class_name, value.version, {})
            memo[key] = out
            out.fields.update(self.materialise(value.fields, memo, value.class_name))
        else:
            out = {}
            memo[key] = out  # before the values: a table reached twice is one dict
            for k, v in value.items():
                out[k] = self.materialise(v, memo, f"{where}.{k}")
        memo[key] = out
        return out


def _describe(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, (TorchObject, Tensor, Storage)):
        return f"a {value.class_name}"
    names = {bool: "a boolean", float: "a number", str: "a string", dict: "a table"}
    return names.get(type(value), type(value).__name__)


# ---------------------------------------------------------------- entry points
def looks_like_t7(path: str | os.PathLike) -> bool:
    """Whether the file starts like a Torch7 binary file holding a torch class or a table
    (a ``.t7`` renamed ``.pth``); ``.pth`` files start with a zip or pickle header."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head in (struct.pack("<i", TYPE_TORCH), struct.pack("<i", TYPE_TABLE))


def _read(path: str | os.PathLike, use) -> Any:
    """Parse the file, then call ``use(reader, object)`` with the file still open."""
    path = files.require_file(path)
    try:
        with open(path, "rb") as f:
            reader = _Reader(f, path, os.path.getsize(path))
            if reader.size == 0:
                raise reader.fail("empty file, not a Torch7 file")
            value = reader.obj(0)
            if reader.pos != reader.size:
                raise reader.fail(f"{reader.size - reader.pos} bytes after the object")
            return use(reader, value)
    except TorchFileError as e:
        raise TorchFileError(one_line(str(e))) from None
    except MALFORMED_FILE_ERRORS as e:
        raise TorchFileError(
            one_line(f"{path}: unreadable or truncated Torch7 file ({one_line(e)})", 400)
        ) from None


def load(path: str | os.PathLike) -> Any:
    """The object a ``.t7`` file holds, as Python values.

    nil is ``None``; numbers are ``float``; booleans ``bool``; strings ``str`` (UTF-8,
    undecodable bytes kept as surrogates); tables ``dict`` (keys ``str`` or ``float``); tensors
    and storages NumPy arrays (C-contiguous copies; an empty tensor has shape ``(0,)``); ``nn``
    modules ``TorchObject``. Objects the file shares are shared.

    Raises:
      FileNotFoundError: no such file.
      TorchFileError: one line naming the file, for a truncated or lying file, a Lua function,
        a class outside the allow-list, a loop, too deep nesting, or a tensor outside its
        storage.
    """
    return _read(path, lambda reader, value: reader.materialise(value, {}))


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The ``nn.Sequential`` model of a ``.t7`` file as a PyTorch-style state dict.

    Each convolution at (1-based) position ``i`` of the Sequential gives ``"<i - 1>.weight"``
    (OIHW; the old ``[nOutputPlane, nInputPlane * kH * kW]`` layout is reshaped, after checking
    it against the module's ``nInputPlane``, ``nOutputPlane``, ``kH`` and ``kW``) and
    ``"<i - 1>.bias"``; the other layers have no parameters. Only the convolutions' tensors are
    read from the file.

    Raises:
      FileNotFoundError: no such file.
      TorchFileError: as ``load``, and for a file that is not a flat ``nn.Sequential`` of the
        allowed layers, or a convolution whose fields and tensors disagree, that has no bias, a
        stride other than 1 or zero-padding.
    """
    return _read(path, _state_dict)


def _state_dict(reader: _Reader, model: Any) -> dict[str, np.ndarray]:
    path = reader.path
    if not (isinstance(model, TorchObject) and model.class_name == "nn.Sequential"):
        raise TorchFileError(f"{path}: holds {_describe(model)}, not an nn.Sequential model")
    modules = model.fields.get("modules")
    if not isinstance(modules, dict) or set(modules) != {
        float(i) for i in range(1, len(modules) + 1)
    }:
        raise TorchFileError(f"{path}: the nn.Sequential's modules are not a list")
    state = {}
    for i in range(len(modules)):
        layer = modules[float(i + 1)]
        if not (isinstance(layer, TorchObject) and layer.class_name in LAYER_CLASSES):
            raise TorchFileError(
                f"{path}: module {i} of the nn.Sequential is {_describe(layer)}; only flat "
                f"nn.Sequential models of {', '.join(sorted(LAYER_CLASSES))} are read"
            )
        if layer.class_name in CONV_CLASSES:
            state[f"{i}.weight"], state[f"{i}.bias"] = _conv_params(reader, layer, i)
    return state


def _conv_params(reader: _Reader, layer: TorchObject, i: int) -> tuple[np.ndarray, np.ndarray]:
    """The OIHW weight and the bias of the convolution at 0-based position ``i``."""
    where = f"{reader.path}: module {i} ({layer.class_name})"
    fields = layer.fields

    def number(name: str, default: int | None = None, low: int = 1) -> int:
        value = fields.get(name, default)
        if value is None:
            raise TorchFileError(f"{where} has no {name}")
        if (
            not (type(value) in (float, int) and float(value).is_integer() and low <= value)
            or value > _MAX_LAYER_SIZE
        ):
            raise TorchFileError(f"{where} has {name} {value!r:.40}")
        return int(value)

    n_in, n_out = number("nInputPlane"), number("nOutputPlane")
    k_h, k_w = number("kH"), number("kW")
    stride = (number("dH", 1), number("dW", 1))
    pad = (number("padH", 0, low=0), number("padW", 0, low=0))
    if stride != (1, 1) or pad != (0, 0):
        raise TorchFileError(
            f"{where} has stride {stride} and zero-padding {pad}; the AdaIN networks "
            "convolve with stride 1 after an nn.SpatialReflectionPadding"
        )
    tensors = []
    for name in ("weight", "bias"):
        tensor = fields.get(name)
        if not isinstance(tensor, Tensor):
            raise TorchFileError(f"{where}: its {name} is {_describe(tensor)}, not a tensor")
        tensors.append(reader.tensor_array(tensor, f"{i}.{name}"))
    weight, bias = tensors
    shape = (n_out, n_in, k_h, k_w)
    if weight.shape == (n_out, n_in * k_h * k_w):
        weight = weight.reshape(shape)  # the layout of older nn versions
    if weight.shape != shape:
        raise TorchFileError(
            f"{where}: weight has shape {weight.shape}, expected {shape} (nOutputPlane, "
            "nInputPlane, kH, kW)"
        )
    if bias.shape != (n_out,):
        raise TorchFileError(f"{where}: bias has shape {bias.shape}, expected ({n_out},)")
    return weight, bias
