"""Image geometry of the stand-in ``nuke``: ``Format``, bbox ``Box``, and reading files as Nuke.

What Nuke does with an EXR (Foundry's Read node and OpenEXR docs; docs/NUKE.md lists what a real
Nuke must confirm):
- the Read's format is the file's display window (its width and height) with the file's
  ``pixelAspectRatio`` as the format's pixel aspect;
- its bbox is the data window, in Nuke's coordinates: x to the right from the display window's
  left edge, y UP from its bottom edge (EXR pixel space has y down), so an EXR pixel row
  ``ey`` is Nuke row ``display.yMax - ey``; a bbox may extend past the format (overscan) or lie
  inside it;
- ``Node.sample(channel, x, y)`` without ``dx``/``dy`` returns the value of the pixel that
  ``(x, y)`` lands in ("integers are at the corners of pixels, to center on a pixel add .5",
  ``nuke.sample`` reference). Outside a Read's bbox the stand-in returns 0 (a real Read repeats
  its edge pixels or, with the EXR reader's "edge pixels" black border, 0: see docs/NUKE.md).
Other files (PNG, TIFF, DPX plates): format = bbox = the image size, square pixels.
Pixels are read with OpenImageIO from the test venv; the plugin itself never needs it.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import Any

from . import exr_channels

ROOT_FORMAT = (1920, 1080)   # Nuke's default project format, HD_1080


@dataclass(frozen=True)
class Box:
    """A Nuke rectangle ``x, y, r, t`` (left, bottom, right, top; r and t exclusive)."""

    _x: int
    _y: int
    _r: int
    _t: int

    def x(self) -> int:
        return self._x

    def y(self) -> int:
        return self._y

    def r(self) -> int:
        return self._r

    def t(self) -> int:
        return self._t

    def w(self) -> int:
        return self._r - self._x

    def h(self) -> int:
        return self._t - self._y

    def union(self, other: Box) -> Box:
        return Box(min(self._x, other._x), min(self._y, other._y), max(self._r, other._r),
                   max(self._t, other._t))

    def intersection(self, other: Box) -> Box:
        x, y = max(self._x, other._x), max(self._y, other._y)
        return Box(x, y, max(x, min(self._r, other._r)), max(y, min(self._t, other._t)))

    def contains(self, x: float, y: float) -> bool:
        return self._x <= x < self._r and self._y <= y < self._t


@dataclass(frozen=True)
class Format:
    """``nuke.Format``: ``width()``, ``height()``, ``pixelAspect()``, ``x/y/r/t`` (image area)."""

    _width: int
    _height: int
    _pixel_aspect: float = 1.0
    _name: str = ""

    def width(self) -> int:
        return self._width

    def height(self) -> int:
        return self._height

    def pixelAspect(self) -> float:  # noqa: N802 - Nuke's spelling
        return self._pixel_aspect

    def name(self) -> str:
        return self._name

    def x(self) -> int:
        return 0

    def y(self) -> int:
        return 0

    def r(self) -> int:
        return self._width

    def t(self) -> int:
        return self._height


def root_format() -> Format:
    return Format(*ROOT_FORMAT, 1.0, "HD_1080")


def file_geometry(path: str) -> tuple[Format, Box]:
    """The format and bbox a Read of ``path`` has (module docstring)."""
    return _geometry(path, os.stat(path).st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _geometry(path: str, _mtime: int) -> tuple[Format, Box]:
    if path.lower().endswith(".exr"):
        header = exr_channels.read_exr_header(path)
        dx0, dy0, dx1, dy1 = header.display_window
        x0, y0, x1, y1 = header.data_window
        fmt = Format(dx1 - dx0 + 1, dy1 - dy0 + 1, header.pixel_aspect)
        return fmt, Box(x0 - dx0, dy1 - y1, x1 - dx0 + 1, dy1 - y0 + 1)
    import OpenImageIO as oiio

    spec = oiio.ImageInput.open(path).spec()
    return Format(spec.width, spec.height), Box(0, 0, spec.width, spec.height)


def sample_file(path: str, nuke_channel: str, x: float, y: float) -> float:
    """The value of ``nuke_channel`` at Nuke pixel ``(x, y)`` of a Read of ``path``."""
    _, bbox = file_geometry(path)
    if not bbox.contains(x, y):
        return 0.0
    names, pixels = _pixels(path, os.stat(path).st_mtime_ns)
    if nuke_channel not in names:
        return 0.0
    # pixels: (h, w, C) over the data window, top row first (EXR y down, Nuke y up)
    row, column = bbox.t() - 1 - math.floor(y), math.floor(x) - bbox.x()
    return float(pixels[row, column, names.index(nuke_channel)])


@functools.lru_cache(maxsize=32)
def _pixels(path: str, _mtime: int) -> tuple[list[str], Any]:
    """Nuke channel names and the (h, w, C) float32 pixels of the data window."""
    import OpenImageIO as oiio

    buf = oiio.ImageBuf(path)
    spec = buf.spec()
    exr = path.lower().endswith(".exr")
    names = [exr_channels.nuke_channel_name(str(n)) if exr
             else "rgba." + ("red", "green", "blue", "alpha")[i]
             for i, n in enumerate(spec.channelnames)]
    return names, buf.get_pixels(oiio.FLOAT)
