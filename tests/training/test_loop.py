"""train.py end to end: resume == uninterrupted, signals, kill -9, devices, NaN, bad flags."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import chex
import jax
import numpy as np
import pytest
from PIL import Image

import adain_jax
from adain_jax.cli import train as train_cli
from adain_jax.training import checkpointing, data
from adain_jax.training import step as train_lib
from adain_jax.weights import convert
from adain_jax.weights.workdir import latest_decoder_params
from tests.training.test_step import BATCH, CROP, STEP_CONFIG

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folders(tmp_path_factory, torchvision_file):
    """Tiny content/style folders (smooth random PNGs, 40x48, plus a grayscale, an
    RGBA, a too-small and a corrupt file) and a random VGG-19 .pth."""
    root = tmp_path_factory.mktemp("train_data")
    rng = np.random.default_rng(0)
    for name in ("content", "style"):
        (root / name / "sub").mkdir(parents=True)
        for i in range(6):
            small = rng.integers(0, 256, (5, 6, 3)).astype(np.uint8)
            img = Image.fromarray(small).resize((48, 40), Image.BILINEAR)
            img.save(root / name / f"{i}.png")
        gray = rng.integers(0, 256, (36, 44)).astype(np.uint8)
        Image.fromarray(gray, "L").save(root / name / "sub" / "gray.png")
        rgba = rng.integers(0, 256, (44, 40, 4)).astype(np.uint8)
        Image.fromarray(rgba, "RGBA").save(root / name / "sub" / "rgba.png")
        Image.fromarray(small).save(root / name / "sub" / "tiny.jpg")  # 6x5: upscaled
        (root / name / "sub" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return root / "content", root / "style", torchvision_file[0]


def _flags(folders, workdir, max_steps, *extra) -> list[str]:
    content, style, vgg = folders
    return [
        f"--workdir={workdir}",
        f"--content-dir={content}",
        f"--style-dir={style}",
        f"--vgg={vgg}",
        f"--batch-size={BATCH}",
        "--image-size=40",
        f"--crop-size={CROP}",
        f"--max-steps={max_steps}",
        f"--lr={STEP_CONFIG['lr']}",
        f"--lr-decay={STEP_CONFIG['lr_decay']}",
        "--log-every=1",
        "--save-every=100",
        "--sample-every=0",
        "--eval-every=0",
        "--num-workers=0",
        "--no-progress",
        *extra,
    ]


def _losses(workdir) -> dict[int, tuple[float, float]]:
    out = {}
    for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "loss/total" in rec:
            out[rec["step"]] = (rec["loss/content"], rec["loss/style"])
    return out


def _steps(workdir) -> list[int]:
    return sorted(
        int(p.name) for p in (Path(workdir) / "checkpoints").iterdir() if p.name.isdigit()
    )


@pytest.fixture(scope="module")
def straight(folders, tmp_path_factory):
    """A 5-step run, never interrupted (1 device)."""
    workdir = tmp_path_factory.mktemp("straight") / "run"
    assert train_cli.main(_flags(folders, workdir, 5)) == 0
    return workdir


@pytest.mark.slow
def test_interrupted_and_resumed_equals_uninterrupted(
    folders, straight, tmp_path, capsys, monkeypatch
):
    # The runs share one compiled step (same shapes and dtype): at most one trace.
    traced = chex.assert_max_traces(train_lib.train_step, 1)
    monkeypatch.setattr(train_lib, "train_step", traced)
    resumed = tmp_path / "resumed"
    assert train_cli.main(_flags(folders, resumed, 2)) == 0  # "interrupted" after step 2
    assert _steps(resumed) == [2]
    assert train_cli.main(_flags(folders, resumed, 5)) == 0  # same command, more steps
    assert "resuming from step 2" in capsys.readouterr().err
    assert _steps(straight) == [5] and _steps(resumed) == [2, 5]
    a = latest_decoder_params(straight)["decoder"]
    b = latest_decoder_params(resumed)["decoder"]
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert _losses(straight) == _losses(resumed)
    # The workdir is usable at once: its latest decoder and the encoder it was trained with.
    params = adain_jax.load_params(resumed)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(params["decoder"]), b)
    want_encoder = convert.load_network(folders[2], "encoder")
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(params["encoder"]), want_encoder)
    assert sorted(_losses(resumed)) == [1, 2, 3, 4, 5]
    # The corrupt files were met (two epochs of 10 files per stream), skipped and counted.
    last = json.loads((straight / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["data/skipped_images"] >= 1
    # Each step's count is of its own batches (it was one batch ahead): the same pipeline's.
    content, style, _ = folders
    cfg = data.PipelineConfig(batch_size=BATCH, image_size=40, crop_size=CROP)
    with data.make_pair_iterator(content, style, cfg, shard_index=0, shard_count=1) as it:
        want = [next(it) and it.skipped for _ in range(5)]
    records = [json.loads(r) for r in (straight / "metrics.jsonl").read_text().splitlines()]
    got = [r["data/skipped_images"] for r in records if "data/skipped_images" in r]
    assert got == want and len(set(want)) > 1, (got, want)
    # Nothing to do once --max-steps is reached.
    assert train_cli.main(_flags(folders, resumed, 5)) == 0
    assert "nothing to do" in capsys.readouterr().out


# Saving every step reads each step's metrics before its save; every 3 steps, most
# steps' metrics are read only after the next step is dispatched.
@pytest.mark.slow
@pytest.mark.parametrize("save_every", [1, 3])
def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(folders, tmp_path, capsys, save_every):
    workdir = tmp_path / "nan"
    assert train_cli.main(_flags(folders, workdir, 2)) == 0
    capsys.readouterr()
    # Resume with an absurd learning rate: the params blow up, the loss goes non-finite.
    flags = _flags(folders, workdir, 8, "--lr=1e30", f"--save-every={save_every}")
    status = train_cli.main(flags)
    err = capsys.readouterr().err
    assert status == 1
    assert "non-finite loss at step" in err and "Last good checkpoint: step" in err
    good = _steps(workdir)
    abstract = train_lib.abstract_state(train_lib.make_mesh())
    with checkpointing.Checkpointer(workdir) as ckpt:
        for step in good:  # every checkpoint kept holds finite params
            state = ckpt.restore(abstract, step)[0]
            assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state))
    assert 2 <= max(good) < 8


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--crop-size=48"], "--crop-size 48 is larger than --image-size 40"),
        (["--batch-size=0"], "--batch-size 0: must be positive"),
        (["--lr=-1"], "--lr -1.0: must be positive"),
        (["--crop-size=20"], "multiple of 8"),
        (["--vgg=/nonexistent.pth"], "--vgg /nonexistent.pth: no such file"),
        (["--save-every=-5"], "--save-every -5: must be positive"),
        (["--eval-every=-1"], "--eval-every -1: must not be negative"),
        (["--sample-style-dir=/nonexistent"], "--sample-style-dir /nonexistent: no such directory"),
    ],
)
def test_bad_flags_fail_in_one_line(folders, tmp_path, capsys, extra, message):
    assert train_cli.main(_flags(folders, tmp_path / "w", 1, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "w").exists()  # failed before any work


def test_a_bad_stop_timeout_is_refused_before_training(folders, tmp_path, capsys, monkeypatch):
    """It was first read by the signal handler: Ctrl-C then crashed without saving."""
    monkeypatch.setenv("ADAIN_JAX_STOP_TIMEOUT", "2m")
    assert train_cli.main(_flags(folders, tmp_path / "w", 1)) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: ADAIN_JAX_STOP_TIMEOUT='2m': expected a positive number of seconds"
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_a_start_without_a_checkpoint_binds_nothing(folders, tmp_path, capsys):
    """A bad --init-decoder is read before anything is written; settings (and an encoder) a
    start left without reaching a checkpoint (out of memory at step 1) do not bind the next."""
    bad = tmp_path / "bad.pth"
    bad.write_text("not weights\n")
    workdir = tmp_path / "new" / "w"
    assert train_cli.main(_flags(folders, workdir, 1, f"--init-decoder={bad}")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --init-decoder: {bad}: ") and "\n" not in err
    assert not (tmp_path / "new").exists()  # nor the parent this run made
    workdir.mkdir(parents=True)
    left = {"fusion": "concat", "batch_size": 99, "init_decoder": str(bad), "encoder_sha256": "a"}
    (workdir / "config.json").write_text(json.dumps(left))
    (workdir / "encoder.safetensors").write_bytes(b"a stale or half-made encoder")
    (workdir / "checkpoints").mkdir()
    assert train_cli.main(_flags(folders, workdir, 1)) == 0
    saved = json.loads((workdir / "config.json").read_text())
    assert (saved["fusion"], saved["batch_size"], saved["init_decoder"]) == ("adain", BATCH, None)
    encoder = convert.load_network(workdir / "encoder.safetensors", "encoder")
    want = convert.load_network(folders[2], "encoder")
    np.testing.assert_array_equal(encoder["conv1_1"]["kernel"], want["conv1_1"]["kernel"])


@pytest.mark.slow
def test_empty_folder_and_changed_encoder(folders, tmp_path, capsys, port_weight_files):
    empty = tmp_path / "empty"
    empty.mkdir()
    flags = _flags(folders, tmp_path / "w", 1)
    flags[1] = f"--content-dir={empty}"
    assert train_cli.main(flags) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(empty) in err and "\n" not in err

    # Resuming with other encoder weights (a model-shaping setting) fails clearly.
    assert train_cli.main(_flags(folders, tmp_path / "run", 1)) == 0
    capsys.readouterr()
    flags = _flags(folders, tmp_path / "run", 2)
    flags[3] = f"--vgg={port_weight_files[0]}"
    assert train_cli.main(flags) == 2
    err = capsys.readouterr().err.strip()
    assert "resuming with a different encoder weights (--vgg)" in err and "\n" not in err


def _env(**extra) -> dict:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(ROOT),
        JAX_PLATFORMS="cpu",
        **extra,
    )
    return env


def _wait_for(predicate, proc, timeout=240.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"train.py exited early: {proc.communicate()}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("timed out")


@pytest.mark.slow
def test_sigterm_then_kill9_then_resume(folders, tmp_path):
    """The real program: SIGTERM saves and exits 143; kill -9 loses only the
    steps since the last checkpoint; re-running the command resumes each time."""
    workdir = tmp_path / "run"
    cache = tmp_path / "jax_cache"  # persistent compilation cache: compile once for 3 runs
    env = _env(JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    cmd = [sys.executable, str(ROOT / "train.py"), *_flags(folders, workdir, 1000)]
    cmd[cmd.index("--save-every=100")] = "--save-every=3"
    metrics = workdir / "metrics.jsonl"

    def logged() -> int:
        return len(metrics.read_text().splitlines()) if metrics.is_file() else 0

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: logged() >= 2, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    stopped = _steps(workdir)[-1]
    assert f"stopped at step {stopped}" in err and stopped >= 2

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _steps(workdir)[-1] >= stopped + 3, proc)
    time.sleep(0.5)
    proc.kill()  # kill -9
    proc.communicate()
    last = _steps(workdir)[-1]

    cmd[cmd.index("--max-steps=1000")] = f"--max-steps={last + 2}"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming from step {last}" in done.stderr
    assert _steps(workdir)[-1] == last + 2
    steps = [json.loads(x)["step"] for x in metrics.read_text().splitlines()]
    assert steps == list(range(1, last + 3))  # each step logged once despite kill -9
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert (workdir / "encoder.safetensors").is_file()
    config = json.loads((workdir / "config.json").read_text())
    assert config["crop_size"] == CROP and config["max_steps"] == last + 2


@pytest.mark.slow
def test_four_devices_match_one_device(folders, straight, tmp_path):
    """The same run on 4 forced CPU devices (batch sharded 4 ways) gives the same
    losses as on 1 device."""
    four = tmp_path / "four"
    env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=4")
    script = (
        "import jax, sys; assert jax.device_count() == 4, jax.devices(); "
        "from adain_jax.cli.train import main; args = sys.argv[1:]; "
        # A batch the 4 devices cannot split fails first, in one line, before any work.
        "bad = [a for a in args if not a.startswith('--batch-size')] + ['--batch-size=6']; "
        "assert main(bad) == 2; sys.exit(main(args))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *_flags(folders, four, 3)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "error: --batch-size 6: must be divisible by the 4 devices\n" in done.stderr
    a, b = _losses(straight), _losses(four)
    assert sorted(b) == [1, 2, 3]
    # Step 1: same params, only the reduction order differs. Later steps: Adam's first
    # updates are ~lr * sign(g), so reduction-order rounding in near-zero gradients flips
    # some of them (measured: < 2e-4 here, 8e-3 in the CI run of 2026-12-02).
    np.testing.assert_allclose(b[1], a[1], rtol=1e-5)
    for step in (2, 3):
        np.testing.assert_allclose(b[step], a[step], rtol=5e-2)
