"""``python -m adain_jax.export``: export stylize as a StableHLO or ONNX file.

Entry point only; the command lives in ``adain_jax.cli.export``.
"""

import sys

from adain_jax.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
