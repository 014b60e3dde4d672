"""Train an AdaIN decoder: ``python train.py --workdir DIR --content-dir C --style-dir S``
(= ``adain-jax train``; see ``--help`` and README.md, Training)."""

import sys

from adain_jax.cli.main import run

if __name__ == "__main__":
    sys.exit(run("train", sys.argv[1:], prog="train.py"))
