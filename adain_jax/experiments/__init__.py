"""The paper's experiments: the optimization baseline (``optimize``), the section 7.1
comparison report and the training-curve figure (``report``).

``adain-jax experiments compare|curves ...`` runs ``adain_jax.cli.experiments``.
"""
