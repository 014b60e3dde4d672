"""The published weights: downloaded once into the cache, checked, converted once.

* ``adain_pretrained()``: the authors' trained decoder and ``vgg_normalised`` from the PyTorch
  port's release (paper-quality stylization, no training).
* ``torchvision_vgg19()``: torchvision's ImageNet VGG-19, the encoder for training new decoders.
* ``authors_weights(name)``: one of the authors' own Torch7 files (``AUTHORS_FILES``), among
  them ``decoder-content-similar.t7``, which exists only there (``content_similar_decoder()``,
  ``--decoder content-similar``). No sha256 of them is published, so they are downloaded only
  with a digest the user states (``expected_sha256``) or used from the cache when put there by
  hand.
* ``builtin_dir()``: the weights shipped inside the package (a VGG-16 encoder and a decoder
  trained by this project, ``builtin/MODEL_CARD.md``), used offline.

The downloads are converted once into ``download.cache_dir()``. When a default download cannot
reach its server at all, the built-in weights stand in, with one line on stderr
(``note_builtin_fallback``).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from adain_jax.io import files
from adain_jax.weights import download
from adain_jax.weights import safetensors_io as weights_io

ADAIN_RELEASE_URL = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/"
TORCHVISION_VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
# Environment overrides of the URLs, for mirrors and tests.
URL_ENV = {
    "adain": "ADAIN_JAX_ADAIN_URL",
    "vgg19": "ADAIN_JAX_VGG19_URL",
    "authors": "ADAIN_JAX_AUTHORS_URL",
}
# The authors' own release (xunhuang1995/AdaIN-style, models/download_models.sh): Torch7 files,
# read by adain_jax.weights.torch7. The port's .pth files were converted from the first two;
# decoder-content-similar.t7 (trained with a lower style weight, keeping more of the content:
# the authors' advice when faces or details get lost) exists only here.
AUTHORS_URL = "https://s3.amazonaws.com/xunhuang-public/adain/"
AUTHORS_FILES = {  # name: network
    "vgg_normalised.t7": "encoder",
    "decoder.t7": "decoder",
    "decoder-content-similar.t7": "decoder",
}
CONTENT_SIMILAR = "content-similar"  # the name --decoder / load_params(decoder=...) take

# Full sha256 of each default download, checked before the file is parsed. Not verified by
# downloading here: each value is the one several independent public projects pin for the same
# URL (download scripts, model inventories), and torchvision's agrees with its file name's prefix.
SHA256 = {
    "vgg_normalised.pth": "804ca2835ecf7539f0cd2a7ac3c18ce81e6f8468969ae7117ac0c148d286bb4a",
    "decoder.pth": "379ca41d59f3a37eed3599bbbc2560c19da5c458870a5ffd3a9dd41aa88f9472",
    "vgg19-dcbb9e9d.pth": "dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44",
}
# No sha256 of the authors' .t7 files is published (none in their README or download script,
# none found in other projects; one third-party README gives an MD5 for vgg_normalised.t7,
# c637adfa9cee4b33b59c5a754883ba82, too weak to pin and not verified), and none could be verified
# here (no network): they are absent from SHA256 (see expected_sha256 and _cached_source).


def sha256_env(name: str) -> str:
    """The variable that overrides the pinned sha256 of ``name`` (mirrors, tests):
    ``vgg_normalised.pth`` -> ``ADAIN_JAX_SHA256_VGG_NORMALISED``. Its value is the full hex
    digest the served file must have; there is no way to turn the check off."""
    if name.endswith(".t7"):  # decoder-content-similar.t7 -> ..._DECODER_CONTENT_SIMILAR_T7
        return "ADAIN_JAX_SHA256_" + name.removesuffix(".t7").upper().replace("-", "_") + "_T7"
    stem = name.removesuffix(".pth").split("-")[0]
    return "ADAIN_JAX_SHA256_" + stem.upper()


def expected_sha256(name: str) -> str:
    """The sha256 ``name`` must have: ``$ADAIN_JAX_SHA256_<NAME>``, else the pinned one.

    Raises:
      download.DownloadError: no digest is pinned (the authors' ``.t7`` files) and none is set:
        the file is not downloaded unchecked.
    """
    digest = os.environ.get(sha256_env(name)) or SHA256.get(name)
    if digest is None:
        raise download.DownloadError(
            f"{name}: no sha256 of this file is published, so it is not downloaded "
            f"unchecked; set {sha256_env(name)} to the sha256 you trust"
        )
    return digest


# How to work offline, in the words of the command line and of the Python API.
OFFLINE_HINT = (
    "to run without network, pass local files: --vgg vgg_normalised.pth --decoder decoder.pth "
    "(the PyTorch port's release files), or --weights DIR (from adain-jax convert); "
    "adain-jax convert --help lists the download URLs"
)
OFFLINE_HINT_API = (
    "to run without network, pass local files: load_params(vgg='vgg_normalised.pth', "
    "decoder='decoder.pth') (the PyTorch port's release files) or load_params('weights_dir') "
    "(from adain-jax convert); adain-jax convert --help lists the download URLs"
)


T = TypeVar("T")
BUILTIN = "builtin"  # the name that selects the built-in weights (--weights builtin)
_noted: set[str] = set()


def builtin_dir() -> Path:
    """The directory of the built-in weights (``encoder.safetensors``, ``decoder.safetensors``)."""
    return Path(__file__).resolve().parent / BUILTIN


def note_builtin_fallback(what: str, error: download.DownloadError, how: str) -> None:
    """Say on stderr, once per process and ``what``, that the built-in weights stand in."""
    if what in _noted:
        return
    _noted.add(what)
    print(
        f"note: {error.reason}; using the built-in weights instead (VGG-16 and a decoder "
        f"trained by adain-jax, see {builtin_dir() / 'MODEL_CARD.md'}); {how}",
        file=sys.stderr,
    )


# How to get the authors' files when the built-in weights stood in for them.
AUTHORS_FILES_HOW = (
    "for the authors' weights, put vgg_normalised.pth and decoder.pth in "
    "$ADAIN_JAX_CACHE/downloads/ or pass --vgg/--decoder (adain-jax convert --help "
    "lists the URLs)"
)


def builtin_file(network: str) -> Path:
    """The built-in ``encoder.safetensors`` or ``decoder.safetensors``."""
    return builtin_dir() / weights_io.file_name(network)


def _or_builtin(fetch: Callable[[], T], what: str, how: str, builtin: T) -> T:
    """``fetch()``, or ``builtin`` when its server cannot be reached at all (one note on
    stderr, once per process and ``what``, ending with ``how`` to get the real files).

    Raises:
      download.DownloadError: any other failed download (an HTTP error, a bad digest).
    """
    try:
        return fetch()
    except download.DownloadError as e:
        if not e.unreachable:
            raise
        note_builtin_fallback(what, e, how)
        return builtin


def adain_or_builtin(how: str = AUTHORS_FILES_HOW) -> tuple[Path, Path]:
    """``adain_pretrained()``, or the built-in files when its server cannot be reached."""
    builtin = (builtin_file("encoder"), builtin_file("decoder"))
    return _or_builtin(adain_pretrained, "adain", how, builtin)


def vgg19_or_builtin() -> Path:
    """``torchvision_vgg19()``, or the built-in encoder when its server cannot be reached."""
    how = "for torchvision's VGG-19, pass --vgg vgg19-dcbb9e9d.pth"
    return _or_builtin(torchvision_vgg19, "vgg19", how, builtin_file("encoder"))


def source_digest(path: Path, memo_dir: Path) -> str:
    """The sha256 of ``path``, remembered in ``memo_dir`` by the file's size and modification
    time (an 80 MB file is hashed once, not on every run; a replaced file is hashed again)."""
    st = path.stat()
    stamp = f"{st.st_size} {st.st_mtime_ns}"
    memo = memo_dir / f"{path.name}.sha256"
    try:
        recorded_stamp, recorded = memo.read_text().rsplit(" ", 1)
        if recorded_stamp == stamp and len(recorded) == 64:
            return recorded
    except (OSError, ValueError):
        pass
    digest = download.sha256_of(path)
    try:
        memo_dir.mkdir(parents=True, exist_ok=True)
        with files.atomic_open(memo) as f:
            f.write(f"{stamp} {digest}")
    except OSError:
        pass  # only a speed-up
    return digest


def _cached_source(cache: Path, name: str, network: str, url: str) -> tuple[Path, str]:
    """``(path, sha256)`` of ``<cache>/downloads/name``, downloading it first if needed.

    A file already there (a finished download, or put there by hand) is checked like a download
    against ``expected_sha256``; one that does not match is moved aside to ``NAME.rejected``
    (never deleted) with one warning line, and downloaded again. The authors' ``.t7`` files have
    no pinned digest: a hand-placed one is used as it is, unless ``$ADAIN_JAX_SHA256_<NAME>_T7``
    states a digest.
    """
    dest = cache / "downloads" / name
    memo_dir = cache / "converted"
    if dest.is_file():
        digest = source_digest(dest, memo_dir)
        try:
            want = expected_sha256(name)
        except download.DownloadError:  # no digest pinned or set: a .t7 used as it is
            want = None
        if want is None or digest == want.lower():
            return dest, digest
        rejected = dest.with_name(dest.name + ".rejected")
        os.replace(dest, rejected)
        print(
            f"warning: {dest}: sha256 {digest[:12]}... is not the expected {want.lower()[:12]}..."
            f" (damaged or another file); moved to {rejected.name}, fetching it again",
            file=sys.stderr,
        )
    from adain_jax.weights import convert  # JAX: imported when a file is fetched

    validate = functools.partial(convert.load_torch_weights, expect=network)
    path = download.fetch(url, dest, sha256=expected_sha256(name), validate=validate)
    return path, source_digest(path, memo_dir)


def _converted(cache: Path, name: str, network: str, url: str) -> Path:
    """Download ``name`` (if needed), convert it (if needed), return the converted file:
    ``<cache>/converted/<stem>-<sha256[:16]>/<network>.safetensors``, keyed by the source's
    digest, so a replaced source is converted again."""
    from adain_jax.weights import convert

    source, digest = _cached_source(cache, name, network, url)
    stem = name.removesuffix(".pth").removesuffix(".t7")
    target = cache / "converted" / f"{stem}-{digest[:16]}" / weights_io.file_name(network)
    if target.is_file():
        try:
            convert.load_network(target, network)
            return target
        except (OSError, ValueError):
            target.unlink()  # damaged: convert again
    params = convert.load_torch_weights(source, network)
    weights_io.save(target, network, params, source=name)
    return target


def adain_pretrained(cache: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Paths of the converted ``vgg_normalised`` encoder and the authors' decoder.

    Raises:
      download.DownloadError: with a hint naming the flags for local files (``OFFLINE_HINT``;
        ``load_params`` puts ``OFFLINE_HINT_API`` in its place).
    """
    cache = Path(cache) if cache is not None else download.cache_dir()
    base = os.environ.get(URL_ENV["adain"], ADAIN_RELEASE_URL)
    try:
        encoder = _converted(cache, "vgg_normalised.pth", "encoder", base + "vgg_normalised.pth")
        decoder = _converted(cache, "decoder.pth", "decoder", base + "decoder.pth")
    except download.DownloadError as e:
        raise e.with_hint(OFFLINE_HINT) from None
    return encoder, decoder


def torchvision_vgg19(cache: str | os.PathLike | None = None) -> Path:
    """Path of the converted torchvision VGG-19 encoder (file sha256 checked)."""
    cache = Path(cache) if cache is not None else download.cache_dir()
    url = os.environ.get(URL_ENV["vgg19"], TORCHVISION_VGG19_URL)
    try:
        return _converted(cache, "vgg19-dcbb9e9d.pth", "encoder", url)
    except download.DownloadError as e:
        raise e.with_hint("pass a local VGG-19 file with --vgg FILE") from None


def authors_weights(name: str, cache: str | os.PathLike | None = None) -> Path:
    """Path of the converted weights of the authors' ``name`` (a key of ``AUTHORS_FILES``),
    downloaded (from ``$ADAIN_JAX_AUTHORS_URL``, else ``AUTHORS_URL``) and converted once.

    Raises:
      download.DownloadError: also when no sha256 is known for ``name`` and the file is not in
        ``<cache>/downloads/`` (``expected_sha256``).
    """
    cache = Path(cache) if cache is not None else download.cache_dir()
    url = os.environ.get(URL_ENV["authors"], AUTHORS_URL) + name
    try:
        return _converted(cache, name, AUTHORS_FILES[name], url)
    except download.DownloadError as e:
        if name in SHA256 or os.environ.get(sha256_env(name)):
            raise e.with_hint(f"or pass a local file: --vgg/--decoder {name}") from None
        # Refused for want of a digest: how to provide the file goes in the reason (which the
        # callers that reword the hint keep).
        raise download.DownloadError(
            f"{e.reason}, or download {url} yourself into {cache / 'downloads'}/ "
            f"(or pass the file itself with --vgg/--decoder)"
        ) from None


def content_similar_decoder(cache: str | os.PathLike | None = None) -> Path:
    """The authors' ``decoder-content-similar.t7``, converted (``--decoder content-similar``)."""
    return authors_weights("decoder-content-similar.t7", cache)


def download_help() -> str:
    """The published files, their URLs and sha256, and where manual downloads go."""
    cache = download.cache_dir() / "downloads"
    lines = [
        "published weights (downloaded on first use; put manually downloaded files in",
        f"{cache} -- i.e. $ADAIN_JAX_CACHE/downloads -- to use them offline):",
    ]
    for name, url, size in (
        ("vgg_normalised.pth", ADAIN_RELEASE_URL + "vgg_normalised.pth", "~80 MB"),
        ("decoder.pth", ADAIN_RELEASE_URL + "decoder.pth", "~14 MB"),
        ("vgg19-dcbb9e9d.pth", TORCHVISION_VGG19_URL, "~548 MB, for training"),
    ):
        lines += [f"  {name} ({size})", f"    {url}", f"    sha256 {SHA256[name]}"]
    lines.append("the authors' Torch7 originals (no published sha256: put them there by hand or")
    lines.append("set the variable named to the sha256 you trust; --decoder content-similar):")
    for name, network in AUTHORS_FILES.items():
        size = "~80 MB" if network == "encoder" else "~14 MB"
        lines += [f"  {name} ({size})", f"    {AUTHORS_URL}{name}", f"    ${sha256_env(name)}"]
    return "\n".join(lines)
