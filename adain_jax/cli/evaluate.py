"""``adain-jax evaluate``: the paper's losses of a decoder.

    adain-jax evaluate --checkpoint runs/exp1 --content-dir held/content \\
        --style-dir held/style --size 256 --grid grid.png
    adain-jax evaluate --vgg vgg_normalised.pth --decoder decoder.pth \\
        --loss-vgg vgg19-dcbb9e9d.pth --content-dir ... --style-dir ...

Exit status: 0 done, 2 bad flags, 1 unreadable folders, images or weights.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

# Light modules only: the flags are checked before JAX is imported.
from adain_jax.cli import compile_cache, exits, helptext
from adain_jax.cli.weight_flags import add_weight_flags, load_weights
from adain_jax.io.messages import UsageError, path_flag
from adain_jax.nn.names import DTYPE_NAMES

DEFAULT_CHUNK = 8  # pairs per step (adain_jax.training.evaluate.DEFAULT_CHUNK)


def build_parser(prog: str = "adain-jax evaluate") -> argparse.ArgumentParser:
    """The evaluation flags (defaults shown by ``--help``)."""
    p = helptext.parser(
        prog,
        "The paper's content and style losses of a decoder, averaged over all content x style "
        "pairs, and a grid of the outputs.",
    )
    add_weight_flags(p)
    p.add_argument(
        "--loss-vgg",
        type=path_flag,
        metavar="FILE",
        help="encoder the losses are measured with (default: the weights' encoder); "
        "use the same file to compare decoders",
    )
    p.add_argument(
        "--content-dir",
        type=path_flag,
        required=True,
        metavar="DIR",
        help="content images (recursive)",
    )
    p.add_argument(
        "--style-dir", type=path_flag, required=True, metavar="DIR", help="style images (recursive)"
    )
    p.add_argument("--size", type=int, default=256, help="image side in px (multiple of 8)")
    p.add_argument("--limit", type=int, default=None, help="at most this many images per folder")
    p.add_argument(
        "--grid",
        type=path_flag,
        metavar="FILE",
        help="write the contents x styles grid to this PNG or JPEG",
    )
    p.add_argument("--grid-max", type=int, default=8, help="at most N contents and N styles")
    p.add_argument("--batch-size", type=int, default=DEFAULT_CHUNK, help="pairs per step")
    p.add_argument(
        "--dtype", choices=DTYPE_NAMES, default="float32", help="compute dtype of the convolutions"
    )
    return p


def main(argv: Sequence[str] | None = None, *, prog: str = "adain-jax evaluate") -> int:
    """Run the command; returns the exit status (``exits.run``)."""
    args = build_parser(prog).parse_args(argv)
    return exits.run(lambda: _run(args), "try a smaller --size, --batch-size or --limit")


def _run(args: argparse.Namespace) -> int:
    if args.size < 16 or args.size % 8:
        raise UsageError(f"--size {args.size}: must be a multiple of 8, at least 16")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size}: must be positive")
    if args.grid_max < 1:
        raise UsageError(f"--grid-max {args.grid_max}: must be positive")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: must be positive")
    if args.grid and not args.grid.lower().endswith((".png", ".jpg", ".jpeg")):
        raise UsageError(f"--grid {args.grid}: must end in .png, .jpg or .jpeg")
    from adain_jax.io import images as image_io  # no JAX

    found = {}  # a missing or empty folder: a failure (1), as in infer.py, before the work
    for flag, folder in (("--content-dir", args.content_dir), ("--style-dir", args.style_dir)):
        try:
            found[flag] = image_io.find_images(folder)
        except image_io.ImageError as e:
            raise image_io.ImageError(f"{flag} {e}") from None
    if args.grid:  # never over an input image, checked before the work
        image_io.check_output_path(args.grid, [p for paths in found.values() for p in paths])
    compile_cache.enable()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from adain_jax.training import monitoring
    from adain_jax.training.evaluate import evaluate_pairs, load_eval_images
    from adain_jax.weights import convert

    # shorter side resized to --size, centre-cropped: float [size, size, 3] in [0, 1]
    limit = args.limit if args.limit is not None else sys.maxsize
    contents = load_eval_images(args.content_dir, args.size, limit, found["--content-dir"])
    styles = load_eval_images(args.style_dir, args.size, limit, found["--style-dir"])
    params = load_weights(args)
    loss_enc = params["encoder"]
    if args.loss_vgg:
        loss_enc = jax.tree.map(jnp.asarray, convert.load_network(args.loss_vgg, "encoder"))
    keep = args.grid_max if args.grid else 0  # the grid's outputs only
    res = evaluate_pairs(
        params, loss_enc, contents, styles, chunk=args.batch_size, dtype=args.dtype, keep=keep
    )
    print(
        f"pairs: {len(res.content)} ({len(contents)} contents x {len(styles)} styles, "
        f"{args.size} px)"
    )
    print(f"content loss: {float(np.mean(res.content)):.6f}")
    print(f"style loss:   {float(np.mean(res.style)):.6f}")
    if args.grid:
        n_c, n_s = min(len(contents), args.grid_max), min(len(styles), args.grid_max)
        outs = res.outputs.reshape(n_c, n_s, *res.outputs.shape[1:])
        grid = monitoring.pair_grid(contents[:n_c], styles[:n_s], outs)
        image_io.save_image(args.grid, grid.astype(np.float32) / 255.0)
        print(f"wrote {args.grid}")
    return 0
