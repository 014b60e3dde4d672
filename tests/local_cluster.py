"""JAX "clusters" of CPU processes on this machine, for the tests and the scaling benchmark.

Each process gets ``devices`` CPU devices; with more than one process they find each
other through the variables ``adain_jax.training.step.maybe_initialize_distributed``
reads (``JAX_COORDINATOR_ADDRESS`` on 127.0.0.1, ``JAX_NUM_PROCESSES``,
``JAX_PROCESS_ID``).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(
    base: Mapping[str, str], *, devices: int, processes: int, index: int, port: int
) -> dict[str, str]:
    """``base`` plus what process ``index`` of ``processes`` (coordinator on ``port``) with
    ``devices`` CPU devices needs."""
    env = dict(
        base,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
    )
    if processes > 1:
        env.update(
            JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
            JAX_NUM_PROCESSES=str(processes),
            JAX_PROCESS_ID=str(index),
        )
    return env
