"""Reading plates: sequence patterns, image-sequence and movie readers, colour conversion.

The pipeline and the CLI import from here: :func:`open_plate` opens a plate (pattern, frame file
or movie), :class:`Plate` reads frames as float32 RGB, :class:`ColourConverter` turns them into
the networks' sRGB-encoded input. ``colour`` imports OpenColorIO lazily, on first conversion.
"""

from actormatte.io.colour import (
    SCENE_LINEAR,
    SRGB,
    ColourConverter,
    default_input_colorspace,
    quantise_uint8,
    soft_clip,
)
from actormatte.io.image_sequence import ImageSequencePlate
from actormatte.io.movie import MoviePlate
from actormatte.io.plate import IMAGE_EXTENSIONS, MOVIE_EXTENSIONS, Plate, open_plate
from actormatte.io.sequence import SequencePattern, parse_plate_pattern

__all__ = [
    "IMAGE_EXTENSIONS",
    "MOVIE_EXTENSIONS",
    "SCENE_LINEAR",
    "SRGB",
    "ColourConverter",
    "ImageSequencePlate",
    "MoviePlate",
    "Plate",
    "SequencePattern",
    "default_input_colorspace",
    "open_plate",
    "parse_plate_pattern",
    "quantise_uint8",
    "soft_clip",
]
