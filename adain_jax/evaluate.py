"""``python -m adain_jax.evaluate``: content and style losses of a decoder.

Entry point only; the command lives in ``adain_jax.cli.evaluate``.
"""

import sys

from adain_jax.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
