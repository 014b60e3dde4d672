"""scripts/qt_rcc.py against Qt resource files written here in Qt's format, and hostile ones."""

from __future__ import annotations

import struct
import sys
import time
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from qt_rcc import RccError, RccFile  # noqa: E402


def write_rcc(files: dict[str, tuple[bytes, bool]], version: int = 3) -> bytes:
    """A Qt resource file (``rcc -binary`` layout) holding ``{"/a/b": (data, compress)}``,
    written independently of the reader from Qt's ``rcc.cpp`` description."""
    tree: dict = {}
    for path, value in files.items():
        node = tree
        *dirs, leaf = path.strip("/").split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[leaf] = value
    names, data = bytearray(), bytearray()
    name_at: dict[str, int] = {}

    def name_offset(name: str) -> int:
        if name not in name_at:
            name_at[name] = len(names)
            encoded = name.encode("utf-16-be")
            names.extend(struct.pack(">HI", len(name), 0) + encoded)
        return name_at[name]

    nodes: list[bytes | None] = [None]  # the root first; children get consecutive indices
    queue = [(0, "", tree)]
    while queue:
        index, name, children = queue.pop(0)
        first = len(nodes)
        items = sorted(children.items())
        nodes.extend([None] * len(items))
        flags = 2
        nodes[index] = struct.pack(">IHII", name_offset(name) if index else 0, flags,
                                   len(items), first)  # fmt: skip
        for k, (child, value) in enumerate(items):
            if isinstance(value, dict):
                queue.append((first + k, child, value))
                continue
            payload, compress = value
            if compress:
                payload = struct.pack(">I", len(payload)) + zlib.compress(payload)
            offset = len(data)
            data.extend(struct.pack(">I", len(payload)) + payload)
            nodes[first + k] = struct.pack(">IHHHI", name_offset(child), int(compress), 0, 0,
                                           offset)  # fmt: skip
    pad = b"" if version == 1 else b"\0" * 8
    tree_bytes = b"".join(n + pad for n in nodes)
    header_len = 20 + (4 if version >= 3 else 0)
    data_at = header_len
    names_at = data_at + len(data)
    tree_at = names_at + len(names)
    head = b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at)
    if version >= 3:
        head += struct.pack(">I", 0)
    return head + bytes(data) + bytes(names) + tree_bytes


FILES = {
    "/res/img/a.webp": (b"RIFF-not-really-webp" * 10, False),
    "/res/img/b.png": (bytes(range(256)) * 4, True),
    "/res/README": (b"Files: a.webp\nLicense: CC0-1.0\n", True),
}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_reads_what_was_written(version):
    rcc = RccFile(write_rcc(FILES, version), "t.rcc")
    assert rcc.files() == sorted(FILES)
    for path, (payload, _) in FILES.items():
        assert rcc.read(path) == payload


def test_every_truncation_is_one_clean_error():
    blob = write_rcc(FILES)
    for cut in range(len(blob)):
        try:
            rcc = RccFile(blob[:cut], "cut.rcc")
            for path in rcc.files():
                rcc.read(path)
        except (RccError, KeyError) as e:
            assert "\n" not in str(e)


def test_lying_sizes_and_loops_are_refused():
    blob = bytearray(write_rcc({"/a": (b"x" * 100, True)}))
    rcc = RccFile(bytes(blob), "ok.rcc")
    (_flags, data_offset) = rcc._walk()["/a"]
    at = rcc.data + data_offset
    claimed = bytearray(blob)
    claimed[at + 4 : at + 8] = struct.pack(">I", 1 << 31)  # uncompressed size: 2 GiB
    with pytest.raises(RccError, match="claims"):
        RccFile(bytes(claimed), "bomb.rcc").read("/a")
    long = bytearray(blob)
    long[at : at + 4] = struct.pack(">I", 1 << 30)  # stored size past the end
    with pytest.raises(RccError, match="past the end"):
        RccFile(bytes(long), "long.rcc").read("/a")
    # The root directory naming itself as its only child: a loop.
    loop = bytearray(blob)
    tree = rcc.tree
    loop[tree + 6 : tree + 14] = struct.pack(">II", 1, 0)
    start = time.perf_counter()
    with pytest.raises(RccError, match="loops"):
        RccFile(bytes(loop), "loop.rcc").files()
    assert time.perf_counter() - start < 1.0
    with pytest.raises(RccError, match="not a Qt resource"):
        RccFile(b"PK\x03\x04" + bytes(40), "zip.rcc")


def test_a_directory_claiming_millions_of_entries_is_refused():
    blob = bytearray(write_rcc({"/a": (b"x", False)}))
    tree = struct.unpack(">I", blob[8:12])[0]
    blob[tree + 6 : tree + 10] = struct.pack(">I", 50_000_000)
    with pytest.raises(RccError, match="claims|loops|past the end"):
        RccFile(bytes(blob), "many.rcc").files()
