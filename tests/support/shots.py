"""Shared fixtures for pipeline, CLI, host and farm tests: a models folder, tiny shots.

They are registered for every test folder in ``tests/conftest.py``.

``models_dir`` (session) lays out generated weights as the CLI expects them (docs/CLI.md):
``maggie-video/{model.safetensors,config.json}``, ``maggie-image/{...}``, ``xmem/XMem.pth``;
host and farm tests reuse it. The files are symlinks into the
generated-weights cache, so the folder costs nothing; no manifest is written (the pipeline then
hashes the weights itself). ``make_shot`` writes a small synthetic plate with moving actors and
an ID map for its first frame.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from support.reference import MAGGIE_REF


def build_models_dir(root: Path, maggie: Callable[..., Path], xmem: Callable[[int], Path]) -> Path:
    """Lay out generated weights as a models folder under ``root``."""
    layout = {
        "maggie-video": (maggie("video", 1, "overrides_A.txt", sn_power_iters=500), "video"),
        "maggie-image": (maggie("image", 3, "overrides_C.txt", 500), "image"),
    }
    for name, (weights, variant) in layout.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.safetensors").symlink_to(weights)
        shutil.copy(MAGGIE_REF / f"reconstructed_config_{variant}.json", folder / "config.json")
    (root / "xmem").mkdir(parents=True, exist_ok=True)
    (root / "xmem" / "XMem.pth").symlink_to(xmem(1))
    return root


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory,
               maggie_weights_factory: Callable[..., Path],
               xmem_weights_factory: Callable[[int], Path]) -> Path:
    """A models folder with generated MaGGIe video/image and XMem weights (no Mask R-CNN)."""
    return build_models_dir(tmp_path_factory.mktemp("models"), maggie_weights_factory,
                            xmem_weights_factory)


@dataclass(frozen=True)
class Shot:
    """A synthetic plate on disk."""

    pattern: str
    folder: Path
    first: int
    last: int
    width: int
    height: int
    ids: Path


def draw_frame(index: int, width: int, height: int, actors: int) -> tuple[np.ndarray, np.ndarray]:
    """One RGB frame (uint8) and its ID map (uint16): textured background, moving blobs."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([(xx * 2.0 + index * 3) % 256, (yy * 3.0) % 256,
                    (xx + yy + index * 5) % 256], axis=-1).astype(np.float32) * 0.5
    ids = np.zeros((height, width), np.uint16)
    for actor in range(actors):
        cx = width * (actor + 1) / (actors + 1) + 2 * np.sin(index / 3 + actor)
        cy = height * 0.5 + 2 * np.cos(index / 4 + actor)
        inside = ((xx - cx) / (width / (3 * actors + 2))) ** 2 + ((yy - cy) / (height / 3)) ** 2
        blob = inside <= 1.0
        rgb[blob] = (230 - 60 * actor, 90 + 50 * actor, 40 + 70 * actor)
        ids[blob] = actor + 1
    return rgb.astype(np.uint8), ids


def write_shot(folder: Path, frames: int, width: int = 96, height: int = 64, actors: int = 2,
               first: int = 1001, ext: str = "png") -> Shot:
    """Write ``frames`` frames ``plate.<frame>.<ext>`` and ``ids.png`` for the first one."""
    folder.mkdir(parents=True, exist_ok=True)
    ids0 = None
    for index in range(frames):
        rgb, ids = draw_frame(index, width, height, actors)
        cv2.imwrite(str(folder / f"plate.{first + index:04d}.{ext}"), rgb[:, :, ::-1])
        if ids0 is None:
            ids0 = ids
    assert ids0 is not None
    ids_path = folder / "ids.png"
    cv2.imwrite(str(ids_path), ids0)
    return Shot(str(folder / f"plate.####.{ext}"), folder, first, first + frames - 1, width,
                height, ids_path)


@pytest.fixture
def make_shot(tmp_path: Path) -> Callable[..., Shot]:
    """``make_shot(frames, width=96, height=64, actors=2, first=1001, ext="png") -> Shot``."""
    counter = iter(range(1000))

    def make(frames: int, **kwargs: int | str) -> Shot:
        return write_shot(tmp_path / f"shot{next(counter)}", frames, **kwargs)  # type: ignore[arg-type]

    return make
