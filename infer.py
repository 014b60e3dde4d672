"""Stylize images with AdaIN: ``python infer.py --content C --style S [--output O] ...``
(= ``adain-jax stylize``; see ``--help`` and README.md, Stylize)."""

import sys

from adain_jax.cli.main import run

if __name__ == "__main__":
    sys.exit(run("stylize", sys.argv[1:], prog="infer.py"))
