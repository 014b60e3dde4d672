"""Which files a job reads and writes: ``--content``, ``--style``, ``--output`` -> ``Pair``s
(the rules: ``plan_pairs``)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from adain_jax.io import images as image_io
from adain_jax.io import video
from adain_jax.io.files import unwritable_folder
from adain_jax.io.messages import UsageError, shown_path

DEFAULT_EXT = ".png"
__all__ = ["DEFAULT_EXT", "Pair", "UsageError", "output_name", "plan_pairs"]


@dataclasses.dataclass(frozen=True)
class Pair:
    """One output: ``content`` stylized with the style set ``styles`` into ``output``."""

    content: Path
    styles: tuple[Path, ...]
    output: Path


def output_name(
    content: Path, styles: Sequence[Path], ext: str, weights: Sequence[float] | None = None
) -> str:
    """``<content>_stylized_<style>[_<style2>...][_w<w1>-<w2>...]<ext>`` (the authors' naming; the
    style weights, as given, when a mix has them, so runs with other weights do not collide)."""
    mix = f"_w{'-'.join(format(w, 'g') for w in weights)}" if weights else ""
    return f"{content.stem}_stylized_{'_'.join(s.stem for s in styles)}{mix}{ext}"


def output_ext(content: Path, image_ext: str = DEFAULT_EXT) -> str:
    """Default output extension: ``image_ext`` for images, the content's container for videos."""
    if video.is_video(content):
        suffix = content.suffix.lower()
        return suffix if suffix in video.OUTPUT_CODECS else ".mp4"
    return image_ext


def parse_style_sets(style: str) -> list[tuple[Path, ...]]:
    """``--style``: a file (one style), a directory (each image one style) or a comma list (one
    style set of K styles)."""
    path = Path(style)
    if path.is_dir():
        return [(p,) for p in image_io.find_images(path)]
    if path.exists():
        return [(path,)]
    parts = [Path(s.strip()) for s in style.split(",") if s.strip()]
    if len(parts) < 2:
        raise image_io.ImageError(f"{shown_path(path)}: no such file or directory (--style)")
    for p in parts:
        if not p.is_file():
            why = "not a file" if p.exists() else "no such file"
            raise image_io.ImageError(f"{shown_path(p)}: {why} (--style list)")
    return [tuple(parts)]


def _not_outputs(found: list, root: Path, out_abs: Path, file_of: Callable) -> list:
    """``found`` (of the tree ``root``) less the earlier outputs: the files under ``out_abs``
    when that directory lies inside the tree, those named ``*_stylized_*`` (``output_name``)
    when it is the tree's root; none when it is outside or above the tree."""
    root_abs = root.resolve()
    if out_abs == root_abs:
        return [f for f in found if "_stylized_" not in file_of(f).name]
    if root_abs not in out_abs.parents:
        return found
    return [f for f in found if out_abs not in file_of(f).resolve().parents]


def _check_distinct_outputs(pairs: Sequence[Pair]) -> None:
    """Raise ``UsageError`` if two pairs would write one file: default names keep only the stems
    (``a.png`` and ``a.jpg``, or styles ``s.png`` and ``s.jpg``), so the second would replace the
    first."""
    first: dict[Path, Pair] = {}
    for pair in pairs:
        other = first.setdefault(pair.output, pair)
        if other is not pair:
            a, b = (
                (other.content, pair.content)
                if other.content != pair.content
                else (",".join(map(str, other.styles)), ",".join(map(str, pair.styles)))
            )
            raise UsageError(
                f"{shown_path(pair.output)}: would be written for both {shown_path(a)} and "
                f"{shown_path(b)} (output names keep only the stems); rename one of them"
            )


BIG_JOB = 1000  # outputs from which planning reports progress


def plan_pairs(
    content: str,
    style: str,
    output: str | None,
    log: Callable[[str], None] | None = None,
    *,
    weights: Sequence[float] | None = None,
    ext: str = DEFAULT_EXT,
    protect: Sequence[str | os.PathLike] = (),
) -> list[Pair]:
    """Every (content, style set) pair and its output path.

    One content file and one style set: ``output`` is the output file, or a directory (existing,
    or ending in ``/``) for the default name ``<content>_stylized_<style>.png`` (the authors'
    naming; the content's container for videos). A directory of contents (recursive) and/or of
    styles: every content x every style into the directory ``output`` (default: the current one),
    keeping the contents' sub-directories; when ``output`` lies in the content or style tree,
    the files under it are never contents or styles (the outputs of an earlier run). Planning
    is linear in the number of outputs plus inputs; ``log`` gets one line before checking a job
    of ``BIG_JOB`` or more outputs. ``weights``: the style weights, named in default output
    names; ``ext``: the extension of default-named image outputs (``.png``, ``.jpg``);
    ``protect``: other inputs no output may replace (the mask). Raises ``ImageError`` (missing
    inputs, an output that is an input) or ``UsageError`` (an ``--output`` that cannot be).
    """
    content_path = Path(content)
    if not content_path.exists():
        raise image_io.ImageError(
            f"{shown_path(content_path)}: no such file or directory (--content)"
        )
    style_sets = parse_style_sets(style)
    if content_path.is_dir():  # images and videos
        found = (*image_io.IMAGE_EXTENSIONS, *video.VIDEO_EXTENSIONS)
        contents = image_io.find_images(content_path, found, what="image or video")
    else:
        contents = [content_path]
    many = content_path.is_dir() or Path(style).is_dir()
    out_is_dir = output is not None and (
        many or Path(output).is_dir() or output.endswith(("/", os.sep))
    )
    if many and output is not None and Path(output).suffix.lower() in image_io.WRITE_FORMATS:
        raise UsageError(
            f"--output {output}: with a directory of contents or styles, --output is a directory"
        )
    out_dir = Path(output) if out_is_dir else Path(".")
    if out_is_dir and out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--output {shown_path(output)}: is a file, expected a directory")
    if many:  # an output directory inside the content or style tree: its files are outputs
        out_abs = out_dir.resolve()
        if content_path.is_dir():
            contents = _not_outputs(contents, content_path, out_abs, lambda c: c)
            if not contents:
                raise image_io.ImageError(
                    f"{shown_path(content_path)}: no image files outside --output"
                )
        if Path(style).is_dir():
            style_sets = _not_outputs(style_sets, Path(style), out_abs, lambda s: s[0])
            if not style_sets:
                raise image_io.ImageError(f"{shown_path(style)}: no image files outside --output")
    count = len(contents) * len(style_sets)
    if log is not None and count >= BIG_JOB:
        log(
            f"planning {count} outputs ({len(contents)} contents x {len(style_sets)} "
            "styles): checking them against the inputs"
        )
    pairs = []
    for c in contents:
        sub = c.parent.relative_to(content_path) if content_path.is_dir() else Path()
        for styles in style_sets:
            if output is not None and not out_is_dir:
                target = Path(output)
            else:
                target = out_dir / sub / output_name(c, styles, output_ext(c, ext), weights)
            pairs.append(Pair(c, styles, target))
    _check_distinct_outputs(pairs)
    inputs = image_io.Protected([*contents, *(s for st in style_sets for s in st), *protect])
    for pair in pairs:
        if video.is_video(pair.content):
            if pair.output.suffix.lower() not in video.OUTPUT_CODECS:
                known = ", ".join(sorted(video.OUTPUT_CODECS))
                raise UsageError(f"--output {pair.output}: a video output needs one of {known}")
            if pair.output in inputs:
                raise image_io.ImageError(
                    f"{shown_path(pair.output)}: is an input file; refusing to overwrite"
                )
            if pair.output.is_dir():  # as check_output_path for images
                raise image_io.ImageError(f"{shown_path(pair.output)}: is a directory")
        elif pair.output.suffix.lower() not in image_io.WRITE_FORMATS:
            # Only --output can name one (default names take --save-ext): a bad flag, exit 2.
            try:
                image_io.check_output_path(pair.output)
            except image_io.ImageError as e:
                raise UsageError(f"--output {e}") from None
        else:
            image_io.check_output_path(pair.output, inputs)
    # Before any work: a folder the outputs to make cannot be written in (each checked once).
    for folder in {p.output.parent for p in pairs if not p.output.exists()}:
        if (stopped := unwritable_folder(folder)) is not None:
            raise image_io.ImageError(
                f"{shown_path(stopped)}: no permission to create files (the output folder; "
                "--output picks another)"
            )
    return pairs
