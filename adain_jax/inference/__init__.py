"""``infer.py``'s job pipeline: a job is planned once, then runs as stages.

- ``paths``: ``--content``/``--style``/``--output`` -> ``Pair``s (files, output names);
- ``plan``: ``JobOptions`` + pairs -> ``Plan``, every mode decision made once (colour
  preservation, mask vs weights, which back-end for which size, batch keys, skips);
- ``backend``: the only module that calls ``adain_jax.controls`` (the stylize stage);
- ``run``: the stages read -> batch -> stylize -> write, and the ``Summary``.

The flags themselves live in ``adain_jax.cli.infer``.
"""
