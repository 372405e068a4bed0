"""Movie plates (.mov .mp4 .avi .mkv .m4v .webm) read with OpenCV.

Opened by :func:`actormatte.io.plate.open_plate`. Frames are numbered from ``start_frame``. Reading
in order decodes sequentially; any other access seeks with ``CAP_PROP_POS_FRAMES`` (OpenCV's FFmpeg
backend seeks to the previous key frame and decodes forward, so random access is exact but
slower). OpenCV decodes to 8-bit BGR, so a movie is never a float plate.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from actormatte.errors import InputError
from actormatte.io.plate import Plate

logger = logging.getLogger(__name__)


class MoviePlate(Plate):
    """A movie file decoded frame by frame; keeps one ``cv2.VideoCapture`` open."""

    def __init__(self, path: str, *, start_frame: int = 1) -> None:
        """Open the movie and decode its first frame to learn its size.

        Args:
            path: The movie file.
            start_frame: Plate number of the movie's first frame.

        Raises:
            InputError: The file is missing, cannot be decoded, or has no frames.
        """
        self.path = path
        self.start_frame = start_frame
        self._capture: cv2.VideoCapture | None = cv2.VideoCapture(path)
        if not self._capture.isOpened():
            raise InputError(
                f"cannot open movie {path}: missing file or a codec OpenCV cannot decode; "
                "convert it to an image sequence (e.g. ffmpeg -i IN shot.%04d.png)"
            )
        self._next_index = 0
        first = self._decode(0)
        self.height, self.width = first.shape[:2]
        self.channels = 3
        self.is_float = False
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if count <= 0:
            count = self._count_by_decoding()
        self.frames = list(range(start_frame, start_frame + count))
        self._rewind()

    def _rewind(self) -> None:
        """Go back to the first frame so that a read from the start never seeks."""
        if self._next_index != 0 and self._capture is not None:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0.0)
            self._next_index = 0

    def path_for(self, frame: int) -> str:
        """The movie file (every frame lives in it)."""
        return self.path

    def read(self, frame: int) -> np.ndarray:
        """Decode one frame as float32 RGB in 0..1 (see :meth:`Plate.read`).

        Shape:
            Returns (H, W, 3) float32.
        """
        self._check_frame(frame)
        bgr = self._decode(frame - self.start_frame)
        if bgr.shape[:2] != (self.height, self.width):
            raise InputError(
                f"movie frame {frame} is {bgr.shape[1]}x{bgr.shape[0]} but the movie is "
                f"{self.width}x{self.height}: {self.path}; convert it to an image sequence"
            )
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # (H, W, 3) uint8 (uint16 for some codecs)
        scale = 65535.0 if rgb.dtype == np.uint16 else 255.0
        return rgb.astype(np.float32) * np.float32(1.0 / scale)

    def close(self) -> None:
        """Release the decoder (idempotent)."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def _decode(self, index: int) -> np.ndarray:
        """Decode frame ``index`` (0-based): sequentially when it is the next one, else seek."""
        if self._capture is None:
            raise InputError(f"movie {self.path} was closed; open the plate again")
        if index != self._next_index:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, float(index))
        ok, image = self._capture.read()
        if not ok or image is None:
            self._next_index = -1
            raise InputError(
                f"cannot decode frame {index + self.start_frame} of movie {self.path} (truncated "
                "or corrupt?); re-export it or convert it to an image sequence"
            )
        self._next_index = index + 1
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)  # (H, W) -> (H, W, 3)
        return np.asarray(image)

    def _count_by_decoding(self) -> int:
        """Frame count for containers that do not report one: decode to the end once."""
        logger.info("movie %s reports no frame count; counting by decoding", self.path)
        assert self._capture is not None
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0.0)
        count = 0
        while self._capture.grab():
            count += 1
        self._next_index = count
        if count == 0:
            raise InputError(f"movie {self.path} has no frames")
        return count
