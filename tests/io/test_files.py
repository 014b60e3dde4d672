"""adain_jax.io.files: atomic writes with the umask's permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

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


def test_every_writer_of_the_package_uses_the_helper():
    """No module but io/files.py makes its own temporary files."""
    package = Path(files.__file__).parents[1]
    offenders = []
    for dirpath, _, names in os.walk(package):
        for name in names:
            path = os.path.join(dirpath, name)
            if name.endswith(".py") and not path.endswith(os.path.join("io", "files.py")):
                with open(path) as f:
                    if "mkstemp" in f.read():
                        offenders.append(path)
    assert offenders == []
