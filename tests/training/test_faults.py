"""Training under real faults: a full disk, two runs on one workdir, damaged checkpoints,
damaged logs, an unwritable cache, a shutdown that hangs. Each ends with one line and
its own exit status, loses nothing written before the fault, and resumes exactly."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from adain_jax.cli import train as train_cli
from adain_jax.training import checkpointing, faults, monitoring
from adain_jax.weights.workdir import latest_decoder_params, newest_that_restores
from tests.training.test_loop import _env, _flags, _losses, _steps, folders, straight

__all__ = ["folders", "straight"]  # fixtures shared with test_loop


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def small_disk(tmp_path):
    """A 70 MB tmpfs (room for the encoder and one checkpoint of the real-size decoder,
    not two); yields ``(mount_point, grow)``. Skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=70m", f"adain-{uuid.uuid4().hex[:8]}", str(mount)],
        capture_output=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.decode().strip()})")

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=400m", str(mount)], check=True)

    yield mount, grow
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_disk_full_ends_the_run_at_once_and_the_same_command_resumes(
    folders, straight, small_disk, capsys
):
    mount, grow = small_disk
    workdir = mount / "run"
    flags = _flags(folders, workdir, 5, "--save-every=2")
    start = time.monotonic()
    assert train_cli.main(flags) == faults.EXIT_IO
    assert time.monotonic() - start < 120
    line = _one_error_line(capsys.readouterr().err)
    assert "No space left on device" in line and str(workdir) in line
    assert _steps(workdir) == [2]  # the checkpoint before the fault is intact

    grow()  # space freed: the same command resumes and ends as if never interrupted
    assert train_cli.main(flags) == 0
    assert "resuming from step 2" in capsys.readouterr().err
    assert _losses(workdir) == _losses(straight)


@pytest.mark.slow
def test_a_failing_log_write_stops_the_run_with_one_line(folders, tmp_path, capsys, monkeypatch):
    calls = {"n": 0}
    real_flush = monitoring._EventFile.flush

    def flush_until_full(self):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device", "events.out.tfevents")
        real_flush(self)

    monkeypatch.setattr(monitoring._EventFile, "flush", flush_until_full)
    workdir = tmp_path / "run"
    assert train_cli.main(_flags(folders, workdir, 8, "--save-every=2")) == faults.EXIT_IO
    line = _one_error_line(capsys.readouterr().err)
    assert "cannot write the metrics" in line and "No space left on device" in line
    assert _steps(workdir) == [2]


@pytest.mark.slow
def test_a_second_run_on_a_live_workdir_stops_at_once(folders, tmp_path, capsys):
    workdir = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from adain_jax.training.lock import WorkdirLock; "
            "WorkdirLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)",
            str(workdir),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        assert train_cli.main(_flags(folders, workdir, 2)) == faults.EXIT_BUSY
        assert time.monotonic() - start < 5
        line = _one_error_line(capsys.readouterr().err)
        assert f"pid {holder.pid} on " in line and "already in use" in line
        assert sorted(p.name for p in workdir.iterdir()) == [".lock"]  # nothing else written
    finally:
        holder.kill()
        holder.wait()
    assert train_cli.main(_flags(folders, workdir, 1)) == 0  # the lock died with its holder


def _damage(step_dir: Path, kind: str) -> None:
    state = step_dir / "state"
    data_files = sorted(
        (p for p in state.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    if kind == "deleted-file":
        data_files[-1].unlink()
    elif kind == "truncated-file":
        big = data_files[-1]
        big.write_bytes(big.read_bytes()[: big.stat().st_size // 2])
    elif kind == "no-metadata":
        (state / "_METADATA").unlink()
    else:  # the whole state item gone
        shutil.rmtree(state)


@pytest.fixture(scope="module")
def four_steps(folders, tmp_path_factory):
    """A 4-step run with checkpoints at steps 2 and 4."""
    workdir = tmp_path_factory.mktemp("four") / "run"
    assert train_cli.main(_flags(folders, workdir, 4, "--save-every=2")) == 0
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["deleted-file", "truncated-file", "no-metadata", "no-state"])
def test_damaged_latest_checkpoint_falls_back_to_the_previous(
    folders, straight, four_steps, tmp_path, kind, capsys
):
    workdir = tmp_path / "run"
    shutil.copytree(four_steps, workdir)
    _damage(workdir / "checkpoints" / "4", kind)

    # Inference reads the newest decoder that restores and says why it skipped one,
    # leaving the workdir alone. (A damage may spare the decoder (optimizer state, metadata):
    # then checkpoint 4 still gives its decoder.)
    decoder = latest_decoder_params(workdir)["decoder"]
    skipped = "checkpoint 4" in capsys.readouterr().err
    assert skipped or kind != "no-state"
    assert (workdir / "checkpoints" / "4").exists()
    two = tmp_path / "two"
    shutil.copytree(four_steps, two)
    shutil.rmtree(two / "checkpoints" / "4")
    expected = latest_decoder_params(two if skipped else four_steps)["decoder"]
    for layer in expected:
        np.testing.assert_array_equal(decoder[layer]["kernel"], expected[layer]["kernel"])

    # Training moves it aside (never deletes it) and continues from step 2 exactly.
    assert train_cli.main(_flags(folders, workdir, 5, "--save-every=2")) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("warning: checkpoint 4")]
    assert len(warning) == 1 and "moved aside" in warning[0]
    assert "resuming from step 2" in err
    assert len(list((workdir / checkpointing.DAMAGED).iterdir())) == 1
    assert _losses(workdir) == _losses(straight)


@pytest.mark.slow
def test_no_checkpoint_restores_is_one_line_and_its_own_status(four_steps, folders, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(four_steps, workdir)
    for step in (2, 4):
        _damage(workdir / "checkpoints" / str(step), "no-state")
    proc = subprocess.run(
        [sys.executable, "-m", "adain_jax", "train", *_flags(folders, workdir, 5)],
        capture_output=True,
        text=True,
        env=_env(ADAIN_JAX_MALLOC="default"),
    )
    assert proc.returncode == faults.EXIT_NO_CHECKPOINT, proc.stderr
    line = _one_error_line(proc.stderr)
    assert "none of the checkpoints [2, 4] restores" in line


def test_damaged_bytes_in_metrics_are_dropped_with_a_warning(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(
        b'{"step": 1, "loss/total": 2.0}\n'
        b'{"step": 2, "loss/\xff\xfe": 1.0}\n'  # invalid UTF-8
        b'{"step": 3, "loss/total"'  # cut by kill -9
        b'\n{"step": 3, "loss/total": 1.5}\n'
    )
    with pytest.warns(UserWarning, match="dropped 2 damaged line"):
        monitoring.truncate_jsonl(path, after_step=2)
    assert monitoring.read_jsonl(path) == [{"step": 1, "loss/total": 2.0}]


def test_an_unwritable_cache_is_one_line(folders, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("ADAIN_JAX_CACHE", str(blocker / "cache"))
    flags = [f for f in _flags(folders, tmp_path / "run", 1) if not f.startswith("--vgg")]
    assert train_cli.main(flags) == faults.EXIT_IO
    line = _one_error_line(capsys.readouterr().err)
    assert "not_a_dir" in line and "Not a directory" in line


def test_a_stuck_shutdown_is_forced_to_end(tmp_path):
    """After SIGTERM the process ends within the bound even if the loop never returns."""
    code = (
        "import os, signal, time\n"
        "from adain_jax.training.faults import Stopper\n"
        "with Stopper():\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(60)  # a loop stuck in a hung write\n"
    )
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_env(ADAIN_JAX_STOP_TIMEOUT="1"),
        timeout=30,
    )
    assert proc.returncode == 143
    assert time.monotonic() - start < 15
    assert "not stopped after 1 s; exiting without saving" in proc.stderr


@pytest.mark.parametrize("ignored", [False, True])
def test_sighup_stops_training_like_sigterm_unless_started_ignored(ignored):
    """A closed terminal saves and stops the run (129); under ``nohup`` it runs on."""
    code = (
        "import os, signal, sys, time\n"
        "from adain_jax.training.faults import EXIT_SIGNAL, Stopper\n"
        "ignore = sys.argv[1] == 'True'  # as nohup does; else as in a terminal\n"
        "signal.signal(signal.SIGHUP, signal.SIG_IGN if ignore else signal.SIG_DFL)\n"
        "with Stopper() as stopper:\n"
        "    os.kill(os.getpid(), signal.SIGHUP)\n"
        "    time.sleep(0.5)\n"
        "print(stopper.signum and EXIT_SIGNAL[stopper.signum])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(ignored)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("None" if ignored else "129")
    assert ("SIGHUP: saving a checkpoint" in proc.stderr) is not ignored


@pytest.mark.parametrize(
    "short",
    [MemoryError(), OSError(errno.EMFILE, "Too many open files"),
     RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4096 bytes")],
)  # fmt: skip
def test_running_short_while_restoring_is_not_damage(short):
    """Each checkpoint would fail the same way: moving them all aside would restart at step 0."""
    damaged = []

    def restore(step):
        if step == 3:
            raise ValueError("checksum mismatch")  # damage: reported, the older one tried
        raise RuntimeError("restore failed") from short

    with pytest.raises(RuntimeError, match="restore failed"):
        newest_that_restores([1, 2, 3], restore, lambda step, why: damaged.append(step))
    assert damaged == [3]


def test_the_reason_a_checkpoint_is_skipped_reads_without_python_reprs():
    """Orbax's text embeds reprs (cut at the line limit, a warning ended in the middle of
    ``<bound method pybind11_detail_...``); they are replaced by ``<...>``."""
    why = []

    def restore(step):
        if step == 3:
            raise ValueError(
                "Failed to restore: <bound method pybind11_detail_function_record_v1_system_"
                "libstdcpp_gxx_abi_1xxx.read of <tensorstore.Spec object at 0x7f3a>> missing"
            )
        return "state"

    assert newest_that_restores([2, 3], restore, lambda step, reason: why.append(reason)) == (
        2,
        "state",
    )
    assert why == ["Failed to restore: <...> missing"]
