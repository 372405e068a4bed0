"""Plate readers: image sequences through OpenImageIO, movies through OpenCV.

Called by the pipeline (propagation and matting read frames one at a time) and by the CLI (to
check a frame range before anything is written). Readers stream: they keep no frame cache, so
memory does not grow with the shot. Every reader returns the frame as stored, converted only to
float32 RGB: integer files scaled to 0..1, float files untouched (colour conversion is
:mod:`actormatte.io.colour`'s job).

Frame numbers are the plate's own: a sequence keeps the numbers in its file names, a movie
numbers its frames from ``start_frame`` (1 by default, the CLI's ``--start-frame``).
"""

from __future__ import annotations

import abc
import bisect
import logging
import os
from types import TracebackType

import numpy as np

from actormatte.errors import InputError
from actormatte.io.geometry import PlateGeometry
from actormatte.io.sequence import parse_plate_pattern

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".exr", ".dpx", ".tif", ".tiff", ".png", ".jpg", ".jpeg")
MOVIE_EXTENSIONS = (".mov", ".mp4", ".avi", ".mkv", ".m4v", ".webm")


class Plate(abc.ABC):
    """A shot's frames, read one at a time.

    Attributes:
        path: The plate as the user gave it (pattern or movie path).
        frames: Sorted plate frame numbers that exist.
        width: Frame width in pixels: the working window's (:mod:`.geometry`; with overscan,
            the data window's), what :meth:`read` returns and the mattes cover.
        height: Frame height in pixels.
        is_float: Pixels are stored as float (half/float EXR, float TIFF), i.e. scene-referred.
        channels: Number of channels stored in the files (1 grey, 3 RGB, 4 RGBA, ...).
        header: Colour-related attributes of the first frame's header (``oiio:ColorSpace``,
            ``chromaticities``, ``dpx:Transfer``...), for the colour default.
    """

    path: str
    frames: list[int]
    width: int
    height: int
    is_float: bool
    channels: int
    header: dict[str, object] = {}  # noqa: RUF012 - readers replace it, never mutate it
    _geometry: PlateGeometry | None = None

    @property
    def geometry(self) -> PlateGeometry:
        """Windows and pixel aspect (full frame, square pixels unless the reader knows more)."""
        if self._geometry is None:
            return PlateGeometry.full_frame(self.width, self.height)
        return self._geometry

    @geometry.setter
    def geometry(self, value: PlateGeometry) -> None:
        self._geometry = value

    @property
    def pixel_aspect(self) -> float:
        """Pixel width / pixel height."""
        return self.geometry.pixel_aspect

    def carried_attributes(self, frame: int) -> list[tuple[str, object, object]]:
        """Header attributes of ``frame`` that the mattes copy (timecode, frame rate)."""
        return []

    @abc.abstractmethod
    def read(self, frame: int) -> np.ndarray:
        """Read one frame as float32 RGB.

        Shape:
            Returns (H, W, 3) float32: integer formats scaled to 0..1, float formats as stored,
            grey replicated to three channels, alpha dropped.

        Raises:
            InputError: The frame is not in the plate, its file is unreadable or truncated, or its
                size differs from the plate's.
        """

    @abc.abstractmethod
    def path_for(self, frame: int) -> str:
        """The file that holds ``frame`` (for a movie, the movie itself)."""

    def close(self) -> None:  # noqa: B027 - optional hook, readers without resources keep it
        """Release the file handles the reader holds (idempotent)."""

    @property
    def first(self) -> int:
        """First plate frame."""
        return self.frames[0]

    @property
    def last(self) -> int:
        """Last plate frame."""
        return self.frames[-1]

    def check_range(self, first: int, last: int) -> None:
        """Check that every frame of ``first..last`` exists before any work starts.

        Raises:
            InputError: The range is empty, leaves the plate, or a frame inside it is missing;
                the message names the first missing frame's file and a range that works.
        """
        if first > last:
            raise InputError(f"frame range {first}-{last} is empty; give --frames A-B with A <= B")
        if first < self.first or last > self.last:
            raise InputError(
                f"frames {first}-{last} are outside the plate's range {self.first}-{self.last} "
                f"({self.path}); pass --frames within {self.first}-{self.last}"
            )
        present = set(self.frames)
        missing = next((f for f in range(first, last + 1) if f not in present), None)
        if missing is None:
            return
        raise InputError(
            f"plate frame {missing} is missing: {self.path_for(missing)}; render it or pass "
            f"--frames {_working_range(present, first, last, missing)}"
        )

    def __enter__(self) -> Plate:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        span = f"{self.first}-{self.last}" if self.frames else "empty"
        return f"{type(self).__name__}({self.path!r}, frames {span}, {self.width}x{self.height})"

    def _check_frame(self, frame: int) -> None:
        index = bisect.bisect_left(self.frames, frame)
        if index == len(self.frames) or self.frames[index] != frame:
            raise InputError(
                f"frame {frame} is not in the plate {self.path} "
                f"(frames {self.first}-{self.last}); pass --frames within the plate"
            )


def _working_range(present: set[int], first: int, last: int, missing: int) -> str:
    """A contiguous sub-range of ``first..last`` with no missing frame, to suggest as a fix."""
    if missing > first:
        return f"{first}-{missing - 1}"
    start = next((f for f in range(missing + 1, last + 1) if f in present), None)
    if start is None:
        return "within the frames that exist"
    end = start
    while end + 1 <= last and end + 1 in present:
        end += 1
    return f"{start}-{end}"


def open_plate(path: str | os.PathLike[str], *, start_frame: int = 1) -> Plate:
    """Open a plate: a movie by its extension, otherwise an image sequence.

    Args:
        path: Sequence pattern (``shot.####.exr``, ``shot.%04d.exr``, ``shot.@@@@.exr``), an
            existing frame file of a sequence, or a movie (``.mov .mp4 .avi .mkv .m4v .webm``).
        start_frame: Number of a movie's first frame; ignored for sequences, which keep the
            numbers in their file names.

    Raises:
        InputError: Unsupported extension, no frames found, or the first frame is unreadable.
    """
    text = os.fspath(path)
    ext = os.path.splitext(text)[1].lower()
    if ext in MOVIE_EXTENSIONS:
        from actormatte.io.movie import MoviePlate

        return MoviePlate(text, start_frame=start_frame)
    pattern = parse_plate_pattern(text)
    if pattern.extension not in IMAGE_EXTENSIONS:
        raise InputError(
            f"{text}: unsupported plate format '{pattern.extension}'; use an EXR, DPX, TIFF, PNG "
            f"or JPEG sequence, or a movie ({' '.join(MOVIE_EXTENSIONS)})"
        )
    from actormatte.io.image_sequence import ImageSequencePlate

    return ImageSequencePlate(pattern, path=text)


