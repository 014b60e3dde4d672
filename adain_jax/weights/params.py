"""``load_params``: one entry point for every source of AdaIN weights.

The parameter tree is a plain dict ``{"encoder": ..., "decoder": ...}``, each value the Flax
``params`` of ``VGGEncoder`` / ``Decoder`` (``{layer: {"kernel": HWIO, "bias": [C]}}``, float32
``jax.Array``).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from adain_jax.io import files
from adain_jax.nn import models
from adain_jax.weights import convert, pretrained, workdir
from adain_jax.weights import safetensors_io as weights_io
from adain_jax.weights.download import DownloadError

Params = dict


def load_params(
    source: str | os.PathLike | None = None,
    *,
    vgg: str | os.PathLike | None = None,
    decoder: str | os.PathLike | None = None,
) -> Params:
    """Load encoder and decoder parameters.

    Args:
      source: ``None`` for the pretrained default (the authors' decoder and ``vgg_normalised``,
        downloaded and converted once into the cache; when their server cannot be reached, the
        built-in weights, with one line on stderr); ``"builtin"`` for the weights shipped in
        the package (VGG-16 and a decoder trained by this project); a directory of converted
        weights (``encoder.safetensors`` and ``decoder.safetensors``); or a training workdir
        (its latest decoder, with the encoder it was trained with).
      vgg: encoder weights file, ``.pth`` (torchvision ``vgg19`` or ``vgg_normalised.pth``),
        the authors' ``vgg_normalised.t7`` or converted ``.safetensors``; overrides the one
        from ``source``.
      decoder: decoder weights file (``decoder.pth``, the authors' ``.t7`` or
        ``.safetensors``), or ``"content-similar"``: the authors' ``decoder-content-similar.t7``,
        downloaded and converted once (``pretrained.content_similar_decoder``; no sha256 is
        published for it, see ``pretrained.expected_sha256``); overrides the one from
        ``source``.

    Returns:
      ``{"encoder": params, "decoder": params}``.

    Raises:
      FileNotFoundError, ValueError (``WeightsError``, ``TorchFileError``): naming the file
        and the problem.
      download.DownloadError: the default weights could not be downloaded.
    """
    enc_path = os.fspath(vgg) if vgg is not None else None
    dec_path = os.fspath(decoder) if decoder is not None else None
    named_decoder = dec_path == pretrained.CONTENT_SIMILAR
    for given in (enc_path, None if named_decoder else dec_path):  # before any download
        if given is not None:
            files.require_file(given)
    if named_decoder:
        dec_path = str(pretrained.content_similar_decoder())
    workdir_params = None
    if source is not None:
        root = pretrained.builtin_dir() if source == pretrained.BUILTIN else Path(source)
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such weights directory")
        if not root.is_dir():  # e.g. encoder.safetensors itself
            raise NotADirectoryError(
                f"{root}: a file, expected a weights directory or a training workdir (a weight "
                "file is passed as vgg= / decoder=, or --vgg / --decoder)"
            )
        if workdir.is_workdir(root):
            workdir_params = workdir.latest_decoder_params(root)
        if workdir_params is not None:
            enc_path = enc_path or workdir_params["vgg"]
        else:
            missing = [
                n for n in weights_io.NETWORKS if not (root / weights_io.file_name(n)).is_file()
            ]
            if missing and not (enc_path and dec_path):
                raise FileNotFoundError(
                    f"{root}: not a weights directory (no {weights_io.file_name(missing[0])}) "
                    "and not a training workdir (no checkpoints/)"
                )
            enc_path = enc_path or str(root / weights_io.file_name("encoder"))
            dec_path = dec_path or str(root / weights_io.file_name("decoder"))
    if enc_path is None or (dec_path is None and workdir_params is None):
        try:
            default_enc, default_dec = pretrained.adain_or_builtin()
        except DownloadError as e:
            raise e.with_hint(pretrained.OFFLINE_HINT_API) from None
        enc_path = enc_path or str(default_enc)
        dec_path = dec_path or str(default_dec)
    encoder = convert.load_network(enc_path, "encoder")
    if workdir_params is not None and dec_path is None:
        decoder_params = workdir_params["decoder"]
    else:
        decoder_params = convert.load_network(dec_path, "decoder")
    params = {"encoder": encoder, "decoder": decoder_params}
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)


def load_decoder(source: str | os.PathLike, variant: models.DecoderVariant) -> dict:
    """Decoder params of ``variant`` from a file or a workdir (``train.py --init-decoder``).

    Args:
      source: ``decoder.pth`` (the PyTorch port's layout: the paper's decoder), a
        ``decoder.safetensors`` (any variant), a directory holding ``decoder.safetensors``,
        or a training workdir (its latest decoder, any variant).
      variant: the decoder the caller builds; every layer and shape must match it.

    Returns:
      ``{layer: {leaf: float32 numpy array}}``.

    Raises:
      FileNotFoundError, WeightsError (or the readers' errors): one line naming ``source``.
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if workdir.is_workdir(path):  # False for a file
        params = workdir.latest_decoder_params(path)["decoder"]
    elif path.is_dir():
        file = path / weights_io.file_name("decoder")
        if not file.is_file():
            raise FileNotFoundError(
                f"{path}: neither a training workdir (no checkpoints/) nor a folder with "
                f"{file.name}"
            )
        params = convert.load_network(file, "decoder")
    else:
        params = convert.load_network(path, "decoder")
    found = models.decoder_variant(params)  # the layers and shapes are checked: a variant's
    if found != variant:
        raise convert.WeightsError(
            f"{path}: holds an {found.describe()} decoder, not the {variant.describe()} decoder "
            "chosen (--fusion/--decoder-norm); its layers or shapes differ"
        )
    return jax.tree.map(lambda a: np.asarray(a, np.float32), params)


def init_params(rng: jax.Array) -> Params:
    """Random ``{"encoder", "decoder"}`` parameters (Flax default initialisers), float32,
    e.g. for tests and benchmarks; the decoder is ``adain_jax.nn.models.init_decoder``'s."""
    enc_rng, dec_rng = jax.random.split(rng)
    return {"encoder": models.init_encoder(enc_rng), "decoder": models.init_decoder(dec_rng)}
