"""``python -m adain_jax.optimize``: the optimization baseline (Gatys et al.).

Entry point only; the command lives in ``adain_jax.cli.optimize``.
"""

import sys

from adain_jax.cli.optimize import main

if __name__ == "__main__":
    sys.exit(main())
