"""Writing mattes: EXR layer names, the atomic per-frame EXR writer and its resume checks.

The pipeline validates actor names with :func:`make_layer_names` and the output location with
:func:`check_output_collision` and :meth:`MatteWriter.check_writable` before any work, then writes
one :class:`MatteFrame` per plate frame with :class:`MatteWriter`.
"""

from actormatte.export.collision import check_output_collision
from actormatte.export.exr import UNION_CHANNEL, MatteFrame, MatteWriter
from actormatte.export.exr_files import METADATA_PREFIX, read_matte_exr
from actormatte.export.layers import (
    LAYER_NAME_RE,
    channel_name,
    make_layer_names,
    sanitise_layer_name,
)

__all__ = [
    "LAYER_NAME_RE",
    "METADATA_PREFIX",
    "UNION_CHANNEL",
    "MatteFrame",
    "MatteWriter",
    "channel_name",
    "check_output_collision",
    "make_layer_names",
    "read_matte_exr",
    "sanitise_layer_name",
]
