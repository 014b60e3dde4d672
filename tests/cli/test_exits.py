"""``exits.run``: the one map from failures to exit statuses and ``error:`` lines."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from adain_jax.cli import exits
from adain_jax.io.messages import UsageError
from adain_jax.weights.download import DownloadError
from adain_jax.weights.workdir import CheckpointError

HINT = "try a smaller --size"


def _raise(error: BaseException):
    def body() -> int:
        raise error

    return body


@pytest.mark.parametrize(
    ("error", "status", "line"),
    [
        (UsageError("--alpha must be in [0, 1], got 2.0"), 2, "--alpha must be in [0, 1], got 2.0"),
        (FileNotFoundError(2, "No such file or directory", "a.png"), 1,
         "a.png: No such file or directory"),
        (ValueError("bad weights\n  in   decoder.pth"), 1, "bad weights in decoder.pth"),
        (DownloadError("host unreachable", "pass --vgg"), 1, "host unreachable; pass --vgg"),
        (CheckpointError("run: no checkpoints"), 1, "run: no checkpoints"),
        (MemoryError(), 1, f"out of memory ({HINT}, or a lower ADAIN_JAX_MAX_PIXELS)"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)  # fmt: skip
def test_each_failure_is_one_line_and_its_status(error, status, line, capsys):
    assert exits.run(_raise(error), HINT) == status
    assert capsys.readouterr().err == f"error: {line}\n"


def test_a_jax_runtime_error_gets_the_hint(capsys):
    jax = pytest.importorskip("jax")
    error = jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: out of memory\nwhile allocating")
    assert exits.run(_raise(error), HINT) == 1
    assert capsys.readouterr().err == (
        f"error: RESOURCE_EXHAUSTED: out of memory while allocating ({HINT})\n"
    )


def test_other_errors_are_bugs_and_keep_their_traceback():
    with pytest.raises(RuntimeError, match="a bug"):
        exits.run(_raise(RuntimeError("a bug")))
    with pytest.raises(TypeError):
        exits.run(_raise(TypeError("a bug")))


def test_the_status_of_a_body_that_returns(capsys):
    assert exits.run(lambda: 0) == 0 and exits.run(lambda: 3) == 3
    assert capsys.readouterr().err == ""


def test_warnings_are_one_line_each(capsys, monkeypatch):
    import warnings

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after
    exits.warnings_as_lines()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a.mp4: no audio:\n  no stream", UserWarning, stacklevel=1)
    assert capsys.readouterr().err == "warning: a.mp4: no audio: no stream\n"


def test_a_librarys_warning_names_the_file_being_read_and_shows_once(tmp_path, capsys, monkeypatch):
    import warnings

    import numpy as np
    from PIL import Image

    from adain_jax.io import images

    # A JPEG whose EXIF block says 5 entries but holds less than one: Pillow warns while
    # orienting it, without naming the file.
    exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00"
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(path, exif=exif)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after
    exits.warnings_as_lines()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        images.load_image(path)
        images.load_image(path)  # the same line again: not repeated
        warnings.warn("no file named here", UserWarning, stacklevel=1)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[1] == "warning: no file named here", err
    assert err[0].startswith(f"warning: {path}: Corrupt EXIF data"), err


def test_ctrl_c_in_a_gc_callback_still_interrupts(monkeypatch):
    import gc
    import sys
    import time

    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # restored after
    exits.keep_interrupts()
    installed = sys.unraisablehook
    exits.keep_interrupts()  # a second command in this process: not wrapped twice
    assert sys.unraisablehook is installed

    def callback(phase, info):
        if phase == "start":
            gc.callbacks.remove(callback)
            raise KeyboardInterrupt  # Python reports and drops it

    gc.callbacks.append(callback)
    with pytest.raises(KeyboardInterrupt):
        gc.collect()
        for _ in range(200):  # the signal, sent again, lands soon after
            time.sleep(0.01)


# A command stopped by a signal while it writes an output (``atomic_path``'s temporary file).
_STOPPED_WHILE_WRITING = """
import os, signal, sys, time
from adain_jax.cli import exits
from adain_jax.io.files import atomic_path

signal.signal(signal.SIGHUP, signal.SIG_DFL)  # as in a terminal, even if run under nohup

def body():
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_bytes(b"half an image")
        os.kill(os.getpid(), getattr(signal, sys.argv[2]))
        time.sleep(30)
    return 0

sys.exit(exits.run(body))
"""


@pytest.mark.parametrize(("name", "status"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_sigterm_and_sighup_stop_like_ctrl_c_leaving_no_temporary_file(tmp_path, name, status):
    out = tmp_path / "out" / "a_stylized_b.png"
    out.parent.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", _STOPPED_WHILE_WRITING, str(out), name],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (proc.returncode, proc.stderr) == (status, f"error: stopped by {name}\n")
    assert list(out.parent.iterdir()) == []  # the temporary file was removed


def test_a_signal_ignored_at_start_stays_ignored_and_handlers_come_back(monkeypatch):
    import os

    monkeypatch.setattr(signal, "signal", signal.signal)
    before = signal.getsignal(signal.SIGTERM)
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:

        def body() -> int:
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not before  # raises Stopped meanwhile
            os.kill(os.getpid(), signal.SIGHUP)  # ignored: the command goes on
            return 0

        assert exits.run(body) == 0
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        signal.signal(signal.SIGHUP, previous)
