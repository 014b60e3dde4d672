"""``adain_jax.cli.malloc_tuning``: the re-exec sets glibc's settings once, or leaves them alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from adain_jax.cli import malloc_tuning

SCRIPT = (
    "import os\n"
    "from adain_jax.cli import malloc_tuning\n"
    "print('start', flush=True)\n"
    "malloc_tuning.reexec_with_tuned_malloc()\n"
    "print([os.environ.get(k) for k in sorted(malloc_tuning.SETTINGS)])\n"
)


def _run(env_extra: dict[str, str]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in malloc_tuning.SETTINGS}
    env.update(env_extra)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()


@pytest.mark.skipif(not malloc_tuning.wanted(), reason="needs Linux with glibc")
def test_reexec_sets_the_settings_once():
    lines = _run({})
    # Started twice (the re-exec), the settings in force the second time.
    assert lines == ["start", "start", "['1', '0', '-1']"]


def test_opt_out_leaves_the_environment_alone():
    lines = _run({malloc_tuning.ENV_VAR: "default"})
    assert lines == ["start", "[None, None, None]"]
