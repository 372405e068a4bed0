"""A job's inputs: the opened plate and frame range, its colour conversion and the keyframes.

Called by :mod:`actormatte.pipeline` before anything heavy runs: :func:`open_shot` checks the plate
and the range, :func:`load_shot_keyframes` reads and checks the masks (or runs ``--detect``),
:func:`read_check` decodes every frame once (the ``read`` stage), :func:`weights_sha256` gives the
digest recorded in job.json and the EXR metadata.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

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
from actormatte.weights import recorded_sha256

logger = logging.getLogger(__name__)

_DIGESTS: dict[tuple[str, int, int], str] = {}


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

    @property
    def num_frames(self) -> int:
        """Frames in the range."""
        return self.last - self.first + 1

    def read_uint8(self, frame: int) -> np.ndarray:
        """A plate frame as 8-bit sRGB, what both networks take. Shape: (H, W, 3) uint8."""
        if self._last_read is not None and self._last_read[0] == frame:
            return self._last_read[1]
        rgb = self.converter.to_uint8(self.plate.read(frame))
        self._last_read = (frame, rgb)
        return rgb

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


def read_check(shot: Shot, first: int, last: int, progress: ProgressCallback,
               cancel: CancelToken) -> None:
    """Decode every frame of ``first .. last`` once (the ``read`` stage).

    Catches truncated or unreadable files and frames of another size before anything is
    written. Frames are dropped as soon as they are checked.

    Raises:
        InputError: A frame cannot be decoded or has another size (names the file).
    """
    total = last - first + 1
    for done, frame in enumerate(range(first, last + 1), start=1):
        cancel.check()
        shot.plate.read(frame)
        progress(ProgressEvent("read", done, total, frame))


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
