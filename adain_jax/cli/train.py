"""Command line of ``python train.py``: flags, their validation, the run.

Every flag is checked before any work starts; a bad one ends the program
with one line on stderr naming it, and exit status 2. Exit statuses:
0 finished (or already past ``--max-steps``), 1 non-finite loss (the last
good checkpoint is kept), 2 bad flags or inputs, 130 / 143 stopped by
SIGINT / SIGTERM after saving a checkpoint (re-run the same command to resume).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from adain_jax.training import step as train_lib
from adain_jax.training.loop import EXIT_USAGE, RunConfig, RunError

_POSITIVE = (
    "batch_size",
    "max_steps",
    "crop_size",
    "save_every",
    "keep",
    "log_every",
    "num_samples",
)
_NON_NEGATIVE = ("image_size", "sample_every", "eval_every", "num_workers", "seed", "lr_decay")
_NON_NEGATIVE += ("style_weight", "content_weight")


def build_parser() -> argparse.ArgumentParser:
    d = RunConfig(workdir="", content="", style="")
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train an AdaIN decoder (Huang & Belongie 2017) with the paper's defaults. "
        "Re-running the same command resumes from the latest checkpoint in --workdir.",
    )
    p.add_argument("--workdir", required=True, help="run directory (checkpoints, logs, samples)")
    content = p.add_mutually_exclusive_group(required=True)
    content.add_argument("--content-dir", help="folder of content images (searched recursively)")
    content.add_argument("--content-tfds", metavar="NAME[:SPLIT]", help="e.g. coco/2017:train")
    style = p.add_mutually_exclusive_group(required=True)
    style.add_argument("--style-dir", help="folder of style images (searched recursively)")
    style.add_argument("--style-tfds", metavar="NAME[:SPLIT]", help="a TFDS image dataset")
    p.add_argument(
        "--vgg",
        help="encoder weights: torchvision vgg19 .pth, vgg_normalised.pth or converted "
        ".safetensors (default: torchvision's VGG-19, downloaded once)",
    )
    add = p.add_argument
    add("--batch-size", type=int, default=d.batch_size, help="global batch (pairs per step)")
    add("--max-steps", type=int, default=d.max_steps, help="may be raised on resume")
    add(
        "--image-size",
        type=int,
        default=d.image_size,
        help="shorter side resized to this (0: keep)",
    )
    add("--crop-size", type=int, default=d.crop_size, help="random square crop (multiple of 8)")
    add("--lr", type=float, default=d.lr, help="Adam learning rate")
    add("--lr-decay", type=float, default=d.lr_decay, help="lr / (1 + lr_decay * step)")
    add("--style-weight", type=float, default=d.style_weight)
    add("--content-weight", type=float, default=d.content_weight)
    add("--seed", type=int, default=d.seed, help="decoder init and data order")
    add("--save-every", type=int, default=d.save_every, help="checkpoint every N steps")
    add("--keep", type=int, default=d.keep, help="keep the newest K checkpoints")
    add("--log-every", type=int, default=d.log_every, help="scalars every N steps")
    add("--sample-every", type=int, default=d.sample_every, help="sample grid PNG (0: never)")
    add("--eval-every", type=int, default=d.eval_every, help="held-out losses (0: never)")
    add("--num-samples", type=int, default=d.num_samples, help="held-out contents and styles")
    add("--sample-content-dir", help="held-out contents (default: the first of --content-dir)")
    add("--sample-style-dir", help="held-out styles (default: the first of --style-dir)")
    add("--num-workers", type=int, default=None, help="decoding processes (default: auto)")
    add("--dtype", choices=tuple(train_lib.DTYPES), default=d.dtype, help="conv compute dtype")
    add("--distributed", action="store_true", help="multi-host: jax.distributed.initialize()")
    add("--no-progress", action="store_true", help="no progress bar")
    return p


def _tfds(value: str, flag: str) -> str:
    name, _, split = value.partition(":")
    if not name or ":" in split:
        raise RunError(f"{flag} {value!r}: expected NAME or NAME:SPLIT, e.g. coco/2017:train")
    return "tfds:" + value


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Validate the flags (no JAX, no I/O beyond existence checks) and build the config."""
    for name in _POSITIVE:
        if getattr(args, name) <= 0:
            raise RunError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be positive")
    for name in _NON_NEGATIVE:
        value = getattr(args, name)
        if value is not None and value < 0:
            raise RunError(f"--{name.replace('_', '-')} {value}: must not be negative")
    if args.lr <= 0:
        raise RunError(f"--lr {args.lr}: must be positive")
    if args.style_weight == 0 and args.content_weight == 0:
        raise RunError("--style-weight and --content-weight are both 0: nothing to train")
    if 0 < args.image_size < args.crop_size:
        raise RunError(
            f"--crop-size {args.crop_size} is larger than --image-size {args.image_size}"
        )
    if args.crop_size % 8 or args.crop_size < 16:
        raise RunError(f"--crop-size {args.crop_size}: must be a multiple of 8, at least 16")
    if os.path.isfile(args.workdir):
        raise RunError(f"--workdir {args.workdir}: is a file, expected a directory")
    for flag in ("content_dir", "style_dir", "sample_content_dir", "sample_style_dir"):
        folder = getattr(args, flag)
        if folder is not None and not os.path.isdir(folder):
            raise RunError(f"--{flag.replace('_', '-')} {folder}: no such directory")
    if args.vgg is not None:
        if not os.path.isfile(args.vgg):
            raise RunError(f"--vgg {args.vgg}: no such file")
        if not args.vgg.endswith((".pth", ".pt", ".safetensors")):
            raise RunError(f"--vgg {args.vgg}: expected a .pth or .safetensors file")
    content = args.content_dir or _tfds(args.content_tfds, "--content-tfds")
    style = args.style_dir or _tfds(args.style_tfds, "--style-tfds")
    return RunConfig(
        workdir=args.workdir,
        content=content,
        style=style,
        vgg=args.vgg,
        batch_size=args.batch_size,
        image_size=args.image_size,
        crop_size=args.crop_size,
        max_steps=args.max_steps,
        lr=args.lr,
        lr_decay=args.lr_decay,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        seed=args.seed,
        save_every=args.save_every,
        keep=args.keep,
        log_every=args.log_every,
        sample_every=args.sample_every,
        eval_every=args.eval_every,
        num_samples=args.num_samples,
        sample_content_dir=args.sample_content_dir,
        sample_style_dir=args.sample_style_dir,
        num_workers=args.num_workers,
        dtype=args.dtype,
        progress=not args.no_progress,
    )


def _check_devices(cfg: RunConfig) -> None:
    import jax

    devices, processes = jax.device_count(), jax.process_count()
    if cfg.batch_size % devices:
        raise RunError(f"--batch-size {cfg.batch_size}: must be divisible by the {devices} devices")
    if cfg.batch_size % processes:
        raise RunError(
            f"--batch-size {cfg.batch_size}: must be divisible by the {processes} processes"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, validate, run. Returns the exit status (see the module docstring)."""
    from adain_jax.training import checkpointing
    from adain_jax.training import loop as trainer
    from adain_jax.weights import convert, download
    from adain_jax.weights import safetensors_io as weights_io
    from adain_jax.weights.torch_pickle import TorchFileError

    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    train_lib.maybe_initialize_distributed(args.distributed)
    from adain_jax.training import data

    expected = (
        RunError,
        data.DataError,
        TorchFileError,
        FileNotFoundError,
        PermissionError,
        download.DownloadError,
        checkpointing.CheckpointError,
        convert.WeightsError,
        weights_io.WeightsFormatError,
    )
    try:
        _check_devices(cfg)
        return trainer.train(cfg)
    except expected as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before the loop's handlers are installed
        print("interrupted before training started", file=sys.stderr)
        return 130
