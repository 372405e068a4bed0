"""Movie plates (.mov .mp4 .avi .mkv .m4v .webm) read with OpenCV.

Opened by :func:`actormatte.io.plate.open_plate`. Frames are numbered from ``start_frame``.
OpenCV decodes to 8-bit BGR, so a movie is never a float plate.

Seeking. ``cv2.CAP_PROP_POS_FRAMES`` is not frame-exact for every codec: with long-GOP H.264/HEVC
(B-frames, non-zero start times) OpenCV's FFmpeg backend can return a frame a few frames off the
one asked for (opencv/opencv#9053, open). A farm chunk that starts mid-shot must see the same
pixels as a single-machine run, so the default ``exact_seek=True`` never uses it:

- reading in order decodes sequentially (the fast path: XMem propagation);
- the last ``cache_frames`` decoded frames are kept, so the short backward steps of overlapping
  matting windows cost nothing (8 HD frames are 50 MB; the cache never grows past that);
- a forward jump decodes (``grab``) up to the target; a longer backward jump reopens the movie
  and decodes from the start. Exact, and slow only for random access into long movies.

``exact_seek=False`` seeks with ``CAP_PROP_POS_FRAMES`` (fast, exact for intra-only codecs such
as MJPEG and ProRes).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import cv2
import numpy as np

from actormatte.errors import InputError
from actormatte.io.geometry import PlateGeometry
from actormatte.io.plate import Plate

logger = logging.getLogger(__name__)


class MoviePlate(Plate):
    """A movie file decoded frame by frame; keeps one ``cv2.VideoCapture`` open."""

    def __init__(
        self,
        path: str,
        *,
        start_frame: int = 1,
        exact_seek: bool = True,
        cache_frames: int = 8,
    ) -> None:
        """Open the movie and decode its first frame to learn its size.

        Args:
            path: The movie file.
            start_frame: Plate number of the movie's first frame.
            exact_seek: Seek by decoding (frame-exact, see the module docstring) instead of
                ``CAP_PROP_POS_FRAMES``.
            cache_frames: Recently decoded frames kept for short backward steps (exact mode).

        Raises:
            InputError: The file is missing, cannot be decoded, or has no frames; or
                ``start_frame`` is negative (outputs would mix ``-001`` with ``0000``).
        """
        if start_frame < 0:
            raise InputError(
                f"--start-frame {start_frame}: a movie's frames are written as <name>.####.exr "
                "and negative numbers would mix names like -001 with 0000; use --start-frame 0 "
                "or more, or convert the movie to an image sequence numbered as you need"
            )
        self.path = path
        self.start_frame = start_frame
        self.exact_seek = exact_seek
        self._cache_size = max(cache_frames, 0) if exact_seek else 0
        self._recent: OrderedDict[int, np.ndarray] = OrderedDict()
        self._capture: cv2.VideoCapture | None = None
        self._open()
        first = self._decode(0)
        self.height, self.width = first.shape[:2]
        self.channels = 3
        self.is_float = False
        assert self._capture is not None
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if count <= 0:
            count = self._count_by_decoding()
        self.frames = list(range(start_frame, start_frame + count))
        num = self._capture.get(cv2.CAP_PROP_SAR_NUM)
        den = self._capture.get(cv2.CAP_PROP_SAR_DEN)
        aspect = num / den if num > 0 and den > 0 else 1.0  # the stream's sample aspect ratio
        self.geometry = PlateGeometry.full_frame(self.width, self.height, aspect)

    def path_for(self, frame: int) -> str:
        """The movie file (every frame lives in it)."""
        return self.path

    def read(self, frame: int) -> np.ndarray:
        """Decode one frame as float32 RGB in 0..1 (see :meth:`Plate.read`).

        Shape:
            Returns (H, W, 3) float32.
        """
        self._check_frame(frame)
        if self._capture is None:
            raise InputError(f"movie {self.path} was closed; open the plate again")
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
        """Release the decoder and the recent-frame cache (idempotent)."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        self._recent.clear()

    def _open(self) -> None:
        if self._capture is not None:
            self._capture.release()
        self._capture = cv2.VideoCapture(self.path)
        self._next_index = 0
        if not self._capture.isOpened():
            raise InputError(
                f"cannot open movie {self.path}: missing file or a codec OpenCV cannot decode; "
                "convert it to an image sequence (e.g. ffmpeg -i IN shot.%04d.png)"
            )

    def _decode(self, index: int) -> np.ndarray:
        """Decode frame ``index`` (0-based), sequentially when it is the next one.

        Shape:
            Returns (H, W, 3) uint8 BGR.
        """
        cached = self._recent.get(index)
        if cached is not None:
            return cached
        assert self._capture is not None
        if index != self._next_index:
            self._seek(index)
        ok, image = self._capture.read()
        if not ok or image is None:
            raise self._decode_error(index)
        self._next_index = index + 1
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)  # (H, W) -> (H, W, 3)
        if self._cache_size:
            self._recent[index] = image
            while len(self._recent) > self._cache_size:
                self._recent.popitem(last=False)
        return np.asarray(image)

    def _seek(self, index: int) -> None:
        """Position the decoder so that the next ``read`` returns frame ``index``."""
        assert self._capture is not None
        if not self.exact_seek:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, float(index))
            return
        if index < self._next_index or self._next_index < 0:
            logger.debug("movie %s: frame %d is behind the decoder; reopening", self.path, index)
            self._open()
        while self._next_index < index:
            if not self._capture.grab():
                raise self._decode_error(self._next_index)
            self._next_index += 1

    def _decode_error(self, index: int) -> InputError:
        self._next_index = -1  # unknown position: the next read seeks
        return InputError(
            f"cannot decode frame {index + self.start_frame} of movie {self.path} (truncated "
            "or corrupt?); re-export it or convert it to an image sequence"
        )

    def _count_by_decoding(self) -> int:
        """Frame count for containers that do not report one: decode to the end once."""
        logger.info("movie %s reports no frame count; counting by decoding", self.path)
        self._open()
        assert self._capture is not None
        count = 0
        while self._capture.grab():
            count += 1
        self._open()
        if count == 0:
            raise InputError(f"movie {self.path} has no frames")
        return count
