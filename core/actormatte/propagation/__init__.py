"""XMem mask propagation: the network, its memory and a frame-by-frame processor.

Public API: :func:`load_xmem` -> :class:`XMemNet`; :class:`XMemConfig`;
:class:`XMemProcessor` (``set_all_labels``, ``step``, ``snapshot``/``restore``) and the eval.py
preprocessing helpers. See docs/PROPAGATION.md.
"""

from actormatte.propagation.config import XMemConfig, count_usage_for_shot
from actormatte.propagation.loading import (
    build_xmem,
    dims_from_state_dict,
    load_xmem,
    remap_value_encoder_input,
)
from actormatte.propagation.memory import KVStore, MemoryManager, MemoryState
from actormatte.propagation.network import XMemDims, XMemNet, soft_aggregate
from actormatte.propagation.preprocess import (
    normalise_frame,
    resize_for_xmem,
    resize_mask_for_xmem,
    resize_mask_to,
    upsample_prob,
    xmem_image_size,
    xmem_mask_size,
)
from actormatte.propagation.processor import StepInfo, XMemProcessor, XMemState

__all__ = [
    "KVStore",
    "MemoryManager",
    "MemoryState",
    "StepInfo",
    "XMemConfig",
    "XMemDims",
    "XMemNet",
    "XMemProcessor",
    "XMemState",
    "build_xmem",
    "count_usage_for_shot",
    "dims_from_state_dict",
    "load_xmem",
    "normalise_frame",
    "remap_value_encoder_input",
    "resize_for_xmem",
    "resize_mask_for_xmem",
    "resize_mask_to",
    "soft_aggregate",
    "upsample_prob",
    "xmem_image_size",
    "xmem_mask_size",
]
