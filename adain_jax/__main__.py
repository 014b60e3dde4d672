"""``python -m adain_jax SUBCOMMAND ...``: the same as the ``adain-jax`` command."""

import sys

from adain_jax.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
