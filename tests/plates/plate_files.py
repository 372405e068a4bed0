"""Synthetic VFX plate files for the plate tests: EXR frames with windows, pixel aspect, headers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio


def write_exr(path: Path, pixels: np.ndarray, *, origin: tuple[int, int] = (0, 0),
              display: tuple[int, int, int, int] | None = None, pixel_aspect: float = 1.0,
              channels: Sequence[str] = ("R", "G", "B"),
              attributes: Mapping[str, tuple[Any, Any]] | None = None) -> None:
    """Write ``pixels`` (h, w, C) float as the data window at ``origin`` of a ``display`` window."""
    height, width = pixels.shape[:2]
    spec = oiio.ImageSpec(width, height, pixels.shape[2], oiio.HALF)
    spec.channelnames = tuple(channels)
    spec.x, spec.y = origin
    full = display or (origin[0], origin[1], width, height)
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = full
    spec.attribute("PixelAspectRatio", float(pixel_aspect))
    for name, (kind, value) in (attributes or {}).items():
        spec.attribute(name, oiio.TypeDesc(kind), value)
    out = oiio.ImageOutput.create(str(path))
    assert out is not None and out.open(str(path), spec), oiio.geterror()
    assert out.write_image(np.ascontiguousarray(pixels, dtype=np.float32))
    out.close()


def read_spec(path: Path) -> Any:
    """The ImageSpec of a file."""
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None, oiio.geterror()
    try:
        return inp.spec()
    finally:
        inp.close()


def timecode(frame: int) -> tuple[str, tuple[int, int]]:
    """An SMPTE timecode attribute 01:00:00:ff (BCD packed) for frame ``ff`` in 0..23."""
    bcd = ((frame // 10) << 4) | (frame % 10)
    return "timecode", (0x01000000 | bcd, 0)
