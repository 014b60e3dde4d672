"""Read files out of a Qt binary resource file (``.rcc``), treating it as hostile input.

The format (Qt's ``rcc`` tool, ``qresource.cpp``): a 20-byte big-endian header
``"qres"``, version (1-3), offsets of the tree, the data and the names, then
(version 3) 4 bytes of flags. Tree nodes are 14 bytes (22 from version 2: an
8-byte modification time follows): name offset (4), flags (2), then a
directory's child count (4) and first child index (4), or a file's country (2),
language (2) and data offset (4). A name is a 2-byte length, a 4-byte hash
and UTF-16BE characters; a file's data a 4-byte size and the bytes, which
for a compressed file (flag 1) are Qt's ``qCompress``: a 4-byte uncompressed
size, then zlib. (Flag 4, zstd, is refused.)

Every offset and size is checked against the file before it is used, the tree
walk is bounded in depth and node count and refuses loops, and decompressed
data is bounded by ``MAX_FILE_BYTES``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

MAX_FILE_BYTES = 64 << 20  # one resource, decompressed
MAX_NODES = 100_000
MAX_DEPTH = 32
_DIRECTORY, _COMPRESSED, _ZSTD = 0x2, 0x1, 0x4


class RccError(ValueError):
    """Not a readable Qt resource file."""


class RccFile:
    """A Qt resource file held in memory: ``files()`` lists it, ``read(path)`` reads one."""

    def __init__(self, blob: bytes, name: str = "rcc") -> None:
        self.blob, self.name = blob, name
        if len(blob) < 20 or blob[:4] != b"qres":
            raise RccError(f"{name}: not a Qt resource file (no 'qres' header)")
        version, self.tree, self.data, self.names = struct.unpack(">IIII", blob[4:20])
        if version not in (1, 2, 3):
            raise RccError(f"{name}: unsupported Qt resource version {version}")
        self.node_size = 14 if version == 1 else 22
        for what, offset in (("tree", self.tree), ("data", self.data), ("names", self.names)):
            if offset >= len(blob):
                raise RccError(f"{name}: {what} offset {offset} past the end ({len(blob)} bytes)")
        self._entries: dict[str, tuple[int, int]] | None = None

    def _unpack(self, fmt: str, offset: int) -> tuple:
        end = offset + struct.calcsize(fmt)
        if offset < 0 or end > len(self.blob):
            raise RccError(f"{self.name}: a record at {offset} runs past the end of the file")
        return struct.unpack(fmt, self.blob[offset:end])

    def _node_name(self, offset: int) -> str:
        (length,) = self._unpack(">H", self.names + offset)
        start = self.names + offset + 6
        raw = self.blob[start : start + 2 * length]
        if len(raw) != 2 * length:
            raise RccError(f"{self.name}: a name runs past the end of the file")
        name = raw.decode("utf-16-be", errors="replace")
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise RccError(f"{self.name}: a resource name that is not a plain name")
        return name

    def _walk(self) -> dict[str, tuple[int, int]]:
        entries: dict[str, tuple[int, int]] = {}
        seen: set[int] = set()
        stack = [(0, "", 0)]
        while stack:
            index, prefix, depth = stack.pop()
            if index in seen or len(seen) >= MAX_NODES or depth > MAX_DEPTH:
                raise RccError(f"{self.name}: the resource tree loops or is too large")
            seen.add(index)
            offset = self.tree + index * self.node_size
            name_offset, flags = self._unpack(">IH", offset)
            name = self._node_name(name_offset) if index else ""
            path = f"{prefix}/{name}" if index else ""
            if flags & _DIRECTORY:
                count, first = self._unpack(">II", offset + 6)
                if count > MAX_NODES:
                    raise RccError(f"{self.name}: a directory claims {count} entries")
                stack.extend((child, path, depth + 1) for child in range(first, first + count))
            else:
                (data_offset,) = self._unpack(">I", offset + 10)
                entries[path] = (flags, data_offset)
        return entries

    def files(self) -> list[str]:
        """Every file's path (``/a/b/name``), sorted."""
        if self._entries is None:
            self._entries = self._walk()
        return sorted(self._entries)

    def read(self, path: str) -> bytes:
        """The bytes of one file, decompressed; ``KeyError`` if there is none."""
        self.files()
        flags, data_offset = self._entries[path]
        (size,) = self._unpack(">I", self.data + data_offset)
        start = self.data + data_offset + 4
        if size > len(self.blob) - start:
            raise RccError(f"{self.name}: {path} claims {size} bytes past the end of the file")
        raw = self.blob[start : start + size]
        if flags & _ZSTD:
            raise RccError(f"{self.name}: {path} is zstd-compressed (not supported)")
        if not flags & _COMPRESSED:
            return raw
        if len(raw) < 4:
            raise RccError(f"{self.name}: {path} is compressed but holds no size")
        (claimed,) = struct.unpack(">I", raw[:4])
        if claimed > MAX_FILE_BYTES:
            raise RccError(f"{self.name}: {path} claims {claimed} bytes uncompressed")
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(raw[4:], claimed + 1)
        except zlib.error as e:
            raise RccError(f"{self.name}: {path} does not decompress ({e})") from None
        if len(out) != claimed or inflater.unconsumed_tail:
            raise RccError(f"{self.name}: {path} decompresses to another size than it claims")
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self.files())
