"""Train an AdaIN decoder: ``python train.py --workdir DIR --content-dir C --style-dir S``.

See ``python train.py --help`` and README.md (Training). The logic lives in
``adain_jax.cli.train`` / ``adain_jax.training.loop``.
"""

import sys

from adain_jax.cli import malloc_tuning

if __name__ == "__main__":
    # Replaces the process (once) so XLA:CPU reuses its buffers: see the module.
    malloc_tuning.reexec_with_tuned_malloc()
    from adain_jax.cli.train import main

    sys.exit(main())
