"""The matte stage's last steps: the reverse in the EXR writers, the guided upsample."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

from actormatte import matte as matte_module
from actormatte import pipeline
from actormatte.config import MaskConfig, MatteConfig, PropagateConfig

SMALL = MatteConfig(size=64)
PLATE_XMEM = PropagateConfig(size=-1)


def _pixels(path: Path) -> np.ndarray:
    buf = oiio.ImageBuf(str(path))
    return buf.get_pixels(oiio.HALF).view(np.uint16)  # the stored bits


def _matte(work: str, out: Path, models_dir: Path, config: MatteConfig) -> None:
    result = pipeline.matte(pipeline.MatteOptions(work=work, out=str(out), models=str(models_dir),
                                                  device="cpu", matte=config))
    assert result.frames_written == 6


def test_writers_reverse_bit_identically_and_guided_is_applied(tmp_path, make_shot, models_dir,
                                                              monkeypatch):
    shot = make_shot(6, width=128, height=96)
    work = str(tmp_path / "work")
    pipeline.propagate(pipeline.PropagateOptions(
        plate=shot.pattern, work=work, masks=MaskConfig(masks=(str(shot.ids),)),
        models=str(models_dir), device="cpu", propagate=PLATE_XMEM))
    _matte(work, tmp_path / "deferred", models_dir, SMALL)
    original = matte_module.MatteStage.__init__

    def in_stream(self: matte_module.MatteStage, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        assert self.source.defer_reverse  # CPU, bilinear: deferred by default
        self.source.defer_reverse = False

    monkeypatch.setattr(matte_module.MatteStage, "__init__", in_stream)
    _matte(work, tmp_path / "in_stream", models_dir, SMALL)
    monkeypatch.undo()
    _matte(work, tmp_path / "guided", models_dir, dataclasses.replace(SMALL, upsample="guided"))
    changed = 0
    for frame in range(1001, 1007):
        name = f"plate_mattes.{frame}.exr"
        deferred = _pixels(tmp_path / "deferred" / name)
        assert np.array_equal(deferred, _pixels(tmp_path / "in_stream" / name)), frame
        changed += int(not np.array_equal(deferred, _pixels(tmp_path / "guided" / name)))
    assert changed > 0  # --upsample guided reaches the files
