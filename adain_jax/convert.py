"""``python -m adain_jax.convert``: convert .pth weights to safetensors.

Entry point only; the command lives in ``adain_jax.cli.convert``.
"""

import sys

from adain_jax.cli.convert import main

if __name__ == "__main__":
    sys.exit(main())
