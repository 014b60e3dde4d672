"""Stylize images with AdaIN: ``python infer.py --content C --style S [--output O] ...``.

Thin entry point; the logic lives in ``adain_jax.cli.infer`` (see README).
"""

import sys

from adain_jax.cli.infer import main

if __name__ == "__main__":
    sys.exit(main())
