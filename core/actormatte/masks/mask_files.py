"""Reading mask files: instance-ID maps and per-actor masks, checked against the plate size.

Used by :mod:`actormatte.masks.keyframes`; the rules are in its module docstring. Files are read
with OpenImageIO in their own data type, so 16-bit ids and float EXR ids arrive unscaled.

Placement: a mask is placed in the plate's working window (:mod:`actormatte.io.geometry`) by
pixel coordinates. A mask whose display window has the plate's display size (every PNG/TIFF
exported at plate resolution, every Nuke EXR roto render, whose data window is the roto's
bounding box) is placed by its data window, zero outside it, and whatever of it lies outside the
working window (a roto bbox reaching past the overscan) is dropped. A mask without windows that
has the size of the plate's working window (exported with the overscan) covers that window; one
the size of the plate's own data window (what Blender renders: it shows only the data window)
covers that. Anything else is refused with the sizes it has and needs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from actormatte.errors import InputError
from actormatte.io.geometry import PlateGeometry, Window, place, spec_windows

_ID_TOLERANCE = 1e-3
_MAX_ID_VALUE = 65535
_REFUSED_SUFFIXES = (".jpg", ".jpeg", ".jpe")


def _read_image(path: Path, flag: str) -> tuple[np.ndarray, int, tuple[Window, Window]]:
    """Read every channel in the file's own data type.

    Returns:
        Pixels of shape (h, w, C) over the data window, the alpha channel's index (-1 when there
        is none) and the file's (data, display) windows.
    """
    import OpenImageIO as oiio  # a core dependency; imported here to keep module import light

    if path.suffix.lower() in _REFUSED_SUFFIXES:
        raise InputError(f"{flag} {path}: JPEG changes mask values along every edge; "
                         "save the mask as PNG, TIFF or EXR")
    if not path.is_file():
        raise InputError(f"{flag} {path}: no such file; check the path")
    image_in = oiio.ImageInput.open(str(path))
    if image_in is None:
        raise InputError(f"{flag} {path}: cannot read it ({oiio.geterror()}); "
                         "save it as PNG, TIFF or EXR")
    try:
        pixels = image_in.read_image(oiio.UNKNOWN)
        alpha = int(image_in.spec().alpha_channel)
        windows = spec_windows(image_in.spec())
    finally:
        image_in.close()
    if pixels is None:
        raise InputError(f"{flag} {path}: cannot decode its pixels; re-save it as PNG or EXR")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]  # (H, W) -> (H, W, 1)
    return pixels, alpha, windows


def place_in_plate(array: np.ndarray, windows: tuple[Window, Window],
                   plate_size: tuple[int, int], flag: str, path: Path) -> np.ndarray:
    """Place a mask channel in the plate's working window (module docstring).

    Shape:
        array: (h, w) over the mask's data window; returns (H, W), the plate's working window.
    """
    geometry = getattr(plate_size, "geometry", None)
    if not isinstance(geometry, PlateGeometry):
        geometry = PlateGeometry.full_frame(int(plate_size[0]), int(plate_size[1]))
    data, display = windows
    if display.size == geometry.display.size:
        dx, dy = geometry.display.x - display.x, geometry.display.y - display.y
        return place(array, Window(data.x + dx, data.y + dy, data.width, data.height),
                     geometry.data)
    bare = data == display and (data.x, data.y) == (0, 0)
    if bare and data.size == geometry.data.size:
        return np.ascontiguousarray(array)
    plate_data = geometry.plate_data
    if bare and plate_data is not None and data.size == plate_data.size:
        return place(array, plate_data, geometry.data)
    plate = f"{geometry.display.width}x{geometry.display.height}"
    if geometry.data != geometry.display:
        plate += f" (data window {geometry.data})"
    raise InputError(f"{flag} {path}: the mask's format is {display.width}x{display.height} "
                     f"but the plate is {plate}; export the mask at plate resolution")


def read_id_map(path: Path, plate_size: tuple[int, int], flag: str = "--masks") -> np.ndarray:
    """Read an instance-ID map (first channel, integer ids, 0 = background).

    Shape:
        (H, W) int64.

    Raises:
        InputError: Unreadable file, wrong size, non-integer or negative ids.
    """
    pixels, _, windows = _read_image(path, flag)
    first = place_in_plate(pixels[:, :, 0], windows, plate_size, flag, path)
    if np.issubdtype(first.dtype, np.integer):
        ids = first.astype(np.int64)
    else:
        values = first.astype(np.float64)
        if not np.isfinite(values).all() or (values.size and values.max() > _MAX_ID_VALUE):
            raise InputError(f"{flag} {path}: NaN, infinite or huge values; an ID map holds "
                             "whole numbers (0 = background, k = actor k)")
        ids = np.rint(values).astype(np.int64)
        worst = float(np.abs(values - ids).max()) if values.size else 0.0
        if worst > _ID_TOLERANCE:
            raise InputError(f"{flag} {path}: an ID map holds whole numbers (0 = background, "
                             f"k = actor k) but this file has fractional values (off by "
                             f"up to {worst:.3g}); write the ids unfiltered, or pass per-actor "
                             "masks with --actor-mask NAME=PATH")
    if ids.size and ids.min() < 0:
        raise InputError(f"{flag} {path}: ids must be >= 0 (0 = background, k = actor k)")
    return ids


def read_actor_mask(path: Path, plate_size: tuple[int, int],
                    flag: str = "--actor-mask") -> np.ndarray:
    """Read one actor's mask: its alpha when that varies, else its first channel; > 0.5 after 0..1.

    Shape:
        (H, W) bool.
    """
    pixels, alpha, windows = _read_image(path, flag)
    channel = pixels[:, :, 0]
    if alpha >= 0 and pixels[:, :, alpha].min() != pixels[:, :, alpha].max():
        channel = pixels[:, :, alpha]
    channel = place_in_plate(channel, windows, plate_size, flag, path)
    if np.issubdtype(channel.dtype, np.integer):
        scale = float(np.iinfo(channel.dtype).max)
        return channel.astype(np.float64) / scale > 0.5
    return np.nan_to_num(channel.astype(np.float64)) > 0.5
