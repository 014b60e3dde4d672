"""``--temporal``'s options, parsed without JAX (the flags are checked before JAX is
imported); the streaming itself is ``adain_jax.inference.temporal``."""

from __future__ import annotations

import dataclasses

FLAG = "--temporal"
# The default of --temporal. Off: flow blending (the mode that helps, docs/video.md) needs
# an optional extra (OpenCV) and costs ~8% of style strength; a default that changed with
# what is installed would make the same command give different videos.
DEFAULT_MODE = "off"
DEFAULT_DECAY = 0.9  # stats: weight of the past frames' statistics
DEFAULT_BLEND = 0.4  # flow: share of the warped previous output in the visible pixels
CHOICES = "off, stats[=DECAY], flow[=WEIGHT] or stats,flow"


class TemporalError(ValueError):
    """A ``--temporal`` mode that cannot run here (missing extra, unsupported job)."""


@dataclasses.dataclass(frozen=True)
class TemporalOptions:
    """What ``--temporal`` asks for.

    Attributes:
      decay: content-statistics smoothing, the weight of the past in [0, 1); 0: off.
      blend: flow-guided blending, the previous output's share in [0, 1); 0: off.
    """

    decay: float = 0.0
    blend: float = 0.0

    @property
    def stats(self) -> bool:
        return self.decay > 0

    @property
    def flow(self) -> bool:
        return self.blend > 0

    @property
    def active(self) -> bool:
        return self.stats or self.flow

    def describe(self) -> str:
        parts = [f"stats={self.decay:g}"] * self.stats + [f"flow={self.blend:g}"] * self.flow
        return ",".join(parts) or "off"


OFF = TemporalOptions()


def parse_temporal(text: str | None) -> TemporalOptions:
    """``--temporal`` text -> ``TemporalOptions``; ``ValueError`` with one line otherwise.

    ``off`` (or ``None``), or a comma list of ``stats[=DECAY]`` (DECAY in [0, 1), default
    ``DEFAULT_DECAY``) and ``flow[=WEIGHT]`` (WEIGHT in [0, 1), default ``DEFAULT_BLEND``).
    """
    if text is None or text.strip().lower() == "off":
        return OFF
    values = {"stats": 0.0, "flow": 0.0}
    defaults = {"stats": DEFAULT_DECAY, "flow": DEFAULT_BLEND}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        name = name.strip().lower()
        if name not in values:
            raise ValueError(f"{FLAG} {text!r}: unknown mode {name!r}; use {CHOICES}")
        if values[name]:
            raise ValueError(f"{FLAG} {text!r}: {name} given twice")
        try:
            number = float(value) if sep else defaults[name]
        except ValueError:
            raise ValueError(f"{FLAG} {text!r}: {name}={value!r} is not a number") from None
        if not 0.0 < number < 1.0:  # also rejects nan
            raise ValueError(f"{FLAG} {text!r}: {name} must be in (0, 1), got {value}")
        values[name] = number
    return TemporalOptions(decay=values["stats"], blend=values["flow"])
