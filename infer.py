"""Stylize images with AdaIN: ``python infer.py --content C --style S [--output O] ...``.

Thin entry point: the flags live in ``adain_jax.cli.infer``, the job pipeline in
``adain_jax.inference`` (paths -> plan -> read, batch, stylize, write; see README).
"""

import sys

from adain_jax.cli.infer import main

if __name__ == "__main__":
    sys.exit(main())
