"""``python -m adain_jax.experiments compare|curves``: entry point only; the command lives
in ``adain_jax.cli.experiments``."""

import sys

from adain_jax.cli.experiments import main

if __name__ == "__main__":
    sys.exit(main())
