"""The choices of ``infer.py``'s flags that need no JAX (``plan`` and the command line
share them; the flags are checked before JAX is imported)."""

PRESERVE_MODES = ("coral", "luminance")
NEVER_TILE = 1 << 30  # --max-tile 0
IMAGE_EXTS = (".png", ".jpg", ".jpeg")  # --save-ext: default-named image outputs
