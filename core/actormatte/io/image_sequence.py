"""Image-sequence plates (EXR, DPX, TIFF, PNG, JPEG) read with OpenImageIO.

Opened by :func:`actormatte.io.plate.open_plate`. The plate's size, channel count and pixel type
come from the first frame's header; every later frame is checked against that size when read.
For EXR the plate size is the display window: pixels of the data window outside it (overscan)
are dropped and display-window pixels outside the data window are black, so every frame comes
back at the size the mattes are written at.
"""

from __future__ import annotations

import logging

import numpy as np
import OpenImageIO as oiio

from actormatte.errors import InputError
from actormatte.io.plate import Plate
from actormatte.io.sequence import SequencePattern

logger = logging.getLogger(__name__)

_FLOAT_TYPES = (oiio.HALF, oiio.FLOAT, oiio.DOUBLE)


def _open(file: str, frame: int) -> oiio.ImageInput:
    """Open a frame file; PNG/TIFF colour stays as stored (OIIO would premultiply by alpha)."""
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)
    inp = oiio.ImageInput.open(file, config)
    if inp is None:
        raise InputError(f"cannot read plate frame {frame}: {file}: {oiio.geterror()}")
    return inp


class ImageSequencePlate(Plate):
    """A numbered image sequence; frames are read on demand, one file per :meth:`read`."""

    def __init__(self, pattern: SequencePattern, *, path: str | None = None) -> None:
        """Discover the sequence's frames and read the first frame's header.

        Args:
            pattern: The parsed sequence pattern.
            path: The plate as the user spelled it (kept for messages); default the pattern.

        Raises:
            InputError: No file matches the pattern, or the first file's header is unreadable.
        """
        self.pattern = pattern
        self.path = path if path is not None else pattern.hashes()
        self.frames = pattern.discover()
        if not self.frames:
            raise InputError(
                f"no plate frames match {pattern.hashes()}; check the folder, the name and the "
                f"padding ({pattern.padding} digits)"
            )
        spec = _open_spec(self.path_for(self.frames[0]), self.frames[0])
        self.width, self.height = spec.full_width, spec.full_height
        self.channels = spec.nchannels
        self.is_float = spec.format.basetype in _FLOAT_TYPES
        self._origin = (spec.full_x, spec.full_y)

    def path_for(self, frame: int) -> str:
        """The file of ``frame``."""
        return str(self.pattern.path_for(frame))

    def read(self, frame: int) -> np.ndarray:
        """Read one frame as float32 RGB (see :meth:`Plate.read`).

        Shape:
            Returns (H, W, 3) float32.
        """
        self._check_frame(frame)
        file = self.path_for(frame)
        inp = _open(file, frame)
        try:
            spec = inp.spec()
            self._check_size(spec, file, frame)
            picks = _rgb_channels(spec)
            lo, hi = min(picks), max(picks) + 1
            pixels = inp.read_image(0, 0, lo, hi, oiio.FLOAT)
            if pixels is None:
                raise InputError(
                    f"plate frame {frame} is unreadable (truncated or corrupt?): {file}: "
                    f"{inp.geterror()}; re-render or re-copy it"
                )
        finally:
            inp.close()
        pixels = np.asarray(pixels, dtype=np.float32).reshape(
            spec.height, spec.width, hi - lo
        )  # (h, w, channels read) data window
        rgb = pixels[:, :, [p - lo for p in picks]]  # (h, w, 3)
        return self._to_display_window(rgb, spec)

    def _check_size(self, spec: oiio.ImageSpec, file: str, frame: int) -> None:
        if spec.deep:
            raise InputError(f"plate frame {frame} is a deep image: {file}; flatten it first")
        if (spec.full_width, spec.full_height) != (self.width, self.height):
            raise InputError(
                f"plate frame {frame} is {spec.full_width}x{spec.full_height} but the plate is "
                f"{self.width}x{self.height}: {file}; re-render it at the plate size"
            )

    def _to_display_window(self, rgb: np.ndarray, spec: oiio.ImageSpec) -> np.ndarray:
        """Place the data window's pixels into a display-window-sized black frame.

        Shape:
            rgb: (h, w, 3) data window. Returns (H, W, 3) display window.
        """
        full_x, full_y = self._origin
        if (spec.x, spec.y, spec.width, spec.height) == (full_x, full_y, self.width, self.height):
            return np.ascontiguousarray(rgb)
        out = np.zeros((self.height, self.width, 3), dtype=np.float32)
        x0, y0 = max(spec.x, full_x), max(spec.y, full_y)
        x1 = min(spec.x + spec.width, full_x + self.width)
        y1 = min(spec.y + spec.height, full_y + self.height)
        if x1 > x0 and y1 > y0:
            out[y0 - full_y : y1 - full_y, x0 - full_x : x1 - full_x] = rgb[
                y0 - spec.y : y1 - spec.y, x0 - spec.x : x1 - spec.x
            ]
        return out


def _open_spec(file: str, frame: int) -> oiio.ImageSpec:
    inp = _open(file, frame)
    try:
        return inp.spec()
    finally:
        inp.close()


def _rgb_channels(spec: oiio.ImageSpec) -> list[int]:
    """Indices of the channels that make RGB: R,G,B by name, else grey replicated, else 0,1,2."""
    names = [str(n).upper() for n in spec.channelnames]
    if all(c in names for c in ("R", "G", "B")):
        return [names.index("R"), names.index("G"), names.index("B")]
    if "Y" in names:
        return [names.index("Y")] * 3
    if spec.nchannels < 3:
        return [0, 0, 0]
    logger.warning("no R,G,B channels in %s; using the first three", list(spec.channelnames))
    return [0, 1, 2]
