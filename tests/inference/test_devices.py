"""Inference batches use every local device: 4 forced CPU devices in a subprocess.

``XLA_FLAGS=--xla_force_host_platform_device_count=4`` must be set before JAX starts, so
the check runs in its own Python process: the batch paths of ``inference.backend``
(``stylize_padded``: directory buckets and batch jobs; ``stylize_exact``: video frames)
must split each call over the 4 devices and give, per image, what the one-device
``controls.stylize_with_stats`` gives for that image alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import types
import jax
import numpy as np
from adain_jax.controls import encode_style, stylize_with_stats
from adain_jax.inference import backend
from adain_jax.weights.params import init_params

assert jax.local_device_count() == 4 and backend.local_mesh().size == 4
params = init_params(jax.random.key(0))
rng = np.random.default_rng(0)
style = rng.random((32, 32, 3), dtype=np.float32)
stats = encode_style(params, style)
calls = []
real = backend.stylize_checked

def spy(params, content, *args, **kwargs):
    calls.append((content.shape[0], len(content.sharding.device_set)))
    return real(params, content, *args, **kwargs)

backend.stylize_checked = spy
plan = types.SimpleNamespace(
    alpha=0.8, weights=None, labels=None, dtype="float32", batch_size=8, bucket=16,
    per_call=lambda h, w: 8,
)
# A directory bucket / batch job: 3 images of different sizes -> one call of 4 (padded).
contents = [rng.random(s + (3,), dtype=np.float32) for s in [(32, 40), (25, 36), (30, 48)]]
got = backend.stylize_padded(params, contents, stats, plan)
assert calls == [(4, 4)], calls
for c, g in zip(contents, got):
    want = np.asarray(stylize_with_stats(params, c, stats, 0.8))
    assert g.shape == want.shape, (g.shape, want.shape)
    np.testing.assert_allclose(g, want, atol=2e-5)
# Video frames: 5 same-size frames -> one call of 8 (5 rounded up to the 4 devices).
calls.clear()
frames = rng.random((5, 24, 32, 3), dtype=np.float32)
got = backend.stylize_exact(params, frames, stats, plan)
assert calls == [(8, 4)], calls
want = np.asarray(stylize_with_stats(params, frames, stats, 0.8))
assert got.shape == want.shape
np.testing.assert_allclose(got, want, atol=2e-5)
print("ok")
"""


@pytest.mark.slow
def test_batches_are_split_over_four_local_devices_with_one_device_outputs():
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("ok")
