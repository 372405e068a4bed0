"""Quality measured the way the matting papers measure it: MaGGIe's metrics and InstMatt's IMQ.

Used by ``actormatte eval``. :func:`evaluate` scores a predicted alpha sequence against ground
truth; :mod:`maggie_metrics` holds the per-map and per-clip formulas, :mod:`imq` the instance
matching, :mod:`sequences` the readers and :mod:`plot` the per-frame error curves.
"""

from actormatte.evaluation.evaluate import CLIP_METRICS, FRAME_METRICS, evaluate
from actormatte.evaluation.sequences import (
    AlphaSequence,
    open_exr_sequence,
    open_layer_sequences,
    parse_layer_patterns,
)

__all__ = ["CLIP_METRICS", "FRAME_METRICS", "AlphaSequence", "evaluate", "open_exr_sequence",
           "open_layer_sequences", "parse_layer_patterns"]
