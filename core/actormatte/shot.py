"""A job's inputs: the opened plate and frame range, its colour conversion and the keyframes.

Called by :mod:`actormatte.pipeline` before anything heavy runs: :func:`open_shot` checks the plate
and the range, :func:`load_shot_keyframes` reads and checks the masks (or runs ``--detect``),
:func:`check_frames` checks every frame's header and end without decoding it (the ``read``
stage), :func:`weights_sha256` gives the digest recorded in job.json and the EXR metadata.
:meth:`Shot.streaming` attaches a bounded :class:`~actormatte.stream.FrameStore`, so while it is
attached every stage of the process reads each frame's one decode.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actormatte.config import MaskConfig, ReadConfig
from actormatte.errors import InputError
from actormatte.io import ColourConverter, ImageSequencePlate, Plate
from actormatte.io import open_plate as _open_plate
from actormatte.io.colour_defaults import choose_input_colorspace
from actormatte.io.geometry import PlateSpace
from actormatte.io.sequence import parse_frame_range
from actormatte.masks import (
    KeyframeSet,
    find_first_people,
    load_detector,
    load_keyframes,
    parse_actor_mask_arg,
    parse_mask_arg,
)
from actormatte.masks.mask_layers import parse_mask_layers_arg
from actormatte.progress import CancelToken, ProgressCallback, ProgressEvent
from actormatte.stream import FrameStore, io_workers, set_oiio_threads
from actormatte.weights import recorded_sha256

logger = logging.getLogger(__name__)

_DIGESTS: dict[tuple[str, int, int], str] = {}

#: Frames a :class:`FrameStore` holds at most: two window5 windows and the read-ahead.
STORE_CAPACITY = 12


@dataclass
class Shot:
    """An opened plate, the frame range to process and the colour conversion.

    Attributes:
        plate: The plate reader.
        first: First frame of the range.
        last: Last frame of the range.
        colorspace: OCIO colour space the plate is read in.
        converter: Plate -> network sRGB conversion.
        plate_path: The plate as an absolute pattern or movie path.
        start_frame: First frame number of a movie.
        colorspace_reason: Why ``colorspace`` was chosen (io/colour_defaults.py rules).
    """

    plate: Plate
    first: int
    last: int
    colorspace: str
    converter: ColourConverter
    plate_path: str
    start_frame: int = 1
    colorspace_reason: str = ""
    _last_read: tuple[int, np.ndarray] | None = field(default=None, repr=False)
    store: FrameStore | None = field(default=None, repr=False)

    @property
    def num_frames(self) -> int:
        """Frames in the range."""
        return self.last - self.first + 1

    def read_uint8(self, frame: int) -> np.ndarray:
        """A plate frame as 8-bit sRGB, what both networks take. Shape: (H, W, 3) uint8.

        Goes through :attr:`store` while one is attached (:meth:`streaming`), so every stage of
        the process shares one decode per frame.
        """
        if self.store is not None:
            return self.store.get(frame)
        if self._last_read is not None and self._last_read[0] == frame:
            return self._last_read[1]
        rgb = self.decode_uint8(frame)
        self._last_read = (frame, rgb)
        return rgb

    def decode_uint8(self, frame: int) -> np.ndarray:
        """Decode and convert one frame, no caching. Shape: (H, W, 3) uint8.

        When the conversion is the identity (the plate is in the networks' sRGB space, only
        clamped), an 8-bit file's stored values are the result: ``quantise(v / 255) == v`` for
        every byte, so the float passes are skipped with the same bits.
        """
        if self.converter_is_identity and isinstance(self.plate, ImageSequencePlate):
            rgb = self.plate.read_uint8_or_float(frame)
            return rgb if rgb.dtype == np.uint8 else self.converter.to_uint8(rgb)
        return self.converter.to_uint8(self.plate.read(frame))

    @property
    def converter_is_identity(self) -> bool:
        """Whether the colour conversion only clamps (plate space = target, no soft clip)."""
        return (self.converter.resolved_input == self.converter.target
                and not self.converter.soft_clip)

    @contextlib.contextmanager
    def streaming(self, order: Sequence[int], keep: Callable[[int], bool] | None = None,
                  resume_hint: str = "") -> Iterator[FrameStore]:
        """Attach a :class:`~actormatte.stream.FrameStore` reading ahead in ``order``."""
        workers = io_workers()
        set_oiio_threads(workers.oiio)
        store = FrameStore(self.decode_uint8, order, keep, capacity=STORE_CAPACITY,
                           depth=workers.depth, workers=workers.read, resume_hint=resume_hint)
        self.store, self._last_read = store, None
        try:
            yield store
        finally:
            self.store = None
            store.close()

    def default_name(self) -> str:
        """``<plate stem>_mattes``: the output name when ``--name`` is not given."""
        if isinstance(self.plate, ImageSequencePlate):
            stem = self.plate.pattern.prefix.rstrip("._-") or "plate"
        else:
            stem = Path(self.plate.path).stem
        return f"{stem}_mattes"

    def padding(self) -> int:
        """Frame-number padding of outputs: the plate's, at least 4 digits."""
        if isinstance(self.plate, ImageSequencePlate):
            return max(4, self.plate.pattern.padding)
        return 4


def parse_frames(text: str) -> tuple[int, int]:
    """Parse ``--frames A-B``, ``A:B`` or one frame ``A``; frames may be negative (``-3:4``).

    Raises:
        InputError: Not that form, or A > B (see :func:`actormatte.io.sequence.parse_frame_range`).
    """
    return parse_frame_range(text)


def open_shot(plate_path: str, frames: tuple[int, int] | None, read: ReadConfig,
              colorspace: str | None = None) -> Shot:
    """Open the plate, check the range and set up the colour conversion.

    Args:
        plate_path: Plate pattern, frame file or movie.
        frames: ``(first, last)``, or ``None`` for the plate's whole range.
        read: Colour space and movie start frame.
        colorspace: Overrides ``read.input_colorspace`` (a work folder's recorded space).

    Raises:
        InputError: Missing plate, a gap or a frame outside the plate, unknown colour space.
    """
    plate = _open_plate(plate_path, start_frame=read.start_frame)
    first, last = frames if frames is not None else (plate.first, plate.last)
    plate.check_range(first, last)
    choice = choose_input_colorspace(plate.header, plate.is_float,
                                     colorspace or read.input_colorspace)
    name = choice.name
    converter = ColourConverter(name)
    if isinstance(plate, ImageSequencePlate):
        absolute = plate.pattern.hashes()
        absolute = os.path.abspath(absolute)
    else:
        absolute = os.path.abspath(plate.path)
    return Shot(plate, first, last, name, converter, absolute, read.start_frame,
                colorspace_reason=choice.reason)


def load_shot_keyframes(shot: Shot, masks: MaskConfig, models_dir: Path,
                        device: str) -> KeyframeSet:
    """Read the keyframe masks (and run ``--detect``) for the shot.

    Raises:
        InputError: A mask breaks a rule (size, empty, frame outside the range, names...).
        WeightsError: ``--detect`` without the Mask R-CNN weights.
    """
    id_maps = [parse_mask_arg(text) for text in masks.masks]
    actor_masks = [parse_actor_mask_arg(text) for text in masks.actor_masks]
    detected = None
    if masks.detect:
        session = load_detector(models_dir, device)
        detected = find_first_people(shot.read_uint8, range(shot.first, shot.last + 1),
                                     session=session, window=masks.detect_window,
                                     score_threshold=masks.detect_threshold,
                                     max_count=masks.detect_max)
    mask_layers = [parse_mask_layers_arg(text) for text in masks.mask_layers]
    return load_keyframes(id_maps, actor_masks, masks.names, default_frame=shot.first,
                          frame_range=(shot.first, shot.last),
                          plate_size=PlateSpace(shot.plate.geometry), detected=detected,
                          mask_layers=mask_layers)


def check_frames(shot: Shot, first: int, last: int, progress: ProgressCallback,
                 cancel: CancelToken) -> None:
    """Check every frame of ``first .. last`` without decoding it (the ``read`` stage).

    Reads each file's header (size, deep, channel count against the first frame's) and looks
    for cheap signs of truncation (:func:`frame_problem`), so a bad plate writes nothing. A
    frame damaged inside still fails when it is decoded, mid-run, with exit code 2.

    Raises:
        InputError: A frame is unreadable, of another size or layout, or truncated (names it).
    """
    total = last - first + 1
    for done, frame in enumerate(range(first, last + 1), start=1):
        cancel.check()
        if isinstance(shot.plate, ImageSequencePlate):
            problem = frame_problem(shot.plate, frame)
            if problem is not None:
                raise InputError(f"plate frame {frame} {problem}: {shot.plate.path_for(frame)}; "
                                 "re-render or re-copy it")
        progress(ProgressEvent("read", done, total, frame))


def frame_problem(plate: ImageSequencePlate, frame: int) -> str | None:
    """What is wrong with one frame file, from its header and its end (``None``: looks whole).

    The end check depends on the format: EXR, TIFF and DPX decode their last scanline chunk
    or tile (random access: only that chunk is read, as the EXR writer's own completeness check
    does); PNG must end with its ``IEND`` chunk and JPEG with an end-of-image marker.
    """
    import OpenImageIO as oiio

    path = plate.path_for(frame)
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)
    inp = oiio.ImageInput.open(path, config)
    if inp is None:
        return f"is unreadable ({oiio.geterror()})"
    try:
        spec = inp.spec()
        if spec.deep:
            return "is a deep image (flatten it first)"
        display = plate.geometry.display  # the format; width/height is the working window
        if (spec.full_width, spec.full_height) != display.size:
            return (f"is {spec.full_width}x{spec.full_height} but the plate is "
                    f"{display.width}x{display.height}")
        if spec.nchannels != plate.channels:
            return f"has {spec.nchannels} channels, the plate's first frame {plate.channels}"
        return None if _end_decodes(inp, spec, path) else "is truncated or corrupt"
    finally:
        inp.close()


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _end_decodes(inp: Any, spec: Any, path: str) -> bool:
    """Whether the last chunk of an open file decodes (or its end marker is there)."""
    import OpenImageIO as oiio

    ext = os.path.splitext(path)[1].lower()
    if ext in (".png", ".jpg", ".jpeg"):
        with open(path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(path) - 64))
            tail = handle.read()
        return tail.endswith(_PNG_END) if ext == ".png" else b"\xff\xd9" in tail
    end = spec.y + spec.height
    if spec.tile_width > 0:
        x = spec.x + (spec.width - 1) // spec.tile_width * spec.tile_width
        y = spec.y + (spec.height - 1) // spec.tile_height * spec.tile_height
        pixels = inp.read_tile(0, 0, x, y, spec.z, oiio.FLOAT)
    else:
        rows = max(spec.get_int_attribute("oiio:RowsPerChunk", 16), 1)
        pixels = inp.read_scanlines(0, 0, max(end - rows, spec.y), end, 0, 0, 1, oiio.FLOAT)
    if pixels is None:
        inp.geterror()
    return pixels is not None


def weights_sha256(models_dir: Path, name: str, path: Path) -> str:
    """The sha256 of a weights file: the manifest's, else computed once per process."""
    recorded = recorded_sha256(models_dir, name)
    if recorded:
        return recorded
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
        logger.info("sha256 of %s computed (no manifest entry)", path)
    return _DIGESTS[key]
