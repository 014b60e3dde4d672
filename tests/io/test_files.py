"""adain_jax.io.files: atomic writes with the umask's permissions; readers take regular files."""

from __future__ import annotations

import os
import stat

import pytest

from adain_jax.io import files


@pytest.fixture(params=[0o022, 0o027, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_open_writes_with_umask_permissions(tmp_path, umask):
    target = tmp_path / "sub" / "config.json"
    with files.atomic_open(target) as f:
        f.write("{}\n")
    assert target.read_text() == "{}\n"
    assert _mode(target) == 0o666 & ~umask
    assert sorted(os.listdir(target.parent)) == ["config.json"]  # no temporary left


def test_failed_write_leaves_destination_untouched(tmp_path):
    target = tmp_path / "metrics.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), files.atomic_open(target) as f:
        f.write("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["metrics.jsonl"]


def test_writing_onto_a_directory_names_it_not_the_temporary(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(IsADirectoryError) as info, files.atomic_open(target) as f:
        f.write("x")
    assert info.value.filename == str(target)
    assert os.listdir(tmp_path) == ["out"]  # the temporary is removed


def test_downloads_and_their_digest_memos_get_umask_permissions(tmp_path, umask):
    """The writers that do not write through ``atomic_open``/``atomic_path`` (a download
    renamed into place after its checks; the cache's sha256 memo) give the umask's
    permissions, not mkstemp's 0600, and leave no temporary file."""
    from adain_jax.weights import download, pretrained

    source = tmp_path / "served" / "decoder.pth"
    source.parent.mkdir()
    source.write_bytes(b"weights")
    cache = tmp_path / "cache"
    got = download.fetch(source.as_uri(), cache / "downloads" / "decoder.pth", progress=False)
    assert got.read_bytes() == b"weights" and _mode(got) == 0o666 & ~umask
    pretrained.source_digest(got, cache / "converted")
    memo = cache / "converted" / "decoder.pth.sha256"
    assert _mode(memo) == 0o666 & ~umask
    assert sorted(p.name for p in cache.rglob("*")) == [
        "converted", "decoder.pth", "decoder.pth.sha256", "downloads",
    ]  # fmt: skip


def test_a_name_of_255_bytes_can_be_written(tmp_path):
    # The temporary name must fit the file system's 255-byte limit too.
    for name in ("a" * 251 + ".png", "é" * 125 + ".png"):  # 255 bytes each
        path = tmp_path / name
        with files.atomic_open(path, "wb") as f:
            f.write(b"x")
        assert path.read_bytes() == b"x" and os.listdir(tmp_path) == [name]
        path.unlink()


def _readers():
    from adain_jax.io import images, video
    from adain_jax.weights import convert, numpy_pickle, safetensors_io, torch7, torch_pickle

    return {
        "image": images.load_image,
        "video": video.probe,
        "pth": torch_pickle.load_state_dict,
        "numpy pickle": numpy_pickle.load_array_tree,
        "t7": torch7.load,
        "safetensors": safetensors_io.load,
        "any torch file": convert.load_torch_weights,  # sniffs for .t7 first
    }


@pytest.mark.parametrize("kind", list(_readers()))
def test_every_reader_refuses_a_named_pipe_at_once(tmp_path, kind):
    """A named pipe with a file's name: refused as not a regular file, never opened (opening
    it waits for a writer: FFmpeg blocked on one until killed)."""
    import threading

    if kind == "video":
        pytest.importorskip("av")
    fifo = tmp_path / "weights.pth"
    os.mkfifo(fifo)
    raised = []
    reader = threading.Thread(target=lambda: _call(_readers()[kind], fifo, raised), daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # blocked in open(): unblock it with a writer, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail(f"the {kind} reader waited on a named pipe")
    assert raised == [f"{fifo}: not a regular file (a named pipe, socket or device)"]


def _call(read, path, raised: list) -> None:
    try:
        read(path)
    except (OSError, ValueError) as e:
        raised.append(str(e))


def test_a_link_to_nothing_is_named_as_such(tmp_path):
    loop = tmp_path / "a.pth"
    os.symlink(tmp_path / "b.pth", loop)
    os.symlink(loop, tmp_path / "b.pth")  # a.pth -> b.pth -> a.pth
    dangling = tmp_path / "c.pth"
    os.symlink(tmp_path / "gone.pth", dangling)
    for path in (loop, dangling):
        with pytest.raises(FileNotFoundError, match="a symbolic link to nothing"):
            files.require_file(path)
    with pytest.raises(FileNotFoundError, match=r"missing.pth: no such file$"):
        files.require_file(tmp_path / "missing.pth")
