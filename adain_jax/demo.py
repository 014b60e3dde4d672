"""``python -m adain_jax.demo``: the Gradio web page for style transfer.

Entry point only; the command lives in ``adain_jax.cli.demo``.
"""

import sys

from adain_jax.cli.demo import main

if __name__ == "__main__":
    sys.exit(main())
