"""Train an AdaIN decoder: ``python train.py --workdir DIR --content-dir C --style-dir S``.

See ``python train.py --help`` and README.md (Training). The logic lives in
``adain_jax.train_cli`` / ``adain_jax.trainer``.
"""

import sys

from adain_jax.train_cli import main

if __name__ == "__main__":
    sys.exit(main())
