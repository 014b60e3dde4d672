"""Runtime controls of AdaIN (paper section 7.3, the authors' ``test.lua``), all pure; one job
per submodule (listed in docs/design.md). The names below are re-exported for convenience; no
function is named like a submodule.
"""

from adain_jax.controls.buckets import pad_to_bucket
from adain_jax.controls.color import luminance_inputs, match_color, recombine_luminance
from adain_jax.controls.masks import check_labels, labels_from_mask_image, resize_labels
from adain_jax.controls.stats import (
    StyleStats,
    encode_style,
    encode_style_padded,
    normalize_weights,
    stack_stats,
)
from adain_jax.controls.tiling import needs_tiling, stylize_tiled
from adain_jax.controls.transfer import stylize, stylize_mix, stylize_with_stats
from adain_jax.nn.forward import feature_size

__all__ = [
    "StyleStats",
    "check_labels",
    "encode_style",
    "encode_style_padded",
    "feature_size",
    "labels_from_mask_image",
    "luminance_inputs",
    "match_color",
    "needs_tiling",
    "normalize_weights",
    "pad_to_bucket",
    "recombine_luminance",
    "resize_labels",
    "stack_stats",
    "stylize",
    "stylize_mix",
    "stylize_tiled",
    "stylize_with_stats",
]
