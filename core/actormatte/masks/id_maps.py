"""How an ``--masks`` file is read: integer ID map, colour-coded ID map, or refused.

Called by :mod:`actormatte.masks.keyframes` for every ``--masks`` file (one :class:`IdMapReader`
per job, so a colour means the same actor in every file). The rules (docs/CLI.md, MASKS):

* **Grey ID map** (one channel, or R = G = B everywhere): the values are the ids, read by
  :func:`actormatte.masks.mask_files.read_id_map`.
* **Colour-coded ID map** (RGB or RGBA whose channels differ somewhere): each distinct colour is
  one actor; black (and, in RGBA, alpha 0) is background. Ids are 1, 2, ... in order of **first
  appearance**: over the ``--masks`` files in the order given, and within a file in raster order
  (top row first, left to right). The same colour in another file is the same actor. ``--names``
  names them in that order.
* **Refused** (exit code 2, pointing to ``--actor-mask``): maps whose ids look like anti-aliased
  greys or blended colours: three or more ids of which at least half (and two or more) exist
  only as thin edges (no pixel whose 3x3 neighbourhood is all that id), e.g. a white-on-black
  matte with soft edges, which would otherwise become ring-shaped "actors". A real actor is
  never that thin at plate resolution.
* A map with more than :data:`WARN_IDS` ids is read with a warning (pictures and soft mattes
  often look like that).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from actormatte.errors import InputError
from actormatte.masks.mask_files import _read_image, place_in_plate, read_id_map

logger = logging.getLogger(__name__)

#: More ids than this in one ID map earn a warning.
WARN_IDS = 10
_KERNEL = np.ones((3, 3), np.uint8)


class IdMapReader:
    """Reads the ``--masks`` files of one job; owns the colour -> actor id table.

    Args:
        plate_size: Plate (width, height) (or what :func:`read_id_map` accepts).
    """

    def __init__(self, plate_size: tuple[int, int]) -> None:
        self._plate_size = plate_size
        self._colour_ids: dict[tuple[float, ...], int] = {}

    def read(self, path: Path, source: str) -> np.ndarray:
        """The ids of one file, checked.

        Shape:
            Returns (H, W) int64 at plate resolution, 0 = background.

        Raises:
            InputError: Unreadable, wrong size, fractional or negative ids, or a map that looks
                like an anti-aliased matte (module docstring).
        """
        colours = self._colour_planes(path)
        if colours is None:
            ids = read_id_map(path, self._plate_size)
            kind = "grey levels"
        else:
            ids = self._colour_to_ids(colours, source)
            kind = "colours"
        check_ids(ids, source, kind)
        return ids

    def _colour_planes(self, path: Path) -> np.ndarray | None:
        """(H, W, C) colour (+ alpha) at plate resolution, or ``None`` for a grey map."""
        pixels, alpha, windows = _read_image(path, "--masks")
        if pixels.shape[2] < 3:
            return None
        rgb = pixels[:, :, :3]
        if np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 0],
                                                                          rgb[:, :, 2]):
            return None
        channels = [0, 1, 2] + ([alpha] if alpha >= 3 else [])
        planes = [place_in_plate(pixels[:, :, c], windows, self._plate_size, "--masks", path)
                  for c in channels]
        return np.stack(planes, axis=-1).astype(np.float64)  # (H, W, 3 or 4)

    def _colour_to_ids(self, planes: np.ndarray, source: str) -> np.ndarray:
        """Distinct colours -> ids by first appearance. Shape: (H, W, C) -> (H, W) int64."""
        height, width = planes.shape[:2]
        rgb = planes[:, :, :3].reshape(-1, 3)  # (H*W, 3)
        background = np.asarray(~rgb.any(axis=1))  # (H*W,)
        if planes.shape[2] == 4:
            background = background | (planes[:, :, 3].reshape(-1) == 0)
        colours, first, inverse = np.unique(rgb, axis=0, return_index=True, return_inverse=True)
        ids_of_colour = np.zeros(len(colours), np.int64)
        new = []
        for index in np.argsort(first):
            if background[first[index]] and not colours[index].any():
                continue
            key = tuple(float(v) for v in colours[index])
            if key not in self._colour_ids:
                self._colour_ids[key] = len(self._colour_ids) + 1
                new.append(key)
            ids_of_colour[index] = self._colour_ids[key]
        ids = ids_of_colour[inverse.reshape(-1)]
        ids[background] = 0
        if new:
            table = ", ".join(f"{_hex(c)} -> id {self._colour_ids[c]}" for c in new[:12])
            logger.info("%s: colour-coded ID map (%s%s)", source, table,
                        ", ..." if len(new) > 12 else "")
        return ids.reshape(height, width)


def _hex(colour: tuple[float, ...]) -> str:
    return "#" + "".join(f"{int(v):02x}" if v == int(v) and v < 256 else f"{v:g}/"
                         for v in colour)


def check_ids(ids: np.ndarray, source: str, kind: str = "values") -> None:
    """Refuse anti-aliased-looking maps; warn about many ids (module docstring).

    Shape:
        ids: (H, W) integer ids.

    Raises:
        InputError: All but at most one of three or more ids are thin edges only.
    """
    present = [int(k) for k in np.unique(ids) if k != 0]
    if len(present) >= 3:
        thin = [k for k in present if not _has_interior(ids == k)]
        if len(thin) >= 2 and 2 * len(thin) >= len(present):
            raise InputError(
                f"{source}: {len(present)} different {kind}, {len(thin)} of them only along "
                "edges: this looks like a soft (anti-aliased) matte, not an ID map. Pass each "
                "actor's matte with --actor-mask NAME=PATH[@FRAME] (values above 0.5 are the "
                "actor), or export the ID map without anti-aliasing (one flat value per actor)")
    if len(present) > WARN_IDS:
        logger.warning("%s: %d different ids (more than %d); check it is an ID map (one flat "
                       "value or colour per actor) and not a picture or a soft matte", source,
                       len(present), WARN_IDS)


def _has_interior(mask: np.ndarray) -> bool:
    """Whether some pixel of ``mask`` has its whole 3x3 neighbourhood in ``mask``."""
    return bool(cv2.erode(mask.astype(np.uint8), _KERNEL, borderType=cv2.BORDER_REPLICATE).any())
