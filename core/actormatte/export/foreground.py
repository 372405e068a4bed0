"""Per-actor foreground colour (``--foreground``): premultiplied RGB beside each actor's alpha.

Called by :class:`actormatte.export.comp.CompWriter` for every frame and actor, with the plate
frame in its *own* colour space (the file's values: scene-linear for float plates, never the
networks' sRGB) at plate resolution. The colour is estimated with pymatting's multilevel
foreground estimation (Germer et al. 2020, ``estimate_foreground_ml``), which solves
``I = αF + (1-α)B`` with smoothness, restricted to the actor's bounding box (``alpha > 0``) grown by
a margin, so the cost follows the actor's size, not the frame's.

pymatting clamps F and B to 0..1; the model is linear, so the crop is mapped to 0..1 by its own
range (``min(0, lo)`` .. ``max(1, hi)``) before and mapped back after, which keeps HDR highlights
and negative scene-linear values. Then ``F = plate`` where α = 1, and the stored colour is
``α · F``: 0 where α = 0, the plate where α = 1. NaN or infinite plate pixels count as 0.

pymatting is imported lazily (it pulls numba), and only its estimator module: the first use in a
fresh environment JIT-compiles that module's kernels once (~8 CPU-s; the whole package would be
~79) and numba caches them next to the package (or per user when that folder is read-only).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

import numpy as np

from actormatte.errors import DependencyError, ShapeError

#: Pixels of context around the actor's bounding box (the background the estimate sees).
DEFAULT_MARGIN = 32


#: pymatting's module holding the multilevel estimator (loaded alone, see :func:`_estimator`).
_ML_MODULE = "pymatting.foreground.estimate_foreground_ml"


def _estimator() -> Any:
    """The ``estimate_foreground_ml`` of pymatting, compiling as little as possible.

    ``import pymatting`` JIT-compiles every numba kernel of the package (measured: 79 CPU-s on a
    fresh cache); the estimator's own module compiles in ~8 CPU-s. So that module is loaded on
    its own, under its real name (numba's on-disk cache and a later ``import pymatting`` reuse
    it); if the package layout ever differs, the plain import is used.
    """
    module = sys.modules.get(_ML_MODULE)
    if module is None:
        module = _load_ml_module()
    if module is not None and hasattr(module, "estimate_foreground_ml"):
        return module.estimate_foreground_ml
    try:
        from pymatting import estimate_foreground_ml
    except ImportError as exc:
        raise DependencyError(
            "--foreground needs pymatting: pip install pymatting (install.py installs it)"
        ) from exc
    return estimate_foreground_ml


def _load_ml_module() -> ModuleType | None:
    spec = importlib.util.find_spec("pymatting")
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "foreground", "estimate_foreground_ml.py")
    file_spec = importlib.util.spec_from_file_location(_ML_MODULE, path)
    if not os.path.isfile(path) or file_spec is None or file_spec.loader is None:
        return None
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[_ML_MODULE] = module  # numba's cache records the module by name
    try:
        file_spec.loader.exec_module(module)
    except Exception:  # noqa: BLE001 - any surprise: fall back to the package import
        del sys.modules[_ML_MODULE]
        return None
    return module


def actor_box(alpha: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """Rows and columns of the bounding box of ``alpha > 0`` grown by ``margin`` (clipped).

    Shape:
        alpha: (H, W). Returns ``None`` for an empty alpha.
    """
    rows = np.flatnonzero(alpha.max(axis=1) > 0)
    if rows.size == 0:
        return None
    cols = np.flatnonzero(alpha.max(axis=0) > 0)
    height, width = alpha.shape
    return (slice(max(0, rows[0] - margin), min(height, rows[-1] + 1 + margin)),
            slice(max(0, cols[0] - margin), min(width, cols[-1] + 1 + margin)))


def estimate_foreground(plate: np.ndarray, alpha: np.ndarray, *,
                        margin: int = DEFAULT_MARGIN) -> np.ndarray:
    """The actor's premultiplied colour ``α · F`` at plate resolution.

    Args:
        plate: The plate frame in its own colour space.
        alpha: The actor's alpha in 0..1.
        margin: Context pixels around the actor's bounding box.

    Shape:
        plate: (H, W, 3) float32; alpha: (H, W) float32. Returns (H, W, 3) float32.

    Raises:
        ShapeError: The plate and the alpha differ in size.
        DependencyError: pymatting is missing.
    """
    if plate.ndim != 3 or plate.shape[2] != 3 or plate.shape[:2] != alpha.shape:
        raise ShapeError(f"plate {plate.shape} and alpha {alpha.shape} must be (H, W, 3) and "
                         "(H, W) of one size")
    out = np.zeros(plate.shape, dtype=np.float32)
    box = actor_box(alpha, margin)
    if box is None:
        return out
    crop = np.nan_to_num(plate[box].astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    crop_alpha = alpha[box].astype(np.float32)  # (h, w)
    low = min(0.0, float(crop.min()))
    high = max(1.0, float(crop.max()))
    scale = high - low
    normalised = (crop - low) / scale
    fg = _estimator()(normalised, crop_alpha).astype(np.float32) * scale + low  # (h, w, 3)
    solid = crop_alpha >= 1.0
    fg[solid] = crop[solid]
    out[box] = fg * crop_alpha[:, :, None]
    return out


def naive_foreground(plate: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The baseline ``plate · α`` (background colour left in the edges).

    Shape:
        plate: (H, W, 3); alpha: (H, W). Returns (H, W, 3) float32.
    """
    return (plate * alpha[:, :, None]).astype(np.float32)
