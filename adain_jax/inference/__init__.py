"""``infer.py``'s job pipeline (its flags: ``adain_jax.cli.infer``): ``paths`` turns the flags into
``Pair``s, ``plan`` makes every mode decision once (a ``Plan``), ``run`` runs the stages read ->
batch -> stylize -> write, the stylize stage's back-ends in ``backend`` (calls into ``controls``).
"""
