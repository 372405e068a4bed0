"""Image-sequence plates (EXR, DPX, TIFF, PNG, JPEG) read with OpenImageIO.

Opened by :func:`actormatte.io.plate.open_plate`. The plate's geometry (windows, pixel aspect),
channel count and pixel type come from the first frame's header; every later frame is checked
against its display window when read. Frames come back over the plate's working window
(:mod:`actormatte.io.geometry`: the first frame's data window united with the display window),
so overscan is kept and the mattes are written over the same window.
"""

from __future__ import annotations

import logging

import numpy as np
import OpenImageIO as oiio

from actormatte.errors import InputError
from actormatte.io.geometry import PlateGeometry, Window, place, spec_windows
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
        self.geometry = PlateGeometry.from_spec(spec)
        self.width, self.height = self.geometry.data.size
        self.channels = spec.nchannels
        self.is_float = spec.format.basetype in _FLOAT_TYPES
        self.header = spec_metadata(spec)
        self._headers: tuple[int, list[tuple[str, object, object]]] | None = None
        self._warned_outside = False

    def path_for(self, frame: int) -> str:
        """The file of ``frame``."""
        return str(self.pattern.path_for(frame))

    def read(self, frame: int) -> np.ndarray:
        """Read one frame as float32 RGB (see :meth:`Plate.read`).

        Shape:
            Returns (H, W, 3) float32.
        """
        return self._read(frame, keep_uint8=False)

    def read_uint8_or_float(self, frame: int) -> np.ndarray:
        """Read one frame: an 8-bit file's values as stored, any other file as :meth:`read`.

        For a plate whose colour conversion is the identity, the stored bytes are exactly what
        converting and quantising :meth:`read`'s ``v / 255`` gives back, without the float
        passes (``Shot.decode_uint8``). Decided per file, so a later frame of another depth is
        still read as float.

        Shape:
            Returns (H, W, 3) uint8 for an 8-bit file, else (H, W, 3) float32.
        """
        return self._read(frame, keep_uint8=True)

    def _read(self, frame: int, keep_uint8: bool) -> np.ndarray:
        self._check_frame(frame)
        file = self.path_for(frame)
        inp = _open(file, frame)
        try:
            spec = inp.spec()
            self._check_size(spec, file, frame)
            picks = _rgb_channels(spec)
            lo, hi = min(picks), max(picks) + 1
            stored = keep_uint8 and spec.format.basetype == oiio.UINT8 and not spec.channelformats
            pixel_type = oiio.UINT8 if stored else oiio.FLOAT
            pixels = inp.read_image(0, 0, lo, hi, pixel_type)
            if pixels is None:
                raise InputError(
                    f"plate frame {frame} is unreadable (truncated or corrupt?): {file}: "
                    f"{inp.geterror()}; re-render or re-copy it"
                )
            self._headers = (frame, carried_attributes(spec))
        finally:
            inp.close()
        pixels = np.asarray(pixels, dtype=np.uint8 if stored else np.float32).reshape(
            spec.height, spec.width, hi - lo
        )  # (h, w, channels read) data window
        rgb = _pick_channels(pixels, [p - lo for p in picks])  # (h, w, 3)
        return self._to_working_window(rgb, spec, file)

    def carried_attributes(self, frame: int) -> list[tuple[str, object, object]]:
        """Header attributes of ``frame`` the mattes copy (timecode, frame rate).

        Returns:
            ``(name, OIIO TypeDesc, value)`` triples, empty when the file has none.
        """
        if self._headers is not None and self._headers[0] == frame:
            return self._headers[1]
        return carried_attributes(_open_spec(self.path_for(frame), frame))

    def _check_size(self, spec: oiio.ImageSpec, file: str, frame: int) -> None:
        if spec.deep:
            raise InputError(f"plate frame {frame} is a deep image: {file}; flatten it first")
        display = spec_windows(spec)[1]
        if display != self.geometry.display:
            plate = self.geometry.display
            raise InputError(
                f"plate frame {frame} is {display.width}x{display.height} but the plate is "
                f"{plate.width}x{plate.height} (display windows {display}, {plate}): {file}; "
                "re-render it at the plate size"
            )

    def _to_working_window(self, rgb: np.ndarray, spec: oiio.ImageSpec, file: str) -> np.ndarray:
        """Place the data window's pixels in the plate's working window (black elsewhere).

        Shape:
            rgb: (h, w, 3) data window. Returns (H, W, 3), the working window.
        """
        data = Window(spec.x, spec.y, spec.width, spec.height)
        if not self.geometry.data.contains(data) and not self._warned_outside:
            self._warned_outside = True
            logger.warning("%s: data window %s reaches outside the plate's %s (the first "
                           "frame's data window and the display); those pixels are not matted",
                           file, data, self.geometry.data)
        return place(rgb, data, self.geometry.data)


def _pick_channels(pixels: np.ndarray, order: list[int]) -> np.ndarray:
    """``pixels[:, :, order]`` as one C-contiguous array, in one pass.

    Fancy indexing would return a channel-major (non-contiguous) result that the working-window
    step copies again; the channels read are often already R, G, B in order (no copy at all).

    Shape:
        pixels: (h, w, C); returns (h, w, len(order)).
    """
    if order == list(range(pixels.shape[2])):
        return pixels
    out = np.empty((*pixels.shape[:2], len(order)), dtype=pixels.dtype)
    for channel, source in enumerate(order):
        out[:, :, channel] = pixels[:, :, source]
    return out


def _open_spec(file: str, frame: int) -> oiio.ImageSpec:
    inp = _open(file, frame)
    try:
        return inp.spec()
    finally:
        inp.close()


_CARRIED = ("smpte:TimeCode", "FramesPerSecond", "smpte:KeyCode")
_COLOUR_KEYS = ("oiio:ColorSpace", "chromaticities", "dpx:Transfer", "dpx:Colorimetric",
                "oiio:BitsPerSample", "oiio:Gamma")


def carried_attributes(spec: oiio.ImageSpec) -> list[tuple[str, object, object]]:
    """The attributes of a plate header that mattes carry: ``(name, TypeDesc, value)``."""
    return [(str(a.name), a.type, a.value) for a in spec.extra_attribs
            if str(a.name) in _CARRIED]


def spec_metadata(spec: oiio.ImageSpec) -> dict[str, object]:
    """The colour-related header attributes of a plate frame (for the colour default)."""
    return {str(a.name): a.value for a in spec.extra_attribs if str(a.name) in _COLOUR_KEYS}


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
