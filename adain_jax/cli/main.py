"""The ``adain-jax`` command: one entry point with a subcommand per job.

    adain-jax stylize --content photo.jpg --style painting.jpg   (= python infer.py)
    adain-jax train --workdir runs/x ...                          (= python train.py)
    adain-jax convert --vgg vgg_normalised.pth --decoder decoder.pth --out weights/
    adain-jax evaluate --checkpoint runs/x --content-dir C --style-dir S

Each subcommand's flags are its own (``adain-jax stylize --help``). Only the
chosen subcommand's module is imported, so ``adain-jax --help`` is instant.
"""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import Sequence

from adain_jax.io.messages import EXIT_USAGE

# name -> (module, one-line summary); each module has main(argv) -> exit status.
SUBCOMMANDS = {
    "stylize": ("adain_jax.cli.infer", "stylize images, directories or videos (= infer.py)"),
    "train": ("adain_jax.cli.train", "train a decoder; resumes from --workdir (= train.py)"),
    "convert": ("adain_jax.cli.convert", "convert .pth weights to .safetensors"),
    "evaluate": ("adain_jax.cli.evaluate", "content and style losses of a decoder"),
    "export": ("adain_jax.cli.export", "stylize as a StableHLO or ONNX file (no Python needed)"),
    "demo": ("adain_jax.cli.demo", "the Gradio web page and its /stylize API"),
    "optimize": ("adain_jax.cli.optimize", "optimization baseline (Gatys et al.) for one pair"),
    "experiments": ("adain_jax.cli.experiments", "the paper's comparison report and curves"),
}


def usage() -> str:
    """The top-level help text."""
    width = max(len(n) for n in SUBCOMMANDS)
    lines = [
        "usage: adain-jax {" + ",".join(SUBCOMMANDS) + "} [flags]",
        "",
        "AdaIN arbitrary style transfer (Huang & Belongie, ICCV 2017) in JAX.",
        "",
        "subcommands:",
        *(f"  {name:<{width}}  {summary}" for name, (_, summary) in SUBCOMMANDS.items()),
        "",
        "adain-jax SUBCOMMAND --help shows the flags of one subcommand with their defaults;",
        "adain-jax --version prints the version.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``adain-jax SUBCOMMAND [flags]``; returns the subcommand's exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else EXIT_USAGE
    if args[0] == "--version":
        import adain_jax  # light: its public names are imported on first use

        print(f"adain-jax {adain_jax.version()}")
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(
            f"error: unknown subcommand {name!r}; choose from {', '.join(SUBCOMMANDS)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return run(name, rest)


def run(name: str, argv: Sequence[str], prog: str | None = None) -> int:
    """Run subcommand ``name`` with ``argv`` (``prog``: its name in messages, default
    ``adain-jax NAME``); ``train.py`` and ``infer.py`` are ``run("train"|"stylize", ...)``."""
    if name == "train":  # replaces the process (once) so XLA:CPU reuses its buffers
        from adain_jax.cli import malloc_tuning

        malloc_tuning.reexec_with_tuned_malloc()
    from adain_jax.cli import exits

    exits.warnings_as_lines()
    exits.keep_interrupts()
    try:  # the subcommand's main handles its own interrupts; this covers its (long) import
        module = importlib.import_module(SUBCOMMANDS[name][0])
    except KeyboardInterrupt:
        return exits.fail("interrupted", exits.EXIT_SIGNAL[signal.SIGINT])
    return module.main(argv, prog=prog or f"adain-jax {name}")
