"""The persistent compilation cache every command turns on (``adain_jax.cli.compile_cache``):
a second process loads what the first compiled; off, unwritable or full: a warning, never a
failure; concurrent processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adain_jax.cli import compile_cache

ROOT = Path(__file__).resolve().parents[2]

# Compiles one function and prints "<enable() result> <cache hits> <cache misses>".
PROGRAM = """
import sys
import jax.monitoring
from adain_jax.cli import compile_cache
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
where = compile_cache.enable()
import jax, jax.numpy as jnp
f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum(axis=0) * 3.0)
f(jnp.ones((64, 64))).block_until_ready()
hits = events.count("/jax/compilation_cache/cache_hits")
misses = events.count("/jax/compilation_cache/cache_misses")
print(where, hits, misses)
"""


def _run(env_update: dict[str, str], program: str = PROGRAM) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_update}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env["ADAIN_JAX_MIN_COMPILE_S"] = "0"
    return subprocess.run(
        [sys.executable, "-c", program], env=env, cwd=ROOT, capture_output=True, text=True
    )


@pytest.mark.slow
def test_a_second_process_loads_what_the_first_compiled(tmp_path):
    env = {"ADAIN_JAX_CACHE": str(tmp_path), "ADAIN_JAX_XLA_CACHE": ""}
    first = _run(env)
    assert first.returncode == 0, first.stderr
    where, hits, misses = first.stdout.split()
    assert Path(where) == tmp_path / "xla" and int(hits) == 0 and int(misses) > 0
    assert list((tmp_path / "xla").glob("*-cache"))
    second = _run(env)
    _, hits, misses = second.stdout.split()
    assert int(hits) > 0 and int(misses) == 0, second.stdout
    assert "warning" not in second.stderr


@pytest.mark.slow
def test_off_writes_nothing(tmp_path):
    done = _run({"ADAIN_JAX_CACHE": str(tmp_path), "ADAIN_JAX_XLA_CACHE": "off"})
    assert done.returncode == 0 and done.stdout.split()[0] == "None"
    assert not (tmp_path / "xla").exists()


@pytest.mark.slow
def test_a_cache_that_cannot_be_created_is_one_warning(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    done = _run({"ADAIN_JAX_XLA_CACHE": str(blocker / "xla")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "None"
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(blocker / "xla") in warnings[0]
    assert "ADAIN_JAX_XLA_CACHE=off" in warnings[0]


def test_a_failed_write_is_one_warning_and_no_partial_entry(tmp_path, capsys):
    folder = tmp_path / "xla"
    folder.mkdir()
    cache = compile_cache.FileCache(folder)
    cache.put("k1", b"abc")
    assert cache.get("k1") == b"abc" and cache.get("missing") is None
    folder.rename(tmp_path / "moved")
    folder.write_text("the disk is full")  # every write now fails
    cache.put("k2", b"def")
    cache.put("k3", b"ghi")
    assert not cache.writable and cache.get("k2") is None
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "cannot write" in err
    assert not list((tmp_path / "moved").glob("*.tmp"))


@pytest.mark.slow
def test_concurrent_processes_share_one_cache(tmp_path):
    env = {
        **os.environ,
        "ADAIN_JAX_CACHE": str(tmp_path),
        "ADAIN_JAX_XLA_CACHE": "",
        "ADAIN_JAX_MIN_COMPILE_S": "0",
    }
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROGRAM],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(3)
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and "warning" not in err, err
    assert not list((tmp_path / "xla").glob(".*.tmp"))
    after = _run({"ADAIN_JAX_CACHE": str(tmp_path), "ADAIN_JAX_XLA_CACHE": ""})
    _, hits, misses = after.stdout.split()
    assert int(hits) > 0 and int(misses) == 0
