"""TensorBoard event files as TensorBoard reads them (TFRecord framing, ``Event`` protos)."""

from __future__ import annotations

import struct
from pathlib import Path

from tensorboardX import event_file_writer
from tensorboardX.proto import event_pb2

from adain_jax.training import monitoring


def _scalars(folder: Path) -> list[tuple[int, str, float]]:
    """(step, tag, value) of every scalar in every event file of ``folder``."""
    found = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):  # record: u64 length, u32 crc, payload, u32 crc
            (length,) = struct.unpack_from("<Q", data, at)
            event = event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            found += [(event.step, v.tag, v.simple_value) for v in event.summary.value]
    return sorted(found)


def test_a_run_resumed_within_the_same_second_keeps_the_earlier_events(tmp_path, monkeypatch):
    monkeypatch.setattr(event_file_writer.time, "time", lambda: 1_700_000_000.0)
    first = monitoring.MetricsWriter(tmp_path)
    first.scalars(1, {"loss": 2.0})
    first.close()
    second = monitoring.MetricsWriter(tmp_path, resume_step=1)
    second.scalars(2, {"loss": 1.5})
    second.close()
    assert _scalars(tmp_path / monitoring.TENSORBOARD_DIR) == [(1, "loss", 2.0), (2, "loss", 1.5)]
