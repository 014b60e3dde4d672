"""The optimization baseline's choices (``experiments.optimize``), without JAX: the command
lines check their flags with these before importing JAX."""

OBJECTIVES = ("gatys", "adain")
OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")
