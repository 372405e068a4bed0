"""Plate geometry: data and display windows, pixel aspect, and placing pixels between windows.

Used by the plate readers (:mod:`.image_sequence` fills a :class:`PlateGeometry` from the first
frame's header), the mask reader (:mod:`actormatte.masks.mask_files` places a mask's data window in
the plate's) and the EXR writer (:mod:`actormatte.export.exr` writes the plate's windows and
pixel aspect). Coordinates are OpenEXR/OpenImageIO pixel coordinates: a window is ``x, y`` (its
top-left pixel, may be negative) and ``width x height``; OIIO's ``ImageSpec`` calls the data window
``x, y, width, height`` and the display window ``full_x, full_y, full_width, full_height``.

The plate's *working window* is what the mattes cover: the union of the first frame's data window
and the display window. An overscan plate (data window larger than the display) is therefore
matted over its whole data window; a plate whose data window lies inside the display (an
auto-cropped render) is matted over the display, black where it has no data. Every frame read is
placed in the working window (pixels of a later frame outside it are dropped with a warning).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """A pixel rectangle: top-left ``(x, y)`` and size."""

    x: int
    y: int
    width: int
    height: int

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return self.width, self.height

    def union(self, other: Window) -> Window:
        """The smallest window holding both."""
        x0, y0 = min(self.x, other.x), min(self.y, other.y)
        x1 = max(self.x + self.width, other.x + other.width)
        y1 = max(self.y + self.height, other.y + other.height)
        return Window(x0, y0, x1 - x0, y1 - y0)

    def contains(self, other: Window) -> bool:
        """Whether ``other`` lies inside this window."""
        return (self.x <= other.x and self.y <= other.y
                and other.x + other.width <= self.x + self.width
                and other.y + other.height <= self.y + self.height)

    def __str__(self) -> str:
        return f"{self.width}x{self.height}{self.x:+d}{self.y:+d}"


@dataclass(frozen=True)
class PlateGeometry:
    """Where a plate's pixels are.

    Attributes:
        data: The working window: what plate reads return and mattes cover (module docstring).
        display: The display window (the delivered format).
        pixel_aspect: Pixel width / pixel height (2.0 for 2:1 anamorphic).
        plate_data: The first frame's own data window, what a host that shows only the data
            window (Blender) draws; None when not known (then take ``data``). Not compared.
    """

    data: Window
    display: Window
    pixel_aspect: float = 1.0
    plate_data: Window | None = field(default=None, compare=False)

    @classmethod
    def full_frame(cls, width: int, height: int, pixel_aspect: float = 1.0) -> PlateGeometry:
        """Data = display window at (0, 0): movies, PNG/JPEG/TIFF/DPX without windows."""
        window = Window(0, 0, width, height)
        return cls(window, window, pixel_aspect)

    @classmethod
    def from_spec(cls, spec: Any) -> PlateGeometry:
        """The geometry of an OIIO ``ImageSpec`` (working window = data union display)."""
        data, display = spec_windows(spec)
        aspect = float(spec.get_float_attribute("PixelAspectRatio", 1.0) or 1.0)
        return cls(data.union(display), display, aspect if aspect > 0 else 1.0, data)

    @property
    def is_full_frame(self) -> bool:
        """Data window = display window at the origin, square pixels."""
        return (self.data == self.display and (self.data.x, self.data.y) == (0, 0)
                and self.pixel_aspect == 1.0)

    def apply_to(self, spec: Any) -> None:
        """Write this geometry (windows, ``PixelAspectRatio``) into an output ``ImageSpec``."""
        spec.x, spec.y = self.data.x, self.data.y
        spec.full_x, spec.full_y = self.display.x, self.display.y
        spec.full_width, spec.full_height = self.display.width, self.display.height
        spec.attribute("PixelAspectRatio", float(self.pixel_aspect))


def spec_windows(spec: Any) -> tuple[Window, Window]:
    """``(data window, display window)`` of an OIIO ``ImageSpec``."""
    data = Window(int(spec.x), int(spec.y), int(spec.width), int(spec.height))
    display = Window(int(spec.full_x), int(spec.full_y), int(spec.full_width),
                     int(spec.full_height))
    return data, display


def place(pixels: np.ndarray, source: Window, target: Window) -> np.ndarray:
    """Copy pixels stored over ``source`` into a zero array over ``target``.

    Shape:
        pixels: (source.height, source.width, ...); returns (target.height, target.width, ...)
        of the same dtype. Pixels of ``source`` outside ``target`` are dropped.
    """
    if source == target:
        return np.ascontiguousarray(pixels)
    out = np.zeros((target.height, target.width, *pixels.shape[2:]), dtype=pixels.dtype)
    x0, y0 = max(source.x, target.x), max(source.y, target.y)
    x1 = min(source.x + source.width, target.x + target.width)
    y1 = min(source.y + source.height, target.y + target.height)
    if x1 > x0 and y1 > y0:
        out[y0 - target.y:y1 - target.y, x0 - target.x:x1 - target.x] = pixels[
            y0 - source.y:y1 - source.y, x0 - source.x:x1 - source.x]
    return out


class PlateSpace(tuple[int, int]):
    """The plate's ``(width, height)`` that also carries its :class:`PlateGeometry`.

    The keyframe loader passes the plate size through to the mask readers as a plain tuple; this
    subclass compares and unpacks as ``(width, height)`` of the working window while letting
    :mod:`actormatte.masks.mask_files` place a mask's data window in plate coordinates.
    """

    geometry: PlateGeometry

    def __new__(cls, geometry: PlateGeometry) -> PlateSpace:
        """Wrap ``geometry``; the tuple is its working window's ``(width, height)``."""
        self = super().__new__(cls, geometry.data.size)
        self.geometry = geometry
        return self

    def __getnewargs__(self) -> tuple[PlateGeometry]:  # type: ignore[override,unused-ignore]
        return (self.geometry,)
