"""Soak (issue 15, finding 7): 10,000 tiny frames through the real pipeline, stand-in networks;
memory and open file descriptors stay bounded. Figures go to ``$ACTORMATTE_SOAK_REPORT``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

FRAMES = 10_000
CHILD = Path(__file__).with_name("soak_child.py")


def _write_plate(folder: Path, frames: int, width: int = 32, height: int = 32) -> tuple[str, str]:
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:height, 0:width]
    for index in range(frames):
        rgb = np.stack([(xx * 7 + index) % 256, (yy * 5) % 256, (xx + yy) % 256], -1)
        rgb[8:24, 4 + index % 8:14 + index % 8] = (220, 40, 40)
        cv2.imwrite(str(folder / f"plate.{1001 + index:05d}.png"), rgb.astype(np.uint8))
    ids = np.zeros((height, width), np.uint16)
    ids[8:24, 4:14] = 1
    cv2.imwrite(str(folder / "ids.png"), ids)
    return str(folder / "plate.#####.png"), str(folder / "ids.png")


def _models(root: Path) -> Path:
    """Sparse files of the registered sizes: the loaders are stand-ins and read nothing."""
    from actormatte.weights import get_model

    for name in ("xmem", "maggie-video", "maggie-image"):
        for weight in get_model(name).files:
            path = root / weight.relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as handle:
                handle.truncate(weight.size or weight.approx_size or 1 << 20)
    return root


@pytest.mark.slow
def test_10000_frames_bounded_rss_and_fds(tmp_path):
    plate, ids = _write_plate(tmp_path / "plate", FRAMES)
    models = _models(tmp_path / "models")
    proc = subprocess.run([sys.executable, str(CHILD), plate, ids, str(tmp_path / "out"),
                           str(models)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "ACTORMATTE_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    if os.environ.get("ACTORMATTE_SOAK_REPORT"):
        Path(os.environ["ACTORMATTE_SOAK_REPORT"]).write_text(json.dumps(report, indent=1))
    assert report["frames_written"] == FRAMES
    assert len(list((tmp_path / "out").glob("plate_mattes.*.exr"))) == FRAMES
    for stage in ("propagate", "matte"):
        samples = [s for s in report["samples"] if s["stage"] == stage]
        assert samples[-1]["done"] == FRAMES, stage
        # after a warm-up tenth of the shot, memory and descriptors stop growing
        warm = [s for s in samples if s["done"] >= FRAMES // 10]
        rss = [s["rss"] for s in warm]
        assert max(rss) - rss[0] < 16 << 20, (stage, rss[0], max(rss))
        fds = [s["fds"] for s in warm]
        assert max(fds) - min(fds) <= 8, (stage, fds)
        assert max(s["threads"] for s in warm) - min(s["threads"] for s in warm) <= 4
